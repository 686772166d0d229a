//! The store on a real redb file: finishing is atomic and exactly-once, and the file's
//! edge cases (newer version, corruption, a second process) have clear outcomes.

use edgebot::calendar::{UnixMillis, UnixSecs};
use edgebot::engine::outbound::{action_of, call_of};
use edgebot::store::records::{Event, EventKind, UserDelta};
use edgebot::store::{Appended, FILE_NAME, Finish, Finished, Store, StoreError};
use edgebot::telegram::methods::Action;

fn delta(id: i64, messages: u64) -> UserDelta {
    let mut d = UserDelta::new(id, UnixSecs(1_000));
    d.messages = messages;
    d
}

#[tokio::test]
async fn finishing_is_exactly_once_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.append_inbox(5, "{}".into()).await.unwrap(),
        Appended::New
    );
    assert_eq!(
        store.append_inbox(5, "{}".into()).await.unwrap(),
        Appended::Duplicate
    );
    assert_eq!(store.pending_inbox().unwrap().len(), 1);
    let finish = Finish {
        update_id: 5,
        finished_at: UnixSecs(1_000),
        users: vec![delta(1, 1)],
        events: vec![],
        session: None,
        conversation: vec![],
        outbox: vec![call_of(&Action::send(1, "hi"))],
    };
    let Finished::Committed(entries) = store.finish(finish.clone()).await.unwrap() else {
        panic!("first finish commits")
    };
    assert_eq!(entries.len(), 1);
    assert_eq!(
        store.finish(finish).await.unwrap(),
        Finished::AlreadyFinished
    );
    assert_eq!(store.user(1).unwrap().unwrap().message_count, 1);
    assert!(store.pending_inbox().unwrap().is_empty());
    assert_eq!(
        store.append_inbox(5, "{}".into()).await.unwrap(),
        Appended::Duplicate,
        "a finished update is a duplicate too"
    );
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    let outbox = store.pending_outbox().unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(action_of(&outbox[0].call).unwrap(), Action::send(1, "hi"));
    store.outbox_done(outbox[0].seq).await.unwrap();
    assert!(store.pending_outbox().unwrap().is_empty());
}

/// A sent call's removal costs no commit of its own: it rides on the next one, whatever
/// that carries, and a store that closes first removes it as it closes.
#[tokio::test]
async fn settled_calls_leave_the_outbox_with_the_next_commit_or_at_close() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let calls = vec![
        call_of(&Action::send(1, "a")),
        call_of(&Action::send(1, "b")),
        call_of(&Action::send(2, "c")),
    ];
    let entries = store.enqueue_outbox(calls).await.unwrap();
    store.outbox_settled(entries[0].seq);
    assert_eq!(
        store.pending_outbox().unwrap().len(),
        3,
        "not yet committed"
    );
    let finish = Finish {
        update_id: 9,
        finished_at: UnixSecs(1_700_000_000),
        ..Finish::default()
    };
    store.finish(finish).await.unwrap();
    let left: Vec<u64> = store
        .pending_outbox()
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(
        left,
        [entries[1].seq, entries[2].seq],
        "rode on the update's commit"
    );

    store.outbox_settled(entries[1].seq);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    let left: Vec<u64> = store
        .pending_outbox()
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(left, [entries[2].seq], "removed as the store closed");
    store.outbox_settled(entries[2].seq);
    store.flush_settled().await.unwrap();
    assert!(store.pending_outbox().unwrap().is_empty());
}

#[tokio::test]
async fn concurrent_deltas_of_one_user_are_all_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .finish(Finish {
                        update_id: i,
                        finished_at: UnixSecs(1_000),
                        users: vec![delta(9, 1)],
                        ..Finish::default()
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.user(9).unwrap().unwrap().message_count, 200);
    let stats = store.stats().unwrap();
    assert_eq!(stats.processed, 200);
    assert_eq!(stats.events, 1, "one user_joined event");
}

