//! The admin listener over real HTTP on loopback, with a real redb store in a temp dir:
//! health and readiness, metrics, every API route with and without the token, the LLM
//! conversations (the export, usage per provider, deletion), and the OpenAPI document
//! kept in step with the route table.

use edgebot::app::runtime::Sending;
use edgebot::botapi::Client;
use edgebot::calendar::{UnixMillis, UnixSecs, civil_date};
use edgebot::config::Config;
use edgebot::config::Secret;
use edgebot::engine::outbound::call_of;
use edgebot::fake::botapi::{FakeBotApi, FakeConfig};
use edgebot::http::routes::{Need, ROUTES, Verb};
use edgebot::http::{AdminState, openapi, probe, serve_admin};
use edgebot::shutdown;
use edgebot::store::records::{
    ConversationChange, DialogKey, Event, EventKind, Exchange, Profile, Speaker, TurnRecord,
    UsageDelta, UserDelta, UserStatus,
};
use edgebot::store::{Finish, Store};
use edgebot::telegram::methods::Action;
use edgebot::telemetry::health::ModelsState;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "s3cret-admin-token";

/// A running admin listener over a fresh store.
struct Server {
    addr: SocketAddr,
    state: Arc<AdminState>,
    stop: Option<shutdown::Trigger>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// The store's directory, when the server made it.
    _dir: Option<tempfile::TempDir>,
}

/// Where the sender of a test that sends nothing points: the discard port, refused.
const NO_API: &str = "http://127.0.0.1:9";

impl Server {
    async fn start(token: Option<&str>) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut server = Server::over(store, token, NO_API).await;
        server._dir = Some(dir);
        server
    }

    /// The admin listener as `edgebot serve` wires it, with its sender calling `api_url`.
    async fn over(store: Store, token: Option<&str>, api_url: &str) -> Server {
        let mut config = Config::default();
        config.admin.token = token.map(Secret::new);
        let client =
            Client::new(api_url, &Secret::new("123:test"), Duration::from_secs(5)).unwrap();
        let sending = Sending::start(&config, store, client).unwrap();
        let state = sending.admin_state(&config).await.unwrap();
        state.health.api_succeeded(UnixSecs::now());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = shutdown::channel();
        let task = tokio::spawn(serve_admin(listener, state.clone(), stopped));
        Server {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
            _dir: None,
        }
    }

    fn store(&self) -> &Store {
        &self.state.store
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string());
        if let Some(token) = auth {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = body.map_or_else(Vec::new, |b| serde_json::to_vec(&b).unwrap());
        let response = sender
            .send_request(request.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body: body.to_vec(),
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.call("GET", path, Some(TOKEN), None).await
    }

    async fn stop(mut self) -> Store {
        self.stop.take().unwrap().fire();
        self.task.take().unwrap().await.unwrap().unwrap();
        let state = Arc::try_unwrap(self.state).ok().expect("the server let go");
        state.store
    }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: hyper::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

fn profile(username: Option<&str>, first: &str, last: Option<&str>) -> Profile {
    Profile {
        username: username.map(str::to_owned),
        first_name: first.to_owned(),
        last_name: last.map(str::to_owned),
        language_code: Some("en".into()),
    }
}

async fn add_user(store: &Store, id: i64, profile: Profile, seen_at: UnixSecs) {
    let mut delta = UserDelta::new(id, seen_at);
    delta.profile = Some(profile);
    delta.messages = 1;
    store.update_user(delta).await.unwrap();
}

async fn add_event(store: &Store, at_ms: UnixMillis, user_id: i64, kind: EventKind) {
    store
        .append_events(vec![Event {
            at_ms,
            user_id: Some(user_id),
            chat_id: Some(user_id),
            kind,
        }])
        .await
        .unwrap();
}

fn command(name: &str) -> EventKind {
    EventKind::Command { name: name.into() }
}

/// Each table path with its parameters filled in.
fn concrete(pattern: &str) -> String {
    pattern.replace("{id}", "1")
}

fn method(verb: Verb) -> &'static str {
    verb.as_str()
}

#[tokio::test]
async fn health_is_open_and_unknown_paths_are_not_found() {
    let server = Server::start(Some(TOKEN)).await;
    let health = server.call("GET", "/health", None, None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), json!({ "status": "ok" }));

    // Outside the API, paths are the panel's: an unknown one is its 404 page.
    let missing = server.call("GET", "/nowhere", None, None).await;
    assert_eq!(missing.status, 404);
    assert!(
        missing.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );

    let wrong_method = server.call("POST", "/health", None, None).await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.headers["allow"], "GET");

    let unknown_api = server.get("/api/v1/nothing").await;
    assert_eq!(unknown_api.status, 404);
    assert_eq!(unknown_api.error_code(), "not_found");
}

