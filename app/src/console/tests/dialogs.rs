//! Dialogs: the help popup, forms and their validation, confirmations,
//! values shown once, tokens minted and inspected, choosers.

use pretty_assertions::assert_eq;

use super::*;

#[test]
fn help_popup_lists_every_key_from_the_keymap() {
    let mut app = app();
    press(&mut app, "?");
    snapshot("help", screen(&app, 100, 30));
    press(&mut app, "?");
    assert!(app.dialogs.is_empty());
}

#[test]
fn add_agent_by_url_prefills_the_form_from_its_card() {
    let mut app = app();
    press(&mut app, "a");
    snapshot("add_agent_url", screen(&app, 100, 24));
    typed(&mut app, "http://127.0.0.1:9100");
    app.on_key(code(KeyCode::Enter));
    assert_eq!(
        app.take_requests(),
        vec![Request::FetchCard {
            url: "http://127.0.0.1:9100".into()
        }]
    );
    let card = card("Weather Bot", "http://127.0.0.1:9100", false);
    app.on_core(CoreEvent::CardFetched {
        url: "http://127.0.0.1:9100".into(),
        result: Ok(card.clone()),
    });
    snapshot("add_agent_form", screen(&app, 100, 30));
    app.on_key(code(KeyCode::Enter));
    let reqs = app.take_requests();
    let Some(Request::SaveAgent {
        record,
        create: true,
        secret: None,
    }) = reqs.first()
    else {
        panic!("{reqs:?}")
    };
    assert_eq!(
        (
            record.id.as_str(),
            record.name.as_str(),
            record.url.as_str()
        ),
        ("weather-bot", "Weather Bot", "http://127.0.0.1:9100")
    );
    assert_eq!(record.card.as_ref(), Some(&card));
    app.on_core(CoreEvent::AgentSaved {
        id: "weather-bot".into(),
        created: true,
    });
    assert!(app.dialogs.is_empty());
}

#[test]
fn a_url_without_a_card_still_opens_the_form() {
    let mut app = app();
    press(&mut app, "a");
    typed(&mut app, "http://127.0.0.1:9100/a2a/");
    app.on_key(code(KeyCode::Enter));
    app.on_core(CoreEvent::CardFetched {
        url: "http://127.0.0.1:9100/a2a/".into(),
        result: Err("connection refused".into()),
    });
    let Some(Dialog::Form { form, .. }) = app.dialogs.last() else {
        panic!()
    };
    assert_eq!(form.text("id"), "a2a");
    assert!(form.note.as_ref().unwrap().contains("connection refused"));
}

#[test]
fn agent_form_validates_every_field() {
    let mut app = app();
    press(&mut app, "j");
    press(&mut app, "e"); // guarded: oauth2
                          // Break the URL, the limit and the token URL.
    let Some(Dialog::Form { form, .. }) = app.dialogs.last_mut() else {
        panic!()
    };
    for f in &mut form.fields {
        if let crate::console::form::FieldKind::Text(t) = &mut f.kind {
            match f.key {
                "url" => t.set("http://169.254.169.254/"),
                "limit" => t.set("lots"),
                "token_url" => t.set("not a url"),
                _ => {}
            }
        }
    }
    app.on_key(code(KeyCode::Enter));
    assert_eq!(app.take_requests(), vec![]);
    snapshot("edit_agent_errors", screen(&app, 100, 36));
}

#[test]
fn backend_secrets_are_typed_masked_and_sent_once() {
    let mut app = app();
    press(&mut app, "e"); // echo: no auth
    let Some(Dialog::Form { form, .. }) = app.dialogs.last_mut() else {
        panic!()
    };
    let auth = form.fields.iter().position(|f| f.key == "auth").unwrap();
    form.focus = auth;
    app.on_key(code(KeyCode::Right)); // header
    for _ in 0..2 {
        app.on_key(code(KeyCode::Tab));
    }
    // Header name, then (token fields hidden) the secret name, then its value.
    let Some(Dialog::Form { form, .. }) = app.dialogs.last_mut() else {
        panic!()
    };
    form.focus = form.fields.iter().position(|f| f.key == "header").unwrap();
    typed(&mut app, "x-api-key");
    let Some(Dialog::Form { form, .. }) = app.dialogs.last_mut() else {
        panic!()
    };
    form.focus = form
        .fields
        .iter()
        .position(|f| f.key == "secret_value")
        .unwrap();
    typed(&mut app, "hunter2");
    let shown = screen(&app, 100, 30);
    assert!(!shown.contains("hunter2"), "{shown}");
    snapshot("edit_agent_secret_masked", shown);
    app.on_key(code(KeyCode::Enter));
    let reqs = app.take_requests();
    let Some(Request::SaveAgent {
        record,
        create: false,
        secret: Some((name, value)),
    }) = reqs.first()
    else {
        panic!("{reqs:?}")
    };
    assert_eq!(
        record.auth,
        BackendAuth::Header {
            name: "x-api-key".into(),
            secret: "agents/echo".into()
        }
    );
    assert_eq!((name.as_str(), value.expose()), ("agents/echo", "hunter2"));
    // A failed save keeps the form open with the error.
    app.on_core(CoreEvent::Failed {
        message: "agent echo was changed elsewhere".into(),
        form: true,
    });
    let Some(Dialog::Form { form, .. }) = app.dialogs.last() else {
        panic!()
    };
    assert_eq!(
        form.error.as_deref(),
        Some("agent echo was changed elsewhere")
    );
    assert!(!form.pending);
}

