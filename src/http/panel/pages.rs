//! The panel's pages: each reads what it shows through the API's functions (or `auth`'s)
//! and fills its view; and the downloads, which answer what the API answers. Nothing
//! here writes but the audit line of an export (the API's function writes it).

use super::views::{
    AccountRow, AccountsView, AuditRow, AuditView, Check, ConversationsCard, DashboardView,
    DayPoint, EventFilter, EventRow, EventsView, SettingsView, UsageRow, UserFilter, UserRow,
    UserView, UsersView,
};
use super::{Download, Page, Visit, html};
use crate::calendar::{UnixMillis, UnixSecs, civil_date, parse_civil_date, utc_minute};
use crate::http::api::{self, AuditFilter, LlmUsage};
use crate::http::ready;
use crate::http::wire::{ApiError, Query, Reply, user_id};
use crate::store::records::{Event, EventKind, Session, UserRecord};
use std::collections::BTreeMap;

/// The dashboard's window, in days.
const DASHBOARD_DAYS: u32 = 30;
/// Rows on a page of users, events or the audit log.
const PAGE_ROWS: usize = 50;
/// The newest events looked through for a user's timeline.
const TIMELINE_SCAN: usize = 20_000;
const TIMELINE_ROWS: usize = 50;
const DAY_MS: i64 = 86_400_000;

pub(super) async fn show(visit: &Visit<'_>, page: Page) -> Reply {
    let query = Query::parse(visit.req.query);
    let shown = match page {
        Page::Dashboard => dashboard(visit).await,
        Page::Users => users(visit, &query).await,
        Page::User => user(visit).await,
        Page::Events => events(visit, &query).await,
        Page::Audit => audit(visit, &query),
        Page::Settings => Ok(SettingsView {
            frame: visit.frame(),
            config_toml: visit.state.settings.clone(),
        }
        .render()),
        Page::Accounts => accounts(visit).await,
    };
    match shown {
        Ok(body) => html(200, body),
        Err(e) => visit.refuse(&e),
    }
}

fn name_of(user: &UserRecord) -> String {
    match &user.last_name {
        Some(last) => format!("{} {last}", user.first_name),
        None => user.first_name.clone(),
    }
}

async fn dashboard(visit: &Visit<'_>) -> Result<String, ApiError> {
    let state = visit.state;
    let stats = api::stats(&state.store, DASHBOARD_DAYS).await?;
    let counts = state.store.stats()?;
    let readiness = ready::check(state).await;
    let check = |name: &str| {
        let outcome = readiness
            .checks
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, outcome)| outcome.clone());
        match outcome {
            Some(Ok(())) | None => Check {
                ok: true,
                detail: String::new(),
            },
            Some(Err(why)) => Check {
                ok: false,
                detail: why,
            },
        }
    };
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    Ok(DashboardView {
        frame: visit.frame(),
        users_total: stats.users_total,
        users_new_1: stats.new_users(1),
        users_new_7: stats.new_users(7),
        users_new_30: stats.new_users(30),
        users_active_1: count(stats.active_users(1)),
        users_active_7: count(stats.active_users(7)),
        users_active_30: count(stats.active_users(30)),
        inbox_depth: counts.inbox,
        outbox_depth: counts.outbox,
        health_store: check("store"),
        health_telegram: check("telegram"),
        health_models: check("models"),
        days: stats
            .per_day
            .iter()
            .map(|day| DayPoint {
                date: civil_date(day.day),
                messages: day.messages,
                commands: day.commands,
            })
            .collect(),
        sentiment: stats.sentiment.into_iter().collect(),
        conversations: conversations_card(api::llm_usage(&state.store, DASHBOARD_DAYS).await?),
    }
    .render())
}

/// The dashboard's conversations card, or `None` while no provider answered in the
/// window.
fn conversations_card(usage: LlmUsage) -> Option<ConversationsCard> {
    if usage.totals.is_empty() {
        return None;
    }
    let mut tokens: BTreeMap<u32, u64> = BTreeMap::new();
    for (_, day, used) in &usage.per_day {
        let sum = tokens.entry(*day).or_default();
        *sum = sum
            .saturating_add(used.input_tokens)
            .saturating_add(used.output_tokens);
    }
    Some(ConversationsCard {
        providers: usage
            .totals
            .into_iter()
            .map(|(label, usage)| UsageRow { label, usage })
            .collect(),
        tokens_per_day: (usage.first_day..=usage.last_day)
            .map(|day| {
                let date = civil_date(i64::from(day));
                (date, tokens.get(&day).copied().unwrap_or(0))
            })
            .collect(),
    })
}

