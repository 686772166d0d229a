//! The store's size for conversations: 10,000 conversations of 50 turns (25 exchanges of
//! a question and an answer), committed through `Store::finish` as the engine commits
//! them, each exchange its own update, with its usage counters and dialog record. It
//! prints the redb file's size, the bytes per turn, and the texts' own bytes beside them
//! (the baseline no store can go under), after compaction too.
//!
//! `cargo bench --bench conversation_store`. Environment: `CONV_CONVERSATIONS` (10000),
//! `CONV_TURNS` (50), `CONV_QUESTION_BYTES` (80) and `CONV_ANSWER_BYTES` (400), the sizes
//! of a typical chat question and answer.
//!
//! A plain main rather than criterion: the figure is a size, not a time.

use edgebot::calendar::UnixSecs;
use edgebot::store::records::{DialogKey, Exchange, Speaker, TurnRecord, UsageDelta};
use edgebot::store::{FILE_NAME, Finish, Store};
use std::time::Instant;

fn env_or(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Words of a chat's length, different for every seed, so no two texts are alike.
fn text(seed: u64, bytes: usize) -> String {
    const WORDS: [&str; 16] = [
        "tea", "green", "morning", "because", "maybe", "explain", "river", "quickly", "answer",
        "garden", "perhaps", "seven", "window", "travel", "thought", "simple",
    ];
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = String::with_capacity(bytes + 8);
    while out.len() < bytes {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.push_str(WORDS[(state % 16) as usize]);
        out.push(' ');
    }
    out.truncate(bytes);
    out
}

fn main() {
    let conversations = env_or("CONV_CONVERSATIONS", 10_000);
    let turns = env_or("CONV_TURNS", 50).max(2);
    let question_bytes = env_or("CONV_QUESTION_BYTES", 80);
    let answer_bytes = env_or("CONV_ANSWER_BYTES", 400);
    let exchanges = turns / 2;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temp dir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let started = Instant::now();
    let text_bytes = runtime.block_on(async {
        let store = Store::open(dir.path()).expect("the store opens");
        let mut text_bytes = 0u64;
        // Exchange by exchange across all conversations, as they would interleave; 256
        // updates in flight, so the writer group-commits them like live traffic.
        let mut in_flight = tokio::task::JoinSet::new();
        let mut update_id = 0i64;
        for round in 0..exchanges {
            for c in 0..conversations {
                update_id += 1;
                let user = 1_000_000 + c as i64;
                let at = 1_700_000_000 + (round * 60) as i64;
                let key = DialogKey {
                    chat_id: user,
                    thread_id: 0,
                };
                let question = text(update_id as u64 * 2, question_bytes);
                let answer = text(update_id as u64 * 2 + 1, answer_bytes);
                text_bytes += (question.len() + answer.len()) as u64;
                let turn = |speaker, text: String, tokens| TurnRecord {
                    speaker,
                    user_id: user,
                    tokens,
                    text,
                    at: UnixSecs(at),
                    update_id,
                    provider: (speaker == Speaker::Assistant).then(|| "main".to_owned()),
                };
                let exchange = Exchange {
                    key,
                    number: 1,
                    personality: "friend".into(),
                    question: Some(turn(Speaker::User, question, 23)),
                    answer: turn(Speaker::Assistant, answer, 103),
                    replaces_answer: false,
                    summary: None,
                    usage: UsageDelta {
                        user_id: user,
                        provider: "main".into(),
                        day: 19_675,
                        month: 2023 * 12 + 10,
                        input_tokens: 400,
                        output_tokens: 103,
                        cost_micro_usd: 120,
                    },
                };
                let store = store.clone();
                in_flight.spawn(async move {
                    store
                        .finish(Finish {
                            update_id,
                            finished_at: UnixSecs(at),
                            conversation: vec![exchange.into()],
                            ..Finish::default()
                        })
                        .await
                        .expect("the exchange commits");
                });
                if in_flight.len() >= 256 {
                    in_flight.join_next().await;
                }
            }
        }
        while in_flight.join_next().await.is_some() {}
        // The last handle: its writer drains and the file is closed.
        drop(store);
        text_bytes
    });
    let elapsed = started.elapsed();
    let file = dir.path().join(FILE_NAME);
    let size = std::fs::metadata(&file).expect("the store file").len();
    let all_turns = (conversations * exchanges * 2) as f64;
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    println!(
        "{conversations} conversations x {} turns ({question_bytes}-byte questions, {answer_bytes}-byte answers), {:.1} s to commit {} exchanges",
        exchanges * 2,
        elapsed.as_secs_f64(),
        conversations * exchanges
    );
    println!(
        "store file: {:.1} MiB ({:.0} bytes per turn); the texts alone: {:.1} MiB ({:.0} bytes per turn); ratio {:.2}",
        mib(size),
        size as f64 / all_turns,
        mib(text_bytes),
        text_bytes as f64 / all_turns,
        size as f64 / text_bytes as f64
    );
    let mut compacted = redb::Database::open(&file).expect("the file opens");
    compacted.compact().expect("compaction");
    drop(compacted);
    let size = std::fs::metadata(&file).expect("the store file").len();
    println!(
        "after compaction: {:.1} MiB ({:.0} bytes per turn); ratio {:.2}",
        mib(size),
        size as f64 / all_turns,
        size as f64 / text_bytes as f64
    );
}
