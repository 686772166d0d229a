//! Fused CPU ops for everything between the quantized matmuls of a BERT layer.
//!
//! With the matmuls on candle's VNNI kernels, the glue around them (bias adds, padding,
//! reshapes for attention, residual adds, LayerNorm, libm's scalar `erff` in GELU) cost as much
//! as the matmuls themselves, one memory pass per candle op. Each op here does one pass.
//! Rows may be wider than the model (zero columns on the right, see `model::widen_k`).

use std::f32::consts::FRAC_1_SQRT_2;
use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, bail};

/// Rows handed to one worker at a time by `par_rows`.
const ROWS_PER_TASK: usize = 16;

/// Runs `f(first_row, rows)` over disjoint runs of rows of `out` on candle's worker pool, the
/// threads its matmuls use (sized by `CANDLE_NUM_THREADS`), so the glue scales with them.
/// Each run sits behind its own, never contended, mutex to hand it out safely.
fn par_rows(out: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let tasks: Vec<Mutex<(usize, &mut [f32])>> = out
        .chunks_mut(width * ROWS_PER_TASK)
        .enumerate()
        .map(|(i, rows)| Mutex::new((i * ROWS_PER_TASK, rows)))
        .collect();
    run_tasks(&tasks, |(first, rows)| f(*first, rows));
}

fn run_tasks<T: Send>(tasks: &[Mutex<T>], f: impl Fn(&mut T) + Sync) {
    candle_core::utils::barrier_pool().execute_chunked(tasks.len(), |range| {
        for task in &tasks[range] {
            f(&mut task.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        }
    });
}

fn contiguous<'a>(
    op: &str,
    storage: &'a CpuStorage,
    layout: &Layout,
) -> candle_core::Result<(&'a [f32], usize)> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!("{op} needs a contiguous input")
    };
    let &[_, width] = layout.dims() else {
        bail!("{op} needs a matrix, got {:?}", layout.dims())
    };
    Ok((&storage.as_slice::<f32>()?[start..end], width))
}

/// Adds the feed-forward bias and applies the exact (erf) GELU.
pub(crate) struct BiasGelu {
    pub(crate) bias: Vec<f32>,
}

impl CustomOp1 for BiasGelu {
    fn name(&self) -> &'static str {
        "bias-gelu"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, width) = contiguous(self.name(), storage, layout)?;
        if width != self.bias.len() {
            bail!("bias-gelu: width {width} but {} biases", self.bias.len())
        }
        let mut out = vec![0f32; x.len()];
        par_rows(&mut out, width, |first, rows| {
            let x = &x[first * width..];
            for (o, x) in rows.chunks_exact_mut(width).zip(x.chunks_exact(width)) {
                for ((o, &v), &b) in o.iter_mut().zip(x).zip(&self.bias) {
                    *o = gelu(v + b);
                }
            }
        });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

#[inline]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * FRAC_1_SQRT_2))
}

/// Abramowitz & Stegun 7.1.28, absolute error below 3e-7, with neither `exp` nor branches.
#[inline]
fn erf(x: f32) -> f32 {
    const A: [f32; 6] = [
        0.070_523_08,
        0.042_282_01,
        0.009_270_527,
        0.000_152_014_3,
        0.000_276_567_2,
        0.000_043_063_8,
    ];
    let a = x.abs();
    let p = 1.0 + a * (A[0] + a * (A[1] + a * (A[2] + a * (A[3] + a * (A[4] + a * A[5])))));
    let p2 = p * p;
    let p4 = p2 * p2;
    let p8 = p4 * p4;
    (1.0 - 1.0 / (p8 * p8)).copysign(x)
}

/// `LayerNorm(y + bias + residual)`, where `y` is `[tokens, hidden]` and the residual and the
/// output are `[tokens, width]` with zero columns from `hidden` on.
pub(crate) struct AddNorm {
    pub(crate) bias: Vec<f32>,
    pub(crate) gamma: Vec<f32>,
    pub(crate) beta: Vec<f32>,
    pub(crate) eps: f32,
}

