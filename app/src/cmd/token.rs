//! `switchboard token …`: mint tokens, and inspect any token.
//!
//! On the local profile `mint` signs with the local issuer's key. On an AWS
//! profile the gateway verifies tokens from the profile's issuer (a Cognito
//! user pool), so `mint` asks the profile's token endpoint for one with the
//! OAuth2 client-credentials grant: the client id from the arguments, the
//! client secret from `$SWITCHBOARD_CLIENT_SECRET` or standard input (never
//! from the command line, never printed).

use std::io::{BufRead, IsTerminal};
use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine;
use serde_json::{json, Value};
use switchboard_core::auth::jwt::scopes_of;
use switchboard_core::auth::oauth2::{self, OAuth2Error, TokenResponse};
use switchboard_core::auth::{explain, Explanation, PermissionSet, Verifier, VerifierConfig};
use switchboard_core::profile::{AwsProfile, ProfileKind};
use switchboard_core::registry::Secret;
use switchboard_emulator::issuer::Issuer;
use switchboard_emulator::stack::read_runtime;

use super::Ctx;
use crate::cli::TokenCmd;
use crate::output;

/// Where `token mint` on an AWS profile reads the client secret first.
pub const CLIENT_SECRET_ENV: &str = "SWITCHBOARD_CLIENT_SECRET";

pub use crate::cli::LOCAL_DEFAULT_TTL_SECS;

/// How long a token or discovery request may take.
const TOKEN_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a `token` subcommand.
pub async fn run(ctx: &Ctx, cmd: TokenCmd) -> anyhow::Result<()> {
    match cmd {
        TokenCmd::Mint {
            client,
            scopes,
            ttl,
            issuer,
        } => {
            if let ProfileKind::Aws(aws) = &ctx.profile.kind {
                let stdin = std::io::stdin();
                let terminal = stdin.is_terminal();
                let input = SecretInput {
                    env: std::env::var(CLIENT_SECRET_ENV).ok(),
                    stdin: &mut stdin.lock(),
                    terminal,
                };
                let token = mint_aws(ctx, aws, &client, &scopes, ttl, issuer, input).await?;
                println!("{token}");
                return Ok(());
            }
            let issuer_url = match issuer {
                Some(u) => u,
                None => read_runtime(&ctx.data_dir)
                    .map(|r| r.issuer_url)
                    .with_context(|| {
                        format!(
                            "no local stack is running on {}; start `switchboard serve` or pass --issuer URL",
                            ctx.data_dir.display()
                        )
                    })?,
            };
            let stores = ctx.stores()?;
            let scopes = local_scopes(&stores, &client, scopes).await?;
            let issuer = Issuer::open(&ctx.data_dir, stores.clients.clone())?;
            let token = issuer.mint(&issuer_url, &client, &scopes, Duration::from_secs(ttl))?;
            println!("{token}");
            Ok(())
        }
        TokenCmd::Decode { token, json } => decode(ctx, token.trim(), json.json).await,
    }
}

/// The scopes a local token gets, as the issuer would grant them: the
/// client's own when none are asked for; an unknown client, or a scope it
/// does not hold, is an error listing what there is.
async fn local_scopes(
    stores: &switchboard_core::store::Stores,
    client: &str,
    asked: Vec<String>,
) -> anyhow::Result<Vec<String>> {
    let Some(record) = stores.clients.get(client).await? else {
        let known: Vec<String> = stores
            .clients
            .list()
            .await?
            .into_iter()
            .map(|c| c.client_id)
            .collect();
        anyhow::bail!(
            "no client {client} on this profile; clients: {} (add one with `switchboard clients add`)",
            if known.is_empty() { "none".to_owned() } else { known.join(", ") }
        );
    };
    if asked.is_empty() {
        return Ok(record.allowed_scopes);
    }
    if let Some(missing) = asked.iter().find(|s| !record.allowed_scopes.contains(s)) {
        anyhow::bail!(
            "client {client} does not hold scope {missing}; it holds: {}",
            if record.allowed_scopes.is_empty() {
                "nothing".to_owned()
            } else {
                record.allowed_scopes.join(" ")
            }
        );
    }
    Ok(asked)
}

/// Where `token mint` reads a client secret.
pub(crate) struct SecretInput<'a> {
    /// `$SWITCHBOARD_CLIENT_SECRET`.
    pub env: Option<String>,
    /// Standard input.
    pub stdin: &'a mut dyn BufRead,
    /// Whether standard input is a terminal (then a prompt without echo).
    pub terminal: bool,
}

