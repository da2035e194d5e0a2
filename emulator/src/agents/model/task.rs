//! Where a task stands ([`TaskStatus`]), the task itself ([`Task`]) and the
//! events a streamed task produces ([`StreamEvent`]), in either wire shape.

use serde_json::{json, Map, Value};

use super::{rfc3339_now, Artifact, Message, TaskState, Wire};

/// Where a task stands.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskStatus {
    /// State.
    pub state: TaskState,
    /// The agent's latest word, if any.
    pub message: Option<Message>,
    /// RFC 3339 time of the change.
    pub timestamp: String,
}

impl TaskStatus {
    /// A status stamped now.
    pub fn now(state: TaskState, message: Option<Message>) -> TaskStatus {
        TaskStatus {
            state,
            message,
            timestamp: rfc3339_now(),
        }
    }

    fn json(&self, wire: Wire) -> Value {
        let mut out = Map::new();
        out.insert("state".into(), json!(self.state.json(wire)));
        if let Some(m) = &self.message {
            out.insert("message".into(), m.json(wire));
        }
        out.insert("timestamp".into(), json!(self.timestamp));
        Value::Object(out)
    }
}

/// A unit of work.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Server-chosen id.
    pub id: String,
    /// Conversation id.
    pub context_id: String,
    /// Current status.
    pub status: TaskStatus,
    /// Outputs so far.
    pub artifacts: Vec<Artifact>,
    /// Messages exchanged, oldest first.
    pub history: Vec<Message>,
}

impl Task {
    /// The task in `wire`'s shape, with at most `history_length` messages of
    /// history (all when `None`).
    pub fn json(&self, wire: Wire, history_length: Option<usize>) -> Value {
        let mut out = Map::new();
        if wire == Wire::V03 {
            out.insert("kind".into(), json!("task"));
        }
        out.insert("id".into(), json!(self.id));
        out.insert("contextId".into(), json!(self.context_id));
        out.insert("status".into(), self.status.json(wire));
        if !self.artifacts.is_empty() {
            out.insert(
                "artifacts".into(),
                Value::Array(self.artifacts.iter().map(|a| a.json(wire)).collect()),
            );
        }
        let keep = history_length.unwrap_or(usize::MAX).min(self.history.len());
        let history = &self.history[self.history.len() - keep..];
        if !history.is_empty() {
            out.insert(
                "history".into(),
                Value::Array(history.iter().map(|m| m.json(wire)).collect()),
            );
        }
        Value::Object(out)
    }

    /// Applies a stream event to the stored task.
    pub fn apply(&mut self, event: &StreamEvent) {
        match event {
            StreamEvent::Task(task) => *self = task.clone(),
            StreamEvent::Status { status, .. } => self.status = status.clone(),
            StreamEvent::Artifact {
                artifact, append, ..
            } => {
                match self
                    .artifacts
                    .iter_mut()
                    .find(|a| a.artifact_id == artifact.artifact_id)
                {
                    Some(existing) if *append => {
                        existing.parts.extend(artifact.parts.iter().cloned())
                    }
                    Some(existing) => *existing = artifact.clone(),
                    None => self.artifacts.push(artifact.clone()),
                }
            }
        }
    }
}

/// One event of a streamed task.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The task as it starts.
    Task(Task),
    /// A status change.
    Status {
        /// Task id.
        task_id: String,
        /// Context id.
        context_id: String,
        /// The new status.
        status: TaskStatus,
    },
    /// An artifact, whole or a chunk of one.
    Artifact {
        /// Task id.
        task_id: String,
        /// Context id.
        context_id: String,
        /// The artifact (or chunk).
        artifact: Artifact,
        /// Whether the parts extend an artifact sent earlier.
        append: bool,
        /// Whether this is the artifact's last chunk.
        last_chunk: bool,
    },
}

impl StreamEvent {
    /// A status event for `task`.
    pub fn status(task: &Task, status: TaskStatus) -> StreamEvent {
        StreamEvent::Status {
            task_id: task.id.clone(),
            context_id: task.context_id.clone(),
            status,
        }
    }

    /// An artifact event for `task`.
    pub fn artifact(
        task: &Task,
        artifact: Artifact,
        append: bool,
        last_chunk: bool,
    ) -> StreamEvent {
        StreamEvent::Artifact {
            task_id: task.id.clone(),
            context_id: task.context_id.clone(),
            artifact,
            append,
            last_chunk,
        }
    }

    /// The event as a JSON-RPC `result`: wrapped in 1.0, bare with `kind` in 0.3.
    pub fn json(&self, wire: Wire) -> Value {
        match (self, wire) {
            (StreamEvent::Task(task), Wire::V1) => json!({ "task": task.json(wire, None) }),
            (StreamEvent::Task(task), Wire::V03) => task.json(wire, None),
            (
                StreamEvent::Status {
                    task_id,
                    context_id,
                    status,
                },
                _,
            ) => {
                let body = json!({
                    "taskId": task_id,
                    "contextId": context_id,
                    "status": status.json(wire),
                });
                match wire {
                    Wire::V1 => json!({ "statusUpdate": body }),
                    Wire::V03 => {
                        let mut body = body;
                        body["kind"] = json!("status-update");
                        body["final"] = json!(
                            status.state.is_terminal()
                                || status.state == TaskState::InputRequired
                                || status.state == TaskState::AuthRequired
                        );
                        body
                    }
                }
            }
            (
                StreamEvent::Artifact {
                    task_id,
                    context_id,
                    artifact,
                    append,
                    last_chunk,
                },
                _,
            ) => {
                let mut body = json!({
                    "taskId": task_id,
                    "contextId": context_id,
                    "artifact": artifact.json(wire),
                });
                match wire {
                    Wire::V1 => {
                        // Proto JSON leaves out fields at their default.
                        if *append {
                            body["append"] = json!(true);
                        }
                        if *last_chunk {
                            body["lastChunk"] = json!(true);
                        }
                        json!({ "artifactUpdate": body })
                    }
                    Wire::V03 => {
                        body["kind"] = json!("artifact-update");
                        body["append"] = json!(append);
                        body["lastChunk"] = json!(last_chunk);
                        body
                    }
                }
            }
        }
    }
}
