//! LLM conversations in the store, on a real redb file: exchanges, new dialogs, `/retry`,
//! summaries, `/reset`, `/forget`, usage counters and the export read, each committed by
//! [`Store::finish`] as the engine commits them, and read back (also after reopening).

use edgebot::calendar::UnixSecs;
use edgebot::store::records::{
    ConversationChange, Dialog, DialogKey, Exchange, Speaker, TurnRecord, Usage, UsageDelta,
};
use edgebot::store::{FILE_NAME, Finish, Finished, Store, StoreError};

const ADA: i64 = 42;
const BOB: i64 = 43;
const PRIVATE: DialogKey = DialogKey {
    chat_id: ADA,
    thread_id: 0,
};
const GROUP: DialogKey = DialogKey {
    chat_id: -100,
    thread_id: 0,
};
const TOPIC: DialogKey = DialogKey {
    chat_id: -100,
    thread_id: 7,
};
const DAY: u32 = 20_000;
const MONTH: u32 = 2024 * 12 + 8;

fn question(user_id: i64, text: &str, at: i64) -> TurnRecord {
    TurnRecord {
        speaker: Speaker::User,
        user_id,
        text: text.into(),
        at: UnixSecs(at),
        tokens: 5,
        update_id: at,
        provider: None,
    }
}

fn answer(user_id: i64, text: &str, at: i64) -> TurnRecord {
    TurnRecord {
        speaker: Speaker::Assistant,
        user_id,
        text: text.into(),
        at: UnixSecs(at),
        tokens: 7,
        update_id: at,
        provider: Some("local".into()),
    }
}

fn usage(user_id: i64) -> UsageDelta {
    UsageDelta {
        user_id,
        provider: "local".into(),
        day: DAY,
        month: MONTH,
        input_tokens: 100,
        output_tokens: 20,
        cost_micro_usd: 3,
    }
}

/// A question from `user` at `at` and its answer a second later, in dialog `number`.
fn exchange(key: DialogKey, number: u32, user: i64, text: &str, at: i64) -> ConversationChange {
    summarized(key, number, user, text, at, None)
}

/// As [`exchange`], setting the summary.
fn summarized(
    key: DialogKey,
    number: u32,
    user: i64,
    text: &str,
    at: i64,
    summary: Option<(&str, u32)>,
) -> ConversationChange {
    Exchange {
        key,
        number,
        personality: "friend".into(),
        question: Some(question(user, text, at)),
        answer: answer(user, &format!("re: {text}"), at + 1),
        replaces_answer: false,
        summary: summary.map(|(text, upto)| (text.to_owned(), upto)),
        usage: usage(user),
    }
    .into()
}

/// Commits `changes` as update `update_id` would.
async fn finish(store: &Store, update_id: i64, changes: Vec<ConversationChange>) -> Finished {
    store
        .finish(Finish {
            update_id,
            finished_at: UnixSecs(update_id),
            conversation: changes,
            ..Finish::default()
        })
        .await
        .unwrap()
}

fn texts(turns: &[TurnRecord]) -> Vec<&str> {
    turns.iter().map(|t| t.text.as_str()).collect()
}

#[tokio::test]
async fn exchanges_append_in_order_exactly_once_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.dialog(PRIVATE).unwrap(), None);
    finish(&store, 1, vec![exchange(PRIVATE, 1, ADA, "one", 1_000)]).await;
    let again = finish(&store, 1, vec![exchange(PRIVATE, 1, ADA, "one", 1_000)]).await;
    assert_eq!(again, Finished::AlreadyFinished, "a replay changes nothing");
    finish(&store, 2, vec![exchange(PRIVATE, 1, ADA, "two", 1_010)]).await;

    let check = |store: &Store| {
        let dialog = store.dialog(PRIVATE).unwrap().unwrap();
        assert_eq!(
            dialog,
            Dialog {
                number: 1,
                personality: "friend".into(),
                summary: String::new(),
                summarized_upto: 0,
                next_turn: 4,
                started_at: UnixSecs(1_000),
                last_at: UnixSecs(1_011),
            }
        );
        let turns = store.turns(PRIVATE, 1, 0).unwrap();
        assert_eq!(texts(&turns), ["one", "re: one", "two", "re: two"]);
        assert_eq!(turns[1], answer(ADA, "re: one", 1_001));
        assert_eq!(texts(&store.turns(PRIVATE, 1, 3).unwrap()), ["re: two"]);
        assert!(store.turns(PRIVATE, 2, 0).unwrap().is_empty());
        let (day, month) = store.usage_of(ADA, DAY, MONTH).unwrap();
        assert_eq!(day.turns, 2, "counted once per exchange");
        assert_eq!(day, month);
    };
    check(&store);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    check(&store);
    let stats = store.stats().unwrap();
    assert_eq!(
        (
            stats.dialogs,
            stats.turns,
            stats.user_usage,
            stats.provider_usage
        ),
        (1, 4, 2, 1)
    );
}

