//! Forms: labelled fields (text, masked secret, choice, toggle, checklist),
//! each with its own error line, and a form-level error.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Widget};

use super::action::{Action, Context};
use super::keymap::Keymap;
use super::theme::Theme;
use super::widgets::{truncate, wrap, TextInput};

/// What a field holds.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldKind {
    /// One line of text (masked for secrets).
    Text(TextInput),
    /// One of a few options.
    Choice {
        /// The options.
        options: Vec<String>,
        /// The chosen one.
        index: usize,
    },
    /// On or off.
    Toggle(bool),
    /// Any subset of items.
    Checklist {
        /// Items and whether each is checked.
        items: Vec<(String, bool)>,
        /// The item under the cursor.
        cursor: usize,
    },
}

/// One field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Name used to read it back.
    pub key: &'static str,
    /// Label shown.
    pub label: String,
    /// Value.
    pub kind: FieldKind,
    /// A hint under the field.
    pub help: String,
    /// What is wrong with the value.
    pub error: Option<String>,
    /// Shown only when the choice field `.0` has one of the options `.1`.
    pub shown_when: Option<(&'static str, Vec<usize>)>,
}

impl Field {
    /// A text field.
    pub fn text(key: &'static str, label: &str, value: &str) -> Field {
        Field {
            key,
            label: label.to_owned(),
            kind: FieldKind::Text(TextInput::with(value)),
            help: String::new(),
            error: None,
            shown_when: None,
        }
    }

    /// A masked field: the value is typed, never shown.
    pub fn secret(key: &'static str, label: &str) -> Field {
        Field {
            kind: FieldKind::Text(TextInput::masked()),
            ..Field::text(key, label, "")
        }
    }

    /// A choice among `options`.
    pub fn choice(key: &'static str, label: &str, options: &[&str], index: usize) -> Field {
        Field {
            kind: FieldKind::Choice {
                options: options.iter().map(|s| (*s).to_owned()).collect(),
                index,
            },
            ..Field::text(key, label, "")
        }
    }

    /// An on/off switch.
    pub fn toggle(key: &'static str, label: &str, on: bool) -> Field {
        Field {
            kind: FieldKind::Toggle(on),
            ..Field::text(key, label, "")
        }
    }

    /// A set of items to tick.
    pub fn checklist(key: &'static str, label: &str, items: Vec<(String, bool)>) -> Field {
        Field {
            kind: FieldKind::Checklist { items, cursor: 0 },
            ..Field::text(key, label, "")
        }
    }

    /// With a hint.
    pub fn help(mut self, help: &str) -> Field {
        self.help = help.to_owned();
        self
    }

    /// Shown only when the choice `key` has one of the options `indices`.
    pub fn when(mut self, key: &'static str, indices: &[usize]) -> Field {
        self.shown_when = Some((key, indices.to_vec()));
        self
    }

    fn height(&self) -> u16 {
        let body = match &self.kind {
            FieldKind::Checklist { items, .. } => items.len().max(1) as u16,
            _ => 1,
        };
        body + u16::from(!self.help.is_empty()) + u16::from(self.error.is_some())
    }
}

/// What a key did to a form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormOutcome {
    /// Nothing for the owner to do.
    Continue,
    /// The user wants it saved.
    Submit,
    /// The user closed it.
    Cancel,
}

/// A form in a dialog.
#[derive(Debug, Clone, PartialEq)]
pub struct Form {
    /// Title.
    pub title: String,
    /// Fields, top to bottom.
    pub fields: Vec<Field>,
    /// The focused field.
    pub focus: usize,
    /// A message about the whole form (a failed save).
    pub error: Option<String>,
    /// A note above the fields.
    pub note: Option<String>,
    /// Waiting for the core to answer a submit.
    pub pending: bool,
}

impl Form {
    /// A form with fields.
    pub fn new(title: &str, fields: Vec<Field>) -> Form {
        Form {
            title: title.to_owned(),
            fields,
            focus: 0,
            error: None,
            note: None,
            pending: false,
        }
    }

    /// With a note above the fields.
    pub fn note(mut self, note: impl Into<String>) -> Form {
        self.note = Some(note.into());
        self
    }

