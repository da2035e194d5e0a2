//! Bordered panes and what goes in them when there is little to show.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Widget};

use crate::console::theme::Theme;

/// A bordered pane with a title; the border is bright when focused.
pub fn pane<'a>(title: impl Into<String>, focused: bool, theme: &Theme) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(if focused { theme.focus() } else { theme.dim() })
        .title(Span::styled(format!(" {} ", title.into()), theme.title()))
}

/// Draws a [`pane`] over `area`; returns the area inside its border.
pub fn framed(
    area: Rect,
    buf: &mut Buffer,
    title: impl Into<String>,
    focused: bool,
    theme: &Theme,
) -> Rect {
    let block = pane(title, focused, theme);
    let inner = block.inner(area);
    block.render(area, buf);
    inner
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
