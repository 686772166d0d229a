//! The LLM client: asks the configured providers (`[[llm.providers]]`) for an answer to
//! a prompt, streamed, and hands the answer's pieces to a [`Sink`] as they arrive.
//!
//! One call ([`Llm::complete`]) tries the personality's provider first, then the
//! providers of `[llm] fallback` in order, each once. At each provider it retries after
//! a 429 (waiting out a `retry-after` of up to 30 s; a longer one goes straight to the
//! next provider), a 5xx, a timeout, a broken connection or a stream that stopped before
//! its end marker, up to the provider's `retries`, with the one backoff; a 4xx or an
//! answer that breaks the wire format goes to the next provider at once. Before every
//! attempt but the first the sink is told to start over.
//!
//! Limits: a slot of `[llm] max_concurrent` for the whole call and one of the provider's
//! `max_concurrent` while it is asked, each waited for at most the provider's
//! `timeout_ms` (else `overloaded`); `timeout_ms` for the connection, the response head
//! and the first chunk of the body, then `idle_timeout_ms` between chunks.
//!
//! Every attempt is an `llm.call` span with the provider and its outcome, and is counted
//! by outcome in the metrics; answered calls add their tokens and cost. Neither the
//! prompt nor the answer is ever logged. This module knows nothing of Telegram or the
//! store: the caller assembles the prompt and decides what the answer becomes.

mod anthropic;
mod failure;
mod openai;
#[cfg(test)]
mod tests;

pub(crate) use failure::Failure;

use crate::config::{LlmConfig, ProviderConfig, ProviderKind};
use crate::net::backoff::Backoff;
use crate::net::sse::{Decoder, Event};
use crate::telemetry::metrics::{LlmLabels, LlmOutcomeLabels, LlmTokenLabels, Metrics};
use bytes::Bytes;
use failure::Wait;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue, USER_AGENT};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::Instrument;

/// The first wait before a retry; the one backoff doubles it from there.
const RETRY_WAIT: Duration = Duration::from_millis(200);
const RETRY_WAIT_MAX: Duration = Duration::from_secs(5);
/// An error answer is read this far, for its message.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// The Messages API version this client speaks.
const ANTHROPIC_VERSION: &str = "2023-06-01";

type Client = HyperClient<crate::net::Connector, Full<Bytes>>;

/// Why the client could not be built from the config.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LlmBuildError {
    #[error("llm: name resolution is unusable: {0}")]
    Resolver(String),
    #[error("llm provider `{name}`: {message}")]
    Provider { name: String, message: String },
}

/// Why a call gave no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LlmError {
    #[error("no LLM provider of this name is configured")]
    UnknownProvider,
    #[error("every provider failed; the last: {last}")]
    Exhausted { last: Failure },
}

/// Who said a turn of the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Speaker {
    User,
    Assistant,
}

/// One turn of the conversation so far. Not `Debug`, so that no log line can print it.
#[derive(Clone, Copy)]
pub(crate) struct Turn<'a> {
    pub(crate) speaker: Speaker,
    pub(crate) text: &'a str,
}

/// What the model is asked. Not `Debug`, so that no log line can print it.
#[derive(Clone)]
pub(crate) struct Prompt<'a> {
    /// The system prompt (personality, summary and hints, assembled by the caller).
    pub(crate) system: &'a str,
    /// Oldest first; ends with the user's turn.
    pub(crate) turns: Vec<Turn<'a>>,
    /// Overrides the provider's model.
    pub(crate) model: Option<&'a str>,
    pub(crate) temperature: f32,
    pub(crate) max_tokens: u32,
}

impl Prompt<'_> {
    /// The prompt's tokens by [`Llm::estimate_tokens`], for a provider that reports none.
    fn estimated_tokens(&self) -> u32 {
        self.turns
            .iter()
            .fold(Llm::estimate_tokens(self.system), |sum, turn| {
                sum.saturating_add(Llm::estimate_tokens(turn.text))
            })
    }
}

/// Where the answer goes as it streams.
#[async_trait::async_trait]
pub(crate) trait Sink: Send {
    /// The next piece of the answer.
    async fn piece(&mut self, text: &str);
    /// A retry or the next provider starts over: forget the pieces so far.
    fn restart(&mut self);
}

