//! Keys and the mouse: quitting, tabs, scrolling and clicks, grants, the
//! status line, typed confirmations; and every screen at 80×24.

use pretty_assertions::assert_eq;

use super::*;

#[test]
fn quitting() {
    let mut app = app();
    press(&mut app, "q");
    assert!(app.quit);
    // In a form, q is a letter; ctrl-c still quits.
    let mut app = self::app();
    press(&mut app, "aq");
    assert!(!app.quit);
    app.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert!(app.quit);
}

#[test]
fn tabs_by_number_tab_key_and_mouse() {
    let mut app = app();
    press(&mut app, "4");
    assert_eq!(app.tab, Tab::Traffic);
    app.on_key(code(KeyCode::Tab));
    assert_eq!(app.tab, Tab::Send);
    app.on_key(KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT));
    app.on_key(KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT));
    assert_eq!(app.tab, Tab::Clients);
    // "1:Agents 2:Permissions 3:Clients …": column 10 is in "2:Permissions".
    app.on_terminal(crossterm::event::Event::Mouse(MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: 10,
        row: 1,
        modifiers: KeyModifiers::NONE,
    }));
    assert_eq!(app.tab, Tab::Permissions);
    // Typing in the Send box does not switch tabs.
    press(&mut app, "5i12");
    assert_eq!(app.tab, Tab::Send);
}

#[test]
fn mouse_wheel_and_clicks_select_rows() {
    let mut app = app();
    let _ = screen(&app, 100, 30);
    app.on_terminal(crossterm::event::Event::Mouse(MouseEvent {
        kind: MouseEventKind::ScrollDown,
        column: 5,
        row: 5,
        modifiers: KeyModifiers::NONE,
    }));
    let shown = screen(&app, 100, 30);
    assert!(shown.contains("Weather — Weather sample agent"), "{shown}");
    // Row 4 is the second agent (borders, tabs, header above).
    app.on_terminal(crossterm::event::Event::Mouse(MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: 5,
        row: 5,
        modifiers: KeyModifiers::NONE,
    }));
    let shown = screen(&app, 100, 30);
    assert!(
        shown.contains("Guarded echo — Guarded echo sample agent"),
        "{shown}"
    );
}

#[test]
fn permission_keys_grant_and_revoke() {
    let mut app = app();
    press(&mut app, "2j"); // switchboard/echo × echo
    app.on_key(key(' '));
    assert_eq!(
        app.take_requests(),
        vec![Request::Revoke {
            scope: "switchboard/echo".into(),
            agent: "echo".into()
        }]
    );
    press(&mut app, "l+"); // × guarded: grant
    assert_eq!(
        app.take_requests(),
        vec![Request::Grant {
            scope: "switchboard/echo".into(),
            agent: "guarded".into()
        }]
    );
    press(&mut app, "k-"); // switchboard/all × guarded: only through *
    assert_eq!(app.take_requests(), vec![]);
    assert_eq!(
        app.status,
        Status::Error("switchboard/all reaches guarded through *; revoke * instead".into())
    );
}

#[test]
fn errors_land_in_the_status_line_and_the_console_stays_open() {
    let mut app = app();
    app.on_core(CoreEvent::Failed {
        message: "cannot save agent echo: store unavailable: disk I/O error".into(),
        form: false,
    });
    press(&mut app, "5s"); // nothing written yet
    assert!(!app.quit);
    assert_eq!(
        app.status,
        Status::Error("write a message first (i)".into())
    );
    snapshot("status_error", screen(&app, 100, 24));
}

#[test]
fn cancelled_typed_confirmation_writes_nothing() {
    let mut app = production_app();
    press(&mut app, "dy");
    assert!(matches!(app.dialogs.last(), Some(Dialog::Typed { .. })));
    app.on_key(code(KeyCode::Esc));
    assert_eq!(app.take_requests(), vec![]);
    assert!(app.dialogs.is_empty());
    assert_eq!(app.status, Status::Info("nothing was written".into()));
}

#[test]
fn every_screen_and_dialog_fits_80x24() {
    let mut app = app();
    with_traffic(&mut app);
    for tab in "12345678".chars() {
        press(&mut app, &tab.to_string());
        let shown = screen(&app, 80, 24);
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 24);
        assert!(lines[1].contains("8:Profile"), "{shown}");
        assert!(lines[23].contains("? help"), "{shown}");
    }
    press(&mut app, "1e");
    let shown = screen(&app, 80, 24);
    assert!(
        shown.contains("Edit agent echo") && shown.contains("Backend auth"),
        "{shown}"
    );
    app.on_key(code(KeyCode::Esc));
    press(&mut app, "?");
    assert!(screen(&app, 80, 24).contains("Keys"));
    snapshot("traffic_80x24", {
        press(&mut app, "?4");
        app.on_key(code(KeyCode::Enter));
        screen(&app, 80, 24)
    });
}
