//! Traffic: every request through the gateway, live, in a ring buffer of
//! bounded size; the selected request's SSE events pretty-printed as they
//! arrive. Filters by agent and status; pause and follow.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Cell, Row, Widget};
use switchboard_core::TrafficEvent;

use crate::console::action::{Action, Tab};
use crate::console::model::Model;
use crate::console::screen::{Cx, Screen, View};
use crate::console::widgets::{
    empty_note, fmt_latency, fmt_time, framed, pane, ListState, TextView,
};

/// Most requests kept.
pub const MAX_ROWS: usize = 10_000;
/// Most SSE payload bytes kept across all requests; the oldest go first.
pub const MAX_EVENT_BYTES: usize = 64 * 1024 * 1024;
/// Most events kept for one request.
pub const MAX_EVENTS_PER_ROW: usize = 10_000;

/// One request.
#[derive(Debug, Clone)]
pub struct TrafficRow {
    /// Gateway request id.
    pub id: u64,
    /// Arrival.
    pub at: SystemTime,
    /// Caller.
    pub client: String,
    /// Agent.
    pub agent: String,
    /// Method.
    pub method: String,
    /// Status, when finished.
    pub status: Option<u16>,
    /// Latency, when finished.
    pub latency: Option<Duration>,
    /// Why the gateway answered itself, or how the stream broke.
    pub error: Option<String>,
    /// SSE events, oldest first: (seq, event name, data).
    pub events: Vec<(u64, Option<String>, String)>,
    /// Events dropped to stay within memory bounds.
    pub dropped: u64,
}

/// Status filter values, cycled in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusFilter {
    /// Everything.
    #[default]
    All,
    /// 2xx and 3xx.
    Ok,
    /// 4xx.
    Client,
    /// 5xx.
    Server,
    /// 4xx and 5xx.
    Errors,
    /// Not finished yet.
    InFlight,
}

impl StatusFilter {
    fn next(self) -> Self {
        use StatusFilter::*;
        match self {
            All => Ok,
            Ok => Client,
            Client => Server,
            Server => Errors,
            Errors => InFlight,
            InFlight => All,
        }
    }

    fn label(self) -> &'static str {
        use StatusFilter::*;
        match self {
            All => "any status",
            Ok => "2xx/3xx",
            Client => "4xx",
            Server => "5xx",
            Errors => "errors",
            InFlight => "in flight",
        }
    }

    fn matches(self, status: Option<u16>) -> bool {
        use StatusFilter::*;
        match (self, status) {
            (All, _) => true,
            (InFlight, s) => s.is_none(),
            (_, None) => false,
            (Ok, Some(s)) => s < 400,
            (Client, Some(s)) => (400..500).contains(&s),
            (Server, Some(s)) => s >= 500,
            (Errors, Some(s)) => s >= 400,
        }
    }
}

/// The detail pane: one request's events, pretty-printed once.
#[derive(Debug)]
struct Detail {
    /// Ring sequence number of the request.
    seq: u64,
    /// Events already in the view.
    shown: usize,
    /// Whether the finish line was added.
    finished: bool,
    view: TextView,
}

/// The Traffic screen.
#[derive(Debug, Default)]
pub struct TrafficScreen {
    rows: VecDeque<TrafficRow>,
    /// Sequence number of `rows[0]`.
    base: u64,
    /// Request id → sequence number.
    index: HashMap<u64, u64>,
    /// Sequence numbers matching the filters, ascending.
    visible: Vec<u64>,
    /// While paused, only requests before this sequence number are shown.
    paused_at: Option<u64>,
    follow: bool,
    agent_filter: Option<String>,
    status_filter: StatusFilter,
    list: ListState,
    detail: Option<Detail>,
    event_bytes: usize,
    /// Requests evicted by the ring buffer.
    pub evicted: u64,
    started: bool,
}

impl TrafficScreen {
    fn seq_row(&self, seq: u64) -> Option<&TrafficRow> {
        seq.checked_sub(self.base)
            .and_then(|i| self.rows.get(usize::try_from(i).ok()?))
    }

    fn seq_row_mut(&mut self, seq: u64) -> Option<&mut TrafficRow> {
        let i = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        self.rows.get_mut(i)
    }

