//! The hashed bag-of-n-grams classifier (fastText style): the mean of the embedding rows of a
//! text's features, then a linear head and a softmax. `HashBag` holds the weights in f32, for
//! training and evaluation; the bot runs `quantized::QuantizedBag`, which reads the same file's
//! embedding in place. Both share the GGUF header reading here, with all hashing parameters in
//! the metadata. The names and the format version are shared with the writer, `tools::export`.

use std::collections::HashMap;
use std::io::Cursor;

use candle_core::Device;
use candle_core::quantized::gguf_file;

use crate::ml::MlError;
use crate::ml::features::FeatureConfig;

/// Bumped whenever the meaning of the file's tensors or hashing changes.
pub(crate) const FORMAT_VERSION: u32 = 1;
pub(crate) const ARCHITECTURE: &str = "edgebot-hashbag";

pub(crate) const EMBEDDING: &str = "embedding.weight";
pub(crate) const HEAD_WEIGHT: &str = "head.weight";
pub(crate) const HEAD_BIAS: &str = "head.bias";

/// How the rows of a text's features are combined before the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pooling {
    /// Sum / n, as fastText does.
    Mean,
    /// Sum / sqrt(n): like an L2-normalised count vector, it keeps a trace of length, which
    /// separates long advertisements from short chat.
    Sqrt,
}

impl Pooling {
    /// Weight of each feature row in a text of `n` features.
    pub(crate) fn weight(self, n: usize) -> f32 {
        let n = n.max(1) as f32;
        match self {
            Pooling::Mean => 1.0 / n,
            Pooling::Sqrt => 1.0 / n.sqrt(),
        }
    }

    /// The name the model file records.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Sqrt => "sqrt",
        }
    }
}

/// A trained classifier, ready for inference.
#[derive(Clone)]
pub(crate) struct HashBag {
    pub(crate) task: String,
    pub(crate) labels: Vec<String>,
    pub(crate) features: FeatureConfig,
    pub(crate) dim: usize,
    pub(crate) pooling: Pooling,
    /// `buckets × dim`, row-major.
    pub(crate) embedding: Vec<f32>,
    /// `labels × dim`, row-major.
    pub(crate) head_weight: Vec<f32>,
    pub(crate) head_bias: Vec<f32>,
}

/// Everything in a model file besides the weights, for `model eval` to show and for tests.
pub(crate) type Metadata = Vec<(String, gguf_file::Value)>;

// Millions of weights are no use in a log line or a test failure.
impl std::fmt::Debug for HashBag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashBag")
            .field("task", &self.task)
            .field("labels", &self.labels)
            .field("features", &self.features)
            .field("dim", &self.dim)
            .field("pooling", &self.pooling)
            .finish_non_exhaustive()
    }
}

/// A classifier's forward pass, whichever way it holds its weights, so evaluation can measure
/// the f32 model being trained and the quantized one the bot runs alike.
pub(crate) trait Classify {
    fn features(&self) -> &FeatureConfig;

    /// Class probabilities from already extracted feature ids.
    fn probabilities_of_ids(&self, ids: &[u32]) -> Vec<f32>;

    /// Class probabilities of one text; `ids` is scratch space, reused across calls.
    fn probabilities(&self, text: &str, ids: &mut Vec<u32>) -> Vec<f32> {
        ids.clear();
        self.features().extract(text, ids);
        self.probabilities_of_ids(ids)
    }
}

impl Classify for HashBag {
    fn features(&self) -> &FeatureConfig {
        &self.features
    }

    fn probabilities_of_ids(&self, ids: &[u32]) -> Vec<f32> {
        let dim = self.dim;
        let mut pooled = vec![0f32; dim];
        for &id in ids {
            let row = &self.embedding[id as usize * dim..(id as usize + 1) * dim];
            for (m, r) in pooled.iter_mut().zip(row) {
                *m += r;
            }
        }
        head(
            self.pooling.weight(ids.len()),
            pooled,
            &self.head_weight,
            &self.head_bias,
        )
    }
}

impl HashBag {
    pub(crate) fn classes(&self) -> usize {
        self.labels.len()
    }

    /// Parses a GGUF model; `name` (a path or "embedded spam.gguf") goes into any error.
    pub(crate) fn from_gguf(bytes: &[u8], name: &str) -> Result<(HashBag, Metadata), MlError> {
        Self::parse(bytes).map_err(|reason| MlError::Model {
            name: name.to_owned(),
            reason,
        })
    }

    fn parse(bytes: &[u8]) -> Result<(HashBag, Metadata), String> {
        let mut reader = Cursor::new(bytes);
        let content = gguf_file::Content::read(&mut reader).map_err(|e| e.to_string())?;
        let header = Header::read(&content)?;
        let classes = header.labels.len();
        let embedding = dequantized(
            &content,
            &mut reader,
            EMBEDDING,
            header.features.buckets as usize * header.dim,
        )?;
        let head_weight = dequantized(&content, &mut reader, HEAD_WEIGHT, classes * header.dim)?;
        let head_bias = dequantized(&content, &mut reader, HEAD_BIAS, classes)?;
        let mut metadata: Metadata = content
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        metadata.sort_by(|a, b| a.0.cmp(&b.0));
        Ok((
            HashBag {
                task: header.task,
                labels: header.labels,
                features: header.features,
                dim: header.dim,
                pooling: header.pooling,
                embedding,
                head_weight,
                head_bias,
            },
            metadata,
        ))
    }
}

