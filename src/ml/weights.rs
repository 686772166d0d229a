//! Model bytes where they lie: compiled into the binary's read-only data, or a read-only
//! memory map of a file. Either way the kernel pages weights in as inference touches them
//! and may drop them again under pressure (they are clean, file-backed pages), so a model
//! costs the process no copy on the heap.

use std::ops::Deref;
use std::path::Path;

/// A model file's bytes, aligned for the quantized blocks read out of them in place.
pub(crate) enum Weights {
    /// Compiled in with [`include_aligned!`].
    Embedded(&'static [u8]),
    Mapped(memmap2::Mmap),
}

impl Weights {
    /// Maps `path` read-only.
    pub(crate) fn map(path: &Path) -> std::io::Result<Weights> {
        let file = std::fs::File::open(path)?;
        // SAFETY: the map is read-only and private to this process. Another program
        // truncating or rewriting the file while it is mapped could change or remove the
        // bytes under us; model files are replaced by renaming a new file into place (the
        // old inode stays mapped), never rewritten, and the format says so in its model
        // card. Every length and offset read from the bytes is checked before use.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(Weights::Mapped(map))
    }
}

impl Weights {
    /// Drops these bytes' pages from the process's resident memory: the kernel reads them
    /// again from the file if they are touched later. For weights the model no longer
    /// reads where they lie (candle repacks its matmul weights on first use), this is
    /// memory the bot stops holding; pages still in use simply come back.
    pub(crate) fn release(&self) {
        let bytes: &[u8] = self;
        let page = rustix::param::page_size();
        let start = (bytes.as_ptr() as usize).next_multiple_of(page);
        let end = (bytes.as_ptr() as usize + bytes.len()) / page * page;
        if end <= start {
            return;
        }
        // SAFETY: [start, end) holds whole pages inside these bytes, which are a read-only
        // private file mapping: the binary's read-only data (no relocations live inside the
        // model's bytes) or our map of a model file. MADV_DONTNEED on such pages discards
        // nothing that is not in the file, so later reads see the same bytes, faulted in
        // again. A refusal only means the pages stay resident.
        let _ = unsafe {
            rustix::mm::madvise(
                start as *mut std::ffi::c_void,
                end - start,
                rustix::mm::Advice::LinuxDontNeed,
            )
        };
    }
}

impl Deref for Weights {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Weights::Embedded(bytes) => bytes,
            Weights::Mapped(map) => map,
        }
    }
}

impl std::fmt::Debug for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            Weights::Embedded(_) => "embedded",
            Weights::Mapped(_) => "mapped",
        };
        write!(f, "Weights({kind}, {} bytes)", self.len())
    }
}

/// Bytes with the alignment GGUF gives its tensor data (32), so quantized blocks can be
/// read in place from a file compiled into the binary.
#[cfg(any(feature = "embedded-models", test))]
#[repr(C, align(32))]
pub(crate) struct Aligned<B: ?Sized>(pub(crate) B);

/// `include_bytes!`, aligned to 32 bytes: a `&'static [u8]` whose start is as aligned as
/// the tensor data in a GGUF file read from disk.
#[cfg(any(feature = "embedded-models", test))]
macro_rules! include_aligned {
    ($path:literal) => {{
        static ALIGNED: &$crate::ml::weights::Aligned<[u8]> =
            &$crate::ml::weights::Aligned(*include_bytes!($path));
        &ALIGNED.0
    }};
}
#[cfg(any(feature = "embedded-models", test))]
pub(crate) use include_aligned;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapped_file_reads_as_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        std::fs::write(&path, b"GGUF and some weights").unwrap();
        let weights = Weights::map(&path).unwrap();
        assert_eq!(&*weights, b"GGUF and some weights");
        assert!(Weights::map(&dir.path().join("missing.gguf")).is_err());
    }

    #[test]
    fn released_pages_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        let content: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let weights = Weights::map(&path).unwrap();
        assert_eq!(&*weights, &content[..]);
        weights.release();
        assert_eq!(&*weights, &content[..]);
    }

    #[cfg(feature = "embedded-models")]
    #[test]
    fn embedded_bytes_are_aligned_like_tensor_data() {
        let bytes: &'static [u8] = include_aligned!("../../models/spam.gguf");
        assert_eq!(bytes.as_ptr() as usize % 32, 0);
        assert_eq!(&bytes[..4], b"GGUF");
    }
}
