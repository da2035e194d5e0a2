//! Profile: which backends the console works against, switched live. The
//! active profile is always in the header; production profiles are red and
//! every write on one needs its name typed.
//!
//! `enter` makes the selected profile the active one: the core opens its
//! stores in the background and the header changes once it answers (if it
//! does not, the previous profile stays, with the reason in the status
//! line). The local stack keeps running and serving the local profile
//! whatever is active; Send and Traffic always go through it. `s` shows what
//! `switchboard sync --to NAME --dry-run` shows for the selected profile,
//! and the diff dialog applies it after a confirmation.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Widget, Wrap};
use switchboard_core::profile::{Profile, ProfileKind};

use crate::console::action::{Action, Tab};
use crate::console::model::Model;
use crate::console::msg::Request;
use crate::console::screen::{Cx, Screen, View};
use crate::console::theme::Theme;
use crate::console::widgets::{framed, kv, ListState};

/// The Profile screen.
#[derive(Debug, Default)]
pub struct ProfileScreen {
    list: ListState,
    /// Whether a sync copies secret values (`--copy-secrets`); off by default.
    pub copy_secrets: bool,
}

impl ProfileScreen {
    fn selected<'a>(&self, model: &'a Model) -> Option<&'a Profile> {
        model.profiles.get(self.list.selected)
    }
}

impl Screen for ProfileScreen {
    fn tab(&self) -> Tab {
        Tab::Profile
    }

    fn perform(&mut self, action: Action, cx: &mut Cx<'_>) {
        let model = cx.model;
        if self.list.navigate(action, model.profiles.len()) {
            return;
        }
        let Some(p) = self.selected(model).cloned() else {
            return;
        };
        match action {
            Action::Select => cx.switch_profile(p),
            Action::SyncDiff => {
                if let ProfileKind::Local = p.kind {
                    cx.error(
                        "sync copies from the local profile to another: select an AWS profile",
                    );
                    return;
                }
                cx.info(format!(
                    "comparing local with {} (secret values {})…",
                    p.name,
                    if self.copy_secrets {
                        "copied"
                    } else {
                        "not copied"
                    }
                ));
                cx.request(Request::PlanSync {
                    to: p,
                    copy_secrets: self.copy_secrets,
                });
            }
            Action::ToggleSecrets => {
                self.copy_secrets = !self.copy_secrets;
                cx.info(if self.copy_secrets {
                    "a sync now copies the values of the secrets the agents use"
                } else {
                    "a sync now leaves secret values alone (it only says which are missing)"
                });
            }
            _ => {}
        }
    }

    fn render(&self, area: Rect, buf: &mut Buffer, view: &View<'_>) {
        let theme = view.theme;
        let model = view.model;
        let [top, bottom] = Layout::vertical([
            Constraint::Length(model.profiles.len() as u16 + 3),
            Constraint::Fill(1),
        ])
        .areas(area);
        let inner = framed(top, buf, "Profiles", true, theme);
        self.list.table(
            inner,
            buf,
            theme,
            &[
                ("", Constraint::Length(2)),
                ("NAME", Constraint::Fill(2)),
                ("KIND", Constraint::Fill(3)),
                ("PRODUCTION", Constraint::Length(11)),
            ],
            model.profiles.len(),
            |i| {
                let p = &model.profiles[i];
                let mark = if p.name == model.profile.name {
                    Span::styled("●", theme.ok())
                } else if model.switching.as_deref() == Some(p.name.as_str()) {
                    Span::styled("…", theme.warn())
                } else {
                    Span::raw(" ")
                };
                Row::new(vec![
                    Cell::from(mark),
                    Cell::from(Span::styled(
                        p.name.clone(),
                        if p.production {
                            theme.error()
                        } else {
                            theme.text()
                        },
                    )),
                    Cell::from(p.describe()),
                    Cell::from(if p.production {
                        Span::styled("yes", theme.error())
                    } else {
                        Span::raw("no")
                    }),
                ])
            },
        );
        let inner = framed(
            bottom,
            buf,
            format!("Active: {}", model.profile.name),
            false,
            theme,
        );
        let mut lines = active_lines(model, theme);
        lines.push(Line::from(""));
        lines.extend(self.selection_lines(view));
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .render(inner, buf);
    }

    fn commands(&self, model: &Model) -> Vec<Action> {
        let mut c = vec![Action::Select];
        if self
            .selected(model)
            .is_some_and(|p| !matches!(p.kind, ProfileKind::Local))
        {
            c.extend([Action::SyncDiff, Action::ToggleSecrets]);
        }
        c
    }

