//! The service contract, version 1: the JSON edgebot POSTs to a service and the JSON it
//! takes back. `SERVICE_CONTRACTS.md` documents it with a JSON Schema for each side;
//! `tests/services.rs` holds the requests edgebot really sends against the request
//! schema, and `tests/service_contract.rs` the document's examples and limits against
//! both, so the document and the code cannot drift apart.
//!
//! A response is read leniently where that is safe (unknown fields are ignored, absent
//! lists are empty) and strictly where a mistake would reach a user (an unknown action,
//! a text Telegram would refuse, an array where an object belongs). What is wrong with a
//! refused response is described by where it is, never by what it says: the user's
//! words may be in it.

use serde::de::{MapAccess, Visitor, value::MapAccessDeserializer};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use std::marker::PhantomData;

/// The contract version this build speaks; requests carry it as `version`.
pub(crate) const VERSION: u32 = 1;

/// Longest accepted response body. A reply is a few messages; anything near this is a
/// mistake, and reading it whole must not cost the process its memory.
pub(crate) const MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// Telegram's own limits, checked here so the service learns of a mistake from its
/// request id in edgebot's log rather than from a message that never arrives. Telegram
/// counts a text's length in UTF-16 code units (an emoji is two).
const MAX_TEXT_UNITS: usize = 4096;
const MAX_CALLBACK_TEXT_UNITS: usize = 200;
const MAX_CALLBACK_DATA_BYTES: usize = 64;
const MAX_BUTTONS: usize = 100;
/// More actions than this for one update would run into the chat's flood limit.
const MAX_ACTIONS: usize = 10;
const MAX_EVENTS: usize = 10;
const MAX_EVENT_NAME: usize = 64;
const MAX_EVENT_DATA_BYTES: usize = 1024;
/// A session's own strings and its data, as stored for the next request.
const MAX_SESSION_STRING: usize = 256;
pub(crate) const MAX_SESSION_DATA_BYTES: usize = 16 * 1024;
/// A session lives from one second to seven days, like `storage.session_ttl_secs`.
const SESSION_TTL_SECS: std::ops::RangeInclusive<u32> = 1..=604_800;

/// What edgebot sends for one update.
#[derive(Debug, Serialize)]
pub(crate) struct Request<'a> {
    pub version: u32,
    /// The `name` of the service in the config.
    pub service: &'a str,
    /// New for every time an update is handled; the retry of a call carries the same one.
    pub request_id: &'a str,
    /// The same whenever this update reaches this service, also after a crash or a
    /// retry, so that the service can recognise a repeat.
    pub idempotency_key: &'a str,
    /// W3C trace context of the call's span (also sent as the `traceparent` header).
    pub traceparent: &'a str,
    pub update: &'a UpdateInfo<'a>,
    /// Absent for updates without a sender (a channel post).
    pub user: Option<&'a UserInfo<'a>>,
    pub chat: &'a ChatInfo<'a>,
    pub session: &'a SessionInfo<'a>,
}

#[derive(Debug, Serialize)]
pub(crate) struct UpdateInfo<'a> {
    pub update_id: i64,
    /// `message`, `edited_message`, `callback_query`, … as the Bot API names the field.
    pub kind: &'a str,
    /// The command without its slash and bot name, for a command.
    pub command: Option<&'a str>,
    /// The text after the command, empty otherwise.
    pub args: &'a str,
    /// The message's text or caption.
    pub text: Option<&'a str>,
    pub callback_data: Option<&'a str>,
    /// The message that arrived, or the one whose button was pressed.
    pub message_id: Option<i64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct UserInfo<'a> {
    pub id: i64,
    pub first_name: &'a str,
    pub last_name: Option<&'a str>,
    pub username: Option<&'a str>,
    pub language_code: Option<&'a str>,
    /// `user` or `admin`, as the registry knows them.
    pub role: &'a str,
    /// Whether this update is the first edgebot has seen from them.
    pub is_new: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct ChatInfo<'a> {
    pub id: i64,
    /// `private`, `group`, `supergroup`, `channel` or `other`.
    pub kind: &'a str,
    pub title: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub(crate) struct SessionInfo<'a> {
    pub internal_user_id: Option<&'a str>,
    pub state: Option<&'a str>,
    /// A JSON object as text (as the store keeps it), `{}` when the session is new.
    #[serde(serialize_with = "raw_json")]
    pub data: &'a str,
    /// Unix seconds; absent when there is no session yet.
    pub expires_at: Option<i64>,
}

