//! Conversion of a sentence-transformers all-MiniLM-L6-v2 directory (safetensors weights,
//! config.json, tokenizer.json) into one Q8_0 GGUF that carries the tokenizer too, plus an
//! optional fixture of reference embeddings computed with the unquantized f32 weights.
//!
//! The file layout, the encoder and the tokenizer are the loader's own (`crate::ml::minilm`),
//! so what this writes is exactly what the bot reads; the writing side (metadata, tensors,
//! the fixture) lives only here.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use serde_json::Value as Json;

use crate::ml::minilm::gguf;
use crate::ml::minilm::model::{Bert, BertConfig, names};
use crate::ml::minilm::tokenizer::{TokenizerSettings, WordPiece};
use crate::ml::minilm::{EmbedError, Embedder, cosine};

/// What can go wrong converting: anything that can go wrong loading or running the model,
/// and source files that are not JSON.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error("JSON in {path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

// Tensor errors read as the embedder's own, as they did before the converter moved here.
impl From<candle_core::Error> for ImportError {
    fn from(e: candle_core::Error) -> Self {
        ImportError::Embed(e.into())
    }
}

/// A source file that does not describe a model this runtime can run.
fn malformed(reason: String) -> ImportError {
    ImportError::Embed(EmbedError::Format(reason))
}

/// Texts of the reference fixture: everyday English, paraphrases, other scripts, accents,
/// emoji, markup, an empty string and one input long enough to be truncated.
const REFERENCE_SENTENCES: [&str; 16] = [
    "how do I reset my password",
    "I forgot my password, how can I change it",
    "the weather is nice today",
    "The quick brown fox jumps over the lazy dog.",
    "I'm so happy for you!! 🎉🎉",
    "This is the worst customer service I have ever experienced.",
    "Café crème à Paris, s'il vous plaît.",
    "Ich möchte mein Abonnement kündigen.",
    "机器学习很有趣",
    "Can you send me the invoice for order #48213?",
    "fn main() { println!(\"hello\"); }",
    "WHY IS NOTHING WORKING",
    "",
    "ok",
    "Remind me tomorrow at 9am to call the dentist about my appointment.",
    "Telegram bots can answer inline queries, receive payments and moderate group chats; \
     this sentence keeps going with more and more clauses about scheduling, reminders, \
     translations, polls, quizzes, games, stickers, channels, webhooks, long polling, \
     rate limits, retries, backoff, idempotency keys, persistence, snapshots, migrations, \
     metrics, tracing, logging, alerting, dashboards, deployments, rollbacks, canaries, \
     feature flags, experiments, cohorts, funnels, retention curves, churn, revenue, \
     invoices, refunds, chargebacks, taxes, currencies, exchange rates, time zones, \
     calendars, holidays, weekends, business hours, service levels, escalations, on-call \
     rotations, incident reviews, postmortems, action items, follow-ups, and yet more \
     words so that the tokenizer has to cut it at two hundred and fifty-six tokens, which \
     is the limit the model was trained with, because attention cost grows with the square \
     of the length and the sentence embedding of a very long text is dominated by its \
     beginning anyway, as the authors of the model note in their documentation; one, two, \
     three, four, five, six, seven, eight, nine, ten, eleven, twelve, thirteen, fourteen, \
     fifteen, sixteen, seventeen, eighteen, nineteen, twenty, twenty-one, twenty-two.",
];

/// What [`import_minilm`] wrote and how close the quantized model stays to f32.
#[derive(Debug, Clone)]
pub(crate) struct ImportReport {
    pub(crate) out: PathBuf,
    pub file_bytes: u64,
    pub(crate) tensors: usize,
    pub(crate) quantized_tensors: usize,
    pub(crate) vocab_size: usize,
    /// Cosine between the Q8_0 model's and the f32 model's embeddings of the reference texts.
    pub(crate) min_cosine: f32,
    pub(crate) mean_cosine: f32,
}

