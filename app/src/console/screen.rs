//! The screen trait, and what a screen gets: the [`View`] it draws from and
//! the [`Cx`] it acts through, collecting [`Effect`]s for the app to apply.

use std::time::SystemTime;

use crossterm::event::KeyEvent;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use switchboard_core::profile::Profile;

use super::action::{Action, Context, Tab};
use super::dialog::Dialog;
use super::keymap::Keymap;
use super::model::Model;
use super::msg::Request;
use super::theme::Theme;

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
    /// Which screen it is.
    fn tab(&self) -> Tab;
    /// The key-map section for its keys.
    fn context(&self) -> Context {
        Context::Screen(self.tab())
    }
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
