//! JSON-RPC 2.0 framing for A2A: the envelope, the method table for both
//! protocol versions, the `A2A-Version` check, and error objects.

use serde_json::{json, Map, Value};

use super::model::Wire;

/// An A2A operation, whichever version named it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `SendMessage` / `message/send`.
    Send,
    /// `SendStreamingMessage` / `message/stream`.
    SendStreaming,
    /// `GetTask` / `tasks/get`.
    GetTask,
    /// `CancelTask` / `tasks/cancel`.
    CancelTask,
    /// `ListTasks` (1.0 only).
    ListTasks,
    /// `SubscribeToTask` / `tasks/resubscribe`.
    Subscribe,
    /// Push-notification config methods; these agents have no push support.
    PushConfig,
    /// `GetExtendedAgentCard` / `agent/getAuthenticatedExtendedCard`.
    ExtendedCard,
}

const METHODS: [(&str, Method, Wire); 21] = [
    ("SendMessage", Method::Send, Wire::V1),
    ("SendStreamingMessage", Method::SendStreaming, Wire::V1),
    ("GetTask", Method::GetTask, Wire::V1),
    ("CancelTask", Method::CancelTask, Wire::V1),
    ("ListTasks", Method::ListTasks, Wire::V1),
    ("SubscribeToTask", Method::Subscribe, Wire::V1),
    (
        "CreateTaskPushNotificationConfig",
        Method::PushConfig,
        Wire::V1,
    ),
    (
        "GetTaskPushNotificationConfig",
        Method::PushConfig,
        Wire::V1,
    ),
    (
        "ListTaskPushNotificationConfigs",
        Method::PushConfig,
        Wire::V1,
    ),
    (
        "DeleteTaskPushNotificationConfig",
        Method::PushConfig,
        Wire::V1,
    ),
    ("GetExtendedAgentCard", Method::ExtendedCard, Wire::V1),
    ("message/send", Method::Send, Wire::V03),
    ("message/stream", Method::SendStreaming, Wire::V03),
    ("tasks/get", Method::GetTask, Wire::V03),
    ("tasks/cancel", Method::CancelTask, Wire::V03),
    ("tasks/resubscribe", Method::Subscribe, Wire::V03),
    (
        "tasks/pushNotificationConfig/set",
        Method::PushConfig,
        Wire::V03,
    ),
    (
        "tasks/pushNotificationConfig/get",
        Method::PushConfig,
        Wire::V03,
    ),
    (
        "tasks/pushNotificationConfig/list",
        Method::PushConfig,
        Wire::V03,
    ),
    (
        "tasks/pushNotificationConfig/delete",
        Method::PushConfig,
        Wire::V03,
    ),
    (
        "agent/getAuthenticatedExtendedCard",
        Method::ExtendedCard,
        Wire::V03,
    ),
];

/// The operation and version a method name stands for.
pub fn lookup(name: &str) -> Option<(Method, Wire)> {
    METHODS
        .iter()
        .find(|(n, ..)| *n == name)
        .map(|(_, m, w)| (*m, *w))
}

