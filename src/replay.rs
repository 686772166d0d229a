//! `edgebot replay FILE.jsonl`: recorded updates through the bot, against the built-in
//! fake Bot API, printing the API calls the bot makes as JSON lines.
//!
//! A self-hoster's way to try a config before going live: the same engine, router and
//! sender as `serve`, a throwaway store, and no network. Time is compressed, so the
//! inbound limit is off (a recording replays in milliseconds what users sent over hours);
//! outbound flood limits are off for the same reason.

use crate::config::{Config, Secret};
use crate::engine::Engine;
use crate::engine::router::RouterError;
use crate::engine::sender::Outbox;
use crate::store::{Finished, Store, StoreError};
use crate::telegram::client::{ApiError, Client};
use crate::telegram::fake::{FakeBotApi, FakeConfig};
use crate::telegram::types::Update;
use crate::telemetry::health::Health;
use crate::telemetry::metrics::Metrics;
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("replay: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Router(#[from] RouterError),
    #[error("replay: {0}")]
    Api(#[from] ApiError),
}

/// What a replay did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub updates: usize,
    pub unparsable: usize,
    pub calls: usize,
}

pub async fn replay(
    config: &Config,
    input: impl BufRead,
    out: &mut impl Write,
) -> Result<Summary, ReplayError> {
    let api = FakeBotApi::start(FakeConfig::default()).await?;
    let scratch = std::env::temp_dir().join(format!(
        "edgebot-replay-{}-{}",
        std::process::id(),
        crate::store::now_ms()
    ));
    let result = run(config, &api, &scratch, input, out).await;
    api.shutdown().await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

async fn run(
    config: &Config,
    api: &FakeBotApi,
    scratch: &std::path::Path,
    input: impl BufRead,
    out: &mut impl Write,
) -> Result<Summary, ReplayError> {
    let store = Store::open(scratch)?;
    let mut config = config.clone();
    config.limits.inbound.enabled = false;
    let client = Client::new(
        &api.base_url(),
        &Secret::new("0:replay"),
        Duration::from_secs(10),
    )?;
    let username = client.get_me().await?.username;
    api.take_calls();
    let engine = Engine::new(
        &config,
        store.clone(),
        config.bot.username.clone().or(username),
    )?;
    let outbox = Outbox::start(
        client,
        store.clone(),
        None,
        Arc::new(Metrics::new()),
        Arc::new(Health::default()),
    );
    let mut summary = Summary::default();
    for (number, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let update = match Update::from_json(line.as_bytes()) {
            Ok(update) => update,
            Err(e) => {
                summary.unparsable += 1;
                let report = serde_json::json!({"line": number + 1, "error": e.to_string()});
                writeln!(out, "{report}")?;
                continue;
            }
        };
        summary.updates += 1;
        store
            .append_inbox(update.update_id, bytes::Bytes::from(line))
            .await?;
        if let Finished::Committed(entries) = engine.process(&update).await? {
            outbox.push(entries);
        }
        outbox.drained().await;
        for call in api.take_calls() {
            summary.calls += 1;
            let printed = serde_json::json!({
                "update_id": update.update_id,
                "method": call.method,
                "params": call.params,
                "status": call.status,
            });
            writeln!(out, "{printed}")?;
        }
    }
    Ok(summary)
}
