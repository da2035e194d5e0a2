//! A raw-socket HTTP/1.1 client, for requests an ordinary client would
//! normalise or refuse to send: `..` and `%2e%2e` in paths, duplicate or
//! malformed headers, CR/LF tricks, conflicting framing, huge heads, bodies
//! sent in pieces on purpose.
//!
//! [`RawRequest`] writes exactly the bytes it is given (it adds a `Host` and
//! a `Content-Length` only when asked to, see [`RawRequest::new`]).
//! [`RawConnection`] reads responses with their real framing
//! (`Content-Length`, chunked, or until the server closes) and keeps the
//! interim `1xx` responses it saw on the way.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Most bytes a response head may take before it is called malformed.
const MAX_HEAD: usize = 64 * 1024;
/// Most header lines parsed in one response head.
const MAX_HEADERS: usize = 128;

/// How a request's body is framed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Framing {
    /// Add `Content-Length: {len}` (only when there is a body).
    Auto,
    /// Add nothing: the caller's own header lines say how (or lie about it).
    AsWritten,
}

/// One request, byte for byte.
#[derive(Debug, Clone)]
pub struct RawRequest {
    request_line: Vec<u8>,
    host: Option<Vec<u8>>,
    lines: Vec<Vec<u8>>,
    body: Vec<u8>,
    framing: Framing,
}

impl RawRequest {
    /// `{method} {target} HTTP/1.1`. Unless told otherwise, a `Host` line
    /// naming the address sent to is written first, and a body gets a
    /// `Content-Length`.
    pub fn new(method: &str, target: impl AsRef<[u8]>) -> Self {
        let mut line = Vec::new();
        line.extend_from_slice(method.as_bytes());
        line.push(b' ');
        line.extend_from_slice(target.as_ref());
        line.extend_from_slice(b" HTTP/1.1");
        RawRequest::with_request_line(line)
    }

    /// A request whose first line is exactly `line` (without its CRLF).
    pub fn with_request_line(line: impl Into<Vec<u8>>) -> Self {
        RawRequest {
            request_line: line.into(),
            host: Some(Vec::new()),
            lines: Vec::new(),
            body: Vec::new(),
            framing: Framing::Auto,
        }
    }

    /// `name: value` as given; nothing is checked or escaped.
    pub fn header(mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        let mut line = name.as_ref().to_vec();
        line.extend_from_slice(b": ");
        line.extend_from_slice(value.as_ref());
        self.lines.push(line);
        self
    }

    /// A whole header line as given (a CRLF is added after it).
    pub fn line(mut self, raw: impl AsRef<[u8]>) -> Self {
        self.lines.push(raw.as_ref().to_vec());
        self
    }

    /// `Host: {value}` instead of the address sent to.
    pub fn host(mut self, value: impl AsRef<[u8]>) -> Self {
        self.host = Some(value.as_ref().to_vec());
        self
    }

    /// No `Host` line at all.
    pub fn no_host(mut self) -> Self {
        self.host = None;
        self
    }

    /// The body, sent after the head.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The body in `Transfer-Encoding: chunked` framing, one chunk per item
    /// (the header line is added, `Content-Length` is not).
    pub fn chunked<I, C>(mut self, chunks: I) -> Self
    where
        I: IntoIterator<Item = C>,
        C: AsRef<[u8]>,
    {
        let mut body = Vec::new();
        for c in chunks {
            let c = c.as_ref();
            if c.is_empty() {
                continue;
            }
            body.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            body.extend_from_slice(c);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"0\r\n\r\n");
        self.body = body;
        self.framing = Framing::AsWritten;
        self.header("Transfer-Encoding", "chunked")
    }

    /// Do not add `Content-Length`: the header lines given frame the body
    /// (or deliberately misframe it).
    pub fn framed_as_written(mut self) -> Self {
        self.framing = Framing::AsWritten;
        self
    }

