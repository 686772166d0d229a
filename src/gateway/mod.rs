//! The gateway: calls to the internal HTTP services that routes name (`[[services]]`).
//!
//! Each call POSTs the contract's request (`contract`) and reads its response, under the
//! service's limits: a timeout per attempt, a cap on calls in flight, a circuit breaker
//! (`breaker`), and retries only where a repeat is safe — a timeout, a connection error
//! or a 5xx, never a 4xx — with the same idempotency key, so the service can tell a
//! repeat. Every call is a `service.call` span whose W3C `traceparent` the service gets,
//! and is counted by outcome in the metrics. What a failure means for the user (the
//! apology) is the handler's business; this module knows nothing of Telegram.

pub(crate) mod breaker;
pub mod contract;

use crate::config::ServiceConfig;
use crate::net::backoff::Backoff;
use crate::telemetry::metrics::{Metrics, ServiceLabels, ServiceOutcomeLabels};
use breaker::{Admission, Breaker};
use bytes::Bytes;
use contract::{Answering, Invalid, Reply, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue, USER_AGENT};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tracing::Instrument;

/// The first wait before a retry; the one backoff doubles it from there.
const RETRY_WAIT: Duration = Duration::from_millis(50);
const RETRY_WAIT_MAX: Duration = Duration::from_secs(1);

type Client = HyperClient<crate::net::Connector, Full<Bytes>>;

/// Why the gateway could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("services: name resolution is unusable: {0}")]
    Resolver(String),
    #[error("service `{name}`: {message}")]
    Config { name: String, message: String },
}

/// Why a call gave no reply; the user gets the service's apology.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error("no service of this name")]
    Unknown,
    #[error("the circuit breaker is open")]
    BreakerOpen,
    #[error("every call slot stayed busy for the whole timeout")]
    Overloaded,
    #[error("no answer within the timeout")]
    Timeout,
    #[error("connection failed: {0}")]
    Connection(String),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("the response breaks the contract: {0}")]
    Invalid(#[from] Invalid),
}

impl Failure {
    /// The `outcome` label of the metrics.
    pub(crate) fn outcome(&self) -> &'static str {
        match self {
            Failure::Unknown => "unknown_service",
            Failure::BreakerOpen => "breaker_open",
            Failure::Overloaded => "overloaded",
            Failure::Timeout => "timeout",
            Failure::Connection(_) => "connect_error",
            Failure::Status(status) if *status >= 500 => "http_5xx",
            Failure::Status(_) => "http_4xx",
            Failure::Invalid(_) => "invalid_response",
        }
    }

    /// Whether the same request may be sent again: it may not have arrived, or the
    /// service failed on its side. A 4xx is the service's considered answer.
    fn retryable(&self) -> bool {
        match self {
            Failure::Timeout | Failure::Connection(_) => true,
            Failure::Status(status) => *status >= 500,
            _ => false,
        }
    }

    /// Whether it says the service is unwell, for the breaker.
    fn unhealthy(&self) -> bool {
        self.retryable() || matches!(self, Failure::Invalid(_))
    }
}

/// What the handler knows about an update, for [`Services::call`] to wrap in a request.
pub(crate) struct Call<'a> {
    pub update: contract::UpdateInfo<'a>,
    pub user: Option<contract::UserInfo<'a>>,
    pub chat: contract::ChatInfo<'a>,
    pub session: contract::SessionInfo<'a>,
    pub answering: Answering,
}

/// One `[[services]]` entry, ready to call.
struct Service {
    name: String,
    uri: hyper::Uri,
    timeout: Duration,
    retries: u8,
    apology: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    slots: Semaphore,
    breaker: Mutex<Breaker>,
    labels: ServiceLabels,
}

/// Every configured service, by name.
pub(crate) struct Services {
    /// Built only when there is a service to call.
    http: Option<Client>,
    by_name: HashMap<String, Service>,
    metrics: Arc<Metrics>,
}

impl Services {
    /// No services: a bot whose routes name none.
    pub(crate) fn none(metrics: Arc<Metrics>) -> Services {
        Services {
            http: None,
            by_name: HashMap::new(),
            metrics,
        }
    }