#[tokio::test]
async fn every_api_route_wants_the_token() {
    let server = Server::start(Some(TOKEN)).await;
    add_user(
        server.store(),
        1,
        profile(Some("one"), "One", None),
        UnixSecs::now(),
    )
    .await;
    let api_routes: Vec<_> = ROUTES
        .iter()
        .filter(|r| r.pattern.starts_with("/api/v1/") && r.need != Need::Anyone)
        .collect();
    assert!(api_routes.len() >= 8);
    // Wrong values include a prefix and an extension of the token: the comparison is of
    // whole values (constant-time, through Secret::matches).
    let wrong = ["nope", &TOKEN[..TOKEN.len() - 1], &format!("{TOKEN}x")];
    for route in &api_routes {
        let path = concrete(route.pattern);
        let verb = method(route.verb);
        let missing = server.call(verb, &path, None, None).await;
        assert_eq!(missing.status, 401, "{verb} {path} without a token");
        assert_eq!(missing.error_code(), "unauthorized");
        assert!(missing.headers.contains_key("www-authenticate"));
        for token in wrong {
            let answer = server.call(verb, &path, Some(token), None).await;
            assert_eq!(answer.status, 401, "{verb} {path} with {token:?}");
        }
        let with_token = server.call(verb, &path, Some(TOKEN), None).await;
        assert!(
            ![401, 403, 404, 405].contains(&with_token.status),
            "{verb} {path} with the token: {} {}",
            with_token.status,
            with_token.text()
        );
    }
    // The open routes stay open.
    for path in ["/health", "/health/ready", "/metrics"] {
        assert_eq!(
            server.call("GET", path, None, None).await.status,
            200,
            "{path}"
        );
    }
}

#[tokio::test]
async fn without_a_token_the_api_is_off() {
    let server = Server::start(None).await;
    for route in ROUTES
        .iter()
        .filter(|r| r.need != Need::Anyone || !r.pattern.starts_with("/api/v1/"))
    {
        let path = concrete(route.pattern);
        let answer = server
            .call(method(route.verb), &path, Some("anything"), None)
            .await;
        if route.pattern.starts_with("/api/v1/") {
            assert_eq!(answer.status, 403, "{path}");
            assert_eq!(answer.error_code(), "api_disabled");
        } else {
            assert_eq!(answer.status, 200, "{path}");
        }
    }
    assert_eq!(server.get("/api/v1/unknown").await.status, 403);
}

#[tokio::test]
async fn users_page_search_and_filter() {
    let server = Server::start(Some(TOKEN)).await;
    let store = server.store();
    let now = UnixSecs::now();
    add_user(
        store,
        10,
        profile(Some("alice_w"), "Alice", Some("Wonder")),
        now,
    )
    .await;
    add_user(store, 11, profile(None, "Bob", Some("ALISON")), now).await;
    add_user(store, 12, profile(Some("carol"), "Carol", None), now).await;
    add_user(store, 13, profile(Some("dave"), "Dave", None), now).await;
    add_user(store, 14, profile(Some("erin"), "Jürgen", None), now).await;

    // Paging follows next_after to the end.
    let mut seen = Vec::new();
    let mut after = String::new();
    for _ in 0..5 {
        let page = server
            .get(&format!("/api/v1/users?limit=2{after}"))
            .await
            .json();
        let users = page["users"].as_array().unwrap();
        assert!(users.len() <= 2);
        seen.extend(users.iter().map(|u| u["id"].as_i64().unwrap()));
        match page["next_after"].as_i64() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, vec![10, 11, 12, 13, 14]);

    // Search: username or full name, case-insensitive, a leading @ ignored.
    let ids = |v: Value| -> Vec<i64> {
        v["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(
        ids(server.get("/api/v1/users?q=ali").await.json()),
        [10, 11]
    );
    assert_eq!(
        ids(server.get("/api/v1/users?q=%40CAROL").await.json()),
        [12]
    );
    assert_eq!(
        ids(server.get("/api/v1/users?q=alice+wonder").await.json()),
        [10]
    );
    assert_eq!(
        ids(server.get("/api/v1/users?q=J%C3%BCRGEN").await.json()),
        [14]
    );

    // Status filter.
    let ban = server
        .call(
            "PATCH",
            "/api/v1/users/12",
            Some(TOKEN),
            Some(json!({ "status": "banned" })),
        )
        .await;
    assert_eq!(ban.status, 200);
    assert_eq!(
        ids(server.get("/api/v1/users?status=banned").await.json()),
        [12]
    );
    assert_eq!(
        ids(server.get("/api/v1/users?status=active").await.json()),
        [10, 11, 13, 14]
    );
    assert_eq!(server.get("/api/v1/users?status=gone").await.status, 400);
    assert_eq!(server.get("/api/v1/users?limit=0").await.status, 400);
    assert_eq!(server.get("/api/v1/users?limit=x").await.status, 400);

    let one = server.get("/api/v1/users/10").await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["username"], "alice_w");
    assert_eq!(one.json()["message_count"], 1);
    assert_eq!(server.get("/api/v1/users/99").await.status, 404);
    assert_eq!(server.get("/api/v1/users/abc").await.status, 400);
}

