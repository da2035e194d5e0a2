//! Profiles: switching live, failures, production profiles, and the
//! screens on an AWS profile.

use pretty_assertions::assert_eq;

use super::sync::sample_plan;
use super::*;

#[test]
fn choosing_a_profile_switches_live_and_the_header_follows_the_core() {
    let mut app = app();
    press(&mut app, "8j");
    assert_eq!(app.take_requests(), vec![]);
    app.on_key(code(KeyCode::Enter));
    // The worker opens the profile; nothing changes until it answers.
    assert_eq!(
        app.take_requests(),
        vec![Request::SwitchProfile {
            profile: dev_profile()
        }]
    );
    assert_eq!(app.model.profile.name, "local");
    assert_eq!(app.model.switching.as_deref(), Some("dev"));
    snapshot("profile_switching", screen(&app, 100, 24));

    switched_to(&mut app, dev_profile());
    assert_eq!(app.model.profile, dev_profile());
    assert_eq!(app.model.switching, None);
    assert_eq!(
        app.model
            .agents
            .iter()
            .map(|a| a.id.as_str())
            .collect::<Vec<_>>(),
        vec!["billing", "echo"]
    );
    assert!(app.model.health.is_empty() && app.model.counters.is_empty());
    snapshot("profile_aws_active", screen(&app, 100, 24));

    // Every registry screen shows that profile's data now.
    press(&mut app, "1");
    let shown = screen(&app, 100, 24);
    assert!(
        shown.contains("billing") && !shown.contains("Streamer"),
        "{shown}"
    );
    // Send still goes through the local gateway, to the local agents.
    press(&mut app, "5a");
    let Some(Dialog::Picker { items, .. }) = app.dialogs.last() else {
        panic!("no agent picker");
    };
    let ids: Vec<&str> = items.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(ids, vec!["echo", "guarded", "stream", "weather"]);
    app.on_key(code(KeyCode::Esc));
    snapshot("send_on_aws_profile", screen(&app, 100, 24));
}

#[test]
fn a_profile_that_cannot_be_reached_leaves_the_previous_one_active() {
    let mut app = app();
    press(&mut app, "8jj");
    app.on_key(code(KeyCode::Enter));
    assert_eq!(
        app.take_requests(),
        vec![Request::SwitchProfile {
            profile: prod_profile()
        }]
    );
    let message = "cannot switch to profile prod: cannot load the registry: store unavailable: \
        listing agents: AWS region eu-west-1 unreachable: cannot connect";
    app.on_core(CoreEvent::ProfileFailed {
        profile: "prod".into(),
        message: message.into(),
    });
    assert!(!app.quit);
    assert_eq!(app.model.profile.name, "local");
    assert_eq!(app.model.agents.len(), 4, "the local lists stay");
    assert_eq!(app.model.switching, None);
    assert_eq!(
        app.status,
        Status::Error(format!("{message}; still on profile local"))
    );
    snapshot("profile_switch_failed", screen(&app, 100, 24));
    // The console keeps working on local.
    press(&mut app, "1 ");
    assert_eq!(
        app.take_requests(),
        vec![Request::SetEnabled {
            id: "echo".into(),
            enabled: false
        }]
    );
}

#[test]
fn a_production_profile_is_red_and_its_writes_need_its_name() {
    let mut app = app();
    app.theme = Theme::new(true);
    switched_to(&mut app, prod_profile());
    let mut t = Terminal::new(TestBackend::new(100, 24)).unwrap();
    t.draw(|f| app.render(f)).unwrap();
    let buf = t.backend().buffer();
    let header: String = (0..100).map(|x| buf[(x, 0)].symbol()).collect();
    let at = header.find(" prod ").unwrap() as u16 + 1;
    assert_eq!(buf[(at, 0)].fg, ratatui::style::Color::Red, "{header}");
    assert!(header.contains("PRODUCTION"), "{header}");

    press(&mut app, "1d");
    app.on_key(key('y'));
    assert_eq!(app.take_requests(), vec![]);
    let Some(Dialog::Typed { profile, .. }) = app.dialogs.last() else {
        panic!("no typed confirmation: {:?}", app.dialogs);
    };
    assert_eq!(profile, "prod");
    typed(&mut app, "prod");
    app.on_key(code(KeyCode::Enter));
    assert_eq!(
        app.take_requests(),
        vec![Request::DeleteAgent {
            id: "billing".into()
        }]
    );
}

