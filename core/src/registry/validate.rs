//! What the registry accepts: agent ids, backend and token-endpoint URLs,
//! backend credential headers, scopes, permissions and issuer clients. The
//! CLI, the console, registry import, sync and the stores themselves (which
//! refuse to write a record these functions refuse) all judge records with
//! these functions, so one rule holds everywhere.
//!
//! # Agent ids
//!
//! One pattern, [`AGENT_ID_PATTERN`]: `^[a-z0-9][a-z0-9_-]{0,63}$`, that is
//! 1 to 64 bytes of lowercase ASCII letters, digits, `-` and `_`, starting
//! with a letter or a digit. An id is compared byte for byte and never
//! decoded, case-folded or normalised, so `.`, `..`, anything holding `/`,
//! `%`, `\`, upper case or a non-ASCII look-alike can never name an agent.
//!
//! # Outbound URLs
//!
//! The gateway sends callers' requests to an agent's backend URL and its
//! client secret to an OAuth2 token URL, so both are refused unless they are
//! `http`/`https` with a host and no user info, free of whitespace, control
//! characters and backslashes, and not aimed at a link-local or
//! cloud-metadata address: IPv4 `169.254.0.0/16` (AWS, GCP, Azure and
//! OpenStack metadata at 169.254.169.254, ECS task metadata at 169.254.170.2),
//! `100.100.100.200` (Alibaba Cloud metadata), `168.63.129.16` (Azure
//! WireServer), `0.0.0.0/8` and `255.255.255.255`; IPv6 `fe80::/10`,
//! `fd00:ec2::254` (AWS metadata over IPv6) and `::`; any of those IPv4
//! addresses written as IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
//! (`::a.b.c.d`), NAT64 (`64:ff9b::/96`) or 6to4 (`2002::/16`) IPv6; and the
//! metadata host names `metadata`, `metadata.google.internal`,
//! `metadata.goog`, `instance-data` and `instance-data.ec2.internal`. Hosts
//! are judged after URL parsing, so decimal, hexadecimal, octal, shortened,
//! percent-encoded and full-width spellings of an address are caught too.
//!
//! Loopback and private addresses are allowed: developers run agents on
//! their own machine, and production agents live in private networks. There
//! is no switch to allow link-local addresses: no agent needs one, and a
//! backend that must be reached through one can sit behind an ordinary
//! address instead.
//!
//! A backend URL is a base to which `/{rest}` is appended, so it may not
//! carry a query or a fragment either (the rest would land inside them).
//! A host name is checked as written; where it resolves to is the HTTP
//! client's business when the gateway connects (see [`blocked_ip`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::model::{AgentRecord, BackendAuth, ClientRecord};
use super::ALL_AGENTS;

/// The one pattern every agent id must match.
pub const AGENT_ID_PATTERN: &str = "^[a-z0-9][a-z0-9_-]{0,63}$";

/// Longest agent id, in bytes.
pub const MAX_AGENT_ID_BYTES: usize = 64;

/// Checks an agent id against [`AGENT_ID_PATTERN`]. The message names the
/// pattern and what broke it.
pub fn validate_agent_id(id: &str) -> Result<(), String> {
    let bytes = id.as_bytes();
    let Some(&first) = bytes.first() else {
        return Err(format!("agent id is empty (pattern {AGENT_ID_PATTERN})"));
    };
    if bytes.len() > MAX_AGENT_ID_BYTES {
        return Err(format!(
            "agent id is {} bytes long; at most {MAX_AGENT_ID_BYTES} are allowed (pattern {AGENT_ID_PATTERN})",
            bytes.len()
        ));
    }
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return Err(format!(
            "agent id {id:?} must start with a lowercase letter or a digit (pattern {AGENT_ID_PATTERN})"
        ));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "agent id {id:?} contains {bad:?}; allowed are a-z, 0-9, '-' and '_' (pattern {AGENT_ID_PATTERN})"
        ));
    }
    Ok(())
}

/// What an outbound URL is for; it decides what else may be in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// An agent's backend: a base URL, no query or fragment.
    Backend,
    /// An OAuth2 token endpoint: used as written, so a query is fine.
    TokenEndpoint,
}

impl Purpose {
    /// How messages start: backend URLs are the common case and go unnamed.
    fn prefix(self) -> &'static str {
        match self {
            Purpose::Backend => "",
            Purpose::TokenEndpoint => "token URL ",
        }
    }
    fn plural(self) -> &'static str {
        match self {
            Purpose::Backend => "backend URLs",
            Purpose::TokenEndpoint => "token URLs",
        }
    }
}

