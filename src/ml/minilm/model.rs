//! The BERT encoder with mean pooling. Linear layers are `QMatMul`s, so the same code runs the
//! Q8_0 model from the GGUF and the f32 reference model during import.
//!
//! Sequences are packed, never padded: a batch is one `[tokens, width]` matrix through the
//! matmuls (which hold nearly all the FLOPs), and attention runs per sequence on that packed
//! layout (`ops::Attention`), so short texts batched with long ones cost no extra work.

use std::borrow::Cow;

use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{Device, Module, Tensor};

use super::EmbedError;
use super::ops::{AddNorm, Attention, BiasGelu};

/// Tokens one forward pass takes at most; a larger batch runs as several passes. The
/// activations of a pass take about 28 KiB per token (the widest, the feed-forward layer's
/// 1536 floats, twice), so this bounds them near 28 MiB where a batch of 64 texts of 256
/// tokens would take over 400 MiB, while passes stay large enough for the matmuls to run at
/// full speed.
const MAX_PASS_TOKENS: usize = 1024;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BertConfig {
    pub(crate) hidden: usize,
    pub(crate) intermediate: usize,
    pub(crate) layers: usize,
    pub(crate) heads: usize,
    pub(crate) max_positions: usize,
    pub(crate) eps: f64,
    /// The converter may permute the hidden dimensions (see `import::hidden_order`): position
    /// `i` of the stored model holds original dimension `hidden_order[i]`. Empty: no permutation.
    pub(crate) hidden_order: Vec<usize>,
}

/// Tensor names in the GGUF, following llama.cpp's BERT naming; q, k and v are stored fused.
pub(crate) mod names {
    pub(crate) const WORD: &str = "token_embd.weight";
    pub(crate) const POSITION: &str = "position_embd.weight";
    pub(crate) const TOKEN_TYPE: &str = "token_types.weight";
    pub(crate) const EMB_NORM: &str = "token_embd_norm";

    pub(crate) fn block(i: usize, part: &str) -> String {
        format!("blk.{i}.{part}")
    }
    pub(crate) const QKV: &str = "attn_qkv";
    pub(crate) const ATTN_OUT: &str = "attn_output";
    pub(crate) const ATTN_NORM: &str = "attn_output_norm";
    pub(crate) const FFN_UP: &str = "ffn_up";
    pub(crate) const FFN_DOWN: &str = "ffn_down";
    pub(crate) const OUT_NORM: &str = "layer_output_norm";
}

/// A weight matrix without bias; `forward` computes `x · Wᵀ`.
struct Projection {
    weight: QMatMul,
    /// Input width the weight expects, possibly wider than the model (see `widen_k`).
    in_dim: usize,
}

