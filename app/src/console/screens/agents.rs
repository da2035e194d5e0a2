//! Agents: the registry with live health, limits and load, and the selected
//! agent's card.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Widget, Wrap};
use serde_json::Value;
use switchboard_core::registry::AgentRecord;

use crate::console::action::{Action, Tab};
use crate::console::dialog::{Dialog, Purpose};
use crate::console::forms;
use crate::console::model::Model;
use crate::console::msg::{Health, Request};
use crate::console::screen::{Cx, Screen, View};
use crate::console::theme::Theme;
use crate::console::widgets::{empty_note, fmt_latency, framed, kv, truncate, ListState};

/// The Agents screen.
#[derive(Debug, Default)]
pub struct AgentsScreen {
    list: ListState,
}

impl AgentsScreen {
    /// Selects the agent `id` (after it was added).
    pub fn select_id(&mut self, id: &str, model: &Model) {
        if let Some(i) = model.agents.iter().position(|a| a.id == id) {
            self.list.selected = i;
        }
    }

    fn selected<'m>(&self, model: &'m Model) -> Option<&'m AgentRecord> {
        model.agents.get(self.list.selected)
    }
}

impl Screen for AgentsScreen {
    fn tab(&self) -> Tab {
        Tab::Agents
    }

    fn perform(&mut self, action: Action, cx: &mut Cx<'_>) {
        let model = cx.model;
        if self.list.navigate(action, model.agents.len()) {
            return;
        }
        let selected = self.selected(model).cloned();
        match (action, selected) {
            (Action::Add, _) => cx.dialog(Dialog::Form {
                form: forms::agent_url_form(),
                purpose: Purpose::AgentUrl,
            }),
            (Action::Edit | Action::Select, Some(a)) => cx.dialog(Dialog::Form {
                form: forms::agent_form(&a, false, model),
                purpose: Purpose::Agent {
                    original: Some(Box::new(a)),
                    card: None,
                },
            }),
            (Action::Delete, Some(a)) => cx.dialog(Dialog::Confirm {
                title: "Delete agent".into(),
                message: format!(
                    "Delete agent {} ({})? Its permissions stay until revoked.",
                    a.id, a.url
                ),
                request: Request::DeleteAgent { id: a.id },
            }),
            (Action::ToggleEnabled, Some(a)) => cx.request(Request::SetEnabled {
                id: a.id,
                enabled: !a.enabled,
            }),
            (Action::Refresh, _) => {
                cx.request(Request::Reload);
                cx.request(Request::CheckHealth);
                cx.info("reloading the registry and checking every backend");
            }
            (Action::Edit | Action::Delete | Action::ToggleEnabled, None) => {
                cx.error("no agent selected")
            }
            _ => {}
        }
    }

    fn render(&self, area: Rect, buf: &mut Buffer, view: &View<'_>) {
        let model = view.model;
        let theme = view.theme;
        let list_h = (model.agents.len() as u16 + 3).clamp(5, area.height * 45 / 100);
        let [top, bottom] =
            Layout::vertical([Constraint::Length(list_h), Constraint::Fill(1)]).areas(area);
        let title = if model.agents.iter().any(|a| a.rate_limit.is_none()) {
            format!("Agents ({}) · * gateway default limit", model.agents.len())
        } else {
            format!("Agents ({})", model.agents.len())
        };
        let inner = framed(top, buf, title, true, theme);
        if model.agents.is_empty() {
            empty_note(
                inner,
                buf,
                theme,
                "no agents yet: press a to add one by URL",
            );
        } else {
            self.list.table(
                inner,
                buf,
                theme,
                &[
                    ("ID", Constraint::Fill(2)),
                    ("NAME", Constraint::Fill(3)),
                    ("ON", Constraint::Length(3)),
                    ("HEALTH", Constraint::Length(7)),
                    ("LIMIT", Constraint::Length(7)),
                    ("REQ/MIN", Constraint::Length(7)),
                    ("LATENCY", Constraint::Length(8)),
                ],
                model.agents.len(),
                |i| {
                    let a = &model.agents[i];
                    let (health, hstyle) = match model.health.get(&a.id) {
                        None | Some(Health::Unknown) => ("…", theme.dim()),
                        Some(Health::Up { .. }) => ("up", theme.ok()),
                        Some(Health::Down { .. }) => ("down", theme.error()),
                    };
                    let limit = model.limit_of(a);
                    let used = model.requests_this_minute(&a.id, view.now);
                    let used_style = if used >= u64::from(limit) {
                        theme.error()
                    } else if used * 10 >= u64::from(limit) * 8 {
                        theme.warn()
                    } else {
                        theme.text()
                    };
                    Row::new(vec![
                        Cell::from(a.id.clone()),
                        Cell::from(a.name.clone()),
                        Cell::from(Span::styled(
                            if a.enabled { "yes" } else { "no" },
                            if a.enabled { theme.ok() } else { theme.warn() },
                        )),
                        Cell::from(Span::styled(health, hstyle)),
                        Cell::from(format!(
                            "{limit}{}",
                            if a.rate_limit.is_none() { "*" } else { "" }
                        )),
                        Cell::from(Span::styled(used.to_string(), used_style)),
                        Cell::from(
                            model
                                .last_latency
                                .get(&a.id)
                                .map(|d| fmt_latency(*d))
                                .unwrap_or_else(|| "-".into()),
                        ),
                    ])
                },
            );
        }
        let inner = framed(bottom, buf, "Agent", false, theme);
        match self.selected(model) {
            Some(a) => {
                let lines = detail_lines(a, model, theme, inner.width);
                Paragraph::new(lines)
                    .wrap(Wrap { trim: false })
                    .render(inner, buf);
            }
            None => empty_note(inner, buf, theme, "select an agent to see its card"),
        }
    }

