//! The admin side of the store: accounts ([`ACCOUNTS`]), signed-in panel sessions
//! ([`PANEL_SESSIONS`]) and the append-only audit log ([`AUDIT`]).
//!
//! Only reads and single-row writes live here; what an admin action means (checking a
//! password, who may do what) is `auth`'s, which composes these inside one
//! [`Store::write`] so that an action and its audit line share a commit.

use super::Store;
use super::codec::Stored;
use super::error::{StoreError, decoded};
use super::records::{Account, AuditEntry, PanelSession};
use super::tables::{ACCOUNTS, AUDIT, PANEL_SESSIONS, Tables};
use super::writer::Sequences;
use crate::calendar::UnixSecs;
use redb::{ReadableDatabase, ReadableTable};

impl Tables<'_> {
    pub(crate) fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        self.accounts
            .get(name)?
            .map(|v| decoded(ACCOUNTS, name, v.value()))
            .transpose()
    }

    pub(crate) fn put_account(&mut self, account: &Account) -> Result<(), StoreError> {
        self.accounts
            .insert(account.name.as_str(), Stored::new(account))?;
        Ok(())
    }

    /// Removes an account and signs it out everywhere. Returns whether it existed.
    pub(crate) fn remove_account(&mut self, name: &str) -> Result<bool, StoreError> {
        let existed = self.accounts.remove(name)?.is_some();
        self.end_panel_sessions_of(name)?;
        Ok(existed)
    }

    pub(crate) fn accounts_with_role_at_least(
        &self,
        role: super::records::AdminRole,
    ) -> Result<usize, StoreError> {
        let mut count = 0;
        for entry in self.accounts.iter()? {
            let (key, value) = entry?;
            if decoded(ACCOUNTS, key.value(), value.value())?.role >= role {
                count += 1;
            }
        }
        Ok(count)
    }

    pub(crate) fn put_panel_session(
        &mut self,
        digest: [u8; 32],
        session: &PanelSession,
    ) -> Result<(), StoreError> {
        self.panel_sessions.insert(digest, Stored::new(session))?;
        Ok(())
    }

    pub(crate) fn end_panel_session(&mut self, digest: [u8; 32]) -> Result<(), StoreError> {
        self.panel_sessions.remove(digest)?;
        Ok(())
    }

    /// Ends every session of `account`, and any that has run out, which is how expired
    /// sessions leave the file.
    pub(crate) fn end_panel_sessions_of(&mut self, account: &str) -> Result<(), StoreError> {
        let now = UnixSecs::now();
        self.panel_sessions.retain(|_, stored| {
            stored.decode().is_ok_and(|session| {
                session.account != account && session.idle_until > now && session.ends_at > now
            })
        })?;
        Ok(())
    }

    pub(crate) fn append_audit(&mut self, entry: &AuditEntry) -> Result<(), StoreError> {
        let seq = Sequences::take(&mut self.seq.audit);
        self.audit.insert(seq, Stored::new(entry))?;
        Ok(())
    }
}

impl Store {
    pub(crate) fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        let txn = self.db().begin_read()?;
        let table = txn.open_table(ACCOUNTS)?;
        table
            .get(name)?
            .map(|v| decoded(ACCOUNTS, name, v.value()))
            .transpose()
    }

    /// Every account, by name.
    pub(crate) fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        let txn = self.db().begin_read()?;
        let table = txn.open_table(ACCOUNTS)?;
        table
            .iter()?
            .map(|entry| {
                let (k, v) = entry?;
                decoded(ACCOUNTS, k.value(), v.value())
            })
            .collect()
    }

    pub(crate) fn panel_session(
        &self,
        digest: [u8; 32],
    ) -> Result<Option<PanelSession>, StoreError> {
        let txn = self.db().begin_read()?;
        let table = txn.open_table(PANEL_SESSIONS)?;
        table
            .get(digest)?
            .map(|v| decoded(PANEL_SESSIONS, "<session digest>", v.value()))
            .transpose()
    }

    /// Audit lines newest first, starting before sequence `before` (from the newest when
    /// `None`).
    pub(crate) fn audit(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, AuditEntry)>, StoreError> {
        super::newest_before(self.db(), AUDIT, before, limit)
    }
}
