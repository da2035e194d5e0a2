//! `GET /discover` through the whole local stack with the real embedding
//! model, a real SQLite file and real sockets; and `switchboard discover`.
//!
//! The model is required: when it is not installed these tests fail and say
//! how to install it (`scripts/install-model`; tests/run does).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use pretty_assertions::assert_eq;
use serde_json::{json, Value};
use switchboard_core::discovery::{FastEmbedder, Mode, ModelPaths};
use switchboard_core::registry::{AgentRecord, EmbeddingRecord};
use switchboard_core::store::sqlite::SqliteStore;
use switchboard_core::store::Stores;
use switchboard_core::GatewayConfig;

const AGENTS: &str = include_str!("../../fixtures/discovery/agents.json");
const TRAVEL: [&str; 5] = [
    "flight-booker",
    "hotel-finder",
    "car-rental",
    "trip-planner",
    "visa-advisor",
];
const FINANCE: [&str; 4] = [
    "expense-reporter",
    "invoice-processor",
    "currency-converter",
    "bank-payments",
];

/// Config pointing at the installed model, or a failure saying how to install it.
fn model_config() -> GatewayConfig {
    let paths = ModelPaths::resolve(None, None);
    if let Err(e) = FastEmbedder::load_shared(&paths) {
        panic!(
            "discovery tests need the embedding model: {e}.\n\
             Install it with `scripts/install-model` (tests/run does), or point \
             SWITCHBOARD_MODEL_DIR and ORT_DYLIB_PATH at an installed copy."
        );
    }
    GatewayConfig {
        model_dir: Some(paths.model_dir),
        ort_dylib_path: Some(paths.ort_dylib),
        ..GatewayConfig::default()
    }
}

fn fixture_agents() -> Vec<AgentRecord> {
    switchboard_core::discovery::eval::parse_agents(AGENTS).unwrap()
}

/// The stack with the fixture's agents, two team scopes, and an index that
/// has caught up.
async fn stack_with(config: GatewayConfig) -> common::Stack {
    let s = common::start_with(config).await;
    let stores = &s.stack.stores;
    stores.agents.put_many(fixture_agents()).await.unwrap();
    let grant = |scope: &'static str, ids: &[&str]| {
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        let p = stores.permissions.clone();
        async move { p.grant(scope, &ids).await.unwrap() }
    };
    grant("team/travel", &TRAVEL).await;
    grant("team/finance", &FINANCE).await;
    s.reload().await;
    s.settle_discovery().await;
    s
}

