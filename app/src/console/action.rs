//! The one vocabulary of the console: every key in the key map names an
//! [`Action`], and every screen reacts to actions, never to raw keys (text
//! fields excepted).

use serde::{Deserialize, Serialize};

/// Something the user asked for. The serde names are the key map's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    // Everywhere.
    /// Leave the console.
    Quit,
    /// Show every key.
    Help,
    /// Next tab.
    NextTab,
    /// Previous tab.
    PrevTab,
    /// The Agents tab.
    TabAgents,
    /// The Permissions tab.
    TabPermissions,
    /// The Clients & tokens tab.
    TabClients,
    /// The Traffic tab.
    TabTraffic,
    /// The Send tab.
    TabSend,
    /// The Discover tab.
    TabDiscover,
    /// The Limits tab.
    TabLimits,
    /// The Profile tab.
    TabProfile,
    /// Move up.
    Up,
    /// Move down.
    Down,
    /// Move left.
    Left,
    /// Move right.
    Right,
    /// A page up.
    PageUp,
    /// A page down.
    PageDown,
    /// To the first row.
    Top,
    /// To the last row.
    Bottom,
    /// Open or choose the selected item.
    Select,
    /// Close, go back.
    Back,

    // Screens.
    /// Add an item (agent by URL, client).
    Add,
    /// Edit the selected item.
    Edit,
    /// Delete the selected item (asks first).
    Delete,
    /// Enable or disable the selected agent.
    ToggleEnabled,
    /// Reload from the stores.
    Refresh,
    /// Grant or revoke the cell under the cursor.
    ToggleGrant,
    /// Grant the cell under the cursor.
    Grant,
    /// Revoke the cell under the cursor.
    Revoke,
    /// Grant a new scope to the selected agent.
    NewScope,
    /// Mint a token for the selected client.
    Mint,
    /// Copy to the clipboard (OSC 52).
    Copy,
    /// Paste a token to inspect it.
    Inspect,
    /// Pause or resume the live view.
    TogglePause,
    /// Follow the newest row.
    Follow,
    /// Filter by agent (cycles).
    FilterAgent,
    /// Filter by status (cycles).
    FilterStatus,
    /// Remove every filter.
    ClearFilters,
    /// Choose the agent to send to.
    PickAgent,
    /// Choose the client to send as.
    PickClient,
    /// Write the message or query.
    Compose,
    /// Send the message (`SendMessage`).
    Send,
    /// Stream the message (`SendStreamingMessage`).
    Stream,
    /// Cancel the running task (`CancelTask`).
    CancelTask,
    /// Show what a sync from local to the selected profile would change.
    SyncDiff,
    /// Whether a sync copies secret values too (`--copy-secrets`).
    ToggleSecrets,

    // Forms and dialogs.
    /// Next field.
    NextField,
    /// Previous field.
    PrevField,
    /// Save or submit.
    Submit,
    /// Answer yes.
    Confirm,
    /// Close without doing anything.
    Cancel,
}