    /// The agent a request went to, if still held.
    pub fn agent_of(&self, id: u64) -> Option<String> {
        let seq = *self.index.get(&id)?;
        self.seq_row(seq).map(|r| r.agent.clone())
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether nothing was seen yet.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn matches(&self, row: &TrafficRow) -> bool {
        self.agent_filter.as_ref().is_none_or(|a| *a == row.agent)
            && self.status_filter.matches(row.status)
    }

    fn shown_len(&self) -> usize {
        match self.paused_at {
            Some(p) => self.visible.partition_point(|s| *s < p),
            None => self.visible.len(),
        }
    }

    fn refilter(&mut self) {
        let keep = self.visible.get(self.list.selected).copied();
        self.visible = self
            .rows
            .iter()
            .enumerate()
            .filter(|(_, r)| self.matches(r))
            .map(|(i, _)| self.base + i as u64)
            .collect();
        self.list.selected = match keep.and_then(|s| self.visible.iter().position(|v| *v >= s)) {
            Some(i) => i,
            None => self.visible.len().saturating_sub(1),
        };
    }

    fn drop_front(&mut self) {
        if let Some(row) = self.rows.pop_front() {
            self.event_bytes -= row.events.iter().map(|e| e.2.len()).sum::<usize>();
            self.index.remove(&row.id);
            let gone = self.base;
            self.base += 1;
            self.evicted += 1;
            if self.visible.first() == Some(&gone) {
                self.visible.remove(0);
                self.list.selected = self.list.selected.saturating_sub(1);
            }
            if self.detail.as_ref().is_some_and(|d| d.seq == gone) {
                self.detail = None;
            }
        }
    }

    /// Keeps event payloads within [`MAX_EVENT_BYTES`], oldest requests first.
    fn trim_events(&mut self) {
        let mut i = 0;
        while self.event_bytes > MAX_EVENT_BYTES && i < self.rows.len() {
            let row = &mut self.rows[i];
            let freed: usize = row.events.iter().map(|e| e.2.len()).sum();
            row.dropped += row.events.len() as u64;
            row.events = Vec::new();
            self.event_bytes -= freed;
            i += 1;
        }
    }

    /// Takes in one traffic event.
    pub fn ingest(&mut self, ev: &TrafficEvent) {
        if !self.started {
            self.started = true;
            self.follow = true;
        }
        match ev {
            TrafficEvent::Started {
                id,
                at,
                client,
                agent,
                method,
            } => {
                if self.rows.len() >= MAX_ROWS {
                    self.drop_front();
                }
                let seq = self.base + self.rows.len() as u64;
                let row = TrafficRow {
                    id: *id,
                    at: *at,
                    client: client.clone(),
                    agent: agent.clone(),
                    method: method.clone(),
                    status: None,
                    latency: None,
                    error: None,
                    events: Vec::new(),
                    dropped: 0,
                };
                let matches = self.matches(&row);
                self.rows.push_back(row);
                self.index.insert(*id, seq);
                if matches {
                    self.visible.push(seq);
                    if self.follow && self.paused_at.is_none() {
                        self.list.selected = self.visible.len() - 1;
                    }
                }
            }
            TrafficEvent::Sse {
                id,
                seq: n,
                event,
                data,
            } => {
                let Some(&seq) = self.index.get(id) else {
                    return;
                };
                let len = data.len();
                if let Some(row) = self.seq_row_mut(seq) {
                    if row.events.len() >= MAX_EVENTS_PER_ROW {
                        row.dropped += 1;
                        return;
                    }
                    row.events.push((*n, event.clone(), data.clone()));
                } else {
                    return;
                }
                self.event_bytes += len;
                self.trim_events();
                self.update_detail();
            }
            // Bodies are for `/admin/traffic`; the console shows SSE events.
            TrafficEvent::Body { .. } => {}
            TrafficEvent::Finished {
                id,
                status,
                latency,
                error,
            } => {
                let Some(&seq) = self.index.get(id) else {
                    return;
                };
                if let Some(row) = self.seq_row_mut(seq) {
                    row.status = Some(*status);
                    row.latency = Some(*latency);
                    row.error = error.clone();
                }
                if self.status_filter != StatusFilter::All {
                    self.refilter();
                }
                self.update_detail();
            }
        }
    }

    fn open_detail(&mut self) {
        let Some(&seq) = self.visible.get(self.list.selected) else {
            return;
        };
        let Some(row) = self.seq_row(seq) else {
            return;
        };
        let mut view = TextView::new();
        view.push_heading(&format!(
            "#{} {} → {} {}",
            row.id, row.client, row.agent, row.method
        ));
        // A request still in flight is followed as its events arrive.
        view.follow = row.status.is_none();
        self.detail = Some(Detail {
            seq,
            shown: 0,
            finished: false,
            view,
        });
        self.update_detail();
    }

    /// Appends what arrived since the detail was last updated.
    fn update_detail(&mut self) {
        let Some(d) = self.detail.as_mut() else {
            return;
        };
        let Some(i) = d.seq.checked_sub(self.base) else {
            return;
        };
        let Some(row) = self.rows.get(i as usize) else {
            return;
        };
        if row.events.len() < d.shown {
            // Trimmed for memory.
            d.view
                .push_plain(&format!("… {} events dropped to bound memory", row.dropped));
            d.shown = row.events.len();
        }
        for (n, name, data) in &row.events[d.shown..] {
            d.view.push_heading(&format!(
                "── event {n}{}",
                name.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()
            ));
            d.view.push_payload(data);
        }
        d.shown = row.events.len();
        if !d.finished {
            if let Some(status) = row.status {
                d.finished = true;
                let mut line = format!(
                    "── finished {status} in {}",
                    row.latency.map(fmt_latency).unwrap_or_default()
                );
                if let Some(e) = &row.error {
                    line.push_str(&format!(": {e}"));
                }
                if row.events.is_empty() && row.dropped == 0 {
                    line.push_str(" (no SSE events: not a stream)");
                }
                d.view.push_heading(&line);
            }
        }
    }

    fn status_line(&self) -> String {
        let mut parts = vec![format!(
            "{} of {} requests",
            self.shown_len(),
            self.rows.len()
        )];
        if let Some(a) = &self.agent_filter {
            parts.push(format!("agent {a}"));
        }
        if self.status_filter != StatusFilter::All {
            parts.push(self.status_filter.label().to_owned());
        }
        if self.paused_at.is_some() {
            parts.push(format!(
                "PAUSED ({} new)",
                self.visible.len() - self.shown_len()
            ));
        } else if self.follow {
            parts.push("following".into());
        }
        if self.evicted > 0 {
            parts.push(format!("{} oldest dropped", self.evicted));
        }
        parts.join(" · ")
    }
}

impl Screen for TrafficScreen {
    fn tab(&self) -> Tab {
        Tab::Traffic
    }

