//! The in-memory index and the ranking.
//!
//! # How the two scores are fused
//!
//! Every agent gets two scores for a query, both on a 0–1 scale:
//!
//! * **vector** — cosine similarity between the query's embedding and the
//!   agent's, taken as the best of the agent's vectors: one for the whole
//!   agent and one per skill, so an agent with one skill that fits the query
//!   exactly is not drowned by its other skills. Negative similarities count
//!   as 0.
//! * **lexical** — BM25 over the agent's words, divided by the best score any
//!   agent could reach for this query (see [`super::lexical`]): the share of
//!   the query's information the agent's words contain.
//!
//! The fused score is the weighted sum
//! `VECTOR_WEIGHT × vector + (1 − VECTOR_WEIGHT) × lexical`. A sum rather than
//! reciprocal-rank fusion keeps the size of a lexical match: an exact name or
//! a rare term (a product name, "METAR", "DPIA") matches one agent strongly,
//! gets a lexical score near 1 and wins even when the embedding, which has
//! never seen the word, prefers another agent; a query that merely shares a
//! common word with an agent gets a small lexical share and leaves the order
//! to meaning. Dividing BM25 by the query's bound instead of by the best
//! score among the agents keeps a weak lexical match weak.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::document::AgentText;
use super::lexical::{self, Bm25};

/// Weight of the vector score in the fused score; the lexical score gets the rest.
pub const VECTOR_WEIGHT: f32 = 0.6;
/// A skill counts as matched by meaning when its similarity is at least this…
pub const SKILL_MIN_SIMILARITY: f32 = 0.35;
/// …and within this much of the agent's best skill.
pub const SKILL_MARGIN: f32 = 0.08;

/// How candidates are ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ranking {
    /// Embedding similarity alone.
    Vector,
    /// BM25 alone.
    Lexical,
    /// The weighted sum of both (see the module docs).
    Fused,
}

/// One agent in the index.
#[derive(Debug)]
pub struct IndexedAgent {
    /// Its text.
    pub text: AgentText,
    /// [`AgentText::text_hash`].
    pub hash: String,
    skill_terms: Vec<HashSet<String>>,
    /// Row-major vectors (whole agent, then each skill), if embedded with the index's model.
    vectors: Option<Arc<[f32]>>,
}

impl IndexedAgent {
    /// Indexes an agent's text, with its vectors when they are known.
    pub fn new(text: AgentText, hash: String, vectors: Option<Arc<[f32]>>) -> IndexedAgent {
        IndexedAgent {
            skill_terms: text.skills.iter().map(lexical::skill_terms).collect(),
            text,
            hash,
            vectors,
        }
    }

    /// Whether the agent has vectors.
    pub fn has_vectors(&self) -> bool {
        self.vectors.is_some()
    }
}

/// A skill of a result that the query matched.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SkillMatch {
    /// Skill id.
    pub id: String,
    /// Skill name.
    pub name: String,
    /// Its similarity to the query, when ranked by meaning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
}

/// One ranked agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Agent id.
    pub id: String,
    /// The score the ranking used.
    pub score: f32,
    /// Vector score, when vectors were used.
    pub vector: Option<f32>,
    /// Lexical score.
    pub lexical: f32,
    /// Skills the query matched, best first.
    pub matched_skills: Vec<SkillMatch>,
}

/// An immutable index; rebuilt and swapped whole when the registry changes.
#[derive(Debug, Default)]
pub struct Index {
    agents: Vec<IndexedAgent>,
    by_id: HashMap<String, usize>,
    bm25: Bm25,
    dims: usize,
}

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent sums let the compiler use SIMD lanes.
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

impl Index {
    /// Builds the index. `dims` is the vector length of the agents that have vectors.
    pub fn build(agents: Vec<IndexedAgent>, dims: usize) -> Index {
        let bm25 = Bm25::build(agents.iter().map(|a| lexical::weighted_terms(&a.text)));
        let by_id = agents
            .iter()
            .enumerate()
            .map(|(i, a)| (a.text.id.clone(), i))
            .collect();
        Index {
            agents,
            by_id,
            bm25,
            dims,
        }
    }

    /// Number of agents.
    pub fn len(&self) -> usize {
        self.agents.len()
    }

    /// True when no agent is indexed.
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    /// Agents without vectors.
    pub fn without_vectors(&self) -> usize {
        self.agents.iter().filter(|a| !a.has_vectors()).count()
    }

