//! The classifiers as the bot runs them: the embedding table stays as stored in the GGUF file,
//! where it lies (compiled into the binary or memory-mapped, see `weights`), and only the rows of
//! a text's features are decoded, as they are summed. The table is most of a model's size, so a
//! loaded model costs the heap only its head. The arithmetic is `HashBag`'s on the dequantized
//! table, value for value.

use std::io::Cursor;

use candle_core::quantized::{GgmlDType, gguf_file};

use crate::ml::MlError;
use crate::ml::features::FeatureConfig;
use crate::ml::model::{
    Classify, EMBEDDING, HEAD_BIAS, HEAD_WEIGHT, Header, Pooling, dequantized, head,
};
use crate::ml::weights::Weights;

/// Values per Q8_0 block: one f16 scale, then 32 signed bytes.
const Q8_0_VALUES: usize = 32;
const Q8_0_BYTES: usize = 2 + Q8_0_VALUES;

/// A hashed n-gram classifier reading its embedding in place.
pub(crate) struct QuantizedBag {
    pub(crate) labels: Vec<String>,
    features: FeatureConfig,
    dim: usize,
    pooling: Pooling,
    weights: Weights,
    table: Table,
    /// `labels × dim`, row-major, dequantized at load: tiny, and every logit reads all of it.
    head_weight: Vec<f32>,
    head_bias: Vec<f32>,
}

/// Where the embedding table (`buckets × dim` values, row-major) lies in the weights, and how
/// its values are stored. Both `start` and the table's length are checked against the weights
/// at load, so every row of a bucket id is inside them.
#[derive(Debug, Clone, Copy)]
enum Table {
    F32 {
        start: usize,
        len: usize,
    },
    /// Blocks run along the flattened table, so a row may start inside a block: models with
    /// rows narrower than a block (16 wide, as shipped) share each block between rows.
    Q8_0 {
        start: usize,
        len: usize,
    },
}

// The table is megabytes of numbers: no use in a log line or a test failure.
impl std::fmt::Debug for QuantizedBag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuantizedBag")
            .field("labels", &self.labels)
            .field("features", &self.features)
            .field("dim", &self.dim)
            .field("pooling", &self.pooling)
            .field("weights", &self.weights)
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl QuantizedBag {
    /// Reads a GGUF model from `weights`, validating it fully; `name` (a path or "embedded
    /// models/spam.gguf") goes into any error.
    pub(crate) fn load(weights: Weights, name: &str) -> Result<QuantizedBag, MlError> {
        Self::parse(weights).map_err(|reason| MlError::Model {
            name: name.to_owned(),
            reason,
        })
    }

    fn parse(weights: Weights) -> Result<QuantizedBag, String> {
        let bytes: &[u8] = &weights;
        let mut reader = Cursor::new(bytes);
        let content = gguf_file::Content::read(&mut reader).map_err(|e| e.to_string())?;
        let header = Header::read(&content)?;
        let table = locate(
            &content,
            bytes,
            header.features.buckets as usize,
            header.dim,
        )?;
        let classes = header.labels.len();
        let head_weight = dequantized(&content, &mut reader, HEAD_WEIGHT, classes * header.dim)?;
        let head_bias = dequantized(&content, &mut reader, HEAD_BIAS, classes)?;
        // Checking every scale read every page of the table; inference reads only the
        // rows of the features it meets, so the rest goes back to the file until then.
        weights.release();
        Ok(QuantizedBag {
            labels: header.labels,
            features: header.features,
            dim: header.dim,
            pooling: header.pooling,
            weights,
            table,
            head_weight,
            head_bias,
        })
    }

    /// Whether the weights are a mapped file (rather than compiled in), for tests.
    #[cfg(test)]
    pub(crate) fn is_mapped(&self) -> bool {
        matches!(self.weights, Weights::Mapped(_))
    }
}

impl Classify for QuantizedBag {
    fn features(&self) -> &FeatureConfig {
        &self.features
    }

