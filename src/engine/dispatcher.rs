//! The dispatcher: updates of one chat are handled in order, different chats in
//! parallel, with a bound on how many wait so that a burst slows intake down instead of
//! growing memory.
//!
//! An update comes in one of two ways: already committed to the inbox (long polling, a
//! replay at start), when nobody waits for it; or straight from a transport that holds
//! its acknowledgement (the webhook), when the caller is told once the update is kept.
//! A fast route keeps it with the one commit of its effects. A slow route must not hold
//! the acknowledgement while it waits on a service, so it asks its [`Keep`] first: that
//! puts the update — and every other update of the chat still waiting behind it — in
//! the inbox in one commit and releases their transports. While a chat's slow route
//! runs, what arrives for that chat is kept and acknowledged at once, then queued.

use super::inbox::InboxError;
use super::lanes::Lanes;
use super::sender::Outbox;
use super::{Engine, Keep, Kept};
use crate::store::{Appended, Finished, Store, StoreError};
use crate::telegram::types::Update;
use bytes::Bytes;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tracing::Instrument;

/// Updates accepted but not yet finished, at most; intake waits past it.
pub(crate) const DEFAULT_CAPACITY: usize = 8192;

/// What handling an update came to, for a caller that waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handled {
    /// Kept: handled with its effects committed, or in the inbox for a slow route.
    Now,
    /// Kept or finished before (a redelivery): nothing changed.
    Before,
}

type Waiter = oneshot::Sender<Result<Handled, StoreError>>;

/// Where an update that a transport waits on stands.
enum Hold {
    /// Not kept yet: the transport still waits, and the body is here to keep.
    Waiting { raw: Bytes, waiter: Waiter },
    /// In the inbox, and the transport was told.
    Kept,
    /// Kept or finished before, or it could not be kept (the transport was told, and
    /// Telegram delivers it again): its lane passes it over.
    Dropped,
}

type Slot = Arc<Mutex<Hold>>;

/// The updates whose acknowledgement is held, and the chats running a slow route.
#[derive(Default)]
struct Holding {
    /// Per chat, in arrival order: update id and where it stands.
    waiting: HashMap<i64, Vec<(i64, Slot)>>,
    slow: HashSet<i64>,
}

/// One update on its way through a lane; its permit frees a place when it is done.
struct Queued {
    update: Update,
    /// The transport's span, so the handling joins the update's trace.
    span: tracing::Span,
    /// The held acknowledgement, when a transport waits for this update.
    slot: Option<Slot>,
    _permit: OwnedSemaphorePermit,
}

#[derive(Clone)]
pub(crate) struct Dispatcher {
    lanes: Arc<Lanes<Queued>>,
    capacity: Arc<Semaphore>,
    store: Store,
    holding: Arc<Mutex<Holding>>,
}

impl Dispatcher {
    pub fn new(engine: Arc<Engine>, outbox: Outbox, capacity: usize) -> Dispatcher {
        let store = engine.store().clone();
        let holding = Arc::new(Mutex::new(Holding::default()));
        let lanes = Lanes::new({
            let store = store.clone();
            let holding = holding.clone();
            move |chat, queued: Queued| {
                let engine = engine.clone();
                let outbox = outbox.clone();
                let keeper = SlotKeeper {
                    store: store.clone(),
                    holding: holding.clone(),
                    chat,
                    slot: queued.slot.clone(),
                    went_slow: AtomicBool::new(false),
                };
                async move { handle_queued(&engine, &outbox, queued, &keeper).await }
            }
        });
        Dispatcher {
            lanes,
            capacity: Arc::new(Semaphore::new(capacity)),
            store,
            holding,
        }
    }

    /// Queues an update from the inbox behind the others of its chat; waits while the
    /// queue is full.
    pub(crate) async fn submit(&self, update: Update) {
        self.queue(update, None).await;
    }

    /// Takes an update that is in no store yet and resolves once it is kept: by the one
    /// commit that keeps and applies it, or in the inbox before a slow route runs.
    pub(crate) async fn handle(&self, update: Update, raw: Bytes) -> Result<Handled, InboxError> {
        let chat = lane_of(&update);
        let registered = {
            let mut holding = self.holding.lock().expect("holding lock");
            if holding.slow.contains(&chat) {
                None
            } else {
                let (waiter, outcome) = oneshot::channel();
                let slot = Arc::new(Mutex::new(Hold::Waiting {
                    raw: raw.clone(),
                    waiter,
                }));
                holding
                    .waiting
                    .entry(chat)
                    .or_default()
                    .push((update.update_id, slot.clone()));
                Some((slot, outcome))
            }
        };
        let Some((slot, outcome)) = registered else {
            // Behind a slow route: keep it now, handle it in its turn.
            return match self.store.append_inbox(update.update_id, raw).await? {
                Appended::New => {
                    self.submit(update).await;
                    Ok(Handled::Now)
                }
                Appended::Duplicate => Ok(Handled::Before),
            };
        };
        self.queue(update, Some(slot)).await;
        match outcome.await {
            Ok(outcome) => Ok(outcome?),
            Err(_) => Err(InboxError::Interrupted(
                "the update's lane stopped before it finished".into(),
            )),
        }
    }

