//! Agent-card rewriting on any bytes: as a card (when they are JSON) and as
//! one card URL (when they are UTF-8). It never panics, every rewritten URL
//! is the agent's gateway URL or below it, signatures are gone, and nothing
//! outside the documented fields changes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use switchboard_core::proxy::card::{rewrite_card, rewrite_url, CardContext};

const BACKENDS: [&str; 4] = [
    "http://10.0.0.5:9000/a2a",
    "http://10.0.0.5:9000/a2a/",
    "http://127.0.0.1:8080",
    "https://agents.internal/team/x",
];
const GATEWAYS: [&str; 3] = [
    "https://gw.example/agents/echo",
    "http://127.0.0.1:4000/agents/a_1-b",
    "https://gw.example/prefix/agents/0",
];
/// Fields the rewriter is documented to touch.
const REWRITTEN: [&str; 7] = [
    "url",
    "supportedInterfaces",
    "additionalInterfaces",
    "signatures",
    "securitySchemes",
    "securityRequirements",
    "security",
];

fuzz_target!(|data: &[u8]| {
    // The first byte picks the context, the rest is the input.
    let Some((&pick, input)) = data.split_first() else {
        return;
    };
    let scopes: Vec<String> = match pick >> 4 & 3 {
        0 => vec![],
        1 => vec!["switchboard/echo".into()],
        _ => vec!["a".into(), "b/*".into()],
    };
    let ctx = CardContext {
        backend_url: BACKENDS[usize::from(pick & 3)],
        gateway_url: GATEWAYS[usize::from(pick >> 2 & 3) % GATEWAYS.len()],
        token_url: "https://issuer.example/oauth2/token",
        scopes: &scopes,
    };
    if let Ok(card) = serde_json::from_slice::<Value>(input) {
        let out = rewrite_card(card.clone(), &ctx);
        check_card(&card, &out, &ctx);
    }
    if let Ok(url) = std::str::from_utf8(input) {
        check_url(url, &rewrite_url(url, &ctx), &ctx);
    }
});

fn check_url(input: &str, out: &str, ctx: &CardContext<'_>) {
    let gateway = ctx.gateway_url;
    let rest = out
        .strip_prefix(gateway)
        .unwrap_or_else(|| panic!("{input:?} became {out:?}, not under {gateway:?}"));
    assert!(
        rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'),
        "{input:?} became {out:?}"
    );
    let (Ok(o), Ok(g)) = (url::Url::parse(out), url::Url::parse(gateway)) else {
        panic!("{input:?} became {out:?}, which does not parse");
    };
    let below = o
        .path()
        .strip_prefix(g.path())
        .is_some_and(|r| r.is_empty() || r.starts_with('/'));
    assert!(
        below && o.origin() == g.origin() && o.fragment().is_none(),
        "{input:?} became {out:?}, which resolves to {o}"
    );
}

fn check_card(input: &Value, output: &Value, ctx: &CardContext<'_>) {
    let Some(inp) = input.as_object() else {
        assert_eq!(output, input, "a card that is not an object is left alone");
        return;
    };
    let Some(out) = output.as_object() else {
        panic!("an object card became {output}");
    };
    assert!(!out.contains_key("signatures"), "signatures kept");
    assert!(out.contains_key("securitySchemes"), "no security scheme");
    for (k, v) in inp {
        if !REWRITTEN.contains(&k.as_str()) {
            assert_eq!(out.get(k), Some(v), "{k} changed");
        }
    }
    for k in out.keys() {
        assert!(
            inp.contains_key(k) || REWRITTEN.contains(&k.as_str()),
            "{k} added"
        );
    }
    match (inp.get("url"), out.get("url")) {
        (Some(Value::String(i)), Some(Value::String(o))) => check_url(i, o, ctx),
        (i, o) => assert_eq!(o, i, "a url that is not a string changed"),
    }
    for list in ["supportedInterfaces", "additionalInterfaces"] {
        match (inp.get(list), out.get(list)) {
            (Some(Value::Array(ins)), Some(Value::Array(outs))) => {
                assert_eq!(ins.len(), outs.len(), "{list} changed length");
                for (i, o) in ins.iter().zip(outs) {
                    match (i.get("url"), o.get("url")) {
                        (Some(Value::String(iu)), Some(Value::String(ou))) if i.is_object() => {
                            check_url(iu, ou, ctx);
                            let mut i = i.clone();
                            i["url"] = Value::String(ou.clone());
                            assert_eq!(o, &i, "more than the url of an interface changed");
                        }
                        _ => assert_eq!(o, i, "an interface without a string url changed"),
                    }
                }
            }
            (i, o) => assert_eq!(o, i, "a {list} that is not an array changed"),
        }
    }
}