/// Writes JSON text as it is, after checking that it is JSON.
fn raw_json<S: serde::Serializer>(text: &&str, serializer: S) -> Result<S::Ok, S::Error> {
    let raw: &RawValue = serde_json::from_str(text).map_err(serde::ser::Error::custom)?;
    raw.serialize(serializer)
}

/// A JSON object and nothing else: serde would also build a struct from an array.
#[derive(Debug)]
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(ObjectVisitor(PhantomData))
            .map(Object)
    }
}

/// A service's answer as it arrives; [`Response::check`] turns it into a [`Reply`].
#[derive(Debug)]
pub struct Response(ResponseSpec);

#[derive(Debug, Deserialize)]
struct ResponseSpec {
    #[serde(default)]
    actions: Vec<Object<ActionSpec>>,
    #[serde(default)]
    session: Option<Object<SessionSpec>>,
    #[serde(default)]
    events: Vec<Object<EventSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ActionSpec {
    Send {
        text: String,
        #[serde(default)]
        format: Format,
        #[serde(default)]
        keyboard: Vec<Vec<Object<Button>>>,
        /// Send as a reply to the message that arrived.
        #[serde(default)]
        reply: bool,
    },
    Edit {
        text: String,
        #[serde(default)]
        format: Format,
        #[serde(default)]
        keyboard: Vec<Vec<Object<Button>>>,
    },
    AnswerCallback {
        #[serde(default)]
        text: Option<String>,
        #[serde(default)]
        alert: bool,
    },
    Delete,
}

/// How Telegram reads a text: as it is, or as its HTML subset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    #[default]
    Plain,
    Html,
}

