//! One store test suite, written once and run against every backend.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeSet;
use std::sync::Arc;

use pretty_assertions::assert_eq;
use switchboard_core::error::GatewayError;
use switchboard_core::registry::{
    AgentRecord, BackendAuth, ClientRecord, CounterKey, CounterOutcome, EmbeddingRecord,
    Permission, Secret, StoreError,
};
use switchboard_core::store::Stores;

fn agent(id: &str) -> AgentRecord {
    let mut a = AgentRecord::new(id, format!("http://127.0.0.1:9/{id}"));
    a.name = format!("Agent {id}");
    a.description = "does things".into();
    a.rate_limit = Some(10);
    a.auth = BackendAuth::OAuth2 {
        token_url: "http://127.0.0.1:9/token".into(),
        client_id: "gw".into(),
        secret: "s".into(),
        scopes: vec!["a".into()],
    };
    a
}

pub async fn agents(stores: &Stores) {
    let s = &stores.agents;
    let g0 = s.generation().await.unwrap();
    assert_eq!(s.get("a1").await.unwrap(), None);
    let created = s.create(agent("a1")).await.unwrap();
    assert_eq!(created.version, 1);
    assert!(created.updated_at > 0);
    assert_eq!(s.get("a1").await.unwrap(), Some(created.clone()));
    assert!(s.generation().await.unwrap() != g0);

    // Conflict on duplicate create.
    assert!(matches!(
        s.create(agent("a1")).await,
        Err(StoreError::Conflict(_))
    ));

    // Conditional update.
    let mut edit = created.clone();
    edit.name = "renamed".into();
    let updated = s.update(edit.clone()).await.unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(updated.name, "renamed");
    // A stale edit is refused and changes nothing.
    assert!(matches!(s.update(edit).await, Err(StoreError::Conflict(_))));
    assert_eq!(s.get("a1").await.unwrap().unwrap().version, 2);
    // Update of a missing record.
    assert!(matches!(
        s.update(agent("zz")).await,
        Err(StoreError::NotFound(_))
    ));

    // put_many creates and replaces.
    s.put_many(vec![agent("a2"), agent("a3"), agent("a1")])
        .await
        .unwrap();
    let ids: Vec<String> = s.list().await.unwrap().into_iter().map(|a| a.id).collect();
    assert_eq!(ids, vec!["a1", "a2", "a3"]);
    assert_eq!(s.get("a1").await.unwrap().unwrap().name, "Agent a1");
    assert_eq!(s.get("a1").await.unwrap().unwrap().version, 3);

    // Delete.
    let g1 = s.generation().await.unwrap();
    s.delete("a2").await.unwrap();
    assert!(s.generation().await.unwrap() != g1);
    assert!(matches!(s.delete("a2").await, Err(StoreError::NotFound(_))));
    assert_eq!(s.get("a2").await.unwrap(), None);
}

pub async fn permissions(stores: &Stores) {
    let p = &stores.permissions;
    let g0 = p.generation().await.unwrap();
    assert_eq!(p.list().await.unwrap(), vec![]);
    let got = p.grant("s1", &["a".into(), "b".into()]).await.unwrap();
    assert_eq!(got.agents, BTreeSet::from(["a".to_owned(), "b".to_owned()]));
    p.grant("s1", &["c".into()]).await.unwrap();
    p.grant("s2", &["*".into()]).await.unwrap();
    assert!(p.generation().await.unwrap() != g0);
    assert_eq!(
        p.list().await.unwrap(),
        vec![
            Permission {
                scope: "s1".into(),
                agents: ["a", "b", "c"].iter().map(|s| s.to_string()).collect()
            },
            Permission {
                scope: "s2".into(),
                agents: ["*".to_owned()].into()
            },
        ]
    );
    let left = p.revoke("s1", &["a".into(), "b".into()]).await.unwrap();
    assert_eq!(left.unwrap().agents, BTreeSet::from(["c".to_owned()]));
    assert_eq!(p.revoke("s1", &["c".into()]).await.unwrap(), None);
    assert!(matches!(
        p.revoke("s1", &["c".into()]).await,
        Err(StoreError::NotFound(_))
    ));
    p.replace_all(vec![Permission {
        scope: "only".into(),
        agents: ["x".to_owned()].into(),
    }])
    .await
    .unwrap();
    let scopes: Vec<String> = p
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.scope)
        .collect();
    assert_eq!(scopes, vec!["only"]);
}