#[tokio::test]
async fn ban_unban_and_role_change_an_existing_user_only() {
    let server = Server::start(Some(TOKEN)).await;
    let seen_at = UnixSecs::now() - 3600;
    add_user(
        server.store(),
        7,
        profile(Some("gus"), "Gus", None),
        seen_at,
    )
    .await;
    let patch = |body: Value, id: i64| {
        let path = format!("/api/v1/users/{id}");
        let server = &server;
        async move { server.call("PATCH", &path, Some(TOKEN), Some(body)).await }
    };

    let banned = patch(json!({ "status": "banned" }), 7).await;
    assert_eq!(banned.status, 200, "{}", banned.text());
    assert_eq!(banned.json()["status"], "banned");
    let stored = server.store().user(7).unwrap().unwrap();
    assert_eq!(stored.status, UserStatus::Banned);
    assert_eq!(
        stored.last_seen, seen_at,
        "an admin's change is not the user being seen"
    );

    let unbanned = patch(json!({ "status": "active", "role": "admin" }), 7).await;
    assert_eq!(unbanned.json()["status"], "active");
    assert_eq!(unbanned.json()["role"], "admin");

    let missing = patch(json!({ "status": "banned" }), 8).await;
    assert_eq!(missing.status, 404);
    assert!(server.store().user(8).unwrap().is_none(), "not created");

    for invalid in [
        json!({ "status": "blocked" }),
        json!({}),
        json!({ "colour": "red" }),
        json!({ "role": "root" }),
    ] {
        let answer = patch(invalid.clone(), 7).await;
        assert_eq!(answer.status, 422, "{invalid}: {}", answer.text());
        assert_eq!(answer.error_code(), "invalid_body");
    }
}

#[tokio::test]
async fn delete_removes_the_user_and_their_events() {
    let server = Server::start(Some(TOKEN)).await;
    let store = server.store();
    add_user(store, 1, profile(None, "One", None), UnixSecs::now()).await;
    add_user(store, 2, profile(None, "Two", None), UnixSecs::now()).await;
    add_event(store, UnixMillis::now(), 1, command("start")).await;
    add_event(store, UnixMillis::now(), 2, command("start")).await;

    let deleted = server
        .call("DELETE", "/api/v1/users/1", Some(TOKEN), None)
        .await;
    assert_eq!(deleted.status, 204);
    assert_eq!(server.get("/api/v1/users/1").await.status, 404);
    let events = server.get("/api/v1/events?limit=100").await.json();
    let users: BTreeSet<i64> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["user_id"].as_i64().unwrap())
        .collect();
    assert_eq!(users, BTreeSet::from([2]));
    let again = server
        .call("DELETE", "/api/v1/users/1", Some(TOKEN), None)
        .await;
    assert_eq!(again.status, 404);
}

/// Today, counted in days from 1970-01-01 as the store counts them.
fn today() -> u32 {
    u32::try_from(UnixSecs::now().get() / 86_400).unwrap()
}

fn turn(speaker: Speaker, user_id: i64, text: &str, at: i64, provider: Option<&str>) -> TurnRecord {
    TurnRecord {
        speaker,
        user_id,
        text: text.into(),
        at: UnixSecs(at),
        tokens: 5,
        update_id: at,
        provider: provider.map(str::to_owned),
    }
}

/// What an answer cost: who answered, on which day, the tokens (input, output) and the
/// micro-dollars.
struct Bill {
    provider: &'static str,
    day: u32,
    tokens: (u32, u32),
    cost: u64,
}

/// A question of `user` at `key` at `at` and the answer a second later, in dialog
/// `number`, costing `bill`.
fn exchange(
    key: DialogKey,
    number: u32,
    user: i64,
    text: &str,
    at: i64,
    bill: Bill,
) -> ConversationChange {
    Exchange {
        key,
        number,
        personality: "friend".into(),
        question: Some(turn(Speaker::User, user, text, at, None)),
        answer: turn(
            Speaker::Assistant,
            user,
            &format!("re: {text}"),
            at + 1,
            Some(bill.provider),
        ),
        replaces_answer: false,
        summary: None,
        usage: UsageDelta {
            user_id: user,
            provider: bill.provider.into(),
            day: bill.day,
            // The month counters are the store's; nothing here reads them.
            month: 2026 * 12,
            input_tokens: bill.tokens.0,
            output_tokens: bill.tokens.1,
            cost_micro_usd: bill.cost,
        },
    }
    .into()
}

/// A plain exchange today on the provider `local`.
fn chat(key: DialogKey, number: u32, user: i64, text: &str, at: i64) -> ConversationChange {
    let bill = Bill {
        provider: "local",
        day: today(),
        tokens: (10, 2),
        cost: 1,
    };
    exchange(key, number, user, text, at, bill)
}

/// Commits `changes` as update `update_id` would.
async fn converse(store: &Store, update_id: i64, changes: Vec<ConversationChange>) {
    store
        .finish(Finish {
            update_id,
            finished_at: UnixSecs::now(),
            conversation: changes,
            ..Finish::default()
        })
        .await
        .unwrap();
}

fn private(user: i64) -> DialogKey {
    DialogKey {
        chat_id: user,
        thread_id: 0,
    }
}

const GROUP: DialogKey = DialogKey {
    chat_id: -100,
    thread_id: 7,
};

