//! The dispatcher: updates of one chat are handled in order, different chats in
//! parallel, with a bound on how many wait so that a burst slows intake down instead of
//! growing memory.

use super::Engine;
use super::lanes::Lanes;
use super::sender::Outbox;
use crate::store::Finished;
use crate::telegram::types::Update;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

/// Updates accepted but not yet finished, at most; intake waits past it.
pub(crate) const DEFAULT_CAPACITY: usize = 8192;

/// One update on its way through a lane; its permit frees a place when it is done.
struct Queued {
    update: Update,
    /// The transport's span, so the handling joins the update's trace.
    span: tracing::Span,
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
                match engine.process(&queued.update).instrument(span).await {
                    Ok(Finished::Committed(entries)) => outbox.push(entries),
                    Ok(Finished::AlreadyFinished) => {}
                    // The update stays in the inbox and is handled again at the next start.
                    Err(e) => tracing::error!(
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

    /// Queues an update behind the others of its chat; waits while the queue is full.
    pub(crate) async fn submit(&self, update: Update) {
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
                _permit: permit,
            },
        );
    }

    /// Resolves when every submitted update is finished.
    pub async fn drained(&self) {
        self.lanes.drained().await;
    }
}
