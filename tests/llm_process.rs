//! A conversation in the real `edgebot serve` process, killed with `kill -9` while the
//! model is still streaming its answer. The update was kept in the inbox before the
//! call, so the restart asks again with the same prompt and the user gets exactly one
//! final answer. The provider's key comes from the environment, and neither the
//! question, the answer nor the key reaches the log.

// Shared with other test crates; this one uses part of it.
#[allow(dead_code)]
#[path = "support/binary.rs"]
mod binary;

use edgebot::fake::botapi::{FakeBotApi, FakeConfig};
use edgebot::fake::llm::{FakeLlm, FakeLlmConfig};
use serde_json::{Value, json};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(60);
/// Words that must never appear in a log line.
const PRIVATE: &str = "my-secret-words-9d2e";
const KEY: &str = "sk-test-key-5b7a";

fn update(update_id: i64, text: &str) -> Value {
    json!({"update_id": update_id, "message": {"message_id": update_id, "date": 1,
        "chat": {"id": 7, "type": "private"}, "from": {"id": 7, "first_name": "Ann"}, "text": text}})
}

struct Harness {
    dir: tempfile::TempDir,
    api: FakeBotApi,
    llm: FakeLlm,
    logs: binary::Logs,
}

impl Harness {
    fn spawn(&mut self, port: u16) -> binary::Running {
        let config = self.dir.path().join("edgebot.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[limits.inbound]
enabled = false

[llm]
draft_interval_ms = 100

[[llm.providers]]
name = "main"
kind = "openai"
base_url = "{}"
model = "fake-model"
api_key_env = "TEST_LLM_KEY"
timeout_ms = 60000
idle_timeout_ms = 60000

[[personalities]]
name = "friend"
system_prompt = "Be brief."
provider = "main"

[fallback]
llm = "friend"
"#,
                self.llm.base_url()
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
        .env("TEST_LLM_KEY", KEY)
        .spawn()
        .expect("edgebot serve starts");
        binary::Running {
            name: "edgebot serve",
            child,
        }
    }

    fn answers(&self) -> Vec<String> {
        self.api
            .delivered_calls("sendMessage")
            .iter()
            .map(|c| c.params["text"].as_str().unwrap_or("").to_owned())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_mid_answer_replays_the_question_and_the_user_gets_one_answer() {
    let llm = FakeLlm::start(FakeLlmConfig {
        api_key: Some(KEY.into()),
        split_chunks: true,
        // About 1.5 s per answer: time to see a draft and kill the bot mid-stream.
        chunk_delay: Duration::from_millis(150),
        ..FakeLlmConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let logs = binary::Logs::new(dir.path());
    let mut harness = Harness {
        dir,
        api: FakeBotApi::start(FakeConfig::default()).await.unwrap(),
        llm,
        logs,
    };
    let port = binary::free_port();
    let mut first = harness.spawn(port);
    binary::webhook_set(&harness.api, 1, PATIENCE, &harness.logs).await;

    let question = update(1, &format!("hello {PRIVATE}"));
    let status = tokio::task::spawn_blocking(move || binary::post_update(port, &question))
        .await
        .unwrap();
    assert_eq!(status, 200, "{}", harness.logs.all());
    let drafted = harness
        .api
        .wait_for(
            |c| c.iter().any(|c| c.method == "sendMessageDraft"),
            PATIENCE,
        )
        .await;
    assert!(drafted, "a draft while it streams\n{}", harness.logs.all());
    first.child.kill().expect("SIGKILL");
    first.child.wait().unwrap();
    assert!(harness.answers().is_empty(), "killed before the answer");

    let _second = harness.spawn(port);
    binary::webhook_set(&harness.api, 2, PATIENCE, &harness.logs).await;
    let next = update(2, "and then?");
    let status = tokio::task::spawn_blocking(move || binary::post_update(port, &next))
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
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answers = harness.answers();
    assert_eq!(
        answers,
        [
            format!("You said: hello {PRIVATE}"),
            "You said: and then?".to_owned()
        ],
        "one final answer each"
    );

    let requests: Vec<_> = harness
        .llm
        .requests()
        .into_iter()
        .filter(|r| r.status == 200)
        .collect();
    assert_eq!(requests.len(), 3, "the question, its replay, the next one");
    assert_eq!(
        requests[0].body["messages"], requests[1].body["messages"],
        "the replay asks the same"
    );
    // The replayed exchange is in the history of the next question, once.
    let history = requests[2].body["messages"].as_array().unwrap();
    assert_eq!(history.len(), 4, "{history:?}");

    let logs = harness.logs.all();
    assert!(!logs.is_empty());
    for secret in [PRIVATE, KEY, "and then?"] {
        assert!(
            !logs.contains(secret),
            "`{secret}` leaked into the log:\n{logs}"
        );
    }
}
