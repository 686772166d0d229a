//! The models as the bot uses them: text analysis (spam, sentiment) and FAQ answers by
//! meaning.
//!
//! The model library (`crate::ml`) knows nothing of Telegram or the store; this is where
//! it is wired up. Inference runs on the models' own threads, batching concurrent
//! requests, so a burst of messages never stalls the async runtime. FAQ questions are
//! embedded once per model and cached in the store.

use crate::config::{FaqEntry, ModelsConfig};
use crate::ml::features::Fnv1a;
use crate::ml::minilm::{EmbedError, EmbedPool, Embedder, cosine};
use crate::ml::weights::Weights;
#[cfg(feature = "embedded-models")]
use crate::ml::weights::include_aligned;
use crate::ml::{Analysis, InferencePool, MlError, Models};
use crate::store::{Store, StoreError};
use crate::telemetry::metrics::{Metrics, ModelLabels};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum MlLoadError {
    #[error("models: {0}")]
    Classifiers(#[from] MlError),
    #[error("models: {0}")]
    Embedder(#[from] EmbedError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "models: no embedding model is compiled into this build; set models.dir to a directory with {EMBEDDER_FILE}"
    )]
    NotEmbedded,
    #[error("models: loading stopped unexpectedly: {0}")]
    Panicked(String),
}

/// The embedding model file inside `models.dir`, or compiled in.
pub(crate) const EMBEDDER_FILE: &str = "minilm-l6-v2-q8.gguf";

/// Aligned like tensor data in a file, so its Q8_0 weights are read in place.
#[cfg(feature = "embedded-models")]
const EMBEDDED_EMBEDDER: &[u8] = include_aligned!("../../models/minilm-l6-v2-q8.gguf");

/// Requests one inference thread batches together at most.
const MAX_BATCH: usize = 64;

/// Texts up to this size are analysed on the calling task: both classifiers take a few
/// microseconds on a short message, less than handing it to the models' thread and back
/// (two thread wake-ups). Longer texts go to that thread, so a burst of long messages
/// never holds up the async runtime.
const INLINE_TEXT_BYTES: usize = 512;

pub struct MlService {
    models: Arc<Models>,
    classifiers: InferencePool,
    faq: Option<Faq>,
    metrics: Arc<Metrics>,
}

struct Faq {
    embedder: EmbedPool,
    questions: Vec<(Vec<f32>, String)>,
    threshold: f32,
}

/// The models for a bot whose config switches them on; `None` when switched off.
pub async fn load_if_enabled(
    config: &crate::config::Config,
    store: &Store,
    metrics: Arc<Metrics>,
) -> Result<Option<Arc<MlService>>, MlLoadError> {
    if !config.models.enabled {
        return Ok(None);
    }
    let service = MlService::load(&config.models, &config.faq, store, metrics).await?;
    Ok(Some(Arc::new(service)))
}

impl MlService {
    /// Loads the models (compiled in, or from `models.dir`) and embeds the FAQ questions,
    /// using the store's cache.
    pub(crate) async fn load(
        config: &ModelsConfig,
        faq: &[FaqEntry],
        store: &Store,
        metrics: Arc<Metrics>,
    ) -> Result<MlService, MlLoadError> {
        let models = Arc::new(Models::load(config.dir.as_deref())?);
        let classifiers = InferencePool::new(models.clone(), 1, 4096);
        let faq = if faq.is_empty() {
            None
        } else {
            Some(Faq::load(config, faq, store).await?)
        };
        Ok(MlService {
            models,
            classifiers,
            faq,
            metrics,
        })
    }