/// A whole answer. Its `Debug` leaves the text out, so that no log line can print it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Completion {
    pub(crate) text: String,
    /// The provider that answered.
    pub(crate) provider: Arc<str>,
    /// The model as the provider names it in its answer (else the one asked for).
    pub(crate) model: String,
    /// The provider's counts, or estimates where it gave none.
    pub(crate) input_tokens: u32,
    pub(crate) output_tokens: u32,
    /// By the provider's configured prices.
    pub(crate) cost_micro_usd: u64,
    /// The answer stopped at `max_tokens`.
    pub(crate) truncated: bool,
}

impl std::fmt::Debug for Completion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Completion")
            .field("text", &format_args!("<{} bytes>", self.text.len()))
            .field("provider", &self.provider)
            .field("model", &self.model)
            .field("input_tokens", &self.input_tokens)
            .field("output_tokens", &self.output_tokens)
            .field("cost_micro_usd", &self.cost_micro_usd)
            .field("truncated", &self.truncated)
            .finish()
    }
}

/// Every configured provider, ready to call.
pub(crate) struct Llm {
    /// Built only when there is a provider to call.
    http: Option<Client>,
    endpoints: Vec<Endpoint>,
    /// `[llm] fallback`, as indices into `endpoints`.
    fallback: Vec<usize>,
    /// `[llm] max_concurrent`.
    slots: Semaphore,
    metrics: Arc<Metrics>,
}

impl Llm {
    /// No providers: every call is [`LlmError::UnknownProvider`].
    pub(crate) fn none(metrics: Arc<Metrics>) -> Llm {
        Llm {
            http: None,
            endpoints: Vec::new(),
            fallback: Vec::new(),
            slots: Semaphore::new(0),
            metrics,
        }
    }

    pub(crate) fn from_config(
        config: &LlmConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Llm, LlmBuildError> {
        let mut llm = Llm::none(metrics);
        if config.providers.is_empty() {
            return Ok(llm);
        }
        let longest = config
            .providers
            .iter()
            .map(|p| p.timeout_ms)
            .max()
            .unwrap_or(30_000);
        let connector = crate::net::https_connector(Duration::from_millis(u64::from(longest)))
            .map_err(|e| LlmBuildError::Resolver(e.to_string()))?;
        llm.http = Some(
            HyperClient::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
        );
        llm.endpoints = config
            .providers
            .iter()
            .map(Endpoint::from_config)
            .collect::<Result<_, _>>()?;
        for name in &config.fallback {
            let index = llm.index_of(name).ok_or_else(|| LlmBuildError::Provider {
                name: name.clone(),
                message: "named in `[llm] fallback`, but not configured".into(),
            })?;
            llm.fallback.push(index);
        }
        llm.slots = Semaphore::new(config.max_concurrent as usize);
        Ok(llm)
    }

    fn index_of(&self, name: &str) -> Option<usize> {
        self.endpoints.iter().position(|e| *e.name == *name)
    }

    /// A text's tokens when the provider reports none (for budgets): a quarter of its
    /// bytes, rounded up, and 3 for the message around it.
    pub(crate) fn estimate_tokens(text: &str) -> u32 {
        u32::try_from(text.len().div_ceil(4))
            .unwrap_or(u32::MAX)
            .saturating_add(3)
    }

    /// Asks `provider` first, then `[llm] fallback` in order (each once), streaming the
    /// answer into `sink`. The error carries the last provider's failure.
    pub(crate) async fn complete(
        &self,
        provider: &str,
        prompt: &Prompt<'_>,
        sink: &mut dyn Sink,
    ) -> Result<Completion, LlmError> {
        let (Some(http), Some(first)) = (&self.http, self.index_of(provider)) else {
            return Err(LlmError::UnknownProvider);
        };
        let mut order = vec![first];
        for &index in &self.fallback {
            if !order.contains(&index) {
                order.push(index);
            }
        }
        let opening = &self.endpoints[first];
        // Waiting for a slot counts against the first provider's timeout, so that a burst
        // gets the apology in bounded time rather than a queue without end.
        let Ok(Ok(_slot)) = tokio::time::timeout(opening.timeout, self.slots.acquire()).await
        else {
            opening.count(&self.metrics, Failure::Overloaded.outcome());
            return Err(LlmError::Exhausted {
                last: Failure::Overloaded,
            });
        };
        let _in_flight = InFlight::new(&self.metrics);
        let mut attempts = Attempts { sink, made: 0 };
        let mut last = None;
        for index in order {
            let endpoint = &self.endpoints[index];
            match endpoint
                .complete(http, &self.metrics, prompt, &mut attempts)
                .await
            {
                Ok(completion) => return Ok(completion),
                Err(failure) => {
                    tracing::warn!(
                        provider = &*endpoint.name,
                        outcome = failure.outcome(),
                        reason = %failure,
                        "LLM provider failed; trying the next one, if any"
                    );
                    last = Some(failure);
                }
            }
        }
        Err(
            last.map_or(LlmError::UnknownProvider, |last| LlmError::Exhausted {
                last,
            }),
        )
    }
}

/// Counts a call in flight while it lives.
struct InFlight<'m>(&'m Metrics);