impl Projection {
    fn new(weight: QTensor) -> candle_core::Result<Self> {
        let weight = widen_k(weight)?;
        let in_dim = weight.shape().dims2()?.1;
        Ok(Projection {
            weight: QMatMul::from_qtensor(weight)?,
            in_dim,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.weight.forward(x)
    }
}

/// candle's VNNI Q8_0 kernels (repacked weights, `vpdpbusd`) only take inner dimensions that
/// are multiples of 256, and its fallback kernel is about ten times slower. On CPUs with VNNI,
/// appending zero blocks to each row of a 384-wide weight (and zeros to the activations) costs
/// a third more multiply-adds but makes those layers several times faster overall.
fn widen_k(w: QTensor) -> candle_core::Result<QTensor> {
    const VNNI_K: usize = 256;
    let (n, k) = w.shape().dims2()?;
    let dtype = w.dtype();
    if dtype != GgmlDType::Q8_0 || k % VNNI_K == 0 || !has_vnni() {
        return Ok(w);
    }
    let wide_k = k.next_multiple_of(VNNI_K);
    let row_bytes = k / dtype.block_size() * dtype.type_size();
    let pad_bytes = (wide_k - k) / dtype.block_size() * dtype.type_size();
    let data = w.data()?;
    let mut wide = Vec::with_capacity(n * (row_bytes + pad_bytes));
    for row in data.chunks_exact(row_bytes) {
        wide.extend_from_slice(row);
        // An all-zero Q8_0 block is scale 0.0 (f16) and zero quants.
        wide.resize(wide.len() + pad_bytes, 0);
    }
    let storage = QStorage::from_data(Cow::Owned(wide), &Device::Cpu, dtype)?;
    QTensor::new(storage, (n, wide_k))
}

fn has_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        (is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni"))
            || is_x86_feature_detected!("avxvnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

struct Block {
    qkv: Projection,
    q_bias: Vec<f32>,
    v_bias: Vec<f32>,
    attn_out: Projection,
    attn_norm: AddNorm,
    ffn_up: Projection,
    ffn_act: BiasGelu,
    ffn_down: Projection,
    out_norm: AddNorm,
}

pub(crate) struct Bert {
    cfg: BertConfig,
    /// Rows are dequantized per token (in place, for a Q8_0 table read from the file).
    word: QTensor,
    /// Position embeddings with the (always zero) token-type embedding already added.
    position: Tensor,
    emb_norm_weight: Tensor,
    emb_norm_bias: Tensor,
    /// Row width of the hidden states between layers: the hidden size, or the wider input the
    /// quantized weights were widened to, with zero columns on the right.
    width: usize,
    blocks: Vec<Block>,
}

impl Bert {
    /// Builds the model from tensors looked up by GGUF name; quantized tensors stay quantized,
    /// f32 ones give the unquantized reference model.
    pub(crate) fn load(
        cfg: &BertConfig,
        get: impl Fn(&str) -> Result<QTensor, EmbedError>,
    ) -> Result<Bert, EmbedError> {
        let mut seen = vec![false; cfg.hidden];
        let is_permutation = cfg.hidden_order.len() == cfg.hidden
            && cfg
                .hidden_order
                .iter()
                .all(|&d| d < cfg.hidden && !std::mem::replace(&mut seen[d], true));
        if !cfg.hidden_order.is_empty() && !is_permutation {
            return Err(EmbedError::Format(
                "hidden dimension order is not a permutation".into(),
            ));
        }
        if cfg.heads == 0 || !cfg.hidden.is_multiple_of(cfg.heads) {
            return Err(EmbedError::Format(format!(
                "hidden size {} is not divisible by {} heads",
                cfg.hidden, cfg.heads
            )));
        }
        let dev = Device::Cpu;
        let h = cfg.hidden;
        let checked = |name: &str, shape: &[usize]| -> Result<QTensor, EmbedError> {
            let t = get(name)?;
            if t.shape().dims() != shape {
                return Err(EmbedError::Format(format!(
                    "tensor {name} has shape {:?}, expected {shape:?}",
                    t.shape().dims()
                )));
            }
            Ok(t)
        };
        let vector = |name: &str, len: usize| -> Result<Vec<f32>, EmbedError> {
            Ok(checked(name, &[len])?.dequantize(&dev)?.to_vec1()?)
        };
        let param = |i: usize, part: &str, kind: &str| names::block(i, &format!("{part}.{kind}"));
        let proj =
            |i: usize, part: &str, out: usize, inp: usize| -> Result<Projection, EmbedError> {
                Ok(Projection::new(checked(
                    &param(i, part, "weight"),
                    &[out, inp],
                )?)?)
            };
        let add_norm = |i: usize, part: &str, norm: &str| -> Result<AddNorm, EmbedError> {
            Ok(AddNorm {
                bias: vector(&param(i, part, "bias"), h)?,
                gamma: vector(&param(i, norm, "weight"), h)?,
                beta: vector(&param(i, norm, "bias"), h)?,
                eps: cfg.eps as f32,
            })
        };
        let mut blocks = Vec::with_capacity(cfg.layers);
        for i in 0..cfg.layers {
            let qkv_bias = vector(&param(i, names::QKV, "bias"), 3 * h)?;
            blocks.push(Block {
                qkv: proj(i, names::QKV, 3 * h, h)?,
                q_bias: qkv_bias[..h].to_vec(),
                v_bias: qkv_bias[2 * h..].to_vec(),
                attn_out: proj(i, names::ATTN_OUT, h, h)?,
                attn_norm: add_norm(i, names::ATTN_OUT, names::ATTN_NORM)?,
                ffn_up: proj(i, names::FFN_UP, cfg.intermediate, h)?,
                ffn_act: BiasGelu {
                    bias: vector(&param(i, names::FFN_UP, "bias"), cfg.intermediate)?,
                },
                ffn_down: proj(i, names::FFN_DOWN, h, cfg.intermediate)?,
                out_norm: add_norm(i, names::FFN_DOWN, names::OUT_NORM)?,
            });
        }
        let width = blocks.first().map_or(h, |b| b.qkv.in_dim);
        if blocks
            .iter()
            .any(|b| [b.qkv.in_dim, b.attn_out.in_dim, b.ffn_up.in_dim] != [width; 3])
        {
            return Err(EmbedError::Format(
                "hidden-size weights of different layers have different types".into(),
            ));
        }
        let word = get(names::WORD)?;
        if !matches!(word.shape().dims(), [_, cols] if *cols == h) {
            return Err(EmbedError::Format(format!(
                "tensor {} has shape {:?}, expected [vocab, {h}]",
                names::WORD,
                word.shape().dims()
            )));
        }
        let position = checked(names::POSITION, &[cfg.max_positions, h])?.dequantize(&dev)?;
        let token_type = get(names::TOKEN_TYPE)?.dequantize(&dev)?.get(0)?;
        let dense = |name: String| -> Result<Tensor, EmbedError> {
            Ok(checked(&name, &[h])?.dequantize(&dev)?)
        };
        Ok(Bert {
            cfg: cfg.clone(),
            word,
            position: position.broadcast_add(&token_type)?,
            emb_norm_weight: dense(format!("{}.weight", names::EMB_NORM))?,
            emb_norm_bias: dense(format!("{}.bias", names::EMB_NORM))?,
            width,
            blocks,
        })
    }

    #[cfg(test)]
    pub(crate) fn dim(&self) -> usize {
        self.cfg.hidden
    }

    /// Mean-pooled, L2-normalised embeddings of already tokenised sequences.
    pub(crate) fn embed(&self, seqs: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let lens: Vec<usize> = seqs.iter().map(Vec::len).collect();
        if let Some(&len) = lens.iter().find(|&&l| l == 0 || l > self.cfg.max_positions) {
            return Err(EmbedError::Tokenizer(format!(
                "sequence of {len} tokens is outside 1..={}",
                self.cfg.max_positions
            )));
        }
        let mut out = Vec::with_capacity(seqs.len());
        let mut first = 0;
        while first < seqs.len() {
            // Whole sequences up to the token budget, and at least one.
            let mut end = first + 1;
            let mut tokens = lens[first];
            while end < seqs.len() && tokens + lens[end] <= MAX_PASS_TOKENS {
                tokens += lens[end];
                end += 1;
            }
            out.extend(self.embed_pass(&seqs[first..end], &lens[first..end])?);
            first = end;
        }
        Ok(out)
    }

    /// One forward pass over sequences already checked for length.
    fn embed_pass(&self, seqs: &[Vec<u32>], lens: &[usize]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let hidden = self
            .encode(seqs, lens, &mut |_| Ok(()))?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let mut rows = hidden.chunks_exact(self.width);
        Ok(lens
            .iter()
            .map(|&len| {
                let mut sum = vec![0f32; self.cfg.hidden];
                for row in rows.by_ref().take(len) {
                    sum.iter_mut().zip(row).for_each(|(s, x)| *s += x);
                }
                // Mean then normalise equals normalising the sum, so the 1/len is skipped.
                let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                sum.iter_mut().for_each(|x| *x /= norm);
                if self.cfg.hidden_order.is_empty() {
                    return sum;
                }
                let mut original = vec![0f32; sum.len()];
                for (&dim, x) in self.cfg.hidden_order.iter().zip(sum) {
                    original[dim] = x;
                }
                original
            })
            .collect())
    }

    /// The largest magnitude each hidden dimension reaches in the residual stream (the input of
    /// every layer and the output) over the given sequences.
    pub(crate) fn residual_peaks(&self, seqs: &[Vec<u32>]) -> Result<Vec<f32>, EmbedError> {
        let lens: Vec<usize> = seqs.iter().map(Vec::len).collect();
        let mut peaks = vec![0f32; self.cfg.hidden];
        let h = self.cfg.hidden;
        self.encode(seqs, &lens, &mut |x| {
            let col_max = x.narrow(1, 0, h)?.abs()?.max(0)?.to_vec1::<f32>()?;
            peaks
                .iter_mut()
                .zip(col_max)
                .for_each(|(p, m)| *p = p.max(m));
            Ok(())
        })?;
        Ok(peaks)
    }

    /// The last hidden state of every token, packed as `[total_tokens, width]`.
    fn encode(
        &self,
        seqs: &[Vec<u32>],
        lens: &[usize],
        observe: &mut dyn FnMut(&Tensor) -> candle_core::Result<()>,
    ) -> candle_core::Result<Tensor> {
        let dev = Device::Cpu;
        let total: usize = lens.iter().sum();
        let ids: Vec<u32> = seqs.iter().flatten().copied().collect();
        let positions: Vec<u32> = lens.iter().flat_map(|&l| 0..l as u32).collect();
        let ids = Tensor::from_vec(ids, total, &dev)?;
        let positions = Tensor::from_vec(positions, total, &dev)?;
        let x = (self.word.embedding(&ids)? + self.position.index_select(&positions, 0)?)?;
        let x = candle_nn::ops::layer_norm(
            &x,
            &self.emb_norm_weight,
            &self.emb_norm_bias,
            self.cfg.eps as f32,
        )?;
        let mut x = x.pad_with_zeros(1, 0, self.width - self.cfg.hidden)?;
        observe(&x)?;
        for block in &self.blocks {
            x = self.block(block, &x, lens)?;
            observe(&x)?;
        }
        Ok(x)
    }

    fn block(&self, blk: &Block, x: &Tensor, lens: &[usize]) -> candle_core::Result<Tensor> {
        let ctx = blk.qkv.forward(x)?.apply_op1_no_bwd(&Attention {
            lens,
            heads: self.cfg.heads,
            width: self.width,
            q_bias: &blk.q_bias,
            v_bias: &blk.v_bias,
        })?;
        let x = blk
            .attn_out
            .forward(&ctx)?
            .apply_op2_no_bwd(x, &blk.attn_norm)?;
        let up = blk.ffn_up.forward(&x)?.apply_op1_no_bwd(&blk.ffn_act)?;
        blk.ffn_down
            .forward(&up)?
            .apply_op2_no_bwd(&x, &blk.out_norm)
    }
}
