//! A local Lambda Runtime API (the interface the Lambda service offers a
//! function's runtime), enough to drive `switchboard lambda` the way Lambda
//! does: it hands out queued events on `GET …/invocation/next` and passes on
//! each response body chunk by chunk as the function streams it, so a test
//! sees server-sent events arrive one at a time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::sync::mpsc;

/// What arrives for one invocation: body chunks, then the end.
#[derive(Debug)]
pub enum Piece {
    /// A chunk of the response body as the function sent it.
    Chunk(Bytes),
    /// The function reported an error instead of (or during) a response.
    Error(String),
}

struct Shared {
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<(String, String)>>,
    answers: Mutex<HashMap<String, mpsc::UnboundedSender<Piece>>>,
    init_errors: Mutex<Vec<String>>,
}

/// The runtime API; serves until dropped.
pub struct RuntimeApi {
    addr: SocketAddr,
    events: mpsc::UnboundedSender<(String, String)>,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
    next_id: std::sync::atomic::AtomicU64,
}

/// One invocation's response, as the function streams it.
pub struct Invocation {
    rx: mpsc::UnboundedReceiver<Piece>,
    buf: Vec<u8>,
}

impl RuntimeApi {
    /// Starts on a free port of 127.0.0.1.
    pub async fn start() -> RuntimeApi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let addr = listener.local_addr().expect("its address");
        let (events, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            queue: tokio::sync::Mutex::new(rx),
            answers: Mutex::new(HashMap::new()),
            init_errors: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(s.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        RuntimeApi {
            addr,
            events,
            shared,
            task,
            next_id: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// `host:port`, for `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Queues `event` (JSON text) for the function; its response arrives on
    /// the returned invocation.
    pub fn invoke(&self, event: String) -> Invocation {
        let n = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("req-{n}");
        let (tx, rx) = mpsc::unbounded_channel();
        self.shared
            .answers
            .lock()
            .expect("lock")
            .insert(id.clone(), tx);
        self.events.send((id, event)).expect("the runtime API runs");
        Invocation {
            rx,
            buf: Vec::new(),
        }
    }

    /// Errors the function reported while starting.
    pub fn init_errors(&self) -> Vec<String> {
        self.shared.init_errors.lock().expect("lock").clone()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Answer = Response<Full<Bytes>>;

fn answer(status: u16, body: impl Into<Bytes>) -> Answer {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = hyper::StatusCode::from_u16(status).expect("a status");
    r
}

async fn handle(
    s: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Answer, std::convert::Infallible> {
    let path = req.uri().path().to_owned();
    let Some(rest) = path.strip_prefix("/2018-06-01/runtime/") else {
        return Ok(answer(404, "not a runtime API path"));
    };
    if rest == "invocation/next" {
        let next = s.queue.lock().await.recv().await;
        let Some((id, event)) = next else {
            return Ok(answer(500, "shutting down"));
        };
        let deadline = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis()
            + 900_000;
        let mut r = answer(200, event);
        let h = r.headers_mut();
        h.insert("lambda-runtime-aws-request-id", id.parse().expect("header"));
        h.insert(
            "lambda-runtime-deadline-ms",
            deadline.to_string().parse().expect("header"),
        );
        h.insert(
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:123456789012:function:switchboard-test"
                .parse()
                .expect("header"),
        );
        h.insert(
            "lambda-runtime-trace-id",
            "Root=1-0-0;Parent=0;Sampled=0".parse().expect("header"),
        );
        return Ok(r);
    }
    if rest == "init/error" {
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        s.init_errors
            .lock()
            .expect("lock")
            .push(String::from_utf8_lossy(&body).into_owned());
        return Ok(answer(202, ""));
    }
    let Some(rest) = rest.strip_prefix("invocation/") else {
        return Ok(answer(404, "unknown runtime path"));
    };
    let (id, what) = rest.split_once('/').unwrap_or((rest, ""));
    let Some(tx) = s.answers.lock().expect("lock").remove(id) else {
        return Ok(answer(400, "unknown request id"));
    };
    let mut body = req.into_body();
    match what {
        "response" => {
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => {
                        if let Ok(data) = f.into_data() {
                            let _ = tx.send(Piece::Chunk(data));
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Piece::Error(format!("response body broke: {e}")));
                        break;
                    }
                }
            }
        }
        "error" => {
            let b = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let _ = tx.send(Piece::Error(String::from_utf8_lossy(&b).into_owned()));
        }
        _ => return Ok(answer(404, "unknown invocation path")),
    }
    Ok(answer(202, ""))
}

impl Invocation {
    async fn more(&mut self, within: Duration) -> bool {
        match tokio::time::timeout(within, self.rx.recv()).await {
            Ok(Some(Piece::Chunk(c))) => {
                self.buf.extend_from_slice(&c);
                true
            }
            Ok(Some(Piece::Error(e))) => panic!("the function reported an error: {e}"),
            Ok(None) => false,
            Err(_) => panic!("no response from the function within {within:?}"),
        }
    }

    /// The response's status and headers: the JSON prelude of a streamed
    /// HTTP response (before its eight NUL bytes).
    pub async fn prelude(&mut self, within: Duration) -> serde_json::Value {
        loop {
            if let Some(at) = self.buf.windows(8).position(|w| w == [0u8; 8]) {
                let prelude: serde_json::Value =
                    serde_json::from_slice(&self.buf[..at]).expect("the prelude is JSON");
                self.buf.drain(..at + 8);
                return prelude;
            }
            assert!(
                self.more(within).await,
                "the response ended before its prelude: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    /// The next server-sent event's `data`, waiting for it; `None` at the end.
    pub async fn next_event(&mut self, within: Duration) -> Option<String> {
        loop {
            if let Some(at) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let event = String::from_utf8_lossy(&self.buf[..at]).into_owned();
                self.buf.drain(..at + 2);
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if data.is_empty() {
                    continue; // a comment (keep-alive)
                }
                return Some(data.join("\n"));
            }
            if !self.more(within).await {
                return None;
            }
        }
    }

    /// The rest of the body.
    pub async fn body(mut self, within: Duration) -> Vec<u8> {
        while self.more(within).await {}
        self.buf
    }
}