/// Checks an agent's backend URL (see the module documentation for the rules).
pub fn validate_backend_url(raw: &str) -> Result<url::Url, String> {
    check_url(raw, Purpose::Backend)
}

/// Checks an OAuth2 token endpoint the gateway will send a client secret to:
/// the backend URL rules, except that a query is allowed.
pub fn validate_token_url(raw: &str) -> Result<url::Url, String> {
    check_url(raw, Purpose::TokenEndpoint)
}

fn check_url(raw: &str, purpose: Purpose) -> Result<url::Url, String> {
    let what = format!("{}{:?}", purpose.prefix(), shorten(raw));
    if let Some(c) = raw
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || *c == '\\')
    {
        return Err(format!(
            "{what} contains {c:?}; whitespace, control characters and backslashes are not allowed"
        ));
    }
    let url = url::Url::parse(raw).map_err(|e| format!("{what} is not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "{what}: only http and https are supported, not {}",
            url.scheme()
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{} must not carry credentials (user:password@); keep them in the secret store and use backend auth",
            purpose.plural()
        ));
    }
    if purpose == Purpose::Backend && url.query().is_some() {
        return Err(format!(
            "{what} has a query; a backend URL is a base that request paths are appended to"
        ));
    }
    if url.fragment().is_some() {
        return Err(format!("{what} has a fragment (#…)"));
    }
    let blocked = match url.host() {
        None => return Err(format!("{what} has no host")),
        Some(url::Host::Ipv4(ip)) => blocked_ip(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => blocked_ip(IpAddr::V6(ip)),
        Some(url::Host::Domain(d)) => blocked_host_name(d),
    };
    let host = url.host_str().unwrap_or_default();
    match blocked {
        None => Ok(url),
        Some(Blocked::NoDestination) => Err(format!(
            "{what} points at {host}, which is not a destination address"
        )),
        Some(why) => Err(format!(
            "{what} points at a link-local or cloud-metadata address ({host} {why}), which backends may not use; loopback and private addresses are fine"
        )),
    }
}

fn shorten(raw: &str) -> String {
    const MAX: usize = 200;
    if raw.len() <= MAX {
        return raw.to_owned();
    }
    let mut end = MAX;
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &raw[..end])
}

/// Why an address is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocked {
    /// A cloud provider's metadata or platform service.
    Metadata,
    /// In a link-local range.
    LinkLocal,
    /// Unspecified, "this network" or broadcast: nothing to connect to.
    NoDestination,
    /// A metadata service's host name.
    MetadataName,
    /// An IPv6 address embedding a refused IPv4 address.
    Embeds(Ipv4Addr, Box<Blocked>),
}

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Blocked::Metadata => f.write_str("is a cloud-metadata address"),
            Blocked::LinkLocal => f.write_str("is link-local"),
            Blocked::NoDestination => f.write_str("is not a destination address"),
            Blocked::MetadataName => f.write_str("is a cloud-metadata host name"),
            Blocked::Embeds(v4, why) => write!(f, "embeds {v4}, which {why}"),
        }
    }
}

const METADATA_HOST_NAMES: &[&str] = &[
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "instance-data",
    "instance-data.ec2.internal",
];

fn blocked_host_name(name: &str) -> Option<Blocked> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    METADATA_HOST_NAMES
        .contains(&name.as_str())
        .then_some(Blocked::MetadataName)
}

/// Why the gateway must not connect to `ip`, if it must not: a link-local
/// or cloud-metadata address, or one that is no destination at all, in any
/// of its IPv4 and IPv6 spellings. Loopback and private addresses pass.
/// For judging resolved addresses at connect time as well as written ones.
pub fn blocked_ip(ip: IpAddr) -> Option<Blocked> {
    match ip {
        IpAddr::V4(v4) => blocked_v4(v4),
        IpAddr::V6(v6) => blocked_v6(v6),
    }
}

fn blocked_v4(ip: Ipv4Addr) -> Option<Blocked> {
    const METADATA: [Ipv4Addr; 4] = [
        Ipv4Addr::new(169, 254, 169, 254),
        Ipv4Addr::new(169, 254, 170, 2),
        Ipv4Addr::new(100, 100, 100, 200),
        Ipv4Addr::new(168, 63, 129, 16),
    ];
    if METADATA.contains(&ip) {
        Some(Blocked::Metadata)
    } else if ip.is_link_local() {
        Some(Blocked::LinkLocal)
    } else if ip.octets()[0] == 0 || ip.is_broadcast() {
        Some(Blocked::NoDestination)
    } else {
        None
    }
}

