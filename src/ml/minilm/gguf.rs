//! The GGUF layout of a converted MiniLM: metadata key names (llama.cpp's `bert` conventions
//! where they exist, `edgebot.*` for the tokenizer settings llama.cpp has no key for), shared
//! with the converter in the `tools` module, and typed access to them for the loader.

use std::io::Cursor;
use std::ops::Range;
use std::sync::Arc;

use candle_core::Device;
use candle_core::quantized::gguf_file::{Content, TensorInfo, Value};
use candle_core::quantized::{GgmlDType, QTensor};

use super::EmbedError;
use super::in_place::InPlaceQ8;
use super::model::BertConfig;
use crate::ml::features::Fnv1a;
use crate::ml::weights::Weights;

pub(crate) const ARCH: &str = "bert";
pub(crate) const KEY_ARCH: &str = "general.architecture";
pub(crate) const KEY_CONTEXT: &str = "bert.context_length";
pub(crate) const KEY_HIDDEN: &str = "bert.embedding_length";
pub(crate) const KEY_FFN: &str = "bert.feed_forward_length";
pub(crate) const KEY_LAYERS: &str = "bert.block_count";
pub(crate) const KEY_HEADS: &str = "bert.attention.head_count";
pub(crate) const KEY_EPS: &str = "bert.attention.layer_norm_epsilon";
pub(crate) const KEY_POOLING: &str = "bert.pooling_type";
/// llama.cpp's value for mean pooling, the only pooling this runtime implements.
pub(crate) const POOLING_MEAN: u32 = 1;

pub(crate) const KEY_TOK_MODEL: &str = "tokenizer.ggml.model";
pub(crate) const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
pub(crate) const KEY_UNK: &str = "tokenizer.ggml.unknown_token_id";
pub(crate) const KEY_SEP: &str = "tokenizer.ggml.seperator_token_id";
pub(crate) const KEY_CLS: &str = "tokenizer.ggml.cls_token_id";
pub(crate) const KEY_PAD: &str = "tokenizer.ggml.padding_token_id";
pub(crate) const KEY_MASK: &str = "tokenizer.ggml.mask_token_id";
pub(crate) const KEY_LOWERCASE: &str = "edgebot.tokenizer.lowercase";
pub(crate) const KEY_STRIP_ACCENTS: &str = "edgebot.tokenizer.strip_accents";
pub(crate) const KEY_CLEAN_TEXT: &str = "edgebot.tokenizer.clean_text";
pub(crate) const KEY_CHINESE: &str = "edgebot.tokenizer.handle_chinese_chars";
pub(crate) const KEY_SUBWORD_PREFIX: &str = "edgebot.tokenizer.continuing_subword_prefix";
pub(crate) const KEY_MAX_WORD_CHARS: &str = "edgebot.tokenizer.max_input_chars_per_word";
pub(crate) const KEY_MAX_TOKENS: &str = "edgebot.max_tokens";
pub(crate) const KEY_HIDDEN_ORDER: &str = "edgebot.hidden_order";

/// How much of each tensor's data [`GgufFile::fingerprint`] reads.
const FINGERPRINT_TENSOR_BYTES: usize = 1024;

/// A parsed GGUF header over the model's bytes, so tensors are found by name and Q8_0 ones
/// are read in place.
pub(crate) struct GgufFile {
    content: Content,
    weights: Arc<Weights>,
}

impl GgufFile {
    pub(crate) fn parse(weights: Weights) -> Result<Self, EmbedError> {
        let content = Content::read(&mut Cursor::new(&*weights))?;
        let file = GgufFile {
            content,
            weights: Arc::new(weights),
        };
        let arch = file.string(KEY_ARCH)?;
        if arch != ARCH {
            return Err(EmbedError::Format(format!(
                "architecture is {arch:?}, expected {ARCH:?}"
            )));
        }
        Ok(file)
    }

    /// The bytes the tensors borrow.
    pub(crate) fn weights(&self) -> &Arc<Weights> {
        &self.weights
    }

    fn value(&self, key: &str) -> Result<&Value, EmbedError> {
        self.content
            .metadata
            .get(key)
            .ok_or_else(|| EmbedError::Format(format!("metadata key {key} is missing")))
    }

    fn typed<'s, T>(
        &'s self,
        key: &str,
        get: impl FnOnce(&'s Value) -> candle_core::Result<T>,
    ) -> Result<T, EmbedError> {
        get(self.value(key)?).map_err(|e| EmbedError::Format(format!("metadata key {key}: {e}")))
    }

    pub(crate) fn u32(&self, key: &str) -> Result<u32, EmbedError> {
        self.typed(key, Value::to_u32)
    }

