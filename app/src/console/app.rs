//! The console's state: the data the core reported, the screens, the open
//! dialogs, and the loop's two inputs (keys and core events) turned into
//! requests for the core.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossterm::event::{
    Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEventKind,
};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::Frame;
use switchboard_core::profile::{Profile, ProfileKind};
use switchboard_core::ratelimit::window_of;
use switchboard_core::registry::{AgentRecord, ClientRecord, CounterEntry, Permission};
use switchboard_core::TrafficEvent;

use super::action::{Action, Context};
use super::dialog::{Dialog, Pick, Purpose};
use super::form::FormOutcome;
use super::forms;
use super::keymap::Keymap;
use super::msg::{CoreEvent, Health, Request};
use super::screens::{
    agents::AgentsScreen, clients::ClientsScreen, discover::DiscoverScreen, limits::LimitsScreen,
    permissions::PermissionsScreen, profile::ProfileScreen, send::SendScreen,
    traffic::TrafficScreen,
};
use super::theme::Theme;
use super::widgets::truncate;

/// Smallest terminal the console lays out for.
pub const MIN_WIDTH: u16 = 80;
/// Smallest terminal the console lays out for.
pub const MIN_HEIGHT: u16 = 24;

/// The tabs, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tab {
    /// Registry.
    Agents,
    /// Scopes × agents.
    Permissions,
    /// Issuer clients and tokens.
    Clients,
    /// Live requests.
    Traffic,
    /// Send a message.
    Send,
    /// Discovery.
    Discover,
    /// Rate-limit counters.
    Limits,
    /// Profiles.
    Profile,
}

impl Tab {
    /// Every tab, left to right.
    pub const ALL: [Tab; 8] = [
        Tab::Agents,
        Tab::Permissions,
        Tab::Clients,
        Tab::Traffic,
        Tab::Send,
        Tab::Discover,
        Tab::Limits,
        Tab::Profile,
    ];

    /// The tab's name in the tab bar.
    pub fn title(self) -> &'static str {
        match self {
            Tab::Agents => "Agents",
            Tab::Permissions => "Permissions",
            Tab::Clients => "Clients",
            Tab::Traffic => "Traffic",
            Tab::Send => "Send",
            Tab::Discover => "Discover",
            Tab::Limits => "Limits",
            Tab::Profile => "Profile",
        }
    }

    fn index(self) -> usize {
        Tab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }

    fn label(self) -> String {
        format!("{}:{}", self.index() + 1, self.title())
    }
}

/// Where the stack is, for the header and the Profile screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackView {
    /// Gateway base URL.
    pub gateway_url: String,
    /// Issuer URL.
    pub issuer_url: String,
    /// Token endpoint.
    pub token_url: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Where logs go.
    pub log_file: PathBuf,
    /// Limit for agents without their own.
    pub default_limit: u32,
}

/// What the core has told the console.
#[derive(Debug, Clone)]
pub struct Model {
    /// The stack.
    pub stack: StackView,
    /// Agents, sorted by id.
    pub agents: Vec<AgentRecord>,
    /// Permissions, sorted by scope.
    pub permissions: Vec<Permission>,
    /// Issuer clients, sorted by id.
    pub clients: Vec<ClientRecord>,
    /// Live counter windows.
    pub counters: Vec<CounterEntry>,
    /// Backend health by agent id.
    pub health: HashMap<String, Health>,
    /// Latency of the last request through the gateway, by agent id.
    pub last_latency: HashMap<String, Duration>,
    /// The active profile: the screens but Send and Traffic work on its stores.
    pub profile: Profile,
    /// Every profile.
    pub profiles: Vec<Profile>,
    /// The profile being connected to, while a switch runs.
    pub switching: Option<String>,
    /// The last switch that failed: `(profile, why)`.
    pub switch_error: Option<(String, String)>,
    /// The local stack's agents (Send uses them, whatever the profile).
    pub local_agents: Vec<AgentRecord>,
    /// The local issuer's clients (Send calls as one of them).
    pub local_clients: Vec<ClientRecord>,
    /// Whether this build has discovery.
    pub discovery: bool,
}

