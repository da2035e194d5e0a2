//! Shared harness: the whole local stack on ephemeral ports, real sockets,
//! a real SQLite file and tokens signed with the issuer's real key.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

mod process;
mod wait;

use std::time::Duration;

use serde_json::{json, Value};
use switchboard_core::profile::AwsProfile;
use switchboard_core::registry::AgentRecord;
use switchboard_core::store::aws::{AwsConnection, AwsCredentials, AwsSettings};
use switchboard_core::store::dynamodb::DynamoStore;
use switchboard_core::store::Stores;
use switchboard_core::GatewayConfig;
use switchboard_emulator::stack::{open_stores, LocalStack, StackOptions};
use switchboard_tests::faults::FaultProxy;
use switchboard_tests::moto::{self, Moto};
use tempfile::TempDir;

pub use process::{binary, ok, ServeProcess};
pub use wait::{in_one_window, until, PATIENCE, SLACK};

pub struct Stack {
    pub stack: LocalStack,
    pub http: reqwest::Client,
    pub dir: TempDir,
    /// The local AWS behind an AWS-backed stack.
    pub aws: Option<AwsSide>,
}

/// Which stores a stack runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The local profile: one SQLite file.
    Sqlite,
    /// An AWS profile: DynamoDB and Secrets Manager on a local moto server,
    /// reached through a proxy that can fail on demand. The local issuer
    /// stands in for Cognito (its clients stay in SQLite).
    Aws,
}

/// The AWS side of a stack.
pub struct AwsSide {
    /// Between the gateway and moto.
    pub proxy: FaultProxy,
    /// The profile the stack's stores use (endpoint: the proxy).
    pub profile: AwsProfile,
    pub moto: Moto,
}

/// An AWS profile on `endpoint` with static test credentials.
pub fn aws_profile(endpoint: &str, prefix: &str, issuer: &str) -> AwsProfile {
    AwsProfile {
        region: moto::REGION.into(),
        table_prefix: prefix.into(),
        secret_prefix: format!("{prefix}secrets/"),
        issuer: issuer.into(),
        jwks_uri: None,
        token_url: None,
        endpoint_url: Some(endpoint.into()),
        aws_profile: None,
    }
}

pub fn aws_connection(profile: &AwsProfile) -> AwsConnection {
    AwsConnection::new(
        "e2e",
        profile,
        AwsCredentials::Static {
            access_key_id: moto::ACCESS_KEY_ID.into(),
            secret_access_key: moto::SECRET_ACCESS_KEY.into(),
        },
        AwsSettings::default(),
    )
    .unwrap()
}

pub async fn start_on(backend: Backend) -> Stack {
    start_on_with(backend, GatewayConfig::default()).await
}

pub async fn start_on_with(backend: Backend, config: GatewayConfig) -> Stack {
    match backend {
        Backend::Sqlite => start_with(config).await,
        Backend::Aws => start_aws(config).await,
    }
}

async fn start_aws(config: GatewayConfig) -> Stack {
    let dir = tempfile::tempdir().unwrap();
    install_test_key(dir.path());
    let moto = Moto::start().await;
    let proxy = FaultProxy::start(moto.endpoint()).await;
    let profile = aws_profile(&proxy.url(), &moto::unique_prefix("e2e"), "http://unused");
    let conn = aws_connection(&profile);
    DynamoStore::new(conn.clone())
        .bootstrap(Duration::from_secs(30))
        .await
        .unwrap();
    let mut stores = Stores::aws(conn);
    stores.clients = open_stores(dir.path()).unwrap().clients;
    let stack = LocalStack::start_with_stores(
        StackOptions {
            data_dir: dir.path().to_path_buf(),
            listen: "127.0.0.1:0".parse().unwrap(),
            config,
        },
        stores,
    )
    .await
    .expect("the stack starts on the AWS stores");
    Stack {
        stack,
        http: client(),
        dir,
        aws: Some(AwsSide {
            proxy,
            profile,
            moto,
        }),
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub async fn start() -> Stack {
    start_with(GatewayConfig::default()).await
}

pub async fn start_with(config: GatewayConfig) -> Stack {
    let dir = tempfile::tempdir().unwrap();
    install_test_key(dir.path());
    let stack = LocalStack::start(StackOptions {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        config,
    })
    .await
    .expect("the local stack starts");
    Stack {
        stack,
        http: client(),
        dir,
        aws: None,
    }
}

/// Puts the fixture signing key in a data directory, so tests skip RSA key
/// generation (covered by the issuer's own tests).
pub fn install_test_key(data_dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let src = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/test-issuer-key.pem"
    );
    let dst = data_dir.join("issuer-key.pem");
    std::fs::copy(src, &dst).unwrap();
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o600)).unwrap();
}

