//! The store suite against DynamoDB and Secrets Manager (a local moto
//! server), plus what only the AWS backends promise: batches beyond one
//! transaction, generations shared by instances, bootstrap, missing tables,
//! throttling and an endpoint that goes away.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod store_suite;

use std::sync::Arc;
use std::time::{Duration, Instant};

use pretty_assertions::assert_eq;
use switchboard_core::profile::AwsProfile;
use switchboard_core::registry::{
    AgentRecord, ClientRecord, CounterKey, CounterOutcome, RegistryCache, Secret, StoreError,
};
use switchboard_core::store::aws::{AwsConnection, AwsCredentials, AwsSettings};
use switchboard_core::store::dynamodb::DynamoStore;
use switchboard_core::store::Stores;
use switchboard_tests::faults::FaultProxy;
use switchboard_tests::moto::{self, Moto};

fn profile(endpoint: &str, prefix: &str) -> AwsProfile {
    AwsProfile {
        region: moto::REGION.into(),
        table_prefix: prefix.into(),
        secret_prefix: format!("{prefix}secrets/"),
        issuer: "http://127.0.0.1:9/issuer".into(),
        jwks_uri: None,
        token_url: None,
        endpoint_url: Some(endpoint.into()),
        aws_profile: None,
    }
}

fn static_keys() -> AwsCredentials {
    AwsCredentials::Static {
        access_key_id: moto::ACCESS_KEY_ID.into(),
        secret_access_key: moto::SECRET_ACCESS_KEY.into(),
    }
}

fn connect_with(endpoint: &str, prefix: &str, settings: AwsSettings) -> AwsConnection {
    AwsConnection::new("test", &profile(endpoint, prefix), static_keys(), settings).unwrap()
}

fn connect(endpoint: &str, prefix: &str) -> AwsConnection {
    connect_with(endpoint, prefix, AwsSettings::default())
}

/// Fresh tables under a new prefix, created and active.
async fn fresh(endpoint: &str, label: &str) -> Stores {
    let conn = connect(endpoint, &moto::unique_prefix(label));
    DynamoStore::new(conn.clone())
        .bootstrap(Duration::from_secs(30))
        .await
        .unwrap();
    Stores::aws(conn)
}

#[tokio::test]
async fn store_suite_on_dynamodb_and_secrets_manager() {
    let moto = Moto::start().await;
    let e = moto.endpoint();
    store_suite::agents(&fresh(e, "agents").await).await;
    store_suite::refuses_invalid_agents_and_permissions(&fresh(e, "invalid").await).await;
    store_suite::permissions(&fresh(e, "perms").await).await;
    store_suite::counters(&fresh(e, "counters").await).await;
    store_suite::counters_exact_under_concurrency(&fresh(e, "burst").await).await;
    store_suite::secrets(&fresh(e, "secrets").await).await;
    store_suite::embeddings(&fresh(e, "embeddings").await).await;
}

#[tokio::test]
async fn clients_live_in_the_cognito_user_pool() {
    let moto = Moto::start().await;
    let stores = fresh(moto.endpoint(), "clients").await;
    assert_eq!(stores.clients.list().await.unwrap(), vec![]);
    assert_eq!(stores.clients.get("c1").await.unwrap(), None);
    let rec = ClientRecord {
        client_id: "c1".into(),
        secret_hash: "salt$hash".into(),
        allowed_scopes: vec![],
        created_at: 1,
    };
    for err in [
        stores.clients.create(rec).await.unwrap_err(),
        stores.clients.delete("c1").await.unwrap_err(),
    ] {
        assert!(err.to_string().contains("Cognito user pool"), "{err}");
    }
}

#[tokio::test]
async fn put_many_spans_several_transactions() {
    let moto = Moto::start().await;
    let stores = fresh(moto.endpoint(), "many").await;
    let g0 = stores.agents.generation().await.unwrap();
    let records: Vec<AgentRecord> = (0..250)
        .map(|i| AgentRecord::new(format!("a{i:03}"), "http://127.0.0.1:1"))
        .collect();
    stores.agents.put_many(records.clone()).await.unwrap();
    let listed = stores.agents.list().await.unwrap();
    assert_eq!(listed.len(), 250);
    assert!(listed.iter().all(|a| a.version == 1));
    assert_eq!(listed[0].id, "a000");
    assert!(stores.agents.generation().await.unwrap() > g0);
    // Replacing bumps every version; ids repeated in one call are written once.
    let mut again = records;
    again.push(AgentRecord::new("a000", "http://127.0.0.1:2"));
    stores.agents.put_many(again).await.unwrap();
    let a0 = stores.agents.get("a000").await.unwrap().unwrap();
    assert_eq!((a0.version, a0.url.as_str()), (2, "http://127.0.0.1:2"));
    // The bookkeeping item is not an agent.
    assert_eq!(stores.agents.get("#generation").await.unwrap(), None);
    assert!(matches!(
        stores
            .agents
            .create(AgentRecord::new("#generation", "http://x"))
            .await,
        Err(StoreError::Conflict(_))
    ));
}

