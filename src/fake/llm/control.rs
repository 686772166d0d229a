//! The control API of the fake LLM server under `/_fake/`, on the same listener as the
//! provider APIs, so a test in any language can script it with plain HTTP. Every answer
//! is JSON; errors are `{"ok": false, "error": "..."}` with a 4xx status.
//!
//! | request | does |
//! |---|---|
//! | `GET /_fake/` | lists these endpoints |
//! | `GET /_fake/requests` | the provider requests so far: `{"ok":true,"requests":[{"seq","provider","method","path","auth","body","stream","status","fault","ms"}],"last_seq":N}`; `?since=N` keeps those with a `seq` above N, `?provider=openai` one kind |
//! | `POST /_fake/answers` | queues answers: `{"answers":["first","second"]}` or `{"answer":"one"}`; answers `{"ok":true,"queued":N}` |
//! | `GET /_fake/answers` | the queued answers |
//! | `POST /_fake/faults` | the next answering requests misbehave: `{"fault":"429","retry_after":3}`, `{"fault":"5xx","status":529}`, `{"fault":"hang"}`, `{"fault":"stop_midway","after_chunks":2}`, `{"fault":"slow","ms":1500}`; with `"times":N` (default 1) and `"provider":"openai"` or `"anthropic"` (default either) |
//! | `GET /_fake/faults` | the queued faults |
//! | `POST /_fake/reset` | forgets the requests, the answers and the faults |

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use serde_json::{Map, Value, json};

use super::server::respond;
use super::stream::AnswerBody;
use super::{Fault, Provider, QueuedFault, RecordedRequest, Shared, lock};

/// Control requests are small JSON documents.
const MAX_BODY: usize = 1024 * 1024;

/// A control API failure, answered as `{"ok": false, "error": ...}`.
#[derive(Debug, thiserror::Error)]
enum ControlError {
    #[error("no control endpoint {method} {path}; GET /_fake/ lists them")]
    NotFound { method: Method, path: String },
    #[error("the body is not a JSON object: {0}")]
    BadJson(String),
    #[error("the body is over {MAX_BODY} bytes or was cut short")]
    Body,
    #[error("{0}")]
    BadRequest(String),
}

impl ControlError {
    fn status(&self) -> u16 {
        match self {
            Self::NotFound { .. } => 404,
            Self::BadJson(_) | Self::Body | Self::BadRequest(_) => 400,
        }
    }
}

pub(crate) async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<AnswerBody> {
    match route(shared, request).await {
        Ok(body) => respond(200, &body),
        Err(error) => respond(
            error.status(),
            &json!({ "ok": false, "error": error.to_string() }),
        ),
    }
}

async fn route(shared: &Shared, request: Request<Incoming>) -> Result<Value, ControlError> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let endpoint = path.trim_start_matches("/_fake").trim_matches('/');
    match (endpoint, &method) {
        ("", &Method::GET) => Ok(index()),
        ("requests", &Method::GET) => requests(shared, &query),
        ("answers", &Method::POST) => {
            let body = json_body(request).await?;
            let answers = answers_of(&body)?;
            let queued = shared.script_answers(answers);
            Ok(json!({ "ok": true, "queued": queued }))
        }
        ("answers", &Method::GET) => {
            let answers: Vec<String> = lock(&shared.state).answers.iter().cloned().collect();
            Ok(json!({ "ok": true, "answers": answers }))
        }
        ("faults", &Method::POST) => {
            let body = json_body(request).await?;
            let queued = fault_of(&body)?;
            let answer = json!({ "ok": true, "queued": queued_json(&queued) });
            shared.inject(queued.fault, queued.remaining, queued.provider);
            Ok(answer)
        }
        ("faults", &Method::GET) => {
            let faults: Vec<Value> = lock(&shared.state).faults.iter().map(queued_json).collect();
            Ok(json!({ "ok": true, "faults": faults }))
        }
        ("reset", &Method::POST) => {
            shared.reset();
            Ok(json!({ "ok": true }))
        }
        _ => Err(ControlError::NotFound { method, path }),
    }
}

fn index() -> Value {
    json!({
        "ok": true,
        "apis": ["POST /v1/chat/completions", "POST /v1/messages", "GET /v1/models"],
        "endpoints": [
            "GET /_fake/requests?since=&provider=",
            "POST /_fake/answers",
            "GET /_fake/answers",
            "POST /_fake/faults",
            "GET /_fake/faults",
            "POST /_fake/reset",
        ],
    })
}

async fn json_body(request: Request<Incoming>) -> Result<Map<String, Value>, ControlError> {
    let bytes: Bytes = Limited::new(request.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| ControlError::Body)?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(ControlError::BadJson(format!("got {other}"))),
        Err(e) => Err(ControlError::BadJson(e.to_string())),
    }
}

