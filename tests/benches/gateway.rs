//! Gateway benchmark (not a test): how much the gateway costs on the hot path.
//!
//! One run, all on loopback:
//!
//! * **Throughput** — A2A 1.0 `SendMessage` JSON-RPC posts to the echo sample
//!   agent, closed loop over N keep-alive connections (default 64), three ways:
//!   direct to the agent, through the gateway (`POST /agents/echo` with a
//!   bearer token), and through nginx `proxy_pass` as a reference proxy.
//! * **Added latency** — open loop at a fixed rate (default 1,000 req/s),
//!   direct vs. gateway; the difference of the percentiles is what the gateway
//!   adds.
//!
//! The stack is the real binary: `switchboard serve --listen 127.0.0.1:0
//! --json --data-dir <tmp>`, which prints one JSON line describing itself.
//! `--self-test` swaps it for a tiny in-process server, to check the harness.
//!
//! Run it with `tests/bench` (installs nginx, builds the release binary) or
//! `cargo bench -p switchboard-tests --bench gateway -- --help`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read as _};
use std::net::{SocketAddr, TcpListener as StdTcpListener, ToSocketAddrs};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use base64::Engine as _;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderName, HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::de::IgnoredAny;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

const USAGE: &str = "\
gateway benchmark: SendMessage throughput (direct / gateway / nginx) and added latency

usage: cargo bench -p switchboard-tests --bench gateway -- [options]
       tests/bench [options]

options (environment variable in brackets):
  --duration SECS          measured time of each throughput run [BENCH_DURATION] (10)
  --warmup SECS            warm-up before each run, not measured [BENCH_WARMUP] (2)
  --connections N          concurrent keep-alive connections, closed loop [BENCH_CONNECTIONS] (64)
  --rate N                 open-loop rate for the latency runs, req/s [BENCH_RATE] (1000)
  --latency-duration SECS  measured time of each latency run [BENCH_LATENCY_DURATION] (10)
  --client-threads N       load-generator threads; 1 = one current-thread runtime [BENCH_CLIENT_THREADS] (1)
  --rounds N               throughput rounds, each running every target once (in rotating order);
                           the report shows each target's median round [BENCH_ROUNDS] (3)
  --bin PATH               the switchboard binary [SWITCHBOARD_BIN]
                           (default: `switchboard` next to this benchmark's target dir)
  --nginx PATH             the nginx binary [NGINX_BIN] (default: from PATH or /usr/sbin)
  --self-test              benchmark a tiny in-process server instead of `switchboard serve`
  -h, --help               this text

targets: added latency p50 <= 0.2 ms and p99 <= 1 ms; gateway/nginx throughput >= 1.0x.
exit status: 0 = clean run (targets missed or not), 1 = request errors, 2 = the benchmark failed.
";

const ECHO_AGENT: &str = "echo";
const ECHO_SCOPE: &str = "switchboard/echo";
const RAISED_LIMIT: &str = "100000000";
const TARGET_ADDED_P50_MS: f64 = 0.2;
const TARGET_ADDED_P99_MS: f64 = 1.0;
const TARGET_GATEWAY_VS_NGINX: f64 = 1.0;
/// Connections kept ready for the open-loop runs (they grow if ever exhausted).
const OPEN_LOOP_POOL: usize = 16;
const A2A_VERSION: HeaderName = HeaderName::from_static("a2a-version");

fn main() -> ExitCode {
    let cfg = match Config::from_env_and_args() {
        Ok(Some(cfg)) => cfg,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e:#}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&cfg) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("\nBENCHMARK FAILED: {e:#}");
            ExitCode::from(2)
        }
    }
}

// ---------------------------------------------------------------------------
// configuration

#[derive(Debug, Clone)]
struct Config {
    duration: Duration,
    warmup: Duration,
    connections: usize,
    rate: u64,
    latency_duration: Duration,
    client_threads: usize,
    rounds: usize,
    bin: Option<PathBuf>,
    nginx: Option<PathBuf>,
    self_test: bool,
}

