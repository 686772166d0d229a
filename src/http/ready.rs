//! Readiness: the store commits, Telegram answers, the models are loaded.
//!
//! The store is probed for real: an empty job goes through the writer and must come back
//! committed (redb writes and syncs its header even for an empty transaction, and after
//! any failed write redb refuses every later one until the file is reopened, so a disk
//! that failed once keeps the check failing). Probes that arrive together share one group
//! commit, so frequent probing costs one fsync per batch. A nearly full disk fails the
//! check before a commit does: redb overwrites its header in place, which still succeeds
//! on a full disk, while the next commit that needs a new page would not.

use super::AdminState;
use super::wire::Reply;
use crate::calendar::UnixSecs;
use crate::store::Store;
use crate::telemetry::health::{API_FRESHNESS_SECS, ModelsState};
use serde_json::{Map, Value, json};
use std::path::Path;
use std::time::Duration;

/// How long the probe commit may take before the store counts as stuck.
pub(crate) const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Below this much free space on the store's file system, the store is not ready.
pub(crate) const MIN_FREE_BYTES: u64 = 16 << 20;

/// The outcome of each check, in a fixed order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Readiness {
    pub(crate) checks: Vec<(&'static str, Result<(), String>)>,
}

impl Readiness {
    pub(crate) fn is_ready(&self) -> bool {
        self.checks.iter().all(|(_, outcome)| outcome.is_ok())
    }

    /// 200 `{"status":"ready",…}` or 503 `{"status":"unavailable",…}`, naming each check.
    pub(crate) fn reply(&self) -> Reply {
        let checks: Map<String, Value> = self
            .checks
            .iter()
            .map(|(name, outcome)| {
                let text = match outcome {
                    Ok(()) => "ok".to_owned(),
                    Err(why) => why.clone(),
                };
                ((*name).to_owned(), Value::String(text))
            })
            .collect();
        let (status, word) = if self.is_ready() {
            (200, "ready")
        } else {
            (503, "unavailable")
        };
        Reply::json(status, &json!({ "status": word, "checks": checks }))
    }
}

pub(crate) async fn check(state: &AdminState) -> Readiness {
    let now = UnixSecs::now();
    let telegram = if state.health.api_reachable(now) {
        Ok(())
    } else {
        Err(format!(
            "no successful call to the Bot API in the last {API_FRESHNESS_SECS} s, \
             or the latest call failed"
        ))
    };
    let models = match state.health.models() {
        ModelsState::Off | ModelsState::Loaded => Ok(()),
        ModelsState::Loading => Err("the models are still loading".to_owned()),
        ModelsState::Failed => Err("the models failed to load".to_owned()),
    };
    Readiness {
        checks: vec![
            ("store", probe_store(&state.store).await),
            ("telegram", telegram),
            ("models", models),
        ],
    }
}

async fn probe_store(store: &Store) -> Result<(), String> {
    if let Some(dir) = store.path().parent()
        && let Some(free) = free_bytes(dir)
        && free < MIN_FREE_BYTES
    {
        return Err(format!(
            "the disk holding the store is nearly full ({} KiB free)",
            free >> 10
        ));
    }
    match tokio::time::timeout(STORE_PROBE_TIMEOUT, store.write(|_| Ok(()))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "a commit did not finish within {} s",
            STORE_PROBE_TIMEOUT.as_secs()
        )),
    }
}

/// Space an unprivileged writer may still use on the file system of `dir`; `None` where
/// the platform does not say.
fn free_bytes(dir: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}
