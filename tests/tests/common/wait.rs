//! Waiting in tests on a busy machine (CI shares two CPUs with other work):
//! poll for what must happen with a generous deadline, and never let a
//! deadline or a clock boundary decide what a test proves.

use std::future::Future;
use std::time::{Duration, Instant};

use switchboard_core::ratelimit::{window_of, WINDOW_SECS};

use super::now;

/// How long a test waits for something that will happen (an edit reaching a
/// gateway, a store coming back, a process exiting) before it fails.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// How far past a bound the product sets itself (a timeout, a grace
/// period) a test lets a busy machine run before it calls the bound broken.
pub const SLACK: Duration = Duration::from_secs(30);

/// Polls `f` every 20 ms until it holds; fails saying `what` after `limit`.
pub async fn until<F, Fut>(what: &str, limit: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `burst` inside one rate-limit window (one UTC minute), so a test
/// can count exactly what one window admits. When less than `room` is left
/// of the current minute it starts at the next one; when a slow run still
/// crosses into the next minute, it runs the burst again from the start of
/// a later minute, whose counters nothing has touched yet.
pub async fn in_one_window<T, F, Fut>(room: Duration, mut burst: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    const ATTEMPTS: usize = 3;
    for attempt in 1..=ATTEMPTS {
        let left = WINDOW_SECS - now() % WINDOW_SECS;
        if attempt > 1 || left < room.as_secs() {
            tokio::time::sleep(Duration::from_secs(left) + Duration::from_millis(100)).await;
        }
        let window = window_of(now());
        let out = burst().await;
        if window_of(now()) == window {
            return out;
        }
        eprintln!("the burst crossed into the next rate-limit window (attempt {attempt}); once more in a fresh one");
    }
    panic!("the burst never fitted in one minute in {ATTEMPTS} attempts");
}
