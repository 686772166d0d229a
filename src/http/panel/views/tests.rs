//! Every page rendered empty and full, checked against `panel-contract.md`: the ids and
//! forms the browser test looks for, escaping, and what the CSP would refuse.

use super::*;

const XSS: &str = "<script>alert(1)</script>";

fn frame(role: AdminRole) -> Frame {
    Frame {
        account: "alice".into(),
        role,
        csrf: "tok-123".into(),
        notice: None,
        error: None,
        version: "0.1.0".into(),
    }
}

fn check(ok: bool, detail: &str) -> Check {
    Check {
        ok,
        detail: detail.into(),
    }
}

fn empty_dashboard(role: AdminRole) -> DashboardView {
    DashboardView {
        frame: frame(role),
        users_total: 0,
        users_new_1: 0,
        users_new_7: 0,
        users_new_30: 0,
        users_active_1: 0,
        users_active_7: 0,
        users_active_30: 0,
        inbox_depth: 0,
        outbox_depth: 0,
        health_store: check(true, ""),
        health_telegram: check(true, ""),
        health_models: check(true, ""),
        days: Vec::new(),
        sentiment: Vec::new(),
        conversations: None,
    }
}

fn full_dashboard() -> DashboardView {
    DashboardView {
        users_total: 1234,
        users_new_1: 3,
        users_new_7: 17,
        users_new_30: 80,
        users_active_1: 41,
        users_active_7: 200,
        users_active_30: 700,
        inbox_depth: 2,
        outbox_depth: 5,
        health_telegram: check(false, "getMe: 502 <bad gateway>"),
        days: (1..=30)
            .map(|d| DayPoint {
                date: format!("2025-05-{d:02}"),
                messages: d * 10,
                commands: d,
            })
            .collect(),
        sentiment: vec![
            ("positive".into(), 30),
            ("neutral".into(), 50),
            ("negative".into(), 20),
        ],
        conversations: Some(conversations_card()),
        ..empty_dashboard(AdminRole::Owner)
    }
}

fn user_row(id: i64, name: &str, status: UserStatus) -> UserRow {
    UserRow {
        id,
        name: name.into(),
        username: Some("bob_b".into()),
        status,
        role: Role::User,
        messages: 12,
        last_seen: "2025-05-31 10:00".into(),
    }
}

fn users(rows: Vec<UserRow>, next_after: Option<i64>) -> UsersView {
    UsersView {
        frame: frame(AdminRole::Viewer),
        filter: UserFilter::default(),
        rows,
        next_after,
        total: None,
    }
}

fn user(status: UserStatus, role: AdminRole) -> UserView {
    UserView {
        frame: frame(role),
        id: 42,
        name: "Bob".into(),
        username: None,
        language: None,
        status,
        role: Role::User,
        messages: 0,
        first_seen: "2025-05-01 09:00".into(),
        last_seen: "2025-05-31 10:00".into(),
        referrer: None,
        referrals: 0,
        session: None,
        events: Vec::new(),
        usage: [usage_row("today", 0, 0), usage_row("this month", 0, 0)],
    }
}

/// A usage row of `answers` answers at 1000 input and 100 output tokens each, costing
/// `cost` micro-dollars in all.
fn usage_row(label: &str, answers: u32, cost: u64) -> UsageRow {
    UsageRow {
        label: label.into(),
        usage: Usage {
            input_tokens: 1000 * u64::from(answers),
            output_tokens: 100 * u64::from(answers),
            turns: answers,
            cost_micro_usd: cost,
        },
    }
}

fn conversations_card() -> ConversationsCard {
    ConversationsCard {
        providers: vec![
            usage_row("anthropic", 3, 12_500_000),
            usage_row("openai", 2, 3),
        ],
        tokens_per_day: (1..=30)
            .map(|d| (format!("2025-05-{d:02}"), if d == 30 { 5500 } else { 0 }))
            .collect(),
    }
}

fn event(kind: &str, detail: &str) -> EventRow {
    EventRow {
        time: "2025-05-31 10:00:00".into(),
        user_id: Some(42),
        kind: kind.into(),
        detail: detail.into(),
    }
}