/// An API token for a new account `name` with `role`.
async fn account_token(
    server: &Server,
    name: &str,
    role: edgebot::store::records::AdminRole,
) -> String {
    use edgebot::auth::{self, Actor};
    let password = "a long enough password";
    auth::add_account(server.store(), name, role, password.into(), &Actor::cli())
        .await
        .unwrap();
    let answer = server
        .call(
            "POST",
            "/api/v1/auth/token",
            None,
            Some(json!({ "username": name, "password": password })),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_owner_exports_a_users_conversations_and_each_export_is_audited() {
    use edgebot::store::records::AdminRole;
    let server = Server::start(Some(TOKEN)).await;
    let store = server.store();
    add_user(store, 42, profile(None, "Ada", None), UnixSecs::now()).await;
    add_user(store, 43, profile(None, "Bob", None), UnixSecs::now()).await;
    converse(store, 1, vec![chat(private(42), 1, 42, "hello", 1_000)]).await;
    // A /reset, then dialog 2: both dialogs' turns are exported.
    converse(
        store,
        2,
        vec![ConversationChange::Reset {
            key: private(42),
            at: UnixSecs(1_100),
        }],
    )
    .await;
    converse(store, 3, vec![chat(private(42), 2, 42, "again", 1_200)]).await;
    // A topic shared with Bob: only Ada's turns and the answers to her are hers.
    converse(store, 4, vec![chat(GROUP, 1, 43, "bob asks", 2_000)]).await;
    converse(store, 5, vec![chat(GROUP, 1, 42, "ada asks", 2_010)]).await;

    let viewer = account_token(&server, "vera", AdminRole::Viewer).await;
    let editor = account_token(&server, "eddie", AdminRole::Editor).await;
    let owner = account_token(&server, "olga", AdminRole::Owner).await;
    let path = "/api/v1/users/42/conversations";
    for token in [&viewer, &editor] {
        let refused = server.call("GET", path, Some(token), None).await;
        assert_eq!(refused.status, 403);
        assert_eq!(refused.error_code(), "forbidden");
        assert!(refused.text().contains("it needs owner"));
        assert!(!refused.text().contains("hello"));
    }

    let export = server.call("GET", path, Some(&owner), None).await;
    assert_eq!(export.status, 200, "{}", export.text());
    let body = export.json();
    assert_eq!(body["user_id"], 42);
    let dialogs = body["dialogs"].as_array().unwrap();
    assert_eq!(dialogs.len(), 2, "{body}");
    // The index orders places by chat id: the group (-100) before the private chat.
    assert_eq!(
        dialogs[0],
        json!({
            "chat_id": -100,
            "thread_id": 7,
            "number": 1,
            "personality": "friend",
            "summary": "",
            "started_at": 2_000,
            "last_at": 2_011,
            "turns": [
                { "speaker": "user", "text": "ada asks", "at": 2_010, "tokens": 5, "provider": null },
                { "speaker": "assistant", "text": "re: ada asks", "at": 2_011, "tokens": 5, "provider": "local" },
            ],
        })
    );
    let mine = &dialogs[1];
    assert_eq!(
        (mine["chat_id"].as_i64(), mine["number"].as_u64()),
        (Some(42), Some(2))
    );
    let said: Vec<&str> = mine["turns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["text"].as_str().unwrap())
        .collect();
    assert_eq!(said, ["hello", "re: hello", "again", "re: again"]);

    // The static token is an owner too, audited as `api-token`.
    assert_eq!(server.get(path).await.status, 200);
    let audit = server.get("/api/v1/audit").await.json();
    let exports: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "conversations_exported")
        .collect();
    assert_eq!(exports.len(), 2, "one line per export, none for a refusal");
    assert_eq!(exports[1]["actor"], "olga");
    assert_eq!(exports[0]["actor"], "api-token");
    assert_eq!(exports[0]["target"], "user 42");
    assert_eq!(exports[0]["address"], "127.0.0.1");

    // A user without conversations has none; an unknown user is a 404, like the others.
    let bob_alone = server.get("/api/v1/users/43/conversations").await.json();
    assert_eq!(bob_alone["dialogs"].as_array().unwrap().len(), 1);
    let unknown = server.get("/api/v1/users/99/conversations").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.error_code(), "not_found");
    assert_eq!(
        server.get("/api/v1/users/x/conversations").await.status,
        400
    );
}

#[tokio::test]
async fn llm_usage_sums_each_provider_per_day_and_over_the_window() {
    let server = Server::start(Some(TOKEN)).await;
    let store = server.store();
    let today = today();
    let lines = [
        ("openai", today, (100, 10), 250),
        ("openai", today, (50, 5), 125),
        ("anthropic", today, (200, 20), 1_000_000),
        ("openai", today - 1, (7, 3), 1),
        // Outside the default 30 days.
        ("openai", today - 40, (1000, 1000), 5),
    ];
    for (update, (provider, day, tokens, cost)) in (1..).zip(lines) {
        let bill = Bill {
            provider,
            day,
            tokens,
            cost,
        };
        let change = exchange(private(42), 1, 42, "q", update, bill);
        converse(store, update, vec![change]).await;
    }

    let usage = server.get("/api/v1/llm/usage").await;
    assert_eq!(usage.status, 200, "{}", usage.text());
    let usage = usage.json();
    let today_date = civil_date(i64::from(today));
    assert_eq!(usage["to"], today_date.as_str());
    assert_eq!(usage["from"], civil_date(i64::from(today - 29)).as_str());
    assert_eq!(
        usage["per_day"],
        json!([
            { "provider": "openai", "day": civil_date(i64::from(today - 1)), "input_tokens": 7, "output_tokens": 3, "turns": 1, "cost_usd": 0.000001 },
            { "provider": "anthropic", "day": today_date, "input_tokens": 200, "output_tokens": 20, "turns": 1, "cost_usd": 1.0 },
            { "provider": "openai", "day": today_date, "input_tokens": 150, "output_tokens": 15, "turns": 2, "cost_usd": 0.000375 },
        ])
    );
    assert_eq!(
        usage["totals"],
        json!([
            { "provider": "anthropic", "input_tokens": 200, "output_tokens": 20, "turns": 1, "cost_usd": 1.0 },
            { "provider": "openai", "input_tokens": 157, "output_tokens": 18, "turns": 3, "cost_usd": 0.000376 },
        ])
    );

    let longer = server.get("/api/v1/llm/usage?days=60").await.json();
    assert_eq!(longer["per_day"].as_array().unwrap().len(), 4);
    assert_eq!(longer["totals"][1]["turns"], 4);
    assert_eq!(longer["totals"][1]["input_tokens"], 1157);
    let one = server.get("/api/v1/llm/usage?days=1").await.json();
    assert_eq!(one["from"], one["to"]);
    assert_eq!(one["per_day"].as_array().unwrap().len(), 2);
    for bad in ["days=0", "days=367", "days=x"] {
        let answer = server.get(&format!("/api/v1/llm/usage?{bad}")).await;
        assert_eq!(answer.status, 400, "{bad}");
    }
}

#[tokio::test]
async fn deleting_a_user_deletes_their_conversations_and_keeps_the_others() {
    let server = Server::start(Some(TOKEN)).await;
    let store = server.store();
    add_user(store, 42, profile(None, "Ada", None), UnixSecs::now()).await;
    add_user(store, 43, profile(None, "Bob", None), UnixSecs::now()).await;
    converse(store, 1, vec![chat(private(42), 1, 42, "mine", 1_000)]).await;
    converse(store, 2, vec![chat(GROUP, 1, 43, "bob asks", 2_000)]).await;
    converse(store, 3, vec![chat(GROUP, 1, 42, "ada asks", 2_010)]).await;
    converse(store, 4, vec![chat(private(43), 1, 43, "bob's own", 3_000)]).await;
    let bobs = |store: &Store| -> Vec<Vec<TurnRecord>> {
        let found = store.conversations_of(43).unwrap();
        found.into_iter().map(|(_, _, turns)| turns).collect()
    };
    let bob_before = bobs(store);

    let deleted = server
        .call("DELETE", "/api/v1/users/42", Some(TOKEN), None)
        .await;
    assert_eq!(deleted.status, 204);
    assert!(store.conversations_of(42).unwrap().is_empty());
    assert_eq!(store.dialog(private(42)).unwrap(), None);
    assert!(store.turns(private(42), 1, 0).unwrap().is_empty());
    let left: Vec<String> = store
        .turns(GROUP, 1, 0)
        .unwrap()
        .into_iter()
        .map(|t| t.text)
        .collect();
    assert_eq!(
        left,
        ["bob asks", "re: bob asks"],
        "Ada's turns left the group"
    );
    assert_eq!(bobs(store), bob_before, "Bob's turns stay, in both places");
    // The provider's accounting stays, as with /forget.
    let usage = server.get("/api/v1/llm/usage?days=1").await.json();
    assert_eq!(usage["totals"][0]["turns"], 4);
}

#[tokio::test]
async fn stats_count_users_messages_and_commands() {
    let server = Server::start(Some(TOKEN)).await;
    let store = server.store();
    let now = UnixSecs::now();
    add_user(store, 1, profile(None, "One", None), now).await;
    add_user(store, 2, profile(None, "Two", None), now).await;
    // Seen ten days ago: outside a 7-day window.
    add_user(store, 3, profile(None, "Three", None), now - 10 * 86_400).await;
    let at = UnixMillis::now();
    add_event(store, at, 1, command("start")).await;
    add_event(store, at, 1, command("help")).await;
    add_event(store, at, 2, command("start")).await;
    add_event(
        store,
        at,
        2,
        EventKind::Feedback {
            text: "great".into(),
        },
    )
    .await;
    add_event(
        store,
        UnixMillis(at.get() - 10 * 86_400_000),
        3,
        command("old"),
    )
    .await;

    let stats = server.get("/api/v1/stats?days=7").await;
    assert_eq!(stats.status, 200, "{}", stats.text());
    let stats = stats.json();
    assert_eq!(stats["users"]["total"], 3);
    assert_eq!(stats["users"]["new"], 2);
    assert_eq!(stats["users"]["active"], 2);
    assert_eq!(stats["users"]["by_status"]["active"], 3);
    assert_eq!(stats["messages"], 4);
    assert_eq!(stats["commands"], json!({ "help": 1, "start": 2 }));
    assert_eq!(stats["sentiment"], json!({}));
    let days = stats["per_day"].as_array().unwrap();
    assert_eq!(days.len(), 7);
    let today = days.last().unwrap();
    assert_eq!(today["date"], stats["to"]);
    assert_eq!(today["new_users"], 2);
    assert_eq!(today["active_users"], 2);
    assert_eq!(today["messages"], 4);

    let month = server.get("/api/v1/stats?days=30").await.json();
    assert_eq!(month["commands"]["old"], 1);
    assert_eq!(month["users"]["new"], 3);
    assert_eq!(server.get("/api/v1/stats?days=0").await.status, 400);
    assert_eq!(server.get("/api/v1/stats?days=9999").await.status, 400);
}

#[tokio::test]
async fn events_page_by_type_and_time() {
    let server = Server::start(Some(TOKEN)).await;
    let store = server.store();
    let base = 1_700_000_000_000;
    for i in 0..10 {
        let kind = if i % 2 == 0 {
            command("start")
        } else {
            EventKind::Callback { data: "x".into() }
        };
        add_event(store, UnixMillis(base + i * 1000), 5, kind).await;
    }
    let all = server.get("/api/v1/events?limit=100").await.json();
    assert_eq!(all["events"].as_array().unwrap().len(), 10);
    assert_eq!(all["next_after"], Value::Null);
    let first = &all["events"][0];
    assert_eq!(first["type"], "command");
    assert_eq!(first["data"], json!({ "name": "start" }));
    assert_eq!(first["at_ms"], base);

    // Commands, two at a time.
    let mut seqs = Vec::new();
    let mut after = 0;
    loop {
        let page = server
            .get(&format!(
                "/api/v1/events?type=command&limit=2&after={after}"
            ))
            .await
            .json();
        for e in page["events"].as_array().unwrap() {
            assert_eq!(e["type"], "command");
            seqs.push(e["seq"].as_u64().unwrap());
        }
        match page["next_after"].as_u64() {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(seqs.len(), 5);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));

    // A time window: [since, until).
    let window = server
        .get(&format!(
            "/api/v1/events?since_ms={}&until_ms={}",
            base + 2000,
            base + 5000
        ))
        .await
        .json();
    let times: Vec<i64> = window["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["at_ms"].as_i64().unwrap())
        .collect();
    assert_eq!(times, [base + 2000, base + 3000, base + 4000]);
    assert_eq!(server.get("/api/v1/events?since_ms=soon").await.status, 400);
}

#[tokio::test]
async fn send_message_goes_through_the_outbox() {
    let fake = FakeBotApi::start(FakeConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let server = Server::over(store, Some(TOKEN), &fake.base_url()).await;
    let store = server.store();
    add_user(store, 21, profile(None, "Ann", None), UnixSecs::now()).await;
    add_user(store, 22, profile(None, "Ben", None), UnixSecs::now()).await;
    let mut blocked = UserDelta::new(22, UnixSecs::now());
    blocked.status = Some(UserStatus::Blocked);
    store.update_user(blocked).await.unwrap();

    let post = |body: Value| server.call("POST", "/api/v1/messages", Some(TOKEN), Some(body));
    let sent = post(json!({ "user_id": 21, "text": "Maintenance at noon" })).await;
    assert_eq!(sent.status, 202, "{}", sent.text());
    assert_eq!(sent.json()["queued"], true);
    let delivered = fake
        .wait_for(
            |calls| {
                calls.iter().any(|c| {
                    c.method == "sendMessage"
                        && c.chat_id == Some(21)
                        && c.params["text"] == "Maintenance at noon"
                })
            },
            Duration::from_secs(10),
        )
        .await;
    assert!(delivered, "{:?}", fake.calls());

    assert_eq!(
        post(json!({ "user_id": 99, "text": "hi" })).await.status,
        404
    );
    let refused = post(json!({ "user_id": 22, "text": "hi" })).await;
    assert_eq!(refused.status, 409);
    assert_eq!(refused.error_code(), "user_blocked");
    assert_eq!(
        post(json!({ "user_id": 21, "text": "  " })).await.status,
        422
    );
    assert_eq!(
        post(json!({ "user_id": 21, "text": "x".repeat(4097) }))
            .await
            .status,
        422
    );
    assert_eq!(post(json!({ "text": "hi" })).await.status, 422);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        fake.calls_for("sendMessage").len(),
        1,
        "nothing else was sent"
    );
}

#[tokio::test]
async fn openapi_document_matches_the_route_table() {
    let doc: Value = serde_json::from_str(openapi::DOCUMENT).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.0"));
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "post", "patch", "delete", "put"].contains(&k.as_str()))
                .map(move |k| (k.to_uppercase(), path.clone()))
        })
        .collect();
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.verb.as_str().to_owned(), r.pattern.to_owned()))
        .collect();
    assert_eq!(documented, routed);
    // Each operation names the role its route needs.
    for route in ROUTES {
        let op = &doc["paths"][route.pattern][route.verb.as_str().to_lowercase()];
        let role = match route.need {
            Need::Anyone => "none".to_owned(),
            Need::Role(role) => role.name().to_owned(),
        };
        assert_eq!(
            op["x-required-role"],
            role.as_str(),
            "{} {}",
            route.verb.as_str(),
            route.pattern
        );
    }

    let server = Server::start(Some(TOKEN)).await;
    let served = server.get("/api/v1/openapi.json").await;
    assert_eq!(served.status, 200);
    assert_eq!(served.json(), doc);
}

