//! The webhook listener of `serve`, in process, over real HTTP: the secret is required,
//! bodies over the limit are refused, garbage is acknowledged and kept, a redelivered
//! update is answered once, and shutdown is clean.

#[path = "support/loopback.rs"]
mod loopback;

use edgebot::config::{Config, Secret};
use edgebot::fake::botapi::{FakeBotApi, FakeConfig};
use edgebot::shutdown;
use edgebot::store::Store;
use loopback::{free_port, request};
use std::net::SocketAddr;
use std::time::Duration;

/// `serve` in this process with its webhook at `/hook` (secret `s3cret`), limits off, on
/// a fresh store; resolves once the webhook is registered with the fake.
struct Serving {
    api: FakeBotApi,
    data: tempfile::TempDir,
    listen: SocketAddr,
    admin: SocketAddr,
    trigger: shutdown::Trigger,
    server: tokio::task::JoinHandle<Result<(), edgebot::app::serve::ServeError>>,
}

async fn serving() -> Serving {
    let api = FakeBotApi::start(FakeConfig::default()).await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let listen = free_port();
    let admin = free_port();
    let mut config = Config::default();
    config.bot.token = Some(Secret::new("1:token"));
    config.telegram.api_url = api.base_url();
    config.telegram.webhook_url = Some(format!("http://{listen}/hook"));
    config.telegram.webhook_secret = Some(Secret::new("s3cret"));
    config.telegram.listen = listen;
    config.telegram.max_body_bytes = 4096;
    config.admin.listen = admin;
    config.storage.data_dir = data.path().to_owned();
    config.limits.inbound.enabled = false;
    config.limits.outbound.enabled = false;

    let (trigger, stop) = shutdown::channel();
    let server = tokio::spawn({
        let config = config.clone();
        async move { edgebot::app::serve::serve(&config, stop).await }
    });
    assert!(
        api.wait_for(
            |c| c.iter().any(|c| c.method == "setWebhook"),
            Duration::from_secs(10)
        )
        .await
    );
    Serving {
        api,
        data,
        listen,
        admin,
        trigger,
        server,
    }
}

/// The value of an unlabelled metric on the admin listener.
async fn metric(admin: SocketAddr, name: &str) -> f64 {
    let (status, text) = request(admin, "GET", "/metrics", &[], b"").await;
    assert_eq!(status, 200);
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_guards_its_door_and_loses_nothing() {
    let Serving {
        api,
        data,
        listen,
        admin,
        trigger,
        server,
    } = serving().await;
    let webhook = api.webhook().expect("setWebhook took effect");
    assert_eq!(webhook.secret_token.as_deref(), Some("s3cret"));
    let allowed = webhook.allowed_updates.unwrap();
    assert!(
        allowed.contains(&"message".to_owned()) && allowed.contains(&"callback_query".to_owned())
    );

    let update = br#"{"update_id":77,"message":{"message_id":1,"date":1,"chat":{"id":5,"type":"private"},"from":{"id":5,"first_name":"Ann"},"text":"/start","entities":[{"type":"bot_command","offset":0,"length":6}]}}"#;
    let secret = [("x-telegram-bot-api-secret-token", "s3cret")];
    let wrong = [("x-telegram-bot-api-secret-token", "s3cres")];
    assert_eq!(request(listen, "POST", "/hook", &[], update).await.0, 401);
    assert_eq!(
        request(listen, "POST", "/hook", &wrong, update).await.0,
        401
    );
    assert_eq!(
        request(listen, "POST", "/other", &secret, update).await.0,
        404
    );
    assert_eq!(request(listen, "GET", "/hook", &secret, b"").await.0, 405);
    assert_eq!(
        request(listen, "POST", "/hook", &secret, &vec![b' '; 5000])
            .await
            .0,
        413
    );
    assert_eq!(
        request(listen, "POST", "/hook", &secret, b"{not json")
            .await
            .0,
        200
    );
    assert_eq!(
        request(listen, "POST", "/hook", &secret, update).await.0,
        200
    );
    assert_eq!(
        request(listen, "POST", "/hook", &secret, update).await.0,
        200,
        "a redelivery"
    );

    assert!(
        api.wait_for(
            |c| c.iter().any(|c| c.method == "sendMessage"),
            Duration::from_secs(10)
        )
        .await
    );
    let (status, metrics) = request(admin, "GET", "/metrics", &[], b"").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("edgebot_updates_malformed_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("edgebot_updates_duplicate_total 1"),
        "{metrics}"
    );

    trigger.fire();
    tokio::time::timeout(Duration::from_secs(15), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        api.delivered_calls("sendMessage").len(),
        1,
        "answered exactly once"
    );

    let store = Store::open(data.path()).unwrap();
    let stats = store.stats().unwrap();
    assert_eq!(stats.processed, 1, "only the authorised update was stored");
    assert_eq!(stats.inbox, 0);
    let kept = store.malformed(10).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].1.raw, b"{not json");
    assert_eq!(store.user(5).unwrap().unwrap().message_count, 1);
}

