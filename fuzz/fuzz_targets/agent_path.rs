//! `parse_agent_path` on any string: it never panics, an accepted id matches
//! the documented pattern, the split loses nothing, and what is accepted
//! stays below the backend's base path once an HTTP client resolves
//! `{backend}/{rest}`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use switchboard_core::proxy::path::parse_agent_path;
use switchboard_core::registry::AGENT_ID_PATTERN;

/// Backend base URLs the accepted rest is appended to, as the gateway does.
const BACKENDS: [&str; 3] = [
    "http://10.0.0.5:9000/a2a",
    "http://10.0.0.5:9000/team/a2a/",
    "http://10.0.0.5:9000",
];

fn id_pattern() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| match regex::Regex::new(AGENT_ID_PATTERN) {
        Ok(re) => re,
        Err(e) => panic!("AGENT_ID_PATTERN does not compile: {e}"),
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    // Most inputs are tried as they are and under `/agents/`, so the fuzzer
    // need not rediscover the prefix.
    check(input);
    if !input.starts_with("/agents/") {
        check(&format!("/agents/{input}"));
    }
});

fn check(path: &str) {
    let Ok(route) = parse_agent_path(path) else {
        return;
    };
    assert!(
        id_pattern().is_match(route.agent),
        "{path:?}: id {:?} is outside {AGENT_ID_PATTERN}",
        route.agent
    );
    let rebuilt = format!("/agents/{}", route.agent);
    assert!(
        path == rebuilt || path == format!("{rebuilt}/{}", route.rest),
        "{path:?} split as {route:?}"
    );
    // Only what the gateway's HTTP server hands over can arrive: the path of
    // a request target it accepts (no query, no fragment).
    if !path.parse::<http::Uri>().is_ok_and(|u| u.path() == path) {
        return;
    }
    for backend in BACKENDS {
        let upstream = if route.rest.is_empty() {
            backend.to_owned()
        } else {
            format!("{}/{}", backend.trim_end_matches('/'), route.rest)
        };
        let (Ok(base), Ok(up)) = (url::Url::parse(backend), url::Url::parse(&upstream)) else {
            panic!("{path:?}: {upstream:?} does not parse");
        };
        let root = base.path().trim_end_matches('/');
        let below = up
            .path()
            .strip_prefix(root)
            .is_some_and(|r| r.is_empty() || r.starts_with('/'));
        assert!(
            below && up.origin() == base.origin(),
            "{path:?} reaches {up} from backend {backend}"
        );
    }
}
