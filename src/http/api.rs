//! What the admin API and the panel do: users, events, statistics, the audit log,
//! sending a message, and the LLM conversations (a user's export, usage per provider).
//!
//! Plain functions from the store (and the outbox) and parsed parameters to typed
//! results, which the API turns into JSON and the panel into pages, so both do exactly
//! the same and are tested without a socket. Every change an admin makes is written to
//! the audit log with it. Scans that may touch many records run on the
//! blocking pool, and each request scans a bounded number of records: a filter that
//! matches little returns fewer items and a cursor to go on from.

use super::wire::{ApiError, Query};
use crate::auth::Actor;
use crate::calendar::{UnixMillis, civil_date};
use crate::engine::sender::Outbox;
use crate::store::Store;
use crate::store::records::{
    AuditAction, AuditEntry, Dialog, DialogKey, Event, EventKind, Role, TurnRecord, Usage,
    UserDelta, UserRecord, UserStatus,
};
use crate::telegram::methods::Action;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};

pub(crate) const DEFAULT_LIMIT: usize = 50;
pub(crate) const MAX_LIMIT: usize = 1000;
/// The most records one request looks at before it returns what it found so far.
const SCAN_BUDGET: usize = 20_000;
/// Records read per store call while scanning.
const PAGE: usize = 500;
pub(crate) const DEFAULT_STATS_DAYS: u32 = 7;
/// The longest window of `stats` and `llm_usage`, in days.
pub(crate) const MAX_STATS_DAYS: u32 = 366;
pub(crate) const DEFAULT_USAGE_DAYS: u32 = 30;
/// Telegram's limit on the text of one message, in characters.
const MAX_TEXT_CHARS: usize = 4096;
const DAY_MS: i64 = 86_400_000;

/// Runs a store scan on the blocking pool: a long scan must not hold up a runtime thread.
async fn blocking<T, F>(store: &Store, scan: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Store) -> Result<T, ApiError> + Send + 'static,
{
    let store = store.clone();
    tokio::task::spawn_blocking(move || scan(&store))
        .await
        .map_err(|e| ApiError::new(500, "internal", e.to_string()))?
}

fn limit(query: &Query) -> Result<usize, ApiError> {
    match query.number::<usize>("limit")? {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!(
            "limit={n}: between 1 and {MAX_LIMIT}"
        ))),
    }
}

/// `GET /api/v1/users`: paging, search and status filter.
#[derive(Debug, Clone, Default)]
pub(crate) struct UserFilter {
    pub(crate) limit: usize,
    pub(crate) after: Option<i64>,
    /// Lowercased; matched against the username and the full name.
    pub(crate) q: Option<String>,
    pub status: Option<UserStatus>,
    pub role: Option<Role>,
}

impl UserFilter {
    pub(crate) fn from_query(query: &Query) -> Result<UserFilter, ApiError> {
        let status = match query.get("status") {
            None => None,
            Some("active") => Some(UserStatus::Active),
            Some("banned") => Some(UserStatus::Banned),
            Some("blocked") => Some(UserStatus::Blocked),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "status={other}: one of active, banned, blocked"
                )));
            }
        };
        let role = match query.get("role") {
            None => None,
            Some("user") => Some(Role::User),
            Some("admin") => Some(Role::Admin),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "role={other}: one of user, admin"
                )));
            }
        };
        Ok(UserFilter {
            role,
            limit: limit(query)?,
            after: query.number("after")?,
            q: query
                .get("q")
                .map(|q| q.trim_start_matches('@').to_lowercase()),
            status,
        })
    }

    fn matches(&self, user: &UserRecord) -> bool {
        if self.status.is_some_and(|s| s != user.status)
            || self.role.is_some_and(|r| r != user.role)
        {
            return false;
        }
        let Some(q) = &self.q else { return true };
        if q.parse::<i64>().is_ok_and(|id| id == user.id) {
            return true;
        }
        let username = user.username.as_deref().unwrap_or_default();
        let name = match &user.last_name {
            Some(last) => format!("{} {last}", user.first_name),
            None => user.first_name.clone(),
        };
        username.to_lowercase().contains(q) || name.to_lowercase().contains(q)
    }
}

