//! Permissions: scopes down the side, agents across the top; a key grants
//! or revokes the cell under the cursor.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use switchboard_core::auth::scopes::ALL_AGENTS;

use crate::console::action::{Action, Tab};
use crate::console::dialog::{Dialog, Purpose};
use crate::console::forms;
use crate::console::model::Model;
use crate::console::msg::Request;
use crate::console::screen::{Cx, Screen, View};
use crate::console::widgets::{empty_note, framed, keep_visible, moved, truncate};

/// The Permissions screen.
#[derive(Debug, Default)]
pub struct PermissionsScreen {
    row: usize,
    col: usize,
    row_offset: std::cell::Cell<usize>,
    col_offset: std::cell::Cell<usize>,
}

/// Scopes a page key moves by.
const PAGE: usize = 10;

/// A cell of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    /// The scope names the agent.
    Direct,
    /// The scope grants every agent (`*`).
    Wildcard,
    /// Not granted.
    No,
}

fn columns(model: &Model) -> Vec<String> {
    let mut cols: Vec<String> = model.agents.iter().map(|a| a.id.clone()).collect();
    cols.push(ALL_AGENTS.to_owned());
    cols
}

fn grant(model: &Model, row: usize, agent: &str) -> Grant {
    let Some(p) = model.permissions.get(row) else {
        return Grant::No;
    };
    if p.agents.contains(agent) {
        Grant::Direct
    } else if p.agents.contains(ALL_AGENTS) {
        Grant::Wildcard
    } else {
        Grant::No
    }
}

impl PermissionsScreen {
    fn cell(&self, model: &Model) -> Option<(String, String)> {
        let cols = columns(model);
        let scope = model.permissions.get(self.row)?.scope.clone();
        Some((scope, cols.get(self.col)?.clone()))
    }
}

impl Screen for PermissionsScreen {
    fn tab(&self) -> Tab {
        Tab::Permissions
    }

    fn perform(&mut self, action: Action, cx: &mut Cx<'_>) {
        let model = cx.model;
        let rows = model.permissions.len();
        let cols = columns(model);
        let last = rows.saturating_sub(1);
        if let Some(row) = moved(self.row, action, last, PAGE) {
            self.row = row.min(last);
            return;
        }
        match action {
            Action::Left => self.col = self.col.saturating_sub(1),
            Action::Right => self.col = (self.col + 1).min(cols.len().saturating_sub(1)),
            Action::ToggleGrant | Action::Grant | Action::Revoke | Action::Select => {
                let Some((scope, agent)) = self.cell(model) else {
                    cx.error("no scope yet: press n to grant a new scope to an agent");
                    return;
                };
                let has = grant(model, self.row, &agent) == Grant::Direct;
                let revoke = match action {
                    Action::Grant => false,
                    Action::Revoke => true,
                    _ => has,
                };
                if revoke && !has {
                    let why = if grant(model, self.row, &agent) == Grant::Wildcard {
                        format!("{scope} reaches {agent} through *; revoke * instead")
                    } else {
                        format!("{scope} does not grant {agent}")
                    };
                    cx.error(why);
                } else if !revoke && has {
                    cx.info(format!("{scope} already grants {agent}"));
                } else if revoke {
                    cx.request(Request::Revoke { scope, agent });
                } else {
                    cx.request(Request::Grant { scope, agent });
                }
            }
            Action::NewScope => {
                let agent = cols
                    .get(self.col)
                    .cloned()
                    .unwrap_or_else(|| ALL_AGENTS.into());
                cx.dialog(Dialog::Form {
                    form: forms::new_scope_form(&agent),
                    purpose: Purpose::NewScope { agent },
                });
            }
            Action::Refresh => cx.request(Request::Reload),
            _ => {}
        }
        self.row = self.row.min(last);
    }