fn events(rows: Vec<EventRow>) -> EventsView {
    EventsView {
        frame: frame(AdminRole::Editor),
        filter: EventFilter::default(),
        kinds: Vec::new(),
        rows,
        next_after: None,
    }
}

fn audit(rows: Vec<AuditRow>) -> AuditView {
    AuditView {
        frame: frame(AdminRole::Owner),
        rows,
        next_before: None,
    }
}

fn accounts(rows: Vec<AccountRow>) -> AccountsView {
    AccountsView {
        frame: frame(AdminRole::Owner),
        rows,
    }
}

/// Every page, empty and with data, each with its name for failure messages.
fn every_page() -> Vec<(&'static str, String)> {
    let full_user = UserView {
        username: Some("bobby".into()),
        language: Some("en".into()),
        referrer: Some(7),
        referrals: 2,
        session: Some("awaiting city for /weather".into()),
        events: vec![event("message", "hello"), event("command", "/start")],
        messages: 99,
        usage: [
            usage_row("today", 1, 40),
            usage_row("this month", 12, 1_250_000),
        ],
        ..user(UserStatus::Active, AdminRole::Owner)
    };
    vec![
        ("login empty", LoginView::default().render()),
        (
            "login failed",
            LoginView {
                error: Some("wrong name, password or code".into()),
                username: "alice".into(),
                totp_needed: true,
            }
            .render(),
        ),
        (
            "dashboard empty",
            empty_dashboard(AdminRole::Viewer).render(),
        ),
        ("dashboard full", full_dashboard().render()),
        ("users empty", users(Vec::new(), None).render()),
        (
            "users full",
            users(
                vec![
                    user_row(1, "Ann", UserStatus::Active),
                    user_row(2, "Ben", UserStatus::Banned),
                ],
                Some(2),
            )
            .render(),
        ),
        (
            "user empty",
            user(UserStatus::Active, AdminRole::Viewer).render(),
        ),
        ("user full", full_user.render()),
        ("events empty", events(Vec::new()).render()),
        (
            "events full",
            EventsView {
                kinds: vec!["message".into(), "command".into()],
                next_after: Some("1717150000:9".into()),
                ..events(vec![event("message", "hi")])
            }
            .render(),
        ),
        ("audit empty", audit(Vec::new()).render()),
        (
            "audit full",
            audit(vec![AuditRow {
                time: "2025-05-31 10:00:00".into(),
                account: "alice".into(),
                action: "ban".into(),
                target: "user 42".into(),
                address: "127.0.0.1".into(),
            }])
            .render(),
        ),
        (
            "settings",
            SettingsView {
                frame: frame(AdminRole::Owner),
                config_toml: "[telegram]\ntoken = \"<redacted>\"\n".into(),
            }
            .render(),
        ),
        ("accounts empty", accounts(Vec::new()).render()),
        (
            "accounts full",
            accounts(vec![AccountRow {
                name: "alice".into(),
                role: AdminRole::Owner,
                totp: true,
                created: "2025-05-01".into(),
            }])
            .render(),
        ),
        (
            "error logged out",
            ErrorView {
                frame: None,
                status: 404,
                message: "no such page".into(),
            }
            .render(),
        ),
        (
            "error logged in",
            ErrorView {
                frame: Some(frame(AdminRole::Viewer)),
                status: 403,
                message: "your role (viewer) cannot do this; it needs editor".into(),
            }
            .render(),
        ),
    ]
}

/// The opening tag of the element with this id, with everything up to its content.
fn tag_with_id<'a>(html: &'a str, id: &str) -> &'a str {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {html}"));
    let start = html[..at].rfind('<').expect("an id is inside a tag");
    let end = at + html[at..].find('>').expect("the tag closes");
    &html[start..=end]
}

/// The text right after the element's opening tag, up to the next tag.
fn text_of<'a>(html: &'a str, id: &str) -> &'a str {
    let tag = tag_with_id(html, id);
    let from = html.find(tag).expect("the tag is in the page") + tag.len();
    let len = html[from..].find('<').unwrap_or(0);
    &html[from..from + len]
}

