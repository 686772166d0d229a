//! The OpenAI-compatible wire format: `POST /v1/chat/completions` checked as OpenAI
//! checks it (errors name the offending `param` and a `code`), answered as a
//! `chat.completion` or as a stream of `chat.completion.chunk` events ending in
//! `data: [DONE]`; and `GET /v1/models`.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::answer::{Answer, Prompt, Turn};
use super::error::ApiError;

/// The roles a message may have.
const ROLES: [&str; 4] = ["system", "developer", "user", "assistant"];

/// What the JSON type of `value` is called in an error.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a decimal",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn invalid_type(param: &str, expected: &str, got: &Value) -> ApiError {
    ApiError::invalid(
        format!(
            "Invalid type for '{param}': expected {expected}, but got {} instead.",
            type_name(got)
        ),
        Some(param),
        Some("invalid_type"),
    )
}

fn missing(param: &str) -> ApiError {
    ApiError::invalid(
        format!("Missing required parameter: '{param}'."),
        Some(param),
        Some("missing_required_parameter"),
    )
}

/// The field, with JSON `null` counted as absent, as OpenAI does.
fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).filter(|value| !value.is_null())
}

/// Checks a chat completions request.
pub(crate) fn parse(body: &Value) -> Result<Prompt, ApiError> {
    let Some(object) = body.as_object() else {
        return Err(invalid_type("body", "an object", body));
    };
    let model = match field(object, "model") {
        None => {
            return Err(ApiError::invalid(
                "A model is required: set the 'model' parameter.",
                Some("model"),
                Some("missing_required_parameter"),
            ));
        }
        Some(Value::String(model)) => model.clone(),
        Some(other) => return Err(invalid_type("model", "a string", other)),
    };
    let messages = match field(object, "messages") {
        None => return Err(missing("messages")),
        Some(Value::Array(messages)) => messages,
        Some(other) => return Err(invalid_type("messages", "an array", other)),
    };
    if messages.is_empty() {
        return Err(ApiError::invalid(
            "Invalid 'messages': empty array. Expected at least 1 message.",
            Some("messages"),
            Some("empty_array"),
        ));
    }
    let turns = messages
        .iter()
        .enumerate()
        .map(|(index, message)| turn(index, message))
        .collect::<Result<Vec<_>, _>>()?;
    let max_tokens = match field(object, "max_completion_tokens") {
        Some(value) => Some(positive("max_completion_tokens", value)?),
        None => field(object, "max_tokens")
            .map(|value| positive("max_tokens", value))
            .transpose()?,
    };
    if let Some(temperature) = field(object, "temperature") {
        let Some(t) = temperature.as_f64() else {
            return Err(invalid_type("temperature", "a decimal", temperature));
        };
        if !(0.0..=2.0).contains(&t) {
            return Err(ApiError::invalid(
                format!("Invalid 'temperature': expected a value from 0 to 2, got {t}."),
                Some("temperature"),
                Some("invalid_value"),
            ));
        }
    }
    let stream = match field(object, "stream") {
        None => false,
        Some(Value::Bool(stream)) => *stream,
        Some(other) => return Err(invalid_type("stream", "a boolean", other)),
    };
    let include_usage = match field(object, "stream_options") {
        None => false,
        Some(_) if !stream => {
            return Err(ApiError::invalid(
                "'stream_options' is only allowed when 'stream' is true.",
                Some("stream_options"),
                Some("invalid_value"),
            ));
        }
        Some(Value::Object(options)) => match field(options, "include_usage") {
            None => false,
            Some(Value::Bool(include)) => *include,
            Some(other) => {
                return Err(invalid_type(
                    "stream_options.include_usage",
                    "a boolean",
                    other,
                ));
            }
        },
        Some(other) => return Err(invalid_type("stream_options", "an object", other)),
    };
    Ok(Prompt {
        model,
        turns,
        max_tokens,
        stream,
        include_usage,
    })
}

