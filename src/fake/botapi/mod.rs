//! A fake Telegram Bot API server for tests, benchmarks and `edgebot replay`.
//!
//! It speaks the real wire format over real HTTP/1.1 on loopback: the same
//! URLs (`/bot<TOKEN>/<method>`), the same parameter encodings (query string,
//! JSON, urlencoded and multipart forms, with nested objects such as
//! `reply_markup` sent as JSON strings in forms), the same `{"ok":true,
//! "result":...}` answers and the same error bodies
//! (`{"ok":false,"error_code":400,"description":"Bad Request: chat_id is empty"}`).
//! Every call is recorded so tests can assert on what a bot sent.
//!
//! # Testing your own bot against it
//!
//! From the command line, `edgebot fake-api --listen 127.0.0.1:8081` runs it
//! until Ctrl-C. Point your bot's API base URL at `http://127.0.0.1:8081`
//! instead of `https://api.telegram.org`; any token is accepted unless the
//! server was configured with a list of valid tokens. It can be poked with
//! any HTTP client, and driven through the control API under `/_fake/` on the
//! same port (see `control.rs`: push updates as a user, read what the bot
//! called, inject faults, see the webhook):
//!
//! ```text
//! $ curl -s http://127.0.0.1:8081/bot123:ABC/sendMessage -d chat_id=42 -d text=hi
//! {"ok":true,"result":{"message_id":1,"from":{...},"chat":{"id":42,"type":"private",...},...}}
//! $ curl -s http://127.0.0.1:8081/_fake/updates -d '{"text":"/start","from":{"id":42,"first_name":"Ann"}}'
//! {"ok":true,"update_id":1,"delivered_to":"getUpdates",...}
//! $ curl -s 'http://127.0.0.1:8081/_fake/calls?method=sendMessage&since=0'
//! {"ok":true,"calls":[{"seq":1,"method":"sendMessage","params":{...},...}],"last_seq":1}
//! ```
//!
//! From Rust tests:
//!
//! ```ignore
//! use edgebot::fake::botapi::{Fault, FakeBotApi, FakeConfig};
//! use std::time::Duration;
//!
//! let api = FakeBotApi::start(FakeConfig::default()).await?;
//! // Your bot talks to `api.base_url()`, e.g. POST {base}/bot123:ABC/sendMessage.
//! api.push_update(serde_json::json!({
//!     "message": {"message_id": 1, "date": 0, "text": "/start",
//!                 "chat": {"id": 42, "type": "private"},
//!                 "from": {"id": 42, "is_bot": false, "first_name": "Ann"}}
//! }));
//! // ... start your bot's getUpdates loop ...
//! assert!(api.wait_for(|calls| calls.iter().any(|c| c.method == "sendMessage"),
//!                      Duration::from_secs(5)).await);
//! let reply = &api.delivered_calls("sendMessage")[0];
//! assert_eq!(reply.chat_id, Some(42));
//! // Check the bot retries: the next sendMessage gets a 429.
//! api.inject(Fault::TooManyRequests { retry_after: 1 }, 1, Some("sendMessage"));
//! api.shutdown().await;
//! ```
//!
//! # What it simulates
//!
//! Chat ids tell the kind of chat, as in Telegram: positive ids are private
//! chats with users, `-100` followed by ten digits (e.g. `-1001234567890`)
//! are supergroups, and other negative ids are basic groups.
//!
//! * Every method of Bot API 10.2 (the table in `spec.rs`, generated from
//!   the schema by `src/fake/botapi/gen_spec.py`) answers, after checking its
//!   required parameters, with a result of the type the schema says it returns,
//!   every required field present (`shape.rs` completes what a method leaves
//!   out). Names that are not Bot API methods get 404, as on Telegram.
//! * Modelled in detail: `getMe`, `sendMessage` (message ids increase per
//!   chat), `editMessageText`, `editMessageReplyMarkup` (including "message is
//!   not modified"), `deleteMessage`, `forwardMessage(s)`, `copyMessage(s)`,
//!   `sendMediaGroup`, chat administration, `answerCallbackQuery`,
//!   `setMyCommands`/`getMyCommands` and `getChat`. Every other send (photos,
//!   documents, invoices, dice, ...) stores a message and puts what was sent in
//!   the message's field of that name, with file ids; other edits need a known
//!   message of the bot's (or answer `true` for inline messages).
//! * Updates: [`FakeBotApi::push_update`] queues an update; `getUpdates` long
//!   polls with `offset`, `limit` and `timeout`, forgets updates below
//!   `offset`, honours `allowed_updates` (by default `chat_member` and
//!   reaction updates are withheld, as Telegram does; they still count as
//!   pending and are forgotten with the offset), answers 409 while a webhook
//!   is set, and terminates an older
//!   pending `getUpdates` with 409 when a newer one arrives, like Telegram.
//! * Webhooks: `setWebhook`, `deleteWebhook` and `getWebhookInfo` keep state
//!   ([`FakeBotApi::webhook`]); [`FakeBotApi::deliver_webhook`] posts an update
//!   to a plain `http://` webhook with the secret token header. Unlike
//!   Telegram, `http://` webhook urls are accepted so local servers work.
//! * Users who blocked the bot ([`FakeConfig::blocked_chats`]): sends to them
//!   get 403 "Forbidden: bot was blocked by the user" (so do edits and chat
//!   actions there).
//! * Markup: a `text` or `caption` sent with `parse_mode: "HTML"` is parsed as
//!   Telegram parses it (`html.rs`, [`parse_html`]): broken HTML gets 400 "Bad
//!   Request: can't parse entities: Unsupported start tag "div" at byte offset 0"
//!   (Telegram's wording for each case), and the length limits (4,096 for texts,
//!   1,024 for captions) count the visible text after parsing, in UTF-16 code units.
//!   Other parse modes are not parsed: their text counts as sent.
//! * Drafts: `sendMessageDraft` works in private chats only; elsewhere it answers
//!   400 "Bad Request: TEXTDRAFT_PEER_INVALID", as Telegram does. Its text may be
//!   empty; nothing is stored.
//! * Faults ([`FakeBotApi::inject`]): 429 with `retry_after`, 5xx, slow
//!   answers, and dropped connections. A faulted call is recorded but has no
//!   effect.
//! * Flood limits ([`FakeConfig::enforce_limits`], off by default): sends
//!   beyond the per-chat, per-group or global rate get 429 with a computed
//!   `retry_after`.
//!
//! Not simulated: file downloads, inline message editing state, payments
//! (`sendInvoice` answers, but nobody pays), the `Markdown` and `MarkdownV2`
//! parse modes, the `entities` a message comes back with, and resolving
//! `@username` chat ids (they answer "Bad Request: chat not found").
//!
//! # Recording and performance
//!
//! Calls are recorded just before they are answered, so once a client has
//! its answer the call is visible in [`FakeBotApi::calls`]; the list is in
//! answer order, and [`RecordedCall::since_start`] gives arrival times. The
//! recorder is an append under a short lock; long benchmarks should drain it
//! with [`FakeBotApi::take_calls`] or only read [`FakeBotApi::call_count`].