impl Model {
    /// A model with nothing loaded yet.
    pub fn new(stack: StackView, profile: Profile, profiles: Vec<Profile>) -> Model {
        Model {
            stack,
            agents: Vec::new(),
            permissions: Vec::new(),
            clients: Vec::new(),
            counters: Vec::new(),
            health: HashMap::new(),
            last_latency: HashMap::new(),
            profile,
            profiles,
            switching: None,
            switch_error: None,
            local_agents: Vec::new(),
            local_clients: Vec::new(),
            discovery: super::worker::DISCOVERY_AVAILABLE,
        }
    }

    /// Whether the local profile is active.
    pub fn is_local(&self) -> bool {
        matches!(self.profile.kind, ProfileKind::Local)
    }

    /// A local agent by id (what Send reaches through the local gateway).
    pub fn local_agent(&self, id: &str) -> Option<&AgentRecord> {
        self.local_agents.iter().find(|a| a.id == id)
    }

    /// A local issuer client by id.
    pub fn local_client(&self, id: &str) -> Option<&ClientRecord> {
        self.local_clients.iter().find(|c| c.client_id == id)
    }

    /// The limit in force for an agent.
    pub fn limit_of(&self, agent: &AgentRecord) -> u32 {
        agent.rate_limit.unwrap_or(self.stack.default_limit)
    }

    /// Requests counted for `agent` (all clients) in the minute holding `now`.
    pub fn requests_this_minute(&self, agent: &str, now: SystemTime) -> u64 {
        let window = window_of(unix(now));
        self.counters
            .iter()
            .filter(|c| c.key.agent_id == agent && c.key.window == window)
            .map(|c| c.count)
            .sum()
    }

    /// An agent by id.
    pub fn agent(&self, id: &str) -> Option<&AgentRecord> {
        self.agents.iter().find(|a| a.id == id)
    }

    /// A client by id.
    pub fn client(&self, id: &str) -> Option<&ClientRecord> {
        self.clients.iter().find(|c| c.client_id == id)
    }

    /// Every scope the console knows of: granted ones and clients' ones.
    pub fn known_scopes(&self) -> Vec<String> {
        let mut all: BTreeSet<String> = self.permissions.iter().map(|p| p.scope.clone()).collect();
        for c in &self.clients {
            all.extend(c.allowed_scopes.iter().cloned());
        }
        all.into_iter().collect()
    }
}

/// Unix seconds.
pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What rendering needs besides a screen's own state.
pub struct View<'a> {
    /// The data.
    pub model: &'a Model,
    /// Styles.
    pub theme: &'a Theme,
    /// Keys.
    pub keymap: &'a Keymap,
    /// The clock.
    pub now: SystemTime,
}

/// What a screen's action asks the app to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send to the core (writes may need a confirmation first).
    Request(Request),
    /// Open a dialog.
    Dialog(Dialog),
    /// Say something in the status line.
    Info(String),
    /// Report an error in the status line.
    Error(String),
    /// Put text on the clipboard; the string says what it is.
    Copy(String, String),
    /// Make another profile the active one.
    SwitchProfile(Profile),
}

/// What a screen gets while handling an action.
pub struct Cx<'a> {
    /// The data.
    pub model: &'a Model,
    /// The clock.
    pub now: SystemTime,
    /// What it asks for.
    pub effects: Vec<Effect>,
}

