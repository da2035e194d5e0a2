//! AWS Secrets Manager backend for the secret store.
//!
//! A name is looked up as `{secret_prefix}{name}`; a full or partial ARN
//! (`arn:aws:secretsmanager:…`) is used as it is. Values are the secrets'
//! `SecretString`. Values read are kept in memory for a short time
//! ([`AwsSettings::secret_cache_ttl`](super::aws::AwsSettings)); a write or
//! delete through this store drops its own cached copy at once.
//!
//! Deleting schedules the secret for deletion with the shortest recovery
//! window (7 days) rather than destroying it; setting a secret that is
//! scheduled for deletion restores it first.

use std::collections::HashMap;
use std::time::Instant;

use async_trait::async_trait;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
use parking_lot::Mutex;

use super::aws::{classify, store_error, AwsConnection, Failure};
use crate::registry::{Secret, SecretStore, StoreError, StoreResult};

/// Days a deleted secret can still be restored (the minimum AWS allows).
pub const RECOVERY_WINDOW_DAYS: i64 = 7;

/// Secrets in AWS Secrets Manager.
pub struct SecretsManagerStore {
    conn: AwsConnection,
    cache: Mutex<HashMap<String, (Instant, Secret)>>,
}

impl std::fmt::Debug for SecretsManagerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsManagerStore")
            .field("profile", &self.conn.profile_name)
            .field("prefix", &self.conn.profile.secret_prefix)
            .finish_non_exhaustive()
    }
}

fn is_arn(name: &str) -> bool {
    name.starts_with("arn:")
}

/// "You can't perform this operation on the secret because it was marked for deletion."
fn marked_for_deletion(f: &Failure) -> bool {
    matches!(f, Failure::Service(e)
    if e.code == "InvalidRequestException" && {
        let m = e.message.to_ascii_lowercase();
        m.contains("marked") && m.contains("delet")
    })
}

impl SecretsManagerStore {
    /// The secret store of `conn`'s profile.
    pub fn new(conn: AwsConnection) -> Self {
        SecretsManagerStore {
            conn,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The id Secrets Manager knows a name by.
    pub fn secret_id(&self, name: &str) -> String {
        if is_arn(name) {
            name.to_owned()
        } else {
            format!("{}{name}", self.conn.profile.secret_prefix)
        }
    }

    fn client(&self) -> &aws_sdk_secretsmanager::Client {
        &self.conn.secretsmanager
    }

    fn cached(&self, id: &str) -> Option<Secret> {
        let ttl = self.conn.settings.secret_cache_ttl;
        let mut cache = self.cache.lock();
        match cache.get(id) {
            Some((at, v)) if at.elapsed() < ttl => Some(v.clone()),
            Some(_) => {
                cache.remove(id);
                None
            }
            None => None,
        }
    }

    fn forget(&self, id: &str) {
        self.cache.lock().remove(id);
    }

    async fn put_value(&self, id: &str, value: &Secret) -> Result<(), Failure> {
        self.client()
            .put_secret_value()
            .secret_id(id)
            .secret_string(value.expose())
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn restore(&self, id: &str) -> StoreResult<()> {
        self.client()
            .restore_secret()
            .secret_id(id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error(&self.conn, &format!("restoring secret {id}"), classify(e)))
    }
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    async fn get(&self, name: &str) -> StoreResult<Secret> {
        let id = self.secret_id(name);
        if let Some(v) = self.cached(&id) {
            return Ok(v);
        }
        let out = self
            .client()
            .get_secret_value()
            .secret_id(&id)
            .send()
            .await
            .map_err(|e| {
                let f = classify(e);
                if f.code() == Some("ResourceNotFoundException") || marked_for_deletion(&f) {
                    StoreError::NotFound(format!("secret {id}"))
                } else {
                    store_error(&self.conn, &format!("reading secret {id}"), f)
                }
            })?;
        let value = out.secret_string.map(Secret::new).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "secret {id} holds binary data; Switchboard reads SecretString values"
            ))
        })?;
        self.cache
            .lock()
            .insert(id, (Instant::now(), value.clone()));
        Ok(value)
    }

    async fn put(&self, name: &str, value: &Secret) -> StoreResult<()> {
        let id = self.secret_id(name);
        self.forget(&id);
        let what = format!("storing secret {id}");
        let described = self.client().describe_secret().secret_id(&id).send().await;
        match described {
            Ok(d) => {
                if d.deleted_date().is_some() {
                    self.restore(&id).await?;
                }
                return self
                    .put_value(&id, value)
                    .await
                    .map_err(|f| store_error(&self.conn, &what, f));
            }
            Err(e) => {
                let f = classify(e);
                if f.code() != Some("ResourceNotFoundException") {
                    return Err(store_error(&self.conn, &what, f));
                }
            }
        }
        if is_arn(name) {
            return Err(StoreError::NotFound(format!(
                "secret {id} (a secret can be created by name only, not by ARN)"
            )));
        }
        let created = self
            .client()
            .create_secret()
            .name(&id)
            .secret_string(value.expose())
            .description("Switchboard backend credential")
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e) => {
                let f = classify(e);
                if f.code() == Some("ResourceExistsException") {
                    // Created by someone else meanwhile: store our value over it.
                    self.put_value(&id, value)
                        .await
                        .map_err(|f| store_error(&self.conn, &what, f))
                } else {
                    Err(store_error(&self.conn, &what, f))
                }
            }
        }
    }

    async fn delete(&self, name: &str) -> StoreResult<()> {
        let id = self.secret_id(name);
        self.forget(&id);
        self.client()
            .delete_secret()
            .secret_id(&id)
            .recovery_window_in_days(RECOVERY_WINDOW_DAYS)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                let f = classify(e);
                if f.code() == Some("ResourceNotFoundException") || marked_for_deletion(&f) {
                    StoreError::NotFound(format!("secret {id}"))
                } else {
                    store_error(&self.conn, &format!("deleting secret {id}"), f)
                }
            })
    }

    async fn list_names(&self) -> StoreResult<Vec<String>> {
        let prefix = self.conn.profile.secret_prefix.clone();
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut req = self
                .client()
                .list_secrets()
                .max_results(100)
                .set_next_token(token.take());
            if !prefix.is_empty() {
                req = req.filters(
                    Filter::builder()
                        .key(FilterNameStringType::Name)
                        .values(prefix.clone())
                        .build(),
                );
            }
            let page = req
                .send()
                .await
                .map_err(|e| store_error(&self.conn, "listing secrets", classify(e)))?;
            for entry in page.secret_list() {
                if entry.deleted_date().is_some() {
                    continue;
                }
                if let Some(rest) = entry.name().and_then(|n| n.strip_prefix(&prefix)) {
                    names.push(rest.to_owned());
                }
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => break,
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }
}