/// The `<form …>…</form>` whose opening tag has this id, or `None`.
fn form<'a>(html: &'a str, id: &str) -> Option<&'a str> {
    let at = html.find(&format!("<form id=\"{id}\""))?;
    let len = html[at..].find("</form>").expect("the form closes") + "</form>".len();
    Some(&html[at..at + len])
}

const CSRF_INPUT: &str = "<input type=\"hidden\" name=\"csrf\" value=\"tok-123\">";

#[test]
fn every_page_is_a_whole_document_without_script_or_inline_style() {
    for (name, html) in every_page() {
        assert!(html.starts_with("<!doctype html>"), "{name}");
        assert!(html.trim_end().ends_with("</html>"), "{name}");
        assert!(!html.contains("<script"), "{name}: {html}");
        assert!(!html.contains(" style="), "{name}: {html}");
        assert!(!html.contains("<style"), "{name}");
        assert!(
            html.contains("<link rel=\"stylesheet\" href=\"/static/panel.css\">"),
            "{name}"
        );
        assert_eq!(html.matches("<main>").count(), 1, "{name}");
        assert_eq!(html.matches("<h1>").count(), 1, "{name}");
        assert!(!html.contains("could not be rendered"), "{name}");
        // No external resources: every URL the page names is a path on the panel.
        for attr in ["href=\"", "src=\"", "action=\""] {
            for rest in html.split(attr).skip(1) {
                assert!(rest.starts_with('/'), "{name}: {attr}{}", &rest[..20]);
            }
        }
    }
}

#[test]
fn every_post_form_carries_the_csrf_token() {
    for (name, html) in every_page() {
        for rest in html.split("<form").skip(1) {
            let form = &rest[..rest.find("</form>").expect("the form closes")];
            if form.contains("method=\"post\"") && !form.contains("id=\"login\"") {
                assert!(form.contains(CSRF_INPUT), "{name}: <form{form}");
            }
        }
    }
}

#[test]
fn pages_after_login_have_the_nav_and_logout() {
    for (name, html) in every_page() {
        let logged_in = !name.starts_with("login") && name != "error logged out";
        assert_eq!(html.contains("<nav"), logged_in, "{name}");
        if logged_in {
            for href in ["/", "/users", "/events", "/audit"] {
                assert!(
                    html.contains(&format!("<a href=\"{href}\"")),
                    "{name}: {href}"
                );
            }
            let logout = form(&html, "logout").expect("form#logout");
            assert!(logout.contains("method=\"post\" action=\"/logout\""));
            assert!(logout.contains(CSRF_INPUT));
        }
    }
}

#[test]
fn the_nav_shows_settings_and_accounts_to_owners_only() {
    let links = ["<a href=\"/settings\"", "<a href=\"/accounts\""];
    for role in [AdminRole::Viewer, AdminRole::Editor] {
        let html = empty_dashboard(role).render();
        for link in links {
            assert!(!html.contains(link), "{role}: {link}");
        }
    }
    let html = empty_dashboard(AdminRole::Owner).render();
    for link in links {
        assert!(html.contains(link), "owner: {link}");
    }
}

#[test]
fn the_flash_shows_as_notice_or_alert() {
    let mut view = user(UserStatus::Banned, AdminRole::Editor);
    view.frame.notice = Some("user 42 banned".into());
    let html = view.render();
    assert!(html.contains("<p class=\"notice\">user 42 banned</p>"));
    assert!(!html.contains("class=\"error\""));

    view.frame.notice = None;
    view.frame.error = Some("text: the message is empty".into());
    let html = view.render();
    assert!(html.contains("<p class=\"error\" role=\"alert\">text: the message is empty</p>"));
    assert!(!html.contains("class=\"notice\""));
}

#[test]
fn login_has_its_form_and_refills_the_name() {
    let html = LoginView::default().render();
    let login = form(&html, "login").expect("form#login");
    assert!(login.contains("method=\"post\" action=\"/login\""));
    for input in ["name=\"username\"", "name=\"password\"", "name=\"totp\""] {
        assert!(login.contains(input), "{input}");
    }
    assert!(login.contains("<button type=\"submit\">"));
    assert!(!html.contains("role=\"alert\""));

    let html = LoginView {
        error: Some("too many failed logins; try again in 30 s".into()),
        username: "al\"ice".into(),
        totp_needed: false,
    }
    .render();
    assert!(html.contains(
        "<p class=\"error\" role=\"alert\">too many failed logins; try again in 30 s</p>"
    ));
    assert!(html.contains("value=\"al&#34;ice\"") || html.contains("value=\"al&quot;ice\""));
}

