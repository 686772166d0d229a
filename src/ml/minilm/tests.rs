//! Tests of the embedder against the committed Q8_0 GGUF and the f32 reference fixture written
//! by the importer; they need neither the network nor the Python package.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use super::{EmbedError, EmbedPool, Embedder, cosine};

fn model_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/minilm-l6-v2-q8.gguf")
}

fn model() -> Arc<Embedder> {
    static MODEL: OnceLock<Arc<Embedder>> = OnceLock::new();
    MODEL
        .get_or_init(|| Arc::new(Embedder::load(&model_path()).expect("committed model loads")))
        .clone()
}

/// The `embedding` array of a fixture item, as floats.
fn stored_embedding(item: &serde_json::Value) -> Vec<f32> {
    item["embedding"]
        .as_array()
        .expect("an embedding array")
        .iter()
        .map(|v| v.as_f64().expect("a number") as f32)
        .collect()
}

fn one(text: &str) -> Vec<f32> {
    model().embed(&[text]).expect("embed").remove(0)
}

#[test]
fn quantized_model_stays_close_to_f32_reference() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/minilm-reference.json");
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    let items = fixture["items"].as_array().expect("items");
    let texts: Vec<&str> = items.iter().map(|i| i["text"].as_str().unwrap()).collect();
    let got = model().embed(&texts).expect("embed");
    assert_eq!(got.len(), items.len());
    for (item, got) in items.iter().zip(&got) {
        let want = stored_embedding(item);
        let c = cosine(got, &want);
        assert!(c >= 0.99, "cosine {c} for {:?}", item["text"]);
    }
}

/// The fixture holds each text's embedding as computed by the loader that copied every
/// weight onto the heap; reading them in place and splitting batches into passes must not
/// change them. All texts go in one batch, which (with the 1000-word text truncated to 256
/// tokens and the 200-word one) spans more than one pass.
#[test]
fn in_place_weights_reproduce_the_embeddings_of_copied_ones() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/minilm-q8-expected.json");
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    let items = fixture["items"].as_array().expect("items");
    let texts: Vec<&str> = items.iter().map(|i| i["text"].as_str().unwrap()).collect();
    let mut batch = texts.clone();
    batch.extend(&texts);
    let got = model().embed(&batch).expect("embed");
    assert_eq!(got.len(), 2 * items.len());
    for (item, got) in items.iter().cycle().zip(&got) {
        let want = stored_embedding(item);
        let c = cosine(got, &want);
        assert!(c >= 0.9999, "cosine {c} for {:?}", item["text"]);
    }
}

#[test]
fn paraphrase_is_closer_than_unrelated_sentence() {
    let query = one("how do I reset my password");
    let paraphrase = one("I forgot my password, how can I change it");
    let unrelated = one("the weather is nice today");
    let near = cosine(&query, &paraphrase);
    let far = cosine(&query, &unrelated);
    assert!(near > far + 0.3, "paraphrase {near}, unrelated {far}");
}

#[test]
fn embeddings_are_unit_length_and_independent_of_batching() {
    let texts = [
        "ok",
        "a somewhat longer sentence, so that the batch mixes lengths",
        "",
        "ÉMOJI 🎉 and 中文",
    ];
    let batch = model().embed(&texts).expect("embed");
    for (text, b) in texts.iter().zip(&batch) {
        assert_eq!(b.len(), model().dim());
        let norm = b.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
        let alone = one(text);
        assert!(cosine(b, &alone) > 0.9999, "{text:?} changes when batched");
    }
    assert!(model().embed(&[]).expect("empty batch").is_empty());
}

#[test]
fn long_input_is_truncated_to_256_tokens() {
    let long = vec!["word"; 1000].join(" ");
    let ids = model()
        .tokenizer
        .encode_batch(&[&long])
        .expect("encode")
        .remove(0);
    assert_eq!(ids.len(), 256);
    assert_eq!(
        (ids[0], ids[255]),
        (101, 102),
        "[CLS] … [SEP] survive truncation"
    );
}

#[test]
fn load_errors_name_the_file() {
    let missing = Path::new("/nonexistent/minilm.gguf");
    let err = Embedder::load(missing).err().expect("missing file fails");
    assert!(matches!(err, EmbedError::Io { .. }));
    assert!(
        err.to_string().contains("/nonexistent/minilm.gguf"),
        "{err}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let corrupt = dir.path().join("corrupt.gguf");
    std::fs::write(&corrupt, b"GGUF but not really").expect("write");
    let err = Embedder::load(&corrupt).err().expect("corrupt file fails");
    assert!(matches!(err, EmbedError::InvalidFile { .. }));
    assert!(err.to_string().contains("corrupt.gguf"), "{err}");
}

#[test]
fn cosine_handles_scale_and_zero_vectors() {
    assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-6);
    assert!(cosine(&[1.0, 0.0], &[0.0, 3.0]).abs() < 1e-6);
    assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_batches_concurrent_requests() {
    let pool = Arc::new(EmbedPool::new(model(), 1, 8, 64));
    let texts: Vec<String> = (0..20).map(|i| format!("request number {i}")).collect();
    let tasks: Vec<_> = texts
        .iter()
        .map(|t| {
            let pool = Arc::clone(&pool);
            let t = t.clone();
            tokio::spawn(async move { pool.embed(t).await })
        })
        .collect();
    for (text, task) in texts.iter().zip(tasks) {
        let got = task.await.expect("join").expect("embed");
        assert!(cosine(&got, &one(text)) > 0.9999, "{text}");
    }
}

#[test]
fn embeddings_after_the_pages_are_given_back_are_unchanged() {
    // A model of its own: the shared one may have released its pages already.
    let embedder = Embedder::load(&model_path()).unwrap();
    let texts = ["how do I reset my password?", "the weather is lovely today"];
    let first = embedder.embed(&texts).unwrap();
    let again = embedder.embed(&texts).unwrap();
    assert_eq!(first, again);
}
