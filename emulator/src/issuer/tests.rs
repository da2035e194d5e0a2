use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use pretty_assertions::assert_eq;
use switchboard_core::store::sqlite::SqliteStore;
use switchboard_core::store::Stores;
use tempfile::TempDir;

use super::*;
use crate::keys::KEY_FILE;
use crate::testutil::shared_key_pem;

struct Fixture {
    _dir: TempDir,
    issuer: Issuer,
    url: String,
    http: reqwest::Client,
    _server: tokio::task::JoinHandle<()>,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(KEY_FILE), shared_key_pem()).unwrap();
    let stores = Stores::sqlite(SqliteStore::open(&dir.path().join("db.sqlite")).unwrap());
    let issuer = Issuer::open(dir.path(), stores.clients).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = issuer.router(url.clone());
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Fixture {
        _dir: dir,
        issuer,
        url,
        http: reqwest::Client::new(),
        _server: server,
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

impl Fixture {
    async fn post_form(
        &self,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}/oauth2/token", self.url))
            .form(form);
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        request.send().await.unwrap()
    }

    /// Verifies a token the way a resource server would: keys from the JWKS
    /// endpoint, RS256, our issuer, expiry checked.
    async fn verify(&self, token: &str) -> Value {
        let jwks: JwkSet = self
            .http
            .get(format!("{}/.well-known/jwks.json", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let header = jsonwebtoken::decode_header(token).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.typ, None);
        let kid = header.kid.unwrap();
        assert_eq!(kid, self.issuer.kid());
        let jwk = jwks.find(&kid).expect("the token's kid is in the JWKS");
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.url]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
            .unwrap()
            .claims
    }
}

