//! The long-polling transport: getUpdates in a loop, for bots without a public URL.
//!
//! The offset is derived from the store (past every update received, finished or not),
//! and a batch is committed to the inbox before the next call confirms it to Telegram, so
//! a restart neither loses nor repeats an update. Network errors back off with jitter;
//! 409 (another poller, or a webhook still set) is explained, not just retried.

use crate::botapi::{ApiError, Client};
use crate::calendar::UnixSecs;
use crate::engine::inbox::Inbox;
use crate::net::backoff::Backoff;
use crate::shutdown::Shutdown;
use crate::store::Store;
use crate::telemetry::health::Health;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// Updates per getUpdates call; Telegram's maximum.
const BATCH: u8 = 100;
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("Telegram refused the token (401 Unauthorized); check EDGEBOT_TOKEN")]
    Unauthorized,
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

pub(crate) struct Poller {
    pub(crate) client: Client,
    pub store: Store,
    pub inbox: Inbox,
    pub health: Arc<Health>,
    pub(crate) timeout_secs: u32,
    pub allowed_updates: Vec<&'static str>,
}

impl Poller {
    /// Polls until `shutdown` resolves. An update already fetched is committed before the
    /// loop stops.
    pub(crate) async fn run(self, mut shutdown: Shutdown) -> Result<(), PollError> {
        let mut offset = self.store.poll_offset()?;
        let mut backoff = Backoff::new(BACKOFF_START, BACKOFF_MAX);
        tracing::info!(offset, "long polling started");
        loop {
            let poll =
                self.client
                    .get_updates(offset, BATCH, self.timeout_secs, &self.allowed_updates);
            let result = tokio::select! {
                result = poll => result,
                () = shutdown.wait() => return Ok(()),
            };
            match result {
                Ok(updates) => {
                    self.health.api_succeeded(UnixSecs::now());
                    backoff.reset();
                    if updates.is_empty() {
                        continue;
                    }
                    let raws = updates
                        .into_iter()
                        .map(|raw| Bytes::from(raw.get().to_owned()))
                        .collect();
                    let span = tracing::info_span!("update", transport = "polling");
                    let next = self
                        .inbox
                        .accept_batch(raws, "polling")
                        .instrument(span)
                        .await?;
                    offset = offset.max(next);
                }
                Err(ApiError::Telegram { code: 401, .. }) => return Err(PollError::Unauthorized),
                Err(ApiError::Telegram {
                    code: 409,
                    description,
                    ..
                }) => {
                    self.health.api_failed(UnixSecs::now());
                    tracing::error!(
                        %description,
                        "Telegram refused getUpdates (409): another instance of this bot is polling, or a webhook is set; retrying in 5 s"
                    );
                    shutdown.sleep(Duration::from_secs(5)).await;
                }
                Err(e) => {
                    self.health.api_failed(UnixSecs::now());
                    let wait = backoff.next_wait();
                    tracing::warn!(error = %e, backoff_ms = wait.as_millis() as u64, "getUpdates failed");
                    shutdown.sleep(wait).await;
                }
            }
        }
    }
}
