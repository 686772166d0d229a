//! The store: one redb file holding users, sessions, the inbox, the outbox and events.
//!
//! Reads open their own MVCC snapshot and never wait for writers. Writes all go through
//! the single [`writer::Writer`] thread, which group-commits them. Opening the file checks
//! its schema version first: a file written by a newer edgebot is refused and left
//! untouched; a corrupt file is reported, never recreated.

pub mod codec;
pub mod records;
pub mod tables;
pub mod writer;

use crate::telegram::methods::Action;
use records::{Event, EventKind, MalformedUpdate, Session, SessionChange, UserDelta, UserRecord};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tables::{
    EMBEDDINGS, EVENTS, INBOX, MALFORMED, META, MetaKey, OUTBOX, PROCESSED, SESSIONS, USERS,
};
pub use writer::Tables;

/// The layout version this build writes. Files of a lower version are migrated at open.
pub const SCHEMA_VERSION: u32 = 1;

/// The file name inside the data directory.
pub const FILE_NAME: &str = "edgebot.redb";

/// How many finished update ids are remembered for deduplication. Telegram redelivers
/// only recent updates, so older ids are pruned.
const PROCESSED_WINDOW: i64 = 1_000_000;

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
    #[error("store: a stored value is unreadable: {0}")]
    Codec(#[from] codec::CodecError),
    #[error("store: a stored action is unreadable: {0}")]
    Json(#[from] serde_json::Error),
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
    pub finished_at: i64,
    pub users: Vec<UserDelta>,
    pub events: Vec<Event>,
    pub session: Option<SessionChange>,
    pub outbox: Vec<Action>,
}

/// An action waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    #[serde(skip)]
    pub seq: u64,
    pub update_id: i64,
    pub action: Action,
}

/// The outcome of [`Store::finish`].
#[derive(Debug, Clone, PartialEq)]
pub enum Finished {
    /// Committed; these actions now wait in the outbox.
    Committed(Vec<OutboxEntry>),
    /// The update had been finished before (a replay or redelivery); nothing changed.
    AlreadyFinished,
}

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
}

/// A handle to the open store; cheap to clone. The file is closed when the last handle
/// is dropped, after the writer finished what was queued.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<Database>,
    observer: Arc<std::sync::Mutex<Option<writer::CommitObserver>>>,
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