/// A JSON-RPC error object, with the A2A `ErrorInfo` reason it carries in 1.0.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// JSON-RPC code.
    pub code: i64,
    /// Human-readable message.
    pub message: String,
    /// `ErrorInfo.reason`, for A2A errors.
    pub reason: Option<&'static str>,
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>, reason: Option<&'static str>) -> Self {
        RpcError {
            code,
            message: message.into(),
            reason,
        }
    }

    /// -32700: the body is not JSON.
    pub fn parse_error(detail: impl std::fmt::Display) -> Self {
        Self::new(-32700, format!("Parse error: {detail}"), None)
    }

    /// -32600: not a JSON-RPC 2.0 request.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(-32600, message, Some("INVALID_REQUEST"))
    }

    /// -32601.
    pub fn method_not_found(method: &str) -> Self {
        Self::new(-32601, format!("Method not found: {method}"), None)
    }

    /// -32602.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(
            -32602,
            format!("Invalid params: {}", message.into()),
            Some("INVALID_PARAMS"),
        )
    }

    /// -32001.
    pub fn task_not_found(id: &str) -> Self {
        Self::new(
            -32001,
            format!("Task not found: {id}"),
            Some("TASK_NOT_FOUND"),
        )
    }

    /// -32002.
    pub fn task_not_cancelable(id: &str, state: &str) -> Self {
        Self::new(
            -32002,
            format!("Task cannot be canceled: {id} is already {state}"),
            Some("TASK_NOT_CANCELABLE"),
        )
    }

    /// -32003.
    pub fn push_not_supported() -> Self {
        Self::new(
            -32003,
            "Push notifications are not supported by this agent",
            Some("PUSH_NOTIFICATION_NOT_SUPPORTED"),
        )
    }

    /// -32004.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(-32004, message, Some("UNSUPPORTED_OPERATION"))
    }

    /// -32007.
    pub fn extended_card_not_configured() -> Self {
        Self::new(
            -32007,
            "This agent has no extended agent card",
            Some("EXTENDED_AGENT_CARD_NOT_CONFIGURED"),
        )
    }

    /// -32009.
    pub fn version_not_supported(actual: &str, expected: &str) -> Self {
        Self::new(
            -32009,
            format!(
                "A2A version '{actual}' is not supported by this method; expected '{expected}' \
                 (send the A2A-Version header; a missing one means 0.3)"
            ),
            Some("VERSION_NOT_SUPPORTED"),
        )
    }

    /// The error object. 1.0 adds a `google.rpc.ErrorInfo` in `data`; 0.3
    /// errors have no `data`.
    pub fn json(&self, wire: Wire) -> Value {
        let mut out = Map::new();
        out.insert("code".into(), json!(self.code));
        out.insert("message".into(), json!(self.message));
        if let (Wire::V1, Some(reason)) = (wire, self.reason) {
            out.insert(
                "data".into(),
                json!([{
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": reason,
                    "domain": "a2a-protocol.org",
                    "metadata": {},
                }]),
            );
        }
        Value::Object(out)
    }
}

/// A successful response.
pub fn success(id: &Value, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

/// An error response.
pub fn failure(id: &Value, error: &RpcError, wire: Wire) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": error.json(wire) })
}

/// A parsed request envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The id to echo (`null` when absent).
    pub id: Value,
    /// The method name.
    pub method: String,
    /// The params object (empty when absent).
    pub params: Map<String, Value>,
}

/// Reads a JSON-RPC 2.0 request. On failure returns the id to answer with
/// (when one could be read) and the error.
pub fn parse(body: &[u8]) -> Result<Request, (Value, RpcError)> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| (Value::Null, RpcError::parse_error(e)))?;
    let obj = match value {
        Value::Object(obj) => obj,
        Value::Array(_) => {
            return Err((
                Value::Null,
                RpcError::invalid_request("Batch requests are not supported"),
            ))
        }
        _ => {
            return Err((
                Value::Null,
                RpcError::invalid_request("The request must be a JSON object"),
            ))
        }
    };
    let id = match obj.get("id") {
        None => Value::Null,
        Some(id @ (Value::String(_) | Value::Number(_) | Value::Null)) => id.clone(),
        Some(_) => {
            return Err((
                Value::Null,
                RpcError::invalid_request("id must be a string, a number or null"),
            ))
        }
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err((
            id,
            RpcError::invalid_request("'jsonrpc' must be exactly \"2.0\""),
        ));
    }
    let method = match obj.get("method") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        _ => return Err((id, RpcError::invalid_request("method is required"))),
    };
    let params = match obj.get("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p.clone(),
        Some(_) => return Err((id, RpcError::invalid_params("params must be an object"))),
    };
    Ok(Request { id, method, params })
}

