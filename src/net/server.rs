//! The one HTTP serving loop, shared by every listener in the process (the webhook, the
//! admin listener, the fake Bot API, the fake LLM server): accept with a cap on open
//! connections, HTTP/1.1 with keep-alive and a header timeout, and one way to stop — on
//! shutdown the listener closes, idle keep-alive connections close at once, and requests
//! in flight get a bounded time to finish.

use crate::shutdown::Shutdown;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Put into a response's extensions by a handler that wants its connection closed
/// without any answer: the fake Bot API simulates a dropped connection this way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseWithoutAnswer;

/// What [`serve_connection`] tells hyper when a handler asked for [`CloseWithoutAnswer`];
/// hyper then closes the connection without writing a byte.
#[derive(Debug, thiserror::Error)]
#[error("closed without an answer, as the handler asked")]
struct ClosedWithoutAnswer;

/// The address a request came from, put in its extensions by [`serve`] (absent for
/// connections that are not TCP, as the fuzzer's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub std::net::SocketAddr);

/// What answers the requests of one listener. Most answer with a whole body; a handler
/// that streams (the fake LLM server's server-sent events) names its own body type `B`,
/// whose error, when it yields one, ends the connection without finishing the answer.
pub trait Handler<B = Full<Bytes>>: Send + Sync + 'static {
    fn handle(&self, request: Request<Incoming>) -> impl Future<Output = Response<B>> + Send;
}

/// The error of a response body, as hyper takes it.
type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// How one listener serves.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Names the listener in logs.
    pub(crate) name: &'static str,
    /// Connections served at once; more wait in the kernel's accept queue.
    pub(crate) max_connections: usize,
    /// How long a client may take to send its headers.
    pub(crate) header_timeout: Duration,
    /// After shutdown, how long requests in flight may take to finish.
    pub(crate) drain_timeout: Duration,
    /// Whether each request carries its [`Peer`] (an allocation per request, which the
    /// webhook's hot path does without).
    pub(crate) peer_address: bool,
}

impl Options {
    pub fn new(name: &'static str) -> Options {
        Options {
            name,
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
            peer_address: false,
        }
    }
}

/// Serves `listener` until `shutdown` fires, then drains.
pub async fn serve<H, B>(
    listener: TcpListener,
    handler: Arc<H>,
    options: Options,
    mut shutdown: Shutdown,
) where
    H: Handler<B>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BodyError>,
{
    let slots = Arc::new(Semaphore::new(options.max_connections));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = shutdown.wait() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: transient.
                    tracing::warn!(listener = options.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.wait() => break,
        };
        let (stream, peer) = stream;
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let peer = options.peer_address.then_some(Peer(peer));
            serve_connection(handler, stream, options, Some(shutdown), peer).await;
            drop(slot);
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(options.drain_timeout, drain)
        .await
        .is_err()
    {
        tracing::debug!(
            listener = options.name,
            "closing connections that stayed open"
        );
        connections.shutdown().await;
    }
}

/// Serves one connection (a TCP stream, or any byte stream: the fuzzer feeds raw request
/// bytes through an in-memory pipe) until it closes, or until `shutdown` fires and its
/// request in flight is answered.
pub(crate) async fn serve_connection<H, B, I>(
    handler: Arc<H>,
    io: I,
    options: Options,
    shutdown: Option<Shutdown>,
    peer: Option<Peer>,
) where
    H: Handler<B>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BodyError>,
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        if let Some(peer) = peer {
            request.extensions_mut().insert(peer);
        }
        let handler = handler.clone();
        async move {
            let response = handler.handle(request).await;
            if response.extensions().get::<CloseWithoutAnswer>().is_some() {
                return Err(ClosedWithoutAnswer);
            }
            Ok(response)
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let outcome = match shutdown {
        Some(mut shutdown) => tokio::select! {
            outcome = connection.as_mut() => outcome,
            () = shutdown.wait() => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        },
        None => connection.await,
    };
    if let Err(e) = outcome {
        tracing::debug!(listener = options.name, error = %e, "connection ended");
    }
}