/// Converts the model directory `dir` into the GGUF `out`, and writes the f32 reference
/// embeddings of [`REFERENCE_SENTENCES`] to `fixture` when given.
pub(crate) fn import_minilm(
    dir: &Path,
    out: &Path,
    fixture: Option<&Path>,
) -> Result<ImportReport, ImportError> {
    let mut cfg = read_config(dir)?;
    let tok_settings = read_tokenizer(dir)?;
    let mut weights = read_weights(dir, &cfg)?;

    let ids = WordPiece::new(&tok_settings)?.encode_batch(&REFERENCE_SENTENCES)?;
    let f32_model = Bert::load(&cfg, |name| {
        Ok(QTensor::quantize(lookup(&weights, name)?, GgmlDType::F32)?)
    })?;
    let reference = f32_model.embed(&ids)?;
    cfg.hidden_order = hidden_order(&f32_model.residual_peaks(&ids)?);
    drop(f32_model);
    permute_hidden(&mut weights, &cfg)?;

    let mut md = Metadata::default();
    model_metadata(&mut md, &cfg);
    tokenizer_metadata(&tok_settings, &mut md);
    let mut tensors = Vec::with_capacity(weights.len());
    let mut names: Vec<&String> = weights.keys().collect();
    names.sort();
    for name in names {
        let t = &weights[name];
        let dtype = if t.rank() == 2 && is_quantized(name) {
            GgmlDType::Q8_0
        } else {
            GgmlDType::F32
        };
        tensors.push((name.clone(), QTensor::quantize(t, dtype)?));
    }
    write_gguf(out, &md, &tensors)?;

    let embedder = Embedder::load(out)?;
    let quantized = embedder.embed(&REFERENCE_SENTENCES)?;
    let cosines: Vec<f32> = quantized
        .iter()
        .zip(&reference)
        .map(|(a, b)| cosine(a, b))
        .collect();
    if let Some(path) = fixture {
        write_fixture(path, &reference)?;
    }
    let file_bytes = std::fs::metadata(out)
        .map_err(|source| EmbedError::Io {
            path: out.to_path_buf(),
            source,
        })?
        .len();
    Ok(ImportReport {
        out: out.to_path_buf(),
        file_bytes,
        tensors: tensors.len(),
        quantized_tensors: tensors
            .iter()
            .filter(|(_, t)| t.dtype() == GgmlDType::Q8_0)
            .count(),
        vocab_size: tok_settings.vocab.len(),
        min_cosine: cosines.iter().copied().fold(f32::INFINITY, f32::min),
        mean_cosine: cosines.iter().sum::<f32>() / cosines.len() as f32,
    })
}

/// Matrices multiplied by activations, and the word embeddings whose rows are dequantized on
/// lookup, go to Q8_0; biases, norms and the small position table stay f32.
fn is_quantized(name: &str) -> bool {
    name == names::WORD
        || [names::QKV, names::ATTN_OUT, names::FFN_UP, names::FFN_DOWN]
            .iter()
            .any(|part| name.ends_with(&format!(".{part}.weight")))
}

fn read_json(path: &Path) -> Result<Json, ImportError> {
    let text = std::fs::read_to_string(path).map_err(|source| EmbedError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| ImportError::Json {
        path: path.to_path_buf(),
        source,
    })
}

fn field<'a>(json: &'a Json, path: &Path, key: &str) -> Result<&'a Json, ImportError> {
    json.get(key)
        .ok_or_else(|| malformed(format!("{} has no field {key:?}", path.display())))
}

fn usize_field(json: &Json, path: &Path, key: &str) -> Result<usize, ImportError> {
    field(json, path, key)?
        .as_u64()
        .map(|v| v as usize)
        .ok_or_else(|| malformed(format!("{}: {key} is not a count", path.display())))
}

fn expect_str(json: &Json, path: &Path, key: &str, want: &str) -> Result<(), ImportError> {
    match field(json, path, key)?.as_str() {
        Some(v) if v == want => Ok(()),
        other => Err(malformed(format!(
            "{}: {key} is {other:?}, only {want:?} is supported",
            path.display()
        ))),
    }
}