/// When a key's window begins, in Unix seconds (windows are one minute).
pub fn start(key: &CounterKey) -> u64 {
    key.window * 60
}

pub async fn counters(stores: &Stores) {
    let c = &stores.counters;
    let key = CounterKey {
        client_id: "c".into(),
        agent_id: "a".into(),
        window: 1000,
    };
    assert_eq!(
        c.try_increment(&key, 2, start(&key), 2_000_000_000)
            .await
            .unwrap(),
        CounterOutcome::Allowed(1)
    );
    assert_eq!(
        c.try_increment(&key, 2, start(&key), 2_000_000_000)
            .await
            .unwrap(),
        CounterOutcome::Allowed(2)
    );
    assert_eq!(
        c.try_increment(&key, 2, start(&key), 2_000_000_000)
            .await
            .unwrap(),
        CounterOutcome::Limited(2)
    );
    // Another window, another count.
    let next = CounterKey {
        window: 1001,
        ..key.clone()
    };
    assert_eq!(
        c.try_increment(&next, 2, start(&next), 2_000_000_000)
            .await
            .unwrap(),
        CounterOutcome::Allowed(1)
    );
    // Expired windows are not listed.
    let old = CounterKey {
        window: 1,
        ..key.clone()
    };
    c.try_increment(&old, 5, start(&old), 100).await.unwrap();
    let live = c.list(1_000_000).await.unwrap();
    let windows: Vec<(u64, u64)> = live.iter().map(|e| (e.key.window, e.count)).collect();
    assert_eq!(windows, vec![(1000, 2), (1001, 1)]);
    // Limit zero admits nothing.
    let zero = CounterKey { window: 5, ..key };
    assert_eq!(
        c.try_increment(&zero, 0, start(&zero), 2_000_000_000)
            .await
            .unwrap(),
        CounterOutcome::Limited(0)
    );
}

