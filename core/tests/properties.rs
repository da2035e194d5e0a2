//! Property tests for the gateway's parsers and arithmetic: the agent route
//! parser, the agent-card rewriter and the rate-limit windows.
//!
//! Counterexamples proptest has found are kept below as plain cases (the
//! `*_cases` tests), so they run on every build whatever the random seed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use pretty_assertions::assert_eq;
use proptest::prelude::*;
use proptest::string::string_regex;
use proptest::test_runner::Config;
use serde_json::{json, Map, Value};
use switchboard_core::proxy::card::{rewrite_card, rewrite_url, CardContext, SCHEME_NAME};
use switchboard_core::proxy::path::{parse_agent_path, AgentRoute, PathError};
use switchboard_core::ratelimit::{
    expiry_of, reset_in, window_of, Budget, RateLimiter, WINDOW_SECS,
};
use switchboard_core::registry::AGENT_ID_PATTERN;
use switchboard_core::store::sqlite::SqliteStore;
use switchboard_core::GatewayError;

fn config(cases: u32) -> Config {
    Config {
        cases,
        // Found counterexamples are written out below as `*_cases` tests.
        failure_persistence: None,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------
// Agent routes: `/agents/{id}[/{rest}]`.
// ---------------------------------------------------------------------------

/// The documented id pattern, compiled: the oracle every id is judged by.
fn id_pattern() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(AGENT_ID_PATTERN).unwrap())
}

/// Ids drawn from the documented pattern itself (without its anchors,
/// which string generation does not take).
fn valid_id() -> impl Strategy<Value = String> {
    let unanchored = AGENT_ID_PATTERN
        .strip_prefix('^')
        .and_then(|p| p.strip_suffix('$'))
        .expect("the id pattern is anchored at both ends");
    string_regex(unanchored).unwrap()
}

/// Strings that look like ids but may break the pattern in every way:
/// uppercase, dots, percent escapes, separators, non-ASCII, too long.
fn id_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => "[a-z0-9_-]{1,8}",
        1 => "[A-Z]{1,2}",
        1 => Just(".".to_owned()),
        1 => Just("..".to_owned()),
        1 => "%(2[eEfF]|5[cC]|00|25)",
        1 => Just("\\".to_owned()),
        1 => Just(" ".to_owned()),
        1 => "[é\u{0130}\u{212A}ſ]",
        1 => "[a-z]{60,70}",
    ];
    prop::collection::vec(piece, 1..6).prop_map(|p| p.concat())
}

/// A path segment any backend reads as a plain name: no percent escapes,
/// no `;` parameters, not a dot segment.
fn plain_segment() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._~:@!$&'()*+,=-]{0,12}".prop_filter("dot segment", |s| !is_dot_segment(s))
}

/// `.` or `..`, with any of the dots percent-encoded in either case.
fn is_dot_segment(seg: &str) -> bool {
    let decoded = seg.to_ascii_lowercase().replace("%2e", ".");
    decoded == "." || decoded == ".."
}

/// Checks what an accepted route must satisfy, whatever the input.
fn check_route(path: &str, route: &AgentRoute<'_>) {
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
    assert!(
        !route.rest.split('/').any(is_dot_segment),
        "{path:?}: rest {:?} keeps a dot segment",
        route.rest
    );
    // What can arrive (the path of a request target the HTTP server accepts)
    // stays below the backend base path once the HTTP client resolves it.
    if is_request_path(path) {
        for backend in BACKENDS {
            let base = url::Url::parse(backend).unwrap();
            let root = base.path().trim_end_matches('/');
            let upstream = upstream_path(backend, route.rest)
                .unwrap_or_else(|| panic!("{path:?}: upstream URL does not parse"));
            assert!(
                upstream
                    .strip_prefix(root)
                    .is_some_and(|r| r.is_empty() || r.starts_with('/')),
                "{path:?} reaches {upstream:?} from backend {backend}"
            );
        }
    }
}

/// Whether the HTTP server can hand `path` over as a request's path: a
/// request target it accepts, with no query or fragment.
fn is_request_path(path: &str) -> bool {
    path.parse::<http::Uri>().is_ok_and(|u| u.path() == path)
}

