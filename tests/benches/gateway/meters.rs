//! CPU accounting from /proc: who burns the cores.

use super::*;

#[derive(Default, Clone, Copy)]
pub(crate) struct CpuUse {
    pub(crate) client: Duration,
    pub(crate) serve: Duration,
    pub(crate) nginx: Duration,
}

impl CpuUse {
    pub(crate) fn plus(&self, other: &CpuUse) -> CpuUse {
        CpuUse {
            client: self.client + other.client,
            serve: self.serve + other.serve,
            nginx: self.nginx + other.nginx,
        }
    }

    pub(crate) fn since(&self, start: &CpuUse) -> CpuUse {
        CpuUse {
            client: self.client.saturating_sub(start.client),
            serve: self.serve.saturating_sub(start.serve),
            nginx: self.nginx.saturating_sub(start.nginx),
        }
    }
}

pub(crate) struct Meters {
    pub(crate) serve: Option<u32>,
    pub(crate) nginx: Option<u32>,
}

impl Meters {
    pub(crate) fn sample(&self) -> CpuUse {
        CpuUse {
            client: proc_cpu("self"),
            serve: self
                .serve
                .map_or(Duration::ZERO, |p| proc_cpu(&p.to_string())),
            nginx: self.nginx.map_or(Duration::ZERO, process_tree_cpu),
        }
    }
}

/// utime + stime of /proc/<pid>/stat; zero when unreadable.
pub(crate) fn proc_stat(pid: &str) -> Option<(u32, Duration)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // fields[0] is field 3 (state): ppid = field 4, utime = 14, stime = 15.
    let ppid: u32 = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux platform this runs on.
    Some((ppid, Duration::from_millis((utime + stime) * 10)))
}

pub(crate) fn proc_cpu(pid: &str) -> Duration {
    proc_stat(pid).map_or(Duration::ZERO, |(_, cpu)| cpu)
}

/// A process and its direct children (nginx: master + workers).
pub(crate) fn process_tree_cpu(pid: u32) -> Duration {
    let mut total = proc_cpu(&pid.to_string());
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            if let Some((ppid, cpu)) = proc_stat(name) {
                if ppid == pid {
                    total += cpu;
                }
            }
        }
    }
    total
}

/// The 1-minute load average, from /proc/loadavg.
pub(crate) fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
