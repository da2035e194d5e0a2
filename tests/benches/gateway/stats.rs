//! Latency histograms, error counts and one run's result.

use super::*;

pub(crate) struct Stats {
    /// Latency of successful requests, nanoseconds.
    pub(crate) hist: Histogram<u64>,
    /// Error class → (count, first detail seen).
    pub(crate) errors: BTreeMap<String, (u64, String)>,
    /// TCP connections opened.
    pub(crate) connects: u64,
}

impl Stats {
    pub(crate) fn new() -> Result<Self> {
        Ok(Stats {
            hist: Histogram::new_with_bounds(1, 120_000_000_000, 3)?,
            errors: BTreeMap::new(),
            connects: 0,
        })
    }

    pub(crate) fn ok(&mut self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.hist.saturating_record(ns.max(1));
    }

    pub(crate) fn error(&mut self, e: ReqError) {
        let entry = self.errors.entry(e.kind).or_insert((0, e.detail));
        entry.0 += 1;
    }

    pub(crate) fn merge(&mut self, other: Stats) -> Result<()> {
        self.hist.add(&other.hist)?;
        for (kind, (n, detail)) in other.errors {
            self.errors.entry(kind).or_insert((0, detail)).0 += n;
        }
        self.connects += other.connects;
        Ok(())
    }

    pub(crate) fn successes(&self) -> u64 {
        self.hist.len()
    }

    pub(crate) fn errors(&self) -> u64 {
        self.errors.values().map(|(n, _)| n).sum()
    }

    /// Percentile latency.
    pub(crate) fn p(&self, q: f64) -> Duration {
        Duration::from_nanos(self.hist.value_at_quantile(q / 100.0))
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) struct Run {
    pub(crate) target: &'static str,
    /// Which throughput round (0 for the latency runs).
    pub(crate) round: usize,
    pub(crate) stats: Stats,
    pub(crate) measured: Duration,
    pub(crate) cpu: CpuUse,
}

impl Run {
    pub(crate) fn rps(&self) -> f64 {
        self.stats.successes() as f64 / self.measured.as_secs_f64()
    }
}
