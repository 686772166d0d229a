//! The single writer: one thread that owns every write transaction.
//!
//! Writes from all tasks queue here and are applied together in one transaction and one
//! fsync (group commit): while a commit is on disk, the next batch gathers. A job is a
//! closure over the open tables; it is told its result only after the commit is durable.
//! When one job fails, the batch is rolled back and its jobs are retried one by one, so
//! a bad job never takes the others down with it.

use super::StoreError;
use super::tables::{
    EMBEDDINGS, EVENTS, INBOX, MALFORMED, META, OUTBOX, PROCESSED, SESSIONS, USERS,
};
use redb::{Database, Durability, ReadableTable, Table, WriteTransaction};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// The most jobs one transaction carries; bounds the latency a batch adds.
const MAX_BATCH: usize = 1024;

/// Every table, opened once per transaction, plus the sequence counters.
pub struct Tables<'txn> {
    pub meta: Table<'txn, u32, &'static [u8]>,
    pub users: Table<'txn, i64, &'static [u8]>,
    pub sessions: Table<'txn, (i64, i64), &'static [u8]>,
    pub inbox: Table<'txn, i64, &'static [u8]>,
    pub processed: Table<'txn, i64, i64>,
    pub malformed: Table<'txn, u64, &'static [u8]>,
    pub events: Table<'txn, u64, &'static [u8]>,
    pub outbox: Table<'txn, u64, &'static [u8]>,
    pub embeddings: Table<'txn, (u64, u64), &'static [u8]>,
    pub seq: &'txn mut Sequences,
}

/// The next key of each append-only table. Kept in memory; derived from the last key at
/// start, and only advanced by jobs of transactions that commit.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sequences {
    pub event: u64,
    pub outbox: u64,
    pub malformed: u64,
}

impl Sequences {
    fn read(db: &Database) -> Result<Sequences, StoreError> {
        use redb::ReadableDatabase;
        let txn = db.begin_read()?;
        let next = |def| -> Result<u64, StoreError> {
            let table = txn.open_table(def)?;
            Ok(table.last()?.map_or(1, |(k, _)| k.value() + 1))
        };
        Ok(Sequences {
            event: next(EVENTS)?,
            outbox: next(OUTBOX)?,
            malformed: next(MALFORMED)?,
        })
    }
}

type Work<T> = Box<dyn for<'a> FnMut(&mut Tables<'a>) -> Result<T, StoreError> + Send>;

trait Job: Send {
    fn apply(&mut self, tables: &mut Tables<'_>) -> Result<(), StoreError>;
    fn complete(self: Box<Self>, outcome: Result<(), StoreError>);
    /// Whether the job needs an fsync before it completes.
    fn durable(&self) -> bool;
}

struct Pending<T> {
    work: Work<T>,
    output: Option<T>,
    reply: oneshot::Sender<Result<T, StoreError>>,
    durable: bool,
}

impl<T: Send> Job for Pending<T> {
    fn durable(&self) -> bool {
        self.durable
    }

    fn apply(&mut self, tables: &mut Tables<'_>) -> Result<(), StoreError> {
        self.output = Some((self.work)(tables)?);
        Ok(())
    }

    fn complete(self: Box<Self>, outcome: Result<(), StoreError>) {
        let Pending { output, reply, .. } = *self;
        let result = outcome.map(|()| output.expect("applied before completion"));
        // The caller may have gone away (a dropped request); the write stands regardless.
        let _ = reply.send(result);
    }
}

/// Told the duration and job count of every commit (for the metrics).
pub type CommitObserver = Arc<dyn Fn(std::time::Duration, usize) + Send + Sync>;

/// The handle through which tasks submit writes.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the writer thread over `db`. The thread ends, and releases the file, once
    /// every handle is dropped and the queue is drained.
    pub fn start(
        db: Arc<Database>,
        queue: usize,
        observer: Arc<std::sync::Mutex<Option<CommitObserver>>>,
    ) -> Result<(Writer, std::thread::JoinHandle<()>), StoreError> {
        let seq = Sequences::read(&db)?;
        let (jobs, rx) = mpsc::channel(queue);
        let thread = std::thread::Builder::new()
            .name("edgebot-store-writer".into())
            .spawn(move || run(db, rx, seq, observer))
            .map_err(StoreError::Thread)?;
        Ok((Writer { jobs }, thread))
    }