#[tokio::test]
async fn referrals_are_credited_once_to_an_existing_referrer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.update_user(delta(1, 0)).await.unwrap();
    let mut referred = delta(2, 1);
    referred.referrer = Some(1);
    store.update_user(referred.clone()).await.unwrap();
    store.update_user(referred).await.unwrap();
    let mut self_referred = delta(3, 1);
    self_referred.referrer = Some(3);
    store.update_user(self_referred).await.unwrap();
    assert_eq!(store.user(1).unwrap().unwrap().referrals, 1);
    assert_eq!(store.user(2).unwrap().unwrap().referrer, Some(1));
    assert_eq!(store.user(3).unwrap().unwrap().referrer, None);
}

#[tokio::test]
async fn deleting_a_user_removes_their_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.update_user(delta(1, 0)).await.unwrap();
    store.update_user(delta(2, 0)).await.unwrap();
    store
        .append_events(vec![Event {
            at_ms: UnixMillis(0),
            user_id: Some(1),
            chat_id: None,
            kind: EventKind::BlockedBot,
        }])
        .await
        .unwrap();
    assert!(store.delete_user(1).await.unwrap());
    assert!(!store.delete_user(1).await.unwrap());
    assert!(store.user(1).unwrap().is_none());
    let events = store.events(0, 100).unwrap();
    assert!(events.iter().all(|(_, e)| e.user_id != Some(1)));
    assert_eq!(events.len(), 1, "user 2 joined");
}

#[tokio::test]
async fn backup_is_a_consistent_openable_copy() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.update_user(delta(1, 4)).await.unwrap();
    let copy_dir = tempfile::tempdir().unwrap();
    store.backup(&copy_dir.path().join(FILE_NAME)).unwrap();
    assert!(
        store.backup(&copy_dir.path().join(FILE_NAME)).is_err(),
        "never overwrites"
    );
    let copy = Store::open(copy_dir.path()).unwrap();
    assert_eq!(copy.user(1).unwrap().unwrap().message_count, 4);
}

/// A new store in `dir` whose schema version is then overwritten with `version`, as
/// another build (or damage) would leave it.
fn store_with_schema_version(dir: &std::path::Path, version: &[u8]) {
    drop(Store::open(dir).unwrap());
    let db = redb::Database::open(dir.join(FILE_NAME)).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(edgebot::store::tables::META)
        .unwrap()
        .insert(
            edgebot::store::tables::MetaKey::SchemaVersion as u32,
            version,
        )
        .unwrap();
    txn.commit().unwrap();
}

#[test]
fn a_newer_schema_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    store_with_schema_version(dir.path(), &99u32.to_le_bytes());
    let before = std::fs::read(&path).unwrap();
    let err = Store::open(dir.path()).err().expect("refused");
    assert!(
        matches!(err, StoreError::NewerSchema { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("newer edgebot"), "{err}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the file was modified"
    );
}

/// A schema version that is not four bytes is damage, not a version: the file is
/// corrupt (it used to read as schema 4294967295, "written by a newer edgebot").
#[test]
fn a_damaged_schema_version_is_corrupt_not_newer() {
    let dir = tempfile::tempdir().unwrap();
    store_with_schema_version(dir.path(), &[0xff, 0xff]);
    let err = Store::open(dir.path()).err().expect("refused");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(!err.to_string().contains("newer"), "{err}");
    assert!(err.to_string().contains("SchemaVersion"), "{err}");
}

#[test]
fn a_corrupt_file_is_reported_and_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let garbage: Vec<u8> = (0..64 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&path, &garbage).unwrap();
    let err = Store::open(dir.path()).err().expect("refused");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("left as it is"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), garbage);
}

#[test]
fn a_second_process_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::open(dir.path()).unwrap();
    let err = Store::open(dir.path()).err().expect("refused");
    assert!(matches!(err, StoreError::InUse { .. }), "{err}");
}

