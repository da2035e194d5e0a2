//! Clients & tokens: the local issuer's clients, tokens minted for them,
//! and any pasted token taken apart: header, claims, validity against the
//! JWKS in force, and what it reaches and why.
//!
//! On an AWS profile the clients are the user pool's app clients, which
//! Switchboard neither lists nor manages; `m` then asks the profile's token
//! endpoint for a token with a client's id and secret (as `switchboard
//! token mint` does there), since the profile's gateways refuse tokens the
//! local issuer signs.

use std::cell::Cell;

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell as TableCell, Paragraph, Row, Widget, Wrap};

use crate::console::action::{Action, Tab};
use crate::console::dialog::{Dialog, Purpose};
use crate::console::forms;
use crate::console::model::Model;
use crate::console::msg::{Inspection, Minted, Request};
use crate::console::screen::{Cx, Screen, View};
use crate::console::theme::Theme;
use crate::console::widgets::{empty_note, framed, ListState};

/// What the right-hand pane shows.
#[derive(Debug, Default)]
enum Pane {
    /// Nothing yet.
    #[default]
    Empty,
    /// The last minted token.
    Minted(Minted),
    /// A token taken apart.
    Inspected(Result<Inspection, String>),
}

/// The Clients & tokens screen.
#[derive(Debug, Default)]
pub struct ClientsScreen {
    list: ListState,
    pane: Pane,
    last_minted: Option<Minted>,
    scroll: Cell<u16>,
}

impl ClientsScreen {
    /// A token was minted.
    pub fn minted(&mut self, m: Minted) {
        self.last_minted = Some(m.clone());
        self.pane = Pane::Minted(m);
        self.scroll.set(0);
    }

    /// Another profile became active: its tokens are not this one's.
    pub fn reset(&mut self) {
        *self = ClientsScreen::default();
    }

    /// A token was inspected.
    pub fn inspected(&mut self, r: Result<Inspection, String>) {
        self.pane = Pane::Inspected(r);
        self.scroll.set(0);
    }
}

impl Screen for ClientsScreen {
    fn tab(&self) -> Tab {
        Tab::Clients
    }

    fn perform(&mut self, action: Action, cx: &mut Cx<'_>) {
        let model = cx.model;
        if matches!(action, Action::PageDown | Action::PageUp) {
            // Paging scrolls the token pane; the list moves a row at a time.
            let s = self.scroll.get();
            self.scroll.set(if action == Action::PageDown {
                s.saturating_add(10)
            } else {
                s.saturating_sub(10)
            });
            return;
        }
        if self.list.navigate(action, model.clients.len()) {
            return;
        }
        let selected = model
            .clients
            .get(self.list.selected)
            .map(|c| c.client_id.clone());
        if model.profile.aws().is_some() {
            match action {
                Action::Add | Action::Delete => {
                    if let Some(why) = crate::console::worker::cognito_clients(&model.profile) {
                        cx.error(why);
                    }
                    return;
                }
                Action::Mint | Action::Select => {
                    cx.dialog(Dialog::Form {
                        form: forms::mint_remote_form(model),
                        purpose: Purpose::MintRemote,
                    });
                    return;
                }
                _ => {}
            }
        }
        match (action, selected) {
            (Action::Add, _) => cx.dialog(Dialog::Form {
                form: forms::client_form(model),
                purpose: Purpose::Client,
            }),
            (Action::Delete, Some(id)) => cx.dialog(Dialog::Confirm {
                title: "Remove client".into(),
                message: format!(
                    "Remove client {id}? Tokens already issued stay valid until they expire."
                ),
                request: Request::RemoveClient { id },
            }),
            (Action::Mint | Action::Select, Some(id)) => cx.dialog(Dialog::Form {
                form: forms::mint_form(&id, model),
                purpose: Purpose::Mint { client: id },
            }),
            (Action::Delete | Action::Mint, None) => {
                cx.error("no client selected: press a to add one")
            }
            (Action::Copy, _) => match &self.last_minted {
                Some(m) => cx.copy(m.token.clone(), "the token"),
                None => cx.error("no token to copy: mint one with m"),
            },
            (Action::Inspect, _) => {
                let mut form = forms::token_form();
                if let Some(m) = &self.last_minted {
                    form.paste(&m.token);
                    form.note = Some("The last minted token is filled in; paste another to replace it (ctrl-u clears).".into());
                }
                cx.dialog(Dialog::Form {
                    form,
                    purpose: Purpose::Token,
                });
            }
            (Action::Refresh, _) => cx.request(Request::Reload),
            _ => {}
        }
    }

