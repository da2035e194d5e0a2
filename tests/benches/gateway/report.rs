//! The report: throughput and latency tables against the targets.

use super::*;

pub(crate) struct Report<'a> {
    pub(crate) cfg: &'a Config,
    pub(crate) cpus: usize,
    pub(crate) nginx_version: String,
    /// 1-minute load average before and after the runs.
    pub(crate) load_before: Option<f64>,
    pub(crate) load_after: Option<f64>,
    pub(crate) self_test: bool,
    pub(crate) throughput: &'a [Run],
    pub(crate) latency: &'a [Run],
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

pub(crate) fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

pub(crate) fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

/// CPU microseconds per successful request.
pub(crate) fn per_req(cpu: Duration, n: u64) -> String {
    if n == 0 || cpu.is_zero() {
        "-".into()
    } else {
        format!("{:.0}", cpu.as_secs_f64() * 1e6 / n as f64)
    }
}

impl Report<'_> {
    pub(crate) fn total_errors(&self) -> u64 {
        self.throughput
            .iter()
            .chain(self.latency)
            .map(|r| r.stats.errors())
            .sum()
    }

    pub(crate) fn find<'r>(runs: &'r [Run], name: &str) -> Option<&'r Run> {
        runs.iter().find(|r| r.target == name)
    }

    /// The target's round with the median throughput (the lower one of two
    /// middles).
    pub(crate) fn median<'r>(runs: &'r [Run], name: &str) -> Option<&'r Run> {
        let mut of: Vec<&Run> = runs.iter().filter(|r| r.target == name).collect();
        of.sort_by(|a, b| a.rps().total_cmp(&b.rps()));
        of.get(of.len().saturating_sub(1) / 2).copied()
    }

    /// `a / b` in each round that ran both.
    pub(crate) fn round_ratios(&self, a: &str, b: &str) -> Vec<f64> {
        (0..self.cfg.rounds)
            .filter_map(|round| {
                let of = |name: &str| {
                    self.throughput
                        .iter()
                        .find(|r| r.target == name && r.round == round)
                        .map(Run::rps)
                };
                match (of(a), of(b)) {
                    (Some(x), Some(y)) if y > 0.0 => Some(x / y),
                    _ => None,
                }
            })
            .collect()
    }

    pub(crate) fn render(&self) -> String {
        let mut o = String::new();
        let cfg = self.cfg;
        let bar = "=".repeat(92);
        let _ = writeln!(o, "\n{bar}");
        let _ = writeln!(
            o,
            "Switchboard gateway benchmark — A2A 1.0 SendMessage (JSON-RPC) to the echo agent, loopback"
        );
        if self.self_test {
            let _ = writeln!(
                o,
                "SELF-TEST: an in-process stand-in, not switchboard (its CPU counts as client)"
            );
        }
        let _ = writeln!(
            o,
            "{} CPUs shared by load generator and servers; reference proxy: {}",
            self.cpus, self.nginx_version
        );
        if let (Some(before), Some(after)) = (self.load_before, self.load_after) {
            let _ = writeln!(
                o,
                "load average (1 min) before {before:.2}, after {after:.2}{}",
                if before > 0.5 * self.cpus as f64 {
                    " — OTHER PROCESSES WERE BUSY: throughput and tail latency are understated; \
                     CPU µs/req is still comparable"
                } else {
                    ""
                }
            );
        }
        let _ = writeln!(o, "{bar}");

        let _ = writeln!(
            o,
            "\nThroughput: {} keep-alive connections, closed loop, {} warm-up + {} measured each;\n\
             each target's median of {} round(s), with the range of its rounds",
            cfg.connections,
            secs(cfg.warmup),
            secs(cfg.duration),
            cfg.rounds
        );
        let _ = writeln!(
            o,
            "  {:<10} {:>11} {:>15} {:>11} {:>11} {:>8} {:>7}   {:<24}",
            "path",
            "req/s",
            "rounds",
            "p50",
            "p99",
            "errors",
            "conns",
            "CPU µs/req client/serve/nginx"
        );
        for name in ["direct", "gateway", "nginx"] {
            let Some(r) = Self::median(self.throughput, name) else {
                continue;
            };
            let all: Vec<f64> = self
                .throughput
                .iter()
                .filter(|x| x.target == name)
                .map(Run::rps)
                .collect();
            let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = all.iter().copied().fold(0.0, f64::max);
            let n = r.stats.successes();
            let _ = writeln!(
                o,
                "  {:<10} {:>11.0} {:>15} {:>11} {:>11} {:>8} {:>7}   {:>6} / {:>6} / {:>6}",
                r.target,
                r.rps(),
                format!("{lo:.0}-{hi:.0}"),
                ms(r.stats.p(50.0)),
                ms(r.stats.p(99.0)),
                r.stats.errors(),
                r.stats.connects,
                per_req(r.cpu.client, n),
                per_req(r.cpu.serve, n),
                per_req(r.cpu.nginx, n),
            );
        }
        let rps = |name: &str| Self::median(self.throughput, name).map_or(0.0, Run::rps);
        let (direct, gateway, nginx) = (rps("direct"), rps("gateway"), rps("nginx"));
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        let gw_nginx = ratio(gateway, nginx);
        let _ = writeln!(o, "\n  ratios");
        let _ = writeln!(
            o,
            "    gateway / nginx    {:>6.2}x    target >= {:.1}x   {}",
            gw_nginx,
            TARGET_GATEWAY_VS_NGINX,
            verdict(gw_nginx >= TARGET_GATEWAY_VS_NGINX)
        );
        let per_round = self.round_ratios("gateway", "nginx");
        if per_round.len() > 1 {
            let list: Vec<String> = per_round.iter().map(|r| format!("{r:.2}")).collect();
            let _ = writeln!(o, "      (each round: {})", list.join(" "));
        }
        let _ = writeln!(o, "    gateway / direct   {:>6.2}x", ratio(gateway, direct));
        let _ = writeln!(o, "    nginx / direct     {:>6.2}x", ratio(nginx, direct));

        let _ = writeln!(
            o,
            "\nAdded latency: open loop {} req/s, {} warm-up + {} measured each, alternating 1 s slices",
            cfg.rate,
            secs(cfg.warmup),
            secs(cfg.latency_duration)
        );
        let _ = writeln!(
            o,
            "  {:<10} {:>11} {:>11} {:>11} {:>11} {:>8}   {:<16}",
            "path", "achieved/s", "p50", "p99", "p99.9", "errors", "CPU µs/req serve"
        );
        for r in self.latency {
            let _ = writeln!(
                o,
                "  {:<10} {:>11.0} {:>11} {:>11} {:>11} {:>8}   {:>6}",
                r.target,
                r.rps(),
                ms(r.stats.p(50.0)),
                ms(r.stats.p(99.0)),
                ms(r.stats.p(99.9)),
                r.stats.errors(),
                per_req(r.cpu.serve, r.stats.successes()),
            );
        }
        if let (Some(d), Some(g)) = (
            Self::find(self.latency, "direct"),
            Self::find(self.latency, "gateway"),
        ) {
            let added = |q: f64| (g.stats.p(q).as_secs_f64() - d.stats.p(q).as_secs_f64()) * 1000.0;
            let (a50, a99) = (added(50.0), added(99.0));
            let _ = writeln!(
                o,
                "  added p50  {:>8.3} ms    target <= {:.1} ms   {}",
                a50,
                TARGET_ADDED_P50_MS,
                verdict(a50 <= TARGET_ADDED_P50_MS)
            );
            let _ = writeln!(
                o,
                "  added p99  {:>8.3} ms    target <= {:.1} ms   {}",
                a99,
                TARGET_ADDED_P99_MS,
                verdict(a99 <= TARGET_ADDED_P99_MS)
            );
        }

        let errors = self.total_errors();
        if errors > 0 {
            let _ = writeln!(o, "\n{}", "!".repeat(92));
            let _ = writeln!(
                o,
                "!!! {errors} REQUEST ERRORS — the numbers above are NOT valid"
            );
            for r in self.throughput.iter().chain(self.latency) {
                for (kind, (n, detail)) in &r.stats.errors {
                    let _ = writeln!(o, "!!!   {:<8} {n} x {kind}: {detail}", r.target);
                }
            }
            let _ = writeln!(o, "{}", "!".repeat(92));
        } else {
            let _ = writeln!(o, "\nno request errors");
        }
        o
    }
}