/// A page of users and where the next one starts.
#[derive(Debug, Clone)]
pub(crate) struct UserPage {
    pub(crate) users: Vec<UserRecord>,
    pub(crate) next_after: Option<i64>,
}

impl UserPage {
    pub(crate) fn to_json(&self) -> Value {
        json!({ "users": self.users, "next_after": self.next_after })
    }
}

pub(crate) async fn list_users(store: &Store, filter: UserFilter) -> Result<UserPage, ApiError> {
    blocking(store, move |store| {
        let mut found = Vec::new();
        // A search for an id finds that user at once, wherever the scan would reach it.
        let exact = match (&filter.q, filter.after) {
            (Some(q), None) => q.parse::<i64>().ok().map(|id| store.user(id)).transpose()?,
            _ => None,
        }
        .flatten()
        .filter(|user| filter.matches(user));
        let exact_id = exact.as_ref().map(|user| user.id);
        found.extend(exact);
        let mut cursor = filter.after;
        let mut scanned = 0;
        let next = loop {
            let page = store.users(cursor, PAGE)?;
            let end = page.len() < PAGE;
            for user in page {
                cursor = Some(user.id);
                scanned += 1;
                if Some(user.id) != exact_id && filter.matches(&user) {
                    found.push(user);
                    if found.len() >= filter.limit {
                        break;
                    }
                }
            }
            if found.len() >= filter.limit || scanned >= SCAN_BUDGET {
                break cursor;
            }
            if end {
                break None;
            }
        };
        Ok(UserPage {
            users: found,
            next_after: next,
        })
    })
    .await
}

pub(crate) fn get_user(store: &Store, id: i64) -> Result<UserRecord, ApiError> {
    store.user(id)?.ok_or_else(|| unknown_user(id))
}

fn unknown_user(id: i64) -> ApiError {
    ApiError::not_found(format!("no user with id {id}"))
}

/// The body of `PATCH /api/v1/users/{id}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserChange {
    pub role: Option<Role>,
    pub status: Option<SettableStatus>,
}

/// An admin bans and unbans; only Telegram says a user blocked the bot.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SettableStatus {
    Active,
    Banned,
}

/// Applies `change` to an existing user and returns the result. Unlike
/// [`Store::update_user`] it neither creates a missing user nor moves `last_seen`: the
/// lookup and the change share one transaction, and an admin's action is not the user
/// being seen.
pub(crate) async fn patch_user(
    store: &Store,
    id: i64,
    change: UserChange,
    actor: &Actor,
) -> Result<UserRecord, ApiError> {
    if change.role.is_none() && change.status.is_none() {
        return Err(ApiError::new(
            422,
            "invalid_body",
            "nothing to change: give `role` and/or `status`",
        ));
    }
    let status = change.status.map(|s| match s {
        SettableStatus::Active => UserStatus::Active,
        SettableStatus::Banned => UserStatus::Banned,
    });
    let audit = actor.audit(AuditAction::UserChanged {
        user_id: id,
        status,
        role: change.role,
    });
    let updated = store
        .write(move |t| {
            let Some(before) = t.user(id)? else {
                return Ok(None);
            };
            let mut delta = UserDelta::new(id, before.last_seen);
            delta.role = change.role;
            delta.status = status;
            let after = delta.apply(Some(before));
            t.put_user(&after)?;
            t.append_audit(&audit)?;
            Ok(Some(after))
        })
        .await?;
    let user = updated.ok_or_else(|| unknown_user(id))?;
    tracing::info!(
        user_id = id,
        role = ?user.role,
        status = ?user.status,
        actor = %actor.name,
        "admin: user changed"
    );
    Ok(user)
}

