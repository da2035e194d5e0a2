//! The listener: accepts connections and serves them on worker threads,
//! each with a single-threaded runtime and a backend pool of its own, with a
//! header timeout, a connection limit and a graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;

use crate::gateway::{backend_client, set_worker_client, Gateway};
use crate::server::router;

/// How long open requests may run on after shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl Gateway {
    /// Serves until `shutdown` resolves, then lets open requests finish for
    /// up to [`SHUTDOWN_GRACE`].
    ///
    /// HTTP/1.1 and HTTP/2 (prior knowledge) on one port. A client has
    /// [`GatewayConfig::client_header_timeout`] to send each request's
    /// headers (idle keep-alive connections close after it too), and at most
    /// [`GatewayConfig::max_connections`] connections are served at once.
    ///
    /// Connections are accepted here and served by
    /// [`GatewayConfig::workers`] threads, each running a single-threaded
    /// runtime with a pool of backend connections of its own: a request is
    /// handled from its first byte to its last on one thread, without waking
    /// another one on the way. New connections go to the worker serving the
    /// fewest.
    pub async fn serve(
        self: &Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let workers = Workers::start(self, self.config.worker_count())?;
        let header_timeout = self.config.client_header_timeout();
        let slots = Arc::new(tokio::sync::Semaphore::new(
            self.config.max_connections.max(1),
        ));
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                () = &mut shutdown => break,
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let (stream, peer) = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, never spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let stream = match stream.into_std() {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "could not hand a connection to a worker");
                    continue;
                }
            };
            workers.dispatch(Accepted {
                stream,
                peer,
                permit,
                watcher: graceful.watcher(),
                header_timeout,
            });
        }
        drop(listener);
        if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::info!("connections still open after the shutdown grace period; closing them");
        }
        // Closes whatever is still open.
        drop(workers);
        Ok(())
    }
}

/// A connection accepted and on its way to a worker.
struct Accepted {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    permit: tokio::sync::OwnedSemaphorePermit,
    watcher: hyper_util::server::graceful::Watcher,
    header_timeout: Duration,
}

/// The threads that serve connections. Dropping this closes every connection
/// still open and lets the threads end.
struct Workers {
    queues: Vec<(
        tokio::sync::mpsc::UnboundedSender<Accepted>,
        Arc<std::sync::atomic::AtomicUsize>,
    )>,
}

impl Workers {
    fn start(gw: &Arc<Gateway>, count: usize) -> std::io::Result<Workers> {
        let mut queues = Vec::with_capacity(count);
        for i in 0..count {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Accepted>();
            let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let client = backend_client(&gw.config).map_err(std::io::Error::other)?;
            let gw = gw.clone();
            let counter = open.clone();
            std::thread::Builder::new()
                .name(format!("gateway-{i}"))
                .spawn(move || {
                    set_worker_client(client);
                    runtime.block_on(worker_loop(gw, rx, counter));
                    // The runtime drops here, and with it every connection
                    // still open.
                })?;
            queues.push((tx, open));
        }
        Ok(Workers { queues })
    }

    /// Hands a connection to the worker serving the fewest.
    fn dispatch(&self, conn: Accepted) {
        use std::sync::atomic::Ordering;
        let Some((tx, open)) = self
            .queues
            .iter()
            .min_by_key(|(_, open)| open.load(Ordering::Relaxed))
        else {
            return;
        };
        open.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = tx.send(conn) {
            open.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!(peer = %e.0.peer, "a gateway worker has stopped; connection dropped");
        }
    }
}

async fn worker_loop(
    gw: Arc<Gateway>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Accepted>,
    open: Arc<std::sync::atomic::AtomicUsize>,
) {
    use hyper_util::rt::{TokioExecutor, TokioTimer};
    use hyper_util::server::conn::auto;

    let router = router(&gw);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(gw.config.client_header_timeout());
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)));
    let builder = Arc::new(builder);
    drop(gw);
    while let Some(conn) = rx.recv().await {
        let router = router.clone();
        let builder = builder.clone();
        let open = open.clone();
        tokio::spawn(async move {
            serve_connection(conn, router, builder).await;
            open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        });
    }
}

async fn serve_connection(
    conn: Accepted,
    router: Router,
    builder: Arc<hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>>,
) {
    use hyper_util::rt::TokioIo;
    use tower::ServiceExt as _;

    let Accepted {
        stream,
        peer,
        permit,
        watcher,
        header_timeout,
    } = conn;
    let stream = match tokio::net::TcpStream::from_std(stream) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "could not take over a connection");
            return;
        }
    };
    // Telling HTTP/1 from HTTP/2 waits for the first bytes, with no timeout
    // of its own: a client that never sends one would hold its slot for ever.
    let mut first = [0u8; 1];
    match tokio::time::timeout(header_timeout, stream.peek(&mut first)).await {
        Ok(Ok(n)) if n > 0 => {}
        _ => {
            tracing::debug!(%peer, "closed a connection that sent nothing");
            return;
        }
    }
    let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(req)
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
    drop(permit);
}
