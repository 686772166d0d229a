//! Embedding throughput of the Q8_0 MiniLM by batch size (on GoEmotions dev texts when the
//! shared data set is present, else on built-in sentences) and by sequence length.
//!
//! Threads: candle's kernels use `CANDLE_NUM_THREADS` workers (default: physical cores), e.g.
//! `CANDLE_NUM_THREADS=1 cargo bench --bench embed`.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use edgebot::ml::minilm::Embedder;

const TEXTS_PER_ITER: usize = 256;

fn embedder() -> Embedder {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/minilm-l6-v2-q8.gguf");
    Embedder::load(&path).expect("load the committed MiniLM GGUF")
}

/// First column of the GoEmotions dev TSV (`EMBED_BENCH_TSV` overrides the path).
fn texts() -> Vec<String> {
    let path = std::env::var_os("EMBED_BENCH_TSV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/data/sentiment/goemotions-dev.tsv")
        });
    match std::fs::read_to_string(&path) {
        Ok(tsv) => tsv
            .lines()
            .filter_map(|l| l.split('\t').next())
            .take(TEXTS_PER_ITER)
            .map(str::to_owned)
            .collect(),
        Err(_) => [
            "how do I reset my password",
            "I've never been this sad in my life!",
            "Thanks, that worked perfectly :)",
            "Is this in New Orleans?? I really feel like this is New Orleans.",
        ]
        .iter()
        .cycle()
        .take(TEXTS_PER_ITER)
        .map(|s| s.to_string())
        .collect(),
    }
}

fn by_batch(c: &mut Criterion) {
    let model = embedder();
    let texts = texts();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut group = c.benchmark_group("embed_by_batch");
    group.sample_size(10);
    group.throughput(Throughput::Elements(texts.len() as u64));
    for batch in [1, 8, 32, 64, 128] {
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            b.iter(|| {
                for chunk in texts.chunks(batch) {
                    black_box(model.embed(chunk).expect("embed"));
                }
            })
        });
    }
    group.finish();
}

fn by_length(c: &mut Criterion) {
    let model = embedder();
    let mut group = c.benchmark_group("embed_by_length");
    group.sample_size(10);
    const BATCH: usize = 16;
    group.throughput(Throughput::Elements(BATCH as u64));
    // Common words are single WordPiece tokens, so `words + 2` is the sequence length.
    for words in [8, 30, 126, 254] {
        let text = ["the", "cat", "sat", "on", "a", "mat"]
            .iter()
            .cycle()
            .take(words)
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        let batch = vec![text.as_str(); BATCH];
        group.bench_with_input(
            BenchmarkId::from_parameter(words + 2),
            &batch,
            |b, batch| b.iter(|| black_box(model.embed(batch).expect("embed"))),
        );
    }
    group.finish();
}

criterion_group!(benches, by_batch, by_length);
criterion_main!(benches);
