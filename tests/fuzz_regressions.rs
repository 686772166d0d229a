//! What the fuzz targets (fuzz/) found, kept as ordinary tests so `cargo test` guards it
//! without a nightly toolchain.
//!
//! `webhook_http`: the first version of the target closed its sending side right after
//! each request and got no answers: the listener does not support half-closed
//! connections, and an end of input while a request is handled ends the connection and
//! drops the handler. Dropped after its inbox commit was queued and before the dispatch,
//! the handler leaves the update committed but never handled: Telegram (or a proxy)
//! giving up on a slow answer is enough. The redelivery is then answered as a duplicate
//! and not dispatched either, so the update waits in the inbox for the next restart.

use edgebot::app::runtime::Sending;
use edgebot::botapi::Client;
use edgebot::config::{Config, Secret};
use edgebot::fake::botapi::{FakeBotApi, FakeConfig};
use edgebot::store::Store;
use edgebot::transport::webhook::WebhookServer;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "s3cret";

/// One webhook request for `body`.
fn request(body: &str) -> Vec<u8> {
    format!(
        "POST /hook HTTP/1.1\r\nhost: bot.example.com\r\nx-telegram-bot-api-secret-token: {SECRET}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_whose_connection_dropped_mid_request_is_still_handled() {
    let api = FakeBotApi::start(FakeConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut config = Config::default();
    config.limits.inbound.enabled = false;
    let client = Client::new(
        &api.base_url(),
        &Secret::new("1:test"),
        Duration::from_secs(5),
    )
    .unwrap();
    let runtime = Sending::start(&config, store.clone(), client)
        .unwrap()
        .runtime(&config, Some("edgebot_test_bot".into()), None)
        .unwrap();
    let inbox = runtime.inbox.clone();
    let server = WebhookServer::new("/hook".into(), Secret::new(SECRET), 1 << 20, inbox);
    let update = r#"{"update_id":7,"message":{"message_id":1,"date":1,"chat":{"id":42,"type":"private"},"from":{"id":42,"is_bot":false,"first_name":"Ada"},"text":"/start","entities":[{"type":"bot_command","offset":0,"length":6}]}}"#;

    // The store is busy (a slow group commit), so the handler waits for its inbox commit
    // while the connection drops: as when Telegram gives up on a slow answer.
    let busy = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .write(|_| {
                    std::thread::sleep(Duration::from_millis(400));
                    Ok(())
                })
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (mut cut, connection) = tokio::io::duplex(64 * 1024);
    let served = tokio::spawn(server.clone().serve_connection(connection));
    cut.write_all(&request(update)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    cut.shutdown().await.unwrap();
    let mut unanswered = Vec::new();
    let _ = cut.read_to_end(&mut unanswered).await;
    served.await.unwrap();
    busy.await.unwrap().unwrap();
    // The commit went ahead all the same: it runs on the store's writer thread.
    tokio::time::timeout(Duration::from_secs(5), async {
        while store.poll_offset().unwrap() < 8 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("update 7 reached the store");
    assert!(
        unanswered.is_empty(),
        "the cut-off request was not answered"
    );

    // Not acknowledged, so Telegram delivers it again and waits for the answer.
    let (mut telegram, connection) = tokio::io::duplex(64 * 1024);
    let served = tokio::spawn(server.clone().serve_connection(connection));
    telegram.write_all(&request(update)).await.unwrap();
    let mut answer = Vec::new();
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        assert_ne!(telegram.read_buf(&mut answer).await.unwrap(), 0);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    drop(telegram);
    served.await.unwrap();

    // The first delivery's work outlived its connection: the update gets handled.
    let handled = tokio::time::timeout(Duration::from_secs(10), async {
        while !store.pending_inbox().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        runtime.drained().await;
    })
    .await;
    assert!(
        handled.is_ok(),
        "update 7 was committed, acknowledged as a duplicate and never handled"
    );
    assert!(
        !api.delivered_calls("sendMessage").is_empty(),
        "/start was answered"
    );
}
