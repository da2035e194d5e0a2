//! Profile switches (open another profile's stores and a gateway core over
//! them) and syncs from the local profile to another.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use switchboard_core::profile::{Profile, ProfileKind};
use switchboard_core::store::Stores;
use switchboard_core::sync::{self, SyncOptions, SyncPlan};
use switchboard_core::{EventBus, Gateway};

use super::{Active, Core};
use crate::console::msg::CoreEvent;

/// Longest a profile switch may take before it is given up.
const SWITCH_TIMEOUT: Duration = Duration::from_secs(30);

impl Core {
    /// Opens `profile` and makes it the active one, unless a later switch
    /// was asked for meanwhile. On failure the active profile stays.
    pub(super) async fn switch(&self, profile: Profile, seq: u64) {
        let name = profile.name.clone();
        let opened = match tokio::time::timeout(SWITCH_TIMEOUT, self.open(profile)).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "profile {name} did not answer within {} s",
                SWITCH_TIMEOUT.as_secs()
            )),
        };
        let active = {
            let _guard = self.emit_lock.lock().await;
            if self.switch_seq.load(Ordering::SeqCst) != seq {
                tracing::info!(profile = %name, "a later profile switch replaced this one");
                return;
            }
            match opened {
                Ok(active) => {
                    *self.active.write() = active.clone();
                    tracing::info!(profile = %name, "switched profile");
                    let _ = self
                        .tx
                        .send(CoreEvent::ProfileSwitched {
                            profile: active.profile.clone(),
                        })
                        .await;
                    active
                }
                Err(message) => {
                    tracing::warn!(profile = %name, error = %message, "cannot switch profile");
                    let _ = self
                        .tx
                        .send(CoreEvent::ProfileFailed {
                            profile: name,
                            message,
                        })
                        .await;
                    return;
                }
            }
        };
        self.emit_lists(&active).await;
        self.counters_due.notify_one();
        self.health_due.notify_one();
    }

    /// The local stack for `local`; for an AWS profile its stores and a
    /// gateway core over them. Loading the registry is the connection check.
    async fn open(&self, profile: Profile) -> Result<Arc<Active>, String> {
        let aws = match &profile.kind {
            // The stack inside the console, which never stopped serving it.
            ProfileKind::Local => return Ok(self.local.clone()),
            ProfileKind::Aws(aws) => aws.clone(),
        };
        let stores = (self.opener)(&profile)
            .map_err(|e| format!("cannot open profile {}: {e}", profile.name))?;
        let mut config = self.config.clone();
        config.issuer = Some(aws.issuer_url().to_owned());
        config.jwks_uri = Some(aws.jwks_url());
        config.token_url = aws.token_url.clone();
        // Bodies stay out of the traffic stream on AWS unless asked for.
        config.traffic_capture.get_or_insert(false);
        let gateway = Gateway::new(
            config,
            stores.clone(),
            EventBus::new(),
            self.gateway_url.clone(),
        )
        .await
        .map_err(|e| format!("cannot switch to profile {}: {e}", profile.name))?;
        Ok(Arc::new(Active {
            profile,
            gateway,
            stores,
        }))
    }

    /// The stores of a sync target: the active profile's when it is the
    /// target, else opened now.
    fn stores_of(&self, profile: &Profile) -> Result<Stores, String> {
        let a = self.active();
        if a.profile.name == profile.name {
            return Ok(a.stores.clone());
        }
        if let ProfileKind::Local = profile.kind {
            return Ok(self.local.stores.clone());
        }
        (self.opener)(profile).map_err(|e| format!("cannot open profile {}: {e}", profile.name))
    }

    /// What `sync --from local --to {to} --dry-run` shows.
    pub(super) async fn plan_sync(
        &self,
        to: &Profile,
        copy_secrets: bool,
    ) -> Result<SyncPlan, String> {
        if let ProfileKind::Local = to.kind {
            return Err(
                "sync copies from the local profile to another: choose an AWS profile".into(),
            );
        }
        let target = self.stores_of(to)?;
        sync::plan(&self.local.stores, &target, SyncOptions { copy_secrets })
            .await
            .map_err(|e| format!("comparing local with {}: {e}", to.name))
    }

    /// Applies a plan shown in the console, then reloads the target when it
    /// is the active profile.
    pub(super) async fn apply_sync(&self, to: &Profile, plan: &SyncPlan) {
        let target = match self.stores_of(to) {
            Ok(t) => t,
            Err(e) => return self.failed(e, false).await,
        };
        match sync::apply(plan, &self.local.stores, &target).await {
            Ok(done) => {
                let a = self.active();
                if a.profile.name == to.name {
                    self.reload(&a).await;
                    self.health_due.notify_one();
                }
                self.emit(CoreEvent::Done(format!(
                    "synced local → {}: {}",
                    to.name,
                    done.summary()
                )))
                .await;
            }
            Err(e) => {
                self.failed(
                    format!("{e}; running the same sync again is safe (s shows what is left)"),
                    false,
                )
                .await
            }
        }
    }
}