/// Backend base URLs the rest of a route is appended to.
const BACKENDS: [&str; 3] = [
    "http://10.0.0.5:9000/a2a",
    "http://10.0.0.5:9000/team/a2a/",
    "http://10.0.0.5:9000",
];

/// Where the gateway sends an accepted route: `{backend}/{rest}`, parsed
/// the way the HTTP client parses it.
fn upstream_path(backend: &str, rest: &str) -> Option<String> {
    let url = if rest.is_empty() {
        backend.to_owned()
    } else {
        format!("{}/{rest}", backend.trim_end_matches('/'))
    };
    url::Url::parse(&url).ok().map(|u| u.path().to_owned())
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn valid_routes_round_trip(
        id in valid_id(),
        segments in prop::collection::vec(plain_segment(), 0..5),
        trailing_slash in any::<bool>(),
    ) {
        let rest = segments.join("/");
        let path = match (rest.is_empty(), trailing_slash) {
            (true, false) => format!("/agents/{id}"),
            (true, true) => format!("/agents/{id}/"),
            (false, _) => format!("/agents/{id}/{rest}"),
        };
        prop_assert_eq!(
            parse_agent_path(&path),
            Ok(AgentRoute { agent: &id, rest: &rest })
        );
    }

    #[test]
    fn ids_are_judged_by_the_pattern(
        id in prop_oneof![valid_id(), id_like(), ".*"],
        rest in prop::option::of("[a-z0-9/._%-]{0,20}"),
    ) {
        let path = match &rest {
            Some(r) => format!("/agents/{id}/{r}"),
            None => format!("/agents/{id}"),
        };
        let first = path["/agents/".len()..].split('/').next().unwrap();
        match parse_agent_path(&path) {
            Ok(route) => {
                prop_assert_eq!(route.agent, first);
                check_route(&path, &route);
            }
            Err(PathError::DotSegment) => prop_assert!(id_pattern().is_match(first)),
            Err(PathError::BadId(_)) => prop_assert!(!id_pattern().is_match(first), "{path:?}"),
            Err(PathError::NotAgentPath) => prop_assert!(false, "{path:?} is under /agents/"),
        }
    }

    #[test]
    fn dots_and_encoded_separators_never_make_an_id(
        pieces in prop::collection::vec(
            prop_oneof![
                Just("."), Just(".."), Just("%2e"), Just("%2E"), Just("%2f"), Just("%2F"),
                Just("%5c"), Just("\\"), Just("%252e"), Just("a"), Just("0"), Just("-"),
            ],
            1..8,
        ),
    ) {
        let id = pieces.concat();
        let path = format!("/agents/{id}/x");
        let unsafe_char = id.contains(['.', '%', '\\', '/']);
        match parse_agent_path(&path) {
            Ok(route) => {
                prop_assert!(!unsafe_char, "{path:?} gave id {:?}", route.agent);
                check_route(&path, &route);
            }
            Err(e) => prop_assert!(
                unsafe_char || !id_pattern().is_match(&id),
                "{path:?} refused: {e:?}"
            ),
        }
    }

    #[test]
    fn any_path_parses_without_panicking(
        path in prop_oneof![
            ".*",
            "/agents/.*",
            "/agents/[a-z0-9]{1,4}/(\\.|%2[eE]|%2[fF]|\\\\|/|[a-z]){0,16}",
        ],
    ) {
        match parse_agent_path(&path) {
            Ok(route) => check_route(&path, &route),
            Err(PathError::NotAgentPath) => prop_assert!(!path.starts_with("/agents/")),
            Err(_) => prop_assert!(path.starts_with("/agents/")),
        }
    }

    /// An accepted route must stay below the backend's base path once the
    /// HTTP client has parsed `{backend}/{rest}`: only request targets that
    /// the gateway's HTTP server accepts are tried.
    #[test]
    fn accepted_routes_stay_below_the_backend(
        rest in "(\\.|%2[eE]|%2[fF]|%5[cC]|\\\\|/|[a-z]){0,16}",
    ) {
        let target = format!("/agents/echo/{rest}");
        prop_assume!(is_request_path(&target));
        if let Ok(route) = parse_agent_path(&target) {
            check_route(&target, &route);
        }
    }
}

