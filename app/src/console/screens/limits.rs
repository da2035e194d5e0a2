//! Limits: this minute's request counters by client × agent, against each
//! agent's limit.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Cell, Row};
use switchboard_core::ratelimit::{reset_in, window_of};
use switchboard_core::registry::CounterEntry;

use crate::console::action::{Action, Tab};
use crate::console::model::{unix, Model};
use crate::console::msg::Request;
use crate::console::screen::{Cx, Screen, View};
use crate::console::widgets::{empty_note, framed, ListState};

/// The Limits screen.
#[derive(Debug, Default)]
pub struct LimitsScreen {
    list: ListState,
}

/// This minute's counters, by client then agent.
fn current(model: &Model, now: std::time::SystemTime) -> Vec<&CounterEntry> {
    let window = window_of(unix(now));
    let mut rows: Vec<&CounterEntry> = model
        .counters
        .iter()
        .filter(|c| c.key.window == window)
        .collect();
    rows.sort_by(|a, b| {
        (&a.key.client_id, &a.key.agent_id).cmp(&(&b.key.client_id, &b.key.agent_id))
    });
    rows
}

impl Screen for LimitsScreen {
    fn tab(&self) -> Tab {
        Tab::Limits
    }

    fn perform(&mut self, action: Action, cx: &mut Cx<'_>) {
        let n = current(cx.model, cx.now).len();
        if self.list.navigate(action, n) {
            return;
        }
        if action == Action::Refresh {
            cx.request(Request::RefreshCounters);
        }
    }

    fn render(&self, area: Rect, buf: &mut Buffer, view: &View<'_>) {
        let theme = view.theme;
        let model = view.model;
        let rows = current(model, view.now);
        let inner = framed(
            area,
            buf,
            format!(
                "Limits: this minute, resets in {} s",
                reset_in(unix(view.now))
            ),
            true,
            theme,
        );
        if rows.is_empty() {
            empty_note(inner, buf, theme, "no requests counted this minute");
            return;
        }
        self.list.table(
            inner,
            buf,
            theme,
            &[
                ("CLIENT", Constraint::Fill(2)),
                ("AGENT", Constraint::Fill(2)),
                ("COUNT", Constraint::Length(6)),
                ("LIMIT", Constraint::Length(6)),
                ("USED", Constraint::Fill(3)),
            ],
            rows.len(),
            |i| {
                let c = rows[i];
                let limit = model
                    .agent(&c.key.agent_id)
                    .map(|a| model.limit_of(a))
                    .unwrap_or(model.stack.default_limit);
                let frac = if limit == 0 {
                    1.0
                } else {
                    (c.count as f64 / f64::from(limit)).min(1.0)
                };
                let style = if frac >= 1.0 {
                    theme.error()
                } else if frac >= 0.8 {
                    theme.warn()
                } else {
                    theme.ok()
                };
                let cells = 20usize;
                let filled = (frac * cells as f64).round() as usize;
                let bar = format!(
                    "{}{} {:>3}%",
                    "█".repeat(filled),
                    "░".repeat(cells - filled),
                    (frac * 100.0).round() as u32
                );
                Row::new(vec![
                    Cell::from(c.key.client_id.clone()),
                    Cell::from(c.key.agent_id.clone()),
                    Cell::from(c.count.to_string()),
                    Cell::from(limit.to_string()),
                    Cell::from(Span::styled(bar, style)),
                ])
            },
        );
    }

    fn commands(&self, _model: &Model) -> Vec<Action> {
        vec![Action::Refresh]
    }
}
