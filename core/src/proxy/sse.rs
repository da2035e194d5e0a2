//! Relaying response bodies: event by event for SSE, chunk by chunk otherwise.
//!
//! Bytes are passed on as soon as they arrive; nothing waits for a whole
//! event, let alone a whole body. For SSE the relay also
//! * sends a keep-alive comment when the stream has been idle, but only
//!   between events so it never splits one;
//! * ends a stream the backend broke with an `error` event instead of a
//!   silent cut;
//! * copies the bytes to a parser (when someone is listening) that publishes
//!   each event on the traffic bus.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::forward::FinishGuard;
use crate::events::{EventBus, TrafficEvent};

/// Comment sent on idle streams.
pub const KEEPALIVE: &[u8] = b": keep-alive\n\n";

struct Relay {
    upstream: BoxStream<'static, Result<Bytes, reqwest::Error>>,
    keepalive: Duration,
    tail: [u8; 4],
    tap: Option<mpsc::Sender<Bytes>>,
    error_event: Box<dyn Fn(&str) -> Bytes + Send>,
    guard: Arc<FinishGuard>,
    done: bool,
}

impl Relay {
    fn at_boundary(&self) -> bool {
        let t = &self.tail;
        (t[2] == b'\n' && t[3] == b'\n') || (t[2] == b'\r' && t[3] == b'\r') || t == b"\r\n\r\n"
    }

    fn remember_tail(&mut self, chunk: &[u8]) {
        for &b in chunk.iter().rev().take(4).rev() {
            self.tail.rotate_left(1);
            self.tail[3] = b;
        }
    }
}

/// Relays an SSE body. `error_event` renders the event sent when the backend
/// breaks the stream.
pub fn relay_sse(
    upstream: BoxStream<'static, Result<Bytes, reqwest::Error>>,
    keepalive: Duration,
    bus: Option<(EventBus, u64)>,
    error_event: Box<dyn Fn(&str) -> Bytes + Send>,
    guard: FinishGuard,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    let guard = Arc::new(guard);
    let tap = bus.map(|(bus, id)| {
        let (tx, rx) = mpsc::channel::<Bytes>(1024);
        // The parser holds the guard too, so the request's end is recorded
        // after its last event.
        let guard = guard.clone();
        tokio::spawn(async move {
            let mut events = ReceiverStream::new(rx)
                .map(Ok::<_, Infallible>)
                .eventsource();
            let mut seq = 0;
            while let Some(Ok(ev)) = events.next().await {
                bus.publish(TrafficEvent::Sse {
                    id,
                    seq,
                    event: (!ev.event.is_empty() && ev.event != "message").then_some(ev.event),
                    data: ev.data,
                });
                seq += 1;
            }
            drop(guard);
        });
        tx
    });
    let state = Relay {
        upstream,
        keepalive,
        tail: *b"\n\n\n\n",
        tap,
        error_event,
        guard,
        done: false,
    };
    futures::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        loop {
            tokio::select! {
                next = s.upstream.next() => match next {
                    Some(Ok(chunk)) => {
                        s.remember_tail(&chunk);
                        if let Some(tap) = &s.tap {
                            // Lossy: the console may miss events, the caller never does.
                            let _ = tap.try_send(chunk.clone());
                        }
                        return Some((Ok(chunk), s));
                    }
                    Some(Err(e)) => {
                        let why = format!("the backend broke the stream: {}", e.without_url());
                        tracing::warn!(%why, "stream ended early");
                        s.guard.set_error(why);
                        s.done = true;
                        let mut out = Vec::new();
                        if !s.at_boundary() {
                            out.extend_from_slice(b"\n\n");
                        }
                        out.extend_from_slice(&(s.error_event)("the agent's backend ended the stream unexpectedly"));
                        return Some((Ok(Bytes::from(out)), s));
                    }
                    None => return None,
                },
                _ = tokio::time::sleep(s.keepalive) => {
                    if s.at_boundary() {
                        return Some((Ok(Bytes::from_static(KEEPALIVE)), s));
                    }
                }
            }
        }
    })
}

/// Relays a non-SSE body chunk by chunk. A backend error ends the body with
/// an error, which the server turns into an aborted response.
pub fn relay_plain(
    upstream: BoxStream<'static, Result<Bytes, reqwest::Error>>,
    guard: FinishGuard,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    futures::stream::unfold(
        (upstream, guard, false),
        |(mut up, guard, done)| async move {
            if done {
                return None;
            }
            match up.next().await {
                Some(Ok(chunk)) => Some((Ok(chunk), (up, guard, false))),
                Some(Err(e)) => {
                    let why = format!("the backend broke the response: {}", e.without_url());
                    guard.set_error(why.clone());
                    Some((Err(std::io::Error::other(why)), (up, guard, true)))
                }
                None => None,
            }
        },
    )
}