/// A value whose version byte no edgebot ever wrote is damage, not the future: it is
/// reported as corrupt, naming its table and key. A byte just above this build's is a
/// newer layout.
#[tokio::test]
async fn an_unreadable_version_byte_is_corrupt_not_newer() {
    use redb::ReadableTable as _;
    const RAW_USERS: redb::TableDefinition<i64, &[u8]> = redb::TableDefinition::new("users");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let store = Store::open(dir.path()).unwrap();
    store.update_user(delta(41, 0)).await.unwrap();
    store.update_user(delta(42, 0)).await.unwrap();
    drop(store);
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut users = txn.open_table(RAW_USERS).unwrap();
            let mut garbage = users.get(41).unwrap().unwrap().value().to_vec();
            garbage[0] = 0xee;
            users.insert(41, garbage.as_slice()).unwrap();
            let mut newer = users.get(42).unwrap().unwrap().value().to_vec();
            newer[0] += 1;
            users.insert(42, newer.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let err = store.user(41).expect_err("unreadable");
    assert!(
        matches!(&err, StoreError::CorruptValue { table, key, .. } if table == "users" && key == "41"),
        "{err:?}"
    );
    let corrupt = err.to_string();
    assert!(corrupt.contains("corrupt"), "{corrupt}");
    assert!(!corrupt.contains("newer"), "{corrupt}");
    assert!(
        corrupt.contains("users") && corrupt.contains("41"),
        "names the table and the key: {corrupt}"
    );
    let err = store.user(42).expect_err("unreadable");
    assert!(
        matches!(&err, StoreError::NewerValue { table, key, .. } if table == "users" && key == "42"),
        "{err:?}"
    );
    let newer = err.to_string();
    assert!(newer.contains("newer edgebot"), "{newer}");
    assert!(
        newer.contains("users") && newer.contains("42"),
        "names the table and the key: {newer}"
    );
}

/// The tables schema 5 added for LLM conversations.
const SCHEMA_5_TABLES: [&str; 6] = [
    "dialogs",
    "turns",
    "user_dialogs",
    "personality_choices",
    "user_usage",
    "provider_usage",
];

/// A file of schema 4 (before LLM conversations) opens, is migrated to schema 5, which
/// creates the conversation tables, and keeps what it held.
#[tokio::test]
async fn a_schema_4_file_gains_the_conversation_tables() {
    use edgebot::store::records::DialogKey;
    use redb::{ReadableDatabase as _, TableHandle as _};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let store = Store::open(dir.path()).unwrap();
    store.update_user(delta(7, 2)).await.unwrap();
    drop(store);
    {
        // What schema 4 left: the same file without the new tables.
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let new: Vec<_> = txn
            .list_tables()
            .unwrap()
            .filter(|t| SCHEMA_5_TABLES.contains(&t.name()))
            .collect();
        assert_eq!(new.len(), SCHEMA_5_TABLES.len());
        for table in new {
            assert!(txn.delete_table(table).unwrap());
        }
        txn.open_table(edgebot::store::tables::META)
            .unwrap()
            .insert(
                edgebot::store::tables::MetaKey::SchemaVersion as u32,
                4u32.to_le_bytes().as_slice(),
            )
            .unwrap();
        txn.commit().unwrap();
        let txn = db.begin_read().unwrap();
        assert!(
            txn.list_tables()
                .unwrap()
                .all(|t| !SCHEMA_5_TABLES.contains(&t.name()))
        );
    }
    let store = Store::open(dir.path()).unwrap();
    let stats = store.stats().unwrap();
    assert_eq!(stats.schema_version, 5);
    assert_eq!(stats.users, 1);
    assert_eq!(
        (
            stats.dialogs,
            stats.turns,
            stats.personality_choices,
            stats.user_usage,
            stats.provider_usage
        ),
        (0, 0, 0, 0, 0)
    );
    assert_eq!(store.user(7).unwrap().unwrap().message_count, 2);
    let key = DialogKey {
        chat_id: 7,
        thread_id: 0,
    };
    assert_eq!(store.dialog(key).unwrap(), None);
    assert!(store.turns(key, 1, 0).unwrap().is_empty());
    assert_eq!(store.personality_of(7).unwrap(), None);
    assert!(store.provider_usage(0, u32::MAX).unwrap().is_empty());
    assert!(store.conversations_of(7).unwrap().is_empty());
}

/// Copies the schema 1 file in `tests/fixtures/store-v1` (written by edgebot before the
/// outbox kept its own call records) into a fresh directory, since opening migrates it.
fn schema_1_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/store-v1")
        .join(FILE_NAME);
    std::fs::copy(fixture, dir.path().join(FILE_NAME)).unwrap();
    dir
}

