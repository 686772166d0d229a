//! The panel without a socket: signing in, sessions, CSRF, roles, bad input and the
//! security headers, through the admin listener's own request handling.

use crate::auth::{self, Actor, SessionLimits};
use crate::calendar::{UnixSecs, civil_date};
use crate::http::api;
use crate::http::routes::{Admin, Request, Verb};
use crate::http::wire::Reply;
use crate::store::Finish;
use crate::store::records::{
    AdminRole, ConversationChange, DialogKey, Exchange, Profile, Speaker, TurnRecord, UsageDelta,
    UserDelta, UserStatus,
};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;

const PASSWORD: &str = "a long enough password";

struct Panel {
    admin: Admin,
    state: std::sync::Arc<crate::http::AdminState>,
    _dir: tempfile::TempDir,
}

/// A browser's side of it: the session cookie and the CSRF token of the last page.
#[derive(Default, Clone)]
struct Browser {
    cookie: Option<String>,
    /// The `Origin` the browser sends, as a page of that origin posting a form.
    origin: Option<String>,
}

fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply
        .headers
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

fn text(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.body).into_owned()
}

/// The value of `<input type="hidden" name="csrf" value="…">` on a page.
fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\"")
        .expect("a form with a CSRF token");
    let rest = &page[at..];
    let start = rest.find("value=\"").unwrap() + 7;
    let end = rest[start..].find('"').unwrap();
    rest[start..start + end].to_owned()
}

impl Panel {
    async fn new(limits: Option<SessionLimits>) -> Panel {
        let (state, dir) = crate::http::tests::state_over_temp_store(Some("tok"), limits).await;
        for (name, role) in [
            ("olga", AdminRole::Owner),
            ("eddie", AdminRole::Editor),
            ("vera", AdminRole::Viewer),
        ] {
            auth::add_account(&state.store, name, role, PASSWORD.into(), &Actor::cli())
                .await
                .unwrap();
        }
        let mut delta = UserDelta::new(42, UnixSecs::now());
        delta.profile = Some(Profile {
            username: Some("zed".into()),
            first_name: "Zed".into(),
            last_name: None,
            language_code: Some("en".into()),
        });
        state.store.update_user(delta).await.unwrap();
        Panel {
            admin: Admin::new(state.clone()),
            state,
            _dir: dir,
        }
    }

    async fn call(&self, browser: &Browser, verb: Verb, target: &str, body: &str) -> Reply {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let cookie = browser
            .cookie
            .as_ref()
            .map(|c| format!("edgebot_session={c}"));
        let request = Request {
            verb,
            path,
            query,
            authorization: None,
            cookie: cookie.as_deref(),
            peer: Some(SocketAddr::from(([192, 0, 2, 7], 40000))),
            tls: false,
            origin: browser.origin.as_deref(),
            host: Some("panel.example:9090"),
            body: body.as_bytes(),
        };
        self.admin.handle(request).await
    }

    async fn get(&self, browser: &Browser, target: &str) -> Reply {
        self.call(browser, Verb::Get, target, "").await
    }

    async fn post(&self, browser: &Browser, target: &str, body: &str) -> Reply {
        self.call(browser, Verb::Post, target, body).await
    }

    async fn sign_in(&self, name: &str) -> Browser {
        let reply = self
            .post(
                &Browser::default(),
                "/login",
                &format!("username={name}&password={}", PASSWORD.replace(' ', "+")),
            )
            .await;
        assert_eq!(reply.status, 303, "{}", text(&reply));
        let cookie = header(&reply, "set-cookie").unwrap();
        let value = cookie
            .strip_prefix("edgebot_session=")
            .and_then(|rest| rest.split(';').next())
            .unwrap();
        Browser {
            cookie: Some(value.to_owned()),
            origin: Some("http://panel.example:9090".to_owned()),
        }
    }

    async fn csrf(&self, browser: &Browser) -> String {
        csrf_of(&text(&self.get(browser, "/users/42").await))
    }

    fn status_of_42(&self) -> UserStatus {
        self.state.store.user(42).unwrap().unwrap().status
    }
}

