//! Cards, the request log, the guarded agent, and shutdown.

use pretty_assertions::assert_eq;
use serde_json::{json, Value};

use super::*;

#[tokio::test]
async fn cards_are_served_on_both_paths() {
    let agent = start(SampleKind::Echo).await;
    let card: Value = http()
        .get(format!("{}/.well-known/agent-card.json", agent.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let legacy: Value = http()
        .get(format!("{}/.well-known/agent.json", agent.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(card, legacy);
    let url = &agent.url;
    assert_eq!(
        card,
        json!({
            "name": "Echo Agent",
            "description": "Replies with exactly what it is sent, as a completed task.",
            "version": env!("CARGO_PKG_VERSION"),
            "supportedInterfaces": [
                {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
                {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
            ],
            "provider": {"organization": "Switchboard samples", "url": "https://example.org/switchboard/samples"},
            "capabilities": {"streaming": true, "pushNotifications": false},
            "defaultInputModes": ["text/plain"],
            "defaultOutputModes": ["text/plain"],
            "skills": [{
                "id": "echo", "name": "Echo",
                "description": "Returns the message's parts as an artifact and as the status message.",
                "tags": ["echo", "test"], "examples": ["hello"],
                "inputModes": ["text/plain"], "outputModes": ["text/plain"],
            }],
            "url": url,
            "preferredTransport": "JSONRPC",
            "protocolVersion": "0.3",
            "additionalInterfaces": [{"url": url, "transport": "JSONRPC"}],
        })
    );
}

#[tokio::test]
async fn requests_are_recorded_with_their_authorization() {
    let agent = start(SampleKind::Echo).await;
    http()
        .get(format!("{}/.well-known/agent-card.json", agent.url))
        .bearer_auth("card-token")
        .send()
        .await
        .unwrap();
    http()
        .post(format!("{}/", agent.url))
        .header("A2A-Version", "1.0")
        .header("authorization", "Bearer abc")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": user_message("x")}}))
        .send()
        .await
        .unwrap();
    call(&agent.url, None, "tasks/get", json!({"id": "x"})).await;
    let log: Value = http()
        .get(format!("{}/_debug/requests", agent.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        log,
        json!([
            {"method": null, "http": "GET /.well-known/agent-card.json", "authorization": "Bearer card-token", "a2a_version": null},
            {"method": "SendMessage", "http": "POST /", "authorization": "Bearer abc", "a2a_version": "1.0"},
            {"method": "tasks/get", "http": "POST /", "authorization": null, "a2a_version": null},
        ])
    );
    let cleared = http()
        .delete(format!("{}/_debug/requests", agent.url))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 204);
    let log: Value = http()
        .get(format!("{}/_debug/requests", agent.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log, json!([]));
}

struct GuardedSetup {
    _dir: tempfile::TempDir,
    _issuer_server: tokio::task::JoinHandle<()>,
    issuer: Issuer,
    issuer_url: String,
    agent: SampleHandle,
}

async fn guarded() -> GuardedSetup {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(KEY_FILE), shared_key_pem()).unwrap();
    let stores = Stores::sqlite(SqliteStore::open(&dir.path().join("db.sqlite")).unwrap());
    let issuer = Issuer::open(dir.path(), stores.clients).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer_url = format!("http://{}", listener.local_addr().unwrap());
    let app = issuer.router(issuer_url.clone());
    let issuer_server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    let verifier = Verifier::new(
        VerifierConfig {
            issuer: issuer_url.clone(),
            jwks_uri: None,
            allowed_client_ids: None,
            leeway_secs: 0,
        },
        reqwest::Client::new(),
    );
    let agent = start(SampleKind::Guarded {
        verifier,
        required_scope: DEFAULT_GUARDED_SCOPE.into(),
        token_url: format!("{issuer_url}/oauth2/token"),
    })
    .await;
    GuardedSetup {
        _dir: dir,
        _issuer_server: issuer_server,
        issuer,
        issuer_url,
        agent,
    }
}

#[tokio::test]
async fn guarded_agent_needs_an_issuer_token_with_its_scope() {
    let g = guarded().await;
    let send = |token: Option<String>| {
        let url = g.agent.url.clone();
        async move {
            let mut request = http()
                .post(format!("{url}/"))
                .header("A2A-Version", "1.0")
                .json(
                    &json!({"jsonrpc": "2.0", "id": "g1", "method": "SendMessage",
                              "params": {"message": user_message("secret")}}),
                );
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            request.send().await.unwrap()
        }
    };

    let missing = send(None).await;
    assert_eq!(missing.status(), 401);
    assert_eq!(
        missing.headers()["www-authenticate"],
        "Bearer realm=\"guarded-agent\""
    );
    let body: Value = missing.json().await.unwrap();
    assert_eq!(
        body,
        json!({"jsonrpc": "2.0", "id": "g1", "error": {"code": -32050, "message": "guarded agent: missing bearer token",
            "data": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "TOKEN_MISSING",
                      "domain": "a2a-protocol.org", "metadata": {}}]}})
    );

    let garbage = send(Some("not-a-jwt".into())).await;
    assert_eq!(garbage.status(), 401);
    assert!(garbage.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("error=\"invalid_token\""));

    let other_issuer = g
        .issuer
        .mint(
            "http://elsewhere",
            "c",
            &[DEFAULT_GUARDED_SCOPE.into()],
            Duration::from_secs(60),
        )
        .unwrap();
    assert_eq!(send(Some(other_issuer)).await.status(), 401);

    let wrong_scope = g
        .issuer
        .mint(
            &g.issuer_url,
            "c",
            &["agents/echo.invoke".into()],
            Duration::from_secs(60),
        )
        .unwrap();
    let forbidden = send(Some(wrong_scope)).await;
    assert_eq!(forbidden.status(), 403);
    assert!(forbidden.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("error=\"insufficient_scope\""));
    let body: Value = forbidden.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32051);

    // A real client-credentials token from the issuer's endpoint.
    let secret = g
        .issuer
        .create_client("gateway", &[DEFAULT_GUARDED_SCOPE.into()])
        .await
        .unwrap();
    let token: Value = http()
        .post(format!("{}/oauth2/token", g.issuer_url))
        .basic_auth("gateway", Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    let ok = send(Some(token.clone())).await;
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(
        body["result"]["task"]["artifacts"][0]["parts"][0]["text"],
        "secret"
    );

    // 0.3 errors carry no ErrorInfo.
    let old = http()
        .post(format!("{}/", g.agent.url))
        .json(&json!({"jsonrpc": "2.0", "id": 3, "method": "tasks/get", "params": {"id": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 401);
    let body: Value = old.json().await.unwrap();
    assert_eq!(
        body,
        json!({"jsonrpc": "2.0", "id": 3, "error": {"code": -32050, "message": "guarded agent: missing bearer token"}})
    );

    // The card is public and names the issuer.
    let card: Value = http()
        .get(format!("{}/.well-known/agent-card.json", g.agent.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token_url = format!("{}/oauth2/token", g.issuer_url);
    let flows = json!({"clientCredentials": {"tokenUrl": token_url, "scopes": {DEFAULT_GUARDED_SCOPE: "Call this agent"}}});
    assert_eq!(
        card["securitySchemes"],
        json!({"oauth2": {
            "oauth2SecurityScheme": {"description": "OAuth2 client credentials from the local issuer", "flows": flows},
            "type": "oauth2", "description": "OAuth2 client credentials from the local issuer", "flows": flows}})
    );
    assert_eq!(
        card["securityRequirements"],
        json!([{"schemes": {"oauth2": {"list": [DEFAULT_GUARDED_SCOPE]}}}])
    );
    assert_eq!(
        card["security"],
        json!([{"oauth2": [DEFAULT_GUARDED_SCOPE]}])
    );

    let log: Value = http()
        .get(format!("{}/_debug/requests", g.agent.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seen: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["authorization"])
        .collect();
    assert_eq!(seen[0], &Value::Null);
    assert_eq!(seen[1], &json!("Bearer not-a-jwt"));
    assert!(seen.contains(&&json!(format!("Bearer {token}"))));
}

#[tokio::test]
async fn shutdown_stops_the_listener() {
    let agent = start(SampleKind::Echo).await;
    let url = agent.url.clone();
    assert!(url.starts_with("http://127.0.0.1:"));
    agent.shutdown().await;
    assert!(http()
        .get(format!("{url}/.well-known/agent-card.json"))
        .send()
        .await
        .is_err());
}
