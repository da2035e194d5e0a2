//! What discovery knows about an agent: the text taken from its registry
//! record and its card's skills, the strings that get embedded, and the hash
//! that says when they must be embedded again.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::registry::AgentRecord;

/// At most this many skills of a card are indexed; the rest are ignored.
pub const MAX_SKILLS: usize = 32;
/// Each text field is cut to this many characters before indexing. The model
/// reads at most 256 tokens of each embedded string anyway.
pub const MAX_FIELD_CHARS: usize = 2_000;
/// At most this many tags and examples of one skill are indexed.
pub const MAX_LIST_ITEMS: usize = 16;
/// Bumped whenever the embedded strings are built differently, so stored
/// vectors of the old layout are recomputed.
const LAYOUT: &str = "switchboard-discovery-text/1";

/// One skill from an agent's card.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SkillText {
    /// `skills[].id` (falls back to the name).
    pub id: String,
    /// `skills[].name`.
    pub name: String,
    /// `skills[].description`.
    pub description: String,
    /// `skills[].tags`.
    pub tags: Vec<String>,
    /// `skills[].examples`.
    pub examples: Vec<String>,
}

/// The searchable text of one agent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentText {
    /// Agent id.
    pub id: String,
    /// Registry name (the card's when the registry has none).
    pub name: String,
    /// Registry description (the card's when the registry has none).
    pub description: String,
    /// The card's skills, in card order.
    pub skills: Vec<SkillText>,
}

fn clip(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(MAX_FIELD_CHARS) {
        Some((end, _)) => s[..end].to_owned(),
        None => s.to_owned(),
    }
}

fn str_field(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .map(clip)
        .unwrap_or_default()
}

fn str_list(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(clip)
                .filter(|s| !s.is_empty())
                .take(MAX_LIST_ITEMS)
                .collect()
        })
        .unwrap_or_default()
}

impl AgentText {
    /// Reads an agent's record and, when it has one, its stored card. Card
    /// fields of the wrong type are ignored, never an error.
    pub fn from_record(agent: &AgentRecord) -> AgentText {
        let card = agent.card.as_ref();
        let from_card = |key: &str| card.map(|c| str_field(c, key)).unwrap_or_default();
        let name = if agent.name.trim().is_empty() {
            from_card("name")
        } else {
            clip(&agent.name)
        };
        let description = if agent.description.trim().is_empty() {
            from_card("description")
        } else {
            clip(&agent.description)
        };
        let skills = card
            .and_then(|c| c.get("skills"))
            .and_then(Value::as_array)
            .map(|skills| {
                skills
                    .iter()
                    .filter(|s| s.is_object())
                    .map(|s| {
                        let name = str_field(s, "name");
                        let id = str_field(s, "id");
                        SkillText {
                            id: if id.is_empty() { name.clone() } else { id },
                            name,
                            description: str_field(s, "description"),
                            tags: str_list(s, "tags"),
                            examples: str_list(s, "examples"),
                        }
                    })
                    .filter(|s| !(s.name.is_empty() && s.description.is_empty()))
                    .take(MAX_SKILLS)
                    .collect()
            })
            .unwrap_or_default();
        AgentText {
            id: agent.id.clone(),
            name,
            description,
            skills,
        }
    }

    /// The strings to embed: the whole agent first, then each skill.
    ///
    /// The whole-agent string is the name, the description and the skills'
    /// names and descriptions; each skill's string is its name, description,
    /// tags and examples. Examples are phrased like the requests callers
    /// make, which is what queries look like too.
    pub fn embedding_inputs(&self) -> Vec<String> {
        let mut whole = format!("{}. {}", self.display_name(), self.description);
        if !self.skills.is_empty() {
            whole.push_str(" Skills: ");
            let parts: Vec<String> = self
                .skills
                .iter()
                .map(|s| join_nonempty(&[&s.name, &s.description], ": "))
                .collect();
            whole.push_str(&parts.join("; "));
        }
        let mut out = vec![whole];
        out.extend(self.skills.iter().map(SkillText::embedding_input));
        out
    }

    /// The name to show: the name, else the id.
    pub fn display_name(&self) -> &str {
        if self.name.is_empty() {
            &self.id
        } else {
            &self.name
        }
    }

    /// Hash of [`Self::embedding_inputs`]: equal hashes mean the stored vectors are current.
    pub fn text_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(LAYOUT.as_bytes());
        for s in self.embedding_inputs() {
            h.update((s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        }
        hex::encode(h.finalize())
    }
}

impl SkillText {
    fn embedding_input(&self) -> String {
        let mut s = join_nonempty(&[&self.name, &self.description], ": ");
        if !self.tags.is_empty() {
            s.push_str(&format!(" Tags: {}.", self.tags.join(", ")));
        }
        if !self.examples.is_empty() {
            s.push_str(&format!(" Examples: {}", self.examples.join("; ")));
        }
        s
    }
}

fn join_nonempty(parts: &[&str], sep: &str) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(sep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    fn record() -> AgentRecord {
        let mut a = AgentRecord::new("flights", "http://127.0.0.1:1");
        a.name = "Skyhop".into();
        a.description = "Books flights.".into();
        a.card = Some(json!({
            "name": "ignored because the record has one",
            "skills": [
                {"id": "book", "name": "Book a flight", "description": "Reserve a seat.",
                 "tags": ["flights", 7], "examples": ["fly me to Lisbon"]},
                {"name": "Search"},
                "not a skill",
                {"id": "empty"},
            ]
        }));
        a
    }

    #[test]
    fn reads_record_and_card() {
        let t = AgentText::from_record(&record());
        assert_eq!(
            t,
            AgentText {
                id: "flights".into(),
                name: "Skyhop".into(),
                description: "Books flights.".into(),
                skills: vec![
                    SkillText {
                        id: "book".into(),
                        name: "Book a flight".into(),
                        description: "Reserve a seat.".into(),
                        tags: vec!["flights".into()],
                        examples: vec!["fly me to Lisbon".into()],
                    },
                    SkillText {
                        id: "Search".into(),
                        name: "Search".into(),
                        ..SkillText::default()
                    },
                ],
            }
        );
        assert_eq!(
            t.embedding_inputs(),
            vec![
                "Skyhop. Books flights. Skills: Book a flight: Reserve a seat.; Search",
                "Book a flight: Reserve a seat. Tags: flights. Examples: fly me to Lisbon",
                "Search",
            ]
        );
    }

    #[test]
    fn hash_follows_the_embedded_text_only() {
        let a = record();
        let h = AgentText::from_record(&a).text_hash();
        let mut b = a.clone();
        b.url = "http://127.0.0.1:2".into();
        b.rate_limit = Some(5);
        b.version = 9;
        assert_eq!(AgentText::from_record(&b).text_hash(), h);
        b.description = "Books trains.".into();
        assert_ne!(AgentText::from_record(&b).text_hash(), h);
    }

    #[test]
    fn card_fills_in_missing_name_and_description() {
        let mut a = AgentRecord::new("x", "http://127.0.0.1:1");
        a.card = Some(json!({"name": "From card", "description": "Card text", "skills": 3}));
        let t = AgentText::from_record(&a);
        assert_eq!(
            (t.name.as_str(), t.description.as_str()),
            ("From card", "Card text")
        );
        assert!(t.skills.is_empty());
        let long = "é".repeat(MAX_FIELD_CHARS + 10);
        a.description = long;
        assert_eq!(
            AgentText::from_record(&a).description.chars().count(),
            MAX_FIELD_CHARS
        );
    }
}
