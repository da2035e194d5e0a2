//! The developer console: a ratatui UI over the same core the gateway uses,
//! with the whole local stack running inside it.
//!
//! The UI ([`app::App`]) never touches a store or a socket: it sends typed
//! [`msg::Request`]s to the [`worker::Core`] and receives typed
//! [`msg::CoreEvent`]s. It redraws when something changed, never on a timer;
//! logs go to `switchboard.log` in the data directory; the terminal is
//! restored on exit, on Ctrl-C, on SIGTERM and on panic.
//!
//! The local stack keeps serving the local profile whichever profile is
//! active; switching to an AWS profile (on the Profile screen, or with
//! `--profile`) points the registry screens at that profile's stores (see
//! [`worker`]).
//!
//! Where things are: [`model`] holds what the core reported, [`screen`] the
//! trait every screen implements and what it is given, [`screens`] one file
//! per screen, [`chrome`] the header, tab bar, status line and footer,
//! [`app`] the dispatch of keys and core events, [`dialog`] and [`form`]
//! the modal dialogs, [`widgets`] what screens and dialogs draw with, and
//! [`action`] with [`keymap`] the vocabulary of keys. Screens depend on the
//! model, the screen trait and the widgets, never on the app.

pub mod action;
pub mod app;
pub mod chrome;
pub mod dialog;
pub mod form;
pub mod forms;
pub mod keymap;
pub mod model;
pub mod msg;
pub mod screen;
pub mod screens;
pub mod theme;
pub mod widgets;
pub mod worker;

#[cfg(test)]
mod tests;

use std::io::{IsTerminal, Stdout, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::Engine;
use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
    EventStream,
};
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use futures::StreamExt;
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use switchboard_core::profile::{Profile, ProfileKind};
use switchboard_core::GatewayConfig;
use switchboard_emulator::stack::{LocalStack, StackOptions};
use tokio::sync::{mpsc, Notify};

use app::App;
use keymap::Keymap;
use model::{Model, StackView, Status};
use theme::Theme;

/// The log file inside the data directory.
pub const LOG_FILE: &str = "switchboard.log";

/// Shortest time between two frames; changes in between are drawn together.
const FRAME: Duration = Duration::from_millis(16);

/// How the console starts.
#[derive(Debug, Clone)]
pub struct Options {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Gateway address of the local stack (port 0: free ports).
    pub listen: SocketAddr,
    /// Gateway settings.
    pub gateway: GatewayConfig,
    /// The active profile.
    pub profile: Profile,
    /// Every profile.
    pub profiles: Vec<Profile>,
    /// Where a user key map may be.
    pub keymap_path: PathBuf,
}

static PANICKED: AtomicBool = AtomicBool::new(false);
static PANIC_NOTIFY: Notify = Notify::const_new();

/// Runs the console until the user quits.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "the console needs a terminal; run `switchboard serve` for the headless stack"
        );
    }
    std::fs::create_dir_all(&opts.data_dir)
        .with_context(|| format!("creating {}", opts.data_dir.display()))?;
    let log_file = opts.data_dir.join(LOG_FILE);
    crate::logging::init_file(&log_file)?;
    tracing::info!(data_dir = %opts.data_dir.display(), "console starting");

    let stack = LocalStack::start(StackOptions {
        data_dir: opts.data_dir.clone(),
        listen: opts.listen,
        config: opts.gateway.clone(),
    })
    .await
    .map_err(|e| {
        if format!("{e:#}").contains("cannot listen") {
            e.context(format!(
                "is another switchboard using {}? `switchboard --listen 127.0.0.1:0` picks free ports",
                opts.listen
            ))
        } else {
            e
        }
    })?;

    // The console starts on the local profile (the stack inside it) and, when
    // asked for another, switches to it at once: if that profile cannot be
    // reached, the console says so and stays on local.
    let local = opts
        .profiles
        .iter()
        .find(|p| matches!(p.kind, ProfileKind::Local))
        .cloned()
        .unwrap_or_else(Profile::local);
    let (keymap, keymap_note) = Keymap::load(&opts.keymap_path);
    let model = Model::new(
        StackView {
            gateway_url: stack.info.gateway_url.clone(),
            issuer_url: stack.info.issuer_url.clone(),
            token_url: stack.info.token_url.clone(),
            data_dir: opts.data_dir.clone(),
            log_file: log_file.clone(),
            default_limit: opts.gateway.default_rate_limit,
        },
        local.clone(),
        opts.profiles.clone(),
    );
    let mut app = App::new(model, keymap, Theme::from_env());
    app.status = match keymap_note {
        Some(note) => Status::Error(note),
        None => Status::Info(format!(
            "local stack up at {}; ? shows every key",
            stack.info.gateway_url
        )),
    };
    if opts.profile.name != local.name {
        app.switch_profile(opts.profile.clone());
    }

    let (req_tx, req_rx) = mpsc::unbounded_channel();
    let (ev_tx, mut ev_rx) = mpsc::channel(4096);
    let core = worker::Core::new(
        worker::Local {
            gateway: stack.gateway.clone(),
            issuer: stack.issuer.clone(),
            stores: stack.stores.clone(),
            issuer_url: stack.info.issuer_url.clone(),
            profile: local,
            data_dir: opts.data_dir.clone(),
            config: opts.gateway.clone(),
        },
        ev_tx,
    )?;
    let tasks = core.spawn(req_rx);

    install_panic_hook();
    let result = {
        let _guard = TerminalGuard;
        let mut terminal = enter_terminal()?;
        event_loop(&mut terminal, &mut app, &req_tx, &mut ev_rx).await
    };
    for t in tasks {
        t.abort();
    }
    tracing::info!("console closing");
    stack.shutdown().await;
    result
}