    fn render(&self, area: Rect, buf: &mut Buffer, view: &View<'_>) {
        let model = view.model;
        let theme = view.theme;
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(38), Constraint::Fill(1)]).areas(area);
        let title = if model.profile.aws().is_some() {
            "App clients (user pool)".to_owned()
        } else {
            format!("Clients ({})", model.clients.len())
        };
        let inner = framed(left, buf, title, true, theme);
        if let Some(aws) = model.profile.aws() {
            let lines = vec![
                Line::from(Span::styled(
                    format!("Profile {} takes tokens from", model.profile.name),
                    theme.dim(),
                )),
                Line::from(aws.issuer_url().to_owned()),
                Line::from(""),
                Line::from(Span::styled(
                    "Its clients are the user pool's app clients, managed in Cognito, not here.",
                    theme.dim(),
                )),
                Line::from(""),
                Line::from(Span::styled(
                    "m gets a token with a client's id and secret.",
                    theme.dim(),
                )),
            ];
            Paragraph::new(lines)
                .wrap(Wrap { trim: false })
                .render(inner, buf);
        } else if model.clients.is_empty() {
            empty_note(inner, buf, theme, "no clients: press a to add one");
        } else {
            self.list.table(
                inner,
                buf,
                theme,
                &[
                    ("CLIENT", Constraint::Fill(1)),
                    ("SCOPES", Constraint::Length(9)),
                ],
                model.clients.len(),
                |i| {
                    let c = &model.clients[i];
                    Row::new(vec![
                        TableCell::from(c.client_id.clone()),
                        TableCell::from(c.allowed_scopes.len().to_string() + " scopes"),
                    ])
                },
            );
        }
        let title = match &self.pane {
            Pane::Minted(_) => "Token",
            Pane::Inspected(_) => "Token inspection",
            Pane::Empty => "Tokens",
        };
        let inner = framed(right, buf, title, false, theme);
        let lines = match &self.pane {
            Pane::Empty => {
                let sel = model.clients.get(self.list.selected);
                let mut lines = Vec::new();
                if let Some(c) = sel {
                    lines.push(Line::from(vec![
                        Span::styled(c.client_id.clone(), theme.title()),
                        Span::styled(" may request", theme.dim()),
                    ]));
                    for s in &c.allowed_scopes {
                        lines.push(Line::from(format!("  {s}")));
                    }
                    lines.push(Line::from(""));
                }
                lines.push(Line::from(Span::styled(
                    if model.profile.aws().is_some() {
                        "m gets a token from the profile's token endpoint; i inspects any token (or paste one here) against the profile's JWKS."
                    } else {
                        "m mints a token for the selected client; i inspects any token (or paste one here)."
                    },
                    theme.dim(),
                )));
                lines
            }
            Pane::Minted(m) => minted_lines(m, theme),
            Pane::Inspected(r) => inspection_lines(r, theme),
        };
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((self.scroll.get(), 0))
            .render(inner, buf);
    }

    fn commands(&self, model: &Model) -> Vec<Action> {
        if model.profile.aws().is_some() {
            let mut c = vec![Action::Mint];
            if self.last_minted.is_some() {
                c.push(Action::Copy);
            }
            c.push(Action::Inspect);
            return c;
        }
        let mut c = vec![Action::Add];
        if !model.clients.is_empty() {
            c.extend([Action::Mint, Action::Delete]);
        }
        if self.last_minted.is_some() {
            c.push(Action::Copy);
        }
        c.push(Action::Inspect);
        c
    }

    fn click(&mut self, x: u16, y: u16, cx: &mut Cx<'_>) {
        self.list.click(x, y, cx.model.clients.len());
    }
}

fn minted_lines<'a>(m: &Minted, theme: &Theme) -> Vec<Line<'a>> {
    vec![
        Line::from(vec![
            Span::styled("client ", theme.dim()),
            Span::raw(m.client.clone()),
            Span::styled("   expires in ", theme.dim()),
            Span::raw(format!("{} s", m.ttl.as_secs())),
        ]),
        Line::from(vec![
            Span::styled("scopes ", theme.dim()),
            Span::raw(if m.scopes.is_empty() {
                "(none)".to_owned()
            } else {
                m.scopes.join(" ")
            }),
        ]),
        Line::from(""),
        Line::from(m.token.clone()),
        Line::from(""),
        Line::from(Span::styled("y copies it; i inspects it.", theme.dim())),
    ]
}

fn inspection_lines<'a>(r: &Result<Inspection, String>, theme: &Theme) -> Vec<Line<'a>> {
    let i = match r {
        Ok(i) => i,
        Err(e) => {
            return vec![Line::from(Span::styled(
                format!("not a token: {e}"),
                theme.error(),
            ))]
        }
    };
    let mut lines = Vec::new();
    match &i.validity {
        Ok(client) => lines.push(Line::from(vec![
            Span::styled("valid ", theme.ok()),
            Span::raw(format!(
                "for client {client}: the gateway accepts it against the JWKS in force"
            )),
        ])),
        Err(why) => lines.push(Line::from(vec![
            Span::styled("INVALID ", theme.error()),
            Span::raw(why.clone()),
        ])),
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled("reaches", theme.title())));
    for e in &i.agents {
        lines.push(Line::from(vec![
            Span::styled(
                format!("  {:<3} ", if e.allowed { "yes" } else { "no" }),
                if e.allowed { theme.ok() } else { theme.error() },
            ),
            Span::styled(format!("{:<10} ", e.agent), theme.text()),
            Span::styled(e.reason.clone(), theme.dim()),
        ]));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled("header", theme.title())));
    lines.push(Line::from(format!("  {}", i.header)));
    lines.push(Line::from(Span::styled("claims", theme.title())));
    let pretty = serde_json::to_string_pretty(&i.claims).unwrap_or_default();
    for l in pretty.lines() {
        lines.push(Line::from(format!("  {l}")));
    }
    lines
}