/// Forgets a user (record, sessions, events, LLM conversations), with the audit line in
/// the same commit.
pub(crate) async fn delete_user(store: &Store, id: i64, actor: &Actor) -> Result<(), ApiError> {
    let audit = actor.audit(AuditAction::UserDeleted { user_id: id });
    let existed = store
        .write(move |t| {
            let existed = t.forget_user(id)?;
            if existed {
                t.append_audit(&audit)?;
            }
            Ok(existed)
        })
        .await?;
    if existed {
        tracing::info!(user_id = id, actor = %actor.name, "admin: user deleted");
        Ok(())
    } else {
        Err(unknown_user(id))
    }
}

/// `GET /api/v1/events`: paging by sequence number, filter by type and time.
#[derive(Debug, Clone, Default)]
pub(crate) struct EventFilter {
    pub(crate) limit: usize,
    pub(crate) after: u64,
    /// An [`EventKind::name`].
    pub kind: Option<String>,
    /// Inclusive.
    pub(crate) since_ms: Option<UnixMillis>,
    /// Exclusive.
    pub(crate) until_ms: Option<UnixMillis>,
}

impl EventFilter {
    pub(crate) fn from_query(query: &Query) -> Result<EventFilter, ApiError> {
        Ok(EventFilter {
            limit: limit(query)?,
            after: query.number("after")?.unwrap_or(0),
            kind: query.get("type").map(str::to_owned),
            since_ms: query.number("since_ms")?.map(UnixMillis),
            until_ms: query.number("until_ms")?.map(UnixMillis),
        })
    }

    fn matches(&self, event: &Event) -> bool {
        self.kind.as_deref().is_none_or(|k| k == event.kind.name())
            && self.since_ms.is_none_or(|since| event.at_ms >= since)
            && self.until_ms.is_none_or(|until| event.at_ms < until)
    }
}

/// An event as the API shows it: the kind's name as `type`, its fields as `data`.
pub(crate) fn event_json(seq: u64, event: &Event) -> Value {
    let data = match serde_json::to_value(&event.kind) {
        // Variants with fields serialize as `{"name": {fields}}`, unit variants as a string.
        Ok(Value::Object(map)) => map.into_iter().next().map_or(Value::Null, |(_, v)| v),
        _ => Value::Null,
    };
    json!({
        "seq": seq,
        "at_ms": event.at_ms,
        "user_id": event.user_id,
        "chat_id": event.chat_id,
        "type": event.kind.name(),
        "data": data,
    })
}

/// A page of events and where the next one starts.
#[derive(Debug, Clone)]
pub(crate) struct EventPage {
    pub(crate) events: Vec<(u64, Event)>,
    pub(crate) next_after: Option<u64>,
}

impl EventPage {
    pub(crate) fn to_json(&self) -> Value {
        let events: Vec<Value> = self
            .events
            .iter()
            .map(|(seq, event)| event_json(*seq, event))
            .collect();
        json!({ "events": events, "next_after": self.next_after })
    }
}

pub(crate) async fn list_events(store: &Store, filter: EventFilter) -> Result<EventPage, ApiError> {
    blocking(store, move |store| {
        let mut found = Vec::new();
        // Events are in time order: start where `since` begins rather than at the start.
        let mut cursor = match filter.since_ms {
            Some(since) => filter.after.max(store.events_since(since)?),
            None => filter.after,
        };
        let mut scanned = 0;
        let next = loop {
            let page = store.events(cursor, PAGE)?;
            let end = page.len() < PAGE;
            for (seq, event) in page {
                cursor = seq;
                scanned += 1;
                if filter.matches(&event) {
                    found.push((seq, event));
                    if found.len() == filter.limit {
                        break;
                    }
                }
            }
            if found.len() == filter.limit || scanned >= SCAN_BUDGET {
                break Some(cursor);
            }
            if end {
                break None;
            }
        };
        Ok(EventPage {
            events: found,
            next_after: next,
        })
    })
    .await
}