/// `token mint` on an AWS profile: a client-credentials token from the
/// profile's token endpoint (printed alone on standard output by `run`).
async fn mint_aws(
    ctx: &Ctx,
    aws: &AwsProfile,
    client: &str,
    scopes: &[String],
    ttl: u64,
    issuer: Option<String>,
    input: SecretInput<'_>,
) -> anyhow::Result<String> {
    let profile = &ctx.profile.name;
    if issuer.is_some() {
        bail!(
            "--issuer is for the local profile; profile {profile} takes tokens from its token endpoint \
             (token_url, else the issuer's discovery document)"
        );
    }
    if ttl != LOCAL_DEFAULT_TTL_SECS {
        bail!(
            "--ttl is for the local profile; profile {profile}'s token endpoint decides how long its tokens live"
        );
    }
    let secret = client_secret(client, input.env, input.stdin, input.terminal)?;
    let http = token_http_client()?;
    let token = mint_from_profile(&http, profile, aws, client, &secret, scopes).await?;
    Ok(token.access_token)
}

/// Reads a client secret: `from_env` when set, else standard input — a
/// prompt that does not echo on a terminal, else its first line.
pub(crate) fn client_secret(
    client: &str,
    from_env: Option<String>,
    stdin: &mut dyn BufRead,
    terminal: bool,
) -> anyhow::Result<Secret> {
    let value = match from_env.filter(|v| !v.is_empty()) {
        Some(v) => v,
        None if terminal => rpassword::prompt_password(format!("client secret for {client}: "))
            .context("reading the client secret from the terminal")?,
        None => {
            let mut line = String::new();
            stdin
                .read_line(&mut line)
                .context("reading the client secret from standard input")?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    if value.is_empty() {
        bail!(
            "no client secret for {client}: pipe it on standard input or set {CLIENT_SECRET_ENV} \
             (it is never taken from the command line)"
        );
    }
    Ok(Secret::new(value))
}

/// The HTTP client for token and discovery requests.
pub(crate) fn token_http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(TOKEN_REQUEST_TIMEOUT)
        .build()
        .context("building the HTTP client")
}

/// The token endpoint of an AWS profile: its `token_url`, else the
/// `token_endpoint` of its issuer's `/.well-known/openid-configuration`.
/// Fails, saying what to set, when neither names one.
pub(crate) async fn token_endpoint(
    http: &reqwest::Client,
    profile: &str,
    aws: &AwsProfile,
) -> anyhow::Result<String> {
    if let Some(url) = aws.token_url.as_deref().filter(|u| !u.trim().is_empty()) {
        return Ok(url.to_owned());
    }
    let unknown = |why: String| {
        anyhow::anyhow!(
            "no token endpoint is known for profile {profile}: it has no token_url, and {why}; \
             set token_url under [profiles.{profile}] in the config file to the user pool domain's \
             /oauth2/token (https://DOMAIN.auth.REGION.amazoncognito.com/oauth2/token)"
        )
    };
    let metadata = oauth2::discover(http, aws.issuer_url(), TOKEN_REQUEST_TIMEOUT)
        .await
        .map_err(|e| {
            let discovery = e.url();
            unknown(match &e {
                OAuth2Error::Status { status, .. } => {
                    format!("its issuer's {discovery} answered {status}")
                }
                OAuth2Error::BadJson { reason, .. } => {
                    format!("its issuer's {discovery} is not JSON ({reason})")
                }
                _ => format!("its issuer's {discovery} could not be read ({e})"),
            })
        })?;
    match metadata.token_endpoint {
        Some(url) if !url.trim().is_empty() => Ok(url),
        _ => Err(unknown(format!(
            "its issuer's {} names no token_endpoint (a Cognito user pool has one only once it has a domain)",
            aws.openid_configuration_url()
        ))),
    }
}

/// A token for `client_id` from an AWS profile's token endpoint (see
/// [`token_endpoint`]), with the client-credentials grant
/// ([`oauth2::client_credentials`]). `scopes` empty: the client's default
/// scopes. Errors name the client and the endpoint, never the secret.
pub(crate) async fn mint_from_profile(
    http: &reqwest::Client,
    profile: &str,
    aws: &AwsProfile,
    client_id: &str,
    secret: &Secret,
    scopes: &[String],
) -> anyhow::Result<TokenResponse> {
    let url = token_endpoint(http, profile, aws).await?;
    oauth2::client_credentials(http, &url, client_id, secret, scopes, TOKEN_REQUEST_TIMEOUT)
        .await
        .map_err(|e| token_error(&e, client_id))
}

/// What `token mint` says when the token endpoint gives no token.
fn token_error(e: &OAuth2Error, client_id: &str) -> anyhow::Error {
    let url = e.url();
    match e {
        OAuth2Error::Timeout { after, .. } => {
            anyhow::anyhow!("the token endpoint {url} did not answer within {after:?}")
        }
        OAuth2Error::Unreachable { reason, .. } => {
            anyhow::anyhow!("the token endpoint {url} did not answer: {reason}")
        }
        OAuth2Error::Interrupted { reason, .. } => {
            anyhow::anyhow!("the token endpoint {url} broke off its answer: {reason}")
        }
        OAuth2Error::Status { .. } => anyhow::anyhow!(
            "the token endpoint {url} refused client {client_id}: {}",
            e.refusal().unwrap_or_default()
        ),
        OAuth2Error::BadJson { reason, .. } => {
            anyhow::anyhow!("the token endpoint {url} answered without an access token: {reason}")
        }
        OAuth2Error::EmptyToken { .. } => {
            anyhow::anyhow!("the token endpoint {url} answered with an empty access token")
        }
    }
}

fn decode_part(part: &str, what: &str) -> anyhow::Result<Value> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .with_context(|| format!("the token's {what} is not base64url"))?;
    serde_json::from_slice(&bytes).with_context(|| format!("the token's {what} is not JSON"))
}

