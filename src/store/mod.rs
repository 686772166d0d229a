//! The store: one redb file holding users, sessions, the inbox, the outbox and events.
//!
//! Reads open their own MVCC snapshot and never wait for writers. Writes all go through
//! the single writer thread ([`writer`]), which group-commits them. Opening the file
//! checks its schema version first: a file written by a newer edgebot is refused and left
//! untouched; a corrupt file is reported, never recreated.
//!
//! This module keeps the [`Store`] handle, opening and migrating. Every table is listed
//! once in [`tables`]; its reads and writes live in the module of its concept: `users`,
//! `sessions`, `inbox` (with finishing an update), `events`, `outbox`, `embeddings`,
//! `accounts` (the admin panel's accounts, sessions and audit log), `conversations`
//! (LLM dialogs, their turns, personality choices, usage) and `meta`. Records are encoded
//! by [`codec`]; a value that does not decode is reported with its table and key
//! ([`StoreError::CorruptValue`], [`StoreError::NewerValue`]).

mod accounts;
pub mod codec;
mod conversations;
mod embeddings;
mod error;
mod events;
mod inbox;
mod meta;
mod outbox;
pub mod records;
mod sessions;
pub mod tables;
mod users;
mod writer;

pub use error::StoreError;
pub use inbox::{Appended, Finish, Finished};
pub use records::{OutboxCall, OutboxEntry};
pub use tables::Tables;
pub(crate) use writer::CommitObserver;

use redb::{Database, ReadableDatabase};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// The layout version this build writes. Files of a lower version are migrated at open.
pub const SCHEMA_VERSION: u32 = 5;

/// The file name inside the data directory.
pub const FILE_NAME: &str = "edgebot.redb";

/// How many writes may wait for the writer before callers wait for room.
const WRITE_QUEUE: usize = 8192;

/// The page cache of [`Store::open`]: room for everything an update touches (users,
/// sessions, the tails of the inbox, events and outbox) many times over.
pub const DEFAULT_CACHE_BYTES: usize = 16 << 20;

/// Counts and sizes for `edgebot db stats` and the metrics.
#[derive(Debug, Clone, Serialize)]
pub struct StoreStats {
    pub path: PathBuf,
    pub file_bytes: u64,
    pub schema_version: u32,
    pub users: u64,
    pub sessions: u64,
    pub inbox: u64,
    pub processed: u64,
    pub outbox: u64,
    pub events: u64,
    pub malformed: u64,
    pub embeddings: u64,
    pub accounts: u64,
    pub panel_sessions: u64,
    pub audit: u64,
    pub dialogs: u64,
    pub turns: u64,
    pub personality_choices: u64,
    pub user_usage: u64,
    pub provider_usage: u64,
}

/// A handle to the open store; cheap to clone. The file is closed when the last handle
/// is dropped, after the writer finished what was queued.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// A handle that does not keep the store open: for work that should simply not happen
/// once everything else has let the store go.
#[derive(Clone)]
pub(crate) struct WeakStore(std::sync::Weak<Inner>);

impl WeakStore {
    pub(crate) fn upgrade(&self) -> Option<Store> {
        self.0.upgrade().map(|inner| Store { inner })
    }
}

struct Inner {
    db: Arc<Database>,
    observer: Arc<Mutex<Option<CommitObserver>>>,
    writer: Option<writer::Writer>,
    thread: Option<std::thread::JoinHandle<()>>,
    path: PathBuf,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.writer.take();
        if let Some(thread) = self.thread.take() {
            // The writer exits once its queue is closed and drained.
            let _ = thread.join();
        }
    }
}

/// The records of an append-only table newest first, starting before sequence `before`
/// (from the newest when `None`): how the panel pages back through events and the audit
/// log.
fn newest_before<T: serde::de::DeserializeOwned + 'static>(
    db: &Database,
    table: redb::TableDefinition<'static, u64, codec::Versioned<T>>,
    before: Option<u64>,
    limit: usize,
) -> Result<Vec<(u64, T)>, StoreError> {
    use redb::ReadableDatabase;
    let txn = db.begin_read()?;
    let open = txn.open_table(table)?;
    let range = match before {
        Some(seq) => open.range(..seq)?,
        None => open.range::<u64>(..)?,
    };
    range
        .rev()
        .take(limit)
        .map(|entry| {
            let (k, v) = entry?;
            Ok((k.value(), error::decoded(table, k.value(), v.value())?))
        })
        .collect()
}

