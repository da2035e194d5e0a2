//! The key map: defaults compiled in (`keymap.toml` beside this file), a
//! user file merged over them, and the lookups the footer and help use.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde::Deserialize;

use super::action::{Action, Context};

/// The defaults.
pub const DEFAULT_KEYMAP: &str = include_str!("keymap.toml");

/// The file name of a user key map, looked for next to the config file.
pub const KEYMAP_FILE: &str = "keymap.toml";

/// One key with its modifiers, as written in the key map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    /// The key.
    pub code: KeyCode,
    /// Ctrl held.
    pub ctrl: bool,
    /// Alt held.
    pub alt: bool,
}

impl Key {
    /// The key a terminal event stands for. Shift is folded into the
    /// character (`A`, `?`), so it only counts for named keys (shift-tab).
    pub fn from_event(ev: &KeyEvent) -> Key {
        let code = match ev.code {
            KeyCode::Char(c) => KeyCode::Char(c),
            KeyCode::BackTab => KeyCode::BackTab,
            KeyCode::Tab if ev.modifiers.contains(KeyModifiers::SHIFT) => KeyCode::BackTab,
            other => other,
        };
        Key {
            code,
            ctrl: ev.modifiers.contains(KeyModifiers::CONTROL),
            alt: ev.modifiers.contains(KeyModifiers::ALT),
        }
    }

    /// Parses `a`, `A`, `?`, `ctrl-s`, `shift-tab`, `pageup`, `f5`, `space` ….
    pub fn parse(text: &str) -> Result<Key, String> {
        let mut rest = text;
        let mut ctrl = false;
        let mut alt = false;
        loop {
            if rest.chars().count() > 1 {
                if let Some(r) = rest.strip_prefix("ctrl-") {
                    ctrl = true;
                    rest = r;
                    continue;
                }
                if let Some(r) = rest.strip_prefix("alt-") {
                    alt = true;
                    rest = r;
                    continue;
                }
            }
            break;
        }
        let mut chars = rest.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) => KeyCode::Char(if ctrl { c.to_ascii_lowercase() } else { c }),
            _ => match rest {
                "enter" | "return" => KeyCode::Enter,
                "esc" | "escape" => KeyCode::Esc,
                "tab" => KeyCode::Tab,
                "shift-tab" | "backtab" => KeyCode::BackTab,
                "backspace" => KeyCode::Backspace,
                "delete" | "del" => KeyCode::Delete,
                "insert" | "ins" => KeyCode::Insert,
                "space" => KeyCode::Char(' '),
                "up" => KeyCode::Up,
                "down" => KeyCode::Down,
                "left" => KeyCode::Left,
                "right" => KeyCode::Right,
                "home" => KeyCode::Home,
                "end" => KeyCode::End,
                "pageup" | "pgup" => KeyCode::PageUp,
                "pagedown" | "pgdn" => KeyCode::PageDown,
                f if f.starts_with('f') => match f[1..].parse::<u8>() {
                    Ok(n) if (1..=12).contains(&n) => KeyCode::F(n),
                    _ => return Err(format!("unknown key {text:?}")),
                },
                _ => return Err(format!("unknown key {text:?}")),
            },
        };
        Ok(Key { code, ctrl, alt })
    }
}

