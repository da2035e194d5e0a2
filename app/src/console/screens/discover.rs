//! Discover: a query in, agents ranked by meaning out.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row};

use crate::console::action::{Action, Tab};
use crate::console::keymap::Keymap;
use crate::console::model::Model;
use crate::console::msg::{Discovered, Request};
use crate::console::screen::{Cx, Screen, View};
use crate::console::widgets::{empty_note, framed, truncate, InputLine, ListState};

/// The Discover screen.
#[derive(Debug, Default)]
pub struct DiscoverScreen {
    query: InputLine,
    results: Option<Result<Discovered, String>>,
    searching: bool,
    list: ListState,
}

impl DiscoverScreen {
    /// Another profile became active: its agents are not this one's.
    pub fn clear_results(&mut self) {
        self.results = None;
        self.list.selected = 0;
    }

    /// Discovery answered.
    pub fn results(&mut self, r: Result<Discovered, String>) {
        self.searching = false;
        self.results = Some(r);
        self.list.selected = 0;
    }
}

impl Screen for DiscoverScreen {
    fn tab(&self) -> Tab {
        Tab::Discover
    }

    fn handle_key(&mut self, key: &crossterm::event::KeyEvent, keymap: &Keymap) -> Option<Action> {
        // Submitting the query ranks it.
        self.query
            .handle_key(key, keymap, self.context(), Some(Action::Select))
    }

    fn paste(&mut self, text: &str) -> bool {
        self.query.paste(text);
        true
    }

    fn editing(&self) -> bool {
        self.query.is_editing()
    }

    fn perform(&mut self, action: Action, cx: &mut Cx<'_>) {
        if !cx.model.discovery {
            if matches!(action, Action::Compose | Action::Select) {
                cx.error("discovery is not available in this build");
            }
            return;
        }
        let n = self
            .results
            .as_ref()
            .and_then(|r| r.as_ref().ok())
            .map(|d| d.hits.len())
            .unwrap_or(0);
        if self.list.navigate(action, n) {
            return;
        }
        match action {
            Action::Compose => self.query.start_editing(),
            Action::Select => {
                let query = self.query.value().trim().to_owned();
                if query.is_empty() {
                    cx.error("type a query first (/)");
                } else {
                    self.searching = true;
                    cx.request(Request::Discover { query });
                }
            }
            _ => {}
        }
    }

    fn render(&self, area: Rect, buf: &mut Buffer, view: &View<'_>) {
        let theme = view.theme;
        let inner = framed(area, buf, "Discover", true, theme);
        if !view.model.discovery {
            empty_note(
                inner,
                buf,
                theme,
                "Discovery is not available in this build: agents cannot be ranked by meaning yet.",
            );
            return;
        }
        let [q, how, body] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(2),
            Constraint::Fill(1),
        ])
        .areas(inner);
        let query = self.query.line(
            "query ",
            "(/ to type what you need, enter to rank)",
            q.width,
            theme,
        );
        buf.set_line(q.x, q.y, &query, q.width);
        if let Some(Ok(d)) = &self.results {
            let w = usize::from(how.width);
            let head = match (&d.mode[..], &d.model) {
                ("semantic", Some(m)) => Span::styled(
                    truncate(&format!("ranked by meaning, fused with BM25 · {m}"), w),
                    theme.ok(),
                ),
                _ => Span::styled(truncate("ranked by words only (BM25)", w), theme.warn()),
            };
            buf.set_line(how.x, how.y, &Line::from(head), how.width);
            if let Some(n) = &d.notice {
                buf.set_line(
                    how.x,
                    how.y + 1,
                    &Line::from(Span::styled(truncate(n, how.width.into()), theme.dim())),
                    how.width,
                );
            }
        }
        match &self.results {
            _ if self.searching => empty_note(body, buf, theme, "ranking…"),
            None => empty_note(body, buf, theme, "ranked agents appear here"),
            Some(Err(e)) => {
                buf.set_line(
                    body.x,
                    body.y,
                    &Line::from(Span::styled(e.clone(), theme.error())),
                    body.width,
                );
            }
            Some(Ok(d)) if d.hits.is_empty() => empty_note(body, buf, theme, "no agent matches"),
            Some(Ok(d)) => self.list.table(
                body,
                buf,
                theme,
                &[
                    ("#", Constraint::Length(3)),
                    ("SCORE", Constraint::Length(6)),
                    ("AGENT", Constraint::Fill(2)),
                    ("NAME", Constraint::Fill(2)),
                    ("MATCHED SKILLS", Constraint::Fill(3)),
                ],
                d.hits.len(),
                |i| {
                    let h = &d.hits[i];
                    let mut id = h.agent.clone();
                    if !h.enabled {
                        id.push_str(" (off)");
                    }
                    Row::new(vec![
                        Cell::from((i + 1).to_string()),
                        Cell::from(format!("{:.3}", h.score)),
                        Cell::from(id),
                        Cell::from(h.name.clone()),
                        Cell::from(h.skills.join(", ")),
                    ])
                },
            ),
        }
    }

    fn commands(&self, model: &Model) -> Vec<Action> {
        if model.discovery {
            vec![Action::Compose, Action::Select]
        } else {
            Vec::new()
        }
    }
}
