//! Backend credentials: OAuth2 client credentials against a real token
//! endpoint, one refresh at a time, failures remembered briefly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pretty_assertions::assert_eq;
use serde_json::json;
use switchboard_core::proxy::backend_auth::BackendAuthenticator;
use switchboard_core::registry::{BackendAuth, Secret};
use switchboard_core::store::sqlite::SqliteStore;
use switchboard_core::store::Stores;
use switchboard_core::GatewayError;

async fn token_endpoint(status: u16) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let app = axum::Router::new().route(
        "/token",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let c = c.clone();
            async move {
                let n = c.fetch_add(1, Ordering::SeqCst);
                // Slow enough that concurrent callers pile up behind one fetch.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                assert!(body.contains("grant_type=client_credentials"), "{body}");
                assert!(body.contains("scope=s1+s2") || body.contains("scope=s1%20s2"), "{body}");
                let auth = headers["authorization"].to_str().unwrap().to_owned();
                assert!(auth.starts_with("Basic "), "{auth}");
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    axum::Json(json!({"access_token": format!("tok-{n}"), "token_type": "Bearer", "expires_in": 3600})),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, calls)
}

async fn setup() -> (tempfile::TempDir, Arc<BackendAuthenticator>) {
    let dir = tempfile::tempdir().unwrap();
    let stores = Stores::sqlite(SqliteStore::open(&dir.path().join("s.db")).unwrap());
    stores
        .secrets
        .put("cs", &Secret::new("client-secret"))
        .await
        .unwrap();
    stores
        .secrets
        .put("key", &Secret::new("k-123"))
        .await
        .unwrap();
    let auth = Arc::new(BackendAuthenticator::new(
        stores.secrets.clone(),
        reqwest::Client::new(),
    ));
    (dir, auth)
}

fn oauth(url: &str, secret: &str) -> BackendAuth {
    BackendAuth::OAuth2 {
        token_url: url.into(),
        client_id: "gw".into(),
        secret: secret.into(),
        scopes: vec!["s1".into(), "s2".into()],
    }
}

#[tokio::test]
async fn one_token_fetch_for_many_concurrent_requests() {
    let (_dir, auth) = setup().await;
    let (url, calls) = token_endpoint(200).await;
    let spec = oauth(&url, "cs");
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let auth = auth.clone();
        let spec = spec.clone();
        tasks.push(tokio::spawn(async move {
            auth.header("a", &spec).await.unwrap().unwrap()
        }));
    }
    for t in tasks {
        let (name, value) = t.await.unwrap();
        assert_eq!(name, "authorization");
        assert_eq!(value.to_str().unwrap(), "Bearer tok-0");
        assert!(value.is_sensitive());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn failures_are_remembered_briefly() {
    let (_dir, auth) = setup().await;
    let (url, calls) = token_endpoint(500).await;
    let spec = oauth(&url, "cs");
    let started = std::time::Instant::now();
    for _ in 0..10 {
        let err = auth.header("a", &spec).await.unwrap_err();
        assert!(matches!(err, GatewayError::BackendAuth(_)), "{err:?}");
        assert_eq!(err.status(), 502);
    }
    // One fetch, and one more per failure TTL the calls outlasted (none,
    // unless the machine is very busy).
    let ttl = switchboard_core::proxy::backend_auth::FAILURE_TTL;
    let allowed = 1 + (started.elapsed().as_secs_f64() / ttl.as_secs_f64()).floor() as usize;
    let calls = calls.load(Ordering::SeqCst);
    assert!(
        (1..=allowed).contains(&calls),
        "{calls} token requests for 10 calls (at most {allowed})"
    );
}

#[tokio::test]
async fn static_headers_and_missing_secrets() {
    let (_dir, auth) = setup().await;
    let spec = BackendAuth::Header {
        name: "x-api-key".into(),
        secret: "key".into(),
    };
    let (name, value) = auth.header("a", &spec).await.unwrap().unwrap();
    assert_eq!(
        (name.as_str(), value.to_str().unwrap()),
        ("x-api-key", "k-123")
    );
    assert!(auth
        .header("a", &BackendAuth::None)
        .await
        .unwrap()
        .is_none());

    let missing = BackendAuth::Header {
        name: "x-api-key".into(),
        secret: "nope".into(),
    };
    let err = auth.header("a", &missing).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "backend credentials unavailable: the secret \"nope\" for agent a does not exist"
    );
    let (url, calls) = token_endpoint(200).await;
    let err = auth.header("a", &oauth(&url, "nope")).await.unwrap_err();
    assert_eq!(err.status(), 502);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "no token request without a secret"
    );
}