impl<'m> InFlight<'m> {
    fn new(metrics: &'m Metrics) -> InFlight<'m> {
        metrics.llm_in_flight.inc();
        InFlight(metrics)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.llm_in_flight.dec();
    }
}

/// The caller's sink, told to start over before every attempt but the first.
struct Attempts<'s> {
    sink: &'s mut dyn Sink,
    made: u32,
}

impl Attempts<'_> {
    fn begin(&mut self) -> u32 {
        if self.made > 0 {
            self.sink.restart();
        }
        self.made += 1;
        self.made
    }
}

/// What one event of a stream says.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    /// Nothing for the answer (a role, a ping, usage).
    Nothing,
    /// The next piece of the answer; never empty.
    Piece(String),
    /// The end marker: the answer is whole.
    End,
}

/// What a stream told besides the answer's text.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    input_tokens: Option<u32>,
    output_tokens: Option<u32>,
    model: Option<String>,
    /// OpenAI: a `finish_reason` came. It ends the answer even when `[DONE]` does not
    /// follow, as some compatible servers never send it.
    finished: bool,
    /// The answer stopped at `max_tokens`.
    truncated: bool,
}

/// A temperature as the JSON number written in the config: an `f32` widened as it is
/// would send 0.699999988079071 for 0.7. No sampler looks past the sixth decimal.
fn temperature(value: f32) -> f64 {
    (f64::from(value) * 1e6).round() / 1e6
}

/// One `[[llm.providers]]` entry, ready to call.
struct Endpoint {
    name: Arc<str>,
    kind: ProviderKind,
    uri: hyper::Uri,
    model: String,
    /// The key and the version headers the kind needs.
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    idle_timeout: Duration,
    retries: u8,
    input_price: f64,
    output_price: f64,
    slots: Semaphore,
}

impl Endpoint {
    fn from_config(config: &ProviderConfig) -> Result<Endpoint, LlmBuildError> {
        let invalid = |message: String| LlmBuildError::Provider {
            name: config.name.clone(),
            message,
        };
        let base = config.base_url.trim_end_matches('/');
        let url = match config.kind {
            ProviderKind::OpenAi => format!("{base}/chat/completions"),
            ProviderKind::Anthropic => format!("{base}/v1/messages"),
        };
        let uri =
            hyper::Uri::try_from(url.as_str()).map_err(|e| invalid(format!("`{url}`: {e}")))?;
        let mut headers = Vec::new();
        if config.kind == ProviderKind::Anthropic {
            headers.push((
                HeaderName::from_static("anthropic-version"),
                HeaderValue::from_static(ANTHROPIC_VERSION),
            ));
        }
        if let Some(key) = &config.api_key {
            let (name, value) = match config.kind {
                ProviderKind::OpenAi => (AUTHORIZATION, format!("Bearer {}", key.expose())),
                ProviderKind::Anthropic => (
                    HeaderName::from_static("x-api-key"),
                    key.expose().to_owned(),
                ),
            };
            let mut value = HeaderValue::from_str(&value)
                .map_err(|_| invalid("the key is not a valid header value".into()))?;
            // hyper never prints a sensitive value.
            value.set_sensitive(true);
            headers.push((name, value));
        }
        Ok(Endpoint {
            name: config.name.as_str().into(),
            kind: config.kind,
            uri,
            model: config.model.clone(),
            headers,
            timeout: Duration::from_millis(u64::from(config.timeout_ms)),
            idle_timeout: Duration::from_millis(u64::from(config.idle_timeout_ms)),
            retries: config.retries,
            input_price: config.input_price,
            output_price: config.output_price,
            slots: Semaphore::new(config.max_concurrent as usize),
        })
    }

