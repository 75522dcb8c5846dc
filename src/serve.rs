//! The HTTP listener: one accept loop for plain HTTP and TLS, over hyper-util's connection
//! builder (HTTP/1.1), with limits against slow and abusive clients:
//!
//! - a header-read timeout (hyper's, which also bounds how long a kept-alive connection waits
//!   for its next request) and the same bound on a TLS handshake;
//! - an idle timeout: a connection on which no byte moves for that long (a client that stopped
//!   reading) is closed; handlers are bounded by the router's request timeout, which is shorter;
//! - a connection cap: over it, the connection idle the longest (no request in flight: a
//!   half-sent request, a kept-alive connection) is closed for the newcomer; when every one has
//!   a request in flight, the newcomer is closed at once. Counted and logged at most once per
//!   interval;
//! - accept errors (out of file descriptors) back off instead of spinning;
//! - a bounded graceful shutdown: on stop, no more accepts, idle connections close at once,
//!   requests in flight get `shutdown_grace` to finish, then every connection is dropped.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};

use crate::config::HttpConfig;
use crate::metrics::HttpMetrics;

/// The listener's limits (from `[http]`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// To send a request's headers, or finish a TLS handshake; and the longest a kept-alive
    /// connection waits for its next request.
    pub header_read_timeout: Duration,
    /// No byte moving on a connection for this long closes it.
    pub idle_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// On stop, how long requests in flight may take to finish.
    pub shutdown_grace: Duration,
}

impl Limits {
    pub fn from_config(http: &HttpConfig) -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(http.header_read_timeout_seconds),
            idle_timeout: Duration::from_secs(http.idle_timeout_seconds),
            max_connections: http.max_connections,
            shutdown_grace: Duration::from_secs(http.shutdown_grace_seconds),
        }
    }
}