async fn discover(s: &common::Stack, token: Option<&str>, query: &str) -> (u16, Value) {
    let mut req = s.http.get(s.gw(&format!("/discover?{query}")));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

fn ids(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results in {body}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `q=<text>`, percent-encoded.
fn q(text: &str) -> String {
    let mut s = String::from("q=");
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

#[tokio::test]
async fn ranks_by_meaning_among_the_agents_the_token_reaches() {
    let s = stack_with(model_config()).await;
    let status = s.stack.gateway.discovery.status();
    assert_eq!(
        (status.mode, status.embedded),
        (Mode::Semantic, status.agents),
        "{status:?}"
    );

    // A token for the travel team: the flight agent first, nothing outside travel.
    let travel = s.sign(&s.claims(&["team/travel"]));
    let (code, body) = discover(&s, Some(&travel), &q("book me a flight to Lisbon")).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["mode"], "semantic");
    assert_eq!(body["k"], 5);
    assert_eq!(body["notice"], Value::Null);
    let got = ids(&body);
    assert_eq!(
        got.first().map(String::as_str),
        Some("flight-booker"),
        "{body}"
    );
    assert!(
        got.iter().all(|id| TRAVEL.contains(&id.as_str())),
        "{got:?}"
    );
    assert_eq!(got.len(), TRAVEL.len());
    let first = &body["results"][0];
    assert!(first["score"].as_f64().unwrap() > body["results"][1]["score"].as_f64().unwrap());
    let mut shape = first.clone();
    shape.as_object_mut().unwrap().remove("score");
    shape.as_object_mut().unwrap().remove("scores");
    let url = s.gw("/agents/flight-booker");
    assert_eq!(
        shape,
        json!({
            "id": "flight-booker",
            "name": "Skyhop",
            "description": "Searches and books airline flights: compares fares across carriers, holds seats, and issues e-tickets for one-way, return and multi-city trips.",
            "matched_skills": [
                {"id": "search-flights", "name": "Search flights"},
                {"id": "book-flight", "name": "Book a flight"},
            ],
            "enabled": true,
            "url": url,
            "card_url": format!("{url}/.well-known/agent-card.json"),
        })
    );

    // The finance team never sees a travel agent, even for a travel query.
    let finance = s.sign(&s.claims(&["team/finance"]));
    let (code, body) = discover(&s, Some(&finance), &q("book me a flight to Lisbon")).await;
    assert_eq!(code, 200);
    let got = ids(&body);
    assert!(
        got.iter().all(|id| FINANCE.contains(&id.as_str())),
        "{got:?}"
    );
    let (_, body) = discover(
        &s,
        Some(&finance),
        &format!("{}&k=50", q("currency exchange rates")),
    )
    .await;
    assert_eq!(
        ids(&body).first().map(String::as_str),
        Some("currency-converter")
    );
    assert_eq!(
        ids(&body).into_iter().collect::<BTreeSet<_>>(),
        FINANCE
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>()
    );

    // A scope granting every agent sees all of them; k bounds the answer.
    let all = s.sign(&s.claims(&["switchboard/all"]));
    let (_, body) = discover(
        &s,
        Some(&all),
        &format!("{}&k=3", q("will it rain in Paris tomorrow")),
    )
    .await;
    assert_eq!(ids(&body).len(), 3);
    assert_eq!(ids(&body)[0], "weather-forecast");
    // Exact names win.
    let (_, body) = discover(&s, Some(&all), &q("Ledgerly")).await;
    assert_eq!(ids(&body)[0], "invoice-processor");

    // A token whose scopes grant nothing gets an empty list, not an error.
    let none = s.sign(&s.claims(&["unrelated/scope"]));
    let (code, body) = discover(&s, Some(&none), &q("book a flight")).await;
    assert_eq!((code, ids(&body)), (200, vec![]));

    // Disabling an agent hides it at once.
    let mut a = s
        .stack
        .stores
        .agents
        .get("flight-booker")
        .await
        .unwrap()
        .unwrap();
    a.enabled = false;
    s.stack.stores.agents.update(a).await.unwrap();
    s.reload().await;
    let (_, body) = discover(&s, Some(&travel), &q("book me a flight to Lisbon")).await;
    assert!(!ids(&body).contains(&"flight-booker".to_owned()), "{body}");
}

#[tokio::test]
async fn needs_a_valid_token() {
    let s = common::start_with(model_config()).await;
    let (code, body) = discover(&s, None, &q("book a flight")).await;
    assert_eq!(code, 401);
    assert_eq!(body["error"]["details"][0]["reason"], "TOKEN_MISSING");
    let (code, body) = discover(&s, Some("not-a-jwt"), &q("book a flight")).await;
    assert_eq!(code, 401);
    assert_eq!(body["error"]["details"][0]["reason"], "TOKEN_INVALID");
}

#[tokio::test]
async fn bad_input_is_refused_and_never_crashes() {
    let s = common::start_with(model_config()).await;
    let t = s.sign(&s.claims(&["switchboard/all"]));
    for bad in [
        "",
        "q=",
        "q=%20%20%09",
        "k=3",
        "q=x&k=0",
        "q=x&k=51",
        "q=x&k=two",
        "q=a&q=b",
    ] {
        let (code, body) = discover(&s, Some(&t), bad).await;
        assert_eq!(code, 400, "{bad}: {body}");
        assert_eq!(
            body["error"]["details"][0]["reason"], "INVALID_REQUEST",
            "{bad}"
        );
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    // Over 1 KiB: refused with 413, never cut silently.
    let (code, body) = discover(&s, Some(&t), &q(&"flight ".repeat(200))).await;
    assert_eq!(code, 413, "{body}");
    assert_eq!(body["error"]["details"][0]["reason"], "QUERY_TOO_LONG");
    // 100 KB: more than an HTTP client will put in a URI (reqwest refuses
    // to build it), so it goes over a raw socket. The gateway answers, and
    // keeps serving.
    let status = raw_get(&s, &format!("/discover?{}", q(&"a".repeat(100 * 1024))), &t).await;
    println!("100 KB query: {status}");
    assert!(
        status.starts_with("HTTP/1.1 4"),
        "a 100 KB query must be refused with a 4xx, got {status:?}"
    );
    let (code, _) = discover(&s, Some(&t), &q("echo")).await;
    assert_eq!(code, 200);
}

/// Sends one GET over a plain socket and returns the status line.
async fn raw_get(s: &common::Stack, path: &str, token: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = s
        .stack
        .info
        .gateway_url
        .trim_start_matches("http://")
        .to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    // The server may answer and close before it has read everything.
    let _ = conn.write_all(req.as_bytes()).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(common::PATIENCE, conn.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

fn embedding_times(records: &[EmbeddingRecord]) -> Vec<(String, String, i64)> {
    records
        .iter()
        .map(|r| (r.agent_id.clone(), r.text_hash.clone(), r.updated_at))
        .collect()
}

/// Edits written through another connection, as the CLI would, reach the
/// running gateway's index through its poller. (How fast is the discovery
/// benchmark's business; here a busy machine may take longer.)
#[tokio::test]
async fn an_edit_by_another_process_reaches_the_index() {
    let s = stack_with(model_config()).await;
    let t = s.sign(&s.claims(&["switchboard/all"]));
    let before = s.stack.stores.embeddings.list().await.unwrap();
    assert_eq!(
        before.len(),
        fixture_agents().len() + 3,
        "fixture agents and the three samples"
    );

    // A non-text change re-embeds nothing.
    let other = Stores::sqlite(SqliteStore::open(&s.dir.path().join("switchboard.db")).unwrap());
    let mut a = other.agents.get("recipe-chef").await.unwrap().unwrap();
    a.rate_limit = Some(5);
    let a = other.agents.update(a).await.unwrap();
    // Once the gateway has seen the edit and the indexer has caught up:
    s.reload().await;
    s.settle_discovery().await;
    assert_eq!(
        embedding_times(&s.stack.stores.embeddings.list().await.unwrap()),
        embedding_times(&before)
    );

    // A new description, written through another connection as the CLI would:
    // the gateway's poller sees it and the indexer re-embeds that one agent.
    let query = q("decorate wedding cakes with sugar flowers");
    let (_, body) = discover(&s, Some(&t), &query).await;
    assert_ne!(ids(&body)[0], "recipe-chef");
    let mut edited = a.clone();
    edited.description =
        "Designs and decorates wedding cakes: sugar flowers, fondant and piping.".into();
    other.agents.update(edited).await.unwrap();
    let written = Instant::now();
    loop {
        let (_, body) = discover(&s, Some(&t), &query).await;
        if ids(&body)[0] == "recipe-chef" {
            break;
        }
        assert!(
            written.elapsed() < common::PATIENCE,
            "the edit did not reach the index within {:?}: {body}",
            common::PATIENCE
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    eprintln!("the edit reached the index after {:?}", written.elapsed());

    let after = s.stack.stores.embeddings.list().await.unwrap();
    let changed: Vec<String> = embedding_times(&after)
        .into_iter()
        .filter(|e| !embedding_times(&before).contains(e))
        .map(|e| e.0)
        .collect();
    assert_eq!(changed, vec!["recipe-chef"]);

    // A deleted agent leaves the index and the store.
    other.agents.delete("recipe-chef").await.unwrap();
    let deadline = Instant::now() + common::PATIENCE;
    while s
        .stack
        .stores
        .embeddings
        .get("recipe-chef")
        .await
        .unwrap()
        .is_some()
    {
        assert!(
            Instant::now() < deadline,
            "the deleted agent's vectors are still stored"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn vectors_survive_a_restart() {
    let s = stack_with(model_config()).await;
    let before = embedding_times(&s.stack.stores.embeddings.list().await.unwrap());
    let dir = s.dir;
    s.stack.shutdown().await;
    let again =
        switchboard_emulator::stack::LocalStack::start(switchboard_emulator::stack::StackOptions {
            data_dir: dir.path().to_path_buf(),
            listen: "127.0.0.1:0".parse().unwrap(),
            config: model_config(),
        })
        .await
        .unwrap();
    let status = again
        .gateway
        .discovery
        .settle(Duration::from_secs(60))
        .await;
    assert_eq!(status.mode, Mode::Semantic);
    assert_eq!(
        embedding_times(&again.stores.embeddings.list().await.unwrap()),
        before,
        "nothing is embedded again when nothing changed"
    );
    again.shutdown().await;
}

#[tokio::test]
async fn without_the_model_discovery_is_lexical_and_says_so() {
    let missing = tempfile::tempdir().unwrap();
    let s = stack_with(GatewayConfig {
        model_dir: Some(missing.path().to_path_buf()),
        ort_dylib_path: Some(missing.path().join("libonnxruntime.so.1.32.0")),
        ..GatewayConfig::default()
    })
    .await;
    let t = s.sign(&s.claims(&["switchboard/all"]));
    let (code, body) = discover(&s, Some(&t), &q("Skyhop flights")).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["mode"], "lexical");
    assert_eq!(body["model"], Value::Null);
    let notice = body["notice"].as_str().unwrap();
    assert!(notice.contains("scripts/install-model"), "{notice}");
    assert!(notice.contains("not found"), "{notice}");
    assert_eq!(ids(&body)[0], "flight-booker");
    assert_eq!(body["results"][0]["scores"]["vector"], Value::Null);
    // Only agents with a matching word come back.
    let (_, body) = discover(&s, Some(&t), &q("zzzz qqqq")).await;
    assert_eq!(ids(&body), Vec::<String>::new());
    // The rest of the gateway is unaffected.
    let ready: Value = s
        .http
        .get(s.gw("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["discovery"]["mode"], "lexical");
    let resp = s
        .send(
            "echo",
            Some(&s.token(&["switchboard/echo"]).await),
            &common::send_message("1", "hi"),
        )
        .await;
    assert_eq!(resp.status(), 200);
}

fn cli(
    data_dir: &std::path::Path,
    config: &std::path::Path,
    args: &[&str],
) -> std::process::Output {
    std::process::Command::new(common::binary())
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[tokio::test]
async fn the_cli_prints_the_operator_view() {
    let config = model_config();
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("config.toml");
    std::fs::write(
        &config_file,
        format!(
            "[gateway]\nmodel_dir = {:?}\nort_dylib_path = {:?}\n",
            config.model_dir.unwrap(),
            config.ort_dylib_path.unwrap()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let agents = dir.path().join("agents.json");
    std::fs::write(&agents, AGENTS).unwrap();
    let out = cli(&data, &config_file, &["import", agents.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = cli(
        &data,
        &config_file,
        &[
            "discover",
            "book me a flight to Lisbon",
            "--k",
            "3",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["mode"], "semantic");
    assert_eq!(ids(&body).len(), 3);
    assert_eq!(ids(&body)[0], "flight-booker");
    assert_eq!(
        body["results"][0]["card_url"],
        "http://127.0.0.1:7400/agents/flight-booker/.well-known/agent-card.json"
    );

    let out = cli(&data, &config_file, &["discover", "currency exchange"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    let mut lines = stdout.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("semantic ranking (all-MiniLM-L6-v2"),
        "{stdout}"
    );
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["#", "SCORE", "ID", "NAME", "MATCHED", "SKILLS", "CARD", "URL"]
    );
    assert!(
        lines.next().unwrap().contains("currency-converter"),
        "{stdout}"
    );
    assert_eq!(lines.count(), 4);

    // Usage errors exit 2.
    for args in [
        &["discover", "   "][..],
        &["discover", "x", "--k", "0"],
        &["discover", "x", "--k", "51"],
    ] {
        assert_eq!(
            cli(&data, &config_file, args).status.code(),
            Some(2),
            "{args:?}"
        );
    }

    // Without the model: lexical, and both the output and the log say so.
    let no_model = dir.path().join("no-model.toml");
    std::fs::write(
        &no_model,
        format!("[gateway]\nmodel_dir = {:?}\n", dir.path().join("nothing")),
    )
    .unwrap();
    let out = cli(&data, &no_model, &["discover", "Skyhop"]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stdout.starts_with("lexical ranking (BM25 only)"),
        "{stdout}"
    );
    assert!(stdout.contains("flight-booker"), "{stdout}");
    assert!(
        stderr.contains("WARN") && stderr.contains("scripts/install-model"),
        "{stderr}"
    );
    assert!(
        stderr.contains("note: semantic ranking is unavailable"),
        "{stderr}"
    );
}