impl CustomOp2 for AddNorm {
    fn name(&self) -> &'static str {
        "add-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (y, hidden) = contiguous(self.name(), s1, l1)?;
        let (res, width) = contiguous(self.name(), s2, l2)?;
        if hidden != self.bias.len() || width < hidden || y.len() / hidden != res.len() / width {
            bail!(
                "add-norm: shapes {:?} and {:?} do not match",
                l1.dims(),
                l2.dims()
            )
        }
        let mut out = vec![0f32; res.len()];
        par_rows(&mut out, width, |first, rows| {
            let mut sum = vec![0f32; hidden];
            let y = y[first * hidden..].chunks_exact(hidden);
            let res = res[first * width..].chunks_exact(width);
            for ((o, y), r) in rows.chunks_exact_mut(width).zip(y).zip(res) {
                for (((s, &y), &b), &r) in sum.iter_mut().zip(y).zip(&self.bias).zip(r) {
                    *s = y + b + r;
                }
                let mean = sum.iter().sum::<f32>() / hidden as f32;
                let var = sum.iter().map(|s| (s - mean) * (s - mean)).sum::<f32>() / hidden as f32;
                let inv = 1.0 / (var + self.eps).sqrt();
                for (((o, &s), &g), &b) in o.iter_mut().zip(&sum).zip(&self.gamma).zip(&self.beta) {
                    *o = (s - mean) * inv * g + b;
                }
            }
        });
        Ok((CpuStorage::F32(out), l2.shape().clone()))
    }
}

/// Multi-head self-attention over packed sequences: reads the fused `[tokens, 3·hidden]`
/// q|k|v projection (without bias) and writes `[tokens, width]` contexts. Tokens attend only
/// within their own sequence, so no padding or mask is needed.
///
/// The key bias is dropped: it adds the same `q·b_k` to every score of a query, which softmax
/// cancels. The value bias is added once to the output, as the weights of a softmax sum to one.
pub(crate) struct Attention<'a> {
    pub(crate) lens: &'a [usize],
    pub(crate) heads: usize,
    pub(crate) width: usize,
    pub(crate) q_bias: &'a [f32],
    pub(crate) v_bias: &'a [f32],
}

impl CustomOp1 for Attention<'_> {
    fn name(&self) -> &'static str {
        "packed-attention"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (qkv, three_h) = contiguous(self.name(), storage, layout)?;
        let hidden = self.q_bias.len();
        let tokens: usize = self.lens.iter().sum();
        if three_h != 3 * hidden || qkv.len() != tokens * three_h || self.width < hidden {
            bail!("packed-attention: input {:?} does not match", layout.dims())
        }
        let mut out = vec![0f32; tokens * self.width];
        // One task per sequence: (its rows of qkv, its rows of the output).
        let mut tasks = Vec::with_capacity(self.lens.len());
        let (mut qkv_rest, mut out_rest) = (qkv, out.as_mut_slice());
        for &len in self.lens {
            let (q, qr) = qkv_rest.split_at(len * three_h);
            let (o, or) = std::mem::take(&mut out_rest).split_at_mut(len * self.width);
            tasks.push(Mutex::new((q, o)));
            (qkv_rest, out_rest) = (qr, or);
        }
        #[cfg(target_arch = "x86_64")]
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        run_tasks(&tasks, |(rows, outs)| {
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: the CPU supports the features the function is compiled for.
                unsafe { self.sequence_avx2(rows, outs) };
                return;
            }
            self.sequence(rows, outs);
        });
        Ok((CpuStorage::F32(out), Shape::from((tokens, self.width))))
    }
}