/// Whether an event stands for a message the user sent. Exhaustive on purpose: a new kind
/// of event must be placed here when it is added.
fn is_message(kind: &EventKind) -> bool {
    match kind {
        EventKind::Command { .. } | EventKind::Feedback { .. } | EventKind::Text { .. } => true,
        EventKind::UserJoined { .. }
        | EventKind::Callback { .. }
        | EventKind::RateLimited
        | EventKind::BlockedBot
        | EventKind::Service { .. }
        | EventKind::LlmTurn { .. }
        | EventKind::LlmRefused { .. } => false,
    }
}

/// The sentiment label an event carries: the models add it to the events of text
/// messages. Exhaustive on purpose, like `is_message`.
fn sentiment(kind: &EventKind) -> Option<&str> {
    match kind {
        EventKind::Text { sentiment, .. } => Some(sentiment),
        EventKind::UserJoined { .. }
        | EventKind::Command { .. }
        | EventKind::Callback { .. }
        | EventKind::Feedback { .. }
        | EventKind::RateLimited
        | EventKind::BlockedBot
        | EventKind::Service { .. }
        | EventKind::LlmTurn { .. }
        | EventKind::LlmRefused { .. } => None,
    }
}

/// One UTC day of activity.
#[derive(Debug, Default, Clone)]
pub(crate) struct Day {
    /// Days since the Unix epoch.
    pub(crate) day: i64,
    pub(crate) new_users: u64,
    pub(crate) active: HashSet<i64>,
    pub(crate) messages: u64,
    pub(crate) commands: u64,
}

/// Activity over consecutive UTC days, oldest first, and the users as they are now.
#[derive(Debug, Clone)]
pub(crate) struct Stats {
    pub(crate) per_day: Vec<Day>,
    pub(crate) users_total: u64,
    pub(crate) users_by_status: BTreeMap<&'static str, u64>,
    pub(crate) commands: BTreeMap<String, u64>,
    pub(crate) sentiment: BTreeMap<String, u64>,
}

impl Stats {
    fn last(&self, days: usize) -> &[Day] {
        &self.per_day[self.per_day.len().saturating_sub(days)..]
    }

    /// Users first seen in the last `days` days, today included.
    pub(crate) fn new_users(&self, days: usize) -> u64 {
        self.last(days).iter().map(|d| d.new_users).sum()
    }

    /// Distinct users active in the last `days` days, today included.
    pub(crate) fn active_users(&self, days: usize) -> usize {
        let active: HashSet<i64> = self
            .last(days)
            .iter()
            .flat_map(|d| d.active.iter().copied())
            .collect();
        active.len()
    }

    pub(crate) fn to_json(&self) -> Value {
        let days: Vec<Value> = self
            .per_day
            .iter()
            .map(|day| {
                json!({
                    "date": civil_date(day.day),
                    "new_users": day.new_users,
                    "active_users": day.active.len(),
                    "messages": day.messages,
                    "commands": day.commands,
                })
            })
            .collect();
        let all = self.per_day.len();
        json!({
            "from": self.per_day.first().map(|d| civil_date(d.day)),
            "to": self.per_day.last().map(|d| civil_date(d.day)),
            "users": {
                "total": self.users_total,
                "by_status": self.users_by_status,
                "new": self.new_users(all),
                "active": self.active_users(all),
            },
            "messages": self.per_day.iter().map(|d| d.messages).sum::<u64>(),
            "per_day": days,
            "commands": self.commands,
            "sentiment": self.sentiment,
        })
    }
}

/// `GET /api/v1/stats?days=N`: the last N UTC days, today included.
pub(crate) async fn stats(store: &Store, days: u32) -> Result<Stats, ApiError> {
    check_days(days)?;
    let today = today();
    blocking(store, move |store| {
        stats_between(store, today - i64::from(days) + 1, today)
    })
    .await
}

