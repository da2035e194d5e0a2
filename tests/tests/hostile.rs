//! Hostile input: one table of requests a caller might use to hurt, confuse
//! or get past the gateway, each with the answer it must get and whether an
//! agent's backend may see it. The whole local stack runs in process on real
//! sockets; requests go out through a raw-socket client
//! ([`switchboard_tests::rawhttp`]) so that they arrive exactly as written.
//!
//! Backends are watched two ways: a recording backend registered as agent
//! `rec` (it logs every request it receives, whatever the path) and the
//! sample agents' own request logs (`/_debug/requests`). A request refused
//! before routing must reach neither.
//!
//! Decisions the table pins down:
//!
//! * `Authorization`: exactly one header, scheme `Bearer` in any case (RFC
//!   9110 §11.1: schemes are case-insensitive), then one space and the
//!   token. Two headers, two spaces, a tab or another scheme are 401.
//! * Agent ids match `^[a-z0-9][a-z0-9_-]{0,63}$` as written; paths are never
//!   decoded or normalised, and a rest that could climb out of the agent's
//!   base path on any backend (dot segments, raw or encoded up to three
//!   times, `..;`, encoded `/` or `\`, control characters) is a 404.
//! * JSON-RPC bodies (POST to the agent root) are judged after the token,
//!   the route and the scope decision (an unknown agent is 404 whatever the
//!   body holds): not JSON is -32700, a batch or anything but one request
//!   object with `"jsonrpc": "2.0"` and a string `method` is -32600, both
//!   HTTP 400; a well-formed request with a method the gateway does not
//!   know goes to the agent, which answers it.
//! * `Host`, `Forwarded` and `X-Forwarded-*` from the caller are never
//!   trusted: routing is by path, cards and `X-Forwarded-Host` use the
//!   configured public URL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::IntoResponse as _;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use pretty_assertions::assert_eq;
use serde_json::{json, Value};
use switchboard_core::registry::file::RegistryFile;
use switchboard_core::registry::{validate_agent, AgentRecord, BackendAuth, Secret};
use switchboard_core::GatewayConfig;
use switchboard_tests::rawhttp::{self, RawRequest, RawResponse};

/// The corpus runs with a small body limit so that oversized bodies are
/// cheap to send.
const BODY_LIMIT: usize = 32 * 1024;
/// The value of the static credential the `keyed` agent's backend gets.
const BACKEND_KEY: &str = "backend-key-from-the-secret-store";

// ---------------------------------------------------------------------------
// The recording backend.
// ---------------------------------------------------------------------------

/// One request as the recording backend saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    /// Path and query, as received.
    target: String,
    /// Header lines in order, names lowercased.
    headers: Vec<(String, String)>,
    /// Bytes of body received; `None` when the body broke off.
    body_len: Option<usize>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Seen>>>);

impl Recorder {
    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    /// Serves on a loopback port; returns its base URL (`…/base`).
    async fn start(&self) -> String {
        let log = self.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let log = log.clone();
            async move { log.answer(req).await }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/base", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    async fn answer(&self, req: axum::extract::Request) -> axum::response::Response {
        let (parts, body) = req.into_parts();
        let seen = Seen {
            method: parts.method.to_string(),
            target: parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body_len: None,
        };
        // Logged before the body is read, so a body that breaks off still counts.
        let index = {
            let mut log = self.0.lock().unwrap();
            log.push(seen);
            log.len() - 1
        };
        let bytes = axum::body::to_bytes(body, usize::MAX).await.ok();
        if let Some(entry) = self.0.lock().unwrap().get_mut(index) {
            entry.body_len = bytes.as_ref().map(|b| b.len());
        }
        let id = bytes
            .as_deref()
            .and_then(|b| serde_json::from_slice::<Value>(b).ok())
            .and_then(|v| v.get("id").cloned());
        let body = match id {
            Some(id) => json!({"jsonrpc": "2.0", "id": id, "result": {"recorded": true}}),
            None => json!({"recorded": true}),
        };
        axum::Json(body).into_response()
    }
}

// ---------------------------------------------------------------------------
// The table's vocabulary.
// ---------------------------------------------------------------------------

/// May the request reach an agent's backend?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    /// It is refused before routing: no backend may see it.
    Never,
    /// It must be passed on.
    Must,
    /// Either is right (a body refused part way, a cached card).
    May,
}

/// The shape a gateway error body takes.
#[derive(Debug, Clone)]
enum Style {
    /// A JSON-RPC error object carrying this request id.
    Rpc(Value),
    /// A `google.rpc.Status` body.
    Rest,
}

/// What must come back.
#[derive(Debug, Clone)]
enum Expect {
    /// The gateway refuses with this `ErrorInfo.reason`: status, codes and
    /// body shape follow from the error table.
    Refused {
        reason: &'static str,
        style: Style,
        /// The error message must contain this.
        message_has: Option<&'static str>,
    },
    /// Refused by the HTTP layer before any handler runs: this status,
    /// no JSON body.
    Http(u16),
    /// Answered by whoever handled it (an agent, the gateway's own
    /// routes) with this status; the rest is for the case's check.
    Answered(u16),
}

/// How the request fared.
struct Outcome {
    resp: RawResponse,
    /// The body as JSON, when it is JSON.
    json: Option<Value>,
    /// What the recording backend received.
    recorded: Vec<Seen>,
    /// What each sample agent received, by agent id.
    samples: Vec<(String, Vec<Value>)>,
}

impl Outcome {
    fn backend_requests(&self) -> usize {
        self.recorded.len() + self.samples.iter().map(|(_, l)| l.len()).sum::<usize>()
    }
    fn sample(&self, id: &str) -> &[Value] {
        self.samples
            .iter()
            .find(|(a, _)| a == id)
            .map(|(_, l)| l.as_slice())
            .unwrap_or_default()
    }
    /// The one request the recording backend got.
    fn only_recorded(&self) -> Result<&Seen, String> {
        match self.recorded.as_slice() {
            [one] => Ok(one),
            other => Err(format!(
                "the recording backend got {} requests",
                other.len()
            )),
        }
    }
}

type Check = Box<dyn Fn(&Outcome) -> Result<(), String> + Send + Sync>;

struct Case {
    name: String,
    request: RawRequest,
    expect: Expect,
    backend: Backend,
    check: Option<Check>,
}

fn case(name: impl Into<String>, request: RawRequest, expect: Expect, backend: Backend) -> Case {
    Case {
        name: name.into(),
        request,
        expect,
        backend,
        check: None,
    }
}

impl Case {
    /// A further condition on the outcome.
    fn check(mut self, f: impl Fn(&Outcome) -> Result<(), String> + Send + Sync + 'static) -> Self {
        self.check = Some(Box::new(f));
        self
    }
}

fn refused(reason: &'static str, style: Style) -> Expect {
    Expect::Refused {
        reason,
        style,
        message_has: None,
    }
}

fn refused_saying(reason: &'static str, style: Style, message_has: &'static str) -> Expect {
    Expect::Refused {
        reason,
        style,
        message_has: Some(message_has),
    }
}

fn rpc_id(id: &str) -> Style {
    Style::Rpc(json!(id))
}

fn rpc_null() -> Style {
    Style::Rpc(Value::Null)
}

/// Status, JSON-RPC code and `google.rpc.Code` for a reason, as the error
/// table in README.md gives them.
fn error_row(reason: &str) -> (u16, i64, &'static str) {
    match reason {
        "TOKEN_MISSING" | "TOKEN_INVALID" | "TOKEN_EXPIRED" => (401, -32050, "UNAUTHENTICATED"),
        "AGENT_NOT_PERMITTED" => (403, -32051, "PERMISSION_DENIED"),
        "AGENT_NOT_FOUND" => (404, -32052, "NOT_FOUND"),
        "REQUEST_BODY_TOO_LARGE" => (413, -32054, "RESOURCE_EXHAUSTED"),
        "INVALID_REQUEST" => (400, -32600, "INVALID_ARGUMENT"),
        "PARSE_ERROR" => (400, -32700, "INVALID_ARGUMENT"),
        other => panic!("no error table row for {other}"),
    }
}

/// The whole error body expected, with the message the gateway chose.
fn error_body(reason: &str, style: &Style, message: &str) -> Value {
    let (status, code, rpc_status) = error_row(reason);
    let info = json!([{
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "a2a-protocol.org",
        "metadata": {"httpStatus": status.to_string()},
    }]);
    match style {
        Style::Rpc(id) => json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": {"code": code, "message": message, "data": info},
        }),
        Style::Rest => json!({
            "error": {"code": status, "status": rpc_status, "message": message, "details": info},
        }),
    }
}