    pub(crate) fn from_config(
        configs: &[ServiceConfig],
        metrics: Arc<Metrics>,
    ) -> Result<Services, GatewayError> {
        let mut services = Services::none(metrics);
        if configs.is_empty() {
            return Ok(services);
        }
        let longest = configs.iter().map(|c| c.timeout_ms).max().unwrap_or(3000);
        let connector = crate::net::https_connector(Duration::from_millis(u64::from(longest)))
            .map_err(|e| GatewayError::Resolver(e.to_string()))?;
        services.http = Some(
            HyperClient::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
        );
        for config in configs {
            let service = Service::from_config(config)?;
            services
                .metrics
                .service_breaker
                .get_or_create(&service.labels)
                .set(0);
            services.by_name.insert(config.name.clone(), service);
        }
        Ok(services)
    }

    /// What the user reads when `name` fails.
    pub(crate) fn apology(&self, name: &str) -> &str {
        self.by_name
            .get(name)
            .map_or(crate::config::services::DEFAULT_APOLOGY, |s| &s.apology)
    }

    /// Calls service `name` about one update. `update_id` and the name make the
    /// idempotency key, which is therefore the same whenever this update reaches this
    /// service, also after a crash.
    pub(crate) async fn call(&self, name: &str, call: &Call<'_>) -> Result<Reply, Failure> {
        let (Some(http), Some(service)) = (&self.http, self.by_name.get(name)) else {
            return Err(Failure::Unknown);
        };
        let request_id = format!("{:032x}", fastrand::u128(..));
        let span = tracing::info_span!(
            "service.call",
            service = name,
            request_id = %request_id,
            outcome = tracing::field::Empty,
        );
        let outcome = service
            .call(http, &self.metrics, call, &request_id, &span)
            .instrument(span.clone())
            .await;
        let label = outcome.as_ref().map_or_else(Failure::outcome, |_| "ok");
        span.record("outcome", label);
        self.metrics
            .service_calls
            .get_or_create(&ServiceOutcomeLabels {
                service: service.name.clone(),
                outcome: label,
            })
            .inc();
        if let Err(failure) = &outcome {
            // The reason names a place in the response or a status, never its content.
            tracing::warn!(
                service = name,
                request_id = %request_id,
                outcome = label,
                reason = %failure,
                "service call failed; the user gets its apology"
            );
        }
        outcome
    }
}

impl Service {
    fn from_config(config: &ServiceConfig) -> Result<Service, GatewayError> {
        let invalid = |message: String| GatewayError::Config {
            name: config.name.clone(),
            message,
        };
        let uri = hyper::Uri::try_from(config.url.as_str())
            .map_err(|e| invalid(format!("`url`: {e}")))?;
        let mut headers = Vec::new();
        for (name, value) in &config.headers {
            headers.push(header(name, value, false).map_err(invalid)?);
        }
        for (name, value) in &config.secret_headers {
            headers.push(header(name, value.expose(), true).map_err(invalid)?);
        }
        Ok(Service {
            name: config.name.clone(),
            uri,
            timeout: Duration::from_millis(u64::from(config.timeout_ms)),
            retries: config.retries,
            apology: config.apology.clone(),
            headers,
            slots: Semaphore::new(config.max_concurrent as usize),
            breaker: Mutex::new(Breaker::new(
                config.breaker_failures,
                Duration::from_secs(u64::from(config.breaker_cooldown_secs)),
            )),
            labels: ServiceLabels {
                service: config.name.clone(),
            },
        })
    }

