//! The console's dispatch: the loop's two inputs (terminal events and core
//! events) turned into screen actions, dialogs, status messages and
//! requests for the core; and the frame, drawn from the model, the visible
//! screen, the chrome and the open dialogs.

use std::time::SystemTime;

use crossterm::event::{
    Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEventKind,
};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::Frame;
use switchboard_core::profile::{Profile, ProfileKind};
use switchboard_core::TrafficEvent;

use super::action::Action;
use super::action::Tab;
use super::chrome::{tab_at, Chrome};
use super::dialog::{Dialog, Pick, Purpose};
use super::form::FormOutcome;
use super::forms;
use super::keymap::Keymap;
pub use super::model::{Model, StackView, Status};
use super::msg::{sync_summary, CoreEvent, Request};
use super::screen::{Cx, Effect, Screen, View};
use super::screens::Screens;
use super::theme::Theme;
use super::widgets::{moved, TextInput};

/// The whole console state.
pub struct App {
    /// Data from the core.
    pub model: Model,
    /// Screens.
    pub screens: Screens,
    /// The visible tab.
    pub tab: Tab,
    /// Open dialogs, topmost last.
    pub dialogs: Vec<Dialog>,
    /// The status line.
    pub status: Status,
    /// Keys.
    pub keymap: Keymap,
    /// Styles.
    pub theme: Theme,
    /// A fixed clock (tests), else the system's.
    pub clock: Option<SystemTime>,
    /// Leave the loop.
    pub quit: bool,
    /// Something changed since the last draw.
    pub dirty: bool,
    outbox: Vec<Request>,
    clipboard: Vec<String>,
}

impl App {
    /// A console over `model`.
    pub fn new(model: Model, keymap: Keymap, theme: Theme) -> App {
        App {
            model,
            screens: Screens::default(),
            tab: Tab::Agents,
            dialogs: Vec::new(),
            status: Status::None,
            keymap,
            theme,
            clock: None,
            quit: false,
            dirty: true,
            outbox: Vec::new(),
            clipboard: Vec::new(),
        }
    }

    /// The time now (fixed in tests).
    pub fn now(&self) -> SystemTime {
        self.clock.unwrap_or_else(SystemTime::now)
    }

    /// Requests for the core since the last call.
    pub fn take_requests(&mut self) -> Vec<Request> {
        std::mem::take(&mut self.outbox)
    }

    /// Texts to put on the clipboard since the last call.
    pub fn take_clipboard(&mut self) -> Vec<String> {
        std::mem::take(&mut self.clipboard)
    }

    /// A terminal event.
    pub fn on_terminal(&mut self, event: Event) {
        match event {
            Event::Key(key) if key.kind != KeyEventKind::Release => self.on_key(key),
            Event::Paste(text) => self.on_paste(&text),
            Event::Mouse(m) => match m.kind {
                MouseEventKind::ScrollDown => self.scroll(Action::Down),
                MouseEventKind::ScrollUp => self.scroll(Action::Up),
                MouseEventKind::Down(MouseButton::Left) => self.on_click(m.column, m.row),
                _ => return,
            },
            Event::Resize(..) => {}
            _ => return,
        }
        self.dirty = true;
    }

