//! Q8_0 tensors read in place from the model's bytes (a read-only map of the file, or the
//! copy compiled into the binary) instead of copied onto the heap: candle's CPU storage is
//! a public trait, so a tensor can borrow its blocks from the shared [`Weights`].
//!
//! Pages of the word-embedding table are only touched for the tokens that occur, and being
//! clean file pages the kernel can drop them again, where a copy would stay resident.

use std::ops::Range;
use std::sync::Arc;

use candle_core::quantized::k_quants::{self, BlockQ8_0, GgmlType};
use candle_core::quantized::{GgmlDType, QStorage, QTensor, QuantizedType};
use candle_core::{CpuStorage, Shape, bail};
use half::f16;

use super::EmbedError;
use crate::ml::weights::Weights;

/// The Q8_0 blocks of one tensor, borrowed from the model's bytes.
pub(crate) struct InPlaceQ8 {
    weights: Arc<Weights>,
    range: Range<usize>,
}

impl InPlaceQ8 {
    /// A `[rows, cols]`-shaped tensor over `weights[range]`, checked to hold exactly its
    /// blocks, in bounds and aligned for them.
    pub(crate) fn tensor(
        weights: Arc<Weights>,
        range: Range<usize>,
        shape: Shape,
    ) -> Result<QTensor, EmbedError> {
        let block = std::mem::size_of::<BlockQ8_0>();
        let elems = shape.elem_count();
        if !elems.is_multiple_of(k_quants::QK8_0) || range.len() != elems / k_quants::QK8_0 * block
        {
            return Err(EmbedError::Format(format!(
                "{} bytes of Q8_0 data for shape {shape:?}",
                range.len()
            )));
        }
        let Some(bytes) = weights.get(range.clone()) else {
            return Err(EmbedError::Format(format!(
                "tensor data {range:?} lies outside the {}-byte file (truncated?)",
                weights.len()
            )));
        };
        if !(bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<BlockQ8_0>()) {
            return Err(EmbedError::Format(format!(
                "tensor data at offset {} is not aligned",
                range.start
            )));
        }
        let storage = QStorage::Cpu(Box::new(InPlaceQ8 { weights, range }));
        Ok(QTensor::new(storage, shape)?)
    }

    fn blocks(&self) -> &[BlockQ8_0] {
        let bytes = &self.weights[self.range.clone()];
        // SAFETY: `tensor` checked that the range is in bounds, a whole number of blocks long
        // and aligned for `BlockQ8_0`, a `repr(C)` struct of an `f16` and 32 `i8`s (34 bytes,
        // no padding) for which every bit pattern is valid. The bytes are never written: the
        // map is read-only and compiled-in bytes are immutable statics.
        unsafe {
            std::slice::from_raw_parts(
                bytes.as_ptr().cast::<BlockQ8_0>(),
                bytes.len() / std::mem::size_of::<BlockQ8_0>(),
            )
        }
    }
}

impl QuantizedType for InPlaceQ8 {
    fn dtype(&self) -> GgmlDType {
        GgmlDType::Q8_0
    }

    fn matmul_t(
        &self,
        mkn: (usize, usize, usize),
        lhs: &[f32],
        dst: &mut [f32],
    ) -> candle_core::Result<()> {
        k_quants::matmul(mkn, lhs, self.blocks(), dst)
    }

    fn matmul_t_f16(
        &self,
        mkn: (usize, usize, usize),
        lhs: &[f16],
        dst: &mut [f16],
    ) -> candle_core::Result<()> {
        k_quants::matmul_f16(mkn, lhs, self.blocks(), dst)
    }

    /// Dequantizes only the rows asked for, as candle's own Q8_0 storage does.
    fn embedding(
        &self,
        ids: &[u32],
        rows: usize,
        hidden: usize,
    ) -> candle_core::Result<CpuStorage> {
        let blocks = self.blocks();
        let row_blocks = hidden / k_quants::QK8_0;
        if !hidden.is_multiple_of(k_quants::QK8_0) || blocks.len() != rows * row_blocks {
            bail!(
                "embedding table of {} blocks is not {rows} x {hidden}",
                blocks.len()
            )
        }
        let mut out = vec![0f32; ids.len() * hidden];
        for (dst, &id) in out.chunks_exact_mut(hidden).zip(ids) {
            let row = id as usize;
            if row >= rows {
                bail!("token id {row} is outside the {rows}-row embedding table")
            }
            BlockQ8_0::to_float(&blocks[row * row_blocks..(row + 1) * row_blocks], dst);
        }
        Ok(CpuStorage::F32(out))
    }

    fn dequantize(&self, elem_count: usize) -> candle_core::Result<CpuStorage> {
        let blocks = self.blocks();
        if elem_count != blocks.len() * k_quants::QK8_0 {
            bail!(
                "{elem_count} elements asked of {} Q8_0 blocks",
                blocks.len()
            )
        }
        let mut out = vec![0f32; elem_count];
        BlockQ8_0::to_float(blocks, &mut out);
        Ok(CpuStorage::F32(out))
    }

    fn storage_size_in_bytes(&self) -> usize {
        self.range.len()
    }

    fn as_ptr(&self) -> *const u8 {
        self.blocks().as_ptr().cast()
    }

    fn block_size(&self) -> usize {
        k_quants::QK8_0
    }

    // candle quantizes only into storage it allocated itself (`QTensor::quantize`); borrowed
    // model bytes are read-only and are never handed to it as a destination.
    fn from_float(&mut self, _xs: &[f32]) {
        panic!("in-place model weights are read-only")
    }

    fn from_float_imatrix(&mut self, _xs: &[f32], _imatrix: &[f32], _n_per_row: usize) {
        panic!("in-place model weights are read-only")
    }

    fn size(&self) -> usize {
        self.range.len()
    }
}