    /// The head: request line, header lines and the blank line.
    pub fn head_bytes(&self, addr: SocketAddr) -> Vec<u8> {
        let mut out = self.request_line.clone();
        out.extend_from_slice(b"\r\n");
        match &self.host {
            Some(h) if h.is_empty() => {
                out.extend_from_slice(format!("Host: {addr}\r\n").as_bytes());
            }
            Some(h) => {
                out.extend_from_slice(b"Host: ");
                out.extend_from_slice(h);
                out.extend_from_slice(b"\r\n");
            }
            None => {}
        }
        for l in &self.lines {
            out.extend_from_slice(l);
            out.extend_from_slice(b"\r\n");
        }
        if self.framing == Framing::Auto && !self.body.is_empty() {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// The body bytes as they go on the wire.
    pub fn body_bytes(&self) -> &[u8] {
        &self.body
    }

    /// Head and body.
    pub fn to_bytes(&self, addr: SocketAddr) -> Vec<u8> {
        let mut out = self.head_bytes(addr);
        out.extend_from_slice(&self.body);
        out
    }
}

/// One response as read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Header lines in order, names lowercased, values as bytes.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// Status codes of interim (1xx) responses that came before this one.
    pub interim: Vec<u16>,
}

impl RawResponse {
    /// The first value of `name` (case-insensitive), if it is UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// Every value of `name`.
    pub fn header_all(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One connection to a server.
pub struct RawConnection {
    stream: TcpStream,
    addr: SocketAddr,
    buf: Vec<u8>,
    closed: bool,
}

/// What went wrong talking to the server.
#[derive(Debug)]
pub enum RawError {
    /// The socket failed (reset, refused…).
    Io(std::io::Error),
    /// Nothing (complete) came back in time.
    Timeout,
    /// The server closed the connection before a complete response.
    Closed {
        /// Bytes received before it did.
        received: Vec<u8>,
    },
    /// The server sent something that is not an HTTP/1.1 response.
    Malformed(String),
}

impl std::fmt::Display for RawError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RawError::Io(e) => write!(f, "socket error: {e}"),
            RawError::Timeout => f.write_str("no response in time"),
            RawError::Closed { received } => write!(
                f,
                "connection closed after {} bytes: {:?}",
                received.len(),
                String::from_utf8_lossy(&received[..received.len().min(200)])
            ),
            RawError::Malformed(m) => write!(f, "malformed response: {m}"),
        }
    }
}

impl std::error::Error for RawError {}

impl From<std::io::Error> for RawError {
    fn from(e: std::io::Error) -> Self {
        RawError::Io(e)
    }
}

impl RawConnection {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> Result<RawConnection, RawError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(RawConnection {
            stream,
            addr,
            buf: Vec::new(),
            closed: false,
        })
    }

    /// The address connected to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Writes bytes as they are.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), RawError> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Writes a whole request.
    pub async fn send(&mut self, req: &RawRequest) -> Result<(), RawError> {
        let bytes = req.to_bytes(self.addr);
        self.write(&bytes).await
    }

    /// Whether the server has closed its side (seen while reading).
    pub fn server_closed(&self) -> bool {
        self.closed
    }

    async fn fill(&mut self) -> Result<usize, RawError> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            self.closed = true;
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads the next final response (interim 1xx ones are collected on
    /// the way), waiting at most `timeout` in all. A response to `HEAD`
    /// has no body: pass `head_request`.
    pub async fn read_response(
        &mut self,
        timeout: Duration,
        head_request: bool,
    ) -> Result<RawResponse, RawError> {
        match tokio::time::timeout(timeout, self.read_response_inner(head_request)).await {
            Ok(r) => r,
            Err(_) => Err(RawError::Timeout),
        }
    }

    /// Reads only the next response head (interim ones included), leaving
    /// its body unread. For checking that an answer comes before the
    /// request is finished.
    pub async fn read_head(&mut self, timeout: Duration) -> Result<RawResponse, RawError> {
        let fut = async {
            let mut interim = Vec::new();
            loop {
                let (status, headers, _) = self.head().await?;
                if (100..200).contains(&status) {
                    interim.push(status);
                    continue;
                }
                return Ok(RawResponse {
                    status,
                    headers,
                    body: Vec::new(),
                    interim,
                });
            }
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(RawError::Timeout),
        }
    }

    async fn read_response_inner(&mut self, head_request: bool) -> Result<RawResponse, RawError> {
        let mut interim = Vec::new();
        loop {
            let (status, headers, _) = self.head().await?;
            if (100..200).contains(&status) && status != 101 {
                interim.push(status);
                continue;
            }
            let no_body = head_request || status == 204 || status == 304 || status == 101;
            let body = if no_body {
                Vec::new()
            } else {
                self.body(&headers).await?
            };
            return Ok(RawResponse {
                status,
                headers,
                body,
                interim,
            });
        }
    }

    /// Reads and removes one response head from the buffer.
    async fn head(&mut self) -> Result<(u16, Vec<(String, Vec<u8>)>, usize), RawError> {
        loop {
            let parsed = {
                let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut resp = httparse::Response::new(&mut slots);
                match resp.parse(&self.buf) {
                    Ok(httparse::Status::Complete(len)) => {
                        let headers = resp
                            .headers
                            .iter()
                            .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
                            .collect::<Vec<_>>();
                        Some((resp.code.unwrap_or(0), headers, len))
                    }
                    Ok(httparse::Status::Partial) => None,
                    Err(e) => return Err(RawError::Malformed(e.to_string())),
                }
            };
            if let Some((status, headers, len)) = parsed {
                self.buf.drain(..len);
                return Ok((status, headers, len));
            }
            if self.buf.len() > MAX_HEAD {
                return Err(RawError::Malformed("response head too large".into()));
            }
            if self.closed || self.fill().await? == 0 {
                return Err(RawError::Closed {
                    received: std::mem::take(&mut self.buf),
                });
            }
        }
    }

    async fn body(&mut self, headers: &[(String, Vec<u8>)]) -> Result<Vec<u8>, RawError> {
        let value = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| String::from_utf8_lossy(v).trim().to_ascii_lowercase())
        };
        if value("transfer-encoding").is_some_and(|te| te.ends_with("chunked")) {
            return self.chunked_body().await;
        }
        if let Some(len) = value("content-length") {
            let len: usize = len
                .parse()
                .map_err(|_| RawError::Malformed(format!("content-length {len:?}")))?;
            while self.buf.len() < len {
                if self.closed || self.fill().await? == 0 {
                    return Err(RawError::Closed {
                        received: std::mem::take(&mut self.buf),
                    });
                }
            }
            return Ok(self.buf.drain(..len).collect());
        }
        // Delimited by the server closing the connection.
        while !self.closed {
            self.fill().await?;
        }
        Ok(std::mem::take(&mut self.buf))
    }

    async fn line(&mut self) -> Result<Vec<u8>, RawError> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf[..i].to_vec();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            if self.closed || self.fill().await? == 0 {
                return Err(RawError::Closed {
                    received: std::mem::take(&mut self.buf),
                });
            }
        }
    }

    async fn chunked_body(&mut self) -> Result<Vec<u8>, RawError> {
        let mut body = Vec::new();
        loop {
            let line = self.line().await?;
            let text = String::from_utf8_lossy(&line);
            let size_text = text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| RawError::Malformed(format!("chunk size {text:?}")))?;
            if size == 0 {
                // Trailers, then the blank line.
                while !self.line().await?.is_empty() {}
                return Ok(body);
            }
            while self.buf.len() < size + 2 {
                if self.closed || self.fill().await? == 0 {
                    return Err(RawError::Closed {
                        received: std::mem::take(&mut self.buf),
                    });
                }
            }
            body.extend(self.buf.drain(..size));
            if self.buf.drain(..2).as_slice() != b"\r\n" {
                return Err(RawError::Malformed("chunk not followed by CRLF".into()));
            }
        }
    }
}