#[tokio::test]
async fn a_higher_number_opens_a_new_dialog_and_a_lower_one_continues_the_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let first = summarized(
        PRIVATE,
        1,
        ADA,
        "old",
        1_000,
        Some(("Ada asked something old.", 2)),
    );
    finish(&store, 1, vec![first]).await;
    finish(&store, 2, vec![exchange(PRIVATE, 2, ADA, "new", 9_000)]).await;
    let dialog = store.dialog(PRIVATE).unwrap().unwrap();
    assert_eq!(
        (dialog.number, dialog.next_turn, dialog.summary.as_str()),
        (2, 2, "")
    );
    assert_eq!(dialog.summarized_upto, 0);
    assert_eq!(
        (dialog.started_at, dialog.last_at),
        (UnixSecs(9_000), UnixSecs(9_001))
    );
    assert_eq!(
        texts(&store.turns(PRIVATE, 1, 0).unwrap()),
        ["old", "re: old"],
        "the old dialog's turns stay"
    );
    assert_eq!(
        texts(&store.turns(PRIVATE, 2, 0).unwrap()),
        ["new", "re: new"]
    );

    // A stale number never reopens dialog 1 over its turns.
    finish(&store, 3, vec![exchange(PRIVATE, 1, ADA, "late", 9_100)]).await;
    assert_eq!(store.dialog(PRIVATE).unwrap().unwrap().number, 2);
    assert_eq!(
        texts(&store.turns(PRIVATE, 2, 0).unwrap()),
        ["new", "re: new", "late", "re: late"]
    );
    assert_eq!(store.turns(PRIVATE, 1, 0).unwrap().len(), 2);
}

#[tokio::test]
async fn retry_replaces_the_last_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let retry = |key, number, text: &str, at| -> ConversationChange {
        Exchange {
            key,
            number,
            personality: "poet".into(),
            question: None,
            answer: answer(ADA, text, at),
            replaces_answer: true,
            summary: None,
            usage: usage(ADA),
        }
        .into()
    };
    finish(&store, 1, vec![exchange(PRIVATE, 1, ADA, "one", 1_000)]).await;
    finish(&store, 2, vec![exchange(PRIVATE, 1, ADA, "two", 1_010)]).await;
    finish(&store, 3, vec![retry(PRIVATE, 1, "better two", 1_020)]).await;
    finish(&store, 4, vec![retry(PRIVATE, 1, "best two", 1_030)]).await;
    assert_eq!(
        texts(&store.turns(PRIVATE, 1, 0).unwrap()),
        ["one", "re: one", "two", "best two"]
    );
    let dialog = store.dialog(PRIVATE).unwrap().unwrap();
    assert_eq!(dialog.next_turn, 4);
    assert_eq!(dialog.personality, "poet");
    assert_eq!(dialog.last_at, UnixSecs(1_030));
    let (day, _) = store.usage_of(ADA, DAY, MONTH).unwrap();
    assert_eq!(day.turns, 4, "a retry is an answer written, and counted");

    // Nothing to replace: the answer is appended.
    finish(&store, 5, vec![retry(TOPIC, 1, "first", 2_000)]).await;
    assert_eq!(texts(&store.turns(TOPIC, 1, 0).unwrap()), ["first"]);
    assert_eq!(store.dialog(TOPIC).unwrap().unwrap().next_turn, 1);
}

