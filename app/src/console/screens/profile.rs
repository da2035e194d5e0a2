//! Profile: which backends the console works against. The active profile is
//! always in the header; production profiles are red and every write on one
//! needs its name typed.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Widget, Wrap};
use switchboard_core::profile::ProfileKind;

use super::{kv, pane, table, ListState};
use crate::console::action::{Action, Context};
use crate::console::app::{Cx, Model, Screen, View};

/// The Profile screen.
#[derive(Debug, Default)]
pub struct ProfileScreen {
    list: ListState,
}

fn kind(k: &ProfileKind) -> String {
    match k {
        ProfileKind::Local => "local".into(),
        ProfileKind::Aws(a) => format!("aws {}", a.region),
    }
}

impl Screen for ProfileScreen {
    fn context(&self) -> Context {
        Context::Profile
    }

    fn perform(&mut self, action: Action, cx: &mut Cx<'_>) {
        let model = cx.model;
        if self.list.navigate(action, model.profiles.len()) {
            return;
        }
        if action == Action::Select {
            let Some(p) = model.profiles.get(self.list.selected) else {
                return;
            };
            if p.name == model.profile.name {
                cx.info(format!("{} is already the active profile", p.name));
            } else {
                match p.kind {
                    ProfileKind::Aws(_) => cx.error(format!(
                        "profile {} is an AWS profile, and this build has no AWS backends",
                        p.name
                    )),
                    ProfileKind::Local => cx.error(format!(
                        "restart with --profile {} to use it (the local stack runs inside this console)",
                        p.name
                    )),
                }
            }
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
        let block = pane("Profiles", true, theme);
        let inner = block.inner(top);
        block.render(top, buf);
        table(
            inner,
            buf,
            theme,
            &self.list,
            &["", "NAME", "KIND", "PRODUCTION"],
            &[
                Constraint::Length(2),
                Constraint::Fill(2),
                Constraint::Fill(2),
                Constraint::Fill(1),
            ],
            model.profiles.len(),
            true,
            |i| {
                let p = &model.profiles[i];
                let active = p.name == model.profile.name;
                Row::new(vec![
                    Cell::from(if active { "●" } else { " " }),
                    Cell::from(Span::styled(
                        p.name.clone(),
                        if p.production {
                            theme.error()
                        } else {
                            theme.text()
                        },
                    )),
                    Cell::from(kind(&p.kind)),
                    Cell::from(if p.production {
                        Span::styled("yes", theme.error())
                    } else {
                        Span::raw("no")
                    }),
                ])
            },
        );
        let block = pane(format!("Active: {}", model.profile.name), false, theme);
        let inner = block.inner(bottom);
        block.render(bottom, buf);
        let s = &model.stack;
        let mut lines = vec![
            kv("kind", vec![Span::raw(kind(&model.profile.kind))], theme),
            kv("gateway", vec![Span::raw(s.gateway_url.clone())], theme),
            kv("issuer", vec![Span::raw(s.issuer_url.clone())], theme),
            kv("token URL", vec![Span::raw(s.token_url.clone())], theme),
            kv(
                "data",
                vec![Span::raw(s.data_dir.display().to_string())],
                theme,
            ),
            kv(
                "log",
                vec![Span::raw(s.log_file.display().to_string())],
                theme,
            ),
            Line::from(""),
        ];
        if model.profile.production {
            lines.push(Line::from(Span::styled(
                "This profile is marked production: every write asks you to type its name first.",
                theme.error(),
            )));
        } else {
            lines.push(Line::from(Span::styled(
                "Local profile: everything runs inside this console, on the data directory above.",
                theme.dim(),
            )));
        }
        lines.push(Line::from(Span::styled(
            "AWS profiles are named under [profiles.NAME] in the config file.",
            theme.dim(),
        )));
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .render(inner, buf);
    }

    fn commands(&self, _model: &Model) -> Vec<Action> {
        vec![Action::Select]
    }
}