/// An inline button: it sends `callback_data` back, or opens `url`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Button {
    pub text: String,
    #[serde(default)]
    pub callback_data: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SessionSpec {
    /// Ends the session: the next request starts with none.
    #[serde(default)]
    end: bool,
    #[serde(default)]
    internal_user_id: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    data: Option<Box<RawValue>>,
    #[serde(default)]
    ttl_secs: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct EventSpec {
    name: String,
    #[serde(default)]
    data: Option<Box<RawValue>>,
}

/// A response that passed every check.
#[derive(Debug, PartialEq)]
pub struct Reply {
    pub actions: Vec<ReplyAction>,
    pub session: SessionOutcome,
    pub events: Vec<ReplyEvent>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReplyAction {
    Send {
        text: String,
        format: Format,
        keyboard: Vec<Vec<Button>>,
        reply: bool,
    },
    /// Edits the message whose button was pressed.
    Edit {
        text: String,
        format: Format,
        keyboard: Vec<Vec<Button>>,
    },
    AnswerCallback {
        text: Option<String>,
        alert: bool,
    },
    /// Deletes the message that arrived, or the one whose button was pressed.
    Delete,
}

/// What the response does to the session.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionOutcome {
    /// No `session` key: it stays as it was (and lives on, since it was used).
    Keep,
    /// `"end": true`.
    End,
    /// The session becomes exactly this.
    Set {
        internal_user_id: Option<String>,
        state: Option<String>,
        /// A JSON object as text.
        data: String,
        ttl_secs: Option<u32>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReplyEvent {
    pub name: String,
    /// A JSON object as text, `{}` when the service sent none.
    pub data: String,
}

/// Why a response was refused: where the problem is, in the response's own terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(String);

impl Invalid {
    pub(crate) fn too_large() -> Invalid {
        Invalid(format!(
            "the body is larger than {} KiB",
            MAX_RESPONSE_BYTES / 1024
        ))
    }
}

/// What the update that the service answered allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answering {
    /// A message: there is no button to answer or message of the bot's to edit.
    Message,
    /// A button press under a message of the bot's.
    Callback,
    /// A button press of an inline-mode message: no message to edit or delete.
    InlineCallback,
}

impl Response {
    /// Parses a body. A JSON error names its kind and place, not the text around it.
    pub fn parse(body: &[u8]) -> Result<Response, Invalid> {
        serde_json::from_slice::<Object<ResponseSpec>>(body)
            .map(|Object(spec)| Response(spec))
            .map_err(|e| {
                let what = match e.classify() {
                    serde_json::error::Category::Io => "unreadable",
                    serde_json::error::Category::Syntax => "not JSON",
                    serde_json::error::Category::Eof => "cut short",
                    serde_json::error::Category::Data => "not the contract's shape",
                };
                Invalid(format!(
                    "the body is {what} (line {}, column {})",
                    e.line(),
                    e.column()
                ))
            })
    }

    /// Checks every limit of the contract and Telegram's, and what `answering` allows.
    pub fn check(self, answering: Answering) -> Result<Reply, Invalid> {
        let spec = self.0;
        if spec.actions.len() > MAX_ACTIONS {
            return Err(Invalid(format!("more than {MAX_ACTIONS} actions")));
        }
        if spec.events.len() > MAX_EVENTS {
            return Err(Invalid(format!("more than {MAX_EVENTS} events")));
        }
        let answers = spec
            .actions
            .iter()
            .filter(|a| matches!(a.0, ActionSpec::AnswerCallback { .. }))
            .count();
        if answers > 1 {
            return Err(Invalid(
                "more than one `answer_callback`: a button press takes one answer".into(),
            ));
        }
        let actions = spec
            .actions
            .into_iter()
            .enumerate()
            .map(|(i, Object(action))| {
                check_action(action, answering).map_err(|e| Invalid(format!("actions[{i}]: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let session = match spec.session {
            None => SessionOutcome::Keep,
            Some(Object(session)) => {
                check_session(session).map_err(|e| Invalid(format!("session: {e}")))?
            }
        };
        let events = spec
            .events
            .into_iter()
            .enumerate()
            .map(|(i, Object(event))| {
                check_event(event).map_err(|e| Invalid(format!("events[{i}]: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Reply {
            actions,
            session,
            events,
        })
    }
}

fn check_action(action: ActionSpec, answering: Answering) -> Result<ReplyAction, String> {
    Ok(match action {
        ActionSpec::Send {
            text,
            format,
            keyboard,
            reply,
        } => {
            check_text(&text, MAX_TEXT_UNITS)?;
            let keyboard = check_keyboard(keyboard)?;
            ReplyAction::Send {
                text,
                format,
                keyboard,
                reply,
            }
        }
        ActionSpec::Edit {
            text,
            format,
            keyboard,
        } => {
            if answering != Answering::Callback {
                return Err("`edit` needs a button press under a message".into());
            }
            check_text(&text, MAX_TEXT_UNITS)?;
            let keyboard = check_keyboard(keyboard)?;
            ReplyAction::Edit {
                text,
                format,
                keyboard,
            }
        }
        ActionSpec::AnswerCallback { text, alert } => {
            if answering == Answering::Message {
                return Err("`answer_callback` needs a button press".into());
            }
            if let Some(text) = &text {
                check_text(text, MAX_CALLBACK_TEXT_UNITS)?;
            }
            ReplyAction::AnswerCallback { text, alert }
        }
        ActionSpec::Delete => {
            if answering == Answering::InlineCallback {
                return Err("`delete` needs a message".into());
            }
            ReplyAction::Delete
        }
    })
}

fn check_text(text: &str, max_units: usize) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err("`text` is empty".into());
    }
    if text.encode_utf16().count() > max_units {
        return Err(format!(
            "`text` is longer than {max_units} UTF-16 code units, as Telegram counts"
        ));
    }
    Ok(())
}

/// The keyboard's buttons, if every one of them is one Telegram takes.
fn check_keyboard(keyboard: Vec<Vec<Object<Button>>>) -> Result<Vec<Vec<Button>>, String> {
    let keyboard: Vec<Vec<Button>> = keyboard
        .into_iter()
        .map(|row| row.into_iter().map(|Object(button)| button).collect())
        .collect();
    if keyboard.iter().map(Vec::len).sum::<usize>() > MAX_BUTTONS {
        return Err(format!("`keyboard` has more than {MAX_BUTTONS} buttons"));
    }
    for (r, row) in keyboard.iter().enumerate() {
        for (c, button) in row.iter().enumerate() {
            let at = format!("`keyboard[{r}][{c}]`");
            if button.text.trim().is_empty() {
                return Err(format!("{at} has no text"));
            }
            match (&button.callback_data, &button.url) {
                (Some(data), None) if (1..=MAX_CALLBACK_DATA_BYTES).contains(&data.len()) => {}
                (None, Some(url))
                    if url.starts_with("https://")
                        || url.starts_with("http://")
                        || url.starts_with("tg://") => {}
                _ => {
                    return Err(format!(
                        "{at} needs either `callback_data` (1-{MAX_CALLBACK_DATA_BYTES} bytes) or an http(s):// or tg:// `url`"
                    ));
                }
            }
        }
    }
    Ok(keyboard)
}

fn check_session(spec: SessionSpec) -> Result<SessionOutcome, String> {
    if spec.end {
        return Ok(SessionOutcome::End);
    }
    for (key, value) in [
        ("internal_user_id", &spec.internal_user_id),
        ("state", &spec.state),
    ] {
        if value.as_ref().is_some_and(|v| v.len() > MAX_SESSION_STRING) {
            return Err(format!("`{key}` is longer than {MAX_SESSION_STRING} bytes"));
        }
    }
    if let Some(ttl) = spec.ttl_secs
        && !SESSION_TTL_SECS.contains(&ttl)
    {
        return Err(format!(
            "`ttl_secs` is outside {}..={}",
            SESSION_TTL_SECS.start(),
            SESSION_TTL_SECS.end()
        ));
    }
    let data = object_text(spec.data.as_deref(), MAX_SESSION_DATA_BYTES, "data")?;
    Ok(SessionOutcome::Set {
        internal_user_id: spec.internal_user_id,
        state: spec.state,
        data,
        ttl_secs: spec.ttl_secs,
    })
}

fn check_event(event: EventSpec) -> Result<ReplyEvent, String> {
    let name_ok = (1..=MAX_EVENT_NAME).contains(&event.name.len())
        && event
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if !name_ok {
        return Err(format!(
            "`name` must be 1-{MAX_EVENT_NAME} of a-z, 0-9, `_`, `.`, `-`"
        ));
    }
    let data = object_text(event.data.as_deref(), MAX_EVENT_DATA_BYTES, "data")?;
    Ok(ReplyEvent {
        name: event.name,
        data,
    })
}

/// A JSON object given as raw text, within `max` bytes; `{}` when absent or null.
fn object_text(raw: Option<&RawValue>, max: usize, key: &str) -> Result<String, String> {
    let Some(raw) = raw.filter(|r| r.get() != "null") else {
        return Ok("{}".into());
    };
    if !raw.get().starts_with('{') {
        return Err(format!("`{key}` must be a JSON object"));
    }
    if raw.get().len() > max {
        return Err(format!("`{key}` is larger than {max} bytes"));
    }
    Ok(raw.get().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &str, answering: Answering) -> Result<Reply, Invalid> {
        Response::parse(body.as_bytes())?.check(answering)
    }

    #[test]
    fn the_design_example_is_accepted_and_unknown_fields_are_ignored() {
        let reply = check(
            r#"{"actions": [{"type": "send", "text": "Hello", "keyboard": [[{"text": "Go", "callback_data": "go"}]], "colour": "red"},
                            {"type": "edit", "text": "…"}, {"type": "answer_callback", "text": "…", "alert": false},
                            {"type": "delete"}],
                "session": {"internal_user_id": "u-17", "state": "…", "data": {}, "ttl_secs": 86400},
                "future": true}"#,
            Answering::Callback,
        )
        .unwrap();
        assert_eq!(reply.actions.len(), 4);
        assert_eq!(
            reply.session,
            SessionOutcome::Set {
                internal_user_id: Some("u-17".into()),
                state: Some("…".into()),
                data: "{}".into(),
                ttl_secs: Some(86400)
            }
        );
        assert_eq!(
            check("{}", Answering::Message).unwrap().session,
            SessionOutcome::Keep
        );
    }

    #[test]
    fn refusals_say_where_never_what() {
        let secret = "my card number is 4111";
        let cases = [
            (
                format!(r#"{{"actions": [{{"type": "shout", "text": "{secret}"}}]}}"#),
                "not the contract's shape",
            ),
            (
                format!(r#"{{"actions": [{{"type": "send", "text": "{secret}""#),
                "cut short",
            ),
            (format!("<html>{secret}</html>"), "not JSON"),
            (
                format!(
                    r#"{{"actions": [{{"type": "send", "text": "{}"}}]}}"#,
                    "x".repeat(4097)
                ),
                "actions[0]: `text` is longer",
            ),
            (
                r#"{"actions": [{"type": "edit", "text": "x"}]}"#.into(),
                "actions[0]: `edit` needs",
            ),
            (
                r#"{"actions": [{"type": "send", "text": "x", "keyboard": [[{"text": "a"}]]}]}"#
                    .into(),
                "keyboard[0][0]",
            ),
            (
                r#"{"session": {"ttl_secs": 0}}"#.into(),
                "session: `ttl_secs`",
            ),
            (
                r#"{"session": {"data": [1]}}"#.into(),
                "session: `data` must be a JSON object",
            ),
            (
                r#"{"events": [{"name": "Has Space"}]}"#.into(),
                "events[0]: `name`",
            ),
            ("[]".into(), "not the contract's shape"),
            (r#"{"session": []}"#.into(), "not the contract's shape"),
            (
                r#"{"actions": [["delete"]]}"#.into(),
                "not the contract's shape",
            ),
            (
                format!(
                    r#"{{"actions": [{{"type": "send", "text": "{}"}}]}}"#,
                    "😀".repeat(2049)
                ),
                "longer than 4096 UTF-16 code units",
            ),
        ];
        for (body, expected) in cases {
            let error = check(&body, Answering::Message).unwrap_err().to_string();
            assert!(error.contains(expected), "{error:?} for {body:.80}");
            assert!(!error.contains("4111"), "{error:?} repeats the body");
        }
    }

    #[test]
    fn a_button_press_takes_one_answer_and_emoji_count_twice() {
        let two = r#"{"actions": [{"type": "answer_callback"}, {"type": "answer_callback"}]}"#;
        assert!(check(two, Answering::Callback).is_err());
        let fits = format!(
            r#"{{"actions": [{{"type": "send", "text": "{}"}}]}}"#,
            "😀".repeat(2048)
        );
        assert!(check(&fits, Answering::Message).is_ok());
    }

    #[test]
    fn what_an_update_allows() {
        let answer = r#"{"actions": [{"type": "answer_callback", "alert": true}]}"#;
        assert!(check(answer, Answering::Message).is_err());
        assert!(check(answer, Answering::InlineCallback).is_ok());
        assert!(
            check(
                r#"{"actions": [{"type": "delete"}]}"#,
                Answering::InlineCallback
            )
            .is_err()
        );
        assert_eq!(
            check(r#"{"session": {"end": true}}"#, Answering::Message)
                .unwrap()
                .session,
            SessionOutcome::End
        );
        let events = check(
            r#"{"events": [{"name": "matched.v1", "data": {"with": 17}}, {"name": "x"}]}"#,
            Answering::Message,
        )
        .unwrap()
        .events;
        assert_eq!(events[0].data, r#"{"with": 17}"#);
        assert_eq!(events[1].data, "{}");
    }
}
