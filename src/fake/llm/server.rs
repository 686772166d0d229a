//! The HTTP side of the fake LLM server, served by the process's one serving loop
//! (`crate::net::server`): routes `/v1/...` to the provider APIs and `/_fake/...` to the
//! control API, checks keys, applies injected faults, records every provider request
//! and writes the answers, whole or streamed.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::answer::{Answer, Prompt};
use super::error::ApiError;
use super::stream::{AnswerBody, Pacing, stream};
use super::{Auth, Fault, Provider, RecordedRequest, Shared, anthropic, control, lock, openai};
use crate::net::server::{CloseWithoutAnswer, Handler, Options};
use crate::shutdown::Shutdown;

/// Prompts can be long, but not this long.
const MAX_BODY: usize = 32 * 1024 * 1024;

/// How the fake's listener serves: requests in flight get little time after a shutdown,
/// so a test waiting for the port does not wait for a slow stream.
pub(crate) fn options() -> Options {
    Options {
        drain_timeout: Duration::from_secs(2),
        ..Options::new("fake-llm")
    }
}

/// Answers every request of the fake's listener.
pub(crate) struct LlmHandler {
    pub(crate) shared: Arc<Shared>,
    pub(crate) shutdown: Shutdown,
}

impl Handler<AnswerBody> for LlmHandler {
    fn handle(
        &self,
        request: Request<Incoming>,
    ) -> impl Future<Output = Response<AnswerBody>> + Send {
        let shared = Arc::clone(&self.shared);
        let shutdown = self.shutdown.clone();
        async move {
            let path = request.uri().path();
            if path == "/_fake" || path.starts_with("/_fake/") {
                control::handle(&shared, request).await
            } else if path.starts_with("/v1/") {
                api(&shared, shutdown, request).await
            } else {
                let error = format!(
                    "no such path {path}: the provider APIs are under /v1/, the control API under /_fake/"
                );
                respond(404, &json!({ "ok": false, "error": error }))
            }
        }
    }
}

/// A JSON answer.
pub(crate) fn respond(status: u16, body: &Value) -> Response<AnswerBody> {
    let body = serde_json::to_vec(body).unwrap_or_default();
    with_type(status, AnswerBody::whole(body), "application/json")
}

fn with_type(status: u16, body: AnswerBody, content_type: &'static str) -> Response<AnswerBody> {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn error_response(error: &ApiError, provider: Provider) -> Response<AnswerBody> {
    let mut response = respond(error.status(), &error.body(provider));
    for (name, value) in error.headers(provider) {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// A response the serving loop does not send: it closes the connection instead.
fn dropped() -> Response<AnswerBody> {
    let mut response = Response::new(AnswerBody::whole(Bytes::new()));
    response.extensions_mut().insert(CloseWithoutAnswer);
    response
}

/// The key of `Authorization: Bearer KEY`; any other value of the header is returned
/// whole (a key, just not in a form that can be right).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    Some(match value.split_once(' ') {
        Some((scheme, key)) if scheme.eq_ignore_ascii_case("bearer") => key.trim(),
        _ => value,
    })
}

/// The key a request carries in its provider's header, if any: OpenAI's is Bearer auth;
/// Anthropic's is `x-api-key`, or Bearer auth as Anthropic's current SDKs send it.
fn presented_key(provider: Provider, headers: &HeaderMap) -> Option<&str> {
    let value = match provider {
        Provider::OpenAi => bearer(headers)?,
        Provider::Anthropic => match headers.get("x-api-key") {
            Some(value) => value.to_str().ok()?.trim(),
            None => bearer(headers)?,
        },
    };
    (!value.is_empty()).then_some(value)
}

fn check_key(shared: &Shared, provider: Provider, headers: &HeaderMap) -> Auth {
    match (presented_key(provider, headers), &shared.api_key) {
        (None, _) => Auth::Absent,
        (Some(key), Some(expected)) if key != expected => Auth::Wrong,
        (Some(_), _) => Auth::Valid,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// What every record of one request shares.
struct Call<'a> {
    shared: &'a Shared,
    provider: Provider,
    method: String,
    path: String,
    auth: Auth,
    at: Instant,
}

impl Call<'_> {
    fn record(&self, status: u16, body: Value, fault: Option<Fault>) {
        let stream = body.get("stream") == Some(&Value::Bool(true));
        self.shared.record(RecordedRequest {
            seq: 0,
            provider: self.provider,
            method: self.method.clone(),
            path: self.path.clone(),
            auth: self.auth,
            body,
            stream,
            status,
            fault,
            at: self.at,
            since_start: self.at.duration_since(self.shared.start),
        });
    }

    /// Records an error and renders it.
    fn refuse(&self, error: &ApiError, body: Value, fault: Option<Fault>) -> Response<AnswerBody> {
        self.record(error.status(), body, fault);
        error_response(error, self.provider)
    }
}

