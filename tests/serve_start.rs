//! `edgebot serve` as a self-hoster starts it: the real binary as a process, the fake Bot
//! API in this test, plain HTTP to the admin listener.
//!
//! * The admin API's `POST /api/v1/messages` reaches Telegram through the running bot's
//!   sender (it once answered 503 `no_sender` under `serve`, because only the tests wired
//!   the outbox into the admin state).
//! * A Bot API that cannot be reached at start is waited for: `/health` answers, and
//!   `/health/ready` names `telegram` while the models load on their own; once Telegram
//!   answers, the bot serves.
//! * Readiness names the models while they load (they once loaded before the admin
//!   listener bound, so the check could never fail), and models that cannot load end
//!   the start with one line even while Telegram is being waited for.

// Shared with other test crates; this one uses part of it.
#[allow(dead_code)]
#[path = "support/binary.rs"]
mod binary;

use binary::{Running, edgebot, free_port};
use edgebot::fake::botapi::{FakeBotApi, FakeConfig};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tempfile::TempDir;

const TOKEN: &str = "123456:SERVE-START";
const ADMIN_TOKEN: &str = "admin-secret-for-tests";
/// Generous: two cores are shared with other builds and tests.
const PATIENCE: Duration = Duration::from_secs(60);

/// A running `edgebot serve`, with its admin address and its log.
struct Serve {
    process: Running,
    admin: SocketAddr,
    dir: TempDir,
}

impl Serve {
    fn start(api_url: &str) -> Serve {
        // Every default: no routes, the models compiled in.
        Serve::with_config(api_url, "")
    }

