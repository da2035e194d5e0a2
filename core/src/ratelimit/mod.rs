//! Per-minute limits: window arithmetic and the decision.
//!
//! A window is one UTC minute: `window = unix_seconds / 60`. Each (client,
//! agent, window) has a counter in the [`CounterStore`], incremented
//! atomically only while below the limit, so concurrent requests across any
//! number of gateway instances admit exactly `limit` per window.

use std::sync::Arc;

use crate::error::GatewayError;
use crate::registry::{CounterKey, CounterOutcome, CounterStore};

/// Seconds per window.
pub const WINDOW_SECS: u64 = 60;

/// The window `now` (Unix seconds) falls in.
pub fn window_of(now: u64) -> u64 {
    now / WINDOW_SECS
}

/// Seconds until the window holding `now` ends (1 ..= 60).
pub fn reset_in(now: u64) -> u64 {
    WINDOW_SECS - now % WINDOW_SECS
}

/// When a window's counter may be deleted: one full window after it ends
/// (the end of time, `u64::MAX`, for the last windows a `u64` can hold).
pub fn expiry_of(window: u64) -> u64 {
    window.saturating_add(2).saturating_mul(WINDOW_SECS)
}

/// What the caller is told about its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Requests per minute.
    pub limit: u64,
    /// Left in this window after this request.
    pub remaining: u64,
    /// Seconds until the window resets.
    pub reset: u64,
}

/// Counts requests against per-agent limits.
#[derive(Clone)]
pub struct RateLimiter {
    counters: Arc<dyn CounterStore>,
}

impl RateLimiter {
    /// A limiter over the given counters.
    pub fn new(counters: Arc<dyn CounterStore>) -> Self {
        RateLimiter { counters }
    }

    /// Counts one request of `client` to `agent` at `now` (Unix seconds).
    /// `Err(RateLimited)` when over, `Err(Unavailable)` when the store fails.
    pub async fn admit(
        &self,
        client: &str,
        agent: &str,
        limit: u64,
        now: u64,
    ) -> Result<Budget, GatewayError> {
        let window = window_of(now);
        let key = CounterKey {
            client_id: client.to_owned(),
            agent_id: agent.to_owned(),
            window,
        };
        let reset = reset_in(now);
        match self
            .counters
            .try_increment(&key, limit, window * WINDOW_SECS, expiry_of(window))
            .await?
        {
            CounterOutcome::Allowed(n) => Ok(Budget {
                limit,
                remaining: limit.saturating_sub(n),
                reset,
            }),
            CounterOutcome::Limited(_) => Err(GatewayError::RateLimited {
                limit,
                retry_after: reset,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows() {
        assert_eq!(window_of(0), 0);
        assert_eq!(window_of(59), 0);
        assert_eq!(window_of(60), 1);
        assert_eq!(reset_in(0), 60);
        assert_eq!(reset_in(59), 1);
        assert_eq!(reset_in(61), 59);
        assert_eq!(expiry_of(1), 180);
        assert_eq!(window_of(u64::MAX), 307_445_734_561_825_860);
        assert_eq!(reset_in(u64::MAX), 45);
        assert_eq!(expiry_of(window_of(u64::MAX)), u64::MAX);
        assert_eq!(expiry_of(u64::MAX), u64::MAX);
    }
}
