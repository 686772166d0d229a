//! The hyper layer of the admin listener: reads a request off the socket, hands it to
//! [`Admin::handle`] and writes the reply. Nothing else happens here.

use super::AdminState;
use super::routes::{Admin, Request, Verb};
use super::wire::{ApiError, Reply};
use crate::net::server;
use crate::shutdown::Shutdown;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, HOST, HeaderName, HeaderValue, ORIGIN};
use hyper::{Response, StatusCode};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Request bodies (a PATCH, a message to send) are small; anything larger is refused.
const MAX_BODY: usize = 64 * 1024;
/// A client has this long to send its headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// After shutdown is asked for, requests in flight get this long to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once: the admin listener is for a handful of people and probes.
const MAX_CONNECTIONS: usize = 256;

/// Serves the admin listener until `shutdown` fires, then lets requests in flight
/// finish (up to a few seconds) and returns. Warns at start when the API has no token.
pub async fn serve_admin(
    listener: TcpListener,
    state: Arc<AdminState>,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    if state.token.is_none() {
        tracing::warn!(
            %addr,
            "admin API is off: no admin.token / EDGEBOT_ADMIN_TOKEN configured; /api/v1 answers 403"
        );
    }
    let options = server::Options {
        name: "admin",
        max_connections: MAX_CONNECTIONS,
        header_timeout: HEADER_TIMEOUT,
        drain_timeout: DRAIN_TIMEOUT,
        // The audit log and the login throttle name the address.
        peer_address: true,
    };
    server::serve(listener, Arc::new(Admin::new(state)), options, shutdown).await;
    Ok(())
}

/// Serves one connection of any byte stream with the admin listener's handling (no
/// shutdown, no peer address): how the fuzzer feeds it raw requests.
pub async fn serve_admin_connection<I>(state: Arc<AdminState>, io: I)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let options = server::Options {
        name: "admin",
        max_connections: 1,
        header_timeout: HEADER_TIMEOUT,
        drain_timeout: DRAIN_TIMEOUT,
        peer_address: false,
    };
    server::serve_connection(Arc::new(Admin::new(state)), io, options, None, None).await;
}

impl server::Handler for Admin {
    async fn handle(&self, request: hyper::Request<Incoming>) -> Response<Full<Bytes>> {
        respond(self, request).await
    }
}

async fn respond(admin: &Admin, req: hyper::Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return into_response(
                ApiError::new(
                    413,
                    "body_too_large",
                    format!("request bodies are limited to {MAX_BODY} bytes"),
                )
                .reply(),
            );
        }
    };
    let request = Request {
        verb: Verb::parse(parts.method.as_str()),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or_default(),
        authorization: parts.headers.get(AUTHORIZATION).map(HeaderValue::as_bytes),
        cookie: parts
            .headers
            .get(COOKIE)
            .and_then(|value| value.to_str().ok()),
        peer: parts.extensions.get::<server::Peer>().map(|peer| peer.0),
        tls: parts
            .headers
            .get("x-forwarded-proto")
            .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https")),
        origin: parts.headers.get(ORIGIN).and_then(|v| v.to_str().ok()),
        host: parts.headers.get(HOST).and_then(|v| v.to_str().ok()),
        body: &body,
    };
    let reply = admin.handle(request).await;
    tracing::debug!(
        method = %parts.method,
        path = parts.uri.path(),
        status = reply.status,
        "admin request"
    );
    into_response(reply)
}

fn into_response(reply: Reply) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    for (name, value) in reply.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    response
}
