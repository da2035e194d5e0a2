//! Modal dialogs: questions, typed confirmations for production profiles,
//! values shown once, forms, choosers and the help popup.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Widget};
use serde_json::Value;
use switchboard_core::profile::Profile;
use switchboard_core::registry::AgentRecord;
use switchboard_core::sync::SyncPlan;

use super::action::{Action, Context};
use super::form::Form;
use super::keymap::Keymap;
use super::msg::Request;
use super::theme::Theme;
use super::widgets::{centered, keep_visible, truncate, wrap_line, TextInput};

/// What a form is for; decides what its submit does.
#[derive(Debug, Clone, PartialEq)]
pub enum Purpose {
    /// The URL of an agent to add; its card is fetched next.
    AgentUrl,
    /// Add (`original` none) or edit an agent.
    Agent {
        /// The record being edited.
        original: Option<Box<AgentRecord>>,
        /// The card fetched for a new agent.
        card: Option<Value>,
    },
    /// Register a client.
    Client,
    /// Mint a token for a client.
    Mint {
        /// Client id.
        client: String,
    },
    /// Get a token from the AWS profile's token endpoint (client id and secret).
    MintRemote,
    /// Grant a new scope to an agent.
    NewScope {
        /// Agent id or `*`.
        agent: String,
    },
    /// A token to inspect.
    Token,
}

/// What a chooser chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// The agent to send to.
    Agent,
    /// The client to send as.
    Client,
}

/// A modal dialog.
#[derive(Debug, Clone, PartialEq)]
pub enum Dialog {
    /// Yes or no before a request.
    Confirm {
        /// Title.
        title: String,
        /// The question.
        message: String,
        /// Sent on yes.
        request: Request,
    },
    /// A write on a production profile: type the profile's name.
    Typed {
        /// The name to type.
        profile: String,
        /// Sent when typed right.
        request: Request,
        /// What was typed.
        input: TextInput,
        /// What was wrong.
        error: Option<String>,
    },
    /// A message, or a value shown once.
    Info {
        /// Title.
        title: String,
        /// Text.
        lines: Vec<String>,
        /// What the copy key copies.
        copy: Option<String>,
    },
    /// A form.
    Form {
        /// The form.
        form: Form,
        /// What it is for.
        purpose: Purpose,
    },
    /// Choose one of a list.
    Picker {
        /// Title.
        title: String,
        /// `(value, label)`.
        items: Vec<(String, String)>,
        /// Highlighted item.
        selected: usize,
        /// What is being chosen.
        pick: Pick,
    },
    /// Every key.
    Help {
        /// First row shown.
        scroll: usize,
    },
    /// What a sync from the local profile to `to` would change: the lines
    /// `switchboard sync --to NAME --dry-run` prints.
    SyncPlan {
        /// The target.
        to: Profile,
        /// Whether secret values are copied.
        copy_secrets: bool,
        /// The plan, applied as shown.
        plan: SyncPlan,
        /// Its lines.
        lines: Vec<String>,
        /// First row shown (of the wrapped lines).
        scroll: usize,
        /// The last first row that still fills the box, as last drawn.
        max_scroll: std::cell::Cell<usize>,
    },
}

impl Dialog {
    /// A chooser over `(value, label)` items, on the `current` value (else the first).
    pub fn picker(
        title: &str,
        items: Vec<(String, String)>,
        current: Option<&str>,
        pick: Pick,
    ) -> Dialog {
        let selected = current
            .and_then(|c| items.iter().position(|(v, _)| v == c))
            .unwrap_or(0);
        Dialog::Picker {
            title: title.to_owned(),
            items,
            selected,
            pick,
        }
    }

    /// The key-map section that applies while it is open.
    pub fn context(&self) -> Context {
        match self {
            Dialog::Confirm { .. } => Context::Confirm,
            Dialog::Typed { .. } | Dialog::Form { .. } => Context::Form,
            Dialog::Info { .. } => Context::Info,
            Dialog::Picker { .. } => Context::Picker,
            Dialog::Help { .. } => Context::HelpPopup,
            Dialog::SyncPlan { .. } => Context::SyncPlan,
        }
    }