#[test]
fn route_cases() {
    for (path, agent_ok) in [
        ("/agents/%2e%2e", false),
        ("/agents/..", false),
        ("/agents/a%2Fb", false),
        ("/agents/a%5cb", false),
        ("/agents/a\\b", false),
        ("/agents/Echo", false),
        ("/agents/-echo", false),
        ("/agents/_echo", false),
        ("/agents/\u{212A}", false),
        ("/agents/", false),
        ("/agents//x", false),
        (
            "/agents/a0123456789012345678901234567890123456789012345678901234567890123",
            false,
        ),
        (
            "/agents/012345678901234567890123456789012345678901234567890123456789012",
            true,
        ),
        ("/agents/0", true),
        ("/agents/echo_2-b", true),
    ] {
        let first = path["/agents/".len()..].split('/').next().unwrap();
        assert_eq!(
            id_pattern().is_match(first),
            agent_ok,
            "the pattern on {path:?}"
        );
        match parse_agent_path(path) {
            Ok(route) => {
                assert!(agent_ok, "{path:?} accepted as {route:?}");
                check_route(path, &route);
            }
            Err(e) => assert!(!agent_ok, "{path:?} refused: {e:?}"),
        }
    }
}

#[test]
fn upstream_cases() {
    // Request targets the HTTP server accepts whose `{backend}/{rest}` the
    // HTTP client resolves: each must stay below the backend base path.
    for target in [
        "/agents/echo/../x",
        "/agents/echo/%2e%2e/x",
        "/agents/echo/.%2E/x",
        "/agents/echo/a/../../x",
        "/agents/echo/..\\x",
        "/agents/echo/a/..\\..\\x",
        "/agents/echo/%2e%2e%5cx",
        "/agents/echo/..;/x",
    ] {
        assert!(is_request_path(target), "{target:?}");
        if let Ok(route) = parse_agent_path(target) {
            check_route(target, &route);
        }
    }
}

// ---------------------------------------------------------------------------
// Agent cards.
// ---------------------------------------------------------------------------

/// Keys the rewriter is documented to touch; everything else must survive.
const REWRITTEN_KEYS: [&str; 7] = [
    "url",
    "supportedInterfaces",
    "additionalInterfaces",
    "signatures",
    "securitySchemes",
    "securityRequirements",
    "security",
];

#[derive(Debug, Clone)]
struct Ctx {
    backend_url: String,
    gateway_url: String,
    token_url: String,
    scopes: Vec<String>,
}

impl Ctx {
    fn card_context(&self) -> CardContext<'_> {
        CardContext {
            backend_url: &self.backend_url,
            gateway_url: &self.gateway_url,
            token_url: &self.token_url,
            scopes: &self.scopes,
        }
    }
}

fn ctx() -> impl Strategy<Value = Ctx> {
    (
        prop_oneof![
            Just("http://10.0.0.5:9000/a2a"),
            Just("http://10.0.0.5:9000/a2a/"),
            Just("http://127.0.0.1:8080"),
            Just("https://agents.internal/team/x/"),
        ],
        prop_oneof![
            Just("https://gw.example"),
            Just("http://127.0.0.1:4000"),
            Just("https://gw.example/prefix"),
        ],
        valid_id(),
        prop::collection::vec("[a-z]{1,6}(/[a-z*]{1,6})?", 0..3),
    )
        .prop_map(|(backend, public, id, scopes)| Ctx {
            backend_url: backend.to_owned(),
            gateway_url: format!("{public}/agents/{id}"),
            token_url: "https://issuer.example/oauth2/token".to_owned(),
            scopes,
        })
}

/// Path-ish suffixes: plain segments, dot segments raw and encoded,
/// backslashes, empty segments, a query, a fragment.
fn suffix() -> impl Strategy<Value = String> {
    let seg = prop_oneof![
        4 => "[a-zA-Z0-9:_~-]{1,8}",
        1 => Just(".".to_owned()),
        1 => Just("..".to_owned()),
        1 => "%2[eE]%2[eE]",
        1 => "\\.\\.\\\\",
        1 => Just(String::new()),
    ];
    (
        prop::collection::vec(seg, 0..5),
        prop::option::of("[a-z=&]{0,8}"),
        prop::option::of("[a-z]{0,4}"),
        any::<bool>(),
    )
        .prop_map(|(segs, query, fragment, trailing)| {
            let mut s: String = segs.iter().map(|g| format!("/{g}")).collect();
            if trailing {
                s.push('/');
            }
            if let Some(q) = query {
                s.push('?');
                s.push_str(&q);
            }
            if let Some(f) = fragment {
                s.push('#');
                s.push_str(&f);
            }
            s
        })
}

