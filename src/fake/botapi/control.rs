//! The control API under `/_fake/`, on the same listener as the Bot API, so that a test
//! in any language can drive a bot through the fake with plain HTTP. Every answer is
//! JSON; errors are `{"ok": false, "error": "..."}` with a 4xx or 5xx status.
//!
//! | request | does |
//! |---|---|
//! | `GET /_fake/` | lists these endpoints |
//! | `POST /_fake/updates` | a user sends an update (below); answers `{"ok":true,"update_id":N,"delivered_to":"getUpdates"}` or, when the bot set a webhook, posts it there with the secret token header and answers `"delivered_to":"webhook","status":<the bot's HTTP status>` |
//! | `GET /_fake/calls` | what the bot called: `{"ok":true,"calls":[{"seq","method","params","chat_id","status","delivered","token","ms"}],"last_seq":N}`; filters `method` (any case), `chat_id`, `since` (only calls with a `seq` above it: poll with the `last_seq` you got) |
//! | `DELETE /_fake/calls` | forgets the calls (sequence numbers keep counting) |
//! | `POST /_fake/faults` | the next calls misbehave: `{"fault":"429","retry_after":3}`, `{"fault":"5xx","status":502}`, `{"fault":"slow","ms":1500}`, `{"fault":"drop"}`; with `"times":N` (default 1) and `"method":"sendMessage"` (default any) |
//! | `GET /_fake/faults`, `DELETE /_fake/faults` | the queued faults; clear them |
//! | `GET /_fake/webhook` | the webhook the bot set, or `null` |
//!
//! An update is either a whole Bot API update (its `update_id` may be left out, and a
//! message in it may leave out `message_id`, `date` and the chat, which are filled in)
//! or a shorthand for a text message: `{"text": "/start", "from": {"id": 42,
//! "first_name": "Ann"}}` (`from` may be just an id, and `chat_id` names a group).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use serde_json::{Map, Value, json};

use super::methods::{self, WebhookState};
use super::server::respond;
use super::shape::{self, Hints};
use super::{Fault, RecordedCall, Shared, lock, params, webhook};

/// Control requests are small JSON documents.
const MAX_BODY: usize = 1024 * 1024;
/// How long a webhook delivery may take before the control call gives up on it.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(30);
/// The user a shorthand update comes from when it names none.
const DEFAULT_USER: i64 = 42;

/// A control API failure, answered as `{"ok": false, "error": ...}`.
#[derive(Debug, thiserror::Error)]
enum ControlError {
    #[error("no control endpoint {method} {path}; GET /_fake/ lists them")]
    NotFound { method: Method, path: String },
    #[error("{path} does not answer {method}")]
    MethodNotAllowed { method: Method, path: String },
    #[error("the body is not a JSON object: {0}")]
    BadJson(String),
    #[error("the body is over {MAX_BODY} bytes or was cut short")]
    Body,
    #[error("{0}")]
    BadRequest(String),
    #[error("webhook delivery of update {update_id} to {url} failed: {reason}")]
    Webhook {
        update_id: i64,
        url: String,
        reason: String,
    },
}

impl ControlError {
    fn status(&self) -> u16 {
        match self {
            Self::NotFound { .. } => 404,
            Self::MethodNotAllowed { .. } => 405,
            Self::BadJson(_) | Self::Body | Self::BadRequest(_) => 400,
            Self::Webhook { .. } => 502,
        }
    }
}