/// An update is handled before the webhook answers, so one commit keeps it and applies
/// it: answered updates are already counted, and each costs one commit for its effects
/// and one (lazy, no fsync) for clearing its sent reply from the outbox — not a third for
/// an inbox record in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_is_handled_and_committed_once_before_its_answer() {
    let serving = serving().await;
    let commits = "edgebot_store_commit_duration_seconds_count";
    let secret = [("x-telegram-bot-api-secret-token", "s3cret")];
    let before = metric(serving.admin, commits).await;
    let updates = 5;
    for id in 1..=updates {
        let update = format!(
            r#"{{"update_id":{id},"message":{{"message_id":{id},"date":1,"chat":{{"id":9,"type":"private"}},"from":{{"id":9,"first_name":"Ann"}},"text":"hello"}}}}"#
        );
        let (status, _) =
            request(serving.listen, "POST", "/hook", &secret, update.as_bytes()).await;
        assert_eq!(status, 200);
        // Answered means handled: the reply is committed (queued or already sent).
        let queued = metric(serving.admin, "edgebot_outbox_depth").await;
        let sent = serving.api.delivered_calls("sendMessage").len();
        assert!(
            queued >= 1.0 || sent == id,
            "update {id} answered before its reply was committed ({queued} queued, {sent} sent)"
        );
        assert!(
            serving
                .api
                .wait_for(
                    |c| c.iter().filter(|c| c.method == "sendMessage").count() == id,
                    Duration::from_secs(10)
                )
                .await
        );
        tokio::time::timeout(Duration::from_secs(10), async {
            while metric(serving.admin, "edgebot_outbox_depth").await > 0.0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the sent reply leaves the outbox");
    }
    let after = metric(serving.admin, commits).await;
    assert_eq!(
        after - before,
        2.0 * updates as f64,
        "commits for {updates} updates"
    );

    serving.trigger.fire();
    tokio::time::timeout(Duration::from_secs(15), serving.server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let store = Store::open(serving.data.path()).unwrap();
    assert_eq!(
        store.user(9).unwrap().unwrap().message_count,
        updates as u64
    );
    assert_eq!(store.stats().unwrap().inbox, 0);
}

#[tokio::test]
async fn a_refused_token_stops_serve_with_a_clear_error() {
    let api = FakeBotApi::start(FakeConfig {
        valid_tokens: vec!["1:right".into()],
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.bot.token = Some(Secret::new("1:wrong"));
    config.telegram.api_url = api.base_url();
    config.storage.data_dir = data.path().to_owned();
    config.admin.listen = free_port();
    let (_trigger, stop) = shutdown::channel();
    let err = edgebot::app::serve::serve(&config, stop).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    assert!(err.to_string().contains("EDGEBOT_TOKEN"), "{err}");
    assert!(
        !err.to_string().contains("1:wrong"),
        "the token is not printed"
    );
}
