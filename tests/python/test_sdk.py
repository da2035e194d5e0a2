"""The official A2A Python SDK (protocol 1.0, JSON-RPC) through the gateway, used unchanged."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import httpx
import pytest
from a2a.client import A2AClientError, AuthInterceptor, ClientCallContext, CredentialService
from a2a.types.a2a_pb2 import CancelTaskRequest, GetTaskRequest, TaskState
from a2a.utils.errors import TaskNotCancelableError, TaskNotFoundError

from a2a.client import ClientConfig, ClientFactory
from a2a_support import (
    event_kind,
    event_state,
    event_task_id,
    event_text,
    first_before_final,
    http_client,
    resolve_card,
    sdk_client,
    state_name,
    status_time,
    task_text,
    timed,
    unique_text,
    user_message,
)

TERMINAL = {
    TaskState.TASK_STATE_COMPLETED,
    TaskState.TASK_STATE_FAILED,
    TaskState.TASK_STATE_CANCELED,
    TaskState.TASK_STATE_REJECTED,
}


def run(coro):
    return asyncio.run(coro)


def describe(events) -> str:
    return "\n".join(
        f"  +{t.at - events[0].at:6.3f}s {event_kind(t.event)} state={state_name(event_state(t.event))} "
        f"text={event_text(t.event)[:60]!r}"
        for t in events
    )


# --------------------------------------------------------------------------- cards


def test_card_from_gateway_points_at_gateway(stack):
    async def go():
        async with http_client(None) as http:  # the card needs no token
            card = await resolve_card(http, stack.gateway_url, "echo")
            raw = await http.get(stack.card_url("echo"))
        return card, raw

    card, raw = run(go())
    assert raw.status_code == 200, raw.text
    assert stack.card_url("echo") == f"{stack.gateway_url}/agents/echo/.well-known/agent-card.json"

    gw = stack.agent_url("echo")
    backend = stack.backend_url("echo")
    assert card.supported_interfaces, f"card has no supportedInterfaces: {raw.text}"
    for iface in card.supported_interfaces:
        assert iface.url == gw or iface.url.startswith(gw + "/"), (
            f"interface {iface.protocol_binding} {iface.protocol_version} url {iface.url!r} "
            f"does not point at the gateway {gw!r}"
        )
    assert any(
        i.protocol_binding == "JSONRPC" and i.protocol_version.startswith("1.0")
        for i in card.supported_interfaces
    ), f"no 1.0 JSONRPC interface in {raw.text}"
    # Every address a client connects to points at the gateway, including the
    # 0.3 fields the 1.0 parser drops (`url`, `additionalInterfaces`).
    body = raw.json()
    for where, url in connection_urls(body):
        assert url == gw or url.startswith(gw + "/"), f"{where} = {url!r} is not the gateway: {raw.text}"
        assert not url.startswith(backend), f"{where} leaks the backend: {raw.text}"


def connection_urls(card: dict) -> list[tuple[str, str]]:
    """(field, url) for every field of a card JSON that tells a client where to connect."""
    out = [(f"supportedInterfaces[{i}].url", x.get("url", "")) for i, x in enumerate(card.get("supportedInterfaces") or [])]
    out += [(f"additionalInterfaces[{i}].url", x.get("url", "")) for i, x in enumerate(card.get("additionalInterfaces") or [])]
    if "url" in card:
        out.append(("url", card["url"]))
    return out


def test_legacy_card_path_is_served(stack):
    r = httpx.get(f"{stack.agent_url('echo')}/.well-known/agent.json", timeout=30)
    assert r.status_code == 200, r.text
    urls = connection_urls(r.json())
    assert urls, r.text
    for where, url in urls:
        assert url.startswith(stack.agent_url("echo")), f"{where} = {url!r}: {r.text}"


# --------------------------------------------------------------------------- send


def test_send_message_echo(stack, token):
    text = unique_text("hello")

    async def go():
        async with http_client(token) as http:
            card = await resolve_card(http, stack.gateway_url, "echo")
            client = sdk_client(http, card, streaming=False)  # forces SendMessage
            return [ev async for ev in client.send_message(user_message(text))]

    events = run(go())
    assert len(events) == 1, events
    ev = events[0]
    assert ev.HasField("task") or ev.HasField("message"), ev
    if ev.HasField("task"):
        assert ev.task.id
        assert ev.task.status.state == TaskState.TASK_STATE_COMPLETED, state_name(ev.task.status.state)
        assert text in task_text(ev.task), f"echo of {text!r} not found in {ev.task}"
    else:
        assert text in event_text(ev), ev


def test_send_message_default_client_config(stack, token):
    """ClientConfig() defaults: the SDK streams if the card says it can, else sends."""
    text = unique_text("defaults")

    async def go():
        async with http_client(token) as http:
            card = await resolve_card(http, stack.gateway_url, "echo")
            client = sdk_client(http, card)
            return [ev async for ev in client.send_message(user_message(text))]

    events = run(go())
    assert events, "no events"
    assert any(text in event_text(ev) for ev in events), events
    last_state = [event_state(ev) for ev in events if event_state(ev) is not None]
    if not events[-1].HasField("message"):
        assert last_state and last_state[-1] == TaskState.TASK_STATE_COMPLETED, events


class IssuerCredentials(CredentialService):
    """Hands the SDK a token for the gateway's security scheme, as a real caller would."""

    def __init__(self, token: str):
        self.token = token
        self.asked: list[str] = []

    async def get_credentials(self, security_scheme_name: str, context: ClientCallContext | None) -> str | None:
        self.asked.append(security_scheme_name)
        return self.token