    async fn call(
        &self,
        http: &Client,
        metrics: &Metrics,
        call: &Call<'_>,
        request_id: &str,
        span: &tracing::Span,
    ) -> Result<Reply, Failure> {
        // Waiting for a slot counts against the timeout, so that a burst is answered with
        // the apology in bounded time rather than queued without end.
        let _slot = tokio::time::timeout(self.timeout, self.slots.acquire())
            .await
            .map_err(|_| Failure::Overloaded)?
            .map_err(|_| Failure::Overloaded)?;
        let admission = self.breaker().admit(Instant::now());
        self.publish_breaker(metrics);
        if admission == Admission::Refused {
            return Err(Failure::BreakerOpen);
        }
        let traceparent = crate::telemetry::otel::traceparent(span);
        let idempotency_key = format!("{}:{}", call.update.update_id, self.name);
        let request = Request {
            version: contract::VERSION,
            service: &self.name,
            request_id,
            idempotency_key: &idempotency_key,
            traceparent: &traceparent,
            update: &call.update,
            user: call.user.as_ref(),
            chat: &call.chat,
            session: &call.session,
        };
        let body = Bytes::from(
            serde_json::to_vec(&request)
                .map_err(|e| Failure::Connection(format!("the request did not serialize: {e}")))?,
        );
        let exchange = Exchange {
            body,
            request_id,
            idempotency_key: &idempotency_key,
            traceparent: &traceparent,
        };
        let outcome = self.attempts(http, metrics, &exchange).await;
        let outcome = outcome.and_then(|body| Ok(Response::parse(&body)?.check(call.answering)?));
        let healthy = outcome.as_ref().err().is_none_or(|f| !f.unhealthy());
        self.breaker().record(admission, healthy, Instant::now());
        self.publish_breaker(metrics);
        outcome
    }

    /// The first attempt and the retries it allows.
    async fn attempts(
        &self,
        http: &Client,
        metrics: &Metrics,
        exchange: &Exchange<'_>,
    ) -> Result<Bytes, Failure> {
        let mut backoff = Backoff::new(RETRY_WAIT, RETRY_WAIT_MAX);
        let mut attempt = 0;
        loop {
            let started = Instant::now();
            let outcome = self.attempt(http, exchange).await;
            metrics
                .service_seconds
                .get_or_create(&self.labels)
                .observe(started.elapsed().as_secs_f64());
            match outcome {
                Err(failure) if failure.retryable() && attempt < self.retries => {
                    attempt += 1;
                    metrics.service_retries.get_or_create(&self.labels).inc();
                    tracing::debug!(attempt, reason = %failure, "retrying the service call");
                    tokio::time::sleep(backoff.next_wait()).await;
                }
                outcome => return outcome,
            }
        }
    }

    /// One POST, bounded by the timeout from the connection to the last byte.
    async fn attempt(&self, http: &Client, exchange: &Exchange<'_>) -> Result<Bytes, Failure> {
        let mut request = hyper::Request::post(self.uri.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("edgebot/", env!("CARGO_PKG_VERSION")))
            .header("idempotency-key", exchange.idempotency_key)
            .header("x-request-id", exchange.request_id)
            .header("traceparent", exchange.traceparent)
            .body(Full::new(exchange.body.clone()))
            .map_err(|e| Failure::Connection(e.to_string()))?;
        for (name, value) in &self.headers {
            request.headers_mut().insert(name.clone(), value.clone());
        }
        let exchange = async {
            let response = http
                .request(request)
                .await
                .map_err(|e| Failure::Connection(connection_error(&e)))?;
            let status = response.status();
            if !status.is_success() {
                return Err(Failure::Status(status.as_u16()));
            }
            let body = Limited::new(response.into_body(), contract::MAX_RESPONSE_BYTES);
            match body.collect().await {
                Ok(collected) => Ok(collected.to_bytes()),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    Err(Failure::Invalid(Invalid::too_large()))
                }
                Err(e) => Err(Failure::Connection(e.to_string())),
            }
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| Failure::Timeout)?
    }

    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        // The breaker's state is a few plain fields that no panic can leave half-written.
        self.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish_breaker(&self, metrics: &Metrics) {
        let state = self.breaker().gauge();
        metrics
            .service_breaker
            .get_or_create(&self.labels)
            .set(state);
    }
}

/// What every attempt of one call sends.
struct Exchange<'a> {
    body: Bytes,
    request_id: &'a str,
    idempotency_key: &'a str,
    traceparent: &'a str,
}

/// A header of the config; a secret one is marked sensitive, so that hyper never
/// prints it.
fn header(name: &str, value: &str, secret: bool) -> Result<(HeaderName, HeaderValue), String> {
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("`{name}` is not a valid header name"))?;
    let mut value = HeaderValue::from_str(value)
        .map_err(|_| format!("header `{name}`: not a valid header value"))?;
    value.set_sensitive(secret);
    Ok((name, value))
}

/// The legacy client's error with its cause, which is where the useful part is
/// ("connection refused").
fn connection_error(e: &hyper_util::client::legacy::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}
