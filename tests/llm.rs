//! Conversations end to end, in process: `serve` with its webhook and the fake Bot API,
//! talking to the fake LLM over loopback (its streams cut at random bytes, so characters
//! and JSON lines arrive split). The fake records every request, so each case asserts
//! the exact system prompt, history and summary the bot sent, and what the user got:
//! drafts while the answer streams, then one message; edits in groups; the fallback
//! provider, then the apology; budgets; the commands around a conversation.

#[path = "support/bot.rs"]
mod bot;
#[path = "support/loopback.rs"]
mod loopback;

use bot::{Bot, WAIT, button, message};
use edgebot::fake::llm::{FakeLlm, FakeLlmConfig, Fault, Provider, RecordedRequest};
use serde_json::{Value, json};
use std::time::Duration;

const SYSTEM: &str = "You are a kind, brief assistant.";
const APOLOGY: &str = "Sorry, I can't answer right now. Please try again in a moment.";

async fn fake_llm(chunk_delay_ms: u64) -> FakeLlm {
    FakeLlm::start(FakeLlmConfig {
        chunk_delay: Duration::from_millis(chunk_delay_ms),
        split_chunks: true,
        seed: 7,
        ..FakeLlmConfig::default()
    })
    .await
    .unwrap()
}

/// Two providers on one fake (OpenAI first, Anthropic as the fallback), three
/// personalities, free text to `friend`.
fn config(llm: &FakeLlm, extra: &str) -> String {
    format!(
        r#"
[llm]
draft_interval_ms = 100
edit_interval_ms = 1000
fallback = ["backup"]
{extra}

[[llm.providers]]
name = "main"
kind = "openai"
base_url = "{openai}"
model = "fake-model"
retries = 1
timeout_ms = 1000
idle_timeout_ms = 1000

[[llm.providers]]
name = "backup"
kind = "anthropic"
base_url = "{anthropic}"
model = "claude-fake"
retries = 0
timeout_ms = 1000
idle_timeout_ms = 1000

[[personalities]]
name = "friend"
title = "Friend"
description = "Kind and brief"
system_prompt = "{SYSTEM}"
provider = "main"
max_tokens = 4000

[[personalities]]
name = "pirate"
title = "Pirate"
system_prompt = "Talk like a pirate."
provider = "main"
model = "parrot-1"
temperature = 1.2
max_tokens = 64
welcome = "Arr, ask away!"

[[personalities]]
name = "oracle"
title = "Oracle"
system_prompt = "Foresee."
provider = "main"
requires = "premium"

[fallback]
llm = "friend"
"#,
        openai = llm.base_url(),
        anthropic = llm.url(),
    )
}

/// The chat completions requests, in order.
fn asked(llm: &FakeLlm) -> Vec<RecordedRequest> {
    llm.requests()
        .into_iter()
        .filter(|r| r.status == 200)
        .collect()
}

