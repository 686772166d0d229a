//! `edgebot replay FILE.jsonl`: recorded updates through the bot, against the built-in
//! fake Bot API, printing the API calls the bot makes as JSON lines.
//!
//! A self-hoster's way to try a config before going live: the same engine, router and
//! sender as `serve`, a throwaway store, and no network. Time is compressed, so the
//! inbound limit is off (a recording replays in milliseconds what users sent over hours);
//! outbound flood limits are off for the same reason.

use super::runtime::Sending;
use crate::app::runtime::EngineError;
use crate::botapi::{ApiError, Client};
use crate::calendar::UnixMillis;
use crate::config::Config;
use crate::engine::inbox::InboxError;
use crate::fake::botapi::{FakeBotApi, FakeConfig};
use crate::secret::Secret;
use crate::store::{Store, StoreError};
use crate::telegram::types::Update;
use std::io::{BufRead, Write};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("replay: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("replay: {0}")]
    Api(#[from] ApiError),
    #[error("replay: {0}")]
    Inbox(#[from] InboxError),
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
        UnixMillis::now().get()
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
    config.limits.outbound.enabled = false;
    let client = Client::new(
        &api.base_url(),
        &Secret::new("0:replay"),
        Duration::from_secs(10),
    )?;
    let username = client.get_me().await?.username;
    api.take_calls();
    let runtime = Sending::start(&config, store, client)?.runtime(
        &config,
        config.bot.username.clone().or(username),
        None,
    )?;
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
        runtime
            .inbox
            .accept(bytes::Bytes::from(line), "replay")
            .await?;
        runtime.drained().await;
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