    /// A key.
    pub fn on_key(&mut self, key: KeyEvent) {
        self.dirty = true;
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            self.quit = true;
            return;
        }
        if !self.dialogs.is_empty() {
            self.dialog_key(&key);
            return;
        }
        let screen = self.screens.get_mut(self.tab);
        if let Some(action) = screen.handle_key(&key, &self.keymap) {
            self.perform(action);
        }
    }

    fn on_paste(&mut self, text: &str) {
        match self.dialogs.last_mut() {
            Some(Dialog::Form { form, .. }) => form.paste(text),
            Some(Dialog::Typed { input, .. }) => input.insert(text.trim()),
            Some(_) => {}
            None => {
                if !self.screens.get_mut(self.tab).paste(text) && self.tab == Tab::Clients {
                    // A token pasted on the Clients screen opens the inspector with it.
                    let mut form = forms::token_form();
                    form.paste(text);
                    self.dialogs.push(Dialog::Form {
                        form,
                        purpose: Purpose::Token,
                    });
                }
            }
        }
    }

    fn scroll(&mut self, action: Action) {
        match self.dialogs.last_mut() {
            Some(Dialog::Help { scroll }) => {
                *scroll = if action == Action::Up {
                    scroll.saturating_sub(3)
                } else {
                    *scroll + 3
                };
            }
            Some(_) => {}
            None => {
                for _ in 0..3 {
                    self.perform(action);
                }
            }
        }
    }

    fn on_click(&mut self, x: u16, y: u16) {
        if !self.dialogs.is_empty() {
            return;
        }
        if y == 1 {
            if let Some(tab) = tab_at(x) {
                self.switch(tab);
            }
            return;
        }
        self.with_screen(|screen, cx| screen.click(x, y, cx));
    }

    /// Performs an action on the app or the visible screen.
    pub fn perform(&mut self, action: Action) {
        self.dirty = true;
        let tab = match action {
            Action::Quit => {
                self.quit = true;
                return;
            }
            Action::Help => {
                self.dialogs.push(Dialog::Help { scroll: 0 });
                return;
            }
            Action::NextTab => Some(self.tab.cycle(1)),
            Action::PrevTab => Some(self.tab.cycle(-1)),
            other => other.tab(),
        };
        if let Some(tab) = tab {
            self.switch(tab);
            return;
        }
        self.with_screen(|screen, cx| screen.perform(action, cx));
    }

    /// Lets the visible screen act, then applies what it asked for.
    fn with_screen(&mut self, act: impl FnOnce(&mut dyn Screen, &mut Cx<'_>)) {
        let mut cx = Cx {
            model: &self.model,
            now: self.now(),
            effects: Vec::new(),
        };
        act(self.screens.get_mut(self.tab), &mut cx);
        let effects = cx.effects;
        self.apply(effects);
    }

    /// Shows a tab.
    pub fn switch(&mut self, tab: Tab) {
        if tab != self.tab {
            self.status = Status::None;
        }
        self.tab = tab;
        self.dirty = true;
        if tab == Tab::Limits {
            self.outbox.push(Request::RefreshCounters);
        }
    }

    fn apply(&mut self, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::Request(r) => self.request(r),
                Effect::Dialog(d) => self.dialogs.push(d),
                Effect::Info(s) => self.status = Status::Info(s),
                Effect::Error(s) => self.status = Status::Error(s),
                Effect::Copy(text, what) => {
                    self.clipboard.push(text);
                    self.status = Status::Info(format!("copied {what} to the clipboard (OSC 52)"));
                }
                Effect::SwitchProfile(p) => self.switch_profile(p),
            }
        }
    }

    /// Asks the core to make `p` the active profile. The header changes
    /// when the core says it has (`ProfileSwitched`); until then the
    /// current profile stays in force.
    pub fn switch_profile(&mut self, p: Profile) {
        self.dirty = true;
        if p.name == self.model.profile.name && self.model.switching.is_none() {
            self.status = Status::Info(format!("{} is already the active profile", p.name));
            return;
        }
        self.status = Status::Info(format!(
            "connecting to profile {} ({}); {} stays active until it answers",
            p.name,
            p.describe(),
            self.model.profile.name
        ));
        self.model.switching = Some(p.name.clone());
        self.model.switch_error = None;
        self.outbox.push(Request::SwitchProfile { profile: p });
    }

    /// Sends a request, through a typed confirmation when it writes to a production profile.
    fn request(&mut self, r: Request) {
        if r.is_write() && self.model.profile.production {
            self.dialogs.push(Dialog::Typed {
                profile: self.model.profile.name.clone(),
                request: r,
                input: TextInput::new(),
                error: None,
            });
        } else {
            self.outbox.push(r);
        }
    }

    fn dialog_key(&mut self, key: &KeyEvent) {
        let Some(top) = self.dialogs.last_mut() else {
            return;
        };
        let ctx = top.context();
        let action = self.keymap.action(ctx, key);
        match top {
            Dialog::Form { form, .. } => match form.handle_key(key, &self.keymap) {
                FormOutcome::Continue => {}
                FormOutcome::Cancel => {
                    self.dialogs.pop();
                }
                FormOutcome::Submit => self.submit_form(),
            },
            Dialog::Typed {
                profile,
                input,
                error,
                ..
            } => match action {
                Some(Action::Cancel) => {
                    self.dialogs.pop();
                    self.status = Status::Info("nothing was written".into());
                    // The form underneath, if any, may be edited again.
                    if let Some(Dialog::Form { form, .. }) = self.dialogs.last_mut() {
                        form.pending = false;
                    }
                }
                Some(Action::Submit) => {
                    if input.value() == profile.as_str() {
                        if let Some(Dialog::Typed { request, .. }) = self.dialogs.pop() {
                            self.outbox.push(request);
                        }
                    } else {
                        *error = Some(format!(
                            "that is not {profile:?}; type it exactly, or press esc"
                        ));
                        input.set("");
                    }
                }
                _ => {
                    input.handle_key(key);
                    *error = None;
                }
            },
            Dialog::Confirm { .. } => match action {
                Some(Action::Confirm) => {
                    if let Some(Dialog::Confirm { request, .. }) = self.dialogs.pop() {
                        self.request(request);
                    }
                }
                Some(Action::Cancel) => {
                    self.dialogs.pop();
                }
                _ => {}
            },
            Dialog::Info { copy, .. } => match action {
                Some(Action::Copy) => {
                    if let Some(text) = copy.clone() {
                        self.clipboard.push(text);
                        self.status = Status::Info("copied to the clipboard (OSC 52)".into());
                    }
                }
                Some(Action::Cancel) => {
                    self.dialogs.pop();
                }
                _ => {}
            },
            Dialog::Picker {
                items,
                selected,
                pick,
                ..
            } => match action {
                Some(a @ (Action::Up | Action::Down)) => {
                    *selected =
                        moved(*selected, a, items.len().saturating_sub(1), 1).unwrap_or(*selected)
                }
                Some(Action::Select) => {
                    let chosen = items.get(*selected).map(|(v, _)| v.clone());
                    let pick = *pick;
                    self.dialogs.pop();
                    if let Some(value) = chosen {
                        match pick {
                            Pick::Agent => self.screens.send.agent = Some(value),
                            Pick::Client => self.screens.send.client = Some(value),
                        }
                    }
                }
                Some(Action::Cancel) => {
                    self.dialogs.pop();
                }
                _ => {}
            },
            Dialog::SyncPlan {
                scroll,
                max_scroll,
                plan,
                ..
            } => match action {
                Some(a @ (Action::Up | Action::Down | Action::PageUp | Action::PageDown)) => {
                    *scroll = moved(*scroll, a, max_scroll.get(), 10).unwrap_or(*scroll)
                }
                Some(Action::Confirm) => {
                    if plan.is_empty() {
                        self.status = Status::Info("nothing to apply: the profiles agree".into());
                    } else if let Some(Dialog::SyncPlan { to, plan, .. }) = self.dialogs.pop() {
                        self.confirm_sync(to, plan);
                    }
                }
                Some(Action::Cancel) => {
                    self.dialogs.pop();
                    self.status = Status::Info("nothing was written".into());
                }
                _ => {}
            },
            Dialog::Help { scroll } => match action {
                Some(a @ (Action::Up | Action::Down | Action::PageUp | Action::PageDown)) => {
                    *scroll = moved(*scroll, a, usize::MAX, 10).unwrap_or(*scroll)
                }
                Some(Action::Cancel) => {
                    self.dialogs.pop();
                }
                _ => {}
            },
        }
    }

    /// Asks before a sync writes: the target's name typed when it is marked
    /// production, else yes or no.
    fn confirm_sync(&mut self, to: Profile, plan: switchboard_core::sync::SyncPlan) {
        let summary = sync_summary(&plan);
        let production = to.production;
        let name = to.name.clone();
        let request = Request::ApplySync { to, plan };
        if production {
            self.dialogs.push(Dialog::Typed {
                profile: name,
                request,
                input: TextInput::new(),
                error: None,
            });
        } else {
            self.dialogs.push(Dialog::Confirm {
                title: format!("Sync local → {name}"),
                message: format!(
                    "Make {name}'s agents and permissions exactly local's ({summary})?"
                ),
                request,
            });
        }
    }

    fn submit_form(&mut self) {
        let Some(Dialog::Form { form, purpose }) = self.dialogs.last_mut() else {
            return;
        };
        form.clear_errors();
        let request = forms::submit(form, purpose, &self.model);
        if form.has_errors() {
            self.status = Status::Error("the form has errors; fix the marked fields".into());
            return;
        }
        match request {
            Some(r) => {
                form.pending = true;
                self.request(r);
            }
            None => {
                self.dialogs.pop();
            }
        }
    }

    /// Closes the pending form on top, if any.
    fn close_pending_form(&mut self) -> Option<Purpose> {
        if let Some(Dialog::Form { form, .. }) = self.dialogs.last() {
            if form.pending {
                if let Some(Dialog::Form { purpose, .. }) = self.dialogs.pop() {
                    return Some(purpose);
                }
            }
        }
        None
    }

    /// An event from the core.
    pub fn on_core(&mut self, event: CoreEvent) {
        self.dirty = true;
        match event {
            CoreEvent::Agents(list) => {
                if self.model.is_local() {
                    self.model.local_agents = list.clone();
                }
                self.model.agents = list;
                self.screens.send.defaults(&self.model);
            }
            CoreEvent::Permissions(list) => self.model.permissions = list,
            CoreEvent::Clients(list) => {
                if self.model.is_local() {
                    self.model.local_clients = list.clone();
                }
                self.model.clients = list;
                self.screens.send.defaults(&self.model);
            }
            CoreEvent::LocalLists { agents, clients } => {
                self.model.local_agents = agents;
                self.model.local_clients = clients;
                self.screens.send.defaults(&self.model);
            }
            CoreEvent::ProfileSwitched { profile } => self.profile_switched(profile),
            CoreEvent::ProfileFailed { profile, message } => {
                if self.model.switching.as_deref() == Some(profile.as_str()) {
                    self.model.switching = None;
                }
                self.status = Status::Error(format!(
                    "{message}; still on profile {}",
                    self.model.profile.name
                ));
                self.model.switch_error = Some((profile, message));
            }
            CoreEvent::SyncPlanned {
                to,
                copy_secrets,
                plan,
            } => match plan {
                Ok(plan) => {
                    self.status = Status::None;
                    self.dialogs.push(Dialog::SyncPlan {
                        lines: plan.dry_run_report(switchboard_core::profile::LOCAL, &to.name),
                        to,
                        copy_secrets,
                        plan,
                        scroll: 0,
                        // Set when drawn; until then there is nothing to scroll.
                        max_scroll: std::cell::Cell::new(0),
                    });
                }
                Err(e) => self.status = Status::Error(e),
            },
            CoreEvent::Counters(list) => self.model.counters = list,
            CoreEvent::Health { id, health } => {
                self.model.health.insert(id, health);
            }
            CoreEvent::Traffic(ev) => {
                if let TrafficEvent::Finished { id, latency, .. } = ev.as_ref() {
                    // Latency through the local gateway belongs to the local agents.
                    if let Some(agent) = self
                        .screens
                        .traffic
                        .agent_of(*id)
                        .filter(|_| self.model.is_local())
                    {
                        self.model.last_latency.insert(agent, *latency);
                    }
                }
                self.screens.traffic.ingest(&ev);
            }
            CoreEvent::TrafficLost(n) => {
                self.status = Status::Error(format!(
                    "{n} traffic events were dropped: the console fell behind"
                ));
            }
            CoreEvent::CardFetched { url, result } => {
                let waiting = matches!(
                    self.dialogs.last(),
                    Some(Dialog::Form { form, purpose: Purpose::AgentUrl }) if form.pending && form.text("url") == url
                );
                if waiting {
                    self.dialogs.pop();
                    let (form, purpose) = forms::agent_form_from_card(&url, result, &self.model);
                    self.dialogs.push(Dialog::Form { form, purpose });
                }
            }
            CoreEvent::AgentSaved { id, created } => {
                self.close_pending_form();
                if created {
                    self.screens.agents.select_id(&id, &self.model);
                }
            }
            CoreEvent::ClientCreated { id, secret } => {
                self.close_pending_form();
                self.dialogs.push(Dialog::Info {
                    title: format!("Client {id} added"),
                    lines: vec![
                        format!("client id      {id}"),
                        format!("client secret  {secret}"),
                        String::new(),
                        "The secret is shown only now; it is stored as a salted hash.".into(),
                    ],
                    copy: Some(secret),
                });
                self.status = Status::Info(format!("added client {id}"));
            }
            CoreEvent::Minted(m) => {
                self.close_pending_form();
                self.status = Status::Info(format!(
                    "minted a token for {} ({} scopes)",
                    m.client,
                    m.scopes.len()
                ));
                self.screens.clients.minted(m);
            }
            CoreEvent::Inspected(result) => {
                self.close_pending_form();
                self.screens.clients.inspected(result);
            }
            CoreEvent::Send { send_id, update } => self.screens.send.update(send_id, update),
            CoreEvent::Discovered(result) => self.screens.discover.results(result),
            CoreEvent::Done(message) => {
                self.close_pending_form();
                self.status = Status::Info(message);
            }
            CoreEvent::Failed { message, form } => {
                // A failed submit keeps its form open, with the reason in it.
                if let Some(Dialog::Form { form: f, .. }) = self.dialogs.last_mut() {
                    if form && f.pending {
                        f.pending = false;
                        f.error = Some(message.clone());
                    }
                }
                self.status = Status::Error(message);
            }
        }
    }

    /// The core now works on `profile`: every list is of that profile from
    /// here on. Open dialogs that could write are closed, so nothing typed
    /// for the previous profile lands on this one.
    fn profile_switched(&mut self, profile: Profile) {
        if self.model.switching.as_deref() == Some(profile.name.as_str()) {
            self.model.switching = None;
        }
        self.model.switch_error = None;
        let m = &mut self.model;
        m.agents.clear();
        m.permissions.clear();
        m.clients.clear();
        m.counters.clear();
        m.health.clear();
        m.last_latency.clear();
        self.screens.clients.reset();
        self.screens.discover.clear_results();
        let before = self.dialogs.len();
        self.dialogs
            .retain(|d| matches!(d, Dialog::Help { .. } | Dialog::Info { .. }));
        let closed = if self.dialogs.len() < before {
            "; the open dialog was closed"
        } else {
            ""
        };
        let what = if let ProfileKind::Local = profile.kind {
            "the local stack".to_owned()
        } else {
            format!(
                "{}; Send and Traffic still use the local gateway",
                profile.describe()
            )
        };
        self.status = Status::Info(format!("now on profile {} ({what}){closed}", profile.name));
        self.model.profile = profile;
    }

    /// Draws everything.
    pub fn render(&self, frame: &mut Frame<'_>) {
        let area = frame.area();
        self.render_to(area, frame.buffer_mut());
    }

    /// Draws everything into a buffer.
    pub fn render_to(&self, area: Rect, buf: &mut Buffer) {
        let screen = self.screens.get(self.tab);
        let chrome = Chrome {
            model: &self.model,
            theme: &self.theme,
            keymap: &self.keymap,
            tab: self.tab,
            screen,
            dialog: self.dialogs.last(),
            status: &self.status,
        };
        let view = View {
            model: &self.model,
            theme: &self.theme,
            keymap: &self.keymap,
            now: self.now(),
        };
        if chrome.render(area, buf, |body, buf| screen.render(body, buf, &view)) {
            for d in &self.dialogs {
                d.render(area, buf, &self.theme, &self.keymap);
            }
        }
    }
}
