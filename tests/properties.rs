//! Properties checked over random inputs rather than chosen examples:
//!
//! * every record the store keeps, and every outbox entry, reads back as it was written;
//! * the inbox neither loses nor repeats an update, whatever the order of appends,
//!   finishes, redeliveries and crash-restarts;
//! * the sender keeps every flood limit under random schedules of actions over a few
//!   chats, measured from the fake Bot API's arrival times;
//! * a server-sent event stream decodes to the same events, error and end however it is
//!   cut into chunks (the `sse_decode` fuzz target checks the same with any bytes);
//! * the HTML the bot makes of a model's Markdown, whole or split into messages, is
//!   accepted by the fake Bot API's own HTML parser (written apart from the bot's, like
//!   Telegram's), shows what `html_to_plain` says it shows, and holds the length limit
//!   (the `markup` fuzz target checks the same with any text).
//!
//! Failing cases are printed, shrunk, but not persisted: the minimal case in the failure
//! message is what becomes an example test.

#[path = "support/windows.rs"]
mod windows;

use edgebot::botapi::Client;
use edgebot::calendar::{UnixMillis, UnixSecs};
use edgebot::config::{OutboundLimits, Secret};
use edgebot::engine::outbound::{action_of, call_of};
use edgebot::engine::sender::Outbox;
use edgebot::fake::botapi::{FakeBotApi, FakeConfig, RecordedCall, parse_html};
use edgebot::net::sse::{Decoder, Event as SseEvent, SseError};
use edgebot::store::codec::{self, CodecError};
use edgebot::store::records::{
    ConversationState, Dialog, Event, EventKind, MalformedUpdate, Role, Session, Speaker,
    TurnRecord, Usage, UserDelta, UserRecord, UserStatus,
};
use edgebot::store::{Appended, Finish, Finished, OutboxEntry, Store};
use edgebot::telegram::markup;
use edgebot::telegram::methods::{
    Action, AnswerCallbackQuery, ChatMemberRef, EditMessageText, MessageRef, ParseMode,
    ReplyParameters, SendMessage,
};
use edgebot::telegram::types::{InlineKeyboardButton, InlineKeyboardMarkup};
use edgebot::telemetry::health::Health;
use edgebot::telemetry::metrics::Metrics;
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use windows::busiest_window;

// ---------------------------------------------------------------------------------------
// Encoding round trips

fn user_record() -> impl Strategy<Value = UserRecord> {
    (
        (
            any::<i64>(),
            any::<Option<String>>(),
            any::<String>(),
            any::<Option<String>>(),
            any::<Option<String>>(),
        ),
        (
            prop_oneof![Just(Role::User), Just(Role::Admin)],
            prop_oneof![
                Just(UserStatus::Active),
                Just(UserStatus::Banned),
                Just(UserStatus::Blocked)
            ],
            any::<Option<i64>>(),
            any::<u32>(),
            any::<u64>(),
            any::<i64>(),
            any::<i64>(),
        ),
    )
        .prop_map(
            |(
                (id, username, first_name, last_name, language_code),
                (role, status, referrer, referrals, message_count, first_seen, last_seen),
            )| UserRecord {
                id,
                username,
                first_name,
                last_name,
                language_code,
                role,
                status,
                referrer,
                referrals,
                message_count,
                first_seen: UnixSecs(first_seen),
                last_seen: UnixSecs(last_seen),
            },
        )
}

fn event() -> impl Strategy<Value = Event> {
    let kind = prop_oneof![
        any::<Option<i64>>().prop_map(|referrer| EventKind::UserJoined { referrer }),
        any::<String>().prop_map(|name| EventKind::Command { name }),
        any::<String>().prop_map(|data| EventKind::Callback { data }),
        any::<String>().prop_map(|text| EventKind::Feedback { text }),
        Just(EventKind::RateLimited),
        Just(EventKind::BlockedBot),
    ];
    (
        any::<i64>(),
        any::<Option<i64>>(),
        any::<Option<i64>>(),
        kind,
    )
        .prop_map(|(at_ms, user_id, chat_id, kind)| Event {
            at_ms: UnixMillis(at_ms),
            user_id,
            chat_id,
            kind,
        })
}