pub(crate) async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
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
    let not_allowed = || ControlError::MethodNotAllowed {
        method: method.clone(),
        path: path.clone(),
    };
    match (endpoint, &method) {
        ("", &Method::GET) => Ok(index()),
        ("updates", &Method::POST) => {
            let body = json_body(request).await?;
            post_update(shared, body).await
        }
        ("calls", &Method::GET) => calls(shared, &query),
        ("calls", &Method::DELETE) => {
            let cleared = std::mem::take(&mut *lock(&shared.calls)).len();
            Ok(json!({ "ok": true, "cleared": cleared }))
        }
        ("faults", &Method::POST) => {
            let body = json_body(request).await?;
            add_fault(shared, &body)
        }
        ("faults", &Method::GET) => {
            Ok(json!({ "ok": true, "faults": lock(&shared.state).faults_json() }))
        }
        ("faults", &Method::DELETE) => {
            let cleared = lock(&shared.state).clear_faults();
            Ok(json!({ "ok": true, "cleared": cleared }))
        }
        ("webhook", &Method::GET) => {
            let hook = lock(&shared.state).webhook.clone();
            Ok(json!({ "ok": true, "webhook": hook.as_ref().map(webhook_json) }))
        }
        ("" | "updates" | "calls" | "faults" | "webhook", _) => Err(not_allowed()),
        _ => Err(ControlError::NotFound { method, path }),
    }
}

fn index() -> Value {
    json!({
        "ok": true,
        "bot_api": format!("/bot<TOKEN>/<method>: {} Bot API 10.2 methods", shape::method_count()),
        "endpoints": [
            "POST /_fake/updates",
            "GET /_fake/calls?method=&chat_id=&since=",
            "DELETE /_fake/calls",
            "POST /_fake/faults",
            "GET /_fake/faults",
            "DELETE /_fake/faults",
            "GET /_fake/webhook",
        ],
    })
}

async fn json_body(request: Request<Incoming>) -> Result<Map<String, Value>, ControlError> {
    let bytes = Limited::new(request.into_body(), MAX_BODY)
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

fn webhook_json(hook: &WebhookState) -> Value {
    json!({
        "url": hook.url,
        "secret_token": hook.secret_token,
        "allowed_updates": hook.allowed_updates,
        "max_connections": hook.max_connections,
        "drop_pending_updates": hook.drop_pending_updates,
    })
}

fn call_json(call: &RecordedCall) -> Value {
    json!({
        "seq": call.seq,
        "method": call.method,
        "params": call.params,
        "chat_id": call.chat_id,
        "status": call.status,
        "delivered": call.delivered(),
        "token": call.token,
        "ms": u64::try_from(call.since_start.as_millis()).unwrap_or(u64::MAX),
    })
}

fn calls(shared: &Shared, query: &str) -> Result<Value, ControlError> {
    let filters = params::parse(Some(query), None, &[])
        .map_err(|e| ControlError::BadRequest(format!("bad query string: {e}")))?;
    let integer = |name: &str| -> Result<Option<i64>, ControlError> {
        match filters.get(name) {
            None => Ok(None),
            Some(value) => methods::int_of(value).map(Some).ok_or_else(|| {
                ControlError::BadRequest(format!("{name} must be an integer, got {value}"))
            }),
        }
    };
    let chat_id = integer("chat_id")?;
    let since = integer("since")?.unwrap_or(0);
    let method = filters.get("method").and_then(Value::as_str);
    let recorded = lock(&shared.calls);
    // Read under the same lock as the list, so no call falls between the two.
    let last_seq = shared.last_seq_locked(&recorded);
    let selected: Vec<Value> = recorded
        .iter()
        .filter(|c| i64::try_from(c.seq).is_ok_and(|seq| seq > since))
        .filter(|c| method.is_none_or(|m| c.method.eq_ignore_ascii_case(m)))
        .filter(|c| chat_id.is_none_or(|id| c.chat_id == Some(id)))
        .map(call_json)
        .collect();
    drop(recorded);
    Ok(json!({ "ok": true, "calls": selected, "last_seq": last_seq }))
}

fn add_fault(shared: &Shared, body: &Map<String, Value>) -> Result<Value, ControlError> {
    let number = |name: &str, default: u64, max: u64| -> Result<u64, ControlError> {
        match body.get(name) {
            None => Ok(default),
            Some(value) => value.as_u64().filter(|n| *n <= max).ok_or_else(|| {
                ControlError::BadRequest(format!("{name} must be an integer from 0 to {max}"))
            }),
        }
    };
    let kind = body.get("fault").and_then(Value::as_str).unwrap_or("");
    let fault = match kind {
        "429" | "too_many_requests" => Fault::TooManyRequests {
            retry_after: u32::try_from(number("retry_after", 1, 86_400)?).unwrap_or(1),
        },
        "5xx" | "server_error" => {
            let status = number("status", 500, 599)?;
            if status < 500 {
                return Err(ControlError::BadRequest(
                    "status must be from 500 to 599".to_owned(),
                ));
            }
            Fault::ServerError(u16::try_from(status).unwrap_or(500))
        }
        "slow" | "delay" => Fault::Delay(Duration::from_millis(number("ms", 1000, 600_000)?)),
        "drop" => Fault::DropConnection,
        _ => {
            return Err(ControlError::BadRequest(format!(
                "fault must be \"429\", \"5xx\", \"slow\" or \"drop\", got {:?}",
                body.get("fault").cloned().unwrap_or(Value::Null)
            )));
        }
    };
    let times = usize::try_from(number("times", 1, 1_000_000)?).unwrap_or(1);
    if times == 0 {
        return Err(ControlError::BadRequest(
            "times must be at least 1".to_owned(),
        ));
    }
    let method = match body.get("method") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Some(
            shape::method(name)
                .ok_or_else(|| {
                    ControlError::BadRequest(format!("{name:?} is not a Bot API method"))
                })?
                .name,
        ),
        Some(other) => {
            return Err(ControlError::BadRequest(format!(
                "method must be a string, got {other}"
            )));
        }
    };
    let mut state = lock(&shared.state);
    state.inject(fault, times, method);
    Ok(json!({ "ok": true, "faults": state.faults_json() }))
}

