//! Which request and response headers cross the gateway.

use axum::http::{header, HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus the ones the gateway owns.
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
];

fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Copies headers minus hop-by-hop ones, those named in `Connection`, and `drop`.
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

/// Headers sent to the backend. The caller's `Authorization` never goes
/// through, nor do incoming `X-Forwarded-*` / `Forwarded` (they are set anew
/// from what the gateway itself saw) or `Host`.
pub fn upstream_request(
    incoming: &HeaderMap,
    peer_ip: Option<std::net::IpAddr>,
    public_proto: &str,
) -> HeaderMap {
    let mut out = filtered(
        incoming,
        &[
            header::HOST,
            header::AUTHORIZATION,
            header::FORWARDED,
            HeaderName::from_static("x-forwarded-for"),
            HeaderName::from_static("x-forwarded-host"),
            HeaderName::from_static("x-forwarded-proto"),
            header::COOKIE,
        ],
    );
    if let Some(ip) = peer_ip {
        if let Ok(v) = HeaderValue::from_str(&ip.to_string()) {
            out.insert("x-forwarded-for", v);
        }
    }
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

    #[test]
    fn strips_hop_by_hop_and_listed_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("close, x-secret, Authorization"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("authorization", HeaderValue::from_static("Bearer caller"));
        h.insert("a2a-version", HeaderValue::from_static("1.0"));
        h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        h.insert("host", HeaderValue::from_static("gw"));
        let out = upstream_request(&h, Some("127.0.0.1".parse().unwrap()), "http");
        assert!(out.get("x-secret").is_none());
        assert!(out.get("authorization").is_none());
        assert!(out.get("connection").is_none());
        assert_eq!(out.get("a2a-version").unwrap(), "1.0");
        assert_eq!(out.get("x-forwarded-for").unwrap(), "127.0.0.1");
        assert_eq!(out.get("x-forwarded-host").unwrap(), "gw");
        assert_eq!(out.get("x-forwarded-proto").unwrap(), "http");
    }
}
