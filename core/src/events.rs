//! Traffic events for the console, published on a lossy broadcast bus that
//! never blocks the request path.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
    /// A captured body (see [`EventBus::capture_limit`]): the JSON-RPC
    /// request's body, or a non-streaming response's, up to the cap. Never
    /// a header: tokens and `Authorization` values are not captured.
    Body {
        /// Request id.
        id: u64,
        /// `request` or `response`.
        direction: Direction,
        /// The body's first bytes, as UTF-8 (invalid sequences replaced).
        data: String,
        /// The body's whole length in bytes.
        bytes: u64,
        /// `data` holds only the first bytes: the body passed the cap.
        truncated: bool,
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
            | TrafficEvent::Body { id, .. }
            | TrafficEvent::Finished { id, .. } => *id,
        }
    }
}

/// Which body a [`TrafficEvent::Body`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// What the caller sent.
    Request,
    /// What the agent answered.
    Response,
}

/// Cap on captured bodies when capture is on and no cap is configured.
pub const DEFAULT_CAPTURE_LIMIT: usize = 64 * 1024;

/// The bus. Cheap to clone.
#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<TrafficEvent>>,
    next_id: Arc<AtomicU64>,
    /// Bytes of each body captured; 0 = capture off.
    capture: Arc<AtomicUsize>,
    /// Subscribers that want bodies ([`EventBus::subscribe_capturing`]);
    /// bodies are copied only while there is one.
    capturers: Arc<AtomicUsize>,
}

/// Keeps body capture on while held; see [`EventBus::subscribe_capturing`].
pub struct CaptureGuard(Arc<AtomicUsize>);

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
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
            capture: Arc::new(AtomicUsize::new(DEFAULT_CAPTURE_LIMIT)),
            capturers: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Captures up to `limit` bytes of each body for capturing subscribers;
    /// 0 turns capture off.
    pub fn set_capture_limit(&self, limit: usize) {
        self.capture.store(limit, Ordering::Relaxed);
    }

    /// The cap on captured bodies while a capturing subscriber listens;
    /// `None` when capture is off or none listens (the request path then
    /// copies nothing).
    pub fn capture_limit(&self) -> Option<usize> {
        let limit = self.capture.load(Ordering::Relaxed);
        (limit > 0 && self.capturers.load(Ordering::Relaxed) > 0 && self.has_subscribers())
            .then_some(limit)
    }

    /// Subscribes, with bodies captured (when capture is on) for as long as
    /// the guard is held.
    pub fn subscribe_capturing(&self) -> (broadcast::Receiver<Arc<TrafficEvent>>, CaptureGuard) {
        self.capturers.fetch_add(1, Ordering::Relaxed);
        (self.subscribe(), CaptureGuard(self.capturers.clone()))
    }

    /// Publishes the first bytes of a body that is known whole.
    pub fn publish_body(&self, id: u64, direction: Direction, body: &[u8]) {
        if let Some(limit) = self.capture_limit() {
            let mut capture = BodyCapture::new(self.clone(), id, direction, limit);
            capture.push(body);
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

/// A body captured as it streams by: up to a cap kept, the whole length
/// counted, published as one [`TrafficEvent::Body`] when dropped.
pub struct BodyCapture {
    bus: EventBus,
    id: u64,
    direction: Direction,
    limit: usize,
    kept: Vec<u8>,
    bytes: u64,
}

impl BodyCapture {
    /// Captures up to `limit` bytes of request `id`'s body.
    pub fn new(bus: EventBus, id: u64, direction: Direction, limit: usize) -> Self {
        BodyCapture {
            bus,
            id,
            direction,
            limit,
            kept: Vec::new(),
            bytes: 0,
        }
    }

    /// Takes in the next chunk.
    pub fn push(&mut self, chunk: &[u8]) {
        self.bytes += chunk.len() as u64;
        let room = self.limit.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&chunk[..room.min(chunk.len())]);
    }
}

impl Drop for BodyCapture {
    fn drop(&mut self) {
        self.bus.publish(TrafficEvent::Body {
            id: self.id,
            direction: self.direction,
            data: String::from_utf8_lossy(&self.kept).into_owned(),
            bytes: self.bytes,
            truncated: self.bytes > self.kept.len() as u64,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[tokio::test]
    async fn bodies_are_captured_up_to_the_cap_and_only_while_someone_listens() {
        let bus = EventBus::new();
        bus.set_capture_limit(4);
        assert_eq!(bus.capture_limit(), None, "nobody listens");
        let plain = bus.subscribe();
        assert_eq!(bus.capture_limit(), None, "nobody asks for bodies");
        drop(plain);
        let (mut rx, guard) = bus.subscribe_capturing();
        assert_eq!(bus.capture_limit(), Some(4));
        {
            let mut c = BodyCapture::new(bus.clone(), 7, Direction::Response, 4);
            c.push(b"abc");
            c.push(b"defg");
        }
        bus.publish_body(8, Direction::Request, b"hi");
        let first = rx.recv().await.unwrap();
        assert_eq!(
            *first,
            TrafficEvent::Body {
                id: 7,
                direction: Direction::Response,
                data: "abcd".into(),
                bytes: 7,
                truncated: true,
            }
        );
        let second = rx.recv().await.unwrap();
        assert_eq!(
            *second,
            TrafficEvent::Body {
                id: 8,
                direction: Direction::Request,
                data: "hi".into(),
                bytes: 2,
                truncated: false,
            }
        );
        bus.set_capture_limit(0);
        assert_eq!(bus.capture_limit(), None, "capture off");
        bus.set_capture_limit(4);
        drop(guard);
        assert_eq!(bus.capture_limit(), None, "the capturing subscriber left");
    }
}