fn blocked_v6(ip: Ipv6Addr) -> Option<Blocked> {
    if ip.is_unspecified() {
        return Some(Blocked::NoDestination);
    }
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        return Some(Blocked::Metadata);
    }
    if (ip.segments()[0] & 0xffc0) == 0xfe80 {
        return Some(Blocked::LinkLocal);
    }
    let v4 = embedded_v4(ip)?;
    blocked_v4(v4).map(|why| Blocked::Embeds(v4, Box::new(why)))
}

/// The IPv4 address inside an IPv4-mapped, IPv4-compatible, NAT64
/// (`64:ff9b::/96`) or 6to4 (`2002::/16`) IPv6 address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let seg = ip.segments();
    let v4 = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    if let Some(mapped) = ip.to_ipv4_mapped() {
        return Some(mapped);
    }
    // IPv4-compatible (deprecated): ::a.b.c.d, but not :: or ::1.
    if seg[..6] == [0; 6] && ip != Ipv6Addr::LOCALHOST {
        return Some(v4(seg[6], seg[7]));
    }
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(v4(seg[6], seg[7]));
    }
    if seg[0] == 0x2002 {
        return Some(v4(seg[1], seg[2]));
    }
    None
}

/// Header names that cannot carry backend credentials: HTTP framing and
/// connection headers, and the ones the gateway sets itself.
const RESERVED_CREDENTIAL_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "a2a-version",
    "a2a-extensions",
];

/// Longest accepted client id.
pub const MAX_CLIENT_ID_LEN: usize = 128;

/// A client id: 1–128 characters of `[A-Za-z0-9._-]`.
pub fn validate_client_id(client_id: &str) -> Result<(), String> {
    if client_id.is_empty() {
        return Err("the client id is empty".into());
    }
    if client_id.len() > MAX_CLIENT_ID_LEN {
        return Err(format!(
            "the client id is {} characters long; at most {MAX_CLIENT_ID_LEN} are allowed",
            client_id.len()
        ));
    }
    if let Some(bad) = client_id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "the client id '{client_id}' contains {bad:?}; use only letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// A scope token as RFC 6749 §3.3 defines it: printable ASCII without space,
/// `"` or `\`.
pub fn validate_scope(scope: &str) -> Result<(), String> {
    if scope.is_empty() {
        return Err("a scope is empty".into());
    }
    if let Some(bad) = scope
        .chars()
        .find(|c| !matches!(c, '\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e'))
    {
        return Err(format!(
            "the scope '{scope}' contains {bad:?}, which scopes may not contain"
        ));
    }
    Ok(())
}

/// Checks the header a static backend credential is sent in.
pub fn validate_credential_header(name: &str) -> Result<(), String> {
    let parsed = http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{:?} is not a valid HTTP header name", shorten(name)))?;
    if RESERVED_CREDENTIAL_HEADERS.contains(&parsed.as_str()) {
        return Err(format!(
            "header {name} cannot carry backend credentials: HTTP or the gateway itself sets it"
        ));
    }
    Ok(())
}

/// Checks a whole agent record: id, backend URL and backend auth. Every
/// problem is listed, not just the first.
pub fn validate_agent(agent: &AgentRecord) -> Result<(), Vec<String>> {
    let problems = agent_problems(agent);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.into_iter().map(|(_, e)| e).collect())
    }
}

/// Every problem [`validate_agent`] finds, each with the field it is in:
/// `id`, `url`, `auth.name`, `auth.secret`, `auth.token_url` or
/// `auth.client_id`.
pub fn agent_problems(agent: &AgentRecord) -> Vec<(&'static str, String)> {
    let mut errors = Vec::new();
    if let Err(e) = validate_agent_id(&agent.id) {
        errors.push(("id", e));
    }
    if let Err(e) = validate_backend_url(&agent.url) {
        errors.push(("url", e));
    }
    match &agent.auth {
        BackendAuth::None => {}
        BackendAuth::Header { name, secret } => {
            if let Err(e) = validate_credential_header(name) {
                errors.push(("auth.name", e));
            }
            if secret.trim().is_empty() {
                errors.push((
                    "auth.secret",
                    "the credential header needs a secret name".into(),
                ));
            }
        }
        BackendAuth::OAuth2 {
            token_url,
            client_id,
            secret,
            ..
        } => {
            if let Err(e) = validate_token_url(token_url) {
                errors.push(("auth.token_url", e));
            }
            if client_id.trim().is_empty() {
                errors.push((
                    "auth.client_id",
                    "OAuth2 backend auth needs a client id".into(),
                ));
            }
            if secret.trim().is_empty() {
                errors.push((
                    "auth.secret",
                    "OAuth2 backend auth needs a secret name".into(),
                ));
            }
        }
    }
    errors
}