/// A file written by the previous layout opens, is migrated once, and reads the same:
/// its records as they were, its outbox actions as the same calls.
#[tokio::test]
async fn a_schema_1_file_opens_migrated_and_reads_the_same() {
    use edgebot::store::records::{ConversationState, EventKind, Role, UserStatus};
    use edgebot::telegram::methods::{AnswerCallbackQuery, ReplyParameters, SendMessage};
    use edgebot::telegram::types::{InlineKeyboardButton, InlineKeyboardMarkup};

    let dir = schema_1_copy();
    let store = Store::open(dir.path()).unwrap();
    let stats = store.stats().unwrap();
    assert_eq!(stats.schema_version, edgebot::store::SCHEMA_VERSION);
    // Migrated through schema 5: the conversation tables are there, empty.
    assert_eq!((stats.dialogs, stats.turns, stats.user_usage), (0, 0, 0));
    assert_eq!(store.usage_of(42, 0, 0).unwrap().0.turns, 0);
    assert_eq!(
        (stats.users, stats.sessions, stats.inbox, stats.processed),
        (2, 1, 1, 2)
    );
    assert_eq!(
        (
            stats.outbox,
            stats.events,
            stats.malformed,
            stats.embeddings
        ),
        (3, 3, 1, 1)
    );

    let ada = store.user(42).unwrap().unwrap();
    assert_eq!(ada.username.as_deref(), Some("ada"));
    assert_eq!(ada.last_name.as_deref(), Some("Lovelace"));
    assert_eq!((ada.message_count, ada.referrals), (3, 1));
    assert_eq!(
        (ada.first_seen, ada.last_seen),
        (UnixSecs(1_700_000_000), UnixSecs(1_700_000_000))
    );
    assert_eq!((ada.role, ada.status), (Role::User, UserStatus::Active));
    let bob = store.user(43).unwrap().unwrap();
    assert_eq!((bob.first_name.as_str(), bob.referrer), ("Bob", Some(42)));
    let session = store
        .session(42, 42, UnixSecs(1_700_000_000))
        .unwrap()
        .unwrap();
    // Schema 4 gave sessions a service's part; the old conversation is kept as it was.
    assert_eq!(
        session.conversation,
        Some(ConversationState::AwaitingFeedback)
    );
    assert_eq!((session.internal_user_id, session.state), (None, None));
    assert_eq!(session.data, "{}");
    assert_eq!(session.expires_at, UnixSecs(1_700_000_900));
    let kinds: Vec<EventKind> = store
        .events(0, 10)
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            EventKind::UserJoined { referrer: None },
            EventKind::UserJoined { referrer: Some(42) },
            EventKind::Command {
                name: "start".into()
            },
        ]
    );
    // The times, now typed by unit, read as the bare numbers they were written as.
    let times: Vec<UnixMillis> = store
        .events(0, 10)
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.at_ms)
        .collect();
    assert_eq!(
        times,
        [
            UnixMillis(1_700_000_000_000),
            UnixMillis(1_700_000_100_000),
            UnixMillis(1_700_000_300_000)
        ]
    );
    let malformed = store.malformed(10).unwrap();
    assert_eq!(malformed.len(), 1);
    assert_eq!(malformed[0].1.raw, b"{nope");
    assert_eq!(malformed[0].1.received_at, UnixSecs(1_700_000_200));
    assert_eq!(
        store.pending_inbox().unwrap(),
        [(100, br#"{"update_id":100}"#.to_vec())]
    );
    assert_eq!(store.poll_offset().unwrap(), 102);
    assert_eq!(store.embedding(7, 8).unwrap(), Some(vec![0.5, -1.25, 3.0]));
    assert_eq!(
        store.webhook_secret().await.unwrap(),
        "4766663c650bcbc8ce24d4b0a10199c0fc4e718401ec49f7"
    );
    assert_eq!(store.next_console_update_id().await.unwrap(), 2);

    let outbox = store.pending_outbox().unwrap();
    let seen: Vec<(u64, i64, &str, Option<i64>)> = outbox
        .iter()
        .map(|e| (e.seq, e.update_id, e.call.method.as_str(), e.call.chat_id))
        .collect();
    assert_eq!(
        seen,
        [
            (1, 101, "sendMessage", Some(42)),
            (2, 101, "answerCallbackQuery", None),
            (3, 0, "sendMessage", Some(43)),
        ]
    );
    let button: InlineKeyboardButton =
        serde_json::from_value(serde_json::json!({"text": "Yes", "callback_data": "yes"})).unwrap();
    let actions: Vec<Action> = outbox.iter().map(|e| action_of(&e.call).unwrap()).collect();
    assert_eq!(
        actions,
        [
            Action::SendMessage(SendMessage {
                chat_id: 42,
                message_thread_id: None,
                text: "Hello, Ada\nline two".into(),
                parse_mode: None,
                reply_parameters: Some(ReplyParameters {
                    message_id: 7,
                    allow_sending_without_reply: true,
                }),
                reply_markup: Some(InlineKeyboardMarkup {
                    inline_keyboard: vec![vec![button]],
                }),
            }),
            Action::AnswerCallbackQuery(AnswerCallbackQuery {
                callback_query_id: "cq-1".into(),
                text: Some("done".into()),
                show_alert: false,
            }),
            Action::send(43, "from the admin"),
        ]
    );

    // New calls follow the migrated ones; reopening migrates nothing again.
    let more = store
        .enqueue_outbox(vec![call_of(&Action::send(42, "next"))])
        .await
        .unwrap();
    assert_eq!(more[0].seq, 4);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.pending_outbox().unwrap().len(), 4);
    assert_eq!(store.pending_outbox().unwrap()[..3], outbox[..]);
}

