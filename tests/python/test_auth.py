"""Gateway refusals as a caller sees them: status, headers, JSON(-RPC) bodies."""

from __future__ import annotations

import uuid

import httpx
import pytest

from a2a_support import TIMEOUT, bearer


def jsonrpc(method: str = "SendMessage") -> dict:
    return {
        "jsonrpc": "2.0",
        "id": f"req-{uuid.uuid4().hex[:8]}",
        "method": method,
        "params": {"message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "hi"}]}},
    }


def assert_jsonrpc_error(r: httpx.Response, req: dict, status: int) -> dict:
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text}"
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    body = r.json()
    assert body.get("jsonrpc") == "2.0", body
    assert body.get("id") == req["id"], f"error must carry the request id {req['id']!r}: {body}"
    assert "result" not in body, body
    err = body.get("error")
    assert isinstance(err, dict), body
    assert isinstance(err.get("code"), int), body
    assert isinstance(err.get("message"), str) and err["message"], body
    return err


@pytest.mark.parametrize("version", ["1.0", None])
def test_no_token_is_401_jsonrpc_error(stack, version):
    req = jsonrpc("SendMessage" if version else "message/send")
    headers = {"A2A-Version": version} if version else {}
    r = httpx.post(stack.agent_url("echo"), json=req, headers=headers, timeout=TIMEOUT)
    assert_jsonrpc_error(r, req, 401)
    assert r.headers.get("www-authenticate", "").lower().startswith("bearer"), r.headers


def test_numeric_request_id_is_echoed(stack):
    req = jsonrpc()
    req["id"] = 42
    r = httpx.post(stack.agent_url("echo"), json=req, headers={"A2A-Version": "1.0"}, timeout=TIMEOUT)
    assert_jsonrpc_error(r, req, 401)


def test_garbage_token_is_401(stack):
    req = jsonrpc()
    r = httpx.post(
        stack.agent_url("echo"),
        json=req,
        headers={"A2A-Version": "1.0", "Authorization": "Bearer not.a.jwt"},
        timeout=TIMEOUT,
    )
    assert_jsonrpc_error(r, req, 401)
    assert "invalid_token" in r.headers.get("www-authenticate", ""), r.headers


def test_streaming_request_without_token_is_401_not_a_stream(stack):
    req = jsonrpc("SendStreamingMessage")
    r = httpx.post(
        stack.agent_url("stream"),
        json=req,
        headers={"A2A-Version": "1.0", "Accept": "text/event-stream"},
        timeout=TIMEOUT,
    )
    assert_jsonrpc_error(r, req, 401)


def test_non_jsonrpc_request_without_token_is_401_json(stack):
    r = httpx.get(f"{stack.agent_url('echo')}/tasks/some-task", timeout=TIMEOUT)
    assert r.status_code == 401, r.text
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    assert isinstance(r.json(), dict), r.text


def test_token_without_the_agents_scope_is_403(stack):
    if "switchboard/echo" not in stack.scopes:
        pytest.fail(f"the demo client has no switchboard/echo scope: {stack.scopes}")
    only_echo = stack.token(["switchboard/echo"])
    req = jsonrpc()
    r = httpx.post(
        stack.agent_url("guarded"),
        json=req,
        headers={"A2A-Version": "1.0", **bearer(only_echo)},
        timeout=TIMEOUT,
    )
    assert_jsonrpc_error(r, req, 403)
    # ... and the same token does reach echo.
    r = httpx.post(
        stack.agent_url("echo"),
        json=req,
        headers={"A2A-Version": "1.0", **bearer(only_echo)},
        timeout=TIMEOUT,
    )
    assert r.status_code == 200, r.text
    assert "result" in r.json(), r.text


def test_unknown_agent_is_refused_in_jsonrpc_form(stack, token):
    req = jsonrpc()
    r = httpx.post(
        f"{stack.gateway_url}/agents/no-such-agent",
        json=req,
        headers={"A2A-Version": "1.0", **bearer(token)},
        timeout=TIMEOUT,
    )
    # 404, or 403 when the scopes are checked before the registry is consulted.
    assert r.status_code in (403, 404), r.text
    assert_jsonrpc_error(r, req, r.status_code)


def test_card_needs_no_token(stack):
    r = httpx.get(stack.card_url("guarded"), timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    assert r.json().get("name"), r.text