    fn labels(&self) -> LlmLabels {
        LlmLabels {
            provider: self.name.to_string(),
        }
    }

    fn count(&self, metrics: &Metrics, outcome: &'static str) {
        metrics
            .llm_calls
            .get_or_create(&LlmOutcomeLabels {
                provider: self.name.to_string(),
                outcome,
            })
            .inc();
    }

    /// This provider's answer: the first attempt and the retries it allows.
    async fn complete(
        &self,
        http: &Client,
        metrics: &Metrics,
        prompt: &Prompt<'_>,
        attempts: &mut Attempts<'_>,
    ) -> Result<Completion, Failure> {
        let Ok(Ok(_slot)) = tokio::time::timeout(self.timeout, self.slots.acquire()).await else {
            self.count(metrics, Failure::Overloaded.outcome());
            return Err(Failure::Overloaded);
        };
        let model = prompt.model.unwrap_or(&self.model);
        let body = Bytes::from(
            match self.kind {
                ProviderKind::OpenAi => openai::body(model, prompt),
                ProviderKind::Anthropic => anthropic::body(model, prompt),
            }
            .to_string(),
        );
        let mut backoff = Backoff::new(RETRY_WAIT, RETRY_WAIT_MAX);
        let mut retries_left = self.retries;
        loop {
            let attempt = attempts.begin();
            let span = tracing::info_span!(
                "llm.call",
                provider = &*self.name,
                attempt,
                outcome = tracing::field::Empty,
            );
            let outcome = self
                .attempt(
                    http,
                    metrics,
                    body.clone(),
                    model,
                    prompt,
                    &mut *attempts.sink,
                )
                .instrument(span.clone())
                .await;
            let label = outcome.as_ref().map_or_else(Failure::outcome, |_| "ok");
            span.record("outcome", label);
            self.count(metrics, label);
            let failure = match outcome {
                Ok(completion) => {
                    self.account(metrics, &completion);
                    return Ok(completion);
                }
                Err(failure) => failure,
            };
            let wait = match failure.retry_wait(&mut backoff) {
                Some(wait) if retries_left > 0 => wait,
                _ => return Err(failure),
            };
            retries_left -= 1;
            tracing::debug!(provider = &*self.name, attempt, reason = %failure, ?wait, "retrying the LLM call");
            tokio::time::sleep(wait).await;
        }
    }

    /// Adds an answer's tokens and cost to the metrics.
    fn account(&self, metrics: &Metrics, completion: &Completion) {
        for (direction, tokens) in [
            ("input", completion.input_tokens),
            ("output", completion.output_tokens),
        ] {
            metrics
                .llm_tokens
                .get_or_create(&LlmTokenLabels {
                    provider: self.name.to_string(),
                    direction,
                })
                .inc_by(u64::from(tokens));
        }
        metrics
            .llm_cost_usd
            .get_or_create(&self.labels())
            .inc_by(self.cost_usd(completion.input_tokens, completion.output_tokens));
    }

    /// Tokens times the prices, which are per million tokens.
    fn cost_usd(&self, input_tokens: u32, output_tokens: u32) -> f64 {
        (f64::from(input_tokens) * self.input_price + f64::from(output_tokens) * self.output_price)
            / 1e6
    }

