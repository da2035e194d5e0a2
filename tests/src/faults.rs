//! A proxy in front of the local AWS that can fail on demand: go away
//! (connections refused, open ones cut) and come back on the same port, or
//! answer throttling errors. It also counts the calls that pass, by operation
//! (`DynamoDB_20120810.UpdateItem` → `UpdateItem`).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

#[derive(Default)]
struct State {
    /// Throttle calls to this operation (`None`: every operation).
    throttle_op: Option<String>,
    /// How many more calls to throttle (`None`: all of them); `Some(0)`: none.
    throttle_left: Option<u32>,
    throttling: bool,
    calls: BTreeMap<String, u64>,
    throttled: BTreeMap<String, u64>,
}

struct Shared {
    upstream: String,
    http: reqwest::Client,
    state: Mutex<State>,
}

/// The proxy. Dropping it stops it.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Mutex<Option<JoinSet<()>>>,
}

fn operation(req: &Request<Incoming>) -> String {
    req.headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(|t| t.rsplit('.').next().unwrap_or(t).to_owned())
        .unwrap_or_else(|| "?".to_owned())
}

fn throttled_response(target: &str) -> Response<Full<Bytes>> {
    let dynamodb = target.starts_with("DynamoDB");
    let kind = if dynamodb {
        "com.amazonaws.dynamodb.v20120810#ThrottlingException"
    } else {
        "ThrottlingException"
    };
    let body = format!(
        r#"{{"__type":"{kind}","message":"Rate of requests exceeds the allowed throughput."}}"#
    );
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = hyper::StatusCode::BAD_REQUEST;
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(kind) {
        h.insert("x-amzn-errortype", v);
    }
    resp
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let op = operation(&req);
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    {
        let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        let applies = st.throttling
            && st.throttle_op.as_deref().is_none_or(|o| o == op)
            && st.throttle_left != Some(0);
        if applies {
            if let Some(n) = st.throttle_left.as_mut() {
                *n -= 1;
            }
            *st.throttled.entry(op).or_default() += 1;
            return throttled_response(&target);
        }
        *st.calls.entry(op).or_default() += 1;
    }
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error_response("cannot read the request"),
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut up = shared
        .http
        .request(parts.method.clone(), format!("{}{path}", shared.upstream))
        .body(body);
    for (k, v) in &parts.headers {
        if k != hyper::header::HOST && k != hyper::header::CONTENT_LENGTH {
            up = up.header(k, v);
        }
    }
    let resp = match up.send().await {
        Ok(r) => r,
        Err(e) => return error_response(&format!("upstream failed: {e}")),
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap_or_default();
    let mut out = Response::new(Full::new(bytes));
    *out.status_mut() = status;
    for (k, v) in &headers {
        if k != hyper::header::TRANSFER_ENCODING && k != hyper::header::CONTENT_LENGTH {
            out.headers_mut().append(k, v.clone());
        }
    }
    out
}

fn error_response(msg: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(msg.to_owned())));
    *resp.status_mut() = hyper::StatusCode::BAD_GATEWAY;
    resp
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        conns.spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(shared, req).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
        // Reap finished connections as we go.
        while conns.try_join_next().is_some() {}
    }
}

impl FaultProxy {
    /// A proxy on a free loopback port in front of `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr = listener.local_addr().expect("its address");
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("an HTTP client"),
            state: Mutex::new(State::default()),
        });
        let proxy = FaultProxy {
            addr,
            shared,
            server: Mutex::new(None),
        };
        proxy.run(listener);
        proxy
    }

    fn run(&self, listener: TcpListener) {
        let mut set = JoinSet::new();
        set.spawn(serve(listener, self.shared.clone()));
        *self.server.lock().unwrap_or_else(|e| e.into_inner()) = Some(set);
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops listening and cuts every open connection: the endpoint is gone.
    pub fn go_down(&self) {
        // Dropping the set aborts the accept loop, which owns (and so drops)
        // the listener and every connection task.
        drop(self.server.lock().unwrap_or_else(|e| e.into_inner()).take());
    }

    /// Listens again on the same port.
    pub async fn come_back(&self) {
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot listen on {} again: {e}", self.addr),
            }
        };
        self.run(listener);
    }

    /// Answers calls to `operation` (every operation when `None`) with a
    /// throttling error: the next `times` of them, or all while `times` is `None`.
    pub fn throttle(&self, operation: Option<&str>, times: Option<u32>) {
        let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        st.throttling = true;
        st.throttle_op = operation.map(str::to_owned);
        st.throttle_left = times;
    }

    /// Stops throttling.
    pub fn pass(&self) {
        let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        st.throttling = false;
    }

    /// Calls passed to the upstream, by operation.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .calls
            .clone()
    }

    /// Calls answered with a throttling error, by operation.
    pub fn throttled(&self) -> BTreeMap<String, u64> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .throttled
            .clone()
    }

    /// Forgets the counts.
    pub fn reset_counts(&self) {
        let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        st.calls.clear();
        st.throttled.clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.go_down();
    }
}
