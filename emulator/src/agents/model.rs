//! The A2A objects the sample agents keep (tasks, messages, parts,
//! artifacts), read from either protocol version and written in either:
//!
//! * 1.0 (proto JSON): enums as `ROLE_USER` / `TASK_STATE_COMPLETED`, parts as
//!   a oneof without `kind` (`{"text":…}`, `{"data":…}`, `{"url":…}`,
//!   `{"raw":…}`), default values omitted, stream events wrapped as
//!   `{"task":…}` / `{"statusUpdate":…}` / `{"artifactUpdate":…}`.
//! * 0.3: lower-case enums (`user`, `input-required`), every object tagged
//!   with `kind`, file parts as `{"kind":"file","file":{"uri"|"bytes",…}}`,
//!   stream events bare with `kind` and a required `final` on status updates.
//!
//! Statuses, tasks and stream events are in [`task`]; timestamps in [`time`].

mod task;
mod time;

use serde_json::{json, Map, Value};

pub use task::{StreamEvent, Task, TaskStatus};
pub use time::rfc3339_now;

/// Which protocol version's JSON to read or write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// A2A 1.0.
    V1,
    /// A2A 0.3.
    V03,
}

/// Who sent a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The client.
    User,
    /// The agent.
    Agent,
}

impl Role {
    fn json(self, wire: Wire) -> &'static str {
        match (self, wire) {
            (Role::User, Wire::V1) => "ROLE_USER",
            (Role::Agent, Wire::V1) => "ROLE_AGENT",
            (Role::User, Wire::V03) => "user",
            (Role::Agent, Wire::V03) => "agent",
        }
    }

    fn parse(value: &Value) -> Option<Role> {
        match value {
            Value::String(s) => match s.as_str() {
                "ROLE_USER" | "user" => Some(Role::User),
                "ROLE_AGENT" | "agent" => Some(Role::Agent),
                _ => None,
            },
            Value::Number(n) => match n.as_u64() {
                Some(1) => Some(Role::User),
                Some(2) => Some(Role::Agent),
                _ => None,
            },
            _ => None,
        }
    }
}

/// A task's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// Accepted, not started.
    Submitted,
    /// In progress.
    Working,
    /// Waiting for the client.
    InputRequired,
    /// Done.
    Completed,
    /// Stopped at the client's request.
    Canceled,
    /// Ended in error.
    Failed,
    /// Refused.
    Rejected,
    /// Waiting for credentials.
    AuthRequired,
}

const STATES: [(TaskState, &str, &str, u64); 8] = [
    (TaskState::Submitted, "TASK_STATE_SUBMITTED", "submitted", 1),
    (TaskState::Working, "TASK_STATE_WORKING", "working", 2),
    (TaskState::Completed, "TASK_STATE_COMPLETED", "completed", 3),
    (TaskState::Failed, "TASK_STATE_FAILED", "failed", 4),
    (TaskState::Canceled, "TASK_STATE_CANCELED", "canceled", 5),
    (
        TaskState::InputRequired,
        "TASK_STATE_INPUT_REQUIRED",
        "input-required",
        6,
    ),
    (TaskState::Rejected, "TASK_STATE_REJECTED", "rejected", 7),
    (
        TaskState::AuthRequired,
        "TASK_STATE_AUTH_REQUIRED",
        "auth-required",
        8,
    ),
];

impl TaskState {
    /// Completed, canceled, failed and rejected tasks never change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Completed | TaskState::Canceled | TaskState::Failed | TaskState::Rejected
        )
    }

    /// The enum's spelling in `wire`.
    pub fn json(self, wire: Wire) -> &'static str {
        let (_, v1, v03, _) = STATES
            .iter()
            .copied()
            .find(|(s, ..)| *s == self)
            .unwrap_or(STATES[0]);
        match wire {
            Wire::V1 => v1,
            Wire::V03 => v03,
        }
    }

    /// Either version's spelling, or the 1.0 enum number.
    pub fn parse(value: &Value) -> Option<TaskState> {
        STATES
            .iter()
            .find(|(_, v1, v03, n)| match value {
                Value::String(s) => s == v1 || s == v03,
                Value::Number(num) => num.as_u64() == Some(*n),
                _ => false,
            })
            .map(|(s, ..)| *s)
    }
}

/// One piece of content.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// Text.
    Text(String),
    /// Structured JSON.
    Data(Value),
    /// A file by reference.
    Url(String),
    /// File bytes, base64.
    Raw(String),
}

/// A part of a message or an artifact.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// What it holds.
    pub content: Content,
    /// Media type, for files.
    pub media_type: Option<String>,
    /// File name, for files.
    pub filename: Option<String>,
    /// Free-form metadata.
    pub metadata: Option<Value>,
}

impl Part {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Part {
        Part {
            content: Content::Text(text.into()),
            media_type: None,
            filename: None,
            metadata: None,
        }
    }

