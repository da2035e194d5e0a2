//! Relaying an SSE response body event by event: each complete event goes
//! out the moment its closing blank line arrives, and the start of the next
//! one waits for its own end. That way a backend that breaks inside an event
//! never hands the caller half an event that looks whole. (An event larger
//! than [`MAX_PENDING`] is passed on in pieces rather than held.) The relay
//! also
//! * sends a keep-alive comment when the stream has been idle, but only
//!   between events so it never splits one;
//! * ends a stream the backend broke with an `error` event instead of a
//!   silent cut;
//! * copies the bytes to a parser (when someone is listening) that publishes
//!   each event on the traffic bus.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use eventsource_stream::Eventsource;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::audit::FinishGuard;
use crate::events::{EventBus, TrafficEvent};

/// Comment sent on idle streams.
pub const KEEPALIVE: &[u8] = b": keep-alive\n\n";

/// Most bytes of an unfinished event held back; past it they are passed on.
pub const MAX_PENDING: usize = 1024 * 1024;

/// Finds where events end in a byte stream (SSE: an event ends with an empty
/// line; lines end with CRLF, LF or CR).
#[derive(Debug, Clone, Copy)]
pub struct EventBoundaries {
    /// No byte since the last line ending.
    line_empty: bool,
    /// The last byte was a CR (an LF right after it belongs to it).
    after_cr: bool,
}

impl Default for EventBoundaries {
    fn default() -> Self {
        EventBoundaries {
            line_empty: true,
            after_cr: false,
        }
    }
}

impl EventBoundaries {
    /// Feeds `bytes`; returns the offset just past the last event end in
    /// them, if any.
    pub fn last_end(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut end = None;
        for (i, &b) in bytes.iter().enumerate() {
            match b {
                b'\n' if self.after_cr => {
                    // The LF of a CRLF: the line ended at the CR already.
                    self.after_cr = false;
                    if end == Some(i) {
                        end = Some(i + 1);
                    }
                }
                b'\n' | b'\r' => {
                    if self.line_empty {
                        end = Some(i + 1);
                    }
                    self.line_empty = true;
                    self.after_cr = b == b'\r';
                }
                _ => {
                    self.line_empty = false;
                    self.after_cr = false;
                }
            }
        }
        end
    }
}

struct Relay {
    upstream: BoxStream<'static, Result<Bytes, reqwest::Error>>,
    keepalive: Duration,
    boundaries: EventBoundaries,
    /// Bytes of an event not yet finished, held back.
    pending: BytesMut,
    /// Part of an oversized event has been passed on: the caller is inside
    /// an event.
    inside_event: bool,
    tap: Option<mpsc::Sender<Bytes>>,
    error_event: Box<dyn Fn(&str) -> Bytes + Send>,
    guard: Arc<FinishGuard>,
    done: bool,
}

impl Relay {
    /// What to pass on after `chunk` arrived: the events it completes.
    fn take_complete(&mut self, chunk: &Bytes) -> Option<Bytes> {
        let out = match self.boundaries.last_end(chunk) {
            Some(end) => {
                self.inside_event = false;
                let out = if self.pending.is_empty() {
                    chunk.slice(..end)
                } else {
                    self.pending.extend_from_slice(&chunk[..end]);
                    self.pending.split().freeze()
                };
                self.pending.extend_from_slice(&chunk[end..]);
                out
            }
            None => {
                self.pending.extend_from_slice(chunk);
                if self.pending.len() <= MAX_PENDING {
                    return None;
                }
                self.inside_event = true;
                self.pending.split().freeze()
            }
        };
        (!out.is_empty()).then_some(out)
    }

    fn pass_on(&self, bytes: Bytes) -> Option<(Result<Bytes, Infallible>, ())> {
        if let Some(tap) = &self.tap {
            // Lossy: the console may miss events, the caller never does.
            let _ = tap.try_send(bytes.clone());
        }
        Some((Ok(bytes), ()))
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
        boundaries: EventBoundaries::default(),
        pending: BytesMut::new(),
        inside_event: false,
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
                        if let Some(out) = s.take_complete(&chunk) {
                            let (item, ()) = s.pass_on(out)?;
                            return Some((item, s));
                        }
                    }
                    Some(Err(e)) => {
                        let why = format!("the backend broke the stream: {}", e.without_url());
                        tracing::warn!(%why, "stream ended early");
                        s.guard.set_error(why);
                        s.done = true;
                        // The unfinished event is dropped, never passed on cut.
                        s.pending.clear();
                        let mut out = Vec::new();
                        if s.inside_event {
                            out.extend_from_slice(b"\n\n");
                        }
                        out.extend_from_slice(&(s.error_event)("the agent's backend ended the stream unexpectedly"));
                        let (item, ()) = s.pass_on(Bytes::from(out))?;
                        return Some((item, s));
                    }
                    None => {
                        // A clean end: whatever is left goes as it is.
                        s.done = true;
                        if s.pending.is_empty() {
                            return None;
                        }
                        let rest = s.pending.split().freeze();
                        let (item, ()) = s.pass_on(rest)?;
                        return Some((item, s));
                    }
                },
                _ = tokio::time::sleep(s.keepalive) => {
                    // Held-back bytes start a new event after the comment.
                    if !s.inside_event {
                        return Some((Ok(Bytes::from_static(KEEPALIVE)), s));
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::EventBoundaries;

    fn ends(chunks: &[&[u8]]) -> Vec<Option<usize>> {
        let mut b = EventBoundaries::default();
        chunks.iter().map(|c| b.last_end(c)).collect()
    }

    #[test]
    fn event_ends_with_every_line_ending() {
        assert_eq!(ends(&[b"data: a\n\n"]), vec![Some(9)]);
        assert_eq!(ends(&[b"data: a\r\r"]), vec![Some(9)]);
        assert_eq!(ends(&[b"data: a\r\n\r\n"]), vec![Some(11)]);
        assert_eq!(ends(&[b"data: a\n\ndata: b"]), vec![Some(9)]);
        assert_eq!(ends(&[b"data: a\ndata: b\n"]), vec![None]);
    }

    #[test]
    fn boundaries_split_across_chunks() {
        assert_eq!(ends(&[b"data: a\n", b"\n"]), vec![None, Some(1)]);
        assert_eq!(ends(&[b"data: a\r\n", b"\r\n"]), vec![None, Some(2)]);
        // The LF of a CRLF whose CR ended the event is held back with the
        // next event, where it is an empty line (which dispatches nothing).
        assert_eq!(
            ends(&[b"data: a\r", b"\n\r", b"\n"]),
            vec![None, Some(2), None]
        );
        assert_eq!(
            ends(&[b"data: a", b"\n", b"data: b\n", b"\n"]),
            vec![None, None, None, Some(1)]
        );
    }
}
