//! Lists: the selection and scroll position every screen list, chooser and
//! scrolling popup shares (one row, a page, either end), and the table a
//! list draws, building only its visible rows.

use std::cell::Cell;

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Row, Table, Widget};

use crate::console::action::Action;
use crate::console::theme::Theme;

/// Where a movement action takes a position in `0..=last`: up and down a
/// row, a page of `page` rows, or to either end. `None` when the action
/// does not move. Moving up never clamps to `last`, so a position beyond
/// it (the list shrank) steps back one row at a time.
pub fn moved(pos: usize, action: Action, last: usize, page: usize) -> Option<usize> {
    Some(match action {
        Action::Up => pos.saturating_sub(1),
        Action::Down => pos.saturating_add(1).min(last),
        Action::PageUp => pos.saturating_sub(page),
        Action::PageDown => pos.saturating_add(page).min(last),
        Action::Top => 0,
        Action::Bottom => last,
        _ => return None,
    })
}

/// Keeps `selected` in view in a list `height` rows tall; returns the new offset.
pub fn keep_visible(offset: usize, selected: usize, height: usize) -> usize {
    let height = height.max(1);
    if selected < offset {
        selected
    } else if selected >= offset + height {
        selected + 1 - height
    } else {
        offset
    }
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
    /// Moves the selection for a navigation action (a page is the height
    /// last drawn); returns whether it was one.
    pub fn navigate(&mut self, action: Action, len: usize) -> bool {
        let page = self.height.get().max(2) - 1;
        match moved(self.selected, action, len.saturating_sub(1), page) {
            Some(to) => {
                self.selected = to;
                true
            }
            None => false,
        }
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

    /// Selects the row under a click, if it is one of the `len` rows;
    /// returns whether it did.
    pub fn click(&mut self, x: u16, y: u16, len: usize) -> bool {
        match self.row_at(x, y) {
            Some(i) if i < len => {
                self.selected = i;
                true
            }
            _ => false,
        }
    }

    /// Draws a table of `len` rows in `area`, under a header of the
    /// `columns`' names and in their widths, building only the visible rows
    /// with `row(i)`; the selected row is highlighted and marked.
    pub fn table<'a>(
        &self,
        area: Rect,
        buf: &mut Buffer,
        theme: &Theme,
        columns: &[(&str, Constraint)],
        len: usize,
        mut row: impl FnMut(usize) -> Row<'a>,
    ) {
        let height = usize::from(area.height.saturating_sub(1));
        let offset = self.offset_for(height);
        self.area.set(Rect {
            y: area.y + 1,
            height: area.height.saturating_sub(1),
            ..area
        });
        let rows: Vec<Row> = (offset..len.min(offset + height))
            .map(|i| {
                let r = row(i);
                if i == self.selected {
                    r.style(theme.selected())
                } else {
                    r
                }
            })
            .collect();
        let head =
            Row::new(columns.iter().map(|(name, _)| Line::from(*name))).style(theme.header());
        let widths: Vec<Constraint> = columns.iter().map(|(_, w)| *w).collect();
        // A marker column shows the selection without colour too.
        let [mark, rest] =
            Layout::horizontal([Constraint::Length(1), Constraint::Fill(1)]).areas(area);
        if self.selected >= offset && self.selected < offset + height {
            let y = mark.y + 1 + (self.selected - offset) as u16;
            buf.set_string(mark.x, y, "▸", theme.focus());
        }
        Table::new(rows, widths)
            .header(head)
            .column_spacing(1)
            .render(rest, buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn moves_by_a_row_a_page_and_to_the_ends() {
        assert_eq!(moved(3, Action::Up, 9, 4), Some(2));
        assert_eq!(moved(0, Action::Up, 9, 4), Some(0));
        assert_eq!(moved(9, Action::Down, 9, 4), Some(9));
        assert_eq!(moved(7, Action::PageDown, 9, 4), Some(9));
        assert_eq!(moved(3, Action::PageUp, 9, 4), Some(0));
        assert_eq!(moved(3, Action::Top, 9, 4), Some(0));
        assert_eq!(moved(3, Action::Bottom, 9, 4), Some(9));
        assert_eq!(moved(3, Action::Select, 9, 4), None);
        assert_eq!(moved(0, Action::Down, 0, 4), Some(0));
    }

    #[test]
    fn keeps_the_selection_in_view() {
        assert_eq!(keep_visible(0, 12, 10), 3);
        assert_eq!(keep_visible(5, 2, 10), 2);
    }
}
