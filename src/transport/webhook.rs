//! The webhook transport: a hyper server that takes Telegram's POSTs.
//!
//! Only the webhook path is served. A request must carry the secret in
//! `X-Telegram-Bot-Api-Secret-Token` (compared in constant time) or gets 401 and is not
//! stored. A body over the limit gets 413. An update is answered 200 only once it is
//! committed to the inbox; a body that does not parse is answered 200 too (Telegram would
//! redeliver it forever), counted and kept. While shutting down every request gets 503,
//! so Telegram keeps the update and delivers it again later. Slow clients are cut off by
//! header and body timeouts, and the number of connections is capped.

use crate::engine::inbox::{Accepted, Inbox};
use crate::net;
use crate::secret::Secret;
use crate::shutdown::Shutdown;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tracing::Instrument;

/// How long a client may take to send its headers, and its body.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the kernel's accept queue.
const MAX_CONNECTIONS: usize = 1024;

pub struct WebhookServer {
    pub path: String,
    pub(crate) secret: Secret,
    pub max_body_bytes: usize,
    pub inbox: Inbox,
    closing: AtomicBool,
}

impl WebhookServer {
    pub fn new(
        path: String,
        secret: Secret,
        max_body_bytes: usize,
        inbox: Inbox,
    ) -> Arc<WebhookServer> {
        Arc::new(WebhookServer {
            path,
            secret,
            max_body_bytes,
            inbox,
            closing: AtomicBool::new(false),
        })
    }

    /// Serves `listener` until `shutdown` resolves; from then on answers 503 and stops
    /// accepting. Requests in progress finish.
    pub async fn run(self: Arc<Self>, listener: TcpListener, shutdown: Shutdown) {
        let mut closing = shutdown.clone();
        let server = self.clone();
        let serving = net::server::serve(listener, self, options(), shutdown);
        let mark_closing = async move {
            closing.wait().await;
            server.closing.store(true, Ordering::SeqCst);
        };
        tokio::join!(serving, mark_closing);
    }

    /// Serves one connection (a TCP stream, or any byte stream: the fuzzer feeds raw
    /// request bytes through an in-memory pipe) until it closes.
    pub async fn serve_connection<I>(self: Arc<Self>, io: I)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        net::server::serve_connection(self, io, options(), None, None).await;
    }
}

fn options() -> net::server::Options {
    net::server::Options {
        name: "webhook",
        max_connections: MAX_CONNECTIONS,
        header_timeout: HEADER_TIMEOUT,
        drain_timeout: BODY_TIMEOUT,
        peer_address: false,
    }
}

impl net::server::Handler for WebhookServer {
    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        if request.uri().path() != self.path {
            return reply(StatusCode::NOT_FOUND, "not found");
        }
        if request.method() != Method::POST {
            return reply(StatusCode::METHOD_NOT_ALLOWED, "POST only");
        }
        if self.closing.load(Ordering::SeqCst) {
            return reply(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
        }
        let authorised = request
            .headers()
            .get("x-telegram-bot-api-secret-token")
            .is_some_and(|given| self.secret.matches(given.as_bytes()));
        if !authorised {
            tracing::warn!("webhook request without the right secret token refused");
            return reply(StatusCode::UNAUTHORIZED, "unauthorized");
        }
        let declared = request
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        if declared.is_some_and(|n| n > self.max_body_bytes) {
            return reply(StatusCode::PAYLOAD_TOO_LARGE, "body too large");
        }
        let body = Limited::new(request.into_body(), self.max_body_bytes);
        let body = match tokio::time::timeout(BODY_TIMEOUT, body.collect()).await {
            Err(_) => return reply(StatusCode::REQUEST_TIMEOUT, "body too slow"),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                return reply(StatusCode::PAYLOAD_TOO_LARGE, "body too large");
            }
            Ok(Err(_)) => return reply(StatusCode::BAD_REQUEST, "unreadable body"),
            Ok(Ok(collected)) => collected.to_bytes(),
        };
        let span = tracing::info_span!(
            "update",
            transport = "webhook",
            update_id = tracing::field::Empty
        );
        match self.inbox.accept(body, "webhook").instrument(span).await {
            Ok(Accepted::New | Accepted::Duplicate | Accepted::Malformed) => {
                reply(StatusCode::OK, "")
            }
            Err(e) => {
                // Not acknowledged: Telegram keeps the update and retries.
                tracing::error!(error = %e, "could not store an update; answering 503");
                reply(StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
            }
        }
    }
}

fn reply(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
}

/// The path part of the webhook URL, which is all the listener serves.
pub fn path_of(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    match after_scheme.find('/') {
        Some(i) => after_scheme[i..]
            .split(['?', '#'])
            .next()
            .unwrap_or("/")
            .to_owned(),
        None => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::path_of;

    #[test]
    fn the_path_of_a_webhook_url() {
        assert_eq!(
            path_of("https://bot.example.com/telegram/hook?x=1"),
            "/telegram/hook"
        );
        assert_eq!(path_of("https://bot.example.com"), "/");
        assert_eq!(path_of("http://127.0.0.1:8443/wh"), "/wh");
    }
}
