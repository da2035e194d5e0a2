//! The server process: `switchboard serve --json` from the release build,
//! its CLI, and its resident memory and descriptors from /proc.

use super::*;

pub(crate) struct Serve {
    pub(crate) child: Child,
    pub(crate) info: Value,
    pub(crate) bin: PathBuf,
    pub(crate) data: PathBuf,
    pub(crate) stderr: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    pub(crate) fn start(bin: &Path, tmp: &Path) -> Result<Serve> {
        use std::os::unix::fs::PermissionsExt as _;
        let data = tmp.join("data");
        std::fs::create_dir_all(&data)?;
        // The fixture key spares the server generating one.
        let key = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/test-issuer-key.pem");
        let dst = data.join("issuer-key.pem");
        std::fs::copy(&key, &dst).with_context(|| format!("copying {}", key.display()))?;
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o600))?;
        let stderr = tmp.join("serve.stderr");
        let mut child = Command::new(bin)
            .arg("--data-dir")
            .arg(&data)
            .args(["serve", "--listen", "127.0.0.1:0", "--json"])
            .env_remove("RUST_LOG")
            .env_remove("SWITCHBOARD_PROFILE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr)?)
            .spawn()
            .with_context(|| format!("spawning {} serve", bin.display()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout pipe"))?;
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        // Read the JSON line, then keep draining so the server never blocks.
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent && line.trim_start().starts_with('{') {
                    sent = tx.send(line).is_ok();
                }
            }
        });
        let line = rx.recv_timeout(Duration::from_secs(120)).map_err(|_| {
            anyhow!(
                "`switchboard serve` printed no JSON line; its log:\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            )
        })?;
        let info: Value = serde_json::from_str(&line).context("the JSON line of serve")?;
        Ok(Serve {
            child,
            info,
            bin: bin.to_path_buf(),
            data,
            stderr,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn get(&self, key: &str) -> Result<String> {
        self.info[key]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("`serve --json` has no {key}: {}", self.info))
    }

    pub(crate) fn agent_url(&self, id: &str) -> Result<String> {
        self.info["agents"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["id"] == json!(id))
            .and_then(|a| a["url"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("`serve --json` lists no agent {id}"))
    }

    /// A CLI command on the server's data directory.
    pub(crate) fn cli(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.bin)
            .arg("--data-dir")
            .arg(&self.data)
            .args(args)
            .env_remove("SWITCHBOARD_PROFILE")
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() {
            bail!(
                "switchboard {}: {}\n{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// SIGTERM, then wait (SIGKILL after 10 s).
    pub(crate) fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `VmRSS` of a process, KiB.
pub(crate) fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS in /proc/{pid}/status"))
}

/// Open descriptors of a process.
pub(crate) fn fd_count(pid: u32) -> Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}