/// URLs a card may carry: under its backend, on another origin, in other
/// schemes, relative, or not URLs at all.
fn card_url(backend: String) -> impl Strategy<Value = String> {
    let base = backend.trim_end_matches('/').to_owned();
    prop_oneof![
        4 => suffix().prop_map(move |s| format!("{base}{s}")),
        2 => ("(http|https)://[a-z]{1,6}(:[0-9]{1,4})?", suffix()).prop_map(|(o, s)| format!("{o}{s}")),
        1 => ("[a-z][a-z0-9+.-]{0,6}:(//[a-z]{1,4})?", suffix()).prop_map(|(o, s)| format!("{o}{s}")),
        1 => suffix(),
        1 => ".{0,24}",
    ]
}

/// Any JSON value, with the keys the rewriter looks at over-represented.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        "https?://[a-z.]{1,8}(/[a-z.%2]{0,6}){0,3}".prop_map(Value::from),
    ];
    let key = prop_oneof![
        2 => prop::sample::select(REWRITTEN_KEYS.to_vec()).prop_map(str::to_owned),
        1 => Just("name".to_owned()),
        2 => ".{0,8}",
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An interface entry: usually an object with a string `url`, sometimes
/// something stranger.
fn interface(backend: String, binding_key: &'static str) -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => (card_url(backend), "[A-Z+]{3,9}").prop_map(move |(url, binding)| {
            json!({ "url": url, binding_key: binding, "protocolVersion": "1.0" })
        }),
        1 => any_json().prop_map(|v| json!({ "url": v, binding_key: "JSONRPC" })),
        1 => any_json(),
    ]
}

/// A card shaped like a 1.0 card, a 0.3 card, or both, with extra fields.
fn card_shaped(backend: String) -> impl Strategy<Value = Value> {
    (
        prop::option::of(prop::collection::vec(
            interface(backend.clone(), "protocolBinding"),
            0..4,
        )),
        prop::option::of(prop_oneof![
            4 => card_url(backend.clone()).prop_map(Value::from),
            1 => any_json(),
        ]),
        prop::option::of(prop::collection::vec(interface(backend, "transport"), 0..4)),
        prop::option::of(any_json()),
        prop::option::of(any_json()),
        prop::collection::btree_map("[a-zA-Z]{1,10}", any_json(), 0..4),
    )
        .prop_map(|(v1, url, additional, signatures, security, extra)| {
            let mut card: Map<String, Value> = extra.into_iter().collect();
            card.insert("name".into(), json!("Agent"));
            if let Some(list) = v1 {
                card.insert("supportedInterfaces".into(), Value::Array(list));
            }
            if let Some(url) = url {
                card.insert("url".into(), url);
            }
            if let Some(list) = additional {
                card.insert("additionalInterfaces".into(), Value::Array(list));
            }
            if let Some(s) = signatures {
                card.insert("signatures".into(), s);
            }
            if let Some(s) = security {
                card.insert("security".into(), s.clone());
                card.insert("securitySchemes".into(), json!({ "backend": s.clone() }));
                card.insert("securityRequirements".into(), json!([{ "backend": s }]));
            }
            Value::Object(card)
        })
}

/// A rewritten URL is the agent's gateway URL, or a path or query below it,
/// both as a string and once resolved as a client resolves it.
fn assert_points_at_gateway(out: &str, gateway: &str) {
    let rest = out
        .strip_prefix(gateway)
        .unwrap_or_else(|| panic!("{out:?} does not start with {gateway:?}"));
    assert!(
        rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'),
        "{out:?} is not below {gateway:?}"
    );
    let out_url = url::Url::parse(out).unwrap_or_else(|e| panic!("{out:?}: {e}"));
    let gw_url = url::Url::parse(gateway).unwrap();
    assert_eq!(out_url.origin(), gw_url.origin(), "{out:?}");
    assert_eq!(out_url.fragment(), None, "{out:?}");
    let root = gw_url.path();
    let below = out_url
        .path()
        .strip_prefix(root)
        .is_some_and(|r| r.is_empty() || r.starts_with('/'));
    assert!(
        below,
        "{out:?} resolves to {} outside {root}",
        out_url.path()
    );
}

