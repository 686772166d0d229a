//! Writing the hashed n-gram classifiers as GGUF: the counterpart of the reader in
//! `crate::ml::model`, with the same tensor names, format version and hashing metadata. Only
//! training writes model files, so the writer lives with it.

use std::io::Cursor;

use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};

use crate::ml::model::{
    ARCHITECTURE, EMBEDDING, FORMAT_VERSION, HEAD_BIAS, HEAD_WEIGHT, HashBag, Metadata,
};
use crate::tools::ToolError;

/// Serialises `model` to GGUF, the embedding in `dtype` (head and bias stay f32: they are tiny and
/// every logit passes through them).
pub(crate) fn to_gguf(
    model: &HashBag,
    dtype: GgmlDType,
    extra: &Metadata,
) -> Result<Vec<u8>, ToolError> {
    let dev = Device::Cpu;
    let buckets = model.features.buckets as usize;
    let emb = Tensor::from_slice(&model.embedding, (buckets, model.dim), &dev)?;
    // Quantised blocks run along the last dimension, so small rows are stored flattened
    // into block-wide rows; the metadata's buckets × dim gives the logical shape back.
    let block = dtype.block_size();
    let emb = if !model.dim.is_multiple_of(block) {
        emb.reshape((buckets * model.dim / block, block))?
    } else {
        emb
    };
    let emb = QTensor::quantize(&emb, dtype)?;
    let head_w = QTensor::quantize(
        &Tensor::from_slice(&model.head_weight, (model.classes(), model.dim), &dev)?,
        GgmlDType::F32,
    )?;
    let head_b = QTensor::quantize(
        &Tensor::from_slice(&model.head_bias, model.classes(), &dev)?,
        GgmlDType::F32,
    )?;

    use gguf_file::Value;
    let f = &model.features;
    let mut meta: Metadata = vec![
        (
            "general.architecture".into(),
            Value::String(ARCHITECTURE.into()),
        ),
        (
            "general.name".into(),
            Value::String(format!("edgebot-{}", model.task)),
        ),
        ("edgebot.format_version".into(), Value::U32(FORMAT_VERSION)),
        ("edgebot.task".into(), Value::String(model.task.clone())),
        (
            "edgebot.labels".into(),
            Value::Array(model.labels.iter().cloned().map(Value::String).collect()),
        ),
        ("edgebot.dim".into(), Value::U32(model.dim as u32)),
        (
            "edgebot.pooling".into(),
            Value::String(model.pooling.name().into()),
        ),
        (
            "edgebot.hash.algorithm".into(),
            Value::String("fnv1a64".into()),
        ),
        ("edgebot.hash.seed".into(), Value::U64(f.seed)),
        ("edgebot.hash.buckets".into(), Value::U32(f.buckets)),
        ("edgebot.hash.word_ngrams".into(), Value::U32(f.word_ngrams)),
        ("edgebot.hash.char_ngram_min".into(), Value::U32(f.char_min)),
        ("edgebot.hash.char_ngram_max".into(), Value::U32(f.char_max)),
    ];
    meta.extend(extra.iter().cloned());
    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(
        &mut out,
        &meta_refs,
        &[
            (EMBEDDING, &emb),
            (HEAD_WEIGHT, &head_w),
            (HEAD_BIAS, &head_b),
        ],
    )?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::model::Classify;
    use crate::ml::model::tests::tiny_model;
    use crate::ml::quantized::QuantizedBag;
    use crate::ml::weights::Weights;

    #[test]
    fn gguf_round_trip_f32_is_exact() {
        let model = tiny_model();
        let bytes = to_gguf(&model, GgmlDType::F32, &Vec::new()).unwrap();
        let (back, meta) = HashBag::from_gguf(&bytes, "test").unwrap();
        assert_eq!(back.embedding, model.embedding);
        assert_eq!(back.head_weight, model.head_weight);
        assert_eq!(back.features, model.features);
        assert_eq!(back.labels, model.labels);
        assert!(meta.iter().any(|(k, _)| k == "edgebot.hash.seed"));
    }

    #[test]
    fn gguf_round_trip_q8_0_is_close() {
        let model = tiny_model();
        let bytes = to_gguf(&model, GgmlDType::Q8_0, &Vec::new()).unwrap();
        let (back, _) = HashBag::from_gguf(&bytes, "test").unwrap();
        let max_err = back
            .embedding
            .iter()
            .zip(&model.embedding)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(max_err < 0.01, "max error {max_err}");
        let mut ids = Vec::new();
        let p = back.probabilities("free prize, call now", &mut ids);
        let q = model.probabilities("free prize, call now", &mut ids);
        assert!((p[1] - q[1]).abs() < 0.01);
    }

    /// `tiny_model` with rows `dim` wide.
    fn tiny_model_of_width(dim: usize) -> HashBag {
        let mut model = tiny_model();
        model.dim = dim;
        model.embedding = (0..64 * dim)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
            .collect();
        model.head_weight = (0..2 * dim).map(|i| (i as f32 - 16.0) / 8.0).collect();
        model
    }

    /// The bot reads what the tools write: both embedding types, in place, with the f32
    /// model's arithmetic, for rows that share a Q8_0 block (16 wide, as shipped), span whole
    /// blocks (64) or straddle blocks (24).
    #[test]
    fn the_bot_reads_written_models_in_place() {
        let model = tiny_model();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        let mut ids = Vec::new();
        for (dtype, dim) in [
            (GgmlDType::F32, 16),
            (GgmlDType::Q8_0, 16),
            (GgmlDType::Q8_0, 64),
            (GgmlDType::Q8_0, 24),
        ] {
            let model = tiny_model_of_width(dim);
            let bytes = to_gguf(&model, dtype, &Vec::new()).unwrap();
            let (back, _) = HashBag::from_gguf(&bytes, "test").unwrap();
            std::fs::write(&path, &bytes).unwrap();
            let in_place = QuantizedBag::load(Weights::map(&path).unwrap(), "test").unwrap();
            for text in ["", "free prize, call now", "see you at lunch tomorrow, ok?"] {
                let want = back.probabilities(text, &mut ids);
                let got = in_place.probabilities(text, &mut ids);
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 1e-6,
                        "{dtype:?}, {dim} wide, {text:?}: {got:?} {want:?}"
                    );
                }
            }
        }
        let bytes = to_gguf(&model, GgmlDType::Q4_0, &Vec::new()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let name = path.display().to_string();
        let err = QuantizedBag::load(Weights::map(&path).unwrap(), &name).unwrap_err();
        assert!(err.to_string().contains(&name), "{err}");
        assert!(err.to_string().contains("Q4_0"), "{err}");
    }

    #[test]
    fn corrupt_file_error_names_it() {
        let model = tiny_model();
        let mut bytes = to_gguf(&model, GgmlDType::Q8_0, &Vec::new()).unwrap();
        bytes.truncate(bytes.len() / 2);
        let err = HashBag::from_gguf(&bytes, "models/spam.gguf").unwrap_err();
        assert!(err.to_string().contains("models/spam.gguf"), "{err}");
        let err = HashBag::from_gguf(b"not a model", "x/y.gguf").unwrap_err();
        assert!(err.to_string().contains("x/y.gguf"), "{err}");
    }
}
