//! The single writer: one thread that owns every write transaction.
//!
//! Writes from all tasks queue on the crate's one batching primitive ([`crate::batch`])
//! and are applied together in one transaction and one fsync (group commit): while a
//! commit is on disk, the next batch gathers. A job is a closure over the open
//! [`Tables`]; it is told its result only after the commit is durable. When one job fails,
//! the batch is rolled back and its jobs are retried one by one, so a bad job never takes
//! the others down with it.

use super::StoreError;
use super::tables::{AUDIT, EVENTS, MALFORMED, OUTBOX, Tables};
use crate::batch;
use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
    WriteTransaction,
};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::oneshot;

/// The most jobs one transaction carries; bounds the latency a batch adds.
const MAX_BATCH: usize = 1024;

/// The next key of each append-only table. Kept in memory; derived from the last key at
/// start, and only advanced by jobs of transactions that commit.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Sequences {
    pub(super) event: u64,
    pub(super) outbox: u64,
    pub(super) malformed: u64,
    pub(super) audit: u64,
}

impl Sequences {
    fn read(db: &Database) -> Result<Sequences, StoreError> {
        let txn = db.begin_read()?;
        Ok(Sequences {
            event: next_key(&txn, EVENTS)?,
            outbox: next_key(&txn, OUTBOX)?,
            malformed: next_key(&txn, MALFORMED)?,
            audit: next_key(&txn, AUDIT)?,
        })
    }

    /// Hands out `counter` and moves it on. It saturates rather than overflows: a file
    /// whose last key is `u64::MAX` is damaged, and must not make the writer panic.
    pub(super) fn take(counter: &mut u64) -> u64 {
        let next = *counter;
        *counter = next.saturating_add(1);
        next
    }
}

fn next_key<V: redb::Value + 'static>(
    txn: &ReadTransaction,
    def: TableDefinition<u64, V>,
) -> Result<u64, StoreError> {
    let last = txn.open_table(def)?.last()?.map(|(k, _)| k.value());
    Ok(last.map_or(1, |k| k.saturating_add(1)))
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
        // A committed job was applied in the transaction that committed, so it has an
        // output; were it ever missing, the caller hears that the writer failed it.
        let result = outcome.and_then(|()| output.ok_or(StoreError::WriterGone));
        // The caller may have gone away (a dropped request); the write stands regardless.
        let _ = reply.send(result);
    }
}

/// Outbox calls settled (sent, or refused for good) and not yet removed from the table.
/// Every transaction removes them first, so their removal rides on whatever commit comes
/// next instead of costing one of its own; like any lazily durable write, it is durable
/// with the next durable commit, and lost in a crash before it (the call is then sent once
/// more, never lost).
#[derive(Clone, Default)]
pub(super) struct Settled(Arc<Mutex<Vec<u64>>>);

impl Settled {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u64>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn push(&self, seq: u64) {
        self.lock().push(seq);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn take(&self) -> Vec<u64> {
        std::mem::take(&mut *self.lock())
    }

    /// Puts back what a transaction that did not commit had taken.
    fn restore(&self, seqs: Vec<u64>) {
        if !seqs.is_empty() {
            self.lock().extend(seqs);
        }
    }
}

/// Told the duration and job count of every commit (for the metrics).
pub(crate) type CommitObserver = Arc<dyn Fn(std::time::Duration, usize) + Send + Sync>;

/// The handle through which tasks submit writes.
#[derive(Clone)]
pub(super) struct Writer {
    jobs: batch::Sender<Box<dyn Job>>,
    settled: Settled,
}

impl Writer {
    /// Starts the writer thread over `db`, with room for `queue` waiting jobs. The thread
    /// ends, and releases the file, once every handle is dropped and the queue is drained.
    pub(super) fn start(
        db: Arc<Database>,
        queue: usize,
        observer: Arc<Mutex<Option<CommitObserver>>>,
    ) -> Result<(Writer, std::thread::JoinHandle<()>), StoreError> {
        let seq = Sequences::read(&db)?;
        let (jobs, batches) = batch::channel(queue, MAX_BATCH);
        let settled = Settled::default();
        let thread = std::thread::Builder::new()
            .name("edgebot-store-writer".into())
            .spawn({
                let settled = settled.clone();
                move || run(&db, &batches, seq, &settled, &observer)
            })
            .map_err(StoreError::Thread)?;
        Ok((Writer { jobs, settled }, thread))
    }