    /// One agent by id.
    pub fn get(&self, id: &str) -> Option<&IndexedAgent> {
        self.by_id.get(id).map(|&i| &self.agents[i])
    }

    /// Similarities of the query to each of an agent's vectors, lazily;
    /// `None` when the agent has none or the query's dimensions differ.
    fn similarity_rows<'a>(
        &self,
        agent: &'a IndexedAgent,
        query: &'a [f32],
    ) -> Option<impl Iterator<Item = f32> + 'a> {
        let v = agent.vectors.as_ref()?;
        if self.dims == 0 || query.len() != self.dims {
            return None;
        }
        Some(v.chunks_exact(self.dims).map(move |row| dot(row, query)))
    }

    /// Similarities of the query to each of an agent's vectors.
    fn similarities(&self, agent: &IndexedAgent, query: &[f32]) -> Option<Vec<f32>> {
        Some(self.similarity_rows(agent, query)?.collect())
    }

    /// The best `k` agents for a query among those `allowed` says yes to.
    ///
    /// `query_vector` is required for [`Ranking::Vector`] and
    /// [`Ranking::Fused`]; agents without vectors are skipped by those. With
    /// [`Ranking::Lexical`], agents with no lexical match are left out.
    /// Ties go to the smaller id, so the order is stable.
    pub fn search(
        &self,
        query: &str,
        query_vector: Option<&[f32]>,
        ranking: Ranking,
        k: usize,
        allowed: impl Fn(&str) -> bool,
    ) -> Vec<Scored> {
        let query_terms = lexical::terms(query);
        let lexical = self.bm25.scores(&query_terms);
        let uses_vectors = ranking != Ranking::Lexical;
        // First pass: one score per agent, no allocation per agent.
        let mut candidates: Vec<(f32, usize)> = Vec::new();
        for (i, agent) in self.agents.iter().enumerate() {
            if !allowed(&agent.text.id) {
                continue;
            }
            let lex = lexical.get(i).copied().unwrap_or(0.0);
            let score = if uses_vectors {
                let Some(v) = query_vector.and_then(|q| self.best_similarity(agent, q)) else {
                    continue;
                };
                match ranking {
                    Ranking::Vector => v,
                    _ => VECTOR_WEIGHT * v + (1.0 - VECTOR_WEIGHT) * lex,
                }
            } else {
                if lex <= 0.0 {
                    continue;
                }
                lex
            };
            candidates.push((score, i));
        }
        let order = |a: &(f32, usize), b: &(f32, usize)| {
            b.0.total_cmp(&a.0)
                .then_with(|| self.agents[a.1].text.id.cmp(&self.agents[b.1].text.id))
        };
        if candidates.len() > k && k > 0 {
            candidates.select_nth_unstable_by(k - 1, order);
            candidates.truncate(k);
        }
        candidates.sort_by(order);
        candidates.truncate(k);
        // Second pass, for the k results only: per-skill similarities.
        let query_set: HashSet<&String> = query_terms.iter().collect();
        candidates
            .into_iter()
            .map(|(score, i)| {
                let agent = &self.agents[i];
                let sims = if uses_vectors {
                    query_vector.and_then(|q| self.similarities(agent, q))
                } else {
                    None
                };
                let vector = sims
                    .as_ref()
                    .map(|s| s.iter().copied().fold(0.0f32, f32::max));
                Scored {
                    id: agent.text.id.clone(),
                    score,
                    vector,
                    lexical: lexical.get(i).copied().unwrap_or(0.0),
                    matched_skills: matched_skills(agent, sims.as_deref(), &query_set),
                }
            })
            .collect()
    }

    /// The best similarity of the query to any of an agent's vectors
    /// (negative counts as 0).
    fn best_similarity(&self, agent: &IndexedAgent, query: &[f32]) -> Option<f32> {
        Some(self.similarity_rows(agent, query)?.fold(0.0f32, f32::max))
    }
}