    async fn queue(&self, update: Update, slot: Option<Slot>) {
        let permit = self
            .capacity
            .clone()
            .acquire_owned()
            .await
            .expect("the capacity semaphore is never closed");
        self.lanes.push(
            lane_of(&update),
            Queued {
                update,
                span: tracing::Span::current(),
                slot,
                _permit: permit,
            },
        );
    }

    /// Resolves when every submitted update is finished.
    pub async fn drained(&self) {
        self.lanes.drained().await;
    }
}

/// The lane of an update: its chat, or 0 for the few kinds that have none.
fn lane_of(update: &Update) -> i64 {
    update.chat_id().unwrap_or(0)
}

/// Handles one update in its lane and tells whoever waits how it went.
async fn handle_queued(engine: &Engine, outbox: &Outbox, queued: Queued, keeper: &SlotKeeper) {
    let update_id = queued.update.update_id;
    if let Some(slot) = &queued.slot
        && matches!(*slot.lock().expect("slot lock"), Hold::Dropped)
    {
        keeper.done(update_id);
        return;
    }
    let span = tracing::info_span!(
        parent: &queued.span,
        "handle",
        update_id,
        kind = queued.update.kind.name()
    );
    let outcome = match engine
        .process_kept_by(&queued.update, keeper)
        .instrument(span)
        .await
    {
        Ok(Finished::Committed(entries)) => {
            outbox.push(entries);
            Ok(Handled::Now)
        }
        Ok(Finished::AlreadyFinished) => Ok(Handled::Before),
        Err(e) => Err(e),
    };
    let waiter = queued.slot.as_ref().and_then(|slot| {
        let mut hold = slot.lock().expect("slot lock");
        match std::mem::replace(&mut *hold, Hold::Kept) {
            Hold::Waiting { waiter, .. } => Some(waiter),
            other => {
                *hold = other;
                None
            }
        }
    });
    keeper.done(update_id);
    match (waiter, outcome) {
        // The caller has gone only if its task was torn down; the commit stands.
        (Some(waiter), outcome) => drop(waiter.send(outcome)),
        (None, Ok(_)) => {}
        // The update stays in the inbox and is handled again at the next start.
        (None, Err(e)) => tracing::error!(
            update_id,
            error = %e,
            "could not commit an update; it stays in the inbox"
        ),
    }
}

/// The [`Keep`] of one queued update.
struct SlotKeeper {
    store: Store,
    holding: Arc<Mutex<Holding>>,
    chat: i64,
    slot: Option<Slot>,
    /// Whether this update's route turned out slow, so the chat is marked slow until
    /// it finishes.
    went_slow: AtomicBool,
}

impl SlotKeeper {
    /// The update is finished or passed over: it no longer holds anything of its chat.
    fn done(&self, update_id: i64) {
        let mut holding = self.holding.lock().expect("holding lock");
        if let Some(waiting) = holding.waiting.get_mut(&self.chat) {
            waiting.retain(|(id, _)| *id != update_id);
            if waiting.is_empty() {
                holding.waiting.remove(&self.chat);
            }
        }
        if self.went_slow.load(Ordering::Relaxed) {
            holding.slow.remove(&self.chat);
        }
    }
}

#[async_trait::async_trait]
impl Keep for SlotKeeper {
    async fn keep(&self) -> Result<Kept, StoreError> {
        self.went_slow.store(true, Ordering::Relaxed);
        let released: Vec<(i64, Bytes, Waiter, Slot)> = {
            let mut holding = self.holding.lock().expect("holding lock");
            holding.slow.insert(self.chat);
            holding
                .waiting
                .remove(&self.chat)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(id, slot)| {
                    let mut hold = slot.lock().expect("slot lock");
                    match std::mem::replace(&mut *hold, Hold::Kept) {
                        Hold::Waiting { raw, waiter } => {
                            drop(hold);
                            Some((id, raw, waiter, slot))
                        }
                        other => {
                            *hold = other;
                            None
                        }
                    }
                })
                .collect()
        };
        if !released.is_empty() {
            let items = released
                .iter()
                .map(|(id, raw, ..)| (*id, raw.clone()))
                .collect();
            match self.store.append_inbox_batch(items).await {
                Ok(appended) => {
                    for ((_, _, waiter, slot), appended) in released.into_iter().zip(appended) {
                        let told = match appended {
                            Appended::New => Handled::Now,
                            Appended::Duplicate => {
                                *slot.lock().expect("slot lock") = Hold::Dropped;
                                Handled::Before
                            }
                        };
                        drop(waiter.send(Ok(told)));
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    for (_, _, waiter, slot) in released {
                        *slot.lock().expect("slot lock") = Hold::Dropped;
                        drop(waiter.send(Err(StoreError::CommitFailed(message.clone()))));
                    }
                    return Err(e);
                }
            }
        }
        let own = self
            .slot
            .as_ref()
            .map(|slot| matches!(*slot.lock().expect("slot lock"), Hold::Dropped));
        Ok(if own == Some(true) {
            Kept::Before
        } else {
            Kept::Now
        })
    }
}