fn judge(case: &Case, o: &Outcome) -> Result<(), String> {
    match &case.expect {
        Expect::Refused {
            reason,
            style,
            message_has,
        } => {
            let (status, _, _) = error_row(reason);
            if o.resp.status != status {
                return Err(format!(
                    "status {} (expected {status} {reason}); body: {}",
                    o.resp.status,
                    short(&o.resp.text())
                ));
            }
            let body = o
                .json
                .as_ref()
                .ok_or_else(|| format!("body is not JSON: {:?}", short(&o.resp.text())))?;
            let message = body["error"]["message"].as_str().unwrap_or_default();
            if message.is_empty() {
                return Err(format!("no error message in {body}"));
            }
            if let Some(want) = message_has {
                if !message.contains(want) {
                    return Err(format!("message {message:?} does not say {want:?}"));
                }
            }
            let expected = error_body(reason, style, message);
            if *body != expected {
                return Err(format!("body\n  {body}\nexpected\n  {expected}"));
            }
            if status == 401 {
                let challenge = o
                    .resp
                    .header("www-authenticate")
                    .ok_or("401 without WWW-Authenticate")?;
                let ok = if *reason == "TOKEN_MISSING" {
                    challenge == "Bearer"
                } else {
                    challenge.starts_with("Bearer error=\"invalid_token\", error_description=\"")
                        && challenge.len() < 400
                };
                if !ok {
                    return Err(format!("WWW-Authenticate {challenge:?}"));
                }
            }
        }
        Expect::Http(status) => {
            if o.resp.status != *status {
                return Err(format!(
                    "status {} (expected {status} from the HTTP layer); body: {}",
                    o.resp.status,
                    short(&o.resp.text())
                ));
            }
        }
        Expect::Answered(status) => {
            if o.resp.status != *status {
                return Err(format!(
                    "status {} (expected {status}); body: {}",
                    o.resp.status,
                    short(&o.resp.text())
                ));
            }
        }
    }
    let n = o.backend_requests();
    match case.backend {
        Backend::Never if n > 0 => {
            return Err(format!(
                "refused, yet a backend saw {n} request(s): {:?} {:?}",
                o.recorded, o.samples
            ))
        }
        Backend::Must if n == 0 => return Err("no backend saw the request".into()),
        _ => {}
    }
    if let Some(check) = &case.check {
        check(o)?;
    }
    Ok(())
}