    pub(crate) fn usize(&self, key: &str) -> Result<usize, EmbedError> {
        Ok(self.u32(key)? as usize)
    }

    pub(crate) fn bool(&self, key: &str) -> Result<bool, EmbedError> {
        self.typed(key, Value::to_bool)
    }

    pub(crate) fn string(&self, key: &str) -> Result<&str, EmbedError> {
        self.typed(key, |v| v.to_string().map(String::as_str))
    }

    pub(crate) fn strings(&self, key: &str) -> Result<Vec<&str>, EmbedError> {
        let items = self.typed(key, Value::to_vec)?;
        items
            .iter()
            .map(|v| {
                v.to_string()
                    .map(String::as_str)
                    .map_err(|e| EmbedError::Format(format!("metadata key {key}: {e}")))
            })
            .collect()
    }

    pub fn config(&self) -> Result<BertConfig, EmbedError> {
        let pooling = self.u32(KEY_POOLING)?;
        if pooling != POOLING_MEAN {
            return Err(EmbedError::Format(format!(
                "pooling type {pooling} is not mean pooling"
            )));
        }
        Ok(BertConfig {
            hidden: self.usize(KEY_HIDDEN)?,
            intermediate: self.usize(KEY_FFN)?,
            layers: self.usize(KEY_LAYERS)?,
            heads: self.usize(KEY_HEADS)?,
            max_positions: self.usize(KEY_CONTEXT)?,
            eps: self.typed(KEY_EPS, Value::to_f32)? as f64,
            hidden_order: self.hidden_order()?,
        })
    }

    /// Optional, so GGUFs converted by other tools (unpermuted) load too.
    fn hidden_order(&self) -> Result<Vec<usize>, EmbedError> {
        if !self.content.metadata.contains_key(KEY_HIDDEN_ORDER) {
            return Ok(Vec::new());
        }
        self.typed(KEY_HIDDEN_ORDER, Value::to_vec)?
            .iter()
            .map(|v| {
                v.to_u32().map(|d| d as usize).map_err(|e| {
                    EmbedError::Format(format!("metadata key {KEY_HIDDEN_ORDER}: {e}"))
                })
            })
            .collect()
    }

    /// A tensor by name: Q8_0 ones borrow their blocks from the model's bytes, the others
    /// (vectors and small f32 tables) are copied out.
    pub(crate) fn tensor(&self, name: &str) -> Result<QTensor, EmbedError> {
        let Some(info) = self.content.tensor_infos.get(name) else {
            return Err(EmbedError::Format(format!("tensor {name} is missing")));
        };
        if info.ggml_dtype != GgmlDType::Q8_0 {
            return Ok(self.content.tensor(
                &mut Cursor::new(&**self.weights),
                name,
                &Device::Cpu,
            )?);
        }
        let range = self.data_range(info).ok_or_else(|| {
            EmbedError::Format(format!("tensor {name} lies outside the file (truncated?)"))
        })?;
        InPlaceQ8::tensor(Arc::clone(&self.weights), range, info.shape.clone())
            .map_err(|e| EmbedError::Format(format!("tensor {name}: {e}")))
    }

    /// Where a tensor's data lies in the file, if its offsets do not overflow.
    fn data_range(&self, info: &TensorInfo) -> Option<Range<usize>> {
        let dtype = info.ggml_dtype;
        let len = info.shape.elem_count() / dtype.block_size() * dtype.type_size();
        let start =
            usize::try_from(self.content.tensor_data_offset.checked_add(info.offset)?).ok()?;
        Some(start..start.checked_add(len)?)
    }

    /// Identifies the model for caches of its outputs without reading all of it, which would
    /// page in the whole file: the header (metadata, vocabulary, tensor names, shapes and
    /// offsets), the file's length, and the first bytes of every tensor, which any retraining
    /// or requantization changes.
    pub(crate) fn fingerprint(&self) -> u64 {
        let bytes: &[u8] = &self.weights;
        let mut hash = Fnv1a::new();
        hash.write(&(bytes.len() as u64).to_le_bytes());
        let header = usize::try_from(self.content.tensor_data_offset).unwrap_or(usize::MAX);
        hash.write(&bytes[..header.min(bytes.len())]);
        let mut infos: Vec<&TensorInfo> = self.content.tensor_infos.values().collect();
        infos.sort_by_key(|info| info.offset);
        for range in infos.into_iter().filter_map(|info| self.data_range(info)) {
            let head = range.start..range.end.min(range.start + FINGERPRINT_TENSOR_BYTES);
            hash.write(bytes.get(head).unwrap_or_default());
        }
        hash.finish()
    }
}