mod control;
mod error;
mod flood;
mod html;
mod methods;
mod params;
mod server;
mod shape;
mod spec;
mod webhook;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_control;

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::task::JoinHandle;

use crate::net;
use crate::shutdown::{self, Trigger};

pub use error::FakeError;
pub use flood::FloodLimits;
pub use html::{HtmlError, parse_html};
pub use methods::WebhookState;

use methods::State;

/// How the fake server behaves.
#[derive(Clone, Debug)]
pub struct FakeConfig {
    /// Tokens that authenticate; empty accepts any token.
    pub valid_tokens: Vec<String>,
    /// Private chats whose user blocked the bot: sends to them get 403.
    pub blocked_chats: Vec<i64>,
    /// Telegram's flood limits to enforce on sends; `None` enforces nothing.
    pub enforce_limits: Option<FloodLimits>,
    /// The username `getMe` reports.
    pub bot_username: String,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            valid_tokens: Vec::new(),
            blocked_chats: Vec::new(),
            enforce_limits: None,
            bot_username: "edgebot_test_bot".to_owned(),
        }
    }
}

/// A misbehaviour to inject, for testing a client's retry logic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 429 with `"parameters":{"retry_after":N}`.
    TooManyRequests { retry_after: u32 },
    /// The given HTTP status (e.g. 500, 502) with a Telegram-style body.
    ServerError(u16),
    /// Answer normally, but only after this long.
    Delay(Duration),
    /// Close the TCP connection without answering.
    DropConnection,
}