#[test]
fn delete_asks_first() {
    let mut app = app();
    press(&mut app, "d");
    snapshot("delete_confirm", screen(&app, 100, 24));
    press(&mut app, "n");
    assert_eq!(app.take_requests(), vec![]);
    press(&mut app, "dy");
    assert_eq!(
        app.take_requests(),
        vec![Request::DeleteAgent { id: "echo".into() }]
    );
}

#[test]
fn new_scope_form() {
    let mut app = app();
    press(&mut app, "2llln");
    snapshot("new_scope", screen(&app, 100, 24));
    typed(&mut app, "team/weather");
    app.on_key(code(KeyCode::Enter));
    assert_eq!(
        app.take_requests(),
        vec![Request::Grant {
            scope: "team/weather".into(),
            agent: "weather".into()
        }]
    );
    app.on_core(CoreEvent::Done("team/weather now grants weather".into()));
    assert!(app.dialogs.is_empty());
}

#[test]
fn add_client_shows_the_secret_once() {
    let mut app = app();
    press(&mut app, "3a");
    typed(&mut app, "ci-bot");
    app.on_key(code(KeyCode::Tab));
    typed(&mut app, "switchboard/echo");
    snapshot("add_client", screen(&app, 100, 24));
    app.on_key(code(KeyCode::Enter));
    assert_eq!(
        app.take_requests(),
        vec![Request::AddClient {
            id: "ci-bot".into(),
            scopes: vec!["switchboard/echo".into()]
        }]
    );
    app.on_core(CoreEvent::ClientCreated {
        id: "ci-bot".into(),
        secret: "s3cr3t-shown-once".into(),
    });
    snapshot("client_secret_once", screen(&app, 100, 24));
    press(&mut app, "y");
    assert_eq!(app.take_clipboard(), vec!["s3cr3t-shown-once".to_owned()]);
    app.on_key(code(KeyCode::Enter));
    assert!(app.dialogs.is_empty());
}

#[test]
fn mint_a_token_for_chosen_scopes() {
    let mut app = app();
    press(&mut app, "3m");
    // Untick switchboard/guarded (third), tick agents/guarded.invoke (fourth).
    app.on_key(code(KeyCode::Down));
    app.on_key(code(KeyCode::Down));
    app.on_key(key(' '));
    app.on_key(code(KeyCode::Down));
    app.on_key(key(' '));
    snapshot("mint", screen(&app, 100, 24));
    app.on_key(code(KeyCode::Enter));
    assert_eq!(
        app.take_requests(),
        vec![Request::Mint {
            client: "demo-client".into(),
            scopes: vec![
                "switchboard/echo".into(),
                "switchboard/stream".into(),
                "agents/guarded.invoke".into()
            ],
            ttl: Duration::from_secs(3600)
        }]
    );
    app.on_core(CoreEvent::Minted(Minted {
        client: "demo-client".into(),
        scopes: vec!["switchboard/echo".into(), "switchboard/stream".into()],
        token: "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJkZW1vLWNsaWVudCJ9.c2lnbmF0dXJl"
            .into(),
        ttl: Duration::from_secs(3600),
    }));
    assert!(app.dialogs.is_empty());
    snapshot("minted", screen(&app, 100, 24));
    press(&mut app, "y");
    assert_eq!(app.take_clipboard().len(), 1);
}

#[test]
fn inspect_a_pasted_token() {
    let mut app = app();
    press(&mut app, "3");
    app.on_terminal(crossterm::event::Event::Paste("eyJ.eyJ.sig\n".into()));
    snapshot("inspect_form", screen(&app, 100, 24));
    app.on_key(code(KeyCode::Enter));
    assert_eq!(
        app.take_requests(),
        vec![Request::Inspect {
            token: "eyJ.eyJ.sig".into()
        }]
    );
    app.on_core(CoreEvent::Inspected(Ok(Inspection {
        header: json!({"alg": "RS256", "kid": "k1"}),
        claims: json!({"client_id": "demo-client", "scope": "switchboard/echo", "exp": 1_700_003_600u64}),
        validity: Ok("demo-client".into()),
        agents: vec![
            Explanation {
                agent: "echo".into(),
                allowed: true,
                granted_by: vec!["switchboard/echo".into()],
                reason: "allowed: granted by scope switchboard/echo".into(),
            },
            Explanation {
                agent: "stream".into(),
                allowed: false,
                granted_by: vec![],
                reason: "denied: stream is granted by [switchboard/all switchboard/stream], the token has [switchboard/echo]".into(),
            },
        ],
    })));
    assert!(app.dialogs.is_empty());
    snapshot("inspected", screen(&app, 100, 30));
}

#[test]
fn send_pickers() {
    let mut app = app();
    press(&mut app, "5a");
    snapshot("pick_agent", screen(&app, 100, 24));
    press(&mut app, "k");
    app.on_key(code(KeyCode::Enter));
    assert_eq!(app.screens.send.agent.as_deref(), Some("guarded"));
    press(&mut app, "cj");
    app.on_key(code(KeyCode::Enter));
    assert_eq!(
        app.screens.send.client.as_deref(),
        Some("switchboard-gateway")
    );
}
