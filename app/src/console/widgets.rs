//! Small building blocks: a one-line text input, a scrolling pretty-JSON
//! view that renders only what is visible, and formatting helpers.

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use serde_json::Value;
use unicode_width::UnicodeWidthStr;

use super::theme::Theme;

/// A one-line text field. `masked` fields show one dot per character and
/// never render their value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextInput {
    value: String,
    /// Cursor position in characters.
    cursor: usize,
    masked: bool,
}

impl TextInput {
    /// An empty field.
    pub fn new() -> Self {
        Self::default()
    }

    /// A field showing dots instead of its value.
    pub fn masked() -> Self {
        TextInput {
            masked: true,
            ..Self::default()
        }
    }

    /// A field holding `value`, cursor at the end.
    pub fn with(value: impl Into<String>) -> Self {
        let mut t = Self::new();
        t.set(value);
        t
    }

    /// The text.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Replaces the text; cursor at the end.
    pub fn set(&mut self, value: impl Into<String>) {
        self.value = value.into();
        self.cursor = self.value.chars().count();
    }

    /// Whether it hides its value.
    pub fn is_masked(&self) -> bool {
        self.masked
    }

    fn byte_at(&self, chars: usize) -> usize {
        self.value
            .char_indices()
            .nth(chars)
            .map(|(i, _)| i)
            .unwrap_or(self.value.len())
    }

    /// Inserts text at the cursor (pasted text: line breaks become spaces).
    pub fn insert(&mut self, text: &str) {
        let clean: String = text
            .chars()
            .map(|c| {
                if c == '\n' || c == '\r' || c == '\t' {
                    ' '
                } else {
                    c
                }
            })
            .filter(|c| !c.is_control())
            .collect();
        let at = self.byte_at(self.cursor);
        self.value.insert_str(at, &clean);
        self.cursor += clean.chars().count();
    }

    /// Editing keys; returns whether the key was used.
    pub fn handle_key(&mut self, key: &KeyEvent) -> bool {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('u') if ctrl => {
                self.value.clear();
                self.cursor = 0;
            }
            KeyCode::Char('w') if ctrl => {
                let end = self.byte_at(self.cursor);
                let head = &self.value[..end];
                let trimmed = head.trim_end();
                let start = trimmed
                    .rfind(char::is_whitespace)
                    .map(|i| i + 1)
                    .unwrap_or(0);
                let removed = self.value[start..end].chars().count();
                self.value.replace_range(start..end, "");
                self.cursor -= removed;
            }
            KeyCode::Char('a') if ctrl => self.cursor = 0,
            KeyCode::Char('e') if ctrl => self.cursor = self.value.chars().count(),
            KeyCode::Char(c) if !ctrl && !key.modifiers.contains(KeyModifiers::ALT) => {
                let mut buf = [0u8; 4];
                self.insert(c.encode_utf8(&mut buf));
            }
            KeyCode::Backspace if self.cursor > 0 => {
                let start = self.byte_at(self.cursor - 1);
                let end = self.byte_at(self.cursor);
                self.value.replace_range(start..end, "");
                self.cursor -= 1;
            }
            KeyCode::Backspace => {}
            KeyCode::Delete if self.cursor < self.value.chars().count() => {
                let start = self.byte_at(self.cursor);
                let end = self.byte_at(self.cursor + 1);
                self.value.replace_range(start..end, "");
            }
            KeyCode::Delete => {}
            KeyCode::Left => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Right => self.cursor = (self.cursor + 1).min(self.value.chars().count()),
            KeyCode::Home => self.cursor = 0,
            KeyCode::End => self.cursor = self.value.chars().count(),
            _ => return false,
        }
        true
    }

    /// The field as one line `width` cells wide; the cursor is drawn when `focused`.
    pub fn line(&self, width: u16, focused: bool, theme: &Theme) -> Line<'static> {
        let width = usize::from(width.max(1));
        let shown: Vec<char> = if self.masked {
            std::iter::repeat_n('•', self.value.chars().count()).collect()
        } else {
            self.value.chars().collect()
        };
        // Keep the cursor in view: scroll so it sits on the last cell at most.
        let start = if focused && self.cursor + 1 > width {
            self.cursor + 1 - width
        } else {
            0
        };
        let end = (start + width).min(shown.len());
        let visible: String = shown[start.min(shown.len())..end].iter().collect();
        if !focused {
            return Line::from(Span::styled(visible, theme.text()));
        }
        let cur = self.cursor - start;
        let before: String = visible.chars().take(cur).collect();
        let at: String = visible
            .chars()
            .nth(cur)
            .map(String::from)
            .unwrap_or(" ".into());
        let after: String = visible.chars().skip(cur + 1).collect();
        Line::from(vec![
            Span::raw(before),
            Span::styled(at, theme.selected()),
            Span::raw(after),
        ])
    }
}

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

/// `HH:MM:SS.mmm` (UTC).
pub fn fmt_time(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        d.subsec_millis()
    )
}

/// `12ms`, `1.4s`, `850µs`.
pub fn fmt_latency(d: Duration) -> String {
    let us = d.as_micros();
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 10_000_000 {
        let ms = d.as_millis();
        if ms < 1_000 {
            format!("{ms}ms")
        } else {
            format!("{:.1}s", d.as_secs_f64())
        }
    } else {
        format!("{}s", d.as_secs())
    }
}

