//! Send: pick an agent and a client, write a message, send or stream it
//! through the gateway, and watch the task's events and state live.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row};
use serde_json::Value;

use crate::console::action::{Action, Tab};
use crate::console::dialog::{Dialog, Pick};
use crate::console::keymap::Keymap;
use crate::console::model::Model;
use crate::console::msg::{Request, SendRequest, SendUpdate};
use crate::console::screen::{Cx, Screen, View};
use crate::console::theme::Theme;
use crate::console::widgets::{empty_note, framed, truncate, InputLine, ListState, TextView};

/// One send and what came back.
#[derive(Debug)]
pub struct Session {
    /// Its number.
    pub send_id: u64,
    /// Agent.
    pub agent: String,
    /// Client.
    pub client: String,
    /// Scopes of the token.
    pub scopes: Vec<String>,
    /// Streaming or not.
    pub stream: bool,
    /// HTTP status of the answer.
    pub http_status: Option<u16>,
    /// Task id, once known.
    pub task_id: Option<String>,
    /// Latest task state.
    pub state: Option<String>,
    /// Every JSON-RPC response or event.
    pub events: Vec<Value>,
    /// Still receiving.
    pub running: bool,
    /// What went wrong.
    pub error: Option<String>,
    /// What `CancelTask` answered.
    pub cancel: Option<String>,
}

/// The Send screen.
#[derive(Debug, Default)]
pub struct SendScreen {
    /// Agent to send to.
    pub agent: Option<String>,
    /// Client to send as.
    pub client: Option<String>,
    message: InputLine,
    session: Option<Session>,
    list: ListState,
    /// Follow the newest event.
    follow: bool,
    view: TextView,
    /// Which event the view shows.
    viewing: Option<usize>,
    next_id: u64,
}