    fn perform(&mut self, action: Action, cx: &mut Cx<'_>) {
        if let Some(d) = self.detail.as_mut() {
            if d.view.navigate(action) {
                return;
            }
            match action {
                Action::Back | Action::Select => {
                    self.detail = None;
                    return;
                }
                Action::Copy => {
                    let text = d.view.text();
                    cx.copy(text, "the request's events");
                    return;
                }
                _ => {}
            }
        }
        let len = self.shown_len();
        if self.list.navigate(action, len) {
            self.follow = self.list.selected + 1 >= len && self.paused_at.is_none();
            return;
        }
        match action {
            Action::Select => self.open_detail(),
            Action::TogglePause => {
                if self.paused_at.is_some() {
                    self.paused_at = None;
                    if self.follow {
                        self.list.selected = self.visible.len().saturating_sub(1);
                    }
                    cx.info("traffic resumed");
                } else {
                    self.paused_at = Some(self.base + self.rows.len() as u64);
                    cx.info("traffic paused: requests are still recorded");
                }
            }
            Action::Follow => {
                self.paused_at = None;
                self.follow = true;
                self.list.selected = self.visible.len().saturating_sub(1);
            }
            Action::FilterAgent => {
                let mut agents: Vec<String> =
                    cx.model.local_agents.iter().map(|a| a.id.clone()).collect();
                for r in &self.rows {
                    if !agents.contains(&r.agent) {
                        agents.push(r.agent.clone());
                    }
                }
                agents.sort();
                self.agent_filter = match &self.agent_filter {
                    None => agents.first().cloned(),
                    Some(cur) => agents
                        .iter()
                        .position(|a| a == cur)
                        .and_then(|i| agents.get(i + 1).cloned()),
                };
                self.refilter();
            }
            Action::FilterStatus => {
                self.status_filter = self.status_filter.next();
                self.refilter();
            }
            Action::ClearFilters => {
                self.agent_filter = None;
                self.status_filter = StatusFilter::All;
                self.refilter();
            }
            Action::Copy => cx.error("open a request (enter) to copy its events"),
            _ => {}
        }
    }