#[tokio::test]
async fn instances_see_each_others_edits() {
    let moto = Moto::start().await;
    let prefix = moto::unique_prefix("shared");
    let a = Stores::aws(connect(moto.endpoint(), &prefix));
    DynamoStore::new(connect(moto.endpoint(), &prefix))
        .bootstrap(Duration::from_secs(30))
        .await
        .unwrap();
    // A second instance: its own connection, the same tables.
    let b = Stores::aws(connect(moto.endpoint(), &prefix));
    let cache = RegistryCache::load(b.agents.clone(), b.permissions.clone())
        .await
        .unwrap();
    assert!(!cache.refresh().await.unwrap());
    a.agents
        .create(AgentRecord::new("echo", "http://127.0.0.1:1"))
        .await
        .unwrap();
    assert!(cache.refresh().await.unwrap());
    assert!(cache.snapshot().routable("echo").is_some());
    a.permissions
        .grant("s", &["echo".to_owned()])
        .await
        .unwrap();
    assert!(cache.refresh().await.unwrap());
    assert_eq!(
        cache.snapshot().permissions.permissions(),
        a.permissions.list().await.unwrap()
    );
    // Counters are shared too.
    let key = CounterKey {
        client_id: "c".into(),
        agent_id: "echo".into(),
        window: 7,
    };
    assert_eq!(
        a.counters
            .try_increment(&key, 2, store_suite::start(&key), 2_000_000_000)
            .await
            .unwrap(),
        CounterOutcome::Allowed(1)
    );
    assert_eq!(
        b.counters
            .try_increment(&key, 2, store_suite::start(&key), 2_000_000_000)
            .await
            .unwrap(),
        CounterOutcome::Allowed(2)
    );
    assert_eq!(
        a.counters
            .try_increment(&key, 2, store_suite::start(&key), 2_000_000_000)
            .await
            .unwrap(),
        CounterOutcome::Limited(2)
    );
}

#[tokio::test]
async fn bootstrap_is_idempotent_and_status_reports_the_tables() {
    let moto = Moto::start().await;
    let prefix = moto::unique_prefix("boot");
    let db = DynamoStore::new(connect(moto.endpoint(), &prefix));
    let before = db.status().await.unwrap();
    assert!(before.iter().all(|t| t.status == "MISSING"), "{before:?}");
    let first = db.bootstrap(Duration::from_secs(30)).await.unwrap();
    assert!(
        first.iter().all(|t| t.created && t.status == "ACTIVE"),
        "{first:?}"
    );
    let second = db.bootstrap(Duration::from_secs(30)).await.unwrap();
    assert!(second.iter().all(|t| !t.created), "{second:?}");
    let summary: Vec<(String, &str, Option<String>)> = second
        .iter()
        .map(|t| (t.spec.name.clone(), t.spec.key, t.ttl_status.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (format!("{prefix}agents"), "id", None),
            (format!("{prefix}permissions"), "scope", None),
            (
                format!("{prefix}counters"),
                "key",
                Some("ENABLED".to_owned())
            ),
            (format!("{prefix}embeddings"), "agent_id", None),
        ]
    );
}

#[tokio::test]
async fn missing_tables_say_how_to_create_them() {
    let moto = Moto::start().await;
    let stores = Stores::aws(connect(moto.endpoint(), &moto::unique_prefix("none")));
    let err = stores.agents.list().await.unwrap_err();
    let StoreError::Unavailable(msg) = &err else {
        panic!("{err:?}")
    };
    assert!(msg.contains("does not exist"), "{msg}");
    assert!(
        msg.contains("switchboard --profile test aws bootstrap"),
        "{msg}"
    );
}