impl Key {
    /// The key as written in the key map file (`up`, `pageup`, `ctrl-s`).
    pub fn spelling(&self) -> String {
        let named = match self.code {
            KeyCode::Up => "up",
            KeyCode::Down => "down",
            KeyCode::Left => "left",
            KeyCode::Right => "right",
            KeyCode::PageUp => "pageup",
            KeyCode::PageDown => "pagedown",
            _ => return self.to_string(),
        };
        format!(
            "{}{}{named}",
            if self.ctrl { "ctrl-" } else { "" },
            if self.alt { "alt-" } else { "" }
        )
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl {
            f.write_str("ctrl-")?;
        }
        if self.alt {
            f.write_str("alt-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::Enter => f.write_str("enter"),
            KeyCode::Esc => f.write_str("esc"),
            KeyCode::Tab => f.write_str("tab"),
            KeyCode::BackTab => f.write_str("shift-tab"),
            KeyCode::Backspace => f.write_str("backspace"),
            KeyCode::Delete => f.write_str("delete"),
            KeyCode::Insert => f.write_str("insert"),
            KeyCode::Up => f.write_str("↑"),
            KeyCode::Down => f.write_str("↓"),
            KeyCode::Left => f.write_str("←"),
            KeyCode::Right => f.write_str("→"),
            KeyCode::Home => f.write_str("home"),
            KeyCode::End => f.write_str("end"),
            KeyCode::PageUp => f.write_str("pgup"),
            KeyCode::PageDown => f.write_str("pgdn"),
            KeyCode::F(n) => write!(f, "f{n}"),
            other => write!(f, "{other:?}"),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Keys {
    One(String),
    Many(Vec<String>),
}

impl Keys {
    fn list(self) -> Vec<String> {
        match self {
            Keys::One(k) => vec![k],
            Keys::Many(v) => v,
        }
    }
}

type RawFile = BTreeMap<Context, BTreeMap<Action, Keys>>;

/// Action → keys, per context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keymap {
    bindings: BTreeMap<Context, BTreeMap<Action, Vec<Key>>>,
}

impl Keymap {
    /// The compiled-in defaults.
    pub fn defaults() -> Keymap {
        let mut map = Keymap {
            bindings: BTreeMap::new(),
        };
        // The defaults are tested; a broken file would fail every test.
        if let Err(e) = map.merge_str(DEFAULT_KEYMAP) {
            tracing::error!(error = %e, "the built-in key map is invalid");
        }
        map
    }

    /// The defaults with the user's file at `path` merged over them. A missing
    /// file is no error; a broken one leaves the defaults and says why.
    pub fn load(path: &Path) -> (Keymap, Option<String>) {
        let map = Keymap::defaults();
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let mut merged = map.clone();
                match merged.merge_str(&text) {
                    Ok(()) => {
                        let conflicts = merged.conflicts();
                        let note = (!conflicts.is_empty()).then(|| {
                            format!("key map {}: {}", path.display(), conflicts.join("; "))
                        });
                        (merged, note)
                    }
                    Err(e) => (
                        map,
                        Some(format!(
                            "key map {} ignored, defaults in use: {e}",
                            path.display()
                        )),
                    ),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (map, None),
            Err(e) => (
                map,
                Some(format!("cannot read the key map {}: {e}", path.display())),
            ),
        }
    }

    /// Merges a TOML key map: each entry replaces that action's keys in that section.
    pub fn merge_str(&mut self, text: &str) -> Result<(), String> {
        let raw: RawFile = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        for (context, actions) in raw {
            for (action, keys) in actions {
                let mut parsed = Vec::new();
                for k in keys.list() {
                    let key = Key::parse(&k)
                        .map_err(|e| format!("[{}] {}: {e}", context.name(), action.name()))?;
                    if key.ctrl && key.code == KeyCode::Char('c') {
                        return Err(format!(
                            "[{}] {}: ctrl-c always quits and cannot be bound",
                            context.name(),
                            action.name()
                        ));
                    }
                    parsed.push(key);
                }
                self.bindings
                    .entry(context)
                    .or_default()
                    .insert(action, parsed);
            }
        }
        Ok(())
    }

    /// Keys bound to more than one action in a place where both apply.
    pub fn conflicts(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (context, actions) in &self.bindings {
            let mut seen: std::collections::HashMap<Key, Action> = std::collections::HashMap::new();
            for (action, keys) in actions {
                for key in keys {
                    if let Some(other) = seen.insert(*key, *action) {
                        if other != *action {
                            out.push(format!(
                                "{key} is bound to both {} and {} in [{}]",
                                other.name(),
                                action.name(),
                                context.name()
                            ));
                        }
                    }
                }
            }
        }
        out
    }

    /// What `key` does in `context` (falling back to global where screens do).
    pub fn action(&self, context: Context, key: &KeyEvent) -> Option<Action> {
        let key = Key::from_event(key);
        let find = |ctx: Context| {
            self.bindings.get(&ctx).and_then(|actions| {
                actions
                    .iter()
                    .find(|(_, keys)| keys.contains(&key))
                    .map(|(a, _)| *a)
            })
        };
        find(context).or_else(|| {
            if context.falls_back() {
                find(Context::Global)
            } else {
                None
            }
        })
    }

    /// The keys for `action` in `context` (or global, for screens).
    pub fn keys(&self, context: Context, action: Action) -> &[Key] {
        let get = |ctx: Context| {
            self.bindings
                .get(&ctx)
                .and_then(|a| a.get(&action))
                .map(Vec::as_slice)
        };
        match get(context) {
            Some(k) => k,
            None if context.falls_back() => get(Context::Global).unwrap_or(&[]),
            None => &[],
        }
    }

    /// The first key for `action`, for the footer.
    pub fn first_key(&self, context: Context, action: Action) -> Option<Key> {
        self.keys(context, action).first().copied()
    }

    /// Every binding of a context, in key-map order.
    pub fn section(&self, context: Context) -> Vec<(Action, Vec<Key>)> {
        self.bindings
            .get(&context)
            .map(|a| {
                a.iter()
                    .filter(|(_, k)| !k.is_empty())
                    .map(|(a, k)| (*a, k.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The key map as Markdown, one line per section (the README's key list).
pub fn markdown(keymap: &Keymap) -> String {
    let mut out = String::new();
    for ctx in Context::ALL {
        let section = keymap.section(ctx);
        if section.is_empty() {
            continue;
        }
        let items: Vec<String> = section
            .iter()
            .map(|(action, keys)| {
                let keys: Vec<String> =
                    keys.iter().map(|k| format!("`{}`", k.spelling())).collect();
                format!("{} {}", keys.join("/"), action.label(ctx))
            })
            .collect();
        out.push_str(&format!(
            "- **{}** `[{}]`: {}\n",
            ctx.title(),
            ctx.name(),
            items.join(" · ")
        ));
        if ctx == Context::Global {
            out.push_str("- `ctrl-c` always quits, wherever you are; it cannot be rebound\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::action::Tab;
    use pretty_assertions::assert_eq;

    fn key(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    #[test]
    fn defaults_parse_without_conflicts() {
        let mut map = Keymap {
            bindings: BTreeMap::new(),
        };
        map.merge_str(DEFAULT_KEYMAP).unwrap();
        assert_eq!(map, Keymap::defaults());
        assert_eq!(map.conflicts(), Vec::<String>::new());
        for ctx in Context::ALL {
            assert!(
                map.bindings.contains_key(&ctx),
                "no [{}] in the defaults",
                ctx.name()
            );
        }
    }

    #[test]
    fn readme_lists_the_default_keys() {
        let readme = include_str!("../../../README.md");
        let expected = markdown(&Keymap::defaults());
        let start = "<!-- keys:start -->\n";
        let block = readme
            .split_once(start)
            .and_then(|(_, rest)| rest.split_once("<!-- keys:end -->"))
            .map(|(b, _)| b);
        assert_eq!(
            block,
            Some(expected.as_str()),
            "README.md's key list is out of date; put this between the keys markers:\n{expected}"
        );
    }

    #[test]
    fn parses_keys() {
        let k = |s: &str| Key::parse(s).unwrap();
        assert_eq!(k("a").code, KeyCode::Char('a'));
        assert_eq!(k("A").code, KeyCode::Char('A'));
        assert_eq!(
            k("ctrl-s"),
            Key {
                code: KeyCode::Char('s'),
                ctrl: true,
                alt: false
            }
        );
        assert_eq!(k("shift-tab").code, KeyCode::BackTab);
        assert_eq!(k("f5").code, KeyCode::F(5));
        assert_eq!(k("-").code, KeyCode::Char('-'));
        assert_eq!(k("space").code, KeyCode::Char(' '));
        assert!(Key::parse("hyper-x").is_err());
        assert!(Key::parse("f13").is_err());
        assert_eq!(k("ctrl-s").to_string(), "ctrl-s");
    }

    #[test]
    fn looks_up_with_global_fallback() {
        let map = Keymap::defaults();
        let none = KeyModifiers::NONE;
        assert_eq!(
            map.action(Context::Screen(Tab::Agents), &key(KeyCode::Char('a'), none)),
            Some(Action::Add)
        );
        assert_eq!(
            map.action(Context::Screen(Tab::Agents), &key(KeyCode::Char('q'), none)),
            Some(Action::Quit)
        );
        // Shift folds into the character; shift-tab is its own key.
        assert_eq!(
            map.action(
                Context::Screen(Tab::Agents),
                &key(KeyCode::Char('G'), KeyModifiers::SHIFT)
            ),
            Some(Action::Bottom)
        );
        assert_eq!(
            map.action(
                Context::Screen(Tab::Agents),
                &key(KeyCode::Tab, KeyModifiers::SHIFT)
            ),
            Some(Action::PrevTab)
        );
        // Dialogs do not fall back: `q` in a form is a letter, not quit.
        assert_eq!(
            map.action(Context::Form, &key(KeyCode::Char('q'), none)),
            None
        );
        assert_eq!(
            map.action(
                Context::Form,
                &key(KeyCode::Char('s'), KeyModifiers::CONTROL)
            ),
            Some(Action::Submit)
        );
    }

    #[test]
    fn user_file_replaces_an_actions_keys() {
        let mut map = Keymap::defaults();
        map.merge_str("[agents]\nadd = [\"n\", \"insert\"]\n[global]\nquit = \"ctrl-q\"\n")
            .unwrap();
        let none = KeyModifiers::NONE;
        assert_eq!(
            map.action(Context::Screen(Tab::Agents), &key(KeyCode::Char('n'), none)),
            Some(Action::Add)
        );
        assert_eq!(
            map.action(Context::Screen(Tab::Agents), &key(KeyCode::Char('a'), none)),
            None
        );
        assert_eq!(
            map.action(
                Context::Screen(Tab::Agents),
                &key(KeyCode::Char('q'), KeyModifiers::CONTROL)
            ),
            Some(Action::Quit)
        );
        assert_eq!(
            map.first_key(Context::Screen(Tab::Agents), Action::Add)
                .map(|k| k.to_string()),
            Some("n".to_owned())
        );
    }

    #[test]
    fn bad_user_files_are_reported_and_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keymap.toml");
        std::fs::write(&path, "[agents]\nlaunch_rockets = \"x\"\n").unwrap();
        let (map, note) = Keymap::load(&path);
        assert_eq!(map, Keymap::defaults());
        assert!(note.unwrap().contains("unknown variant `launch_rockets`"));

        std::fs::write(&path, "[agents]\nadd = \"ctrl-c\"\n").unwrap();
        let (_, note) = Keymap::load(&path);
        assert!(note.unwrap().contains("ctrl-c always quits"));

        std::fs::write(&path, "[agents]\nadd = \"e\"\n").unwrap();
        let (map, note) = Keymap::load(&path);
        assert_eq!(
            note.unwrap(),
            format!(
                "key map {}: e is bound to both add and edit in [agents]",
                path.display()
            )
        );
        assert_eq!(
            map.first_key(Context::Screen(Tab::Agents), Action::Add)
                .unwrap()
                .to_string(),
            "e"
        );

        let (map, note) = Keymap::load(&dir.path().join("missing.toml"));
        assert_eq!((map, note), (Keymap::defaults(), None));
    }
}