impl Store {
    /// Opens (or creates) `DIR/edgebot.redb`, checks its version and migrates it, with the
    /// default page cache.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Self::open_with_cache(dir, DEFAULT_CACHE_BYTES)
    }

    /// As [`Store::open`], keeping at most `cache_bytes` of the file's pages in memory
    /// (redb's own default is 1 GiB, which a long-running bot fills with pages of old
    /// events it will never read again).
    pub fn open_with_cache(dir: &Path, cache_bytes: usize) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let existing = std::fs::metadata(&path).is_ok_and(|m| m.len() > 0);
        if existing {
            refuse_newer_without_writing(&path)?;
        }
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(&path)
            .map_err(|e| open_error(&path, e))?;
        migrate(&db, &path)?;
        let db = Arc::new(db);
        let observer = Arc::new(Mutex::new(None));
        let (writer, thread) = writer::Writer::start(db.clone(), WRITE_QUEUE, observer.clone())?;
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                observer,
                writer: Some(writer),
                thread: Some(thread),
                path,
            }),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.inner.path
    }

    pub(crate) fn downgrade(&self) -> WeakStore {
        WeakStore(Arc::downgrade(&self.inner))
    }

    /// Reports each group commit's duration and size to `observer` from now on.
    pub(crate) fn observe_commits(&self, observer: CommitObserver) {
        *self
            .inner
            .observer
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(observer);
    }

    fn db(&self) -> &Database {
        &self.inner.db
    }

    fn writer(&self) -> Result<&writer::Writer, StoreError> {
        self.inner.writer.as_ref().ok_or(StoreError::WriterGone)
    }

    /// Runs `work` in the next group commit. For writes the typed methods don't cover.
    pub async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'a> FnMut(&mut Tables<'a>) -> Result<T, StoreError> + Send + 'static,
    {
        self.writer()?.write(work).await
    }

    /// Like [`Store::write`], but resolves without waiting for the disk: the work becomes
    /// durable with the next durable commit.
    async fn write_lazily<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'a> FnMut(&mut Tables<'a>) -> Result<T, StoreError> + Send + 'static,
    {
        self.writer()?.write_lazily(work).await
    }

    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let txn = self.db().begin_read()?;
        let file_bytes = std::fs::metadata(self.path()).map_or(0, |m| m.len());
        // Destructured whole, so that a table added to the list is a decision here too.
        let tables::Counts {
            meta: _,
            users,
            sessions,
            inbox,
            processed,
            malformed,
            events,
            outbox,
            embeddings,
            accounts,
            panel_sessions,
            audit,
            dialogs,
            turns,
            // An index of `dialogs` and `turns`: as many rows as (user, dialog) pairs.
            user_dialogs: _,
            personality_choices,
            user_usage,
            provider_usage,
        } = tables::counts(&txn)?;
        Ok(StoreStats {
            path: self.path().to_owned(),
            file_bytes,
            schema_version: meta::schema_version(&txn)?.unwrap_or(0),
            users,
            sessions,
            inbox,
            processed,
            outbox,
            events,
            malformed,
            embeddings,
            accounts,
            panel_sessions,
            audit,
            dialogs,
            turns,
            personality_choices,
            user_usage,
            provider_usage,
        })
    }

    /// Writes a consistent, compacted copy of the store to `target` (which must not
    /// exist), from one snapshot, while the bot keeps running.
    pub fn backup(&self, target: &Path) -> Result<(), StoreError> {
        if target.exists() {
            return Err(StoreError::Io {
                path: target.to_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "the backup target exists; choose a new file",
                ),
            });
        }
        let copy = Database::create(target).map_err(|e| open_error(target, e))?;
        let snapshot = self.db().begin_read()?;
        let out = copy.begin_write()?;
        tables::copy_all(&snapshot, &out)?;
        out.commit()?;
        Ok(())
    }
}

/// Looks at the schema version through a read-only handle, so that a file from a newer
/// edgebot is not modified in any way before it is refused.
fn refuse_newer_without_writing(path: &Path) -> Result<(), StoreError> {
    let db = match redb::ReadOnlyDatabase::open(path) {
        Ok(db) => db,
        // A file left by a crash needs repair, which only the writable open performs;
        // the version is checked again after it.
        Err(redb::DatabaseError::RepairAborted) => return Ok(()),
        Err(e) => return Err(open_error(path, e)),
    };
    let found = schema_version_at(&db.begin_read()?, path)?;
    match found {
        Some(found) if found > SCHEMA_VERSION => Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found,
        }),
        _ => Ok(()),
    }
}

