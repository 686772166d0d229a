//! Raw bytes into the admin listener, as anyone who can reach it would send them: the
//! HTTP parser, the route tables of the API and the panel, bearer and cookie parsing,
//! JSON and form bodies, sign-in with its throttle, and the store behind them.
//!
//! The rig is wired like `serve` wires the listener, once per process: a real store in a
//! temporary directory (unlinked at once), one owner account `fuzz`, the static API
//! token `fuzz-token` (the seeds use both), a few users to act on, and an outbox whose
//! sends go to the fake Bot API with a token it refuses, so they end at once. Each input
//! is served on one in-memory connection and the run waits for its answers.

#![no_main]

#[path = "http_exchange.rs"]
mod http_exchange;

use bytes::Bytes;
use edgebot::app::runtime::Sending;
use edgebot::auth::{self, Actor};
use edgebot::botapi::Client;
use edgebot::calendar::UnixSecs;
use edgebot::config::{Config, Secret};
use edgebot::fake::botapi::{FakeBotApi, FakeConfig};
use edgebot::http::{AdminState, serve_admin_connection};
use edgebot::store::Store;
use edgebot::store::records::{AdminRole, UserDelta};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::runtime::Runtime;

/// An input that needs longer than this to be served is a hang worth reporting.
const EXEC_TIMEOUT: Duration = Duration::from_secs(20);

struct Rig {
    runtime: Runtime,
    state: Arc<AdminState>,
    api: FakeBotApi,
}

static RIG: LazyLock<Rig> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (state, api) = runtime.block_on(async {
        let api = FakeBotApi::start(FakeConfig {
            valid_tokens: vec!["1:not-the-fuzzers-token".to_owned()],
            ..FakeConfig::default()
        })
        .await
        .expect("the fake Bot API starts");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = Store::open(dir.path()).expect("the store opens");
        drop(dir);
        auth::add_account(
            &store,
            "fuzz",
            AdminRole::Owner,
            "fuzz password 1".into(),
            &Actor::cli(),
        )
        .await
        .expect("the account is added");
        for id in 1..=3 {
            store
                .update_user(UserDelta::new(id, UnixSecs::now()))
                .await
                .expect("a user is written");
        }
        let mut config = Config::default();
        config.admin.token = Some(Secret::new("fuzz-token"));
        let client = Client::new(
            &api.base_url(),
            &Secret::new("1:fuzz"),
            Duration::from_secs(5),
        )
        .expect("a client");
        let sending = Sending::start(&config, store, client).expect("the outbox reads");
        let state = sending.admin_state(&config).await.expect("the admin state");
        (state, api)
    });
    Rig {
        runtime,
        state,
        api,
    }
});

fuzz_target!(|data: &[u8]| {
    let rig = &*RIG;
    rig.runtime.block_on(async {
        tokio::time::timeout(EXEC_TIMEOUT, async {
            let response =
                http_exchange::exchange(|io| serve_admin_connection(rig.state.clone(), io), data)
                    .await;
            if !response.is_empty() {
                assert!(
                    response.starts_with(b"HTTP/1."),
                    "{:?}",
                    Bytes::from(response)
                );
            }
        })
        .await
        .expect("an input is served in time");
    });
    drop(rig.api.take_calls());
});