impl Config {
    /// `Ok(None)` means `--help`.
    fn from_env_and_args() -> Result<Option<Self>> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut cfg = Config {
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            connections: 64,
            rate: 1000,
            latency_duration: Duration::from_secs(10),
            client_threads: 1,
            rounds: 3,
            bin: env("SWITCHBOARD_BIN").map(PathBuf::from),
            nginx: env("NGINX_BIN").map(PathBuf::from),
            self_test: false,
        };
        let settings: [(&str, &str); 7] = [
            ("--duration", "BENCH_DURATION"),
            ("--warmup", "BENCH_WARMUP"),
            ("--connections", "BENCH_CONNECTIONS"),
            ("--rate", "BENCH_RATE"),
            ("--latency-duration", "BENCH_LATENCY_DURATION"),
            ("--client-threads", "BENCH_CLIENT_THREADS"),
            ("--rounds", "BENCH_ROUNDS"),
        ];
        for (flag, var) in settings {
            if let Some(v) = env(var) {
                cfg.set(flag, &v).with_context(|| format!("{var}={v}"))?;
            }
        }
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
                _ => (arg.clone(), None),
            };
            match flag.as_str() {
                // `cargo bench` passes this to every bench target.
                "--bench" => {}
                "-h" | "--help" => return Ok(None),
                "--self-test" => cfg.self_test = true,
                "--duration" | "--warmup" | "--connections" | "--rate" | "--latency-duration"
                | "--client-threads" | "--rounds" | "--bin" | "--nginx" => {
                    let value = match inline {
                        Some(v) => v,
                        None => args.next().ok_or_else(|| anyhow!("{flag} needs a value"))?,
                    };
                    cfg.set(&flag, &value)
                        .with_context(|| format!("{flag} {value}"))?;
                }
                other => bail!("unknown argument `{other}`"),
            }
        }
        Ok(Some(cfg))
    }

    fn set(&mut self, flag: &str, value: &str) -> Result<()> {
        let secs = |v: &str| -> Result<Duration> {
            let s: f64 = v.parse().context("expected seconds")?;
            if !(s.is_finite() && s >= 0.0) {
                bail!("expected a non-negative number of seconds");
            }
            Ok(Duration::from_secs_f64(s))
        };
        let positive = |v: &str| -> Result<u64> {
            let n: u64 = v.parse().context("expected a positive integer")?;
            if n == 0 {
                bail!("expected a positive integer");
            }
            Ok(n)
        };
        match flag {
            "--duration" => self.duration = secs(value)?,
            "--warmup" => self.warmup = secs(value)?,
            "--latency-duration" => self.latency_duration = secs(value)?,
            "--connections" => self.connections = usize::try_from(positive(value)?)?,
            "--rate" => self.rate = positive(value)?,
            "--client-threads" => self.client_threads = usize::try_from(positive(value)?)?,
            "--rounds" => self.rounds = usize::try_from(positive(value)?)?,
            "--bin" => self.bin = Some(PathBuf::from(value)),
            "--nginx" => self.nginx = Some(PathBuf::from(value)),
            _ => bail!("unknown setting {flag}"),
        }
        if self.duration.is_zero() || self.latency_duration.is_zero() {
            bail!("durations must be > 0");
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// the whole run

/// Returns the number of request errors seen (0 = clean).
fn run(cfg: &Config) -> Result<u64> {
    let tmp = tempfile::Builder::new()
        .prefix("switchboard-bench-")
        .tempdir()
        .context("creating a temp dir")?;
    let rt = if cfg.client_threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cfg.client_threads)
            .enable_all()
            .build()?
    };

    let stack = if cfg.self_test {
        eprintln!("self-test: starting an in-process echo server instead of `switchboard serve`");
        Stack::self_test()?
    } else {
        let bin = switchboard_bin(cfg)?;
        eprintln!("starting {} serve", bin.display());
        Stack::spawn(&bin, tmp.path())?
    };
    let outcome = rt.block_on(bench(cfg, &stack, tmp.path()));
    drop(rt);
    stack.stop();
    outcome
}