pub fn now_secs() -> i64 {
    now_ms() / 1000
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Store {
    /// Opens (or creates) `DIR/edgebot.redb`, checks its version and migrates it.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
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
            .create(&path)
            .map_err(|e| open_error(&path, e))?;
        migrate(&db, &path)?;
        let db = Arc::new(db);
        let observer = Arc::new(std::sync::Mutex::new(None));
        let (writer, thread) = writer::Writer::start(db.clone(), 8192, observer.clone())?;
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

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Reports each group commit's duration and size to `observer` from now on.
    pub fn observe_commits(&self, observer: writer::CommitObserver) {
        *self.inner.observer.lock().expect("observer lock") = Some(observer);
    }

    fn db(&self) -> &Database {
        &self.inner.db
    }

    /// Runs `work` in the next group commit. For writes the typed methods don't cover.
    pub async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'a> FnMut(&mut Tables<'a>) -> Result<T, StoreError> + Send + 'static,
    {
        match &self.inner.writer {
            Some(writer) => writer.write(work).await,
            None => Err(StoreError::WriterGone),
        }
    }

    /// Durably records a delivered update, unless it is a duplicate.
    pub async fn append_inbox(
        &self,
        update_id: i64,
        raw: bytes::Bytes,
    ) -> Result<Appended, StoreError> {
        self.write(move |t| {
            if t.inbox.get(update_id)?.is_some() || t.processed.get(update_id)?.is_some() {
                return Ok(Appended::Duplicate);
            }
            t.inbox.insert(update_id, raw.as_ref())?;
            Ok(Appended::New)
        })
        .await
    }

    /// Durably records a batch of updates in one transaction: each is new or a duplicate.
    pub async fn append_inbox_batch(
        &self,
        items: Vec<(i64, bytes::Bytes)>,
    ) -> Result<Vec<Appended>, StoreError> {
        self.write(move |t| {
            let mut outcomes = Vec::with_capacity(items.len());
            for (update_id, raw) in &items {
                let seen =
                    t.inbox.get(*update_id)?.is_some() || t.processed.get(*update_id)?.is_some();
                if seen {
                    outcomes.push(Appended::Duplicate);
                } else {
                    t.inbox.insert(*update_id, raw.as_ref())?;
                    outcomes.push(Appended::New);
                }
            }
            Ok(outcomes)
        })
        .await
    }

    /// Keeps a body that did not parse, for inspection; returns its sequence number. When
    /// its `update_id` could still be read, the id counts as finished, so a redelivery is
    /// skipped and long polling moves past it.
    pub async fn record_malformed(
        &self,
        record: MalformedUpdate,
        update_id: Option<i64>,
    ) -> Result<u64, StoreError> {
        let value = codec::encode(&record);
        self.write(move |t| {
            if let Some(id) = update_id {
                t.processed.insert(id, record.received_at)?;
            }
            let seq = t.seq.malformed;
            t.malformed.insert(seq, value.as_slice())?;
            t.seq.malformed += 1;
            Ok(seq)
        })
        .await
    }

    /// Commits everything `finish` changes, atomically with the update's removal from the
    /// inbox. An update finished before changes nothing.
    pub async fn finish(&self, finish: Finish) -> Result<Finished, StoreError> {
        let encoded: Vec<Vec<u8>> = finish
            .outbox
            .iter()
            .map(|action| {
                codec_json(&OutboxEntry {
                    seq: 0,
                    update_id: finish.update_id,
                    action: action.clone(),
                })
            })
            .collect::<Result<_, _>>()?;
        self.write(move |t| {
            let id = finish.update_id;
            if t.processed.get(id)?.is_some() {
                t.inbox.remove(id)?;
                return Ok(Finished::AlreadyFinished);
            }
            for delta in &finish.users {
                apply_user_delta(t, delta, finish.finished_at)?;
            }
            for event in &finish.events {
                append_event(t, event)?;
            }
            match &finish.session {
                Some(SessionChange::Set {
                    chat_id,
                    user_id,
                    session,
                }) => {
                    t.sessions
                        .insert((*chat_id, *user_id), codec::encode(session).as_slice())?;
                }
                Some(SessionChange::Clear { chat_id, user_id }) => {
                    t.sessions.remove((*chat_id, *user_id))?;
                }
                None => {}
            }
            let mut entries = Vec::with_capacity(finish.outbox.len());
            for (action, value) in finish.outbox.iter().zip(&encoded) {
                let seq = t.seq.outbox;
                t.outbox.insert(seq, value.as_slice())?;
                t.seq.outbox += 1;
                entries.push(OutboxEntry {
                    seq,
                    update_id: id,
                    action: action.clone(),
                });
            }
            t.inbox.remove(id)?;
            t.processed.insert(id, finish.finished_at)?;
            if id % 4096 == 0 {
                t.processed
                    .retain_in(..id.saturating_sub(PROCESSED_WINDOW), |_, _| false)?;
            }
            Ok(Finished::Committed(entries))
        })
        .await
    }

    /// Commits actions that no update caused (an admin's message) to the outbox.
    pub async fn enqueue_outbox(
        &self,
        actions: Vec<Action>,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let encoded: Vec<(Action, Vec<u8>)> = actions
            .into_iter()
            .map(|action| {
                let value = codec_json(&OutboxEntry {
                    seq: 0,
                    update_id: 0,
                    action: action.clone(),
                })?;
                Ok((action, value))
            })
            .collect::<Result<_, StoreError>>()?;
        self.write(move |t| {
            let mut entries = Vec::with_capacity(encoded.len());
            for (action, value) in &encoded {
                let seq = t.seq.outbox;
                t.outbox.insert(seq, value.as_slice())?;
                t.seq.outbox += 1;
                entries.push(OutboxEntry {
                    seq,
                    update_id: 0,
                    action: action.clone(),
                });
            }
            Ok(entries)
        })
        .await
    }

    /// Removes an action Telegram accepted (or permanently refused) from the outbox.
    /// Lazily durable: after a crash an action may be sent once more, never lost.
    pub async fn outbox_done(&self, seq: u64) -> Result<(), StoreError> {
        let work = move |t: &mut Tables<'_>| {
            t.outbox.remove(seq)?;
            Ok(())
        };
        match &self.inner.writer {
            Some(writer) => writer.write_lazily(work).await,
            None => Err(StoreError::WriterGone),
        }
    }

    /// Applies an administrative change to a user and returns the result.
    pub async fn update_user(&self, delta: UserDelta) -> Result<UserRecord, StoreError> {
        self.write(move |t| apply_user_delta(t, &delta, delta.seen_at))
            .await
    }

    /// Appends analytics events outside of an update (e.g. the sender learning that a
    /// user blocked the bot).
    pub async fn append_events(&self, events: Vec<Event>) -> Result<(), StoreError> {
        self.write(move |t| {
            for event in &events {
                append_event(t, event)?;
            }
            Ok(())
        })
        .await
    }

    /// Forgets a user: their record, sessions and events. Returns whether they existed.
    pub async fn delete_user(&self, id: i64) -> Result<bool, StoreError> {
        self.write(move |t| {
            let existed = t.users.remove(id)?.is_some();
            t.sessions.retain(|(_, user), _| user != id)?;
            t.events.retain(|_, value| {
                codec::decode::<Event>(value).map_or(true, |e| e.user_id != Some(id))
            })?;
            Ok(existed)
        })
        .await
    }

    /// The next update id of the console transport, which has no Telegram to number them.
    pub async fn next_console_update_id(&self) -> Result<i64, StoreError> {
        self.write(|t| {
            let key = MetaKey::ConsoleUpdateId as u32;
            let next = match t.meta.get(key)? {
                Some(v) => i64::from_le_bytes(v.value().try_into().unwrap_or([0; 8])),
                None => 1,
            };
            t.meta.insert(key, (next + 1).to_le_bytes().as_slice())?;
            Ok(next)
        })
        .await
    }

    /// The webhook secret generated once and kept, when none is configured.
    pub async fn webhook_secret(&self) -> Result<String, StoreError> {
        let mut fresh = [0u8; 24];
        getrandom::fill(&mut fresh).map_err(|e| StoreError::CommitFailed(e.to_string()))?;
        let fresh: String = fresh.iter().map(|b| format!("{b:02x}")).collect();
        self.write(move |t| {
            let key = MetaKey::WebhookSecret as u32;
            if let Some(v) = t.meta.get(key)? {
                return Ok(String::from_utf8_lossy(v.value()).into_owned());
            }
            t.meta.insert(key, fresh.as_bytes())?;
            Ok(fresh.clone())
        })
        .await
    }

    pub fn user(&self, id: i64) -> Result<Option<UserRecord>, StoreError> {
        let txn = self.db().begin_read()?;
        let table = txn.open_table(USERS)?;
        let user = table.get(id)?;
        Ok(match user {
            Some(v) => Some(codec::decode(v.value())?),
            None => None,
        })
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
            .map(|entry| Ok(codec::decode(entry?.1.value())?))
            .collect()
    }

    /// The live session of a user in a chat, if one is waiting and not expired.
    pub fn session(
        &self,
        chat_id: i64,
        user_id: i64,
        now: i64,
    ) -> Result<Option<Session>, StoreError> {
        let txn = self.db().begin_read()?;
        let table = txn.open_table(SESSIONS)?;
        let Some(value) = table.get((chat_id, user_id))? else {
            return Ok(None);
        };
        let session: Session = codec::decode(value.value())?;
        Ok((session.expires_at > now).then_some(session))
    }

    /// A cached embedding of a text under a model, if one was stored.
    pub fn embedding(&self, model: u64, text: u64) -> Result<Option<Vec<f32>>, StoreError> {
        let txn = self.db().begin_read()?;
        let table = txn.open_table(EMBEDDINGS)?;
        let value = table.get((model, text))?;
        Ok(value.map(|v| {
            v.value()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        }))
    }

    pub async fn put_embedding(
        &self,
        model: u64,
        text: u64,
        vector: &[f32],
    ) -> Result<(), StoreError> {
        let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.write(move |t| {
            t.embeddings.insert((model, text), bytes.as_slice())?;
            Ok(())
        })
        .await
    }

    /// Where long polling resumes: past every update received, finished or not.
    pub fn poll_offset(&self) -> Result<i64, StoreError> {
        let txn = self.db().begin_read()?;
        let inbox = txn.open_table(INBOX)?.last()?.map(|(k, _)| k.value());
        let processed = txn.open_table(PROCESSED)?.last()?.map(|(k, _)| k.value());
        Ok(inbox.max(processed).map_or(0, |id| id + 1))
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

    /// Actions committed but not yet sent, in commit order.
    pub fn pending_outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        let txn = self.db().begin_read()?;
        let table = txn.open_table(OUTBOX)?;
        table
            .iter()?
            .map(|entry| {
                let (k, v) = entry?;
                let mut entry: OutboxEntry = decode_json(v.value())?;
                entry.seq = k.value();
                Ok(entry)
            })
            .collect()
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
                Ok((k.value(), codec::decode(v.value())?))
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
                Ok((k.value(), codec::decode(v.value())?))
            })
            .collect()
    }

    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let txn = self.db().begin_read()?;
        let file_bytes = std::fs::metadata(self.path()).map_or(0, |m| m.len());
        Ok(StoreStats {
            path: self.path().to_owned(),
            file_bytes,
            schema_version: read_schema_version(&txn)?.unwrap_or(0),
            users: txn.open_table(USERS)?.len()?,
            sessions: txn.open_table(SESSIONS)?.len()?,
            inbox: txn.open_table(INBOX)?.len()?,
            processed: txn.open_table(PROCESSED)?.len()?,
            outbox: txn.open_table(OUTBOX)?.len()?,
            events: txn.open_table(EVENTS)?.len()?,
            malformed: txn.open_table(MALFORMED)?.len()?,
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
        copy_table(&snapshot, &out, META)?;
        copy_table(&snapshot, &out, USERS)?;
        copy_table(&snapshot, &out, SESSIONS)?;
        copy_table(&snapshot, &out, INBOX)?;
        copy_table(&snapshot, &out, PROCESSED)?;
        copy_table(&snapshot, &out, MALFORMED)?;
        copy_table(&snapshot, &out, EVENTS)?;
        copy_table(&snapshot, &out, OUTBOX)?;
        copy_table(&snapshot, &out, EMBEDDINGS)?;
        out.commit()?;
        Ok(())
    }
}