impl Stack {
    pub fn gw(&self, path: &str) -> String {
        format!("{}{}", self.stack.info.gateway_url, path)
    }

    pub fn agent_backend(&self, id: &str) -> String {
        self.stack
            .info
            .agents
            .iter()
            .find(|a| a.id == id)
            .unwrap()
            .url
            .clone()
    }

    /// A token from the issuer's token endpoint for the demo client.
    pub async fn token(&self, scopes: &[&str]) -> String {
        let info = &self.stack.info;
        let resp = self
            .http
            .post(&info.token_url)
            .basic_auth(&info.client_id, Some(&info.client_secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", &scopes.join(" ")),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            200,
            "token endpoint: {}",
            resp.text().await.unwrap()
        );
        let body: Value = resp.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// Signs arbitrary claims with the issuer's own key and kid.
    pub fn sign(&self, claims: &Value) -> String {
        let pem = std::fs::read_to_string(self.dir.path().join("issuer-key.pem")).unwrap();
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(self.stack.issuer.kid().to_owned());
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }

    /// Claims like the issuer's, valid now, for the demo client.
    pub fn claims(&self, scopes: &[&str]) -> Value {
        let now = now();
        json!({
            "sub": "demo-client",
            "client_id": "demo-client",
            "scope": scopes.join(" "),
            "token_use": "access",
            "iss": self.stack.info.issuer_url,
            "iat": now,
            "exp": now + 600,
            "jti": "test",
        })
    }

    pub async fn send(&self, agent: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.gw(&format!("/agents/{agent}")))
            .header("A2A-Version", "1.0")
            .json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    /// Waits until the gateway's registry cache has caught up with the store.
    pub async fn reload(&self) {
        self.stack.gateway.registry.reload().await.unwrap();
    }

    /// Edits agent `id` in the store, and waits until the gateway has the edit.
    pub async fn edit_agent(&self, id: &str, edit: impl FnOnce(&mut AgentRecord)) {
        let agents = &self.stack.stores.agents;
        let mut agent = agents.get(id).await.unwrap().unwrap();
        edit(&mut agent);
        agents.update(agent).await.unwrap();
        self.reload().await;
    }

    /// The `Authorization` header of every request sample agent `agent`
    /// received, oldest first.
    pub async fn seen_authorizations(&self, agent: &str) -> Vec<Option<String>> {
        seen_authorizations(&self.http, &self.agent_backend(agent)).await
    }

    /// Waits until discovery has loaded its model (or given up on it) and
    /// indexed the registry, its store writes included, so that nothing runs
    /// in the background any more; fails if it has not within two minutes.
    pub async fn settle_discovery(&self) {
        const WAIT: Duration = Duration::from_secs(120);
        let discovery = &self.stack.gateway.discovery;
        let started = std::time::Instant::now();
        let status = discovery.settle(WAIT).await;
        // `settle` returns early only once settled and caught up with the registry.
        assert!(
            started.elapsed() < WAIT && discovery.is_settled(),
            "discovery did not settle within {WAIT:?}: {status:?}"
        );
    }
}

/// The `Authorization` header of every request the sample agent at
/// `backend` received, oldest first (its `/_debug/requests`).
pub async fn seen_authorizations(http: &reqwest::Client, backend: &str) -> Vec<Option<String>> {
    let v: Value = http
        .get(format!("{backend}/_debug/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r["authorization"].as_str().map(str::to_owned))
        .collect()
}

pub fn send_message(id: &str, text: &str) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "SendMessage",
        "params": {"message": {"messageId": format!("m-{id}"), "role": "ROLE_USER", "parts": [{"text": text}]}},
    })
}