/// A `days=N` window: 1 to [`MAX_STATS_DAYS`].
fn check_days(days: u32) -> Result<(), ApiError> {
    if (1..=MAX_STATS_DAYS).contains(&days) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "days={days}: between 1 and {MAX_STATS_DAYS}"
        )))
    }
}

/// Today's UTC day, counted from 1970-01-01.
pub(crate) fn today() -> i64 {
    UnixMillis::now().get().div_euclid(DAY_MS)
}

/// Statistics over the UTC days `first..=last` (days since the Unix epoch).
fn stats_between(store: &Store, first: i64, last: i64) -> Result<Stats, ApiError> {
    let mut per_day: Vec<Day> = (first..=last)
        .map(|day| Day {
            day,
            ..Day::default()
        })
        .collect();
    let slot = |at: UnixMillis| {
        let day = at.get().div_euclid(DAY_MS);
        (first..=last)
            .contains(&day)
            .then(|| (day - first) as usize)
    };
    let mut commands: BTreeMap<String, u64> = BTreeMap::new();
    let mut sentiments: BTreeMap<String, u64> = BTreeMap::new();
    // Only the window's events are read: the log is in time order.
    let mut after = store.events_since(UnixMillis(first.saturating_mul(DAY_MS)))?;
    loop {
        let page = store.events(after, PAGE)?;
        let end = page.len() < PAGE;
        for (seq, event) in page {
            after = seq;
            let Some(i) = slot(event.at_ms) else { continue };
            let day = &mut per_day[i];
            if let Some(user) = event.user_id {
                day.active.insert(user);
            }
            if is_message(&event.kind) {
                day.messages += 1;
            }
            if let EventKind::Command { name } = &event.kind {
                day.commands += 1;
                *commands.entry(name.clone()).or_default() += 1;
            }
            if let Some(label) = sentiment(&event.kind) {
                *sentiments.entry(label.to_owned()).or_default() += 1;
            }
        }
        if end {
            break;
        }
    }
    let mut by_status: BTreeMap<&str, u64> = BTreeMap::new();
    let mut total = 0u64;
    let mut cursor = None;
    loop {
        let page = store.users(cursor, PAGE)?;
        let end = page.len() < PAGE;
        for user in page {
            cursor = Some(user.id);
            total += 1;
            *by_status.entry(status_name(user.status)).or_default() += 1;
            if let Some(i) = slot(user.first_seen.to_millis()) {
                per_day[i].new_users += 1;
            }
            // Not every message leaves an event; last_seen covers the user's latest day.
            if let Some(i) = slot(user.last_seen.to_millis()) {
                per_day[i].active.insert(user.id);
            }
        }
        if end {
            break;
        }
    }
    Ok(Stats {
        per_day,
        users_total: total,
        users_by_status: by_status,
        commands,
        sentiment: sentiments,
    })
}

pub(crate) fn status_name(status: UserStatus) -> &'static str {
    match status {
        UserStatus::Active => "active",
        UserStatus::Banned => "banned",
        UserStatus::Blocked => "blocked",
    }
}

/// The body of `POST /api/v1/messages`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewMessage {
    pub user_id: i64,
    pub text: String,
}