#[test]
fn the_dashboard_numbers_are_bare() {
    let html = full_dashboard().render();
    for (id, want) in [
        ("users-total", "1234"),
        ("users-new-1", "3"),
        ("users-new-7", "17"),
        ("users-new-30", "80"),
        ("users-active-1", "41"),
        ("users-active-7", "200"),
        ("users-active-30", "700"),
        ("inbox-depth", "2"),
        ("outbox-depth", "5"),
        ("health-store", "ok"),
        ("health-telegram", "failing"),
        ("health-models", "ok"),
        ("version", "0.1.0"),
    ] {
        assert_eq!(text_of(&html, id), want, "#{id}");
    }
    assert!(html.contains("getMe: 502 &#60;bad gateway&#62;") || html.contains("&lt;bad"));
    assert!(tag_with_id(&html, "chart-messages").starts_with("<svg"));
    assert!(tag_with_id(&html, "chart-commands").starts_with("<svg"));
    assert_eq!(
        html.matches("<rect class=\"bar\"").count(),
        90,
        "messages, commands and tokens"
    );
    assert!(html.contains("<title>2025-05-30: 300</title>"));
    assert!(tag_with_id(&html, "sentiment").starts_with("<section"));
    assert!(html.contains("<title>neutral: 50 (50 %)</title>"));
    assert!(html.contains(">Total</th><td class=\"num\">100</td>"));
}

#[test]
fn an_empty_dashboard_has_every_id_and_says_no_data() {
    let html = empty_dashboard(AdminRole::Viewer).render();
    for id in [
        "users-total",
        "users-new-1",
        "users-new-7",
        "users-new-30",
        "users-active-1",
        "users-active-7",
        "users-active-30",
        "inbox-depth",
        "outbox-depth",
        "health-store",
        "health-telegram",
        "health-models",
        "version",
        "chart-messages",
        "chart-commands",
        "sentiment",
    ] {
        assert_eq!(html.matches(&format!("id=\"{id}\"")).count(), 1, "#{id}");
    }
    assert_eq!(text_of(&html, "users-total"), "0");
    assert_eq!(
        html.matches(">no data<").count(),
        4,
        "two charts, the bar, the table"
    );
}

#[test]
fn the_conversations_card_has_a_row_per_provider_and_the_tokens_per_day() {
    let html = full_dashboard().render();
    assert!(tag_with_id(&html, "conversations").starts_with("<section"));
    assert!(tag_with_id(&html, "chart-tokens").starts_with("<svg"));
    assert!(html.contains("<title>2025-05-30: 5500</title>"));
    assert!(
        html.contains("<title>2025-05-01: 0</title>"),
        "empty days are drawn"
    );
    assert!(tag_with_id(&html, "llm-usage").starts_with("<table"));
    assert!(html.contains(
        "<tr data-provider=\"anthropic\"><td>anthropic</td><td class=\"num\">3000</td>\
         <td class=\"num\">300</td><td class=\"num\">3</td><td class=\"num\">$12.50</td></tr>"
    ));
    assert!(html.contains("<td class=\"num\">2</td><td class=\"num\">$0.000003</td>"));
    // Providers in the order given (the page sorts them by name).
    assert!(html.find("anthropic").unwrap() < html.find("openai").unwrap());
}

#[test]
fn without_usage_the_dashboard_has_no_conversations_card() {
    for role in [AdminRole::Viewer, AdminRole::Owner] {
        let html = empty_dashboard(role).render();
        for id in ["conversations", "chart-tokens", "llm-usage"] {
            assert!(!html.contains(&format!("id=\"{id}\"")), "{role}: #{id}");
        }
    }
}