/// The scheme and requirements the rewriter documents, for one card.
fn expected_security(c: &Ctx, is_v1: bool, is_v03: bool) -> (Value, Option<Value>, Option<Value>) {
    let scopes: Map<String, Value> = c
        .scopes
        .iter()
        .map(|s| {
            (
                s.clone(),
                json!(format!("grants access through the gateway ({s})")),
            )
        })
        .collect();
    let flows = json!({ "clientCredentials": { "tokenUrl": c.token_url, "scopes": scopes } });
    let description = "OAuth2 client credentials from the Switchboard gateway's issuer";
    let alternatives: Vec<Vec<String>> = if c.scopes.is_empty() {
        vec![vec![]]
    } else {
        c.scopes.iter().map(|s| vec![s.clone()]).collect()
    };
    let mut scheme = Map::new();
    let mut requirements = None;
    let mut security = None;
    if is_v1 {
        scheme.insert(
            "oauth2SecurityScheme".into(),
            json!({ "description": description, "flows": flows }),
        );
        requirements = Some(Value::Array(
            alternatives
                .iter()
                .map(|s| json!({ "schemes": { SCHEME_NAME: { "list": s } } }))
                .collect(),
        ));
    }
    if is_v03 || !is_v1 {
        scheme.insert("type".into(), json!("oauth2"));
        scheme.insert("description".into(), json!(description));
        scheme.insert("flows".into(), flows);
        security = Some(Value::Array(
            alternatives
                .iter()
                .map(|s| json!({ SCHEME_NAME: s }))
                .collect(),
        ));
    }
    (
        json!({ SCHEME_NAME: Value::Object(scheme) }),
        requirements,
        security,
    )
}

/// Checks an interface list: same entries, only string `url`s changed, each
/// to a URL below the gateway.
fn check_interfaces(input: &Value, output: &Value, c: &Ctx) {
    let (Value::Array(ins), Value::Array(outs)) = (input, output) else {
        assert_eq!(
            output, input,
            "a non-array interface list must be left alone"
        );
        return;
    };
    assert_eq!(outs.len(), ins.len());
    for (i, o) in ins.iter().zip(outs) {
        match (i.get("url"), o.get("url")) {
            (Some(Value::String(_)), Some(Value::String(ou))) if i.is_object() => {
                assert_points_at_gateway(ou, &c.gateway_url);
                let mut i = i.clone();
                i["url"] = json!(ou);
                assert_eq!(o, &i, "only the url of an interface changes");
            }
            _ => assert_eq!(o, i),
        }
    }
}

/// The whole contract of `rewrite_card` on one input.
fn check_card(input: &Value, output: &Value, c: &Ctx) {
    let Some(inp) = input.as_object() else {
        assert_eq!(output, input, "a card that is not an object is left alone");
        return;
    };
    let out = output.as_object().expect("an object card stays an object");
    let is_v1 = inp.contains_key("supportedInterfaces");
    let is_v03 = inp.contains_key("url") || inp.contains_key("additionalInterfaces");
    let (schemes, requirements, security) = expected_security(c, is_v1, is_v03);

    // The set of keys: signatures dropped, the gateway's security added.
    let mut want_keys: BTreeSet<&str> = inp.keys().map(String::as_str).collect();
    want_keys.remove("signatures");
    want_keys.insert("securitySchemes");
    if requirements.is_some() {
        want_keys.insert("securityRequirements");
    }
    if security.is_some() {
        want_keys.insert("security");
    } else {
        want_keys.remove("security");
    }
    let got_keys: BTreeSet<&str> = out.keys().map(String::as_str).collect();
    assert_eq!(got_keys, want_keys);

    assert_eq!(out["securitySchemes"], schemes);
    match requirements {
        Some(r) => assert_eq!(out["securityRequirements"], r),
        None => assert_eq!(
            out.get("securityRequirements"),
            inp.get("securityRequirements")
        ),
    }
    if let Some(s) = security {
        assert_eq!(out["security"], s);
    }
    for list in ["supportedInterfaces", "additionalInterfaces"] {
        if let (Some(i), Some(o)) = (inp.get(list), out.get(list)) {
            check_interfaces(i, o, c);
        }
    }
    match (inp.get("url"), out.get("url")) {
        (Some(Value::String(_)), Some(Value::String(o))) => {
            assert_points_at_gateway(o, &c.gateway_url)
        }
        (i, o) => assert_eq!(o, i),
    }
    // Everything else is exactly as it was.
    for (k, v) in inp {
        if !REWRITTEN_KEYS.contains(&k.as_str()) {
            assert_eq!(out.get(k), Some(v), "{k} changed");
        }
    }
}

