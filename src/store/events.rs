//! Events ([`EVENTS`]): the append-only analytics log.

use super::Store;
use super::codec::Stored;
use super::error::{StoreError, decoded};
use super::records::Event;
use super::tables::{EVENTS, Tables};
use super::writer::Sequences;
use redb::ReadableDatabase;

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
}
