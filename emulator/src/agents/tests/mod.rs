//! The sample agents over real sockets: JSON-RPC in both protocol
//! versions and the errors; streams in [`streams`]; cards, the request log,
//! the guarded agent and shutdown in [`guarded`].

mod guarded;
mod streams;

use std::time::Duration;

use pretty_assertions::assert_eq;
use serde_json::{json, Value};
use switchboard_core::auth::jwt::VerifierConfig;
use switchboard_core::store::sqlite::SqliteStore;
use switchboard_core::store::Stores;

use super::*;
use crate::issuer::Issuer;
use crate::keys::KEY_FILE;
use crate::testutil::shared_key_pem;

async fn start(kind: SampleKind) -> SampleHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    spawn(kind, listener).await.unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

fn user_message(text: &str) -> Value {
    json!({"messageId": uuid::Uuid::new_v4().to_string(), "role": "ROLE_USER", "parts": [{"text": text}]})
}

fn user_message_03(text: &str) -> Value {
    json!({"kind": "message", "messageId": uuid::Uuid::new_v4().to_string(), "role": "user",
           "parts": [{"kind": "text", "text": text}]})
}

/// Posts a JSON-RPC request; `version` becomes the `A2A-Version` header.
async fn call(url: &str, version: Option<&str>, method: &str, params: Value) -> Value {
    let mut request = http().post(format!("{url}/")).json(&json!({
        "jsonrpc": "2.0", "id": "req-1", "method": method, "params": params,
    }));
    if let Some(v) = version {
        request = request.header("A2A-Version", v);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    response.json().await.unwrap()
}

async fn call_v1(url: &str, method: &str, params: Value) -> Value {
    call(url, Some("1.0"), method, params).await
}

fn scrub(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match key.as_str() {
                    "id" | "taskId" | "contextId" | "artifactId" | "messageId" if v.is_string() => {
                        *v = json!(format!("<{key}>"));
                    }
                    "timestamp" => {
                        let ts = v.as_str().unwrap();
                        assert!(ts.ends_with('Z') && ts.contains('T'), "{ts}");
                        *v = json!("<ts>");
                    }
                    _ => scrub(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(scrub),
        _ => {}
    }
}

fn scrubbed(mut value: Value) -> Value {
    scrub(&mut value);
    value
}

#[tokio::test]
async fn echo_send_message_1_0_returns_a_completed_task() {
    let agent = start(SampleKind::Echo).await;
    let sent = user_message("hello");
    let reply = call_v1(
        &agent.url,
        "SendMessage",
        json!({"message": sent, "configuration": {}}),
    )
    .await;
    assert_eq!(reply["id"], "req-1");
    let task = &reply["result"]["task"];
    assert_eq!(task["history"][0]["messageId"], sent["messageId"]);
    assert_eq!(task["history"][0]["taskId"], task["id"]);
    assert_eq!(task["status"]["message"]["taskId"], task["id"]);
    assert_eq!(
        scrubbed(reply),
        json!({"jsonrpc": "2.0", "id": "<id>", "result": {"task": {
            "id": "<id>", "contextId": "<contextId>",
            "status": {"state": "TASK_STATE_COMPLETED", "timestamp": "<ts>", "message": {
                "messageId": "<messageId>", "contextId": "<contextId>", "taskId": "<taskId>",
                "role": "ROLE_AGENT", "parts": [{"text": "hello"}]}},
            "artifacts": [{"artifactId": "<artifactId>", "name": "echo", "parts": [{"text": "hello"}]}],
            "history": [{"messageId": "<messageId>", "contextId": "<contextId>", "taskId": "<taskId>",
                         "role": "ROLE_USER", "parts": [{"text": "hello"}]}],
        }}})
    );
}

#[tokio::test]
async fn echo_message_send_0_3_answers_in_0_3_shapes() {
    let agent = start(SampleKind::Echo).await;
    let reply = call(
        &agent.url,
        None,
        "message/send",
        json!({"message": user_message_03("hi"), "configuration": {"blocking": true}}),
    )
    .await;
    assert_eq!(
        scrubbed(reply),
        json!({"jsonrpc": "2.0", "id": "<id>", "result": {
            "kind": "task", "id": "<id>", "contextId": "<contextId>",
            "status": {"state": "completed", "timestamp": "<ts>", "message": {
                "kind": "message", "messageId": "<messageId>", "contextId": "<contextId>",
                "taskId": "<taskId>", "role": "agent", "parts": [{"kind": "text", "text": "hi"}]}},
            "artifacts": [{"artifactId": "<artifactId>", "name": "echo",
                           "parts": [{"kind": "text", "text": "hi"}]}],
            "history": [{"kind": "message", "messageId": "<messageId>", "contextId": "<contextId>",
                         "taskId": "<taskId>", "role": "user", "parts": [{"kind": "text", "text": "hi"}]}],
        }})
    );
}

#[tokio::test]
async fn get_task_in_either_version_and_with_a_history_limit() {
    let agent = start(SampleKind::Echo).await;
    let context = "ctx-42";
    let mut first = user_message("one");
    first["contextId"] = json!(context);
    let sent = call_v1(&agent.url, "SendMessage", json!({"message": first})).await;
    let task_id = sent["result"]["task"]["id"].as_str().unwrap().to_owned();
    assert_eq!(sent["result"]["task"]["contextId"], context);

    let got = call_v1(&agent.url, "GetTask", json!({"id": task_id})).await;
    assert_eq!(
        got["result"], sent["result"]["task"],
        "GetTask returns the bare task"
    );

    let got_03 = call(&agent.url, Some("0.3"), "tasks/get", json!({"id": task_id})).await;
    assert_eq!(got_03["result"]["kind"], "task");
    assert_eq!(got_03["result"]["status"]["state"], "completed");
    assert_eq!(got_03["result"]["history"][0]["role"], "user");

    let trimmed = call_v1(
        &agent.url,
        "GetTask",
        json!({"id": task_id, "historyLength": 0}),
    )
    .await;
    assert_eq!(trimmed["result"].get("history"), None);
    assert_eq!(
        trimmed["result"]["artifacts"],
        sent["result"]["task"]["artifacts"]
    );
}

#[tokio::test]
async fn unknown_tasks_and_finished_tasks_give_a2a_errors() {
    let agent = start(SampleKind::Echo).await;
    let missing = call_v1(&agent.url, "GetTask", json!({"id": "nope"})).await;
    assert_eq!(
        missing,
        json!({"jsonrpc": "2.0", "id": "req-1", "error": {
            "code": -32001, "message": "Task not found: nope",
            "data": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "TASK_NOT_FOUND",
                      "domain": "a2a-protocol.org", "metadata": {}}]}})
    );
    let missing_03 = call(&agent.url, None, "tasks/cancel", json!({"id": "nope"})).await;
    assert_eq!(
        missing_03,
        json!({"jsonrpc": "2.0", "id": "req-1", "error": {"code": -32001, "message": "Task not found: nope"}})
    );

    let sent = call_v1(
        &agent.url,
        "SendMessage",
        json!({"message": user_message("x")}),
    )
    .await;
    let task_id = sent["result"]["task"]["id"].as_str().unwrap();
    let cancel = call_v1(&agent.url, "CancelTask", json!({"id": task_id})).await;
    assert_eq!(cancel["error"]["code"], -32002);
    assert_eq!(cancel["error"]["data"][0]["reason"], "TASK_NOT_CANCELABLE");

    let follow_up = call_v1(
        &agent.url,
        "SendMessage",
        json!({"message": {"messageId": "m2", "role": "ROLE_USER", "taskId": task_id, "parts": [{"text": "more"}]}}),
    )
    .await;
    assert_eq!(follow_up["error"]["code"], -32602);
    let unknown_task = call_v1(
        &agent.url,
        "SendMessage",
        json!({"message": {"messageId": "m3", "role": "ROLE_USER", "taskId": "ghost", "parts": [{"text": "x"}]}}),
    )
    .await;
    assert_eq!(unknown_task["error"]["code"], -32001);
}