#[tokio::test]
async fn a_summary_is_kept_with_the_index_it_covers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    finish(&store, 1, vec![exchange(PRIVATE, 1, ADA, "one", 1_000)]).await;
    let second = summarized(PRIVATE, 1, ADA, "two", 1_010, Some(("Ada said one.", 2)));
    finish(&store, 2, vec![second]).await;
    let dialog = store.dialog(PRIVATE).unwrap().unwrap();
    assert_eq!(
        (dialog.summary.as_str(), dialog.summarized_upto),
        ("Ada said one.", 2)
    );
    let recent = store
        .turns(PRIVATE, dialog.number, dialog.summarized_upto)
        .unwrap();
    assert_eq!(texts(&recent), ["two", "re: two"]);
    // An exchange without a summary keeps the one stored.
    finish(&store, 3, vec![exchange(PRIVATE, 1, ADA, "three", 1_020)]).await;
    assert_eq!(
        store.dialog(PRIVATE).unwrap().unwrap().summary,
        "Ada said one."
    );
}

#[tokio::test]
async fn reset_makes_the_next_exchange_a_new_dialog() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let first = summarized(PRIVATE, 1, ADA, "one", 1_000, Some(("s", 1)));
    finish(&store, 1, vec![first]).await;
    let reset = |key| ConversationChange::Reset {
        key,
        at: UnixSecs(1_500),
    };
    finish(&store, 2, vec![reset(PRIVATE), reset(GROUP)]).await;
    assert_eq!(
        store.dialog(GROUP).unwrap(),
        None,
        "no dialog, nothing to reset"
    );
    assert_eq!(
        store.dialog(PRIVATE).unwrap().unwrap(),
        Dialog {
            number: 2,
            personality: "friend".into(),
            summary: String::new(),
            summarized_upto: 0,
            next_turn: 0,
            started_at: UnixSecs(1_500),
            last_at: UnixSecs(1_500),
        }
    );
    assert_eq!(store.turns(PRIVATE, 1, 0).unwrap().len(), 2, "kept");

    finish(&store, 3, vec![exchange(PRIVATE, 2, ADA, "fresh", 2_000)]).await;
    let dialog = store.dialog(PRIVATE).unwrap().unwrap();
    assert_eq!((dialog.number, dialog.next_turn), (2, 2));
    assert_eq!(dialog.started_at, UnixSecs(2_000), "from its first turn");
    assert_eq!(
        texts(&store.turns(PRIVATE, 2, 0).unwrap()),
        ["fresh", "re: fresh"]
    );
}

