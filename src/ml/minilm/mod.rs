//! Sentence embeddings with all-MiniLM-L6-v2: a BERT encoder run in-process by candle
//! with Q8_0 quantized linear layers, loaded from one self-contained GGUF file that also
//! carries the WordPiece vocabulary and tokenizer settings.
//!
//! The converter that writes that file (`edgebot model import-minilm`) lives in
//! the `tools` module; it shares the file layout (`gguf`), the encoder (`model`, which also
//! computes its f32 reference) and the tokenizer with this loader.

pub(crate) mod gguf;
mod in_place;
pub(crate) mod model;
mod ops;
mod pool;
pub(crate) mod tokenizer;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) use pool::EmbedPool;

use crate::ml::weights::Weights;

/// Everything that can go wrong while loading or running the embedder.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a usable MiniLM model: {source}")]
    InvalidFile {
        path: PathBuf,
        #[source]
        source: Box<EmbedError>,
    },
    #[error("malformed model: {0}")]
    Format(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("tensor computation: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("the embedding worker has stopped")]
    PoolClosed,
}

/// A loaded all-MiniLM-L6-v2 model; cheap to share behind an `Arc` as `embed` takes `&self`.
pub struct Embedder {
    model: model::Bert,
    tokenizer: tokenizer::WordPiece,
    fingerprint: u64,
    weights: Arc<Weights>,
}

impl Embedder {
    /// Parses a GGUF produced by `edgebot model import-minilm`; its quantized weights stay
    /// where they lie, so `weights` lives as long as the embedder.
    pub(crate) fn from_weights(weights: Weights) -> Result<Embedder, EmbedError> {
        let file = gguf::GgufFile::parse(weights)?;
        let tokenizer = tokenizer::WordPiece::from_gguf(&file)?;
        let model = model::Bert::load(&file.config()?, |name| file.tensor(name))?;
        Ok(Embedder {
            model,
            tokenizer,
            fingerprint: file.fingerprint(),
            weights: Arc::clone(file.weights()),
        })
    }

    /// Maps and parses a GGUF file; errors name the file.
    pub fn load(path: &Path) -> Result<Embedder, EmbedError> {
        let weights = Weights::map(path).map_err(|source| EmbedError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_weights(weights).map_err(|e| EmbedError::InvalidFile {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }

    /// Identifies the model file, to key caches of its embeddings (see
    /// `gguf::GgufFile::fingerprint`).
    pub(crate) fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Embeds a batch of texts into L2-normalised vectors of the model's hidden size (384
    /// floats for MiniLM-L6), one per text and in the same order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let ids = self.tokenizer.encode_batch(texts)?;
        let vectors = self.model.embed(&ids)?;
        // The first pass made candle repack the matmul weights into memory of its own,
        // reading all of the file's pages; later passes read only the word rows of their
        // tokens and the weights candle uses where they lie (~7 MB). Giving the pages back
        // after every pass keeps an idle bot from holding them; the next pass faults in
        // what it reads from the page cache (the kernel maps neighbouring pages with each
        // fault), a fraction of a millisecond against the pass itself.
        self.weights.release();
        Ok(vectors)
    }

    /// Only the tests ask: callers take the length of the vectors they get.
    #[cfg(test)]
    pub(crate) fn dim(&self) -> usize {
        self.model.dim()
    }
}

/// Cosine similarity; for the normalised output of [`Embedder::embed`] this is the dot product,
/// but it also stays correct for vectors that were averaged or stored unnormalised.
pub(crate) fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}
