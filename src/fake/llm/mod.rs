//! A fake LLM server for tests and for trying conversations offline: it speaks the
//! OpenAI-compatible chat completions API and Anthropic's Messages API over real
//! HTTP/1.1, streaming included, with their error shapes, and it can be scripted and
//! made to misbehave.
//!
//! # Using it
//!
//! `edgebot fake-llm --listen 127.0.0.1:8082` runs it until Ctrl-C. Both kinds of
//! provider take the base URL `http://127.0.0.1:8082/v1`: an OpenAI-compatible client
//! posts to `{base}/chat/completions`, an Anthropic one to `{base}/messages` (the
//! Anthropic SDKs take the URL without `/v1`, as they add it themselves). Any model name
//! is answered, and echoed back in the answer; `GET /v1/models` lists the configured
//! names. The control API under `/_fake/` (see `control.rs`) reads what was asked,
//! queues answers and injects faults.
//!
//! ```ignore
//! use edgebot::fake::llm::{FakeLlm, FakeLlmConfig, Fault, Provider};
//!
//! let llm = FakeLlm::start(FakeLlmConfig::default()).await?;
//! // The client under test posts to llm.base_url() + "/chat/completions".
//! llm.script_answers(["Hello there!"]);
//! llm.inject(Fault::RateLimited { retry_after_secs: 1 }, 1, Some(Provider::Anthropic));
//! assert!(llm.wait_for(|requests| requests.len() == 2, Duration::from_secs(5)).await);
//! llm.shutdown().await;
//! ```
//!
//! # What it answers
//!
//! * The answer is the next scripted one ([`FakeLlm::script_answers`],
//!   [`FakeLlmConfig::answers`], `POST /_fake/answers`), or else an echo of the last
//!   user message: `You said: <its text>` (the text parts of a message joined with
//!   `\n`). A request refused for any reason takes no scripted answer.
//! * Tokens are counted the same way for both kinds, deterministically (tests rely on
//!   it, not on any resemblance to a real tokenizer): a text is one token per 4 bytes of
//!   UTF-8, rounded up. The prompt is 3 tokens, plus for each message (a system prompt,
//!   Anthropic's top-level one included, is a message) 3 tokens and its text's. The
//!   answer is its text's tokens. A `max_tokens` (or OpenAI's `max_completion_tokens`)
//!   of N cuts the answer to at most 4·N bytes, at a character boundary, which is N
//!   tokens; the answer then finishes with `length` (OpenAI) or `max_tokens`
//!   (Anthropic) instead of `stop` or `end_turn`.
//! * Streams send the answer in deltas of 4 characters (OpenAI: a first chunk with the
//!   role, the deltas, a chunk with `finish_reason`, a usage chunk when
//!   `stream_options.include_usage` is true, then `data: [DONE]`; Anthropic:
//!   `message_start`, `content_block_start`, `ping`, the `content_block_delta`s,
//!   `content_block_stop`, `message_delta`, `message_stop`), paced by
//!   [`FakeLlmConfig::chunk_delay`]. With [`FakeLlmConfig::split_chunks`] each event is
//!   written in pieces cut at random byte offsets (from [`FakeLlmConfig::seed`]), so a
//!   client's reads split characters, lines and JSON.
//! * With [`FakeLlmConfig::api_key`] set, requests must carry it (OpenAI:
//!   `Authorization: Bearer KEY`; Anthropic: `x-api-key: KEY`, or `Authorization:
//!   Bearer KEY`, which Anthropic's current Python SDK sends) or get 401.
//! * Faults ([`FakeLlm::inject`]) apply to the next answering requests (chat
//!   completions and messages; not model lists, nor requests refused with 400 or 401).
//!
//! Not simulated: tools and function calls, images (accepted, not looked at), `n` above
//! 1, logprobs, stop sequences, and the many optional parameters (accepted, ignored).

mod answer;
mod anthropic;
mod control;
mod error;
mod openai;
mod server;
mod stream;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::task::JoinHandle;

use crate::net;
use crate::shutdown::{self, Trigger};

