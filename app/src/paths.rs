//! Where data and configuration live: flags, then environment, then XDG.

use std::path::{Path, PathBuf};

use anyhow::Context;
use etcetera::BaseStrategy;
use serde::Deserialize;
use switchboard_core::GatewayConfig;

/// The config file's contents.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Gateway settings.
    #[serde(default)]
    pub gateway: GatewayConfig,
    /// Named profiles besides the built-in `local`.
    #[serde(default)]
    pub profiles: std::collections::BTreeMap<String, switchboard_core::profile::ProfileConfig>,
}

/// The data directory: `--data-dir`, `SWITCHBOARD_DATA`, or `$XDG_DATA_HOME/switchboard`.
pub fn data_dir(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("SWITCHBOARD_DATA") {
        return Ok(PathBuf::from(p));
    }
    let base = etcetera::choose_base_strategy().context("cannot find the home directory")?;
    Ok(base.data_dir().join("switchboard"))
}

/// The config file path: `--config`, `SWITCHBOARD_CONFIG`, or `$XDG_CONFIG_HOME/switchboard/config.toml`.
pub fn config_path(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("SWITCHBOARD_CONFIG") {
        return Ok(PathBuf::from(p));
    }
    let base = etcetera::choose_base_strategy().context("cannot find the home directory")?;
    Ok(base.config_dir().join("switchboard").join("config.toml"))
}

/// Loads the config file; a missing file at the default place means defaults,
/// a missing file that was named explicitly is an error.
pub fn load_config(flag: Option<&Path>) -> anyhow::Result<ConfigFile> {
    let explicit = flag.is_some() || std::env::var_os("SWITCHBOARD_CONFIG").is_some();
    let path = config_path(flag)?;
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("in {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            Ok(ConfigFile::default())
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}