#[test]
fn the_user_page_shows_usage_today_and_this_month() {
    let mut view = user(UserStatus::Active, AdminRole::Owner);
    view.usage = [
        usage_row("today", 1, 40),
        usage_row("this month", 12, 1_250_000),
    ];
    let html = view.render();
    assert!(tag_with_id(&html, "user-usage").starts_with("<table"));
    assert!(html.contains(
        "<tr><td>today</td><td class=\"num\">1000</td><td class=\"num\">100</td>\
         <td class=\"num\">1</td><td class=\"num\">$0.00004</td></tr>"
    ));
    assert!(html.contains(
        "<tr><td>this month</td><td class=\"num\">12000</td><td class=\"num\">1200</td>\
         <td class=\"num\">12</td><td class=\"num\">$1.25</td></tr>"
    ));

    // No usage: zeros, not an empty table.
    let html = user(UserStatus::Active, AdminRole::Viewer).render();
    assert!(html.contains(
        "<tr><td>today</td><td class=\"num\">0</td><td class=\"num\">0</td>\
         <td class=\"num\">0</td><td class=\"num\">$0.00</td></tr>"
    ));
}

#[test]
fn only_owners_get_the_link_to_the_conversations_export() {
    let html = user(UserStatus::Active, AdminRole::Owner).render();
    let link = tag_with_id(&html, "conversations-export");
    assert!(
        link.starts_with("<a") && link.contains("href=\"/users/42/conversations.json\""),
        "{link}"
    );
    for role in [AdminRole::Viewer, AdminRole::Editor] {
        let html = user(UserStatus::Active, role).render();
        assert!(!html.contains("conversations.json"), "{role}");
        assert!(
            html.contains("id=\"user-usage\""),
            "{role}: usage is a viewer's"
        );
    }
}

#[test]
fn costs_are_exact_dollars_with_cents_at_least() {
    for (micro, shown) in [
        (0, "$0.00"),
        (3, "$0.000003"),
        (10_000, "$0.01"),
        (1_200_000, "$1.20"),
        (1_234_567, "$1.234567"),
        (12_000_000, "$12.00"),
        (u64::MAX, "$18446744073709.551615"),
    ] {
        assert_eq!(usd(micro), shown, "{micro}");
    }
}

#[test]
fn the_users_page_lists_links_and_pages_on() {
    let mut view = users(
        vec![
            user_row(1, "Ann", UserStatus::Active),
            user_row(2, "Ben", UserStatus::Banned),
        ],
        Some(2),
    );
    view.filter = UserFilter {
        q: "a&b c".into(),
        status: "banned".into(),
        role: String::new(),
    };
    view.total = Some(2);
    let html = view.render();
    let search = form(&html, "user-search").expect("form#user-search");
    assert!(search.contains("method=\"get\" action=\"/users\""));
    assert!(search.contains("name=\"q\" value=\"a&#38;b c\"") || search.contains("a&amp;b c"));
    assert!(search.contains("<option value=\"banned\" selected>"));
    assert!(
        search.contains("<option value=\"\" selected>any</option>"),
        "role any"
    );
    for value in ["", "active", "banned", "blocked"] {
        assert!(search.contains(&format!("<option value=\"{value}\"")));
    }
    assert!(search.contains("<select name=\"role\">"));
    assert!(tag_with_id(&html, "users").starts_with("<table"));
    assert!(html.contains("<tr data-user-id=\"1\"><td><a href=\"/users/1\">"));
    assert!(html.contains("<tr data-user-id=\"2\">"));
    let next = tag_with_id(&html, "next-page");
    assert!(
        next.contains("href=\"/users?q=a%26b%20c&#38;status=banned&#38;after=2\"")
            || next.contains("href=\"/users?q=a%26b%20c&amp;status=banned&amp;after=2\""),
        "{next}"
    );
    assert!(html.contains("Matching users: 2"));

    let html = users(Vec::new(), None).render();
    assert!(!html.contains("id=\"next-page\""));
    assert!(!html.contains("data-user-id"));
}