/// How the fake LLM server behaves.
#[derive(Clone, Debug)]
pub struct FakeLlmConfig {
    /// The key requests must carry; `None` accepts any key, or none.
    pub api_key: Option<String>,
    /// Answers given in order before the server falls back to echoing.
    pub answers: Vec<String>,
    /// The model names `GET /v1/models` lists (requests may name any model).
    pub models: Vec<String>,
    /// The pause between two events of a stream.
    pub chunk_delay: Duration,
    /// Write each streamed event in pieces cut at random byte offsets.
    pub split_chunks: bool,
    /// Seeds the cuts of [`split_chunks`](Self::split_chunks), so a run can be repeated.
    pub seed: u64,
}

impl Default for FakeLlmConfig {
    fn default() -> Self {
        Self {
            api_key: None,
            answers: Vec::new(),
            models: vec!["fake-model".to_owned()],
            chunk_delay: Duration::ZERO,
            split_chunks: false,
            seed: 0,
        }
    }
}

/// The wire format a request spoke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    /// `POST /v1/chat/completions`, Bearer keys, `{"error": {...}}` errors.
    OpenAi,
    /// `POST /v1/messages`, `x-api-key`, `{"type": "error", ...}` errors.
    Anthropic,
}

impl Provider {
    /// The name the configuration and the control API use: `openai` or `anthropic`.
    pub fn name(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Provider> {
        match name {
            "openai" => Some(Self::OpenAi),
            "anthropic" => Some(Self::Anthropic),
            _ => None,
        }
    }
}

/// A misbehaviour to inject, for testing a client's error handling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 429 in the provider's shape, with a `retry-after` header of this many seconds.
    RateLimited { retry_after_secs: u32 },
    /// This status (500, 502, 503, 529, ...) in the provider's shape; Anthropic's type is
    /// `overloaded_error` for 529 and `api_error` otherwise.
    ServerError(u16),
    /// Read the request and never answer (until the server shuts down).
    Hang,
    /// Send the first `after_chunks` events of the stream, then close the connection
    /// without ending the answer (no `[DONE]`, no `message_stop`). A non-streamed answer
    /// is cut after half its bytes.
    StopMidway { after_chunks: usize },
    /// Answer normally, but only after this many milliseconds.
    Slow { delay_ms: u64 },
}

/// What a request's credentials were, against the configured key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// No key in the provider's header.
    Absent,
    /// A key other than the configured one (refused with 401).
    Wrong,
    /// The configured key, or any key when none is configured.
    Valid,
}

impl Auth {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Absent => "absent",
            Self::Wrong => "wrong",
            Self::Valid => "valid",
        }
    }
}

/// One request to the provider API (`/v1/...`), recorded once its answer's status is
/// known, before its body is sent. Control API requests are not recorded.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// Numbers requests from 1 in the order they were recorded; never reused, also after
    /// a reset, so a script can poll with `GET /_fake/requests?since=N`.
    pub seq: u64,
    pub provider: Provider,
    pub method: String,
    pub path: String,
    pub auth: Auth,
    /// The JSON body; `null` when there was none or it did not parse.
    pub body: Value,
    /// Whether the body asked for a stream (`"stream": true`).
    pub stream: bool,
    /// The HTTP status answered; 0 when the request got no answer (a hang).
    pub status: u16,
    /// The fault the request consumed, if any.
    pub fault: Option<Fault>,
    pub at: Instant,
    pub since_start: Duration,
}

/// A running fake LLM server. Dropping it, or calling [`shutdown`](Self::shutdown),
/// stops it.
pub struct FakeLlm {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Trigger,
    task: JoinHandle<()>,
}

/// A fault waiting for the requests it will spoil.
#[derive(Clone, Debug)]
struct QueuedFault {
    fault: Fault,
    remaining: usize,
    provider: Option<Provider>,
}

/// What requests change.
#[derive(Debug, Default)]
struct State {
    answers: VecDeque<String>,
    faults: Vec<QueuedFault>,
    /// Numbers answers, for their ids and for the seed of their cuts.
    answered: u64,
}

impl State {
    fn take_fault(&mut self, provider: Provider) -> Option<Fault> {
        let at = self
            .faults
            .iter()
            .position(|queued| queued.provider.is_none_or(|p| p == provider))?;
        let queued = &mut self.faults[at];
        let fault = queued.fault.clone();
        queued.remaining -= 1;
        if queued.remaining == 0 {
            self.faults.remove(at);
        }
        Some(fault)
    }
}