    fn json(&self, wire: Wire) -> Value {
        let mut out = Map::new();
        match wire {
            Wire::V1 => {
                match &self.content {
                    Content::Text(t) => out.insert("text".into(), json!(t)),
                    Content::Data(d) => out.insert("data".into(), d.clone()),
                    Content::Url(u) => out.insert("url".into(), json!(u)),
                    Content::Raw(r) => out.insert("raw".into(), json!(r)),
                };
                if let Some(m) = &self.media_type {
                    out.insert("mediaType".into(), json!(m));
                }
                if let Some(f) = &self.filename {
                    out.insert("filename".into(), json!(f));
                }
            }
            Wire::V03 => match &self.content {
                Content::Text(t) => {
                    out.insert("kind".into(), json!("text"));
                    out.insert("text".into(), json!(t));
                }
                Content::Data(d) => {
                    out.insert("kind".into(), json!("data"));
                    // 0.3 data parts hold an object.
                    let data = if d.is_object() {
                        d.clone()
                    } else {
                        json!({ "value": d })
                    };
                    out.insert("data".into(), data);
                }
                Content::Url(_) | Content::Raw(_) => {
                    let mut file = Map::new();
                    match &self.content {
                        Content::Url(u) => file.insert("uri".into(), json!(u)),
                        Content::Raw(r) => file.insert("bytes".into(), json!(r)),
                        _ => None,
                    };
                    if let Some(m) = &self.media_type {
                        file.insert("mimeType".into(), json!(m));
                    }
                    if let Some(f) = &self.filename {
                        file.insert("name".into(), json!(f));
                    }
                    out.insert("kind".into(), json!("file"));
                    out.insert("file".into(), Value::Object(file));
                }
            },
        }
        if let Some(m) = &self.metadata {
            out.insert("metadata".into(), m.clone());
        }
        Value::Object(out)
    }

    /// Reads a part in either version's shape.
    fn parse(value: &Value, at: &str) -> Result<Part, String> {
        let obj = value
            .as_object()
            .ok_or_else(|| format!("{at} must be an object"))?;
        let string = |key: &str, o: &Map<String, Value>| -> Result<Option<String>, String> {
            match o.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(format!("{at}.{key} must be a string")),
            }
        };
        let mut part = Part {
            content: Content::Text(String::new()),
            media_type: string("mediaType", obj)?,
            filename: string("filename", obj)?,
            metadata: obj.get("metadata").filter(|m| !m.is_null()).cloned(),
        };
        let mut found = Vec::new();
        if let Some(text) = string("text", obj)? {
            found.push(Content::Text(text));
        }
        if let Some(data) = obj.get("data").filter(|d| !d.is_null()) {
            found.push(Content::Data(data.clone()));
        }
        if let Some(url) = string("url", obj)? {
            found.push(Content::Url(url));
        }
        if let Some(raw) = string("raw", obj)? {
            found.push(Content::Raw(raw));
        }
        if let Some(file) = obj.get("file").filter(|f| !f.is_null()) {
            let file = file
                .as_object()
                .ok_or_else(|| format!("{at}.file must be an object"))?;
            part.media_type = string("mimeType", file)?;
            part.filename = string("name", file)?;
            match (string("uri", file)?, string("bytes", file)?) {
                (Some(uri), None) => found.push(Content::Url(uri)),
                (None, Some(bytes)) => found.push(Content::Raw(bytes)),
                _ => return Err(format!("{at}.file needs exactly one of uri or bytes")),
            }
        }
        if found.len() != 1 {
            return Err(format!(
                "{at} needs exactly one of text, data, url, raw (or a 0.3 file)"
            ));
        }
        part.content = found.remove(0);
        Ok(part)
    }
}

/// A message between client and agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Sender-chosen id.
    pub message_id: String,
    /// Conversation id.
    pub context_id: Option<String>,
    /// The task it belongs to.
    pub task_id: Option<String>,
    /// Sender.
    pub role: Role,
    /// Content.
    pub parts: Vec<Part>,
    /// Free-form metadata.
    pub metadata: Option<Value>,
}

impl Message {
    /// A message from the agent, in a task.
    pub fn agent(task: &Task, parts: Vec<Part>) -> Message {
        Message {
            message_id: uuid::Uuid::new_v4().to_string(),
            context_id: Some(task.context_id.clone()),
            task_id: Some(task.id.clone()),
            role: Role::Agent,
            parts,
            metadata: None,
        }
    }

