//! One file per screen, and the set of them the app switches between.
//! Screens draw with [`crate::console::widgets`] and act through
//! [`crate::console::screen`]; they know nothing of the app.

pub mod agents;
pub mod clients;
pub mod discover;
pub mod limits;
pub mod permissions;
pub mod profile;
pub mod send;
pub mod traffic;

use super::action::Tab;
use super::screen::Screen;
use agents::AgentsScreen;
use clients::ClientsScreen;
use discover::DiscoverScreen;
use limits::LimitsScreen;
use permissions::PermissionsScreen;
use profile::ProfileScreen;
use send::SendScreen;
use traffic::TrafficScreen;

/// The screens, one of each.
#[derive(Default)]
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
    /// The screen of a tab.
    pub fn get(&self, tab: Tab) -> &dyn Screen {
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

    /// The screen of a tab, to act on.
    pub fn get_mut(&mut self, tab: Tab) -> &mut dyn Screen {
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
