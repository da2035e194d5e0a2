//! `GET /admin/traffic`: this instance's traffic as server-sent events, from
//! the one traffic bus ([`crate::events`]) the console also reads.
//!
//! Each subscriber gets a bounded buffer
//! ([`GatewayConfig::traffic_buffer`](crate::GatewayConfig)) filled by a
//! task that drains the bus at once, so the request path never waits and a
//! slow subscriber never holds captured bodies in memory: what does not fit
//! is dropped, counted, and reported in the stream as a `dropped` event
//! before the next event that fits.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc::{self, error::TrySendError};

use crate::events::TrafficEvent;
use crate::gateway::Gateway;

/// How often a pending drop report is retried while no traffic comes.
const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// What goes down one subscriber's stream.
enum Item {
    Traffic(Arc<TrafficEvent>),
    /// Events this subscriber lost since the last report.
    Dropped(u64),
}

/// The SSE stream. Its first event, `ready`, says whether bodies are
/// captured; then `started`, `body`, `sse`, `finished` as traffic happens
/// (each the JSON of [`TrafficEvent`]), and `dropped` with the count of
/// events this subscriber lost.
#[utoipa::path(get, path = "/admin/traffic", tag = "traffic",
    responses((status = 200, description = "text/event-stream of traffic events", content_type = "text/event-stream", body = String)))]
pub async fn stream(
    State(gw): State<Arc<Gateway>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (tx, rx) = mpsc::channel(gw.config.traffic_buffer.max(1));
    let (bus, capture) = gw.events.subscribe_capturing();
    let with_sse = gw.config.capture_limit() > 0;
    tokio::spawn(async move {
        let _capture = capture;
        forward(bus, tx, with_sse).await;
    });
    let ready = Event::default().event("ready").data(
        json!({
            "capture": gw.config.capture_limit() > 0,
            "capture_limit": gw.config.capture_limit(),
            "buffer": gw.config.traffic_buffer.max(1),
        })
        .to_string(),
    );
    let events = tokio_stream::wrappers::ReceiverStream::new(rx).map(|item| Ok(event(&item)));
    Sse::new(futures::stream::once(async { Ok(ready) }).chain(events))
        .keep_alive(KeepAlive::default())
}

/// Drains the bus into the subscriber's buffer, counting what does not fit,
/// until the subscriber goes away. With capture off, a stream's events
/// (which the bus carries for the console) are left out like bodies.
async fn forward(
    mut bus: tokio::sync::broadcast::Receiver<Arc<TrafficEvent>>,
    tx: mpsc::Sender<Item>,
    with_sse: bool,
) {
    let mut lost: u64 = 0;
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    loop {
        let next = tokio::select! {
            r = bus.recv() => r,
            () = tx.closed() => return,
            _ = tick.tick(), if lost > 0 => {
                if !report(&tx, &mut lost) {
                    return;
                }
                continue;
            }
        };
        let ev = match next {
            Ok(ev) => ev,
            Err(RecvError::Lagged(n)) => {
                lost += n;
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        if !with_sse && matches!(*ev, TrafficEvent::Sse { .. }) {
            continue;
        }
        if lost > 0 && !report(&tx, &mut lost) {
            return;
        }
        match tx.try_send(Item::Traffic(ev)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => lost += 1,
            Err(TrySendError::Closed(_)) => return,
        }
    }
}

/// Tries to queue the report of `lost` events; `false` when the subscriber is gone.
fn report(tx: &mpsc::Sender<Item>, lost: &mut u64) -> bool {
    if *lost == 0 {
        return true;
    }
    match tx.try_send(Item::Dropped(*lost)) {
        Ok(()) => {
            *lost = 0;
            true
        }
        Err(TrySendError::Full(_)) => true,
        Err(TrySendError::Closed(_)) => false,
    }
}

fn event(item: &Item) -> Event {
    match item {
        Item::Dropped(n) => Event::default()
            .event("dropped")
            .data(json!({ "dropped": n }).to_string()),
        Item::Traffic(ev) => {
            let name = match ev.as_ref() {
                TrafficEvent::Started { .. } => "started",
                TrafficEvent::Sse { .. } => "sse",
                TrafficEvent::Body { .. } => "body",
                TrafficEvent::Finished { .. } => "finished",
            };
            let data = serde_json::to_string(ev.as_ref())
                .unwrap_or_else(|e| json!({ "error": e.to_string() }).to_string());
            Event::default().event(name).data(data)
        }
    }
}
