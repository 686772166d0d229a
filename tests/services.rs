//! Service routes end to end, in process: `serve` with its webhook, the fake Bot API, and
//! a loopback service that answers, answers late, fails, or holds its answer. Each case
//! checks what the user gets (the reply or the apology), how many requests the service
//! saw (exactly one retry, only where it is safe), the breaker, sessions and their TTL,
//! and that a slow service never holds the webhook's answer or another chat.

#[path = "support/bot.rs"]
mod bot;
#[path = "support/contract.rs"]
mod contract;
#[path = "support/loopback.rs"]
mod loopback;
#[path = "support/service.rs"]
mod service;

use bot::{Bot, WAIT, button, message};
use serde_json::{Value, json};
use service::{Behaviour, LoopbackService, says};
use std::time::Duration;

fn config(service: &LoopbackService, extra: &str) -> String {
    format!(
        r#"
[[services]]
name = "profile"
url = "{}"
{extra}

[[routes]]
command = "start"
service = "profile"

[[routes]]
callback_prefix = "match:"
service = "profile"

[fallback]
service = "profile"
"#,
        service.url()
    )
}

/// The services' timeout in most cases: well past a loopback answer, well short of a
/// late one.
const FAST: &str = "timeout_ms = 400";

const APOLOGY: &str = "Sorry, that did not work. Please try again in a moment.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_answers_and_keeps_its_session_across_updates() {
    let service = LoopbackService::start(Behaviour::Json(says("unused"))).await;
    service.script([
        Behaviour::Json(json!({
            "actions": [{"type": "send", "text": "<b>Welcome</b>", "format": "html",
                         "keyboard": [[{"text": "Connect", "callback_data": "match:connect"}]]}],
            "session": {"internal_user_id": "u-5", "state": "menu", "data": {"visits": 1}},
            "events": [{"name": "signed_up", "data": {"plan": "free"}}],
            "unknown_field": true
        })),
        Behaviour::Json(json!({
            "actions": [{"type": "edit", "text": "Connecting…"},
                        {"type": "answer_callback", "text": "Done", "alert": true}]
        })),
        Behaviour::Json(says("echo")),
    ]);
    let bot = Bot::start(&config(
        &service,
        "timeout_ms = 400\nheaders = { \"Authorization\" = \"Bearer literal\" }",
    ))
    .await;
    assert_eq!(bot.post(&message(1, 5, "/start ref")).await, 200);
    assert_eq!(bot.wait_for_texts(5, 1).await, ["<b>Welcome</b>"]);
    let sent = &bot.api.delivered_calls("sendMessage")[0].params;
    assert_eq!(sent["parse_mode"], "HTML");
    assert_eq!(
        sent["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
        "match:connect"
    );

    // The fake numbers the bot's messages in a chat from 1: the welcome is message 1.
    assert_eq!(bot.post(&button(2, 5, 1, "match:connect")).await, 200);
    // The answer to the button goes out in a lane of its own, so either may come first.
    assert!(
        bot.api
            .wait_for(
                |c| ["editMessageText", "answerCallbackQuery"]
                    .iter()
                    .all(|m| c.iter().any(|c| c.method == *m)),
                WAIT
            )
            .await
    );
    let answers = bot.api.delivered_calls("answerCallbackQuery");
    assert_eq!(answers.len(), 1, "one answer: the service's own");
    assert_eq!(answers[0].params["show_alert"], true);
    assert_eq!(
        bot.api.delivered_calls("editMessageText")[0].params["message_id"],
        1
    );

    assert_eq!(bot.post(&message(3, 5, "hello there")).await, 200);
    assert_eq!(bot.wait_for_texts(5, 2).await[1], "echo");

    let seen = service.seen();
    assert_eq!(seen.len(), 3);
    for request in &seen {
        contract::validate_request(&request.body)
            .unwrap_or_else(|e| panic!("{e}\n{:#}", request.body));
    }
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer literal"));
    let first = &seen[0].body;
    assert_eq!(first["version"], 1);
    assert_eq!(first["service"], "profile");
    assert_eq!(first["update"]["kind"], "message");
    assert_eq!(first["update"]["command"], "start");
    assert_eq!(first["update"]["args"], "ref");
    assert_eq!(first["user"]["username"], "ann");
    assert_eq!(first["user"]["is_new"], true);
    assert_eq!(first["chat"]["kind"], "private");
    assert_eq!(first["session"]["internal_user_id"], Value::Null);
    assert_eq!(first["session"]["data"], json!({}));
    assert_eq!(seen[0].idempotency_key.as_deref(), Some("1:profile"));
    assert_eq!(first["idempotency_key"], "1:profile");
    assert_eq!(
        seen[0].request_id.as_deref(),
        first["request_id"].as_str(),
        "the header and the body name the same request"
    );
    let traceparent = seen[0].traceparent.clone().expect("a traceparent header");
    assert_eq!(first["traceparent"], traceparent.as_str());
    assert_eq!(
        traceparent.split('-').map(str::len).collect::<Vec<_>>(),
        [2, 32, 16, 2]
    );
    // The session the first answer set reaches the next requests.
    let second = &seen[1].body;
    assert_eq!(second["update"]["kind"], "callback_query");
    assert_eq!(second["update"]["callback_data"], "match:connect");
    assert_eq!(second["update"]["message_id"], 1);
    assert_eq!(second["session"]["internal_user_id"], "u-5");
    assert_eq!(second["session"]["state"], "menu");
    assert_eq!(second["session"]["data"], json!({"visits": 1}));
    assert_eq!(seen[2].body["update"]["text"], "hello there");
    assert_eq!(seen[2].body["session"]["internal_user_id"], "u-5");
    assert_ne!(seen[1].body["request_id"], seen[2].body["request_id"]);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_service_holds_neither_the_webhook_nor_other_chats() {
    let service = LoopbackService::start(Behaviour::Json(says("second"))).await;
    service.script([Behaviour::Held(says("first"))]);
    let bot = Bot::start(&config(&service, "timeout_ms = 60000")).await;

    // The service holds its answer; the webhook is answered anyway.
    assert_eq!(bot.post(&message(1, 5, "/start")).await, 200);
    assert!(service.wait_for(1, WAIT).await);
    // The same chat's next update is kept and answered at once, and waits its turn.
    assert_eq!(bot.post(&message(2, 5, "next")).await, 200);
    // A redelivery of the held update changes nothing.
    assert_eq!(bot.post(&message(1, 5, "/start")).await, 200);
    // Another chat goes on: /help is a fast, built-in route.
    assert_eq!(bot.post(&message(3, 6, "/help")).await, 200);
    assert_eq!(bot.wait_for_texts(6, 1).await.len(), 1);
    assert!(bot.texts(5).is_empty(), "chat 5 waits for its service");
    let metrics = bot.metrics().await;
    assert!(metrics.contains("edgebot_inbox_depth 2"), "{metrics}");

    service.release();
    assert_eq!(bot.wait_for_texts(5, 2).await, ["first", "second"]);
    assert_eq!(service.seen().len(), 2, "the redelivery reached no service");
    assert_eq!(service.seen()[1].body["update"]["update_id"], 2);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_get_the_apology_and_only_safe_ones_one_retry() {
    let service = LoopbackService::start(Behaviour::Json(says("fine"))).await;
    let late = Behaviour::Late(Duration::from_millis(1500), says("too late"));
    service.script([
        // 1: two 5xx: one retry, then the apology.
        Behaviour::Status(503),
        Behaviour::Status(500),
        // 2: a 4xx is the service's answer: no retry.
        Behaviour::Status(404),
        // 3: not JSON: no retry (the service answered; repeating it would not help).
        Behaviour::Garbage,
        // 4: a timeout, then an answer: the retry's answer counts.
        late.clone(),
        Behaviour::Json(says("after a retry")),
        // 5: a button, and the service breaks the contract: still answered.
        Behaviour::Json(json!({"actions": [{"type": "send", "text": ""}]})),
        // 6: late twice: the apology.
        late.clone(),
        late,
    ]);
    let bot = Bot::start(&config(
        &service,
        "timeout_ms = 400\nbreaker_failures = 100",
    ))
    .await;
    let cases: [(Value, usize, &str); 6] = [
        (message(1, 5, "/start"), 2, APOLOGY),
        (message(2, 5, "/start"), 1, APOLOGY),
        (message(3, 5, "/start"), 1, APOLOGY),
        (message(4, 5, "/start"), 2, "after a retry"),
        (button(5, 5, 500, "match:x"), 1, APOLOGY),
        (message(6, 5, "/start"), 2, APOLOGY),
    ];
    let mut seen_before = 0;
    for (i, (update, requests, reply)) in cases.iter().enumerate() {
        assert_eq!(bot.post(update).await, 200);
        let texts = bot.wait_for_texts(5, i + 1).await;
        assert_eq!(
            texts.get(i).map(String::as_str),
            Some(*reply),
            "case {}",
            i + 1
        );
        let seen = service.seen();
        let these = &seen[seen_before..];
        assert_eq!(these.len(), *requests, "case {}: requests", i + 1);
        let keys: Vec<_> = these.iter().map(|s| s.idempotency_key.clone()).collect();
        assert!(
            keys.iter().all(|k| k == &keys[0]),
            "one key per update: {keys:?}"
        );
        let ids: Vec<_> = these.iter().map(|s| s.request_id.clone()).collect();
        assert!(
            ids.iter().all(|k| k == &ids[0]),
            "a retry is the same request"
        );
        seen_before = seen.len();
    }
    assert!(
        bot.api
            .wait_for(
                |c| c.iter().any(|c| c.method == "answerCallbackQuery"),
                WAIT
            )
            .await
    );
    let answers = bot.api.delivered_calls("answerCallbackQuery");
    assert_eq!(answers.len(), 1, "the failed button press was answered");
    assert_eq!(answers[0].params["callback_query_id"], "cq-5");

    // Down: nothing listens at all.
    drop(service);
    assert_eq!(bot.post(&message(7, 5, "/start")).await, 200);
    assert_eq!(bot.wait_for_texts(5, 7).await[6], APOLOGY);
    let metrics = bot.metrics().await;
    for (outcome, count) in [
        ("http_5xx", 1),
        ("http_4xx", 1),
        ("invalid_response", 2),
        ("ok", 1),
        ("timeout", 1),
        ("connect_error", 1),
    ] {
        let line = format!(
            "edgebot_service_calls_total{{service=\"profile\",outcome=\"{outcome}\"}} {count}"
        );
        assert!(metrics.contains(&line), "no `{line}` in\n{metrics}");
    }
    assert!(
        metrics.contains("edgebot_service_retries_total{service=\"profile\"} 4"),
        "{metrics}"
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_answers_at_once_and_closes_after_a_good_trial() {
    let service = LoopbackService::start(Behaviour::Json(says("back"))).await;
    service.script([Behaviour::Status(500), Behaviour::Status(500)]);
    let bot = Bot::start(&config(
        &service,
        "timeout_ms = 400\nretries = 0\nbreaker_failures = 2\nbreaker_cooldown_secs = 1\napology = \"Down for a moment.\"",
    ))
    .await;
    for id in 1..=3 {
        assert_eq!(bot.post(&message(id, 5, "/start")).await, 200);
        bot.wait_for_texts(5, id as usize).await;
    }
    assert_eq!(bot.texts(5), ["Down for a moment."; 3]);
    assert_eq!(service.seen().len(), 2, "the open breaker called nobody");
    let metrics = bot.metrics().await;
    assert!(
        metrics.contains("edgebot_service_breaker_state{service=\"profile\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("outcome=\"breaker_open\"} 1"), "{metrics}");

    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(bot.post(&message(4, 5, "/start")).await, 200);
    assert_eq!(bot.wait_for_texts(5, 4).await[3], "back");
    assert!(
        bot.metrics()
            .await
            .contains("edgebot_service_breaker_state{service=\"profile\"} 0")
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_lives_its_ttl_from_its_last_use_then_is_gone() {
    // Sessions count whole seconds, so the waits leave a second of slack each way: a
    // TTL of 4 s, used again after 2.5 s (alive), after 5 s (alive only because the
    // last use renewed it), and after 10 s (5 s unused: gone).
    let service = LoopbackService::start(Behaviour::Json(says("ok"))).await;
    service.script([Behaviour::Json(json!({
        "actions": [{"type": "send", "text": "hi"}],
        "session": {"internal_user_id": "u-9", "ttl_secs": 4}
    }))]);
    let bot = Bot::start(&config(&service, FAST)).await;
    let started = tokio::time::Instant::now();
    for (id, at_ms) in [(1, 0), (2, 2500), (3, 5000), (4, 10_000)] {
        tokio::time::sleep_until(started + Duration::from_millis(at_ms)).await;
        assert_eq!(bot.post(&message(id, 5, "/start")).await, 200);
        bot.wait_for_texts(5, id as usize).await;
    }
    let ids: Vec<Value> = service
        .seen()
        .iter()
        .map(|s| s.body["session"]["internal_user_id"].clone())
        .collect();
    assert_eq!(ids, [Value::Null, json!("u-9"), json!("u-9"), Value::Null]);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_concurrency_cap_a_call_waits_within_its_timeout_then_apologises() {
    let service = LoopbackService::start(Behaviour::Json(says("unused"))).await;
    // Chat 5's call holds the only slot through both of its attempts (about 2 s);
    // chat 6 arrives 300 ms later and may wait for the slot for its own 1 s timeout.
    service.script([Behaviour::Held(says("late")), Behaviour::Held(says("late"))]);
    let bot = Bot::start(&config(&service, "timeout_ms = 1000\nmax_concurrent = 1")).await;
    assert_eq!(bot.post(&message(1, 5, "/start")).await, 200);
    assert!(service.wait_for(1, WAIT).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(bot.post(&message(2, 6, "/start")).await, 200);
    assert_eq!(bot.wait_for_texts(6, 1).await, [APOLOGY]);
    assert_eq!(bot.wait_for_texts(5, 1).await, [APOLOGY]);
    service.release();
    assert_eq!(service.seen().len(), 2, "chat 6 never reached the service");
    let metrics = bot.metrics().await;
    assert!(
        metrics
            .contains("edgebot_service_calls_total{service=\"profile\",outcome=\"overloaded\"} 1"),
        "{metrics}"
    );
    bot.stop().await;
}