    /// The actions the footer lists while it is open.
    pub fn commands(&self) -> Vec<Action> {
        match self {
            Dialog::Confirm { .. } => vec![Action::Confirm, Action::Cancel],
            Dialog::Typed { .. } => vec![Action::Submit, Action::Cancel],
            Dialog::Form { .. } => vec![Action::Submit, Action::NextField, Action::Cancel],
            Dialog::Info { copy, .. } => {
                if copy.is_some() {
                    vec![Action::Copy, Action::Cancel]
                } else {
                    vec![Action::Cancel]
                }
            }
            Dialog::Picker { .. } => vec![Action::Select, Action::Up, Action::Down, Action::Cancel],
            Dialog::Help { .. } => vec![Action::Down, Action::Up, Action::Cancel],
            Dialog::SyncPlan { plan, .. } => {
                if plan.is_empty() {
                    vec![Action::Down, Action::Up, Action::Cancel]
                } else {
                    vec![Action::Confirm, Action::Down, Action::Up, Action::Cancel]
                }
            }
        }
    }

    /// The footer label of one of its actions.
    pub fn label(&self, action: Action) -> &'static str {
        match (self, action) {
            (Dialog::Typed { .. }, Action::Submit) => "confirm",
            (Dialog::Typed { .. }, Action::Cancel) => "cancel",
            (
                Dialog::Form {
                    purpose: Purpose::AgentUrl,
                    ..
                },
                Action::Submit,
            ) => "fetch card",
            (
                Dialog::Form {
                    purpose: Purpose::Token,
                    ..
                },
                Action::Submit,
            ) => "inspect",
            (
                Dialog::Form {
                    purpose: Purpose::Mint { .. },
                    ..
                },
                Action::Submit,
            ) => "mint",
            (
                Dialog::Form {
                    purpose: Purpose::Client,
                    ..
                },
                Action::Submit,
            ) => "add",
            (
                Dialog::Form {
                    purpose: Purpose::MintRemote,
                    ..
                },
                Action::Submit,
            ) => "get token",
            (
                Dialog::Form {
                    purpose: Purpose::NewScope { .. },
                    ..
                },
                Action::Submit,
            ) => "grant",
            _ => action.label(self.context()),
        }
    }

    /// Draws the dialog over `area` (the whole screen).
    pub fn render(&self, area: Rect, buf: &mut Buffer, theme: &Theme, keymap: &Keymap) {
        match self {
            Dialog::Form { form, .. } => {
                let w = area.width.saturating_sub(4).min(90);
                let r = centered(area, w, form.height(w));
                form.render(r, buf, theme, keymap, self.label(Action::Submit));
            }
            Dialog::Confirm { title, message, .. } => {
                let lines = vec![
                    Line::from(message.clone()),
                    Line::from(""),
                    keys_line(self, theme, keymap),
                ];
                boxed(area, buf, theme, title, lines, theme.focus());
            }
            Dialog::Typed {
                profile,
                request,
                input,
                error,
            } => {
                let mut lines = vec![
                    Line::from(vec![
                        Span::raw("Profile "),
                        Span::styled(profile.clone(), theme.production()),
                        Span::raw(" is marked production."),
                    ]),
                    Line::from(format!("About to {}.", request.describe())),
                    Line::from(format!("Type the profile name ({profile}) to go ahead:")),
                    Line::from(
                        vec![Span::raw("> ")]
                            .into_iter()
                            .chain(input.line(40, true, theme).spans)
                            .collect::<Vec<_>>(),
                    ),
                ];
                if let Some(e) = error {
                    lines.push(Line::from(Span::styled(e.clone(), theme.error())));
                }
                lines.push(Line::from(""));
                lines.push(keys_line(self, theme, keymap));
                boxed(
                    area,
                    buf,
                    theme,
                    "Confirm a production write",
                    lines,
                    theme.error(),
                );
            }
            Dialog::Info { title, lines, .. } => {
                let mut out: Vec<Line> = lines.iter().map(|l| Line::from(l.clone())).collect();
                out.push(Line::from(""));
                out.push(keys_line(self, theme, keymap));
                boxed(area, buf, theme, title, out, theme.focus());
            }
            Dialog::Picker {
                title,
                items,
                selected,
                ..
            } => {
                let h = (items.len() as u16 + 4).min(area.height.saturating_sub(2));
                let rows = usize::from(h.saturating_sub(4));
                let offset = keep_visible(0, *selected, rows);
                let mut lines: Vec<Line> = items
                    .iter()
                    .enumerate()
                    .skip(offset)
                    .take(rows)
                    .map(|(i, (_, label))| {
                        let style = if i == *selected {
                            theme.selected()
                        } else {
                            theme.text()
                        };
                        let mark = if i == *selected { "▸" } else { " " };
                        Line::from(Span::styled(format!("{mark}{label} "), style))
                    })
                    .collect();
                if items.is_empty() {
                    lines.push(Line::from(Span::styled("nothing to choose", theme.dim())));
                }
                lines.push(Line::from(""));
                lines.push(keys_line(self, theme, keymap));
                boxed(area, buf, theme, title, lines, theme.focus());
            }
            Dialog::Help { scroll } => render_help(area, buf, theme, keymap, *scroll),
            Dialog::SyncPlan {
                to,
                copy_secrets,
                plan,
                lines,
                scroll,
                max_scroll,
            } => {
                let width = usize::from(area.width.saturating_sub(6)).max(1);
                let rows_of = |l: Line<'static>| wrap_line(&l, width);
                let mut footer: Vec<Line> = Vec::new();
                footer.extend(rows_of(Line::from(Span::styled(
                    if *copy_secrets {
                        "Secret values the agents use are copied (c on the Profile screen turns it off)."
                    } else {
                        "Secret values are not copied (c on the Profile screen copies them)."
                    },
                    theme.dim(),
                ))));
                if to.production && !plan.is_empty() {
                    footer.extend(rows_of(Line::from(Span::styled(
                        format!(
                            "{} is marked production: applying asks for its name.",
                            to.name
                        ),
                        theme.error(),
                    ))));
                }
                footer.push(keys_line(self, theme, keymap));
                let body: Vec<Line> = lines
                    .iter()
                    .flat_map(|l| rows_of(Line::from(sync_line(l, theme))))
                    .collect();
                // Border and a row of margin above and below, the footer,
                // and a position line when it does not all fit.
                let room = usize::from(area.height.saturating_sub(4))
                    .saturating_sub(footer.len())
                    .max(1);
                let rows = if body.len() > room {
                    room.saturating_sub(1).max(1)
                } else {
                    room
                };
                max_scroll.set(body.len().saturating_sub(rows));
                let scroll = (*scroll).min(max_scroll.get());
                let mut out: Vec<Line> = body.iter().skip(scroll).take(rows).cloned().collect();
                if body.len() > rows {
                    out.push(Line::from(Span::styled(
                        format!(
                            "lines {}–{} of {} (↑/↓ scroll)",
                            scroll + 1,
                            (scroll + rows).min(body.len()),
                            body.len()
                        ),
                        theme.dim(),
                    )));
                }
                out.extend(footer);
                let border = if to.production {
                    theme.error()
                } else {
                    theme.focus()
                };
                boxed(
                    area,
                    buf,
                    theme,
                    &format!("Sync diff: local → {}", to.name),
                    out,
                    border,
                );
            }
        }
    }
}

