//! Agent backends that misbehave on purpose, on real loopback sockets: they
//! refuse connections, never answer, reset the connection in the middle of a
//! response, answer with garbage or an oversized head, or trickle a response
//! out one byte per write and stop half-way until the test lets them go on.
//!
//! Each is a raw TCP server speaking just enough HTTP/1.1 by hand, so that it
//! can break the protocol in ways a real HTTP server library never would.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// `http://127.0.0.1:PORT` for a port nobody listens on: connections are
/// refused. (The port was free a moment ago; nothing else on this machine
/// binds ephemeral ports on purpose.)
pub fn refusing_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = listener.local_addr().expect("its address");
    drop(listener);
    format!("http://{addr}")
}

/// What a [`Misbehaving`] backend does with each connection, after reading
/// the request (head and body).
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Never answers; the connection stays open until the backend is dropped.
    Silent,
    /// Sends these bytes (a response head and part of a body, framed as the
    /// head says), then resets the connection (TCP RST).
    ResetAfter(Vec<u8>),
    /// Answers with bytes that are not an HTTP response, then closes.
    Garbage,
    /// A `200` status line and one header whose value is this many bytes.
    OversizedHeader(usize),
    /// A `200` status line and this many small headers.
    ManyHeaders(usize),
    /// A whole `200` response written one byte per write, with a pause after
    /// each: the head (chunked, `connection: close`) and `first`, then it
    /// waits for [`Misbehaving::release`], then `rest`. Every body byte is a
    /// chunk of its own.
    Trickle {
        /// `content-type` of the response.
        content_type: String,
        /// Body bytes sent before waiting.
        first: Vec<u8>,
        /// Body bytes sent after the release.
        rest: Vec<u8>,
    },
}

impl Behaviour {
    /// An SSE response (chunked) carrying `body`, after which the backend
    /// resets the connection.
    pub fn sse_then_reset(body: &str) -> Behaviour {
        let mut out = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        out.extend(chunk(body.as_bytes()));
        Behaviour::ResetAfter(out)
    }

    /// A JSON response that announces `content-length: 1000`, sends
    /// `partial` and is reset.
    pub fn json_then_reset(partial: &str) -> Behaviour {
        let mut out =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n"
                .to_vec();
        out.extend_from_slice(partial.as_bytes());
        Behaviour::ResetAfter(out)
    }
}

/// `data` as one HTTP/1.1 chunk.
pub fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

struct Shared {
    behaviour: Behaviour,
    pause: Duration,
    connections: AtomicUsize,
    requests: AtomicUsize,
    release: Semaphore,
    finished: AtomicUsize,
}

/// A backend on a free loopback port. Dropping it closes the listener and
/// every connection.
pub struct Misbehaving {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _server: JoinSet<()>,
}

impl Misbehaving {
    /// Starts a backend that behaves as told.
    pub async fn start(behaviour: Behaviour) -> Misbehaving {
        Self::start_with_pause(behaviour, Duration::from_millis(1)).await
    }

    /// Like [`Misbehaving::start`]; a [`Behaviour::Trickle`] waits `pause`
    /// after every byte.
    pub async fn start_with_pause(behaviour: Behaviour, pause: Duration) -> Misbehaving {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr = listener.local_addr().expect("its address");
        let shared = Arc::new(Shared {
            behaviour,
            pause,
            connections: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            release: Semaphore::new(0),
            finished: AtomicUsize::new(0),
        });
        let mut server = JoinSet::new();
        server.spawn(accept_loop(listener, shared.clone()));
        Misbehaving {
            addr,
            shared,
            _server: server,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Requests read completely so far.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Lets one waiting (or future) trickling response send its rest.
    pub fn release(&self) {
        self.shared.release.add_permits(1);
    }

    /// Trickling responses sent to their last byte.
    pub fn finished(&self) -> usize {
        self.shared.finished.load(Ordering::SeqCst)
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let shared = shared.clone();
        conns.spawn(async move {
            let _ = serve(stream, shared).await;
        });
        while conns.try_join_next().is_some() {}
    }
}

/// Reads one request: the head, then a `content-length` or chunked body.
/// `Ok(false)`: the peer closed before a whole request came.
async fn read_request(stream: &mut TcpStream) -> std::io::Result<bool> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut tmp).await?;
        if n == 0 {
            return Ok(false);
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let chunked = head
        .lines()
        .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
    loop {
        let body = &buf[head_end..];
        let done = match (length, chunked) {
            (Some(n), _) => body.len() >= n,
            (None, true) => {
                body.starts_with(b"0\r\n\r\n") || find(body, b"\r\n0\r\n\r\n").is_some()
            }
            (None, false) => true,
        };
        if done {
            return Ok(true);
        }
        let n = stream.read(&mut tmp).await?;
        if n == 0 {
            return Ok(false);
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn serve(mut stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    // One request per connection: every behaviour ends the connection.
    if !read_request(&mut stream).await? {
        return Ok(());
    }
    shared.requests.fetch_add(1, Ordering::SeqCst);
    match &shared.behaviour {
        Behaviour::Silent => {
            // Hold the connection; drain whatever else comes.
            let mut sink = [0u8; 1024];
            while stream.read(&mut sink).await? > 0 {}
            Ok(())
        }
        Behaviour::ResetAfter(bytes) => {
            stream.write_all(bytes).await?;
            stream.flush().await?;
            // Let the bytes leave before the reset overtakes them.
            tokio::time::sleep(Duration::from_millis(50)).await;
            stream.set_zero_linger()?;
            drop(stream);
            Ok(())
        }
        Behaviour::Garbage => {
            stream
                .write_all(b"\x00\x01\x02 this is not HTTP \xff\xfe\r\n\r\n")
                .await?;
            stream.shutdown().await?;
            Ok(())
        }
        Behaviour::OversizedHeader(n) => {
            let mut out = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-huge: ".to_vec();
            out.extend(std::iter::repeat_n(b'a', *n));
            out.extend_from_slice(b"\r\ncontent-length: 2\r\n\r\n{}");
            // The gateway may hang up once it has seen enough.
            let _ = stream.write_all(&out).await;
            let _ = stream.shutdown().await;
            Ok(())
        }
        Behaviour::ManyHeaders(n) => {
            let mut out = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n".to_vec();
            for i in 0..*n {
                out.extend(format!("x-h{i}: {i}\r\n").into_bytes());
            }
            out.extend_from_slice(b"content-length: 2\r\n\r\n{}");
            let _ = stream.write_all(&out).await;
            let _ = stream.shutdown().await;
            Ok(())
        }
        Behaviour::Trickle {
            content_type,
            first,
            rest,
        } => {
            let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
                );
            trickle(&mut stream, head.as_bytes(), shared.pause).await?;
            for b in first {
                trickle(&mut stream, &chunk(&[*b]), shared.pause).await?;
            }
            shared
                .release
                .acquire()
                .await
                .map_err(std::io::Error::other)?
                .forget();
            for b in rest {
                trickle(&mut stream, &chunk(&[*b]), shared.pause).await?;
            }
            trickle(&mut stream, b"0\r\n\r\n", shared.pause).await?;
            shared.finished.fetch_add(1, Ordering::SeqCst);
            stream.shutdown().await?;
            Ok(())
        }
    }
}

/// Writes `bytes` one per write, pausing after each.
async fn trickle(stream: &mut TcpStream, bytes: &[u8], pause: Duration) -> std::io::Result<()> {
    for b in bytes {
        stream.write_all(std::slice::from_ref(b)).await?;
        stream.flush().await?;
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    Ok(())
}
