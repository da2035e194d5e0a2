//! The stack through the CloudFormation API: a change set (so that a dry
//! run can show it and an unchanged deploy is recognised as such), executed
//! and waited for.

use std::time::Duration;

use anyhow::{bail, Context as _};
use aws_sdk_cloudformation::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_cloudformation::types::{
    Capability, ChangeSetStatus, ChangeSetType, Parameter, StackStatus,
};
use aws_sdk_cloudformation::Client;
use serde::Serialize;
use switchboard_core::store::aws::AwsConnection;

/// The template, built into the binary.
pub const TEMPLATE: &str = include_str!("../../../../deploy/switchboard.yaml");

/// How often a wait asks again.
const POLL: Duration = Duration::from_secs(2);

/// A stack as `describe` finds it.
#[derive(Debug, Clone, Serialize)]
pub struct StackState {
    /// `CREATE_COMPLETE`, `UPDATE_ROLLBACK_COMPLETE`, …
    pub status: String,
    /// Why, when CloudFormation says.
    pub reason: Option<String>,
    /// Outputs by key.
    pub outputs: Vec<(String, String)>,
}

/// One resource change of a change set.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// `Add`, `Modify`, `Remove`, …
    pub action: String,
    /// The template's logical id.
    pub logical_id: String,
    /// `AWS::DynamoDB::Table`, …
    pub resource_type: String,
    /// `True`, `False`, `Conditional` for modifications.
    pub replacement: Option<String>,
}

/// What a change set came to.
pub enum Planned {
    /// Nothing would change.
    NoChanges,
    /// These changes, in a change set of this name, of this type.
    Changes {
        /// Change set name.
        name: String,
        /// Whether it creates the stack.
        creates: bool,
        /// The changes (CloudFormation lists none for some updates).
        changes: Vec<Change>,
    },
}

/// The CloudFormation client of a connection.
pub fn client(conn: &AwsConnection) -> Client {
    Client::new(&conn.sdk)
}

fn not_found<E: ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("ValidationError") && e.message().is_some_and(|m| m.contains("does not exist"))
}

/// The stack, or `None` when there is none of that name.
pub async fn describe(conn: &AwsConnection, name: &str) -> anyhow::Result<Option<StackState>> {
    let out = match client(conn).describe_stacks().stack_name(name).send().await {
        Ok(o) => o,
        Err(e) => {
            if e.as_service_error().is_some_and(not_found) {
                return Ok(None);
            }
            bail!("describing stack {name}: {}", DisplayErrorContext(&e));
        }
    };
    // A deleted stack is no stack (some endpoints still list it by name).
    let Some(stack) = out
        .stacks
        .unwrap_or_default()
        .into_iter()
        .find(|s| s.stack_status != Some(StackStatus::DeleteComplete))
    else {
        return Ok(None);
    };
    Ok(Some(StackState {
        status: stack
            .stack_status
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        reason: stack.stack_status_reason,
        outputs: stack
            .outputs
            .unwrap_or_default()
            .into_iter()
            .filter_map(|o| Some((o.output_key?, o.output_value?)))
            .collect(),
    }))
}