fn read_config(dir: &Path) -> Result<BertConfig, ImportError> {
    let path = dir.join("config.json");
    let json = read_json(&path)?;
    expect_str(&json, &path, "model_type", "bert")?;
    expect_str(&json, &path, "hidden_act", "gelu")?;
    if let Some(kind) = json.get("position_embedding_type")
        && kind != "absolute"
    {
        return Err(malformed(format!(
            "{}: position_embedding_type {kind} is not supported",
            path.display()
        )));
    }
    let pooling_path = dir.join("1_Pooling").join("config.json");
    if pooling_path.exists() {
        let pooling = read_json(&pooling_path)?;
        if pooling.get("pooling_mode_mean_tokens") != Some(&Json::Bool(true)) {
            return Err(malformed(format!(
                "{}: only mean pooling is supported",
                pooling_path.display()
            )));
        }
    }
    Ok(BertConfig {
        hidden: usize_field(&json, &path, "hidden_size")?,
        intermediate: usize_field(&json, &path, "intermediate_size")?,
        layers: usize_field(&json, &path, "num_hidden_layers")?,
        heads: usize_field(&json, &path, "num_attention_heads")?,
        max_positions: usize_field(&json, &path, "max_position_embeddings")?,
        eps: field(&json, &path, "layer_norm_eps")?
            .as_f64()
            .ok_or_else(|| malformed(format!("{}: bad layer_norm_eps", path.display())))?,
        hidden_order: Vec::new(),
    })
}

/// The model was trained on 256-token inputs (sentence_bert_config.json), shorter than the
/// tokenizer's own 512/128 limits, so that is the truncation length stored.
fn read_max_tokens(dir: &Path) -> Result<usize, ImportError> {
    let path = dir.join("sentence_bert_config.json");
    if !path.exists() {
        return Ok(256);
    }
    usize_field(&read_json(&path)?, &path, "max_seq_length")
}

fn read_tokenizer(dir: &Path) -> Result<TokenizerSettings, ImportError> {
    let path = dir.join("tokenizer.json");
    let json = read_json(&path)?;
    let model = field(&json, &path, "model")?;
    expect_str(model, &path, "type", "WordPiece")?;
    let normalizer = field(&json, &path, "normalizer")?;
    expect_str(normalizer, &path, "type", "BertNormalizer")?;
    expect_str(
        field(&json, &path, "pre_tokenizer")?,
        &path,
        "type",
        "BertPreTokenizer",
    )?;
    let flag = |key: &str| -> Result<bool, ImportError> {
        field(normalizer, &path, key)?
            .as_bool()
            .ok_or_else(|| malformed(format!("{}: {key} is not a bool", path.display())))
    };
    let lowercase = flag("lowercase")?;
    // BERT's rule: with strip_accents unset, accents are stripped exactly when lowercasing.
    let strip_accents = match field(normalizer, &path, "strip_accents")? {
        Json::Null => lowercase,
        v => v
            .as_bool()
            .ok_or_else(|| malformed(format!("{}: strip_accents is not a bool", path.display())))?,
    };
    let vocab_json = field(model, &path, "vocab")?
        .as_object()
        .ok_or_else(|| malformed(format!("{}: vocab is not a map", path.display())))?;
    let mut vocab = vec![None; vocab_json.len()];
    for (tok, id) in vocab_json {
        let slot = id
            .as_u64()
            .and_then(|id| vocab.get_mut(id as usize))
            .ok_or_else(|| malformed(format!("{}: token {tok:?} has id {id}", path.display())))?;
        *slot = Some(tok.clone());
    }
    let vocab = vocab
        .into_iter()
        .collect::<Option<Vec<String>>>()
        .ok_or_else(|| malformed(format!("{}: vocab ids have gaps", path.display())))?;
    let id_of = |tok: &str| -> Result<u32, ImportError> {
        vocab_json
            .get(tok)
            .and_then(Json::as_u64)
            .map(|id| id as u32)
            .ok_or_else(|| malformed(format!("{}: no token {tok}", path.display())))
    };
    let unk_token = field(model, &path, "unk_token")?
        .as_str()
        .ok_or_else(|| malformed(format!("{}: unk_token", path.display())))?;
    Ok(TokenizerSettings {
        unk: id_of(unk_token)?,
        sep: id_of("[SEP]")?,
        cls: id_of("[CLS]")?,
        pad: id_of("[PAD]")?,
        mask: id_of("[MASK]")?,
        lowercase,
        strip_accents,
        clean_text: flag("clean_text")?,
        handle_chinese_chars: flag("handle_chinese_chars")?,
        subword_prefix: field(model, &path, "continuing_subword_prefix")?
            .as_str()
            .unwrap_or("##")
            .to_owned(),
        max_word_chars: usize_field(model, &path, "max_input_chars_per_word")?,
        max_tokens: read_max_tokens(dir)?,
        vocab,
    })
}