    fn click(&mut self, x: u16, y: u16, cx: &mut Cx<'_>) {
        self.list.click(x, y, cx.model.profiles.len());
    }
}

impl ProfileScreen {
    /// What the keys do for the selected profile, and how the last switch went.
    fn selection_lines<'a>(&self, view: &View<'_>) -> Vec<Line<'a>> {
        let (model, theme) = (view.model, view.theme);
        let key = |a: Action| {
            view.keymap
                .first_key(self.context(), a)
                .map(|k| k.to_string())
                .unwrap_or_else(|| a.name())
        };
        let mut lines = Vec::new();
        if let Some(next) = &model.switching {
            lines.push(Line::from(Span::styled(
                format!(
                    "Connecting to {next}… {} stays active until it answers.",
                    model.profile.name
                ),
                theme.warn(),
            )));
        }
        if let Some((name, why)) = &model.switch_error {
            let why = if why.contains(name.as_str()) {
                why.clone()
            } else {
                format!("cannot switch to {name}: {why}")
            };
            lines.push(Line::from(Span::styled(
                format!("✗ {why}; still on {}.", model.profile.name),
                theme.error(),
            )));
        }
        if model.profiles.len() < 2 {
            lines.push(Line::from(Span::styled(
                "Name AWS profiles under [profiles.NAME] in the config file to switch to them here.",
                theme.dim(),
            )));
        }
        let Some(sel) = self.selected(model) else {
            return lines;
        };
        let mut spans = vec![Span::styled(sel.name.clone(), theme.title())];
        if sel.name == model.profile.name {
            spans.push(Span::raw(" is active"));
        } else {
            spans.push(Span::raw(format!(
                ": {} switches to it, without a restart",
                key(Action::Select)
            )));
        }
        if !matches!(sel.kind, ProfileKind::Local) {
            spans.push(Span::raw(format!(
                "; {} shows the sync diff local → {} (as `switchboard sync --to {} --dry-run`) \
                 and applies it; secret values {} ({} {} them)",
                key(Action::SyncDiff),
                sel.name,
                sel.name,
                if self.copy_secrets {
                    "are copied"
                } else {
                    "are not copied"
                },
                key(Action::ToggleSecrets),
                if self.copy_secrets {
                    "leaves"
                } else {
                    "copies"
                },
            )));
        }
        spans.push(Span::raw("."));
        lines.push(Line::from(spans));
        lines
    }
}

/// Where the active profile's data lives, and what runs where.
fn active_lines<'a>(model: &Model, theme: &Theme) -> Vec<Line<'a>> {
    let s = &model.stack;
    let p = &model.profile;
    let log = s
        .log_file
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut lines = vec![kv("kind", vec![Span::raw(p.describe())], theme)];
    match &p.kind {
        ProfileKind::Local => {
            lines.extend([
                kv("gateway", vec![Span::raw(s.gateway_url.clone())], theme),
                kv("issuer", vec![Span::raw(s.issuer_url.clone())], theme),
                kv("token URL", vec![Span::raw(s.token_url.clone())], theme),
                kv(
                    "data",
                    vec![Span::raw(format!("{} (log: {log})", s.data_dir.display()))],
                    theme,
                ),
                Line::from(Span::styled(
                    "The local stack (gateway, issuer, sample agents) runs in this console.",
                    theme.dim(),
                )),
            ]);
        }
        ProfileKind::Aws(a) => {
            lines.extend([
                kv(
                    "tables",
                    vec![Span::raw(format!(
                        "{}agents, …permissions, …counters, …embeddings",
                        a.table_prefix
                    ))],
                    theme,
                ),
                kv(
                    "secrets",
                    vec![Span::raw(format!(
                        "Secrets Manager, names under {:?}",
                        a.secret_prefix
                    ))],
                    theme,
                ),
                kv("issuer", vec![Span::raw(a.issuer_url().to_owned())], theme),
                kv(
                    "token URL",
                    vec![Span::raw(match &a.token_url {
                        Some(u) => u.clone(),
                        None => format!("from {}", a.openid_configuration_url()),
                    })],
                    theme,
                ),
                kv(
                    "gateway",
                    vec![Span::raw(format!(
                        "none here; the local one ({}) keeps serving local",
                        s.gateway_url
                    ))],
                    theme,
                ),
                Line::from(Span::styled(
                    format!(
                        "The registry screens use {}'s tables; Send and Traffic use the local gateway.",
                        p.name
                    ),
                    theme.dim(),
                )),
            ]);
        }
    }
    if p.production {
        lines.push(Line::from(Span::styled(
            "This profile is marked production: every write asks you to type its name first.",
            theme.error(),
        )));
    }
    lines
}