#[tokio::test]
async fn ready_follows_telegram_and_the_models() {
    let server = Server::start(None).await;
    let health = &server.state.health;
    let ready = server.call("GET", "/health/ready", None, None).await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_eq!(
        ready.json(),
        json!({ "status": "ready", "checks": { "store": "ok", "telegram": "ok", "models": "ok" } })
    );
    probe::probe(server.addr, true, Duration::from_secs(5))
        .await
        .unwrap();

    health.api_failed(UnixSecs::now() + 1);
    let down = server.call("GET", "/health/ready", None, None).await;
    assert_eq!(down.status, 503);
    let body = down.json();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["store"], "ok");
    assert_ne!(body["checks"]["telegram"], "ok");
    assert_eq!(body["checks"]["models"], "ok");
    let err = probe::probe(server.addr, true, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        matches!(err, probe::ProbeError::Status { status: 503, .. }),
        "{err}"
    );
    probe::probe(server.addr, false, Duration::from_secs(5))
        .await
        .expect("alive while not ready");

    health.api_succeeded(UnixSecs::now() + 2);
    assert_eq!(
        server.call("GET", "/health/ready", None, None).await.status,
        200
    );

    health.set_models(ModelsState::Loading);
    let no_models = server.call("GET", "/health/ready", None, None).await;
    assert_eq!(no_models.status, 503);
    assert_ne!(no_models.json()["checks"]["models"], "ok");
    health.set_models(ModelsState::Loaded);

    let addr = server.addr;
    server.stop().await;
    let err = probe::probe(addr, false, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(err, probe::ProbeError::Io { .. }), "{err}");
}