fn lookup<'a>(weights: &'a HashMap<String, Tensor>, name: &str) -> Result<&'a Tensor, EmbedError> {
    weights
        .get(name)
        .ok_or_else(|| EmbedError::Format(format!("weights have no tensor for {name}")))
}

/// Loads the safetensors weights as f32 under their GGUF names, with q, k and v fused.
fn read_weights(dir: &Path, cfg: &BertConfig) -> Result<HashMap<String, Tensor>, ImportError> {
    let path = dir.join("model.safetensors");
    let hf = candle_core::safetensors::load(&path, &Device::Cpu).map_err(|e| {
        EmbedError::InvalidFile {
            path: path.clone(),
            source: Box::new(e.into()),
        }
    })?;
    // Checkpoints saved from BertForX carry a "bert." prefix; sentence-transformers' don't.
    let get = |name: &str| -> Result<Tensor, ImportError> {
        hf.get(name)
            .or_else(|| hf.get(&format!("bert.{name}")))
            .ok_or_else(|| malformed(format!("{} has no tensor {name}", path.display())))?
            .to_dtype(candle_core::DType::F32)
            .map_err(ImportError::from)
    };
    let mut out = HashMap::new();
    let mut put = |gguf_name: String, hf_name: &str| -> Result<(), ImportError> {
        out.insert(gguf_name, get(hf_name)?);
        Ok(())
    };
    put(names::WORD.into(), "embeddings.word_embeddings.weight")?;
    put(
        names::POSITION.into(),
        "embeddings.position_embeddings.weight",
    )?;
    put(
        names::TOKEN_TYPE.into(),
        "embeddings.token_type_embeddings.weight",
    )?;
    put(
        format!("{}.weight", names::EMB_NORM),
        "embeddings.LayerNorm.weight",
    )?;
    put(
        format!("{}.bias", names::EMB_NORM),
        "embeddings.LayerNorm.bias",
    )?;
    for i in 0..cfg.layers {
        let hf = |part: &str| format!("encoder.layer.{i}.{part}");
        for kind in ["weight", "bias"] {
            let g = |part: &str| names::block(i, &format!("{part}.{kind}"));
            put(
                g(names::ATTN_OUT),
                &hf(&format!("attention.output.dense.{kind}")),
            )?;
            put(
                g(names::ATTN_NORM),
                &hf(&format!("attention.output.LayerNorm.{kind}")),
            )?;
            put(g(names::FFN_UP), &hf(&format!("intermediate.dense.{kind}")))?;
            put(g(names::FFN_DOWN), &hf(&format!("output.dense.{kind}")))?;
            put(g(names::OUT_NORM), &hf(&format!("output.LayerNorm.{kind}")))?;
        }
    }
    for i in 0..cfg.layers {
        for kind in ["weight", "bias"] {
            let parts = ["query", "key", "value"]
                .map(|p| get(&format!("encoder.layer.{i}.attention.self.{p}.{kind}")));
            let [q, k, v] = parts;
            let fused = Tensor::cat(&[q?, k?, v?], 0)?;
            out.insert(names::block(i, &format!("{}.{kind}", names::QKV)), fused);
        }
    }
    Ok(out)
}

fn model_metadata(md: &mut Metadata, cfg: &BertConfig) {
    let u32v = |v: usize| Value::U32(v as u32);
    md.set(gguf::KEY_ARCH, Value::String(gguf::ARCH.into()));
    md.set("general.name", Value::String("all-MiniLM-L6-v2".into()));
    md.set("general.license", Value::String("apache-2.0".into()));
    // llama.cpp's LLAMA_FTYPE_MOSTLY_Q8_0.
    md.set("general.file_type", Value::U32(7));
    md.set(gguf::KEY_CONTEXT, u32v(cfg.max_positions));
    md.set(gguf::KEY_HIDDEN, u32v(cfg.hidden));
    md.set(gguf::KEY_FFN, u32v(cfg.intermediate));
    md.set(gguf::KEY_LAYERS, u32v(cfg.layers));
    md.set(gguf::KEY_HEADS, u32v(cfg.heads));
    md.set(gguf::KEY_EPS, Value::F32(cfg.eps as f32));
    md.set(gguf::KEY_POOLING, Value::U32(gguf::POOLING_MEAN));
    let order = cfg.hidden_order.iter().map(|&d| u32v(d)).collect();
    md.set(gguf::KEY_HIDDEN_ORDER, Value::Array(order));
}

