//! Pretty JSON (or any text) in a scrolling pane that renders only what is
//! visible.

use std::cell::RefCell;

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use serde_json::Value;

use crate::console::action::Action;
use crate::console::theme::Theme;

/// Pretty JSON (or any text) in a scrolling pane. Holds the text as lines,
/// wraps to the pane's width, and renders only the visible rows, so a
/// megabyte of JSON costs no more per frame than a screenful.
#[derive(Debug, Default)]
pub struct TextView {
    lines: Vec<StyledLine>,
    /// First visual row shown.
    scroll: usize,
    /// Stay at the bottom as lines arrive.
    pub follow: bool,
    /// (width, cumulative visual rows before each line, total rows)
    wrap: RefCell<Option<(usize, Vec<usize>, usize)>>,
    /// Rows visible at the last render (for paging).
    height: std::cell::Cell<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Json,
    Heading,
    Plain,
}

#[derive(Debug)]
struct StyledLine {
    text: String,
    kind: Kind,
    chars: usize,
}

impl TextView {
    /// An empty view.
    pub fn new() -> Self {
        Self::default()
    }

    /// Removes everything.
    pub fn clear(&mut self) {
        self.lines.clear();
        self.scroll = 0;
        *self.wrap.borrow_mut() = None;
    }

    fn push(&mut self, text: &str, kind: Kind) {
        let cached = self.wrap.get_mut().take();
        for l in text.split('\n') {
            let l = l.strip_suffix('\r').unwrap_or(l);
            self.lines.push(StyledLine {
                text: l.to_owned(),
                kind,
                chars: l.chars().count(),
            });
        }
        // Extend the wrap table instead of recomputing it.
        if let Some((w, mut cum, mut total)) = cached {
            for line in &self.lines[cum.len()..] {
                cum.push(total);
                total += rows_of(line.chars, w);
            }
            *self.wrap.get_mut() = Some((w, cum, total));
        }
    }

    /// Adds plain text lines.
    pub fn push_plain(&mut self, text: &str) {
        self.push(text, Kind::Plain);
    }

    /// Adds a heading line.
    pub fn push_heading(&mut self, text: &str) {
        self.push(text, Kind::Heading);
    }

    /// Adds a payload: pretty-printed when it is JSON, as is otherwise.
    pub fn push_payload(&mut self, data: &str) {
        match serde_json::from_str::<Value>(data) {
            Ok(v) => {
                let pretty = serde_json::to_string_pretty(&v).unwrap_or_else(|_| data.to_owned());
                self.push(&pretty, Kind::Json);
            }
            Err(_) => self.push(data, Kind::Plain),
        }
    }

    /// Adds a JSON value, pretty-printed.
    pub fn push_json(&mut self, v: &Value) {
        let pretty = serde_json::to_string_pretty(v).unwrap_or_default();
        self.push(&pretty, Kind::Json);
    }

