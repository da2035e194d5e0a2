//! Colours that carry meaning, and nothing but modifiers under `NO_COLOR`.
//! Text keeps the terminal's own foreground; only meaning is coloured.

use ratatui::style::{Color, Modifier, Style};

/// The styles every screen uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    color: bool,
}

impl Theme {
    /// Colours unless `NO_COLOR` is set (to anything non-empty).
    pub fn from_env() -> Theme {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Theme { color: !no_color }
    }

    /// A theme with or without colour.
    pub fn new(color: bool) -> Theme {
        Theme { color }
    }

    fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }

    /// Plain text.
    pub fn text(&self) -> Style {
        Style::new()
    }
    /// Less important text.
    pub fn dim(&self) -> Style {
        Style::new().add_modifier(Modifier::DIM)
    }
    /// Titles and headings.
    pub fn title(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }
    /// Column headers.
    pub fn header(&self) -> Style {
        Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    }
    /// The selected row or tab.
    pub fn selected(&self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }
    /// Keys in the footer and help.
    pub fn key(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }
    /// Good: healthy, allowed, 2xx, valid.
    pub fn ok(&self) -> Style {
        self.fg(Color::Green)
    }
    /// Needs attention: 4xx, near the limit, paused.
    pub fn warn(&self) -> Style {
        self.fg(Color::Yellow)
    }
    /// Bad: down, denied, 5xx, invalid, errors.
    pub fn error(&self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }
    /// A production profile: red, always noticeable.
    pub fn production(&self) -> Style {
        self.fg(Color::Red)
            .add_modifier(Modifier::BOLD | Modifier::REVERSED)
    }
    /// JSON keys.
    pub fn json_key(&self) -> Style {
        self.fg(Color::Cyan)
    }
    /// JSON strings.
    pub fn json_string(&self) -> Style {
        self.fg(Color::Green)
    }
    /// JSON numbers, booleans, null.
    pub fn json_literal(&self) -> Style {
        self.fg(Color::Magenta)
    }
    /// The focused field or pane border.
    pub fn focus(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }
    /// Style for an HTTP status.
    pub fn status(&self, status: Option<u16>) -> Style {
        match status {
            None => self.dim(),
            Some(s) if s < 400 => self.ok(),
            Some(s) if s < 500 => self.warn(),
            Some(_) => self.error(),
        }
    }
}
