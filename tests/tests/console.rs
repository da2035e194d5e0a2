//! The console end to end: the real binary in a real terminal (tmux), driven
//! with `send-keys` and read with `capture-pane`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A tmux server of our own (its own socket), one window running the console.
struct Tmux {
    socket: String,
}

const WAIT: Duration = Duration::from_secs(30);

impl Tmux {
    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("running tmux")
    }

    fn start(command: &str) -> Tmux {
        match Command::new("tmux").arg("-V").output() {
            Ok(o) if o.status.success() => {}
            _ => panic!("tmux is needed for the console's end-to-end test: apt-get install tmux"),
        }
        let t = Tmux {
            socket: format!("switchboard-e2e-{}", std::process::id()),
        };
        let out = t.cmd(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "console",
            "-x",
            "120",
            "-y",
            "40",
            command,
            ";",
            "set-option",
            "-t",
            "console",
            "remain-on-exit",
            "on",
        ]);
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "console"];
        args.extend_from_slice(keys);
        assert!(self.cmd(&args).status.success());
    }

    fn text(&self, text: &str) {
        assert!(self
            .cmd(&["send-keys", "-t", "console", "-l", text])
            .status
            .success());
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "console"]).stdout)
            .into_owned()
    }

    /// Waits until every needle is on the screen; returns the screen.
    fn wait_for(&self, needles: &[&str]) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if needles.iter().all(|n| screen.contains(n)) {
                return screen;
            }
            if start.elapsed() > WAIT {
                panic!(
                    "waited {WAIT:?} for {needles:?}; the screen shows:\n{screen}\n{}",
                    self.pane_state()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn pane_state(&self) -> String {
        String::from_utf8_lossy(
            &self
                .cmd(&[
                    "display-message",
                    "-p",
                    "-t",
                    "console",
                    "#{pane_dead} #{pane_dead_status}",
                ])
                .stdout,
        )
        .trim()
        .to_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

fn backend_url(data_dir: &Path, agent: &str) -> String {
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(data_dir.join("runtime.json")) {
            let v: Value = serde_json::from_str(&text).unwrap();
            return v["agents"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["id"] == agent)
                .unwrap()["url"]
                .as_str()
                .unwrap()
                .to_owned();
        }
        assert!(
            start.elapsed() < WAIT,
            "no runtime.json in {}",
            data_dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn console_end_to_end_under_tmux() {
    let dir = tempfile::tempdir().unwrap();
    common::install_test_key(dir.path());
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "").unwrap();
    // The exit status is written to a file: tmux does not always record it
    // when the pane's terminal closes before the process is reaped.
    let exit_file = dir.path().join("exit-status");
    let command = format!(
        "{} --data-dir '{}' --config '{}' --listen 127.0.0.1:0; echo $? > '{}'",
        common::binary().display(),
        dir.path().display(),
        config.display(),
        exit_file.display()
    );
    let tmux = Tmux::start(&command);
    tmux.wait_for(&["1:Agents", "Agents (3)", "local stack up at"]);

    // Add an agent by URL: the card fills in the form; the id is ours.
    let url = backend_url(dir.path(), "stream");
    tmux.keys(&["a"]);
    tmux.wait_for(&["Add an agent", "Backend URL"]);
    tmux.text(&url);
    tmux.keys(&["Enter"]);
    tmux.wait_for(&["Filled in from the agent's card"]);
    tmux.keys(&["C-u"]);
    tmux.text("e2e-stream");
    tmux.keys(&["Enter"]);
    tmux.wait_for(&["added agent e2e-stream", "Agents (4)"]);

    // Grant a new scope to it (its column comes first: e2e-stream < echo).
    tmux.keys(&["2"]);
    tmux.wait_for(&["Permissions: 4 scopes × 4 agents"]);
    tmux.keys(&["n"]);
    tmux.wait_for(&["Grant a new scope to e2e-stream"]);
    tmux.text("e2e/stream");
    tmux.keys(&["Enter"]);
    tmux.wait_for(&["e2e/stream now grants e2e-stream"]);

    // A client allowed that scope; its secret is shown once.
    tmux.keys(&["3", "a"]);
    tmux.wait_for(&["Add a client"]);
    tmux.text("e2e-client");
    tmux.keys(&["Tab"]);
    tmux.text("e2e/stream");
    tmux.keys(&["Enter"]);
    tmux.wait_for(&["Client e2e-client added", "client secret"]);
    tmux.keys(&["Enter"]);

    // Mint a token for it (clients: demo-client, e2e-client, …).
    tmux.keys(&["j", "m"]);
    tmux.wait_for(&["Mint a token for e2e-client", "[x] e2e/stream"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for(&["minted a token for e2e-client", "expires in 3600 s"]);

    // Stream a message to the new agent as that client.
    tmux.keys(&["5", "a"]);
    tmux.wait_for(&["Send to agent"]);
    tmux.keys(&["k", "k", "k", "k", "Enter", "c"]);
    tmux.wait_for(&["Send as client"]);
    tmux.keys(&["j", "Enter"]);
    tmux.wait_for(&["agent  e2e-stream", "as client  e2e-client"]);
    tmux.keys(&["i"]);
    tmux.text("hello from the e2e test");
    tmux.keys(&["Enter", "t"]);
    let screen = tmux.wait_for(&["TASK_STATE_COMPLETED", "artifactUpdate", "HTTP 200"]);
    assert!(screen.contains("statusUpdate"), "{screen}");

    // The same request in Traffic, with its events.
    tmux.keys(&["4"]);
    tmux.wait_for(&["e2e-client", "e2e-stream", "SendStreamingMessage", "200"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for(&["Request events", "── event 0", "\"task\": {"]);
    tmux.keys(&["G"]);
    tmux.wait_for(&["── finished 200", "TASK_STATE_COMPLETED"]);

    // Quit: the process ends cleanly and takes the stack down with it.
    tmux.keys(&["q"]);
    let start = Instant::now();
    loop {
        let status = std::fs::read_to_string(&exit_file).unwrap_or_default();
        if !status.trim().is_empty() {
            assert_eq!(
                status.trim(),
                "0",
                "the console exited with status {status}; log:\n{}",
                std::fs::read_to_string(dir.path().join("switchboard.log")).unwrap_or_default()
            );
            break;
        }
        assert!(
            start.elapsed() < WAIT,
            "the console did not exit (pane: {:?}):\n{}\n--- switchboard.log ---\n{}",
            tmux.pane_state(),
            tmux.screen(),
            std::fs::read_to_string(dir.path().join("switchboard.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !dir.path().join("runtime.json").exists(),
        "the stack was not shut down"
    );
    let log = std::fs::read_to_string(dir.path().join("switchboard.log")).unwrap();
    assert!(log.contains("console closing"), "{log}");
    assert!(
        log.contains("agent=e2e-stream method=SendStreamingMessage status=200"),
        "{log}"
    );
}