/// The tokenizer settings as GGUF metadata, read back by `TokenizerSettings::from_gguf`.
fn tokenizer_metadata(s: &TokenizerSettings, md: &mut Metadata) {
    let vocab = s.vocab.iter().cloned().map(Value::String).collect();
    md.set(gguf::KEY_TOK_MODEL, Value::String("bert".into()));
    md.set(gguf::KEY_TOKENS, Value::Array(vocab));
    md.set(gguf::KEY_UNK, Value::U32(s.unk));
    md.set(gguf::KEY_SEP, Value::U32(s.sep));
    md.set(gguf::KEY_CLS, Value::U32(s.cls));
    md.set(gguf::KEY_PAD, Value::U32(s.pad));
    md.set(gguf::KEY_MASK, Value::U32(s.mask));
    md.set(gguf::KEY_LOWERCASE, Value::Bool(s.lowercase));
    md.set(gguf::KEY_STRIP_ACCENTS, Value::Bool(s.strip_accents));
    md.set(gguf::KEY_CLEAN_TEXT, Value::Bool(s.clean_text));
    md.set(gguf::KEY_CHINESE, Value::Bool(s.handle_chinese_chars));
    md.set(
        gguf::KEY_SUBWORD_PREFIX,
        Value::String(s.subword_prefix.clone()),
    );
    md.set(
        gguf::KEY_MAX_WORD_CHARS,
        Value::U32(s.max_word_chars as u32),
    );
    md.set(gguf::KEY_MAX_TOKENS, Value::U32(s.max_tokens as u32));
}

/// Orders hidden dimensions by how large they get, quietest first.
///
/// BERT's residual stream has a few outlier dimensions (here one peaks near 30 where the median
/// peak is 2). candle's VNNI kernels quantize activations in blocks of 256 with one scale each,
/// so one outlier coarsens 255 neighbours; with the quiet dimensions first, the first block
/// of every 384-wide row holds no outlier (measured on the reference texts: min cosine to f32
/// went from 0.989 to the figure in the model card).
fn hidden_order(peaks: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..peaks.len()).collect();
    order.sort_by(|&a, &b| peaks[a].total_cmp(&peaks[b]));
    order
}

/// Reorders the hidden dimension of every tensor that touches the residual stream. Attention
/// heads live in the q/k/v output dimensions, which stay put, so the network is unchanged up
/// to the order of its hidden units; the runtime restores the original order after pooling.
fn permute_hidden(
    weights: &mut HashMap<String, Tensor>,
    cfg: &BertConfig,
) -> Result<(), ImportError> {
    let index: Vec<u32> = cfg.hidden_order.iter().map(|&d| d as u32).collect();
    let index = Tensor::from_vec(index, cfg.hidden, &Device::Cpu)?;
    let mut permute = |name: String, dim: usize| -> Result<(), ImportError> {
        let t = lookup(weights, &name)?.index_select(&index, dim)?;
        weights.insert(name, t);
        Ok(())
    };
    permute(names::WORD.into(), 1)?;
    permute(names::POSITION.into(), 1)?;
    permute(names::TOKEN_TYPE.into(), 1)?;
    for kind in ["weight", "bias"] {
        permute(format!("{}.{kind}", names::EMB_NORM), 0)?;
    }
    for i in 0..cfg.layers {
        let p = |part: &str, kind: &str| names::block(i, &format!("{part}.{kind}"));
        permute(p(names::QKV, "weight"), 1)?;
        permute(p(names::FFN_UP, "weight"), 1)?;
        for kind in ["weight", "bias"] {
            permute(p(names::ATTN_OUT, kind), 0)?;
            permute(p(names::ATTN_NORM, kind), 0)?;
            permute(p(names::FFN_DOWN, kind), 0)?;
            permute(p(names::OUT_NORM, kind), 0)?;
        }
    }
    Ok(())
}