/// A plan line, coloured by its mark (`+`, `~`, `-`, `!`).
fn sync_line<'a>(line: &str, theme: &Theme) -> Span<'a> {
    let style = match line.trim_start().chars().next() {
        Some('+') => theme.ok(),
        Some('~') => theme.warn(),
        Some('-') | Some('!') => theme.error(),
        _ => theme.text(),
    };
    Span::styled(line.to_owned(), style)
}

fn keys_line(dialog: &Dialog, theme: &Theme, keymap: &Keymap) -> Line<'static> {
    let ctx = dialog.context();
    let mut spans = Vec::new();
    for action in dialog.commands() {
        if let Some(k) = keymap.first_key(ctx, action) {
            spans.push(Span::styled(k.to_string(), theme.key()));
            spans.push(Span::raw(format!(" {}  ", dialog.label(action))));
        }
    }
    Line::from(spans)
}

fn boxed(
    area: Rect,
    buf: &mut Buffer,
    theme: &Theme,
    title: &str,
    lines: Vec<Line<'_>>,
    border: ratatui::style::Style,
) {
    let content_w = lines.iter().map(Line::width).max().unwrap_or(0) as u16;
    let w = (content_w + 4)
        .max(title.chars().count() as u16 + 6)
        .min(area.width.saturating_sub(2))
        .max(20);
    // Lines wider than the box wrap rather than lose their end.
    let lines: Vec<Line> = lines
        .iter()
        .flat_map(|l| wrap_line(l, usize::from(w.saturating_sub(4))))
        .collect();
    let h = lines.len() as u16 + 2;
    let r = centered(area, w, h);
    Clear.render(r, buf);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(border)
        .title(Span::styled(format!(" {title} "), theme.title()));
    let inner = block.inner(r);
    block.render(r, buf);
    let inner = Rect {
        x: inner.x + 1,
        width: inner.width.saturating_sub(2),
        ..inner
    };
    for (i, line) in lines.iter().enumerate() {
        let y = inner.y + i as u16;
        if y >= inner.y + inner.height {
            break;
        }
        buf.set_line(inner.x, y, line, inner.width);
    }
}

