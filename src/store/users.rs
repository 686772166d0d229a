//! Users ([`USERS`]): what the bot knows about each Telegram user, changed by deltas
//! applied inside the write transaction so that concurrent updates never lose a count.

use super::error::{StoreError, decoded};
use super::records::{ConversationChange, Event, EventKind, UserDelta, UserRecord};
use super::tables::{Tables, USERS};
use super::{Store, codec::Stored};
use crate::calendar::UnixSecs;
use redb::{ReadableDatabase, ReadableTable};

impl Tables<'_> {
    /// The stored user `id`, if any.
    pub(crate) fn user(&self, id: i64) -> Result<Option<UserRecord>, StoreError> {
        self.users
            .get(id)?
            .map(|v| decoded(USERS, id, v.value()))
            .transpose()
    }

    pub fn put_user(&mut self, user: &UserRecord) -> Result<(), StoreError> {
        self.users.insert(user.id, Stored::new(user))?;
        Ok(())
    }

    /// Applies `delta` to the stored user; a user it creates is credited to their
    /// referrer and logged as joined at `now`.
    pub(super) fn apply_user_delta(
        &mut self,
        delta: &UserDelta,
        now: UnixSecs,
    ) -> Result<UserRecord, StoreError> {
        let before = self.user(delta.id)?;
        let created = before.is_none();
        let user = delta.apply(before);
        self.put_user(&user)?;
        if created {
            if let Some(mut referrer) = user.referrer.map(|id| self.user(id)).transpose()?.flatten()
            {
                referrer.referrals = referrer.referrals.saturating_add(1);
                self.put_user(&referrer)?;
            }
            self.append_event(&Event {
                at_ms: now.to_millis(),
                user_id: Some(delta.id),
                chat_id: None,
                kind: EventKind::UserJoined {
                    referrer: user.referrer,
                },
            })?;
        }
        Ok(user)
    }
}

impl Tables<'_> {
    /// Forgets a user: their record, sessions, events and LLM conversations (as `/forget`
    /// deletes them, so the two never differ in what they leave). Returns whether they
    /// existed.
    pub(crate) fn forget_user(&mut self, id: i64) -> Result<bool, StoreError> {
        let existed = self.users.remove(id)?.is_some();
        self.forget_sessions_of(id)?;
        self.forget_events_of(id)?;
        self.apply_conversation_change(&ConversationChange::Forget { user_id: id })?;
        Ok(existed)
    }
}

impl Store {
    pub fn user(&self, id: i64) -> Result<Option<UserRecord>, StoreError> {
        let txn = self.db().begin_read()?;
        let table = txn.open_table(USERS)?;
        table
            .get(id)?
            .map(|v| decoded(USERS, id, v.value()))
            .transpose()
    }

    /// Users in id order, starting after `after`.
    pub fn users(&self, after: Option<i64>, limit: usize) -> Result<Vec<UserRecord>, StoreError> {
        let txn = self.db().begin_read()?;
        let table = txn.open_table(USERS)?;
        let range = match after {
            Some(id) if id == i64::MAX => return Ok(Vec::new()),
            Some(id) => table.range(id + 1..)?,
            None => table.range::<i64>(..)?,
        };
        range
            .take(limit)
            .map(|entry| {
                let (k, v) = entry?;
                decoded(USERS, k.value(), v.value())
            })
            .collect()
    }

    /// Applies an administrative change to a user and returns the result.
    pub async fn update_user(&self, delta: UserDelta) -> Result<UserRecord, StoreError> {
        self.write(move |t| t.apply_user_delta(&delta, delta.seen_at))
            .await
    }

    /// Forgets a user: their record, sessions, events and LLM conversations, in one
    /// commit. Returns whether they existed.
    pub async fn delete_user(&self, id: i64) -> Result<bool, StoreError> {
        self.write(move |t| t.forget_user(id)).await
    }
}