    fn render(&self, area: Rect, buf: &mut Buffer, view: &View<'_>) {
        let model = view.model;
        let theme = view.theme;
        let inner = framed(
            area,
            buf,
            format!(
                "Permissions: {} scopes × {} agents",
                model.permissions.len(),
                model.agents.len()
            ),
            true,
            theme,
        );
        let [grid, legend] =
            Layout::vertical([Constraint::Fill(1), Constraint::Length(1)]).areas(inner);
        buf.set_line(
            legend.x,
            legend.y,
            &Line::from(vec![
                Span::styled("✓", theme.ok()),
                Span::styled(" granted  ", theme.dim()),
                Span::styled("*", theme.warn()),
                Span::styled(" through *  ", theme.dim()),
                Span::styled("·", theme.dim()),
                Span::styled(" not granted", theme.dim()),
            ]),
            legend.width,
        );
        if model.permissions.is_empty() {
            empty_note(
                grid,
                buf,
                theme,
                "no scopes yet: press n to grant one to the selected agent",
            );
            return;
        }
        let cols = columns(model);
        let scope_w = model
            .permissions
            .iter()
            .map(|p| p.scope.chars().count())
            .max()
            .unwrap_or(5)
            .clamp(5, 28);
        let col_w: Vec<usize> = cols
            .iter()
            .map(|c| c.chars().count().clamp(3, 10))
            .collect();
        // Columns that fit, scrolled to keep the cursor's in view.
        let avail = usize::from(grid.width).saturating_sub(scope_w + 1);
        let mut first = self.col_offset.get().min(self.col);
        loop {
            let used: usize = col_w[first..=self.col.min(cols.len() - 1)]
                .iter()
                .map(|w| w + 1)
                .sum();
            if used <= avail || first >= self.col {
                break;
            }
            first += 1;
        }
        self.col_offset.set(first);
        let mut shown = Vec::new();
        let mut used = 0;
        for (i, w) in col_w.iter().enumerate().skip(first) {
            if used + w + 1 > avail {
                break;
            }
            used += w + 1;
            shown.push(i);
        }
        let mut head = vec![Span::styled(
            format!("{:<scope_w$} ", "SCOPE"),
            theme.header(),
        )];
        for &i in &shown {
            let style = if i == self.col {
                theme.focus()
            } else {
                theme.header()
            };
            head.push(Span::styled(
                format!("{:<w$}", truncate(&cols[i], col_w[i]), w = col_w[i]),
                style,
            ));
            head.push(Span::raw(" "));
        }
        if first > 0 || shown.last().is_some_and(|l| *l + 1 < cols.len()) {
            head.push(Span::styled("◂▸", theme.dim()));
        }
        buf.set_line(grid.x, grid.y, &Line::from(head), grid.width);
        let height = usize::from(grid.height.saturating_sub(1));
        let offset = keep_visible(self.row_offset.get(), self.row, height);
        self.row_offset.set(offset);
        for (n, r) in (offset..model.permissions.len().min(offset + height)).enumerate() {
            let p = &model.permissions[r];
            let scope_style = if r == self.row {
                theme.focus()
            } else {
                theme.text()
            };
            let mut spans = vec![Span::styled(
                format!("{:<scope_w$} ", truncate(&p.scope, scope_w)),
                scope_style,
            )];
            for &c in &shown {
                let (mark, style) = match grant(model, r, &cols[c]) {
                    Grant::Direct => ("✓", theme.ok()),
                    Grant::Wildcard => ("*", theme.warn()),
                    Grant::No => ("·", theme.dim()),
                };
                let style = if r == self.row && c == self.col {
                    theme.selected()
                } else {
                    style
                };
                let pad = col_w[c] - 1;
                spans.push(Span::styled(
                    format!(" {mark}{}", " ".repeat(pad.saturating_sub(1))),
                    style,
                ));
                spans.push(Span::raw(" "));
            }
            buf.set_line(
                grid.x,
                grid.y + 1 + n as u16,
                &Line::from(spans),
                grid.width,
            );
        }
    }

    fn commands(&self, _model: &Model) -> Vec<Action> {
        vec![
            Action::ToggleGrant,
            Action::NewScope,
            Action::Grant,
            Action::Revoke,
            Action::Refresh,
        ]
    }
}
