//! The outbox sender: committed actions go to Telegram in order per chat, under the
//! flood limits, until Telegram accepts or permanently refuses them.
//!
//! * Limits: about 30 writes/s overall (governor), 1/s per private chat, 20/min per group
//!   (spacing within the chat's lane), counting every method that writes to a chat. No
//!   limit allows a burst, so no window of the limit's length holds more than the limit.
//! * `429 retry_after` pauses that chat; 429s for two chats at once pause all of them.
//! * 5xx, timeouts and lost connections are retried with exponential backoff and jitter.
//! * 403 (the user blocked the bot) marks the user blocked; other 4xx are logged and
//!   dropped: sending them again would fail again.
//! * The one 400 that is sent again: markup Telegram cannot parse ("can't parse
//!   entities"). The call goes once more as plain text (`telegram::markup::plain_params`),
//!   so a reply is never lost to its formatting.
//!
//! A call leaves the outbox table only once settled, so a crash resends at most the
//! calls that were in flight. The sender sends each call's stored parameters as they are.

use super::lanes::Lanes;
use super::live::{Live, LiveCall, Shown};
use super::outbound::{call_of, method_label};
use crate::botapi::{ApiError, Client};
use crate::calendar::{UnixMillis, UnixSecs};
use crate::config::OutboundLimits;
use crate::net::backoff::Backoff;
use crate::store::records::{Event, EventKind, UserDelta, UserStatus};
use crate::store::{OutboxEntry, Store, StoreError};
use crate::telegram::markup;
use crate::telegram::methods::Action;
use crate::telemetry::health::Health;
use crate::telemetry::metrics::Metrics;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::Instrument;

/// Actions that write to no chat (answering a callback query) each get a lane of their
/// own, numbered upward from here: far below any chat id, so they never queue behind a
/// chat, nor behind one another.
const SOLO_LANES: i64 = i64::MIN;
/// How many solo lane numbers there are before they repeat; a repeat is harmless (two
/// answers in one lane), and by then the earlier lane is long gone.
const SOLO_SPAN: u64 = 1 << 62;

fn is_solo(lane: i64) -> bool {
    lane < SOLO_LANES + SOLO_SPAN as i64
}

/// Added to each per-chat interval so that network jitter between two calls never makes
/// Telegram see them closer than its limit.
const JITTER_MARGIN: f64 = 1.02;

/// The metric label of a live call's method: an action's, or one of the live-only ones.
fn live_label(method: &str) -> &'static str {
    match method {
        "sendMessageDraft" => "sendMessageDraft",
        "sendChatAction" => "sendChatAction",
        other => method_label(other),
    }
}

/// Backoff after transient failures: 250 ms doubling to at most 30 s, with jitter.
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

struct Limits {
    global: DefaultDirectRateLimiter,
    private_interval: Duration,
    group_interval: Duration,
    /// When each chat was last written to. A chat's lane is sequential, so spacing its
    /// writes needs no more than this; it outlives the lane, which ends when idle.
    last_write: Mutex<HashMap<i64, Instant>>,
}

/// Entries of `last_write` kept before the ones that no longer matter are forgotten.
const FORGET_AFTER: usize = 65_536;

/// How long a sent call's removal from the outbox waits for another commit to ride on
/// before it is committed alone: under traffic an update's commit comes long before, so
/// the removal costs no transaction of its own.
const SETTLE_FLUSH: Duration = Duration::from_millis(50);

