//! The chrome around the visible screen: the header (profile, gateway), the
//! tab bar, the status line and the footer key bar, generated from the
//! screen's or the open dialog's commands.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use switchboard_core::profile::ProfileKind;

use super::action::{Action, Context, Tab};
use super::dialog::Dialog;
use super::keymap::Keymap;
use super::model::{Model, Status};
use super::screen::Screen;
use super::theme::Theme;
use super::widgets::truncate;

/// Smallest terminal the console lays out for.
pub const MIN_WIDTH: u16 = 80;
/// Smallest terminal the console lays out for.
pub const MIN_HEIGHT: u16 = 24;

/// `(key, label)` pairs for the footer.
type KeyItems = Vec<(String, &'static str)>;

/// What the chrome shows.
pub struct Chrome<'a> {
    /// The data.
    pub model: &'a Model,
    /// Styles.
    pub theme: &'a Theme,
    /// Keys.
    pub keymap: &'a Keymap,
    /// The visible tab.
    pub tab: Tab,
    /// Its screen.
    pub screen: &'a dyn Screen,
    /// The topmost dialog, if one is open.
    pub dialog: Option<&'a Dialog>,
    /// The status line.
    pub status: &'a Status,
}

impl Chrome<'_> {
    /// Draws the chrome over `area` and the screen with `body` in the rest;
    /// returns false (after saying so) when the terminal is too small.
    pub fn render(
        &self,
        area: Rect,
        buf: &mut Buffer,
        body: impl FnOnce(Rect, &mut Buffer),
    ) -> bool {
        if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
            let msg = format!(
                "Switchboard needs a terminal of at least {MIN_WIDTH}×{MIN_HEIGHT}; this one is {}×{}.",
                area.width, area.height
            );
            buf.set_line(
                area.x,
                area.y,
                &Line::from(Span::styled(msg, self.theme.warn())),
                area.width,
            );
            return false;
        }
        let [header, tabs, screen, status, footer] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(1),
            Constraint::Fill(1),
            Constraint::Length(1),
            Constraint::Length(1),
        ])
        .areas(area);
        self.render_header(header, buf);
        self.render_tabs(tabs, buf);
        body(screen, buf);
        self.render_status(status, buf);
        self.render_footer(footer, buf);
        true
    }

    fn render_header(&self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        let p = &self.model.profile;
        let mut spans = vec![
            Span::styled("Switchboard", t.title()),
            Span::raw("  profile "),
        ];
        if p.production {
            spans.push(Span::styled(format!(" {} ", p.name), t.production()));
            spans.push(Span::styled(" PRODUCTION", t.error()));
        } else {
            spans.push(Span::styled(p.name.clone(), t.ok()));
        }
        if let Some(next) = &self.model.switching {
            spans.push(Span::styled(format!(" → {next}…"), t.warn()));
        }
        if let ProfileKind::Aws(_) = p.kind {
            spans.push(Span::styled(format!(" ({})", p.describe()), t.dim()));
            spans.push(Span::styled(
                format!("  {} agents", self.model.agents.len()),
                t.dim(),
            ));
            spans.push(Span::styled("  local gateway ", t.dim()));
            spans.push(Span::raw(self.model.stack.gateway_url.clone()));
        } else {
            spans.push(Span::styled("  gateway ", t.dim()));
            spans.push(Span::raw(self.model.stack.gateway_url.clone()));
            spans.push(Span::styled(
                format!("  {} agents", self.model.agents.len()),
                t.dim(),
            ));
        }
        buf.set_line(area.x, area.y, &Line::from(spans), area.width);
    }

    fn render_tabs(&self, area: Rect, buf: &mut Buffer) {
        let mut spans = Vec::new();
        for (i, tab) in Tab::ALL.iter().enumerate() {
            if i > 0 {
                spans.push(Span::raw(" "));
            }
            let style = if *tab == self.tab {
                self.theme
                    .selected()
                    .add_modifier(ratatui::style::Modifier::BOLD)
            } else {
                self.theme.dim()
            };
            spans.push(Span::styled(tab.label(), style));
        }
        buf.set_line(area.x, area.y, &Line::from(spans), area.width);
    }

    fn render_status(&self, area: Rect, buf: &mut Buffer) {
        let line = match self.status {
            Status::None => Line::from(""),
            Status::Info(s) => Line::from(Span::raw(truncate(s, area.width.into()))),
            Status::Error(s) => Line::from(Span::styled(
                truncate(&format!("✗ {s}"), area.width.into()),
                self.theme.error(),
            )),
        };
        buf.set_line(area.x, area.y, &line, area.width);
    }

    /// `(left, right)`: the keys for what is on screen, and help/quit, which always show.
    fn footer_items(&self) -> (KeyItems, KeyItems) {
        let km = self.keymap;
        let mut items = Vec::new();
        if let Some(d) = self.dialog {
            let ctx = d.context();
            for a in d.commands() {
                if let Some(k) = km.first_key(ctx, a) {
                    items.push((k.to_string(), d.label(a)));
                }
            }
            return (items, Vec::new());
        }
        let screen = self.screen;
        if screen.editing() {
            for a in [Action::Submit, Action::Cancel] {
                if let Some(k) = km.first_key(Context::Form, a) {
                    let label = if a == Action::Submit {
                        "done"
                    } else {
                        "stop editing"
                    };
                    items.push((k.to_string(), label));
                }
            }
            return (items, Vec::new());
        }
        let ctx = screen.context();
        for a in screen.commands(self.model) {
            if let Some(k) = km.first_key(ctx, a) {
                items.push((k.to_string(), a.label(ctx)));
            }
        }
        if let Some(k) = km.first_key(Context::Global, Action::NextTab) {
            items.push((k.to_string(), Action::NextTab.label(Context::Global)));
        }
        let mut always = Vec::new();
        for a in [Action::Help, Action::Quit] {
            if let Some(k) = km.first_key(Context::Global, a) {
                always.push((k.to_string(), a.label(Context::Global)));
            }
        }
        (items, always)
    }

    fn render_footer(&self, area: Rect, buf: &mut Buffer) {
        let (items, always) = self.footer_items();
        let w = |(k, l): &(String, &str)| k.chars().count() + l.chars().count() + 3;
        let reserved: usize = always.iter().map(w).sum();
        let max = usize::from(area.width).saturating_sub(reserved);
        let mut spans = Vec::new();
        let mut width = 0usize;
        for item in items.iter().chain(&always) {
            let iw = w(item);
            if width + iw > max && !always.contains(item) {
                continue;
            }
            width += iw;
            spans.push(Span::styled(item.0.clone(), self.theme.key()));
            spans.push(Span::raw(format!(" {}  ", item.1)));
        }
        buf.set_line(area.x, area.y, &Line::from(spans), area.width);
    }
}

/// The tab under column `x` of the tab bar.
pub fn tab_at(x: u16) -> Option<Tab> {
    let mut start = 0u16;
    for tab in Tab::ALL {
        let w = tab.label().chars().count() as u16;
        if x >= start && x < start + w {
            return Some(tab);
        }
        start += w + 1;
    }
    None
}
