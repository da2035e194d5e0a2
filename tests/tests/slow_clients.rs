//! Slow and greedy clients: a client that sends its request head slowly
//! (slowloris) is cut off after `client_header_timeout_ms`, however it
//! trickles, and no more than `max_connections` connections are served at
//! once; the next client waits until one closes, then is served.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::start_with;
use switchboard_core::GatewayConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEADER_TIMEOUT: Duration = Duration::from_millis(1500);

fn config(max_connections: usize) -> GatewayConfig {
    GatewayConfig {
        client_header_timeout_ms: HEADER_TIMEOUT.as_millis() as u64,
        max_connections,
        ..GatewayConfig::default()
    }
}

fn gateway_addr(s: &common::Stack) -> SocketAddr {
    let url = &s.stack.info.gateway_url;
    url.strip_prefix("http://")
        .and_then(|rest| rest.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("not http://ip:port: {url}"))
}

/// Reads until the server closes the connection (or resets it); returns
/// what it sent.
async fn read_to_close(conn: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off() {
    let s = start_with(config(64)).await;
    let addr = gateway_addr(&s);
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    conn.write_all(b"POST /agents/echo HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // One header byte every 100 ms: never a whole head, always some bytes.
    let (mut rd, mut wr) = conn.into_split();
    let trickle = tokio::spawn(async move {
        for i in 0u32.. {
            let byte = [b'a' + (i % 26) as u8];
            if wr.write_all(&byte).await.is_err() {
                return i;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        unreachable!()
    });
    let mut buf = Vec::new();
    let closed =
        tokio::time::timeout(HEADER_TIMEOUT + common::SLACK, rd.read_to_end(&mut buf)).await;
    let elapsed = started.elapsed();
    assert!(
        closed.is_ok(),
        "the gateway kept a trickling client for {elapsed:?}"
    );
    assert!(
        elapsed >= HEADER_TIMEOUT,
        "cut off after {elapsed:?}, before the timeout"
    );
    trickle.abort();
    // Whatever it answered (nothing, or a 408), it never served the request.
    let text = String::from_utf8_lossy(&buf);
    assert!(
        buf.is_empty() || text.starts_with("HTTP/1.1 408"),
        "unexpected answer: {text}"
    );
    // The gateway itself is fine.
    let health = s.http.get(s.gw("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn an_idle_connection_that_never_sends_a_byte_is_closed() {
    let s = start_with(config(64)).await;
    let mut conn = TcpStream::connect(gateway_addr(&s)).await.unwrap();
    let started = Instant::now();
    let closed =
        tokio::time::timeout(HEADER_TIMEOUT + common::SLACK, read_to_close(&mut conn)).await;
    assert!(closed.is_ok(), "an idle connection stayed open");
    assert!(started.elapsed() >= HEADER_TIMEOUT);
}

#[tokio::test]
async fn connections_past_the_limit_wait_for_a_free_slot() {
    const LIMIT: usize = 4;
    let s = start_with(config(LIMIT)).await;
    let addr = gateway_addr(&s);
    // Fill every slot with a connection that sends nothing; the gateway
    // closes each after the header timeout, not before.
    let filled_at = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..LIMIT {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }

    // A real request on one more connection: the TCP connect succeeds (the
    // listen backlog), but the gateway answers only once a slot is free. (The
    // backlog is first in, first out: the idle connections, made before it,
    // are accepted before it however late the gateway gets to them.)
    let mut extra = TcpStream::connect(addr).await.unwrap();
    extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = tokio::time::timeout(HEADER_TIMEOUT + common::SLACK, read_to_close(&mut extra))
        .await
        .expect("the waiting client was never served");
    let answered_at = Instant::now();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        answered_at.duration_since(filled_at) >= HEADER_TIMEOUT,
        "served after {:?}, while every slot was taken",
        answered_at.duration_since(filled_at)
    );
    drop(idle);
}
