//! Streams: events as they happen, 0.3 shapes, cancel, subscribe.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use futures::StreamExt;
use pretty_assertions::assert_eq;
use serde_json::{json, Value};

use super::*;

/// One SSE event's JSON and when it arrived.
struct Received {
    at: Instant,
    body: Value,
}

/// An SSE response, read one `data:` event at a time.
struct Events {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<Bytes>> + Send>>,
    buffer: String,
}

impl Events {
    /// The next event, when it arrives; `None` once the stream has ended.
    async fn next(&mut self) -> Option<Received> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let data: Vec<&str> = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if !data.is_empty() {
                    return Some(Received {
                        at: Instant::now(),
                        body: serde_json::from_str(&data.join("\n")).unwrap(),
                    });
                }
            }
            let chunk = self.body.next().await?.unwrap();
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Every event still to come, until the stream ends.
    async fn rest(mut self) -> Vec<Received> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            events.push(event);
        }
        events
    }
}

/// Posts a streaming request; its events are read as they come.
async fn open_stream(url: &str, version: Option<&str>, method: &str, params: Value) -> Events {
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
    Events {
        body: Box::pin(response.bytes_stream()),
        buffer: String::new(),
    }
}

/// Posts a streaming request and collects every `data:` event as it comes.
async fn stream(url: &str, version: Option<&str>, method: &str, params: Value) -> Vec<Received> {
    open_stream(url, version, method, params).await.rest().await
}

/// Replaces generated ids and timestamps so whole values can be compared.
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
    let mut open = open_stream(
        &agent.url,
        Some("1.0"),
        "SendStreamingMessage",
        json!({"message": user_message("a Slow one please")}),
    )
    .await;
    // 'slow' pauses 500 ms before each event after the first: the task is
    // still running for three seconds after its first event is sent. That
    // event reaches the client while the task runs (on its own, not
    // gathered up to the end of the stream).
    let first = open.next().await.expect("the stream's first event");
    let task_id = first.body["result"]["task"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let running = call_v1(&agent.url, "GetTask", json!({"id": task_id})).await;
    assert_ne!(
        running["result"]["status"]["state"], "TASK_STATE_COMPLETED",
        "the first event arrived only once the task had ended"
    );
    let mut events = vec![first];
    events.extend(open.rest().await);
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
    // Six pauses of 500 ms come before the last event: it cannot arrive
    // sooner (a busy machine only makes it later).
    let took = events[6].at.duration_since(started);
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_secs(3 + 30),
        "six pauses of 500 ms took {took:?}"
    );
    for event in &events {
        assert_eq!(event.body["id"], 9);
        assert_eq!(event.body["jsonrpc"], "2.0");
    }

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

    let done = call_v1(&agent.url, "GetTask", json!({"id": &task_id})).await;
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
    // Find the running task, let it produce a few chunks, then cancel it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let task_id = loop {
        let list = call_v1(&agent.url, "ListTasks", json!({})).await;
        if let Some(id) = list["result"]["tasks"][0]["id"].as_str() {
            break id.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the streamed task never showed in ListTasks: {list}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let canceled = call_v1(&agent.url, "CancelTask", json!({"id": task_id})).await;
    assert_eq!(canceled["result"]["status"]["state"], "TASK_STATE_CANCELED");
    assert_eq!(canceled["result"]["id"], task_id);
    let chunks_before_cancel = canceled["result"]["artifacts"][0]["parts"]
        .as_array()
        .map_or(0, Vec::len);

    let events = tokio::time::timeout(Duration::from_secs(60), streaming)
        .await
        .expect("the stream closes after the cancel")
        .unwrap();
    let kinds = kinds(&events);
    assert_eq!(kinds.last().unwrap(), "statusUpdate TASK_STATE_CANCELED");
    // The stream carried the chunks made before the cancel and none after.
    let chunks = kinds.iter().filter(|k| *k == "artifactUpdate").count();
    assert_eq!(chunks, chunks_before_cancel, "{kinds:?}");
    assert!(chunks < 50, "the task ran to its end: {kinds:?}");

    let again = call_v1(&agent.url, "CancelTask", json!({"id": task_id})).await;
    assert_eq!(again["error"]["code"], -32002);
}

#[tokio::test]
async fn return_immediately_then_subscribe_and_list() {
    let agent = start(SampleKind::Stream).await;
    let mut message = user_message("bg");
    // Long enough (22 pauses of 200 ms) that the task is still running when
    // the subscription below arrives, however busy the machine.
    message["metadata"] = json!({"intervalMs": 200, "chunks": 20});
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
