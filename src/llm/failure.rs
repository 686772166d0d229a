//! Why one attempt at an LLM provider gave no answer, what that means for the next
//! attempt (retry the same provider after a wait, or go on to the next one), and the
//! `outcome` label the metrics and the `llm.call` span give it.

use crate::net::backoff::Backoff;
use std::time::Duration;

/// The longest `retry-after` the client waits for; past it the next provider is asked
/// instead, since the user is waiting.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// The longest provider error text kept (for the log line); the rest is cut.
const MAX_DETAIL_CHARS: usize = 300;

/// What a timeout was waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// The connection, the response head and the first chunk of the body (`timeout_ms`).
    FirstByte,
    /// The next chunk of a stream under way (`idle_timeout_ms`).
    NextChunk,
}

impl std::fmt::Display for Wait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Wait::FirstByte => "first byte",
            Wait::NextChunk => "next chunk of the stream",
        })
    }
}

/// Why an attempt failed. The texts name statuses, the provider's error type and
/// message, and places in the stream, never the prompt or the answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Failure {
    #[error("no call slot came free within the timeout")]
    Overloaded,
    #[error("connection failed: {0}")]
    Connection(String),
    #[error("no {0} within the timeout")]
    Timeout(Wait),
    #[error("rate limited (HTTP 429, retry-after {}): {detail}", seconds(*.retry_after))]
    RateLimited {
        retry_after: Option<Duration>,
        detail: String,
    },
    #[error("answered HTTP {status}: {detail}")]
    Status { status: u16, detail: String },
    #[error("the stream ended before its end marker: {0}")]
    StoppedMidway(String),
    #[error("the answer is not what the API promises: {0}")]
    InvalidResponse(String),
}

fn seconds(wait: Option<Duration>) -> String {
    wait.map_or_else(
        || "not given".to_owned(),
        |d| format!("{} s", d.as_secs_f64()),
    )
}

impl Failure {
    /// The `outcome` label of the metrics and the span.
    pub(crate) fn outcome(&self) -> &'static str {
        match self {
            Failure::Overloaded => "overloaded",
            Failure::Connection(_) => "connect_error",
            Failure::Timeout(_) => "timeout",
            Failure::RateLimited { .. } => "rate_limited",
            Failure::Status { status, .. } if *status >= 500 => "http_5xx",
            Failure::Status { .. } => "http_4xx",
            Failure::StoppedMidway(_) => "stopped_midway",
            Failure::InvalidResponse(_) => "invalid_response",
        }
    }

    /// The wait before trying the same provider again, or `None` when the next provider
    /// should be asked instead: a 4xx is the provider's considered answer, an invalid
    /// response would come again, a full provider stays full, and a `retry-after` past
    /// [`MAX_RETRY_AFTER`] is longer than a user waits.
    pub(crate) fn retry_wait(&self, backoff: &mut Backoff) -> Option<Duration> {
        match self {
            Failure::RateLimited {
                retry_after: Some(wait),
                ..
            } => (*wait <= MAX_RETRY_AFTER).then_some(*wait),
            Failure::RateLimited {
                retry_after: None, ..
            }
            | Failure::Connection(_)
            | Failure::Timeout(_)
            | Failure::StoppedMidway(_) => Some(backoff.next_wait()),
            Failure::Status { status, .. } if *status >= 500 => Some(backoff.next_wait()),
            Failure::Status { .. } | Failure::Overloaded | Failure::InvalidResponse(_) => None,
        }
    }

    /// The failure an error status stands for; `detail` is what the error body said.
    pub(crate) fn from_status(
        status: u16,
        retry_after: Option<Duration>,
        detail: String,
    ) -> Failure {
        if status == 429 {
            Failure::RateLimited {
                retry_after,
                detail,
            }
        } else {
            Failure::Status { status, detail }
        }
    }
}

/// `retry-after` as seconds (whole or not); an HTTP date or anything else is ignored,
/// and the backoff decides.
pub(crate) fn retry_after(headers: &hyper::HeaderMap) -> Option<Duration> {
    let value = headers.get(hyper::header::RETRY_AFTER)?.to_str().ok()?;
    let seconds: f64 = value.trim().parse().ok()?;
    // Anything past a day is as good as "not soon"; it also keeps the conversion exact.
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(86_400.0)))
}

