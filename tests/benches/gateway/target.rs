//! Targets (direct, gateway, nginx) and single `SendMessage` requests over
//! keep-alive HTTP/1.1 connections.

use super::*;

pub(crate) struct Target {
    pub(crate) name: &'static str,
    pub(crate) addr: SocketAddr,
    pub(crate) authority: HeaderValue,
    pub(crate) path: Uri,
    pub(crate) auth: Option<HeaderValue>,
}

impl Target {
    pub(crate) fn new(
        name: &'static str,
        base: &Uri,
        path: &str,
        auth: Option<&str>,
    ) -> Result<Self> {
        if base.scheme_str() != Some("http") {
            bail!("{name}: only plain http:// URLs are supported, got {base}");
        }
        let authority = base
            .authority()
            .ok_or_else(|| anyhow!("{name}: URL without a host: {base}"))?;
        let port = authority.port_u16().unwrap_or(80);
        let addr = (authority.host().trim_matches(['[', ']']), port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| anyhow!("{name}: {authority} does not resolve"))?;
        let path = if path.is_empty() { "/" } else { path };
        Ok(Target {
            name,
            addr,
            authority: HeaderValue::from_str(authority.as_str())?,
            path: path.parse()?,
            auth: auth.map(HeaderValue::from_str).transpose()?,
        })
    }

    pub(crate) fn request(&self, id: u64) -> Result<Request<Full<Bytes>>, ReqError> {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"SendMessage","params":{{"message":{{"role":"ROLE_USER","messageId":"{}","parts":[{{"text":"hello"}}]}}}}}}"#,
            uuid::Uuid::new_v4()
        );
        let mut req = Request::post(self.path.clone())
            .header(HOST, self.authority.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(A2A_VERSION, HeaderValue::from_static("1.0"));
        if let Some(auth) = &self.auth {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        req.body(Full::new(Bytes::from(body)))
            .map_err(|e| ReqError::other("request", e.to_string()))
    }
}

pub(crate) type Conn = SendRequest<Full<Bytes>>;

pub(crate) async fn connect(addr: SocketAddr) -> Result<Conn, ReqError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| ReqError::conn(format!("connect {addr}: {e}")))?;
    stream
        .set_nodelay(true)
        .map_err(|e| ReqError::conn(e.to_string()))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ReqError::conn(format!("handshake: {e}")))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// A request that did not end in a 200 with a JSON-RPC result.
#[derive(Debug)]
pub(crate) struct ReqError {
    /// Short class for the table: `connection`, `HTTP 429`, `JSON-RPC error`...
    pub(crate) kind: String,
    pub(crate) detail: String,
    /// The connection can't be reused.
    pub(crate) broken: bool,
}

impl ReqError {
    pub(crate) fn conn(detail: String) -> Self {
        ReqError {
            kind: "connection".into(),
            detail,
            broken: true,
        }
    }
    pub(crate) fn other(kind: &str, detail: String) -> Self {
        ReqError {
            kind: kind.into(),
            detail,
            broken: false,
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct RpcReply {
    #[serde(default)]
    pub(crate) result: Option<IgnoredAny>,
    #[serde(default)]
    pub(crate) error: Option<serde_json::Value>,
}

pub(crate) async fn send_one(conn: &mut Conn, target: &Target, id: u64) -> Result<(), ReqError> {
    let req = target.request(id)?;
    conn.ready()
        .await
        .map_err(|e| ReqError::conn(format!("connection not ready: {e}")))?;
    let resp = conn
        .send_request(req)
        .await
        .map_err(|e| ReqError::conn(format!("send: {e}")))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| ReqError::conn(format!("reading body: {e}")))?
        .to_bytes();
    if status != StatusCode::OK {
        return Err(ReqError::other(
            &format!("HTTP {}", status.as_u16()),
            snippet(&body),
        ));
    }
    let reply: RpcReply = serde_json::from_slice(&body)
        .map_err(|e| ReqError::other("bad body", format!("{e}: {}", snippet(&body))))?;
    if let Some(err) = reply.error {
        return Err(ReqError::other("JSON-RPC error", err.to_string()));
    }
    if reply.result.is_none() {
        return Err(ReqError::other(
            "bad body",
            format!("no `result`: {}", snippet(&body)),
        ));
    }
    Ok(())
}

pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// One request on a fresh connection; the error says what went wrong.
pub(crate) async fn probe(target: &Target) -> Result<()> {
    let mut conn = connect(target.addr)
        .await
        .map_err(|e| anyhow!("{}: {}", e.kind, e.detail))?;
    send_one(&mut conn, target, 0)
        .await
        .map_err(|e| anyhow!("{}: {}", e.kind, e.detail))
}
