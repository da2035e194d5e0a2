//! What the sample agents do with each method: send (at once, or in the
//! background when asked not to wait), stream, get, list, cancel and
//! subscribe; and how the stream agent paces its task.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::sync::broadcast;

use super::model::{Artifact, Message, Part, Role, StreamEvent, Task, TaskState, TaskStatus, Wire};
use super::rpc::{Method, RpcError};
use super::tasks::{CancelSignal, TaskError};
use super::{
    Agent, DEFAULT_PAGE_SIZE, MAX_CHUNKS, MAX_INTERVAL_MS, MAX_PAGE_SIZE, SLOW_INTERVAL,
    STREAM_CHUNKS, STREAM_INTERVAL,
};

/// What a method returns: one JSON-RPC result, or a stream of them.
pub(super) enum Reply {
    Json(Value),
    Stream(Box<Task>, broadcast::Receiver<StreamEvent>),
}

pub(super) enum Behavior {
    Echo,
    Stream,
}

impl Agent {
    pub(super) fn dispatch(
        self: &Arc<Self>,
        method: Method,
        wire: Wire,
        params: &Map<String, Value>,
    ) -> Result<Reply, RpcError> {
        match method {
            Method::Send => self.send(wire, params),
            Method::SendStreaming => {
                let message = message_param(params)?;
                let (task, events) = self.start_streaming(message, params)?;
                Ok(Reply::Stream(Box::new(task), events))
            }
            Method::GetTask => {
                let id = id_param(params)?;
                let history = u64_param(params, "historyLength")?;
                let task = self
                    .tasks
                    .get(&id)
                    .ok_or_else(|| RpcError::task_not_found(&id))?;
                Ok(Reply::Json(task.json(wire, history.map(to_usize))))
            }
            Method::CancelTask => {
                let id = id_param(params)?;
                match self.tasks.cancel(&id) {
                    Ok(task) => Ok(Reply::Json(task.json(wire, None))),
                    Err(TaskError::NotFound) => Err(RpcError::task_not_found(&id)),
                    Err(TaskError::Ended(state)) => {
                        Err(RpcError::task_not_cancelable(&id, state.json(wire)))
                    }
                }
            }
            Method::ListTasks => self.list(wire, params),
            Method::Subscribe => {
                let id = id_param(params)?;
                match self.tasks.subscribe(&id) {
                    Ok((task, events)) => Ok(Reply::Stream(Box::new(task), events)),
                    Err(TaskError::NotFound) => Err(RpcError::task_not_found(&id)),
                    Err(TaskError::Ended(state)) => Err(RpcError::unsupported(format!(
                        "Task {id} is already {}; there is nothing to subscribe to",
                        state.json(wire)
                    ))),
                }
            }
            Method::PushConfig => Err(RpcError::push_not_supported()),
            Method::ExtendedCard => Err(RpcError::extended_card_not_configured()),
        }
    }

    /// `SendMessage`: the finished task, or the task at once when the
    /// caller asked not to wait.
    fn send(self: &Arc<Self>, wire: Wire, params: &Map<String, Value>) -> Result<Reply, RpcError> {
        let message = message_param(params)?;
        let configuration = params.get("configuration").and_then(Value::as_object);
        let flag = |key: &str| {
            configuration
                .and_then(|c| c.get(key))
                .and_then(Value::as_bool)
        };
        let return_immediately = match wire {
            Wire::V1 => flag("returnImmediately").unwrap_or(false),
            Wire::V03 => !flag("blocking").unwrap_or(true),
        };
        let history = configuration
            .map(|c| u64_param(c, "historyLength"))
            .transpose()?
            .flatten();
        let (task, cancel, _events) = self.open_task(message.clone())?;
        let plan = self.plan(&task, &message, params);
        let task_id = task.id.clone();
        if return_immediately {
            tokio::spawn(run(
                self.clone(),
                task_id.clone(),
                plan.steps,
                plan.interval,
                cancel,
            ));
        } else {
            for step in plan.steps {
                if !self.tasks.apply(&task_id, step) {
                    break;
                }
            }
        }
        let task = self.tasks.get(&task_id).unwrap_or(task);
        let task = task.json(wire, history.map(to_usize));
        Ok(Reply::Json(match wire {
            Wire::V1 => json!({ "task": task }),
            Wire::V03 => task,
        }))
    }