/// One call the server received, recorded just before it was answered. Requests
/// whose path is not `/bot<TOKEN>/<method>` are answered 404 unrecorded.
#[derive(Clone, Debug)]
pub struct RecordedCall {
    /// Numbers calls from 1 in the order they were recorded; never reused, also
    /// after [`FakeBotApi::take_calls`], so a script can poll for calls past the last
    /// one it saw (`GET /_fake/calls?since=N`).
    pub(crate) seq: u64,
    /// The canonical method name (`sendMessage`) when the method is known,
    /// otherwise the name as sent.
    pub method: String,
    pub(crate) token: String,
    /// All parameters as a JSON object, typed like Telegram types them
    /// (`"42"` becomes `42` for `chat_id`, `reply_markup` strings become
    /// objects). Empty for calls refused before their body was read (401,
    /// 404, 413).
    pub params: Value,
    /// `chat_id` when it is a number (or a string holding one).
    pub chat_id: Option<i64>,
    /// HTTP status answered; 0 when the connection was dropped by a fault.
    pub status: u16,
    pub at: Instant,
    pub since_start: Duration,
}

impl RecordedCall {
    /// True when the call was answered with 200 and so took effect.
    pub fn delivered(&self) -> bool {
        self.status == 200
    }
}

/// A running fake Bot API server. Dropping it, or calling
/// [`shutdown`](Self::shutdown), stops it.
pub struct FakeBotApi {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Trigger,
    task: JoinHandle<()>,
}

/// State shared by the handle and every connection.
pub(crate) struct Shared {
    valid_tokens: Vec<String>,
    blocked_chats: HashSet<i64>,
    bot_username: String,
    start: Instant,
    state: Mutex<State>,
    calls: Mutex<Vec<RecordedCall>>,
    /// The last `seq` given to a call; advanced only under the `calls` lock, so
    /// the list is in `seq` order.
    seq: AtomicU64,
    calls_changed: tokio::sync::Notify,
    updates_changed: tokio::sync::Notify,
}

/// A poisoned lock only means a test panicked elsewhere; the data is still
/// consistent because every critical section is a few plain assignments.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn token_valid(&self, token: &str) -> bool {
        if self.valid_tokens.is_empty() {
            !token.is_empty()
        } else {
            self.valid_tokens.iter().any(|t| t == token)
        }
    }

    fn record(&self, mut call: RecordedCall) {
        let mut calls = lock(&self.calls);
        call.seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        calls.push(call);
        drop(calls);
        self.calls_changed.notify_waiters();
    }

    /// The last `seq` given, read while the caller holds the `calls` lock (taking
    /// the guard proves it), so that it matches the list the caller sees.
    fn last_seq_locked(&self, _calls: &MutexGuard<'_, Vec<RecordedCall>>) -> u64 {
        self.seq.load(Ordering::Relaxed)
    }
}