/// 256 concurrent increments against a limit of 100 admit exactly 100.
pub async fn counters_exact_under_concurrency(stores: &Stores) {
    let c = stores.counters.clone();
    let key = Arc::new(CounterKey {
        client_id: "burst".into(),
        agent_id: "a".into(),
        window: 42,
    });
    let mut tasks = Vec::new();
    for _ in 0..256 {
        let c = c.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            c.try_increment(&key, 100, start(&key), 2_000_000_000)
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
}

pub async fn secrets(stores: &Stores) {
    let s = &stores.secrets;
    assert!(matches!(s.get("k").await, Err(StoreError::NotFound(_))));
    s.put("k", &Secret::new("v1")).await.unwrap();
    assert_eq!(s.get("k").await.unwrap().expose(), "v1");
    s.put("k", &Secret::new("v2")).await.unwrap();
    assert_eq!(s.get("k").await.unwrap().expose(), "v2");
    s.put("a", &Secret::new("x")).await.unwrap();
    assert_eq!(s.list_names().await.unwrap(), vec!["a", "k"]);
    s.delete("k").await.unwrap();
    assert!(matches!(s.delete("k").await, Err(StoreError::NotFound(_))));
    assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(••••••)");
}

pub async fn clients(stores: &Stores) {
    let c = &stores.clients;
    let rec = ClientRecord {
        client_id: "c1".into(),
        secret_hash: "salt$hash".into(),
        allowed_scopes: vec!["s".into()],
        created_at: 1,
    };
    assert_eq!(c.get("c1").await.unwrap(), None);
    c.create(rec.clone()).await.unwrap();
    assert!(matches!(
        c.create(rec.clone()).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(c.get("c1").await.unwrap(), Some(rec.clone()));
    assert_eq!(c.list().await.unwrap(), vec![rec]);
    c.delete("c1").await.unwrap();
    assert!(matches!(c.delete("c1").await, Err(StoreError::NotFound(_))));
}

fn embedding(agent: &str, model: &str, hash: &str, vectors: usize) -> EmbeddingRecord {
    EmbeddingRecord {
        agent_id: agent.into(),
        model: model.into(),
        text_hash: hash.into(),
        // Values that survive a round trip only if every bit does.
        vectors: (0..vectors)
            .map(|i| {
                (0..384)
                    .map(|j| ((i * 384 + j) as f32 * 0.001).sin() / 3.0)
                    .chain([f32::MIN_POSITIVE, -0.0])
                    .collect()
            })
            .collect(),
        updated_at: 1_700_000_000_000 + vectors as i64,
    }
}

pub async fn embeddings(stores: &Stores) {
    let e = &stores.embeddings;
    assert_eq!(e.get("a1").await.unwrap(), None);
    assert_eq!(e.list().await.unwrap(), vec![]);

    let a1 = embedding("a1", "m1", "h1", 3);
    let a2 = embedding("a2", "m1", "h2", 1);
    e.put_many(vec![a2.clone(), a1.clone()]).await.unwrap();
    assert_eq!(e.get("a1").await.unwrap(), Some(a1.clone()));
    assert_eq!(e.list().await.unwrap(), vec![a1.clone(), a2.clone()]);

    // Replacing keeps one record per agent: new text, new model, fewer vectors.
    let a1b = embedding("a1", "m2", "h1b", 2);
    e.put_many(vec![a1b.clone()]).await.unwrap();
    assert_eq!(e.list().await.unwrap(), vec![a1b.clone(), a2.clone()]);

    // An agent without skills or text still has a record (no vectors at all is allowed).
    let empty = EmbeddingRecord {
        vectors: vec![],
        ..embedding("a3", "m2", "h3", 0)
    };
    e.put_many(vec![empty.clone()]).await.unwrap();
    assert_eq!(e.get("a3").await.unwrap(), Some(empty));

    e.delete("a2").await.unwrap();
    assert!(matches!(e.delete("a2").await, Err(StoreError::NotFound(_))));
    assert_eq!(e.get("a2").await.unwrap(), None);
    let ids: Vec<String> = e
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.agent_id)
        .collect();
    assert_eq!(ids, vec!["a1", "a3"]);

    // Vectors of different lengths in one record are refused, and nothing of the batch lands.
    let mut ragged = embedding("a4", "m2", "h4", 2);
    ragged.vectors[1].pop();
    assert!(e
        .put_many(vec![embedding("a5", "m2", "h5", 1), ragged])
        .await
        .is_err());
    assert_eq!(e.get("a4").await.unwrap(), None);
    assert_eq!(e.get("a5").await.unwrap(), None);
}

/// The message of an `Invalid` error, after checking that the gateway would
/// answer it with 400.
fn invalid<T: std::fmt::Debug>(r: Result<T, StoreError>) -> String {
    let err = r.unwrap_err();
    let StoreError::Invalid(message) = &err else {
        panic!("not Invalid: {err:?}")
    };
    let message = message.clone();
    assert_eq!(GatewayError::from(err).status().as_u16(), 400);
    message
}

/// Agents and permissions the registry's validators refuse are refused by
/// the store itself, naming the field, and nothing of the call is written.
pub async fn refuses_invalid_agents_and_permissions(stores: &Stores) {
    let s = &stores.agents;
    assert_eq!(
        invalid(s.create(agent("Bad")).await),
        "agent \"Bad\": id: agent id \"Bad\" must start with a lowercase letter or a digit \
         (pattern ^[a-z0-9][a-z0-9_-]{0,63}$)"
    );
    let mut metadata = agent("a1");
    metadata.url = "http://169.254.169.254/latest".into();
    assert_eq!(
        invalid(s.create(metadata).await),
        "agent \"a1\": url: \"http://169.254.169.254/latest\" points at a link-local or \
         cloud-metadata address (169.254.169.254 is a cloud-metadata address), which backends \
         may not use; loopback and private addresses are fine"
    );
    assert_eq!(s.list().await.unwrap(), vec![]);

    // An update is judged like a create; the stored record stays as it was.
    let created = s.create(agent("a1")).await.unwrap();
    let mut edit = created.clone();
    edit.auth = BackendAuth::Header {
        name: "host".into(),
        secret: " ".into(),
    };
    assert_eq!(
        invalid(s.update(edit).await),
        "agent \"a1\": auth.name: header host cannot carry backend credentials: HTTP or the \
         gateway itself sets it; auth.secret: the credential header needs a secret name"
    );
    assert_eq!(s.get("a1").await.unwrap(), Some(created.clone()));

    // One invalid record in put_many and none of them is written.
    let g = s.generation().await.unwrap();
    let mut bad_token_url = agent("a3");
    if let BackendAuth::OAuth2 { token_url, .. } = &mut bad_token_url.auth {
        *token_url = "file:///etc/passwd".into();
    }
    let message = invalid(
        s.put_many(vec![agent("a2"), bad_token_url, agent("a1")])
            .await,
    );
    assert!(
        message.starts_with("agent \"a3\": auth.token_url: "),
        "{message}"
    );
    assert_eq!(s.list().await.unwrap(), vec![created]);
    assert_eq!(s.generation().await.unwrap(), g);

    // Permissions: a valid scope, granting valid agent ids or `*`.
    let p = &stores.permissions;
    assert_eq!(
        invalid(p.grant("team a", &["a1".into()]).await),
        "the scope 'team a' contains ' ', which scopes may not contain"
    );
    assert_eq!(
        invalid(p.grant("team/a", &["a1".into(), "../a2".into()]).await),
        "scope team/a: agent id \"../a2\" must start with a lowercase letter or a digit \
         (pattern ^[a-z0-9][a-z0-9_-]{0,63}$)"
    );
    assert_eq!(p.list().await.unwrap(), vec![]);
    p.grant("team/a", &["a1".into(), "*".into()]).await.unwrap();
    let before = p.list().await.unwrap();
    let g = p.generation().await.unwrap();
    let message = invalid(
        p.replace_all(vec![
            Permission {
                scope: "fine".into(),
                agents: ["a1".to_owned()].into(),
            },
            Permission {
                scope: "team/b".into(),
                agents: ["A1".to_owned()].into(),
            },
        ])
        .await,
    );
    assert!(
        message.starts_with("scope team/b: agent id \"A1\""),
        "{message}"
    );
    assert_eq!(p.list().await.unwrap(), before);
    assert_eq!(p.generation().await.unwrap(), g);
}

/// Issuer clients with an invalid id or scope are refused by the store
/// (backends whose clients live elsewhere, such as Cognito, have none to refuse).
pub async fn refuses_invalid_clients(stores: &Stores) {
    let c = &stores.clients;
    let rec = ClientRecord {
        client_id: "c1".into(),
        secret_hash: "salt$hash".into(),
        allowed_scopes: vec!["s".into()],
        created_at: 1,
    };
    assert_eq!(
        invalid(
            c.create(ClientRecord {
                client_id: "c/1".into(),
                ..rec.clone()
            })
            .await
        ),
        "the client id 'c/1' contains '/'; use only letters, digits, '.', '_' and '-'"
    );
    assert_eq!(
        invalid(
            c.create(ClientRecord {
                allowed_scopes: vec!["s".into(), "a\"b".into()],
                ..rec.clone()
            })
            .await
        ),
        "client c1: the scope 'a\"b' contains '\"', which scopes may not contain"
    );
    assert_eq!(c.list().await.unwrap(), vec![]);
}

/// Every test above, in order, on fresh stores from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Stores>,
{
    agents(&make().await).await;
    refuses_invalid_agents_and_permissions(&make().await).await;
    refuses_invalid_clients(&make().await).await;
    permissions(&make().await).await;
    counters(&make().await).await;
    counters_exact_under_concurrency(&make().await).await;
    secrets(&make().await).await;
    clients(&make().await).await;
    embeddings(&make().await).await;
}
