//! One file per screen, and what they share: bordered panes, lists that
//! render only their visible rows, and selection movement.

pub mod agents;
pub mod clients;
pub mod discover;
pub mod limits;
pub mod permissions;
pub mod profile;
pub mod send;
pub mod traffic;

use std::cell::Cell;

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Row, Table, Widget};

use super::action::Action;
use super::theme::Theme;
use super::widgets::keep_visible;

/// A bordered pane with a title; the border is bright when focused.
pub fn pane<'a>(title: impl Into<String>, focused: bool, theme: &Theme) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(if focused { theme.focus() } else { theme.dim() })
        .title(Span::styled(format!(" {} ", title.into()), theme.title()))
}

/// A selectable list position: the selected index and the scroll offset
/// kept at render time.
#[derive(Debug, Default)]
pub struct ListState {
    /// Selected row.
    pub selected: usize,
    offset: Cell<usize>,
    height: Cell<usize>,
    /// Where the rows were last drawn (first row's y, x range), for clicks.
    area: Cell<Rect>,
}

impl ListState {
    /// Moves the selection for a navigation action; returns whether it was one.
    pub fn navigate(&mut self, action: Action, len: usize) -> bool {
        let page = self.height.get().max(2) - 1;
        let last = len.saturating_sub(1);
        self.selected = match action {
            Action::Up => self.selected.saturating_sub(1),
            Action::Down => (self.selected + 1).min(last),
            Action::PageUp => self.selected.saturating_sub(page),
            Action::PageDown => (self.selected + page).min(last),
            Action::Top => 0,
            Action::Bottom => last,
            _ => return false,
        };
        true
    }

    /// Keeps the selection within `len` rows.
    pub fn clamp(&mut self, len: usize) {
        self.selected = self.selected.min(len.saturating_sub(1));
    }

    /// The first row to draw in `height` rows, keeping the selection in view.
    pub fn offset_for(&self, height: usize) -> usize {
        let off = keep_visible(self.offset.get(), self.selected, height);
        self.offset.set(off);
        self.height.set(height);
        off
    }

    /// The row under a click at `y`, if it is one of the drawn rows.
    pub fn row_at(&self, x: u16, y: u16) -> Option<usize> {
        let a = self.area.get();
        if x >= a.x && x < a.x + a.width && y >= a.y && y < a.y + a.height {
            Some(self.offset.get() + usize::from(y - a.y))
        } else {
            None
        }
    }
}

/// Draws a table of `len` rows in `area` (with a header), building only the
/// visible rows with `row(i)`.
#[allow(clippy::too_many_arguments)]
pub fn table<'a>(
    area: Rect,
    buf: &mut Buffer,
    theme: &Theme,
    state: &ListState,
    header: &[&str],
    widths: &[Constraint],
    len: usize,
    focused: bool,
    mut row: impl FnMut(usize) -> Row<'a>,
) {
    let height = usize::from(area.height.saturating_sub(1));
    let offset = state.offset_for(height);
    state.area.set(Rect {
        y: area.y + 1,
        height: area.height.saturating_sub(1),
        ..area
    });
    let rows: Vec<Row> = (offset..len.min(offset + height))
        .map(|i| {
            let r = row(i);
            if i == state.selected && focused {
                r.style(theme.selected())
            } else {
                r
            }
        })
        .collect();
    let head = Row::new(header.iter().map(|h| Line::from(*h))).style(theme.header());
    // A marker column shows the selection without colour too.
    let [mark, rest] = Layout::horizontal([Constraint::Length(1), Constraint::Fill(1)]).areas(area);
    if focused && state.selected >= offset && state.selected < offset + height {
        let y = mark.y + 1 + (state.selected - offset) as u16;
        buf.set_string(mark.x, y, "▸", theme.focus());
    }
    Table::new(rows, widths.to_vec())
        .header(head)
        .column_spacing(1)
        .render(rest, buf);
}

/// A dimmed note in the middle of an empty pane.
pub fn empty_note(area: Rect, buf: &mut Buffer, theme: &Theme, text: &str) {
    if area.height == 0 {
        return;
    }
    let y = area.y + area.height / 2;
    let w = text.chars().count() as u16;
    let x = area.x + area.width.saturating_sub(w) / 2;
    buf.set_line(
        x,
        y,
        &Line::from(Span::styled(text.to_owned(), theme.dim())),
        area.width,
    );
}

/// Lines of `label value` pairs with an aligned label column.
pub fn kv<'a>(label: &str, value: Vec<Span<'a>>, theme: &Theme) -> Line<'a> {
    let mut spans = vec![Span::styled(format!("{label:<11}"), theme.dim())];
    spans.extend(value);
    Line::from(spans)
}
