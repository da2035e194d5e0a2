//! Parsing `/agents/{id}[/{rest}]`.

use crate::registry::validate_agent_id;

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
    /// The rest holds a `.` or `..` segment, raw or percent-encoded.
    DotSegment,
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
    for seg in rest.split('/') {
        let decoded = seg.to_ascii_lowercase().replace("%2e", ".");
        if decoded == "." || decoded == ".." {
            return Err(PathError::DotSegment);
        }
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
        assert!(matches!(
            parse_agent_path("/agents/%2e%2e"),
            Err(PathError::BadId(_))
        ));
        assert!(matches!(
            parse_agent_path("/agents/a%2Fb"),
            Err(PathError::BadId(_))
        ));
        assert!(matches!(
            parse_agent_path("/agents/"),
            Err(PathError::BadId(_))
        ));
        assert_eq!(
            parse_agent_path("/agents/echo/../x"),
            Err(PathError::DotSegment)
        );
        assert_eq!(
            parse_agent_path("/agents/echo/%2E%2e/x"),
            Err(PathError::DotSegment)
        );
        assert_eq!(parse_agent_path("/other"), Err(PathError::NotAgentPath));
    }
}