fn answers_of(body: &Map<String, Value>) -> Result<Vec<String>, ControlError> {
    let bad = || {
        ControlError::BadRequest(
            "send {\"answers\": [\"text\", ...]} or {\"answer\": \"text\"}".to_owned(),
        )
    };
    match (body.get("answers"), body.get("answer")) {
        (Some(Value::Array(answers)), None) => answers
            .iter()
            .map(|answer| answer.as_str().map(str::to_owned).ok_or_else(bad))
            .collect(),
        (None, Some(Value::String(answer))) => Ok(vec![answer.clone()]),
        _ => Err(bad()),
    }
}

fn fault_json(fault: &Fault) -> Value {
    match fault {
        Fault::RateLimited { retry_after_secs } => {
            json!({"fault": "429", "retry_after": retry_after_secs})
        }
        Fault::ServerError(status) => json!({"fault": "5xx", "status": status}),
        Fault::Hang => json!({"fault": "hang"}),
        Fault::StopMidway { after_chunks } => {
            json!({"fault": "stop_midway", "after_chunks": after_chunks})
        }
        Fault::Slow { delay_ms } => json!({"fault": "slow", "ms": delay_ms}),
    }
}

fn queued_json(queued: &QueuedFault) -> Value {
    let mut json = fault_json(&queued.fault);
    json["times"] = Value::from(queued.remaining);
    json["provider"] = queued.provider.map(Provider::name).into();
    json
}

fn fault_of(body: &Map<String, Value>) -> Result<QueuedFault, ControlError> {
    let number = |name: &str, default: u64, min: u64, max: u64| -> Result<u64, ControlError> {
        match body.get(name) {
            None => Ok(default),
            Some(value) => value
                .as_u64()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| {
                    ControlError::BadRequest(format!(
                        "{name} must be an integer from {min} to {max}"
                    ))
                }),
        }
    };
    let fault = match body.get("fault").and_then(Value::as_str).unwrap_or("") {
        "429" | "rate_limited" => Fault::RateLimited {
            retry_after_secs: u32::try_from(number("retry_after", 1, 0, 86_400)?).unwrap_or(1),
        },
        "5xx" | "server_error" => {
            Fault::ServerError(u16::try_from(number("status", 500, 500, 599)?).unwrap_or(500))
        }
        "hang" => Fault::Hang,
        "stop_midway" => Fault::StopMidway {
            after_chunks: usize::try_from(number("after_chunks", 2, 0, 1_000_000)?).unwrap_or(2),
        },
        "slow" => Fault::Slow {
            delay_ms: number("ms", 1000, 0, 600_000)?,
        },
        _ => {
            return Err(ControlError::BadRequest(format!(
                "fault must be \"429\", \"5xx\", \"hang\", \"stop_midway\" or \"slow\", got {}",
                body.get("fault").cloned().unwrap_or(Value::Null)
            )));
        }
    };
    let remaining = usize::try_from(number("times", 1, 1, 1_000_000)?).unwrap_or(1);
    let provider = match body.get("provider") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Some(Provider::parse(name).ok_or_else(|| {
            ControlError::BadRequest(format!(
                "provider must be \"openai\" or \"anthropic\", got {name:?}"
            ))
        })?),
        Some(other) => {
            return Err(ControlError::BadRequest(format!(
                "provider must be a string, got {other}"
            )));
        }
    };
    Ok(QueuedFault {
        fault,
        remaining,
        provider,
    })
}

fn request_json(request: &RecordedRequest) -> Value {
    json!({
        "seq": request.seq,
        "provider": request.provider.name(),
        "method": request.method,
        "path": request.path,
        "auth": request.auth.name(),
        "body": request.body,
        "stream": request.stream,
        "status": request.status,
        "fault": request.fault.as_ref().map(fault_json),
        "ms": u64::try_from(request.since_start.as_millis()).unwrap_or(u64::MAX),
    })
}

fn requests(shared: &Shared, query: &str) -> Result<Value, ControlError> {
    let mut since = 0;
    let mut provider = None;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "since" => {
                since = value.parse().map_err(|_| {
                    ControlError::BadRequest(format!("since must be an integer, got {value:?}"))
                })?;
            }
            "provider" => {
                provider = Some(Provider::parse(value).ok_or_else(|| {
                    ControlError::BadRequest(format!(
                        "provider must be openai or anthropic, got {value:?}"
                    ))
                })?);
            }
            _ => {
                return Err(ControlError::BadRequest(format!(
                    "unknown query parameter {name:?}; since and provider filter"
                )));
            }
        }
    }
    let recorded = lock(&shared.requests);
    // Read under the same lock as the list, so no request falls between the two.
    let last_seq = shared.seq.load(std::sync::atomic::Ordering::Relaxed);
    let selected: Vec<Value> = recorded
        .iter()
        .filter(|r| r.seq > since && provider.is_none_or(|p| r.provider == p))
        .map(request_json)
        .collect();
    drop(recorded);
    Ok(json!({ "ok": true, "requests": selected, "last_seq": last_seq }))
}
