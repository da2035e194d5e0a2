"""Fixtures for the end-to-end tests: one local Switchboard stack per session.

The stack is the real binary (`switchboard serve --json`): gateway, local OAuth2
issuer and sample agents on ephemeral loopback ports. Tests talk to it only over
HTTP, with the official A2A Python SDK or plain httpx.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = float(os.environ.get("SWITCHBOARD_STARTUP_TIMEOUT", "120"))


def _default_binary() -> Path:
    target = os.environ.get("CARGO_TARGET_DIR")
    target_dir = Path(target) if target else REPO_ROOT / "target"
    if not target_dir.is_absolute():
        target_dir = REPO_ROOT / target_dir
    return target_dir / "debug" / "switchboard"


def switchboard_binary() -> Path:
    env = os.environ.get("SWITCHBOARD_BIN")
    path = Path(env) if env else _default_binary()
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"switchboard binary not found at {path}.\n"
            "Build it first with `cargo build -p switchboard` (or run `tests/run`, "
            "which builds everything), or point SWITCHBOARD_BIN at a built binary.",
            pytrace=False,
        )
    return path


class Stack:
    """A running `switchboard serve` process and the JSON line it printed."""

    def __init__(self, info: dict[str, Any], proc: subprocess.Popen[bytes], log_path: Path):
        self.info = info
        self.proc = proc
        self.log_path = log_path
        self.gateway_url: str = info["gateway_url"].rstrip("/")
        self.issuer_url: str = info["issuer_url"].rstrip("/")
        self.token_url: str = info["token_url"]
        self.client_id: str = info["client_id"]
        self.client_secret: str = info["client_secret"]
        self.scopes: list[str] = list(info.get("scopes") or [])
        self.agents: dict[str, dict[str, Any]] = {a["id"]: a for a in info["agents"]}
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()

    # ---- addresses -----------------------------------------------------
    def agent_url(self, agent_id: str) -> str:
        """The gateway's JSON-RPC endpoint for an agent."""
        return f"{self.gateway_url}/agents/{agent_id}"

    def card_url(self, agent_id: str) -> str:
        return self.agents[agent_id]["card_url"]

    def backend_url(self, agent_id: str) -> str:
        return self.agents[agent_id]["url"].rstrip("/")

    # ---- tokens --------------------------------------------------------
    def token(self, scopes: list[str] | None = None) -> str:
        """A client-credentials access token from the local issuer (cached per scope set)."""
        key = " ".join(sorted(scopes)) if scopes is not None else "*"
        with self._lock:
            if key in self._tokens:
                return self._tokens[key]
        form = {"grant_type": "client_credentials"}
        if scopes is not None:
            form["scope"] = " ".join(scopes)
        resp = httpx.post(
            self.token_url,
            data=form,
            auth=(self.client_id, self.client_secret),
            timeout=30,
        )
        assert resp.status_code == 200, (
            f"token endpoint answered {resp.status_code}: {resp.text}"
        )
        body = resp.json()
        assert body.get("token_type", "").lower() == "bearer", body
        assert body.get("access_token"), body
        with self._lock:
            self._tokens[key] = body["access_token"]
        return body["access_token"]

    # ---- diagnostics ---------------------------------------------------
    def log_tail(self, lines: int = 80) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _read_ready_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes | None:
    """Read the first stdout line, giving up after `timeout` seconds."""
    result: list[bytes] = []

    def reader() -> None:
        assert proc.stdout is not None
        result.append(proc.stdout.readline())

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(timeout)
    return result[0] if result else None


@pytest.fixture(scope="session")
def stack() -> Any:
    binary = switchboard_binary()
    data_dir = Path(tempfile.mkdtemp(prefix="switchboard-e2e-"))
    log_path = data_dir.parent / f"{data_dir.name}.stderr.log"
    log = open(log_path, "wb")
    cmd = [
        str(binary), "serve",
        "--listen", "127.0.0.1:0",
        "--json",
        "--data-dir", str(data_dir),
    ]
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "info")
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, env=env,
    )
    started = time.monotonic()
    line = _read_ready_line(proc, STARTUP_TIMEOUT_S)

    def fail(why: str) -> None:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-60:])
        pytest.fail(
            f"`{' '.join(cmd)}` {why}\n--- stderr (last lines, full log: {log_path}) ---\n{tail}",
            pytrace=False,
        )

    if not line:
        if proc.poll() is not None:
            fail(f"exited with status {proc.returncode} before printing its ready line")
        fail(f"printed no ready line within {STARTUP_TIMEOUT_S:.0f} s")
    try:
        info = json.loads(line)
    except json.JSONDecodeError as e:
        fail(f"printed a first stdout line that is not JSON ({e}): {line[:500]!r}")
    for key in ("gateway_url", "issuer_url", "token_url", "agents", "client_id", "client_secret"):
        if key not in info:
            fail(f"ready line lacks {key!r}: {info}")
    agent_ids = {a.get("id") for a in info["agents"]}
    for needed in ("echo", "stream", "guarded"):
        if needed not in agent_ids:
            fail(f"ready line has no {needed!r} agent: {info['agents']}")

    s = Stack(info, proc, log_path)
    s.startup_seconds = time.monotonic() - started  # type: ignore[attr-defined]
    yield s

    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    log.close()
    if os.environ.get("SWITCHBOARD_KEEP_DATA") != "1":
        shutil.rmtree(data_dir, ignore_errors=True)
        try:
            log_path.unlink()
        except OSError:
            pass


@pytest.fixture(scope="session")
def token(stack: Stack) -> str:
    """An access token carrying every scope the demo client has."""
    return stack.token()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Attach the tail of the stack's stderr to every failing test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        s = item.funcargs.get("stack") if hasattr(item, "funcargs") else None
        if isinstance(s, Stack):
            report.sections.append(("switchboard stderr (tail)", s.log_tail()))
