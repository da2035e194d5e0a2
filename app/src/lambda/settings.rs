//! Lambda mode's settings, read from environment variables (a function has
//! no config file): the AWS profile the gateway runs on and the few gateway
//! settings that differ in Lambda.
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `SWITCHBOARD_REGION` | region of the tables and secrets | `AWS_REGION` (set by Lambda) |
//! | `SWITCHBOARD_TABLE_PREFIX` | table names are `{prefix}agents`, … | `switchboard-` |
//! | `SWITCHBOARD_SECRET_PREFIX` | backend secrets live under it | empty |
//! | `SWITCHBOARD_ISSUER` | token issuer (the user pool URL) | required |
//! | `SWITCHBOARD_JWKS_URL` | signing keys | `{issuer}/.well-known/jwks.json` |
//! | `SWITCHBOARD_TOKEN_URL` | token endpoint advertised in cards | `{issuer}/oauth2/token` |
//! | `SWITCHBOARD_PUBLIC_URL` | where callers reach the gateway (the API stage URL) | required |
//! | `SWITCHBOARD_REGISTRY_MAX_AGE_MS` | oldest registry view a request is decided from | 1000 |
//! | `SWITCHBOARD_REGISTRY_POLL_MS` | background check while an invocation runs | the max age |
//! | `SWITCHBOARD_DEFAULT_RATE_LIMIT` | requests per minute per client for agents without a limit | 600 |
//! | `SWITCHBOARD_BODY_LIMIT` | largest request body, bytes | 6 MB (Lambda's own limit) |
//!
//! `AWS_ENDPOINT_URL` points every AWS call elsewhere (a local AWS), as for
//! any AWS profile.

use std::time::Duration;

use switchboard_core::profile::AwsProfile;
use switchboard_core::GatewayConfig;

/// Lambda's limit on a request payload: 6 MB.
pub const LAMBDA_BODY_LIMIT: u64 = 6 * 1024 * 1024;
/// Default [`LambdaSettings::registry_max_age`].
pub const DEFAULT_REGISTRY_MAX_AGE_MS: u64 = 1_000;

/// Everything Lambda mode is configured with.
#[derive(Debug, Clone, PartialEq)]
pub struct LambdaSettings {
    /// The tables, secrets and issuer.
    pub profile: AwsProfile,
    /// Gateway settings (issuer, JWKS, token URL, limits filled in).
    pub gateway: GatewayConfig,
    /// Where callers reach the gateway.
    pub public_url: String,
    /// A request is never decided from a registry view the store confirmed
    /// longer ago than this: a request that finds it older (an environment
    /// just thawed, or idle) checks the store first.
    pub registry_max_age: Duration,
}

fn required(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    what: &str,
) -> Result<String, String> {
    get(name)
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| format!("{name} is not set: it must hold {what}"))
}

fn optional(get: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    get(name).filter(|v| !v.trim().is_empty())
}

fn number(get: &impl Fn(&str) -> Option<String>, name: &str, default: u64) -> Result<u64, String> {
    match optional(get, name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("{name} must be a whole number, not {v:?}")),
    }
}

fn url(name: &str, value: String) -> Result<String, String> {
    let parsed =
        url::Url::parse(&value).map_err(|e| format!("{name} is not a URL ({value:?}): {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{name} must be an http(s) URL, not {value:?}"));
    }
    Ok(value.trim_end_matches('/').to_owned())
}