fn copy_table<K, V>(
    from: &redb::ReadTransaction,
    to: &redb::WriteTransaction,
    def: redb::TableDefinition<K, V>,
) -> Result<(), StoreError>
where
    K: redb::Key + 'static,
    V: redb::Value + 'static,
    for<'a> K::SelfType<'a>: std::borrow::Borrow<K::SelfType<'a>>,
{
    let source = from.open_table(def)?;
    let mut target = to.open_table(def)?;
    for entry in source.iter()? {
        let (k, v) = entry?;
        target.insert(k.value(), v.value())?;
    }
    Ok(())
}

fn apply_user_delta(
    t: &mut Tables<'_>,
    delta: &UserDelta,
    now: i64,
) -> Result<UserRecord, StoreError> {
    let before: Option<UserRecord> = match t.users.get(delta.id)? {
        Some(v) => Some(codec::decode(v.value())?),
        None => None,
    };
    let created = before.is_none();
    let user = delta.apply(before);
    t.users.insert(delta.id, codec::encode(&user).as_slice())?;
    if created {
        let referrer = match user.referrer {
            Some(id) => t
                .users
                .get(id)?
                .map(|v| codec::decode::<UserRecord>(v.value())),
            None => None,
        };
        if let Some(referrer) = referrer {
            let mut referrer = referrer?;
            referrer.referrals += 1;
            t.users
                .insert(referrer.id, codec::encode(&referrer).as_slice())?;
        }
        append_event(
            t,
            &Event {
                at_ms: now * 1000,
                user_id: Some(delta.id),
                chat_id: None,
                kind: EventKind::UserJoined {
                    referrer: user.referrer,
                },
            },
        )?;
    }
    Ok(user)
}

