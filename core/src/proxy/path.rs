//! Parsing `/agents/{id}[/{rest}]`.
//!
//! The path is judged as it arrived, still percent-encoded, and is never
//! normalised: what is accepted goes to the backend byte for byte.
//!
//! * The id must match [`crate::registry::AGENT_ID_PATTERN`] as written (no
//!   decoding, no case folding), so `%2e%2e`, `a%2Fb`, `Echo` or a Cyrillic
//!   look-alike are unknown agents, never another agent.
//! * The rest must stay below the agent's backend URL for any backend,
//!   however it decodes and normalises: see [`is_unsafe_segment`].

use percent_encoding::percent_decode;

use crate::registry::validate_agent_id;

/// How many times a segment is percent-decoded when judged: `%252e` is
/// `%2e` once decoded and `.` twice.
const DECODE_ROUNDS: usize = 3;

/// A parsed agent route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRoute<'a> {
    /// The agent id, validated against the one id pattern.
    pub agent: &'a str,
    /// What follows `/agents/{id}/`, still percent-encoded, without the
    /// leading slash; empty for the agent's root.
    pub rest: &'a str,
}

/// Why a path is not a valid agent route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// Not under `/agents/`.
    NotAgentPath,
    /// The id fails the pattern.
    BadId(String),
    /// The rest holds a segment that could climb out of the agent's base
    /// path or confuse its backend (see [`is_unsafe_segment`]).
    DotSegment,
}

/// Whether one segment of the rest is refused: a dot segment (`.` or `..`),
/// also once percent-decoded (up to three times, so double encoding is
/// caught) and also before a `;` parameter (`..;x`, which some servers
/// treat as `..`); or a segment holding, raw or decoded, a backslash, or,
/// once decoded, a `/` or a control character (`%2F`, `%5C`, `%00`,
/// `%0D%0A`…). Empty segments (`//`) are allowed: they cannot climb.
pub fn is_unsafe_segment(segment: &str) -> bool {
    let mut current: Vec<u8> = segment.as_bytes().to_vec();
    if current.contains(&b'\\') || is_dot(&current) {
        return true;
    }
    for _ in 0..DECODE_ROUNDS {
        if !current.contains(&b'%') {
            return false;
        }
        let decoded: Vec<u8> = percent_decode(&current).collect();
        if decoded == current {
            return false;
        }
        if decoded
            .iter()
            .any(|&b| b == b'/' || b == b'\\' || b < 0x20 || b == 0x7f)
            || is_dot(&decoded)
        {
            return true;
        }
        current = decoded;
    }
    // Still encoded after every round: more layers than any client uses.
    current.contains(&b'%')
}

/// `.` or `..`, alone or before a `;` parameter.
fn is_dot(segment: &[u8]) -> bool {
    let name = segment.split(|&b| b == b';').next().unwrap_or_default();
    name == b"." || name == b".."
}

/// Splits a raw (still percent-encoded) request path.
pub fn parse_agent_path(path: &str) -> Result<AgentRoute<'_>, PathError> {
    let tail = path
        .strip_prefix("/agents/")
        .ok_or(PathError::NotAgentPath)?;
    let (agent, rest) = match tail.find('/') {
        Some(i) => (&tail[..i], &tail[i + 1..]),
        None => (tail, ""),
    };
    validate_agent_id(agent).map_err(PathError::BadId)?;
    if rest.split('/').any(is_unsafe_segment) {
        return Err(PathError::DotSegment);
    }
    Ok(AgentRoute { agent, rest })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            parse_agent_path("/agents/echo"),
            Ok(AgentRoute {
                agent: "echo",
                rest: ""
            })
        );
        assert_eq!(
            parse_agent_path("/agents/echo/"),
            Ok(AgentRoute {
                agent: "echo",
                rest: ""
            })
        );
        assert_eq!(
            parse_agent_path("/agents/echo/v1/message:send"),
            Ok(AgentRoute {
                agent: "echo",
                rest: "v1/message:send"
            })
        );
        assert_eq!(
            parse_agent_path("/agents/echo//tasks/t%2D1"),
            Ok(AgentRoute {
                agent: "echo",
                rest: "/tasks/t%2D1"
            })
        );
        for bad_id in ["/agents/%2e%2e", "/agents/a%2Fb", "/agents/", "/agents//x"] {
            assert!(
                matches!(parse_agent_path(bad_id), Err(PathError::BadId(_))),
                "{bad_id}"
            );
        }
        assert_eq!(parse_agent_path("/other"), Err(PathError::NotAgentPath));
    }

    #[test]
    fn unsafe_segments() {
        for bad in [
            ".",
            "..",
            "%2e%2e",
            "%2E%2e",
            ".%2e",
            "%252e%252e",
            "%25252e%25252e",
            "..;",
            "..;jsessionid=1",
            ".;x",
            "%2e%2e%3b",
            "a%2Fb",
            "a%2fb",
            "..%2F",
            "a%5Cb",
            "a\\b",
            "a%255cb",
            "x%00",
            "x%0d%0aX-Injected:%201",
            "x%7F",
            "%2525252e",
        ] {
            assert!(is_unsafe_segment(bad), "{bad:?} passed");
            assert_eq!(
                parse_agent_path(&format!("/agents/echo/{bad}/x")),
                Err(PathError::DotSegment),
                "{bad:?}"
            );
        }
        for ok in [
            "",
            "...",
            "a.b",
            ".well-known",
            "message:send",
            "t-1:cancel",
            "100%25",
            "%41",
            "a;b",
            "é",
            "%C3%A9",
            "%",
            "%zz",
        ] {
            assert!(!is_unsafe_segment(ok), "{ok:?} refused");
        }
    }
}
