//! The admin panel's pages: typed view data in, HTML out.
//!
//! Each page has a plain data struct (`*View`) that the handlers fill from the store, and
//! a `render` that turns it into a whole HTML document through an askama template in
//! `src/http/panel/templates/`. The split keeps this module free of requests, sessions
//! and the store: what a page shows is decided by the handler, how it looks here.
//!
//! The element ids, form names and messages are those of `panel-contract.md`, which
//! the browser test reads; the tests below check every page for them. The panel's CSP
//! allows no script and no inline style, so the pages have neither, and askama escapes
//! every value (templates end in `.html`); the SVG charts are built and escaped in
//! [`chart`] and are the only markup inserted as it is.

mod chart;

use crate::store::records::{AdminRole, Role, Usage, UserStatus};
use askama::Template;

/// The stylesheet served at `/static/panel.css`, compiled in like everything else.
pub(crate) const PANEL_CSS: &str = include_str!("../static/panel.css");

/// What a page shows when its template fails; askama only fails on a broken `Display`,
/// so this is a last resort that keeps the handler from having to deal with it.
const FALLBACK: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>edgebot panel</title><link rel=\"stylesheet\" href=\"/static/panel.css\"></head><body><main><h1>Error</h1><p class=\"error\" role=\"alert\">this page could not be rendered</p></main></body></html>";

/// The version in the footer of pages shown before login, which have no [`Frame`].
const BUILD_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What every page after login carries around its content: who is logged in (for the
/// nav), the session's CSRF token (for the logout form and every POST form), the flash
/// left by the last redirect, and the running version for the footer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Frame {
    pub(crate) account: String,
    pub(crate) role: AdminRole,
    pub(crate) csrf: String,
    /// Shown as `p.notice`: the last action worked.
    pub(crate) notice: Option<String>,
    /// Shown as `p.error[role=alert]`: the last action was refused.
    pub(crate) error: Option<String>,
    pub(crate) version: String,
}

impl Frame {
    /// Whether the nav links `/settings` and `/accounts`. The owner-only pages are
    /// refused by the handlers anyway; hiding the links only spares the others a 403.
    pub(crate) fn is_owner(&self) -> bool {
        self.role == AdminRole::Owner
    }
}

/// `GET /login`, and the 401/429 answers to a failed `POST /login`.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct LoginView {
    /// "wrong name, password or code", "too many failed logins; try again in N s".
    pub(crate) error: Option<String>,
    /// Refilled after a failure so only the password needs typing again.
    pub(crate) username: String,
    /// The account has TOTP on, so the code field is asked for rather than optional.
    pub(crate) totp_needed: bool,
}

/// The outcome of one health check on the dashboard.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Check {
    pub(crate) ok: bool,
    /// Why it is failing, or what is running when it is not ("3 models loaded").
    pub(crate) detail: String,
}

/// One day of the dashboard's charts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DayPoint {
    /// The x axis and tooltip label, e.g. `2025-05-31`.
    pub(crate) date: String,
    pub(crate) messages: u64,
    pub(crate) commands: u64,
}

/// Tokens, answers and cost over a period: one row of a usage table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UsageRow {
    /// A provider (the dashboard) or a period (a user's page).
    pub(crate) label: String,
    pub(crate) usage: Usage,
}

impl UsageRow {
    fn cost(&self) -> String {
        usd(self.usage.cost_micro_usd)
    }
}

/// The dashboard's card of the LLM conversations; absent while nothing was answered.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConversationsCard {
    /// One row per provider, by name.
    pub(crate) providers: Vec<UsageRow>,
    /// Input and output tokens of every provider per day, oldest first, days without any
    /// as zeros so the bars line up with the calendar.
    pub(crate) tokens_per_day: Vec<(String, u64)>,
}

