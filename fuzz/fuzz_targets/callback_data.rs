//! The router's lookups on arbitrary strings, over the table built from the example
//! config: callback data comes from any client that can press (or forge) a button, and
//! commands and texts from anyone who can write to the bot.

#![no_main]

use edgebot::config::{self, Config};
use edgebot::engine::router::{Incoming, Router};
use edgebot::telegram::types::ChatKind;
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::LazyLock;

/// Built once: the table is immutable after start-up, as in the bot.
static ROUTER: LazyLock<Router> = LazyLock::new(|| {
    let config = Config::parse(config::EXAMPLE, Path::new("edgebot.example.toml"))
        .expect("the example config parses");
    Router::from_config(&config).expect("the example config routes")
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = ROUTER.route(Incoming::Callback(text));
    // Commands and texts always find a route in a private chat: the fallback.
    assert!(ROUTER.route(Incoming::Command(text)).is_some());
    assert!(
        ROUTER
            .route(Incoming::Text {
                text,
                chat: ChatKind::Private,
            })
            .is_some()
    );
    let _ = ROUTER.route(Incoming::Text {
        text,
        chat: ChatKind::Supergroup,
    });
});