/// `(kind, summary, task id, state)` of one JSON-RPC response or event.
pub fn describe(v: &Value) -> (String, String, Option<String>, Option<String>) {
    if let Some(err) = v.get("error") {
        let msg = format!(
            "{} {}",
            err.get("code").map(|c| c.to_string()).unwrap_or_default(),
            err.get("message").and_then(Value::as_str).unwrap_or("")
        );
        return ("error".into(), msg, None, None);
    }
    let Some(result) = v.get("result") else {
        return ("?".into(), truncate(&v.to_string(), 60), None, None);
    };
    let text_of = |parts: Option<&Value>| -> String {
        parts
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    if let Some(t) = result.get("task") {
        let state = s(t.pointer("/status/state"));
        return (
            "task".into(),
            state.clone().unwrap_or_default(),
            s(t.get("id")),
            state,
        );
    }
    if let Some(u) = result.get("statusUpdate") {
        let state = s(u.pointer("/status/state"));
        let msg = text_of(u.pointer("/status/message/parts"));
        let summary = match (&state, msg.is_empty()) {
            (Some(st), false) => format!("{st}: {msg}"),
            (Some(st), true) => st.clone(),
            (None, _) => msg,
        };
        return ("statusUpdate".into(), summary, s(u.get("taskId")), state);
    }
    if let Some(u) = result.get("artifactUpdate") {
        let text = text_of(u.pointer("/artifact/parts"));
        return ("artifactUpdate".into(), text, s(u.get("taskId")), None);
    }
    if let Some(m) = result.get("message") {
        return (
            "message".into(),
            text_of(m.get("parts")),
            s(m.get("taskId")),
            None,
        );
    }
    // A bare task (0.3 shapes, or CancelTask's answer).
    if let Some(state) = s(result.pointer("/status/state")) {
        return (
            "task".into(),
            state.clone(),
            s(result.get("id")),
            Some(state),
        );
    }
    (
        "result".into(),
        truncate(&result.to_string(), 60),
        None,
        None,
    )
}

impl SendScreen {
    /// Chooses an agent and a client when none is chosen yet.
    pub fn defaults(&mut self, model: &Model) {
        if self
            .agent
            .as_ref()
            .is_none_or(|a| model.local_agent(a).is_none())
        {
            self.agent = model
                .local_agents
                .iter()
                .find(|a| a.enabled && a.id == "stream")
                .or_else(|| model.local_agents.iter().find(|a| a.enabled))
                .map(|a| a.id.clone());
        }
        if self
            .client
            .as_ref()
            .is_none_or(|c| model.local_client(c).is_none())
        {
            self.client = model
                .local_clients
                .iter()
                .find(|c| c.client_id == switchboard_emulator::stack::DEMO_CLIENT)
                .or_else(|| model.local_clients.first())
                .map(|c| c.client_id.clone());
        }
    }

    /// The running or last session.
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// Progress from the core.
    pub fn update(&mut self, send_id: u64, update: SendUpdate) {
        let Some(s) = self.session.as_mut().filter(|s| s.send_id == send_id) else {
            return;
        };
        match update {
            SendUpdate::Status(code) => s.http_status = Some(code),
            SendUpdate::Event(v) => {
                let (_, _, task, state) = describe(&v);
                if task.is_some() {
                    s.task_id = task;
                }
                if state.is_some() {
                    s.state = state;
                }
                s.events.push(v);
                if self.follow {
                    self.list.selected = s.events.len() - 1;
                }
            }
            SendUpdate::Error(e) => s.error = Some(e),
            SendUpdate::Done => s.running = false,
            SendUpdate::Canceled(r) => {
                s.cancel = Some(match r {
                    Ok(v) => {
                        let (kind, summary, _, state) = describe(&v);
                        if state.is_some() {
                            s.state = state;
                        }
                        format!("CancelTask → {kind} {summary}")
                    }
                    Err(e) => format!("CancelTask failed: {e}"),
                });
            }
        }
        self.sync_view();
    }

    fn sync_view(&mut self) {
        let Some(s) = &self.session else {
            self.view.clear();
            self.viewing = None;
            return;
        };
        let want = if s.events.is_empty() {
            None
        } else {
            Some(self.list.selected.min(s.events.len() - 1))
        };
        if want != self.viewing {
            self.view.clear();
            if let Some(i) = want {
                self.view.push_json(&s.events[i]);
            }
            self.viewing = want;
        }
    }

    fn start(&mut self, stream: bool, cx: &mut Cx<'_>) {
        let model = cx.model;
        let Some(agent) = self
            .agent
            .clone()
            .filter(|a| model.local_agent(a).is_some())
        else {
            cx.error("choose an agent first (a)");
            return;
        };
        let Some(client) = self
            .client
            .clone()
            .and_then(|c| model.local_client(&c).cloned())
        else {
            cx.error("choose a client first (c)");
            return;
        };
        let text = self.message.value().trim().to_owned();
        if text.is_empty() {
            cx.error("write a message first (i)");
            return;
        }
        if self.session.as_ref().is_some_and(|s| s.running) {
            cx.info("the previous send is still running; showing the new one");
        }
        self.next_id += 1;
        let req = SendRequest {
            send_id: self.next_id,
            agent: agent.clone(),
            client: client.client_id.clone(),
            scopes: client.allowed_scopes.clone(),
            text,
            stream,
        };
        self.session = Some(Session {
            send_id: req.send_id,
            agent,
            client: req.client.clone(),
            scopes: req.scopes.clone(),
            stream,
            http_status: None,
            task_id: None,
            state: None,
            events: Vec::new(),
            running: true,
            error: None,
            cancel: None,
        });
        self.list.selected = 0;
        self.follow = true;
        self.sync_view();
        cx.request(Request::Send(req));
    }
}

impl Screen for SendScreen {
    fn tab(&self) -> Tab {
        Tab::Send
    }

    fn handle_key(&mut self, key: &crossterm::event::KeyEvent, keymap: &Keymap) -> Option<Action> {
        // Submitting the message only ends the editing: s or t sends it.
        self.message.handle_key(key, keymap, self.context(), None)
    }

    fn paste(&mut self, text: &str) -> bool {
        self.message.paste(text);
        true
    }

    fn editing(&self) -> bool {
        self.message.is_editing()
    }

    fn perform(&mut self, action: Action, cx: &mut Cx<'_>) {
        let model = cx.model;
        let n = self.session.as_ref().map(|s| s.events.len()).unwrap_or(0);
        if self.list.navigate(action, n) {
            self.follow = self.list.selected + 1 >= n;
            self.sync_view();
            return;
        }
        match action {
            Action::Compose => self.message.start_editing(),
            Action::Send => self.start(false, cx),
            Action::Stream => self.start(true, cx),
            Action::PickAgent => {
                let items: Vec<(String, String)> = model
                    .local_agents
                    .iter()
                    .map(|a| {
                        let off = if a.enabled { "" } else { "  (disabled)" };
                        (a.id.clone(), format!("{:<12} {}{off}", a.id, a.name))
                    })
                    .collect();
                cx.dialog(Dialog::picker(
                    "Send to agent",
                    items,
                    self.agent.as_deref(),
                    Pick::Agent,
                ));
            }
            Action::PickClient => {
                let items: Vec<(String, String)> = model
                    .local_clients
                    .iter()
                    .map(|c| {
                        (
                            c.client_id.clone(),
                            format!("{:<20} {}", c.client_id, c.allowed_scopes.join(" ")),
                        )
                    })
                    .collect();
                cx.dialog(Dialog::picker(
                    "Send as client",
                    items,
                    self.client.as_deref(),
                    Pick::Client,
                ));
            }
            Action::CancelTask => match &self.session {
                Some(s) if s.running || s.state.as_deref().is_some_and(|st| !terminal(st)) => {
                    match &s.task_id {
                        Some(task) => {
                            cx.request(Request::Cancel {
                                send_id: s.send_id,
                                agent: s.agent.clone(),
                                client: s.client.clone(),
                                scopes: s.scopes.clone(),
                                task_id: task.clone(),
                            });
                            cx.info(format!("cancelling task {task}"));
                        }
                        None => cx.error("no task id yet: nothing to cancel"),
                    }
                }
                _ => cx.error("no running task to cancel"),
            },
            Action::Copy => match self
                .viewing
                .and_then(|i| self.session.as_ref()?.events.get(i))
            {
                Some(v) => cx.copy(
                    serde_json::to_string_pretty(v).unwrap_or_default(),
                    "the event",
                ),
                None => cx.error("no event to copy"),
            },
            _ => {}
        }
    }

    fn render(&self, area: Rect, buf: &mut Buffer, view: &View<'_>) {
        let theme = view.theme;
        let model = view.model;
        let [head, body] =
            Layout::vertical([Constraint::Length(7), Constraint::Fill(1)]).areas(area);
        // Send always goes through the local gateway, to the local agents.
        let title = if model.is_local() {
            "Send".to_owned()
        } else {
            format!(
                "Send through the local gateway {} (profile {} is not served here)",
                model.stack.gateway_url, model.profile.name
            )
        };
        let editing = self.message.is_editing();
        let inner = framed(head, buf, title, !editing, theme);
        let agent = match &self.agent {
            Some(a) => {
                let name = model
                    .local_agent(a)
                    .map(|r| r.name.clone())
                    .unwrap_or_default();
                vec![
                    Span::styled(a.clone(), theme.title()),
                    Span::styled(format!(" {name}"), theme.dim()),
                ]
            }
            None => vec![Span::styled("none (a chooses)", theme.warn())],
        };
        let client = match &self.client {
            Some(c) => vec![Span::styled(c.clone(), theme.title())],
            None => vec![Span::styled("none (c chooses)", theme.warn())],
        };
        let mut l1 = vec![Span::styled("agent  ", theme.dim())];
        l1.extend(agent);
        l1.push(Span::styled("    as client  ", theme.dim()));
        l1.extend(client);
        buf.set_line(inner.x, inner.y, &Line::from(l1), inner.width);
        let message = self
            .message
            .line("message ", "(i to write)", inner.width, theme);
        buf.set_line(inner.x, inner.y + 1, &message, inner.width);
        buf.set_line(
            inner.x,
            inner.y + 2,
            &state_line(self.session.as_ref(), theme),
            inner.width,
        );
        if let Some(s) = &self.session {
            let note = s
                .error
                .as_ref()
                .map(|e| Span::styled(format!("error: {e}"), theme.error()))
                .or_else(|| {
                    s.cancel
                        .as_ref()
                        .map(|c| Span::styled(c.clone(), theme.warn()))
                });
            let task = Line::from(vec![
                Span::styled("task   ", theme.dim()),
                Span::raw(s.task_id.clone().unwrap_or_else(|| "-".into())),
                Span::styled(
                    format!(
                        "   {} as {} with [{}]",
                        if s.stream {
                            "SendStreamingMessage"
                        } else {
                            "SendMessage"
                        },
                        s.client,
                        s.scopes.join(" ")
                    ),
                    theme.dim(),
                ),
            ]);
            buf.set_line(inner.x, inner.y + 3, &task, inner.width);
            if let Some(n) = note {
                buf.set_line(inner.x, inner.y + 4, &Line::from(n), inner.width);
            }
        }

        let [left, right] =
            Layout::horizontal([Constraint::Percentage(42), Constraint::Fill(1)]).areas(body);
        let n = self.session.as_ref().map(|s| s.events.len()).unwrap_or(0);
        let inner = framed(left, buf, format!("Events ({n})"), !editing, theme);
        match &self.session {
            None => empty_note(inner, buf, theme, "s sends, t streams"),
            Some(s) if s.events.is_empty() => empty_note(
                inner,
                buf,
                theme,
                if s.running {
                    "waiting for the agent…"
                } else {
                    "no events"
                },
            ),
            Some(s) => self.list.table(
                inner,
                buf,
                theme,
                &[
                    ("#", Constraint::Length(3)),
                    ("KIND", Constraint::Length(14)),
                    ("SUMMARY", Constraint::Fill(1)),
                ],
                s.events.len(),
                |i| {
                    let (kind, summary, _, _) = describe(&s.events[i]);
                    let style = if kind == "error" {
                        theme.error()
                    } else {
                        theme.text()
                    };
                    Row::new(vec![
                        Cell::from((i + 1).to_string()),
                        Cell::from(Span::styled(kind, style)),
                        Cell::from(summary),
                    ])
                },
            ),
        }
        let inner = framed(right, buf, "Event JSON", false, theme);
        self.view.render(inner, buf, theme);
    }

    fn commands(&self, _model: &Model) -> Vec<Action> {
        let mut c = vec![
            Action::PickAgent,
            Action::PickClient,
            Action::Compose,
            Action::Send,
            Action::Stream,
        ];
        if self.session.as_ref().is_some_and(|s| s.running) {
            c.push(Action::CancelTask);
        }
        c
    }
}

fn terminal(state: &str) -> bool {
    matches!(
        state,
        "TASK_STATE_COMPLETED"
            | "TASK_STATE_FAILED"
            | "TASK_STATE_CANCELED"
            | "TASK_STATE_REJECTED"
    )
}

fn state_line<'a>(s: Option<&Session>, theme: &Theme) -> Line<'a> {
    let Some(s) = s else {
        return Line::from(Span::styled("state  nothing sent yet", theme.dim()));
    };
    let state = s.state.clone().unwrap_or_else(|| "-".into());
    let style = match state.as_str() {
        "TASK_STATE_COMPLETED" => theme.ok(),
        "TASK_STATE_FAILED" | "TASK_STATE_REJECTED" | "TASK_STATE_CANCELED" => theme.error(),
        "-" => theme.dim(),
        _ => theme.warn(),
    };
    let mut spans = vec![
        Span::styled("state  ", theme.dim()),
        Span::styled(state, style),
        Span::styled("   HTTP ", theme.dim()),
        Span::styled(
            s.http_status
                .map(|c| c.to_string())
                .unwrap_or_else(|| "…".into()),
            theme.status(s.http_status),
        ),
    ];
    if s.running {
        spans.push(Span::styled("  ● live", theme.warn()));
    }
    Line::from(spans)
}