/// Asserts an RFC 6749 §5.2 error response and returns its description.
async fn assert_oauth_error(response: reqwest::Response, status: u16, error: &str) -> String {
    assert_eq!(response.status().as_u16(), status);
    let www = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    if error == "invalid_client" {
        assert_eq!(www.as_deref(), Some("Basic realm=\"switchboard\""));
    } else {
        assert_eq!(www, None);
    }
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    body["error_description"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn basic_auth_token_round_trips_through_the_jwks() {
    let f = fixture().await;
    let secret = f
        .issuer
        .create_client(
            "console",
            &strings(&["agents/echo.invoke", "agents/stream.invoke"]),
        )
        .await
        .unwrap();
    let response = f
        .post_form(
            Some(("console", &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body.as_object().unwrap().len(), 3, "{body}");

    let claims = f.verify(body["access_token"].as_str().unwrap()).await;
    let iat = claims["iat"].as_u64().unwrap();
    let jti = claims["jti"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(jti).is_ok(), "jti {jti} is a uuid");
    assert_eq!(
        claims,
        json!({
            "sub": "console",
            "client_id": "console",
            "token_use": "access",
            "scope": "agents/echo.invoke agents/stream.invoke",
            "auth_time": iat,
            "iss": f.url,
            "exp": iat + 3600,
            "iat": iat,
            "version": 2,
            "jti": jti,
        })
    );
}

#[tokio::test]
async fn form_auth_with_a_requested_subset_of_scopes() {
    let f = fixture().await;
    let scopes = strings(&["a.read", "b.write", "c"]);
    let secret = f.issuer.create_client("svc-1", &scopes).await.unwrap();
    let response = f
        .post_form(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "svc-1"),
                ("client_secret", &secret),
                ("scope", "c  a.read c"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let claims = f.verify(body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["scope"], "c a.read");
    assert_eq!(claims["client_id"], "svc-1");
}

#[tokio::test]
async fn basic_and_form_naming_the_same_client_is_accepted() {
    let f = fixture().await;
    let secret = f
        .issuer
        .create_client("same", &strings(&["s"]))
        .await
        .unwrap();
    let response = f
        .post_form(
            Some(("same", &secret)),
            &[("grant_type", "client_credentials"), ("client_id", "same")],
        )
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn wrong_secret_unknown_client_and_no_credentials_are_invalid_client() {
    let f = fixture().await;
    let secret = f
        .issuer
        .create_client("known", &strings(&["s"]))
        .await
        .unwrap();
    let grant = [("grant_type", "client_credentials")];

    let wrong = f.post_form(Some(("known", "not-the-secret")), &grant).await;
    let d1 = assert_oauth_error(wrong, 401, "invalid_client").await;

    let unknown = f.post_form(Some(("stranger", &secret)), &grant).await;
    let d2 = assert_oauth_error(unknown, 401, "invalid_client").await;
    assert_eq!(d1, d2, "unknown ids and wrong secrets look the same");

    let none = f.post_form(None, &grant).await;
    assert_oauth_error(none, 401, "invalid_client").await;

    let id_only = f
        .post_form(
            None,
            &[("grant_type", "client_credentials"), ("client_id", "known")],
        )
        .await;
    assert_oauth_error(id_only, 401, "invalid_client").await;

    let wrong_form = f
        .post_form(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "known"),
                ("client_secret", "nope"),
            ],
        )
        .await;
    assert_oauth_error(wrong_form, 401, "invalid_client").await;

    let garbage = f
        .http
        .post(format!("{}/oauth2/token", f.url))
        .header("authorization", "Basic !!!not-base64")
        .form(&grant)
        .send()
        .await
        .unwrap();
    assert_oauth_error(garbage, 401, "invalid_client").await;
}

#[tokio::test]
async fn a_scope_outside_the_allowed_set_is_invalid_scope() {
    let f = fixture().await;
    let secret = f
        .issuer
        .create_client("narrow", &strings(&["a"]))
        .await
        .unwrap();
    let response = f
        .post_form(
            Some(("narrow", &secret)),
            &[("grant_type", "client_credentials"), ("scope", "a b")],
        )
        .await;
    let description = assert_oauth_error(response, 400, "invalid_scope").await;
    assert!(description.contains("'b'"), "{description}");
}

#[tokio::test]
async fn other_grant_types_are_unsupported_and_a_missing_one_is_invalid() {
    let f = fixture().await;
    let secret = f
        .issuer
        .create_client("c1", &strings(&["a"]))
        .await
        .unwrap();
    let password = f
        .post_form(Some(("c1", &secret)), &[("grant_type", "password")])
        .await;
    assert_oauth_error(password, 400, "unsupported_grant_type").await;
    let missing = f.post_form(Some(("c1", &secret)), &[]).await;
    assert_oauth_error(missing, 400, "invalid_request").await;
}

#[tokio::test]
async fn conflicting_client_ids_and_repeated_parameters_are_invalid_request() {
    let f = fixture().await;
    let secret = f
        .issuer
        .create_client("one", &strings(&["a"]))
        .await
        .unwrap();
    let conflicting = f
        .post_form(
            Some(("one", &secret)),
            &[("grant_type", "client_credentials"), ("client_id", "two")],
        )
        .await;
    assert_oauth_error(conflicting, 400, "invalid_request").await;

    let repeated = f
        .post_form(
            Some(("one", &secret)),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "a"),
                ("scope", "a"),
            ],
        )
        .await;
    assert_oauth_error(repeated, 400, "invalid_request").await;

    let json_body = f
        .http
        .post(format!("{}/oauth2/token", f.url))
        .basic_auth("one", Some(&secret))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_oauth_error(json_body, 400, "invalid_request").await;
}

#[tokio::test]
async fn percent_encoded_basic_credentials_are_decoded() {
    let f = fixture().await;
    let secret = f
        .issuer
        .create_client("a.b_c-d", &strings(&["s"]))
        .await
        .unwrap();
    // RFC 6749 §2.3.1: the id and the secret are form-encoded before base64.
    let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let raw = STANDARD.encode(format!("a.b_c-d:{encoded}"));
    let response = f
        .http
        .post(format!("{}/oauth2/token", f.url))
        .header("authorization", format!("basic {raw}"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn discovery_and_jwks_describe_the_issuer() {
    let f = fixture().await;
    let discovery: Value = f
        .http
        .get(format!("{}/.well-known/openid-configuration", f.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], f.url);
    assert_eq!(
        discovery["jwks_uri"],
        format!("{}/.well-known/jwks.json", f.url)
    );
    assert_eq!(
        discovery["token_endpoint"],
        format!("{}/oauth2/token", f.url)
    );
    assert_eq!(
        discovery["grant_types_supported"],
        json!(["client_credentials"])
    );
    assert_eq!(
        discovery["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(
        discovery["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );

    let jwks: Value = f
        .http
        .get(format!("{}/.well-known/jwks.json", f.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks, f.issuer.jwks());
    let key = &jwks["keys"][0];
    assert_eq!(key["kid"], f.issuer.kid());
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["e"], "AQAB");
}

#[tokio::test]
async fn minted_tokens_need_no_secret_and_verify() {
    let f = fixture().await;
    let token = f
        .issuer
        .mint(
            &format!("{}/", f.url),
            "operator",
            &strings(&["x", "y"]),
            Duration::from_secs(60),
        )
        .unwrap();
    let claims = f.verify(&token).await;
    assert_eq!(claims["scope"], "x y");
    assert_eq!(claims["sub"], "operator");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        60
    );
    let err = f
        .issuer
        .mint(&f.url, "bad id", &[], Duration::from_secs(60))
        .unwrap_err();
    assert!(err.to_string().contains("' '"), "{err}");
}

#[tokio::test]
async fn client_ids_and_duplicates_are_checked() {
    let f = fixture().await;
    f.issuer
        .create_client("dup", &strings(&["a"]))
        .await
        .unwrap();
    let err = f
        .issuer
        .create_client("dup", &strings(&["a"]))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "a client with id 'dup' already exists");

    let too_long = "x".repeat(129);
    for bad in ["", "with space", "slash/no", "ünïcode", too_long.as_str()] {
        assert!(f.issuer.create_client(bad, &[]).await.is_err(), "{bad:?}");
    }
    assert!(f.issuer.create_client(&"x".repeat(128), &[]).await.is_ok());
    let err = f
        .issuer
        .create_client("ok", &strings(&["has space"]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("has space"), "{err}");
}

#[test]
fn the_key_is_created_private_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested").join("data");
    let stores = Stores::sqlite(SqliteStore::open(&dir.path().join("db.sqlite")).unwrap());
    let first = Issuer::open(&data, stores.clients.clone()).unwrap();
    let path = data.join(KEY_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "mode {mode:o}");
    }
    let pem = std::fs::read_to_string(&path).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8 PEM");
    let leftovers: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from(KEY_FILE)]);

    let second = Issuer::open(&data, stores.clients).unwrap();
    assert_eq!(first.kid(), second.kid());
    assert_eq!(first.jwks(), second.jwks());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), pem);
}

#[test]
fn scopes_follow_rfc_6749() {
    assert!(validate_scope("agents/echo.invoke").is_ok());
    assert!(validate_scope("https://x/y:z").is_ok());
    for bad in ["", "a b", "q\"", "back\\slash", "tab\t"] {
        assert!(validate_scope(bad).is_err(), "{bad:?}");
    }
}