/// The schema version of the file at `path`; a damaged one makes the file corrupt.
fn schema_version_at(txn: &redb::ReadTransaction, path: &Path) -> Result<Option<u32>, StoreError> {
    meta::schema_version(txn).map_err(|e| corrupt(path, e))
}

/// Reports a damaged value found while opening as a corrupt file, which is left as it is.
fn corrupt(path: &Path, e: StoreError) -> StoreError {
    match e {
        StoreError::CorruptValue { .. } => StoreError::Corrupt {
            path: path.to_owned(),
            detail: e.to_string(),
        },
        other => other,
    }
}

fn open_error(path: &Path, e: redb::DatabaseError) -> StoreError {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse {
            path: path.to_owned(),
        },
        redb::DatabaseError::Storage(redb::StorageError::Io(source))
            if source.kind() != std::io::ErrorKind::InvalidData =>
        {
            StoreError::Io {
                path: path.to_owned(),
                source,
            }
        }
        other => StoreError::Corrupt {
            path: path.to_owned(),
            detail: other.to_string(),
        },
    }
}

/// Brings a file up to [`SCHEMA_VERSION`], one step per version, each in one transaction:
/// a step that fails writes nothing.
fn migrate(db: &Database, path: &Path) -> Result<(), StoreError> {
    let found = schema_version_at(&db.begin_read()?, path)?.unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found,
        });
    }
    for version in found..SCHEMA_VERSION {
        let txn = db.begin_write()?;
        MIGRATIONS[version as usize](&txn).map_err(|e| corrupt(path, e))?;
        meta::set_schema_version(&txn, version + 1)?;
        txn.commit()?;
        tracing::info!(from = version, to = version + 1, "store migrated");
    }
    Ok(())
}

type Migration = fn(&redb::WriteTransaction) -> Result<(), StoreError>;

/// `MIGRATIONS[v]` takes a file from version v to v + 1.
const MIGRATIONS: [Migration; SCHEMA_VERSION as usize] = [
    // 0 → 1: a new file gets its tables.
    tables::create_all,
    // 1 → 2: outbox rows become the store's own call records.
    outbox::calls_from_actions,
    // 2 → 3: the admin panel's accounts, sessions and audit log.
    tables::create_all,
    // 3 → 4: sessions keep a service's internal id, state and data.
    sessions::sessions_gain_service_fields,
    // 4 → 5: LLM dialogs, their turns, personality choices and usage.
    tables::create_all,
];

#[cfg(test)]
mod tests {
    use super::*;
    use records::UserDelta;
    use std::time::Duration;

    /// Writes that queue while a commit is busy share the next one; a failing job among
    /// them is retried alone and fails alone, and the others are written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_writes_share_a_commit_and_a_failing_one_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let batches = Arc::new(Mutex::new(Vec::new()));
        store.observe_commits(Arc::new({
            let batches = batches.clone();
            move |_, jobs| batches.lock().unwrap().push(jobs)
        }));
        let (started, writer_busy) = std::sync::mpsc::channel();
        let busy = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .write(move |_| {
                        let _ = started.send(());
                        std::thread::sleep(Duration::from_millis(500));
                        Ok(())
                    })
                    .await
            }
        });
        tokio::task::spawn_blocking(move || writer_busy.recv())
            .await
            .unwrap()
            .unwrap();
        let users: Vec<_> = (1..=9)
            .map(|id| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .update_user(UserDelta::new(id, crate::calendar::UnixSecs(1_000)))
                        .await
                })
            })
            .collect();
        let failing = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .write(|_| Err::<(), _>(StoreError::CommitFailed("refused".into())))
                    .await
            }
        });
        busy.await.unwrap().unwrap();
        for user in users {
            user.await.unwrap().unwrap();
        }
        let err = failing.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("refused"), "{err}");
        for id in 1..=9 {
            assert!(store.user(id).unwrap().is_some(), "user {id} was written");
        }
        let batches = batches.lock().unwrap().clone();
        assert!(batches.iter().any(|&jobs| jobs > 1), "{batches:?}");
    }

    /// A call Telegram settled leaves the outbox without waiting for the disk.
    #[tokio::test]
    async fn settled_calls_leave_the_outbox_lazily() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let call = OutboxCall {
            method: "sendMessage".into(),
            chat_id: Some(1),
            params: br#"{"chat_id":1,"text":"hi"}"#.to_vec(),
        };
        let entries = store
            .enqueue_outbox(vec![call.clone(), call])
            .await
            .unwrap();
        assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        store.outbox_done(entries[0].seq).await.unwrap();
        assert_eq!(store.pending_outbox().unwrap(), entries[1..]);
    }
}