def test_card_security_scheme_drives_sdk_auth_interceptor(stack, token):
    """The rewritten card declares the gateway's OAuth2 client-credentials scheme;
    the SDK's AuthInterceptor, fed a token from the issuer, gets through with it."""
    text = unique_text("interceptor")
    creds = IssuerCredentials(token)

    async def fetch():
        async with http_client(None) as http:
            return await resolve_card(http, stack.gateway_url, "echo")

    card = run(fetch())
    assert card.security_requirements, "the card has no securityRequirements"
    oauth = [
        scheme.oauth2_security_scheme
        for scheme in card.security_schemes.values()
        if scheme.HasField("oauth2_security_scheme")
    ]
    assert oauth, f"no OAuth2 security scheme in the card: {card.security_schemes}"
    flows = [f.flows.client_credentials for f in oauth if f.flows.HasField("client_credentials")]
    assert flows and flows[0].token_url == stack.token_url, oauth

    async def go():
        async with http_client(None) as http:  # no default Authorization header
            client = ClientFactory(ClientConfig(httpx_client=http, streaming=False)).create(
                card, interceptors=[AuthInterceptor(creds)]
            )
            return [ev async for ev in client.send_message(user_message(text))]

    events = run(go())
    assert creds.asked, "the SDK never asked for credentials"
    assert len(events) == 1 and text in event_text(events[0]), events


def test_get_and_cancel_echo_task(stack, token):
    text = unique_text("gettask")

    async def go():
        async with http_client(token) as http:
            card = await resolve_card(http, stack.gateway_url, "echo")
            client = sdk_client(http, card, streaming=False)
            events = [ev async for ev in client.send_message(user_message(text))]
            assert events and events[0].HasField("task"), f"echo answered without a task: {events}"
            task_id = events[0].task.id
            got = await client.get_task(GetTaskRequest(id=task_id))
            try:
                canceled = await client.cancel_task(CancelTaskRequest(id=task_id))
            except TaskNotCancelableError as e:  # a completed task may refuse, in A2A form
                canceled = e
            return task_id, got, canceled

    task_id, got, canceled = run(go())
    assert got.id == task_id
    assert got.status.state == TaskState.TASK_STATE_COMPLETED, state_name(got.status.state)
    assert text in task_text(got), got
    if not isinstance(canceled, Exception):
        assert canceled.id == task_id, canceled


def test_get_unknown_task_is_task_not_found(stack, token):
    async def go():
        async with http_client(token) as http:
            card = await resolve_card(http, stack.gateway_url, "echo")
            client = sdk_client(http, card, streaming=False)
            await client.get_task(GetTaskRequest(id="no-such-task-" + unique_text("x")))

    with pytest.raises(TaskNotFoundError):
        run(go())


# --------------------------------------------------------------------------- stream


