"""Small helpers shared by the end-to-end tests (SDK plumbing, SSE parsing)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import httpx
from a2a.client import A2ACardResolver, Client, ClientConfig, ClientFactory
from a2a.client.card_resolver import parse_agent_card
from a2a.helpers import get_artifact_text, get_message_text
from a2a.types.a2a_pb2 import (
    AgentCard,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    Task,
    TaskState,
)

TIMEOUT = httpx.Timeout(30.0)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def http_client(token: str | None) -> httpx.AsyncClient:
    """The httpx client the SDK uses; the token rides on it as a default header."""
    return httpx.AsyncClient(headers=bearer(token) if token else {}, timeout=TIMEOUT)


async def resolve_card(http: httpx.AsyncClient, gateway_url: str, agent_id: str) -> AgentCard:
    """Resolve an agent's card the way a user of the SDK would: base URL + well-known path."""
    return await A2ACardResolver(http, f"{gateway_url}/agents/{agent_id}").get_agent_card()


def sdk_client(http: httpx.AsyncClient, card: AgentCard, *, streaming: bool = True) -> Client:
    return ClientFactory(ClientConfig(httpx_client=http, streaming=streaming)).create(card)


def legacy_card(card_json: dict[str, Any], fallback_url: str) -> AgentCard:
    """The card as a 0.3-only client sees it: the 0.3 fields, without `supportedInterfaces`.

    Uses the card's own 0.3 JSON-RPC address (`url`, or a 0.3 JSONRPC entry of
    `supportedInterfaces`) and falls back to the gateway endpoint.
    """
    data = json.loads(json.dumps(card_json))
    url = None
    for iface in data.get("supportedInterfaces") or []:
        if iface.get("protocolBinding") == "JSONRPC" and str(
            iface.get("protocolVersion", "")
        ).startswith("0.3"):
            url = iface.get("url")
            break
    if data.get("url") and data.get("preferredTransport", "JSONRPC") == "JSONRPC":
        url = url or data["url"]
    data.pop("supportedInterfaces", None)
    data["url"] = url or fallback_url
    data["preferredTransport"] = "JSONRPC"
    data["protocolVersion"] = "0.3.0"
    data.pop("additionalInterfaces", None)
    return parse_agent_card(data)


def user_message(text: str) -> SendMessageRequest:
    return SendMessageRequest(
        message=Message(
            message_id=str(uuid.uuid4()),
            role=Role.ROLE_USER,
            parts=[Part(text=text)],
        )
    )


def unique_text(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def task_text(task: Task) -> str:
    """All text the agent put in a task: artifacts, status message, agent history."""
    chunks = [get_artifact_text(a) for a in task.artifacts]
    if task.status.HasField("message"):
        chunks.append(get_message_text(task.status.message))
    chunks.extend(get_message_text(m) for m in task.history if m.role == Role.ROLE_AGENT)
    return "\n".join(chunks)


def event_text(ev: StreamResponse) -> str:
    if ev.HasField("task"):
        return task_text(ev.task)
    if ev.HasField("message"):
        return get_message_text(ev.message)
    if ev.HasField("artifact_update"):
        return get_artifact_text(ev.artifact_update.artifact)
    if ev.HasField("status_update") and ev.status_update.status.HasField("message"):
        return get_message_text(ev.status_update.status.message)
    return ""


def event_kind(ev: StreamResponse) -> str:
    return ev.WhichOneof("payload") or "<empty>"


def event_task_id(ev: StreamResponse) -> str:
    if ev.HasField("task"):
        return ev.task.id
    if ev.HasField("status_update"):
        return ev.status_update.task_id
    if ev.HasField("artifact_update"):
        return ev.artifact_update.task_id
    if ev.HasField("message"):
        return ev.message.task_id
    return ""


def event_state(ev: StreamResponse) -> int | None:
    if ev.HasField("task"):
        return ev.task.status.state
    if ev.HasField("status_update"):
        return ev.status_update.status.state
    return None


def state_name(state: int | None) -> str:
    return "-" if state is None else TaskState.Name(state)


def status_time(ev: StreamResponse) -> float | None:
    """When the agent set the status a task or status event carries (Unix seconds)."""
    if ev.HasField("task"):
        status = ev.task.status
    elif ev.HasField("status_update"):
        status = ev.status_update.status
    else:
        return None
    if not status.HasField("timestamp"):
        return None
    return status.timestamp.ToDatetime(tzinfo=timezone.utc).timestamp()


def rfc3339_seconds(text: str) -> float:
    """An RFC 3339 UTC timestamp (`2026-01-02T03:04:05.123456Z`) as Unix seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# Streaming, not buffering, is told by the agent's own clock, never by how
# long the client took: the stream's first event must reach the client
# before the agent has even set the final status (the stream agent pauses
# between events, 500 ms when the text says "slow", so that is seconds
# later however busy the machine).
def first_before_final(first_wall: float, final_set_at: float | None, story: str) -> None:
    assert final_set_at is not None, f"the final status has no timestamp:\n{story}"
    assert first_wall < final_set_at, (
        f"the first event reached the client at {datetime.fromtimestamp(first_wall, timezone.utc).isoformat()}, "
        f"after the agent set the final status at {datetime.fromtimestamp(final_set_at, timezone.utc).isoformat()}: "
        f"delivered in one burst?\n{story}"
    )


@dataclass
class Timed:
    at: float  # time.monotonic() on arrival
    wall: float  # time.time() on arrival
    event: Any


async def timed(stream: AsyncIterator[Any]) -> list[Timed]:
    out: list[Timed] = []
    async for ev in stream:
        out.append(Timed(time.monotonic(), time.time(), ev))
    return out


async def sse_events(resp: httpx.Response) -> AsyncIterator[tuple[str, str, float, float]]:
    """(event name, data, arrival monotonic time, arrival wall time) for each SSE event of a streaming response."""
    name, data = "message", []
    async for line in resp.aiter_lines():
        line = line.rstrip("\r\n")
        if not line:
            if data:
                yield name, "\n".join(data), time.monotonic(), time.time()
            name, data = "message", []
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if key == "event":
            name = value
        elif key == "data":
            data.append(value)
    if data:
        yield name, "\n".join(data), time.monotonic(), time.time()
