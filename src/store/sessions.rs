//! Sessions ([`SESSIONS`]): what is kept about a user in a chat between updates — a
//! built-in conversation waiting for their next text, a service's internal id, state and
//! data — for a TTL after its last use.

use super::Store;
use super::codec::Stored;
use super::error::{StoreError, decoded};
use super::records::{ConversationState, Session, SessionChange};
use super::tables::{SESSIONS, Tables};
use crate::calendar::UnixSecs;
use redb::{ReadableDatabase, ReadableTable};
use serde::Deserialize;

impl Tables<'_> {
    pub(super) fn apply_session_change(
        &mut self,
        change: &SessionChange,
    ) -> Result<(), StoreError> {
        let key = (change.chat_id, change.user_id);
        let stored = match self.sessions.get(key)? {
            Some(value) => Some(decoded(SESSIONS, key, value.value())?),
            None => None,
        };
        let live = stored.filter(|s| s.expires_at > change.at);
        match change.applied_to(live) {
            Some(session) => {
                self.sessions.insert(key, Stored::new(&session))?;
            }
            None => {
                self.sessions.remove(key)?;
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
    /// The live session of a user in a chat, if there is one and it has not expired.
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

/// A session as schema 3 stored it: only a built-in conversation.
#[derive(Deserialize)]
struct ConversationOnly {
    state: ConversationState,
    expires_at: UnixSecs,
}

/// Schema 3 → 4: sessions gain a service's part. Each stored conversation keeps its
/// state and expiry; its TTL is taken as what was left of it.
pub(super) fn sessions_gain_service_fields(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    let mut table = txn.open_table(SESSIONS)?;
    let mut rewritten = Vec::new();
    for row in table.iter()? {
        let (key, value) = row?;
        let key = key.value();
        let old: ConversationOnly = value
            .value()
            .decode_as()
            .map_err(|e| StoreError::unreadable(SESSIONS, key, e))?;
        rewritten.push((
            key,
            Session {
                conversation: Some(old.state),
                internal_user_id: None,
                state: None,
                data: "{}".into(),
                ttl_secs: 600,
                expires_at: old.expires_at,
            },
        ));
    }
    for (key, session) in rewritten {
        table.insert(key, Stored::new(&session))?;
    }
    Ok(())
}