/// `GET /`: the numbers, health and charts. The version in `#version` is the frame's.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DashboardView {
    pub(crate) frame: Frame,
    pub(crate) users_total: u64,
    pub(crate) users_new_1: u64,
    pub(crate) users_new_7: u64,
    pub(crate) users_new_30: u64,
    pub(crate) users_active_1: u64,
    pub(crate) users_active_7: u64,
    pub(crate) users_active_30: u64,
    pub(crate) inbox_depth: u64,
    pub(crate) outbox_depth: u64,
    pub(crate) health_store: Check,
    pub(crate) health_telegram: Check,
    pub(crate) health_models: Check,
    /// The last 30 days, oldest first; days without traffic should be present as zeros
    /// so the bars line up with the calendar.
    pub(crate) days: Vec<DayPoint>,
    /// Sentiment label and how many messages had it, in the order to show them.
    pub(crate) sentiment: Vec<(String, u64)>,
    pub(crate) conversations: Option<ConversationsCard>,
}

/// What `form#user-search` was submitted with, to refill it and to carry into the
/// next page's link. Empty strings mean "any".
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct UserFilter {
    pub(crate) q: String,
    pub(crate) status: String,
    pub(crate) role: String,
}

/// One row of `table#users`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UserRow {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) username: Option<String>,
    pub(crate) status: UserStatus,
    pub(crate) role: Role,
    pub(crate) messages: u64,
    pub(crate) last_seen: String,
}

/// `GET /users`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UsersView {
    pub(crate) frame: Frame,
    pub(crate) filter: UserFilter,
    pub(crate) rows: Vec<UserRow>,
    /// The `after` of the next page, when there is one (`a#next-page`).
    pub(crate) next_after: Option<i64>,
    /// How many users match, when the handler counted them.
    pub(crate) total: Option<u64>,
}

/// One row of an events table (`table#events`, and `table#user-events` where the
/// user is the page's own and `user_id` is left out).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EventRow {
    pub(crate) time: String,
    pub(crate) user_id: Option<i64>,
    pub(crate) kind: String,
    pub(crate) detail: String,
}

/// `GET /users/{id}`. The flash after an action is the frame's.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UserView {
    pub(crate) frame: Frame,
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) username: Option<String>,
    pub(crate) language: Option<String>,
    pub(crate) status: UserStatus,
    pub(crate) role: Role,
    pub(crate) messages: u64,
    pub(crate) first_seen: String,
    pub(crate) last_seen: String,
    pub(crate) referrer: Option<i64>,
    pub(crate) referrals: u32,
    /// The conversation state, described; `None` shows as "none".
    pub(crate) session: Option<String>,
    /// Newest first.
    pub(crate) events: Vec<EventRow>,
    /// The user's LLM usage: today and this month (UTC), in that order.
    pub(crate) usage: [UsageRow; 2],
}

/// What `form#event-filter` was submitted with. Dates are `YYYY-MM-DD`, empty for open.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct EventFilter {
    pub(crate) kind: String,
    pub(crate) since: String,
    pub(crate) until: String,
}

/// `GET /events`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EventsView {
    pub(crate) frame: Frame,
    pub(crate) filter: EventFilter,
    /// Every event type name, for the `type` select.
    pub(crate) kinds: Vec<String>,
    pub(crate) rows: Vec<EventRow>,
    /// The `after` cursor of the next page, as the handler will parse it back.
    pub(crate) next_after: Option<String>,
}

/// One row of `table#audit`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AuditRow {
    pub(crate) time: String,
    pub(crate) account: String,
    pub(crate) action: String,
    pub(crate) target: String,
    pub(crate) address: String,
}

/// `GET /audit`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AuditView {
    pub(crate) frame: Frame,
    pub(crate) rows: Vec<AuditRow>,
    pub(crate) next_before: Option<String>,
}

/// `GET /settings`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SettingsView {
    pub(crate) frame: Frame,
    /// The effective config, secrets already replaced by `<redacted>`.
    pub(crate) config_toml: String,
}