fn append_event(t: &mut Tables<'_>, event: &Event) -> Result<(), StoreError> {
    let seq = t.seq.event;
    t.events.insert(seq, codec::encode(event).as_slice())?;
    t.seq.event += 1;
    Ok(())
}

/// Outbox entries are Bot API actions, kept as JSON behind the version byte.
fn codec_json<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![codec::VALUE_VERSION];
    serde_json::to_writer(&mut out, value)?;
    Ok(out)
}

fn decode_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&codec::VALUE_VERSION, rest)) => Ok(serde_json::from_slice(rest)?),
        Some((&v, _)) => Err(codec::CodecError::UnknownVersion(v).into()),
        None => Err(codec::CodecError::Empty.into()),
    }
}

fn read_schema_version(txn: &redb::ReadTransaction) -> Result<Option<u32>, StoreError> {
    let table = match txn.open_table(META) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let version = table.get(MetaKey::SchemaVersion as u32)?;
    Ok(version.map(|v| u32::from_le_bytes(v.value().try_into().unwrap_or([0xff; 4]))))
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
    let txn = db.begin_read()?;
    match read_schema_version(&txn)? {
        Some(found) if found > SCHEMA_VERSION => Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found,
        }),
        _ => Ok(()),
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

/// Brings a file up to [`SCHEMA_VERSION`], one step per version, each in one transaction.
fn migrate(db: &Database, path: &Path) -> Result<(), StoreError> {
    let found = read_schema_version(&db.begin_read()?)?.unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found,
        });
    }
    for version in found..SCHEMA_VERSION {
        let txn = db.begin_write()?;
        MIGRATIONS[version as usize](&txn)?;
        txn.open_table(META)?.insert(
            MetaKey::SchemaVersion as u32,
            (version + 1).to_le_bytes().as_slice(),
        )?;
        txn.commit()?;
        tracing::info!(from = version, to = version + 1, "store migrated");
    }
    Ok(())
}

type Migration = fn(&redb::WriteTransaction) -> Result<(), StoreError>;

/// `MIGRATIONS[v]` takes a file from version v to v + 1.
const MIGRATIONS: [Migration; SCHEMA_VERSION as usize] = [create_tables_v1];

fn create_tables_v1(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(META)?;
    txn.open_table(USERS)?;
    txn.open_table(SESSIONS)?;
    txn.open_table(INBOX)?;
    txn.open_table(PROCESSED)?;
    txn.open_table(MALFORMED)?;
    txn.open_table(EVENTS)?;
    txn.open_table(OUTBOX)?;
    txn.open_table(EMBEDDINGS)?;
    Ok(())
}