impl Cx<'_> {
    /// Asks the core.
    pub fn request(&mut self, r: Request) {
        self.effects.push(Effect::Request(r));
    }
    /// Opens a dialog.
    pub fn dialog(&mut self, d: Dialog) {
        self.effects.push(Effect::Dialog(d));
    }
    /// A status message.
    pub fn info(&mut self, s: impl Into<String>) {
        self.effects.push(Effect::Info(s.into()));
    }
    /// A status error.
    pub fn error(&mut self, s: impl Into<String>) {
        self.effects.push(Effect::Error(s.into()));
    }
    /// A clipboard copy.
    pub fn copy(&mut self, text: String, what: &str) {
        self.effects.push(Effect::Copy(text, what.to_owned()));
    }
    /// A profile switch.
    pub fn switch_profile(&mut self, p: Profile) {
        self.effects.push(Effect::SwitchProfile(p));
    }
}

/// A screen: keys in, actions performed, drawn, and its commands listed
/// for the footer and help.
pub trait Screen {
    /// The key-map section for its keys.
    fn context(&self) -> Context;
    /// Turns a key into an action. Screens with a text field being edited
    /// take the key themselves and return `None`.
    fn handle_key(&mut self, key: &KeyEvent, keymap: &Keymap) -> Option<Action> {
        keymap.action(self.context(), key)
    }
    /// Pasted text; returns whether it was used.
    fn paste(&mut self, _text: &str) -> bool {
        false
    }
    /// Does what an action asks.
    fn perform(&mut self, action: Action, cx: &mut Cx<'_>);
    /// Draws itself.
    fn render(&self, area: Rect, buf: &mut Buffer, view: &View<'_>);
    /// The actions that make sense now, for the footer.
    fn commands(&self, model: &Model) -> Vec<Action>;
    /// Whether a text field has the keys (the footer says so).
    fn editing(&self) -> bool {
        false
    }
    /// A left click at a screen position.
    fn click(&mut self, _x: u16, _y: u16, _cx: &mut Cx<'_>) {}
}

/// The status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Nothing to say.
    None,
    /// Information.
    Info(String),
    /// An error the user should see.
    Error(String),
}

/// The screens.
pub struct Screens {
    /// Agents.
    pub agents: AgentsScreen,
    /// Permissions.
    pub permissions: PermissionsScreen,
    /// Clients & tokens.
    pub clients: ClientsScreen,
    /// Traffic.
    pub traffic: TrafficScreen,
    /// Send.
    pub send: SendScreen,
    /// Discover.
    pub discover: DiscoverScreen,
    /// Limits.
    pub limits: LimitsScreen,
    /// Profile.
    pub profile: ProfileScreen,
}

impl Screens {
    fn get(&self, tab: Tab) -> &dyn Screen {
        match tab {
            Tab::Agents => &self.agents,
            Tab::Permissions => &self.permissions,
            Tab::Clients => &self.clients,
            Tab::Traffic => &self.traffic,
            Tab::Send => &self.send,
            Tab::Discover => &self.discover,
            Tab::Limits => &self.limits,
            Tab::Profile => &self.profile,
        }
    }

    fn get_mut(&mut self, tab: Tab) -> &mut dyn Screen {
        match tab {
            Tab::Agents => &mut self.agents,
            Tab::Permissions => &mut self.permissions,
            Tab::Clients => &mut self.clients,
            Tab::Traffic => &mut self.traffic,
            Tab::Send => &mut self.send,
            Tab::Discover => &mut self.discover,
            Tab::Limits => &mut self.limits,
            Tab::Profile => &mut self.profile,
        }
    }
}

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
            screens: Screens {
                agents: AgentsScreen::default(),
                permissions: PermissionsScreen::default(),
                clients: ClientsScreen::default(),
                traffic: TrafficScreen::default(),
                send: SendScreen::default(),
                discover: DiscoverScreen::default(),
                limits: LimitsScreen::default(),
                profile: ProfileScreen::default(),
            },
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
        let now = self.now();
        let mut cx = Cx {
            model: &self.model,
            now,
            effects: Vec::new(),
        };
        self.screens.get_mut(self.tab).click(x, y, &mut cx);
        let effects = cx.effects;
        self.apply(effects);
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
            Action::NextTab => Some(Tab::ALL[(self.tab.index() + 1) % Tab::ALL.len()]),
            Action::PrevTab => {
                Some(Tab::ALL[(self.tab.index() + Tab::ALL.len() - 1) % Tab::ALL.len()])
            }
            Action::TabAgents => Some(Tab::Agents),
            Action::TabPermissions => Some(Tab::Permissions),
            Action::TabClients => Some(Tab::Clients),
            Action::TabTraffic => Some(Tab::Traffic),
            Action::TabSend => Some(Tab::Send),
            Action::TabDiscover => Some(Tab::Discover),
            Action::TabLimits => Some(Tab::Limits),
            Action::TabProfile => Some(Tab::Profile),
            _ => None,
        };
        if let Some(tab) = tab {
            self.switch(tab);
            return;
        }
        let now = self.now();
        let mut cx = Cx {
            model: &self.model,
            now,
            effects: Vec::new(),
        };
        self.screens.get_mut(self.tab).perform(action, &mut cx);
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
                input: super::widgets::TextInput::new(),
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
                Some(Action::Up) => *selected = selected.saturating_sub(1),
                Some(Action::Down) => {
                    *selected = (*selected + 1).min(items.len().saturating_sub(1))
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
                Some(Action::Up) => *scroll = scroll.saturating_sub(1),
                Some(Action::Down) => *scroll = (*scroll + 1).min(max_scroll.get()),
                Some(Action::PageUp) => *scroll = scroll.saturating_sub(10),
                Some(Action::PageDown) => *scroll = (*scroll + 10).min(max_scroll.get()),
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
                Some(Action::Up) => *scroll = scroll.saturating_sub(1),
                Some(Action::Down) => *scroll += 1,
                Some(Action::PageUp) => *scroll = scroll.saturating_sub(10),
                Some(Action::PageDown) => *scroll += 10,
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
                input: super::widgets::TextInput::new(),
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
        let theme = &self.theme;
        if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
            let msg = format!(
                "Switchboard needs a terminal of at least {MIN_WIDTH}×{MIN_HEIGHT}; this one is {}×{}.",
                area.width, area.height
            );
            buf.set_line(
                area.x,
                area.y,
                &Line::from(Span::styled(msg, theme.warn())),
                area.width,
            );
            return;
        }
        let [header, tabs, body, status, footer] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(1),
            Constraint::Fill(1),
            Constraint::Length(1),
            Constraint::Length(1),
        ])
        .areas(area);
        self.render_header(header, buf);
        self.render_tabs(tabs, buf);
        let view = View {
            model: &self.model,
            theme,
            keymap: &self.keymap,
            now: self.now(),
        };
        self.screens.get(self.tab).render(body, buf, &view);
        self.render_status(status, buf);
        self.render_footer(footer, buf);
        for d in &self.dialogs {
            d.render(area, buf, theme, &self.keymap);
        }
    }

    fn render_header(&self, area: Rect, buf: &mut Buffer) {
        let t = &self.theme;
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
        let line = match &self.status {
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
        let km = &self.keymap;
        let mut items = Vec::new();
        if let Some(d) = self.dialogs.last() {
            let ctx = d.context();
            for a in d.commands() {
                if let Some(k) = km.first_key(ctx, a) {
                    items.push((k.to_string(), d.label(a)));
                }
            }
            return (items, Vec::new());
        }
        let screen = self.screens.get(self.tab);
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
        for a in screen.commands(&self.model) {
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

/// A plan in a few words: `3 agent changes, 2 scope changes, 0 secret values copied`.
pub fn sync_summary(plan: &switchboard_core::sync::SyncPlan) -> String {
    let c = plan.counts();
    format!(
        "{} agent changes, {} scope changes, {} secret values copied",
        plan.agents.len(),
        plan.permissions.len(),
        c.secrets_copied
    )
}

/// `(key, label)` pairs for the footer.
type KeyItems = Vec<(String, &'static str)>;

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