    /// Runs `work` inside the next group commit; resolves once it is durable.
    pub async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'a> FnMut(&mut Tables<'a>) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(work, true).await
    }

    /// Runs `work` inside the next group commit without waiting for the disk: it becomes
    /// durable with the next durable commit. For writes whose loss in a crash is harmless
    /// (forgetting that an action was sent only means sending it again).
    pub async fn write_lazily<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'a> FnMut(&mut Tables<'a>) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(work, false).await
    }

    async fn submit<T, F>(&self, work: F, durable: bool) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'a> FnMut(&mut Tables<'a>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, result) = oneshot::channel();
        let job = Box::new(Pending {
            work: Box::new(work),
            output: None,
            reply,
            durable,
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| StoreError::WriterGone)?;
        result.await.map_err(|_| StoreError::WriterGone)?
    }
}

fn run(
    db: Arc<Database>,
    mut rx: mpsc::Receiver<Box<dyn Job>>,
    mut seq: Sequences,
    observer: Arc<std::sync::Mutex<Option<CommitObserver>>>,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let committed = commit(&db, &mut batch, &mut seq);
        if let Some(observe) = observer.lock().expect("observer lock").as_ref() {
            observe(started.elapsed(), batch.len());
        }
        match committed {
            Ok(()) => batch.drain(..).for_each(|job| job.complete(Ok(()))),
            Err(BatchError::Commit(e)) => {
                tracing::error!(error = %e, jobs = batch.len(), "store commit failed");
                let message = e.to_string();
                batch
                    .drain(..)
                    .for_each(|job| job.complete(Err(StoreError::CommitFailed(message.clone()))));
            }
            Err(BatchError::Job) => {
                for mut job in batch.drain(..) {
                    let outcome = commit_one(&db, job.as_mut(), &mut seq);
                    job.complete(outcome);
                }
            }
        }
    }
}

enum BatchError {
    /// A job failed: nothing was written; retry the jobs one by one.
    Job,
    /// The transaction itself could not be written (a full disk, an I/O error).
    Commit(StoreError),
}

fn open_tables<'txn>(
    txn: &'txn WriteTransaction,
    seq: &'txn mut Sequences,
) -> Result<Tables<'txn>, StoreError> {
    Ok(Tables {
        meta: txn.open_table(META)?,
        users: txn.open_table(USERS)?,
        sessions: txn.open_table(SESSIONS)?,
        inbox: txn.open_table(INBOX)?,
        processed: txn.open_table(PROCESSED)?,
        malformed: txn.open_table(MALFORMED)?,
        events: txn.open_table(EVENTS)?,
        outbox: txn.open_table(OUTBOX)?,
        embeddings: txn.open_table(EMBEDDINGS)?,
        seq,
    })
}

fn commit(
    db: &Database,
    batch: &mut [Box<dyn Job>],
    seq: &mut Sequences,
) -> Result<(), BatchError> {
    let mut txn = db.begin_write().map_err(|e| BatchError::Commit(e.into()))?;
    if !batch.iter().any(|job| job.durable()) {
        txn.set_durability(Durability::None)
            .map_err(|e| BatchError::Commit(StoreError::CommitFailed(e.to_string())))?;
    }
    let mut staged = *seq;
    {
        let mut tables = open_tables(&txn, &mut staged).map_err(BatchError::Commit)?;
        for job in batch.iter_mut() {
            if job.apply(&mut tables).is_err() {
                return Err(BatchError::Job);
            }
        }
    }
    txn.commit().map_err(|e| BatchError::Commit(e.into()))?;
    *seq = staged;
    Ok(())
}

fn commit_one(db: &Database, job: &mut dyn Job, seq: &mut Sequences) -> Result<(), StoreError> {
    let mut txn = db.begin_write()?;
    if !job.durable() {
        txn.set_durability(Durability::None)
            .map_err(|e| StoreError::CommitFailed(e.to_string()))?;
    }
    let mut staged = *seq;
    {
        let mut tables = open_tables(&txn, &mut staged)?;
        job.apply(&mut tables)?;
    }
    txn.commit()?;
    *seq = staged;
    Ok(())
}
