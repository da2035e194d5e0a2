//! Gateway set-up: the `serve --json` line, an access token, the echo
//! agent's limit raised, and a burst to check the limit is out of the way.

use super::*;

#[derive(Deserialize)]
pub(crate) struct ServeInfo {
    pub(crate) gateway_url: String,
    pub(crate) token_url: String,
    #[serde(default)]
    pub(crate) data_dir: PathBuf,
    pub(crate) agents: Vec<AgentInfo>,
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
}

#[derive(Deserialize)]
pub(crate) struct AgentInfo {
    pub(crate) id: String,
    pub(crate) url: String,
}

/// A small one-shot HTTP/1.1 POST (set-up only, not on the measured path).
pub(crate) async fn post_once(
    uri: &Uri,
    headers: &[(HeaderName, String)],
    body: String,
) -> Result<(StatusCode, Bytes)> {
    let target = Target::new("setup", uri, uri.path(), None)?;
    let mut conn = connect(target.addr)
        .await
        .map_err(|e| anyhow!("{}", e.detail))?;
    let mut req = Request::post(target.path.clone()).header(HOST, target.authority.clone());
    for (name, value) in headers {
        req = req.header(name, value);
    }
    let resp = conn
        .send_request(req.body(Full::new(Bytes::from(body)))?)
        .await?;
    let status = resp.status();
    Ok((status, resp.into_body().collect().await?.to_bytes()))
}

pub(crate) async fn fetch_token(info: &ServeInfo) -> Result<String> {
    #[derive(Deserialize)]
    struct TokenReply {
        access_token: String,
    }
    let uri: Uri = info
        .token_url
        .parse()
        .with_context(|| format!("token_url {}", info.token_url))?;
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", info.client_id, info.client_secret));
    let (status, body) = post_once(
        &uri,
        &[
            (AUTHORIZATION, format!("Basic {basic}")),
            (CONTENT_TYPE, "application/x-www-form-urlencoded".to_owned()),
        ],
        format!(
            "grant_type=client_credentials&scope={}",
            ECHO_SCOPE.replace('/', "%2F")
        ),
    )
    .await
    .with_context(|| format!("POST {uri}"))?;
    if status != StatusCode::OK {
        bail!("POST {uri}: HTTP {status}: {}", snippet(&body));
    }
    let reply: TokenReply = serde_json::from_slice(&body)
        .with_context(|| format!("POST {uri}: unexpected reply {}", snippet(&body)))?;
    Ok(reply.access_token)
}

pub(crate) fn raise_limit(bin: &Path, data_dir: &Path) -> Result<()> {
    eprintln!("raising the `{ECHO_AGENT}` agent's rate limit to {RAISED_LIMIT}/min");
    let out = Command::new(bin)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["agents", "edit", ECHO_AGENT, "--limit", RAISED_LIMIT])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "`switchboard --data-dir {} agents edit {ECHO_AGENT} --limit {RAISED_LIMIT}` failed ({}):\n{}{}",
            data_dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A burst through the gateway must not be rate limited (the registry edit is
/// picked up within about a second, so retry for a few seconds first).
pub(crate) async fn check_burst(gateway: &Arc<Target>) -> Result<()> {
    const BURST: u64 = 600;
    const CONNS: u64 = 12;
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        let mut workers = JoinSet::new();
        for w in 0..CONNS {
            let target = gateway.clone();
            workers.spawn(async move {
                let mut stats = Stats::new()?;
                let mut conn = connect(target.addr)
                    .await
                    .map_err(|e| anyhow!("{}: {}", e.kind, e.detail))?;
                for i in 0..BURST / CONNS {
                    let start = Instant::now();
                    match send_one(&mut conn, &target, (w << 40) + i).await {
                        Ok(()) => stats.ok(start.elapsed()),
                        Err(e) => {
                            let broken = e.broken;
                            stats.error(e);
                            if broken {
                                break;
                            }
                        }
                    }
                }
                anyhow::Ok(stats)
            });
        }
        let mut stats = Stats::new()?;
        while let Some(w) = workers.join_next().await {
            stats.merge(w??)?;
        }
        let limited = stats.errors.get("HTTP 429").map_or(0, |(n, _)| *n);
        if stats.errors() == 0 {
            eprintln!(
                "burst check: {} requests through the gateway, none rate limited",
                stats.successes()
            );
            return Ok(());
        }
        if limited > 0 && limited == stats.errors() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(400)).await;
            continue;
        }
        let mut why = String::new();
        for (kind, (n, detail)) in &stats.errors {
            let _ = writeln!(why, "  {n} x {kind}: {detail}");
        }
        if limited > 0 {
            bail!(
                "!!! THE GATEWAY STILL RATE LIMITS the `{ECHO_AGENT}` agent after `agents edit --limit {RAISED_LIMIT}`: \
                 {limited} of {BURST} burst requests got 429; the numbers would be meaningless.\n{why}"
            );
        }
        bail!("burst through the gateway failed:\n{why}");
    }
}