/// The request's protocol version: the `A2A-Version` header (or query
/// parameter); missing or empty means 0.3.
pub fn requested_version(header: Option<&str>) -> &str {
    match header.map(str::trim) {
        Some(v) if !v.is_empty() => v,
        _ => "0.3",
    }
}

/// Checks that the requested version has the method's major version, as the
/// official SDK's server does (a 1.0 method without `A2A-Version: 1.x` is
/// refused with -32009).
pub fn check_version(requested: &str, wire: Wire) -> Result<(), RpcError> {
    let expected = match wire {
        Wire::V1 => "1.0",
        Wire::V03 => "0.3",
    };
    let major = |v: &str| v.split('.').next().and_then(|m| m.parse::<u64>().ok());
    let numeric = requested
        .split('.')
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if numeric && major(requested) == major(expected) {
        Ok(())
    } else {
        Err(RpcError::version_not_supported(requested, expected))
    }
}

/// The error shape to use before the method is known: the requested version's.
pub fn wire_of_version(requested: &str) -> Wire {
    if requested.starts_with("0.") {
        Wire::V03
    } else {
        Wire::V1
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn envelopes() {
        let ok =
            parse(br#"{"jsonrpc":"2.0","id":"a","method":"GetTask","params":{"id":"t"}}"#).unwrap();
        assert_eq!(ok.id, json!("a"));
        assert_eq!(ok.method, "GetTask");
        assert_eq!(ok.params["id"], "t");

        let no_params = parse(br#"{"jsonrpc":"2.0","id":7,"method":"x"}"#).unwrap();
        assert!(no_params.params.is_empty());

        let cases: [(&[u8], Value, i64); 7] = [
            (b"{nope", Value::Null, -32700),
            (b"[]", Value::Null, -32600),
            (b"3", Value::Null, -32600),
            (
                br#"{"jsonrpc":"1.0","id":1,"method":"x"}"#,
                json!(1),
                -32600,
            ),
            (
                br#"{"jsonrpc":"2.0","id":true,"method":"x"}"#,
                Value::Null,
                -32600,
            ),
            (br#"{"jsonrpc":"2.0","id":1}"#, json!(1), -32600),
            (
                br#"{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}"#,
                json!(1),
                -32602,
            ),
        ];
        for (body, id, code) in cases {
            let (got_id, err) = parse(body).unwrap_err();
            assert_eq!(
                (got_id, err.code),
                (id, code),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn versions() {
        assert_eq!(requested_version(None), "0.3");
        assert_eq!(requested_version(Some(" ")), "0.3");
        assert_eq!(requested_version(Some("1.0")), "1.0");
        assert!(check_version("1.0", Wire::V1).is_ok());
        assert!(check_version("1.2.3", Wire::V1).is_ok());
        assert!(check_version("0.3", Wire::V1).is_err());
        assert!(check_version("abc", Wire::V1).is_err());
        assert!(check_version("0.3", Wire::V03).is_ok());
        assert!(check_version("0.3.0", Wire::V03).is_ok());
        assert!(check_version("1.0", Wire::V03).is_err());
        assert_eq!(check_version("0.3", Wire::V1).unwrap_err().code, -32009);
    }

    #[test]
    fn error_shapes() {
        let e = RpcError::task_not_found("t1");
        assert_eq!(
            failure(&json!("r"), &e, Wire::V1),
            json!({"jsonrpc":"2.0","id":"r","error":{"code":-32001,"message":"Task not found: t1","data":[{
                "@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"TASK_NOT_FOUND",
                "domain":"a2a-protocol.org","metadata":{}}]}})
        );
        assert_eq!(
            failure(&json!(1), &e, Wire::V03),
            json!({"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"Task not found: t1"}})
        );
        assert_eq!(
            lookup("tasks/pushNotificationConfig/list"),
            Some((Method::PushConfig, Wire::V03))
        );
        assert_eq!(
            lookup("message/stream"),
            Some((Method::SendStreaming, Wire::V03))
        );
        assert_eq!(lookup("Nope"), None);
    }
}