    fn field(&self, key: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.key == key)
    }

    /// Is the field shown now?
    pub fn visible(&self, i: usize) -> bool {
        match self.fields.get(i).and_then(|f| f.shown_when.as_ref()) {
            None => true,
            Some((key, indices)) => indices.contains(&self.choice(key)),
        }
    }

    /// A text field's value, trimmed.
    pub fn text(&self, key: &str) -> String {
        self.raw_text(key).trim().to_owned()
    }

    /// A text field's value as typed, untrimmed (secrets are taken as they are).
    pub fn raw_text(&self, key: &str) -> String {
        match self.field(key).map(|f| &f.kind) {
            Some(FieldKind::Text(t)) => t.value().to_owned(),
            _ => String::new(),
        }
    }

    /// A choice field's index.
    pub fn choice(&self, key: &str) -> usize {
        match self.field(key).map(|f| &f.kind) {
            Some(FieldKind::Choice { index, .. }) => *index,
            _ => 0,
        }
    }

    /// A toggle's state.
    pub fn toggle(&self, key: &str) -> bool {
        matches!(
            self.field(key).map(|f| &f.kind),
            Some(FieldKind::Toggle(true))
        )
    }

    /// A checklist's ticked items.
    pub fn checked(&self, key: &str) -> Vec<String> {
        match self.field(key).map(|f| &f.kind) {
            Some(FieldKind::Checklist { items, .. }) => items
                .iter()
                .filter(|(_, on)| *on)
                .map(|(s, _)| s.clone())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Clears every error.
    pub fn clear_errors(&mut self) {
        self.error = None;
        for f in &mut self.fields {
            f.error = None;
        }
    }

    /// Marks a field wrong and moves the focus to the first wrong field.
    pub fn set_error(&mut self, key: &str, message: impl Into<String>) {
        if let Some(i) = self.fields.iter().position(|f| f.key == key) {
            self.fields[i].error = Some(message.into());
            let first = self
                .fields
                .iter()
                .position(|f| f.error.is_some())
                .unwrap_or(i);
            self.focus = first;
        } else {
            self.error = Some(message.into());
        }
    }

    /// Whether any field or the form has an error.
    pub fn has_errors(&self) -> bool {
        self.error.is_some() || self.fields.iter().any(|f| f.error.is_some())
    }

    fn move_focus(&mut self, forward: bool) {
        let n = self.fields.len();
        for step in 1..=n {
            let i = if forward {
                (self.focus + step) % n
            } else {
                (self.focus + n - step) % n
            };
            if self.visible(i) {
                self.focus = i;
                return;
            }
        }
    }

    /// Pasted text goes to the focused text field.
    pub fn paste(&mut self, text: &str) {
        if let Some(Field {
            kind: FieldKind::Text(t),
            ..
        }) = self.fields.get_mut(self.focus)
        {
            t.insert(text.trim());
        }
    }

    /// A key: form actions first, then the focused field.
    pub fn handle_key(&mut self, key: &KeyEvent, keymap: &Keymap) -> FormOutcome {
        let action = keymap.action(Context::Form, key);
        if self.pending {
            return if action == Some(Action::Cancel) {
                FormOutcome::Cancel
            } else {
                FormOutcome::Continue
            };
        }
        // A checklist moves within its items before leaving the field.
        if let Some(Field {
            kind: FieldKind::Checklist { items, cursor },
            ..
        }) = self.fields.get_mut(self.focus)
        {
            match key.code {
                KeyCode::Down if *cursor + 1 < items.len() => {
                    *cursor += 1;
                    return FormOutcome::Continue;
                }
                KeyCode::Up if *cursor > 0 => {
                    *cursor -= 1;
                    return FormOutcome::Continue;
                }
                KeyCode::Char(' ') => {
                    if let Some(item) = items.get_mut(*cursor) {
                        item.1 = !item.1;
                    }
                    return FormOutcome::Continue;
                }
                _ => {}
            }
        }
        match action {
            Some(Action::Cancel) => return FormOutcome::Cancel,
            Some(Action::Submit) => return FormOutcome::Submit,
            Some(Action::NextField) => {
                self.move_focus(true);
                return FormOutcome::Continue;
            }
            Some(Action::PrevField) => {
                self.move_focus(false);
                return FormOutcome::Continue;
            }
            _ => {}
        }
        let Some(field) = self.fields.get_mut(self.focus) else {
            return FormOutcome::Continue;
        };
        match &mut field.kind {
            FieldKind::Text(t) => {
                if t.handle_key(key) {
                    field.error = None;
                }
            }
            FieldKind::Choice { options, index } => {
                let n = options.len().max(1);
                match (action, key.code) {
                    (Some(Action::Left), _) => *index = (*index + n - 1) % n,
                    (Some(Action::Right), _) | (_, KeyCode::Char(' ')) => *index = (*index + 1) % n,
                    _ => {}
                }
            }
            FieldKind::Toggle(on) => {
                if matches!(action, Some(Action::Left | Action::Right))
                    || key.code == KeyCode::Char(' ')
                {
                    *on = !*on;
                }
            }
            FieldKind::Checklist { .. } => {}
        }
        FormOutcome::Continue
    }

    /// The height the form wants in a box `width` columns wide (the note
    /// and the error wrap).
    pub fn height(&self, width: u16) -> u16 {
        let fields: u16 = (0..self.fields.len())
            .filter(|i| self.visible(*i))
            .map(|i| self.fields[i].height())
            .sum();
        let inner = usize::from(width.saturating_sub(2));
        let wrapped = |t: &Option<String>| {
            t.as_deref()
                .map(|t| wrap(t, inner).len() as u16)
                .unwrap_or(0)
        };
        fields + 2 + wrapped(&self.note) + wrapped(&self.error) + 2
    }

    /// Draws the form in `area` (a dialog box).
    pub fn render(
        &self,
        area: Rect,
        buf: &mut Buffer,
        theme: &Theme,
        keymap: &Keymap,
        submit: &str,
    ) {
        Clear.render(area, buf);
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.focus())
            .title(Span::styled(format!(" {} ", self.title), theme.title()));
        let inner = block.inner(area);
        block.render(area, buf);
        let label_w = self
            .fields
            .iter()
            .map(|f| f.label.chars().count())
            .max()
            .unwrap_or(0)
            .min(22) as u16
            + 2;
        let mut y = inner.y;
        let bottom = inner.y + inner.height;
        let mut put = |y: &mut u16, line: Line<'_>| {
            if *y < bottom.saturating_sub(1) {
                buf.set_line(inner.x, *y, &line, inner.width);
                *y += 1;
            }
        };
        if let Some(note) = &self.note {
            for l in wrap(note, inner.width.into()) {
                put(&mut y, Line::from(Span::styled(l, theme.dim())));
            }
        }
        if let Some(err) = &self.error {
            for l in wrap(err, inner.width.into()) {
                put(&mut y, Line::from(Span::styled(l, theme.error())));
            }
        }
        let value_w = inner.width.saturating_sub(label_w + 1);
        for (i, f) in self.fields.iter().enumerate() {
            if !self.visible(i) {
                continue;
            }
            let focused = i == self.focus;
            let marker = if focused { "▸ " } else { "  " };
            let label_style = if focused { theme.focus() } else { theme.text() };
            let label = Span::styled(
                format!(
                    "{marker}{:<w$}",
                    truncate(&f.label, usize::from(label_w) - 2),
                    w = usize::from(label_w) - 2
                ),
                label_style,
            );
            match &f.kind {
                FieldKind::Text(t) => {
                    let mut spans = vec![label, Span::raw(" ")];
                    spans.extend(t.line(value_w, focused && !self.pending, theme).spans);
                    put(&mut y, Line::from(spans));
                }
                FieldKind::Choice { options, index } => {
                    let mut spans = vec![label, Span::raw(" ")];
                    for (j, o) in options.iter().enumerate() {
                        let style = if j == *index {
                            theme.selected()
                        } else {
                            theme.dim()
                        };
                        spans.push(Span::styled(format!(" {o} "), style));
                        spans.push(Span::raw(" "));
                    }
                    put(&mut y, Line::from(spans));
                }
                FieldKind::Toggle(on) => {
                    let text = if *on { "[x] yes" } else { "[ ] no" };
                    put(
                        &mut y,
                        Line::from(vec![label, Span::raw(" "), Span::raw(text)]),
                    );
                }
                FieldKind::Checklist { items, cursor } => {
                    if items.is_empty() {
                        put(
                            &mut y,
                            Line::from(vec![
                                label.clone(),
                                Span::styled(" (nothing to choose)", theme.dim()),
                            ]),
                        );
                    }
                    for (j, (name, on)) in items.iter().enumerate() {
                        let head = if j == 0 {
                            label.clone()
                        } else {
                            Span::raw(" ".repeat(usize::from(label_w)))
                        };
                        let mark = if *on { "[x] " } else { "[ ] " };
                        let style = if focused && j == *cursor {
                            theme.selected()
                        } else {
                            theme.text()
                        };
                        put(
                            &mut y,
                            Line::from(vec![
                                head,
                                Span::raw(" "),
                                Span::styled(format!("{mark}{name}"), style),
                            ]),
                        );
                    }
                }
            }
            let pad = " ".repeat(usize::from(label_w) + 1);
            if let Some(err) = &f.error {
                put(
                    &mut y,
                    Line::from(vec![
                        Span::raw(pad.clone()),
                        Span::styled(truncate(err, value_w.into()), theme.error()),
                    ]),
                );
            }
            if !f.help.is_empty() {
                put(
                    &mut y,
                    Line::from(vec![
                        Span::raw(pad),
                        Span::styled(truncate(&f.help, value_w.into()), theme.dim()),
                    ]),
                );
            }
        }
        let keys = if self.pending {
            vec![Span::styled("working…", theme.warn())]
        } else {
            let mut spans = Vec::new();
            for action in [Action::Submit, Action::NextField, Action::Cancel] {
                if let Some(k) = keymap.first_key(Context::Form, action) {
                    spans.push(Span::styled(k.to_string(), theme.key()));
                    let label = if action == Action::Submit {
                        submit
                    } else {
                        action.label(Context::Form)
                    };
                    spans.push(Span::raw(format!(" {label}  ")));
                }
            }
            spans
        };
        buf.set_line(
            inner.x,
            bottom.saturating_sub(1),
            &Line::from(keys),
            inner.width,
        );
    }
}
