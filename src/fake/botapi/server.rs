//! The HTTP side, served by the process's one serving loop (`crate::net::server`):
//! routes `/bot<TOKEN>/<method>` to the Bot API and `/_fake/...` to the control API,
//! applies injected faults, records every Bot API call and renders Telegram's JSON
//! answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};

use super::error::ApiError;
use super::methods::{self, Reply};
use super::{Fault, RecordedCall, Shared, control, lock, params};
use crate::net::server::{CloseWithoutAnswer, Handler, Options};
use crate::shutdown::Shutdown;

/// Telegram accepts uploads up to 50 MB; anything larger is refused.
const MAX_BODY: usize = 50 * 1024 * 1024;

/// How the fake's listener serves. Requests in flight get little time after a
/// shutdown: long polls end at once, and a test waiting for the port to close should
/// not wait for a slow fault.
pub(crate) fn options() -> Options {
    Options {
        drain_timeout: Duration::from_secs(2),
        ..Options::new("fake-botapi")
    }
}

/// Answers every request of the fake's listener.
pub(crate) struct FakeHandler {
    pub(crate) shared: Arc<Shared>,
    pub(crate) shutdown: Shutdown,
}

impl Handler for FakeHandler {
    fn handle(
        &self,
        request: Request<Incoming>,
    ) -> impl Future<Output = Response<Full<Bytes>>> + Send {
        let shared = Arc::clone(&self.shared);
        let shutdown = self.shutdown.clone();
        async move {
            let path = request.uri().path();
            if path == "/_fake" || path.starts_with("/_fake/") {
                control::handle(&shared, request).await
            } else {
                bot_api(&shared, shutdown, request).await
            }
        }
    }
}

/// Splits `/bot<TOKEN>/<method>`.
fn route(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/bot")?;
    let (token, method) = rest.split_once('/')?;
    (!method.is_empty() && !method.contains('/')).then_some((token, method))
}

pub(crate) fn respond(status: u16, body: &Value) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A response the serving loop does not send: it closes the connection instead.
fn dropped() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    response.extensions_mut().insert(CloseWithoutAnswer);
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

async fn bot_api(
    shared: &Shared,
    mut shutdown: Shutdown,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let at = Instant::now();
    let Some((token, method)) = route(req.uri().path()) else {
        return respond(404, &ApiError::NotFound.body());
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
            seq: 0,
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
        respond(error.status(), &error.body())
    };

    if !shared.token_valid(&token) {
        return reject(ApiError::Unauthorized, &sent_method, json!({}), None);
    }
    let Some(spec) = methods::canonical(&sent_method) else {
        return reject(ApiError::NotFound, &sent_method, json!({}), None);
    };
    let method = spec.name;

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
        Err(_) => return dropped(),
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
            return dropped();
        }
        Some(Fault::Delay(delay)) => {
            // A shutdown cuts the delay short rather than hold the port.
            shutdown.sleep(delay).await;
        }
        None => {}
    }

    let outcome = if method == "getUpdates" {
        methods::get_updates(shared, &params, shutdown).await
    } else {
        methods::call(shared, spec, &token, &params, at)
    };
    let (status, body) = render(outcome);
    record(method, Value::Object(params), chat_id, status);
    respond(status, &body)
}