/// Restores the terminal when dropped, whatever happened.
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

fn enter_terminal() -> anyhow::Result<Terminal<CrosstermBackend<Stdout>>> {
    enable_raw_mode().context("cannot put the terminal in raw mode")?;
    let mut out = std::io::stdout();
    execute!(
        out,
        EnterAlternateScreen,
        EnableMouseCapture,
        EnableBracketedPaste
    )?;
    let mut terminal = Terminal::new(CrosstermBackend::new(out))?;
    terminal.hide_cursor()?;
    terminal.clear()?;
    Ok(terminal)
}

fn restore_terminal() {
    restore_terminal_on(&mut std::io::stdout());
}

/// Leaves raw mode, then writes what undoes [`enter_terminal`] to `out`:
/// bracketed paste and mouse capture off, the main screen back, the cursor shown.
pub(crate) fn restore_terminal_on(out: &mut impl Write) {
    let _ = disable_raw_mode();
    let _ = execute!(
        out,
        DisableBracketedPaste,
        DisableMouseCapture,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

/// A panic hook as installed by [`install_panic_hook`].
pub(crate) type PanicHook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send + 'static>;

/// The console's panic hook: restores the terminal on `terminal()` first, so
/// that what `previous` prints lands on the main screen in cooked mode and
/// can be read; then logs the panic, makes the loop stop, and calls `previous`.
pub(crate) fn panic_hook<W: Write>(
    terminal: impl Fn() -> W + Send + Sync + 'static,
    previous: PanicHook,
) -> PanicHook {
    Box::new(move |info| {
        restore_terminal_on(&mut terminal());
        tracing::error!(panic = %info, "panic");
        PANICKED.store(true, Ordering::SeqCst);
        PANIC_NOTIFY.notify_one();
        previous(info);
    })
}

/// On a panic anywhere: give the terminal back first, so the message is
/// readable, log it, and make the loop stop.
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(panic_hook(std::io::stdout, previous));
}

/// `ESC ] 52 ; c ; base64 BEL`: the terminal puts the text on the clipboard.
fn osc52(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(text);
    write!(out, "\x1b]52;c;{b64}\x07")?;
    out.flush()
}

async fn event_loop(
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    app: &mut App,
    requests: &mpsc::UnboundedSender<msg::Envelope>,
    events: &mut mpsc::Receiver<msg::CoreEvent>,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut input = EventStream::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut last_draw: Option<Instant> = None;
    loop {
        // Each request goes with the profile on screen when it was made.
        for request in app.take_requests() {
            let envelope = msg::Envelope {
                profile: app.model.profile.name.clone(),
                request,
            };
            if requests.send(envelope).is_err() {
                anyhow::bail!("the console's worker stopped; see {LOG_FILE} in the data directory");
            }
        }
        for text in app.take_clipboard() {
            osc52(terminal.backend_mut(), &text)?;
        }
        if app.quit {
            return Ok(());
        }
        if PANICKED.load(Ordering::SeqCst) {
            anyhow::bail!(
                "the console hit an internal error; see {LOG_FILE} in the data directory"
            );
        }
        let since = last_draw.map(|t| t.elapsed()).unwrap_or(FRAME);
        if app.dirty && since >= FRAME {
            terminal.draw(|f| app.render(f))?;
            app.dirty = false;
            last_draw = Some(Instant::now());
        }
        // Only while a change waits for the next frame is there a timer.
        let wait = app.dirty.then(|| FRAME.saturating_sub(since));
        tokio::select! {
            ev = input.next() => match ev {
                Some(Ok(ev)) => app.on_terminal(ev),
                Some(Err(e)) => return Err(e).context("reading the terminal"),
                None => return Ok(()),
            },
            Some(ev) = events.recv() => {
                app.on_core(ev);
                // Take in everything already waiting before drawing.
                for _ in 0..4096 {
                    match events.try_recv() {
                        Ok(ev) => app.on_core(ev),
                        Err(_) => break,
                    }
                }
            }
            _ = tokio::time::sleep(wait.unwrap_or_default()), if wait.is_some() => {}
            _ = term.recv() => app.quit = true,
            _ = hangup.recv() => app.quit = true,
            _ = interrupt.recv() => app.quit = true,
            _ = PANIC_NOTIFY.notified() => {}
        }
    }
}