async fn users(visit: &Visit<'_>, query: &Query) -> Result<String, ApiError> {
    let filter = api::UserFilter::from_query(query)?;
    let page = api::list_users(&visit.state.store, filter).await?;
    let rows = page
        .users
        .iter()
        .map(|user| UserRow {
            id: user.id,
            name: name_of(user),
            username: user.username.clone(),
            status: user.status,
            role: user.role,
            messages: user.message_count,
            last_seen: utc_minute(user.last_seen),
        })
        .collect();
    Ok(UsersView {
        frame: visit.frame(),
        filter: UserFilter {
            q: query.get("q").unwrap_or_default().to_owned(),
            status: query.get("status").unwrap_or_default().to_owned(),
            role: query.get("role").unwrap_or_default().to_owned(),
        },
        rows,
        next_after: page.next_after,
        total: Some(visit.state.store.stats()?.users),
    }
    .render())
}

/// What an event says, for people: the fields of its kind.
fn detail(kind: &EventKind) -> String {
    match kind {
        EventKind::UserJoined { referrer } => {
            referrer.map_or_else(String::new, |r| format!("referred by {r}"))
        }
        EventKind::Command { name } => format!("/{name}"),
        EventKind::Callback { data } => data.clone(),
        EventKind::Feedback { text } => text.clone(),
        EventKind::RateLimited | EventKind::BlockedBot => String::new(),
        EventKind::Service {
            service,
            name,
            data,
        } => format!("{service}: {name} {data}"),
        EventKind::Text {
            sentiment,
            sentiment_score,
            spam_score,
        } => format!("{sentiment} ({sentiment_score:.2}), spam {spam_score:.2}"),
        EventKind::LlmTurn {
            personality,
            provider,
            input_tokens,
            output_tokens,
            ok,
        } => {
            if *ok {
                format!("{personality} via {provider}: {input_tokens} in, {output_tokens} out")
            } else {
                format!("{personality}: no provider answered")
            }
        }
        EventKind::LlmRefused { reason } => format!("kept from the model: {reason}"),
    }
}

fn event_row(event: &Event) -> EventRow {
    EventRow {
        time: utc_minute(event.at_ms.to_secs()),
        user_id: event.user_id,
        kind: event.kind.name().to_owned(),
        detail: detail(&event.kind),
    }
}

/// A session, for people: its parts that are set, and until when it lives.
fn describe_session(session: &Session) -> String {
    let mut parts = Vec::new();
    if let Some(conversation) = session.conversation {
        parts.push(format!("{conversation:?}"));
    }
    if let Some(id) = &session.internal_user_id {
        parts.push(format!("internal id {id}"));
    }
    if let Some(state) = &session.state {
        parts.push(format!("state {state}"));
    }
    if session.data != "{}" {
        parts.push(format!("data {}", session.data));
    }
    format!(
        "{} until {}",
        parts.join(", "),
        utc_minute(session.expires_at)
    )
}

async fn user(visit: &Visit<'_>) -> Result<String, ApiError> {
    let id = user_id(visit.id.unwrap_or_default())?;
    let store = visit.state.store.clone();
    let user = api::get_user(&store, id)?;
    // A private chat's id is its user's.
    let session = store
        .session(id, id, UnixSecs::now())?
        .map(|s| describe_session(&s));
    let timeline = tokio::task::spawn_blocking(move || -> Result<Vec<EventRow>, ApiError> {
        let mut rows = Vec::new();
        let mut before = None;
        let mut scanned = 0;
        while scanned < TIMELINE_SCAN && rows.len() < TIMELINE_ROWS {
            let page = store.events_before(before, 500)?;
            let Some((oldest, _)) = page.last() else {
                break;
            };
            before = Some(*oldest);
            scanned += page.len();
            rows.extend(
                page.iter()
                    .filter(|(_, e)| e.user_id == Some(id))
                    .map(|(_, e)| event_row(e)),
            );
        }
        rows.truncate(TIMELINE_ROWS);
        Ok(rows)
    })
    .await
    .map_err(|e| ApiError::new(500, "internal", e.to_string()))??;
    let today = api::today();
    let (usage_today, usage_month) = visit.state.store.usage_of(
        id,
        u32::try_from(today).unwrap_or(0),
        crate::calendar::civil_month(today),
    )?;
    Ok(UserView {
        frame: visit.frame(),
        id,
        name: name_of(&user),
        username: user.username.clone(),
        language: user.language_code.clone(),
        status: user.status,
        role: user.role,
        messages: user.message_count,
        first_seen: utc_minute(user.first_seen),
        last_seen: utc_minute(user.last_seen),
        referrer: user.referrer,
        referrals: user.referrals,
        session,
        events: timeline,
        usage: [
            UsageRow {
                label: "today".into(),
                usage: usage_today,
            },
            UsageRow {
                label: "this month".into(),
                usage: usage_month,
            },
        ],
    }
    .render())
}