/// Sends one request on a new connection and reads its response.
pub async fn send(
    addr: SocketAddr,
    req: &RawRequest,
    timeout: Duration,
) -> Result<RawResponse, RawError> {
    let mut conn = RawConnection::connect(addr).await?;
    let head_request = req.request_line.starts_with(b"HEAD ");
    conn.send(req).await?;
    conn.read_response(timeout, head_request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_exactly_what_it_is_given() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let req = RawRequest::new("POST", "/a/%2e%2e/b")
            .header("X-Dup", "1")
            .header("X-Dup", "2")
            .line("X-Raw:\tvalue ")
            .body("{}");
        assert_eq!(
            String::from_utf8(req.to_bytes(addr)).unwrap(),
            "POST /a/%2e%2e/b HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-Dup: 1\r\nX-Dup: 2\r\nX-Raw:\tvalue \r\nContent-Length: 2\r\n\r\n{}"
        );
        let req = RawRequest::new("POST", "/")
            .no_host()
            .chunked(["ab", "", "cde"]);
        assert_eq!(
            String::from_utf8(req.to_bytes(addr)).unwrap(),
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn reads_interim_chunked_and_length_framed_responses() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nTrailer: x\r\n\r\nHTTP/1.1 413 Payload Too Large\r\nContent-Length: 2\r\n\r\nnoHTTP/1.1 400 Bad Request\r\n\r\nbye",
            )
            .await
            .unwrap();
        });
        let mut conn = RawConnection::connect(addr).await.unwrap();
        conn.send(&RawRequest::new("GET", "/")).await.unwrap();
        let t = Duration::from_secs(5);
        let r = conn.read_response(t, false).await.unwrap();
        assert_eq!((r.status, r.interim.clone()), (200, vec![100]));
        assert_eq!(r.body, b"abcde");
        assert_eq!(r.header("x-a"), Some("1"));
        let r = conn.read_response(t, false).await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (413, &b"no"[..]));
        let r = conn.read_response(t, false).await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (400, &b"bye"[..]));
        assert!(conn.server_closed());
    }
}
