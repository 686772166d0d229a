//! Sessions ([`SESSIONS`]): a conversation waiting for a user's next message in a chat.

use super::Store;
use super::codec::Stored;
use super::error::{StoreError, decoded};
use super::records::{Session, SessionChange};
use super::tables::{SESSIONS, Tables};
use crate::calendar::UnixSecs;
use redb::ReadableDatabase;

impl Tables<'_> {
    pub(super) fn apply_session_change(
        &mut self,
        change: &SessionChange,
    ) -> Result<(), StoreError> {
        match change {
            SessionChange::Set {
                chat_id,
                user_id,
                session,
            } => {
                self.sessions
                    .insert((*chat_id, *user_id), Stored::new(session))?;
            }
            SessionChange::Clear { chat_id, user_id } => {
                self.sessions.remove((*chat_id, *user_id))?;
            }
        }
        Ok(())
    }

    /// Removes every session of user `id`, in every chat.
    pub(super) fn forget_sessions_of(&mut self, id: i64) -> Result<(), StoreError> {
        self.sessions.retain(|(_, user), _| user != id)?;
        Ok(())
    }
}

impl Store {
    /// The live session of a user in a chat, if one is waiting and not expired.
    pub fn session(
        &self,
        chat_id: i64,
        user_id: i64,
        now: UnixSecs,
    ) -> Result<Option<Session>, StoreError> {
        let txn = self.db().begin_read()?;
        let table = txn.open_table(SESSIONS)?;
        let Some(value) = table.get((chat_id, user_id))? else {
            return Ok(None);
        };
        let session = decoded(SESSIONS, (chat_id, user_id), value.value())?;
        Ok((session.expires_at > now).then_some(session))
    }
}
