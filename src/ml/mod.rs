//! Text classifiers for spam and sentiment (small hashed bag-of-n-gram models, fastText
//! style, stored as quantised GGUF and read in place) and the MiniLM sentence encoder, run
//! in-process.
//!
//! Inference only: training, evaluation and the converters live in the `tools` module.
//! Knows nothing of Telegram: it maps texts to labels and vectors. `Models` is the
//! classifiers' entry point, `InferencePool` keeps their inference off the async runtime.

pub(crate) mod features;
mod labels;
pub mod minilm;
pub(crate) mod model;
mod pool;
pub(crate) mod quantized;
pub(crate) mod weights;

use std::path::{Path, PathBuf};

pub(crate) use labels::{Label, names};
pub(crate) use labels::{SentimentLabel, SpamLabel};
pub(crate) use pool::InferencePool;

use crate::ml::model::{Classify, argmax};
use crate::ml::quantized::QuantizedBag;
use crate::ml::weights::Weights;

#[derive(Debug, thiserror::Error)]
pub enum MlError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid model {name}: {reason}")]
    Model { name: String, reason: String },
    #[error(
        "no models are compiled into this build (feature `embedded-models` is off); give a model directory"
    )]
    NotEmbedded,
    #[error("the inference pool has shut down")]
    PoolClosed,
}

/// A predicted label and its probability; serialises as `{"label": …, "score": …}`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Score<L> {
    pub(crate) label: L,
    /// Probability of `label`, the most likely class.
    pub(crate) score: f32,
}

#[derive(Debug, Clone)]
pub struct Analysis {
    pub spam: Score<SpamLabel>,
    pub sentiment: Score<SentimentLabel>,
}

impl Analysis {
    /// P(spam), whichever label won: the number a threshold should be applied to.
    pub(crate) fn spam_probability(&self) -> f32 {
        match self.spam.label {
            SpamLabel::Spam => self.spam.score,
            SpamLabel::Ham => 1.0 - self.spam.score,
        }
    }
}

/// One loaded classifier whose classes are the labels `L`, in order.
#[derive(Debug)]
struct Classifier<L> {
    model: QuantizedBag,
    labels: std::marker::PhantomData<L>,
}

impl<L: Label> Classifier<L> {
    fn load(weights: Weights, name: &str) -> Result<Self, MlError> {
        let model = QuantizedBag::load(weights, name)?;
        let labels = names::<L>();
        if model.labels != labels {
            return Err(MlError::Model {
                name: name.to_owned(),
                reason: format!("labels {:?}, expected {labels:?}", model.labels),
            });
        }
        Ok(Self {
            model,
            labels: std::marker::PhantomData,
        })
    }

    /// Maps `<task>.gguf` from `dir`: its pages are read as inference touches them.
    fn map(dir: &Path) -> Result<Self, MlError> {
        let path = dir.join(format!("{}.gguf", L::TASK));
        let weights = Weights::map(&path).map_err(|source| MlError::Io {
            path: path.clone(),
            source,
        })?;
        Self::load(weights, &path.display().to_string())
    }

    fn score(&self, text: &str, ids: &mut Vec<u32>) -> Score<L> {
        let p = self.model.probabilities(text, ids);
        let best = argmax(&p);
        Score {
            label: L::ALL[best],
            score: p[best],
        }
    }
}

/// The spam and sentiment classifiers.
#[derive(Debug)]
pub struct Models {
    spam: Classifier<SpamLabel>,
    sentiment: Classifier<SentimentLabel>,
}

// Aligned like a mapped file's tensor data, so both are read the same way, in place.
#[cfg(feature = "embedded-models")]
const EMBEDDED: (&[u8], &[u8]) = (
    weights::include_aligned!("../../models/spam.gguf"),
    weights::include_aligned!("../../models/sentiment.gguf"),
);

impl Models {
    /// Loads the models compiled into the binary (include_bytes! of models/*.gguf, behind the
    /// cargo feature `embedded-models`, on by default), or from `dir` when given (files
    /// spam.gguf, sentiment.gguf). A missing or corrupt file is an MlError naming the file.
    pub fn load(dir: Option<&Path>) -> Result<Models, MlError> {
        match dir {
            // One file at a time, spam first, so an error names the file at fault.
            Some(dir) => Ok(Models {
                spam: Classifier::map(dir)?,
                sentiment: Classifier::map(dir)?,
            }),
            None => Self::embedded(),
        }
    }

    #[cfg(feature = "embedded-models")]
    fn embedded() -> Result<Models, MlError> {
        Ok(Models {
            spam: Classifier::load(Weights::Embedded(EMBEDDED.0), "embedded models/spam.gguf")?,
            sentiment: Classifier::load(
                Weights::Embedded(EMBEDDED.1),
                "embedded models/sentiment.gguf",
            )?,
        })
    }

    #[cfg(not(feature = "embedded-models"))]
    fn embedded() -> Result<Models, MlError> {
        Err(MlError::NotEmbedded)
    }

    pub fn analyze(&self, text: &str) -> Analysis {
        let mut ids = Vec::new();
        self.analyze_with(text, &mut ids)
    }

    pub fn analyze_batch(&self, texts: &[&str]) -> Vec<Analysis> {
        let mut ids = Vec::new();
        texts
            .iter()
            .map(|t| self.analyze_with(t, &mut ids))
            .collect()
    }

    fn analyze_with(&self, text: &str, ids: &mut Vec<u32>) -> Analysis {
        Analysis {
            spam: self.spam.score(text, ids),
            sentiment: self.sentiment.score(text, ids),
        }
    }

    /// The underlying spam classifier, for evaluation.
    pub(crate) fn spam(&self) -> &QuantizedBag {
        &self.spam.model
    }

    /// The underlying sentiment classifier, for evaluation.
    pub(crate) fn sentiment(&self) -> &QuantizedBag {
        &self.sentiment.model
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_names_the_missing_or_corrupt_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = Models::load(Some(dir.path())).unwrap_err();
        assert!(err.to_string().contains("spam.gguf"), "{err}");
        std::fs::write(dir.path().join("spam.gguf"), b"GGUF garbage").unwrap();
        let err = Models::load(Some(dir.path())).unwrap_err();
        assert!(matches!(err, MlError::Model { .. }), "{err}");
        assert!(err.to_string().contains("spam.gguf"), "{err}");
    }

    #[cfg(feature = "embedded-models")]
    #[test]
    fn embedded_models_classify_obvious_messages() {
        let models = Models::load(None).unwrap();
        let spam = models
            .analyze("WINNER!! You have won a £1000 cash prize. Call 09061701461 now to claim");
        assert_eq!(spam.spam.label, SpamLabel::Spam);
        assert!(spam.spam_probability() > 0.5);
        let ham = models.analyze("ok, see you at lunch tomorrow");
        assert_eq!(ham.spam.label, SpamLabel::Ham);
        assert!(ham.spam_probability() < 0.5);
        let batch = models.analyze_batch(&["I love this, thank you so much!", "this is awful"]);
        assert_eq!(batch[0].sentiment.label, SentimentLabel::Positive);
        assert_eq!(batch[1].sentiment.label, SentimentLabel::Negative);
    }

    #[test]
    fn a_score_serialises_as_before_the_labels_were_types() {
        let score = Score {
            label: SentimentLabel::Positive,
            score: 0.5,
        };
        assert_eq!(
            serde_json::to_string(&score).unwrap(),
            r#"{"label":"positive","score":0.5}"#
        );
    }
}
