//! The outbox ([`OUTBOX`]): calls committed but not yet accepted by Telegram, each an
//! [`OutboxEntry`] keyed by its sequence number, and the migration of the rows schema 1
//! kept in the wire model's JSON.

use super::Store;
use super::codec::{self, CodecError, Stored};
use super::error::{StoreError, decoded};
use super::records::{OutboxCall, OutboxEntry};
use super::tables::{OUTBOX, Tables};
use super::writer::Sequences;
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

impl Tables<'_> {
    /// Appends `calls`, caused by update `update_id` (0 for none), in order.
    pub(super) fn enqueue_calls(
        &mut self,
        update_id: i64,
        calls: &[OutboxCall],
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        calls
            .iter()
            .map(|call| {
                let entry = OutboxEntry {
                    seq: Sequences::take(&mut self.seq.outbox),
                    update_id,
                    call: call.clone(),
                };
                self.outbox.insert(entry.seq, Stored::new(&entry))?;
                Ok(entry)
            })
            .collect()
    }

    /// Removes calls that are settled (see [`Store::outbox_settled`]).
    pub(super) fn remove_settled(&mut self, seqs: &[u64]) -> Result<(), StoreError> {
        for &seq in seqs {
            self.outbox.remove(seq)?;
        }
        Ok(())
    }
}

impl Store {
    /// Commits calls that no update caused (an admin's message) to the outbox.
    pub async fn enqueue_outbox(
        &self,
        calls: Vec<OutboxCall>,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        self.write(move |t| t.enqueue_calls(0, &calls)).await
    }

    /// Marks a call Telegram accepted (or permanently refused) for removal from the
    /// outbox. The removal rides on the store's next commit, whatever it carries; it is
    /// lazily durable: after a crash a call may be sent once more, never lost.
    pub fn outbox_settled(&self, seq: u64) {
        if let Ok(writer) = self.writer() {
            writer.settled().push(seq);
        }
    }

    /// Resolves once every removal [`Store::outbox_settled`] marked before it is
    /// committed. Always a transaction of its own: a list found empty may only mean that a
    /// commit in progress took it, and that commit ends before this one.
    pub async fn flush_settled(&self) -> Result<(), StoreError> {
        self.write_lazily(|_| Ok(())).await
    }

    /// Whether removals wait for a commit to carry them.
    pub(crate) fn has_settled(&self) -> bool {
        self.writer()
            .is_ok_and(|writer| !writer.settled().is_empty())
    }

    /// Removes a call Telegram accepted (or permanently refused) from the outbox now.
    /// Lazily durable: after a crash a call may be sent once more, never lost.
    pub async fn outbox_done(&self, seq: u64) -> Result<(), StoreError> {
        self.outbox_settled(seq);
        self.flush_settled().await
    }

    /// Calls committed but not yet sent, in commit order.
    pub fn pending_outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        let txn = self.db().begin_read()?;
        let table = txn.open_table(OUTBOX)?;
        table
            .iter()?
            .map(|entry| {
                let (k, v) = entry?;
                let mut entry = decoded(OUTBOX, k.value(), v.value())?;
                entry.seq = k.value();
                Ok(entry)
            })
            .collect()
    }
}

/// The outbox as schema 1 typed it: the same table, read as bytes.
const OUTBOX_V1: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");

/// Schema 1 → 2: an outbox row was the version byte and the JSON of
/// `{"update_id": …, "action": {"method": …, …parameters}}`, the action being the wire
/// model's internally tagged enum. It becomes an [`OutboxEntry`]: the same parameters,
/// with the method and the chat (the `chat_id` parameter, which is what every action
/// that writes to a chat names it by) beside them. A row that does not parse stops the
/// migration, which then writes nothing: the file is reported corrupt and left as it is.
pub(super) fn calls_from_actions(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut table = txn.open_table(OUTBOX_V1)?;
    // Unsent calls only: few rows, so they are read whole before being rewritten.
    let rows = table
        .iter()?
        .map(|row| {
            let (k, v) = row?;
            Ok((k.value(), v.value().to_vec()))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    for (seq, bytes) in rows {
        let entry =
            entry_of_v1(seq, &bytes).map_err(|e| StoreError::unreadable(OUTBOX_V1, seq, e))?;
        table.insert(seq, codec::encode(&entry).as_slice())?;
    }
    Ok(())
}

fn entry_of_v1(seq: u64, bytes: &[u8]) -> Result<OutboxEntry, CodecError> {
    #[derive(serde::Deserialize)]
    struct V1 {
        update_id: i64,
        action: serde_json::Map<String, serde_json::Value>,
    }
    let json = match bytes.split_first() {
        None => return Err(CodecError::Empty),
        Some((1, json)) => json,
        Some((&v, _)) => return Err(CodecError::NotAVersion(v)),
    };
    let V1 {
        update_id,
        mut action,
    } = serde_json::from_slice(json).map_err(|e| CodecError::Json(e.to_string()))?;
    let method = match action.remove("method") {
        Some(serde_json::Value::String(method)) => method,
        _ => return Err(CodecError::Json("the action names no method".into())),
    };
    let chat_id = action.get("chat_id").and_then(serde_json::Value::as_i64);
    let params = serde_json::to_vec(&action).map_err(|e| CodecError::Json(e.to_string()))?;
    Ok(OutboxEntry {
        seq,
        update_id,
        call: OutboxCall {
            method,
            chat_id,
            params,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_1_row_becomes_the_same_call() {
        let row = br#"{"update_id":5,"action":{"method":"sendMessage","chat_id":-7,"text":"hi"}}"#;
        let entry = entry_of_v1(3, &[[1].as_slice(), row].concat()).unwrap();
        assert_eq!((entry.seq, entry.update_id), (3, 5));
        assert_eq!(entry.call.method, "sendMessage");
        assert_eq!(entry.call.chat_id, Some(-7));
        let params: serde_json::Value = serde_json::from_slice(&entry.call.params).unwrap();
        assert_eq!(params, serde_json::json!({"chat_id": -7, "text": "hi"}));

        let answer =
            br#"{"update_id":0,"action":{"method":"answerCallbackQuery","callback_query_id":"q"}}"#;
        let entry = entry_of_v1(4, &[[1].as_slice(), answer].concat()).unwrap();
        assert_eq!(entry.call.chat_id, None, "writes to no chat");
    }

    #[test]
    fn a_damaged_schema_1_row_is_an_error() {
        for bytes in [
            &b""[..],
            b"\x01{",
            b"\x01{\"update_id\":1,\"action\":{}}",
            b"\x02{\"update_id\":1,\"action\":{\"method\":\"x\"}}",
        ] {
            assert!(entry_of_v1(1, bytes).is_err(), "{bytes:?}");
        }
    }
}