    /// One request, its answer streamed into `sink`.
    async fn attempt(
        &self,
        http: &Client,
        metrics: &Metrics,
        body: Bytes,
        model: &str,
        prompt: &Prompt<'_>,
        sink: &mut dyn Sink,
    ) -> Result<Completion, Failure> {
        let sent = Instant::now();
        let deadline = sent + self.timeout;
        let mut request = hyper::Request::post(self.uri.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "text/event-stream")
            .header(USER_AGENT, concat!("edgebot/", env!("CARGO_PKG_VERSION")))
            .body(Full::new(body))
            .map_err(|e| Failure::Connection(e.to_string()))?;
        request.headers_mut().extend(self.headers.iter().cloned());
        let response = tokio::time::timeout_at(deadline, http.request(request))
            .await
            .map_err(|_| Failure::Timeout(Wait::FirstByte))?
            .map_err(|e| Failure::Connection(connection_error(&e)))?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = failure::retry_after(response.headers());
            let body = Limited::new(response.into_body(), MAX_ERROR_BODY);
            // The status says what matters; the body only adds the provider's words.
            let bytes = match tokio::time::timeout_at(deadline, body.collect()).await {
                Ok(Ok(collected)) => collected.to_bytes(),
                _ => Bytes::new(),
            };
            let detail = failure::error_detail(&bytes);
            return Err(Failure::from_status(status.as_u16(), retry_after, detail));
        }
        let streamed = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("text/event-stream")
            });
        if !streamed {
            return Err(Failure::InvalidResponse(
                "the answer is not an event stream (text/event-stream)".into(),
            ));
        }
        let mut body = response.into_body();
        let mut decoder = Decoder::new();
        let mut events: Vec<Event> = Vec::new();
        let mut tally = Tally::default();
        let mut text = String::new();
        let (mut until, mut waiting_for) = (deadline, Wait::FirstByte);
        // Why the stream ended before its end marker; `None` once the marker came.
        let broken_off = 'stream: loop {
            let frame = match tokio::time::timeout_at(until, body.frame()).await {
                Err(_) => return Err(Failure::Timeout(waiting_for)),
                Ok(None) => break Some("the body ended".to_owned()),
                Ok(Some(Err(e))) => break Some(format!("the body broke off: {e}")),
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data() {
                decoder
                    .feed(&data, &mut events)
                    .map_err(|e| Failure::InvalidResponse(e.to_string()))?;
            }
            for event in events.drain(..) {
                let read = match self.kind {
                    ProviderKind::OpenAi => openai::read(&event, &mut tally)?,
                    ProviderKind::Anthropic => anthropic::read(&event, &mut tally)?,
                };
                match read {
                    Read::Nothing => {}
                    Read::Piece(piece) => {
                        if text.is_empty() {
                            metrics
                                .llm_first_token_seconds
                                .get_or_create(&self.labels())
                                .observe(sent.elapsed().as_secs_f64());
                        }
                        text.push_str(&piece);
                        sink.piece(&piece).await;
                    }
                    Read::End => break 'stream None,
                }
            }
            // The silence is the provider's from here: time the sink took is not.
            (until, waiting_for) = (Instant::now() + self.idle_timeout, Wait::NextChunk);
        };
        if let Some(how) = broken_off
            && !tally.finished
        {
            return Err(Failure::StoppedMidway(how));
        }
        let input_tokens = tally
            .input_tokens
            .unwrap_or_else(|| prompt.estimated_tokens());
        let output_tokens = tally
            .output_tokens
            .unwrap_or_else(|| Llm::estimate_tokens(&text));
        let cost_usd = self.cost_usd(input_tokens, output_tokens);
        Ok(Completion {
            text,
            provider: Arc::clone(&self.name),
            model: tally.model.unwrap_or_else(|| model.to_owned()),
            input_tokens,
            output_tokens,
            // Prices are at most 10,000 USD per million tokens, so this is far from
            // u64's end; the cast saturates anyway.
            cost_micro_usd: (cost_usd * 1e6).round() as u64,
            truncated: tally.truncated,
        })
    }
}

/// The legacy client's error with its cause, which is where the useful part is
/// ("connection refused").
fn connection_error(e: &hyper_util::client::legacy::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}