def test_stream_event_by_event_then_get_task(stack, token):
    text = unique_text("slow-stream")

    async def go():
        async with http_client(token) as http:
            card = await resolve_card(http, stack.gateway_url, "stream")
            assert card.capabilities.streaming, "the stream agent's card must say capabilities.streaming"
            client = sdk_client(http, card, streaming=True)
            events = await timed(client.send_message(user_message(text)))
            task_id = next((event_task_id(t.event) for t in events if event_task_id(t.event)), "")
            got = await client.get_task(GetTaskRequest(id=task_id)) if task_id else None
            return events, got

    events, got = run(go())
    story = describe(events) if events else "  (none)"
    assert len(events) >= 4, f"expected several stream events, got {len(events)}:\n{story}"

    kinds = [event_kind(t.event) for t in events]
    assert "message" not in kinds[:-1], story
    assert kinds.count("artifact_update") >= 2, f"expected several artifact chunks:\n{story}"

    task_ids = {event_task_id(t.event) for t in events} - {""}
    assert len(task_ids) == 1, f"events belong to several tasks {task_ids}:\n{story}"

    states = [event_state(t.event) for t in events if event_state(t.event) is not None]
    assert states and states[-1] == TaskState.TASK_STATE_COMPLETED, f"stream did not end completed:\n{story}"
    assert all(s not in TERMINAL for s in states[:-1]), f"terminal state before the end:\n{story}"
    assert event_state(events[-1].event) == TaskState.TASK_STATE_COMPLETED, (
        f"the last event must carry the completed state:\n{story}"
    )
    first_artifact = kinds.index("artifact_update")
    assert TaskState.TASK_STATE_WORKING in states or first_artifact > 0, story

    # Event by event, not buffered: the first event reaches the client before
    # the agent has even produced the final one (a buffering hop delivers
    # them all at the end).
    first_before_final(events[0].wall, status_time(events[-1].event), story)

    streamed = "".join(event_text(t.event) for t in events if t.event.HasField("artifact_update"))
    assert streamed, story

    # GetTask afterwards, through the gateway, with the SDK.
    assert got is not None
    assert got.id in task_ids
    assert got.status.state == TaskState.TASK_STATE_COMPLETED, state_name(got.status.state)


def test_stream_status_timestamps_are_when_set(stack, token):
    """Each status carries the time it was set, not the time the task was
    planned: the final status is stamped after the pauses that come after
    the working one (five of 300 ms)."""

    async def go():
        async with http_client(token) as http:
            card = await resolve_card(http, stack.gateway_url, "stream")
            client = sdk_client(http, card, streaming=True)
            return await timed(client.send_message(user_message(unique_text("stamps"))))

    events = run(go())
    story = describe(events) if events else "  (none)"
    assert len(events) >= 2, story
    final = events[-1].event
    assert final.HasField("status_update"), story
    produced = status_time(final)
    assert produced is not None, f"final status has no timestamp:\n{story}"
    working = [
        status_time(t.event) for t in events if event_state(t.event) == TaskState.TASK_STATE_WORKING
    ]
    assert working and working[0] is not None, f"no stamped working status:\n{story}"
    assert produced - working[0] >= 1.2, (
        f"the working status was set at {datetime.fromtimestamp(working[0], timezone.utc).isoformat()} "
        f"and the final one at {datetime.fromtimestamp(produced, timezone.utc).isoformat()}, "
        f"not the five pauses later it came:\n{story}"
    )


def test_no_token_through_sdk_is_refused(stack):
    async def go():
        async with http_client(None) as http:
            card = await resolve_card(http, stack.gateway_url, "echo")
            client = sdk_client(http, card, streaming=False)
            return [ev async for ev in client.send_message(user_message("nope"))]

    with pytest.raises(A2AClientError) as e:
        run(go())
    assert "401" in str(e.value), str(e.value)


# --------------------------------------------------------------------------- guarded


def test_guarded_agent_through_gateway(stack, token):
    text = unique_text("guarded")

    async def go():
        async with http_client(token) as http:
            card = await resolve_card(http, stack.gateway_url, "guarded")
            client = sdk_client(http, card, streaming=False)
            return card, [ev async for ev in client.send_message(user_message(text))]

    card, events = run(go())
    for iface in card.supported_interfaces:
        assert iface.url.startswith(stack.agent_url("guarded")), iface
    assert len(events) == 1, events
    assert text in event_text(events[0]), events[0]
    if events[0].HasField("task"):
        assert events[0].task.status.state == TaskState.TASK_STATE_COMPLETED


def test_guarded_backend_refuses_callers_without_a_token(stack):
    """The guarded agent really is guarded, so the gateway must be supplying its token."""
    backend = stack.backend_url("guarded")
    card = httpx.get(f"{backend}/.well-known/agent-card.json", timeout=30)
    if card.status_code == 200:
        body = card.json()
        urls = [
            i["url"]
            for i in body.get("supportedInterfaces", [])
            if i.get("protocolBinding") == "JSONRPC"
        ] or [body.get("url") or backend]
    else:
        urls = [backend]
    request = {
        "jsonrpc": "2.0",
        "id": "direct-1",
        "method": "SendMessage",
        "params": {"message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "hi"}]}},
    }
    for url in urls:
        r = httpx.post(url, json=request, headers={"A2A-Version": "1.0"}, timeout=30)
        assert r.status_code in (401, 403), (
            f"guarded backend {url} answered {r.status_code} to a caller without a token: {r.text}"
        )
