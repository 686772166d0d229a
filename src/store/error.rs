//! What can go wrong with the store, and how a stored value that does not decode is
//! reported: as a newer edgebot's when its version byte says so, as corrupt otherwise,
//! always with its table and key.

use super::SCHEMA_VERSION;
use super::codec::{CodecError, Stored};
use serde::de::DeserializeOwned;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "{path}: written by a newer edgebot (schema {found}, this build reads up to {SCHEMA_VERSION}); the file was left untouched"
    )]
    NewerSchema { path: PathBuf, found: u32 },
    #[error(
        "{path}: the store is corrupt ({detail}); it was left as it is — restore a backup or move it aside"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error("{path}: the store is in use by another edgebot process")]
    InUse { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store: {0}")]
    Database(#[from] redb::Error),
    /// A value that does not decode and was not written by a newer edgebot.
    #[error("store: {table} key {key}: the stored value is corrupt ({source})")]
    CorruptValue {
        table: String,
        key: String,
        source: CodecError,
    },
    /// A value in a layout newer than this build reads.
    #[error("store: {table} key {key}: written by a newer edgebot ({source})")]
    NewerValue {
        table: String,
        key: String,
        source: CodecError,
    },
    #[error("store: commit failed, nothing was written: {0}")]
    CommitFailed(String),
    #[error("store: the writer thread could not start: {0}")]
    Thread(std::io::Error),
    #[error("store: the writer has stopped")]
    WriterGone,
}

macro_rules! redb_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> StoreError {
                StoreError::Database(e.into())
            }
        }
    )*};
}
redb_errors!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl StoreError {
    /// A value of `table` at `key` that did not decode.
    pub(super) fn unreadable(
        table: impl redb::TableHandle,
        key: impl std::fmt::Debug,
        source: CodecError,
    ) -> StoreError {
        let (table, key) = (table.name().to_owned(), format!("{key:?}"));
        if source.is_newer() {
            StoreError::NewerValue { table, key, source }
        } else {
            StoreError::CorruptValue { table, key, source }
        }
    }
}

/// Decodes a record read from `table` at `key`.
pub(super) fn decoded<T: DeserializeOwned>(
    table: impl redb::TableHandle,
    key: impl std::fmt::Debug,
    stored: Stored<'_, T>,
) -> Result<T, StoreError> {
    stored
        .decode()
        .map_err(|e| StoreError::unreadable(table, key, e))
}
