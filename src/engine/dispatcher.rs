//! The dispatcher: updates of one chat are handled in order, different chats in
//! parallel, with a bound on how many wait so that a burst slows intake down instead of
//! growing memory.
//!
//! An update comes in one of two ways: already committed to the inbox (long polling, a
//! replay at start), when nobody waits for it; or straight from a transport that holds
//! its acknowledgement until the update is handled and its effects are committed (the
//! webhook), when the caller is told how that went.

use super::Engine;
use super::inbox::InboxError;
use super::lanes::Lanes;
use super::sender::Outbox;
use crate::store::{Finished, StoreError};
use crate::telegram::types::Update;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tracing::Instrument;

/// Updates accepted but not yet finished, at most; intake waits past it.
pub(crate) const DEFAULT_CAPACITY: usize = 8192;

/// What handling an update came to, for a caller that waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handled {
    /// Handled now: its effects and outbox calls are committed.
    Now,
    /// Finished before (a redelivery): nothing changed.
    Before,
}

/// One update on its way through a lane; its permit frees a place when it is done.
struct Queued {
    update: Update,
    /// The transport's span, so the handling joins the update's trace.
    span: tracing::Span,
    /// Told the outcome once the update's commit is durable, if someone waits for it.
    waiter: Option<oneshot::Sender<Result<Handled, StoreError>>>,
    _permit: OwnedSemaphorePermit,
}

#[derive(Clone)]
pub(crate) struct Dispatcher {
    lanes: Arc<Lanes<Queued>>,
    capacity: Arc<Semaphore>,
}

impl Dispatcher {
    pub fn new(engine: Arc<Engine>, outbox: Outbox, capacity: usize) -> Dispatcher {
        let lanes = Lanes::new(move |_chat, queued: Queued| {
            let engine = engine.clone();
            let outbox = outbox.clone();
            async move {
                let span = tracing::info_span!(
                    parent: &queued.span,
                    "handle",
                    update_id = queued.update.update_id,
                    kind = queued.update.kind.name()
                );
                let outcome = match engine.process(&queued.update).instrument(span).await {
                    Ok(Finished::Committed(entries)) => {
                        outbox.push(entries);
                        Ok(Handled::Now)
                    }
                    Ok(Finished::AlreadyFinished) => Ok(Handled::Before),
                    Err(e) => Err(e),
                };
                match (queued.waiter, outcome) {
                    // The caller has gone only if its task was torn down; the commit stands.
                    (Some(waiter), outcome) => drop(waiter.send(outcome)),
                    (None, Ok(_)) => {}
                    // The update stays in the inbox and is handled again at the next start.
                    (None, Err(e)) => tracing::error!(
                        update_id = queued.update.update_id,
                        error = %e,
                        "could not commit an update; it stays in the inbox"
                    ),
                }
            }
        });
        Dispatcher {
            lanes,
            capacity: Arc::new(Semaphore::new(capacity)),
        }
    }

    /// Queues an update from the inbox behind the others of its chat; waits while the
    /// queue is full.
    pub(crate) async fn submit(&self, update: Update) {
        self.queue(update, None).await;
    }

    /// Handles an update that is in no store yet, in its chat's order, and resolves once
    /// its effects are durable: the one commit that both keeps it and applies it.
    pub(crate) async fn handle(&self, update: Update) -> Result<Handled, InboxError> {
        let (waiter, outcome) = oneshot::channel();
        self.queue(update, Some(waiter)).await;
        match outcome.await {
            Ok(outcome) => Ok(outcome?),
            Err(_) => Err(InboxError::Interrupted(
                "the update's lane stopped before it finished".into(),
            )),
        }
    }

    async fn queue(
        &self,
        update: Update,
        waiter: Option<oneshot::Sender<Result<Handled, StoreError>>>,
    ) {
        let permit = self
            .capacity
            .clone()
            .acquire_owned()
            .await
            .expect("the capacity semaphore is never closed");
        let lane = update.chat_id().unwrap_or(0);
        self.lanes.push(
            lane,
            Queued {
                update,
                span: tracing::Span::current(),
                waiter,
                _permit: permit,
            },
        );
    }

    /// Resolves when every submitted update is finished.
    pub async fn drained(&self) {
        self.lanes.drained().await;
    }
}
