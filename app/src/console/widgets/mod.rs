//! The building blocks every screen and dialog draws with: text fields,
//! lists and their movement, a scrolling JSON view, panes, and text helpers.

pub mod input;
pub mod list;
pub mod pane;
pub mod text;
pub mod text_view;

pub use input::{InputLine, TextInput};
pub use list::{keep_visible, moved, ListState};
pub use pane::{empty_note, framed, kv, pane};
pub use text::{centered, fmt_latency, fmt_time, truncate, wrap, wrap_line};
pub use text_view::TextView;