#[tokio::test]
async fn protocol_errors() {
    let agent = start(SampleKind::Echo).await;
    let unknown = call_v1(&agent.url, "DoTheThing", json!({})).await;
    assert_eq!(
        unknown,
        json!({"jsonrpc": "2.0", "id": "req-1", "error": {"code": -32601, "message": "Method not found: DoTheThing"}})
    );

    let bad_json = http()
        .post(format!("{}/", agent.url))
        .header("content-type", "application/json")
        .body("{\"jsonrpc\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_json.status(), 200);
    let bad_json: Value = bad_json.json().await.unwrap();
    assert_eq!(bad_json["error"]["code"], -32700);
    assert_eq!(bad_json["id"], Value::Null);

    for params in [
        json!({}),
        json!({"message": {"role": "ROLE_USER", "parts": [{"text": "x"}]}}),
        json!({"message": {"messageId": "m", "role": "ROLE_USER", "parts": "x"}}),
        json!({"message": {"messageId": "m", "role": "ROLE_AGENT", "parts": [{"text": "x"}]}}),
    ] {
        let reply = call_v1(&agent.url, "SendMessage", params.clone()).await;
        assert_eq!(reply["error"]["code"], -32602, "{params}");
        assert_eq!(reply["error"]["data"][0]["reason"], "INVALID_PARAMS");
    }
    let no_id = call_v1(&agent.url, "GetTask", json!({})).await;
    assert_eq!(no_id["error"]["code"], -32602);
    let bad_history = call_v1(
        &agent.url,
        "GetTask",
        json!({"id": "t", "historyLength": -1}),
    )
    .await;
    assert_eq!(bad_history["error"]["code"], -32602);

    // As in the official SDK's server: a missing A2A-Version means 0.3.
    let no_version = call(
        &agent.url,
        None,
        "SendMessage",
        json!({"message": user_message("x")}),
    )
    .await;
    assert_eq!(no_version["error"]["code"], -32009);
    assert_eq!(
        no_version["error"]["data"][0]["reason"],
        "VERSION_NOT_SUPPORTED"
    );
    let query_version = http()
        .post(format!("{}/?A2A-Version=1.0", agent.url))
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": user_message("q")}}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        query_version["result"]["task"]["status"]["state"],
        "TASK_STATE_COMPLETED"
    );
    let old_method_new_version =
        call(&agent.url, Some("1.0"), "tasks/get", json!({"id": "x"})).await;
    assert_eq!(old_method_new_version["error"]["code"], -32009);

    let push = call_v1(&agent.url, "CreateTaskPushNotificationConfig", json!({})).await;
    assert_eq!(push["error"]["code"], -32003);
    let extended = call_v1(&agent.url, "GetExtendedAgentCard", json!({})).await;
    assert_eq!(extended["error"]["code"], -32007);
}
