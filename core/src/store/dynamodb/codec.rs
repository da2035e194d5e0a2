//! The attribute-value codec: JSON to DynamoDB attribute values and back,
//! typed reads of an item's attributes, and an item's approximate size.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;

use crate::registry::{StoreError, StoreResult};

/// One DynamoDB item.
pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// JSON → DynamoDB attribute value (maps, lists, strings, numbers, booleans, null).
pub fn json_to_attribute(v: &Value) -> AttributeValue {
    match v {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(x) => AttributeValue::N(x.to_string()),
        Value::String(x) => AttributeValue::S(x.clone()),
        Value::Array(a) => AttributeValue::L(a.iter().map(json_to_attribute).collect()),
        Value::Object(m) => AttributeValue::M(
            m.iter()
                .map(|(k, v)| (k.clone(), json_to_attribute(v)))
                .collect(),
        ),
    }
}

fn number_to_json(text: &str) -> Result<Value, String> {
    if let Ok(i) = text.parse::<i64>() {
        return Ok(Value::from(i));
    }
    if let Ok(u) = text.parse::<u64>() {
        return Ok(Value::from(u));
    }
    text.parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
        .ok_or_else(|| format!("{text:?} is not a number"))
}

/// DynamoDB attribute value → JSON (string and number sets become arrays).
pub fn attribute_to_json(v: &AttributeValue) -> Result<Value, String> {
    Ok(match v {
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::N(x) => number_to_json(x)?,
        AttributeValue::S(x) => Value::String(x.clone()),
        AttributeValue::L(a) => {
            Value::Array(a.iter().map(attribute_to_json).collect::<Result<_, _>>()?)
        }
        AttributeValue::M(m) => Value::Object(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), attribute_to_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
        AttributeValue::Ss(x) => Value::Array(x.iter().cloned().map(Value::String).collect()),
        AttributeValue::Ns(x) => Value::Array(
            x.iter()
                .map(|t| number_to_json(t))
                .collect::<Result<_, _>>()?,
        ),
        other => return Err(format!("unexpected attribute {other:?}")),
    })
}

pub(super) fn str_attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v),
        _ => None,
    }
}

pub(super) fn num_attr(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

pub(super) fn need_str(item: &Item, name: &str, what: &str) -> StoreResult<String> {
    str_attr(item, name)
        .map(str::to_owned)
        .ok_or_else(|| StoreError::Corrupt(format!("{what}: no string attribute {name}")))
}

pub(super) fn need_num(item: &Item, name: &str, what: &str) -> StoreResult<i64> {
    num_attr(item, name)
        .ok_or_else(|| StoreError::Corrupt(format!("{what}: no number attribute {name}")))
}

/// Rough size of an item on the wire, for batching under the request limit.
pub(super) fn approx_size(item: &Item) -> usize {
    fn size(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(x) | AttributeValue::N(x) => x.len(),
            AttributeValue::B(b) => b.as_ref().len(),
            AttributeValue::L(l) => l.iter().map(size).sum::<usize>() + 3 * l.len(),
            AttributeValue::M(m) => m.iter().map(|(k, v)| k.len() + size(v) + 3).sum(),
            AttributeValue::Ss(x) | AttributeValue::Ns(x) => x.iter().map(|e| e.len() + 3).sum(),
            _ => 1,
        }
    }
    item.iter().map(|(k, v)| k.len() + size(v) + 3).sum()
}
