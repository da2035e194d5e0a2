//! What the gateway does with a raw `Authorization` header before a token is
//! trusted: `bearer_token` picks the token out of the header(s), then
//! `Verifier::verify` bounds its size, checks the JOSE header (base64url,
//! JSON, no `crit`, RS256/ES256, a `kid`), finds the key and checks the
//! signature and claims. Keys come from a real JWKS endpoint on loopback
//! publishing the test issuer key (fixtures/test-issuer-key.pem).
//!
//! Input: header values separated by `\n` (more than one is refused as it
//! is on the wire). Every non-empty line is also verified as a bare token,
//! so the fuzzer reaches the JWT parser without the `Bearer ` prefix.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::routing::get;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use switchboard_core::auth::jwt::{AuthError, Verifier, VerifierConfig, MAX_TOKEN_BYTES};
use switchboard_core::auth::bearer_token;
use switchboard_emulator::keys::SigningKey;

/// The `iss` the seed tokens carry.
const ISSUER: &str = "https://issuer.fuzz.example";

struct World {
    rt: tokio::runtime::Runtime,
    verifier: Arc<Verifier>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let pem = include_str!("../../fixtures/test-issuer-key.pem");
        let key = SigningKey::from_pkcs8_pem(pem).unwrap_or_else(|e| panic!("test key: {e}"));
        let jwks = serde_json::json!({ "keys": [key.jwk()] });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("tokio runtime: {e}"));
        let verifier = rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap_or_else(|e| panic!("bind 127.0.0.1:0: {e}"));
            let addr = listener
                .local_addr()
                .unwrap_or_else(|e| panic!("local_addr: {e}"));
            let app = axum::Router::new().route(
                "/jwks.json",
                get(move || {
                    let jwks = jwks.clone();
                    async move { axum::Json(jwks) }
                }),
            );
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    panic!("JWKS server: {e}");
                }
            });
            let verifier = Verifier::new(
                VerifierConfig {
                    issuer: ISSUER.into(),
                    jwks_uri: Some(format!("http://{addr}/jwks.json")),
                    allowed_client_ids: None,
                    leeway_secs: 0,
                },
                reqwest::Client::new(),
            );
            let keys = verifier
                .prefetch()
                .await
                .unwrap_or_else(|e| panic!("JWKS fetch: {e}"));
            assert_eq!(keys, 1, "the JWKS endpoint publishes one key");
            verifier
        });
        World { rt, verifier }
    })
}

fuzz_target!(|data: &[u8]| {
    let world = world();
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(AUTHORIZATION, value);
        }
    }
    let values: Vec<&[u8]> = headers
        .get_all(AUTHORIZATION)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    match bearer_token(&headers) {
        Ok(token) => {
            assert_eq!(values.len(), 1, "a token from {} headers", values.len());
            let value = values[0];
            assert!(!token.is_empty() && !token.contains(' '), "token {token:?}");
            let scheme = &value[..value.len() - token.len()];
            assert!(
                scheme.eq_ignore_ascii_case(b"bearer "),
                "{token:?} taken from {value:?}"
            );
            verify(world, token);
        }
        Err(AuthError::Missing) => assert!(values.is_empty()),
        Err(AuthError::Malformed(_)) => assert!(!values.is_empty()),
        Err(e) => panic!("bearer_token answered {e:?}"),
    }
    for line in data.split(|&b| b == b'\n') {
        if let Ok(token) = std::str::from_utf8(line) {
            if !token.is_empty() {
                verify(world, token);
            }
        }
    }
});

fn verify(world: &World, token: &str) {
    match world.rt.block_on(world.verifier.verify(token)) {
        Ok(principal) => {
            // Only the seed tokens signed with the test key get here.
            assert!(!principal.client_id.is_empty());
            assert!(token.len() <= MAX_TOKEN_BYTES);
        }
        Err(AuthError::Malformed(_)) => {}
        Err(AuthError::Missing | AuthError::KeysUnavailable(_)) => {
            panic!("verify({token:?}) answered as if it had no token or no keys")
        }
        Err(_) => assert!(token.len() <= MAX_TOKEN_BYTES, "oversized token got far"),
    }
}