    /// Number of logical lines.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether there is nothing to show.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// All text, for copying.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for l in &self.lines {
            out.push_str(&l.text);
            out.push('\n');
        }
        out
    }

    /// Scrolls by `delta` rows (negative: up). Scrolling up stops following.
    pub fn scroll_by(&mut self, delta: isize) {
        if delta < 0 {
            self.follow = false;
            self.scroll = self.scroll.saturating_sub(delta.unsigned_abs());
        } else {
            self.scroll = self.scroll.saturating_add(delta as usize);
        }
    }

    /// One page, as tall as the last render.
    pub fn page(&self) -> isize {
        self.height.get().max(2) as isize - 1
    }

    /// To the first row.
    pub fn top(&mut self) {
        self.follow = false;
        self.scroll = 0;
    }

    /// To the last row, and follow.
    pub fn bottom(&mut self) {
        self.follow = true;
        self.scroll = usize::MAX;
    }

    /// Scrolls for a movement action (a row, a page, to either end);
    /// returns whether it was one.
    pub fn navigate(&mut self, action: Action) -> bool {
        match action {
            Action::Up => self.scroll_by(-1),
            Action::Down => self.scroll_by(1),
            Action::PageUp => self.scroll_by(-self.page()),
            Action::PageDown => self.scroll_by(self.page()),
            Action::Top => self.top(),
            Action::Bottom => self.bottom(),
            _ => return false,
        }
        true
    }

    fn layout(&self, width: usize) -> std::cell::Ref<'_, Option<(usize, Vec<usize>, usize)>> {
        let stale = !matches!(&*self.wrap.borrow(), Some((w, cum, _)) if *w == width && cum.len() == self.lines.len());
        if stale {
            let mut cum = Vec::with_capacity(self.lines.len());
            let mut total = 0;
            for line in &self.lines {
                cum.push(total);
                total += rows_of(line.chars, width);
            }
            *self.wrap.borrow_mut() = Some((width, cum, total));
        }
        self.wrap.borrow()
    }

    /// Draws the visible rows into `area`.
    pub fn render(&self, area: Rect, buf: &mut Buffer, theme: &Theme) {
        if area.width == 0 || area.height == 0 {
            return;
        }
        let width = usize::from(area.width);
        let height = usize::from(area.height);
        self.height.set(height);
        let layout = self.layout(width);
        let Some((_, cum, total)) = layout.as_ref() else {
            return;
        };
        let max_scroll = total.saturating_sub(height);
        let scroll = if self.follow {
            max_scroll
        } else {
            self.scroll.min(max_scroll)
        };
        // The logical line holding the first visible row.
        let mut idx = match cum.binary_search(&scroll) {
            Ok(i) => {
                // Empty lines share a start with the next one; take the last.
                let mut i = i;
                while i + 1 < cum.len() && cum[i + 1] == scroll {
                    i += 1;
                }
                i
            }
            Err(i) => i.saturating_sub(1),
        };
        let mut sub = scroll - cum.get(idx).copied().unwrap_or(0);
        let mut y = area.y;
        while y < area.y + area.height && idx < self.lines.len() {
            let line = &self.lines[idx];
            let rows = rows_of(line.chars, width);
            while sub < rows && y < area.y + area.height {
                let start = sub * width;
                let piece = char_slice(&line.text, start, width);
                let rendered = match line.kind {
                    Kind::Json if sub == 0 => json_line(piece, theme),
                    Kind::Json => Line::from(Span::styled(piece.to_owned(), theme.json_string())),
                    Kind::Heading => Line::from(Span::styled(piece.to_owned(), theme.title())),
                    Kind::Plain => Line::from(piece.to_owned()),
                };
                buf.set_line(area.x, y, &rendered, area.width);
                y += 1;
                sub += 1;
            }
            sub = 0;
            idx += 1;
        }
    }

    /// Where the view stands: `(first row, rows)`.
    pub fn position(&self, width: u16) -> (usize, usize) {
        let layout = self.layout(usize::from(width.max(1)));
        let total = layout.as_ref().map(|(_, _, t)| *t).unwrap_or(0);
        let max_scroll = total.saturating_sub(self.height.get());
        let scroll = if self.follow {
            max_scroll
        } else {
            self.scroll.min(max_scroll)
        };
        (scroll, total)
    }
}

fn rows_of(chars: usize, width: usize) -> usize {
    chars.div_ceil(width.max(1)).max(1)
}

/// `len` characters of `s` from character `start`.
fn char_slice(s: &str, start: usize, len: usize) -> &str {
    if s.is_ascii() {
        let a = start.min(s.len());
        let b = (start + len).min(s.len());
        return &s[a..b];
    }
    let mut it = s.char_indices().skip(start);
    let Some((a, _)) = it.next() else {
        return "";
    };
    let b = s
        .char_indices()
        .nth(start + len)
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    &s[a..b]
}

/// Colours one line of pretty JSON: the key, then the value by its type.
fn json_line(text: &str, theme: &Theme) -> Line<'static> {
    let indent_len = text.len() - text.trim_start().len();
    let (indent, rest) = text.split_at(indent_len);
    let mut spans = vec![Span::raw(indent.to_owned())];
    let mut value = rest;
    if rest.starts_with('"') {
        if let Some(end) = closing_quote(rest) {
            let after = &rest[end + 1..];
            if let Some(v) = after.strip_prefix(": ") {
                spans.push(Span::styled(rest[..=end].to_owned(), theme.json_key()));
                spans.push(Span::raw(": "));
                value = v;
            }
        }
    }
    let style = value_style(value, theme);
    spans.push(Span::styled(value.to_owned(), style));
    Line::from(spans)
}

fn closing_quote(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

fn value_style(v: &str, theme: &Theme) -> Style {
    match v.as_bytes().first() {
        Some(b'"') => theme.json_string(),
        Some(b'{' | b'}' | b'[' | b']') => theme.text(),
        Some(_) => theme.json_literal(),
        None => theme.text(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn text_view_wraps_and_scrolls() {
        let mut v = TextView::new();
        v.push_payload(r#"{"a":"0123456789abcdefghij","b":[1,2]}"#);
        let area = Rect::new(0, 0, 12, 4);
        let mut buf = Buffer::empty(area);
        v.render(area, &mut buf, &Theme::new(false));
        assert_eq!(v.position(12), (0, 9));
        v.bottom();
        let mut buf = Buffer::empty(area);
        v.render(area, &mut buf, &Theme::new(false));
        assert_eq!(v.position(12), (5, 9));
        let last: String = (0..12).map(|x| buf[(x, 3)].symbol().to_owned()).collect();
        assert_eq!(last, "}           ");
    }
}