/// Skills that match by meaning (close to the agent's best skill and similar
/// enough in absolute terms) or share a word with the query.
fn matched_skills(
    agent: &IndexedAgent,
    sims: Option<&[f32]>,
    query_terms: &HashSet<&String>,
) -> Vec<SkillMatch> {
    // sims[0] is the whole agent; sims[1..] the skills.
    let skill_sims = sims.map(|s| s.get(1..).unwrap_or(&[]));
    let best = skill_sims
        .map(|s| s.iter().copied().fold(f32::MIN, f32::max))
        .unwrap_or(f32::MIN);
    let mut out: Vec<(f32, usize, SkillMatch)> = Vec::new();
    for (j, skill) in agent.text.skills.iter().enumerate() {
        let sim = skill_sims.and_then(|s| s.get(j).copied());
        let by_meaning = sim.is_some_and(|s| s >= SKILL_MIN_SIMILARITY && s >= best - SKILL_MARGIN);
        let shared = agent.skill_terms[j]
            .iter()
            .filter(|t| query_terms.contains(t))
            .count();
        if by_meaning || shared > 0 {
            let rank = sim.unwrap_or(0.0) + shared as f32;
            out.push((
                rank,
                j,
                SkillMatch {
                    id: skill.id.clone(),
                    name: skill.name.clone(),
                    similarity: sim,
                },
            ));
        }
    }
    out.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    out.into_iter().map(|(_, _, m)| m).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::document::SkillText;
    use pretty_assertions::assert_eq;

    fn agent(
        id: &str,
        name: &str,
        desc: &str,
        skills: &[&str],
        v: Option<Vec<f32>>,
    ) -> IndexedAgent {
        let text = AgentText {
            id: id.into(),
            name: name.into(),
            description: desc.into(),
            skills: skills
                .iter()
                .map(|s| SkillText {
                    id: s.to_lowercase(),
                    name: (*s).into(),
                    ..SkillText::default()
                })
                .collect(),
        };
        IndexedAgent::new(text, String::new(), v.map(Arc::from))
    }

    fn index() -> Index {
        // 2-dimensional "embeddings": x = travel, y = money.
        Index::build(
            vec![
                agent(
                    "flights",
                    "Skyhop",
                    "Books flights",
                    &["Search", "Book"],
                    Some(vec![0.9, 0.1, 1.0, 0.0, 0.8, 0.2]),
                ),
                agent(
                    "fx",
                    "FXpert",
                    "Converts currencies",
                    &["Convert"],
                    Some(vec![0.1, 0.9, 0.0, 1.0]),
                ),
                agent("pending", "Pending", "Not embedded yet", &[], None),
            ],
            2,
        )
    }

    #[test]
    fn vector_and_lexical_and_fused() {
        let ix = index();
        let travel = [1.0, 0.0];
        let ids = |v: Vec<Scored>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
        assert_eq!(
            ids(ix.search("trip", Some(&travel), Ranking::Vector, 5, |_| true)),
            vec!["flights", "fx"]
        );
        // Lexical: only agents with a matching word, and the unembedded one is searchable.
        assert_eq!(
            ids(ix.search("not embedded", None, Ranking::Lexical, 5, |_| true)),
            vec!["pending"]
        );
        // A name the vectors cannot place (equally close to both) wins
        // through the lexical share.
        let neutral = [std::f32::consts::FRAC_1_SQRT_2; 2];
        assert_eq!(
            ids(ix.search("FXpert", Some(&neutral), Ranking::Fused, 1, |_| true)),
            vec!["fx"]
        );
        // The filter is applied before ranking, so k results are all allowed ones.
        assert_eq!(
            ids(ix.search("trip", Some(&travel), Ranking::Fused, 5, |id| id
                != "flights")),
            vec!["fx"]
        );
        assert!(ix.search("x", None, Ranking::Fused, 5, |_| true).is_empty());
    }

    #[test]
    fn matched_skills_by_meaning_and_by_word() {
        let ix = index();
        let r = ix.search("book", Some(&[1.0, 0.0]), Ranking::Fused, 1, |_| true);
        let names: Vec<(&str, Option<f32>)> = r[0]
            .matched_skills
            .iter()
            .map(|m| (m.name.as_str(), m.similarity))
            .collect();
        // "Book" shares the word; "Search" is the closest by meaning.
        assert_eq!(names, vec![("Book", Some(0.8)), ("Search", Some(1.0))]);
    }

    #[test]
    fn dot_matches_naive() {
        let a: Vec<f32> = (0..387).map(|i| (i as f32).sin()).collect();
        let b: Vec<f32> = (0..387).map(|i| (i as f32).cos()).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
    }
}
