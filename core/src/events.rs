//! Traffic events for the console, published on a lossy broadcast bus that
//! never blocks the request path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::broadcast;

/// Events buffered per subscriber; a slow subscriber loses the oldest.
pub const BUS_CAPACITY: usize = 8192;

/// One thing that happened on the request path.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TrafficEvent {
    /// A request arrived and was routed (or rejected, see `Finished`).
    Started {
        /// Request id, unique within this process.
        id: u64,
        /// Arrival time.
        at: SystemTime,
        /// Caller's client id (`-` before authentication).
        client: String,
        /// Agent id from the path.
        agent: String,
        /// JSON-RPC method, or the HTTP method and path for other bindings.
        method: String,
    },
    /// One server-sent event passed through to the caller.
    Sse {
        /// Request id.
        id: u64,
        /// 0, 1, 2 … within the stream.
        seq: u64,
        /// The SSE `event:` field, if any.
        event: Option<String>,
        /// The SSE `data:` payload.
        data: String,
    },
    /// The response ended.
    Finished {
        /// Request id.
        id: u64,
        /// HTTP status sent.
        status: u16,
        /// From arrival to the last byte.
        latency: Duration,
        /// Why the gateway answered itself, or how the stream broke.
        error: Option<String>,
    },
}

impl TrafficEvent {
    /// The request id the event belongs to.
    pub fn request_id(&self) -> u64 {
        match self {
            TrafficEvent::Started { id, .. }
            | TrafficEvent::Sse { id, .. }
            | TrafficEvent::Finished { id, .. } => *id,
        }
    }
}

/// The bus. Cheap to clone.
#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<TrafficEvent>>,
    next_id: Arc<AtomicU64>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// A bus with [`BUS_CAPACITY`].
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(BUS_CAPACITY);
        EventBus {
            tx,
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }

    /// A fresh request id.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Is anyone listening? Lets the path skip work nobody will see.
    pub fn has_subscribers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Publishes without waiting; dropped when nobody listens.
    pub fn publish(&self, event: TrafficEvent) {
        if self.has_subscribers() {
            let _ = self.tx.send(Arc::new(event));
        }
    }

    /// Subscribes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<TrafficEvent>> {
        self.tx.subscribe()
    }
}
