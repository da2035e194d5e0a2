//! The terminal is given back before a panic message is printed.

use super::*;

/// Bytes written through a shared buffer.
#[derive(Clone, Default)]
struct Shared(Arc<parking_lot::Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn the_panic_hook_gives_the_terminal_back_before_the_message() {
    // The hook is process-wide: take it only for this panic, then put the
    // previous one back.
    static HOOK: parking_lot::Mutex<()> = parking_lot::Mutex::new(());
    let _one_at_a_time = HOOK.lock();

    let term = Shared::default();
    let for_hook = term.clone();
    let for_previous = term.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(crate::console::panic_hook(
        move || for_hook.clone(),
        Box::new(move |info| {
            let mut out = for_previous.clone();
            let _ = std::io::Write::write_all(&mut out, format!("[message: {info}]").as_bytes());
        }),
    ));
    let result = std::panic::catch_unwind(|| panic!("the console broke"));
    let _ = std::panic::take_hook();
    std::panic::set_hook(previous);
    assert!(result.is_err());

    // What restoring writes: paste and mouse modes off, the main screen back,
    // the cursor shown — then, and only then, the message.
    let mut expected = Vec::new();
    crossterm::execute!(
        expected,
        crossterm::event::DisableBracketedPaste,
        crossterm::event::DisableMouseCapture,
        crossterm::terminal::LeaveAlternateScreen,
        crossterm::cursor::Show
    )
    .unwrap();
    let written = term.0.lock().clone();
    let text = String::from_utf8_lossy(&written);
    assert!(
        written.starts_with(&expected),
        "the terminal was not restored first: {text:?}"
    );
    let rest = String::from_utf8_lossy(&written[expected.len()..]).into_owned();
    assert!(
        rest.starts_with("[message: ") && rest.contains("the console broke"),
        "{rest:?}"
    );
    assert!(crate::console::PANICKED.load(std::sync::atomic::Ordering::SeqCst));
    crate::console::PANICKED.store(false, std::sync::atomic::Ordering::SeqCst);
}
