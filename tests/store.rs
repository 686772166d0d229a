//! The store on a real redb file: finishing is atomic and exactly-once, and the file's
//! edge cases (newer version, corruption, a second process) have clear outcomes.

use edgebot::store::records::{Event, EventKind, UserDelta};
use edgebot::store::{Appended, FILE_NAME, Finish, Finished, Store, StoreError};
use edgebot::telegram::methods::Action;

fn delta(id: i64, messages: u64) -> UserDelta {
    let mut d = UserDelta::new(id, 1_000);
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
        finished_at: 1_000,
        users: vec![delta(1, 1)],
        events: vec![],
        session: None,
        outbox: vec![Action::send(1, "hi")],
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
    assert_eq!(outbox[0].action, Action::send(1, "hi"));
    store.outbox_done(outbox[0].seq).await.unwrap();
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
                        finished_at: 1_000,
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
            at_ms: 0,
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

#[test]
fn a_newer_schema_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    drop(Store::open(dir.path()).unwrap());
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(edgebot::store::tables::META)
            .unwrap()
            .insert(
                edgebot::store::tables::MetaKey::SchemaVersion as u32,
                99u32.to_le_bytes().as_slice(),
            )
            .unwrap();
        txn.commit().unwrap();
    }
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
