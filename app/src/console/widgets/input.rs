//! One-line text fields: [`TextInput`] (the text and its cursor, as forms
//! and dialogs hold it) and [`InputLine`] (a field on a screen, such as the
//! Send message or the Discover query, that takes the keys while edited).

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::text::{Line, Span};

use crate::console::action::{Action, Context};
use crate::console::keymap::Keymap;
use crate::console::theme::Theme;

/// A one-line text field. `masked` fields show one dot per character and
/// never render their value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextInput {
    value: String,
    /// Cursor position in characters.
    cursor: usize,
    masked: bool,
}

impl TextInput {
    /// An empty field.
    pub fn new() -> Self {
        Self::default()
    }

    /// A field showing dots instead of its value.
    pub fn masked() -> Self {
        TextInput {
            masked: true,
            ..Self::default()
        }
    }

    /// A field holding `value`, cursor at the end.
    pub fn with(value: impl Into<String>) -> Self {
        let mut t = Self::new();
        t.set(value);
        t
    }

    /// The text.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Replaces the text; cursor at the end.
    pub fn set(&mut self, value: impl Into<String>) {
        self.value = value.into();
        self.cursor = self.value.chars().count();
    }

    /// Whether it hides its value.
    pub fn is_masked(&self) -> bool {
        self.masked
    }

    fn byte_at(&self, chars: usize) -> usize {
        self.value
            .char_indices()
            .nth(chars)
            .map(|(i, _)| i)
            .unwrap_or(self.value.len())
    }

    /// Inserts text at the cursor (pasted text: line breaks become spaces).
    pub fn insert(&mut self, text: &str) {
        let clean: String = text
            .chars()
            .map(|c| {
                if c == '\n' || c == '\r' || c == '\t' {
                    ' '
                } else {
                    c
                }
            })
            .filter(|c| !c.is_control())
            .collect();
        let at = self.byte_at(self.cursor);
        self.value.insert_str(at, &clean);
        self.cursor += clean.chars().count();
    }

    /// Editing keys; returns whether the key was used.
    pub fn handle_key(&mut self, key: &KeyEvent) -> bool {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('u') if ctrl => {
                self.value.clear();
                self.cursor = 0;
            }
            KeyCode::Char('w') if ctrl => {
                let end = self.byte_at(self.cursor);
                let head = &self.value[..end];
                let trimmed = head.trim_end();
                let start = trimmed
                    .rfind(char::is_whitespace)
                    .map(|i| i + 1)
                    .unwrap_or(0);
                let removed = self.value[start..end].chars().count();
                self.value.replace_range(start..end, "");
                self.cursor -= removed;
            }
            KeyCode::Char('a') if ctrl => self.cursor = 0,
            KeyCode::Char('e') if ctrl => self.cursor = self.value.chars().count(),
            KeyCode::Char(c) if !ctrl && !key.modifiers.contains(KeyModifiers::ALT) => {
                let mut buf = [0u8; 4];
                self.insert(c.encode_utf8(&mut buf));
            }
            KeyCode::Backspace if self.cursor > 0 => {
                let start = self.byte_at(self.cursor - 1);
                let end = self.byte_at(self.cursor);
                self.value.replace_range(start..end, "");
                self.cursor -= 1;
            }
            KeyCode::Backspace => {}
            KeyCode::Delete if self.cursor < self.value.chars().count() => {
                let start = self.byte_at(self.cursor);
                let end = self.byte_at(self.cursor + 1);
                self.value.replace_range(start..end, "");
            }
            KeyCode::Delete => {}
            KeyCode::Left => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Right => self.cursor = (self.cursor + 1).min(self.value.chars().count()),
            KeyCode::Home => self.cursor = 0,
            KeyCode::End => self.cursor = self.value.chars().count(),
            _ => return false,
        }
        true
    }

    /// The field as one line `width` cells wide; the cursor is drawn when `focused`.
    pub fn line(&self, width: u16, focused: bool, theme: &Theme) -> Line<'static> {
        let width = usize::from(width.max(1));
        let shown: Vec<char> = if self.masked {
            std::iter::repeat_n('•', self.value.chars().count()).collect()
        } else {
            self.value.chars().collect()
        };
        // Keep the cursor in view: scroll so it sits on the last cell at most.
        let start = if focused && self.cursor + 1 > width {
            self.cursor + 1 - width
        } else {
            0
        };
        let end = (start + width).min(shown.len());
        let visible: String = shown[start.min(shown.len())..end].iter().collect();
        if !focused {
            return Line::from(Span::styled(visible, theme.text()));
        }
        let cur = self.cursor - start;
        let before: String = visible.chars().take(cur).collect();
        let at: String = visible
            .chars()
            .nth(cur)
            .map(String::from)
            .unwrap_or(" ".into());
        let after: String = visible.chars().skip(cur + 1).collect();
        Line::from(vec![
            Span::raw(before),
            Span::styled(at, theme.selected()),
            Span::raw(after),
        ])
    }
}

