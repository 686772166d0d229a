//! The models through the real binary: `edgebot analyze` speaks JSON lines, `/analyze`
//! and FAQ answers work in a chat, and a corrupt or missing model file is a clear error
//! that names it.

mod common;

use common::{edgebot, stdout};

#[test]
fn analyze_prints_one_json_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = stdout(&edgebot(
        dir.path(),
        &["analyze"],
        "I love this, thank you so much!\nWINNER!! Claim your free prize now, call 09061701461 to collect\nsee you at lunch\n",
    ));
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["text"], "I love this, thank you so much!");
    assert_eq!(lines[0]["sentiment"]["label"], "positive");
    assert_eq!(lines[0]["spam"]["label"], "ham");
    assert_eq!(lines[1]["spam"]["label"], "spam");
    for line in &lines {
        let score = line["spam"]["score"].as_f64().unwrap();
        assert!(
            (0.5..=1.0).contains(&score),
            "the score is the winning label's probability"
        );
        assert!(
            ["negative", "neutral", "positive"]
                .contains(&line["sentiment"]["label"].as_str().unwrap())
        );
    }
}

#[test]
fn analyze_and_faq_in_a_chat() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("edgebot.toml"),
        r#"
[[faq]]
question = "How do I reset my password?"
answer = "Open Settings, then Account, then Reset password."

[[faq]]
question = "When are you open?"
answer = "Every day from 9 to 5."
"#,
    )
    .unwrap();
    let out = stdout(&edgebot(
        dir.path(),
        &["chat", "--name", "Ada"],
        "/analyze This is wonderful, thanks!\nI forgot my password, how can I change it?\nwhat are your opening hours\nmy cat likes tuna\n",
    ));
    assert!(out.contains("Sentiment: positive"), "{out}");
    let answers: Vec<&str> = out.lines().filter(|l| l.starts_with("bot: ")).collect();
    assert_eq!(answers.len(), 4, "{out}");
    assert!(
        answers[1].contains("Reset password"),
        "a paraphrase finds its FAQ entry: {out}"
    );
    assert!(answers[2].contains("9 to 5"), "{out}");
    assert!(
        answers[3].contains("did not understand"),
        "an unrelated text gets the fallback: {out}"
    );
}

#[test]
fn a_corrupt_or_missing_model_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir(&models).unwrap();
    std::fs::write(models.join("spam.gguf"), b"GGUF but not really a model").unwrap();
    std::fs::write(
        dir.path().join("edgebot.toml"),
        "[models]\ndir = \"models\"\n",
    )
    .unwrap();
    let out = edgebot(dir.path(), &["analyze"], "hello\n");
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("spam.gguf"), "{err}");

    std::fs::remove_file(models.join("spam.gguf")).unwrap();
    let out = edgebot(dir.path(), &["analyze"], "hello\n");
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("spam.gguf"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