/// Queues a message to a user's private chat (whose id is the user's id). The outbox
/// makes it durable before this answers; the sender delivers it under the flood limits.
/// Returns the chat the message goes to.
pub(crate) async fn send_message(
    store: &Store,
    outbox: &Outbox,
    message: NewMessage,
    actor: &Actor,
) -> Result<i64, ApiError> {
    let chars = message.text.chars().count();
    if message.text.trim().is_empty() || chars > MAX_TEXT_CHARS {
        return Err(ApiError::new(
            422,
            "invalid_body",
            format!("`text` must have 1 to {MAX_TEXT_CHARS} characters (it has {chars})"),
        ));
    }
    let user = store
        .user(message.user_id)?
        .ok_or_else(|| unknown_user(message.user_id))?;
    if user.status == UserStatus::Blocked {
        return Err(ApiError::new(
            409,
            "user_blocked",
            format!("user {} blocked the bot; Telegram would refuse", user.id),
        ));
    }
    outbox
        .enqueue(vec![Action::send(user.id, message.text)])
        .await
        .map_err(ApiError::from)?;
    let audit = actor.audit(AuditAction::MessageQueued { user_id: user.id });
    store.write(move |t| t.append_audit(&audit)).await?;
    tracing::info!(user_id = user.id, actor = %actor.name, "admin: message queued");
    Ok(user.id)
}

/// `GET /api/v1/users/{id}/conversations`: everything kept of a user's LLM
/// conversations, as [`Store::conversations_of`] reads it.
#[derive(Debug, Clone)]
pub(crate) struct ConversationExport {
    pub(crate) user_id: i64,
    /// Each place the user spoke in, with its current dialog and the user's turns there
    /// (theirs and the answers to them) of every dialog number, oldest first.
    pub(crate) dialogs: Vec<(DialogKey, Dialog, Vec<TurnRecord>)>,
}

impl ConversationExport {
    pub(crate) fn to_json(&self) -> Value {
        let dialogs: Vec<Value> = self
            .dialogs
            .iter()
            .map(|(key, dialog, turns)| {
                let turns: Vec<Value> = turns
                    .iter()
                    .map(|turn| {
                        json!({
                            "speaker": turn.speaker,
                            "text": turn.text,
                            "at": turn.at,
                            "tokens": turn.tokens,
                            "provider": turn.provider,
                        })
                    })
                    .collect();
                json!({
                    "chat_id": key.chat_id,
                    "thread_id": key.thread_id,
                    "number": dialog.number,
                    "personality": dialog.personality,
                    "summary": dialog.summary,
                    "started_at": dialog.started_at,
                    "last_at": dialog.last_at,
                    "turns": turns,
                })
            })
            .collect();
        json!({ "user_id": self.user_id, "dialogs": dialogs })
    }
}

/// Reads out a user's conversations. They are personal data, so the export's audit line
/// is committed before anything is handed back: no export goes unrecorded. An unknown
/// user is a 404 and audits nothing, since nothing was read.
pub(crate) async fn export_conversations(
    store: &Store,
    id: i64,
    actor: &Actor,
) -> Result<ConversationExport, ApiError> {
    let dialogs = blocking(store, move |store| {
        if store.user(id)?.is_none() {
            return Err(unknown_user(id));
        }
        Ok(store.conversations_of(id)?)
    })
    .await?;
    let audit = actor.audit(AuditAction::ConversationsExported { user_id: id });
    store.write(move |t| t.append_audit(&audit)).await?;
    // The count only: the text of a conversation never goes to the log.
    tracing::info!(
        user_id = id,
        dialogs = dialogs.len(),
        actor = %actor.name,
        "admin: conversations exported"
    );
    Ok(ConversationExport {
        user_id: id,
        dialogs,
    })
}

/// `GET /api/v1/llm/usage?days=N`: what the language models answered and cost, per
/// provider and UTC day, over the last N days (today included).
#[derive(Debug, Clone)]
pub(crate) struct LlmUsage {
    /// The window's first and last day, counted from 1970-01-01.
    pub(crate) first_day: u32,
    pub(crate) last_day: u32,
    /// `(provider, day, usage)` by day and then provider; a day a provider did not
    /// answer is absent.
    pub(crate) per_day: Vec<(String, u32, Usage)>,
    /// Each provider's sum over the window, by name.
    pub(crate) totals: BTreeMap<String, Usage>,
}