#[tokio::test]
async fn throttling_is_retried_with_backoff_then_unavailable() {
    let moto = Moto::start().await;
    let proxy = FaultProxy::start(moto.endpoint()).await;
    let prefix = moto::unique_prefix("throttle");
    DynamoStore::new(connect(moto.endpoint(), &prefix))
        .bootstrap(Duration::from_secs(30))
        .await
        .unwrap();
    let stores = Stores::aws(connect(&proxy.url(), &prefix));
    let key = CounterKey {
        client_id: "c".into(),
        agent_id: "a".into(),
        window: 1,
    };
    // Two throttled answers, then through: the caller never notices.
    proxy.throttle(Some("UpdateItem"), Some(2));
    assert_eq!(
        stores
            .counters
            .try_increment(&key, 5, store_suite::start(&key), 2_000_000_000)
            .await
            .unwrap(),
        CounterOutcome::Allowed(1)
    );
    assert_eq!(proxy.throttled().get("UpdateItem"), Some(&2));
    assert_eq!(proxy.calls().get("UpdateItem"), Some(&1));
    // Throttled every time: three attempts with backoff, then unavailable.
    proxy.reset_counts();
    proxy.throttle(Some("UpdateItem"), None);
    let err = stores
        .counters
        .try_increment(&key, 5, store_suite::start(&key), 2_000_000_000)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("throttled")),
        "{err:?}"
    );
    assert_eq!(proxy.throttled().get("UpdateItem"), Some(&3));
    assert_eq!(proxy.calls().get("UpdateItem"), None);
    proxy.pass();
    assert_eq!(
        stores
            .counters
            .try_increment(&key, 5, store_suite::start(&key), 2_000_000_000)
            .await
            .unwrap(),
        CounterOutcome::Allowed(2)
    );
}

#[tokio::test]
async fn an_endpoint_that_goes_away_is_unavailable_until_it_returns() {
    let moto = Moto::start().await;
    let proxy = FaultProxy::start(moto.endpoint()).await;
    let prefix = moto::unique_prefix("down");
    let stores = Stores::aws(connect(&proxy.url(), &prefix));
    DynamoStore::new(connect(moto.endpoint(), &prefix))
        .bootstrap(Duration::from_secs(30))
        .await
        .unwrap();
    stores
        .agents
        .create(AgentRecord::new("a", "http://127.0.0.1:1"))
        .await
        .unwrap();
    proxy.go_down();
    let started = Instant::now();
    let err = stores.agents.get("a").await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let err = stores.secrets.get("k").await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    proxy.come_back().await;
    // Back by itself: no restart, no reconnect call.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match stores.agents.get("a").await {
            Ok(Some(a)) => {
                assert_eq!(a.id, "a");
                break;
            }
            other if Instant::now() > deadline => panic!("not back: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test]
async fn secrets_by_name_prefix_and_arn() {
    let moto = Moto::start().await;
    let prefix = moto::unique_prefix("sm");
    let conn = connect(moto.endpoint(), &prefix);
    let stores = Stores::aws(conn.clone());
    stores
        .secrets
        .put("api/key", &Secret::new("v1"))
        .await
        .unwrap();
    // Stored under the profile's prefix.
    let described = conn
        .secretsmanager
        .describe_secret()
        .secret_id(format!("{prefix}secrets/api/key"))
        .send()
        .await
        .unwrap();
    let arn = described.arn().unwrap().to_owned();
    assert_eq!(stores.secrets.get(&arn).await.unwrap().expose(), "v1");
    // A write through the store is seen at once, cache or not.
    stores
        .secrets
        .put("api/key", &Secret::new("v2"))
        .await
        .unwrap();
    assert_eq!(stores.secrets.get("api/key").await.unwrap().expose(), "v2");
    // Secrets outside the prefix are not listed.
    conn.secretsmanager
        .create_secret()
        .name(format!("{prefix}elsewhere"))
        .secret_string("x")
        .send()
        .await
        .unwrap();
    assert_eq!(stores.secrets.list_names().await.unwrap(), vec!["api/key"]);
    // Deleted (recoverable), then set again: restored with the new value.
    stores.secrets.delete("api/key").await.unwrap();
    assert!(matches!(
        stores.secrets.get("api/key").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        stores.secrets.list_names().await.unwrap(),
        Vec::<String>::new()
    );
    stores
        .secrets
        .put("api/key", &Secret::new("v3"))
        .await
        .unwrap();
    assert_eq!(stores.secrets.get("api/key").await.unwrap().expose(), "v3");
    // An ARN that does not exist.
    let missing = arn.replace("api/key", "nope");
    assert!(matches!(
        stores.secrets.get(&missing).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn exactly_the_limit_across_instances() {
    let moto = Moto::start().await;
    let prefix = moto::unique_prefix("limit");
    DynamoStore::new(connect(moto.endpoint(), &prefix))
        .bootstrap(Duration::from_secs(30))
        .await
        .unwrap();
    let instances: Vec<Stores> = (0..2)
        .map(|_| Stores::aws(connect(moto.endpoint(), &prefix)))
        .collect();
    let key = Arc::new(CounterKey {
        client_id: "burst".into(),
        agent_id: "a".into(),
        window: 99,
    });
    let mut tasks = Vec::new();
    for i in 0..256 {
        let c = instances[i % 2].counters.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            c.try_increment(&key, 100, store_suite::start(&key), 2_000_000_000)
                .await
                .unwrap()
        }));
    }
    let mut allowed = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), CounterOutcome::Allowed(_)) {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 100);
    let listed = instances[0].counters.list(0).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].count, 100);
}