/// Creates a change set for `template` with `params` on stack `name`
/// (creating the stack when `exists` is false) and waits until
/// CloudFormation has worked it out.
pub async fn plan(
    conn: &AwsConnection,
    name: &str,
    exists: bool,
    params: &[(String, String)],
    wait: Duration,
) -> anyhow::Result<Planned> {
    let cf = client(conn);
    let set_name = format!(
        "switchboard-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default()
    );
    let mut req = cf
        .create_change_set()
        .stack_name(name)
        .change_set_name(&set_name)
        .template_body(TEMPLATE)
        .capabilities(Capability::CapabilityIam)
        .change_set_type(if exists {
            ChangeSetType::Update
        } else {
            ChangeSetType::Create
        })
        .description("switchboard aws deploy");
    for (k, v) in params {
        req = req.parameters(
            Parameter::builder()
                .parameter_key(k)
                .parameter_value(v)
                .build(),
        );
    }
    req.send().await.map_err(|e| {
        anyhow::anyhow!(
            "creating a change set on stack {name}: {}",
            DisplayErrorContext(&e)
        )
    })?;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let d = cf
            .describe_change_set()
            .stack_name(name)
            .change_set_name(&set_name)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!("reading change set {set_name}: {}", DisplayErrorContext(&e))
            })?;
        match d.status {
            Some(ChangeSetStatus::CreateComplete) => {
                let changes = d
                    .changes
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|c| c.resource_change)
                    .map(|r| Change {
                        action: r.action.map(|a| a.as_str().to_owned()).unwrap_or_default(),
                        logical_id: r.logical_resource_id.unwrap_or_default(),
                        resource_type: r.resource_type.unwrap_or_default(),
                        replacement: r.replacement.map(|x| x.as_str().to_owned()),
                    })
                    .collect();
                return Ok(Planned::Changes {
                    name: set_name,
                    creates: !exists,
                    changes,
                });
            }
            Some(ChangeSetStatus::Failed) => {
                let reason = d.status_reason.unwrap_or_default();
                let _ = cf
                    .delete_change_set()
                    .stack_name(name)
                    .change_set_name(&set_name)
                    .send()
                    .await;
                if reason.contains("didn't contain changes") || reason.contains("No updates") {
                    return Ok(Planned::NoChanges);
                }
                bail!("CloudFormation refused the change set on stack {name}: {reason}");
            }
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "the change set on stack {name} was not ready after {} s",
                wait.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Drops a change set that will not be executed (and the empty stack a
/// creating change set leaves behind).
pub async fn discard(
    conn: &AwsConnection,
    stack: &str,
    set: &str,
    creates: bool,
) -> anyhow::Result<()> {
    let cf = client(conn);
    cf.delete_change_set()
        .stack_name(stack)
        .change_set_name(set)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("deleting change set {set}: {}", DisplayErrorContext(&e)))?;
    if creates {
        cf.delete_stack()
            .stack_name(stack)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "deleting the empty stack {stack}: {}",
                    DisplayErrorContext(&e)
                )
            })?;
    }
    Ok(())
}

/// Executes a change set and waits until the stack settles; fails with the
/// resources that failed when it rolls back.
pub async fn execute(
    conn: &AwsConnection,
    stack: &str,
    set: &str,
    wait: Duration,
) -> anyhow::Result<StackState> {
    let cf = client(conn);
    cf.execute_change_set()
        .stack_name(stack)
        .change_set_name(set)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("executing change set {set}: {}", DisplayErrorContext(&e)))?;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let state = describe(conn, stack)
            .await?
            .with_context(|| format!("stack {stack} disappeared while it was being deployed"))?;
        let status = StackStatus::from(state.status.as_str());
        if !state.status.ends_with("_IN_PROGRESS") {
            if matches!(
                status,
                StackStatus::CreateComplete | StackStatus::UpdateComplete
            ) {
                return Ok(state);
            }
            bail!(
                "stack {stack} ended {}{}{}",
                state.status,
                state
                    .reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default(),
                failures(&cf, stack).await
            );
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "stack {stack} still {} after {} s",
                state.status,
                wait.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The resources that failed, one per line, for an error message.
async fn failures(cf: &Client, stack: &str) -> String {
    let Ok(out) = cf.describe_stack_events().stack_name(stack).send().await else {
        return String::new();
    };
    let lines: Vec<String> = out
        .stack_events
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            e.resource_status
                .as_ref()
                .is_some_and(|s| s.as_str().ends_with("_FAILED"))
        })
        .take(10)
        .map(|e| {
            format!(
                "\n  {} ({}): {}",
                e.logical_resource_id.unwrap_or_default(),
                e.resource_type.unwrap_or_default(),
                e.resource_status_reason.unwrap_or_default()
            )
        })
        .collect();
    lines.concat()
}
