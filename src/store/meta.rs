//! The store's own small settings ([`META`]): the schema version of the file, the
//! webhook secret generated once, the console transport's update ids and the key that
//! signs the admin API's tokens.
//!
//! [`META`] keeps each setting in its own small encoding (see [`MetaKey`]) and is the one
//! table whose types never change: the schema version is read from it before anything
//! else, by every edgebot, old or new.

use super::Store;
use super::codec::CodecError;
use super::error::StoreError;
use super::tables::{META, MetaKey, Tables};
use redb::{ReadTransaction, ReadableTable, WriteTransaction};

/// A setting whose bytes are not what its key says they are.
fn damaged(key: MetaKey, detail: &'static str) -> StoreError {
    StoreError::CorruptValue {
        table: "meta".into(),
        key: format!("{key:?}"),
        source: CodecError::Setting(detail),
    }
}

/// The schema version of the file: `None` for a new file (no META table or no version).
pub(super) fn schema_version(txn: &ReadTransaction) -> Result<Option<u32>, StoreError> {
    let table = match txn.open_table(META) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Some(value) = table.get(MetaKey::SchemaVersion as u32)? else {
        return Ok(None);
    };
    // A damaged version is damage, not a newer edgebot.
    let bytes = value
        .value()
        .try_into()
        .map_err(|_| damaged(MetaKey::SchemaVersion, "not a 4-byte version"))?;
    Ok(Some(u32::from_le_bytes(bytes)))
}

pub(super) fn set_schema_version(txn: &WriteTransaction, version: u32) -> Result<(), StoreError> {
    txn.open_table(META)?.insert(
        MetaKey::SchemaVersion as u32,
        version.to_le_bytes().as_slice(),
    )?;
    Ok(())
}

impl Tables<'_> {
    fn next_console_update_id(&mut self) -> Result<i64, StoreError> {
        let key = MetaKey::ConsoleUpdateId;
        let next = match self.meta.get(key as u32)? {
            Some(v) => i64::from_le_bytes(
                v.value()
                    .try_into()
                    .map_err(|_| damaged(key, "not an 8-byte id"))?,
            ),
            None => 1,
        };
        self.meta
            .insert(key as u32, next.saturating_add(1).to_le_bytes().as_slice())?;
        Ok(next)
    }

    fn token_key_or(&mut self, fresh: [u8; 32]) -> Result<[u8; 32], StoreError> {
        let key = MetaKey::TokenKey;
        if let Some(v) = self.meta.get(key as u32)? {
            return v
                .value()
                .try_into()
                .map_err(|_| damaged(key, "not a 32-byte key"));
        }
        self.meta.insert(key as u32, fresh.as_slice())?;
        Ok(fresh)
    }

    fn webhook_secret_or(&mut self, fresh: &str) -> Result<String, StoreError> {
        let key = MetaKey::WebhookSecret;
        if let Some(v) = self.meta.get(key as u32)? {
            return String::from_utf8(v.value().to_vec()).map_err(|_| damaged(key, "not UTF-8"));
        }
        self.meta.insert(key as u32, fresh.as_bytes())?;
        Ok(fresh.to_owned())
    }
}

impl Store {
    /// The key that signs the admin API's tokens: the stored one, or `fresh`, stored now.
    pub(crate) async fn token_key_or(&self, fresh: [u8; 32]) -> Result<[u8; 32], StoreError> {
        self.write(move |t| t.token_key_or(fresh)).await
    }

    /// The next update id of the console transport, which has no Telegram to number them.
    pub async fn next_console_update_id(&self) -> Result<i64, StoreError> {
        self.write(|t| t.next_console_update_id()).await
    }

    /// The webhook secret generated once and kept, when none is configured.
    pub async fn webhook_secret(&self) -> Result<String, StoreError> {
        let mut fresh = [0u8; 24];
        getrandom::fill(&mut fresh).map_err(|e| StoreError::CommitFailed(e.to_string()))?;
        let fresh: String = fresh.iter().map(|b| format!("{b:02x}")).collect();
        self.write(move |t| t.webhook_secret_or(&fresh)).await
    }
}