fn card_and_ctx() -> impl Strategy<Value = (Value, Ctx)> {
    ctx().prop_flat_map(|c| {
        let backend = c.backend_url.clone();
        (card_shaped(backend), Just(c))
    })
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn any_json_keeps_the_card_contract(card in any_json(), c in ctx()) {
        let out = rewrite_card(card.clone(), &c.card_context());
        check_card(&card, &out, &c);
    }

    #[test]
    fn card_shaped_json_keeps_the_card_contract((card, c) in card_and_ctx()) {
        let out = rewrite_card(card.clone(), &c.card_context());
        check_card(&card, &out, &c);
    }

    #[test]
    fn every_url_points_at_the_gateway(
        (url, c) in ctx().prop_flat_map(|c| (card_url(c.backend_url.clone()), Just(c))),
    ) {
        assert_points_at_gateway(&rewrite_url(&url, &c.card_context()), &c.gateway_url);
    }

    /// A URL below the backend keeps its suffix, so REST and JSON-RPC
    /// endpoints stay apart.
    #[test]
    fn suffixes_below_the_backend_are_kept(
        c in ctx(),
        segments in prop::collection::vec("[a-zA-Z0-9:_~-]{1,8}", 0..4),
        query in prop::option::of("[a-z]{1,4}=[a-z0-9]{0,4}"),
    ) {
        let suffix: String = segments.iter().map(|s| format!("/{s}")).collect();
        let query = query.map(|q| format!("?{q}")).unwrap_or_default();
        let url = format!("{}{suffix}{query}", c.backend_url.trim_end_matches('/'));
        prop_assert_eq!(
            rewrite_url(&url, &c.card_context()),
            format!("{}{suffix}{query}", c.gateway_url)
        );
    }
}

#[test]
fn card_url_cases() {
    let c = Ctx {
        backend_url: "http://10.0.0.5:9000/a2a".into(),
        gateway_url: "https://gw.example/agents/echo".into(),
        token_url: "https://issuer.example/oauth2/token".into(),
        scopes: vec![],
    };
    for url in [
        "http://10.0.0.5:9000/a2a/../../x",
        "http://10.0.0.5:9000/a2a/%2e%2e/%2E%2E/x",
        "http://10.0.0.5:9000/a2a/\\..\\..\\x",
        "http://10.0.0.5:9000/a2a/?a/",
        "a:/\\..\\..\\x",
        "a:b",
        "mailto:x@example.com",
        "data:text/plain,hi",
        "/relative/../../x",
        "",
    ] {
        assert_points_at_gateway(&rewrite_url(url, &c.card_context()), &c.gateway_url);
    }
}

// ---------------------------------------------------------------------------
// Rate-limit windows.
// ---------------------------------------------------------------------------

/// Timestamps: anywhere, near zero, near the end of `u64`, and at window
/// edges.
fn timestamp() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        0..1_000u64,
        (u64::MAX - 1_000)..=u64::MAX,
        (0..u64::MAX / WINDOW_SECS, 0..3u64)
            .prop_map(|(w, d)| (w * WINDOW_SECS).saturating_sub(1) + d),
    ]
}