    /// The outbox calls settled and waiting for the next commit to remove them.
    pub(super) fn settled(&self) -> &Settled {
        &self.settled
    }

    /// Runs `work` inside the next group commit; resolves once it is durable.
    pub(super) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'a> FnMut(&mut Tables<'a>) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(work, true).await
    }

    /// Runs `work` inside the next group commit without waiting for the disk: it becomes
    /// durable with the next durable commit. For writes whose loss in a crash is harmless
    /// (forgetting that an action was sent only means sending it again).
    pub(super) async fn write_lazily<T, F>(&self, work: F) -> Result<T, StoreError>
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
            .map_err(|batch::Closed| StoreError::WriterGone)?;
        result.await.map_err(|_| StoreError::WriterGone)?
    }
}

fn run(
    db: &Database,
    batches: &batch::Batches<Box<dyn Job>>,
    mut seq: Sequences,
    settled: &Settled,
    observer: &Mutex<Option<CommitObserver>>,
) {
    while let Some(mut batch) = batches.next_batch() {
        let started = std::time::Instant::now();
        let removals = settled.take();
        let committed = commit(db, &mut batch, &mut seq, &removals);
        if committed.is_err() {
            settled.restore(removals);
        }
        // An observer that panicked once must not stop the writer.
        if let Some(observe) = observer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            observe(started.elapsed(), batch.len());
        }
        match committed {
            Ok(()) => batch.into_iter().for_each(|job| job.complete(Ok(()))),
            Err(BatchError::Commit(e)) => {
                tracing::error!(error = %e, jobs = batch.len(), "store commit failed");
                let message = e.to_string();
                batch
                    .into_iter()
                    .for_each(|job| job.complete(Err(StoreError::CommitFailed(message.clone()))));
            }
            Err(BatchError::Job) => {
                for mut job in batch {
                    let removals = settled.take();
                    let outcome = commit_one(db, job.as_mut(), &mut seq, &removals);
                    if outcome.is_err() {
                        settled.restore(removals);
                    }
                    job.complete(outcome);
                }
            }
        }
    }
    // The queue is closed: what was settled since the last commit is removed before the
    // file closes, so a clean stop never sends a call twice.
    let removals = settled.take();
    if !removals.is_empty()
        && let Err(e) = remove_settled_durably(db, &mut seq, &removals)
    {
        tracing::warn!(error = %e, calls = removals.len(), "could not clear sent actions at close; they will be sent again");
    }
}

fn remove_settled_durably(
    db: &Database,
    seq: &mut Sequences,
    removals: &[u64],
) -> Result<(), StoreError> {
    let txn = begin(db, true)?;
    {
        let mut tables = Tables::open(&txn, seq)?;
        tables.remove_settled(removals)?;
    }
    txn.commit()?;
    Ok(())
}

enum BatchError {
    /// A job failed: nothing was written; retry the jobs one by one.
    Job,
    /// The transaction itself could not be written (a full disk, an I/O error).
    Commit(StoreError),
}

/// Starts a transaction that fsyncs at commit only if `durable`.
fn begin(db: &Database, durable: bool) -> Result<WriteTransaction, StoreError> {
    let mut txn = db.begin_write()?;
    if !durable {
        txn.set_durability(Durability::None)
            .map_err(|e| StoreError::CommitFailed(e.to_string()))?;
    }
    Ok(txn)
}

fn commit(
    db: &Database,
    batch: &mut [Box<dyn Job>],
    seq: &mut Sequences,
    removals: &[u64],
) -> Result<(), BatchError> {
    let durable = batch.iter().any(|job| job.durable());
    let txn = begin(db, durable).map_err(BatchError::Commit)?;
    let mut staged = *seq;
    {
        let mut tables = Tables::open(&txn, &mut staged).map_err(BatchError::Commit)?;
        tables
            .remove_settled(removals)
            .map_err(BatchError::Commit)?;
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

fn commit_one(
    db: &Database,
    job: &mut dyn Job,
    seq: &mut Sequences,
    removals: &[u64],
) -> Result<(), StoreError> {
    let txn = begin(db, job.durable())?;
    let mut staged = *seq;
    {
        let mut tables = Tables::open(&txn, &mut staged)?;
        tables.remove_settled(removals)?;
        job.apply(&mut tables)?;
    }
    txn.commit()?;
    *seq = staged;
    Ok(())
}