impl Action {
    /// A few words for the footer.
    pub fn label(self, context: Context) -> &'static str {
        use Action::*;
        match (self, context) {
            (Quit, _) => "quit",
            (Help, _) => "help",
            (NextTab, _) => "next tab",
            (PrevTab, _) => "prev tab",
            (TabAgents, _) => "agents",
            (TabPermissions, _) => "permissions",
            (TabClients, _) => "clients",
            (TabTraffic, _) => "traffic",
            (TabSend, _) => "send",
            (TabDiscover, _) => "discover",
            (TabLimits, _) => "limits",
            (TabProfile, _) => "profile",
            (Up, _) => "up",
            (Down, _) => "down",
            (Left, _) => "left",
            (Right, _) => "right",
            (PageUp, _) => "page up",
            (PageDown, _) => "page down",
            (Top, _) => "top",
            (Bottom, _) => "bottom",
            (Select, Context::Screen(Tab::Traffic)) => "events",
            (Select, Context::Screen(Tab::Profile)) => "use",
            (Select, Context::Picker) => "choose",
            (Select, Context::Screen(Tab::Discover)) => "rank",
            (Select, _) => "open",
            (Back, _) => "back",
            (Add, Context::Screen(Tab::Clients)) => "add client",
            (Add, _) => "add by URL",
            (Edit, _) => "edit",
            (Delete, _) => "delete",
            (ToggleEnabled, _) => "enable/disable",
            (Refresh, _) => "refresh",
            (ToggleGrant, _) => "grant/revoke",
            (Grant, _) => "grant",
            (Revoke, _) => "revoke",
            (NewScope, _) => "new scope",
            (Mint, _) => "mint token",
            (Copy, _) => "copy",
            (Inspect, _) => "inspect token",
            (TogglePause, _) => "pause",
            (Follow, _) => "follow",
            (FilterAgent, _) => "agent filter",
            (FilterStatus, _) => "status filter",
            (ClearFilters, _) => "clear filters",
            (PickAgent, _) => "agent",
            (PickClient, _) => "client",
            (Compose, Context::Screen(Tab::Discover)) => "query",
            (Compose, _) => "message",
            (Send, _) => "send",
            (Stream, _) => "stream",
            (CancelTask, _) => "cancel task",
            (SyncDiff, _) => "sync diff",
            (ToggleSecrets, _) => "copy secrets on/off",
            (NextField, _) => "next field",
            (PrevField, _) => "prev field",
            (Submit, _) => "save",
            (Confirm, Context::SyncPlan) => "apply",
            (Confirm, _) => "yes",
            (Cancel, Context::Confirm) => "no",
            (Cancel, _) => "close",
        }
    }

    /// The tab a tab action shows.
    pub fn tab(self) -> Option<Tab> {
        Some(match self {
            Action::TabAgents => Tab::Agents,
            Action::TabPermissions => Tab::Permissions,
            Action::TabClients => Tab::Clients,
            Action::TabTraffic => Tab::Traffic,
            Action::TabSend => Tab::Send,
            Action::TabDiscover => Tab::Discover,
            Action::TabLimits => Tab::Limits,
            Action::TabProfile => Tab::Profile,
            _ => return None,
        })
    }

    /// The serde name, as written in the key map.
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// The eight screens, in tab order. Each is also the key-map section of its
/// keys ([`Context::Screen`]); the section names are [`Tab::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

    /// Its section name in the key map.
    pub const fn name(self) -> &'static str {
        match self {
            Tab::Agents => "agents",
            Tab::Permissions => "permissions",
            Tab::Clients => "clients",
            Tab::Traffic => "traffic",
            Tab::Send => "send",
            Tab::Discover => "discover",
            Tab::Limits => "limits",
            Tab::Profile => "profile",
        }
    }

    /// The tab's name in the tab bar.
    pub fn title(self) -> &'static str {
        match self {
            Tab::Clients => "Clients",
            other => other.heading(),
        }
    }

    /// Its heading in the help popup.
    pub fn heading(self) -> &'static str {
        match self {
            Tab::Agents => "Agents",
            Tab::Permissions => "Permissions",
            Tab::Clients => "Clients & tokens",
            Tab::Traffic => "Traffic",
            Tab::Send => "Send",
            Tab::Discover => "Discover",
            Tab::Limits => "Limits",
            Tab::Profile => "Profile",
        }
    }

    /// Its position, from 0.
    pub fn index(self) -> usize {
        Tab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }

    /// `n:Title`, as in the tab bar.
    pub fn label(self) -> String {
        format!("{}:{}", self.index() + 1, self.title())
    }

    /// The tab `steps` to the right (negative: left), wrapping around.
    pub fn cycle(self, steps: isize) -> Tab {
        let n = Tab::ALL.len() as isize;
        Tab::ALL[(self.index() as isize + steps).rem_euclid(n) as usize]
    }
}

/// Where a key is read: a section of the key map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Context {
    /// Every screen (screens fall back to it).
    Global,
    /// A screen.
    Screen(Tab),
    /// Any form.
    Form,
    /// A yes/no question.
    Confirm,
    /// A message or a value shown once.
    Info,
    /// A list to choose from.
    Picker,
    /// The help popup.
    HelpPopup,
    /// A sync diff.
    SyncPlan,
}

impl Context {
    /// Every context, in help order.
    pub const ALL: [Context; 15] = [
        Context::Global,
        Context::Screen(Tab::Agents),
        Context::Screen(Tab::Permissions),
        Context::Screen(Tab::Clients),
        Context::Screen(Tab::Traffic),
        Context::Screen(Tab::Send),
        Context::Screen(Tab::Discover),
        Context::Screen(Tab::Limits),
        Context::Screen(Tab::Profile),
        Context::Form,
        Context::Confirm,
        Context::Info,
        Context::Picker,
        Context::SyncPlan,
        Context::HelpPopup,
    ];

    /// Every section name, in help order.
    const NAMES: [&'static str; 15] = {
        let mut names = [""; 15];
        let mut i = 0;
        while i < names.len() {
            names[i] = Context::ALL[i].name();
            i += 1;
        }
        names
    };

    /// Whether keys not bound here fall back to [`Context::Global`].
    pub fn falls_back(self) -> bool {
        matches!(self, Context::Global | Context::Screen(_))
    }

    /// The section name in the key map.
    pub const fn name(self) -> &'static str {
        match self {
            Context::Global => "global",
            Context::Screen(tab) => tab.name(),
            Context::Form => "form",
            Context::Confirm => "confirm",
            Context::Info => "info",
            Context::Picker => "picker",
            Context::HelpPopup => "help_popup",
            Context::SyncPlan => "sync_plan",
        }
    }

    /// A heading for the help popup.
    pub fn title(self) -> &'static str {
        match self {
            Context::Global => "Everywhere",
            Context::Screen(tab) => tab.heading(),
            Context::Form => "Forms",
            Context::Confirm => "Questions",
            Context::Info => "Messages",
            Context::Picker => "Choosers",
            Context::HelpPopup => "This help",
            Context::SyncPlan => "Sync diffs",
        }
    }
}

/// A section name of the key map file.
impl<'de> Deserialize<'de> for Context {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Context, D::Error> {
        let name = std::borrow::Cow::<str>::deserialize(d)?;
        Context::ALL
            .into_iter()
            .find(|c| c.name() == name)
            .ok_or_else(|| serde::de::Error::unknown_variant(&name, &Context::NAMES))
    }
}