async fn api(
    shared: &Shared,
    mut shutdown: Shutdown,
    request: Request<Incoming>,
) -> Response<AnswerBody> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let headers = request.headers();
    let provider = match path.as_str() {
        "/v1/chat/completions" => Provider::OpenAi,
        "/v1/messages" => Provider::Anthropic,
        _ if headers.contains_key("anthropic-version") || headers.contains_key("x-api-key") => {
            Provider::Anthropic
        }
        _ => Provider::OpenAi,
    };
    let call = Call {
        shared,
        provider,
        method: method.to_string(),
        path: path.clone(),
        auth: check_key(shared, provider, headers),
        at: Instant::now(),
    };
    let generates = match (&method, path.as_str()) {
        (&Method::POST, "/v1/chat/completions" | "/v1/messages") => true,
        (&Method::GET, "/v1/models") => false,
        _ => {
            let error = ApiError::NotFound {
                method: method.to_string(),
                path,
            };
            return call.refuse(&error, Value::Null, None);
        }
    };
    if shared.api_key.is_some() && call.auth != Auth::Valid {
        let error = match call.auth {
            Auth::Absent => ApiError::MissingKey(provider),
            Auth::Wrong | Auth::Valid => ApiError::WrongKey,
        };
        return call.refuse(&error, Value::Null, None);
    }
    if !generates {
        call.record(200, Value::Null, None);
        let list = match provider {
            Provider::OpenAi => openai::models(&shared.models, unix_now()),
            Provider::Anthropic => anthropic::models(&shared.models),
        };
        return respond(200, &list);
    }
    let version = headers
        .get("anthropic-version")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let bytes = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            return call.refuse(&ApiError::TooLarge { limit: MAX_BODY }, Value::Null, None);
        }
        // The client went away mid-body; there is nobody left to answer.
        Err(_) => return dropped(),
    };
    let body: Value = match serde_json::from_slice(&bytes) {
        Ok(body) => body,
        Err(e) => {
            let error = ApiError::invalid(format!("the body is not valid JSON: {e}"), None, None);
            return call.refuse(&error, Value::Null, None);
        }
    };
    let parsed = match provider {
        Provider::OpenAi => openai::parse(&body),
        Provider::Anthropic => anthropic::parse(version.as_deref(), &body),
    };
    let prompt = match parsed {
        Ok(prompt) => prompt,
        Err(error) => return call.refuse(&error, body, None),
    };

    let (fault, decision) = decide(shared, provider, &prompt);
    let (number, answer) = match decision {
        Decision::Refuse(error) => return call.refuse(&error, body, fault),
        Decision::Hang => {
            call.record(0, body, fault);
            shutdown.wait().await;
            return dropped();
        }
        Decision::Answer { number, answer } => (number, answer),
    };
    call.record(200, body, fault.clone());
    if let Some(Fault::Slow { delay_ms }) = fault {
        shutdown.sleep(Duration::from_millis(delay_ms)).await;
    }
    let stop_after = match fault {
        Some(Fault::StopMidway { after_chunks }) => Some(after_chunks),
        _ => None,
    };
    answer_response(
        shared, provider, &prompt, &answer, number, stop_after, shutdown,
    )
}

/// What an answering request gets, once the queued faults and answers had their say.
enum Decision {
    Refuse(ApiError),
    Hang,
    /// The answer, and its number (for its id and the seed of its cuts).
    Answer {
        number: u64,
        answer: Answer,
    },
}

/// Takes the request's fault, and its scripted answer unless the fault refuses it.
fn decide(shared: &Shared, provider: Provider, prompt: &Prompt) -> (Option<Fault>, Decision) {
    let mut state = lock(&shared.state);
    let fault = state.take_fault(provider);
    let decision = match &fault {
        Some(Fault::RateLimited { retry_after_secs }) => Decision::Refuse(ApiError::RateLimited {
            retry_after_secs: *retry_after_secs,
        }),
        Some(Fault::ServerError(status)) => Decision::Refuse(ApiError::Server(*status)),
        Some(Fault::Hang) => Decision::Hang,
        Some(Fault::StopMidway { .. } | Fault::Slow { .. }) | None => {
            state.answered += 1;
            Decision::Answer {
                number: state.answered,
                answer: Answer::new(prompt, state.answers.pop_front()),
            }
        }
    };
    (fault, decision)
}

/// The answer, whole or streamed; `stop_after` breaks it off.
fn answer_response(
    shared: &Shared,
    provider: Provider,
    prompt: &Prompt,
    answer: &Answer,
    number: u64,
    stop_after: Option<usize>,
    shutdown: Shutdown,
) -> Response<AnswerBody> {
    let created = unix_now();
    let id = match provider {
        Provider::OpenAi => format!("chatcmpl-fake{number:012}"),
        Provider::Anthropic => format!("msg_fake{number:012}"),
    };
    let mut response = if prompt.stream {
        let events = match provider {
            Provider::OpenAi => openai::events(prompt, answer, &id, created),
            Provider::Anthropic => anthropic::events(prompt, answer, &id),
        };
        let pacing = Pacing {
            delay: shared.chunk_delay,
            split: shared
                .split_chunks
                .then(|| fastrand::Rng::with_seed(shared.seed.wrapping_add(number))),
            stop_after,
        };
        let mut response = with_type(200, stream(events, pacing, shutdown), "text/event-stream");
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    } else {
        let whole = match provider {
            Provider::OpenAi => openai::completion(prompt, answer, &id, created),
            Provider::Anthropic => anthropic::message(prompt, answer, &id),
        };
        if stop_after.is_some() {
            let mut whole = Bytes::from(serde_json::to_vec(&whole).unwrap_or_default());
            let first = whole.split_to(whole.len() / 2);
            let pacing = Pacing {
                delay: Duration::ZERO,
                split: None,
                stop_after: Some(1),
            };
            let body = stream(vec![first, whole], pacing, shutdown);
            with_type(200, body, "application/json")
        } else {
            respond(200, &whole)
        }
    };
    let request_id = match provider {
        Provider::OpenAi => "x-request-id",
        Provider::Anthropic => "request-id",
    };
    if let Ok(value) = HeaderValue::from_str(&format!("req_{id}")) {
        response.headers_mut().insert(request_id, value);
    }
    response
}