/// Turns a control request's body into a whole update: expands the text shorthand and
/// fills in what a message needs.
fn build_update(
    state: &mut methods::State,
    mut body: Map<String, Value>,
    now: i64,
) -> Result<Value, ControlError> {
    let shorthand = body.contains_key("text") || body.contains_key("from");
    if shorthand {
        let text = match body.remove("text") {
            Some(Value::String(text)) => text,
            None => String::new(),
            Some(other) => {
                return Err(ControlError::BadRequest(format!(
                    "text must be a string, got {other}"
                )));
            }
        };
        let from = match body.remove("from") {
            None => user(DEFAULT_USER),
            Some(Value::Object(mut from)) => {
                let id = from.get("id").and_then(Value::as_i64).ok_or_else(|| {
                    ControlError::BadRequest("from needs an integer id".to_owned())
                })?;
                let defaults = user(id);
                for (key, value) in defaults.as_object().into_iter().flatten() {
                    from.entry(key.clone()).or_insert_with(|| value.clone());
                }
                Value::Object(from)
            }
            Some(other) => {
                let id = methods::int_of(&other).ok_or_else(|| {
                    ControlError::BadRequest(format!(
                        "from must be a user object or an id, got {other}"
                    ))
                })?;
                user(id)
            }
        };
        let chat = match body.remove("chat_id") {
            None => from["id"].as_i64().unwrap_or(DEFAULT_USER),
            Some(value) => methods::int_of(&value)
                .filter(|id| *id != 0)
                .ok_or_else(|| {
                    ControlError::BadRequest(format!(
                        "chat_id must be a non-zero integer, got {value}"
                    ))
                })?,
        };
        if let Some(extra) = body.keys().find(|k| *k != "update_id") {
            return Err(ControlError::BadRequest(format!(
                "the text shorthand takes text, from, chat_id and update_id, not {extra:?}"
            )));
        }
        let mut message = json!({ "from": from, "chat": { "id": chat }, "text": text });
        if let Some(command) = text.strip_prefix('/') {
            let length = command
                .split_whitespace()
                .next()
                .unwrap_or("")
                .encode_utf16()
                .count()
                + 1;
            message["entities"] = json!([{ "type": "bot_command", "offset": 0, "length": length }]);
        }
        body.insert("message".to_owned(), message);
    } else if !body.keys().any(|k| k != "update_id") {
        return Err(ControlError::BadRequest(
            "an update needs a kind (\"message\", \"callback_query\", ...) or the text shorthand {\"text\": ...}"
                .to_owned(),
        ));
    }
    for key in methods::MESSAGE_KEYS {
        if let Some(message) = body.get_mut(*key) {
            fill_message(state, message, now)?;
        }
    }
    Ok(Value::Object(body))
}

