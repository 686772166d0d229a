//! The Bot API client: HTTPS over hyper 1 with a keep-alive pool, per-call timeouts and
//! Telegram's errors as a typed enum.
//!
//! The base URL comes from the config (`EDGEBOT_API_URL`), so a local telegram-bot-api
//! server or the project's fake works the same as api.telegram.org. The token is part of
//! every URL and therefore never logged.

use crate::secret::Secret;
use crate::telegram::types::User;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use std::time::Duration;

/// Why a call did not succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// Telegram answered `{"ok":false,...}`.
    #[error("Telegram answered {code}: {description}")]
    Telegram {
        code: u16,
        description: String,
        retry_after: Option<u32>,
        migrate_to_chat_id: Option<i64>,
    },
    #[error("no answer from the Bot API within {0:?}")]
    Timeout(Duration),
    #[error("cannot reach the Bot API: {0}")]
    Network(String),
    #[error("unexpected answer from the Bot API: {0}")]
    InvalidResponse(String),
    #[error("invalid Bot API URL: {0}")]
    InvalidUrl(String),
}

impl ApiError {
    /// Worth another try later: flood waits, server errors, timeouts, lost connections.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            ApiError::Telegram { code, .. } => *code == 429 || *code >= 500,
            ApiError::Timeout(_) | ApiError::Network(_) => true,
            ApiError::InvalidResponse(_) | ApiError::InvalidUrl(_) => false,
        }
    }

    pub(crate) fn code(&self) -> Option<u16> {
        match self {
            ApiError::Telegram { code, .. } => Some(*code),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    ok: bool,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(default)]
    error_code: Option<u16>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<ResponseParameters>,
}

#[derive(Deserialize)]
struct ResponseParameters {
    #[serde(default)]
    retry_after: Option<u32>,
    #[serde(default)]
    migrate_to_chat_id: Option<i64>,
}

/// A Bot API client for one bot token. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Client {
    http: HyperClient<crate::net::Connector, Full<Bytes>>,
    /// `{api_url}/bot{token}/`
    base: String,
    timeout: Duration,
}

impl Client {
    pub fn new(api_url: &str, token: &Secret, timeout: Duration) -> Result<Client, ApiError> {
        let api_url = api_url.trim_end_matches('/');
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            return Err(ApiError::InvalidUrl(format!(
                "`{api_url}` must start with https:// or http://"
            )));
        }
        let connector = crate::net::https_connector(timeout)
            .map_err(|e| ApiError::Network(format!("name resolution is unusable: {e}")))?;
        let client = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .build(connector);
        Ok(Client {
            http: client,
            base: format!("{api_url}/bot{}/", token.expose()),
            timeout,
        })
    }

    /// Calls `method` with a JSON body and returns the raw JSON of `result`. The body is
    /// `Bytes` so that a retried call shares it instead of copying it.
    pub async fn call_raw(
        &self,
        method: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, ApiError> {
        let request = hyper::Request::post(format!("{}{method}", self.base))
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| ApiError::InvalidUrl(e.to_string()))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| ApiError::Network(describe(&e)))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| ApiError::Network(e.to_string()))?
                .to_bytes();
            Ok::<_, ApiError>((status, body))
        };
        let (status, body) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ApiError::Timeout(timeout))??;
        let envelope: Envelope<'_> = serde_json::from_slice(&body).map_err(|_| {
            ApiError::InvalidResponse(format!(
                "HTTP {status} with a body that is not the Bot API's JSON"
            ))
        })?;
        if envelope.ok {
            let result = envelope
                .result
                .ok_or_else(|| ApiError::InvalidResponse("ok without result".into()))?;
            return Ok(body.slice_ref(result.get().as_bytes()));
        }
        let parameters = envelope.parameters;
        Err(ApiError::Telegram {
            code: envelope.error_code.unwrap_or(status.as_u16()),
            description: envelope.description.unwrap_or_default(),
            retry_after: parameters.as_ref().and_then(|p| p.retry_after),
            migrate_to_chat_id: parameters.and_then(|p| p.migrate_to_chat_id),
        })
    }

    /// Calls `method` with JSON parameters and decodes its result.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        params: &serde_json::Value,
    ) -> Result<T, ApiError> {
        let body =
            serde_json::to_vec(params).map_err(|e| ApiError::InvalidResponse(e.to_string()))?;
        let raw = self
            .call_raw(method, Bytes::from(body), self.timeout)
            .await?;
        serde_json::from_slice(&raw)
            .map_err(|e| ApiError::InvalidResponse(format!("{method}: {e}")))
    }

    /// The per-call timeout for calls that do not choose their own.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub(crate) async fn get_me(&self) -> Result<User, ApiError> {
        self.call("getMe", &serde_json::json!({})).await
    }

    pub async fn set_webhook(
        &self,
        url: &str,
        secret: &Secret,
        allowed_updates: &[&str],
        max_connections: u8,
    ) -> Result<bool, ApiError> {
        self.call(
            "setWebhook",
            &serde_json::json!({
                "url": url,
                "secret_token": secret.expose(),
                "allowed_updates": allowed_updates,
                "max_connections": max_connections,
            }),
        )
        .await
    }

    pub(crate) async fn delete_webhook(&self) -> Result<bool, ApiError> {
        self.call(
            "deleteWebhook",
            &serde_json::json!({"drop_pending_updates": false}),
        )
        .await
    }

    /// Long-polls for updates from `offset`; each update comes back as its raw JSON, so
    /// the inbox stores exactly what Telegram sent.
    pub(crate) async fn get_updates(
        &self,
        offset: i64,
        limit: u8,
        timeout_secs: u32,
        allowed_updates: &[&str],
    ) -> Result<Vec<Box<RawValue>>, ApiError> {
        let body = serde_json::to_vec(&serde_json::json!({
            "offset": offset,
            "limit": limit,
            "timeout": timeout_secs,
            "allowed_updates": allowed_updates,
        }))
        .map_err(|e| ApiError::InvalidResponse(e.to_string()))?;
        // The server holds the request for up to `timeout_secs`: allow for that.
        let wait = Duration::from_secs(u64::from(timeout_secs)) + self.timeout;
        let raw = self.call_raw("getUpdates", Bytes::from(body), wait).await?;
        serde_json::from_slice(&raw)
            .map_err(|e| ApiError::InvalidResponse(format!("getUpdates: {e}")))
    }
}