#[test]
fn a_hostile_name_is_escaped_everywhere() {
    let mut list = users(vec![user_row(1, XSS, UserStatus::Active)], None);
    list.filter.q = XSS.into();
    let mut one = user(UserStatus::Active, AdminRole::Editor);
    one.name = XSS.into();
    one.username = Some(XSS.into());
    one.session = Some(XSS.into());
    one.events = vec![event(XSS, XSS)];
    one.frame.account = XSS.into();
    one.frame.notice = Some(XSS.into());
    let mut dash = full_dashboard();
    dash.sentiment = vec![(XSS.into(), 1)];
    dash.days[0].date = XSS.into();
    if let Some(card) = &mut dash.conversations {
        card.providers[0].label = XSS.into();
        card.tokens_per_day[0].0 = XSS.into();
    }
    for html in [list.render(), one.render(), dash.render()] {
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"));
    }
}

#[test]
fn the_user_page_has_its_fields_and_forms() {
    let html = user(UserStatus::Active, AdminRole::Editor).render();
    assert_eq!(text_of(&html, "user-status"), "active");
    assert_eq!(text_of(&html, "user-role"), "user");
    assert_eq!(text_of(&html, "user-name"), "Bob");
    assert_eq!(text_of(&html, "user-session"), "none");
    assert!(tag_with_id(&html, "user-events").starts_with("<table"));

    let ban = form(&html, "ban").expect("form#ban");
    assert!(ban.contains("method=\"post\" action=\"/users/42/ban\""));
    assert!(form(&html, "unban").is_none());

    let role = form(&html, "role").expect("form#role");
    assert!(role.contains("action=\"/users/42/role\""));
    assert!(role.contains("name=\"role\""));
    assert!(role.contains("<option value=\"user\" selected>"));
    assert!(role.contains("<option value=\"admin\">"));

    let delete = form(&html, "delete").expect("form#delete");
    assert!(delete.contains("action=\"/users/42/delete\""));
    assert!(delete.contains("<input type=\"checkbox\" name=\"confirm\">"));
    assert!(delete.contains(
        "I understand this deletes the user's record, events, sessions and conversations"
    ));

    let message = form(&html, "message").expect("form#message");
    assert!(message.contains("action=\"/users/42/message\""));
    assert!(message.contains("name=\"text\" maxlength=\"4096\""));
    // The server answers an empty message or an unticked box with 422; the browser
    // must not stop the form before it gets there.
    assert!(!message.contains("required") && !delete.contains("required"));

    for id in ["ban", "role", "delete", "message"] {
        assert!(form(&html, id).unwrap().contains(CSRF_INPUT), "#{id}");
    }
}

#[test]
fn banned_users_get_unban_and_blocked_ones_ban() {
    let html = user(UserStatus::Banned, AdminRole::Editor).render();
    assert_eq!(text_of(&html, "user-status"), "banned");
    let unban = form(&html, "unban").expect("form#unban");
    assert!(unban.contains("action=\"/users/42/unban\""));
    assert!(unban.contains(CSRF_INPUT));
    assert!(form(&html, "ban").is_none());

    let html = user(UserStatus::Blocked, AdminRole::Editor).render();
    assert!(form(&html, "ban").is_some());
    assert!(form(&html, "unban").is_none());
}

#[test]
fn viewers_see_the_forms_so_the_server_can_refuse_them() {
    let html = user(UserStatus::Banned, AdminRole::Viewer).render();
    for id in ["unban", "role", "delete", "message"] {
        let f = form(&html, id).unwrap_or_else(|| panic!("form#{id}"));
        assert!(!f.contains("disabled"), "#{id}");
    }
}

#[test]
fn the_events_page_filters_by_type_and_dates() {
    let view = EventsView {
        filter: EventFilter {
            kind: "command".into(),
            since: "2025-05-01".into(),
            until: "2025-05-31".into(),
        },
        kinds: vec!["message".into(), "command".into()],
        next_after: Some("17:9".into()),
        ..events(vec![event("command", "/start")])
    };
    let html = view.render();
    let filter = form(&html, "event-filter").expect("form#event-filter");
    assert!(filter.contains("method=\"get\" action=\"/events\""));
    assert!(filter.contains("<select name=\"type\">"));
    assert!(filter.contains("<option value=\"command\" selected>command</option>"));
    assert!(filter.contains("<option value=\"message\">message</option>"));
    assert!(filter.contains("name=\"since\" value=\"2025-05-01\""));
    assert!(filter.contains("name=\"until\" value=\"2025-05-31\""));
    assert!(tag_with_id(&html, "events").starts_with("<table"));
    assert!(html.contains("<a href=\"/users/42\">42</a>"));
    let next = tag_with_id(&html, "next-page");
    assert!(next.contains("after=17%3A9"), "{next}");
}

