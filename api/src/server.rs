//! The HTTP/1 server loop: the router behind connection hygiene, so that a
//! slow or idle client cannot hold what other clients need.
//!
//! `axum::serve` has no header read timeout, no body read timeout and no
//! connection cap; a few hundred sockets that never finish their headers
//! (slowloris) used up the descriptor limit and `/healthz` stopped
//! answering. Here every connection is served by hyper's HTTP/1 connection
//! directly, with:
//!
//! - a header read timeout (`Limits::header_timeout`): a request head must be
//!   complete this long after the connection opened or after its previous
//!   response. hyper starts the same timer when a keep-alive connection goes
//!   idle, so it is the idle keep-alive timeout too;
//! - a body read timeout (`Limits::body_timeout`): the longest silence while a
//!   handler waits for the next piece of a request body; then the request
//!   ends in 408 and the connection is closed;
//! - a cap on open connections (`Limits::max_connections`). At the cap the
//!   connection that has been quiet longest *and* is not being served (no
//!   request in a handler, or its handler is only waiting for the client's
//!   body) is closed to make room, so a new, well-behaved client is answered
//!   at once rather than queued behind idle ones. If every connection is
//!   being served, new ones wait in the accept backlog;
//! - a request body limit on every route (`Limits::max_body_bytes`, axum's
//!   `DefaultBodyLimit`): buffered bodies beyond it are refused with 413, in
//!   the dialect's form (`dialects::refuse_plain`). Streamed bodies (image
//!   uploads) are not buffered and not limited.
//!
//! Graceful shutdown: once `shutdown` resolves the listener is closed,
//! connections with no request in progress are closed, requests in progress
//! finish (their connections then close), for at most `drain_timeout`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::Router;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tower::ServiceExt;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// At shutdown, how long a request waiting for its body may have heard
/// nothing from the client before its connection is closed rather than
/// drained.
const STALLED_MS: u64 = 1000;

/// What one client may hold; `serve --max-connections` etc.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_body_bytes: usize,
    pub drain_timeout: Duration,
}

impl Limits {
    /// A connection cap that fits an open-file limit of `nofile`: half of
    /// it, leaving the rest to the log, image files and qemu-img pipes
    /// (512 for the common 1,024), at most 8,192.
    pub fn connections_for(nofile: u64) -> usize {
        (nofile / 2).clamp(16, 8192) as usize
    }
}

/// One connection as the cap sees it.
struct ConnState {
    /// Milliseconds since `Registry::epoch` of the last byte received.
    last_read: AtomicU64,
    /// Requests whose handler runs or whose response is still being sent.
    in_flight: AtomicUsize,
    /// Of those, the ones whose handler waits for the client's body.
    waiting_body: AtomicUsize,
    evict: Notify,
}

impl ConnState {
    /// Nothing of the server's own work would be lost by closing it.
    fn evictable(&self) -> bool {
        let busy = self.in_flight.load(Ordering::Acquire);
        busy == 0 || self.waiting_body.load(Ordering::Acquire) >= busy
    }

    /// Its requests only wait for a client that has sent nothing for a
    /// while: at shutdown, nothing would be lost by closing it.
    fn stalled(&self, now_ms: u64) -> bool {
        let busy = self.in_flight.load(Ordering::Acquire);
        busy > 0
            && self.waiting_body.load(Ordering::Acquire) >= busy
            && now_ms.saturating_sub(self.last_read.load(Ordering::Relaxed)) >= STALLED_MS
    }
}

struct Registry {
    epoch: Instant,
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<ConnState>>>,
    /// A connection ended (room may have been made).
    freed: Notify,
}