proptest! {
    #![proptest_config(config(4096))]

    #[test]
    fn windows_cover_each_second_once(now in timestamp()) {
        let w = window_of(now);
        let start = u128::from(w) * u128::from(WINDOW_SECS);
        let end = start + u128::from(WINDOW_SECS);
        prop_assert!(start <= u128::from(now) && u128::from(now) < end);

        let reset = reset_in(now);
        prop_assert!((1..=60).contains(&reset), "reset_in({now}) = {reset}");
        // Reset (and Retry-After) is exactly the time to the next window.
        prop_assert_eq!(u128::from(now) + u128::from(reset), end);

        // Contiguous: the next second is in this window or the next one,
        // and it is the next one exactly when reset is one second away.
        if let Some(next) = now.checked_add(1) {
            let step = window_of(next) - w;
            prop_assert_eq!(step, u64::from(reset == 1));
        }
        // No second before the window's start is in it.
        if let Some(before) = u64::try_from(start).ok().and_then(|s| s.checked_sub(1)) {
            prop_assert_eq!(window_of(before), w - 1);
        }
        // A counter outlives its window by a full window, or until the end
        // of time, never wrapping round to the past.
        let expiry = expiry_of(w);
        prop_assert_eq!(
            u128::from(expiry),
            (end + u128::from(WINDOW_SECS)).min(u128::from(u64::MAX))
        );
        prop_assert!(u128::from(expiry) > u128::from(now) || now == u64::MAX);
    }

    #[test]
    fn windows_are_ordered_and_disjoint(a in timestamp(), b in timestamp()) {
        let (lo, hi) = (a.min(b), a.max(b));
        prop_assert!(window_of(lo) <= window_of(hi));
        let same = window_of(lo) == window_of(hi);
        prop_assert_eq!(same, hi - lo < reset_in(lo));
        if same {
            prop_assert_eq!(reset_in(lo) - reset_in(hi), hi - lo);
        }
    }

    #[test]
    fn window_edges(w in 0..=u64::MAX / WINDOW_SECS) {
        let start = w * WINDOW_SECS;
        prop_assert_eq!(window_of(start), w);
        prop_assert_eq!(reset_in(start), WINDOW_SECS);
        let last = start.saturating_add(WINDOW_SECS - 1);
        prop_assert_eq!(window_of(last), w);
        prop_assert_eq!(reset_in(last), WINDOW_SECS - (last - start));
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Runtime::new().unwrap())
}

/// One limiter over a real SQLite file for every case; each case uses its
/// own client id.
fn limiter() -> &'static RateLimiter {
    static LIMITER: OnceLock<(tempfile::TempDir, RateLimiter)> = OnceLock::new();
    &LIMITER
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(&dir.path().join("counters.db")).unwrap();
            (dir, RateLimiter::new(Arc::new(store)))
        })
        .1
}

proptest! {
    #![proptest_config(config(128))]

    /// Against a real counter store: exactly `limit` requests pass in a
    /// window, the next one is told to retry when the window resets (1 to 60
    /// seconds), and the next window starts afresh.
    #[test]
    fn admit_counts_per_window(now in timestamp(), limit in 0..5u64) {
        static CASE: AtomicU64 = AtomicU64::new(0);
        let client = format!("c{}", CASE.fetch_add(1, Ordering::Relaxed));
        let limiter = limiter();
        runtime().block_on(async {
            let reset = reset_in(now);
            for n in 1..=limit {
                let budget = limiter.admit(&client, "echo", limit, now).await.unwrap();
                assert_eq!(budget, Budget { limit, remaining: limit - n, reset });
            }
            match limiter.admit(&client, "echo", limit, now).await {
                Err(GatewayError::RateLimited { limit: l, retry_after }) => {
                    assert_eq!((l, retry_after), (limit, reset));
                    assert!((1..=60).contains(&retry_after));
                }
                other => panic!("request {} of {limit} at {now}: {other:?}", limit + 1),
            }
            // Anywhere in the same window is still over the limit.
            let later = now.saturating_add(reset - 1);
            assert!(matches!(
                limiter.admit(&client, "echo", limit, later).await,
                Err(GatewayError::RateLimited { .. })
            ));
            if let (Some(next), true) = (now.checked_add(reset), limit > 0) {
                let budget = limiter.admit(&client, "echo", limit, next).await.unwrap();
                assert_eq!(budget, Budget { limit, remaining: limit - 1, reset: WINDOW_SECS });
            }
        });
    }
}
