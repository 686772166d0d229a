//! Inference off the async runtime: a few dedicated threads take requests in batches from
//! the one batching primitive (`crate::batch`) and answer each caller through a oneshot
//! channel.

use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::batch;
use crate::ml::{Analysis, MlError, Models};

/// Enough to amortise the per-batch wake-up without making the first caller wait long.
const MAX_BATCH: usize = 64;

struct Job {
    text: String,
    reply: oneshot::Sender<Analysis>,
}

pub(crate) struct InferencePool {
    queue: Option<batch::Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl InferencePool {
    /// Starts `threads` workers (at least one) behind a queue of `queue` requests (at least
    /// one); callers wait for room when it is full, which is the back-pressure.
    pub fn new(models: Arc<Models>, threads: usize, queue: usize) -> Self {
        let (tx, batches) = batch::channel::<Job>(queue, MAX_BATCH);
        let workers = (0..threads.max(1))
            .map(|i| {
                let batches = batches.clone();
                let models = Arc::clone(&models);
                std::thread::Builder::new()
                    .name(format!("edgebot-ml-{i}"))
                    .spawn(move || worker(&models, &batches))
                    .expect("spawning an inference thread")
            })
            .collect();
        Self {
            queue: Some(tx),
            workers,
        }
    }

    pub(crate) async fn analyze(&self, text: String) -> Result<Analysis, MlError> {
        let queue = self.queue.as_ref().ok_or(MlError::PoolClosed)?;
        let (reply, answer) = oneshot::channel();
        queue
            .send(Job { text, reply })
            .await
            .map_err(|_| MlError::PoolClosed)?;
        answer.await.map_err(|_| MlError::PoolClosed)
    }
}

fn worker(models: &Models, batches: &batch::Batches<Job>) {
    while let Some(jobs) = batches.next_batch() {
        let texts: Vec<&str> = jobs.iter().map(|j| j.text.as_str()).collect();
        let results = models.analyze_batch(&texts);
        tracing::trace!(batch = jobs.len(), "analysed a batch");
        for (job, analysis) in jobs.into_iter().zip(results) {
            // The caller may have stopped waiting; its answer is simply dropped.
            let _ = job.reply.send(analysis);
        }
    }
}

impl Drop for InferencePool {
    fn drop(&mut self) {
        // Closing the queue lets each worker finish its batch and exit.
        self.queue.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The committed model files, mapped: present whether or not they are compiled in.
    fn models() -> Arc<Models> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
        Arc::new(Models::load(Some(&dir)).unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_get_their_own_answers() {
        let models = models();
        let pool = Arc::new(InferencePool::new(Arc::clone(&models), 2, 8));
        let texts: Vec<String> = (0..100)
            .map(|i| format!("message number {i} hello"))
            .collect();
        let tasks: Vec<_> = texts
            .iter()
            .cloned()
            .map(|t| {
                let pool = Arc::clone(&pool);
                tokio::spawn(async move { pool.analyze(t).await })
            })
            .collect();
        for (t, task) in texts.iter().zip(tasks) {
            let got = task.await.unwrap().unwrap();
            let want = models.analyze(t);
            assert_eq!(got.spam.score, want.spam.score);
            assert_eq!(got.sentiment.label, want.sentiment.label);
        }
    }

    #[test]
    fn dropping_the_pool_ends_its_threads() {
        let pool = InferencePool::new(models(), 3, 4);
        assert_eq!(pool.workers.len(), 3);
        // Drop joins every worker: returning at all is the proof that they ended.
        drop(pool);
    }
}