impl Limits {
    fn new(config: &OutboundLimits) -> Limits {
        let per =
            |period: Duration, n: std::num::NonZeroU32| (period / n.get()).mul_f64(JITTER_MARGIN);
        // A rate so high that its period rounds to zero would make no quota; the config
        // refuses such rates, and this falls back to the plain per-second quota anyway.
        let global = Quota::with_period(per(Duration::from_secs(1), config.global_per_second))
            .unwrap_or_else(|| Quota::per_second(config.global_per_second));
        Limits {
            global: RateLimiter::direct(global),
            private_interval: per(Duration::from_secs(1), config.private_per_second),
            group_interval: per(Duration::from_secs(60), config.group_per_minute),
            last_write: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until `chat_id` may be written to, then takes a place under the global
    /// limit. The global place is taken last, right before the call, so that waits for
    /// one chat never bunch up other chats' calls.
    async fn wait(&self, chat_id: i64) {
        // Private chats have positive ids; groups and channels negative ones.
        let interval = if chat_id > 0 {
            self.private_interval
        } else {
            self.group_interval
        };
        let last = self
            .last_write
            .lock()
            .expect("limits lock")
            .get(&chat_id)
            .copied();
        if let Some(last) = last {
            tokio::time::sleep_until((last + interval).into()).await;
        }
        self.global.until_ready().await;
        let now = Instant::now();
        let mut last_write = self.last_write.lock().expect("limits lock");
        if last_write.len() >= FORGET_AFTER {
            let horizon = self.private_interval.max(self.group_interval);
            last_write.retain(|_, at| now.duration_since(*at) < horizon);
        }
        last_write.insert(chat_id, now);
    }
}

impl Limits {
    /// Takes a place for a live call only if one is free now: a chat write (`writes`)
    /// needs its chat's interval to have passed, every call a place under the global
    /// limit. Nothing waits, so a live call never delays a stored one.
    fn try_take(&self, chat_id: i64, writes: bool) -> bool {
        let now = Instant::now();
        let interval = if chat_id > 0 {
            self.private_interval
        } else {
            self.group_interval
        };
        let mut last_write = self.last_write.lock().expect("limits lock");
        if writes && matches!(last_write.get(&chat_id), Some(last) if now < *last + interval) {
            return false;
        }
        if self.global.check().is_err() {
            return false;
        }
        if writes {
            last_write.insert(chat_id, now);
        }
        true
    }
}

/// How long a live call may take before it is given up: it is stale by then.
const LIVE_TIMEOUT: Duration = Duration::from_secs(5);

struct Sender {
    client: Client,
    store: Store,
    limits: Option<Limits>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    /// Until when every chat waits, after Telegram limited the whole bot.
    global_pause: Mutex<Option<Instant>>,
    /// The chat and time of the last 429, to tell a chat's limit from the bot's.
    last_limited: Mutex<Option<(i64, Instant)>>,
    /// Whether a flush of settled calls is already scheduled.
    flush_scheduled: Arc<AtomicBool>,
}

/// The handle through which committed actions reach the sender.
#[derive(Clone)]
pub struct Outbox {
    /// Each entry with the span of the update that caused it, so its calls join that
    /// update's trace.
    lanes: Arc<Lanes<(OutboxEntry, tracing::Span)>>,
    store: Store,
    /// The next solo lane, counted from [`SOLO_LANES`].
    next_solo: Arc<AtomicU64>,
    /// For live calls, which bypass the lanes.
    sender: Arc<Sender>,
}

impl Outbox {
    /// Starts the sender. `limits: None` switches the flood limits off.
    pub fn start(
        client: Client,
        store: Store,
        limits: Option<&OutboundLimits>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
    ) -> Outbox {
        let sender = Arc::new(Sender {
            client,
            store: store.clone(),
            limits: limits.map(Limits::new),
            metrics,
            health,
            global_pause: Mutex::new(None),
            last_limited: Mutex::new(None),
            flush_scheduled: Arc::new(AtomicBool::new(false)),
        });
        let delivering = sender.clone();
        let lanes = Lanes::new(move |lane, (entry, parent): (OutboxEntry, tracing::Span)| {
            let sender = delivering.clone();
            async move { sender.deliver(lane, entry, &parent).await }
        });
        Outbox {
            lanes,
            store,
            next_solo: Arc::new(AtomicU64::new(0)),
            sender,
        }
    }

    /// Hands committed entries to their chats' lanes.
    pub fn push(&self, entries: impl IntoIterator<Item = OutboxEntry>) {
        for entry in entries {
            let lane = entry.call.chat_id.unwrap_or_else(|| {
                let n = self.next_solo.fetch_add(1, Ordering::Relaxed) % SOLO_SPAN;
                SOLO_LANES + n as i64
            });
            self.lanes.push(lane, (entry, tracing::Span::current()));
        }
    }

    /// Commits actions that no update caused (an admin's message) and sends them.
    pub async fn enqueue(&self, actions: Vec<Action>) -> Result<(), StoreError> {
        let calls = actions.iter().map(call_of).collect();
        let entries = self.store.enqueue_outbox(calls).await?;
        self.push(entries);
        Ok(())
    }

    /// Actions waiting or in flight.
    pub fn pending(&self) -> usize {
        self.lanes.pending()
    }

    /// Resolves when everything handed over so far is settled.
    pub async fn drained(&self) {
        self.lanes.drained().await;
        if let Err(e) = self.store.flush_settled().await {
            tracing::error!(error = %e, "could not clear sent actions; they will be sent again after a restart");
        }
    }
}

#[async_trait::async_trait]
impl Live for Outbox {
    async fn show(&self, call: LiveCall<'_>) -> Shown {
        self.sender.show(call).await
    }
}

impl Sender {
    /// One live call: now or never, once.
    async fn show(&self, call: LiveCall<'_>) -> Shown {
        let chat_id = call.chat_id();
        let paused = self
            .global_pause
            .lock()
            .expect("pause lock")
            .is_some_and(|until| Instant::now() < until);
        if paused
            || self
                .limits
                .as_ref()
                .is_some_and(|limits| !limits.try_take(chat_id, call.writes()))
        {
            return Shown::Skipped;
        }
        let method = call.method();
        let started = Instant::now();
        let result = self
            .client
            .call_raw(method, bytes::Bytes::from(call.body()), LIVE_TIMEOUT)
            .await;
        let seconds = started.elapsed().as_secs_f64();
        let label = live_label(method);
        match result {
            Ok(raw) => {
                self.metrics.outbound_call(label, "ok", seconds);
                #[derive(serde::Deserialize)]
                struct Sent {
                    message_id: i64,
                }
                let message_id = serde_json::from_slice::<Sent>(&raw)
                    .ok()
                    .map(|sent| sent.message_id);
                Shown::Done { message_id }
            }
            Err(ApiError::Telegram {
                code: 429,
                retry_after,
                ..
            }) => {
                self.metrics.outbound_call(label, "rate_limited", seconds);
                let wait = Duration::from_secs(u64::from(retry_after.unwrap_or(1).max(1)));
                self.pause(chat_id, wait);
                Shown::Skipped
            }
            Err(e) if e.is_transient() => {
                self.metrics.outbound_call(label, "retry", seconds);
                Shown::Failed
            }
            Err(e) => {
                self.metrics.outbound_call(label, "failed", seconds);
                tracing::debug!(method, error = %e, "Telegram refused a live call");
                Shown::Refused {
                    code: e.code().unwrap_or(400),
                }
            }
        }
    }

    async fn deliver(&self, lane: i64, mut entry: OutboxEntry, parent: &tracing::Span) {
        let mut body = bytes::Bytes::from(std::mem::take(&mut entry.call.params));
        let method = entry.call.method.as_str();
        let label = method_label(method);
        let span = tracing::info_span!(
            parent: parent,
            "outbound.call",
            method,
            update_id = entry.update_id
        );
        async {
            let mut backoff = Backoff::new(BACKOFF_START, BACKOFF_MAX);
            loop {
                self.wait_turn(entry.call.chat_id).await;
                let started = Instant::now();
                let result = self
                    .client
                    .call_raw(method, body.clone(), self.client.timeout())
                    .await;
                let seconds = started.elapsed().as_secs_f64();
                match result {
                    Ok(_) => {
                        self.health.api_succeeded(UnixSecs::now());
                        self.metrics.outbound_call(label, "ok", seconds);
                        break;
                    }
                    Err(ApiError::Telegram {
                        code: 429,
                        retry_after,
                        ..
                    }) => {
                        self.metrics.outbound_call(label, "rate_limited", seconds);
                        self.metrics.rate_limited.inc();
                        let wait = Duration::from_secs(u64::from(retry_after.unwrap_or(1).max(1)));
                        tracing::warn!(method, retry_after_secs = wait.as_secs(), "Telegram asked to slow down");
                        self.pause(lane, wait);
                        self.metrics.rate_limit_wait_seconds.inc_by(wait.as_secs_f64());
                        tokio::time::sleep(wait).await;
                    }
                    Err(e) if e.is_transient() => {
                        self.health.api_failed(UnixSecs::now());
                        self.metrics.outbound_call(label, "retry", seconds);
                        let wait = backoff.next_wait();
                        tracing::warn!(method, error = %e, backoff_ms = wait.as_millis() as u64, "call failed, retrying");
                        tokio::time::sleep(wait).await;
                    }
                    Err(e) => {
                        self.health.api_succeeded(UnixSecs::now());
                        if let Some(plain) = plain_retry(&e, &body) {
                            self.metrics.outbound_call(label, "plain_retry", seconds);
                            tracing::warn!(method, error = %e, "Telegram could not parse the markup; sending the text plain");
                            body = plain.into();
                            continue;
                        }
                        self.refused(&entry, &e, seconds).await;
                        break;
                    }
                }
            }
            self.store.outbox_settled(entry.seq);
            self.flush_later();
        }
        .instrument(span)
        .await;
    }

    /// Makes sure settled calls leave the outbox table within [`SETTLE_FLUSH`], by a commit
    /// of their own if no other commit took them along by then.
    fn flush_later(&self) {
        if self.flush_scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        // A weak handle: a store closed meanwhile removes what is settled as it closes.
        let store = self.store.downgrade();
        let scheduled = self.flush_scheduled.clone();
        tokio::spawn(async move {
            tokio::time::sleep(SETTLE_FLUSH).await;
            scheduled.store(false, Ordering::Release);
            // Under traffic another commit has taken them along by now.
            let Some(store) = store.upgrade().filter(Store::has_settled) else {
                return;
            };
            if let Err(e) = store.flush_settled().await {
                tracing::error!(error = %e, "could not clear sent actions; they will be sent again after a restart");
            }
        });
    }

    /// Waits for the global pause and the flood limits of the call's chat.
    async fn wait_turn(&self, chat_id: Option<i64>) {
        let paused = *self.global_pause.lock().expect("pause lock");
        if let Some(until) = paused {
            tokio::time::sleep_until(until.into()).await;
        }
        if let (Some(limits), Some(chat_id)) = (&self.limits, chat_id) {
            limits.wait(chat_id).await;
        }
    }

    /// After a 429: a second chat limited within the wait means the whole bot is.
    fn pause(&self, lane: i64, wait: Duration) {
        let now = Instant::now();
        let mut last = self.last_limited.lock().expect("limited lock");
        let whole_bot =
            is_solo(lane) || matches!(*last, Some((other, at)) if other != lane && now - at < wait);
        *last = Some((lane, now));
        if whole_bot {
            let mut pause = self.global_pause.lock().expect("pause lock");
            *pause = Some(pause.map_or(now + wait, |p| p.max(now + wait)));
        }
    }

    /// Telegram refused the call for good.
    async fn refused(&self, entry: &OutboxEntry, error: &ApiError, seconds: f64) {
        let method = entry.call.method.as_str();
        let label = method_label(method);
        let chat_id = entry.call.chat_id;
        match (error.code(), chat_id) {
            (Some(403), Some(chat_id)) if chat_id > 0 => {
                self.metrics.outbound_call(label, "blocked", seconds);
                tracing::info!(
                    method,
                    chat_id,
                    "the user blocked the bot; marking them blocked"
                );
                let mut delta = UserDelta::new(chat_id, UnixSecs::now());
                delta.status = Some(UserStatus::Blocked);
                let marked = self.store.update_user(delta).await;
                let logged = self
                    .store
                    .append_events(vec![Event {
                        at_ms: UnixMillis::now(),
                        user_id: Some(chat_id),
                        chat_id: Some(chat_id),
                        kind: EventKind::BlockedBot,
                    }])
                    .await;
                if let Err(e) = marked.and(logged) {
                    tracing::error!(error = %e, "could not record a blocked user");
                }
            }
            _ => {
                self.metrics.outbound_call(label, "failed", seconds);
                tracing::warn!(method, error = %error, "Telegram refused an action; dropping it");
            }
        }
    }
}

/// The call's parameters as plain text, when Telegram refused them only because it could
/// not parse their markup (a stray tag in a model's answer, a service's broken HTML).
/// `None` for any other refusal, and for a call without `parse_mode` — one already made
/// plain — so a call is made plain at most once.
fn plain_retry(error: &ApiError, body: &[u8]) -> Option<Vec<u8>> {
    match error {
        ApiError::Telegram {
            code: 400,
            description,
            ..
        } if description
            .to_ascii_lowercase()
            .contains("can't parse entities") =>
        {
            markup::plain_params(body)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(code: u16, description: &str) -> ApiError {
        ApiError::Telegram {
            code,
            description: description.to_owned(),
            retry_after: None,
            migrate_to_chat_id: None,
        }
    }

    #[test]
    fn only_markup_refusals_are_sent_again_plain() {
        let html = br#"{"chat_id":1,"text":"<b>a &lt; b","parse_mode":"HTML"}"#;
        let parse = refusal(
            400,
            "Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"b\"",
        );
        let plain: serde_json::Value =
            serde_json::from_slice(&plain_retry(&parse, html).unwrap()).unwrap();
        assert_eq!(plain, serde_json::json!({"chat_id": 1, "text": "a < b"}));
        let once = serde_json::to_vec(&plain).unwrap();
        assert_eq!(plain_retry(&parse, &once), None, "plain already");
        assert_eq!(
            plain_retry(&refusal(400, "Bad Request: chat not found"), html),
            None
        );
        assert_eq!(
            plain_retry(&refusal(403, "Forbidden: can't parse entities"), html),
            None
        );
        assert_eq!(plain_retry(&ApiError::Network("reset".into()), html), None);
    }
}
