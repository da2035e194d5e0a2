//! Log lines to standard error, written in batches by a thread of their own.
//!
//! A request logs one audit line, so the request path must neither wait for
//! a write to stderr nor pay for waking a writer thread per line (at a
//! moderate rate that wake-up costs more CPU than the rest of the request).
//! Lines are appended to a shared buffer; the writer thread wakes every
//! [`FLUSH_EVERY`], or at once when [`EAGER_BYTES`] are waiting, and writes
//! them all with one call. Nothing is dropped: past [`MAX_PENDING`] bytes, a
//! logger waits until the writer has caught up. Dropping the [`Guard`]
//! writes whatever is left.

use std::io::Write;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// Waiting bytes that wake the writer before its time.
pub const EAGER_BYTES: usize = 64 * 1024;
/// Waiting bytes past which loggers wait for the writer.
pub const MAX_PENDING: usize = 8 * 1024 * 1024;

struct State {
    pending: Vec<u8>,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled for the writer: eager bytes waiting, or closing.
    wake: Condvar,
    /// Signalled for loggers: the buffer was taken.
    drained: Condvar,
}

/// The `MakeWriter` for `tracing_subscriber::fmt`.
#[derive(Clone)]
pub struct BatchedWriter {
    shared: Arc<Shared>,
}

/// Keeps the writer thread; dropping it writes what is left and stops it.
pub struct Guard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the writer thread over `out`.
pub fn batched<W: Write + Send + 'static>(out: W) -> std::io::Result<(BatchedWriter, Guard)> {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            pending: Vec::with_capacity(EAGER_BYTES),
            closed: false,
        }),
        wake: Condvar::new(),
        drained: Condvar::new(),
    });
    let for_thread = shared.clone();
    let thread = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || write_loop(&for_thread, out))?;
    Ok((
        BatchedWriter {
            shared: shared.clone(),
        },
        Guard {
            shared,
            thread: Some(thread),
        },
    ))
}

fn write_loop<W: Write>(shared: &Shared, mut out: W) {
    let mut batch = Vec::with_capacity(EAGER_BYTES);
    loop {
        let closed = {
            let mut state = shared.state.lock();
            if state.pending.len() < EAGER_BYTES && !state.closed {
                shared.wake.wait_for(&mut state, FLUSH_EVERY);
            }
            std::mem::swap(&mut batch, &mut state.pending);
            shared.drained.notify_all();
            state.closed
        };
        if !batch.is_empty() {
            // Standard error gone is no reason to stop the process: the
            // lines have nowhere else to go.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            batch.clear();
            if batch.capacity() > 4 * EAGER_BYTES {
                batch.shrink_to(EAGER_BYTES);
            }
        }
        if closed && shared.state.lock().pending.is_empty() {
            return;
        }
    }
}

impl BatchedWriter {
    fn append(&self, bytes: &[u8]) {
        let mut state = self.shared.state.lock();
        while state.pending.len() >= MAX_PENDING && !state.closed {
            self.shared.drained.wait(&mut state);
        }
        state.pending.extend_from_slice(bytes);
        if state.pending.len() >= EAGER_BYTES {
            self.shared.wake.notify_one();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.state.lock().closed = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One log event: `tracing_subscriber::fmt` formats the whole line first
/// and writes it in one call.
pub struct LineWriter<'a> {
    writer: &'a BatchedWriter,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter { writer: self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` that records what it was given, and how many writes.
    #[derive(Clone, Default)]
    struct Sink(Arc<std::sync::Mutex<(Vec<u8>, usize)>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
            s.0.extend_from_slice(buf);
            s.1 += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_arrives_in_order_and_in_few_writes() {
        let sink = Sink::default();
        let (writer, guard) = batched(sink.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        writer
                            .make_writer()
                            .write_all(format!("t{t} line {i}\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let (bytes, writes) = sink.0.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        for t in 0..4 {
            let mine: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with(&format!("t{t} ")))
                .collect();
            let expected: Vec<String> = (0..2_000).map(|i| format!("t{t} line {i}")).collect();
            assert_eq!(mine, expected, "thread {t}'s lines");
        }
        assert!(writes < 800, "{writes} writes for 8,000 lines");
    }

    #[test]
    fn a_line_is_written_within_the_flush_interval_without_more_traffic() {
        let sink = Sink::default();
        let (writer, _guard) = batched(sink.clone()).unwrap();
        writer.make_writer().write_all(b"alone\n").unwrap();
        let deadline = std::time::Instant::now() + FLUSH_EVERY * 50;
        while sink.0.lock().unwrap().0.is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "a lone line was still waiting after {:?}",
                FLUSH_EVERY * 50
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(sink.0.lock().unwrap().0, b"alone\n");
    }

    #[test]
    fn a_logger_waits_for_a_stalled_writer_instead_of_dropping_lines() {
        /// Blocks every write until released.
        struct Gate(Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>, Sink);
        impl Write for Gate {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                let (open, cv) = &*self.0;
                let mut o = open.lock().unwrap();
                while !*o {
                    o = cv.wait(o).unwrap();
                }
                self.1.write(buf)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let gate = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let sink = Sink::default();
        let (writer, guard) = batched(Gate(gate.clone(), sink.clone())).unwrap();
        let line = vec![b'x'; 1023];
        let total = MAX_PENDING / 1024 * 3;
        let logger = {
            let writer = writer.clone();
            std::thread::spawn(move || {
                for _ in 0..total {
                    let mut l = line.clone();
                    l.push(b'\n');
                    writer.make_writer().write_all(&l).unwrap();
                }
            })
        };
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            !logger.is_finished(),
            "the logger ran ahead of a stalled writer by more than the cap"
        );
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        logger.join().unwrap();
        drop(guard);
        assert_eq!(sink.0.lock().unwrap().0.len(), total * 1024);
    }
}