/// A download, or the panel's refusal page when it cannot be made.
pub(super) async fn download(visit: &Visit<'_>, download: Download) -> Reply {
    let made = match download {
        Download::Conversations => conversations_export(visit).await,
    };
    made.unwrap_or_else(|e| visit.refuse(&e))
}

/// `GET /users/{id}/conversations.json`: the API's export (audited the same way), saved
/// as a file.
async fn conversations_export(visit: &Visit<'_>) -> Result<Reply, ApiError> {
    let id = user_id(visit.id.unwrap_or_default())?;
    let export = api::export_conversations(&visit.state.store, id, &visit.actor()).await?;
    let mut reply = Reply::json(200, &export.to_json());
    reply.headers.push((
        "content-disposition",
        format!("attachment; filename=\"user-{id}-conversations.json\""),
    ));
    Ok(reply)
}

/// A `YYYY-MM-DD` field as the start of that UTC day.
fn day_start(query: &Query, field: &str) -> Result<Option<UnixMillis>, ApiError> {
    query
        .get(field)
        .map(|text| {
            parse_civil_date(text)
                .map(|day| UnixMillis(day.saturating_mul(DAY_MS)))
                .ok_or_else(|| {
                    ApiError::new(
                        422,
                        "invalid_form",
                        format!("`{field}`: `{text}` is not a date as YYYY-MM-DD"),
                    )
                })
        })
        .transpose()
}

async fn events(visit: &Visit<'_>, query: &Query) -> Result<String, ApiError> {
    let kind = query.get("type").map(str::to_owned);
    if let Some(kind) = &kind
        && !EventKind::NAMES.contains(&kind.as_str())
    {
        return Err(ApiError::new(
            422,
            "invalid_form",
            format!("`type`: `{kind}` is not a kind of event"),
        ));
    }
    let filter = api::EventFilter {
        limit: PAGE_ROWS,
        after: query.number("after")?.unwrap_or(0),
        kind,
        since_ms: day_start(query, "since")?,
        // `until` names the last day shown, so the filter ends after it.
        until_ms: day_start(query, "until")?.map(|at| UnixMillis(at.get() + DAY_MS)),
    };
    let page = api::list_events(&visit.state.store, filter).await?;
    Ok(EventsView {
        frame: visit.frame(),
        filter: EventFilter {
            kind: query.get("type").unwrap_or_default().to_owned(),
            since: query.get("since").unwrap_or_default().to_owned(),
            until: query.get("until").unwrap_or_default().to_owned(),
        },
        kinds: EventKind::NAMES.iter().map(|k| (*k).to_owned()).collect(),
        rows: page.events.iter().map(|(_, e)| event_row(e)).collect(),
        next_after: page.next_after.map(|seq| seq.to_string()),
    }
    .render())
}

fn audit(visit: &Visit<'_>, query: &Query) -> Result<String, ApiError> {
    let filter = AuditFilter {
        limit: PAGE_ROWS,
        before: query.number("before")?,
    };
    let page = api::audit(&visit.state.store, filter)?;
    Ok(AuditView {
        frame: visit.frame(),
        rows: page
            .entries
            .iter()
            .map(|(_, entry)| AuditRow {
                time: utc_minute(entry.at_ms.to_secs()),
                account: entry.actor.clone(),
                action: entry.action.name().to_owned(),
                target: entry.action.target(),
                address: entry.address.clone(),
            })
            .collect(),
        next_before: page.next_before.map(|seq| seq.to_string()),
    }
    .render())
}

async fn accounts(visit: &Visit<'_>) -> Result<String, ApiError> {
    let accounts = crate::auth::list_accounts(&visit.state.store)
        .await
        .map_err(|e| ApiError::new(500, "internal", e.to_string()))?;
    Ok(AccountsView {
        frame: visit.frame(),
        rows: accounts
            .into_iter()
            .map(|a| AccountRow {
                name: a.name,
                role: a.role,
                totp: a.totp,
                created: civil_date(a.created.get().div_euclid(86_400)),
            })
            .collect(),
    }
    .render())
}