/// State shared by the handle and every connection.
pub(crate) struct Shared {
    api_key: Option<String>,
    models: Vec<String>,
    chunk_delay: Duration,
    split_chunks: bool,
    seed: u64,
    start: Instant,
    state: Mutex<State>,
    requests: Mutex<Vec<RecordedRequest>>,
    /// The last `seq` given; advanced only under the `requests` lock.
    seq: AtomicU64,
    requests_changed: tokio::sync::Notify,
}

/// A poisoned lock only means a test panicked elsewhere; every critical section leaves
/// the data consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn record(&self, mut request: RecordedRequest) {
        let mut requests = lock(&self.requests);
        request.seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        requests.push(request);
        drop(requests);
        self.requests_changed.notify_waiters();
    }

    fn inject(&self, fault: Fault, times: usize, provider: Option<Provider>) {
        if times > 0 {
            lock(&self.state).faults.push(QueuedFault {
                fault,
                remaining: times,
                provider,
            });
        }
    }

    fn script_answers(&self, answers: impl IntoIterator<Item = String>) -> usize {
        let mut state = lock(&self.state);
        state.answers.extend(answers);
        state.answers.len()
    }

    /// Forgets the recorded requests, the queued answers and the faults.
    fn reset(&self) {
        lock(&self.requests).clear();
        let mut state = lock(&self.state);
        state.answers.clear();
        state.faults.clear();
    }
}

impl FakeLlm {
    /// Starts a server on an ephemeral loopback port.
    pub async fn start(config: FakeLlmConfig) -> std::io::Result<FakeLlm> {
        Self::bind(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Starts a server on `addr`.
    pub async fn bind(addr: SocketAddr, config: FakeLlmConfig) -> std::io::Result<FakeLlm> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            api_key: config.api_key,
            models: config.models,
            chunk_delay: config.chunk_delay,
            split_chunks: config.split_chunks,
            seed: config.seed,
            start: Instant::now(),
            state: Mutex::new(State {
                answers: config.answers.into(),
                ..State::default()
            }),
            requests: Mutex::new(Vec::new()),
            seq: AtomicU64::new(0),
            requests_changed: tokio::sync::Notify::new(),
        });
        let (stop, stopped) = shutdown::channel();
        let handler = server::LlmHandler {
            shared: Arc::clone(&shared),
            shutdown: stopped.clone(),
        };
        let task = tokio::spawn(net::server::serve(
            listener,
            Arc::new(handler),
            server::options(),
            stopped,
        ));
        Ok(FakeLlm {
            shared,
            addr,
            stop,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT/v1`: the base URL of both kinds of provider (clients append
    /// `/chat/completions` or `/messages`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// `http://IP:PORT`: the base URL Anthropic's SDKs take, and the control API's root.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in the order they were recorded.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Waits until `pred` holds for the recorded requests; false on timeout. `pred` runs
    /// while the recorder is locked, so keep it quick.
    pub async fn wait_for(
        &self,
        pred: impl Fn(&[RecordedRequest]) -> bool,
        timeout: Duration,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.shared.requests_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if pred(&lock(&self.shared.requests)) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return pred(&lock(&self.shared.requests));
            }
        }
    }

    /// Queues answers, given in order to the next answering requests (of either kind)
    /// before the server falls back to echoing; returns how many are queued now.
    pub fn script_answers<S: Into<String>>(&self, answers: impl IntoIterator<Item = S>) -> usize {
        self.shared
            .script_answers(answers.into_iter().map(Into::into))
    }

    /// Makes the next `times` answering requests (of `provider` only, when given)
    /// misbehave. Faults queue up: each request consumes the first queued fault that
    /// applies to it.
    pub fn inject(&self, fault: Fault, times: usize, provider: Option<Provider>) {
        self.shared.inject(fault, times, provider);
    }

    /// Forgets the recorded requests, the queued answers and the faults (sequence
    /// numbers keep counting).
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Stops accepting, closes every connection (a hanging request or a stream ends
    /// then) and waits until the port is released.
    pub async fn shutdown(self) {
        self.stop.fire();
        let _ = self.task.await;
    }

    /// Serves until `signal` completes, then shuts down; for the CLI.
    pub async fn run_until(self, signal: impl Future<Output = ()>) {
        signal.await;
        self.shutdown().await;
    }
}
