//! Lexical ranking: a small in-memory BM25 over the agents' text.
//!
//! Text is split on anything that is not a letter or digit, lower-cased,
//! stripped of English stop words and stemmed (Snowball English), so "books",
//! "booking" and "booked" meet. Fields count with weights, as if repeated:
//! name and id ×3, skill names and tags ×2, descriptions and examples ×1
//! (BM25F in its simplest form). Scores are Okapi BM25 (k1 = 1.2, b = 0.75,
//! idf = ln(1 + (N − df + 0.5) / (df + 0.5))), then divided by the best score
//! any document could reach for the query — the sum over its known terms of
//! idf × (k1 + 1) — so a lexical score is a number in [0, 1) that says how
//! much of the query's information an agent matches, comparable across
//! queries and mixable with a cosine similarity.
//!
//! Kept in memory and built from the registry rather than from SQLite FTS5,
//! so the ranking is the same on every store backend (DynamoDB has no
//! full-text search).

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use rust_stemmers::{Algorithm, Stemmer};

use super::document::AgentText;

const K1: f32 = 1.2;
const B: f32 = 0.75;

/// Field weights, as term-frequency multipliers.
const W_NAME: f32 = 3.0;
const W_ID: f32 = 3.0;
const W_SKILL_NAME: f32 = 2.0;
const W_TAG: f32 = 2.0;
const W_TEXT: f32 = 1.0;

const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "been",
    "but",
    "by",
    "can",
    "could",
    "do",
    "does",
    "for",
    "from",
    "get",
    "had",
    "has",
    "have",
    "he",
    "her",
    "him",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "just",
    "let",
    "like",
    "me",
    "my",
    "need",
    "of",
    "on",
    "or",
    "our",
    "please",
    "she",
    "should",
    "so",
    "some",
    "someone",
    "something",
    "that",
    "the",
    "their",
    "them",
    "then",
    "there",
    "these",
    "they",
    "this",
    "to",
    "up",
    "us",
    "want",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "who",
    "will",
    "with",
    "would",
    "you",
    "your",
];

fn stemmer() -> &'static Stemmer {
    static STEMMER: OnceLock<Stemmer> = OnceLock::new();
    STEMMER.get_or_init(|| Stemmer::create(Algorithm::English))
}

fn stop_words() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| STOP_WORDS.iter().copied().collect())
}

/// The index terms of a text, in order (with repeats).
pub fn terms(text: &str) -> Vec<String> {
    let stop = stop_words();
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !stop.contains(w.as_str()))
        .filter(|w| w.chars().count() > 1 || w.chars().all(|c| c.is_ascii_digit()))
        .map(|w| stemmer().stem(&w).into_owned())
        .collect()
}

/// An agent's terms with their field weights.
pub fn weighted_terms(doc: &AgentText) -> Vec<(String, f32)> {
    let mut out = Vec::new();
    let mut add = |text: &str, w: f32| out.extend(terms(text).into_iter().map(|t| (t, w)));
    add(&doc.name, W_NAME);
    add(&doc.id, W_ID);
    add(&doc.description, W_TEXT);
    for s in &doc.skills {
        add(&s.name, W_SKILL_NAME);
        add(&s.description, W_TEXT);
        for t in &s.tags {
            add(t, W_TAG);
        }
        for e in &s.examples {
            add(e, W_TEXT);
        }
    }
    out
}

/// The set of terms of one skill, to tell which skills a query touched.
pub fn skill_terms(skill: &super::document::SkillText) -> HashSet<String> {
    let mut set = HashSet::new();
    for text in [&skill.name, &skill.description]
        .into_iter()
        .chain(skill.tags.iter())
        .chain(skill.examples.iter())
    {
        set.extend(terms(text));
    }
    set
}

/// An inverted index with BM25 scoring.
#[derive(Debug, Default)]
pub struct Bm25 {
    postings: HashMap<String, Vec<(u32, f32)>>,
    doc_len: Vec<f32>,
    avg_len: f32,
}

impl Bm25 {
    /// Indexes documents given as weighted terms; document `i` is the `i`-th item.
    pub fn build(docs: impl IntoIterator<Item = Vec<(String, f32)>>) -> Bm25 {
        let mut postings: HashMap<String, Vec<(u32, f32)>> = HashMap::new();
        let mut doc_len = Vec::new();
        for (i, terms) in docs.into_iter().enumerate() {
            let mut tf: HashMap<String, f32> = HashMap::new();
            let mut len = 0.0;
            for (t, w) in terms {
                len += w;
                *tf.entry(t).or_default() += w;
            }
            for (t, f) in tf {
                postings.entry(t).or_default().push((i as u32, f));
            }
            doc_len.push(len);
        }
        let avg_len = if doc_len.is_empty() {
            1.0
        } else {
            (doc_len.iter().sum::<f32>() / doc_len.len() as f32).max(1.0)
        };
        Bm25 {
            postings,
            doc_len,
            avg_len,
        }
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.doc_len.len()
    }

    /// True when no document is indexed.
    pub fn is_empty(&self) -> bool {
        self.doc_len.is_empty()
    }

    fn idf(&self, df: usize) -> f32 {
        let n = self.doc_len.len() as f32;
        let df = df as f32;
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    /// Normalized BM25 score of every document for `query` terms, in [0, 1).
    /// Repeated query terms count once; terms no document has are ignored.
    pub fn scores(&self, query: &[String]) -> Vec<f32> {
        let mut out = vec![0.0; self.doc_len.len()];
        let unique: HashSet<&String> = query.iter().collect();
        let mut bound = 0.0;
        for term in unique {
            let Some(list) = self.postings.get(term) else {
                continue;
            };
            let idf = self.idf(list.len());
            bound += idf * (K1 + 1.0);
            for &(doc, tf) in list {
                let norm = K1 * (1.0 - B + B * self.doc_len[doc as usize] / self.avg_len);
                out[doc as usize] += idf * tf * (K1 + 1.0) / (tf + norm);
            }
        }
        if bound > 0.0 {
            for s in &mut out {
                *s /= bound;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn terms_are_stemmed_and_stopped() {
        assert_eq!(
            terms("Book me a FLIGHT to Lisbon: booking flights, PM2.5 & 401(k)"),
            vec!["book", "flight", "lisbon", "book", "flight", "pm2", "5", "401"]
        );
        assert_eq!(terms("  ¿?  "), Vec::<String>::new());
    }

    #[test]
    fn rare_terms_and_names_weigh_more() {
        let docs = [
            vec![("flight".to_owned(), 1.0), ("book".to_owned(), 1.0)],
            vec![("hotel".to_owned(), 1.0), ("book".to_owned(), 1.0)],
            vec![("car".to_owned(), 1.0), ("book".to_owned(), 1.0)],
            vec![("skyhop".to_owned(), 3.0), ("flight".to_owned(), 1.0)],
        ];
        let bm = Bm25::build(docs);
        let s = bm.scores(&terms("book a flight"));
        assert!(s[0] > s[3] && s[3] > s[1] && s[1] == s[2], "{s:?}");
        let s = bm.scores(&terms("skyhop"));
        assert!(s[3] > 0.5 && s[3] < 1.0 && s[0] == 0.0, "{s:?}");
        assert_eq!(bm.scores(&terms("zebra")), vec![0.0; 4]);
        assert!(Bm25::build(Vec::<Vec<(String, f32)>>::new())
            .scores(&terms("x"))
            .is_empty());
    }
}
