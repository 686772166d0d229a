//! The sender against the fake Bot API over real HTTP: flood limits hold in every window
//! (measured from the fake's arrival times), 429s are honoured, transient failures end
//! in delivery, a blocked user is marked, one chat's flood never delays another chat,
//! and markup Telegram cannot parse is sent again as plain text.

#[path = "support/windows.rs"]
mod windows;

use edgebot::botapi::Client;
use edgebot::config::{OutboundLimits, Secret};
use edgebot::engine::sender::Outbox;
use edgebot::fake::botapi::{FakeBotApi, FakeConfig, Fault, RecordedCall};
use edgebot::store::Store;
use edgebot::store::records::UserStatus;
use edgebot::telegram::markup;
use edgebot::telegram::methods::{Action, ParseMode};
use edgebot::telemetry::health::Health;
use edgebot::telemetry::metrics::Metrics;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use windows::{TOLERANCE, busiest_window};

struct Rig {
    api: FakeBotApi,
    store: Store,
    outbox: Outbox,
    _dir: tempfile::TempDir,
}

async fn rig(config: FakeConfig, limits: Option<OutboundLimits>, timeout: Duration) -> Rig {
    let api = FakeBotApi::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let client = Client::new(&api.base_url(), &Secret::new("1:test"), timeout).unwrap();
    let outbox = Outbox::start(
        client,
        store.clone(),
        limits.as_ref(),
        Arc::new(Metrics::new()),
        Arc::new(Health::default()),
    );
    Rig {
        api,
        store,
        outbox,
        _dir: dir,
    }
}