#[test]
fn the_audit_page_is_a_table_without_forms() {
    let html = audit(vec![AuditRow {
        time: "t".into(),
        account: "alice".into(),
        action: "ban".into(),
        target: "user 42".into(),
        address: "127.0.0.1".into(),
    }])
    .render();
    assert!(tag_with_id(&html, "audit").starts_with("<table"));
    assert!(html.contains(
        "<td class=\"time\">t</td><td>alice</td><td>ban</td><td>user 42</td><td>127.0.0.1</td>"
    ));
    assert_eq!(html.matches("<form").count(), 1, "only the logout form");
}

#[test]
fn settings_show_the_toml_escaped() {
    let html = SettingsView {
        frame: frame(AdminRole::Owner),
        config_toml: "token = \"<redacted>\"".into(),
    }
    .render();
    assert!(tag_with_id(&html, "config").starts_with("<pre"));
    assert!(!html.contains("\"<redacted>\""));
    assert!(html.contains("&#60;redacted&#62;") || html.contains("&lt;redacted&gt;"));
}

#[test]
fn the_accounts_page_adds_and_removes() {
    let html = accounts(vec![
        AccountRow {
            name: "alice".into(),
            role: AdminRole::Owner,
            totp: true,
            created: "2025-05-01".into(),
        },
        AccountRow {
            name: "bob".into(),
            role: AdminRole::Viewer,
            totp: false,
            created: "2025-05-02".into(),
        },
    ])
    .render();
    assert!(tag_with_id(&html, "accounts").starts_with("<table"));
    assert!(html.contains("<td>alice</td><td>owner</td><td>on</td>"));
    assert!(html.contains("<td>bob</td><td>viewer</td><td>off</td>"));
    let add = form(&html, "add-account").expect("form#add-account");
    assert!(add.contains("method=\"post\""));
    for field in ["name=\"name\"", "name=\"role\"", "name=\"password\""] {
        assert!(add.contains(field), "{field}");
    }
    for role in ["viewer", "editor", "owner"] {
        assert!(add.contains(&format!("<option value=\"{role}\"")), "{role}");
    }
    assert_eq!(html.matches("<form class=\"remove-account\"").count(), 2);
    assert!(html.contains("<input type=\"hidden\" name=\"name\" value=\"bob\">"));
}

#[test]
fn error_pages_name_the_status_and_keep_the_nav_when_logged_in() {
    let html = ErrorView {
        frame: Some(frame(AdminRole::Viewer)),
        status: 403,
        message: "the form is missing its CSRF token or it is wrong; reload the page and try again"
            .into(),
    }
    .render();
    assert!(html.contains("<h1>403 Forbidden</h1>"));
    assert!(html.contains("<p class=\"error\" role=\"alert\">the form is missing its CSRF token or it is wrong; reload the page and try again</p>"));
    assert!(html.contains("<nav"));

    let html = ErrorView {
        frame: None,
        status: 429,
        message: "slow down".into(),
    }
    .render();
    assert!(html.contains("<h1>429 Too many requests</h1>"));
    assert!(!html.contains("<nav"));
    assert!(html.contains(BUILD_VERSION));
}

#[test]
fn the_stylesheet_has_the_themes_and_flash_styles() {
    assert!(PANEL_CSS.contains("prefers-color-scheme: dark"));
    assert!(PANEL_CSS.contains("p.error"));
    assert!(PANEL_CSS.contains("p.notice"));
    assert!(PANEL_CSS.contains("@media (max-width"));
    assert!(!PANEL_CSS.contains("url("), "no external resources");
    assert!(!PANEL_CSS.contains("@import"));
}
