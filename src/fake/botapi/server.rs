//! The HTTP side: accepts keep-alive HTTP/1.1 connections, routes
//! `/bot<TOKEN>/<method>`, applies injected faults, records every call and
//! renders Telegram's JSON answers.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::error::ApiError;
use super::methods::{self, Reply};
use super::{Fault, RecordedCall, Shared, lock, params};

/// Telegram accepts uploads up to 50 MB; anything larger is refused.
const MAX_BODY: usize = 50 * 1024 * 1024;

/// Returned by the service to make hyper close the connection unanswered.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped")]
pub(crate) struct DropConnection;

pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            // A dropped handle (sender gone) stops the server as well.
            _ = stopped.wait_for(|stop| *stop) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                // Accept errors (e.g. out of file descriptors) are transient.
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let shared = Arc::clone(&shared);
                connections.spawn(async move {
                    let service = service_fn(move |req| handle(Arc::clone(&shared), req));
                    let _ = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// Splits `/bot<TOKEN>/<method>`.
fn route(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/bot")?;
    let (token, method) = rest.split_once('/')?;
    (!method.is_empty() && !method.contains('/')).then_some((token, method))
}

fn respond(status: u16, body: &Value) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn render(outcome: Result<Reply, ApiError>) -> (u16, Value) {
    match outcome {
        Ok(Reply {
            result,
            description,
        }) => {
            let mut body = json!({ "ok": true, "result": result });
            if let Some(description) = description {
                body["description"] = Value::from(description);
            }
            (200, body)
        }
        Err(error) => (error.status(), error.body()),
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, DropConnection> {
    let at = Instant::now();
    let Some((token, method)) = route(req.uri().path()) else {
        return Ok(respond(404, &ApiError::NotFound.body()));
    };
    // Some clients escape the token's colon as %3A.
    let token = if token.contains('%') {
        params::percent_decode(token.as_bytes())
    } else {
        token.to_owned()
    };
    let sent_method = method.to_owned();
    let record = |method: &str, params: Value, chat_id: Option<i64>, status: u16| {
        shared.record(RecordedCall {
            method: method.to_owned(),
            token: token.clone(),
            params,
            chat_id,
            status,
            at,
            since_start: at.duration_since(shared.start),
        });
    };
    let reject = |error: ApiError, method: &str, params: Value, chat_id: Option<i64>| {
        record(method, params, chat_id, error.status());
        Ok(respond(error.status(), &error.body()))
    };

    if !shared.token_valid(&token) {
        return reject(ApiError::Unauthorized, &sent_method, json!({}), None);
    }
    let Some(method) = methods::canonical(&sent_method) else {
        return reject(ApiError::NotFound, &sent_method, json!({}), None);
    };

    let query = req.uri().query().map(str::to_owned);
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            return reject(ApiError::TooLarge, method, json!({}), None);
        }
        // The client went away mid-body; there is nobody left to answer.
        Err(_) => return Err(DropConnection),
    };
    let params = match params::parse(query.as_deref(), content_type.as_deref(), &body) {
        Ok(params) => params,
        Err(error) => return reject(error, method, json!({}), None),
    };
    let chat_id = params.get("chat_id").and_then(methods::int_of);

    let fault = lock(&shared.state).take_fault(method);
    match fault {
        Some(Fault::TooManyRequests { retry_after }) => {
            let error = ApiError::TooManyRequests { retry_after };
            return reject(error, method, Value::Object(params), chat_id);
        }
        Some(Fault::ServerError(status)) => {
            let error = ApiError::Server(status);
            return reject(error, method, Value::Object(params), chat_id);
        }
        Some(Fault::DropConnection) => {
            record(method, Value::Object(params), chat_id, 0);
            return Err(DropConnection);
        }
        Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
        None => {}
    }

    let outcome = if method == "getUpdates" {
        methods::get_updates(&shared, &params).await
    } else {
        methods::call(&shared, method, &token, &params, at)
    };
    let (status, body) = render(outcome);
    record(method, Value::Object(params), chat_id, status);
    Ok(respond(status, &body))
}
