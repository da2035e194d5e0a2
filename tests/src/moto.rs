//! A local AWS for tests: a `moto_server` process on a free loopback port,
//! killed when dropped.
//!
//! The server is found through `SWITCHBOARD_MOTO` (the path of `moto_server`,
//! exported by `tests/run`), else in the venv `tests/run` creates under
//! `${SWITCHBOARD_CACHE:-~/.cache/switchboard}/moto`. When it is missing the
//! test fails with the command that installs it.
//!
//! moto keeps one state for the whole process and never expires TTL items:
//! give every test its own table prefix ([`unique_prefix`]).
//!
//! moto answers on several threads but does not make a conditional update
//! atomic (it reads the item, checks the condition and writes, unlocked), so
//! concurrent `UpdateItem … ADD` calls can both pass a `count < limit` check.
//! DynamoDB itself applies writes to one item one at a time. The harness
//! therefore runs moto's own WSGI application behind a lock ([`LAUNCHER`]):
//! still one thread per connection, but one request at a time. The launcher
//! also exits when its standard input closes, so a test process that dies
//! without unwinding leaves no server behind.

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// The moto release the tests are written against.
pub const MOTO_REQUIREMENT: &str =
    "moto[server,cloudformation,dynamodb,cognitoidp,secretsmanager,apigateway,iam,logs,s3]==5.2.5";
/// Region for every test (moto's account is 123456789012).
pub const REGION: &str = "us-east-1";
/// Static credentials; moto accepts any.
pub const ACCESS_KEY_ID: &str = "AKIDSWITCHBOARDTEST";
/// Static credentials; moto accepts any.
pub const SECRET_ACCESS_KEY: &str = "switchboard-test-secret";

fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("SWITCHBOARD_CACHE") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cache").join("switchboard")
}

/// The `moto_server` executable, or a panic that says how to install it.
pub fn moto_server_path() -> PathBuf {
    if let Some(p) = std::env::var_os("SWITCHBOARD_MOTO") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "SWITCHBOARD_MOTO points at {}, which does not exist",
            p.display()
        );
        return p;
    }
    let venv = cache_dir().join("moto");
    let p = venv.join("bin").join("moto_server");
    assert!(
        p.is_file(),
        "moto (a local AWS) is not installed; these tests need it.\n\
         Run `tests/run`, which installs it, or:\n  \
         python3 -m venv {venv} && {venv}/bin/pip install '{MOTO_REQUIREMENT}'\n\
         or point SWITCHBOARD_MOTO at a moto_server executable.",
        venv = venv.display()
    );
    p
}

/// Runs moto's server application with one request at a time; exits when
/// standard input closes. Arguments: host, port.
pub const LAUNCHER: &str = r#"
import os, sys, threading
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication, MotoRequestHandler, create_backend_app)

host, port = sys.argv[1], int(sys.argv[2])
app = DomainDispatcherApplication(create_backend_app)
app.debug = True
lock = threading.Lock()

def serialized(environ, start_response):
    with lock:
        return [b"".join(app(environ, start_response))]

def exit_with_parent():
    sys.stdin.buffer.read()
    os._exit(0)

threading.Thread(target=exit_with_parent, daemon=True).start()
run_simple(host, port, serialized, threaded=True, request_handler=MotoRequestHandler)
"#;

/// The Python interpreter of the venv `moto_server` belongs to.
fn python_of(moto_server: &Path) -> PathBuf {
    if let Some(dir) = moto_server.parent() {
        for name in ["python3", "python"] {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    // Else the interpreter named on its first line (`#!/…/python3`).
    let text = std::fs::read_to_string(moto_server).unwrap_or_default();
    text.lines()
        .next()
        .and_then(|l| l.strip_prefix("#!"))
        .map(|l| PathBuf::from(l.trim()))
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// A table prefix no other test uses: `sbt-{label}-{random}-`.
pub fn unique_prefix(label: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("sbt-{label}-{}-", &id[..10])
}

/// A running moto server.
pub struct Moto {
    child: Child,
    _stdin: Option<ChildStdin>,
    endpoint: String,
    _log: tempfile::NamedTempFile,
}

impl Moto {
    /// Starts a server on a free port of 127.0.0.1 and waits until it answers.
    pub async fn start() -> Moto {
        let exe = moto_server_path();
        let python = python_of(&exe);
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
                l.local_addr().expect("its address").port()
            };
            let log = tempfile::NamedTempFile::new().expect("a log file");
            let mut child = Command::new(&python)
                .args(["-c", LAUNCHER, "127.0.0.1", &port.to_string()])
                .env("MOTO_PORT", port.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(log.reopen().expect("the log file"))
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start moto with {}: {e}", python.display()));
            let stdin = child.stdin.take();
            let mut moto = Moto {
                child,
                _stdin: stdin,
                endpoint: format!("http://127.0.0.1:{port}"),
                _log: log,
            };
            if moto.wait_ready(Duration::from_secs(60)).await {
                return moto;
            }
            last_log = std::fs::read_to_string(moto._log.path()).unwrap_or_default();
            drop(moto);
        }
        panic!("moto_server did not start; its last output:\n{last_log}");
    }

    async fn wait_ready(&mut self, within: Duration) -> bool {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("an HTTP client");
        let url = format!("{}/moto-api/data.json", self.endpoint);
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(r) = http.get(&url).send().await {
                if r.status().is_success() {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// `http://127.0.0.1:PORT`, for `endpoint_url`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