impl FakeBotApi {
    /// Starts a server on an ephemeral loopback port.
    pub async fn start(config: FakeConfig) -> std::io::Result<FakeBotApi> {
        Self::bind(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Starts a server on `addr`.
    pub async fn bind(addr: SocketAddr, config: FakeConfig) -> std::io::Result<FakeBotApi> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            valid_tokens: config.valid_tokens,
            blocked_chats: config.blocked_chats.into_iter().collect(),
            bot_username: if config.bot_username.is_empty() {
                FakeConfig::default().bot_username
            } else {
                config.bot_username
            },
            start: Instant::now(),
            state: Mutex::new(State::new(config.enforce_limits)),
            calls: Mutex::new(Vec::new()),
            seq: AtomicU64::new(0),
            calls_changed: tokio::sync::Notify::new(),
            updates_changed: tokio::sync::Notify::new(),
        });
        let (stop, stopped) = shutdown::channel();
        let handler = server::FakeHandler {
            shared: Arc::clone(&shared),
            shutdown: stopped.clone(),
        };
        let task = tokio::spawn(net::server::serve(
            listener,
            Arc::new(handler),
            server::options(),
            stopped,
        ));
        Ok(FakeBotApi {
            shared,
            addr,
            stop,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`; clients append `/bot<token>/<method>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every call so far, in arrival order.
    pub fn calls(&self) -> Vec<RecordedCall> {
        lock(&self.shared.calls).clone()
    }

    /// Number of calls so far, without copying them.
    pub fn call_count(&self) -> usize {
        lock(&self.shared.calls).len()
    }

    /// Removes and returns the calls recorded so far; long benchmarks use it
    /// to keep the recorder's memory bounded.
    pub fn take_calls(&self) -> Vec<RecordedCall> {
        std::mem::take(&mut *lock(&self.shared.calls))
    }

    /// Calls of `method` (case-insensitive) whatever their outcome.
    pub fn calls_for(&self, method: &str) -> Vec<RecordedCall> {
        self.filtered(|c| c.method.eq_ignore_ascii_case(method))
    }

    /// Calls of `method` that were answered with 200, i.e. took effect.
    pub fn delivered_calls(&self, method: &str) -> Vec<RecordedCall> {
        self.filtered(|c| c.delivered() && c.method.eq_ignore_ascii_case(method))
    }

    fn filtered(&self, keep: impl Fn(&RecordedCall) -> bool) -> Vec<RecordedCall> {
        lock(&self.shared.calls)
            .iter()
            .filter(|c| keep(c))
            .cloned()
            .collect()
    }

    /// Waits until `pred` holds for the recorded calls; false on timeout.
    /// `pred` runs while the recorder is locked, so keep it quick.
    pub async fn wait_for(
        &self,
        pred: impl Fn(&[RecordedCall]) -> bool,
        timeout: Duration,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.shared.calls_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if pred(&lock(&self.shared.calls)) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return pred(&lock(&self.shared.calls));
            }
        }
    }

    /// Makes the next `times` calls (of `method` only, when given) misbehave.
    /// Faults queue up: each call consumes the first queued fault that
    /// applies to it. Calls refused with 401, 404 or an unparsable body
    /// consume none.
    pub fn inject(&self, fault: Fault, times: usize, method: Option<&str>) {
        lock(&self.shared.state).inject(fault, times, method);
    }

    /// Queues an update for `getUpdates` and returns its `update_id`. An
    /// object without `update_id` gets the next one; messages in it make
    /// their message ids known, so the bot can delete or reply to them.
    pub fn push_update(&self, update: Value) -> i64 {
        let id = lock(&self.shared.state).push_update(update);
        self.shared.updates_changed.notify_waiters();
        id
    }

    /// The webhook set with `setWebhook`, if any.
    pub fn webhook(&self) -> Option<WebhookState> {
        lock(&self.shared.state).webhook.clone()
    }

    /// Posts `update` to the webhook set by the bot, as Telegram would (with
    /// `X-Telegram-Bot-Api-Secret-Token` when a secret was set), and returns
    /// the HTTP status the bot answered. Only `http://` urls can be reached.
    pub async fn deliver_webhook(&self, update: Value) -> Result<u16, FakeError> {
        let hook = self.webhook().ok_or(FakeError::NoWebhook)?;
        let (_, update) = lock(&self.shared.state).number_update(update);
        webhook::post(&hook, &update).await
    }

    /// Stops accepting, closes every connection and waits until the port is
    /// released.
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