/// Micro-dollars, as the store counts them, in dollars for JSON readers.
fn usd(micro: u64) -> f64 {
    micro as f64 / 1_000_000.0
}

/// One line of usage; `day` for a line of `per_day`.
fn usage_json(provider: &str, day: Option<u32>, usage: &Usage) -> Value {
    let mut line = json!({
        "provider": provider,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "turns": usage.turns,
        "cost_usd": usd(usage.cost_micro_usd),
    });
    if let Some(day) = day {
        line["day"] = json!(civil_date(i64::from(day)));
    }
    line
}

impl LlmUsage {
    pub(crate) fn to_json(&self) -> Value {
        let per_day: Vec<Value> = self
            .per_day
            .iter()
            .map(|(provider, day, usage)| usage_json(provider, Some(*day), usage))
            .collect();
        let totals: Vec<Value> = self
            .totals
            .iter()
            .map(|(provider, usage)| usage_json(provider, None, usage))
            .collect();
        json!({
            "from": civil_date(i64::from(self.first_day)),
            "to": civil_date(i64::from(self.last_day)),
            "per_day": per_day,
            "totals": totals,
        })
    }
}

/// Adds `more` to `total`. Saturating: a stored count near the maximum is damage, and
/// must not panic.
fn add_usage(total: &mut Usage, more: &Usage) {
    total.input_tokens = total.input_tokens.saturating_add(more.input_tokens);
    total.output_tokens = total.output_tokens.saturating_add(more.output_tokens);
    total.turns = total.turns.saturating_add(more.turns);
    total.cost_micro_usd = total.cost_micro_usd.saturating_add(more.cost_micro_usd);
}

pub(crate) async fn llm_usage(store: &Store, days: u32) -> Result<LlmUsage, ApiError> {
    check_days(days)?;
    // The store counts days as u32; a clock before 1970 is not worth more than day 0.
    let last_day = u32::try_from(today()).unwrap_or(0);
    let first_day = last_day.saturating_sub(days - 1);
    let per_day = blocking(store, move |store| {
        Ok(store.provider_usage(first_day, last_day)?)
    })
    .await?;
    let mut totals: BTreeMap<String, Usage> = BTreeMap::new();
    for (provider, _, usage) in &per_day {
        add_usage(totals.entry(provider.clone()).or_default(), usage);
    }
    Ok(LlmUsage {
        first_day,
        last_day,
        per_day,
        totals,
    })
}

/// `GET /api/v1/audit`: newest first, paged backwards by sequence.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuditFilter {
    pub(crate) limit: usize,
    pub(crate) before: Option<u64>,
}

impl AuditFilter {
    pub(crate) fn from_query(query: &Query) -> Result<AuditFilter, ApiError> {
        Ok(AuditFilter {
            limit: limit(query)?,
            before: query.number("before")?,
        })
    }
}

/// A page of the audit log and where the next (older) one starts.
#[derive(Debug, Clone)]
pub(crate) struct AuditPage {
    pub(crate) entries: Vec<(u64, AuditEntry)>,
    pub(crate) next_before: Option<u64>,
}

impl AuditPage {
    pub(crate) fn to_json(&self) -> Value {
        let entries: Vec<Value> = self
            .entries
            .iter()
            .map(|(seq, entry)| {
                json!({
                    "seq": seq,
                    "at_ms": entry.at_ms,
                    "actor": entry.actor,
                    "address": entry.address,
                    "action": entry.action.name(),
                    "target": entry.action.target(),
                })
            })
            .collect();
        json!({ "entries": entries, "next_before": self.next_before })
    }
}

pub(crate) fn audit(store: &Store, filter: AuditFilter) -> Result<AuditPage, ApiError> {
    let entries = store.audit(filter.before, filter.limit)?;
    let next_before = (entries.len() == filter.limit)
        .then(|| entries.last().map(|(seq, _)| *seq))
        .flatten();
    Ok(AuditPage {
        entries,
        next_before,
    })
}
