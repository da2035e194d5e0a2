//! Which request and response headers cross the gateway.
//!
//! * Hop-by-hop headers (RFC 9110 §7.6.1) stay behind, and so do the headers
//!   a `Connection` header names, except the end-to-end ones the exchange
//!   depends on ([`END_TO_END`]): a caller cannot make the gateway drop
//!   `A2A-Version` or `Content-Type` by listing them in `Connection`.
//! * The caller's `Authorization`, `Cookie`, `Proxy-Authorization`, `Host`,
//!   `Expect`, `Forwarded` and `X-Forwarded-*` never reach the backend. The
//!   gateway sets `X-Forwarded-For` to the peer address it saw and
//!   `X-Forwarded-Proto` / `X-Forwarded-Host` from its configured public
//!   URL, never from what the caller sent. Backend credentials are added by
//!   the caller of [`upstream_request_for`] after it, so nothing a caller
//!   sends can remove or replace them.
//! * `Set-Cookie` from a backend never reaches the caller.

use axum::http::{header, HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop headers (RFC 9110 §7.6.1, RFC 7540 §3.2.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
];

/// End-to-end headers that a `Connection` header cannot turn into
/// hop-by-hop ones (RFC 9110 §7.6.1 forbids senders to list them).
pub const END_TO_END: &[&str] = &[
    "a2a-version",
    "a2a-extensions",
    "accept",
    "content-encoding",
    "content-length",
    "content-type",
];

fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty() && !END_TO_END.contains(&s.as_str()))
        .collect()
}

/// Copies headers minus hop-by-hop ones, those named in `Connection` (bar
/// [`END_TO_END`]), and `drop`.
fn filtered(headers: &HeaderMap, drop: &[HeaderName]) -> HeaderMap {
    let listed = connection_listed(headers);
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n) || listed.iter().any(|l| l == n) || drop.contains(name) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// What the caller sent that the backend must never see.
fn caller_only() -> [HeaderName; 8] {
    [
        header::HOST,
        header::AUTHORIZATION,
        header::COOKIE,
        header::EXPECT,
        header::FORWARDED,
        HeaderName::from_static("x-forwarded-for"),
        HeaderName::from_static("x-forwarded-host"),
        HeaderName::from_static("x-forwarded-proto"),
    ]
}

fn set_forwarded_for(out: &mut HeaderMap, peer_ip: Option<std::net::IpAddr>) {
    if let Some(ip) = peer_ip {
        if let Ok(v) = HeaderValue::from_str(&ip.to_string()) {
            out.insert("x-forwarded-for", v);
        }
    }
}

/// Headers sent to the backend, with `X-Forwarded-Proto` and
/// `X-Forwarded-Host` taken from the gateway's public URL
/// (`scheme://host[:port]…`). The caller's `Host`, `Forwarded` and
/// `X-Forwarded-*` are dropped whatever they say.
pub fn upstream_request_for(
    incoming: &HeaderMap,
    peer_ip: Option<std::net::IpAddr>,
    public_url: &str,
) -> HeaderMap {
    let mut out = filtered(incoming, &caller_only());
    set_forwarded_for(&mut out, peer_ip);
    if let Ok(url) = url::Url::parse(public_url) {
        if let Ok(v) = HeaderValue::from_str(url.scheme()) {
            out.insert("x-forwarded-proto", v);
        }
        if let Some(host) = url.host_str() {
            let authority = match url.port() {
                Some(p) => format!("{host}:{p}"),
                None => host.to_owned(),
            };
            if let Ok(v) = HeaderValue::from_str(&authority) {
                out.insert("x-forwarded-host", v);
            }
        }
    }
    out
}

/// Headers sent to the backend when only the public scheme is known:
/// `X-Forwarded-Host` repeats the caller's `Host`. Prefer
/// [`upstream_request_for`], which takes it from the public URL instead.
pub fn upstream_request(
    incoming: &HeaderMap,
    peer_ip: Option<std::net::IpAddr>,
    public_proto: &str,
) -> HeaderMap {
    let mut out = filtered(incoming, &caller_only());
    set_forwarded_for(&mut out, peer_ip);
    if let Some(host) = incoming.get(header::HOST) {
        out.insert("x-forwarded-host", host.clone());
    }
    if let Ok(v) = HeaderValue::from_str(public_proto) {
        out.insert("x-forwarded-proto", v);
    }
    out
}

/// Headers sent back to the caller.
pub fn downstream_response(incoming: &HeaderMap) -> HeaderMap {
    filtered(incoming, &[header::SET_COOKIE])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("close, x-secret, Authorization, A2A-Version, content-type"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("authorization", HeaderValue::from_static("Bearer caller"));
        h.insert("a2a-version", HeaderValue::from_static("1.0"));
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        h.insert("x-forwarded-host", HeaderValue::from_static("evil.example"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert("forwarded", HeaderValue::from_static("host=evil.example"));
        h.insert("expect", HeaderValue::from_static("100-continue"));
        h.insert("cookie", HeaderValue::from_static("s=1"));
        h.insert("upgrade", HeaderValue::from_static("h2c"));
        h.insert(
            "http2-settings",
            HeaderValue::from_static("AAMAAABkAAQAAP__"),
        );
        h.insert("host", HeaderValue::from_static("evil.example"));
        h
    }

    #[test]
    fn upstream_takes_forwarding_from_the_public_url() {
        let out = upstream_request_for(
            &caller(),
            Some("127.0.0.1".parse().unwrap()),
            "https://gw.example.com:8443/base",
        );
        let mut names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "a2a-version",
                "content-type",
                "x-forwarded-for",
                "x-forwarded-host",
                "x-forwarded-proto"
            ]
        );
        assert_eq!(out["a2a-version"], "1.0");
        assert_eq!(out["content-type"], "application/json");
        assert_eq!(out["x-forwarded-for"], "127.0.0.1");
        assert_eq!(out["x-forwarded-host"], "gw.example.com:8443");
        assert_eq!(out["x-forwarded-proto"], "https");
    }

    #[test]
    fn strips_hop_by_hop_and_listed_headers() {
        let out = upstream_request(&caller(), Some("127.0.0.1".parse().unwrap()), "http");
        assert!(out.get("x-secret").is_none());
        assert!(out.get("authorization").is_none());
        assert!(out.get("connection").is_none());
        assert_eq!(out["a2a-version"], "1.0");
        assert_eq!(out["x-forwarded-for"], "127.0.0.1");
        assert_eq!(out["x-forwarded-host"], "evil.example");
        assert_eq!(out["x-forwarded-proto"], "http");
    }

    #[test]
    fn responses_keep_end_to_end_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("content-type, x-hop"),
        );
        h.insert(
            "content-type",
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert("set-cookie", HeaderValue::from_static("a=b"));
        let out = downstream_response(&h);
        assert_eq!(out.len(), 1);
        assert_eq!(out["content-type"], "text/event-stream");
    }
}
