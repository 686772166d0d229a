//! Anthropic's Messages API as this client speaks it: the streamed request body (turns
//! made to alternate from the user's, as the API demands; temperature within its
//! 0.0..=1.0) and the named events read into pieces, usage and the end
//! (`message_stop`).

use super::failure::{Failure, describe};
use super::{Prompt, Read, Speaker, Tally, Turn, temperature};
use crate::net::sse::Event;
use serde::Deserialize;
use serde_json::{Value, json};

/// The request body. Anthropic refuses messages that do not alternate starting with the
/// user's, so turns of one speaker in a row (a question whose answer failed) are joined
/// with a blank line, and assistant turns before the first user turn (a history cut by
/// its token budget) are left out.
pub(super) fn body(model: &str, prompt: &Prompt<'_>) -> Value {
    let mut body = json!({
        "model": model,
        "max_tokens": prompt.max_tokens,
        "messages": messages(&prompt.turns),
        // The config allows OpenAI's 0.0..=2.0; Anthropic's scale ends at 1.0.
        "temperature": temperature(prompt.temperature.min(1.0)),
        "stream": true,
    });
    if !prompt.system.is_empty() {
        body["system"] = json!(prompt.system);
    }
    body
}

fn messages(turns: &[Turn<'_>]) -> Vec<Value> {
    let mut merged: Vec<(Speaker, String)> = Vec::with_capacity(turns.len());
    for turn in turns
        .iter()
        .skip_while(|turn| turn.speaker == Speaker::Assistant)
    {
        match merged.last_mut() {
            Some((speaker, text)) if *speaker == turn.speaker => {
                text.push_str("\n\n");
                text.push_str(turn.text);
            }
            _ => merged.push((turn.speaker, turn.text.to_owned())),
        }
    }
    merged
        .into_iter()
        .map(|(speaker, text)| {
            let role = match speaker {
                Speaker::User => "user",
                Speaker::Assistant => "assistant",
            };
            json!({"role": role, "content": text})
        })
        .collect()
}

/// One event of the stream, by its `type`, as far as the client reads it. Anthropic
/// may add event types; they are ignored, as its documentation asks.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamEvent {
    MessageStart {
        message: Started,
    },
    ContentBlockDelta {
        delta: BlockDelta,
    },
    MessageDelta {
        delta: Stop,
        usage: Option<Usage>,
    },
    MessageStop,
    Error {
        error: Value,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct Started {
    model: Option<String>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    /// Thinking, tool input, signatures: not part of the answer's text.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct Stop {
    stop_reason: Option<String>,
}

/// Counts so far; `message_delta`'s are cumulative.
#[derive(Deserialize)]
struct Usage {
    input_tokens: Option<u32>,
    output_tokens: Option<u32>,
}

impl Tally {
    fn add(&mut self, usage: Usage) {
        if usage.input_tokens.is_some() {
            self.input_tokens = usage.input_tokens;
        }
        if usage.output_tokens.is_some() {
            self.output_tokens = usage.output_tokens;
        }
    }
}

/// Reads one event of the stream into `tally`.
pub(super) fn read(event: &Event, tally: &mut Tally) -> Result<Read, Failure> {
    // serde_json's message may quote the offending value, which may be the answer's
    // text: only the event and the place are kept.
    let parsed: StreamEvent = serde_json::from_str(&event.data).map_err(|e| {
        Failure::InvalidResponse(format!(
            "a `{}` event is not the JSON the Messages API sends (at column {})",
            clip_name(&event.event),
            e.column()
        ))
    })?;
    Ok(match parsed {
        StreamEvent::MessageStart { message } => {
            tally.model = message.model;
            if let Some(usage) = message.usage {
                tally.add(usage);
            }
            Read::Nothing
        }
        StreamEvent::ContentBlockDelta {
            delta: BlockDelta::TextDelta { text },
        } if !text.is_empty() => Read::Piece(text),
        StreamEvent::MessageDelta { delta, usage } => {
            tally.truncated = delta.stop_reason.as_deref() == Some("max_tokens");
            if let Some(usage) = usage {
                tally.add(usage);
            }
            Read::Nothing
        }
        StreamEvent::MessageStop => Read::End,
        StreamEvent::Error { error } => {
            return Err(Failure::StoppedMidway(format!(
                "the stream reported an error: {}",
                describe(&error)
            )));
        }
        StreamEvent::ContentBlockDelta { .. } | StreamEvent::Other => Read::Nothing,
    })
}

/// An event name fit for an error message: the provider's, so short and plain.
fn clip_name(name: &str) -> &str {
    let end = name.char_indices().nth(40).map_or(name.len(), |(at, _)| at);
    &name[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, data: &str) -> Event {
        Event {
            event: name.into(),
            data: data.into(),
            id: String::new(),
        }
    }

    fn turn(speaker: Speaker, text: &str) -> Turn<'_> {
        Turn { speaker, text }
    }

    #[test]
    fn the_body_has_a_top_level_system_prompt_and_alternating_turns() {
        let prompt = Prompt {
            system: "Be brief.",
            turns: vec![
                turn(Speaker::User, "Hi"),
                turn(Speaker::Assistant, "Hello!"),
                turn(Speaker::User, "Ça va? 😀"),
            ],
            model: None,
            temperature: 0.7,
            max_tokens: 800,
        };
        assert_eq!(
            body("claude-x", &prompt),
            json!({
                "model": "claude-x",
                "system": "Be brief.",
                "messages": [
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello!"},
                    {"role": "user", "content": "Ça va? 😀"},
                ],
                "temperature": 0.7,
                "max_tokens": 800,
                "stream": true,
            })
        );
        let hot = Prompt {
            system: "",
            temperature: 1.5,
            ..prompt
        };
        let value = body("claude-x", &hot);
        assert_eq!(value["temperature"], json!(1.0));
        assert!(value.get("system").is_none(), "{value}");
    }

    #[test]
    fn turns_are_made_to_alternate_from_the_users() {
        let turns = [
            turn(Speaker::Assistant, "cut off"),
            turn(Speaker::User, "one"),
            turn(Speaker::User, "two"),
            turn(Speaker::Assistant, "answer"),
            turn(Speaker::Assistant, "more"),
            turn(Speaker::User, "three"),
        ];
        assert_eq!(
            messages(&turns),
            [
                json!({"role": "user", "content": "one\n\ntwo"}),
                json!({"role": "assistant", "content": "answer\n\nmore"}),
                json!({"role": "user", "content": "three"}),
            ]
        );
    }

    #[test]
    fn a_stream_reads_into_pieces_usage_and_the_end() {
        let mut tally = Tally::default();
        let stream = [
            (
                "message_start",
                r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"usage":{"input_tokens":25,"output_tokens":1}}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            ("ping", r#"{"type":"ping"}"#),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hm"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo ☀"}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},"usage":{"output_tokens":15}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ];
        let read: Vec<Read> = stream
            .iter()
            .map(|(name, data)| read(&event(name, data), &mut tally).unwrap())
            .collect();
        assert_eq!(
            read,
            [
                Read::Nothing,
                Read::Nothing,
                Read::Nothing,
                Read::Piece("Hel".into()),
                Read::Nothing,
                Read::Piece("lo ☀".into()),
                Read::Nothing,
                Read::Nothing,
                Read::End,
            ]
        );
        assert_eq!(
            tally,
            Tally {
                input_tokens: Some(25),
                output_tokens: Some(15),
                model: Some("claude-x".into()),
                finished: false,
                truncated: true,
            }
        );
    }

    #[test]
    fn errors_in_the_stream_and_broken_events_fail_without_quoting_the_text() {
        let mut tally = Tally::default();
        let error = read(
            &event(
                "error",
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ),
            &mut tally,
        )
        .unwrap_err();
        assert_eq!(
            error,
            Failure::StoppedMidway(
                "the stream reported an error: overloaded_error: Overloaded".into()
            )
        );
        let broken = read(
            &event(
                "content_block_delta",
                r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":["secret words"]}}"#,
            ),
            &mut tally,
        )
        .unwrap_err();
        assert!(matches!(&broken, Failure::InvalidResponse(_)), "{broken:?}");
        assert!(!broken.to_string().contains("secret"), "{broken}");
        assert_eq!(
            read(
                &event("brand_new", r#"{"type":"brand_new","x":1}"#),
                &mut tally
            ),
            Ok(Read::Nothing)
        );
    }
}
