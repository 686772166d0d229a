//! The inbox: where every transport hands over what Telegram sent.
//!
//! Nothing is acknowledged before it is durable, in one of two ways. One update at a
//! time (the webhook, `replay`): it is handled in its chat's order and acknowledged once
//! its effects are committed, together with its "finished" mark, so one commit both keeps
//! and applies it. A batch (long polling): committed to the inbox table with the offset
//! that confirms it, then dispatched. Duplicates are found by `update_id` either way. A
//! body that does not parse is acknowledged too — Telegram would otherwise redeliver it
//! forever — and kept in the store for inspection.

use super::dispatcher::{Dispatcher, Handled};
use crate::calendar::UnixSecs;
use crate::store::records::MalformedUpdate;
use crate::store::{Appended, Store, StoreError};
use crate::telegram::types::Update;
use crate::telemetry::metrics::Metrics;
use bytes::Bytes;
use std::sync::Arc;
use tracing::Instrument;

/// What became of one delivered body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    New,
    Duplicate,
    Malformed,
}

/// Why a body could not be accepted; the transport refuses it (the webhook answers 503)
/// and Telegram delivers it again later.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("accepting an update stopped before it finished: {0}")]
    Interrupted(String),
}

#[derive(Clone)]
pub struct Inbox {
    store: Store,
    dispatcher: Dispatcher,
    metrics: Arc<Metrics>,
}

impl Inbox {
    pub(crate) fn new(store: Store, dispatcher: Dispatcher, metrics: Arc<Metrics>) -> Inbox {
        Inbox {
            store,
            dispatcher,
            metrics,
        }
    }

    /// Handles one body and resolves once what it changed is committed, which is when the
    /// transport may acknowledge it. The update is kept by that same commit (its effects,
    /// its outbox calls and its "finished" mark), so it costs one fsync, shared with
    /// whatever else the writer commits at the time; a redelivered update changes nothing.
    ///
    /// A client that goes away mid-request (Telegram giving up on a slow answer) cannot
    /// stop an update halfway: once queued, it is handled by its chat's lane, a task of its
    /// own, whether or not anyone still waits for the answer; before that nothing was
    /// written or acknowledged, and Telegram delivers it again.
    pub async fn accept(
        &self,
        raw: Bytes,
        transport: &'static str,
    ) -> Result<Accepted, InboxError> {
        let update = match Update::from_json(&raw) {
            Ok(update) => update,
            Err(e) => return Ok(self.keep_malformed(raw, e.to_string()).await?),
        };
        self.metrics.update_received(update.kind.name(), transport);
        tracing::Span::current().record("update_id", update.update_id);
        match self.dispatcher.handle(update, raw).await? {
            Handled::Now => Ok(Accepted::New),
            Handled::Before => {
                self.metrics.updates_duplicate.inc();
                Ok(Accepted::Duplicate)
            }
        }
    }

    /// Commits a batch from getUpdates, with the poll offset that confirms it, in one
    /// transaction; then dispatches the new ones in order.
    pub(crate) async fn accept_batch(
        &self,
        raws: Vec<Bytes>,
        transport: &'static str,
    ) -> Result<i64, StoreError> {
        let mut parsed = Vec::with_capacity(raws.len());
        let mut malformed = Vec::new();
        for raw in raws {
            match Update::from_json(&raw) {
                Ok(update) => {
                    self.metrics.update_received(update.kind.name(), transport);
                    parsed.push((update, raw));
                }
                Err(e) => malformed.push((raw, e.to_string())),
            }
        }
        let mut next_offset = 0;
        for (raw, error) in malformed {
            if let Some(id) = update_id_of(&raw) {
                next_offset = next_offset.max(id + 1);
            }
            self.keep_malformed(raw, error).await?;
        }
        let items = parsed
            .iter()
            .map(|(u, raw)| (u.update_id, raw.clone()))
            .collect();
        let span = tracing::info_span!("inbox.append", updates = parsed.len());
        let outcomes = self
            .store
            .append_inbox_batch(items)
            .instrument(span)
            .await?;
        for ((update, _), outcome) in parsed.into_iter().zip(outcomes) {
            next_offset = next_offset.max(update.update_id + 1);
            match outcome {
                Appended::New => self.dispatcher.submit(update).await,
                Appended::Duplicate => {
                    self.metrics.updates_duplicate.inc();
                }
            }
        }
        Ok(next_offset)
    }

    /// Re-dispatches what was received but not finished before the last stop.
    pub(crate) async fn replay_pending(&self) -> Result<usize, StoreError> {
        let pending = self.store.pending_inbox()?;
        let count = pending.len();
        for (update_id, raw) in pending {
            match Update::from_json(&raw) {
                Ok(update) => self.dispatcher.submit(update).await,
                Err(e) => {
                    tracing::error!(update_id, error = %e, "a stored update no longer parses")
                }
            }
        }
        Ok(count)
    }

    async fn keep_malformed(&self, raw: Bytes, error: String) -> Result<Accepted, StoreError> {
        self.metrics.updates_malformed.inc();
        tracing::warn!(error = %error, bytes = raw.len(), "acknowledged an unparsable update and kept it for inspection");
        let update_id = update_id_of(&raw);
        self.store
            .record_malformed(
                MalformedUpdate {
                    received_at: UnixSecs::now(),
                    error,
                    raw: raw.to_vec(),
                },
                update_id,
            )
            .await?;
        Ok(Accepted::Malformed)
    }
}

/// The `update_id` of a body that is not a valid update, if it still has one.
fn update_id_of(raw: &[u8]) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        update_id: i64,
    }
    serde_json::from_slice::<IdOnly>(raw)
        .ok()
        .map(|u| u.update_id)
}
