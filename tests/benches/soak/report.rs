//! The report: samples over time, the checks and the verdict.

use super::*;

pub(crate) struct Report<'a> {
    pub(crate) cfg: &'a Config,
    pub(crate) warmup: Duration,
    pub(crate) traffic_time: Duration,
    pub(crate) counts: BTreeMap<(Class, Outcome), u64>,
    pub(crate) first_errors: Vec<String>,
    pub(crate) issued: u64,
    pub(crate) skipped: u64,
    pub(crate) max_in_flight: usize,
    pub(crate) left_in_flight: usize,
    pub(crate) samples: Vec<Sample>,
}

pub(crate) fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 120.0 && (s % 60.0).abs() < 0.5 {
        format!("{:.0}m", s / 60.0)
    } else {
        format!("{s:.1}s")
    }
}

pub(crate) fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

pub(crate) fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

impl Report<'_> {
    pub(crate) fn render(&self) -> (String, bool) {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n## soak: switchboard serve, {} at {} req/s (warm-up {})\n",
            human(self.cfg.duration),
            self.cfg.rate,
            human(self.warmup)
        );
        let achieved = self.issued as f64 / self.traffic_time.as_secs_f64();
        let _ = writeln!(
            out,
            "issued {} requests ({achieved:.1} req/s), skipped {} (over {MAX_IN_FLIGHT} in flight), max in flight {}, left in flight at the end {}\n",
            self.issued, self.skipped, self.max_in_flight, self.left_in_flight
        );

        // Requests by class and outcome.
        let mut labels: Vec<String> = self.counts.keys().map(|(_, o)| o.label()).collect();
        labels.sort();
        labels.dedup();
        let _ = write!(out, "| class   |");
        for l in &labels {
            let _ = write!(out, " {l:>8} |");
        }
        let _ = writeln!(out, "    total |");
        let _ = write!(out, "|---------|");
        for _ in &labels {
            let _ = write!(out, "---------:|");
        }
        let _ = writeln!(out, "---------:|");
        let mut by_label_total: BTreeMap<String, u64> = BTreeMap::new();
        for class in [Class::Send, Class::Invalid, Class::Stream, Class::Limited] {
            let _ = write!(out, "| {:<7} |", class.name());
            let mut total = 0;
            for l in &labels {
                let n: u64 = self
                    .counts
                    .iter()
                    .filter(|((c, o), _)| *c == class && &o.label() == l)
                    .map(|(_, n)| n)
                    .sum();
                total += n;
                *by_label_total.entry(l.clone()).or_default() += n;
                let _ = write!(out, " {n:>8} |");
            }
            let _ = writeln!(out, " {total:>8} |");
        }
        let _ = write!(out, "| all     |");
        for l in &labels {
            let _ = write!(out, " {:>8} |", by_label_total[l]);
        }
        let _ = writeln!(out, " {:>8} |\n", by_label_total.values().sum::<u64>());

        // Memory and descriptors.
        let _ = writeln!(
            out,
            "| when               |        t |       RSS |  fds | requests |"
        );
        let _ = writeln!(
            out,
            "|--------------------|---------:|----------:|-----:|---------:|"
        );
        for s in &self.samples {
            let _ = writeln!(
                out,
                "| {:<18} | {:>8} | {:>9} | {:>4} | {:>8} |",
                s.label,
                human(s.at),
                mib(s.rss_kib),
                s.fds,
                s.requests
            );
        }
        let _ = writeln!(out);

        // Checks.
        let five_xx: u64 = self
            .counts
            .iter()
            .filter(|((_, o), _)| matches!(o, Outcome::Status(s) if *s >= 500))
            .map(|(_, n)| n)
            .sum();
        let transport: u64 = self
            .counts
            .iter()
            .filter(|((_, o), _)| matches!(o, Outcome::Transport(_)))
            .map(|(_, n)| n)
            .sum();
        let unexpected: u64 = self
            .counts
            .iter()
            .filter(|((c, o), _)| match o {
                Outcome::Status(s) => !c.expected(*s),
                _ => true,
            })
            .map(|(_, n)| n)
            .sum();
        let baseline = self
            .samples
            .iter()
            .find(|s| s.label == "after warm-up")
            .or(self.samples.first());
        let end = self.samples.iter().find(|s| s.label == END);
        let mut checks: Vec<(String, bool, String)> = Vec::new();
        checks.push((
            "zero 5xx and transport errors".into(),
            five_xx == 0 && transport == 0,
            format!("{five_xx} 5xx, {transport} transport errors"),
        ));
        checks.push((
            "only expected statuses".into(),
            unexpected == 0 && self.left_in_flight == 0,
            format!(
                "{unexpected} unexpected, {} never finished",
                self.left_in_flight
            ),
        ));
        if let (Some(b), Some(e)) = (baseline, end) {
            let growth = e.rss_kib as i64 - b.rss_kib as i64;
            let pct = growth as f64 * 100.0 / b.rss_kib.max(1) as f64;
            let ok = pct <= RSS_SLACK_PCT || growth <= RSS_SLACK_KIB as i64;
            checks.push((
                format!(
                    "RSS end within {RSS_SLACK_PCT:.0}% or {} of warm-up",
                    mib(RSS_SLACK_KIB)
                ),
                ok,
                format!(
                    "{} -> {} ({:+.1} MiB, {pct:+.1}%)",
                    mib(b.rss_kib),
                    mib(e.rss_kib),
                    growth as f64 / 1024.0
                ),
            ));
            checks.push((
                format!("no fd growth (end <= warm-up + {FD_SLACK})"),
                e.fds <= b.fds + FD_SLACK,
                format!("{} -> {} (start {})", b.fds, e.fds, self.samples[0].fds),
            ));
        }
        let _ = writeln!(out, "| check | result | measured |");
        let _ = writeln!(out, "|---|---|---|");
        for (what, ok, measured) in &checks {
            let _ = writeln!(out, "| {what} | {} | {measured} |", verdict(*ok));
        }
        if !self.first_errors.is_empty() {
            let _ = writeln!(out, "\nfirst unexpected outcomes:");
            for e in &self.first_errors {
                let _ = writeln!(out, "  {e}");
            }
        }
        let pass = checks.iter().all(|(_, ok, _)| *ok);
        let _ = writeln!(out, "\nRESULT: {}", verdict(pass));
        (out, pass)
    }
}