/// What an error answer's body says. Both kinds put an object under `error` (OpenAI:
/// `{"error": {"message", "type", "code"}}`, Anthropic: `{"type": "error", "error":
/// {"type", "message"}}`); Ollama puts a plain text there.
pub(crate) fn error_detail(body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => match value.get("error") {
            Some(error) => describe(error),
            None => format!("a body without `error` ({} bytes)", body.len()),
        },
        Err(_) => format!("a body that is not JSON ({} bytes)", body.len()),
    }
}

/// `type/code: message` of an error object, or the text of an error that is one.
pub(crate) fn describe(error: &serde_json::Value) -> String {
    use serde_json::Value;
    if let Some(text) = error.as_str() {
        return clip(text);
    }
    let field = |name: &str| match error.get(name) {
        Some(Value::String(text)) => Some(text.clone()),
        Some(Value::Number(number)) => Some(number.to_string()),
        _ => None,
    };
    let kind = [field("type"), field("code")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("/");
    let message = field("message").unwrap_or_default();
    clip(&format!("{kind}: {message}"))
}

/// A provider's error text, cut to a length fit for one log line.
pub(crate) fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_DETAIL_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff() -> Backoff {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(1))
    }

    #[test]
    fn what_is_retried_and_what_goes_on_to_the_next_provider() {
        let status = |status| Failure::Status {
            status,
            detail: String::new(),
        };
        let rate_limited = |secs: Option<u64>| Failure::RateLimited {
            retry_after: secs.map(Duration::from_secs),
            detail: String::new(),
        };
        assert_eq!(
            rate_limited(Some(30)).retry_wait(&mut backoff()),
            Some(Duration::from_secs(30))
        );
        assert_eq!(rate_limited(Some(31)).retry_wait(&mut backoff()), None);
        for retried in [
            rate_limited(None),
            status(500),
            status(529),
            Failure::Timeout(Wait::NextChunk),
            Failure::StoppedMidway(String::new()),
            Failure::Connection(String::new()),
        ] {
            let wait = retried.retry_wait(&mut backoff());
            assert!(
                wait.is_some_and(|w| w <= Duration::from_millis(150)),
                "{retried:?}: {wait:?}"
            );
        }
        for not in [
            status(400),
            status(401),
            status(404),
            Failure::Overloaded,
            Failure::InvalidResponse(String::new()),
        ] {
            assert_eq!(not.retry_wait(&mut backoff()), None, "{not:?}");
        }
        assert_eq!(status(503).outcome(), "http_5xx");
        assert_eq!(status(499).outcome(), "http_4xx");
        assert_eq!(
            Failure::from_status(429, None, String::new()).outcome(),
            "rate_limited"
        );
    }

    #[test]
    fn retry_after_takes_seconds_and_ignores_dates() {
        let headers = |value: &str| {
            let mut headers = hyper::HeaderMap::new();
            headers.insert(
                hyper::header::RETRY_AFTER,
                hyper::header::HeaderValue::from_str(value).unwrap(),
            );
            headers
        };
        assert_eq!(retry_after(&headers("3")), Some(Duration::from_secs(3)));
        assert_eq!(
            retry_after(&headers("0.5")),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            retry_after(&headers("1e300")),
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(retry_after(&headers("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after(&headers("-1")), None);
        assert_eq!(retry_after(&hyper::HeaderMap::new()), None);
    }

    #[test]
    fn error_bodies_of_both_kinds_give_type_code_and_message() {
        assert_eq!(
            error_detail(
                br#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#
            ),
            "requests/rate_limit_exceeded: Rate limit reached"
        );
        assert_eq!(
            error_detail(
                br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
            ),
            "overloaded_error: Overloaded"
        );
        assert_eq!(
            error_detail(br#"{"error":"model \"x\" not found"}"#),
            "model \"x\" not found"
        );
        assert_eq!(
            error_detail(b"<html>502</html>"),
            "a body that is not JSON (16 bytes)"
        );
        assert_eq!(error_detail(b"{}"), "a body without `error` (2 bytes)");
    }

    #[test]
    fn clip_cuts_long_texts_at_a_character() {
        assert_eq!(clip("short"), "short");
        let long = "é".repeat(400);
        let clipped = clip(&long);
        assert_eq!(clipped.chars().count(), MAX_DETAIL_CHARS + 1);
        assert!(clipped.ends_with('…'));
    }
}
