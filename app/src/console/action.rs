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
            (Select, Context::Traffic) => "events",
            (Select, Context::Profile) => "use",
            (Select, Context::Picker) => "choose",
            (Select, Context::Discover) => "rank",
            (Select, _) => "open",
            (Back, _) => "back",
            (Add, Context::Clients) => "add client",
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
            (Compose, Context::Discover) => "query",
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

    /// The serde name, as written in the key map.
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// Where a key is read: a section of the key map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Context {
    /// Every screen (screens fall back to it).
    Global,
    /// Agents screen.
    Agents,
    /// Permissions screen.
    Permissions,
    /// Clients & tokens screen.
    Clients,
    /// Traffic screen.
    Traffic,
    /// Send screen.
    Send,
    /// Discover screen.
    Discover,
    /// Limits screen.
    Limits,
    /// Profile screen.
    Profile,
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
        Context::Agents,
        Context::Permissions,
        Context::Clients,
        Context::Traffic,
        Context::Send,
        Context::Discover,
        Context::Limits,
        Context::Profile,
        Context::Form,
        Context::Confirm,
        Context::Info,
        Context::Picker,
        Context::SyncPlan,
        Context::HelpPopup,
    ];

    /// Whether keys not bound here fall back to [`Context::Global`].
    pub fn falls_back(self) -> bool {
        !matches!(
            self,
            Context::Form
                | Context::Confirm
                | Context::Info
                | Context::Picker
                | Context::HelpPopup
                | Context::SyncPlan
        )
    }

    /// The section name in the key map.
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// A heading for the help popup.
    pub fn title(self) -> &'static str {
        match self {
            Context::Global => "Everywhere",
            Context::Agents => "Agents",
            Context::Permissions => "Permissions",
            Context::Clients => "Clients & tokens",
            Context::Traffic => "Traffic",
            Context::Send => "Send",
            Context::Discover => "Discover",
            Context::Limits => "Limits",
            Context::Profile => "Profile",
            Context::Form => "Forms",
            Context::Confirm => "Questions",
            Context::Info => "Messages",
            Context::Picker => "Choosers",
            Context::HelpPopup => "This help",
            Context::SyncPlan => "Sync diffs",
        }
    }
}