/// One row of `table#accounts`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AccountRow {
    pub(crate) name: String,
    pub(crate) role: AdminRole,
    pub(crate) totp: bool,
    pub(crate) created: String,
}

/// `GET /accounts` (owners).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AccountsView {
    pub(crate) frame: Frame,
    pub(crate) rows: Vec<AccountRow>,
}

/// A refusal page (403, 404, 422, 429 …). With a frame when the visitor is logged in,
/// so the nav stays; without one otherwise.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ErrorView {
    pub(crate) frame: Option<Frame>,
    pub(crate) status: u16,
    /// The contract's sentence, shown as `p.error[role=alert]`.
    pub(crate) message: String,
}

/// One `<option>` of a select, with the submitted value preselected.
struct Opt {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

fn options(choices: &[(&'static str, &'static str)], current: &str) -> Vec<Opt> {
    choices
        .iter()
        .map(|&(value, label)| Opt {
            value,
            label,
            selected: value == current,
        })
        .collect()
}

/// Like [`Opt`], for choices that come from data (the event types).
struct OwnedOpt<'a> {
    value: &'a str,
    selected: bool,
}

fn status_text(status: UserStatus) -> &'static str {
    match status {
        UserStatus::Active => "active",
        UserStatus::Banned => "banned",
        UserStatus::Blocked => "blocked",
    }
}

/// The role select's choices for a Telegram user; the values are what `POST
/// /users/{id}/role` takes.
const USER_ROLES: &[(&str, &str)] = &[("user", "user"), ("admin", "admin")];

impl UserRow {
    fn status_text(&self) -> &'static str {
        status_text(self.status)
    }
    fn role_text(&self) -> &'static str {
        self.role.as_str()
    }
}

impl UserView {
    fn status_text(&self) -> &'static str {
        status_text(self.status)
    }
    fn role_text(&self) -> &'static str {
        self.role.as_str()
    }
    /// Banned users get the unban form, everyone else (blocked ones too, whom an admin
    /// may still want to ban) the ban form.
    fn is_banned(&self) -> bool {
        self.status == UserStatus::Banned
    }
}

/// Micro-dollars as dollars, exactly: `$0.000003`, `$1.25`, `$12.00` (cents at least).
fn usd(micro: u64) -> String {
    let fraction = format!("{:06}", micro % 1_000_000);
    let cents_and_more = fraction.trim_end_matches('0');
    let shown = if cents_and_more.len() < 2 {
        &fraction[..2]
    } else {
        cents_and_more
    };
    format!("${}.{shown}", micro / 1_000_000)
}

/// Percent-encodes a query value; the pagination links carry the filter's free text.
fn query_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Builds `path?k=v&…`, skipping empty values so the links stay short.
fn link(path: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = path.to_owned();
    let mut sep = '?';
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        out.push(sep);
        out.push_str(k);
        out.push('=');
        out.push_str(&query_value(v));
        sep = '&';
    }
    out
}

/// Turns askama's result into a page: the template only fails if a `Display` does,
/// and a panel page is not worth a panic, so the failure is logged and a plain error
/// page is shown instead.
fn finish(page: &str, result: askama::Result<String>) -> String {
    result.unwrap_or_else(|error| {
        tracing::error!(page, %error, "a panel page failed to render");
        FALLBACK.to_owned()
    })
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    frame: Option<&'a Frame>,
    current: &'a str,
    title: &'a str,
    version: &'a str,
    v: &'a LoginView,
}

impl LoginView {
    pub(crate) fn render(&self) -> String {
        let page = LoginPage {
            frame: None,
            current: "/login",
            title: "Log in",
            version: BUILD_VERSION,
            v: self,
        };
        finish("login", page.render())
    }
}