async fn bench(cfg: &Config, stack: &Stack, tmp: &Path) -> Result<u64> {
    let info = &stack.info;
    let echo = info
        .agents
        .iter()
        .find(|a| a.id == ECHO_AGENT)
        .ok_or_else(|| anyhow!("`serve --json` lists no agent with id `{ECHO_AGENT}`"))?;
    let echo_uri: Uri = echo
        .url
        .parse()
        .with_context(|| format!("echo agent url {}", echo.url))?;
    let gateway_uri: Uri = info
        .gateway_url
        .parse()
        .with_context(|| format!("gateway_url {}", info.gateway_url))?;

    let token = fetch_token(info)
        .await
        .context("getting an access token from the local issuer")?;

    let direct = Arc::new(Target::new("direct", &echo_uri, echo_uri.path(), None)?);
    let gateway_path = format!(
        "{}/agents/{ECHO_AGENT}",
        gateway_uri.path().trim_end_matches('/')
    );
    let gateway = Arc::new(Target::new(
        "gateway",
        &gateway_uri,
        &gateway_path,
        Some(&format!("Bearer {token}")),
    )?);

    probe(&direct)
        .await
        .with_context(|| format!("the echo agent at {} did not answer SendMessage", echo.url))?;

    if let Some(bin) = &stack.bin {
        raise_limit(bin, &info.data_dir)?;
    }
    check_burst(&gateway).await?;

    let nginx = Nginx::start(cfg, tmp, direct.addr)?;
    let via_nginx = Arc::new(Target::new("nginx", &nginx.uri()?, echo_uri.path(), None)?);
    probe(&via_nginx)
        .await
        .context("nginx did not proxy SendMessage to the echo agent")?;

    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load_before = load_average();
    eprintln!(
        "\n{} connections, closed loop, {} warm-up + {} per target, {} round(s); {} CPUs; load generator: {} thread(s)",
        cfg.connections,
        secs(cfg.warmup),
        secs(cfg.duration),
        cfg.rounds,
        cpus,
        cfg.client_threads
    );

    let meters = Meters {
        serve: stack.pid(),
        nginx: Some(nginx.pid()),
    };
    // Rounds rotate the order, so a slow spell of the machine does not
    // always fall on the same target.
    let targets = [&direct, &gateway, &via_nginx];
    let mut throughput = Vec::new();
    for round in 0..cfg.rounds {
        for k in 0..targets.len() {
            let target = targets[(k + round) % targets.len()];
            eprint!(
                "  throughput: round {}/{} {:<8} ... ",
                round + 1,
                cfg.rounds,
                target.name
            );
            let mut run = closed_loop(target.clone(), cfg, &meters).await?;
            run.round = round;
            eprintln!("{:.0} req/s, {} errors", run.rps(), run.stats.errors());
            throughput.push(run);
        }
    }

    eprintln!(
        "\nadded latency: open loop {} req/s, {} warm-up + {} per target, in alternating 1 s slices",
        cfg.rate,
        secs(cfg.warmup),
        secs(cfg.latency_duration)
    );
    let latency = open_loop(&[direct.clone(), gateway.clone()], cfg, &meters).await?;
    for run in &latency {
        eprintln!(
            "  latency: {:<8} ... p50 {} p99 {}, {} errors",
            run.target,
            ms(run.stats.p(50.0)),
            ms(run.stats.p(99.0)),
            run.stats.errors()
        );
    }
    let nginx_version = nginx_version(&nginx.bin);
    nginx.stop();

    let report = Report {
        cfg,
        cpus,
        nginx_version,
        load_before,
        load_after: load_average(),
        self_test: stack.bin.is_none(),
        throughput: &throughput,
        latency: &latency,
    };
    print!("{}", report.render());
    Ok(report.total_errors())
}

// ---------------------------------------------------------------------------
// targets and single requests

struct Target {
    name: &'static str,
    addr: SocketAddr,
    authority: HeaderValue,
    path: Uri,
    auth: Option<HeaderValue>,
}