/// What a permission may grant: a valid agent id, or `*` for every agent.
pub fn validate_granted_agent(id: &str) -> Result<(), String> {
    if id == ALL_AGENTS {
        Ok(())
    } else {
        validate_agent_id(id)
    }
}

/// A permission: a valid scope granting valid agent ids or `*`. The first
/// problem found, naming the scope.
pub fn validate_permission<'a>(
    scope: &str,
    agents: impl IntoIterator<Item = &'a String>,
) -> Result<(), String> {
    validate_scope(scope)?;
    for agent in agents {
        validate_granted_agent(agent).map_err(|e| format!("scope {scope}: {e}"))?;
    }
    Ok(())
}

/// Longest secret name, ARNs included (Secrets Manager's limit).
pub const MAX_SECRET_NAME: usize = 2048;
/// Largest secret value in bytes (Secrets Manager's limit).
pub const MAX_SECRET_VALUE: usize = 65_536;

/// A secret's name (or ARN): what Secrets Manager accepts in a name or an
/// ARN, letters, digits and `/_+=.@-:`, at most [`MAX_SECRET_NAME`] long.
pub fn validate_secret_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a secret name is empty".into());
    }
    if name.len() > MAX_SECRET_NAME {
        return Err(format!(
            "a secret name is {} bytes long; at most {MAX_SECRET_NAME} are accepted",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "/_+=.@-:".contains(*c)))
    {
        return Err(format!(
            "the secret name {:?} contains {bad:?}; names hold letters, digits and /_+=.@-:",
            shorten(name)
        ));
    }
    Ok(())
}

/// A secret's value: not empty, at most [`MAX_SECRET_VALUE`] bytes. The
/// message never quotes the value.
pub fn validate_secret_value(value: &str) -> Result<(), String> {
    match value.len() {
        0 => Err("the secret value is empty".into()),
        n if n > MAX_SECRET_VALUE => Err(format!(
            "the secret value is {n} bytes long; at most {MAX_SECRET_VALUE} are accepted"
        )),
        _ => Ok(()),
    }
}

