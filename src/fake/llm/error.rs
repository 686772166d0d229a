//! The error answers of the fake LLM server, rendered in the shape of the provider the
//! request spoke: OpenAI's `{"error": {"message", "type", "param", "code"}}` or
//! Anthropic's `{"type": "error", "error": {"type", "message"}}`, with their statuses and
//! headers (`retry-after` on 429).

use serde_json::{Value, json};

use super::Provider;

/// An error answer; the `Display` text is its `message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ApiError {
    /// 400: the request is not one the API takes. `param` and `code` go into OpenAI's
    /// shape only.
    #[error("{message}")]
    Invalid {
        message: String,
        param: Option<String>,
        code: Option<&'static str>,
    },
    /// 401: the key is missing.
    #[error("no API key was sent; send it as {}", key_header(*.0))]
    MissingKey(Provider),
    /// 401: the key is not the configured one.
    #[error("the API key is not valid")]
    WrongKey,
    /// 404: no such endpoint.
    #[error("unknown endpoint: {method} {path}")]
    NotFound { method: String, path: String },
    /// 413: the body is over the limit.
    #[error("the request body is over {limit} bytes")]
    TooLarge { limit: usize },
    /// 429, from a fault.
    #[error("rate limit reached; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u32 },
    /// A 5xx, from a fault.
    #[error("the fake server answered {0}, as it was told to")]
    Server(u16),
}

fn key_header(provider: Provider) -> &'static str {
    match provider {
        Provider::OpenAi => "`Authorization: Bearer KEY`",
        Provider::Anthropic => "`x-api-key: KEY` (or `Authorization: Bearer KEY`)",
    }
}

impl ApiError {
    /// A 400 with OpenAI's `param` and `code`.
    pub(crate) fn invalid(
        message: impl Into<String>,
        param: Option<&str>,
        code: Option<&'static str>,
    ) -> ApiError {
        ApiError::Invalid {
            message: message.into(),
            param: param.map(str::to_owned),
            code,
        }
    }

    pub(crate) fn status(&self) -> u16 {
        match self {
            Self::Invalid { .. } => 400,
            Self::MissingKey(_) | Self::WrongKey => 401,
            Self::NotFound { .. } => 404,
            Self::TooLarge { .. } => 413,
            Self::RateLimited { .. } => 429,
            Self::Server(status) => *status,
        }
    }

    /// Headers that go with the answer, beyond its content type.
    pub(crate) fn headers(&self, provider: Provider) -> Vec<(&'static str, String)> {
        let Self::RateLimited { retry_after_secs } = self else {
            return Vec::new();
        };
        let mut headers = vec![("retry-after", retry_after_secs.to_string())];
        match provider {
            Provider::OpenAi => {
                headers.push(("x-ratelimit-remaining-requests", "0".to_owned()));
                headers.push(("x-ratelimit-reset-requests", format!("{retry_after_secs}s")));
            }
            Provider::Anthropic => {
                headers.push(("anthropic-ratelimit-requests-remaining", "0".to_owned()));
            }
        }
        headers
    }

    /// The body, in `provider`'s shape.
    pub(crate) fn body(&self, provider: Provider) -> Value {
        let message = self.to_string();
        match provider {
            Provider::OpenAi => {
                let (kind, param, code) = match self {
                    Self::Invalid { param, code, .. } => {
                        ("invalid_request_error", param.clone(), *code)
                    }
                    Self::MissingKey(_) => ("invalid_request_error", None, None),
                    Self::WrongKey => ("invalid_request_error", None, Some("invalid_api_key")),
                    Self::NotFound { .. } => ("invalid_request_error", None, Some("unknown_url")),
                    Self::TooLarge { .. } => ("invalid_request_error", None, None),
                    Self::RateLimited { .. } => ("requests", None, Some("rate_limit_exceeded")),
                    Self::Server(_) => ("server_error", None, None),
                };
                json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
            }
            Provider::Anthropic => {
                let kind = match self {
                    Self::Invalid { .. } => "invalid_request_error",
                    Self::MissingKey(_) | Self::WrongKey => "authentication_error",
                    Self::NotFound { .. } => "not_found_error",
                    Self::TooLarge { .. } => "request_too_large",
                    Self::RateLimited { .. } => "rate_limit_error",
                    Self::Server(529) => "overloaded_error",
                    Self::Server(_) => "api_error",
                };
                json!({"type": "error", "error": {"type": kind, "message": message}})
            }
        }
    }
}
