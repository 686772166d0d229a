//! Inference off the async runtime: a few dedicated threads take requests from a bounded
//! queue, batch whatever is waiting, and answer each caller through a oneshot channel.

use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use crate::ml::{Analysis, MlError, Models};

/// Enough to amortise the per-batch wake-up without making the first caller wait long.
const MAX_BATCH: usize = 64;

struct Job {
    text: String,
    reply: oneshot::Sender<Analysis>,
}

pub struct InferencePool {
    queue: Option<mpsc::Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl InferencePool {
    /// Starts `threads` workers (at least one) behind a queue of `queue` requests (at least
    /// one); callers wait for room when it is full, which is the back-pressure.
    pub fn new(models: Arc<Models>, threads: usize, queue: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Job>(queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..threads.max(1))
            .map(|i| {
                let rx = Arc::clone(&rx);
                let models = Arc::clone(&models);
                std::thread::Builder::new()
                    .name(format!("edgebot-ml-{i}"))
                    .spawn(move || worker(&models, &rx))
                    .expect("spawning an inference thread")
            })
            .collect();
        Self {
            queue: Some(tx),
            workers,
        }
    }

    pub async fn analyze(&self, text: String) -> Result<Analysis, MlError> {
        let queue = self.queue.as_ref().ok_or(MlError::PoolClosed)?;
        let (reply, answer) = oneshot::channel();
        queue
            .send(Job { text, reply })
            .await
            .map_err(|_| MlError::PoolClosed)?;
        answer.await.map_err(|_| MlError::PoolClosed)
    }
}

fn worker(models: &Models, rx: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let jobs = {
            // A worker that panicked mid-batch released the lock already; the queue is intact.
            let mut rx = rx.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(first) = rx.blocking_recv() else {
                return;
            };
            let mut jobs = vec![first];
            while jobs.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            jobs
        };
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
    use crate::ml::model::HashBag;

    fn models() -> Arc<Models> {
        let dir = tempfile::tempdir().unwrap();
        for (task, labels) in [
            ("spam", vec!["ham", "spam"]),
            ("sentiment", vec!["negative", "neutral", "positive"]),
        ] {
            let mut m = crate::ml::model::tests::tiny_model();
            m.task = task.into();
            m.labels = labels.iter().map(|l| (*l).to_owned()).collect();
            m.head_weight = (0..labels.len() * m.dim).map(|i| i as f32 / 10.0).collect();
            m.head_bias = vec![0.0; labels.len()];
            let bytes = m
                .to_gguf(candle_core::quantized::GgmlDType::Q8_0, &Vec::new())
                .unwrap();
            HashBag::from_gguf(&bytes, task).unwrap();
            std::fs::write(dir.path().join(format!("{task}.gguf")), bytes).unwrap();
        }
        Arc::new(Models::load(Some(dir.path())).unwrap())
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
}
