//! The stack under test: `switchboard serve`, or the in-process self-test
//! server.

use super::*;

pub(crate) struct Stack {
    pub(crate) info: ServeInfo,
    /// The switchboard binary (None in self-test mode).
    pub(crate) bin: Option<PathBuf>,
    pub(crate) process: Option<Child>,
    pub(crate) self_test: Option<SelfTestServer>,
}

impl Stack {
    pub(crate) fn spawn(bin: &Path, tmp: &Path) -> Result<Self> {
        let data_dir = tmp.join("data");
        std::fs::create_dir_all(&data_dir)?;
        let log_path = tmp.join("serve.stderr");
        let log = std::fs::File::create(&log_path)?;
        let mut child = Command::new(bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--json", "--data-dir"])
            .arg(&data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {} serve", bin.display()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout pipe"))?;
        // Read the JSON line, then keep draining stdout so the server never
        // blocks on a full pipe.
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let mut sent = false;
            while let Some(Ok(line)) = lines.next() {
                if !sent && line.trim_start().starts_with('{') {
                    sent = tx.send(line).is_ok();
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let line = loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => break line,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait()?;
                    bail!(
                        "`switchboard serve` exited ({status}) without printing its JSON line; stderr:\n{}",
                        tail(&log_path)
                    );
                }
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "`switchboard serve` exited ({status}) before printing its JSON line; stderr:\n{}",
                    tail(&log_path)
                );
            }
            if Instant::now() > deadline {
                terminate(&mut child, Duration::from_secs(2));
                bail!(
                    "`switchboard serve` printed no JSON line within 60 s; stderr:\n{}",
                    tail(&log_path)
                );
            }
        };
        let mut info: ServeInfo = match serde_json::from_str(&line) {
            Ok(info) => info,
            Err(e) => {
                terminate(&mut child, Duration::from_secs(2));
                bail!("`switchboard serve --json` printed an unexpected line ({e}):\n{line}");
            }
        };
        if info.data_dir.as_os_str().is_empty() {
            info.data_dir = data_dir;
        }
        eprintln!("gateway at {}", info.gateway_url);
        Ok(Stack {
            info,
            bin: Some(bin.to_owned()),
            process: Some(child),
            self_test: None,
        })
    }

    pub(crate) fn self_test() -> Result<Self> {
        let server = SelfTestServer::start()?;
        let info = ServeInfo {
            gateway_url: format!("http://{}", server.gateway),
            token_url: format!("http://{}/oauth2/token", server.gateway),
            data_dir: PathBuf::new(),
            agents: vec![AgentInfo {
                id: ECHO_AGENT.into(),
                url: format!("http://{}", server.echo),
            }],
            client_id: "self-test".into(),
            client_secret: "self-test-secret".into(),
        };
        Ok(Stack {
            info,
            bin: None,
            process: None,
            self_test: Some(server),
        })
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Child::id)
    }

    pub(crate) fn stop(mut self) {
        if let Some(mut child) = self.process.take() {
            terminate(&mut child, Duration::from_secs(5));
        }
        if let Some(server) = self.self_test.take() {
            server.stop();
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(mut child) = self.process.take() {
            terminate(&mut child, Duration::from_secs(2));
        }
    }
}

/// SIGTERM, wait up to `grace`, then SIGKILL.
pub(crate) fn terminate(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

pub(crate) fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(30);
    lines[from..].join("\n")
}

/// The harness check: an echo agent and a stand-in "gateway" (bearer check,
/// token endpoint) on their own runtime, so `--self-test` runs every code path
/// except `switchboard serve` itself.
pub(crate) struct SelfTestServer {
    pub(crate) echo: SocketAddr,
    pub(crate) gateway: SocketAddr,
    pub(crate) shutdown: tokio::sync::oneshot::Sender<()>,
    pub(crate) thread: std::thread::JoinHandle<()>,
}

pub(crate) const SELF_TEST_TOKEN: &str = "self-test-token";

impl SelfTestServer {
    pub(crate) fn start() -> Result<Self> {
        use axum::routing::post;
        let echo_listener = StdTcpListener::bind("127.0.0.1:0")?;
        let gateway_listener = StdTcpListener::bind("127.0.0.1:0")?;
        echo_listener.set_nonblocking(true)?;
        gateway_listener.set_nonblocking(true)?;
        let echo = echo_listener.local_addr()?;
        let gateway = gateway_listener.local_addr()?;
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let thread = std::thread::spawn(move || {
            rt.block_on(async move {
                let (Ok(echo_listener), Ok(gateway_listener)) = (
                    tokio::net::TcpListener::from_std(echo_listener),
                    tokio::net::TcpListener::from_std(gateway_listener),
                ) else {
                    return;
                };
                let echo_app = axum::Router::new().route("/", post(self_test_echo));
                let gateway_app = axum::Router::new()
                    .route("/agents/echo", post(self_test_gateway))
                    .route("/oauth2/token", post(self_test_token));
                tokio::select! {
                    _ = axum::serve(echo_listener, echo_app) => {}
                    _ = axum::serve(gateway_listener, gateway_app) => {}
                    _ = stopped => {}
                }
            });
        });
        Ok(SelfTestServer {
            echo,
            gateway,
            shutdown,
            thread,
        })
    }

    pub(crate) fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.thread.join();
    }
}

pub(crate) async fn self_test_echo(body: Bytes) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let reply = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(req) => serde_json::json!({
            "jsonrpc": "2.0",
            "id": req["id"],
            "result": {"message": {
                "role": "ROLE_AGENT",
                "messageId": uuid::Uuid::new_v4().to_string(),
                "parts": req["params"]["message"]["parts"],
            }}
        }),
        Err(e) => serde_json::json!({
            "jsonrpc": "2.0", "id": null,
            "error": {"code": -32700, "message": e.to_string()}
        }),
    };
    axum::Json(reply).into_response()
}

pub(crate) async fn self_test_gateway(
    headers: http::HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let expected = format!("Bearer {SELF_TEST_TOKEN}");
    if headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(expected.as_str())
        || headers.get(&A2A_VERSION).is_none()
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    self_test_echo(body).await
}

pub(crate) async fn self_test_token(headers: http::HeaderMap) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let basic = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Basic "));
    if !basic {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    axum::Json(serde_json::json!({
        "access_token": SELF_TEST_TOKEN, "token_type": "Bearer", "expires_in": 3600
    }))
    .into_response()
}
