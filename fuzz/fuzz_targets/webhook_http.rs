//! Raw bytes into the webhook listener, as a client on the network would send them: the
//! HTTP parser, the secret check, the body limit, the inbox and the engine behind it.
//!
//! Everything is wired like `serve` does, once per process: a real store in a temporary
//! directory, the engine, a dispatcher, an outbox and the inbox. The outbox talks to the
//! fake Bot API with a token it refuses, so every send ends at once in a permanent 401
//! and is dropped: nothing is retried and nothing piles up between runs. One
//! current-thread runtime runs it all; each input is served on one in-memory connection
//! and the run waits until the update and its sends are settled, so no work outlives it.

#![no_main]

#[path = "http_exchange.rs"]
mod http_exchange;

use bytes::Bytes;
use edgebot::app::runtime::Sending;
use edgebot::botapi::Client;
use edgebot::config::{Config, Secret};
use edgebot::fake::botapi::{FakeBotApi, FakeConfig};
use edgebot::store::Store;
use edgebot::transport::webhook::WebhookServer;
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::runtime::Runtime;

/// The path and secret the seeds and the dictionary use.
const PATH: &str = "/hook";
const SECRET: &str = "s3cret";
/// Small enough that the fuzzer reaches the 413 paths.
const MAX_BODY_BYTES: usize = 16 * 1024;
/// An input that needs longer than this to be served is a hang worth reporting.
const EXEC_TIMEOUT: Duration = Duration::from_secs(20);

struct Rig {
    runtime: Runtime,
    server: Arc<WebhookServer>,
    bot: edgebot::app::runtime::Runtime,
    api: FakeBotApi,
}

static RIG: LazyLock<Rig> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (server, bot, api) = runtime.block_on(async {
        // The only token the fake accepts is not ours: every call gets a permanent 401.
        let api = FakeBotApi::start(FakeConfig {
            valid_tokens: vec!["1:not-the-fuzzers-token".to_owned()],
            ..FakeConfig::default()
        })
        .await
        .expect("the fake Bot API starts");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = Store::open(dir.path()).expect("the store opens");
        // The open file outlives its directory entry, so nothing is left on disk when the
        // process ends, however it ends.
        drop(dir);
        let mut config = Config::default();
        config.limits.inbound.enabled = false;
        let client = Client::new(
            &api.base_url(),
            &Secret::new("1:fuzz"),
            Duration::from_secs(5),
        )
        .expect("a client");
        let bot = Sending::start(&config, store, client)
            .expect("the outbox of a new store reads")
            .runtime(&config, Some("edgebot_test_bot".to_owned()), None)
            .expect("the default routes compile");
        let inbox = bot.inbox.clone();
        let server =
            WebhookServer::new(PATH.to_owned(), Secret::new(SECRET), MAX_BODY_BYTES, inbox);
        (server, bot, api)
    });
    Rig {
        runtime,
        server,
        bot,
        api,
    }
});

fuzz_target!(|data: &[u8]| {
    let rig = &*RIG;
    rig.runtime.block_on(async {
        tokio::time::timeout(EXEC_TIMEOUT, async {
            let response =
                http_exchange::exchange(|io| rig.server.clone().serve_connection(io), data).await;
            if !response.is_empty() {
                assert!(
                    response.starts_with(b"HTTP/1."),
                    "{:?}",
                    Bytes::from(response)
                );
            }
            rig.bot.drained().await;
        })
        .await
        .expect("an input is served and settled in time");
    });
    // The fake records every call; forget them so memory stays flat.
    drop(rig.api.take_calls());
});
