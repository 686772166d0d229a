//! Events ([`EVENTS`]): the append-only analytics log.

use super::Store;
use super::codec::Stored;
use super::error::{StoreError, decoded};
use super::records::Event;
use super::tables::{EVENTS, Tables};
use super::writer::Sequences;
use redb::{ReadableDatabase, ReadableTable};

impl Tables<'_> {
    pub(super) fn append_event(&mut self, event: &Event) -> Result<(), StoreError> {
        let seq = Sequences::take(&mut self.seq.event);
        self.events.insert(seq, Stored::new(event))?;
        Ok(())
    }

    /// Removes the events of user `id`. An event that does not decode is kept: whose it
    /// is cannot be told, and deleting what cannot be read would hide the damage.
    pub(super) fn forget_events_of(&mut self, id: i64) -> Result<(), StoreError> {
        self.events.retain(|_, stored| {
            stored
                .decode()
                .map_or(true, |event| event.user_id != Some(id))
        })?;
        Ok(())
    }
}

impl Store {
    /// Appends analytics events outside of an update (e.g. the sender learning that a
    /// user blocked the bot).
    pub async fn append_events(&self, events: Vec<Event>) -> Result<(), StoreError> {
        self.write(move |t| {
            for event in &events {
                t.append_event(event)?;
            }
            Ok(())
        })
        .await
    }

    /// The sequence to start after so as to read the events from `since` on. Events are
    /// appended in time order, so this is a binary search over the keys (a few reads,
    /// however long the log), not a scan.
    pub(crate) fn events_since(
        &self,
        since: crate::calendar::UnixMillis,
    ) -> Result<u64, StoreError> {
        let txn = self.db().begin_read()?;
        let table = txn.open_table(EVENTS)?;
        let (Some(first), Some(last)) = (table.first()?, table.last()?) else {
            return Ok(0);
        };
        let (mut low, mut high) = (first.0.value(), last.0.value().saturating_add(1));
        // Invariant: every event before `low` is older than `since`; the event at or
        // after `high` (if any) is not.
        while low < high {
            let middle = low + (high - low) / 2;
            let Some(entry) = table.range(middle..)?.next() else {
                high = middle;
                continue;
            };
            let (key, value) = entry?;
            let event = decoded(EVENTS, key.value(), value.value())?;
            if event.at_ms < since {
                low = key.value().saturating_add(1);
            } else {
                high = middle;
            }
        }
        Ok(low.saturating_sub(1))
    }

    /// Events in order, starting after sequence `after`.
    pub fn events(&self, after: u64, limit: usize) -> Result<Vec<(u64, Event)>, StoreError> {
        let txn = self.db().begin_read()?;
        let table = txn.open_table(EVENTS)?;
        table
            .range(after.saturating_add(1)..)?
            .take(limit)
            .map(|entry| {
                let (k, v) = entry?;
                Ok((k.value(), decoded(EVENTS, k.value(), v.value())?))
            })
            .collect()
    }

    /// Events newest first, starting before sequence `before` (from the newest when
    /// `None`).
    pub(crate) fn events_before(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Event)>, StoreError> {
        super::newest_before(self.db(), EVENTS, before, limit)
    }
}
