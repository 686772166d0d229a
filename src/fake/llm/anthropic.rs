//! Anthropic's Messages API wire format: `POST /v1/messages` checked as Anthropic
//! checks it (the `anthropic-version` header, `model`, `max_tokens`, messages that
//! alternate from `user`), answered as a `message` or as a stream of named events
//! (`message_start` … `message_stop`); and `GET /v1/models` in Anthropic's shape.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::answer::{Answer, Prompt, Turn};
use super::error::ApiError;

/// When the fake's models say they were made.
const MODELS_CREATED_AT: &str = "2025-01-01T00:00:00Z";

fn invalid(message: String) -> ApiError {
    ApiError::invalid(message, None, None)
}

fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).filter(|value| !value.is_null())
}

/// Checks a Messages API request; `version` is its `anthropic-version` header.
pub(crate) fn parse(version: Option<&str>, body: &Value) -> Result<Prompt, ApiError> {
    if version.is_none_or(str::is_empty) {
        return Err(invalid(
            "anthropic-version: the header is required".to_owned(),
        ));
    }
    let Some(object) = body.as_object() else {
        return Err(invalid("the body must be a JSON object".to_owned()));
    };
    let model = match field(object, "model") {
        Some(Value::String(model)) if !model.is_empty() => model.clone(),
        Some(_) => return Err(invalid("model: must be a non-empty string".to_owned())),
        None => return Err(invalid("model: field required".to_owned())),
    };
    let max_tokens = match field(object, "max_tokens") {
        None => return Err(invalid("max_tokens: field required".to_owned())),
        Some(value) => value
            .as_i64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                invalid(format!(
                    "max_tokens: must be an integer of at least 1, got {value}"
                ))
            })?,
    };
    let mut turns = match field(object, "system") {
        None => Vec::new(),
        Some(system) => vec![Turn {
            role: "system".to_owned(),
            text: text_of("system", system)?,
        }],
    };
    let messages = match field(object, "messages") {
        None => return Err(invalid("messages: field required".to_owned())),
        Some(Value::Array(messages)) if messages.is_empty() => {
            return Err(invalid(
                "messages: at least one message is required".to_owned(),
            ));
        }
        Some(Value::Array(messages)) => messages,
        Some(_) => return Err(invalid("messages: must be a list".to_owned())),
    };
    for (index, message) in messages.iter().enumerate() {
        let at = format!("messages.{index}");
        let Some(message) = message.as_object() else {
            return Err(invalid(format!("{at}: must be an object")));
        };
        let role = match field(message, "role") {
            Some(Value::String(role)) if role == "user" || role == "assistant" => role.as_str(),
            Some(_) => {
                return Err(invalid(format!(
                    "{at}.role: must be \"user\" or \"assistant\""
                )));
            }
            None => return Err(invalid(format!("{at}.role: field required"))),
        };
        let expected = if index % 2 == 0 { "user" } else { "assistant" };
        if role != expected {
            return Err(invalid(format!(
                "{at}.role: messages must alternate between \"user\" and \"assistant\", starting with \"user\"; expected \"{expected}\""
            )));
        }
        let content = field(message, "content")
            .ok_or_else(|| invalid(format!("{at}.content: field required")))?;
        turns.push(Turn {
            role: role.to_owned(),
            text: text_of(&format!("{at}.content"), content)?,
        });
    }
    if let Some(temperature) = field(object, "temperature")
        && !temperature
            .as_f64()
            .is_some_and(|t| (0.0..=1.0).contains(&t))
    {
        return Err(invalid(format!(
            "temperature: must be a number from 0 to 1, got {temperature}"
        )));
    }
    let stream = match field(object, "stream") {
        None => false,
        Some(Value::Bool(stream)) => *stream,
        Some(_) => return Err(invalid("stream: must be a boolean".to_owned())),
    };
    Ok(Prompt {
        model,
        turns,
        max_tokens: Some(max_tokens),
        stream,
        include_usage: false,
    })
}

/// The text of a `system` prompt or a message's `content`: a string, or content blocks
/// whose `text` blocks are joined with `\n` (other kinds of block are accepted and not
/// looked at).
fn text_of(at: &str, content: &Value) -> Result<String, ApiError> {
    let blocks = match content {
        Value::String(text) => return Ok(text.clone()),
        Value::Array(blocks) => blocks,
        _ => {
            return Err(invalid(format!(
                "{at}: must be a string or a list of blocks"
            )));
        }
    };
    let mut texts = Vec::new();
    for (index, block) in blocks.iter().enumerate() {
        let at = format!("{at}.{index}");
        let Some(block) = block.as_object() else {
            return Err(invalid(format!("{at}: must be an object")));
        };
        match field(block, "type") {
            Some(Value::String(kind)) if kind == "text" => match field(block, "text") {
                Some(Value::String(text)) => texts.push(text.as_str()),
                _ => return Err(invalid(format!("{at}.text: must be a string"))),
            },
            Some(Value::String(_)) => {}
            _ => return Err(invalid(format!("{at}.type: field required"))),
        }
    }
    Ok(texts.join("\n"))
}

fn stop_reason(answer: &Answer) -> &'static str {
    if answer.truncated {
        "max_tokens"
    } else {
        "end_turn"
    }
}

/// The non-streamed answer: a `message`.
pub(crate) fn message(prompt: &Prompt, answer: &Answer, id: &str) -> Value {
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": prompt.model,
        "content": [{"type": "text", "text": answer.text}],
        "stop_reason": stop_reason(answer),
        "stop_sequence": null,
        "usage": {"input_tokens": answer.input_tokens, "output_tokens": answer.output_tokens},
    })
}

fn event(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// The streamed answer, one named event per element.
pub(crate) fn events(prompt: &Prompt, answer: &Answer, id: &str) -> Vec<Bytes> {
    let mut events = vec![
        event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": id,
                "type": "message",
                "role": "assistant",
                "model": prompt.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": {"input_tokens": answer.input_tokens, "output_tokens": 0},
            }}),
        ),
        event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
        ),
        event("ping", &json!({"type": "ping"})),
    ];
    for delta in answer.deltas() {
        events.push(event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": delta}}),
        ));
    }
    events.push(event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(event(
        "message_delta",
        &json!({"type": "message_delta",
                "delta": {"stop_reason": stop_reason(answer), "stop_sequence": null},
                "usage": {"output_tokens": answer.output_tokens}}),
    ));
    events.push(event("message_stop", &json!({"type": "message_stop"})));
    events
}

/// `GET /v1/models`, as Anthropic lists them.
pub(crate) fn models(models: &[String]) -> Value {
    let data: Vec<Value> = models
        .iter()
        .map(|id| json!({"type": "model", "id": id, "display_name": id, "created_at": MODELS_CREATED_AT}))
        .collect();
    json!({
        "data": data,
        "has_more": false,
        "first_id": models.first(),
        "last_id": models.last(),
    })
}