/// How often a repeated problem (accept errors, connections shed) is logged at most.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// How long the accept loop waits for an evicted connection to give back its slot.
const EVICTION_WAIT: Duration = Duration::from_secs(1);
/// Backoff after an accept error that is not about one connection (EMFILE, ENFILE, ENOBUFS...).
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(50);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// A warning logged at most once per `LOG_EVERY`, with how many were left out in between.
struct RateLimited {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimited {
    fn new() -> RateLimited {
        RateLimited {
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(suppressed since the last one)` when this one should be logged.
    fn tick(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < LOG_EVERY) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// One connection as the accept loop sees it.
struct ConnState {
    epoch: Instant,
    /// When a byte last moved, in ms since `epoch`.
    last_io_ms: AtomicU64,
    /// Requests in flight: from the handler's call until its response body is dropped.
    busy: AtomicUsize,
    /// Closes the connection (eviction).
    kill: Notify,
}

impl ConnState {
    fn new(epoch: Instant) -> ConnState {
        let state = ConnState {
            epoch,
            last_io_ms: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
            kill: Notify::new(),
        };
        state.touch();
        state
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn touch(&self) {
        self.last_io_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    fn idle(&self) -> bool {
        self.busy.load(Ordering::Acquire) == 0
    }

    /// Returns when no byte has moved for `timeout`.
    async fn quiet_for(&self, timeout: Duration) {
        let limit = timeout.as_millis() as u64;
        loop {
            let quiet = self
                .now_ms()
                .saturating_sub(self.last_io_ms.load(Ordering::Relaxed));
            if quiet >= limit {
                return;
            }
            tokio::time::sleep(Duration::from_millis((limit - quiet).max(10))).await;
        }
    }
}

/// The open connections, for eviction at the cap.
#[derive(Default)]
struct Registry {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<ConnState>>>,
}

impl Registry {
    fn add(self: &Arc<Self>, state: Arc<ConnState>) -> Registered {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, state);
        Registered {
            id,
            registry: self.clone(),
        }
    }

    /// Closes the connection idle the longest (no request in flight); false when every one is busy.
    fn evict_idlest(&self) -> bool {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let idlest = open
            .values()
            .filter(|c| c.idle())
            .min_by_key(|c| c.last_io_ms.load(Ordering::Relaxed));
        match idlest {
            Some(c) => {
                c.kill.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Removes its connection from the registry when the connection's task ends (or is aborted).
struct Registered {
    id: u64,
    registry: Arc<Registry>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

/// A socket (or TLS stream) that records when a byte last moved.
struct Tracked<T> {
    inner: T,
    state: Arc<ConnState>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.state.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.state.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Counts one request in flight until dropped (with its response body).
struct Busy(Arc<ConnState>);

impl Busy {
    fn new(state: Arc<ConnState>) -> Busy {
        state.busy.fetch_add(1, Ordering::AcqRel);
        Busy(state)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
        self.0.touch();
    }
}

/// A response body that keeps its request counted in flight until it is sent (or dropped).
struct CountedBody {
    inner: axum::body::Body,
    _busy: Busy,
}

impl Body for CountedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether an accept error concerns only the connection being accepted (then the next accept
/// may well succeed at once).
fn per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    )
}

/// Files the daemon needs besides its HTTP connections (state store, Graph and alerting
/// connections, the runtime's own).
const OTHER_FILES: usize = 128;

/// Warns when the process's file limit leaves too little room over `max_connections`.
fn warn_if_files_short(max_connections: usize) {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return;
    };
    let soft = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(soft) = soft.filter(|&soft| soft < max_connections + OTHER_FILES) {
        tracing::warn!(
            "http.max_connections is {max_connections} but the process may open only {soft} files; \
             lower it or raise the limit (LimitNOFILE= in the unit) to at least {}",
            max_connections + OTHER_FILES
        );
    }
}

/// Serves `app` on `listener` (over TLS when `tls` is set) until `stop` turns true (or its
/// sender goes), then shuts down within `limits.shutdown_grace`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: axum::Router,
    limits: Limits,
    metrics: HttpMetrics,
    mut stop: watch::Receiver<bool>,
) {
    warn_if_files_short(limits.max_connections);
    let epoch = Instant::now();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let registry = Arc::new(Registry::default());
    let mut tasks = tokio::task::JoinSet::new();
    let mut accept_log = RateLimited::new();
    let mut shed_log = RateLimited::new();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => {
                backoff = ACCEPT_BACKOFF_MIN;
                accepted
            }
            Err(e) if per_connection(&e) => continue,
            Err(e) => {
                metrics.accept_errors.inc();
                if let Some(suppressed) = accept_log.tick() {
                    tracing::warn!(
                        suppressed,
                        "HTTP: accepting a connection failed: {e}; retrying in {} ms",
                        backoff.as_millis()
                    );
                }
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) => {
                let evicted = registry.evict_idlest();
                let slot = if evicted {
                    tokio::time::timeout(EVICTION_WAIT, slots.clone().acquire_owned())
                        .await
                        .ok()
                        .and_then(Result::ok)
                } else {
                    None
                };
                let action = if slot.is_some() { "evicted" } else { "refused" };
                metrics.shed.with_label_values(&[action]).inc();
                if let Some(suppressed) = shed_log.tick() {
                    tracing::warn!(
                        suppressed,
                        max_connections = limits.max_connections,
                        "HTTP: at the connection cap; {}",
                        if slot.is_some() {
                            "closed the connection idle the longest for a new one"
                        } else {
                            "every connection has a request in flight, a new one was closed"
                        }
                    );
                }
                slot
            }
        };
        let Some(slot) = slot else {
            drop(tcp);
            continue;
        };
        let state = Arc::new(ConnState::new(epoch));
        let registered = registry.add(state.clone());
        let (tls, app, stop, metrics) = (tls.clone(), app.clone(), stop.clone(), metrics.clone());
        metrics.connections.inc();
        tasks.spawn(async move {
            let io = Tracked {
                inner: tcp,
                state: state.clone(),
            };
            connection(io, peer, tls, app, limits, state, stop).await;
            metrics.connections.dec();
            drop((registered, slot));
        });
    }
    drop(listener);
    // Every slot back means every connection closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(limits.shutdown_grace, slots.acquire_many(all)).await;
    if drained.is_err() {
        tracing::warn!(
            open = tasks.len(),
            "HTTP: requests still in flight after {} s; closing their connections",
            limits.shutdown_grace.as_secs()
        );
        tasks.abort_all();
    }
    while tasks.join_next().await.is_some() {}
    metrics.connections.set(0);
}

/// One connection: the TLS handshake if any, then HTTP/1.1 until the client goes, a limit
/// closes it, it is evicted, or the server stops.
async fn connection(
    io: Tracked<TcpStream>,
    peer: std::net::SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: axum::Router,
    limits: Limits,
    state: Arc<ConnState>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(acceptor) = tls else {
        return http(TokioIo::new(io), peer, app, limits, state, stop).await;
    };
    let handshake = tokio::time::timeout(limits.header_read_timeout, acceptor.accept(io));
    let tls = tokio::select! {
        done = handshake => match done {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => return tracing::debug!(%peer, "TLS handshake failed: {e}"),
            Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
        },
        _ = state.kill.notified() => return,
        _ = stop.wait_for(|s| *s) => return,
    };
    http(TokioIo::new(tls), peer, app, limits, state, stop).await
}

async fn http<I>(
    io: I,
    peer: std::net::SocketAddr,
    app: axum::Router,
    limits: Limits,
    state: Arc<ConnState>,
    mut stop: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let inner = hyper_util::service::TowerToHyperService::new(app);
    let counted = state.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let busy = Busy::new(counted.clone());
        let response = hyper::service::Service::call(&inner, request);
        async move {
            let response = response.await?;
            Ok::<_, Infallible>(response.map(|inner| CountedBody { inner, _busy: busy }))
        }
    });
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(%peer, "HTTP connection: {e}");
                }
                return;
            }
            _ = state.kill.notified() => return tracing::debug!(%peer, "HTTP connection evicted at the cap"),
            _ = state.quiet_for(limits.idle_timeout) => return tracing::debug!(%peer, "HTTP connection idle, closed"),
            _ = stop.wait_for(|s| *s), if !stopping => {
                if state.idle() {
                    return;
                }
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_warning_is_logged_once_per_interval_with_the_count_left_out() {
        let mut log = RateLimited::new();
        assert_eq!(log.tick(), Some(0));
        assert_eq!(log.tick(), None);
        assert_eq!(log.tick(), None);
        log.last = Instant::now().checked_sub(LOG_EVERY);
        assert_eq!(log.tick(), Some(2));
    }

    #[test]
    fn eviction_picks_the_longest_idle_connection_and_never_a_busy_one() {
        let epoch = Instant::now();
        let registry = Arc::new(Registry::default());
        let (old, busy, fresh) = (
            Arc::new(ConnState::new(epoch)),
            Arc::new(ConnState::new(epoch)),
            Arc::new(ConnState::new(epoch)),
        );
        old.last_io_ms.store(0, Ordering::Relaxed);
        busy.last_io_ms.store(0, Ordering::Relaxed);
        fresh.last_io_ms.store(1_000, Ordering::Relaxed);
        let _in_flight = Busy::new(busy.clone());
        busy.last_io_ms.store(0, Ordering::Relaxed);
        let _r = [
            registry.add(old.clone()),
            registry.add(busy.clone()),
            registry.add(fresh.clone()),
        ];
        assert!(registry.evict_idlest());
        let notified = |c: &ConnState| {
            let n = c.kill.notified();
            futures::pin_mut!(n);
            n.enable()
        };
        assert!(notified(&old), "the longest idle is closed");
        assert!(!notified(&busy) && !notified(&fresh));
        drop(_r);
        assert!(registry
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty());
        let only_busy = Arc::new(Registry::default());
        let _b = only_busy.add(busy.clone());
        assert!(
            !only_busy.evict_idlest(),
            "a busy connection is never evicted"
        );
    }
}
