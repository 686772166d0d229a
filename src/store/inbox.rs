//! The inbox and what leaves it: [`INBOX`] (updates received, not yet finished),
//! [`PROCESSED`] (ids finished, so a redelivery is skipped), [`MALFORMED`] (bodies that
//! did not parse), and [`Store::finish`], the one transaction of a handled update.

use super::Store;
use super::codec::Stored;
use super::error::{StoreError, decoded};
use super::records::{
    ConversationChange, Event, MalformedUpdate, OutboxCall, OutboxEntry, SessionChange, UserDelta,
};
use super::tables::{INBOX, MALFORMED, PROCESSED, Tables};
use super::writer::Sequences;
use crate::calendar::UnixSecs;
use redb::{ReadableDatabase, ReadableTable};

/// How many finished update ids are remembered for deduplication. Telegram redelivers
/// only recent updates, so older ids are pruned.
const PROCESSED_WINDOW: i64 = 1_000_000;

/// What the inbox made of a delivered update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    New,
    /// Already in the inbox or already finished: Telegram redelivered it.
    Duplicate,
}

/// Everything a handled update changes, committed atomically with its removal from the
/// inbox: either all of it happened or none of it did, so a replay after a crash never
/// counts a message twice.
#[derive(Debug, Clone, Default)]
pub struct Finish {
    pub update_id: i64,
    pub finished_at: UnixSecs,
    pub users: Vec<UserDelta>,
    pub events: Vec<Event>,
    pub session: Option<SessionChange>,
    /// LLM conversation changes, applied in order.
    pub conversation: Vec<ConversationChange>,
    pub outbox: Vec<OutboxCall>,
}

/// The outcome of [`Store::finish`].
#[derive(Debug, Clone, PartialEq)]
pub enum Finished {
    /// Committed; these calls now wait in the outbox.
    Committed(Vec<OutboxEntry>),
    /// The update had been finished before (a replay or redelivery); nothing changed.
    AlreadyFinished,
}

impl Tables<'_> {
    /// Whether update `id` is in the inbox or finished already.
    fn seen(&self, id: i64) -> Result<bool, StoreError> {
        Ok(self.inbox.get(id)?.is_some() || self.processed.get(id)?.is_some())
    }

    fn append_inbox(&mut self, id: i64, raw: &[u8]) -> Result<Appended, StoreError> {
        if self.seen(id)? {
            return Ok(Appended::Duplicate);
        }
        self.inbox.insert(id, raw)?;
        Ok(Appended::New)
    }

    /// Takes update `id` out of the inbox and remembers it as finished at `at`.
    fn mark_finished(&mut self, id: i64, at: UnixSecs) -> Result<(), StoreError> {
        self.inbox.remove(id)?;
        self.processed.insert(id, at.get())?;
        if id % 4096 == 0 {
            self.processed
                .retain_in(..id.saturating_sub(PROCESSED_WINDOW), |_, _| false)?;
        }
        Ok(())
    }
}

impl Store {
    /// Durably records a delivered update, unless it is a duplicate.
    pub async fn append_inbox(
        &self,
        update_id: i64,
        raw: bytes::Bytes,
    ) -> Result<Appended, StoreError> {
        self.write(move |t| t.append_inbox(update_id, &raw)).await
    }

    /// Durably records a batch of updates in one transaction: each is new or a duplicate.
    pub(crate) async fn append_inbox_batch(
        &self,
        items: Vec<(i64, bytes::Bytes)>,
    ) -> Result<Vec<Appended>, StoreError> {
        self.write(move |t| {
            items
                .iter()
                .map(|(update_id, raw)| t.append_inbox(*update_id, raw))
                .collect()
        })
        .await
    }

    /// Keeps a body that did not parse, for inspection; returns its sequence number. When
    /// its `update_id` could still be read, the id counts as finished, so a redelivery is
    /// skipped and long polling moves past it.
    pub(crate) async fn record_malformed(
        &self,
        record: MalformedUpdate,
        update_id: Option<i64>,
    ) -> Result<u64, StoreError> {
        let value = Stored::new(&record);
        self.write(move |t| {
            if let Some(id) = update_id {
                t.processed.insert(id, record.received_at.get())?;
            }
            let seq = Sequences::take(&mut t.seq.malformed);
            t.malformed.insert(seq, &value)?;
            Ok(seq)
        })
        .await
    }

    /// Commits everything `finish` changes, atomically with the update's removal from the
    /// inbox. An update finished before changes nothing.
    pub async fn finish(&self, finish: Finish) -> Result<Finished, StoreError> {
        self.write(move |t| {
            let id = finish.update_id;
            if t.processed.get(id)?.is_some() {
                t.inbox.remove(id)?;
                return Ok(Finished::AlreadyFinished);
            }
            for delta in &finish.users {
                t.apply_user_delta(delta, finish.finished_at)?;
            }
            for event in &finish.events {
                t.append_event(event)?;
            }
            if let Some(change) = &finish.session {
                t.apply_session_change(change)?;
            }
            for change in &finish.conversation {
                t.apply_conversation_change(change)?;
            }
            let entries = t.enqueue_calls(id, &finish.outbox)?;
            t.mark_finished(id, finish.finished_at)?;
            Ok(Finished::Committed(entries))
        })
        .await
    }

    /// Where long polling resumes: past every update received, finished or not.
    pub fn poll_offset(&self) -> Result<i64, StoreError> {
        let txn = self.db().begin_read()?;
        let inbox = txn.open_table(INBOX)?.last()?.map(|(k, _)| k.value());
        let processed = txn.open_table(PROCESSED)?.last()?.map(|(k, _)| k.value());
        Ok(inbox.max(processed).map_or(0, |id| id.saturating_add(1)))
    }

    /// Updates received but not finished, in id order: replayed at start.
    pub fn pending_inbox(&self) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        let txn = self.db().begin_read()?;
        let table = txn.open_table(INBOX)?;
        table
            .iter()?
            .map(|entry| {
                let (k, v) = entry?;
                Ok((k.value(), v.value().to_vec()))
            })
            .collect()
    }

    /// The malformed bodies kept for inspection.
    pub fn malformed(&self, limit: usize) -> Result<Vec<(u64, MalformedUpdate)>, StoreError> {
        let txn = self.db().begin_read()?;
        let table = txn.open_table(MALFORMED)?;
        table
            .iter()?
            .take(limit)
            .map(|entry| {
                let (k, v) = entry?;
                Ok((k.value(), decoded(MALFORMED, k.value(), v.value())?))
            })
            .collect()
    }
}