/// A JWT's header and claims, without checking anything.
pub(crate) fn decode_jwt(token: &str) -> anyhow::Result<(Value, Value)> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        bail!(
            "not a JWT: expected three dot-separated parts, found {}",
            parts.len()
        );
    }
    Ok((
        decode_part(parts[0], "header")?,
        decode_part(parts[1], "claims")?,
    ))
}

/// What a token with `claims` reaches among `agents`, and why.
pub(crate) fn explain_all(
    permissions: &PermissionSet,
    claims: &Value,
    agents: impl IntoIterator<Item = impl AsRef<str>>,
) -> Vec<Explanation> {
    let scopes = scopes_of(claims);
    agents
        .into_iter()
        .map(|a| explain(permissions, &scopes, a.as_ref()))
        .collect()
}

async fn decode(ctx: &Ctx, token: &str, as_json: bool) -> anyhow::Result<()> {
    let (header, claims) = decode_jwt(token)?;

    // Validity, checked exactly as the gateway would: against the AWS
    // profile's issuer and JWKS, or the running local stack's.
    let verify = |issuer: String, jwks: String| async move {
        let verifier = Verifier::new(
            VerifierConfig {
                issuer,
                jwks_uri: Some(jwks.clone()),
                allowed_client_ids: ctx.config.gateway.allowed_client_ids.clone(),
                leeway_secs: ctx.config.gateway.leeway_secs,
            },
            reqwest::Client::new(),
        );
        match verifier.verify(token).await {
            Ok(_) => json!({ "valid": true, "checked_against": jwks }),
            Err(e) => {
                json!({ "valid": false, "reason": e.to_string(), "checked_against": jwks })
            }
        }
    };
    let validity = match (&ctx.profile.kind, read_runtime(&ctx.data_dir)) {
        (ProfileKind::Aws(aws), _) => verify(aws.issuer_url().to_owned(), aws.jwks_url()).await,
        (ProfileKind::Local, Some(rt)) => verify(rt.issuer_url, rt.jwks_url).await,
        (ProfileKind::Local, None) => json!({
            "valid": Value::Null,
            "reason": format!("no local stack is running on {}; start `switchboard serve` to check signatures against its JWKS", ctx.data_dir.display()),
        }),
    };

    let stores = ctx.stores()?;
    let permissions = PermissionSet::new(stores.permissions.list().await?);
    let agents = stores.agents.list().await?;
    let explanations = explain_all(&permissions, &claims, agents.iter().map(|a| &a.id));

    if as_json {
        return output::json(&json!({
            "header": header,
            "claims": claims,
            "validity": validity,
            "agents": explanations,
        }));
    }
    println!("header  {}", serde_json::to_string_pretty(&header)?);
    println!("claims  {}", serde_json::to_string_pretty(&claims)?);
    match validity.get("valid").and_then(Value::as_bool) {
        Some(true) => println!(
            "valid   yes (against {})",
            validity["checked_against"].as_str().unwrap_or("")
        ),
        Some(false) => println!("valid   NO: {}", validity["reason"].as_str().unwrap_or("")),
        None => println!(
            "valid   unknown: {}",
            validity["reason"].as_str().unwrap_or("")
        ),
    }
    println!();
    let rows: Vec<Vec<String>> = explanations
        .iter()
        .map(|e| {
            vec![
                e.agent.clone(),
                if e.allowed { "yes" } else { "no" }.into(),
                e.reason.clone(),
            ]
        })
        .collect();
    output::table(&["AGENT", "REACHES", "WHY"], &rows);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use pretty_assertions::assert_eq;
    use switchboard_core::GatewayConfig;
    use switchboard_emulator::stack::{LocalStack, StackOptions};

    /// The local stack on free ports: its issuer stands in for Cognito.
    async fn stack() -> (tempfile::TempDir, LocalStack) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("issuer-key.pem");
        std::fs::copy(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../fixtures/test-issuer-key.pem"
            ),
            &key,
        )
        .unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let config = GatewayConfig {
            // Discovery ranks by words here; no model is loaded.
            model_dir: Some(dir.path().join("no-model")),
            ..GatewayConfig::default()
        };
        let stack = LocalStack::start(StackOptions {
            data_dir: dir.path().to_path_buf(),
            listen: "127.0.0.1:0".parse().unwrap(),
            config,
        })
        .await
        .unwrap();
        (dir, stack)
    }

    fn aws(issuer: &str, token_url: Option<&str>) -> AwsProfile {
        AwsProfile {
            region: "us-east-1".into(),
            table_prefix: "switchboard-".into(),
            secret_prefix: String::new(),
            issuer: issuer.into(),
            jwks_uri: None,
            token_url: token_url.map(str::to_owned),
            endpoint_url: None,
            aws_profile: None,
        }
    }

    #[tokio::test]
    async fn an_aws_profile_mints_from_the_token_endpoint_its_issuer_advertises() {
        let (_dir, stack) = stack().await;
        let info = stack.info.clone();
        // A trailing slash, as people write issuer URLs.
        let profile = aws(&format!("{}/", info.issuer_url), None);
        let http = token_http_client().unwrap();
        assert_eq!(
            token_endpoint(&http, "cognito", &profile).await.unwrap(),
            info.token_url
        );
        let scope = info.scopes[0].clone();
        let token = mint_from_profile(
            &http,
            "cognito",
            &profile,
            &info.client_id,
            &Secret::new(info.client_secret.clone()),
            std::slice::from_ref(&scope),
        )
        .await
        .unwrap();
        assert_eq!(token.expires_in, Some(3600));

        // The token verifies against the profile's issuer and JWKS, as an
        // AWS gateway checks it.
        let verifier = Verifier::new(
            VerifierConfig {
                issuer: profile.issuer_url().to_owned(),
                jwks_uri: Some(profile.jwks_url()),
                allowed_client_ids: None,
                leeway_secs: 30,
            },
            reqwest::Client::new(),
        );
        let principal = verifier.verify(&token.access_token).await.unwrap();
        assert_eq!(principal.client_id, info.client_id);
        assert_eq!(principal.scopes, vec![scope]);
        stack.shutdown().await;
    }

    #[tokio::test]
    async fn token_url_is_used_before_the_discovery_document() {
        let (_dir, stack) = stack().await;
        let info = stack.info.clone();
        // Nothing listens at the issuer: only token_url can work.
        let profile = aws("http://127.0.0.1:9", Some(&info.token_url));
        let http = token_http_client().unwrap();
        let token = mint_from_profile(
            &http,
            "cognito",
            &profile,
            &info.client_id,
            &Secret::new(info.client_secret.clone()),
            &[],
        )
        .await
        .unwrap();
        let (_, claims) = decode_jwt(&token.access_token).unwrap();
        assert_eq!(claims["client_id"], info.client_id.as_str());
        assert_eq!(claims["iss"], info.issuer_url.as_str());
        stack.shutdown().await;
    }

    #[tokio::test]
    async fn no_known_token_endpoint_is_a_clear_error() {
        let (_dir, stack) = stack().await;
        let http = token_http_client().unwrap();
        // The gateway serves no discovery document; port 9 answers nothing.
        for issuer in [stack.info.gateway_url.clone(), "http://127.0.0.1:9".into()] {
            let err = mint_from_profile(
                &http,
                "prod",
                &aws(&issuer, None),
                "c",
                &Secret::new("s3cr3t-value"),
                &[],
            )
            .await
            .unwrap_err()
            .to_string();
            assert!(
                err.starts_with("no token endpoint is known for profile prod: it has no token_url, and its issuer's ")
                    && err.contains(&format!("{issuer}/.well-known/openid-configuration"))
                    && err.contains("set token_url under [profiles.prod]"),
                "{err}"
            );
        }
        stack.shutdown().await;
    }

    #[tokio::test]
    async fn a_wrong_secret_is_refused_and_never_repeated() {
        let (_dir, stack) = stack().await;
        let info = stack.info.clone();
        let http = token_http_client().unwrap();
        let err = mint_from_profile(
            &http,
            "cognito",
            &aws(&info.issuer_url, None),
            &info.client_id,
            &Secret::new("not-the-secret-4711"),
            &[],
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(&format!(
                "the token endpoint {} refused client {}: invalid_client",
                info.token_url, info.client_id
            )),
            "{err}"
        );
        assert!(!err.contains("not-the-secret-4711"), "{err}");
        stack.shutdown().await;
    }

    /// `token mint` as `run` calls it on an AWS profile, with the secret piped.
    #[tokio::test]
    async fn token_mint_on_an_aws_profile_reads_the_secret_and_asks_the_endpoint() {
        let (dir, stack) = stack().await;
        let info = stack.info.clone();
        let aws = aws(&info.issuer_url, None);
        let ctx = Ctx {
            data_dir: dir.path().to_path_buf(),
            config: crate::paths::ConfigFile::default(),
            profile: switchboard_core::profile::Profile {
                name: "cognito".into(),
                production: false,
                kind: ProfileKind::Aws(aws.clone()),
            },
            config_path: dir.path().join("config.toml"),
        };
        let mint = |ttl: u64, issuer: Option<String>, piped: String| {
            let ctx = &ctx;
            let aws = &aws;
            let client = info.client_id.clone();
            async move {
                let mut stdin = piped.as_bytes();
                let input = SecretInput {
                    env: None,
                    stdin: &mut stdin,
                    terminal: false,
                };
                mint_aws(ctx, aws, &client, &[], ttl, issuer, input).await
            }
        };
        let token = mint(
            LOCAL_DEFAULT_TTL_SECS,
            None,
            format!("{}\n", info.client_secret),
        )
        .await
        .unwrap();
        let (header, claims) = decode_jwt(&token).unwrap();
        assert_eq!(header["alg"], "RS256");
        assert_eq!(claims["client_id"], info.client_id.as_str());
        assert_eq!(claims["iss"], info.issuer_url.as_str());
        assert_eq!(claims["token_use"], "access");

        // What only the local issuer takes is refused, before any secret is read.
        let err = mint(600, None, String::new())
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "--ttl is for the local profile; profile cognito's token endpoint decides how long its tokens live"
        );
        let err = mint(
            LOCAL_DEFAULT_TTL_SECS,
            Some("http://x".into()),
            String::new(),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("--issuer is for the local profile"),
            "{err}"
        );
        // Nothing piped: said, not sent.
        let err = mint(LOCAL_DEFAULT_TTL_SECS, None, String::new())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("no client secret for "), "{err}");
        stack.shutdown().await;
    }

    #[test]
    fn the_client_secret_comes_from_the_environment_or_standard_input() {
        let mut none: &[u8] = b"";
        let from_env = client_secret("c", Some("from-env".into()), &mut none, false).unwrap();
        assert_eq!(from_env.expose(), "from-env");

        let mut piped: &[u8] = b"piped-secret\r\nsecond line\n";
        let from_stdin = client_secret("c", None, &mut piped, false).unwrap();
        assert_eq!(from_stdin.expose(), "piped-secret");

        // An empty variable does not count; an empty input is refused.
        let mut empty: &[u8] = b"\n";
        let err = client_secret("c", Some(String::new()), &mut empty, false)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "no client secret for c: pipe it on standard input or set SWITCHBOARD_CLIENT_SECRET \
             (it is never taken from the command line)"
        );
    }
}