/// A hyper error with its cause, which is where the useful part is.
fn describe(e: &hyper_util::client::legacy::Error) -> String {
    use std::error::Error;
    match e.source() {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::botapi::{FakeBotApi, FakeConfig, Fault};

    #[tokio::test]
    async fn typed_errors_and_results_against_the_fake() {
        let api = FakeBotApi::start(FakeConfig {
            valid_tokens: vec!["1:good".into()],
            ..FakeConfig::default()
        })
        .await
        .unwrap();
        let good = Client::new(
            &api.base_url(),
            &Secret::new("1:good"),
            Duration::from_secs(5),
        )
        .unwrap();
        let me = good.get_me().await.unwrap();
        assert!(!me.first_name.is_empty());

        let bad = Client::new(
            &api.base_url(),
            &Secret::new("1:bad"),
            Duration::from_secs(5),
        )
        .unwrap();
        let err = bad.get_me().await.unwrap_err();
        assert_eq!(err.code(), Some(401));
        assert!(!err.is_transient());

        api.inject(
            Fault::TooManyRequests { retry_after: 3 },
            1,
            Some("sendMessage"),
        );
        let err = good
            .call::<serde_json::Value>(
                "sendMessage",
                &serde_json::json!({"chat_id": 1, "text": "x"}),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ApiError::Telegram {
                    code: 429,
                    retry_after: Some(3),
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.is_transient());

        api.inject(Fault::Delay(Duration::from_millis(500)), 1, Some("getMe"));
        let slow = Client::new(
            &api.base_url(),
            &Secret::new("1:good"),
            Duration::from_millis(100),
        )
        .unwrap();
        assert!(matches!(slow.get_me().await, Err(ApiError::Timeout(_))));

        api.inject(Fault::DropConnection, 1, Some("getMe"));
        assert!(matches!(good.get_me().await, Err(ApiError::Network(_))));
        api.shutdown().await;
    }

    #[tokio::test]
    async fn an_unreachable_api_is_a_network_error() {
        let client = Client::new(
            "http://127.0.0.1:9",
            &Secret::new("1:x"),
            Duration::from_secs(2),
        )
        .unwrap();
        assert!(matches!(client.get_me().await, Err(ApiError::Network(_))));
        assert!(Client::new("ftp://x", &Secret::new("1:x"), Duration::from_secs(1)).is_err());
    }
}