    fn with_config(api_url: &str, config: &str) -> Serve {
        let dir = tempfile::tempdir().expect("a temp dir");
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
        std::fs::write(dir.path().join("edgebot.toml"), config).unwrap();
        let child = edgebot()
            .arg("--config")
            .arg(dir.path().join("edgebot.toml"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("serve")
            .env("EDGEBOT_TOKEN", TOKEN)
            .env("EDGEBOT_API_URL", api_url)
            .env("EDGEBOT_ADMIN_LISTEN", admin.to_string())
            .env("EDGEBOT_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("EDGEBOT_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("edgebot serve starts");
        let process = Running {
            name: "edgebot serve",
            child,
        };
        Serve {
            process,
            admin,
            dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    fn still_running(&mut self) -> bool {
        self.process.exited().is_none()
    }

    /// One request to the admin listener, with the admin token; `None` while nothing
    /// listens.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Option<(u16, Value)> {
        let bearer = format!("Bearer {ADMIN_TOKEN}");
        let headers = [("Authorization", bearer.as_str())];
        binary::http(self.admin, method, path, &headers, body.as_ref())
    }

    /// Polls `path` until `done` holds for its answer.
    async fn wait_until(
        &mut self,
        path: &str,
        done: impl Fn(u16, &Value) -> bool,
    ) -> Option<(u16, Value)> {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Some((status, body)) = self.call("GET", path, None)
                && done(status, &body)
            {
                return Some((status, body));
            }
            assert!(
                self.still_running(),
                "{} exited:\n{}",
                self.process.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }
}

fn start_message(update_id: i64, user: i64) -> Value {
    json!({"update_id": update_id, "message": {"message_id": update_id, "date": 1_700_000_000,
        "chat": {"id": user, "type": "private", "first_name": "Ann"},
        "from": {"id": user, "is_bot": false, "first_name": "Ann"},
        "text": "/start", "entities": [{"type": "bot_command", "offset": 0, "length": 6}]}})
}

async fn wait_for_text(api: &FakeBotApi, chat: i64, prefix: &str) -> bool {
    api.wait_for(
        |calls| {
            calls.iter().any(|c| {
                c.method == "sendMessage"
                    && c.chat_id == Some(chat)
                    && c.params["text"]
                        .as_str()
                        .is_some_and(|t| t.starts_with(prefix))
            })
        },
        PATIENCE,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_sends_through_the_running_bot() {
    let api = FakeBotApi::start(FakeConfig::default()).await.unwrap();
    let mut serve = Serve::start(&api.base_url());
    let ready = serve
        .wait_until("/health/ready", |status, _| status == 200)
        .await;
    assert!(ready.is_some(), "never ready:\n{}", serve.log());

    api.push_update(start_message(1, 42));
    assert!(wait_for_text(&api, 42, "Welcome").await, "{}", serve.log());
    let (status, body) = serve
        .call(
            "POST",
            "/api/v1/messages",
            Some(json!({"user_id": 42, "text": "Maintenance at noon"})),
        )
        .expect("the admin listener answers");
    assert_eq!(status, 202, "{body}\n{}", serve.log());
    assert!(
        wait_for_text(&api, 42, "Maintenance at noon").await,
        "the admin's message never reached Telegram:\n{}",
        serve.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_bot_api_is_waited_for_then_served() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut serve = Serve::start(&url);

    // Alive, and not ready because of Telegram alone once the models are in.
    let alive = serve.wait_until("/health", |status, _| status == 200).await;
    assert!(alive.is_some(), "no /health:\n{}", serve.log());
    let (status, body) = serve
        .wait_until("/health/ready", |_, body| body["checks"]["models"] == "ok")
        .await
        .unwrap_or_else(|| panic!("the models never loaded:\n{}", serve.log()));
    assert_eq!(status, 503, "{body}");
    assert_ne!(body["checks"]["telegram"], "ok", "{body}");
    assert_eq!(body["checks"]["store"], "ok", "{body}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(serve.still_running(), "serve gave up:\n{}", serve.log());

    // Telegram comes up on that address: the bot connects and serves.
    let api = FakeBotApi::bind(
        format!("127.0.0.1:{port}").parse().unwrap(),
        FakeConfig::default(),
    )
    .await
    .expect("the fake binds the port serve is waiting for");
    let ready = serve
        .wait_until("/health/ready", |status, _| status == 200)
        .await;
    assert!(ready.is_some(), "never ready:\n{}", serve.log());
    api.push_update(start_message(1, 7));
    assert!(wait_for_text(&api, 7, "Welcome").await, "{}", serve.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_names_the_models_while_they_load() {
    // Enough FAQ questions that embedding them at start takes a while.
    let faq: String = (0..150)
        .map(|i| {
            format!(
                "[[faq]]\nquestion = \"How do I change setting number {i} of my account?\"\n\
                 answer = \"Open the settings page and look for item {i}.\"\n\n"
            )
        })
        .collect();
    let url = format!("http://127.0.0.1:{}", free_port());
    let mut serve = Serve::with_config(&url, &faq);
    let loading = serve
        .wait_until("/health/ready", |_, body| {
            body["checks"]["models"]
                .as_str()
                .is_some_and(|m| m.contains("loading"))
        })
        .await;
    assert!(
        loading.is_some(),
        "never saw the models loading:\n{}",
        serve.log()
    );
    let (status, body) = serve
        .wait_until("/health/ready", |_, body| body["checks"]["models"] == "ok")
        .await
        .unwrap_or_else(|| panic!("the models never loaded:\n{}", serve.log()));
    assert_eq!(status, 503, "Telegram is still unreachable: {body}");
}

#[test]
fn models_that_cannot_load_end_the_start_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir(&models).unwrap();
    for file in ["spam.gguf", "sentiment.gguf"] {
        std::fs::write(models.join(file), b"GGUF but not really").unwrap();
    }
    let config = format!("[models]\ndir = \"{}\"\n", models.display());
    let url = format!("http://127.0.0.1:{}", free_port());
    let mut serve = Serve::with_config(&url, &config);
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = serve.process.exited() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "serve kept waiting:\n{}",
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(1), "{}", serve.log());
    let log = serve.log();
    let last = log.lines().last().unwrap_or_default();
    assert!(last.starts_with("edgebot: models:"), "{log}");
}
