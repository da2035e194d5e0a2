//! Limits: this minute's request counters by client × agent, against each
//! agent's limit.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Cell, Row, Widget};
use switchboard_core::ratelimit::{reset_in, window_of};
use switchboard_core::registry::CounterEntry;

use super::{empty_note, pane, table, ListState};
use crate::console::action::{Action, Context};
use crate::console::app::{unix, Cx, Model, Screen, View};
use crate::console::msg::Request;

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
    fn context(&self) -> Context {
        Context::Limits
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
        let block = pane(
            format!(
                "Limits: this minute, resets in {} s",
                reset_in(unix(view.now))
            ),
            true,
            theme,
        );
        let inner = block.inner(area);
        block.render(area, buf);
        if rows.is_empty() {
            empty_note(inner, buf, theme, "no requests counted this minute");
            return;
        }
        table(
            inner,
            buf,
            theme,
            &self.list,
            &["CLIENT", "AGENT", "COUNT", "LIMIT", "USED"],
            &[
                Constraint::Fill(2),
                Constraint::Fill(2),
                Constraint::Length(6),
                Constraint::Length(6),
                Constraint::Fill(3),
            ],
            rows.len(),
            true,
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