    fn probabilities_of_ids(&self, ids: &[u32]) -> Vec<f32> {
        let dim = self.dim;
        let mut pooled = vec![0f32; dim];
        match self.table {
            Table::F32 { start, len } => {
                let table = &self.weights[start..start + len];
                for &id in ids {
                    let first = id as usize * dim * 4;
                    let (row, _) = table[first..first + dim * 4].as_chunks::<4>();
                    for (p, v) in pooled.iter_mut().zip(row) {
                        *p += f32::from_le_bytes(*v);
                    }
                }
            }
            Table::Q8_0 { start, len } => {
                let table = &self.weights[start..start + len];
                // Runs of a length known at compile time, unrolled and vectorised: the
                // shipped rows are 16 wide (half a block), wider ones are whole blocks.
                if let Ok(half) = <&mut [f32; 16]>::try_from(pooled.as_mut_slice()) {
                    add_q8_0_runs(table, ids, 16, 0, half);
                } else if dim.is_multiple_of(Q8_0_VALUES) {
                    let (blocks, _) = pooled.as_chunks_mut::<Q8_0_VALUES>();
                    for (k, block) in blocks.iter_mut().enumerate() {
                        add_q8_0_runs(table, ids, dim, k * Q8_0_VALUES, block);
                    }
                } else {
                    for &id in ids {
                        add_q8_0_row(table, id as usize * dim, &mut pooled);
                    }
                }
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

/// Adds to `out`, for each id, the `N` values of a Q8_0 table starting at value `id × stride +
/// skip`; each such run must lie in one block. The sum stays in a local array (in vector
/// registers) rather than going through `out` for every row, and each run is copied into a
/// fixed-size array first: then the compiler vectorises the decode. `value × scale` is
/// exactly what candle's dequantization computes, and rows are added in the same order as
/// `HashBag` adds them, so the sums are the same.
fn add_q8_0_runs<const N: usize>(
    table: &[u8],
    ids: &[u32],
    stride: usize,
    skip: usize,
    out: &mut [f32; N],
) {
    let mut sum = *out;
    for &id in ids {
        let first = id as usize * stride + skip;
        let block = first / Q8_0_VALUES * Q8_0_BYTES;
        let scale = f16_to_f32(u16::from_le_bytes([table[block], table[block + 1]]));
        let at = block + 2 + first % Q8_0_VALUES;
        let mut values = [0u8; N];
        values.copy_from_slice(&table[at..at + N]);
        for (s, q) in sum.iter_mut().zip(values) {
            *s += f32::from(q as i8) * scale;
        }
    }
    *out = sum;
}

/// Adds the `out.len()` values of a Q8_0 table starting at value `first` to `out`, for rows
/// of any width: block by block, each block's scale read once.
fn add_q8_0_row(table: &[u8], first: usize, mut out: &mut [f32]) {
    let mut at = first;
    while !out.is_empty() {
        let block = at / Q8_0_VALUES * Q8_0_BYTES;
        let block = &table[block..block + Q8_0_BYTES];
        let scale = f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
        let within = at % Q8_0_VALUES;
        let take = (Q8_0_VALUES - within).min(out.len());
        let (now, rest) = std::mem::take(&mut out).split_at_mut(take);
        for (o, &q) in now.iter_mut().zip(&block[2 + within..2 + within + take]) {
            *o += f32::from(q as i8) * scale;
        }
        out = rest;
        at += take;
    }
}

/// The exponent bits of an f16's high byte: all ones for an infinity or a NaN.
const F16_EXPONENT: u8 = 0x7c;

/// An f16 (as its bits) in f32, exactly: `half`'s software conversion, which the compiler
/// inlines into the row loop (its default conversion dispatches at run time to an F16C
/// call that costs more than the 16 values it scales). Infinities and NaNs never get here:
/// `locate` refuses them.
fn f16_to_f32(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32_const()
}

/// Finds the embedding table and checks it before any inference reads it: present, `buckets ×
/// dim` values of a type this reader decodes, wholly inside the bytes, and finite.
fn locate(
    content: &gguf_file::Content,
    bytes: &[u8],
    buckets: usize,
    dim: usize,
) -> Result<Table, String> {
    let info = content
        .tensor_infos
        .get(EMBEDDING)
        .ok_or_else(|| format!("missing tensor {EMBEDDING}"))?;
    let values = buckets
        .checked_mul(dim)
        .ok_or_else(|| format!("{buckets} buckets × {dim} dimensions overflow"))?;
    let dims = info.shape.dims();
    if dims.len() != 2 || dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) != Some(values) {
        return Err(format!(
            "tensor {EMBEDDING} has shape {dims:?}, expected {buckets} × {dim} values"
        ));
    }
    let (len, table): (_, fn(usize, usize) -> Table) = match info.ggml_dtype {
        GgmlDType::F32 => (values.checked_mul(4), |start, len| Table::F32 {
            start,
            len,
        }),
        GgmlDType::Q8_0 if dims[1].is_multiple_of(Q8_0_VALUES) => (
            (values / Q8_0_VALUES).checked_mul(Q8_0_BYTES),
            |start, len| Table::Q8_0 { start, len },
        ),
        GgmlDType::Q8_0 => {
            return Err(format!(
                "tensor {EMBEDDING} has Q8_0 rows of {} values, not whole blocks of {Q8_0_VALUES}",
                dims[1]
            ));
        }
        other => {
            return Err(format!(
                "tensor {EMBEDDING} is {other:?}; this build reads F32 or Q8_0 embeddings"
            ));
        }
    };
    let start = content
        .tensor_data_offset
        .checked_add(info.offset)
        .and_then(|s| usize::try_from(s).ok());
    let (Some(start), Some(len)) = (start, len) else {
        return Err(format!("tensor {EMBEDDING}: offset or size overflows"));
    };
    let Some(stored) = start.checked_add(len).and_then(|end| bytes.get(start..end)) else {
        return Err(format!(
            "tensor {EMBEDDING} ({len} bytes at byte {start}) runs past the end of the file \
             ({} bytes): truncated or corrupt",
            bytes.len()
        ));
    };
    let table = table(start, len);
    // One pass at load, so inference never meets an infinity or NaN: in Q8_0 only the scales
    // can be non-finite (the rest are small integers), and they are 2 bytes in 34.
    let finite = match table {
        Table::Q8_0 { .. } => stored
            .chunks_exact(Q8_0_BYTES)
            .all(|block| block[1] & F16_EXPONENT != F16_EXPONENT),
        Table::F32 { .. } => stored
            .as_chunks::<4>()
            .0
            .iter()
            .all(|v| f32::from_le_bytes(*v).is_finite()),
    };
    if !finite {
        return Err(format!("tensor {EMBEDDING} holds non-finite values"));
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::ml::Models;
    use crate::ml::model::HashBag;

    fn committed(file: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models")
            .join(file)
    }

    /// Message-like texts: lines of the shared data files when they are there (thousands, in
    /// several scripts), and always a few of our own, including the degenerate ones.
    fn texts() -> Vec<String> {
        let mut texts: Vec<String> = [
            "",
            " ",
            "ok see you at 7",
            "WINNER!! Claim your £1000 prize now, call 09061701461",
            "Заработок от 3000$ в неделю, пишите в лс @investbot",
            "Join https://t.me/+abcdef for free crypto signals 🚀🚀🚀",
            "I hate when this happens, so annoying",
            "¿Alguien sabe si hay reunión mañana?",
        ]
        .map(str::to_owned)
        .into();
        let root = std::env::var_os("EDGEBOT_SHARED_DATA").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"),
            PathBuf::from,
        );
        for file in [
            "spam/sms-train.tsv",
            "spam/tg-spam-spam.txt",
            "spam/tg-spam-ham.txt",
            "sentiment/goemotions-dev.tsv",
            "sentiment-ru/xed-ru.tsv",
        ] {
            if let Ok(text) = std::fs::read_to_string(root.join(file)) {
                texts.extend(text.lines().take(1500).map(str::to_owned));
            }
        }
        texts
    }

    #[test]
    fn in_place_probabilities_equal_the_dequantized_models() {
        let texts = texts();
        for file in ["spam.gguf", "sentiment.gguf"] {
            let path = committed(file);
            let bytes = std::fs::read(&path).unwrap();
            let (f32_model, _) = HashBag::from_gguf(&bytes, file).unwrap();
            let in_place = QuantizedBag::load(Weights::map(&path).unwrap(), file).unwrap();
            assert!(matches!(in_place.table, Table::Q8_0 { .. }), "{in_place:?}");
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for text in &texts {
                let want = f32_model.probabilities(text, &mut a);
                let got = in_place.probabilities(text, &mut b);
                assert_eq!(a, b, "feature ids of {text:?}");
                assert_eq!(got.len(), want.len());
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 1e-5,
                        "{file}, {text:?}: {got:?} vs {want:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_models_dir_is_mapped() {
        let models = Models::load(Some(&committed(""))).unwrap();
        assert!(models.spam().is_mapped());
        assert!(models.sentiment().is_mapped());
    }

    /// Byte positions of the embedding's dtype and offset in the GGUF header of `bytes`.
    fn embedding_info(bytes: &[u8]) -> (usize, usize) {
        let mut name = (EMBEDDING.len() as u64).to_le_bytes().to_vec();
        name.extend_from_slice(EMBEDDING.as_bytes());
        let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len();
        let dims = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let dtype = at + 4 + 8 * dims;
        // Q8_0 is GGML type 8: proof that this is the tensor info and not some other string.
        assert_eq!(bytes[dtype..dtype + 4], 8u32.to_le_bytes());
        (dtype, dtype + 4)
    }

    /// Loads `bytes` as the spam model of a models.dir: the error must name that file.
    fn load_as_spam_file(bytes: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spam.gguf");
        std::fs::write(&path, bytes).unwrap();
        let err = Models::load(Some(dir.path())).unwrap_err();
        assert!(matches!(err, MlError::Model { .. }), "{err}");
        let err = err.to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        err
    }

    #[test]
    fn a_truncated_file_is_an_error_naming_it() {
        let bytes = std::fs::read(committed("spam.gguf")).unwrap();
        // Inside the embedding table (checked by this reader), inside the head (read by candle),
        // and a sweep of cuts everywhere else: each an error, none a panic.
        let err = load_as_spam_file(&bytes[..bytes.len() / 2]);
        assert!(err.contains("runs past the end"), "{err}");
        let err = load_as_spam_file(&bytes[..bytes.len() - 40]);
        assert!(err.contains(HEAD_WEIGHT), "{err}");
        for cut in (0..bytes.len()).step_by(bytes.len() / 40) {
            load_as_spam_file(&bytes[..cut]);
        }
    }

    #[test]
    fn a_wrong_dtype_is_an_error_naming_the_file() {
        let mut bytes = std::fs::read(committed("spam.gguf")).unwrap();
        let (dtype, _) = embedding_info(&bytes);
        // F16: a type candle reads, but not one this reader decodes in place.
        bytes[dtype..dtype + 4].copy_from_slice(&1u32.to_le_bytes());
        let err = load_as_spam_file(&bytes);
        assert!(err.contains("F16"), "{err}");
    }

    #[test]
    fn an_offset_past_the_end_is_an_error_naming_the_file() {
        let bytes = std::fs::read(committed("spam.gguf")).unwrap();
        let (_, offset) = embedding_info(&bytes);
        for past in [bytes.len() as u64, u64::MAX - 8] {
            let mut bytes = bytes.clone();
            bytes[offset..offset + 8].copy_from_slice(&past.to_le_bytes());
            load_as_spam_file(&bytes);
        }
    }

    #[test]
    fn a_non_finite_scale_is_an_error() {
        let mut bytes = std::fs::read(committed("spam.gguf")).unwrap();
        let content = gguf_file::Content::read(&mut Cursor::new(&bytes)).unwrap();
        let start = (content.tensor_data_offset + content.tensor_infos[EMBEDDING].offset) as usize;
        // The scale of the table's 1000th block: f16 +infinity.
        let scale = start + 999 * Q8_0_BYTES;
        bytes[scale..scale + 2].copy_from_slice(&0x7c00u16.to_le_bytes());
        let err = load_as_spam_file(&bytes);
        assert!(err.contains("non-finite"), "{err}");
    }
}
