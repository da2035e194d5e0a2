//! Text helpers: times, latencies, cutting and wrapping to a width, and
//! centring a box.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use unicode_width::UnicodeWidthStr;

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

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

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
    }
}