    fn commands(&self, model: &Model) -> Vec<Action> {
        if model.agents.is_empty() {
            vec![Action::Add, Action::Refresh]
        } else {
            vec![
                Action::Add,
                Action::Edit,
                Action::ToggleEnabled,
                Action::Delete,
                Action::Refresh,
            ]
        }
    }

    fn click(&mut self, x: u16, y: u16, cx: &mut Cx<'_>) {
        self.list.click(x, y, cx.model.agents.len());
    }
}

fn detail_lines<'a>(a: &AgentRecord, model: &Model, theme: &Theme, width: u16) -> Vec<Line<'a>> {
    let mut lines = Vec::new();
    lines.push(Line::from(vec![
        Span::styled(a.name.clone(), theme.title()),
        Span::raw(" — "),
        Span::raw(a.description.clone()),
    ]));
    lines.push(kv(
        "backend",
        vec![
            Span::raw(a.url.clone()),
            Span::styled("   auth ", theme.dim()),
            Span::raw(a.auth.describe()),
        ],
        theme,
    ));
    let limit = match a.rate_limit {
        Some(l) => format!("{l}/min per client"),
        None => format!(
            "{}/min per client (gateway default)",
            model.stack.default_limit
        ),
    };
    lines.push(kv("limit", vec![Span::raw(limit)], theme));
    let (health, card) = match model.health.get(&a.id) {
        Some(Health::Up { latency, card }) => (
            Span::styled(
                format!("up · card in {}", fmt_latency(*latency)),
                theme.ok(),
            ),
            Some(card.as_ref().clone()),
        ),
        Some(Health::Down { error }) => (
            Span::styled(format!("down · {error}"), theme.error()),
            a.card.clone(),
        ),
        _ => (Span::styled("not checked yet", theme.dim()), a.card.clone()),
    };
    lines.push(kv("health", vec![health], theme));
    match card {
        Some(card) => card_lines(&card, theme, width, &mut lines),
        None => lines.push(Line::from(Span::styled(
            "no card: the backend has not answered with one",
            theme.dim(),
        ))),
    }
    lines
}

fn s(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("").to_owned()
}

/// The parts of a card a developer checks: interfaces, versions, skills, security.
fn card_lines<'a>(card: &Value, theme: &Theme, width: u16, lines: &mut Vec<Line<'a>>) {
    let w = usize::from(width).saturating_sub(13);
    let mut versions: Vec<String> = Vec::new();
    let ifaces = card
        .get("supportedInterfaces")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for i in &ifaces {
        let v = s(i, "protocolVersion");
        if !v.is_empty() && !versions.contains(&v) {
            versions.push(v);
        }
    }
    let legacy = s(card, "protocolVersion");
    if !legacy.is_empty() && !versions.contains(&legacy) {
        versions.push(legacy.clone());
    }
    let streaming = card
        .pointer("/capabilities/streaming")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    lines.push(kv(
        "protocol",
        vec![Span::raw(format!(
            "A2A {}   card version {}   streaming {}",
            if versions.is_empty() {
                "?".into()
            } else {
                versions.join(", ")
            },
            s(card, "version"),
            if streaming { "yes" } else { "no" }
        ))],
        theme,
    ));
    for (n, i) in ifaces.iter().enumerate() {
        lines.push(kv(
            if n == 0 { "interfaces" } else { "" },
            vec![Span::raw(truncate(
                &format!(
                    "{} {}  {}",
                    s(i, "protocolBinding"),
                    s(i, "protocolVersion"),
                    s(i, "url")
                ),
                w,
            ))],
            theme,
        ));
    }
    if ifaces.is_empty() && !s(card, "url").is_empty() {
        lines.push(kv(
            "interfaces",
            vec![Span::raw(format!(
                "{} {}  {}",
                s(card, "preferredTransport"),
                legacy,
                s(card, "url")
            ))],
            theme,
        ));
    }
    let skills = card
        .get("skills")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (n, sk) in skills.iter().enumerate() {
        let tags: Vec<String> = sk
            .get("tags")
            .and_then(Value::as_array)
            .map(|t| {
                t.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        lines.push(kv(
            if n == 0 { "skills" } else { "" },
            vec![
                Span::styled(s(sk, "name"), theme.title()),
                Span::raw(truncate(
                    &format!(": {} [{}]", s(sk, "description"), tags.join(", ")),
                    w.saturating_sub(s(sk, "name").chars().count()),
                )),
            ],
            theme,
        ));
    }
    let schemes = card.get("securitySchemes").and_then(Value::as_object);
    match schemes {
        Some(schemes) if !schemes.is_empty() => {
            for (n, (name, scheme)) in schemes.iter().enumerate() {
                let flows = scheme
                    .pointer("/oauth2SecurityScheme/flows/clientCredentials")
                    .or_else(|| scheme.pointer("/flows/clientCredentials"));
                let what = match flows {
                    Some(f) => {
                        let scopes: Vec<String> = f
                            .get("scopes")
                            .and_then(Value::as_object)
                            .map(|m| m.keys().cloned().collect())
                            .unwrap_or_default();
                        format!(
                            "{name}: OAuth2 client credentials at {} scopes [{}]",
                            s(f, "tokenUrl"),
                            scopes.join(" ")
                        )
                    }
                    None => format!(
                        "{name}: {}",
                        scheme
                            .as_object()
                            .and_then(|o| o.keys().next().cloned())
                            .unwrap_or_default()
                    ),
                };
                lines.push(kv(
                    if n == 0 { "security" } else { "" },
                    vec![Span::raw(truncate(&what, w))],
                    theme,
                ));
            }
        }
        _ => lines.push(kv(
            "security",
            vec![Span::styled("none declared", theme.dim())],
            theme,
        )),
    }
}