/// Writes beside the target and renames, so a failed import never leaves a truncated model.
fn write_gguf(out: &Path, md: &Metadata, tensors: &[(String, QTensor)]) -> Result<(), ImportError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| EmbedError::Io { path, source }
    };
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let tmp = out.with_extension("gguf.tmp");
    let file = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
    let mut w = BufWriter::new(file);
    md.write(&mut w, tensors)?;
    w.flush().map_err(io_err(&tmp))?;
    drop(w);
    std::fs::rename(&tmp, out).map_err(io_err(out))?;
    Ok(())
}

/// Metadata for the writer: owned values keyed by name, in a stable order.
#[derive(Default)]
struct Metadata(Vec<(String, Value)>);

impl Metadata {
    fn set(&mut self, key: &str, value: Value) {
        self.0.push((key.to_owned(), value));
    }

    fn write(
        &self,
        out: &mut (impl std::io::Write + std::io::Seek),
        tensors: &[(String, QTensor)],
    ) -> candle_core::Result<()> {
        let metadata: Vec<(&str, &Value)> = self.0.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
        candle_core::quantized::gguf_file::write(out, &metadata, &tensors)
    }
}

fn write_fixture(path: &Path, reference: &[Vec<f32>]) -> Result<(), ImportError> {
    // Six decimals keep the file small; the rounding moves cosines by less than 1e-9.
    let round = |x: f32| (x as f64 * 1e6).round() / 1e6;
    let items: Vec<Json> = REFERENCE_SENTENCES
        .iter()
        .zip(reference)
        .map(|(text, emb)| {
            serde_json::json!({
                "text": text,
                "embedding": emb.iter().map(|&x| round(x)).collect::<Vec<f64>>(),
            })
        })
        .collect();
    let doc = serde_json::json!({
        "model": "all-MiniLM-L6-v2",
        "computed_with": "edgebot f32 path on the unquantized safetensors weights",
        "items": items,
    });
    let io_err = |source| EmbedError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_err)?;
    }
    let text = serde_json::to_string(&doc).map_err(|source| ImportError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::write(path, text + "\n").map_err(io_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HIDDEN: usize = 32;
    /// A multiple of 256, as in the real model (1536): on VNNI CPUs the runtime pads the inner
    /// dimension of each quantized weight to a multiple of 256, but not the up projection's
    /// output that feeds the down projection.
    const FFN: usize = 256;
    const POSITIONS: usize = 24;
    const VOCAB: [&str; 16] = [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "how", "do", "i", "reset", "my", "password",
        "the", "weather", "is", "nice", "##s",
    ];

    /// A one-layer BERT in the layout of the sentence-transformers package, with small
    /// random weights: enough to run every step of the conversion without the real model.
    fn tiny_model_dir(dir: &Path) {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut random = |shape: &[usize]| {
            let n = shape.iter().product();
            let values: Vec<f32> = (0..n).map(|_| (rng.f32() - 0.5) * 0.2).collect();
            Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
        };
        let ones = |n: usize| Tensor::ones(n, candle_core::DType::F32, &Device::Cpu).unwrap();
        let mut weights = HashMap::new();
        let mut put = |name: &str, t: Tensor| {
            weights.insert(name.to_owned(), t);
        };
        put(
            "embeddings.word_embeddings.weight",
            random(&[VOCAB.len(), HIDDEN]),
        );
        put(
            "embeddings.position_embeddings.weight",
            random(&[POSITIONS, HIDDEN]),
        );
        put(
            "embeddings.token_type_embeddings.weight",
            random(&[2, HIDDEN]),
        );
        put("embeddings.LayerNorm.weight", ones(HIDDEN));
        put("embeddings.LayerNorm.bias", random(&[HIDDEN]));
        let layer = |part: &str| format!("encoder.layer.0.{part}");
        for p in ["query", "key", "value"] {
            put(
                &layer(&format!("attention.self.{p}.weight")),
                random(&[HIDDEN, HIDDEN]),
            );
            put(
                &layer(&format!("attention.self.{p}.bias")),
                random(&[HIDDEN]),
            );
        }
        put(
            &layer("attention.output.dense.weight"),
            random(&[HIDDEN, HIDDEN]),
        );
        put(&layer("attention.output.dense.bias"), random(&[HIDDEN]));
        put(&layer("attention.output.LayerNorm.weight"), ones(HIDDEN));
        put(&layer("attention.output.LayerNorm.bias"), random(&[HIDDEN]));
        put(&layer("intermediate.dense.weight"), random(&[FFN, HIDDEN]));
        put(&layer("intermediate.dense.bias"), random(&[FFN]));
        put(&layer("output.dense.weight"), random(&[HIDDEN, FFN]));
        put(&layer("output.dense.bias"), random(&[HIDDEN]));
        put(&layer("output.LayerNorm.weight"), ones(HIDDEN));
        put(&layer("output.LayerNorm.bias"), random(&[HIDDEN]));
        candle_core::safetensors::save(&weights, dir.join("model.safetensors")).unwrap();

        let config = serde_json::json!({
            "model_type": "bert", "hidden_act": "gelu", "hidden_size": HIDDEN,
            "intermediate_size": FFN, "num_hidden_layers": 1, "num_attention_heads": 2,
            "max_position_embeddings": POSITIONS, "layer_norm_eps": 1e-12,
        });
        let vocab: serde_json::Map<String, Json> = VOCAB
            .iter()
            .enumerate()
            .map(|(id, t)| ((*t).to_owned(), serde_json::json!(id)))
            .collect();
        let tokenizer = serde_json::json!({
            "normalizer": {
                "type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                "strip_accents": null, "lowercase": true,
            },
            "pre_tokenizer": { "type": "BertPreTokenizer" },
            "model": {
                "type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                "max_input_chars_per_word": 100, "vocab": vocab,
            },
        });
        // Shorter than the position table, so the long reference text is truncated.
        let sbert = serde_json::json!({ "max_seq_length": 16 });
        for (name, json) in [
            ("config.json", config),
            ("tokenizer.json", tokenizer),
            ("sentence_bert_config.json", sbert),
        ] {
            std::fs::write(dir.join(name), json.to_string()).unwrap();
        }
    }

    #[test]
    fn converts_a_model_directory_into_a_gguf_the_loader_reads() {
        let src = tempfile::tempdir().unwrap();
        tiny_model_dir(src.path());
        let out_dir = tempfile::tempdir().unwrap();
        let out = out_dir.path().join("sub/tiny.gguf");
        let fixture = out_dir.path().join("fixture.json");

        let report = import_minilm(src.path(), &out, Some(&fixture)).unwrap();
        assert_eq!(report.out, out);
        assert_eq!(report.vocab_size, VOCAB.len());
        // Five embedding tensors, twelve in the layer (q, k and v fused).
        assert_eq!(report.tensors, 17);
        // Word embeddings and the four weight matrices of the layer.
        assert_eq!(report.quantized_tensors, 5);
        assert_eq!(report.file_bytes, std::fs::metadata(&out).unwrap().len());
        assert!(report.min_cosine > 0.95, "min cosine {}", report.min_cosine);
        assert!(!out.with_extension("gguf.tmp").exists());

        let embedder = Embedder::load(&out).unwrap();
        let vectors = embedder.embed(&["how do i reset my password", ""]).unwrap();
        assert_eq!(vectors.len(), 2);
        assert_eq!(vectors[0].len(), HIDDEN);

        let fixture: Json =
            serde_json::from_str(&std::fs::read_to_string(&fixture).unwrap()).unwrap();
        let items = fixture["items"].as_array().unwrap();
        assert_eq!(items.len(), REFERENCE_SENTENCES.len());
        assert_eq!(items[0]["embedding"].as_array().unwrap().len(), HIDDEN);
    }

    #[test]
    fn errors_name_the_file_at_fault() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.gguf");
        let err = import_minilm(dir.path(), &out, None).unwrap_err();
        assert!(err.to_string().contains("config.json"), "{err}");
        std::fs::write(dir.path().join("config.json"), "{").unwrap();
        let err = import_minilm(dir.path(), &out, None).unwrap_err();
        assert!(matches!(err, ImportError::Json { .. }), "{err}");
        assert!(err.to_string().starts_with("JSON in "), "{err}");
        assert!(!out.exists());
    }
}
