//! A service route in the real `edgebot serve` process: the webhook is answered while
//! the service still holds its answer; a `kill -9` then loses nothing, because the
//! update was kept in the inbox before the call, and the replay after the restart
//! reaches the service with the same idempotency key. The services' secret header comes
//! from the environment, and nothing the user wrote reaches the log — not even when a
//! service answers outside the contract.

// Shared with other test crates; this one uses part of each.
#[allow(dead_code)]
#[path = "support/binary.rs"]
mod binary;
#[allow(dead_code)]
#[path = "support/service.rs"]
mod service;

use edgebot::fake::botapi::{FakeBotApi, FakeConfig};
use serde_json::{Value, json};
use service::{Behaviour, LoopbackService, says};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(60);
/// A text that must never appear in a log line.
const PRIVATE: &str = "my-secret-words-4f1c";

fn update(update_id: i64, text: &str) -> Value {
    json!({"update_id": update_id, "message": {"message_id": update_id, "date": 1,
        "chat": {"id": 7, "type": "private"}, "from": {"id": 7, "first_name": "Ann"}, "text": text}})
}

struct Harness {
    dir: tempfile::TempDir,
    api: FakeBotApi,
    service_url: String,
    logs: binary::Logs,
}

impl Harness {
    /// `serve` with its webhook on `port`; its stderr goes to a log file per run.
    fn spawn(&mut self, port: u16) -> binary::Running {
        let config = self.dir.path().join("edgebot.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[limits.inbound]
enabled = false

[[services]]
name = "chat"
url = "{}"
timeout_ms = 60000
headers_from_env = {{ "Authorization" = "CHAT_SERVICE_AUTH" }}

[fallback]
service = "chat"
"#,
                self.service_url
            ),
        )
        .unwrap();
        let log = self.logs.next();
        let child = binary::serve(
            &config,
            &self.dir.path().join("data"),
            &self.api.base_url(),
            port,
            log,
        )
        .env("CHAT_SERVICE_AUTH", "Bearer service-token")
        .spawn()
        .expect("edgebot serve starts");
        binary::Running {
            name: "edgebot serve",
            child,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_during_a_service_call_replays_it_with_the_same_key_and_logs_no_text() {
    let service = LoopbackService::start(Behaviour::Json(says("unused"))).await;
    service.script([Behaviour::Held(says("never sent"))]);
    let dir = tempfile::tempdir().unwrap();
    let logs = binary::Logs::new(dir.path());
    let mut harness = Harness {
        dir,
        api: FakeBotApi::start(FakeConfig::default()).await.unwrap(),
        service_url: service.url(),
        logs,
    };
    let port = binary::free_port();
    let mut first = harness.spawn(port);
    binary::webhook_set(&harness.api, 1, PATIENCE, &harness.logs).await;

    // Answered 200 while the service holds its answer: the update is in the inbox.
    let held = update(1, &format!("hello {PRIVATE}"));
    let status = tokio::task::spawn_blocking(move || binary::post_update(port, &held))
        .await
        .unwrap();
    assert_eq!(status, 200, "{}", harness.logs.all());
    assert!(
        service.wait_for(1, PATIENCE).await,
        "{}",
        harness.logs.all()
    );
    first.child.kill().expect("SIGKILL");
    first.child.wait().unwrap();
    assert!(harness.api.calls_for("sendMessage").is_empty());

    // The restart replays the kept update; the service answers it this time, and the
    // next update gets a response outside the contract.
    service.script([
        Behaviour::Json(says("after the restart")),
        Behaviour::Garbage,
    ]);
    let _second = harness.spawn(port);
    binary::webhook_set(&harness.api, 2, PATIENCE, &harness.logs).await;
    assert!(
        service.wait_for(2, PATIENCE).await,
        "{}",
        harness.logs.all()
    );
    let invalid = update(2, &format!("again {PRIVATE}"));
    let status = tokio::task::spawn_blocking(move || binary::post_update(port, &invalid))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let replied = harness
        .api
        .wait_for(
            |calls| calls.iter().filter(|c| c.method == "sendMessage").count() >= 2,
            PATIENCE,
        )
        .await;
    assert!(replied, "{}", harness.logs.all());
    let texts: Vec<String> = harness
        .api
        .delivered_calls("sendMessage")
        .iter()
        .map(|c| c.params["text"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(texts[0], "after the restart");
    assert!(texts[1].starts_with("Sorry"), "{texts:?}");

    let seen = service.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].idempotency_key.as_deref(), Some("1:chat"));
    assert_eq!(
        seen[0].idempotency_key, seen[1].idempotency_key,
        "the replay is recognisable"
    );
    assert_ne!(seen[0].request_id, seen[1].request_id);
    assert_eq!(seen[1].body["update"]["text"], format!("hello {PRIVATE}"));
    assert!(
        seen.iter()
            .all(|s| s.authorization.as_deref() == Some("Bearer service-token")),
        "the secret header from the environment"
    );

    let logs = harness.logs.all();
    let invalid_id = seen[2].request_id.clone().unwrap();
    assert!(
        logs.lines()
            .any(|l| l.contains(&invalid_id) && l.contains("invalid_response")),
        "the invalid response is logged with its request id:\n{logs}"
    );
    assert!(!logs.contains(PRIVATE), "user text in the log:\n{logs}");
    assert!(
        !logs.contains("service-token"),
        "a secret in the log:\n{logs}"
    );
}
