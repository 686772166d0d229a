//! BERT uncased WordPiece tokenisation, rebuilt from the settings stored in the GGUF.
//!
//! The `tokenizers` crate does the work: candle-core already depends on it with the same
//! pure-Rust feature set, so using it costs no extra compile time and keeps byte-for-byte
//! parity with the Python tokenizer (Unicode categories, accent stripping, CJK splitting).

use serde_json::json;
use tokenizers::Tokenizer;

use super::EmbedError;
use super::gguf::{self, GgufFile};

/// Everything needed to rebuild the tokenizer; stored as GGUF metadata by the converter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TokenizerSettings {
    /// Token strings indexed by id.
    pub(crate) vocab: Vec<String>,
    pub(crate) unk: u32,
    pub(crate) sep: u32,
    pub(crate) cls: u32,
    pub(crate) pad: u32,
    pub(crate) mask: u32,
    pub(crate) lowercase: bool,
    pub(crate) strip_accents: bool,
    pub(crate) clean_text: bool,
    pub(crate) handle_chinese_chars: bool,
    pub(crate) subword_prefix: String,
    pub(crate) max_word_chars: usize,
    /// Longest encoded sequence, special tokens included; longer inputs are truncated.
    pub(crate) max_tokens: usize,
}

impl TokenizerSettings {
    fn from_gguf(file: &GgufFile) -> Result<Self, EmbedError> {
        let model = file.string(gguf::KEY_TOK_MODEL)?;
        if model != "bert" {
            return Err(EmbedError::Format(format!(
                "tokenizer model is {model:?}, expected \"bert\""
            )));
        }
        Ok(TokenizerSettings {
            vocab: file
                .strings(gguf::KEY_TOKENS)?
                .into_iter()
                .map(str::to_owned)
                .collect(),
            unk: file.u32(gguf::KEY_UNK)?,
            sep: file.u32(gguf::KEY_SEP)?,
            cls: file.u32(gguf::KEY_CLS)?,
            pad: file.u32(gguf::KEY_PAD)?,
            mask: file.u32(gguf::KEY_MASK)?,
            lowercase: file.bool(gguf::KEY_LOWERCASE)?,
            strip_accents: file.bool(gguf::KEY_STRIP_ACCENTS)?,
            clean_text: file.bool(gguf::KEY_CLEAN_TEXT)?,
            handle_chinese_chars: file.bool(gguf::KEY_CHINESE)?,
            subword_prefix: file.string(gguf::KEY_SUBWORD_PREFIX)?.to_owned(),
            max_word_chars: file.usize(gguf::KEY_MAX_WORD_CHARS)?,
            max_tokens: file.usize(gguf::KEY_MAX_TOKENS)?,
        })
    }

    fn token(&self, id: u32) -> Result<&str, EmbedError> {
        self.vocab
            .get(id as usize)
            .map(String::as_str)
            .ok_or_else(|| {
                EmbedError::Format(format!("special token id {id} is not in the vocabulary"))
            })
    }
}

/// A tokenizer producing `[CLS] … [SEP]` id sequences, truncated but never padded: the model
/// packs sequences itself, so padding here would only be stripped again.
pub(crate) struct WordPiece {
    inner: Tokenizer,
}

impl WordPiece {
    pub(crate) fn from_gguf(file: &GgufFile) -> Result<Self, EmbedError> {
        Self::new(&TokenizerSettings::from_gguf(file)?)
    }

    /// Builds the tokenizer through its serialised form, the one constructor of the
    /// `tokenizers` crate that takes every BERT setting and a plain vocabulary map.
    pub fn new(s: &TokenizerSettings) -> Result<Self, EmbedError> {
        let vocab: serde_json::Map<String, serde_json::Value> = s
            .vocab
            .iter()
            .enumerate()
            .map(|(id, tok)| (tok.clone(), json!(id)))
            .collect();
        if vocab.len() != s.vocab.len() {
            return Err(EmbedError::Format("vocabulary has duplicate tokens".into()));
        }
        let specials = [s.pad, s.unk, s.cls, s.sep, s.mask]
            .into_iter()
            .map(|id| {
                Ok(json!({
                    "id": id, "content": s.token(id)?, "special": true, "single_word": false,
                    "lstrip": false, "rstrip": false, "normalized": false,
                }))
            })
            .collect::<Result<Vec<_>, EmbedError>>()?;
        let spec = json!({
            "version": "1.0",
            "truncation": {
                "direction": "Right", "max_length": s.max_tokens,
                "strategy": "LongestFirst", "stride": 0,
            },
            "padding": null,
            "added_tokens": specials,
            "normalizer": {
                "type": "BertNormalizer", "clean_text": s.clean_text,
                "handle_chinese_chars": s.handle_chinese_chars,
                "strip_accents": s.strip_accents, "lowercase": s.lowercase,
            },
            "pre_tokenizer": { "type": "BertPreTokenizer" },
            "post_processor": {
                "type": "BertProcessing",
                "sep": [s.token(s.sep)?, s.sep], "cls": [s.token(s.cls)?, s.cls],
            },
            "decoder": null,
            "model": {
                "type": "WordPiece", "unk_token": s.token(s.unk)?,
                "continuing_subword_prefix": s.subword_prefix,
                "max_input_chars_per_word": s.max_word_chars, "vocab": vocab,
            },
        });
        let inner = spec
            .to_string()
            .parse::<Tokenizer>()
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        Ok(WordPiece { inner })
    }

    /// Encodes each text on the calling thread: batches are short texts, where fanning out
    /// to a rayon pool costs more than it saves and would compete with candle's workers.
    pub(crate) fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, EmbedError> {
        texts
            .iter()
            .map(|t| {
                self.inner
                    .encode_fast(*t, true)
                    .map(|e| e.get_ids().to_vec())
                    .map_err(|e| EmbedError::Tokenizer(e.to_string()))
            })
            .collect()
    }
}