/// The help text: every section of the key map, generated from it.
pub fn help_lines(keymap: &Keymap) -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    for ctx in Context::ALL {
        let section = keymap.section(ctx);
        if section.is_empty() {
            continue;
        }
        out.push((None, ctx.title().to_owned()));
        for (action, keys) in section {
            let keys: Vec<String> = keys.iter().map(ToString::to_string).collect();
            out.push((Some(keys.join(" ")), action.label(ctx).to_owned()));
        }
        if ctx == Context::Global {
            out.push((Some("ctrl-c".into()), "quit (always)".into()));
        }
    }
    out
}

fn render_help(area: Rect, buf: &mut Buffer, theme: &Theme, keymap: &Keymap, scroll: usize) {
    let w = area.width.saturating_sub(4).min(64);
    let h = area.height.saturating_sub(2);
    let r = centered(area, w, h);
    Clear.render(r, buf);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.focus())
        .title(Span::styled(" Keys ", theme.title()));
    let inner = block.inner(r);
    block.render(r, buf);
    let lines = help_lines(keymap);
    let rows = usize::from(inner.height.saturating_sub(1));
    let scroll = scroll.min(lines.len().saturating_sub(rows));
    for (i, (keys, label)) in lines.iter().skip(scroll).take(rows).enumerate() {
        let y = inner.y + i as u16;
        let line = match keys {
            None => Line::from(Span::styled(label.clone(), theme.title())),
            Some(k) => Line::from(vec![
                Span::styled(format!("  {:<22}", truncate(k, 22)), theme.key()),
                Span::raw(label.clone()),
            ]),
        };
        buf.set_line(inner.x + 1, y, &line, inner.width.saturating_sub(1));
    }
    let footer = Line::from(Span::styled(
        format!(
            "{}–{} of {} · keys from keymap.toml",
            scroll + 1,
            (scroll + rows).min(lines.len()),
            lines.len()
        ),
        theme.dim(),
    ));
    buf.set_line(
        inner.x + 1,
        inner.y + inner.height.saturating_sub(1),
        &footer,
        inner.width.saturating_sub(1),
    );
}
