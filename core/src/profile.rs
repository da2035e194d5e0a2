//! Profiles: which backends a command or the console works against.
//!
//! `local` (the default) is the SQLite data directory with the local issuer.
//! Any number of AWS profiles can be named in the config file:
//!
//! ```toml
//! [profiles.prod]
//! kind = "aws"
//! production = true                 # shown in red; writes need a typed confirmation
//! region = "eu-west-1"
//! table_prefix = "switchboard-prod-"
//! secret_prefix = "switchboard/prod/"
//! issuer = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf"
//! # jwks_uri = "…"                  # default: {issuer}/.well-known/jwks.json
//! # token_url = "…"                 # advertised in cards; `token mint` asks it for tokens
//! # endpoint_url = "http://127.0.0.1:5000"   # a local AWS, for tests
//! # aws_profile = "prod-admin"      # credentials: the standard AWS chain otherwise
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The name of the built-in local profile.
pub const LOCAL: &str = "local";

/// Settings of an AWS profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsProfile {
    /// AWS region.
    pub region: String,
    /// Prefix of every table name (`{prefix}agents`, …).
    #[serde(default = "default_table_prefix")]
    pub table_prefix: String,
    /// Prefix of secret names in Secrets Manager.
    #[serde(default)]
    pub secret_prefix: String,
    /// Token issuer: `https://cognito-idp.{region}.amazonaws.com/{poolId}`.
    pub issuer: String,
    /// JWKS URL; default `{issuer}/.well-known/jwks.json`.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Token endpoint (the user pool domain's `/oauth2/token`): advertised in
    /// cards, and where `token mint` asks for client-credentials tokens. When
    /// unset, `token mint` reads `token_endpoint` from the issuer's
    /// `/.well-known/openid-configuration`.
    #[serde(default)]
    pub token_url: Option<String>,
    /// Endpoint override for every AWS service (a local AWS in tests).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Named profile of the standard AWS credential chain.
    #[serde(default)]
    pub aws_profile: Option<String>,
}

impl AwsProfile {
    /// The issuer URL without a trailing slash (how Cognito writes `iss`).
    pub fn issuer_url(&self) -> &str {
        self.issuer.trim_end_matches('/')
    }

    /// The JWKS URL: `jwks_uri`, else `{issuer}/.well-known/jwks.json`.
    pub fn jwks_url(&self) -> String {
        self.jwks_uri
            .clone()
            .unwrap_or_else(|| format!("{}/.well-known/jwks.json", self.issuer_url()))
    }

    /// The issuer's discovery document, where its `token_endpoint` is read
    /// when `token_url` is not set.
    pub fn openid_configuration_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer_url())
    }
}

fn default_table_prefix() -> String {
    "switchboard-".to_owned()
}

/// What a profile points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ProfileKind {
    /// The local data directory and issuer.
    Local,
    /// DynamoDB, Secrets Manager and Cognito.
    Aws(AwsProfile),
}

/// A named profile as written in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileConfig {
    /// Marked production: shown in red, writes need a typed confirmation.
    #[serde(default)]
    pub production: bool,
    /// Backends.
    #[serde(flatten)]
    pub kind: ProfileKind,
}

/// A profile with its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Its name in the config file (`local` for the built-in one).
    pub name: String,
    /// Marked production.
    pub production: bool,
    /// Backends.
    pub kind: ProfileKind,
}

impl Profile {
    /// The built-in local profile.
    pub fn local() -> Profile {
        Profile {
            name: LOCAL.to_owned(),
            production: false,
            kind: ProfileKind::Local,
        }
    }

    /// The AWS settings, for an AWS profile.
    pub fn aws(&self) -> Option<&AwsProfile> {
        match &self.kind {
            ProfileKind::Aws(a) => Some(a),
            ProfileKind::Local => None,
        }
    }

    /// `local`, or `aws REGION` (with the endpoint when it is overridden).
    pub fn describe(&self) -> String {
        match &self.kind {
            ProfileKind::Local => "local".to_owned(),
            ProfileKind::Aws(a) => match &a.endpoint_url {
                Some(e) => format!("aws {} at {e}", a.region),
                None => format!("aws {}", a.region),
            },
        }
    }
}

/// Every profile: `local` plus those in the config file (a `[profiles.local]`
/// table may mark the local profile production, nothing else).
pub fn all_profiles(configured: &BTreeMap<String, ProfileConfig>) -> Vec<Profile> {
    let mut out = vec![Profile::local()];
    for (name, cfg) in configured {
        if name == LOCAL {
            if let Some(local) = out.first_mut() {
                local.production = cfg.production;
            }
            continue;
        }
        out.push(Profile {
            name: name.clone(),
            production: cfg.production,
            kind: cfg.kind.clone(),
        });
    }
    out
}

/// Finds a profile by name, with a message listing the known ones.
pub fn find_profile(
    configured: &BTreeMap<String, ProfileConfig>,
    name: &str,
) -> Result<Profile, String> {
    let all = all_profiles(configured);
    let names: Vec<String> = all.iter().map(|p| p.name.clone()).collect();
    all.into_iter().find(|p| p.name == name).ok_or_else(|| {
        format!(
            "no profile {name:?}; known profiles: {} (add AWS profiles under [profiles.NAME] in the config file)",
            names.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn parses_profiles() {
        #[derive(Deserialize)]
        struct File {
            profiles: BTreeMap<String, ProfileConfig>,
        }
        let f: File = toml_like(
            r#"{"profiles": {"prod": {"kind": "aws", "production": true, "region": "eu-west-1",
                "issuer": "https://cognito-idp.eu-west-1.amazonaws.com/p"}}}"#,
        );
        let all = all_profiles(&f.profiles);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], Profile::local());
        assert!(all[1].production);
        match &all[1].kind {
            ProfileKind::Aws(a) => assert_eq!(a.table_prefix, "switchboard-"),
            other => panic!("{other:?}"),
        }
        assert!(find_profile(&f.profiles, "nope")
            .unwrap_err()
            .contains("local, prod"));
        assert_eq!(all[0].describe(), "local");
        assert_eq!(all[1].describe(), "aws eu-west-1");
        let aws = all[1].aws().unwrap();
        assert_eq!(
            aws.jwks_url(),
            "https://cognito-idp.eu-west-1.amazonaws.com/p/.well-known/jwks.json"
        );
        assert_eq!(
            aws.openid_configuration_url(),
            "https://cognito-idp.eu-west-1.amazonaws.com/p/.well-known/openid-configuration"
        );
        assert!(all[0].aws().is_none());
    }

    #[test]
    fn production_defaults_to_false_and_local_can_be_marked() {
        let f: BTreeMap<String, ProfileConfig> = toml_like(
            r#"{"local": {"kind": "local", "production": true},
                "dev": {"kind": "aws", "region": "us-east-1", "issuer": "http://i/",
                        "endpoint_url": "http://127.0.0.1:5000"}}"#,
        );
        let all = all_profiles(&f);
        assert_eq!(all.len(), 2);
        assert!(all[0].production, "local marked production");
        assert!(!all[1].production);
        assert_eq!(all[1].describe(), "aws us-east-1 at http://127.0.0.1:5000");
        assert_eq!(
            all[1].aws().unwrap().jwks_url(),
            "http://i/.well-known/jwks.json"
        );
    }

    fn toml_like<T: serde::de::DeserializeOwned>(json: &str) -> T {
        serde_json::from_str(json).unwrap()
    }
}