    fn start_streaming(
        self: &Arc<Self>,
        message: Message,
        params: &Map<String, Value>,
    ) -> Result<(Task, broadcast::Receiver<StreamEvent>), RpcError> {
        let (task, cancel, events) = self.open_task(message.clone())?;
        let plan = self.plan(&task, &message, params);
        tokio::spawn(run(
            self.clone(),
            task.id.clone(),
            plan.steps,
            plan.interval,
            cancel,
        ));
        Ok((task, events))
    }

    /// A new task for the message, or the task it continues.
    fn open_task(
        &self,
        mut message: Message,
    ) -> Result<(Task, CancelSignal, broadcast::Receiver<StreamEvent>), RpcError> {
        if message.role != Role::User {
            return Err(RpcError::invalid_params("message.role must be ROLE_USER"));
        }
        if let Some(task_id) = message.task_id.clone() {
            return self
                .tasks
                .continue_with(&task_id, message)
                .map_err(|e| match e {
                    TaskError::NotFound => RpcError::task_not_found(&task_id),
                    TaskError::Ended(state) => RpcError::invalid_params(format!(
                        "task {task_id} has already ended ({}); send without taskId to start a new task",
                        state.json(Wire::V03)
                    )),
                });
        }
        let id = uuid::Uuid::new_v4().to_string();
        let context_id = message
            .context_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        message.task_id = Some(id.clone());
        message.context_id = Some(context_id.clone());
        let task = Task {
            id,
            context_id,
            status: TaskStatus::now(TaskState::Submitted, None),
            artifacts: Vec::new(),
            history: vec![message],
        };
        let (cancel, events) = self.tasks.insert(task.clone());
        Ok((task, cancel, events))
    }

    /// What the agent will do with a message.
    fn plan(&self, task: &Task, message: &Message, params: &Map<String, Value>) -> Plan {
        let working = StreamEvent::status(task, TaskStatus::now(TaskState::Working, None));
        match self.behavior {
            Behavior::Echo => {
                let artifact = Artifact {
                    artifact_id: uuid::Uuid::new_v4().to_string(),
                    name: Some("echo".into()),
                    parts: message.parts.clone(),
                };
                let reply = Message::agent(task, message.parts.clone());
                Plan {
                    interval: Duration::ZERO,
                    steps: vec![
                        working,
                        StreamEvent::artifact(task, artifact, false, true),
                        StreamEvent::status(
                            task,
                            TaskStatus::now(TaskState::Completed, Some(reply)),
                        ),
                    ],
                }
            }
            Behavior::Stream => {
                let setting = |key: &str| {
                    message.metadata_u64(key).or_else(|| {
                        params
                            .get("metadata")
                            .and_then(|m| m.get(key))
                            .and_then(Value::as_u64)
                    })
                };
                let text = message.text();
                let interval = match setting("intervalMs") {
                    Some(ms) => Duration::from_millis(ms.min(MAX_INTERVAL_MS)),
                    None if text.to_lowercase().contains("slow") => SLOW_INTERVAL,
                    None => STREAM_INTERVAL,
                };
                let chunks = setting("chunks")
                    .unwrap_or(STREAM_CHUNKS)
                    .clamp(1, MAX_CHUNKS);
                let artifact_id = uuid::Uuid::new_v4().to_string();
                let mut steps = vec![working];
                for i in 1..=chunks {
                    let chunk = Artifact {
                        artifact_id: artifact_id.clone(),
                        name: (i == 1).then(|| "stream".to_owned()),
                        parts: vec![Part::text(format!("chunk {i}/{chunks}: {text}\n"))],
                    };
                    steps.push(StreamEvent::artifact(task, chunk, i > 1, i == chunks));
                }
                let reply =
                    Message::agent(task, vec![Part::text(format!("streamed {chunks} chunks"))]);
                steps.push(StreamEvent::status(
                    task,
                    TaskStatus::now(TaskState::Completed, Some(reply)),
                ));
                Plan { interval, steps }
            }
        }
    }

