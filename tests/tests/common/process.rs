//! The real `switchboard` binary: where it is, and `serve --json` processes
//! that are killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

/// The built `switchboard` binary: `$SWITCHBOARD_BIN`, else next to the test
/// executable's directory (`target/<profile>/switchboard`).
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("SWITCHBOARD_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/<test>-<hash> → target/<profile>/switchboard
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("switchboard");
    assert!(
        bin.exists(),
        "the switchboard binary is not built at {}: run `cargo build -p switchboard` (tests/run does) or set SWITCHBOARD_BIN",
        bin.display()
    );
    bin
}

/// The standard output of a command that must have succeeded; fails with
/// its exit status and both outputs when it did not.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// A running `switchboard … serve --json`; killed when dropped.
pub struct ServeProcess {
    pub child: Child,
    /// The JSON line it printed once ready.
    pub info: Value,
    /// Where its standard error goes.
    pub stderr: PathBuf,
}

impl ServeProcess {
    /// Starts `cmd` (a `serve --json` command line) with its standard error
    /// written to `stderr`, and waits for the JSON line it prints when
    /// ready; fails with what it logged when the line is not JSON.
    pub fn start(mut cmd: Command, stderr: &Path) -> ServeProcess {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(stderr).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let info: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`serve --json` printed no ready line ({e}): {line:?}\n{}",
                std::fs::read_to_string(stderr).unwrap_or_default()
            )
        });
        ServeProcess {
            child,
            info,
            stderr: stderr.to_path_buf(),
        }
    }

    /// A string field of the ready line (`gateway_url`, `token_url`, …).
    pub fn url(&self, key: &str) -> String {
        self.info[key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key} in {}", self.info))
            .to_owned()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