/// Cuts `s` to `width` cells, ending in `…` when cut.
pub fn truncate(s: &str, width: usize) -> String {
    if s.width() <= width {
        return s.to_owned();
    }
    if width == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if w + cw + 1 > width {
            break;
        }
        out.push(c);
        w += cw;
    }
    out.push('…');
    out
}

/// Breaks a styled line into lines at most `width` columns wide, at spaces
/// where it can (the space is dropped), inside a word where it must.
pub fn wrap_line(line: &Line<'_>, width: usize) -> Vec<Line<'static>> {
    let width = width.max(1);
    let chars: Vec<(char, Style)> = line
        .spans
        .iter()
        .flat_map(|s| s.content.chars().map(move |c| (c, s.style)))
        .collect();
    let cw = |c: char| unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
    let mut rows: Vec<Vec<(char, Style)>> = Vec::new();
    let mut row: Vec<(char, Style)> = Vec::new();
    let mut w = 0;
    for (c, style) in chars {
        if c == ' ' && w + cw(c) > width {
            // The row is full: break at this space.
            rows.push(std::mem::take(&mut row));
            w = 0;
            continue;
        }
        while w + cw(c) > width && !row.is_empty() {
            match row
                .iter()
                .rposition(|(ch, _)| *ch == ' ')
                .filter(|i| *i > 0)
            {
                Some(at) => {
                    let rest = row.split_off(at + 1);
                    row.pop();
                    rows.push(std::mem::replace(&mut row, rest));
                }
                None => rows.push(std::mem::take(&mut row)),
            }
            w = row.iter().map(|(ch, _)| cw(*ch)).sum();
        }
        if row.is_empty() && c == ' ' && !rows.is_empty() {
            continue;
        }
        w += cw(c);
        row.push((c, style));
    }
    rows.push(row);
    rows.into_iter()
        .map(|r| {
            let mut spans: Vec<Span<'static>> = Vec::new();
            for (c, style) in r {
                match spans.last_mut() {
                    Some(last) if last.style == style => last.content.to_mut().push(c),
                    _ => spans.push(Span::styled(c.to_string(), style)),
                }
            }
            Line::from(spans).style(line.style)
        })
        .collect()
}

/// Plain text wrapped to `width` columns (see [`wrap_line`]).
pub fn wrap(s: &str, width: usize) -> Vec<String> {
    wrap_line(&Line::from(s.to_owned()), width)
        .iter()
        .map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect())
        .collect()
}

/// A rectangle of `width` × `height` centred in `area` (clamped to it).
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn k(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn wrapping_breaks_at_spaces_and_keeps_styles() {
        assert_eq!(
            wrap("the token endpoint refused client c: invalid_client", 20),
            vec!["the token endpoint", "refused client c:", "invalid_client"]
        );
        assert_eq!(wrap("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(wrap("abcd efgh", 4), vec!["abcd", "efgh"]);
        assert_eq!(wrap("", 4), vec![""]);
        let red = Style::new().fg(ratatui::style::Color::Red);
        let line = Line::from(vec![Span::raw("ok "), Span::styled("bad news", red)]);
        let wrapped = wrap_line(&line, 6);
        assert_eq!(
            wrapped,
            vec![
                Line::from(vec![Span::raw("ok "), Span::styled("bad", red)]),
                Line::from(vec![Span::styled("news", red)]),
            ]
        );
    }

    #[test]
    fn text_input_edits() {
        let mut t = TextInput::new();
        for c in "hello wrld".chars() {
            t.handle_key(&k(KeyCode::Char(c)));
        }
        for _ in 0..3 {
            t.handle_key(&k(KeyCode::Left));
        }
        t.handle_key(&k(KeyCode::Char('o')));
        assert_eq!(t.value(), "hello world");
        t.handle_key(&KeyEvent::new(KeyCode::Char('w'), KeyModifiers::CONTROL));
        assert_eq!(t.value(), "hello rld");
        t.handle_key(&k(KeyCode::End));
        t.handle_key(&k(KeyCode::Backspace));
        assert_eq!(t.value(), "hello rl");
        t.insert("a\nb");
        assert_eq!(t.value(), "hello rla b");
        t.handle_key(&KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
        assert_eq!(t.value(), "");
        assert!(!t.handle_key(&k(KeyCode::Enter)));
    }

    #[test]
    fn masked_input_never_shows_its_value() {
        let mut t = TextInput::masked();
        t.insert("s3cret");
        let line = t.line(20, true, &Theme::new(false));
        let text: String = line.spans.iter().map(|s| s.content.as_ref()).collect();
        assert_eq!(text, "•••••• ");
    }

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

    #[test]
    fn formats() {
        assert_eq!(
            fmt_time(UNIX_EPOCH + Duration::from_millis(3_723_004)),
            "01:02:03.004"
        );
        assert_eq!(fmt_latency(Duration::from_micros(850)), "850µs");
        assert_eq!(fmt_latency(Duration::from_millis(12)), "12ms");
        assert_eq!(fmt_latency(Duration::from_millis(1400)), "1.4s");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(keep_visible(0, 12, 10), 3);
        assert_eq!(keep_visible(5, 2, 10), 2);
    }
}