/// A failing disk, for real: `RLIMIT_FSIZE` makes every write past the first byte of
/// any file fail with EFBIG, as a full disk fails with ENOSPC. The limit is per process,
/// so this runs in a child process of its own (the test binary again, running only
/// [`store_failure_child`]).
#[test]
fn ready_fails_when_the_store_cannot_commit() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--exact", "store_failure_child", "--ignored", "--nocapture"])
        .env("EDGEBOT_TEST_FSIZE_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("store failure child: all checked"),
        "the child did not run:\n{stdout}\n{stderr}"
    );
}

#[test]
#[ignore = "run in a process of its own by ready_fails_when_the_store_cannot_commit"]
fn store_failure_child() {
    if std::env::var_os("EDGEBOT_TEST_FSIZE_CHILD").is_none() {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let server = Server::over(Store::open(&path).unwrap(), None, NO_API).await;
        let ready = || server.call("GET", "/health/ready", None, None);
        assert_eq!(ready().await.status, 200);

        set_file_size_limit(1);
        let failing = ready().await;
        let body = failing.json();
        println!("with the limit: {body}");
        assert_eq!(failing.status, 503);
        assert!(
            body["checks"]["store"]
                .as_str()
                .unwrap()
                .contains("commit failed"),
            "{body}"
        );
        assert_eq!(body["checks"]["telegram"], "ok");

        // redb refuses every write after an I/O error until the file is reopened, so the
        // store stays unready: the orchestrator's restart is the way back.
        set_file_size_limit(libc::RLIM_INFINITY);
        let still = ready().await;
        println!("after lifting the limit: {}", still.text());
        assert_eq!(still.status, 503);

        drop(server.stop().await);
        let restarted = Server::over(Store::open(&path).unwrap(), None, NO_API).await;
        let back = restarted.call("GET", "/health/ready", None, None).await;
        assert_eq!(back.status, 200, "{}", back.text());
        println!("store failure child: all checked");
    });
}