impl LambdaSettings {
    /// Reads the settings through `get` (the process environment in
    /// production, a map in tests).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<LambdaSettings, String> {
        let region = optional(&get, "SWITCHBOARD_REGION")
            .or_else(|| optional(&get, "AWS_REGION"))
            .ok_or("neither SWITCHBOARD_REGION nor AWS_REGION is set")?;
        let issuer = url(
            "SWITCHBOARD_ISSUER",
            required(
                &get,
                "SWITCHBOARD_ISSUER",
                "the token issuer, e.g. https://cognito-idp.REGION.amazonaws.com/POOL_ID",
            )?,
        )?;
        let public_url = url(
            "SWITCHBOARD_PUBLIC_URL",
            required(
                &get,
                "SWITCHBOARD_PUBLIC_URL",
                "the URL callers reach the gateway at (the API stage URL)",
            )?,
        )?;
        let jwks_uri = optional(&get, "SWITCHBOARD_JWKS_URL")
            .map(|v| url("SWITCHBOARD_JWKS_URL", v))
            .transpose()?;
        let token_url = optional(&get, "SWITCHBOARD_TOKEN_URL")
            .map(|v| url("SWITCHBOARD_TOKEN_URL", v))
            .transpose()?;
        let profile = AwsProfile {
            region,
            table_prefix: optional(&get, "SWITCHBOARD_TABLE_PREFIX")
                .unwrap_or_else(|| "switchboard-".to_owned()),
            secret_prefix: get("SWITCHBOARD_SECRET_PREFIX").unwrap_or_default(),
            issuer: issuer.clone(),
            jwks_uri: jwks_uri.clone(),
            token_url: token_url.clone(),
            endpoint_url: None,
            aws_profile: None,
        };
        let max_age_ms = number(
            &get,
            "SWITCHBOARD_REGISTRY_MAX_AGE_MS",
            DEFAULT_REGISTRY_MAX_AGE_MS,
        )?;
        if max_age_ms == 0 {
            return Err("SWITCHBOARD_REGISTRY_MAX_AGE_MS must be at least 1".into());
        }
        let defaults = GatewayConfig::default();
        let rate = number(
            &get,
            "SWITCHBOARD_DEFAULT_RATE_LIMIT",
            defaults.default_rate_limit.into(),
        )?;
        let gateway = GatewayConfig {
            public_url: Some(public_url.clone()),
            jwks_uri: Some(profile.jwks_url()),
            token_url: Some(
                token_url.unwrap_or_else(|| format!("{}/oauth2/token", profile.issuer_url())),
            ),
            issuer: Some(issuer),
            default_rate_limit: u32::try_from(rate)
                .map_err(|_| "SWITCHBOARD_DEFAULT_RATE_LIMIT is too large".to_owned())?,
            body_limit: number(&get, "SWITCHBOARD_BODY_LIMIT", LAMBDA_BODY_LIMIT)?,
            // The background poll only runs while an invocation does (it
            // spares busy environments the check on the request); the
            // request itself checks the view's age (see `fresh`).
            registry_poll_ms: number(&get, "SWITCHBOARD_REGISTRY_POLL_MS", max_age_ms)?.max(1),
            ..defaults
        };
        Ok(LambdaSettings {
            profile,
            gateway,
            public_url,
            registry_max_age: Duration::from_millis(max_age_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use pretty_assertions::assert_eq;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const ISSUER: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Abc";

    #[test]
    fn reads_a_full_environment() {
        let s = LambdaSettings::from_env(env(&[
            ("AWS_REGION", "eu-west-1"),
            ("SWITCHBOARD_TABLE_PREFIX", "sb-prod-"),
            ("SWITCHBOARD_SECRET_PREFIX", "sb/prod/"),
            ("SWITCHBOARD_ISSUER", ISSUER),
            (
                "SWITCHBOARD_TOKEN_URL",
                "https://sb.auth.eu-west-1.amazoncognito.com/oauth2/token",
            ),
            (
                "SWITCHBOARD_PUBLIC_URL",
                "https://x.execute-api.eu-west-1.amazonaws.com/prod/",
            ),
            ("SWITCHBOARD_REGISTRY_MAX_AGE_MS", "250"),
        ]))
        .unwrap();
        assert_eq!(s.profile.region, "eu-west-1");
        assert_eq!(s.profile.table_prefix, "sb-prod-");
        assert_eq!(s.profile.secret_prefix, "sb/prod/");
        assert_eq!(
            s.public_url,
            "https://x.execute-api.eu-west-1.amazonaws.com/prod"
        );
        assert_eq!(
            s.gateway.jwks_uri.as_deref(),
            Some(&*format!("{ISSUER}/.well-known/jwks.json"))
        );
        assert_eq!(
            s.gateway.token_url.as_deref(),
            Some("https://sb.auth.eu-west-1.amazoncognito.com/oauth2/token")
        );
        assert_eq!(s.gateway.body_limit, LAMBDA_BODY_LIMIT);
        assert_eq!(s.registry_max_age, Duration::from_millis(250));
        assert_eq!(s.gateway.registry_poll_ms, 250);
    }

    #[test]
    fn says_what_is_missing_or_wrong() {
        let e = LambdaSettings::from_env(env(&[("AWS_REGION", "us-east-1")])).unwrap_err();
        assert!(e.contains("SWITCHBOARD_ISSUER is not set"), "{e}");
        let e = LambdaSettings::from_env(env(&[("SWITCHBOARD_ISSUER", ISSUER)])).unwrap_err();
        assert!(e.contains("AWS_REGION"), "{e}");
        let e = LambdaSettings::from_env(env(&[
            ("AWS_REGION", "us-east-1"),
            ("SWITCHBOARD_ISSUER", ISSUER),
            ("SWITCHBOARD_PUBLIC_URL", "not a url"),
        ]))
        .unwrap_err();
        assert!(e.contains("SWITCHBOARD_PUBLIC_URL is not a URL"), "{e}");
        let e = LambdaSettings::from_env(env(&[
            ("AWS_REGION", "us-east-1"),
            ("SWITCHBOARD_ISSUER", ISSUER),
            ("SWITCHBOARD_PUBLIC_URL", "https://gw"),
            ("SWITCHBOARD_REGISTRY_MAX_AGE_MS", "soon"),
        ]))
        .unwrap_err();
        assert!(e.contains("whole number"), "{e}");
    }
}