/// One health line on the dashboard: element id, label, outcome.
struct HealthLine<'a> {
    id: &'static str,
    label: &'static str,
    check: &'a Check,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage<'a> {
    frame: Option<&'a Frame>,
    current: &'a str,
    title: &'a str,
    version: &'a str,
    v: &'a DashboardView,
    health: [HealthLine<'a>; 3],
    chart_messages: String,
    chart_commands: String,
    sentiment_bar: String,
    sentiment_total: u64,
    /// Drawn only when there is a conversations card.
    chart_tokens: Option<String>,
}

impl DashboardView {
    pub(crate) fn render(&self) -> String {
        let messages: Vec<(&str, u64)> = self
            .days
            .iter()
            .map(|d| (d.date.as_str(), d.messages))
            .collect();
        let commands: Vec<(&str, u64)> = self
            .days
            .iter()
            .map(|d| (d.date.as_str(), d.commands))
            .collect();
        let mix: Vec<(&str, u64)> = self
            .sentiment
            .iter()
            .map(|(label, n)| (label.as_str(), *n))
            .collect();
        let page = DashboardPage {
            frame: Some(&self.frame),
            current: "/",
            title: "Dashboard",
            version: &self.frame.version,
            v: self,
            health: [
                HealthLine {
                    id: "health-store",
                    label: "Store",
                    check: &self.health_store,
                },
                HealthLine {
                    id: "health-telegram",
                    label: "Telegram",
                    check: &self.health_telegram,
                },
                HealthLine {
                    id: "health-models",
                    label: "Models",
                    check: &self.health_models,
                },
            ],
            chart_messages: chart::bar_chart("chart-messages", "Messages per day", &messages),
            chart_commands: chart::bar_chart("chart-commands", "Commands per day", &commands),
            sentiment_bar: chart::stacked_bar("sentiment-bar", "Sentiment mix", &mix),
            sentiment_total: mix.iter().map(|&(_, n)| n).sum(),
            chart_tokens: self.conversations.as_ref().map(|card| {
                let tokens: Vec<(&str, u64)> = card
                    .tokens_per_day
                    .iter()
                    .map(|(date, n)| (date.as_str(), *n))
                    .collect();
                chart::bar_chart("chart-tokens", "Tokens per day", &tokens)
            }),
        };
        finish("dashboard", page.render())
    }
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage<'a> {
    frame: Option<&'a Frame>,
    current: &'a str,
    title: &'a str,
    version: &'a str,
    v: &'a UsersView,
    status_opts: Vec<Opt>,
    role_opts: Vec<Opt>,
    next_href: Option<String>,
}

impl UsersView {
    pub(crate) fn render(&self) -> String {
        let f = &self.filter;
        let next_href = self.next_after.map(|after| {
            let after = after.to_string();
            link(
                "/users",
                &[
                    ("q", &f.q),
                    ("status", &f.status),
                    ("role", &f.role),
                    ("after", &after),
                ],
            )
        });
        let page = UsersPage {
            frame: Some(&self.frame),
            current: "/users",
            title: "Users",
            version: &self.frame.version,
            v: self,
            status_opts: options(
                &[
                    ("", "any"),
                    ("active", "active"),
                    ("banned", "banned"),
                    ("blocked", "blocked"),
                ],
                &f.status,
            ),
            role_opts: options(
                &[("", "any"), ("user", "user"), ("admin", "admin")],
                &f.role,
            ),
            next_href,
        };
        finish("users", page.render())
    }
}

#[derive(Template)]
#[template(path = "user.html")]
struct UserPage<'a> {
    frame: Option<&'a Frame>,
    current: &'a str,
    title: &'a str,
    version: &'a str,
    v: &'a UserView,
    role_opts: Vec<Opt>,
}

impl UserView {
    pub(crate) fn render(&self) -> String {
        let title = format!("User {}", self.id);
        let page = UserPage {
            frame: Some(&self.frame),
            current: "/users",
            title: &title,
            version: &self.frame.version,
            v: self,
            role_opts: options(USER_ROLES, self.role_text()),
        };
        finish("user", page.render())
    }
}

