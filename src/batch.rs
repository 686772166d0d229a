//! The one batching primitive, used by every thread that serves async callers in batches
//! (the store's writer, the model pools): callers queue items on a bounded channel (and
//! wait for room when it is full, which is the back-pressure); a worker thread blocks for
//! the first item, then takes whatever else is already waiting, up to a maximum. A lone
//! item is served at once, and a burst shares one commit or one forward pass.

use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::mpsc;

/// Where callers queue items; cheap to clone.
pub(crate) struct Sender<T>(mpsc::Sender<T>);

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender(self.0.clone())
    }
}

/// Where worker threads take batches; several threads may share one.
pub(crate) struct Batches<T> {
    queue: Arc<Mutex<mpsc::Receiver<T>>>,
    max_batch: usize,
}

impl<T> Clone for Batches<T> {
    fn clone(&self) -> Self {
        Batches {
            queue: self.queue.clone(),
            max_batch: self.max_batch,
        }
    }
}

/// The queue was closed: every worker is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the batch queue is closed")]
pub(crate) struct Closed;

/// A queue of at most `capacity` waiting items (at least one), taken `max_batch` at a
/// time (at least one).
pub(crate) fn channel<T>(capacity: usize, max_batch: usize) -> (Sender<T>, Batches<T>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (
        Sender(tx),
        Batches {
            queue: Arc::new(Mutex::new(rx)),
            max_batch: max_batch.max(1),
        },
    )
}

impl<T> Sender<T> {
    /// Queues `item`, waiting while the queue is full.
    pub(crate) async fn send(&self, item: T) -> Result<(), Closed> {
        self.0.send(item).await.map_err(|_| Closed)
    }
}

impl<T> Batches<T> {
    /// Blocks for the first item, then takes what else is waiting, up to the maximum.
    /// `None` once every sender is gone and the queue is empty. Must not be called from
    /// an async task: it blocks the thread.
    pub(crate) fn next_batch(&self) -> Option<Vec<T>> {
        // A worker that panicked mid-batch released the lock already; the queue is intact.
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let first = queue.blocking_recv()?;
        let mut batch = Vec::with_capacity(self.max_batch.min(queue.len() + 1));
        batch.push(first);
        while batch.len() < self.max_batch {
            match queue.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_what_waits_up_to_the_maximum_then_ends_when_closed() {
        let (tx, batches) = channel(16, 3);
        for i in 0..5 {
            tx.0.try_send(i).unwrap();
        }
        assert_eq!(batches.next_batch(), Some(vec![0, 1, 2]));
        assert_eq!(batches.next_batch(), Some(vec![3, 4]));
        drop(tx);
        assert_eq!(batches.next_batch(), None);
    }

    #[tokio::test]
    async fn a_lone_item_is_served_at_once() {
        let (tx, batches) = channel(4, 64);
        let worker = std::thread::spawn(move || batches.next_batch());
        tx.send("one").await.unwrap();
        assert_eq!(worker.join().unwrap(), Some(vec!["one"]));
        assert_eq!(tx.send("late").await, Err(Closed));
    }
}
