//! nginx as the reference proxy.

use super::*;

pub(crate) struct Nginx {
    pub(crate) bin: PathBuf,
    pub(crate) child: Option<Child>,
    pub(crate) port: u16,
    pub(crate) dir: PathBuf,
}

pub(crate) fn find_nginx(cfg: &Config) -> Result<PathBuf> {
    if let Some(bin) = &cfg.nginx {
        return Ok(bin.clone());
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for extra in [
        "/usr/sbin",
        "/usr/local/sbin",
        "/usr/local/nginx/sbin",
        "/sbin",
    ] {
        dirs.push(PathBuf::from(extra));
    }
    dirs.into_iter()
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!("nginx is not installed: apt-get install nginx-light (tests/bench does this), or set NGINX_BIN")
        })
}

pub(crate) fn nginx_version(bin: &Path) -> String {
    Command::new(bin)
        .arg("-v")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stderr)
                .trim()
                .trim_start_matches("nginx version: ")
                .to_owned()
        })
        .unwrap_or_else(|_| "nginx".into())
}

impl Nginx {
    pub(crate) fn start(cfg: &Config, tmp: &Path, upstream: SocketAddr) -> Result<Self> {
        let bin = find_nginx(cfg)?;
        let dir = tmp.join("nginx");
        std::fs::create_dir_all(&dir)?;
        // Temp paths for every compiled-in module, or nginx tries /var/lib/nginx.
        let built = Command::new(&bin)
            .arg("-V")
            .output()
            .with_context(|| format!("running {} -V", bin.display()))?;
        let built = String::from_utf8_lossy(&built.stderr).into_owned();
        let mut temp_paths = String::new();
        for (module, directive) in [
            ("", "client_body_temp_path"),
            ("proxy", "proxy_temp_path"),
            ("fastcgi", "fastcgi_temp_path"),
            ("uwsgi", "uwsgi_temp_path"),
            ("scgi", "scgi_temp_path"),
        ] {
            if module.is_empty() || !built.contains(&format!("--without-http_{module}_module")) {
                let _ = writeln!(temp_paths, "    {directive} {}/{directive};", dir.display());
            }
        }
        // As root, run the workers as root too: the temp dir is private (0700).
        let user = if std::fs::metadata(&dir)?.uid() == 0 {
            "user root root;\n"
        } else {
            ""
        };
        let port = StdTcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let d = dir.display();
        let conf = format!(
            "\
# Reference proxy for the gateway benchmark: plain proxy_pass, persistent
# connections on both sides, no logging.
{user}worker_processes 2;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
{temp_paths}    keepalive_requests 1000000;
    keepalive_timeout 75s;
    upstream echo_agent {{
        server {upstream};
        keepalive 128;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://echo_agent;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }}
    }}
}}
"
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let log = std::fs::File::create(dir.join("nginx.stderr"))?;
        let child = Command::new(&bin)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf_path)
            .args(["-e", "stderr", "-g", "daemon off; master_process on;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        let mut nginx = Nginx {
            bin,
            child: Some(child),
            port,
            dir,
        };
        nginx.wait_ready()?;
        eprintln!("nginx on 127.0.0.1:{port} → {upstream}");
        Ok(nginx)
    }

    pub(crate) fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    let mut why = String::new();
                    for f in ["nginx.stderr", "error.log"] {
                        if let Ok(mut file) = std::fs::File::open(self.dir.join(f)) {
                            let _ = file.read_to_string(&mut why);
                        }
                    }
                    bail!("nginx exited ({status}) at start-up:\n{why}");
                }
            }
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("nginx did not listen on {addr} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn uri(&self) -> Result<Uri> {
        Ok(format!("http://127.0.0.1:{}", self.port).parse()?)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub(crate) fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, Duration::from_secs(5));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, Duration::from_secs(2));
        }
    }
}