    /// Spam and sentiment of a text; `None` only if the inference threads are gone.
    pub(crate) async fn analyze(&self, text: &str) -> Option<Analysis> {
        let started = Instant::now();
        let analysis = if text.len() <= INLINE_TEXT_BYTES {
            Ok(self.models.analyze(text))
        } else {
            self.classifiers.analyze(text.to_owned()).await
        };
        self.metrics
            .inference_seconds
            .get_or_create(&ModelLabels {
                model: "classifiers",
            })
            .observe(started.elapsed().as_secs_f64());
        match analysis {
            Ok(analysis) => Some(analysis),
            Err(e) => {
                tracing::error!(error = %e, "text analysis failed");
                None
            }
        }
    }

    /// The answer of the FAQ question nearest in meaning to `text`, when it is near
    /// enough.
    pub(crate) async fn faq_answer(&self, text: &str) -> Option<&str> {
        let faq = self.faq.as_ref()?;
        let started = Instant::now();
        let embedded = faq.embedder.embed(text.to_owned()).await;
        self.metrics
            .inference_seconds
            .get_or_create(&ModelLabels { model: "embedder" })
            .observe(started.elapsed().as_secs_f64());
        let vector = match embedded {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "embedding failed");
                return None;
            }
        };
        let (similarity, answer) = faq
            .questions
            .iter()
            .map(|(q, answer)| (cosine(q, &vector), answer))
            .max_by(|a, b| a.0.total_cmp(&b.0))?;
        tracing::debug!(similarity, "nearest FAQ entry");
        (similarity >= faq.threshold).then_some(answer.as_str())
    }
}

impl Faq {
    async fn load(
        config: &ModelsConfig,
        entries: &[FaqEntry],
        store: &Store,
    ) -> Result<Faq, MlLoadError> {
        let embedder = Arc::new(match &config.dir {
            Some(dir) => Embedder::load(&dir.join(EMBEDDER_FILE))?,
            None => Embedder::from_weights(Weights::Embedded(embedded_embedder()?))?,
        });
        let model = embedder.fingerprint();
        let mut questions = Vec::with_capacity(entries.len());
        for entry in entries {
            let key = digest(entry.question.as_bytes());
            let vector = match store.embedding(model, key)? {
                Some(cached) => cached,
                None => {
                    let fresh = embedder
                        .embed(&[entry.question.as_str()])?
                        .pop()
                        .expect("one vector per text");
                    store.put_embedding(model, key, &fresh).await?;
                    fresh
                }
            };
            questions.push((vector, entry.answer.clone()));
        }
        Ok(Faq {
            embedder: EmbedPool::new(embedder, 1, MAX_BATCH, 4096),
            questions,
            threshold: config.faq_threshold,
        })
    }
}

#[cfg(feature = "embedded-models")]
fn embedded_embedder() -> Result<&'static [u8], MlLoadError> {
    Ok(EMBEDDED_EMBEDDER)
}

#[cfg(not(feature = "embedded-models"))]
fn embedded_embedder() -> Result<&'static [u8], MlLoadError> {
    Err(MlLoadError::NotEmbedded)
}

fn digest(bytes: &[u8]) -> u64 {
    let mut hash = Fnv1a::new();
    hash.write(bytes);
    hash.finish()
}

#[cfg(all(test, feature = "embedded-models"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn short_texts_inline_and_long_ones_on_the_pool_get_the_models_answer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let config = ModelsConfig::default();
        let service = MlService::load(&config, &[], &store, Arc::new(Metrics::new()))
            .await
            .unwrap();
        let models = Models::load(None).unwrap();
        let short = "WINNER!! Claim your prize now, call 09061701461";
        let long = "I love this, thank you so much! ".repeat(40);
        assert!(short.len() <= INLINE_TEXT_BYTES && long.len() > INLINE_TEXT_BYTES);
        for text in [short, long.as_str()] {
            let got = service.analyze(text).await.unwrap();
            let want = models.analyze(text);
            assert_eq!(got.spam.label, want.spam.label);
            assert_eq!(got.sentiment.label, want.sentiment.label);
            assert!((got.spam.score - want.spam.score).abs() < 1e-6);
            assert!((got.sentiment.score - want.sentiment.score).abs() < 1e-6);
        }
    }
}