impl Registry {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn conns(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ConnState>>> {
        // A panic while holding this lock leaves a map that is still whole.
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(&self) -> (u64, Arc<ConnState>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState {
            last_read: AtomicU64::new(self.now_ms()),
            in_flight: AtomicUsize::new(0),
            waiting_body: AtomicUsize::new(0),
            evict: Notify::new(),
        });
        self.conns().insert(id, state.clone());
        (id, state)
    }

    fn remove(&self, id: u64) {
        if self.conns().remove(&id).is_some() {
            self.freed.notify_one();
        }
    }

    /// Closes the longest-quiet evictable connection; false if there is none.
    /// It leaves the map at once, so its slot counts as free while its task
    /// winds down.
    fn evict_one(&self) -> bool {
        let mut conns = self.conns();
        let victim = conns
            .iter()
            .filter(|(_, c)| c.evictable())
            .min_by_key(|(_, c)| c.last_read.load(Ordering::Relaxed))
            .map(|(id, _)| *id);
        match victim.and_then(|id| conns.remove(&id)) {
            Some(c) => {
                c.evict.notify_one();
                true
            }
            None => false,
        }
    }

    /// Returns once a new connection fits under `max`.
    async fn room(&self, max: usize) {
        let mut warned = false;
        loop {
            if self.conns().len() < max {
                return;
            }
            if self.evict_one() {
                tracing::debug!(
                    max,
                    "connection cap reached: closed the longest-idle connection"
                );
                continue;
            }
            if !warned {
                tracing::warn!(
                    max,
                    "connection cap reached and every connection is being served; new connections wait"
                );
                warned = true;
            }
            // Busy connections may turn evictable without ending (a handler
            // starts waiting for a body): look again now and then.
            let _ = tokio::time::timeout(Duration::from_millis(50), self.freed.notified()).await;
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves and the
/// connections have drained (or `limits.drain_timeout` passed).
pub async fn serve<F>(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send,
{
    let router = router.layer(DefaultBodyLimit::max(limits.max_body_bytes));
    let registry = Arc::new(Registry {
        epoch: Instant::now(),
        next_id: AtomicU64::new(0),
        conns: Mutex::new(HashMap::new()),
        freed: Notify::new(),
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while tasks.try_join_next().is_some() {}
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            _ = registry.room(limits.max_connections) => {}
        }
        let stream = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors (EMFILE/ENFILE) or a connection
                    // reset while queued: neither ends the server. Pause so
                    // a descriptor shortage does not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (id, state) = registry.insert();
        let conn = Connection {
            http: http.clone(),
            router: router.clone(),
            registry: registry.clone(),
            id,
            state,
            body_timeout: limits.body_timeout,
            stop: stop_rx.clone(),
        };
        tasks.spawn(conn.run(stream));
    }
    // Stop accepting: later connections are refused by the kernel.
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(limits.drain_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = tasks.len(),
            "requests still running after the drain timeout; closing their connections"
        );
        tasks.shutdown().await;
    }
    Ok(())
}

struct Connection {
    http: hyper::server::conn::http1::Builder,
    router: Router,
    registry: Arc<Registry>,
    id: u64,
    state: Arc<ConnState>,
    body_timeout: Duration,
    stop: watch::Receiver<bool>,
}

impl Connection {
    async fn run(mut self, stream: TcpStream) {
        // The client's address, for per-address limits (issue 13).
        let peer = stream.peer_addr().ok();
        let io = TokioIo::new(Tracked {
            inner: stream,
            state: self.state.clone(),
            registry: self.registry.clone(),
        });
        let (router, state, body_timeout) =
            (self.router.clone(), self.state.clone(), self.body_timeout);
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            if let Some(peer) = peer {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
            }
            let (router, state) = (router.clone(), state.clone());
            async move { Ok::<_, Infallible>(handle(router, state, body_timeout, req).await) }
        });
        let conn = self.http.serve_connection(io, service);
        tokio::pin!(conn);
        let evicted = self.state.evict.notified();
        tokio::pin!(evicted);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended");
                }
            }
            _ = &mut evicted => {}
            _ = async { let _ = self.stop.wait_for(|s| *s).await; } => {
                // Let a running request finish; no further one. A
                // connection with nothing running, or whose request only
                // waits for a silent client's body, is closed now.
                conn.as_mut().graceful_shutdown();
                while self.state.in_flight.load(Ordering::Acquire) > 0
                    && !self.state.stalled(self.registry.now_ms())
                {
                    tokio::select! {
                        _ = conn.as_mut() => break,
                        _ = &mut evicted => break,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            }
        }
        self.registry.remove(self.id);
    }
}

/// Counts a request in flight from its handler's start to the end of its
/// response body.
struct Flight(Arc<ConnState>);

impl Flight {
    fn new(state: Arc<ConnState>) -> Flight {
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        Flight(state)
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn handle(
    router: Router,
    state: Arc<ConnState>,
    body_timeout: Duration,
    req: Request<Incoming>,
) -> Response<Body> {
    let flight = Flight::new(state.clone());
    let timed_out = Arc::new(AtomicBool::new(false));
    let req = req.map(|inner| TimedBody {
        inner,
        timeout: body_timeout,
        sleep: None,
        waiting: false,
        state,
        timed_out: timed_out.clone(),
    });
    let resp = match router.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let resp = if timed_out.load(Ordering::Acquire) {
        // The handler saw a body error and answered for it (400 or its own
        // words); the cause was the client's silence.
        let mut r = Response::new(Body::from("request body not received in time\n"));
        *r.status_mut() = StatusCode::REQUEST_TIMEOUT;
        r
    } else {
        resp
    };
    let (mut parts, body) = resp.into_parts();
    if timed_out.load(Ordering::Acquire) {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Response::from_parts(
        parts,
        Body::new(Guarded {
            inner: body,
            _flight: flight,
        }),
    )
}

/// A response body that keeps its request counted until it is sent.
struct Guarded {
    inner: Body,
    _flight: Flight,
}

impl http_body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that fails after `timeout` without a new frame, and tells
/// the cap while its reader waits on the client.
struct TimedBody {
    inner: Incoming,
    timeout: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    waiting: bool,
    state: Arc<ConnState>,
    timed_out: Arc<AtomicBool>,
}

impl TimedBody {
    fn set_waiting(&mut self, waiting: bool) {
        if self.waiting != waiting {
            self.waiting = waiting;
            if waiting {
                self.state.waiting_body.fetch_add(1, Ordering::AcqRel);
            } else {
                self.state.waiting_body.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

impl Drop for TimedBody {
    fn drop(&mut self) {
        self.set_waiting(false);
    }
}

#[derive(Debug, thiserror::Error)]
#[error("request body not received within {0:?}")]
struct BodyTimeout(Duration);

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.sleep = None;
                this.set_waiting(false);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                this.set_waiting(true);
                let timeout = this.timeout;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if sleep.as_mut().poll(cx).is_ready() {
                    this.sleep = None;
                    this.set_waiting(false);
                    this.timed_out.store(true, Ordering::Release);
                    return Poll::Ready(Some(Err(Box::new(BodyTimeout(timeout)))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, noting when the client last sent anything.
struct Tracked {
    inner: TcpStream,
    state: Arc<ConnState>,
    registry: Arc<Registry>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let now = self.registry.now_ms();
            self.state.last_read.store(now, Ordering::Relaxed);
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