fn set_file_size_limit(bytes: libc::rlim_t) {
    // SAFETY: plain libc calls on this process's own limits and signal disposition;
    // SIGXFSZ would otherwise kill the process at the first write past the limit.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let mut limit = std::mem::zeroed::<libc::rlimit>();
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit), 0);
        limit.rlim_cur = bytes.min(limit.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
}

#[tokio::test]
async fn metrics_move_after_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let now = UnixSecs::now();
    add_user(&store, 1, profile(None, "Today", None), now).await;
    add_user(
        &store,
        2,
        profile(None, "Last week", None),
        now - 3 * 86_400,
    )
    .await;
    add_user(
        &store,
        3,
        profile(None, "Last month", None),
        now - 20 * 86_400,
    )
    .await;
    add_user(
        &store,
        4,
        profile(None, "Long ago", None),
        now - 90 * 86_400,
    )
    .await;
    let server = Server::over(store, Some(TOKEN), NO_API).await;

    let before = server.call("GET", "/metrics", None, None).await;
    assert_eq!(before.status, 200);
    assert!(
        before.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = before.text();
    assert!(text.contains("edgebot_outbox_depth 0"), "{text}");
    assert!(
        text.contains(r#"edgebot_active_users{window="24h"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"edgebot_active_users{window="7d"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"edgebot_active_users{window="30d"} 3"#),
        "{text}"
    );
    assert!(!text.contains("edgebot_updates_received_total{"), "{text}");

    // Traffic: an update received and finished with two actions waiting to be sent.
    server.state.metrics.update_received("message", "webhook");
    server
        .store()
        .finish(Finish {
            update_id: 1,
            finished_at: now,
            outbox: vec![
                call_of(&Action::send(1, "a")),
                call_of(&Action::send(1, "b")),
            ],
            ..Finish::default()
        })
        .await
        .unwrap();
    let after = server.call("GET", "/metrics", None, None).await.text();
    assert!(after.contains("edgebot_outbox_depth 2"), "{after}");
    assert!(
        after.contains(r#"edgebot_updates_received_total{kind="message",transport="webhook"} 1"#),
        "{after}"
    );
    let bytes: i64 = after
        .lines()
        .find_map(|l| l.strip_prefix("edgebot_store_size_bytes "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(bytes > 0);
}

#[tokio::test]
async fn accounts_get_short_lived_tokens_and_their_role_is_enforced() {
    use edgebot::auth::{self, Actor};
    use edgebot::store::records::AdminRole;
    let server = Server::start(None).await;
    add_user(
        server.store(),
        7,
        profile(Some("seven"), "Seven", None),
        UnixSecs::now(),
    )
    .await;
    for (name, role) in [("vera", AdminRole::Viewer), ("eddie", AdminRole::Editor)] {
        auth::add_account(
            server.store(),
            name,
            role,
            "a long enough password".into(),
            &Actor::cli(),
        )
        .await
        .unwrap();
    }
    // With an account, the API is on even without a static token.
    let anonymous = server.call("GET", "/api/v1/users", None, None).await;
    assert_eq!(anonymous.status, 401);

    let token_of = |name: &'static str| {
        let server = &server;
        async move {
            let answer = server
                .call(
                    "POST",
                    "/api/v1/auth/token",
                    None,
                    Some(json!({ "username": name, "password": "a long enough password" })),
                )
                .await;
            assert_eq!(answer.status, 200, "{}", answer.text());
            let body = answer.json();
            assert_eq!(body["token_type"], "Bearer");
            assert_eq!(body["expires_in"], 900);
            body["token"].as_str().unwrap().to_owned()
        }
    };
    let vera = token_of("vera").await;
    let eddie = token_of("eddie").await;
    assert_eq!(vera.split('.').count(), 3, "a JWT");

    let patch = json!({ "status": "banned" });
    assert_eq!(
        server
            .call("GET", "/api/v1/users/7", Some(&vera), None)
            .await
            .status,
        200
    );
    let refused = server
        .call("PATCH", "/api/v1/users/7", Some(&vera), Some(patch.clone()))
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.error_code(), "forbidden");
    assert!(refused.text().contains("it needs editor"));
    let done = server
        .call("PATCH", "/api/v1/users/7", Some(&eddie), Some(patch))
        .await;
    assert_eq!(done.status, 200);
    let deleted = server
        .call("DELETE", "/api/v1/users/7", Some(&eddie), None)
        .await;
    assert_eq!(deleted.status, 403, "deleting is an owner's");

    // The audit log names the account and the change.
    let audit = server.call("GET", "/api/v1/audit", Some(&vera), None).await;
    assert_eq!(audit.status, 200);
    let entries = audit.json()["entries"].as_array().unwrap().clone();
    let change = entries
        .iter()
        .find(|e| e["action"] == "user_banned")
        .expect("the ban is audited");
    assert_eq!(change["actor"], "eddie");
    assert_eq!(change["address"], "127.0.0.1");
    assert!(change["target"].as_str().unwrap().contains("user 7"));

    // A removed account's token stops working at once; a forged one never did.
    auth::remove_account(server.store(), "vera", &Actor::cli())
        .await
        .unwrap();
    assert_eq!(
        server
            .call("GET", "/api/v1/users", Some(&vera), None)
            .await
            .status,
        401
    );
    let forged = format!("{}x", &eddie[..eddie.len() - 1]);
    assert_eq!(
        server
            .call("GET", "/api/v1/users", Some(&forged), None)
            .await
            .status,
        401
    );

    // Wrong passwords are refused, then throttled with a Retry-After.
    let wrong = json!({ "username": "eddie", "password": "not the password" });
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let answer = server
            .call("POST", "/api/v1/auth/token", None, Some(wrong.clone()))
            .await;
        statuses.push(answer.status);
        if answer.status == 429 {
            assert!(answer.headers.contains_key("retry-after"));
        }
    }
    assert_eq!(statuses, [401, 401, 401, 401, 429]);
    let malformed = server
        .call(
            "POST",
            "/api/v1/auth/token",
            None,
            Some(json!({ "user": "eddie" })),
        )
        .await;
    assert_eq!(malformed.status, 422);
}