impl Attention<'_> {
    /// The same loops compiled for 8-wide FMA; the portable build only assumes SSE2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sequence_avx2(&self, rows: &[f32], outs: &mut [f32]) {
        self.sequence(rows, outs)
    }

    /// Attention within one sequence: `rows` are its `[len, 3·hidden]` projections and `outs`
    /// its `[len, width]` output rows.
    #[inline(always)]
    fn sequence(&self, rows: &[f32], outs: &mut [f32]) {
        let hidden = self.q_bias.len();
        let head_dim = hidden / self.heads;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let len = rows.len() / (3 * hidden);
        let mut scores = vec![0f32; len];
        let mut q = vec![0f32; head_dim];
        for h in 0..self.heads {
            let cols = h * head_dim..(h + 1) * head_dim;
            let key = |j: usize| &rows[j * 3 * hidden + hidden..][cols.clone()];
            let value = |j: usize| &rows[j * 3 * hidden + 2 * hidden..][cols.clone()];
            for i in 0..len {
                let qi = &rows[i * 3 * hidden..][cols.clone()];
                for ((q, &x), &b) in q.iter_mut().zip(qi).zip(&self.q_bias[cols.clone()]) {
                    *q = (x + b) * scale;
                }
                let mut max = f32::NEG_INFINITY;
                for (j, s) in scores.iter_mut().enumerate() {
                    *s = dot(&q, key(j));
                    max = max.max(*s);
                }
                let mut total = 0.0;
                for s in scores.iter_mut() {
                    *s = exp_nonpositive(*s - max);
                    total += *s;
                }
                let o = &mut outs[i * self.width..][cols.clone()];
                o.copy_from_slice(&self.v_bias[cols.clone()]);
                for (j, &s) in scores.iter().enumerate() {
                    let p = s / total;
                    for (o, &v) in o.iter_mut().zip(value(j)) {
                        *o += p * v;
                    }
                }
            }
        }
    }
}

/// `e^x` for `-87 <= x <= 0` to a relative error of a few 1e-6 (smaller `x` give `e^-87`): `2^floor` from the exponent bits times a
/// degree-7 polynomial for the fraction. Unlike libm's `expf` it inlines and vectorises, and
/// exponentials were half the cost of attention.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    const C: [f32; 7] = [
        std::f32::consts::LN_2,
        0.240_226_5,
        0.055_504_11,
        0.009_618_129,
        0.001_333_355_8,
        0.000_154_035_3,
        0.000_015_252_73,
    ];
    let t = x.max(-87.0) * std::f32::consts::LOG2_E;
    let n = t.floor();
    let f = t - n;
    let p = 1.0
        + f * (C[0] + f * (C[1] + f * (C[2] + f * (C[3] + f * (C[4] + f * (C[5] + f * C[6]))))));
    f32::from_bits(((n as i32 + 127) as u32) << 23) * p
}

/// Dot product with eight independent accumulators: a plain `sum()` is a serial chain of
/// dependent adds, since float addition is not reassociated by the compiler.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut a8 = a.chunks_exact(8);
    let mut b8 = b.chunks_exact(8);
    for (x, y) in (&mut a8).zip(&mut b8) {
        for ((acc, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            *acc += x * y;
        }
    }
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;

    #[test]
    fn exp_approximation_is_close() {
        for i in 0..=8_000 {
            let x = -(i as f32) / 100.0;
            let (got, want) = (exp_nonpositive(x), x.exp());
            assert!(
                (got - want).abs() <= 5e-6 * want,
                "exp({x}): {got} vs {want}"
            );
        }
    }

    #[test]
    fn bias_gelu_matches_candle_gelu_erf() {
        let xs: Vec<f32> = (-2000..=2000).map(|i| i as f32 / 200.0).collect();
        let bias = vec![0.25f32; xs.len()];
        let t = Tensor::from_vec(xs.clone(), (1, xs.len()), &Device::Cpu).unwrap();
        let ours = t.apply_op1_no_bwd(&BiasGelu { bias }).unwrap();
        let want = (t + 0.25).unwrap().gelu_erf().unwrap();
        let diff = (ours - want).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
    }
}