impl Target {
    fn new(name: &'static str, base: &Uri, path: &str, auth: Option<&str>) -> Result<Self> {
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

    fn request(&self, id: u64) -> Result<Request<Full<Bytes>>, ReqError> {
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

type Conn = SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Conn, ReqError> {
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
struct ReqError {
    /// Short class for the table: `connection`, `HTTP 429`, `JSON-RPC error`...
    kind: String,
    detail: String,
    /// The connection can't be reused.
    broken: bool,
}

impl ReqError {
    fn conn(detail: String) -> Self {
        ReqError {
            kind: "connection".into(),
            detail,
            broken: true,
        }
    }
    fn other(kind: &str, detail: String) -> Self {
        ReqError {
            kind: kind.into(),
            detail,
            broken: false,
        }
    }
}

#[derive(Deserialize)]
struct RpcReply {
    #[serde(default)]
    result: Option<IgnoredAny>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

async fn send_one(conn: &mut Conn, target: &Target, id: u64) -> Result<(), ReqError> {
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

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// One request on a fresh connection; the error says what went wrong.
async fn probe(target: &Target) -> Result<()> {
    let mut conn = connect(target.addr)
        .await
        .map_err(|e| anyhow!("{}: {}", e.kind, e.detail))?;
    send_one(&mut conn, target, 0)
        .await
        .map_err(|e| anyhow!("{}: {}", e.kind, e.detail))
}

// ---------------------------------------------------------------------------
// statistics

struct Stats {
    /// Latency of successful requests, nanoseconds.
    hist: Histogram<u64>,
    /// Error class → (count, first detail seen).
    errors: BTreeMap<String, (u64, String)>,
    /// TCP connections opened.
    connects: u64,
}

impl Stats {
    fn new() -> Result<Self> {
        Ok(Stats {
            hist: Histogram::new_with_bounds(1, 120_000_000_000, 3)?,
            errors: BTreeMap::new(),
            connects: 0,
        })
    }

    fn ok(&mut self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.hist.saturating_record(ns.max(1));
    }

    fn error(&mut self, e: ReqError) {
        let entry = self.errors.entry(e.kind).or_insert((0, e.detail));
        entry.0 += 1;
    }

    fn merge(&mut self, other: Stats) -> Result<()> {
        self.hist.add(&other.hist)?;
        for (kind, (n, detail)) in other.errors {
            self.errors.entry(kind).or_insert((0, detail)).0 += n;
        }
        self.connects += other.connects;
        Ok(())
    }

    fn successes(&self) -> u64 {
        self.hist.len()
    }

    fn errors(&self) -> u64 {
        self.errors.values().map(|(n, _)| n).sum()
    }

    /// Percentile latency.
    fn p(&self, q: f64) -> Duration {
        Duration::from_nanos(self.hist.value_at_quantile(q / 100.0))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Run {
    target: &'static str,
    /// Which throughput round (0 for the latency runs).
    round: usize,
    stats: Stats,
    measured: Duration,
    cpu: CpuUse,
}

impl Run {
    fn rps(&self) -> f64 {
        self.stats.successes() as f64 / self.measured.as_secs_f64()
    }
}

// ---------------------------------------------------------------------------
// closed loop: N connections, each sends its next request when the last one is answered

async fn closed_loop(target: Arc<Target>, cfg: &Config, meters: &Meters) -> Result<Run> {
    let t0 = Instant::now();
    let measure_start = t0 + cfg.warmup;
    let end = measure_start + cfg.duration;
    let mut workers = JoinSet::new();
    for w in 0..cfg.connections {
        let target = target.clone();
        workers.spawn(closed_worker(target, w as u64, measure_start, end));
    }
    tokio::time::sleep_until(measure_start.into()).await;
    let cpu_start = meters.sample();
    tokio::time::sleep_until(end.into()).await;
    let cpu = meters.sample().since(&cpu_start);
    let mut stats = Stats::new()?;
    while let Some(worker) = workers.join_next().await {
        stats.merge(worker??)?;
    }
    Ok(Run {
        target: target.name,
        round: 0,
        stats,
        measured: cfg.duration,
        cpu,
    })
}

async fn closed_worker(
    target: Arc<Target>,
    worker: u64,
    measure_start: Instant,
    end: Instant,
) -> Result<Stats> {
    let mut stats = Stats::new()?;
    let mut conn: Option<Conn> = None;
    // Ids are unique across workers within a run.
    let mut id = worker << 40;
    loop {
        if Instant::now() >= end {
            break;
        }
        if conn.as_ref().is_none_or(Conn::is_closed) {
            conn = None;
            stats.connects += 1;
            match connect(target.addr).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    stats.error(e);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(sender) = conn.as_mut() else {
            continue;
        };
        id += 1;
        let start = Instant::now();
        let outcome = send_one(sender, &target, id).await;
        let done = Instant::now();
        match outcome {
            Ok(()) => {
                if start >= measure_start && done <= end {
                    stats.ok(done - start);
                }
            }
            Err(e) => {
                if e.broken {
                    conn = None;
                }
                stats.error(e);
            }
        }
    }
    Ok(stats)
}

// ---------------------------------------------------------------------------
// open loop: requests leave on a fixed schedule whether or not earlier ones are done

/// Length of one open-loop slice: the targets take turns slice by slice, so
/// background load on the machine falls on all of them alike.
const SLICE: Duration = Duration::from_secs(1);

struct OpenLoopState {
    target: Arc<Target>,
    pool: Arc<Mutex<Vec<Conn>>>,
    stats: Arc<Mutex<Stats>>,
    measured: Duration,
    cpu: CpuUse,
    next_id: u64,
}

/// Open loop at `cfg.rate` for every target: a warm-up slice each, then
/// alternating slices until each has `cfg.latency_duration` measured.
async fn open_loop(targets: &[Arc<Target>], cfg: &Config, meters: &Meters) -> Result<Vec<Run>> {
    let mut states = Vec::new();
    for target in targets {
        let pool: Arc<Mutex<Vec<Conn>>> = Arc::new(Mutex::new(Vec::new()));
        let stats = Arc::new(Mutex::new(Stats::new()?));
        for _ in 0..OPEN_LOOP_POOL {
            let conn = connect(target.addr)
                .await
                .map_err(|e| anyhow!("{}: {}", e.kind, e.detail))?;
            lock(&pool).push(conn);
            lock(&stats).connects += 1;
        }
        states.push(OpenLoopState {
            target: target.clone(),
            pool,
            stats,
            measured: Duration::ZERO,
            cpu: CpuUse::default(),
            next_id: 1,
        });
    }
    if !cfg.warmup.is_zero() {
        for state in &mut states {
            open_slice(state, cfg.rate, cfg.warmup, None).await?;
        }
    }
    let mut left = cfg.latency_duration;
    while !left.is_zero() {
        let len = left.min(SLICE);
        for state in &mut states {
            open_slice(state, cfg.rate, len, Some(meters)).await?;
        }
        left -= len;
    }
    let mut runs = Vec::new();
    for state in states {
        drop(state.pool);
        let stats = Arc::try_unwrap(state.stats)
            .map_err(|_| anyhow!("open loop: request tasks still hold the stats"))?
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        runs.push(Run {
            target: state.target.name,
            round: 0,
            stats,
            measured: state.measured,
            cpu: state.cpu,
        });
    }
    Ok(runs)
}

/// One slice of `len` at `rate` req/s; measured when `meters` is given.
async fn open_slice(
    state: &mut OpenLoopState,
    rate: u64,
    len: Duration,
    meters: Option<&Meters>,
) -> Result<()> {
    let rate = rate as f64;
    let total = (len.as_secs_f64() * rate).round() as u64;
    let record = meters.is_some();
    let cpu_start = meters.map(Meters::sample);
    let t0 = Instant::now();
    let mut in_flight = JoinSet::new();
    for i in 0..total {
        let scheduled = t0 + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(scheduled.into()).await;
        // Latency runs from the moment the request is dispatched: it includes
        // waiting for a free connection, not the timer's own lateness.
        let dispatched = Instant::now();
        in_flight.spawn(open_request(
            state.target.clone(),
            state.pool.clone(),
            state.stats.clone(),
            state.next_id,
            dispatched,
            record,
        ));
        state.next_id += 1;
        while let Some(done) = in_flight.try_join_next() {
            done?;
        }
    }
    while let Some(done) = in_flight.join_next().await {
        done?;
    }
    if let (Some(meters), Some(start)) = (meters, cpu_start) {
        state.cpu = state.cpu.plus(&meters.sample().since(&start));
        state.measured += len;
    }
    Ok(())
}

async fn open_request(
    target: Arc<Target>,
    pool: Arc<Mutex<Vec<Conn>>>,
    stats: Arc<Mutex<Stats>>,
    id: u64,
    dispatched: Instant,
    record: bool,
) {
    let pooled = {
        let mut pool = lock(&pool);
        loop {
            match pool.pop() {
                Some(c) if c.is_closed() => continue,
                other => break other,
            }
        }
    };
    let mut conn = match pooled {
        Some(c) => c,
        None => {
            lock(&stats).connects += 1;
            match connect(target.addr).await {
                Ok(c) => c,
                Err(e) => {
                    lock(&stats).error(e);
                    return;
                }
            }
        }
    };
    let outcome = send_one(&mut conn, &target, id).await;
    let latency = dispatched.elapsed();
    let reusable = match &outcome {
        Ok(()) => true,
        Err(e) => !e.broken,
    };
    if reusable {
        lock(&pool).push(conn);
    }
    let mut stats = lock(&stats);
    match outcome {
        Ok(()) if record => stats.ok(latency),
        Ok(()) => {}
        Err(e) => stats.error(e),
    }
}

// ---------------------------------------------------------------------------
// gateway set-up: token, rate limit

#[derive(Deserialize)]
struct ServeInfo {
    gateway_url: String,
    token_url: String,
    #[serde(default)]
    data_dir: PathBuf,
    agents: Vec<AgentInfo>,
    client_id: String,
    client_secret: String,
}

#[derive(Deserialize)]
struct AgentInfo {
    id: String,
    url: String,
}

/// A small one-shot HTTP/1.1 POST (set-up only, not on the measured path).
async fn post_once(
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

async fn fetch_token(info: &ServeInfo) -> Result<String> {
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

fn raise_limit(bin: &Path, data_dir: &Path) -> Result<()> {
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
async fn check_burst(gateway: &Arc<Target>) -> Result<()> {
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

// ---------------------------------------------------------------------------
// the stack under test: `switchboard serve` or the in-process self-test server

struct Stack {
    info: ServeInfo,
    /// The switchboard binary (None in self-test mode).
    bin: Option<PathBuf>,
    process: Option<Child>,
    self_test: Option<SelfTestServer>,
}

fn switchboard_bin(cfg: &Config) -> Result<PathBuf> {
    if let Some(bin) = &cfg.bin {
        if !bin.is_file() {
            bail!("SWITCHBOARD_BIN / --bin {} is not a file", bin.display());
        }
        return Ok(bin.clone());
    }
    // This benchmark runs as <target>/release/deps/gateway-<hash>; the binary
    // is <target>/release/switchboard (CARGO_TARGET_DIR is respected for free).
    let exe = std::env::current_exe()?;
    let mut candidates = Vec::new();
    for dir in exe.ancestors().skip(1).take(2) {
        candidates.push(dir.join("switchboard"));
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            anyhow!(
                "switchboard binary not found (looked for {}); run `cargo build --release -p switchboard` \
                 (tests/bench does) or set SWITCHBOARD_BIN",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

impl Stack {
    fn spawn(bin: &Path, tmp: &Path) -> Result<Self> {
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

    fn self_test() -> Result<Self> {
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

    fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Child::id)
    }

    fn stop(mut self) {
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
fn terminate(child: &mut Child, grace: Duration) {
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

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(30);
    lines[from..].join("\n")
}

/// The harness check: an echo agent and a stand-in "gateway" (bearer check,
/// token endpoint) on their own runtime, so `--self-test` runs every code path
/// except `switchboard serve` itself.
struct SelfTestServer {
    echo: SocketAddr,
    gateway: SocketAddr,
    shutdown: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

const SELF_TEST_TOKEN: &str = "self-test-token";

impl SelfTestServer {
    fn start() -> Result<Self> {
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

    fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.thread.join();
    }
}

async fn self_test_echo(body: Bytes) -> axum::response::Response {
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

async fn self_test_gateway(headers: http::HeaderMap, body: Bytes) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let expected = format!("Bearer {SELF_TEST_TOKEN}");
    if headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(expected.as_str())
        || headers.get(&A2A_VERSION).is_none()
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    self_test_echo(body).await
}

async fn self_test_token(headers: http::HeaderMap) -> axum::response::Response {
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

// ---------------------------------------------------------------------------
// nginx as the reference proxy

struct Nginx {
    bin: PathBuf,
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

fn find_nginx(cfg: &Config) -> Result<PathBuf> {
    if let Some(bin) = &cfg.nginx {
        return Ok(bin.clone());
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for extra in [
        "/usr/sbin",
        "/usr/local/sbin",
        "/usr/local/nginx/sbin",
        "/sbin",
    ] {
        dirs.push(PathBuf::from(extra));
    }
    dirs.into_iter()
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!("nginx is not installed: apt-get install nginx-light (tests/bench does this), or set NGINX_BIN")
        })
}

fn nginx_version(bin: &Path) -> String {
    Command::new(bin)
        .arg("-v")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stderr)
                .trim()
                .trim_start_matches("nginx version: ")
                .to_owned()
        })
        .unwrap_or_else(|_| "nginx".into())
}

impl Nginx {
    fn start(cfg: &Config, tmp: &Path, upstream: SocketAddr) -> Result<Self> {
        let bin = find_nginx(cfg)?;
        let dir = tmp.join("nginx");
        std::fs::create_dir_all(&dir)?;
        // Temp paths for every compiled-in module, or nginx tries /var/lib/nginx.
        let built = Command::new(&bin)
            .arg("-V")
            .output()
            .with_context(|| format!("running {} -V", bin.display()))?;
        let built = String::from_utf8_lossy(&built.stderr).into_owned();
        let mut temp_paths = String::new();
        for (module, directive) in [
            ("", "client_body_temp_path"),
            ("proxy", "proxy_temp_path"),
            ("fastcgi", "fastcgi_temp_path"),
            ("uwsgi", "uwsgi_temp_path"),
            ("scgi", "scgi_temp_path"),
        ] {
            if module.is_empty() || !built.contains(&format!("--without-http_{module}_module")) {
                let _ = writeln!(temp_paths, "    {directive} {}/{directive};", dir.display());
            }
        }
        // As root, run the workers as root too: the temp dir is private (0700).
        let user = if std::fs::metadata(&dir)?.uid() == 0 {
            "user root root;\n"
        } else {
            ""
        };
        let port = StdTcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let d = dir.display();
        let conf = format!(
            "\
# Reference proxy for the gateway benchmark: plain proxy_pass, persistent
# connections on both sides, no logging.
{user}worker_processes 2;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
{temp_paths}    keepalive_requests 1000000;
    keepalive_timeout 75s;
    upstream echo_agent {{
        server {upstream};
        keepalive 128;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://echo_agent;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }}
    }}
}}
"
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let log = std::fs::File::create(dir.join("nginx.stderr"))?;
        let child = Command::new(&bin)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf_path)
            .args(["-e", "stderr", "-g", "daemon off; master_process on;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        let mut nginx = Nginx {
            bin,
            child: Some(child),
            port,
            dir,
        };
        nginx.wait_ready()?;
        eprintln!("nginx on 127.0.0.1:{port} → {upstream}");
        Ok(nginx)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    let mut why = String::new();
                    for f in ["nginx.stderr", "error.log"] {
                        if let Ok(mut file) = std::fs::File::open(self.dir.join(f)) {
                            let _ = file.read_to_string(&mut why);
                        }
                    }
                    bail!("nginx exited ({status}) at start-up:\n{why}");
                }
            }
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("nginx did not listen on {addr} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn uri(&self) -> Result<Uri> {
        Ok(format!("http://127.0.0.1:{}", self.port).parse()?)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, Duration::from_secs(5));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, Duration::from_secs(2));
        }
    }
}

// ---------------------------------------------------------------------------
// CPU accounting from /proc: who burns the 2 cores

#[derive(Default, Clone, Copy)]
struct CpuUse {
    client: Duration,
    serve: Duration,
    nginx: Duration,
}

impl CpuUse {
    fn plus(&self, other: &CpuUse) -> CpuUse {
        CpuUse {
            client: self.client + other.client,
            serve: self.serve + other.serve,
            nginx: self.nginx + other.nginx,
        }
    }

    fn since(&self, start: &CpuUse) -> CpuUse {
        CpuUse {
            client: self.client.saturating_sub(start.client),
            serve: self.serve.saturating_sub(start.serve),
            nginx: self.nginx.saturating_sub(start.nginx),
        }
    }
}

struct Meters {
    serve: Option<u32>,
    nginx: Option<u32>,
}

impl Meters {
    fn sample(&self) -> CpuUse {
        CpuUse {
            client: proc_cpu("self"),
            serve: self
                .serve
                .map_or(Duration::ZERO, |p| proc_cpu(&p.to_string())),
            nginx: self.nginx.map_or(Duration::ZERO, process_tree_cpu),
        }
    }
}

/// utime + stime of /proc/<pid>/stat; zero when unreadable.
fn proc_stat(pid: &str) -> Option<(u32, Duration)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // fields[0] is field 3 (state): ppid = field 4, utime = 14, stime = 15.
    let ppid: u32 = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux platform this runs on.
    Some((ppid, Duration::from_millis((utime + stime) * 10)))
}

fn proc_cpu(pid: &str) -> Duration {
    proc_stat(pid).map_or(Duration::ZERO, |(_, cpu)| cpu)
}

/// A process and its direct children (nginx: master + workers).
fn process_tree_cpu(pid: u32) -> Duration {
    let mut total = proc_cpu(&pid.to_string());
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            if let Some((ppid, cpu)) = proc_stat(name) {
                if ppid == pid {
                    total += cpu;
                }
            }
        }
    }
    total
}

/// The 1-minute load average, from /proc/loadavg.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------
// the report

struct Report<'a> {
    cfg: &'a Config,
    cpus: usize,
    nginx_version: String,
    /// 1-minute load average before and after the runs.
    load_before: Option<f64>,
    load_after: Option<f64>,
    self_test: bool,
    throughput: &'a [Run],
    latency: &'a [Run],
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

/// CPU microseconds per successful request.
fn per_req(cpu: Duration, n: u64) -> String {
    if n == 0 || cpu.is_zero() {
        "-".into()
    } else {
        format!("{:.0}", cpu.as_secs_f64() * 1e6 / n as f64)
    }
}

impl Report<'_> {
    fn total_errors(&self) -> u64 {
        self.throughput
            .iter()
            .chain(self.latency)
            .map(|r| r.stats.errors())
            .sum()
    }

    fn find<'r>(runs: &'r [Run], name: &str) -> Option<&'r Run> {
        runs.iter().find(|r| r.target == name)
    }

    /// The target's round with the median throughput (the lower one of two
    /// middles).
    fn median<'r>(runs: &'r [Run], name: &str) -> Option<&'r Run> {
        let mut of: Vec<&Run> = runs.iter().filter(|r| r.target == name).collect();
        of.sort_by(|a, b| a.rps().total_cmp(&b.rps()));
        of.get(of.len().saturating_sub(1) / 2).copied()
    }

    /// `a / b` in each round that ran both.
    fn round_ratios(&self, a: &str, b: &str) -> Vec<f64> {
        (0..self.cfg.rounds)
            .filter_map(|round| {
                let of = |name: &str| {
                    self.throughput
                        .iter()
                        .find(|r| r.target == name && r.round == round)
                        .map(Run::rps)
                };
                match (of(a), of(b)) {
                    (Some(x), Some(y)) if y > 0.0 => Some(x / y),
                    _ => None,
                }
            })
            .collect()
    }

    fn render(&self) -> String {
        let mut o = String::new();
        let cfg = self.cfg;
        let bar = "=".repeat(92);
        let _ = writeln!(o, "\n{bar}");
        let _ = writeln!(
            o,
            "Switchboard gateway benchmark — A2A 1.0 SendMessage (JSON-RPC) to the echo agent, loopback"
        );
        if self.self_test {
            let _ = writeln!(
                o,
                "SELF-TEST: an in-process stand-in, not switchboard (its CPU counts as client)"
            );
        }
        let _ = writeln!(
            o,
            "{} CPUs shared by load generator and servers; reference proxy: {}",
            self.cpus, self.nginx_version
        );
        if let (Some(before), Some(after)) = (self.load_before, self.load_after) {
            let _ = writeln!(
                o,
                "load average (1 min) before {before:.2}, after {after:.2}{}",
                if before > 0.5 * self.cpus as f64 {
                    " — OTHER PROCESSES WERE BUSY: throughput and tail latency are understated; \
                     CPU µs/req is still comparable"
                } else {
                    ""
                }
            );
        }
        let _ = writeln!(o, "{bar}");

        let _ = writeln!(
            o,
            "\nThroughput: {} keep-alive connections, closed loop, {} warm-up + {} measured each;\n\
             each target's median of {} round(s), with the range of its rounds",
            cfg.connections,
            secs(cfg.warmup),
            secs(cfg.duration),
            cfg.rounds
        );
        let _ = writeln!(
            o,
            "  {:<10} {:>11} {:>15} {:>11} {:>11} {:>8} {:>7}   {:<24}",
            "path",
            "req/s",
            "rounds",
            "p50",
            "p99",
            "errors",
            "conns",
            "CPU µs/req client/serve/nginx"
        );
        for name in ["direct", "gateway", "nginx"] {
            let Some(r) = Self::median(self.throughput, name) else {
                continue;
            };
            let all: Vec<f64> = self
                .throughput
                .iter()
                .filter(|x| x.target == name)
                .map(Run::rps)
                .collect();
            let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = all.iter().copied().fold(0.0, f64::max);
            let n = r.stats.successes();
            let _ = writeln!(
                o,
                "  {:<10} {:>11.0} {:>15} {:>11} {:>11} {:>8} {:>7}   {:>6} / {:>6} / {:>6}",
                r.target,
                r.rps(),
                format!("{lo:.0}-{hi:.0}"),
                ms(r.stats.p(50.0)),
                ms(r.stats.p(99.0)),
                r.stats.errors(),
                r.stats.connects,
                per_req(r.cpu.client, n),
                per_req(r.cpu.serve, n),
                per_req(r.cpu.nginx, n),
            );
        }
        let rps = |name: &str| Self::median(self.throughput, name).map_or(0.0, Run::rps);
        let (direct, gateway, nginx) = (rps("direct"), rps("gateway"), rps("nginx"));
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        let gw_nginx = ratio(gateway, nginx);
        let _ = writeln!(o, "\n  ratios");
        let _ = writeln!(
            o,
            "    gateway / nginx    {:>6.2}x    target >= {:.1}x   {}",
            gw_nginx,
            TARGET_GATEWAY_VS_NGINX,
            verdict(gw_nginx >= TARGET_GATEWAY_VS_NGINX)
        );
        let per_round = self.round_ratios("gateway", "nginx");
        if per_round.len() > 1 {
            let list: Vec<String> = per_round.iter().map(|r| format!("{r:.2}")).collect();
            let _ = writeln!(o, "      (each round: {})", list.join(" "));
        }
        let _ = writeln!(o, "    gateway / direct   {:>6.2}x", ratio(gateway, direct));
        let _ = writeln!(o, "    nginx / direct     {:>6.2}x", ratio(nginx, direct));

        let _ = writeln!(
            o,
            "\nAdded latency: open loop {} req/s, {} warm-up + {} measured each, alternating 1 s slices",
            cfg.rate,
            secs(cfg.warmup),
            secs(cfg.latency_duration)
        );
        let _ = writeln!(
            o,
            "  {:<10} {:>11} {:>11} {:>11} {:>11} {:>8}   {:<16}",
            "path", "achieved/s", "p50", "p99", "p99.9", "errors", "CPU µs/req serve"
        );
        for r in self.latency {
            let _ = writeln!(
                o,
                "  {:<10} {:>11.0} {:>11} {:>11} {:>11} {:>8}   {:>6}",
                r.target,
                r.rps(),
                ms(r.stats.p(50.0)),
                ms(r.stats.p(99.0)),
                ms(r.stats.p(99.9)),
                r.stats.errors(),
                per_req(r.cpu.serve, r.stats.successes()),
            );
        }
        if let (Some(d), Some(g)) = (
            Self::find(self.latency, "direct"),
            Self::find(self.latency, "gateway"),
        ) {
            let added = |q: f64| (g.stats.p(q).as_secs_f64() - d.stats.p(q).as_secs_f64()) * 1000.0;
            let (a50, a99) = (added(50.0), added(99.0));
            let _ = writeln!(
                o,
                "  added p50  {:>8.3} ms    target <= {:.1} ms   {}",
                a50,
                TARGET_ADDED_P50_MS,
                verdict(a50 <= TARGET_ADDED_P50_MS)
            );
            let _ = writeln!(
                o,
                "  added p99  {:>8.3} ms    target <= {:.1} ms   {}",
                a99,
                TARGET_ADDED_P99_MS,
                verdict(a99 <= TARGET_ADDED_P99_MS)
            );
        }

        let errors = self.total_errors();
        if errors > 0 {
            let _ = writeln!(o, "\n{}", "!".repeat(92));
            let _ = writeln!(
                o,
                "!!! {errors} REQUEST ERRORS — the numbers above are NOT valid"
            );
            for r in self.throughput.iter().chain(self.latency) {
                for (kind, (n, detail)) in &r.stats.errors {
                    let _ = writeln!(o, "!!!   {:<8} {n} x {kind}: {detail}", r.target);
                }
            }
            let _ = writeln!(o, "{}", "!".repeat(92));
        } else {
            let _ = writeln!(o, "\nno request errors");
        }
        o
    }
}
