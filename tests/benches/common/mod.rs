//! What the benchmarks that run the real binary share: finding it.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};

/// The `switchboard` binary: `given` (`--bin` / `SWITCHBOARD_BIN`), else the
/// one beside this benchmark (it runs as `<target>/release/deps/<bench>-<hash>`;
/// the binary is `<target>/release/switchboard`, `CARGO_TARGET_DIR` respected
/// for free).
pub(crate) fn switchboard_bin(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(bin) = given {
        if !bin.is_file() {
            bail!("--bin / SWITCHBOARD_BIN {} is not a file", bin.display());
        }
        return Ok(bin.to_path_buf());
    }
    let exe = std::env::current_exe()?;
    let candidates: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join("switchboard"))
        .collect();
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        anyhow!(
            "the switchboard binary is not built (looked for {}): run `cargo build --release -p switchboard` \
             (tests/bench does) or set SWITCHBOARD_BIN",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}