/// A client of the local issuer: its id and every scope it may request.
pub fn validate_client(client: &ClientRecord) -> Result<(), String> {
    validate_client_id(&client.client_id)?;
    for scope in &client.allowed_scopes {
        validate_scope(scope).map_err(|e| format!("client {}: {e}", client.client_id))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_ids() {
        for ok in ["echo", "a", "0", "agent-1", "x_y", &"a".repeat(64)] {
            assert!(validate_agent_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "A",
            "Echo",
            "é",
            "\u{0435}cho",
            "-a",
            "_a",
            "a.b",
            "a b",
            &"a".repeat(65),
            "a%2f",
        ] {
            let e = validate_agent_id(bad).unwrap_err();
            assert!(e.contains("agent id"), "{bad}: {e}");
        }
    }

    #[test]
    fn backend_urls() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost:9000/a2a",
            "https://agent.example.com/a2a",
            "http://[::1]:9/",
            "http://10.0.0.7:8443",
            "http://192.168.1.20",
            "http://169.253.255.255",
            "http://169.255.0.1",
        ] {
            assert!(validate_backend_url(ok).is_ok(), "{ok}");
        }
        for (bad, says) in [
            ("ftp://x", "only http and https"),
            ("file:///etc/passwd", "only http and https"),
            ("http://user:pw@host/", "must not carry credentials"),
            ("http://user@host/", "must not carry credentials"),
            (
                "http://169.254.169.254/latest",
                "(169.254.169.254 is a cloud-metadata address)",
            ),
            ("http://169.254.170.2/v2", "is a cloud-metadata address"),
            ("http://169.254.0.1/", "(169.254.0.1 is link-local)"),
            (
                "http://2852039166/",
                "(169.254.169.254 is a cloud-metadata address)",
            ),
            (
                "http://0xa9fea9fe/",
                "(169.254.169.254 is a cloud-metadata address)",
            ),
            (
                "http://0251.0376.0251.0376/",
                "(169.254.169.254 is a cloud-metadata",
            ),
            (
                "http://169.254.43518/",
                "(169.254.169.254 is a cloud-metadata",
            ),
            (
                "http://[fd00:ec2::254]/",
                "([fd00:ec2::254] is a cloud-metadata address)",
            ),
            (
                "http://[::ffff:169.254.169.254]/",
                "embeds 169.254.169.254, which is a cloud-metadata",
            ),
            (
                "http://[::ffff:a9fe:a9fe]/",
                "embeds 169.254.169.254, which is a cloud-metadata",
            ),
            (
                "http://[::169.254.169.254]/",
                "embeds 169.254.169.254, which is a cloud-metadata",
            ),
            (
                "http://[64:ff9b::a9fe:a9fe]/",
                "embeds 169.254.169.254, which is a cloud-metadata",
            ),
            (
                "http://[2002:a9fe:a9fe::1]/",
                "embeds 169.254.169.254, which is a cloud-metadata",
            ),
            (
                "http://[::ffff:169.254.1.1]/",
                "embeds 169.254.1.1, which is link-local",
            ),
            ("http://[fe80::1]/", "([fe80::1] is link-local)"),
            ("http://[::]/", "not a destination"),
            ("http://0.0.0.0:80/", "not a destination"),
            (
                "http://metadata.google.internal/",
                "is a cloud-metadata host name",
            ),
            (
                "http://METADATA.google.internal./",
                "is a cloud-metadata host name",
            ),
            ("http://100.100.100.200/", "is a cloud-metadata address"),
            ("http://168.63.129.16/", "is a cloud-metadata address"),
            ("http://x/a?b=1", "has a query"),
            ("http://x/a#f", "has a fragment"),
            ("http://127.0.0.1\\@169.254.169.254/", "backslashes"),
            ("http://x/ a", "whitespace"),
            ("not a url", "whitespace"),
            ("notaurl", "not a valid URL"),
        ] {
            let e = validate_backend_url(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn token_urls_may_have_a_query() {
        assert!(validate_token_url("https://login.example.com/t/oauth2/token?api=1").is_ok());
        assert!(validate_token_url("http://169.254.169.254/token")
            .unwrap_err()
            .starts_with("token URL \"http://169.254.169.254/token\" points at a link-local"));
    }

    #[test]
    fn credential_headers() {
        assert!(validate_credential_header("x-api-key").is_ok());
        assert!(validate_credential_header("Authorization").is_ok());
        for bad in [
            "host",
            "Content-Length",
            "x-forwarded-for",
            "a b",
            "",
            "x:y",
        ] {
            assert!(validate_credential_header(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn whole_records_list_every_problem() {
        let mut a = AgentRecord::new("Bad", "http://169.254.169.254");
        a.auth = BackendAuth::OAuth2 {
            token_url: "ftp://x".into(),
            client_id: " ".into(),
            secret: "s".into(),
            scopes: vec![],
        };
        assert_eq!(validate_agent(&a).unwrap_err().len(), 4);
        assert!(validate_agent(&AgentRecord::new("ok", "http://127.0.0.1:1")).is_ok());
    }

    #[test]
    fn problems_name_their_fields() {
        let mut a = AgentRecord::new("Bad", "http://169.254.169.254");
        a.auth = BackendAuth::Header {
            name: "host".into(),
            secret: " ".into(),
        };
        let fields: Vec<&str> = agent_problems(&a).into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["id", "url", "auth.name", "auth.secret"]);
    }

    #[test]
    fn permissions_and_clients() {
        let agents = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(validate_permission("team/a", &agents(&["echo", "*"])).is_ok());
        assert!(validate_permission("a b", &agents(&["echo"]))
            .unwrap_err()
            .contains("scope 'a b'"));
        let e = validate_permission("s", &agents(&["Echo"])).unwrap_err();
        assert!(e.starts_with("scope s: agent id \"Echo\""), "{e}");
        assert!(validate_permission("s", &agents(&["**"])).is_err());
        let mut c = ClientRecord {
            client_id: "c1".into(),
            secret_hash: "salt$hash".into(),
            allowed_scopes: vec!["s".into()],
            created_at: 1,
        };
        assert!(validate_client(&c).is_ok());
        c.allowed_scopes.push("a\"b".into());
        assert!(validate_client(&c)
            .unwrap_err()
            .starts_with("client c1: the scope"));
        c.client_id = "c 1".into();
        assert!(validate_client(&c).unwrap_err().contains("client id"));
    }
}