/// What a model file's metadata says: everything but the weights.
pub(crate) struct Header {
    pub(crate) task: String,
    pub(crate) labels: Vec<String>,
    pub(crate) features: FeatureConfig,
    pub(crate) dim: usize,
    pub(crate) pooling: Pooling,
}

impl Header {
    pub(crate) fn read(content: &gguf_file::Content) -> Result<Header, String> {
        let md = &content.metadata;
        let arch = get_str(md, "general.architecture")?;
        if arch != ARCHITECTURE {
            return Err(format!("architecture {arch:?}, expected {ARCHITECTURE:?}"));
        }
        let version = get_u32(md, "edgebot.format_version")?;
        if version != FORMAT_VERSION {
            return Err(format!(
                "format version {version}, this build reads {FORMAT_VERSION}"
            ));
        }
        let labels = match md.get("edgebot.labels") {
            Some(gguf_file::Value::Array(items)) => items
                .iter()
                .map(|v| v.to_string().cloned().map_err(|e| e.to_string()))
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err("missing edgebot.labels".into()),
        };
        let seed = match md.get("edgebot.hash.seed") {
            Some(v) => v.to_u64().map_err(|e| e.to_string())?,
            None => return Err("missing edgebot.hash.seed".into()),
        };
        let algorithm = get_str(md, "edgebot.hash.algorithm")?;
        if algorithm != "fnv1a64" {
            return Err(format!("unknown hash algorithm {algorithm:?}"));
        }
        let features = FeatureConfig {
            buckets: get_u32(md, "edgebot.hash.buckets")?,
            seed,
            word_ngrams: get_u32(md, "edgebot.hash.word_ngrams")?,
            char_min: get_u32(md, "edgebot.hash.char_ngram_min")?,
            char_max: get_u32(md, "edgebot.hash.char_ngram_max")?,
        };
        let dim = get_u32(md, "edgebot.dim")? as usize;
        let pooling = match get_str(md, "edgebot.pooling")? {
            "mean" => Pooling::Mean,
            "sqrt" => Pooling::Sqrt,
            other => return Err(format!("unknown pooling {other:?}")),
        };
        if features.buckets == 0 || dim == 0 || labels.len() < 2 {
            return Err("empty model (no buckets, dimensions or labels)".into());
        }
        Ok(Header {
            task: get_str(md, "edgebot.task")?.to_owned(),
            labels,
            features,
            dim,
            pooling,
        })
    }
}

/// Tensor `name` as `len` finite f32 values, whatever its stored type.
pub(crate) fn dequantized(
    content: &gguf_file::Content,
    reader: &mut Cursor<&[u8]>,
    name: &str,
    len: usize,
) -> Result<Vec<f32>, String> {
    let values = content
        .tensor(reader, name, &Device::Cpu)
        .and_then(|q| q.dequantize(&Device::Cpu))
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| format!("tensor {name}: {e}"))?;
    if values.len() != len {
        return Err(format!(
            "tensor {name} has {} values, expected {len}",
            values.len()
        ));
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(format!("tensor {name} holds non-finite values"));
    }
    Ok(values)
}

/// The head on the summed rows of a text's features: pooling `weight`, the linear layer
/// (`labels × dim` weights, row-major), then the softmax.
pub(crate) fn head(
    weight: f32,
    mut pooled: Vec<f32>,
    head_weight: &[f32],
    bias: &[f32],
) -> Vec<f32> {
    pooled.iter_mut().for_each(|m| *m *= weight);
    let mut logits: Vec<f32> = head_weight
        .chunks_exact(pooled.len())
        .zip(bias)
        .map(|(w, b)| b + w.iter().zip(&pooled).map(|(w, m)| w * m).sum::<f32>())
        .collect();
    softmax(&mut logits);
    logits
}

fn get_str<'a>(md: &'a HashMap<String, gguf_file::Value>, key: &str) -> Result<&'a str, String> {
    match md.get(key) {
        Some(v) => v.to_string().map(String::as_str).map_err(|e| e.to_string()),
        None => Err(format!("missing {key}")),
    }
}

fn get_u32(md: &HashMap<String, gguf_file::Value>, key: &str) -> Result<u32, String> {
    match md.get(key) {
        Some(v) => v.to_u32().map_err(|e| format!("{key}: {e}")),
        None => Err(format!("missing {key}")),
    }
}

/// In-place softmax, shifted by the maximum so large logits cannot overflow.
fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    x.iter_mut().for_each(|v| *v /= sum);
}

/// Index of the largest value (the first one on ties, so results are reproducible).
pub(crate) fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn tiny_model() -> HashBag {
        let features = FeatureConfig {
            buckets: 64,
            seed: 3,
            word_ngrams: 2,
            char_min: 2,
            char_max: 3,
        };
        let dim = 16;
        let embedding = (0..64 * dim)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
            .collect();
        HashBag {
            task: "spam".into(),
            labels: vec!["ham".into(), "spam".into()],
            features,
            dim,
            pooling: Pooling::Sqrt,
            embedding,
            head_weight: (0..2 * dim).map(|i| (i as f32 - 16.0) / 8.0).collect(),
            head_bias: vec![0.25, -0.25],
        }
    }

    #[test]
    fn probabilities_sum_to_one_even_for_empty_text() {
        let model = tiny_model();
        let mut ids = Vec::new();
        for text in ["", "   ", "hello there"] {
            let p = model.probabilities(text, &mut ids);
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }
}
