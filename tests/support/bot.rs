//! `serve` in this process, on loopback: its webhook, the fake Bot API and a fresh store,
//! for tests that drive a whole bot with updates and read what it sent.

use crate::loopback::{free_port, request};
use edgebot::config::{Config, Secret};
use edgebot::fake::botapi::{FakeBotApi, FakeConfig};
use edgebot::shutdown;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

pub const WAIT: Duration = Duration::from_secs(10);

/// `serve` in this process with a webhook, the given services and routes, on a fresh
/// store.
pub struct Bot {
    pub api: FakeBotApi,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    trigger: shutdown::Trigger,
    server: tokio::task::JoinHandle<Result<(), edgebot::app::serve::ServeError>>,
    _data: tempfile::TempDir,
}

impl Bot {
    pub async fn start(toml: &str) -> Bot {
        Bot::start_with(toml, |_| {}).await
    }

    /// [`Bot::start`], with a last change to the config before it runs.
    pub async fn start_with(toml: &str, tweak: impl FnOnce(&mut Config)) -> Bot {
        let api = FakeBotApi::start(FakeConfig::default()).await.unwrap();
        let data = tempfile::tempdir().unwrap();
        let listen = free_port();
        let admin = free_port();
        let mut config = Config::parse(toml, Path::new("services.toml")).unwrap();
        config.bot.token = Some(Secret::new("1:token"));
        config.telegram.api_url = api.base_url();
        config.telegram.webhook_url = Some(format!("http://{listen}/hook"));
        config.telegram.webhook_secret = Some(Secret::new("s3cret"));
        config.telegram.listen = listen;
        config.admin.listen = admin;
        config.storage.data_dir = data.path().to_owned();
        config.limits.inbound.enabled = false;
        config.limits.outbound.enabled = false;
        config.models.enabled = false;
        tweak(&mut config);
        let (trigger, stop) = shutdown::channel();
        let server = tokio::spawn({
            let config = config.clone();
            async move { edgebot::app::serve::serve(&config, stop).await }
        });
        assert!(
            api.wait_for(|c| c.iter().any(|c| c.method == "setWebhook"), WAIT)
                .await
        );
        Bot {
            api,
            listen,
            admin,
            trigger,
            server,
            _data: data,
        }
    }

    pub async fn post(&self, update: &Value) -> u16 {
        let secret = [("x-telegram-bot-api-secret-token", "s3cret")];
        request(
            self.listen,
            "POST",
            "/hook",
            &secret,
            update.to_string().as_bytes(),
        )
        .await
        .0
    }

    /// The texts sent to `chat`, in order.
    pub fn texts(&self, chat: i64) -> Vec<String> {
        self.api
            .delivered_calls("sendMessage")
            .iter()
            .filter(|c| c.chat_id == Some(chat))
            .map(|c| c.params["text"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    pub async fn wait_for_texts(&self, chat: i64, n: usize) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.texts(chat).len() < n && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.texts(chat)
    }

    pub async fn metrics(&self) -> String {
        request(self.admin, "GET", "/metrics", &[], b"").await.1
    }

    pub async fn stop(self) {
        self.trigger.fire();
        tokio::time::timeout(Duration::from_secs(15), self.server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

pub fn message(update_id: i64, chat: i64, text: &str) -> Value {
    let mut message = json!({"message_id": update_id * 10, "date": 1,
        "chat": {"id": chat, "type": "private"}, "from": {"id": chat, "first_name": "Ann", "username": "ann"},
        "text": text});
    if text.starts_with('/') {
        let length = text.split_whitespace().next().unwrap_or("").len();
        message["entities"] = json!([{"type": "bot_command", "offset": 0, "length": length}]);
    }
    json!({"update_id": update_id, "message": message})
}

/// A press of a button under message `message_id` of the bot's.
pub fn button(update_id: i64, chat: i64, message_id: i64, data: &str) -> Value {
    json!({"update_id": update_id, "callback_query": {"id": format!("cq-{update_id}"),
        "from": {"id": chat, "first_name": "Ann"}, "chat_instance": "ci", "data": data,
        "message": {"message_id": message_id, "date": 1, "chat": {"id": chat, "type": "private"}, "text": "Pick one"}}})
}