#[tokio::test]
async fn signing_in_sets_a_strict_http_only_cookie_and_every_page_is_guarded() {
    let panel = Panel::new(None).await;
    let anonymous = Browser::default();
    for path in ["/", "/users", "/users/42", "/events", "/audit", "/settings"] {
        let reply = panel.get(&anonymous, path).await;
        assert_eq!(reply.status, 303, "{path}");
        assert_eq!(header(&reply, "location"), Some("/login"));
    }
    let login = panel.get(&anonymous, "/login").await;
    assert_eq!(login.status, 200);
    assert_eq!(login.content_type, "text/html; charset=utf-8");
    let csp = header(&login, "content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(header(&login, "x-frame-options"), Some("DENY"));
    assert_eq!(header(&login, "x-content-type-options"), Some("nosniff"));

    let wrong = panel
        .post(
            &anonymous,
            "/login",
            "username=olga&password=wrong+password!",
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert!(text(&wrong).contains("wrong name, password or code"));
    assert!(header(&wrong, "set-cookie").is_none());

    let reply = panel
        .post(
            &anonymous,
            "/login",
            &format!("username=olga&password={}", PASSWORD.replace(' ', "+")),
        )
        .await;
    let cookie = header(&reply, "set-cookie").unwrap();
    assert!(cookie.contains("; HttpOnly") && cookie.contains("; SameSite=Strict"));
    assert!(!cookie.contains("Secure"), "plain HTTP");
    let olga = panel.sign_in("olga").await;
    for path in [
        "/",
        "/users",
        "/users/42",
        "/events",
        "/audit",
        "/settings",
        "/accounts",
    ] {
        let reply = panel.get(&olga, path).await;
        assert_eq!(reply.status, 200, "{path}: {}", text(&reply));
        assert!(!text(&reply).contains("<script"), "{path}");
    }
    assert!(text(&panel.get(&olga, "/settings").await).contains("&lt;redacted&gt;"));
    // The stored session is a digest: the cookie's value is nowhere in the file's table.
    let cookie_value = olga.cookie.clone().unwrap();
    assert!(
        panel
            .state
            .gate
            .session(&cookie_value)
            .await
            .unwrap()
            .is_some()
    );
    assert!(panel.state.gate.session("garbage").await.unwrap().is_none());
}

#[tokio::test]
async fn a_form_needs_its_session_token_and_its_role() {
    let panel = Panel::new(None).await;
    let eddie = panel.sign_in("eddie").await;
    let csrf = panel.csrf(&eddie).await;

    for body in [
        String::new(),
        "csrf=forged".to_owned(),
        format!("csrf={csrf}x"),
    ] {
        let refused = panel.post(&eddie, "/users/42/ban", &body).await;
        assert_eq!(refused.status, 403, "{body}");
        assert!(text(&refused).contains("CSRF token"));
        assert_eq!(panel.status_of_42(), UserStatus::Active);
    }
    // A page of another site posting with the right token (it cannot read it, but say
    // it guessed) is refused for its origin.
    let elsewhere = Browser {
        origin: Some("https://evil.example".to_owned()),
        ..eddie.clone()
    };
    let refused = panel
        .post(&elsewhere, "/users/42/ban", &format!("csrf={csrf}"))
        .await;
    assert_eq!(refused.status, 403);
    assert!(text(&refused).contains("another site"));
    let login_elsewhere = panel
        .post(
            &Browser {
                cookie: None,
                origin: Some("https://evil.example".to_owned()),
            },
            "/login",
            &format!("username=olga&password={}", PASSWORD.replace(' ', "+")),
        )
        .await;
    assert_eq!(login_elsewhere.status, 403, "no sign-in from another site");
    assert_eq!(panel.status_of_42(), UserStatus::Active);
    // Another session's token does not do either.
    let olga = panel.sign_in("olga").await;
    let other = panel.csrf(&olga).await;
    let refused = panel
        .post(&eddie, "/users/42/ban", &format!("csrf={other}"))
        .await;
    assert_eq!(refused.status, 403);

    let done = panel
        .post(&eddie, "/users/42/ban", &format!("csrf={csrf}"))
        .await;
    assert_eq!(done.status, 303);
    assert_eq!(header(&done, "location"), Some("/users/42?notice=banned"));
    assert_eq!(panel.status_of_42(), UserStatus::Banned);
    let page = text(&panel.get(&eddie, "/users/42?notice=banned").await);
    assert!(page.contains("class=\"notice\""));
    // A notice code that is not on the list shows nothing.
    let page = text(&panel.get(&eddie, "/users/42?notice=%3Cb%3Ehi").await);
    assert!(!page.contains("class=\"notice\""));

    // Deleting a user is an owner's: an editor is refused, with the reason.
    let refused = panel
        .post(
            &eddie,
            "/users/42/delete",
            &format!("csrf={csrf}&confirm=on"),
        )
        .await;
    assert_eq!(refused.status, 403);
    assert!(text(&refused).contains("your role (editor) cannot do this; it needs owner"));

    let vera = panel.sign_in("vera").await;
    let vera_csrf = panel.csrf(&vera).await;
    let refused = panel
        .post(&vera, "/users/42/unban", &format!("csrf={vera_csrf}"))
        .await;
    assert_eq!(refused.status, 403);
    assert!(text(&refused).contains("it needs editor"));
    assert_eq!(panel.status_of_42(), UserStatus::Banned);
    assert_eq!(panel.get(&vera, "/settings").await.status, 403);

    // The audit log has the ban, by whom and from where, and the refused sign-ins too.
    let audit = panel.state.store.audit(None, 100).unwrap();
    let ban = audit
        .iter()
        .find(|(_, e)| e.action.name() == "user_banned")
        .expect("the ban is audited");
    assert_eq!(ban.1.actor, "eddie");
    assert_eq!(ban.1.address, "192.0.2.7");
    assert_eq!(
        audit
            .iter()
            .filter(|(_, e)| e.action.name() == "user_banned")
            .count(),
        1,
        "refused forms change nothing and audit nothing"
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_message_and_changes_nothing() {
    let panel = Panel::new(None).await;
    let olga = panel.sign_in("olga").await;
    let csrf = panel.csrf(&olga).await;
    let cases = [
        (
            "/users/42/message",
            format!("csrf={csrf}&text=+++"),
            "`text`",
        ),
        ("/users/42/delete", format!("csrf={csrf}"), "`confirm`"),
        ("/users/42/role", format!("csrf={csrf}&role=root"), "`role`"),
        ("/users/x/ban", format!("csrf={csrf}"), "not a user id"),
        ("/users/7/ban", format!("csrf={csrf}"), "no user with id 7"),
        (
            "/accounts/add",
            format!("csrf={csrf}&name=ann&role=viewer&password=short"),
            "password",
        ),
        (
            "/accounts/add",
            format!(
                "csrf={csrf}&name=Bad+Name&role=viewer&password={}",
                "x".repeat(12)
            ),
            "account names",
        ),
        (
            "/accounts/add",
            format!("csrf={csrf}&name=ann&role=god&password={}", "x".repeat(12)),
            "`role`",
        ),
        (
            "/accounts/remove",
            format!("csrf={csrf}&name=olga"),
            "last owner",
        ),
    ];
    let before = panel.state.store.stats().unwrap();
    let user_before = panel.state.store.user(42).unwrap();
    for (path, body, says) in cases {
        let reply = panel.post(&olga, path, &body).await;
        assert!(
            (400..500).contains(&reply.status),
            "{path} {body}: {}",
            reply.status
        );
        let page = text(&reply);
        assert!(page.contains("role=\"alert\""), "{path}");
        assert!(
            page.contains(says),
            "{path} {body} should say {says}: {page}"
        );
    }
    for (path, says) in [
        ("/events?since=2025-02-30", "`since`"),
        ("/events?type=nonsense", "`type`"),
        ("/users?status=sleepy", "status=sleepy"),
        ("/users/abc", "not a user id"),
    ] {
        let reply = panel.get(&olga, path).await;
        assert!((400..500).contains(&reply.status), "{path}");
        assert!(text(&reply).contains(says), "{path}");
    }
    let after = panel.state.store.stats().unwrap();
    assert_eq!(after.outbox, before.outbox);
    assert_eq!(after.accounts, before.accounts);
    assert_eq!(panel.state.store.user(42).unwrap(), user_before);
}

#[tokio::test]
async fn sessions_end_on_logout_on_expiry_and_on_a_password_change() {
    let panel = Panel::new(None).await;
    let olga = panel.sign_in("olga").await;
    let csrf = panel.csrf(&olga).await;
    let out = panel.post(&olga, "/logout", &format!("csrf={csrf}")).await;
    assert_eq!(out.status, 303);
    assert_eq!(header(&out, "location"), Some("/login"));
    assert!(header(&out, "set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(
        panel.get(&olga, "/").await.status,
        303,
        "the old cookie is void"
    );

    let vera = panel.sign_in("vera").await;
    auth::change_password(
        &panel.state.store,
        "vera",
        "another long password".into(),
        &Actor::cli(),
    )
    .await
    .unwrap();
    assert_eq!(panel.get(&vera, "/").await.status, 303);

    let expired = Panel::new(Some(SessionLimits {
        idle: Duration::ZERO,
        max: Duration::from_secs(3600),
        token: Duration::from_secs(60),
    }))
    .await;
    let olga = expired.sign_in("olga").await;
    assert_eq!(expired.get(&olga, "/").await.status, 303);
}

#[tokio::test]
async fn repeated_failures_make_the_next_try_wait() {
    let panel = Panel::new(None).await;
    let anonymous = Browser::default();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let reply = panel
            .post(
                &anonymous,
                "/login",
                "username=olga&password=not+the+password",
            )
            .await;
        statuses.push(reply.status);
    }
    assert_eq!(&statuses[..4], &[401, 401, 401, 401]);
    assert_eq!(statuses[5], 429);
    // Even the right password waits now, so guessing gains nothing by trying faster.
    let right = panel
        .post(
            &anonymous,
            "/login",
            &format!("username=olga&password={}", PASSWORD.replace(' ', "+")),
        )
        .await;
    assert_eq!(right.status, 429);
    assert!(text(&right).contains("too many failed logins; try again in"));
    assert!(header(&right, "retry-after").is_some());
}

#[tokio::test]
async fn every_page_renders_over_an_empty_store_and_over_100_000_users() {
    let empty = Panel::new(None).await;
    empty.state.store.delete_user(42).await.unwrap();
    let olga = empty.sign_in("olga").await;
    for path in [
        "/",
        "/users",
        "/users?q=nobody",
        "/events",
        "/audit",
        "/settings",
        "/accounts",
    ] {
        assert_eq!(
            empty.get(&olga, path).await.status,
            200,
            "empty store: {path}"
        );
    }

    let full = Panel::new(None).await;
    full.state
        .store
        .write(|t| {
            let now = UnixSecs::now();
            for id in 1..=100_000i64 {
                let mut delta = UserDelta::new(id, UnixSecs(now.get() - id * 60));
                delta.profile = Some(Profile {
                    username: Some(format!("user{id}")),
                    first_name: format!("Name {id}"),
                    last_name: None,
                    language_code: None,
                });
                t.put_user(&delta.apply(None))?;
            }
            Ok(())
        })
        .await
        .unwrap();
    let olga = full.sign_in("olga").await;
    let users = text(&full.get(&olga, "/users").await);
    assert_eq!(users.matches("data-user-id=").count(), 50);
    assert!(users.contains("id=\"next-page\""));
    let found = text(&full.get(&olga, "/users?q=user77").await);
    assert!(found.contains("data-user-id=\"77\""));
    let by_id = text(&full.get(&olga, "/users?q=99999").await);
    assert!(by_id.contains("data-user-id=\"99999\""), "search by id");
    let dashboard = text(&full.get(&olga, "/").await);
    assert!(
        dashboard.contains(">100000<"),
        "the total is on the dashboard"
    );
    for path in [
        "/users?after=99990",
        "/users/100000",
        "/events",
        "/audit",
        "/settings",
        "/accounts",
    ] {
        assert_eq!(
            full.get(&olga, path).await.status,
            200,
            "100,000 users: {path}"
        );
    }
}

/// One exchange of user `user_id` in their private chat today, as the engine commits it:
/// 100 input and 20 output tokens at 7 micro-dollars.
async fn converse(store: &crate::store::Store, update_id: i64, user_id: i64, text: &str) {
    let now = UnixSecs::now();
    let day = api::today();
    let turn = |speaker, text: &str, provider: Option<&str>| TurnRecord {
        speaker,
        user_id,
        text: text.into(),
        at: now,
        tokens: 5,
        update_id,
        provider: provider.map(str::to_owned),
    };
    let exchange = Exchange {
        key: DialogKey {
            chat_id: user_id,
            thread_id: 0,
        },
        number: 1,
        personality: "friend".into(),
        question: Some(turn(Speaker::User, text, None)),
        answer: turn(Speaker::Assistant, &format!("re: {text}"), Some("local")),
        replaces_answer: false,
        summary: None,
        usage: UsageDelta {
            user_id,
            provider: "local".into(),
            day: u32::try_from(day).unwrap(),
            month: crate::calendar::civil_month(day),
            input_tokens: 100,
            output_tokens: 20,
            cost_micro_usd: 7,
        },
    };
    store
        .finish(Finish {
            update_id,
            finished_at: now,
            conversation: vec![ConversationChange::from(exchange)],
            ..Finish::default()
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn the_conversations_export_is_an_owners_and_every_one_is_audited() {
    let panel = Panel::new(None).await;
    let store = &panel.state.store;
    converse(store, 1, 42, "a private question").await;
    converse(store, 2, 42, "another one").await;
    let exported = |store: &crate::store::Store| {
        store
            .audit(None, 100)
            .unwrap()
            .into_iter()
            .filter(|(_, e)| e.action.name() == "conversations_exported")
            .map(|(_, e)| e)
            .collect::<Vec<_>>()
    };

    for name in ["vera", "eddie"] {
        let browser = panel.sign_in(name).await;
        let refused = panel.get(&browser, "/users/42/conversations.json").await;
        assert_eq!(refused.status, 403, "{name}");
        assert!(text(&refused).contains("it needs owner"));
        assert!(!text(&refused).contains("a private question"));
        let page = text(&panel.get(&browser, "/users/42").await);
        assert!(!page.contains("conversations.json"), "{name}: no link");
        assert!(
            page.contains("id=\"user-usage\""),
            "{name}: the usage is shown"
        );
    }
    assert!(exported(store).is_empty(), "refusals export nothing");

    let olga = panel.sign_in("olga").await;
    let page = text(&panel.get(&olga, "/users/42").await);
    assert!(page.contains("href=\"/users/42/conversations.json\""));
    assert!(
        page.contains(
            "<tr><td>today</td><td class=\"num\">200</td><td class=\"num\">40</td>\
             <td class=\"num\">2</td><td class=\"num\">$0.000014</td></tr>"
        ),
        "{page}"
    );
    let export = panel.get(&olga, "/users/42/conversations.json").await;
    assert_eq!(export.status, 200, "{}", text(&export));
    assert_eq!(export.content_type, "application/json");
    assert_eq!(
        header(&export, "content-disposition"),
        Some("attachment; filename=\"user-42-conversations.json\"")
    );
    assert_eq!(header(&export, "cache-control"), Some("no-store"));
    let body: Value = serde_json::from_slice(&export.body).unwrap();
    assert_eq!(body["user_id"], 42);
    let turns = body["dialogs"][0]["turns"].as_array().unwrap();
    let said: Vec<&str> = turns.iter().map(|t| t["text"].as_str().unwrap()).collect();
    assert_eq!(
        said,
        [
            "a private question",
            "re: a private question",
            "another one",
            "re: another one"
        ]
    );
    let lines = exported(store);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].actor, "olga");
    assert_eq!(lines[0].address, "192.0.2.7");
    assert_eq!(lines[0].action.target(), "user 42");

    let unknown = panel.get(&olga, "/users/7/conversations.json").await;
    assert_eq!(unknown.status, 404);
    assert!(text(&unknown).contains("no user with id 7"));
    assert_eq!(exported(store).len(), 1, "nothing read, nothing audited");
}

#[tokio::test]
async fn the_dashboard_shows_the_conversations_only_once_there_are_some() {
    let panel = Panel::new(None).await;
    let olga = panel.sign_in("olga").await;
    let before = text(&panel.get(&olga, "/").await);
    assert!(!before.contains("id=\"conversations\""));

    converse(&panel.state.store, 1, 42, "hello").await;
    let after = text(&panel.get(&olga, "/").await);
    assert!(after.contains("id=\"conversations\""));
    assert!(after.contains("id=\"chart-tokens\""));
    assert!(after.contains(
        "<tr data-provider=\"local\"><td>local</td><td class=\"num\">100</td>\
         <td class=\"num\">20</td><td class=\"num\">1</td><td class=\"num\">$0.000007</td></tr>"
    ));
    let today = civil_date(api::today());
    assert!(
        after.contains(&format!("<title>{today}: 120</title>")),
        "{after}"
    );
}

#[tokio::test]
async fn deleting_a_user_from_the_panel_deletes_their_conversations() {
    let panel = Panel::new(None).await;
    let store = &panel.state.store;
    converse(store, 1, 42, "forget me").await;
    assert_eq!(store.conversations_of(42).unwrap().len(), 1);
    let olga = panel.sign_in("olga").await;
    let csrf = panel.csrf(&olga).await;
    let done = panel
        .post(
            &olga,
            "/users/42/delete",
            &format!("csrf={csrf}&confirm=on"),
        )
        .await;
    assert_eq!(done.status, 303, "{}", text(&done));
    assert!(store.conversations_of(42).unwrap().is_empty());
    let private = DialogKey {
        chat_id: 42,
        thread_id: 0,
    };
    assert_eq!(store.dialog(private).unwrap(), None);
    assert!(store.turns(private, 1, 0).unwrap().is_empty());
}