fn dialog() -> impl Strategy<Value = Dialog> {
    (
        any::<u32>(),
        any::<String>(),
        any::<String>(),
        any::<u32>(),
        any::<u32>(),
        any::<i64>(),
        any::<i64>(),
    )
        .prop_map(
            |(number, personality, summary, summarized_upto, next_turn, started_at, last_at)| {
                Dialog {
                    number,
                    personality,
                    summary,
                    summarized_upto,
                    next_turn,
                    started_at: UnixSecs(started_at),
                    last_at: UnixSecs(last_at),
                }
            },
        )
}

fn turn_record() -> impl Strategy<Value = TurnRecord> {
    (
        prop_oneof![Just(Speaker::User), Just(Speaker::Assistant)],
        any::<i64>(),
        any::<String>(),
        any::<i64>(),
        any::<u32>(),
        any::<i64>(),
        any::<Option<String>>(),
    )
        .prop_map(
            |(speaker, user_id, text, at, tokens, update_id, provider)| TurnRecord {
                speaker,
                user_id,
                text,
                at: UnixSecs(at),
                tokens,
                update_id,
                provider,
            },
        )
}

fn keyboard() -> impl Strategy<Value = Option<InlineKeyboardMarkup>> {
    let button = (
        any::<String>(),
        any::<Option<String>>(),
        any::<Option<String>>(),
    )
        .prop_map(|(text, callback_data, url)| InlineKeyboardButton {
            text,
            callback_data,
            url,
        });
    proptest::option::of(
        proptest::collection::vec(proptest::collection::vec(button, 0..3), 0..3)
            .prop_map(|inline_keyboard| InlineKeyboardMarkup { inline_keyboard }),
    )
}

fn action() -> impl Strategy<Value = Action> {
    let reply = proptest::option::of((any::<i64>(), any::<bool>()).prop_map(
        |(message_id, allow_sending_without_reply)| ReplyParameters {
            message_id,
            allow_sending_without_reply,
        },
    ));
    prop_oneof![
        (
            any::<i64>(),
            any::<String>(),
            reply,
            keyboard(),
            any::<bool>()
        )
            .prop_map(|(chat_id, text, reply_parameters, reply_markup, html)| {
                Action::SendMessage(SendMessage {
                    chat_id,
                    message_thread_id: None,
                    text,
                    parse_mode: html.then_some(ParseMode::Html),
                    reply_parameters,
                    reply_markup,
                })
            }),
        (any::<i64>(), any::<i64>(), any::<String>(), keyboard()).prop_map(
            |(chat_id, message_id, text, reply_markup)| {
                Action::EditMessageText(EditMessageText {
                    chat_id,
                    message_id,
                    text,
                    parse_mode: None,
                    reply_markup,
                })
            }
        ),
        (any::<String>(), any::<Option<String>>(), any::<bool>()).prop_map(
            |(callback_query_id, text, show_alert)| {
                Action::AnswerCallbackQuery(AnswerCallbackQuery {
                    callback_query_id,
                    text,
                    show_alert,
                })
            }
        ),
        (any::<i64>(), any::<i64>()).prop_map(|(chat_id, message_id)| {
            Action::DeleteMessage(MessageRef {
                chat_id,
                message_id,
            })
        }),
        (any::<i64>(), any::<i64>()).prop_map(|(chat_id, user_id)| Action::BanChatMember(
            ChatMemberRef { chat_id, user_id }
        )),
    ]
}