fn limits(global: u32, private: u32, group_per_minute: u32) -> OutboundLimits {
    OutboundLimits {
        enabled: true,
        global_per_second: NonZeroU32::new(global).unwrap(),
        private_per_second: NonZeroU32::new(private).unwrap(),
        group_per_minute: NonZeroU32::new(group_per_minute).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_window_exceeds_the_limits() {
    // Scaled-down limits keep the test short: 20/s overall, 5/s per private chat,
    // 120/min (one per 0.5 s) per group.
    let rig = rig(
        FakeConfig::default(),
        Some(limits(20, 5, 120)),
        Duration::from_secs(5),
    )
    .await;
    let mut actions = Vec::new();
    for n in 0..10 {
        actions.push(Action::send(1, format!("private a {n}")));
        actions.push(Action::send(2, format!("private b {n}")));
        actions.push(Action::send(-1001, format!("group {n}")));
    }
    for chat in 10..30 {
        actions.push(Action::send(chat, "one each"));
    }
    rig.outbox.enqueue(actions).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), rig.outbox.drained())
        .await
        .unwrap();

    let calls = rig.api.delivered_calls("sendMessage");
    assert_eq!(calls.len(), 50, "every action delivered once");
    let all: Vec<&RecordedCall> = calls.iter().collect();
    assert!(
        busiest_window(&all, Duration::from_secs(1)) <= 20,
        "global limit"
    );
    for chat in [1, 2] {
        let chat_calls: Vec<_> = calls.iter().filter(|c| c.chat_id == Some(chat)).collect();
        assert!(
            busiest_window(&chat_calls, Duration::from_secs(1)) <= 5,
            "private chat {chat}"
        );
        let texts: Vec<_> = chat_calls
            .iter()
            .map(|c| c.params["text"].as_str().unwrap())
            .collect();
        let mut sorted = texts.clone();
        sorted.sort_by_key(|t| t.rsplit(' ').next().unwrap().parse::<u32>().unwrap());
        assert_eq!(texts, sorted, "order kept within chat {chat}");
    }
    let group: Vec<_> = calls.iter().filter(|c| c.chat_id == Some(-1001)).collect();
    assert!(
        busiest_window(&group, Duration::from_millis(500)) <= 1,
        "group limit"
    );
    assert!(
        rig.store.pending_outbox().unwrap().is_empty(),
        "the outbox table is empty"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let rig = rig(FakeConfig::default(), None, Duration::from_secs(5)).await;
    rig.api.inject(
        Fault::TooManyRequests { retry_after: 1 },
        1,
        Some("sendMessage"),
    );
    rig.outbox
        .enqueue(vec![Action::send(7, "hi")])
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), rig.outbox.drained())
        .await
        .unwrap();
    let calls = rig.api.calls_for("sendMessage");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].status, 429);
    assert_eq!(calls[1].status, 200);
    let waited = calls[1].since_start - calls[0].since_start;
    assert!(
        waited >= Duration::from_secs(1) - TOLERANCE,
        "waited only {waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_all_end_in_delivery() {
    let rig = rig(FakeConfig::default(), None, Duration::from_millis(300)).await;
    rig.api
        .inject(Fault::ServerError(502), 2, Some("sendMessage"));
    rig.api
        .inject(Fault::DropConnection, 1, Some("sendMessage"));
    rig.api
        .inject(Fault::ServerError(500), 1, Some("sendMessage"));
    rig.outbox
        .enqueue(vec![Action::send(3, "first"), Action::send(3, "second")])
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(20), rig.outbox.drained())
        .await
        .unwrap();
    let delivered: Vec<_> = rig
        .api
        .delivered_calls("sendMessage")
        .iter()
        .map(|c| c.params["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(delivered, ["first", "second"]);
    assert_eq!(
        rig.api.calls_for("sendMessage").len(),
        6,
        "4 failures, 2 successes"
    );

    // A timeout: the slow answer still took effect, so the retry may deliver twice —
    // at least once is what a timeout allows; what matters is that it is not lost.
    rig.api.inject(
        Fault::Delay(Duration::from_millis(800)),
        1,
        Some("sendMessage"),
    );
    rig.outbox
        .enqueue(vec![Action::send(3, "slow")])
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(20), rig.outbox.drained())
        .await
        .unwrap();
    let slow = rig
        .api
        .delivered_calls("sendMessage")
        .iter()
        .filter(|c| c.params["text"] == "slow")
        .count();
    assert!(slow >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_user_is_marked_and_not_retried() {
    let rig = rig(
        FakeConfig {
            blocked_chats: vec![9],
            ..FakeConfig::default()
        },
        None,
        Duration::from_secs(5),
    )
    .await;
    let mut delta = edgebot::store::records::UserDelta::new(9, edgebot::calendar::UnixSecs(1));
    delta.messages = 1;
    rig.store.update_user(delta).await.unwrap();
    rig.outbox
        .enqueue(vec![Action::send(9, "hello?")])
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), rig.outbox.drained())
        .await
        .unwrap();
    assert_eq!(
        rig.api.calls_for("sendMessage").len(),
        1,
        "403 is not retried"
    );
    assert_eq!(
        rig.store.user(9).unwrap().unwrap().status,
        UserStatus::Blocked
    );
    assert!(rig.store.pending_outbox().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_to_one_chat_does_not_delay_another() {
    let rig = rig(
        FakeConfig::default(),
        Some(limits(30, 2, 20)),
        Duration::from_secs(5),
    )
    .await;
    let flood: Vec<_> = (0..10)
        .map(|n| Action::send(1, format!("flood {n}")))
        .collect();
    rig.outbox.enqueue(flood).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pushed = rig.api.calls().len();
    rig.outbox
        .enqueue(vec![Action::send(2, "other chat")])
        .await
        .unwrap();
    let arrived = rig
        .api
        .wait_for(
            |calls| calls.iter().any(|c| c.chat_id == Some(2)),
            Duration::from_secs(2),
        )
        .await;
    assert!(arrived, "the other chat waited behind the flood");
    let flood_sent = rig
        .api
        .calls()
        .iter()
        .filter(|c| c.chat_id == Some(1))
        .count();
    assert!(
        flood_sent < 10,
        "the flood was still going ({pushed} → {flood_sent})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_callback_answer_never_delays_another() {
    // Answers to button presses write to no chat; each goes on its own, so one that
    // Telegram is slow to take cannot hold the others back behind it.
    let rig = rig(FakeConfig::default(), None, Duration::from_secs(10)).await;
    let slow = Duration::from_secs(3);
    rig.api
        .inject(Fault::Delay(slow), 1, Some("answerCallbackQuery"));
    let answer = |id: &str| {
        Action::AnswerCallbackQuery(edgebot::telegram::methods::AnswerCallbackQuery::silent(
            id.into(),
        ))
    };
    let started = std::time::Instant::now();
    rig.outbox
        .enqueue(vec![answer("first"), answer("second")])
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(20), rig.outbox.drained())
        .await
        .unwrap();
    let answered = rig.api.delivered_calls("answerCallbackQuery");
    assert_eq!(answered.len(), 2);
    let earliest = answered.iter().map(|c| c.at).min().unwrap();
    assert!(
        earliest.duration_since(started) < slow,
        "the quick answer waited {:?} behind the slow one",
        earliest.duration_since(started)
    );
}

fn html(chat_id: i64, text: &str) -> Action {
    let mut action = Action::send(chat_id, text);
    if let Action::SendMessage(message) = &mut action {
        message.parse_mode = Some(ParseMode::Html);
    }
    action
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markup_telegram_cannot_parse_is_sent_plain_once() {
    let rig = rig(FakeConfig::default(), None, Duration::from_secs(5)).await;
    let answer = "**Sure** — `a < b` holds:\n```rust\nassert!(a < b);\n```";
    rig.outbox
        .enqueue(vec![
            html(5, "<b>an unclosed tag & a <div>"),
            html(5, &markup::to_html(answer)),
        ])
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), rig.outbox.drained())
        .await
        .unwrap();
    let calls = rig.api.calls_for("sendMessage");
    let seen: Vec<_> = calls
        .iter()
        .map(|c| {
            (
                c.status,
                c.params["text"].clone(),
                c.params["parse_mode"].clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (400, "<b>an unclosed tag & a <div>".into(), "HTML".into()),
            (200, "an unclosed tag & a ".into(), serde_json::Value::Null),
            (200, markup::to_html(answer).into(), "HTML".into()),
        ],
        "refused, sent plain, and the converted answer taken as it is"
    );
    assert!(rig.store.pending_outbox().unwrap().is_empty());
}