#[test]
fn switching_closes_dialogs_that_could_write() {
    let mut app = app();
    press(&mut app, "1d");
    assert!(matches!(app.dialogs.last(), Some(Dialog::Confirm { .. })));
    switched_to(&mut app, dev_profile());
    assert!(app.dialogs.is_empty());
    assert_eq!(
        app.status,
        Status::Info(
            "now on profile dev (aws us-east-1; Send and Traffic still use the local gateway); \
             the open dialog was closed"
                .into()
        )
    );
    // Switching back to local: Send's lists are the local ones again.
    app.on_core(CoreEvent::ProfileSwitched {
        profile: Profile::local(),
    });
    app.on_core(CoreEvent::Agents(vec![agent("echo", "Echo", 7402, None)]));
    assert_eq!(app.model.local_agents.len(), 1);
    assert_eq!(
        app.status,
        Status::Info("now on profile local (the local stack)".into())
    );
}

#[test]
fn on_an_aws_profile_tokens_come_from_its_token_endpoint() {
    let mut app = app();
    switched_to(&mut app, dev_profile());
    press(&mut app, "3");
    snapshot("clients_aws", screen(&app, 100, 24));

    // Its clients live in the user pool: adding one here is refused, in words.
    press(&mut app, "a");
    assert!(app.dialogs.is_empty());
    assert!(
        matches!(&app.status, Status::Error(e) if e.starts_with("profile dev takes tokens from its user pool")),
        "{:?}",
        app.status
    );

    press(&mut app, "m");
    snapshot("mint_remote", screen(&app, 100, 24));
    typed(&mut app, "pool-client");
    app.on_key(code(KeyCode::Tab));
    typed(&mut app, "s3cr3t");
    app.on_key(code(KeyCode::Tab));
    typed(&mut app, "billing/read");
    let shown = screen(&app, 100, 24);
    assert!(!shown.contains("s3cr3t"), "the secret is masked:\n{shown}");
    app.on_key(code(KeyCode::Enter));
    assert_eq!(
        app.take_requests(),
        vec![Request::MintRemote {
            client: "pool-client".into(),
            secret: switchboard_core::registry::Secret::new("s3cr3t"),
            scopes: vec!["billing/read".into()],
        }]
    );
    // A refusal keeps the form open with the reason.
    app.on_core(CoreEvent::Failed {
        message: "the token endpoint https://dev.auth.us-east-1.amazoncognito.com/oauth2/token \
                  refused client pool-client: invalid_client"
            .into(),
        form: true,
    });
    assert!(matches!(app.dialogs.last(), Some(Dialog::Form { .. })));
    app.on_key(code(KeyCode::Enter));
    app.take_requests();
    app.on_core(CoreEvent::Minted(Minted {
        client: "pool-client".into(),
        scopes: vec!["billing/read".into()],
        token: "eyJhbGciOiJSUzI1NiJ9.eyJjbGllbnRfaWQiOiJwb29sLWNsaWVudCJ9.sig".into(),
        ttl: Duration::from_secs(3600),
    }));
    assert!(app.dialogs.is_empty());
    assert!(screen(&app, 100, 24).contains("eyJhbGciOiJSUzI1NiJ9"));
}

#[test]
fn every_screen_on_an_aws_profile_fits_80x24() {
    let mut app = app();
    switched_to(&mut app, prod_profile());
    for tab in "12345678".chars() {
        press(&mut app, &tab.to_string());
        let shown = screen(&app, 80, 24);
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 24);
        assert!(lines[0].contains("profile  prod  PRODUCTION"), "{shown}");
        assert!(lines[23].contains("? help"), "{shown}");
    }
    press(&mut app, "s");
    app.on_core(CoreEvent::SyncPlanned {
        to: prod_profile(),
        copy_secrets: false,
        plan: Ok(sample_plan()),
    });
    let shown = screen(&app, 80, 24);
    assert!(
        shown.contains("Sync diff: local → prod") && shown.contains("a apply"),
        "{shown}"
    );
}

#[test]
fn starting_on_an_aws_profile_asks_the_core_to_switch() {
    let mut app = app();
    app.switch_profile(prod_profile());
    assert_eq!(
        app.take_requests(),
        vec![Request::SwitchProfile {
            profile: prod_profile()
        }]
    );
    assert_eq!(
        app.status,
        Status::Info(
            "connecting to profile prod (aws eu-west-1); local stays active until it answers"
                .into()
        )
    );
}