fn user(id: i64) -> Value {
    json!({ "id": id, "is_bot": false, "first_name": format!("User {id}") })
}

/// Gives a message its chat (from its sender when absent), the next message id of that
/// chat, the time, and whatever else `Message` requires.
fn fill_message(
    state: &mut methods::State,
    message: &mut Value,
    now: i64,
) -> Result<(), ControlError> {
    let Value::Object(fields) = message else {
        return Err(ControlError::BadRequest(format!(
            "a message must be an object, got {message}"
        )));
    };
    let sender = fields
        .get("from")
        .and_then(|f| f.get("id"))
        .and_then(Value::as_i64);
    let chat_id = match fields
        .get("chat")
        .and_then(|c| c.get("id"))
        .and_then(Value::as_i64)
    {
        Some(id) => id,
        None => sender.ok_or_else(|| {
            ControlError::BadRequest("a message needs a chat (with an id) or a sender".to_owned())
        })?,
    };
    let mut chat = methods::chat_json(chat_id);
    if chat_id > 0
        && let Some(name) = fields.get("from").and_then(|f| f.get("first_name"))
    {
        chat["first_name"] = name.clone();
    }
    if let Some(Value::Object(given)) = fields.get("chat") {
        for (key, value) in given {
            chat[key] = value.clone();
        }
    }
    fields.insert("chat".to_owned(), chat);
    if !fields.contains_key("message_id") {
        fields.insert(
            "message_id".to_owned(),
            json!(state.next_message_id(chat_id)),
        );
    }
    fields.entry("date").or_insert_with(|| json!(now));
    let none = Map::new();
    shape::complete("Message", message, &Hints { params: &none, now }, 0);
    Ok(())
}

async fn post_update(shared: &Shared, body: Map<String, Value>) -> Result<Value, ControlError> {
    let now = methods::unix_now();
    let (update_id, update, hook, pending) = {
        let mut state = lock(&shared.state);
        let update = build_update(&mut state, body, now)?;
        let (id, update) = state.number_update(update);
        let hook = state.webhook.clone();
        // With a webhook set the update goes there at once (getUpdates would answer
        // 409 anyway); otherwise it waits for getUpdates.
        if hook.is_none() {
            state.queue(id, update.clone());
        }
        (id, update, hook, state.pending_updates())
    };
    let Some(hook) = hook else {
        shared.updates_changed.notify_waiters();
        return Ok(json!({
            "ok": true, "update_id": update_id, "delivered_to": "getUpdates",
            "pending": pending, "update": update,
        }));
    };
    let failed = |reason: String| ControlError::Webhook {
        update_id,
        url: hook.url.clone(),
        reason,
    };
    let status = tokio::time::timeout(WEBHOOK_TIMEOUT, webhook::post(&hook, &update))
        .await
        .map_err(|_| failed(format!("no answer within {WEBHOOK_TIMEOUT:?}")))?
        .map_err(|e| failed(e.to_string()))?;
    Ok(json!({
        "ok": true, "update_id": update_id, "delivered_to": "webhook",
        "url": hook.url, "status": status, "update": update,
    }))
}