/// Encodes, checks the version byte, decodes, and compares.
fn round_trips<T>(value: &T) -> Result<(), TestCaseError>
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = codec::encode(value);
    prop_assert_eq!(bytes[0], codec::VALUE_VERSION);
    let back: T = codec::decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, value);
    // A value from a future layout is refused, never misread.
    let mut future = bytes.clone();
    future[0] = codec::VALUE_VERSION.wrapping_add(1);
    prop_assert!(matches!(
        codec::decode::<T>(&future),
        Err(CodecError::UnknownVersion(_))
    ));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn user_records_round_trip(user in user_record()) {
        round_trips(&user)?;
    }

    #[test]
    fn events_round_trip(event in event()) {
        round_trips(&event)?;
    }

    #[test]
    fn sessions_round_trip(
        expires_at in any::<i64>(),
        internal_user_id in any::<Option<String>>(),
        state in any::<Option<String>>(),
        ttl_secs in any::<u32>(),
        feedback in any::<bool>(),
    ) {
        round_trips(&Session {
            conversation: feedback.then_some(ConversationState::AwaitingFeedback),
            internal_user_id,
            state,
            data: r#"{"k": [1, "x"]}"#.into(),
            ttl_secs,
            expires_at: UnixSecs(expires_at),
        })?;
    }

    #[test]
    fn malformed_updates_round_trip(
        received_at in any::<i64>(),
        error in any::<String>(),
        raw in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        round_trips(&MalformedUpdate { received_at: UnixSecs(received_at), error, raw })?;
    }

    #[test]
    fn dialogs_round_trip(dialog in dialog()) {
        round_trips(&dialog)?;
    }

    #[test]
    fn turns_round_trip(turn in turn_record()) {
        round_trips(&turn)?;
    }

    #[test]
    fn usage_round_trips(
        input_tokens in any::<u64>(),
        output_tokens in any::<u64>(),
        turns in any::<u32>(),
        cost_micro_usd in any::<u64>(),
        personality in any::<String>(),
    ) {
        round_trips(&Usage { input_tokens, output_tokens, turns, cost_micro_usd })?;
        // A personality choice is kept as the bare name.
        round_trips(&personality)?;
    }

    /// Stored bytes may be damaged: decoding them fails cleanly, it never panics.
    #[test]
    fn damaged_values_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = codec::decode::<UserRecord>(&bytes);
        let _ = codec::decode::<Event>(&bytes);
        let _ = codec::decode::<Session>(&bytes);
        let _ = codec::decode::<MalformedUpdate>(&bytes);
        let _ = codec::decode::<OutboxEntry>(&bytes);
        let _ = codec::decode::<Dialog>(&bytes);
        let _ = codec::decode::<TurnRecord>(&bytes);
        let _ = codec::decode::<Usage>(&bytes);
        let _ = codec::decode::<String>(&bytes);
    }

    /// An outbox entry keeps its action as a call (the method, the chat and the JSON
    /// parameters) in the versioned encoding, like every record; the sequence number is
    /// the table key, not part of the value. The call gives the action back.
    #[test]
    fn outbox_entries_round_trip(update_id in any::<i64>(), action in action()) {
        let entry = OutboxEntry { seq: 0, update_id, call: call_of(&action) };
        round_trips(&entry)?;
        prop_assert_eq!(action_of(&entry.call).unwrap(), action);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 16,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Through a real store and a reopening: what was enqueued is what is pending.
    #[test]
    fn the_outbox_table_returns_what_was_enqueued(
        actions in proptest::collection::vec(action(), 1..6),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let runtime = current_thread();
        let store = Store::open(dir.path()).unwrap();
        let calls = actions.iter().map(call_of).collect();
        let entries = runtime.block_on(store.enqueue_outbox(calls)).unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        let pending = store.pending_outbox().unwrap();
        prop_assert_eq!(&pending, &entries);
        let stored: Vec<Action> = pending.iter().map(|e| action_of(&e.call).unwrap()).collect();
        prop_assert_eq!(stored, actions);
    }
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// The inbox: exactly once under appends, finishes, redeliveries and crashes

/// The one user every update comes from: its message count counts finished updates.
const USER: i64 = 77;

#[derive(Debug, Clone)]
enum InboxOp {
    /// Telegram delivers (or redelivers) this update.
    Append(i64),
    /// The engine finishes the n-th pending update (modulo how many there are).
    FinishPending(usize),
    /// A finish runs again for the n-th update ever appended (a replay racing a
    /// redelivery): it must change nothing the second time.
    FinishAgain(usize),
    /// The process dies and starts again: the store is dropped and reopened.
    CrashRestart,
}

fn inbox_op() -> impl Strategy<Value = InboxOp> {
    // Ids from a small range so redeliveries are common, plus 4096, whose finish also
    // trims old ids from the processed table.
    let id = prop_oneof![9 => 0i64..24, 1 => Just(4096i64)];
    prop_oneof![
        4 => id.prop_map(InboxOp::Append),
        3 => any::<usize>().prop_map(InboxOp::FinishPending),
        1 => any::<usize>().prop_map(InboxOp::FinishAgain),
        1 => Just(InboxOp::CrashRestart),
    ]
}

fn finish_of(update_id: i64) -> Finish {
    let mut delta = UserDelta::new(USER, UnixSecs(1_000));
    delta.messages = 1;
    Finish {
        update_id,
        finished_at: UnixSecs(1_000),
        users: vec![delta],
        events: Vec::new(),
        session: None,
        conversation: Vec::new(),
        outbox: Vec::new(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_inbox_never_loses_or_repeats(ops in proptest::collection::vec(inbox_op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let runtime = current_thread();
        let mut store = Store::open(dir.path()).unwrap();
        // The model: ids ever appended (in order), and ids finished.
        let mut appended: Vec<i64> = Vec::new();
        let mut finished: BTreeSet<i64> = BTreeSet::new();
        for op in &ops {
            match *op {
                InboxOp::Append(id) => {
                    let raw = format!(r#"{{"update_id":{id}}}"#);
                    let outcome = runtime.block_on(store.append_inbox(id, raw.into())).unwrap();
                    let expected = if appended.contains(&id) {
                        Appended::Duplicate
                    } else {
                        appended.push(id);
                        Appended::New
                    };
                    prop_assert_eq!(outcome, expected, "append of {}", id);
                }
                InboxOp::FinishPending(n) => {
                    let pending = store.pending_inbox().unwrap();
                    if pending.is_empty() {
                        continue;
                    }
                    let id = pending[n % pending.len()].0;
                    let outcome = runtime.block_on(store.finish(finish_of(id))).unwrap();
                    prop_assert!(
                        matches!(outcome, Finished::Committed(_)),
                        "a pending update {} was already finished", id
                    );
                    finished.insert(id);
                }
                InboxOp::FinishAgain(n) => {
                    if appended.is_empty() {
                        continue;
                    }
                    let id = appended[n % appended.len()];
                    let outcome = runtime.block_on(store.finish(finish_of(id))).unwrap();
                    let was_finished = !finished.insert(id);
                    prop_assert_eq!(
                        matches!(outcome, Finished::AlreadyFinished),
                        was_finished,
                        "finish of {}: {:?}", id, outcome
                    );
                }
                InboxOp::CrashRestart => {
                    drop(store);
                    store = Store::open(dir.path()).unwrap();
                }
            }
            // Pending is exactly what was appended and not finished, in id order.
            let pending: Vec<i64> = store.pending_inbox().unwrap().into_iter().map(|p| p.0).collect();
            let expected: Vec<i64> = appended
                .iter()
                .copied()
                .filter(|id| !finished.contains(id))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            prop_assert_eq!(pending, expected);
        }

        // The last start: replay what is pending, as `serve` does.
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        for (id, _raw) in store.pending_inbox().unwrap() {
            runtime.block_on(store.finish(finish_of(id))).unwrap();
        }
        prop_assert!(store.pending_inbox().unwrap().is_empty());
        let distinct: BTreeSet<i64> = appended.iter().copied().collect();
        let count = store.user(USER).unwrap().map_or(0, |u| u.message_count);
        prop_assert_eq!(count, distinct.len() as u64, "appended {:?}", appended);
    }
}

// ---------------------------------------------------------------------------------------
// The sender: flood limits hold under random schedules

/// Scaled down like tests/sender.rs so a case takes a second or two: 20/s overall,
/// 5/s per private chat, 120/min (one per 0.5 s) per group.
const GLOBAL_PER_SECOND: usize = 20;
const PRIVATE_PER_SECOND: usize = 5;
const GROUP_PER_MINUTE: usize = 120;
/// The chats a schedule writes to: three private chats and two groups.
const CHATS: [i64; 5] = [1, 2, 3, -1001, -1002];

/// One burst of a schedule: wait, then commit these actions at once.
#[derive(Debug, Clone)]
struct Burst {
    delay_ms: u64,
    /// (index into `CHATS`, or `CHATS.len()` for a callback answer, which writes to no
    /// chat) for each action.
    targets: Vec<usize>,
}

fn burst() -> impl Strategy<Value = Burst> {
    (0u64..400, proptest::collection::vec(0..=CHATS.len(), 1..8))
        .prop_map(|(delay_ms, targets)| Burst { delay_ms, targets })
}

/// Runs one schedule against the fake Bot API; returns the calls it received and the
/// texts sent, per chat, in the order they were committed.
async fn run_schedule(schedule: &[Burst]) -> (Vec<RecordedCall>, BTreeMap<i64, Vec<String>>) {
    let api = FakeBotApi::start(FakeConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let client = Client::new(
        &api.base_url(),
        &Secret::new("1:test"),
        Duration::from_secs(5),
    )
    .unwrap();
    let limits = OutboundLimits {
        enabled: true,
        global_per_second: NonZeroU32::new(GLOBAL_PER_SECOND as u32).unwrap(),
        private_per_second: NonZeroU32::new(PRIVATE_PER_SECOND as u32).unwrap(),
        group_per_minute: NonZeroU32::new(GROUP_PER_MINUTE as u32).unwrap(),
    };
    let outbox = Outbox::start(
        client,
        store.clone(),
        Some(&limits),
        Arc::new(Metrics::new()),
        Arc::new(Health::default()),
    );
    let mut sent: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    let mut n = 0;
    for burst in schedule {
        tokio::time::sleep(Duration::from_millis(burst.delay_ms)).await;
        let mut actions = Vec::new();
        for &target in &burst.targets {
            n += 1;
            let text = format!("action {n}");
            match CHATS.get(target) {
                Some(&chat) => {
                    sent.entry(chat).or_default().push(text.clone());
                    actions.push(Action::send(chat, text));
                }
                None => actions.push(Action::AnswerCallbackQuery(AnswerCallbackQuery::silent(
                    text,
                ))),
            }
        }
        outbox.enqueue(actions).await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(30), outbox.drained())
        .await
        .expect("the outbox drains");
    assert!(store.pending_outbox().unwrap().is_empty());
    (api.calls(), sent)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 8,
        failure_persistence: None,
        max_shrink_iters: 16,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_sender_keeps_every_limit(schedule in proptest::collection::vec(burst(), 1..4)) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (calls, sent) = runtime.block_on(run_schedule(&schedule));
        let actions: usize = schedule.iter().map(|b| b.targets.len()).sum();
        prop_assert_eq!(calls.len(), actions, "one call per action, none failed");
        prop_assert!(calls.iter().all(RecordedCall::delivered));

        let all: Vec<&RecordedCall> = calls.iter().collect();
        prop_assert!(
            busiest_window(&all, Duration::from_secs(1)) <= GLOBAL_PER_SECOND,
            "global limit"
        );
        for (chat, texts) in &sent {
            let chat_calls: Vec<&RecordedCall> =
                calls.iter().filter(|c| c.chat_id == Some(*chat)).collect();
            let (width, limit) = if *chat > 0 {
                (Duration::from_secs(1), PRIVATE_PER_SECOND)
            } else {
                (Duration::from_secs(60) / GROUP_PER_MINUTE as u32, 1)
            };
            prop_assert!(
                busiest_window(&chat_calls, width) <= limit,
                "chat {} over its limit", chat
            );
            let arrived: Vec<&str> = chat_calls
                .iter()
                .map(|c| c.params["text"].as_str().unwrap())
                .collect();
            prop_assert_eq!(&arrived, texts, "chat {} in commit order", chat);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Server-sent events

/// Streams made mostly of what event streams are made of: fields, comments, every kind
/// of line end, a byte-order mark, multi-byte characters, bad UTF-8 and NULs.
fn sse_stream() -> impl Strategy<Value = Vec<u8>> {
    let pieces: Vec<&'static [u8]> = vec![
        &b"data: "[..],
        &b"data:x"[..],
        &b"data"[..],
        &b"event: e"[..],
        &b"id: 7"[..],
        &b"retry: 10"[..],
        &b": c"[..],
        &b"\n"[..],
        &b"\r"[..],
        &b"\r\n"[..],
        &b"\n\n"[..],
        "😀".as_bytes(),
        "\u{FEFF}".as_bytes(),
        &b"\xFF"[..],
        &b"\xE2\x82"[..],
        &b"\0"[..],
    ];
    proptest::collection::vec(proptest::sample::select(pieces), 0..48)
        .prop_map(|pieces| pieces.concat())
}

fn decode_sse<'a>(
    limit: usize,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> (Vec<SseEvent>, Result<(), SseError>) {
    let mut decoder = Decoder::with_limit(limit);
    let mut events = Vec::new();
    for chunk in chunks {
        if let Err(error) = decoder.feed(chunk, &mut events) {
            return (events, Err(error));
        }
    }
    (events, decoder.finish())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn sse_streams_decode_the_same_however_they_are_cut(
        stream in sse_stream(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        limit in 4usize..96,
    ) {
        let whole = decode_sse(limit, [stream.as_slice()]);
        let mut offsets: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        offsets.extend([0, stream.len()]);
        offsets.sort_unstable();
        let chunks = offsets.windows(2).map(|pair| &stream[pair[0]..pair[1]]);
        prop_assert_eq!(decode_sse(limit, chunks), whole.clone(), "cut at {:?}", offsets);
        prop_assert_eq!(decode_sse(limit, stream.chunks(1)), whole);
    }
}

// ---------------------------------------------------------------------------------------
// Markup: the bot's HTML against the fake's reading of it

/// Markdown as models write it, and as they get it wrong: fragments in any order.
fn markdownish() -> impl Strategy<Value = String> {
    let fragments = vec![
        "**",
        "*",
        "__",
        "_",
        "~~",
        "`",
        "```",
        "```js\n",
        "\n```\n",
        "# ",
        "> ",
        "[",
        "](",
        "](https://e.com/a_b?c=1&d=\"2\")",
        ")",
        "<",
        ">",
        "&",
        "&amp;",
        "&#x1F600;",
        "\\",
        "\n",
        "\n\n",
        " ",
        "text",
        "snake_case",
        "https://e.com/*x*",
        "<https://e.com>",
        "😀",
        "Привет",
        "。",
        ". ",
        "<b>",
        "</i>",
        "<a href=x>",
    ];
    proptest::collection::vec(proptest::sample::select(fragments), 0..64)
        .prop_map(|fragments| fragments.concat())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_bots_html_is_html_telegram_takes(
        markdown in prop_oneof![markdownish(), any::<String>()],
        limit in 1usize..64,
    ) {
        let html = markup::to_html(&markdown);
        prop_assert_eq!(parse_html(&html), Ok(markup::html_to_plain(&html)), "{:?}", html);
        for piece in markup::split(&markdown, limit) {
            let shown = parse_html(&piece);
            prop_assert_eq!(&shown, &Ok(markup::html_to_plain(&piece)), "{:?}", piece);
            let units = shown.unwrap_or_default().encode_utf16().count();
            prop_assert!(units <= limit.max(2), "{} units in {:?}", units, piece);
        }
    }
}
