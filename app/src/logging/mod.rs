//! Where log lines go: to stderr in batches for the CLI and `serve` (see
//! [`writer`]), to `switchboard.log` in the data directory while the console
//! owns the terminal. Both filter by `RUST_LOG`.

pub mod writer;

use std::path::Path;

use anyhow::Context as _;
use tracing_subscriber::EnvFilter;

/// The filter from `RUST_LOG`, else `default`.
fn filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default))
}

/// Logs to stderr, filtered by `RUST_LOG` (else `default`). Lines are
/// written in batches by a thread of their own, so a request never waits for
/// a write to stderr (one audit line per request) nor wakes a thread per
/// line; see [`writer`]. Nothing is dropped. Keep the guard until exit;
/// dropping it writes what is left.
pub fn init_stderr(default: &str) -> Option<writer::Guard> {
    use std::io::IsTerminal;
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(default))
        .with_ansi(color);
    match writer::batched(std::io::stderr()) {
        Ok((writer, guard)) => {
            let _ = builder.with_writer(writer).try_init();
            Some(guard)
        }
        Err(e) => {
            // No thread to spare: write each line directly instead.
            let _ = builder.with_writer(std::io::stderr).try_init();
            tracing::warn!(error = %e, "cannot start the log writer thread; logging directly");
            None
        }
    }
}

/// Logs to the file at `path` (created `0600`, appended to), filtered by
/// `RUST_LOG` (else `info`): the console's log, never on the screen.
pub fn init_file(path: &Path) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let file = opts
        .open(path)
        .with_context(|| format!("opening the log file {}", path.display()))?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter("info"))
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
    Ok(())
}