    fn list(&self, wire: Wire, params: &Map<String, Value>) -> Result<Reply, RpcError> {
        let context_id = match params.get("contextId") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(RpcError::invalid_params("contextId must be a string")),
        };
        let status = match params.get("status") {
            None | Some(Value::Null) => None,
            Some(v) if v == "TASK_STATE_UNSPECIFIED" || v == 0 => None,
            Some(v) => Some(
                TaskState::parse(v)
                    .ok_or_else(|| RpcError::invalid_params(format!("unknown status {v}")))?,
            ),
        };
        let page_size = u64_param(params, "pageSize")?
            .filter(|n| *n > 0)
            .unwrap_or(DEFAULT_PAGE_SIZE)
            .min(MAX_PAGE_SIZE);
        let offset = match params.get("pageToken").and_then(Value::as_str) {
            None | Some("") => 0,
            Some(token) => token
                .parse::<usize>()
                .map_err(|_| RpcError::invalid_params("pageToken is not one this agent issued"))?,
        };
        let history = u64_param(params, "historyLength")?.map(to_usize);
        let include_artifacts = params
            .get("includeArtifacts")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut matching: Vec<Task> = self
            .tasks
            .list()
            .into_iter()
            .rev()
            .filter(|t| context_id.as_ref().is_none_or(|c| *c == t.context_id))
            .filter(|t| status.is_none_or(|s| s == t.status.state))
            .collect();
        let total = matching.len();
        let page: Vec<Value> = matching
            .drain(offset.min(total)..)
            .take(to_usize(page_size))
            .map(|mut t| {
                if !include_artifacts {
                    t.artifacts.clear();
                }
                t.json(wire, history)
            })
            .collect();
        let next = offset + page.len();
        let next_token = if next < total {
            next.to_string()
        } else {
            String::new()
        };
        Ok(Reply::Json(json!({
            "tasks": page,
            "nextPageToken": next_token,
            "pageSize": page_size,
            "totalSize": total,
        })))
    }
}

/// The events an agent will produce for a task, and the pause before each.
struct Plan {
    interval: Duration,
    steps: Vec<StreamEvent>,
}

/// Drives a task through its planned events, pausing between them, until
/// done or canceled. Runs on even if every client has gone away, so
/// `GetTask` shows the outcome.
async fn run(
    agent: Arc<Agent>,
    task_id: String,
    steps: Vec<StreamEvent>,
    interval: Duration,
    mut cancel: CancelSignal,
) {
    for mut step in steps {
        if !interval.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = cancel.wait_for(|canceled| *canceled) => {}
            }
        }
        // A status is stamped when it is set, not when it was planned.
        if let StreamEvent::Status { status, .. } = &mut step {
            *status = TaskStatus::now(status.state, status.message.take());
        }
        if *cancel.borrow() || !agent.tasks.apply(&task_id, step) {
            return;
        }
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn message_param(params: &Map<String, Value>) -> Result<Message, RpcError> {
    let message = params
        .get("message")
        .ok_or_else(|| RpcError::invalid_params("message is required"))?;
    Message::parse(message).map_err(RpcError::invalid_params)
}

fn id_param(params: &Map<String, Value>) -> Result<String, RpcError> {
    match params.get("id") {
        Some(Value::String(id)) if !id.is_empty() => Ok(id.clone()),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            Err(RpcError::invalid_params("id is required"))
        }
        Some(_) => Err(RpcError::invalid_params("id must be a string")),
    }
}

/// A non-negative integer parameter; proto JSON may send 64-bit integers as
/// strings.
fn u64_param(params: &Map<String, Value>, key: &str) -> Result<Option<u64>, RpcError> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| {
            RpcError::invalid_params(format!("{key} must be a non-negative integer"))
        }),
        Some(Value::String(s)) => s
            .parse::<u64>()
            .map(Some)
            .map_err(|_| RpcError::invalid_params(format!("{key} must be a non-negative integer"))),
        Some(_) => Err(RpcError::invalid_params(format!(
            "{key} must be a non-negative integer"
        ))),
    }
}
