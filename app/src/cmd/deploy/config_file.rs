//! Writes a deployed stack's profile into the config file, keeping
//! everything else in the file as it was (comments and order included).

use std::path::Path;

use anyhow::Context as _;
use toml_edit::{value, DocumentMut, Item, Table};

/// What a deployment sets in a profile; every other key is left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileUpdate {
    /// Region.
    pub region: String,
    /// Table prefix.
    pub table_prefix: String,
    /// Secret prefix.
    pub secret_prefix: String,
    /// Issuer, when the stack's output gave one.
    pub issuer: Option<String>,
    /// Token endpoint, when the stack's output gave one.
    pub token_url: Option<String>,
    /// Endpoint override (a local AWS), kept for a new profile.
    pub endpoint_url: Option<String>,
}

/// `text` with `[profiles.{name}]` set from `update`.
pub fn apply(text: &str, name: &str, update: &ProfileUpdate) -> anyhow::Result<String> {
    let mut doc: DocumentMut = text.parse().context("the config file is not valid TOML")?;
    let profiles = doc
        .entry("profiles")
        .or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(true);
            Item::Table(t)
        })
        .as_table_mut()
        .context("`profiles` in the config file is not a table")?;
    let profile = profiles
        .entry(name)
        .or_insert_with(|| Item::Table(Table::new()))
        .as_table_mut()
        .with_context(|| format!("`profiles.{name}` in the config file is not a table"))?;
    profile["kind"] = value("aws");
    profile["region"] = value(&update.region);
    profile["table_prefix"] = value(&update.table_prefix);
    profile["secret_prefix"] = value(&update.secret_prefix);
    if let Some(i) = &update.issuer {
        profile["issuer"] = value(i);
    }
    if let Some(t) = &update.token_url {
        profile["token_url"] = value(t);
    }
    if let Some(e) = &update.endpoint_url {
        if !profile.contains_key("endpoint_url") {
            profile["endpoint_url"] = value(e);
        }
    }
    Ok(doc.to_string())
}

/// Applies `update` to the file at `path` (created when missing).
pub fn write(path: &Path, name: &str, update: &ProfileUpdate) -> anyhow::Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let new = apply(&text, name, update)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, new).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn update() -> ProfileUpdate {
        ProfileUpdate {
            region: "eu-west-1".into(),
            table_prefix: "sb-prod-".into(),
            secret_prefix: "sb/prod/".into(),
            issuer: Some("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_X".into()),
            token_url: Some("https://d.auth.eu-west-1.amazoncognito.com/oauth2/token".into()),
            endpoint_url: None,
        }
    }

    #[test]
    fn adds_a_profile_and_keeps_the_rest() {
        let text = "# my settings\n[gateway]\nleeway_secs = 10\n\n[profiles.dev]\nkind = \"aws\" # dev\nregion = \"us-east-1\"\nissuer = \"http://i\"\n";
        let out = apply(text, "prod", &update()).unwrap();
        assert!(
            out.starts_with("# my settings\n[gateway]\nleeway_secs = 10\n"),
            "{out}"
        );
        assert!(out.contains("kind = \"aws\" # dev"), "{out}");
        let parsed: toml::Table = toml::from_str(&out).unwrap();
        let prod = &parsed["profiles"]["prod"];
        assert_eq!(prod["region"].as_str(), Some("eu-west-1"));
        assert_eq!(prod["table_prefix"].as_str(), Some("sb-prod-"));
        assert_eq!(prod["kind"].as_str(), Some("aws"));
    }

    #[test]
    fn updates_a_profile_in_place_keeping_its_other_keys() {
        let text = "[profiles.prod]\nkind = \"aws\"\nproduction = true\nregion = \"eu-west-1\"\nissuer = \"old\"\naws_profile = \"admin\"\n";
        let mut u = update();
        u.token_url = None;
        let out = apply(text, "prod", &u).unwrap();
        let parsed: toml::Table = toml::from_str(&out).unwrap();
        let prod = &parsed["profiles"]["prod"];
        assert_eq!(prod["production"].as_bool(), Some(true));
        assert_eq!(prod["aws_profile"].as_str(), Some("admin"));
        assert_eq!(prod["issuer"].as_str(), u.issuer.as_deref());
        assert!(prod.get("token_url").is_none());
        // The result is a profile Switchboard reads.
        let cfg: switchboard_core::profile::ProfileConfig =
            toml::from_str(&toml::to_string(prod).unwrap()).unwrap();
        assert!(cfg.production);
    }
}