/// `/forget` takes the private chat whole, and in a group only the user's turns (and the
/// answers to them): another user's turns stay, without gaps, and the group's summary,
/// which may quote the forgotten user, starts over. The choice goes; usage stays.
#[tokio::test]
async fn forget_takes_the_users_turns_and_choice_but_not_usage() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    finish(
        &store,
        1,
        vec![
            ConversationChange::Choose {
                user_id: ADA,
                personality: "poet".into(),
            },
            ConversationChange::Choose {
                user_id: BOB,
                personality: "friend".into(),
            },
            exchange(PRIVATE, 1, ADA, "secret", 1_000),
            exchange(GROUP, 1, ADA, "ada old", 1_100),
        ],
    )
    .await;
    finish(
        &store,
        2,
        vec![
            ConversationChange::Reset {
                key: GROUP,
                at: UnixSecs(1_200),
            },
            exchange(GROUP, 2, BOB, "bob first", 1_300),
            exchange(GROUP, 2, ADA, "ada here", 1_400),
            exchange(GROUP, 2, BOB, "bob again", 1_500),
            exchange(TOPIC, 1, BOB, "bob topic", 1_600),
        ],
    )
    .await;
    let last = summarized(
        GROUP,
        2,
        BOB,
        "bob last",
        1_700,
        Some(("Bob and Ada talked.", 4)),
    );
    finish(&store, 3, vec![last]).await;
    let usage_before = store.usage_of(ADA, DAY, MONTH).unwrap();
    assert_eq!(usage_before.0.turns, 3);
    let exported = store.conversations_of(ADA).unwrap();
    let places: Vec<DialogKey> = exported.iter().map(|(key, _, _)| *key).collect();
    assert_eq!(places, [GROUP, PRIVATE], "in key order");
    assert_eq!(
        texts(&exported[0].2),
        ["ada old", "re: ada old", "ada here", "re: ada here"],
        "only Ada's turns, of every dialog number"
    );
    assert_eq!(exported[0].1.number, 2);
    assert_eq!(texts(&exported[1].2), ["secret", "re: secret"]);

    finish(&store, 4, vec![ConversationChange::Forget { user_id: ADA }]).await;

    assert_eq!(store.dialog(PRIVATE).unwrap(), None);
    assert!(store.turns(PRIVATE, 1, 0).unwrap().is_empty());
    assert!(
        store.turns(GROUP, 1, 0).unwrap().is_empty(),
        "Ada's turns of the old group dialog"
    );
    let group = store.turns(GROUP, 2, 0).unwrap();
    assert_eq!(
        texts(&group),
        [
            "bob first",
            "re: bob first",
            "bob again",
            "re: bob again",
            "bob last",
            "re: bob last"
        ]
    );
    assert!(group.iter().all(|t| t.user_id == BOB));
    let dialog = store.dialog(GROUP).unwrap().unwrap();
    assert_eq!(
        (dialog.number, dialog.next_turn),
        (2, 6),
        "the gaps are closed"
    );
    assert_eq!((dialog.summary.as_str(), dialog.summarized_upto), ("", 0));
    assert_eq!(
        texts(&store.turns(GROUP, 2, 4).unwrap()),
        ["bob last", "re: bob last"],
        "the n-th turn from an index is at that index + n"
    );
    let topic = store.dialog(TOPIC).unwrap().unwrap();
    assert_eq!(topic.next_turn, 2, "Bob's topic is untouched");

    assert_eq!(store.personality_of(ADA).unwrap(), None);
    assert_eq!(
        store.personality_of(BOB).unwrap().as_deref(),
        Some("friend")
    );
    assert!(store.conversations_of(ADA).unwrap().is_empty());
    assert_eq!(store.usage_of(ADA, DAY, MONTH).unwrap(), usage_before);
    let bob: Vec<DialogKey> = store
        .conversations_of(BOB)
        .unwrap()
        .into_iter()
        .map(|(key, _, _)| key)
        .collect();
    assert_eq!(bob, [GROUP, TOPIC]);

    // The next exchange in a group appends after the turns left.
    finish(&store, 5, vec![exchange(GROUP, 2, BOB, "after", 1_800)]).await;
    assert_eq!(store.turns(GROUP, 2, 6).unwrap().len(), 2);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.dialog(PRIVATE).unwrap(), None);
    assert_eq!(store.turns(GROUP, 2, 0).unwrap().len(), 8);
}

#[tokio::test]
async fn forget_in_a_group_leaves_the_summary_when_the_current_dialog_lost_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    finish(&store, 1, vec![exchange(GROUP, 1, ADA, "ada", 1_000)]).await;
    let bob = summarized(GROUP, 2, BOB, "bob", 2_000, Some(("Bob only.", 2)));
    finish(&store, 2, vec![bob]).await;
    finish(&store, 3, vec![ConversationChange::Forget { user_id: ADA }]).await;
    assert!(store.turns(GROUP, 1, 0).unwrap().is_empty());
    let dialog = store.dialog(GROUP).unwrap().unwrap();
    assert_eq!(
        (
            dialog.summary.as_str(),
            dialog.summarized_upto,
            dialog.next_turn
        ),
        ("Bob only.", 2, 2)
    );
}

