//! Token verification against a real JWKS endpoint on a real socket, with
//! tokens signed by real RSA and EC keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pretty_assertions::assert_eq;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};
use switchboard_core::auth::{AuthError, Verifier, VerifierConfig};

const ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_test";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

struct RsaKey {
    kid: String,
    pem: String,
    jwk: Value,
}

fn rsa_key(kid: &str) -> RsaKey {
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let public = key.to_public_key();
    RsaKey {
        kid: kid.into(),
        pem,
        jwk: json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
            "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be())}),
    }
}

fn es_jwk(kid: &str) -> Value {
    let pem = include_str!("../../fixtures/test-es256-pub.pem");
    let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(der)
        .unwrap();
    // SubjectPublicKeyInfo ends with the uncompressed point 04 || X || Y.
    let point = &der[der.len() - 65..];
    assert_eq!(point[0], 4);
    json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
        "x": b64(&point[1..33]), "y": b64(&point[33..])})
}

struct Jwks {
    url: String,
    fetches: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
    keys: Arc<parking_lot::Mutex<Vec<Value>>>,
}

async fn jwks_server(keys: Vec<Value>) -> Jwks {
    let fetches = Arc::new(AtomicUsize::new(0));
    let down = Arc::new(AtomicBool::new(false));
    let keys = Arc::new(parking_lot::Mutex::new(keys));
    let (f, d, k) = (fetches.clone(), down.clone(), keys.clone());
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let (f, d, k) = (f.clone(), d.clone(), k.clone());
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                if d.load(Ordering::SeqCst) {
                    return (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        axum::Json(json!({})),
                    );
                }
                (
                    axum::http::StatusCode::OK,
                    axum::Json(json!({"keys": *k.lock()})),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Jwks {
        url,
        fetches,
        down,
        keys,
    }
}

fn verifier(jwks: &Jwks, allowed: Option<Vec<String>>) -> Arc<Verifier> {
    Verifier::new(
        VerifierConfig {
            issuer: ISSUER.into(),
            jwks_uri: Some(jwks.url.clone()),
            allowed_client_ids: allowed,
            leeway_secs: 30,
        },
        reqwest::Client::new(),
    )
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims() -> Value {
    json!({"sub": "c1", "client_id": "c1", "scope": "a b", "token_use": "access",
        "iss": ISSUER, "iat": now(), "exp": now() + 600, "jti": "x"})
}

fn sign_rsa(key: &RsaKey, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some(key.kid.clone());
    jsonwebtoken::encode(
        &h,
        claims,
        &EncodingKey::from_rsa_pem(key.pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn checks_every_claim() {
    let key = rsa_key("k1");
    let jwks = jwks_server(vec![key.jwk.clone()]).await;
    let v = verifier(&jwks, None);

    let p = v.verify(&sign_rsa(&key, &claims())).await.unwrap();
    assert_eq!(p.client_id, "c1");
    assert_eq!(p.scopes, vec!["a", "b"]);

    let with = |patch: Value| {
        let mut c = claims();
        for (k, val) in patch.as_object().unwrap() {
            if val.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = val.clone();
            }
        }
        sign_rsa(&key, &c)
    };
    let cases = [
        (json!({"exp": now() - 120}), AuthError::Expired),
        (json!({"nbf": now() + 120}), AuthError::NotYetValid),
        (json!({"iss": "https://elsewhere"}), AuthError::WrongIssuer),
        (json!({"token_use": "id"}), AuthError::WrongTokenUse),
        (
            json!({"exp": null}),
            AuthError::Malformed("missing claim exp".into()),
        ),
    ];
    for (patch, want) in cases {
        assert_eq!(
            v.verify(&with(patch.clone())).await.unwrap_err(),
            want,
            "{patch}"
        );
    }
    // Within the leeway is fine.
    assert!(v.verify(&with(json!({"exp": now() - 10}))).await.is_ok());
    assert!(v.verify(&with(json!({"nbf": now() + 10}))).await.is_ok());
    // scp as an array; no token_use at all.
    let p = v
        .verify(&with(
            json!({"scope": null, "scp": ["x", "y"], "token_use": null}),
        ))
        .await
        .unwrap();
    assert_eq!(p.scopes, vec!["x", "y"]);
}

#[tokio::test]
async fn refuses_none_hs256_and_alg_confusion() {
    let key = rsa_key("k1");
    let jwks = jwks_server(vec![key.jwk.clone()]).await;
    let v = verifier(&jwks, None);

    // alg: none, hand-built.
    let header = b64(br#"{"alg":"none","kid":"k1","typ":"JWT"}"#);
    let body = b64(claims().to_string().as_bytes());
    let none = format!("{header}.{body}.");
    assert!(v.verify(&none).await.is_err());

    // HS256 keyed with the public key's bytes (the classic confusion attack).
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("k1".into());
    let hs = jsonwebtoken::encode(
        &h,
        &claims(),
        &EncodingKey::from_secret(key.jwk.to_string().as_bytes()),
    )
    .unwrap();
    assert_eq!(
        v.verify(&hs).await.unwrap_err(),
        AuthError::UnsupportedAlg("HS256".into())
    );

    // Garbage.
    for bad in ["", "a.b", "a.b.c", "not-a-token"] {
        assert!(
            matches!(v.verify(bad).await.unwrap_err(), AuthError::Malformed(_)),
            "{bad:?}"
        );
    }
    // Oversized.
    let huge = "a".repeat(64 * 1024);
    assert!(matches!(
        v.verify(&huge).await.unwrap_err(),
        AuthError::Malformed(_)
    ));
}

#[tokio::test]
async fn es256_is_accepted() {
    let jwks = jwks_server(vec![es_jwk("ec1")]).await;
    let v = verifier(&jwks, None);
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("ec1".into());
    let key =
        EncodingKey::from_ec_pem(include_bytes!("../../fixtures/test-es256-key.pem")).unwrap();
    let token = jsonwebtoken::encode(&h, &claims(), &key).unwrap();
    assert_eq!(v.verify(&token).await.unwrap().client_id, "c1");
    // An RS256 header with the EC key's kid is refused.
    let rsa = rsa_key("ec1");
    assert!(matches!(
        v.verify(&sign_rsa(&rsa, &claims())).await.unwrap_err(),
        AuthError::UnsupportedAlg(_)
    ));
}

#[tokio::test]
async fn client_allow_list() {
    let key = rsa_key("k1");
    let jwks = jwks_server(vec![key.jwk.clone()]).await;
    let v = verifier(&jwks, Some(vec!["other".into()]));
    assert_eq!(
        v.verify(&sign_rsa(&key, &claims())).await.unwrap_err(),
        AuthError::ClientNotAllowed("c1".into())
    );
}

#[tokio::test]
async fn unknown_kid_refreshes_at_most_once_and_cached_keys_survive_an_outage() {
    let key = rsa_key("k1");
    let jwks = jwks_server(vec![key.jwk.clone()]).await;
    let v = verifier(&jwks, None);
    let good = sign_rsa(&key, &claims());
    v.verify(&good).await.unwrap();
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 1);

    // Unknown kids: the first may refresh, but not again within 30 s.
    let stranger = rsa_key("k9");
    for _ in 0..20 {
        assert_eq!(
            v.verify(&sign_rsa(&stranger, &claims())).await.unwrap_err(),
            AuthError::UnknownKey("k9".into())
        );
    }
    assert!(
        jwks.fetches.load(Ordering::SeqCst) <= 2,
        "{}",
        jwks.fetches.load(Ordering::SeqCst)
    );

    // The JWKS endpoint goes down: the cached key keeps working (a new token
    // signed by it, so the verified-token cache is not what answers).
    jwks.down.store(true, Ordering::SeqCst);
    let mut c = claims();
    c["jti"] = json!("fresh");
    assert_eq!(v.verify(&sign_rsa(&key, &c)).await.unwrap().client_id, "c1");
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_and_the_old_one_dropped() {
    let old = rsa_key("old");
    let new = rsa_key("new");
    let jwks = jwks_server(vec![old.jwk.clone()]).await;
    let v = verifier(&jwks, None);
    let old_token = sign_rsa(&old, &claims());
    v.verify(&old_token).await.unwrap();
    *jwks.keys.lock() = vec![new.jwk.clone()];
    // A forced refresh (the cooldown applies to unknown kids only).
    v.prefetch().await.unwrap();
    assert_eq!(
        v.verify(&sign_rsa(&new, &claims()))
            .await
            .unwrap()
            .client_id,
        "c1"
    );
    assert_eq!(
        v.verify(&old_token).await.unwrap_err(),
        AuthError::UnknownKey("old".into())
    );
}

#[tokio::test]
async fn no_keys_and_no_endpoint_is_a_401_not_a_crash() {
    let v = Verifier::new(
        VerifierConfig {
            issuer: ISSUER.into(),
            jwks_uri: Some("http://127.0.0.1:9/jwks.json".into()),
            allowed_client_ids: None,
            leeway_secs: 0,
        },
        reqwest::Client::new(),
    );
    let key = rsa_key("k1");
    assert!(matches!(
        v.verify(&sign_rsa(&key, &claims())).await.unwrap_err(),
        AuthError::KeysUnavailable(_)
    ));
}
