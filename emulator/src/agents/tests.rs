use std::time::Instant;

use futures::StreamExt;
use pretty_assertions::assert_eq;
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

/// One SSE event's JSON and when it arrived.
struct Received {
    at: Instant,
    body: Value,
}

/// Posts a streaming request and collects every `data:` event as it comes.
async fn stream(url: &str, version: Option<&str>, method: &str, params: Value) -> Vec<Received> {
    let mut request = http()
        .post(format!("{url}/"))
        .header("accept", "text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 9, "method": method, "params": params}));
    if let Some(v) = version {
        request = request.header("A2A-Version", v);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    while let Some(chunk) = body.next().await {
        buffer.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let data: Vec<&str> = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            if !data.is_empty() {
                events.push(Received {
                    at: Instant::now(),
                    body: serde_json::from_str(&data.join("\n")).unwrap(),
                });
            }
        }
    }
    events
}

/// Replaces generated ids and timestamps so whole values can be compared.
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

fn kinds(events: &[Received]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let result = e.body["result"].as_object().unwrap();
            let key = result.keys().next().unwrap().clone();
            let state = match key.as_str() {
                "task" => result["task"]["status"]["state"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                "statusUpdate" => result["statusUpdate"]["status"]["state"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                _ => String::new(),
            };
            format!("{key} {state}").trim().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn stream_agent_sends_each_event_as_it_happens() {
    let agent = start(SampleKind::Stream).await;
    let started = Instant::now();
    let events = stream(
        &agent.url,
        Some("1.0"),
        "SendStreamingMessage",
        json!({"message": user_message("a Slow one please")}),
    )
    .await;
    assert_eq!(
        kinds(&events),
        vec![
            "task TASK_STATE_SUBMITTED",
            "statusUpdate TASK_STATE_WORKING",
            "artifactUpdate",
            "artifactUpdate",
            "artifactUpdate",
            "artifactUpdate",
            "statusUpdate TASK_STATE_COMPLETED",
        ]
    );
    // 'slow' spaces events 500 ms apart, and each one reaches the client on
    // its own rather than all at the end. Bounds are loose: the machine may
    // be busy.
    assert!(events[0].at.duration_since(started) < Duration::from_millis(400));
    for pair in events.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(gap >= Duration::from_millis(250), "events {gap:?} apart");
    }
    let spread = events[6].at.duration_since(events[0].at);
    assert!(
        spread >= Duration::from_millis(2900) && spread < Duration::from_secs(10),
        "six pauses of 500 ms took {spread:?}"
    );
    for event in &events {
        assert_eq!(event.body["id"], 9);
        assert_eq!(event.body["jsonrpc"], "2.0");
    }

    let task_id = events[0].body["result"]["task"]["id"].as_str().unwrap();
    let chunks: Vec<Value> = events[2..6]
        .iter()
        .map(|e| {
            let update = &e.body["result"]["artifactUpdate"];
            assert_eq!(update["taskId"], task_id);
            json!([
                update["artifact"]["parts"][0]["text"],
                update.get("append"),
                update.get("lastChunk")
            ])
        })
        .collect();
    assert_eq!(
        chunks,
        vec![
            json!(["chunk 1/4: a Slow one please\n", null, null]),
            json!(["chunk 2/4: a Slow one please\n", true, null]),
            json!(["chunk 3/4: a Slow one please\n", true, null]),
            json!(["chunk 4/4: a Slow one please\n", true, true]),
        ]
    );

    let done = call_v1(&agent.url, "GetTask", json!({"id": task_id})).await;
    let artifact = &done["result"]["artifacts"][0];
    assert_eq!(
        artifact["parts"].as_array().unwrap().len(),
        4,
        "chunks appended into one artifact"
    );
    assert_eq!(done["result"]["status"]["state"], "TASK_STATE_COMPLETED");
}

#[tokio::test]
async fn message_stream_0_3_uses_kind_and_final() {
    let agent = start(SampleKind::Stream).await;
    let mut message = user_message_03("quick");
    message["metadata"] = json!({"intervalMs": 5, "chunks": 2});
    let events = stream(
        &agent.url,
        None,
        "message/stream",
        json!({"message": message}),
    )
    .await;
    let shapes: Vec<Value> = events
        .iter()
        .map(|e| {
            let r = &e.body["result"];
            json!([
                r["kind"],
                r["status"]["state"],
                r.get("final"),
                r.get("append"),
                r.get("lastChunk")
            ])
        })
        .collect();
    assert_eq!(
        shapes,
        vec![
            json!(["task", "submitted", null, null, null]),
            json!(["status-update", "working", false, null, null]),
            json!(["artifact-update", null, null, false, false]),
            json!(["artifact-update", null, null, true, true]),
            json!(["status-update", "completed", true, null, null]),
        ]
    );
    assert_eq!(
        events[2].body["result"]["artifact"]["parts"][0],
        json!({"kind": "text", "text": "chunk 1/2: quick\n"})
    );
}

#[tokio::test]
async fn cancel_stops_a_running_stream() {
    let agent = start(SampleKind::Stream).await;
    let mut message = user_message("long");
    message["metadata"] = json!({"intervalMs": 200, "chunks": 50});
    let url = agent.url.clone();
    let streaming = tokio::spawn(async move {
        stream(
            &url,
            Some("1.0"),
            "SendStreamingMessage",
            json!({"message": message}),
        )
        .await
    });
    // Find the running task, then cancel it.
    let task_id = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let list = call_v1(&agent.url, "ListTasks", json!({})).await;
        if let Some(id) = list["result"]["tasks"][0]["id"].as_str() {
            break id.to_owned();
        }
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let canceled = call_v1(&agent.url, "CancelTask", json!({"id": task_id})).await;
    assert_eq!(canceled["result"]["status"]["state"], "TASK_STATE_CANCELED");
    assert_eq!(canceled["result"]["id"], task_id);

    let events = tokio::time::timeout(Duration::from_secs(5), streaming)
        .await
        .expect("the stream closes after the cancel")
        .unwrap();
    let kinds = kinds(&events);
    assert_eq!(kinds.last().unwrap(), "statusUpdate TASK_STATE_CANCELED");
    assert!(kinds.len() < 10, "{kinds:?}");

    let again = call_v1(&agent.url, "CancelTask", json!({"id": task_id})).await;
    assert_eq!(again["error"]["code"], -32002);
}

#[tokio::test]
async fn return_immediately_then_subscribe_and_list() {
    let agent = start(SampleKind::Stream).await;
    let mut message = user_message("bg");
    message["metadata"] = json!({"intervalMs": 100, "chunks": 3});
    let sent = call_v1(
        &agent.url,
        "SendMessage",
        json!({"message": message, "configuration": {"returnImmediately": true}}),
    )
    .await;
    let task = &sent["result"]["task"];
    assert_eq!(task["status"]["state"], "TASK_STATE_SUBMITTED");
    let task_id = task["id"].as_str().unwrap().to_owned();

    let events = stream(
        &agent.url,
        Some("1.0"),
        "SubscribeToTask",
        json!({"id": task_id}),
    )
    .await;
    let kinds = kinds(&events);
    assert!(kinds[0].starts_with("task "), "{kinds:?}");
    assert_eq!(kinds.last().unwrap(), "statusUpdate TASK_STATE_COMPLETED");

    let ended = call_v1(&agent.url, "SubscribeToTask", json!({"id": task_id})).await;
    assert_eq!(ended["error"]["code"], -32004);

    call_v1(
        &agent.url,
        "SendMessage",
        json!({"message": user_message("second")}),
    )
    .await;
    let list = call_v1(&agent.url, "ListTasks", json!({"pageSize": 1})).await;
    let result = &list["result"];
    assert_eq!(result["totalSize"], 2);
    assert_eq!(result["pageSize"], 1);
    assert_eq!(result["nextPageToken"], "1");
    assert_eq!(result["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(
        result["tasks"][0].get("artifacts"),
        None,
        "artifacts only on request"
    );
    let page_two = call_v1(
        &agent.url,
        "ListTasks",
        json!({"pageSize": 1, "pageToken": "1", "includeArtifacts": true}),
    )
    .await;
    assert_eq!(page_two["result"]["tasks"][0]["id"], task_id);
    assert_eq!(page_two["result"]["nextPageToken"], "");
    assert!(page_two["result"]["tasks"][0]["artifacts"].is_array());
}

#[tokio::test]
async fn echo_streams_too() {
    // The official client streams every send when the card says it can.
    let agent = start(SampleKind::Echo).await;
    let events = stream(
        &agent.url,
        Some("1.0"),
        "SendStreamingMessage",
        json!({"message": user_message("fast")}),
    )
    .await;
    assert_eq!(
        kinds(&events),
        vec![
            "task TASK_STATE_SUBMITTED",
            "statusUpdate TASK_STATE_WORKING",
            "artifactUpdate",
            "statusUpdate TASK_STATE_COMPLETED",
        ]
    );
}

#[tokio::test]
async fn cards_are_served_on_both_paths() {
    let agent = start(SampleKind::Echo).await;
    let card: Value = http()
        .get(format!("{}/.well-known/agent-card.json", agent.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let legacy: Value = http()
        .get(format!("{}/.well-known/agent.json", agent.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(card, legacy);
    let url = &agent.url;
    assert_eq!(
        card,
        json!({
            "name": "Echo Agent",
            "description": "Replies with exactly what it is sent, as a completed task.",
            "version": env!("CARGO_PKG_VERSION"),
            "supportedInterfaces": [
                {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
                {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
            ],
            "provider": {"organization": "Switchboard samples", "url": "https://example.org/switchboard/samples"},
            "capabilities": {"streaming": true, "pushNotifications": false},
            "defaultInputModes": ["text/plain"],
            "defaultOutputModes": ["text/plain"],
            "skills": [{
                "id": "echo", "name": "Echo",
                "description": "Returns the message's parts as an artifact and as the status message.",
                "tags": ["echo", "test"], "examples": ["hello"],
                "inputModes": ["text/plain"], "outputModes": ["text/plain"],
            }],
            "url": url,
            "preferredTransport": "JSONRPC",
            "protocolVersion": "0.3",
            "additionalInterfaces": [{"url": url, "transport": "JSONRPC"}],
        })
    );
}

#[tokio::test]
async fn requests_are_recorded_with_their_authorization() {
    let agent = start(SampleKind::Echo).await;
    http()
        .get(format!("{}/.well-known/agent-card.json", agent.url))
        .bearer_auth("card-token")
        .send()
        .await
        .unwrap();
    http()
        .post(format!("{}/", agent.url))
        .header("A2A-Version", "1.0")
        .header("authorization", "Bearer abc")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": user_message("x")}}))
        .send()
        .await
        .unwrap();
    call(&agent.url, None, "tasks/get", json!({"id": "x"})).await;
    let log: Value = http()
        .get(format!("{}/_debug/requests", agent.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        log,
        json!([
            {"method": null, "http": "GET /.well-known/agent-card.json", "authorization": "Bearer card-token", "a2a_version": null},
            {"method": "SendMessage", "http": "POST /", "authorization": "Bearer abc", "a2a_version": "1.0"},
            {"method": "tasks/get", "http": "POST /", "authorization": null, "a2a_version": null},
        ])
    );
    let cleared = http()
        .delete(format!("{}/_debug/requests", agent.url))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 204);
    let log: Value = http()
        .get(format!("{}/_debug/requests", agent.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log, json!([]));
}

struct GuardedSetup {
    _dir: tempfile::TempDir,
    _issuer_server: tokio::task::JoinHandle<()>,
    issuer: Issuer,
    issuer_url: String,
    agent: SampleHandle,
}

async fn guarded() -> GuardedSetup {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(KEY_FILE), shared_key_pem()).unwrap();
    let stores = Stores::sqlite(SqliteStore::open(&dir.path().join("db.sqlite")).unwrap());
    let issuer = Issuer::open(dir.path(), stores.clients).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer_url = format!("http://{}", listener.local_addr().unwrap());
    let app = issuer.router(issuer_url.clone());
    let issuer_server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    let verifier = Verifier::new(
        VerifierConfig {
            issuer: issuer_url.clone(),
            jwks_uri: None,
            allowed_client_ids: None,
            leeway_secs: 0,
        },
        reqwest::Client::new(),
    );
    let agent = start(SampleKind::Guarded {
        verifier,
        required_scope: DEFAULT_GUARDED_SCOPE.into(),
        token_url: format!("{issuer_url}/oauth2/token"),
    })
    .await;
    GuardedSetup {
        _dir: dir,
        _issuer_server: issuer_server,
        issuer,
        issuer_url,
        agent,
    }
}

#[tokio::test]
async fn guarded_agent_needs_an_issuer_token_with_its_scope() {
    let g = guarded().await;
    let send = |token: Option<String>| {
        let url = g.agent.url.clone();
        async move {
            let mut request = http()
                .post(format!("{url}/"))
                .header("A2A-Version", "1.0")
                .json(
                    &json!({"jsonrpc": "2.0", "id": "g1", "method": "SendMessage",
                              "params": {"message": user_message("secret")}}),
                );
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            request.send().await.unwrap()
        }
    };

    let missing = send(None).await;
    assert_eq!(missing.status(), 401);
    assert_eq!(
        missing.headers()["www-authenticate"],
        "Bearer realm=\"guarded-agent\""
    );
    let body: Value = missing.json().await.unwrap();
    assert_eq!(
        body,
        json!({"jsonrpc": "2.0", "id": "g1", "error": {"code": -32050, "message": "guarded agent: missing bearer token",
            "data": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "TOKEN_MISSING",
                      "domain": "a2a-protocol.org", "metadata": {}}]}})
    );

    let garbage = send(Some("not-a-jwt".into())).await;
    assert_eq!(garbage.status(), 401);
    assert!(garbage.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("error=\"invalid_token\""));

    let other_issuer = g
        .issuer
        .mint(
            "http://elsewhere",
            "c",
            &[DEFAULT_GUARDED_SCOPE.into()],
            Duration::from_secs(60),
        )
        .unwrap();
    assert_eq!(send(Some(other_issuer)).await.status(), 401);

    let wrong_scope = g
        .issuer
        .mint(
            &g.issuer_url,
            "c",
            &["agents/echo.invoke".into()],
            Duration::from_secs(60),
        )
        .unwrap();
    let forbidden = send(Some(wrong_scope)).await;
    assert_eq!(forbidden.status(), 403);
    assert!(forbidden.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("error=\"insufficient_scope\""));
    let body: Value = forbidden.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32051);

    // A real client-credentials token from the issuer's endpoint.
    let secret = g
        .issuer
        .create_client("gateway", &[DEFAULT_GUARDED_SCOPE.into()])
        .await
        .unwrap();
    let token: Value = http()
        .post(format!("{}/oauth2/token", g.issuer_url))
        .basic_auth("gateway", Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    let ok = send(Some(token.clone())).await;
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(
        body["result"]["task"]["artifacts"][0]["parts"][0]["text"],
        "secret"
    );

    // 0.3 errors carry no ErrorInfo.
    let old = http()
        .post(format!("{}/", g.agent.url))
        .json(&json!({"jsonrpc": "2.0", "id": 3, "method": "tasks/get", "params": {"id": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 401);
    let body: Value = old.json().await.unwrap();
    assert_eq!(
        body,
        json!({"jsonrpc": "2.0", "id": 3, "error": {"code": -32050, "message": "guarded agent: missing bearer token"}})
    );

    // The card is public and names the issuer.
    let card: Value = http()
        .get(format!("{}/.well-known/agent-card.json", g.agent.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token_url = format!("{}/oauth2/token", g.issuer_url);
    let flows = json!({"clientCredentials": {"tokenUrl": token_url, "scopes": {DEFAULT_GUARDED_SCOPE: "Call this agent"}}});
    assert_eq!(
        card["securitySchemes"],
        json!({"oauth2": {
            "oauth2SecurityScheme": {"description": "OAuth2 client credentials from the local issuer", "flows": flows},
            "type": "oauth2", "description": "OAuth2 client credentials from the local issuer", "flows": flows}})
    );
    assert_eq!(
        card["securityRequirements"],
        json!([{"schemes": {"oauth2": {"list": [DEFAULT_GUARDED_SCOPE]}}}])
    );
    assert_eq!(
        card["security"],
        json!([{"oauth2": [DEFAULT_GUARDED_SCOPE]}])
    );

    let log: Value = http()
        .get(format!("{}/_debug/requests", g.agent.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seen: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["authorization"])
        .collect();
    assert_eq!(seen[0], &Value::Null);
    assert_eq!(seen[1], &json!("Bearer not-a-jwt"));
    assert!(seen.contains(&&json!(format!("Bearer {token}"))));
}

#[tokio::test]
async fn shutdown_stops_the_listener() {
    let agent = start(SampleKind::Echo).await;
    let url = agent.url.clone();
    assert!(url.starts_with("http://127.0.0.1:"));
    agent.shutdown().await;
    assert!(http()
        .get(format!("{url}/.well-known/agent-card.json"))
        .send()
        .await
        .is_err());
}