fn short(s: &str) -> String {
    if s.len() <= 300 {
        return s.to_owned();
    }
    let mut end = 300;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

// ---------------------------------------------------------------------------
// Requests and tokens.
// ---------------------------------------------------------------------------

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A JSON-RPC `SendMessage` with this id.
fn rpc(id: &str) -> Vec<u8> {
    serde_json::to_vec(&common::send_message(id, "hello")).unwrap()
}

/// `POST {path}` with a JSON body and `A2A-Version: 1.0`.
fn post(path: &str, body: impl Into<Vec<u8>>) -> RawRequest {
    RawRequest::new("POST", path)
        .header("Content-Type", "application/json")
        .header("A2A-Version", "1.0")
        .body(body)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A JWS from a header and claims as given, signed with `key`.
fn jws(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = jsonwebtoken::crypto::sign(signing_input.as_bytes(), key, alg).unwrap();
    format!("{signing_input}.{signature}")
}

/// A JSON body of exactly `len` bytes that is one JSON-RPC request.
fn rpc_of_len(id: &str, len: usize) -> Vec<u8> {
    let shell = json!({"jsonrpc": "2.0", "id": id, "method": "SendMessage", "params": {"pad": ""}})
        .to_string();
    let pad = len - shell.len();
    let body = shell.replace("\"pad\":\"\"", &format!("\"pad\":\"{}\"", "x".repeat(pad)));
    assert_eq!(body.len(), len);
    body.into_bytes()
}

/// Everything the table is built from.
struct Fixture {
    s: common::Stack,
    addr: SocketAddr,
    recorder: Recorder,
    /// A valid token reaching `rec`, the 64-byte agent, `keyed`, echo and guarded.
    tok: String,
    issuer_key: EncodingKey,
    issuer_public_pem: String,
    issuer_jwk: String,
    other_rsa: EncodingKey,
    other_rsa_jwk: Value,
    es256: EncodingKey,
    /// An id of exactly 64 bytes, registered.
    long_id: String,
    /// The recording backend's base URL.
    rec_url: String,
}

impl Fixture {
    async fn start() -> Fixture {
        let s = common::start_with(GatewayConfig {
            body_limit: BODY_LIMIT as u64,
            allowed_client_ids: Some(vec!["demo-client".into()]),
            ..GatewayConfig::default()
        })
        .await;
        let addr: SocketAddr = s
            .stack
            .info
            .gateway_url
            .trim_start_matches("http://")
            .parse()
            .unwrap();
        let recorder = Recorder::default();
        let rec_url = recorder.start().await;
        let long_id = "a".repeat(64);
        let stores = &s.stack.stores;
        stores
            .agents
            .create(AgentRecord::new("rec", rec_url.clone()))
            .await
            .unwrap();
        stores
            .agents
            .create(AgentRecord::new(long_id.clone(), rec_url.clone()))
            .await
            .unwrap();
        let mut keyed = AgentRecord::new("keyed", rec_url.clone());
        keyed.auth = BackendAuth::Header {
            name: "x-api-key".into(),
            secret: "hostile/key".into(),
        };
        stores.agents.create(keyed).await.unwrap();
        stores
            .secrets
            .put("hostile/key", &Secret::new(BACKEND_KEY))
            .await
            .unwrap();
        stores
            .permissions
            .grant(
                "hostile/rec",
                &["rec".into(), long_id.clone(), "keyed".into()],
            )
            .await
            .unwrap();
        s.reload().await;
        let tok = s.sign(&s.claims(&["hostile/rec", "switchboard/echo", "switchboard/guarded"]));

        use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
        use rsa::traits::PublicKeyParts;
        let pem = std::fs::read_to_string(s.dir.path().join("issuer-key.pem")).unwrap();
        let issuer_key = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
        let private = rsa::RsaPrivateKey::from_pkcs8_pem(&pem).unwrap();
        let issuer_public_pem = private
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let jwks: Value = s
            .http
            .get(&s.stack.info.jwks_url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let issuer_jwk = jwks["keys"][0].to_string();
        let other = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        let other_pem = other.to_pkcs8_pem(LineEnding::LF).unwrap();
        let other_rsa = EncodingKey::from_rsa_pem(other_pem.as_bytes()).unwrap();
        let public = other.to_public_key();
        let other_rsa_jwk = json!({"kty": "RSA", "use": "sig", "alg": "RS256",
            "kid": s.stack.issuer.kid(),
            "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be())});
        let es256 =
            EncodingKey::from_ec_pem(include_bytes!("../../fixtures/test-es256-key.pem")).unwrap();
        Fixture {
            s,
            addr,
            recorder,
            tok,
            issuer_key,
            issuer_public_pem,
            issuer_jwk,
            other_rsa,
            other_rsa_jwk,
            es256,
            long_id,
            rec_url,
        }
    }

    fn kid(&self) -> &str {
        self.s.stack.issuer.kid()
    }

    /// The demo client's claims with every scope the corpus needs.
    fn claims(&self) -> Value {
        self.s
            .claims(&["hostile/rec", "switchboard/echo", "switchboard/guarded"])
    }

    /// Claims changed by `edit`, signed by the issuer.
    fn signed(&self, edit: impl FnOnce(&mut Value)) -> String {
        let mut c = self.claims();
        edit(&mut c);
        self.s.sign(&c)
    }

    /// A JWS with this header over the usual claims, signed by the issuer's key.
    fn with_header(&self, header: Value) -> String {
        jws(&header, &self.claims(), &self.issuer_key, Algorithm::RS256)
    }

    fn public_url(&self) -> String {
        self.s.stack.info.gateway_url.clone()
    }

    fn public_authority(&self) -> String {
        self.public_url().trim_start_matches("http://").to_owned()
    }

    async fn reset_backends(&self) {
        self.recorder.take();
        for a in &self.s.stack.info.agents {
            let resp = self
                .s
                .http
                .delete(format!("{}/_debug/requests", a.url))
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success());
        }
    }

    async fn sample_logs(&self) -> Vec<(String, Vec<Value>)> {
        let mut out = Vec::new();
        for a in &self.s.stack.info.agents {
            let log: Vec<Value> = self
                .s
                .http
                .get(format!("{}/_debug/requests", a.url))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            out.push((a.id.clone(), log));
        }
        out
    }

    async fn run(&self, case: &Case) -> Result<(), String> {
        self.reset_backends().await;
        let resp = rawhttp::send(self.addr, &case.request, common::PATIENCE)
            .await
            .map_err(|e| format!("no response: {e}"))?;
        // Let a backend that was reached finish logging.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let json = serde_json::from_slice(&resp.body).ok();
        let outcome = Outcome {
            json,
            recorded: self.recorder.take(),
            samples: self.sample_logs().await,
            resp,
        };
        judge(case, &outcome)
    }
}

// ---------------------------------------------------------------------------
// The table.
// ---------------------------------------------------------------------------

fn cases(f: &Fixture) -> Vec<Case> {
    use Backend::{May, Must, Never};
    let tok = f.tok.clone();
    let auth = bearer(&tok);
    let kid = f.kid().to_owned();
    let now = common::now();
    let long_id = f.long_id.clone();
    let public_url = f.public_url();
    let public_authority = f.public_authority();

    vec![
        // ---- Tokens -------------------------------------------------------
        case(
            "token: missing",
            post("/agents/echo", rpc("t-missing")),
            refused("TOKEN_MISSING", rpc_id("t-missing")),
            Never,
        ),
        case(
            "token: empty Authorization header",
            post("/agents/echo", rpc("t-empty")).line("Authorization:"),
            refused("TOKEN_INVALID", rpc_id("t-empty")),
            Never,
        ),
        case(
            "token: scheme without a token",
            post("/agents/echo", rpc("t-scheme")).header("Authorization", "Bearer"),
            refused("TOKEN_INVALID", rpc_id("t-scheme")),
            Never,
        ),
        case(
            "token: scheme and a space, no token",
            post("/agents/echo", rpc("t-space")).header("Authorization", "Bearer "),
            refused("TOKEN_INVALID", rpc_id("t-space")),
            Never,
        ),
        case(
            "token: two parts",
            post("/agents/echo", rpc("t-two")).header("Authorization", "Bearer abc.def"),
            refused("TOKEN_INVALID", rpc_id("t-two")),
            Never,
        ),
        case(
            "token: four parts (a valid token and more)",
            post("/agents/echo", rpc("t-four")).header("Authorization", format!("{auth}.x")),
            refused("TOKEN_INVALID", rpc_id("t-four")),
            Never,
        ),
        case(
            "token: not base64url",
            post("/agents/echo", rpc("t-b64")).header("Authorization", "Bearer !!!.@@@.###"),
            refused("TOKEN_INVALID", rpc_id("t-b64")),
            Never,
        ),
        case(
            "token: header is not JSON",
            post("/agents/echo", rpc("t-hdr")).header(
                "Authorization",
                bearer(&format!("{}.{}.sig", b64(b"hello"), b64(b"{}"))),
            ),
            refused("TOKEN_INVALID", rpc_id("t-hdr")),
            Never,
        ),
        case(
            "token: alg none, no signature",
            post("/agents/echo", rpc("t-none")).header(
                "Authorization",
                bearer(&format!(
                    "{}.{}.",
                    b64(json!({"alg": "none", "kid": kid, "typ": "JWT"}).to_string().as_bytes()),
                    b64(f.claims().to_string().as_bytes())
                )),
            ),
            refused("TOKEN_INVALID", rpc_id("t-none")),
            Never,
        ),
        case(
            "token: alg None with the issuer's real signature",
            post("/agents/echo", rpc("t-None")).header("Authorization", {
                let sig = tok.rsplit('.').next().unwrap().to_owned();
                let body = tok.split('.').nth(1).unwrap().to_owned();
                bearer(&format!(
                    "{}.{body}.{sig}",
                    b64(json!({"alg": "None", "kid": kid}).to_string().as_bytes())
                ))
            }),
            refused("TOKEN_INVALID", rpc_id("t-None")),
            Never,
        ),
        case(
            "token: HS256 keyed with the issuer's public key PEM (alg confusion)",
            post("/agents/echo", rpc("t-hs-pem")).header(
                "Authorization",
                bearer(&jws(
                    &json!({"alg": "HS256", "kid": kid, "typ": "JWT"}),
                    &f.claims(),
                    &EncodingKey::from_secret(f.issuer_public_pem.as_bytes()),
                    Algorithm::HS256,
                )),
            ),
            refused_saying("TOKEN_INVALID", rpc_id("t-hs-pem"), "HS256"),
            Never,
        ),
        case(
            "token: HS256 keyed with the issuer's JWK text (alg confusion)",
            post("/agents/echo", rpc("t-hs-jwk")).header(
                "Authorization",
                bearer(&jws(
                    &json!({"alg": "HS256", "kid": kid}),
                    &f.claims(),
                    &EncodingKey::from_secret(f.issuer_jwk.as_bytes()),
                    Algorithm::HS256,
                )),
            ),
            refused_saying("TOKEN_INVALID", rpc_id("t-hs-jwk"), "HS256"),
            Never,
        ),
        case(
            "token: RS256 signed with another key under the issuer's kid",
            post("/agents/echo", rpc("t-wrong-key")).header(
                "Authorization",
                bearer(&jws(
                    &json!({"alg": "RS256", "kid": kid, "typ": "JWT"}),
                    &f.claims(),
                    &f.other_rsa,
                    Algorithm::RS256,
                )),
            ),
            refused_saying("TOKEN_INVALID", rpc_id("t-wrong-key"), "signature"),
            Never,
        ),
        case(
            "token: ES256 under the issuer's RSA kid",
            post("/agents/echo", rpc("t-es")).header(
                "Authorization",
                bearer(&jws(
                    &json!({"alg": "ES256", "kid": kid}),
                    &f.claims(),
                    &f.es256,
                    Algorithm::ES256,
                )),
            ),
            refused("TOKEN_INVALID", rpc_id("t-es")),
            Never,
        ),
        case(
            "token: unknown kid",
            post("/agents/echo", rpc("t-kid")).header(
                "Authorization",
                bearer(&jws(
                    &json!({"alg": "RS256", "kid": "no-such-key"}),
                    &f.claims(),
                    &f.issuer_key,
                    Algorithm::RS256,
                )),
            ),
            refused_saying("TOKEN_INVALID", rpc_id("t-kid"), "no-such-key"),
            Never,
        ),
        case(
            "token: kid of 4 KB with quotes, CR/LF and non-ASCII (echoed safely)",
            post("/agents/echo", rpc("t-kid-evil")).header(
                "Authorization",
                bearer(&jws(
                    &json!({"alg": "RS256", "kid": format!("../../\"\r\n\u{0435}{}", "k".repeat(4096))}),
                    &f.claims(),
                    &f.issuer_key,
                    Algorithm::RS256,
                )),
            ),
            refused("TOKEN_INVALID", rpc_id("t-kid-evil")),
            Never,
        )
        .check(|o| {
            let m = o.json.as_ref().unwrap()["error"]["message"].as_str().unwrap_or_default();
            if m.len() > 300 {
                return Err(format!("the message echoes {} bytes of kid", m.len()));
            }
            Ok(())
        }),
        case(
            "token: own key embedded in the header (jwk) is never trusted",
            post("/agents/echo", rpc("t-jwk")).header(
                "Authorization",
                bearer(&jws(
                    &json!({"alg": "RS256", "kid": kid, "jwk": f.other_rsa_jwk}),
                    &f.claims(),
                    &f.other_rsa,
                    Algorithm::RS256,
                )),
            ),
            refused("TOKEN_INVALID", rpc_id("t-jwk")),
            Never,
        ),
        case(
            "token: jku pointing at an attacker's JWKS is never fetched",
            post("/agents/echo", rpc("t-jku")).header(
                "Authorization",
                bearer(&jws(
                    &json!({"alg": "RS256", "kid": "attacker",
                        "jku": format!("{}/jwks.json", f.rec_url)}),
                    &f.claims(),
                    &f.other_rsa,
                    Algorithm::RS256,
                )),
            ),
            refused("TOKEN_INVALID", rpc_id("t-jku")),
            Never,
        ),
        case(
            "token: critical header extension",
            post("/agents/echo", rpc("t-crit")).header(
                "Authorization",
                bearer(&f.with_header(json!({"alg": "RS256", "kid": kid, "crit": ["exp"]}))),
            ),
            refused_saying("TOKEN_INVALID", rpc_id("t-crit"), "crit"),
            Never,
        ),
        case(
            "token: expired an hour ago",
            post("/agents/echo", rpc("t-exp")).header(
                "Authorization",
                bearer(&f.signed(|c| c["exp"] = json!(now - 3600))),
            ),
            refused("TOKEN_EXPIRED", rpc_id("t-exp")),
            Never,
        ),
        case(
            "token: expired 5 s ago, inside the 30 s leeway",
            post("/agents/echo", rpc("t-leeway")).header(
                "Authorization",
                bearer(&f.signed(|c| c["exp"] = json!(now - 5))),
            ),
            Expect::Answered(200),
            Must,
        ),
        case(
            "token: nbf an hour ahead",
            post("/agents/echo", rpc("t-nbf")).header(
                "Authorization",
                bearer(&f.signed(|c| c["nbf"] = json!(now + 3600))),
            ),
            refused_saying("TOKEN_INVALID", rpc_id("t-nbf"), "not valid yet"),
            Never,
        ),
        case(
            "token: no exp",
            post("/agents/echo", rpc("t-noexp")).header(
                "Authorization",
                bearer(&f.signed(|c| {
                    c.as_object_mut().unwrap().remove("exp");
                })),
            ),
            refused("TOKEN_INVALID", rpc_id("t-noexp")),
            Never,
        ),
        case(
            "token: exp as a string",
            post("/agents/echo", rpc("t-expstr")).header(
                "Authorization",
                bearer(&f.signed(|c| c["exp"] = json!((now + 600).to_string()))),
            ),
            refused("TOKEN_INVALID", rpc_id("t-expstr")),
            Never,
        ),
        case(
            "token: another issuer",
            post("/agents/echo", rpc("t-iss")).header(
                "Authorization",
                bearer(&f.signed(|c| c["iss"] = json!("https://evil.example"))),
            ),
            refused_saying("TOKEN_INVALID", rpc_id("t-iss"), "issuer"),
            Never,
        ),
        case(
            "token: issuer with a trailing slash",
            post("/agents/echo", rpc("t-iss-slash")).header("Authorization", {
                let iss = format!("{}/", f.s.stack.info.issuer_url);
                bearer(&f.signed(|c| c["iss"] = json!(iss)))
            }),
            refused_saying("TOKEN_INVALID", rpc_id("t-iss-slash"), "issuer"),
            Never,
        ),
        case(
            "token: token_use id",
            post("/agents/echo", rpc("t-use")).header(
                "Authorization",
                bearer(&f.signed(|c| c["token_use"] = json!("id"))),
            ),
            refused_saying("TOKEN_INVALID", rpc_id("t-use"), "token_use"),
            Never,
        ),
        case(
            "token: client_id outside the allow-list",
            post("/agents/echo", rpc("t-client")).header(
                "Authorization",
                bearer(&f.signed(|c| {
                    c["client_id"] = json!("intruder");
                    c["sub"] = json!("intruder");
                })),
            ),
            refused_saying("TOKEN_INVALID", rpc_id("t-client"), "intruder"),
            Never,
        ),
        case(
            "token: client_id not a string (no fall-back to an allowed sub)",
            post("/agents/echo", rpc("t-client-num")).header(
                "Authorization",
                bearer(&f.signed(|c| c["client_id"] = json!(42))),
            ),
            refused_saying("TOKEN_INVALID", rpc_id("t-client-num"), "client_id"),
            Never,
        ),
        case(
            "token: 64 KB",
            post("/agents/echo", rpc("t-64k")).header(
                "Authorization",
                bearer(&format!("{}.{}.{}", "a".repeat(20_000), "b".repeat(25_536), "c".repeat(20_000))),
            ),
            refused_saying("TOKEN_INVALID", rpc_id("t-64k"), "65538 bytes"),
            Never,
        ),
        case(
            "token: two Authorization headers, both valid",
            post("/agents/echo", rpc("t-dup"))
                .header("Authorization", &auth)
                .header("Authorization", &auth),
            refused_saying(
                "TOKEN_INVALID",
                rpc_id("t-dup"),
                "more than one Authorization header",
            ),
            Never,
        ),
        case(
            "token: scheme in lower case is accepted (RFC 9110 §11.1)",
            post("/agents/echo", rpc("t-lower"))
                .header("Authorization", format!("bearer {tok}")),
            Expect::Answered(200),
            Must,
        ),
        case(
            "token: scheme in upper case is accepted",
            post("/agents/echo", rpc("t-upper"))
                .header("Authorization", format!("BEARER {tok}")),
            Expect::Answered(200),
            Must,
        ),
        case(
            "token: two spaces after the scheme",
            post("/agents/echo", rpc("t-2sp")).header("Authorization", format!("Bearer  {tok}")),
            refused("TOKEN_INVALID", rpc_id("t-2sp")),
            Never,
        ),
        case(
            "token: a tab after the scheme",
            post("/agents/echo", rpc("t-tab")).header("Authorization", format!("Bearer\t{tok}")),
            refused("TOKEN_INVALID", rpc_id("t-tab")),
            Never,
        ),
        case(
            "token: Basic credentials",
            post("/agents/echo", rpc("t-basic")).header(
                "Authorization",
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!(
                        "{}:{}",
                        f.s.stack.info.client_id, f.s.stack.info.client_secret
                    ))
                ),
            ),
            refused_saying("TOKEN_INVALID", rpc_id("t-basic"), "Basic"),
            Never,
        ),
        case(
            "token: valid, no scope claim",
            post("/agents/echo", rpc("t-noscope")).header(
                "Authorization",
                bearer(&f.signed(|c| {
                    c.as_object_mut().unwrap().remove("scope");
                })),
            ),
            refused_saying("AGENT_NOT_PERMITTED", rpc_id("t-noscope"), "no scopes"),
            Never,
        ),
        case(
            "token: valid, empty scope",
            post("/agents/echo", rpc("t-emptyscope")).header(
                "Authorization",
                bearer(&f.signed(|c| c["scope"] = json!(""))),
            ),
            refused("AGENT_NOT_PERMITTED", rpc_id("t-emptyscope")),
            Never,
        ),
        case(
            "token: valid, scope for another agent",
            post("/agents/echo", rpc("t-other")).header(
                "Authorization",
                bearer(&f.signed(|c| c["scope"] = json!("switchboard/stream"))),
            ),
            refused("AGENT_NOT_PERMITTED", rpc_id("t-other")),
            Never,
        ),
        case(
            "token: scope glued to another by a no-break space is one scope",
            post("/agents/echo", rpc("t-nbsp")).header(
                "Authorization",
                bearer(&f.signed(|c| c["scope"] = json!("switchboard/echo\u{00a0}x"))),
            ),
            refused("AGENT_NOT_PERMITTED", rpc_id("t-nbsp")),
            Never,
        ),
        // ---- Paths and ids ------------------------------------------------
        case(
            "path: /agents/../healthz",
            post("/agents/../healthz", rpc("p")).header("Authorization", &auth),
            refused("AGENT_NOT_FOUND", Style::Rest),
            Never,
        ),
        case(
            "path: .. after the id climbs to another agent",
            post("/agents/echo/../rec", rpc("p")).header("Authorization", &auth),
            refused("AGENT_NOT_FOUND", Style::Rest),
            Never,
        ),
        case(
            "path: %2e%2e as the id",
            post("/agents/%2e%2e/agents/rec", rpc("p")).header("Authorization", &auth),
            refused("AGENT_NOT_FOUND", Style::Rest),
            Never,
        ),
        case(
            "path: %2e%2e segments in the rest",
            post("/agents/rec/%2e%2e/%2E%2E/admin", rpc("p")).header("Authorization", &auth),
            refused("AGENT_NOT_FOUND", Style::Rest),
            Never,
        ),
        case(
            "path: .%2E mixed",
            RawRequest::new("GET", "/agents/rec/.%2E/x").header("Authorization", &auth),
            refused("AGENT_NOT_FOUND", Style::Rest),
            Never,
        ),
        case(
            "path: double-encoded %252e%252e",
            RawRequest::new("GET", "/agents/rec/%252e%252e/admin").header("Authorization", &auth),
            refused("AGENT_NOT_FOUND", Style::Rest),
            Never,
        ),
        case(
            "path: ..; (a dot segment to servlet containers)",
            RawRequest::new("GET", "/agents/rec/..;/admin").header("Authorization", &auth),
            refused("AGENT_NOT_FOUND", Style::Rest),
            Never,
        ),
        case(
            "path: ..%2F",
            RawRequest::new("GET", "/agents/rec/..%2Fadmin").header("Authorization", &auth),
            refused("AGENT_NOT_FOUND", Style::Rest),
            Never,
        ),
        case(
            "path: %2F inside a segment",
            RawRequest::new("GET", "/agents/rec/tasks%2F..%2F..%2Fadmin")
                .header("Authorization", &auth),
            refused("AGENT_NOT_FOUND", Style::Rest),
            Never,
        ),
        case(
            "path: encoded backslashes",
            RawRequest::new("GET", "/agents/rec/a%5C..%5Cb").header("Authorization", &auth),
            refused("AGENT_NOT_FOUND", Style::Rest),
            Never,
        ),
        case(
            "path: raw backslashes",
            RawRequest::new("GET", "/agents/rec\\..\\echo").header("Authorization", &auth),
            refused("AGENT_NOT_FOUND", Style::Rest),
            Never,
        ),
        case(
            "path: encoded NUL",
            RawRequest::new("GET", "/agents/rec/tasks/t%00x").header("Authorization", &auth),
            refused("AGENT_NOT_FOUND", Style::Rest),
            Never,
        ),
        case(
            "path: encoded CR LF (header injection upstream)",
            RawRequest::new("GET", "/agents/rec/x%0d%0aX-Injected:%20yes")
                .header("Authorization", &auth),
            refused("AGENT_NOT_FOUND", Style::Rest),
            Never,
        ),
        case(
            "id: %2F joins two ids",
            post("/agents/echo%2Frec", rpc("p")).header("Authorization", &auth),
            refused("AGENT_NOT_FOUND", Style::Rest),
            Never,
        ),
        case(
            "id: percent-encoded letters (%65cho)",
            post("/agents/%65cho", rpc("p")).header("Authorization", &auth),
            refused("AGENT_NOT_FOUND", Style::Rest),
            Never,
        ),
        case(
            "id: double-encoded letters (%2565cho)",
            post("/agents/%2565cho", rpc("p")).header("Authorization", &auth),
            refused("AGENT_NOT_FOUND", Style::Rest),
            Never,
        ),
        case(
            "id: Cyrillic look-alike, raw UTF-8",
            post("/agents/\u{0435}cho", rpc("p")).header("Authorization", &auth),
            refused("AGENT_NOT_FOUND", Style::Rest),
            Never,
        ),
        case(
            "id: Cyrillic look-alike, percent-encoded",
            post("/agents/%D0%B5cho", rpc("p")).header("Authorization", &auth),
            refused("AGENT_NOT_FOUND", Style::Rest),
            Never,
        ),
        case(
            "id: full-width letters",
            post("/agents/\u{ff45}\u{ff43}\u{ff48}\u{ff4f}", rpc("p")).header("Authorization", &auth),
            refused("AGENT_NOT_FOUND", Style::Rest),
            Never,
        ),
        case(
            "id: upper case is another id",
            post("/agents/ECHO", rpc("p")).header("Authorization", &auth),
            refused("AGENT_NOT_FOUND", Style::Rest),
            Never,
        ),
        case(
            "id: 65 bytes",
            post(&format!("/agents/{}", "a".repeat(65)), rpc("p")).header("Authorization", &auth),
            refused_saying("AGENT_NOT_FOUND", Style::Rest, "no agent"),
            Never,
        ),
        case(
            "id: exactly 64 bytes is routed",
            post(&format!("/agents/{long_id}"), rpc("id-64")).header("Authorization", &auth),
            Expect::Answered(200),
            Must,
        )
        .check(|o| {
            let seen = o.only_recorded()?;
            (seen.target == "/base")
                .then_some(())
                .ok_or(format!("backend got {}", seen.target))
        }),
        case(
            "id: empty (/agents//rec)",
            post("/agents//rec", rpc("p")).header("Authorization", &auth),
            refused("AGENT_NOT_FOUND", Style::Rest),
            Never,
        ),
        case(
            "id: unknown, well-formed (JSON-RPC error with the id)",
            post("/agents/nobody", rpc("p-unknown")).header("Authorization", &auth),
            refused("AGENT_NOT_FOUND", rpc_id("p-unknown")),
            Never,
        ),
        case(
            "id: unknown, body not one JSON-RPC request: the route decides, not the body",
            post("/agents/nobody", "{}").header("Authorization", &auth),
            refused("AGENT_NOT_FOUND", rpc_null()),
            Never,
        ),
        case(
            "id: unknown, body not JSON: still 404",
            post("/agents/nobody", "not json").header("Authorization", &auth),
            refused("AGENT_NOT_FOUND", rpc_null()),
            Never,
        ),
        case(
            "path: POST /agents/ (no id at all)",
            post("/agents/", rpc("p")).header("Authorization", &auth),
            Expect::Answered(405),
            Never,
        ),
        case(
            "path: trailing slash is the agent's root",
            post("/agents/rec/", rpc("p-slash")).header("Authorization", &auth),
            Expect::Answered(200),
            Must,
        )
        .check(|o| {
            let seen = o.only_recorded()?;
            let body = o.json.as_ref().ok_or("no JSON")?;
            if seen.target != "/base" || body["id"] != json!("p-slash") {
                return Err(format!("backend got {}; answer {body}", seen.target));
            }
            Ok(())
        }),
        case(
            "path: empty segments pass through untouched (they cannot climb)",
            RawRequest::new("GET", "/agents/rec//tasks//t-1").header("Authorization", &auth),
            Expect::Answered(200),
            Must,
        )
        .check(|o| {
            let seen = o.only_recorded()?;
            (seen.target == "/base//tasks//t-1")
                .then_some(())
                .ok_or(format!("backend got {}", seen.target))
        }),
        case(
            "path: a REST path and query reach the backend byte for byte",
            RawRequest::new("GET", "/agents/rec/v1/tasks/t-1:subscribe?a=%20b&x=%0d%0aX-Injected:%201")
                .header("Authorization", &auth),
            Expect::Answered(200),
            Must,
        )
        .check(|o| {
            let seen = o.only_recorded()?;
            if seen.method != "GET"
                || seen.target != "/base/v1/tasks/t-1:subscribe?a=%20b&x=%0d%0aX-Injected:%201"
            {
                return Err(format!("backend got {}", seen.target));
            }
            if seen.header("x-injected").is_some() {
                return Err("the query became a header".into());
            }
            Ok(())
        }),
        // ---- Bodies -------------------------------------------------------
        case(
            "body: Content-Length over the limit is refused before the body is sent (no token needed)",
            post("/agents/echo", vec![b' '; 1024])
                .framed_as_written()
                .header("Content-Length", (50 * 1024 * 1024).to_string()),
            refused("REQUEST_BODY_TOO_LARGE", rpc_null()),
            Never,
        ),
        case(
            "body: Expect 100-continue over the limit gets 413, never 100",
            post("/agents/echo", Vec::new())
                .header("Authorization", &auth)
                .header("Expect", "100-continue")
                .header("Content-Length", (BODY_LIMIT * 100).to_string()),
            refused("REQUEST_BODY_TOO_LARGE", rpc_null()),
            Never,
        )
        .check(|o| {
            o.resp
                .interim
                .is_empty()
                .then_some(())
                .ok_or(format!("interim responses {:?}", o.resp.interim))
        }),
        case(
            "body: Content-Length over the limit on a REST path",
            RawRequest::new("POST", "/agents/rec/v1/message:send")
                .header("Authorization", &auth)
                .header("Content-Length", (BODY_LIMIT + 1).to_string())
                .body(vec![b'x'; 100])
                .framed_as_written(),
            refused("REQUEST_BODY_TOO_LARGE", Style::Rest),
            Never,
        ),
        case(
            "body: chunked JSON-RPC over the limit, no Content-Length",
            RawRequest::new("POST", "/agents/rec")
                .header("Authorization", &auth)
                .chunked(vec![vec![b' '; 10 * 1024]; 4]),
            refused("REQUEST_BODY_TOO_LARGE", rpc_null()),
            Never,
        ),
        case(
            "body: exactly the limit passes",
            post("/agents/rec", rpc_of_len("at-limit", BODY_LIMIT)).header("Authorization", &auth),
            Expect::Answered(200),
            Must,
        )
        .check(|o| {
            let seen = o.only_recorded()?;
            (seen.body_len == Some(BODY_LIMIT))
                .then_some(())
                .ok_or(format!("backend got {:?} bytes", seen.body_len))
        }),
        case(
            "body: one byte over the limit",
            post("/agents/rec", rpc_of_len("over-limit", BODY_LIMIT + 1)).header("Authorization", &auth),
            refused("REQUEST_BODY_TOO_LARGE", rpc_null()),
            Never,
        ),
        case(
            "body: malformed JSON",
            post("/agents/rec", &br#"{"jsonrpc":"2.0","id":"b-bad","method":"SendMessage","#[..])
                .header("Authorization", &auth),
            refused("PARSE_ERROR", rpc_null()),
            Never,
        ),
        case(
            "body: malformed JSON without a token (the token is judged first)",
            post("/agents/rec", &b"{not json"[..]),
            refused("TOKEN_MISSING", rpc_null()),
            Never,
        ),
        case(
            "body: empty",
            RawRequest::new("POST", "/agents/rec")
                .header("Authorization", &auth)
                .header("Content-Length", "0"),
            refused("PARSE_ERROR", rpc_null()),
            Never,
        ),
        case(
            "body: invalid UTF-8 in a string",
            post("/agents/rec", {
                let mut b = br#"{"jsonrpc":"2.0","id":"b-utf8","method":"SendMessage","params":{"t":""#.to_vec();
                b.extend_from_slice(&[0xff, 0xfe, 0xc3]);
                b.extend_from_slice(br#""}}"#);
                b
            })
            .header("Authorization", &auth),
            refused("PARSE_ERROR", rpc_null()),
            Never,
        ),
        case(
            "body: JSON-RPC batch",
            post("/agents/rec", format!("[{},{}]", String::from_utf8(rpc("b1")).unwrap(), String::from_utf8(rpc("b2")).unwrap()))
                .header("Authorization", &auth),
            refused_saying("INVALID_REQUEST", rpc_null(), "batch"),
            Never,
        ),
        case(
            "body: empty batch",
            post("/agents/rec", "[]").header("Authorization", &auth),
            refused("INVALID_REQUEST", rpc_null()),
            Never,
        ),
        case(
            "body: jsonrpc 1.0",
            post("/agents/rec", json!({"jsonrpc": "1.0", "id": "b-v1", "method": "SendMessage", "params": {}}).to_string())
                .header("Authorization", &auth),
            refused_saying("INVALID_REQUEST", rpc_id("b-v1"), "2.0"),
            Never,
        ),
        case(
            "body: jsonrpc member missing",
            post("/agents/rec", json!({"id": "b-nov", "method": "SendMessage", "params": {}}).to_string())
                .header("Authorization", &auth),
            refused("INVALID_REQUEST", rpc_id("b-nov")),
            Never,
        ),
        case(
            "body: jsonrpc as a number",
            post("/agents/rec", json!({"jsonrpc": 2.0, "id": "b-num", "method": "SendMessage"}).to_string())
                .header("Authorization", &auth),
            refused("INVALID_REQUEST", rpc_id("b-num")),
            Never,
        ),
        case(
            "body: method missing",
            post("/agents/rec", json!({"jsonrpc": "2.0", "id": "b-nom", "params": {}}).to_string())
                .header("Authorization", &auth),
            refused("INVALID_REQUEST", rpc_id("b-nom")),
            Never,
        ),
        case(
            "body: method not a string",
            post("/agents/rec", json!({"jsonrpc": "2.0", "id": "b-metnum", "method": 42}).to_string())
                .header("Authorization", &auth),
            refused("INVALID_REQUEST", rpc_id("b-metnum")),
            Never,
        ),
        case(
            "body: id is an object",
            post("/agents/rec", json!({"jsonrpc": "2.0", "id": {"x": 1}, "method": "SendMessage"}).to_string())
                .header("Authorization", &auth),
            refused("INVALID_REQUEST", rpc_null()),
            Never,
        ),
        case(
            "body: a bare string",
            post("/agents/rec", "\"SendMessage\"").header("Authorization", &auth),
            refused("INVALID_REQUEST", rpc_null()),
            Never,
        ),
        case(
            "body: method given twice (the log and the agent could disagree)",
            post("/agents/rec", r#"{"jsonrpc":"2.0","id":"b-dupm","method":"GetTask","method":"CancelTask","params":{}}"#)
                .header("Authorization", &auth),
            refused("INVALID_REQUEST", rpc_null()),
            Never,
        ),
        case(
            "body: unknown method goes to the agent, which answers",
            post("/agents/echo", json!({"jsonrpc": "2.0", "id": "b-unknown", "method": "frobnicate", "params": {}}).to_string())
                .header("Authorization", &auth),
            Expect::Answered(200),
            Must,
        )
        .check(|o| {
            let body = o.json.as_ref().ok_or("no JSON")?;
            if body["id"] != json!("b-unknown") || body["error"]["code"] != json!(-32601) {
                return Err(format!("agent answer {body}"));
            }
            let log = o.sample("echo");
            (log.len() == 1 && log[0]["method"] == json!("frobnicate"))
                .then_some(())
                .ok_or(format!("echo saw {log:?}"))
        }),
        case(
            "body: params nested 10,000 deep pass through the gateway (no stack overflow) to the agent, which refuses them",
            post(
                "/agents/echo",
                format!(
                    r#"{{"jsonrpc":"2.0","id":"b-deep","method":"SendMessage","params":{}{}}}"#,
                    "[".repeat(10_000),
                    "]".repeat(10_000)
                ),
            )
            .header("Authorization", &auth),
            Expect::Answered(200),
            Must,
        )
        .check(|o| {
            let body = o.json.as_ref().ok_or("no JSON")?;
            (body["error"]["code"] == json!(-32700))
                .then_some(())
                .ok_or(format!("agent answer {body}"))
        }),
        case(
            "body: garbage chunk size",
            RawRequest::new("POST", "/agents/rec")
                .header("Authorization", &auth)
                .header("Transfer-Encoding", "chunked")
                .body(&b"zz\r\n{}\r\n0\r\n\r\n"[..])
                .framed_as_written(),
            refused("INVALID_REQUEST", rpc_null()),
            Never,
        ),
        case(
            "body: Transfer-Encoding and Content-Length together are framed by the chunks",
            RawRequest::new("POST", "/agents/rec")
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .header("Content-Length", "5")
                .chunked([rpc("b-smuggle")]),
            Expect::Answered(200),
            Must,
        )
        .check(|o| {
            let seen = o.only_recorded()?;
            let len = rpc("b-smuggle").len();
            let cl = seen.header_all("content-length");
            if seen.body_len != Some(len) || !(cl.is_empty() || cl == [len.to_string()]) {
                return Err(format!(
                    "backend got {:?} bytes with Content-Length {cl:?}",
                    seen.body_len
                ));
            }
            Ok(())
        }),
        case(
            "body: two different Content-Lengths",
            post("/agents/rec", rpc("b-2cl"))
                .header("Authorization", &auth)
                .header("Content-Length", "3"),
            Expect::Http(400),
            Never,
        ),
        case(
            "body: negative Content-Length",
            RawRequest::new("POST", "/agents/rec")
                .header("Authorization", &auth)
                .header("Content-Length", "-1")
                .body(rpc("b-neg"))
                .framed_as_written(),
            Expect::Http(400),
            Never,
        ),
        case(
            "body: unknown transfer coding",
            RawRequest::new("POST", "/agents/rec")
                .header("Authorization", &auth)
                .header("Transfer-Encoding", "xchunked")
                .body(rpc("b-te"))
                .framed_as_written(),
            Expect::Http(400),
            Never,
        ),
        case(
            "body: chunked in HTTP/1.0",
            RawRequest::with_request_line("POST /agents/rec HTTP/1.0")
                .header("Authorization", &auth)
                .chunked([rpc("b-10")]),
            Expect::Http(400),
            Never,
        ),
        // ---- Headers ------------------------------------------------------
        case(
            "header: bare CR inside a value",
            post("/agents/rec", rpc("h")).line(format!("Authorization: {auth}\rX-Injected: 1")),
            Expect::Http(400),
            Never,
        ),
        case(
            "header: obsolete line folding",
            post("/agents/rec", rpc("h"))
                .header("Authorization", &auth)
                .line("X-Folded: a")
                .line(" X-Injected: 1"),
            Expect::Http(400),
            Never,
        ),
        case(
            "header: NUL inside a value",
            post("/agents/rec", rpc("h"))
                .header("Authorization", &auth)
                .line("X-Nul: a\0b"),
            Expect::Http(400),
            Never,
        ),
        case(
            "header: space before the colon",
            post("/agents/rec", rpc("h"))
                .line(format!("Authorization : {auth}")),
            Expect::Http(400),
            Never,
        ),
        case(
            "header: 1 MiB value",
            post("/agents/rec", rpc("h"))
                .header("Authorization", &auth)
                .header("X-Big", "a".repeat(1024 * 1024)),
            Expect::Http(431),
            Never,
        ),
        case(
            "header: 200 header lines",
            (0..200).fold(
                post("/agents/rec", rpc("h")).header("Authorization", &auth),
                |r, i| r.header(format!("X-Many-{i}"), "1"),
            ),
            Expect::Http(431),
            Never,
        ),
        case(
            "header: Host, Forwarded and X-Forwarded-* spoofed",
            post("/agents/rec", rpc("h-spoof"))
                .host("evil.example")
                .header("Authorization", &auth)
                .header("X-Forwarded-Host", "evil.example")
                .header("X-Forwarded-Proto", "https")
                .header("X-Forwarded-For", "6.6.6.6")
                .header("Forwarded", "for=6.6.6.6;host=evil.example;proto=https"),
            Expect::Answered(200),
            Must,
        )
        .check({
            let public_authority = public_authority.clone();
            move |o| forwarded_by_the_gateway(o, &public_authority)
        }),
        case(
            "header: two Host lines",
            post("/agents/rec", rpc("h-2host"))
                .header("Authorization", &auth)
                .header("Host", "evil.example"),
            Expect::Answered(200),
            Must,
        )
        .check({
            let public_authority = public_authority.clone();
            move |o| forwarded_by_the_gateway(o, &public_authority)
        }),
        case(
            "header: absolute-form target naming another host",
            RawRequest::new("POST", "http://evil.example/agents/rec")
                .header("Content-Type", "application/json")
                .header("Authorization", &auth)
                .body(rpc("h-abs")),
            Expect::Answered(200),
            Must,
        )
        .check({
            let public_authority = public_authority.clone();
            move |o| forwarded_by_the_gateway(o, &public_authority)
        }),
        case(
            "header: card through the gateway ignores Host and X-Forwarded-*",
            RawRequest::new("GET", "/agents/echo/.well-known/agent-card.json")
                .host("evil.example")
                .header("X-Forwarded-Host", "evil.example")
                .header("X-Forwarded-Proto", "https")
                .header("Forwarded", "host=evil.example;proto=https"),
            Expect::Answered(200),
            May,
        )
        .check({
            let public_url = public_url.clone();
            move |o| {
                let card = o.json.as_ref().ok_or("card is not JSON")?;
                let text = card.to_string();
                if text.contains("evil.example") {
                    return Err(format!("the card took a spoofed host: {text}"));
                }
                let want = format!("{public_url}/agents/echo");
                let mut urls = vec![card["url"].clone()];
                urls.extend(
                    card["supportedInterfaces"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|i| i["url"].clone()),
                );
                urls.extend(
                    card["additionalInterfaces"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|i| i["url"].clone()),
                );
                for u in &urls {
                    let u = u.as_str().ok_or(format!("card URL {u}"))?;
                    if !u.starts_with(&want) {
                        return Err(format!("card URL {u} is not under {want}"));
                    }
                }
                Ok(())
            }
        }),
        case(
            "header: GET /agents ignores Host and X-Forwarded-*",
            RawRequest::new("GET", "/agents")
                .host("evil.example")
                .header("X-Forwarded-Host", "evil.example")
                .header("Authorization", &auth),
            Expect::Answered(200),
            Never,
        )
        .check({
            let public_url = public_url.clone();
            move |o| {
                let list = o.json.as_ref().ok_or("not JSON")?;
                let agents = list["agents"].as_array().ok_or(format!("{list}"))?;
                let all_public = agents.iter().all(|a| {
                    a["url"].as_str().is_some_and(|u| u.starts_with(&public_url))
                });
                (!agents.is_empty() && all_public)
                    .then_some(())
                    .ok_or(format!("{list}"))
            }
        }),
        case(
            "header: Connection: authorization keeps the gateway's backend token",
            post("/agents/guarded", rpc("h-conn-auth"))
                .header("Authorization", &auth)
                .header("Connection", "keep-alive, Authorization"),
            Expect::Answered(200),
            Must,
        )
        .check({
            let tok = tok.clone();
            move |o| {
                let body = o.json.as_ref().ok_or("no JSON")?;
                if body.get("result").is_none() {
                    return Err(format!("guarded agent refused: {body}"));
                }
                let log = o.sample("guarded");
                let got = log
                    .first()
                    .and_then(|r| r["authorization"].as_str())
                    .ok_or(format!("guarded saw {log:?}"))?;
                if !got.starts_with("Bearer ") || got.contains(&tok) {
                    return Err(format!("guarded got Authorization {got:?}"));
                }
                Ok(())
            }
        }),
        case(
            "header: a caller's copy of the backend credential header is replaced, even if listed in Connection",
            post("/agents/keyed", rpc("h-key"))
                .header("Authorization", &auth)
                .header("X-Api-Key", "caller-chosen")
                .header("X-Api-Key", "second")
                .header("Connection", "x-api-key"),
            Expect::Answered(200),
            Must,
        )
        .check(|o| {
            let seen = o.only_recorded()?;
            let keys = seen.header_all("x-api-key");
            (keys == [BACKEND_KEY])
                .then_some(())
                .ok_or(format!("backend got x-api-key {keys:?}"))
        }),
        case(
            "header: Connection cannot strip A2A-Version",
            post("/agents/echo", rpc("h-conn-ver"))
                .header("Authorization", &auth)
                .header("Connection", "A2A-Version"),
            Expect::Answered(200),
            Must,
        )
        .check(|o| {
            let body = o.json.as_ref().ok_or("no JSON")?;
            let log = o.sample("echo");
            let version = log.first().map(|r| r["a2a_version"].clone());
            (body.get("result").is_some() && version == Some(json!("1.0")))
                .then_some(())
                .ok_or(format!("echo saw {log:?}; answered {body}"))
        }),
        case(
            "header: Connection cannot strip Content-Type; it still drops what it lists",
            post("/agents/rec", rpc("h-conn-ct"))
                .header("Authorization", &auth)
                .header("Connection", "content-type, x-hop")
                .header("X-Hop", "1"),
            Expect::Answered(200),
            Must,
        )
        .check(|o| {
            let seen = o.only_recorded()?;
            (seen.header("content-type") == Some("application/json") && seen.header("x-hop").is_none())
                .then_some(())
                .ok_or(format!("backend got {:?}", seen.headers))
        }),
        case(
            "header: Connection: x-forwarded-for cannot remove the gateway's own",
            post("/agents/rec", rpc("h-conn-xff"))
                .header("Authorization", &auth)
                .header("Connection", "X-Forwarded-For, X-Forwarded-Proto")
                .header("X-Forwarded-For", "6.6.6.6"),
            Expect::Answered(200),
            Must,
        )
        .check(|o| {
            let seen = o.only_recorded()?;
            (seen.header_all("x-forwarded-for") == ["127.0.0.1"]
                && seen.header_all("x-forwarded-proto") == ["http"])
                .then_some(())
                .ok_or(format!("backend got {:?}", seen.headers))
        }),
        case(
            "header: h2c upgrade is not passed on",
            post("/agents/rec", rpc("h-h2c"))
                .header("Authorization", &auth)
                .header("Connection", "Upgrade, HTTP2-Settings")
                .header("Upgrade", "h2c")
                .header("HTTP2-Settings", "AAMAAABkAAQAAP__"),
            Expect::Answered(200),
            Must,
        )
        .check(|o| {
            let seen = o.only_recorded()?;
            let leaked: Vec<_> = ["upgrade", "http2-settings", "connection"]
                .into_iter()
                .filter_map(|h| seen.header(h).map(|v| format!("{h}: {v}")))
                .filter(|l| !l.eq_ignore_ascii_case("connection: keep-alive"))
                .collect();
            leaked.is_empty().then_some(()).ok_or(format!("backend got {leaked:?}"))
        }),
        case(
            "header: websocket upgrade is not passed on",
            RawRequest::new("GET", "/agents/rec/v1/tasks/t-1:subscribe")
                .header("Authorization", &auth)
                .header("Connection", "Upgrade")
                .header("Upgrade", "websocket")
                .header("Sec-WebSocket-Version", "13")
                .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            Expect::Answered(200),
            Must,
        )
        .check(|o| {
            let seen = o.only_recorded()?;
            seen.header("upgrade")
                .is_none()
                .then_some(())
                .ok_or(format!("backend got {:?}", seen.headers))
        }),
        case(
            "header: caller credentials for others stay behind (Proxy-Authorization, Cookie, TE, Expect)",
            post("/agents/rec", rpc("h-creds"))
                .header("Authorization", &auth)
                .header("Proxy-Authorization", "Basic dXNlcjpwYXNz")
                .header("Cookie", "session=caller")
                .header("TE", "trailers")
                .header("Expect", "100-continue"),
            Expect::Answered(200),
            Must,
        )
        .check(|o| {
            let seen = o.only_recorded()?;
            let leaked: Vec<_> = ["authorization", "proxy-authorization", "cookie", "te", "expect"]
                .into_iter()
                .filter(|h| seen.header(h).is_some())
                .collect();
            leaked.is_empty().then_some(()).ok_or(format!("backend got {leaked:?}"))
        }),
    ]
}

/// The backend saw the gateway's view of the request, not the caller's:
/// its own Host, `X-Forwarded-*` from the gateway's public URL and the
/// peer address, and no `Forwarded`.
fn forwarded_by_the_gateway(o: &Outcome, public_authority: &str) -> Result<(), String> {
    let seen = o.only_recorded()?;
    let mut wrong = String::new();
    let host = seen.header("host").unwrap_or_default();
    if host.contains("evil") {
        let _ = write!(wrong, "host {host:?}; ");
    }
    for (name, want) in [
        ("x-forwarded-host", public_authority),
        ("x-forwarded-proto", "http"),
        ("x-forwarded-for", "127.0.0.1"),
    ] {
        let got = seen.header_all(name);
        if got != [want] {
            let _ = write!(wrong, "{name} {got:?} (expected {want:?}); ");
        }
    }
    if let Some(f) = seen.header("forwarded") {
        let _ = write!(wrong, "forwarded {f:?}; ");
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("backend got {wrong}"))
    }
}

#[tokio::test]
async fn hostile_requests_get_the_answers_the_table_gives() {
    let f = Fixture::start().await;
    let table = cases(&f);
    assert!(
        table.len() >= 80,
        "the corpus has only {} cases",
        table.len()
    );
    let mut names = std::collections::BTreeSet::new();
    for c in &table {
        assert!(names.insert(c.name.clone()), "two cases named {:?}", c.name);
    }
    let mut failures = Vec::new();
    for c in &table {
        if let Err(why) = f.run(c).await {
            failures.push(format!("[{}] {why}", c.name));
        }
    }
    // The gateway is still up and serving after all of it.
    let health = rawhttp::send(
        f.addr,
        &RawRequest::new("GET", "/healthz"),
        common::PATIENCE,
    )
    .await
    .unwrap();
    assert_eq!(health.status, 200);
    assert!(
        failures.is_empty(),
        "{} of {} hostile cases failed:\n{}",
        failures.len(),
        table.len(),
        failures.join("\n")
    );
}

/// The answer to an oversized declared body comes while the client is
/// still sending: the gateway never reads the body it refuses.
#[tokio::test]
async fn oversized_bodies_are_refused_before_the_client_finishes_sending() {
    let f = Fixture::start().await;
    f.reset_backends().await;
    let declared = 64 * 1024 * 1024;
    let req = post("/agents/echo", Vec::new())
        .header("Authorization", bearer(&f.tok))
        .header("Content-Length", declared.to_string());
    let mut conn = rawhttp::RawConnection::connect(f.addr).await.unwrap();
    conn.write(&req.head_bytes(f.addr)).await.unwrap();
    // Some of the body, then the answer, with most of it never sent. The
    // gateway may have answered and closed already, so this write may fail;
    // what counts is the answer.
    let _ = conn.write(&vec![b' '; 16 * 1024]).await;
    let resp = conn
        .read_response(common::PATIENCE, false)
        .await
        .expect("the gateway answers before the body is complete");
    assert_eq!(resp.status, 413);
    let body: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(body["error"]["code"], json!(-32054));
    assert_eq!(f.recorder.take().len(), 0);
    let logs = f.sample_logs().await;
    assert!(logs.iter().all(|(_, l)| l.is_empty()), "{logs:?}");
}

/// The same corpus idea for what the registry accepts: ids and backend URLs
/// that must never be stored, each refused with a message that says why.
/// Judged through the core API every front end (CLI, console, import) uses.
#[test]
fn the_registry_refuses_hostile_agents_with_a_clear_message() {
    let agent = |id: &str, url: &str| AgentRecord::new(id, url);
    let table: Vec<(&str, AgentRecord, &str)> = vec![
        (
            "id with a slash",
            agent("a/b", "http://127.0.0.1:9"),
            "agent id",
        ),
        ("id ..", agent("..", "http://127.0.0.1:9"), "agent id"),
        (
            "id %2e%2e",
            agent("%2e%2e", "http://127.0.0.1:9"),
            "agent id",
        ),
        (
            "id in upper case",
            agent("Echo", "http://127.0.0.1:9"),
            "agent id",
        ),
        (
            "id with a Cyrillic look-alike",
            agent("\u{0435}cho", "http://127.0.0.1:9"),
            "agent id",
        ),
        (
            "id of 65 bytes",
            agent(&"a".repeat(65), "http://127.0.0.1:9"),
            "at most 64",
        ),
        ("empty id", agent("", "http://127.0.0.1:9"), "empty"),
        (
            "id starting with -",
            agent("-a", "http://127.0.0.1:9"),
            "must start",
        ),
        (
            "credentials in the URL",
            agent("a", "http://user:pass@127.0.0.1:9"),
            "credentials",
        ),
        (
            "user name only in the URL",
            agent("a", "http://user@127.0.0.1:9"),
            "credentials",
        ),
        (
            "file scheme",
            agent("a", "file:///etc/passwd"),
            "only http and https",
        ),
        (
            "gopher scheme",
            agent("a", "gopher://127.0.0.1:70/"),
            "only http and https",
        ),
        (
            "AWS/GCP/Azure metadata",
            agent("a", "http://169.254.169.254/latest/meta-data"),
            "169.254.169.254 is a cloud-metadata address",
        ),
        (
            "ECS task metadata",
            agent("a", "http://169.254.170.2/v2/credentials"),
            "169.254.170.2 is a cloud-metadata address",
        ),
        (
            "link-local",
            agent("a", "http://169.254.10.20:8080"),
            "169.254.10.20 is link-local",
        ),
        (
            "metadata as a decimal number",
            agent("a", "http://2852039166/"),
            "169.254.169.254 is a cloud-metadata address",
        ),
        (
            "metadata in hexadecimal",
            agent("a", "http://0xA9FEA9FE/"),
            "169.254.169.254 is a cloud-metadata address",
        ),
        (
            "metadata in octal",
            agent("a", "http://0251.0376.0251.0376/"),
            "169.254.169.254 is a cloud-metadata address",
        ),
        (
            "metadata percent-encoded",
            agent("a", "http://%31%36%39.254.169.254/"),
            "169.254.169.254 is a cloud-metadata address",
        ),
        (
            "metadata in full-width digits",
            agent("a", "http://\u{ff11}\u{ff16}\u{ff19}.254.169.254/"),
            "169.254.169.254 is a cloud-metadata address",
        ),
        (
            "AWS metadata over IPv6",
            agent("a", "http://[fd00:ec2::254]/"),
            "[fd00:ec2::254] is a cloud-metadata address",
        ),
        (
            "IPv4-mapped metadata",
            agent("a", "http://[::ffff:169.254.169.254]/"),
            "embeds 169.254.169.254, which is a cloud-metadata address",
        ),
        (
            "IPv4-mapped link-local",
            agent("a", "http://[::ffff:a9fe:0a14]/"),
            "embeds 169.254.10.20, which is link-local",
        ),
        (
            "NAT64 metadata",
            agent("a", "http://[64:ff9b::169.254.169.254]/"),
            "embeds 169.254.169.254, which is a cloud-metadata address",
        ),
        (
            "IPv6 link-local",
            agent("a", "http://[fe80::1]:8080/"),
            "[fe80::1] is link-local",
        ),
        (
            "GCP metadata host name",
            agent("a", "http://metadata.google.internal/computeMetadata/v1/"),
            "is a cloud-metadata host name",
        ),
        (
            "Alibaba metadata",
            agent("a", "http://100.100.100.200/latest/meta-data"),
            "100.100.100.200 is a cloud-metadata address",
        ),
        (
            "a query in the base URL",
            agent("a", "http://127.0.0.1:9/a2a?x=1"),
            "query",
        ),
        (
            "a fragment in the base URL",
            agent("a", "http://127.0.0.1:9/a2a#x"),
            "fragment",
        ),
        (
            "backslash host confusion",
            agent("a", "http://127.0.0.1\\@169.254.169.254/"),
            "backslash",
        ),
        (
            "token URL at the metadata address",
            {
                let mut a = agent("a", "http://127.0.0.1:9");
                a.auth = BackendAuth::OAuth2 {
                    token_url: "http://169.254.169.254/token".into(),
                    client_id: "c".into(),
                    secret: "s".into(),
                    scopes: vec![],
                };
                a
            },
            "token URL \"http://169.254.169.254/token\" points at a link-local",
        ),
        (
            "credential in the Host header",
            {
                let mut a = agent("a", "http://127.0.0.1:9");
                a.auth = BackendAuth::Header {
                    name: "Host".into(),
                    secret: "s".into(),
                };
                a
            },
            "cannot carry backend credentials",
        ),
    ];
    let mut failures = Vec::new();
    for (name, record, says) in &table {
        match validate_agent(record) {
            Ok(()) => failures.push(format!("[{name}] accepted")),
            Err(errors) => {
                let all = errors.join("; ");
                if !all.contains(says) {
                    failures.push(format!("[{name}] {all:?} does not say {says:?}"));
                }
            }
        }
    }
    for (name, url) in [
        ("loopback", "http://127.0.0.1:8080"),
        ("localhost", "http://localhost:9000/a2a"),
        ("IPv6 loopback", "http://[::1]:9/"),
        ("private network", "http://10.1.2.3:8443/a2a"),
        ("public name over https", "https://agent.example.com/a2a/"),
    ] {
        if let Err(e) = validate_agent(&agent("ok", url)) {
            failures.push(format!("[{name}] refused: {e:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Registry import judges every agent the same way and says which.
    let file = json!({"agents": [
        {"id": "meta", "url": "http://[::ffff:169.254.169.254]/"},
        {"id": "Bad", "url": "http://127.0.0.1:9"},
    ]});
    let errors = RegistryFile::parse(&file.to_string()).unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("agent meta: \"http://[::ffff:169.254.169.254]/\" points at"),
        "{errors:?}"
    );
    assert!(
        errors[0].contains("which is a cloud-metadata address"),
        "{errors:?}"
    );
    assert!(errors[1].starts_with("agent id \"Bad\""), "{errors:?}");
}