/// A text field on a screen: keys go to the screen until editing starts,
/// then to the text until the form's submit or cancel key ends it. Drawn as
/// one line, `label value`.
#[derive(Debug, Default)]
pub struct InputLine {
    input: TextInput,
    editing: bool,
}

impl InputLine {
    /// The text.
    pub fn value(&self) -> &str {
        self.input.value()
    }

    /// Whether it has the keys.
    pub fn is_editing(&self) -> bool {
        self.editing
    }

    /// Gives it the keys.
    pub fn start_editing(&mut self) {
        self.editing = true;
    }

    /// Pasted text, inserted at the cursor whether or not it is being edited.
    pub fn paste(&mut self, text: &str) {
        self.input.insert(text);
    }

    /// A key on the screen that holds the field. Not editing: the screen's
    /// action for it (`context`). Editing: submit ends the editing and
    /// returns `on_submit`, cancel ends it, any other key edits the text.
    pub fn handle_key(
        &mut self,
        key: &KeyEvent,
        keymap: &Keymap,
        context: Context,
        on_submit: Option<Action>,
    ) -> Option<Action> {
        if !self.editing {
            return keymap.action(context, key);
        }
        match keymap.action(Context::Form, key) {
            Some(Action::Submit) => {
                self.editing = false;
                return on_submit;
            }
            Some(Action::Cancel) => self.editing = false,
            _ => {
                self.input.handle_key(key);
            }
        }
        None
    }

    /// `label value` in `width` cells; `placeholder` while it is empty and
    /// not being edited. The label is bright while editing.
    pub fn line(&self, label: &str, placeholder: &str, width: u16, theme: &Theme) -> Line<'static> {
        let label_style = if self.editing {
            theme.focus()
        } else {
            theme.dim()
        };
        let mut spans = vec![Span::styled(label.to_owned(), label_style)];
        if self.input.value().is_empty() && !self.editing {
            spans.push(Span::styled(placeholder.to_owned(), theme.dim()));
        } else {
            let label_w = u16::try_from(label.chars().count()).unwrap_or(u16::MAX);
            spans.extend(
                self.input
                    .line(width.saturating_sub(label_w), self.editing, theme)
                    .spans,
            );
        }
        Line::from(spans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn k(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn text_input_edits() {
        let mut t = TextInput::new();
        for c in "hello wrld".chars() {
            t.handle_key(&k(KeyCode::Char(c)));
        }
        for _ in 0..3 {
            t.handle_key(&k(KeyCode::Left));
        }
        t.handle_key(&k(KeyCode::Char('o')));
        assert_eq!(t.value(), "hello world");
        t.handle_key(&KeyEvent::new(KeyCode::Char('w'), KeyModifiers::CONTROL));
        assert_eq!(t.value(), "hello rld");
        t.handle_key(&k(KeyCode::End));
        t.handle_key(&k(KeyCode::Backspace));
        assert_eq!(t.value(), "hello rl");
        t.insert("a\nb");
        assert_eq!(t.value(), "hello rla b");
        t.handle_key(&KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
        assert_eq!(t.value(), "");
        assert!(!t.handle_key(&k(KeyCode::Enter)));
    }

    #[test]
    fn masked_input_never_shows_its_value() {
        let mut t = TextInput::masked();
        t.insert("s3cret");
        let line = t.line(20, true, &Theme::new(false));
        let text: String = line.spans.iter().map(|s| s.content.as_ref()).collect();
        assert_eq!(text, "•••••• ");
    }

    #[test]
    fn an_input_line_has_the_keys_only_while_edited() {
        let keymap = Keymap::defaults();
        let ctx = Context::Screen(crate::console::action::Tab::Discover);
        let mut line = InputLine::default();
        let slash = k(KeyCode::Char('/'));
        assert_eq!(
            line.handle_key(&slash, &keymap, ctx, None),
            Some(Action::Compose)
        );
        line.start_editing();
        for c in "ab".chars() {
            assert_eq!(
                line.handle_key(&k(KeyCode::Char(c)), &keymap, ctx, None),
                None
            );
        }
        assert_eq!(
            line.handle_key(&k(KeyCode::Enter), &keymap, ctx, Some(Action::Select)),
            Some(Action::Select)
        );
        assert!(!line.is_editing());
        assert_eq!(line.value(), "ab");
    }
}