#[tokio::test]
async fn usage_adds_up_per_user_day_month_and_provider_day() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let spend = |user_id, provider: &str, day, input_tokens, cost| {
        let mut change = exchange(PRIVATE, 1, user_id, "q", 1_000);
        if let ConversationChange::Exchange(exchange) = &mut change {
            exchange.usage = UsageDelta {
                user_id,
                provider: provider.into(),
                day,
                month: MONTH,
                input_tokens,
                output_tokens: 10,
                cost_micro_usd: cost,
            };
        }
        change
    };
    finish(
        &store,
        1,
        vec![
            spend(ADA, "local", DAY, 100, 1),
            spend(ADA, "backup", DAY, 50, 2),
            spend(ADA, "local", DAY + 1, 7, 4),
            spend(BOB, "local", DAY, 1_000, 8),
        ],
    )
    .await;
    let (day, month) = store.usage_of(ADA, DAY, MONTH).unwrap();
    assert_eq!(
        day,
        Usage {
            input_tokens: 150,
            output_tokens: 20,
            turns: 2,
            cost_micro_usd: 3
        }
    );
    assert_eq!(
        month,
        Usage {
            input_tokens: 157,
            output_tokens: 30,
            turns: 3,
            cost_micro_usd: 7
        }
    );
    assert_eq!(
        store.usage_of(ADA, DAY + 2, MONTH + 1).unwrap(),
        (Usage::default(), Usage::default())
    );
    assert_eq!(
        store.usage_of(BOB, DAY, MONTH).unwrap().0.input_tokens,
        1_000
    );

    let providers = |from, to| -> Vec<(String, u32, u64)> {
        store
            .provider_usage(from, to)
            .unwrap()
            .into_iter()
            .map(|(name, day, usage)| (name, day, usage.input_tokens))
            .collect()
    };
    assert_eq!(
        providers(DAY, DAY + 1),
        [
            ("backup".to_owned(), DAY, 50),
            ("local".to_owned(), DAY, 1_100),
            ("local".to_owned(), DAY + 1, 7),
        ]
    );
    assert_eq!(
        providers(DAY + 1, u32::MAX),
        [("local".to_owned(), DAY + 1, 7)]
    );
    assert!(providers(0, DAY - 1).is_empty());
    assert!(providers(DAY + 1, DAY).is_empty());
}

/// A turn that does not decode is an error naming its table and key, never a panic or
/// a silent gap; `/forget` keeps it (whose it is cannot be told) and moves it with the
/// rest.
#[tokio::test]
async fn a_damaged_turn_is_named_and_kept() {
    const RAW_TURNS: redb::TableDefinition<(i64, i64, u32, u32), &[u8]> =
        redb::TableDefinition::new("turns");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    finish(&store, 1, vec![exchange(GROUP, 1, ADA, "ada", 1_000)]).await;
    finish(&store, 2, vec![exchange(GROUP, 1, BOB, "bob", 1_010)]).await;
    drop(store);
    {
        let db = redb::Database::open(dir.path().join(FILE_NAME)).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(RAW_TURNS)
            .unwrap()
            .insert((-100, 0, 1, 3), [0xee, 1, 2].as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let err = store.turns(GROUP, 1, 0).expect_err("damaged");
    assert!(
        matches!(&err, StoreError::CorruptValue { table, key, .. }
            if table == "turns" && key == "(-100, 0, 1, 3)"),
        "{err:?}"
    );
    finish(&store, 3, vec![ConversationChange::Forget { user_id: ADA }]).await;
    let err = store.turns(GROUP, 1, 1).expect_err("still there");
    assert!(
        err.to_string().contains("(-100, 0, 1, 1)"),
        "moved down: {err}"
    );
    let dialog = store.dialog(GROUP).unwrap().unwrap();
    assert_eq!(dialog.next_turn, 2, "Bob's question and the damaged turn");
}

/// A backup copies the conversation tables too (every table is in the one list), the
/// provider names of the usage keys included.
#[tokio::test]
async fn a_backup_carries_the_conversations() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    finish(
        &store,
        1,
        vec![
            exchange(GROUP, 1, ADA, "one", 1_000),
            ConversationChange::Choose {
                user_id: ADA,
                personality: "poet".into(),
            },
        ],
    )
    .await;
    let copy_dir = tempfile::tempdir().unwrap();
    store.backup(&copy_dir.path().join(FILE_NAME)).unwrap();
    let copy = Store::open(copy_dir.path()).unwrap();
    assert_eq!(copy.dialog(GROUP).unwrap(), store.dialog(GROUP).unwrap());
    assert_eq!(copy.turns(GROUP, 1, 0).unwrap().len(), 2);
    assert_eq!(copy.personality_of(ADA).unwrap().as_deref(), Some("poet"));
    assert_eq!(
        copy.provider_usage(DAY, DAY).unwrap(),
        store.provider_usage(DAY, DAY).unwrap()
    );
    assert_eq!(copy.conversations_of(ADA).unwrap().len(), 1);
}
