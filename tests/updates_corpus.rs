//! Parser conformance: every real update in the shared corpus parses into something the
//! bot routes or knowingly ignores; every negative sample is reported as unknown or
//! unparsable, never a panic and never silently dropped.
//!
//! The corpus lives beside the project in `../shared/data/updates` (or
//! `$EDGEBOT_SHARED_DATA/updates`); it is not copied into the repository. Without it the
//! tests fail, unless `EDGEBOT_SKIP_MISSING_DATA=1` asks to skip them.

use edgebot::config::Config;
use edgebot::store::{Finished, Store};
use edgebot::telegram::types::{ChatKind, Update, UpdateKind};
use std::path::PathBuf;

fn corpus() -> Option<PathBuf> {
    let base = std::env::var_os("EDGEBOT_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let dir = base.join("updates");
    if dir.is_dir() {
        return Some(dir);
    }
    // A missing corpus fails the test: only an explicit request skips it.
    assert!(
        std::env::var_os("EDGEBOT_SKIP_MISSING_DATA").is_some_and(|v| v == "1"),
        "the update corpus {} is absent: set EDGEBOT_SHARED_DATA to the shared data folder, \
         or EDGEBOT_SKIP_MISSING_DATA=1 to skip",
        dir.display()
    );
    eprintln!(
        "SKIPPED (EDGEBOT_SKIP_MISSING_DATA=1): no update corpus at {}",
        dir.display()
    );
    None
}

fn json_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_real_update_parses() {
    let Some(dir) = corpus() else { return };
    let files = json_files(&dir);
    assert!(
        files.len() >= 170,
        "expected the 174-update corpus, found {}",
        files.len()
    );
    let mut unknown = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let update = Update::from_json(&bytes)
            .unwrap_or_else(|e| panic!("{} did not parse: {e}", file.display()));
        if let UpdateKind::Unknown(kind) = &update.kind {
            unknown.push(format!("{}: {kind}", file.display()));
        }
    }
    assert!(
        unknown.is_empty(),
        "kinds of Bot API 10.1 not recognised: {unknown:#?}"
    );
}

#[tokio::test]
async fn every_real_update_goes_through_the_engine() {
    let Some(dir) = corpus() else { return };
    let data = tempfile::tempdir().unwrap();
    let store = Store::open(data.path()).unwrap();
    let mut config = Config::default();
    config.limits.inbound.enabled = false;
    let engine = edgebot::app::runtime::engine(
        &config,
        store.clone(),
        Some("edgebot".into()),
        None,
        Default::default(),
    )
    .unwrap();
    let (mut routed, mut ignored, mut private_texts) = (0, 0, 0);
    for file in json_files(&dir) {
        let update = Update::from_json(&std::fs::read(&file).unwrap()).unwrap();
        if let UpdateKind::Message(m) = &update.kind
            && m.chat.kind == ChatKind::Private
            && m.text.is_some()
            && m.from.is_some()
        {
            private_texts += 1;
        }
        match engine.process(&update).await {
            Ok(Finished::Committed(entries)) if !entries.is_empty() => routed += 1,
            Ok(_) => ignored += 1,
            Err(e) => panic!("{}: {e}", file.display()),
        }
    }
    eprintln!("{routed} answered, {ignored} knowingly ignored, {private_texts} private texts");
    assert!(
        routed >= private_texts,
        "every private text gets an answer: {routed} < {private_texts}"
    );
    assert!(
        ignored > 10,
        "only {ignored} updates were knowingly ignored"
    );
    assert!(store.stats().unwrap().users > 10);
}

#[test]
fn negative_samples_are_reported_not_dropped() {
    let Some(dir) = corpus() else { return };
    let files = json_files(&dir.join("negative"));
    assert!(!files.is_empty());
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        match Update::from_json(&bytes) {
            Err(_) => {}
            Ok(Update {
                kind: UpdateKind::Unknown(_),
                ..
            }) => {}
            Ok(other) => panic!("{} parsed as a routable {:?}", file.display(), other.kind),
        }
    }
}
