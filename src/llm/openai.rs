//! OpenAI's chat completions as this client speaks them (OpenAI, OpenRouter, Ollama,
//! vLLM, llama.cpp's server): the streamed request body, the `chat.completion.chunk`
//! events read into pieces, usage and the end (`data: [DONE]`, or a `finish_reason` from
//! a server that never sends it).

use super::failure::{Failure, describe};
use super::{Prompt, Read, Speaker, Tally, temperature};
use crate::net::sse::Event;
use serde::Deserialize;
use serde_json::{Value, json};

/// The request body: a system message when there is a system prompt, the turns in
/// order, streamed with the usage in the last chunk.
pub(super) fn body(model: &str, prompt: &Prompt<'_>) -> Value {
    let mut messages = Vec::with_capacity(prompt.turns.len() + 1);
    if !prompt.system.is_empty() {
        messages.push(json!({"role": "system", "content": prompt.system}));
    }
    for turn in &prompt.turns {
        let role = match turn.speaker {
            Speaker::User => "user",
            Speaker::Assistant => "assistant",
        };
        messages.push(json!({"role": role, "content": turn.text}));
    }
    // `max_tokens` rather than the newer `max_completion_tokens`: every compatible
    // server knows it.
    json!({
        "model": model,
        "messages": messages,
        "temperature": temperature(prompt.temperature),
        "max_tokens": prompt.max_tokens,
        "stream": true,
        "stream_options": {"include_usage": true},
    })
}

/// One `chat.completion.chunk`, as far as the client reads it; the rest is ignored.
#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<Usage>,
    model: Option<String>,
    /// Some servers report a failure inside the stream.
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Choice {
    delta: Option<Delta>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    content: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: u32,
    completion_tokens: u32,
}

/// Reads one event of the stream into `tally`.
pub(super) fn read(event: &Event, tally: &mut Tally) -> Result<Read, Failure> {
    if event.data.trim() == "[DONE]" {
        return Ok(Read::End);
    }
    // serde_json's message may quote the offending value, which may be the answer's
    // text: only the place is kept.
    let chunk: Chunk = serde_json::from_str(&event.data).map_err(|e| {
        Failure::InvalidResponse(format!(
            "a chunk is not the JSON of chat.completion.chunk (at column {})",
            e.column()
        ))
    })?;
    if let Some(error) = &chunk.error {
        return Err(Failure::StoppedMidway(format!(
            "the stream reported an error: {}",
            describe(error)
        )));
    }
    if tally.model.is_none() {
        tally.model = chunk.model;
    }
    if let Some(usage) = chunk.usage {
        tally.input_tokens = Some(usage.prompt_tokens);
        tally.output_tokens = Some(usage.completion_tokens);
    }
    // One choice was asked for (no `n`).
    let Some(choice) = chunk.choices.into_iter().next() else {
        return Ok(Read::Nothing);
    };
    if let Some(reason) = choice.finish_reason {
        tally.finished = true;
        tally.truncated = reason == "length";
    }
    match choice.delta.and_then(|d| d.content) {
        Some(piece) if !piece.is_empty() => Ok(Read::Piece(piece)),
        _ => Ok(Read::Nothing),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Turn;
    use super::*;

    fn event(data: &str) -> Event {
        Event {
            event: "message".into(),
            data: data.into(),
            id: String::new(),
        }
    }

    #[test]
    fn the_body_has_the_system_prompt_the_turns_in_order_and_asks_for_a_stream() {
        let prompt = Prompt {
            system: "Be brief.",
            turns: vec![
                Turn {
                    speaker: Speaker::User,
                    text: "Hi",
                },
                Turn {
                    speaker: Speaker::Assistant,
                    text: "Hello!",
                },
                Turn {
                    speaker: Speaker::User,
                    text: "Как дела? 😀",
                },
            ],
            model: None,
            temperature: 0.7,
            max_tokens: 800,
        };
        assert_eq!(
            body("llama3.2", &prompt),
            json!({
                "model": "llama3.2",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello!"},
                    {"role": "user", "content": "Как дела? 😀"},
                ],
                "temperature": 0.7,
                "max_tokens": 800,
                "stream": true,
                "stream_options": {"include_usage": true},
            })
        );
        let bare = Prompt {
            system: "",
            temperature: 2.0,
            ..prompt
        };
        let value = body("m", &bare);
        assert_eq!(
            value["messages"][0],
            json!({"role": "user", "content": "Hi"})
        );
        assert_eq!(value["temperature"], json!(2.0));
        // The exact text sent, not only its value: the f32 widened as it is would be
        // 0.30000001192092896.
        let sent = body(
            "m",
            &Prompt {
                temperature: 0.3,
                ..bare
            },
        )
        .to_string();
        assert!(sent.ends_with(",\"temperature\":0.3}"), "{sent}");
    }

    #[test]
    fn a_stream_reads_into_pieces_usage_and_the_end() {
        let mut tally = Tally::default();
        let stream = [
            r#"{"id":"c1","object":"chat.completion.chunk","model":"gpt-x","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}"#,
            r#"{"model":"gpt-x","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"#,
            r#"{"model":"gpt-x","choices":[{"index":0,"delta":{"content":"lo ☀"},"finish_reason":null}]}"#,
            r#"{"model":"gpt-x","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"model":"gpt-x","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#,
            "[DONE]",
        ];
        let read: Vec<Read> = stream
            .iter()
            .map(|data| read(&event(data), &mut tally).unwrap())
            .collect();
        assert_eq!(
            read,
            [
                Read::Nothing,
                Read::Piece("Hel".into()),
                Read::Piece("lo ☀".into()),
                Read::Nothing,
                Read::Nothing,
                Read::End,
            ]
        );
        assert_eq!(
            tally,
            Tally {
                input_tokens: Some(12),
                output_tokens: Some(3),
                model: Some("gpt-x".into()),
                finished: true,
                truncated: false,
            }
        );
    }

    #[test]
    fn length_is_a_truncated_answer_and_null_deltas_are_nothing() {
        let mut tally = Tally::default();
        let last = r#"{"choices":[{"index":0,"delta":null,"finish_reason":"length"}]}"#;
        assert_eq!(read(&event(last), &mut tally), Ok(Read::Nothing));
        assert!(tally.finished && tally.truncated);
        assert_eq!(tally.input_tokens, None);
    }

    #[test]
    fn broken_chunks_and_errors_in_the_stream_fail_without_quoting_the_text() {
        let mut tally = Tally::default();
        let wrong = read(
            &event(r#"{"choices":[{"delta":{"content":["secret words"]}}]}"#),
            &mut tally,
        )
        .unwrap_err();
        assert!(matches!(&wrong, Failure::InvalidResponse(_)), "{wrong:?}");
        assert!(!wrong.to_string().contains("secret"), "{wrong}");
        assert!(matches!(
            read(&event("not json"), &mut tally),
            Err(Failure::InvalidResponse(_))
        ));
        let error = read(
            &event(r#"{"error":{"message":"overloaded","type":"server_error","code":null}}"#),
            &mut tally,
        )
        .unwrap_err();
        assert_eq!(
            error,
            Failure::StoppedMidway("the stream reported an error: server_error: overloaded".into())
        );
    }
}