fn positive(param: &str, value: &Value) -> Result<u32, ApiError> {
    let Some(n) = value.as_i64() else {
        return Err(invalid_type(param, "an integer", value));
    };
    u32::try_from(n).ok().filter(|n| *n >= 1).ok_or_else(|| {
        ApiError::invalid(
            format!("Invalid '{param}': expected an integer of at least 1, got {n}."),
            Some(param),
            Some("integer_below_min_value"),
        )
    })
}

/// Checks one message of `messages`.
fn turn(index: usize, message: &Value) -> Result<Turn, ApiError> {
    let at = format!("messages[{index}]");
    let Some(message) = message.as_object() else {
        return Err(invalid_type(&at, "an object", message));
    };
    let role = match field(message, "role") {
        None => return Err(missing(&format!("{at}.role"))),
        Some(Value::String(role)) if ROLES.contains(&role.as_str()) => role.clone(),
        Some(other) => {
            return Err(ApiError::invalid(
                format!(
                    "Invalid value: {other}. Supported values are: 'system', 'developer', 'user' and 'assistant'."
                ),
                Some(&format!("{at}.role")),
                Some("invalid_value"),
            ));
        }
    };
    let param = format!("{at}.content");
    let text = match field(message, "content") {
        // An assistant message may carry tool calls instead of text.
        None if role == "assistant" => String::new(),
        None => return Err(missing(&param)),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::new();
            for (index, part) in parts.iter().enumerate() {
                let at = format!("{param}[{index}]");
                let Some(part) = part.as_object() else {
                    return Err(invalid_type(&at, "an object", part));
                };
                match field(part, "type") {
                    Some(Value::String(kind)) if kind == "text" => match field(part, "text") {
                        Some(Value::String(text)) => texts.push(text.as_str()),
                        Some(other) => {
                            return Err(invalid_type(&format!("{at}.text"), "a string", other));
                        }
                        None => return Err(missing(&format!("{at}.text"))),
                    },
                    // Images, audio, files, refusals: accepted, not looked at.
                    Some(Value::String(_)) => {}
                    Some(other) => {
                        return Err(invalid_type(&format!("{at}.type"), "a string", other));
                    }
                    None => return Err(missing(&format!("{at}.type"))),
                }
            }
            texts.join("\n")
        }
        Some(other) => return Err(invalid_type(&param, "a string or an array", other)),
    };
    Ok(Turn { role, text })
}

fn finish_reason(answer: &Answer) -> &'static str {
    if answer.truncated { "length" } else { "stop" }
}

fn usage(answer: &Answer) -> Value {
    json!({
        "prompt_tokens": answer.input_tokens,
        "completion_tokens": answer.output_tokens,
        "total_tokens": answer.input_tokens.saturating_add(answer.output_tokens),
    })
}

/// The non-streamed answer: a `chat.completion`.
pub(crate) fn completion(prompt: &Prompt, answer: &Answer, id: &str, created: u64) -> Value {
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": prompt.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": answer.text, "refusal": null},
            "logprobs": null,
            "finish_reason": finish_reason(answer),
        }],
        "usage": usage(answer),
    })
}

fn frame(data: &Value) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

/// The streamed answer, one `data:` event per element.
pub(crate) fn events(prompt: &Prompt, answer: &Answer, id: &str, created: u64) -> Vec<Bytes> {
    let chunk = |choices: Value| {
        let mut chunk = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": prompt.model,
            "choices": choices,
        });
        if prompt.include_usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    };
    let choice = |delta: Value, finish: Option<&str>| json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]);
    let mut events = vec![frame(&chunk(choice(
        json!({"role": "assistant", "content": ""}),
        None,
    )))];
    for delta in answer.deltas() {
        events.push(frame(&chunk(choice(json!({ "content": delta }), None))));
    }
    events.push(frame(&chunk(choice(
        json!({}),
        Some(finish_reason(answer)),
    ))));
    if prompt.include_usage {
        let mut last = chunk(json!([]));
        last["usage"] = usage(answer);
        events.push(frame(&last));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

/// `GET /v1/models`.
pub(crate) fn models(models: &[String], created: u64) -> Value {
    let data: Vec<Value> = models
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": created, "owned_by": "edgebot-fake"}))
        .collect();
    json!({"object": "list", "data": data})
}
