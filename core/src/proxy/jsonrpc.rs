//! The JSON-RPC envelope step: for a POST to an agent's root, a bounded
//! prefix of the body is read ahead to learn the request's `id` and `method`
//! (for error bodies, the traffic view and the audit log) and to judge
//! whether it is one JSON-RPC request at all. The body itself streams on to
//! the backend untouched.

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{header, Method};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use serde_json::Value;

use crate::audit::Record;
use crate::error::GatewayError;

/// How much of a JSON-RPC request body is read ahead to learn its `id` and
/// `method` (for error bodies, the traffic view and the audit log). Larger
/// bodies stream on without it.
pub const PEEK_LIMIT: usize = 64 * 1024;

/// Is this a call to the JSON-RPC binding (a POST to the agent's root)?
pub fn is_jsonrpc(method: &Method, rest: &str) -> bool {
    rest.is_empty() && method == Method::POST
}

/// The request body as the envelope step leaves it.
pub struct Incoming {
    /// What was read ahead (JSON-RPC calls only), to be sent first.
    pub prefix: Option<Bytes>,
    /// The rest of the body.
    pub body: Body,
    /// The declared `Content-Length`, if any.
    pub declared: Option<u64>,
    /// What is wrong with the envelope, judged once the caller is known.
    invalid: Option<GatewayError>,
}

impl Incoming {
    /// Refuses a body that is not one JSON-RPC request.
    pub fn check(&mut self) -> Result<(), GatewayError> {
        self.invalid.take().map_or(Ok(()), Err)
    }

    /// Is there a body to send on?
    pub fn has_body(&self, parts: &Parts) -> bool {
        self.prefix.is_some()
            || self.declared.is_some_and(|n| n > 0)
            || parts.headers.contains_key(header::TRANSFER_ENCODING)
    }
}

/// The step: refuses a declared or read-ahead body over `limit`, and notes
/// the envelope's id and method in the record.
pub async fn read(
    parts: &Parts,
    body: Body,
    jsonrpc: bool,
    limit: u64,
    record: &mut Record,
) -> Result<Incoming, GatewayError> {
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(GatewayError::PayloadTooLarge(limit));
    }
    if !jsonrpc {
        return Ok(Incoming {
            prefix: None,
            body,
            declared,
            invalid: None,
        });
    }
    let (prefix, complete, rest) = peek(body, PEEK_LIMIT.min(limit as usize + 1)).await?;
    let meta = rpc_meta(&prefix, complete);
    record.envelope(meta.id, meta.method);
    if prefix.len() as u64 > limit {
        return Err(GatewayError::PayloadTooLarge(limit));
    }
    Ok(Incoming {
        prefix: Some(prefix),
        body: rest,
        declared,
        invalid: meta.invalid,
    })
}

/// The request's JSON-RPC envelope, as far as it could be read, and what is
/// wrong with it if it is not one JSON-RPC request.
#[derive(Debug, Default)]
struct RpcMeta {
    id: Value,
    method: Option<String>,
    invalid: Option<GatewayError>,
}

/// Only the envelope members, each as written; `params` and anything else
/// are skipped without building a value (so without recursion: nesting
/// depth costs nothing here and is the agent's to judge). A member
/// given twice is an error, so the gateway and the agent cannot read
/// different methods out of one body.
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(default, borrow)]
    jsonrpc: Option<&'a serde_json::value::RawValue>,
    #[serde(default, borrow)]
    id: Option<&'a serde_json::value::RawValue>,
    #[serde(default, borrow)]
    method: Option<&'a serde_json::value::RawValue>,
}

/// Reads the envelope of a JSON-RPC body. A body read only in part is judged
/// by its first byte (a batch); a whole body must be one request object with
/// `"jsonrpc": "2.0"` and a string `method`.
fn rpc_meta(prefix: &[u8], complete: bool) -> RpcMeta {
    use serde_json::error::Category;
    if prefix.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return RpcMeta {
            invalid: Some(GatewayError::BadRequest(
                "batch requests are not supported: send one JSON-RPC request per HTTP request"
                    .into(),
            )),
            ..RpcMeta::default()
        };
    }
    if !complete {
        return RpcMeta::default();
    }
    let Ok(text) = std::str::from_utf8(prefix) else {
        return RpcMeta {
            invalid: Some(GatewayError::ParseError(
                "the body is not UTF-8, so not JSON".into(),
            )),
            ..RpcMeta::default()
        };
    };
    let env = match serde_json::from_str::<Envelope<'_>>(text) {
        Ok(env) => env,
        Err(e) => {
            let invalid = match e.classify() {
                Category::Data => GatewayError::BadRequest(format!(
                    "the body is not a JSON-RPC request object: {e}"
                )),
                Category::Syntax | Category::Eof | Category::Io => {
                    GatewayError::ParseError(format!("the body is not JSON: {e}"))
                }
            };
            return RpcMeta {
                invalid: Some(invalid),
                ..RpcMeta::default()
            };
        }
    };
    let value = |raw: Option<&serde_json::value::RawValue>| {
        raw.and_then(|r| serde_json::from_str::<Value>(r.get()).ok())
    };
    let id = value(env.id);
    let method = value(env.method);
    let invalid = if !matches!(
        id,
        None | Some(Value::Null | Value::String(_) | Value::Number(_))
    ) {
        Some("id must be a string, a number or null")
    } else if value(env.jsonrpc) != Some(Value::String("2.0".into())) {
        Some("jsonrpc must be \"2.0\"")
    } else if !matches!(method, Some(Value::String(_))) {
        Some("method must be a string")
    } else {
        None
    };
    RpcMeta {
        id: id
            .filter(|v| v.is_string() || v.is_number())
            .unwrap_or(Value::Null),
        method: method.and_then(|m| m.as_str().map(str::to_owned)),
        invalid: invalid
            .map(|why| GatewayError::BadRequest(format!("not a JSON-RPC request: {why}"))),
    }
}

/// Reads up to `limit` bytes of `body`. Returns the bytes read, whether that
/// was the whole body, and the body itself to continue from.
async fn peek(mut body: Body, limit: usize) -> Result<(Bytes, bool, Body), GatewayError> {
    let mut buf = BytesMut::new();
    while buf.len() < limit {
        match body.frame().await {
            None => return Ok((buf.freeze(), true, Body::empty())),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => {
                return Err(GatewayError::BadRequest(format!(
                    "could not read the request body: {e}"
                )))
            }
        }
    }
    Ok((buf.freeze(), false, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rpc_meta_reads_id_and_method() {
        let m = rpc_meta(
            br#"{"jsonrpc":"2.0","id":"a1","method":"SendMessage"}"#,
            true,
        );
        assert_eq!(m.id, json!("a1"));
        assert_eq!(m.method.as_deref(), Some("SendMessage"));
        assert_eq!(rpc_meta(b"{\"id\":1", false).id, Value::Null);
        assert_eq!(rpc_meta(b"not json", true).id, Value::Null);
    }
}
