//! Lanes: work keyed by chat, done in order within a key and in parallel across keys.
//!
//! Both the dispatcher (updates) and the sender (actions) need the same thing: one
//! chat's items strictly one after another, different chats at the same time, and no
//! task or queue left behind for a chat that went quiet. A lane exists only while it has
//! work: the first item spawns its task, the task drains the queue and removes the lane.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

type Work<T> = Arc<dyn Fn(i64, T) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

pub(crate) struct Lanes<T> {
    queues: Mutex<HashMap<i64, VecDeque<T>>>,
    work: Work<T>,
    /// Items queued or being worked on.
    pending: AtomicUsize,
    idle: Notify,
}

impl<T: Send + 'static> Lanes<T> {
    pub fn new<F, Fut>(work: F) -> Arc<Lanes<T>>
    where
        F: Fn(i64, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Arc::new(Lanes {
            queues: Mutex::new(HashMap::new()),
            work: Arc::new(move |key, item| Box::pin(work(key, item))),
            pending: AtomicUsize::new(0),
            idle: Notify::new(),
        })
    }

    /// Queues `item` behind the other items of `key`.
    pub(crate) fn push(self: &Arc<Self>, key: i64, item: T) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        let mut queues = self.queues.lock().expect("lanes lock");
        match queues.get_mut(&key) {
            Some(queue) => queue.push_back(item),
            None => {
                queues.insert(key, VecDeque::new());
                drop(queues);
                tokio::spawn(Arc::clone(self).drain(key, item));
            }
        }
    }

    async fn drain(self: Arc<Self>, key: i64, first: T) {
        let mut item = first;
        loop {
            (self.work)(key, item).await;
            let next = {
                let mut queues = self.queues.lock().expect("lanes lock");
                let next = queues.get_mut(&key).and_then(VecDeque::pop_front);
                if next.is_none() {
                    queues.remove(&key);
                }
                next
            };
            if self.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
                self.idle.notify_waiters();
            }
            match next {
                Some(n) => item = n,
                None => return,
            }
        }
    }

    /// Items queued or in progress, over all lanes.
    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// Resolves once every lane is empty.
    pub async fn drained(&self) {
        loop {
            let notified = self.idle.notified();
            if self.pending() == 0 {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn order_within_a_key_parallel_across_keys() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let lanes = Lanes::new(move |key, n: u32| {
            let log = log.clone();
            async move {
                // The slow chat must not hold back the fast one.
                if key == 1 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                log.lock().unwrap().push((key, n));
            }
        });
        for n in 0..20 {
            lanes.push(1, n);
            lanes.push(2, n);
        }
        lanes.drained().await;
        assert_eq!(lanes.pending(), 0);
        let seen = seen.lock().unwrap();
        for key in [1, 2] {
            let order: Vec<u32> = seen
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|(_, n)| *n)
                .collect();
            assert_eq!(order, (0..20).collect::<Vec<_>>());
        }
        let first_slow = seen.iter().position(|(k, _)| *k == 1).unwrap();
        assert!(
            first_slow > 10,
            "chat 2 finished its work while chat 1 slept"
        );
        assert!(
            lanes.queues.lock().unwrap().is_empty(),
            "no lane left behind"
        );
    }
}
