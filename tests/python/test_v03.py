"""A2A 0.3 through the gateway: the SDK's 0.3 compatibility layer, and raw JSON-RPC."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
from a2a.types.a2a_pb2 import GetTaskRequest, TaskState

from a2a_support import (
    TIMEOUT,
    bearer,
    event_kind,
    event_state,
    event_task_id,
    event_text,
    first_before_final,
    http_client,
    legacy_card,
    rfc3339_seconds,
    sdk_client,
    sse_events,
    state_name,
    status_time,
    task_text,
    timed,
    unique_text,
    user_message,
)


def run(coro):
    return asyncio.run(coro)


async def legacy_client(http: httpx.AsyncClient, stack, agent_id: str, *, streaming: bool):
    raw = await http.get(stack.card_url(agent_id))
    assert raw.status_code == 200, raw.text
    card = legacy_card(raw.json(), stack.agent_url(agent_id))
    url = card.supported_interfaces[0].url
    assert url.startswith(stack.agent_url(agent_id)), (
        f"the card's 0.3 address {url!r} does not point at the gateway: {raw.text}"
    )
    client = sdk_client(http, card, streaming=streaming)
    assert type(client._transport).__name__ == "CompatJsonRpcTransport"
    return client


# --------------------------------------------------------------------------- SDK compat layer


def test_sdk_v03_send_and_get(stack, token):
    text = unique_text("v03-sdk")

    async def go():
        async with http_client(token) as http:
            client = await legacy_client(http, stack, "echo", streaming=False)
            events = [ev async for ev in client.send_message(user_message(text))]
            got = None
            if events and events[0].HasField("task"):
                got = await client.get_task(GetTaskRequest(id=events[0].task.id))
            return events, got

    events, got = run(go())
    assert len(events) == 1, events
    assert text in event_text(events[0]), events[0]
    if events[0].HasField("task"):
        assert events[0].task.status.state == TaskState.TASK_STATE_COMPLETED
        assert got is not None and got.id == events[0].task.id
        assert got.status.state == TaskState.TASK_STATE_COMPLETED, state_name(got.status.state)
        assert text in task_text(got)


def test_sdk_v03_stream(stack, token):
    text = unique_text("v03-slow-stream")

    async def go():
        async with http_client(token) as http:
            client = await legacy_client(http, stack, "stream", streaming=True)
            sent_at = time.monotonic()
            return sent_at, await timed(client.send_message(user_message(text)))

    sent_at, events = run(go())
    story = "\n".join(
        f"  +{t.at - sent_at:6.3f}s {event_kind(t.event)} {state_name(event_state(t.event))}" for t in events
    )
    assert len(events) >= 4, story
    assert [event_kind(t.event) for t in events].count("artifact_update") >= 2, story
    assert len({event_task_id(t.event) for t in events} - {""}) == 1, story
    assert event_state(events[-1].event) == TaskState.TASK_STATE_COMPLETED, story
    first_before_final(events[0].wall, status_time(events[-1].event), story)


# --------------------------------------------------------------------------- raw JSON-RPC, no A2A-Version


def rpc(method: str, params: dict, rid: str | None = None) -> dict:
    return {"jsonrpc": "2.0", "id": rid or str(uuid.uuid4()), "method": method, "params": params}


def v03_message(text: str) -> dict:
    return {
        "kind": "message",
        "messageId": str(uuid.uuid4()),
        "role": "user",
        "parts": [{"kind": "text", "text": text}],
    }


def v03_texts(obj) -> str:
    """Every `text` value anywhere in a 0.3 object."""
    out: list[str] = []

    def walk(o):
        if isinstance(o, dict):
            if isinstance(o.get("text"), str):
                out.append(o["text"])
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    walk(obj)
    return "\n".join(out)


def test_raw_v03_message_send_and_tasks_get(stack, token):
    text = unique_text("v03-raw")
    url = stack.agent_url("echo")
    headers = bearer(token)  # deliberately no A2A-Version: missing means 0.3
    with httpx.Client(timeout=TIMEOUT) as http:
        req = rpc("message/send", {"message": v03_message(text)})
        r = http.post(url, json=req, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body.get("jsonrpc") == "2.0" and body.get("id") == req["id"], body
        assert "error" not in body, body
        result = body["result"]
        assert result.get("kind") in ("task", "message"), result
        assert text in v03_texts(result), result
        if result["kind"] != "task":
            return
        assert result["status"]["state"] == "completed", result
        get = rpc("tasks/get", {"id": result["id"]})
        r = http.post(url, json=get, headers=headers)
        assert r.status_code == 200, r.text
        got = r.json()
        assert got.get("id") == get["id"], got
        assert got["result"]["id"] == result["id"], got
        assert got["result"].get("kind", "task") == "task", got
        assert got["result"]["status"]["state"] == "completed", got


def test_raw_v03_message_stream(stack, token):
    text = unique_text("v03-raw-slow-stream")
    req = rpc("message/stream", {"message": v03_message(text)})

    async def go():
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            sent_at = time.monotonic()
            async with http.stream(
                "POST",
                stack.agent_url("stream"),
                json=req,
                headers={**bearer(token), "Accept": "text/event-stream"},
            ) as resp:
                assert resp.status_code == 200, (await resp.aread()).decode()
                assert "text/event-stream" in resp.headers.get("content-type", ""), resp.headers
                events = [
                    (name, json.loads(data), at, wall) async for name, data, at, wall in sse_events(resp)
                ]
            return sent_at, events

    sent_at, events = run(go())
    story = "\n".join(
        f"  +{at - sent_at:6.3f}s {name} {json.dumps(d)[:160]}" for name, d, at, _ in events
    )
    assert len(events) >= 4, story
    for name, data, _, _ in events:
        assert name == "message", story
        assert data.get("jsonrpc") == "2.0" and data.get("id") == req["id"], story
        assert "error" not in data, story
    results = [d["result"] for _, d, _, _ in events]
    kinds = [r.get("kind") for r in results]
    assert set(kinds) <= {"task", "message", "status-update", "artifact-update"}, story
    assert kinds.count("artifact-update") >= 2, story
    last = results[-1]
    assert last.get("kind") == "status-update" and last["status"]["state"] == "completed", story
    assert last.get("final") is True, f"0.3 streams end with final: true\n{story}"
    assert all(r.get("final") is not True for r in results[:-1]), story
    first_before_final(events[0][3], rfc3339_seconds(last["status"]["timestamp"]), story)