/// An outbox row of schema 1 that does not parse stops the migration: the file is
/// reported corrupt, naming the row, and nothing is written to it (the migration's
/// transaction never commits, so the file keeps schema 1 and the row as they were).
#[test]
fn a_damaged_schema_1_outbox_row_is_reported_and_left_as_it_is() {
    use redb::ReadableDatabase as _;
    const RAW_OUTBOX: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("outbox");
    let dir = schema_1_copy();
    let path = dir.path().join(FILE_NAME);
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(RAW_OUTBOX)
            .unwrap()
            .insert(2, b"\x01{\"update_id\":1,\"action\":".as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let err = Store::open(dir.path()).err().expect("refused");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("outbox key 2"), "{message}");
    assert!(message.contains("left as it is"), "{message}");

    let db = redb::Database::open(&path).unwrap();
    let txn = db.begin_read().unwrap();
    let meta = txn.open_table(edgebot::store::tables::META).unwrap();
    let version = meta
        .get(edgebot::store::tables::MetaKey::SchemaVersion as u32)
        .unwrap()
        .unwrap();
    assert_eq!(version.value(), 1u32.to_le_bytes(), "still schema 1");
    let outbox = txn.open_table(RAW_OUTBOX).unwrap();
    let row = outbox.get(2).unwrap().unwrap();
    assert!(row.value().starts_with(b"\x01{"), "the row as it was");
    let first = outbox.get(1).unwrap().unwrap();
    assert!(
        first.value().starts_with(b"\x01{"),
        "the good rows as they were: no row was rewritten"
    );
}