#[derive(Template)]
#[template(path = "events.html")]
struct EventsPage<'a> {
    frame: Option<&'a Frame>,
    current: &'a str,
    title: &'a str,
    version: &'a str,
    v: &'a EventsView,
    kind_opts: Vec<OwnedOpt<'a>>,
    next_href: Option<String>,
}

impl EventsView {
    pub(crate) fn render(&self) -> String {
        let f = &self.filter;
        let next_href = self.next_after.as_deref().map(|after| {
            link(
                "/events",
                &[
                    ("type", &f.kind),
                    ("since", &f.since),
                    ("until", &f.until),
                    ("after", after),
                ],
            )
        });
        let page = EventsPage {
            frame: Some(&self.frame),
            current: "/events",
            title: "Events",
            version: &self.frame.version,
            v: self,
            kind_opts: self
                .kinds
                .iter()
                .map(|k| OwnedOpt {
                    value: k,
                    selected: *k == f.kind,
                })
                .collect(),
            next_href,
        };
        finish("events", page.render())
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage<'a> {
    frame: Option<&'a Frame>,
    current: &'a str,
    title: &'a str,
    version: &'a str,
    v: &'a AuditView,
    next_href: Option<String>,
}

impl AuditView {
    pub(crate) fn render(&self) -> String {
        let page = AuditPage {
            frame: Some(&self.frame),
            current: "/audit",
            title: "Audit log",
            version: &self.frame.version,
            v: self,
            next_href: self
                .next_before
                .as_deref()
                .map(|before| link("/audit", &[("before", before)])),
        };
        finish("audit", page.render())
    }
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage<'a> {
    frame: Option<&'a Frame>,
    current: &'a str,
    title: &'a str,
    version: &'a str,
    v: &'a SettingsView,
}

impl SettingsView {
    pub(crate) fn render(&self) -> String {
        let page = SettingsPage {
            frame: Some(&self.frame),
            current: "/settings",
            title: "Settings",
            version: &self.frame.version,
            v: self,
        };
        finish("settings", page.render())
    }
}

#[derive(Template)]
#[template(path = "accounts.html")]
struct AccountsPage<'a> {
    frame: Option<&'a Frame>,
    current: &'a str,
    title: &'a str,
    version: &'a str,
    v: &'a AccountsView,
    role_opts: Vec<Opt>,
}

impl AccountsView {
    pub(crate) fn render(&self) -> String {
        let page = AccountsPage {
            frame: Some(&self.frame),
            current: "/accounts",
            title: "Accounts",
            version: &self.frame.version,
            v: self,
            // Viewer first: a new account gets the least power unless the owner picks more.
            role_opts: options(
                &[
                    ("viewer", "viewer"),
                    ("editor", "editor"),
                    ("owner", "owner"),
                ],
                "viewer",
            ),
        };
        finish("accounts", page.render())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    frame: Option<&'a Frame>,
    current: &'a str,
    title: &'a str,
    version: &'a str,
    v: &'a ErrorView,
}

impl ErrorView {
    /// The page title: the status and its plain name.
    fn title(&self) -> String {
        let name = match self.status {
            400 => "Bad request",
            401 => "Not logged in",
            403 => "Forbidden",
            404 => "Not found",
            405 => "Method not allowed",
            413 => "Too large",
            422 => "Bad input",
            429 => "Too many requests",
            500..=599 => "Server error",
            _ => "Error",
        };
        format!("{} {name}", self.status)
    }

    pub(crate) fn render(&self) -> String {
        let title = self.title();
        let page = ErrorPage {
            frame: self.frame.as_ref(),
            current: "",
            title: &title,
            version: self
                .frame
                .as_ref()
                .map_or(BUILD_VERSION, |f| f.version.as_str()),
            v: self,
        };
        finish("error", page.render())
    }
}

#[cfg(test)]
mod tests;