    /// Every text part, joined with newlines.
    pub fn text(&self) -> String {
        let texts: Vec<&str> = self
            .parts
            .iter()
            .filter_map(|p| match &p.content {
                Content::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        texts.join("\n")
    }

    /// A metadata value, as an unsigned number.
    pub fn metadata_u64(&self, key: &str) -> Option<u64> {
        self.metadata.as_ref()?.get(key)?.as_u64()
    }

    /// The message in `wire`'s shape.
    pub fn json(&self, wire: Wire) -> Value {
        let mut out = Map::new();
        if wire == Wire::V03 {
            out.insert("kind".into(), json!("message"));
        }
        out.insert("messageId".into(), json!(self.message_id));
        if let Some(c) = &self.context_id {
            out.insert("contextId".into(), json!(c));
        }
        if let Some(t) = &self.task_id {
            out.insert("taskId".into(), json!(t));
        }
        out.insert("role".into(), json!(self.role.json(wire)));
        out.insert(
            "parts".into(),
            Value::Array(self.parts.iter().map(|p| p.json(wire)).collect()),
        );
        if let Some(m) = &self.metadata {
            out.insert("metadata".into(), m.clone());
        }
        Value::Object(out)
    }

    /// Reads a message in either version's shape. The error says which field
    /// is wrong.
    pub fn parse(value: &Value) -> Result<Message, String> {
        let obj = value
            .as_object()
            .ok_or_else(|| "message must be an object".to_owned())?;
        let string = |key: &str| -> Result<Option<String>, String> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(format!("message.{key} must be a string")),
            }
        };
        if let Some(kind) = obj.get("kind") {
            if kind != "message" {
                return Err("message.kind must be \"message\"".into());
            }
        }
        let message_id = string("messageId")?.ok_or("message.messageId is required")?;
        let role = obj
            .get("role")
            .ok_or("message.role is required")
            .and_then(|r| Role::parse(r).ok_or("message.role must be ROLE_USER or ROLE_AGENT"))?;
        let parts = obj
            .get("parts")
            .and_then(Value::as_array)
            .ok_or("message.parts must be an array")?;
        if parts.is_empty() {
            return Err("message.parts must not be empty".into());
        }
        let parts = parts
            .iter()
            .enumerate()
            .map(|(i, p)| Part::parse(p, &format!("message.parts[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Message {
            message_id,
            context_id: string("contextId")?,
            task_id: string("taskId")?,
            role,
            parts,
            metadata: obj.get("metadata").filter(|m| !m.is_null()).cloned(),
        })
    }
}

/// An output of a task.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    /// Id, unique within the task.
    pub artifact_id: String,
    /// Display name.
    pub name: Option<String>,
    /// Content.
    pub parts: Vec<Part>,
}

impl Artifact {
    fn json(&self, wire: Wire) -> Value {
        let mut out = Map::new();
        out.insert("artifactId".into(), json!(self.artifact_id));
        if let Some(n) = &self.name {
            out.insert("name".into(), json!(n));
        }
        out.insert(
            "parts".into(),
            Value::Array(self.parts.iter().map(|p| p.json(wire)).collect()),
        );
        Value::Object(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn messages_read_from_both_versions_alike() {
        let v1 = json!({"messageId":"m1","role":"ROLE_USER","parts":[{"text":"hi"},{"data":{"a":1}},{"url":"http://x/f","mediaType":"text/plain","filename":"f"}]});
        let v03 = json!({"kind":"message","messageId":"m1","role":"user","parts":[{"kind":"text","text":"hi"},{"kind":"data","data":{"a":1}},{"kind":"file","file":{"uri":"http://x/f","mimeType":"text/plain","name":"f"}}]});
        let a = Message::parse(&v1).unwrap();
        let b = Message::parse(&v03).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.json(Wire::V1), v1);
        assert_eq!(b.json(Wire::V03), v03);
    }

    #[test]
    fn bad_messages_say_what_is_wrong() {
        let cases = [
            (json!("x"), "message must be an object"),
            (
                json!({"role":"ROLE_USER","parts":[{"text":"a"}]}),
                "message.messageId is required",
            ),
            (
                json!({"messageId":"m","parts":[{"text":"a"}]}),
                "message.role is required",
            ),
            (
                json!({"messageId":"m","role":"boss","parts":[{"text":"a"}]}),
                "message.role must be ROLE_USER or ROLE_AGENT",
            ),
            (
                json!({"messageId":"m","role":"user","parts":"x"}),
                "message.parts must be an array",
            ),
            (
                json!({"messageId":"m","role":"user","parts":[]}),
                "message.parts must not be empty",
            ),
            (
                json!({"messageId":"m","role":"user","parts":[{"text":1}]}),
                "message.parts[0].text must be a string",
            ),
            (
                json!({"messageId":"m","role":"user","parts":[{}]}),
                "message.parts[0] needs exactly one of text, data, url, raw (or a 0.3 file)",
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(Message::parse(&value).unwrap_err(), expected, "{value}");
        }
    }

    #[test]
    fn states_spell_per_version() {
        assert_eq!(
            TaskState::InputRequired.json(Wire::V1),
            "TASK_STATE_INPUT_REQUIRED"
        );
        assert_eq!(TaskState::InputRequired.json(Wire::V03), "input-required");
        assert_eq!(
            TaskState::parse(&json!("canceled")),
            Some(TaskState::Canceled)
        );
        assert_eq!(
            TaskState::parse(&json!("TASK_STATE_WORKING")),
            Some(TaskState::Working)
        );
        assert_eq!(TaskState::parse(&json!(3)), Some(TaskState::Completed));
        assert_eq!(TaskState::parse(&json!("done")), None);
    }
}
