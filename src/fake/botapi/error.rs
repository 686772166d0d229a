//! Errors of the fake Bot API: the Telegram-style error answers it sends, and
//! the failures of its client-side helpers.

use serde_json::{Value, json};

/// An error answer, rendered exactly like Telegram renders it: the `Display`
/// text is the `description` field of the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("Bad Request: {0}")]
    BadRequest(String),
    #[error("Unauthorized")]
    Unauthorized,
    #[error("Forbidden: {0}")]
    Forbidden(&'static str),
    #[error("Not Found")]
    NotFound,
    #[error("Conflict: {0}")]
    Conflict(&'static str),
    #[error("Request Entity Too Large")]
    TooLarge,
    #[error("Too Many Requests: retry after {retry_after}")]
    TooManyRequests { retry_after: u32 },
    #[error("{}", server_reason(*.0))]
    Server(u16),
}

fn server_reason(status: u16) -> &'static str {
    hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Internal Server Error")
}

impl ApiError {
    pub(crate) fn bad_request(description: impl Into<String>) -> Self {
        Self::BadRequest(description.into())
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::Unauthorized => 401,
            Self::Forbidden(_) => 403,
            Self::NotFound => 404,
            Self::Conflict(_) => 409,
            Self::TooLarge => 413,
            Self::TooManyRequests { .. } => 429,
            Self::Server(status) => *status,
        }
    }

    pub(crate) fn body(&self) -> Value {
        let mut body = json!({
            "ok": false,
            "error_code": self.status(),
            "description": self.to_string(),
        });
        if let Self::TooManyRequests { retry_after } = self {
            body["parameters"] = json!({ "retry_after": retry_after });
        }
        body
    }
}

/// Failure of [`FakeBotApi::deliver_webhook`](super::FakeBotApi::deliver_webhook).
#[derive(Debug, thiserror::Error)]
pub enum FakeError {
    #[error("no webhook is set")]
    NoWebhook,
    #[error("webhook url {0:?} is not a plain http:// url the fake can reach")]
    UnsupportedUrl(String),
    #[error("webhook connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("webhook request failed: {0}")]
    Http(#[from] hyper::Error),
    #[error("webhook request could not be built: {0}")]
    Request(#[from] hyper::http::Error),
}