/// The messages of an OpenAI request as (role, content) pairs.
fn messages(request: &RecordedRequest) -> Vec<(String, String)> {
    request.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_owned(),
                m["content"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pair(role: &str, content: &str) -> (String, String) {
    (role.to_owned(), content.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_conversation_streams_drafts_then_one_message_and_remembers() {
    let llm = fake_llm(25).await;
    let first = "Hello Ann! Tea is a fine choice — **green** or black?";
    llm.script_answers([first, "Then green it is."]);
    let bot = Bot::start(&config(&llm, "")).await;

    assert_eq!(bot.post(&message(1, 5, "I'd like some tea")).await, 200);
    assert_eq!(
        bot.wait_for_texts(5, 1).await,
        ["Hello Ann! Tea is a fine choice — <b>green</b> or black?"]
    );
    let drafts = bot.api.delivered_calls("sendMessageDraft");
    assert!(!drafts.is_empty(), "the answer streamed as drafts");
    let draft_ids: Vec<&Value> = drafts.iter().map(|d| &d.params["draft_id"]).collect();
    assert!(
        draft_ids
            .iter()
            .all(|id| *id == draft_ids[0] && id.as_i64() != Some(0))
    );
    for draft in &drafts {
        let shown = draft.params["text"].as_str().unwrap();
        assert!(!shown.is_empty());
        assert_eq!(draft.params["parse_mode"], "HTML");
    }
    assert!(
        bot.api
            .delivered_calls("sendChatAction")
            .iter()
            .any(|c| c.params["action"] == "typing")
    );
    let request = &asked(&llm)[0];
    assert_eq!(request.provider, Provider::OpenAi);
    assert!(request.stream);
    assert_eq!(
        messages(request),
        [pair("system", SYSTEM), pair("user", "I'd like some tea")]
    );

    assert_eq!(bot.post(&message(2, 5, "Green, please")).await, 200);
    assert_eq!(bot.wait_for_texts(5, 2).await[1], "Then green it is.");
    assert_eq!(
        messages(&asked(&llm)[1]),
        [
            pair("system", SYSTEM),
            pair("user", "I'd like some tea"),
            pair("assistant", first),
            pair("user", "Green, please"),
        ]
    );
    // Drafts are shown, never stored: exactly two messages went out.
    assert_eq!(bot.texts(5).len(), 2);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_outgrows_its_budget_and_the_model_summarises_it() {
    let llm = fake_llm(0).await;
    // An answer is about 60 tokens (a quarter of its bytes), a question under 10: 100
    // tokens hold the question and one earlier exchange, not two.
    let long = |n: usize| format!("{n} {}", "words ".repeat(40));
    llm.script_answers([
        long(1),
        long(2),
        long(3),
        "SUMMARY-ONE: Ann talked about tea.".to_owned(),
    ]);
    let bot = Bot::start(&config(&llm, "history_tokens = 100")).await;
    for (i, text) in ["first question", "second question", "third question"]
        .iter()
        .enumerate()
    {
        let id = i as i64 + 1;
        assert_eq!(bot.post(&message(id, 5, text)).await, 200);
        bot.wait_for_texts(5, id as usize).await;
    }
    assert!(llm.wait_for(|r| r.len() >= 4, WAIT).await);
    let requests = asked(&llm);
    // Third question: only the second exchange fits; the first is folded in afterwards.
    assert_eq!(
        messages(&requests[2])[1..],
        [
            pair("user", "second question"),
            pair("assistant", &long(2)),
            pair("user", "third question"),
        ]
    );
    let summary_call = messages(&requests[3]);
    assert!(
        summary_call[0]
            .1
            .starts_with("You keep the running summary")
    );
    assert_eq!(
        summary_call[1].1,
        format!(
            "New part of the conversation:\nUser: first question\nAssistant: {}\n",
            long(1).trim()
        )
    );
    llm.script_answers(["fine"]);
    assert_eq!(bot.post(&message(4, 5, "fourth")).await, 200);
    bot.wait_for_texts(5, 4).await;
    let fourth = messages(&asked(&llm)[4]);
    assert_eq!(
        fourth[0].1,
        format!(
            "{SYSTEM}\n\nSummary of the conversation so far:\nSUMMARY-ONE: Ann talked about tea."
        )
    );
    assert_eq!(fourth.last().unwrap(), &pair("user", "fourth"));
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mode_reset_retry_forget_and_usage() {
    let llm = fake_llm(0).await;
    let bot = Bot::start(&config(&llm, "")).await;

    assert_eq!(bot.post(&message(1, 5, "/mode")).await, 200);
    let listing = &bot.wait_for_texts(5, 1).await[0];
    assert!(listing.contains("Friend — Kind and brief"));
    let keyboard =
        &bot.api.delivered_calls("sendMessage")[0].params["reply_markup"]["inline_keyboard"];
    let labels: Vec<&str> = keyboard
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row[0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["✓ Friend", "Pirate", "🔒 Oracle"]);

    // A locked personality is refused with an alert; nothing changes.
    assert_eq!(bot.post(&button(2, 5, 10, "mode:oracle")).await, 200);
    assert!(
        bot.api
            .wait_for(
                |c| c.iter().any(|c| c.method == "answerCallbackQuery"),
                WAIT
            )
            .await
    );
    let refusal = &bot.api.delivered_calls("answerCallbackQuery")[0].params;
    assert_eq!(refusal["show_alert"], true);
    assert!(refusal["text"].as_str().unwrap().contains("needs premium"));

    assert_eq!(bot.post(&button(3, 5, 10, "mode:pirate")).await, 200);
    assert_eq!(bot.wait_for_texts(5, 2).await[1], "Arr, ask away!");
    llm.script_answers(["Ahoy!", "Ahoy again!"]);
    assert_eq!(bot.post(&message(4, 5, "hello")).await, 200);
    assert_eq!(bot.wait_for_texts(5, 3).await[2], "Ahoy!");
    let request = &asked(&llm)[0];
    assert_eq!(request.body["model"], "parrot-1");
    assert_eq!(request.body["max_tokens"], 64);
    assert!((request.body["temperature"].as_f64().unwrap() - 1.2).abs() < 1e-6);
    assert_eq!(messages(request)[0], pair("system", "Talk like a pirate."));

    // /retry sends the same question with the same history, and replaces the answer.
    assert_eq!(bot.post(&message(5, 5, "/retry")).await, 200);
    assert_eq!(bot.wait_for_texts(5, 4).await[3], "Ahoy again!");
    assert_eq!(messages(&asked(&llm)[1]), messages(&asked(&llm)[0]));
    llm.script_answers(["third"]);
    assert_eq!(bot.post(&message(6, 5, "more")).await, 200);
    bot.wait_for_texts(5, 5).await;
    assert_eq!(
        messages(&asked(&llm)[2])[1..],
        [
            pair("user", "hello"),
            pair("assistant", "Ahoy again!"),
            pair("user", "more")
        ]
    );

    // /reset: the next message starts with no history.
    assert_eq!(bot.post(&message(7, 5, "/reset")).await, 200);
    bot.wait_for_texts(5, 6).await;
    assert_eq!(bot.post(&message(8, 5, "anew")).await, 200);
    bot.wait_for_texts(5, 7).await;
    assert_eq!(messages(&asked(&llm)[3])[1..], [pair("user", "anew")]);

    // /usage counts tokens and answers; the fake's usage is exact.
    assert_eq!(bot.post(&message(9, 5, "/usage")).await, 200);
    let usage = bot.wait_for_texts(5, 8).await[7].clone();
    let spent: u64 = asked(&llm)
        .iter()
        .map(|r| {
            let prompt: u64 = 3 + messages(r)
                .iter()
                .map(|(_, t)| 3 + (t.len() as u64).div_ceil(4))
                .sum::<u64>();
            prompt
        })
        .sum();
    assert!(usage.contains("in 4 answers"), "{usage}");
    let today: u64 = usage
        .split("Today: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(today > spent, "prompt {spent} plus answers, got {today}");

    // /forget: the choice and the history are gone; the next message is the friend's,
    // with no history.
    assert_eq!(bot.post(&message(10, 5, "/forget")).await, 200);
    bot.wait_for_texts(5, 9).await;
    assert_eq!(bot.post(&message(11, 5, "who are you?")).await, 200);
    bot.wait_for_texts(5, 10).await;
    assert_eq!(
        messages(&asked(&llm)[4]),
        [pair("system", SYSTEM), pair("user", "who are you?")]
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_then_fall_back_then_apologise() {
    let llm = fake_llm(0).await;
    let bot = Bot::start(&config(&llm, "")).await;

    // 429 with retry-after 1 s, then fine: one retry on the same provider.
    llm.inject(
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        1,
        Some(Provider::OpenAi),
    );
    assert_eq!(bot.post(&message(1, 5, "one")).await, 200);
    assert_eq!(bot.wait_for_texts(5, 1).await, ["You said: one"]);
    let kinds: Vec<u16> = llm.requests().iter().map(|r| r.status).collect();
    assert_eq!(kinds, [429, 200]);

    // 5xx twice (the first try and its one retry), then Anthropic answers.
    llm.reset();
    llm.inject(Fault::ServerError(503), 2, Some(Provider::OpenAi));
    assert_eq!(bot.post(&message(2, 5, "two")).await, 200);
    assert_eq!(bot.wait_for_texts(5, 2).await[1], "You said: two");
    let seen: Vec<(Provider, u16)> = llm
        .requests()
        .iter()
        .map(|r| (r.provider, r.status))
        .collect();
    assert_eq!(
        seen,
        [
            (Provider::OpenAi, 503),
            (Provider::OpenAi, 503),
            (Provider::Anthropic, 200)
        ]
    );
    let anthropic = &llm.requests()[2].body;
    assert_eq!(anthropic["system"], SYSTEM);
    assert_eq!(anthropic["model"], "claude-fake");

    // A stream that stops midway is retried from the start; the user sees one answer.
    llm.reset();
    llm.inject(
        Fault::StopMidway { after_chunks: 2 },
        1,
        Some(Provider::OpenAi),
    );
    assert_eq!(bot.post(&message(3, 5, "three")).await, 200);
    assert_eq!(bot.wait_for_texts(5, 3).await[2], "You said: three");

    // Everything hangs: timeouts, the fallback times out too, then the apology.
    llm.reset();
    llm.inject(Fault::Hang, 3, None);
    assert_eq!(bot.post(&message(4, 5, "four")).await, 200);
    assert_eq!(bot.wait_for_texts(5, 4).await[3], APOLOGY);
    let metrics = bot.metrics().await;
    for line in [
        r#"edgebot_llm_calls_total{provider="main",outcome="rate_limited"} 1"#,
        r#"edgebot_llm_calls_total{provider="main",outcome="http_5xx"} 2"#,
        r#"edgebot_llm_calls_total{provider="main",outcome="stopped_midway"} 1"#,
        r#"edgebot_llm_calls_total{provider="main",outcome="timeout"} 2"#,
        r#"edgebot_llm_calls_total{provider="backup",outcome="timeout"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    bot.stop().await;
}

/// A group message from user `from`, optionally replying to one of the bot's messages.
fn group_message(update_id: i64, from: i64, text: &str, reply_to_bot: Option<i64>) -> Value {
    let mut message = json!({"message_id": update_id * 10, "date": 1,
        "chat": {"id": -100, "type": "supergroup", "title": "Tea lovers"},
        "from": {"id": from, "first_name": if from == 5 { "Ann" } else { "Bob" }}, "text": text});
    if let Some(id) = reply_to_bot {
        message["reply_to_message"] = json!({"message_id": id, "date": 1,
            "chat": {"id": -100, "type": "supergroup"},
            "from": {"id": 1, "is_bot": true, "first_name": "Edge", "username": "edgebot_test_bot"}, "text": "…"});
    }
    json!({"update_id": update_id, "message": message})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_groups_the_bot_answers_only_when_addressed_and_keeps_one_context() {
    let llm = fake_llm(0).await;
    // The fake Bot API's getMe names the bot `edgebot_test_bot`.
    let bot = Bot::start(&config(&llm, "")).await;

    assert_eq!(
        bot.post(&group_message(1, 5, "just chatting", None)).await,
        200
    );
    assert_eq!(
        bot.post(&group_message(2, 5, "@Edgebot_Test_Bot what is tea?", None))
            .await,
        200
    );
    assert!(llm.wait_for(|r| !r.is_empty(), WAIT).await);
    let answered = |bot: &Bot, n: usize| {
        let calls = bot.api.delivered_calls("sendMessage").len()
            + bot.api.delivered_calls("editMessageText").len();
        calls >= n
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while !answered(&bot, 1) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        messages(&asked(&llm)[0])[1..],
        [pair("user", "Ann: what is tea?")]
    );
    assert!(messages(&asked(&llm)[0])[0].1.contains("group chat"));

    // Bob replies to the bot: addressed, and the group's context is shared.
    assert_eq!(
        bot.post(&group_message(3, 6, "and coffee?", Some(20)))
            .await,
        200
    );
    assert!(llm.wait_for(|r| r.len() >= 2, WAIT).await);
    assert_eq!(
        messages(&asked(&llm)[1])[1..],
        [
            pair("user", "Ann: what is tea?"),
            pair("assistant", "You said: Ann: what is tea?"),
            pair("user", "Bob: and coffee?"),
        ]
    );
    // The first message reached no model.
    assert_eq!(asked(&llm).len(), 2);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_answer_is_split_on_paragraphs_and_a_budget_stops_the_next_question() {
    let llm = fake_llm(0).await;
    let paragraph = |c: char| std::iter::repeat_n(c, 1500).collect::<String>();
    let answer = [
        paragraph('a'),
        paragraph('b'),
        paragraph('c'),
        paragraph('d'),
    ]
    .join("\n\n");
    llm.script_answers([answer.clone()]);
    let bot = Bot::start(&config(
        &llm,
        "[llm.budgets]\nguest_daily = 1000\nguest_monthly = 0",
    ))
    .await;
    assert_eq!(bot.post(&message(1, 5, "tell me everything")).await, 200);
    let texts = bot.wait_for_texts(5, 2).await;
    assert_eq!(texts.len(), 2);
    assert!(texts.iter().all(|t| t.encode_utf16().count() <= 4096));
    assert_eq!(texts.join("\n\n"), answer);

    assert_eq!(bot.post(&message(2, 5, "more")).await, 200);
    let refusal = &bot.wait_for_texts(5, 3).await[2];
    assert!(refusal.contains("today's 1000 tokens"), "{refusal}");
    assert_eq!(asked(&llm).len(), 1);
    bot.stop().await;
}

#[test]
fn the_demo_config_in_examples_is_valid() {
    let path = std::path::Path::new("examples/conversation/edgebot.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let config = edgebot::config::Config::parse(&text, path).unwrap();
    let toml = config.to_redacted_toml();
    assert!(
        toml.contains("[[personalities]]") && toml.contains("[[llm.providers]]"),
        "{toml}"
    );
}