    fn render(&self, area: Rect, buf: &mut Buffer, view: &View<'_>) {
        let theme = view.theme;
        let (list_area, detail_area) = if self.detail.is_some() {
            let [a, b] =
                Layout::vertical([Constraint::Percentage(40), Constraint::Fill(1)]).areas(area);
            (a, Some(b))
        } else {
            (area, None)
        };
        // The local gateway's traffic, whatever the profile.
        let what = if view.model.is_local() {
            "Traffic"
        } else {
            "Local gateway traffic"
        };
        let inner = framed(
            list_area,
            buf,
            format!("{what}: {}", self.status_line()),
            self.detail.is_none(),
            theme,
        );
        let len = self.shown_len();
        if len == 0 {
            let note = if self.rows.is_empty() {
                "no requests yet: they appear here as they reach the gateway"
            } else {
                "no request matches the filters (c clears them)"
            };
            empty_note(inner, buf, theme, note);
        } else {
            self.list.table(
                inner,
                buf,
                theme,
                &[
                    ("TIME (UTC)", Constraint::Length(12)),
                    ("CLIENT", Constraint::Fill(2)),
                    ("AGENT", Constraint::Fill(2)),
                    ("METHOD", Constraint::Fill(3)),
                    ("STATUS", Constraint::Length(6)),
                    ("LATENCY", Constraint::Length(8)),
                ],
                len,
                |i| {
                    let Some(row) = self.visible.get(i).and_then(|s| self.seq_row(*s)) else {
                        return Row::new(Vec::<Cell>::new());
                    };
                    let status = match row.status {
                        Some(s) => Span::styled(s.to_string(), theme.status(Some(s))),
                        None => Span::styled("…", theme.dim()),
                    };
                    let mut method = row.method.clone();
                    if !row.events.is_empty() {
                        method.push_str(&format!(" ({})", row.events.len()));
                    }
                    Row::new(vec![
                        Cell::from(fmt_time(row.at)),
                        Cell::from(row.client.clone()),
                        Cell::from(row.agent.clone()),
                        Cell::from(method),
                        Cell::from(status),
                        Cell::from(row.latency.map(fmt_latency).unwrap_or_default()),
                    ])
                },
            );
        }
        if let (Some(d), Some(area)) = (&self.detail, detail_area) {
            // Content first: it measures the pane the title then reports on.
            let inner = pane("", true, theme).inner(area);
            d.view.render(inner, buf, theme);
            let (first, total) = d.view.position(inner.width);
            let title = format!(
                "Request events · {} lines{}",
                total,
                if total > 0 {
                    format!(" · row {}", first + 1)
                } else {
                    String::new()
                }
            );
            pane(title, true, theme).render(area, buf);
        }
    }

    fn commands(&self, _model: &Model) -> Vec<Action> {
        if self.detail.is_some() {
            return vec![Action::Back, Action::Copy, Action::PageDown, Action::Bottom];
        }
        vec![
            Action::Select,
            Action::TogglePause,
            Action::Follow,
            Action::FilterAgent,
            Action::FilterStatus,
            Action::ClearFilters,
        ]
    }

    fn click(&mut self, x: u16, y: u16, _cx: &mut Cx<'_>) {
        if self.list.click(x, y, self.shown_len()) {
            self.follow = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn started(id: u64, agent: &str) -> TrafficEvent {
        TrafficEvent::Started {
            id,
            at: SystemTime::UNIX_EPOCH,
            client: "c".into(),
            agent: agent.into(),
            method: "SendMessage".into(),
        }
    }

    fn finished(id: u64, status: u16) -> TrafficEvent {
        TrafficEvent::Finished {
            id,
            status,
            latency: Duration::from_millis(3),
            error: None,
        }
    }

    #[test]
    fn ring_buffer_is_bounded_and_keeps_the_newest() {
        let mut t = TrafficScreen::default();
        for id in 1..=(MAX_ROWS as u64 + 25) {
            t.ingest(&started(id, "echo"));
            t.ingest(&finished(id, 200));
        }
        assert_eq!(t.len(), MAX_ROWS);
        assert_eq!(t.evicted, 25);
        assert_eq!(t.rows.front().unwrap().id, 26);
        assert_eq!(t.visible.len(), MAX_ROWS);
        assert_eq!(t.list.selected, MAX_ROWS - 1, "follows the newest row");
        assert_eq!(t.agent_of(26), Some("echo".into()));
        assert_eq!(t.agent_of(3), None);
    }

    #[test]
    fn event_bytes_are_bounded() {
        let mut t = TrafficScreen::default();
        let big = "x".repeat(MAX_EVENT_BYTES / 4 + 1);
        for id in 1..=5 {
            t.ingest(&started(id, "stream"));
            t.ingest(&TrafficEvent::Sse {
                id,
                seq: 0,
                event: None,
                data: big.clone(),
            });
        }
        assert!(t.event_bytes <= MAX_EVENT_BYTES);
        assert_eq!(t.rows[0].events.len(), 0);
        assert_eq!(t.rows[0].dropped, 1);
        assert_eq!(t.rows[4].events.len(), 1);
    }

    #[test]
    fn filters_by_status_as_requests_finish() {
        let mut t = TrafficScreen {
            status_filter: StatusFilter::Errors,
            ..TrafficScreen::default()
        };
        t.ingest(&started(1, "echo"));
        t.ingest(&started(2, "echo"));
        assert_eq!(t.visible.len(), 0);
        t.ingest(&finished(1, 200));
        t.ingest(&finished(2, 429));
        assert_eq!(t.visible, vec![1]);
        t.status_filter = StatusFilter::InFlight;
        t.refilter();
        assert_eq!(t.visible, Vec::<u64>::new());
    }
}
