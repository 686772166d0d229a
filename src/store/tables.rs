//! Every table of the store, typed, in one list.
//!
//! Keys are plain integers (or tuples of them), but for account names, session digests
//! and the provider names of `provider_usage`. Records are [`Versioned`] values (see
//! [`super::codec`]); bytes the store does not interpret (a raw update, an embedding's
//! floats, the small settings of [`META`]) stay bytes and are read by the one module that
//! owns them. A table's name and types change only with a migration.
//!
//! The list below is the only one: it defines the constants, the [`Tables`] the writer
//! opens in each transaction, and what migrations create, `db stats` counts and a backup
//! copies, so a table added here is added to all of them.

use super::StoreError;
use super::codec::Versioned;
use super::records::{
    Account, AuditEntry, Dialog, Event, MalformedUpdate, OutboxEntry, PanelSession, Session,
    TurnRecord, Usage, UserRecord,
};
use super::writer::Sequences;
use redb::{
    ReadTransaction, ReadableTable, ReadableTableMetadata, Table, TableDefinition, WriteTransaction,
};

macro_rules! tables {
    ($(
        $(#[$doc:meta])*
        $vis:vis $field:ident: $konst:ident = $name:literal, $key:ty => $value:ty;
    )*) => {
        $(
            $(#[$doc])*
            $vis const $konst: TableDefinition<'static, $key, $value> = TableDefinition::new($name);
        )*

        /// Every table, opened once per write transaction, plus the sequence counters:
        /// what a job of the writer works on. The store's modules read and write it
        /// through their typed helpers.
        pub struct Tables<'txn> {
            $(pub(super) $field: Table<'txn, $key, $value>,)*
            pub(super) seq: &'txn mut Sequences,
        }

        impl<'txn> Tables<'txn> {
            /// Opens every table in `txn`, creating those that are missing.
            pub(super) fn open(
                txn: &'txn WriteTransaction,
                seq: &'txn mut Sequences,
            ) -> Result<Tables<'txn>, StoreError> {
                Ok(Tables {
                    $($field: txn.open_table($konst)?,)*
                    seq,
                })
            }
        }

        /// The rows of each table in one snapshot.
        // Not every count is shown (`meta`'s is not), but every table is counted.
        #[allow(dead_code)]
        pub(super) struct Counts {
            $(pub(super) $field: u64,)*
        }

        pub(super) fn counts(txn: &ReadTransaction) -> Result<Counts, StoreError> {
            Ok(Counts {
                $($field: txn.open_table($konst)?.len()?,)*
            })
        }

        /// Creates every table that does not exist yet.
        pub(super) fn create_all(txn: &WriteTransaction) -> Result<(), StoreError> {
            $(txn.open_table($konst)?;)*
            Ok(())
        }

        /// Copies every table, byte for byte (a damaged value is copied, not judged).
        pub(super) fn copy_all(
            from: &ReadTransaction,
            to: &WriteTransaction,
        ) -> Result<(), StoreError> {
            $({
                let source = from.open_table($konst)?;
                let mut target = to.open_table($konst)?;
                for entry in source.iter()? {
                    let (key, value) = entry?;
                    target.insert(key.value(), value.value())?;
                }
            })*
            Ok(())
        }
    };
}

// `META` is public for the tests that write a file of another version by hand; the
// others are the store's own.
tables! {
    /// Small settings of the store itself, keyed by [`MetaKey`].
    pub meta: META = "meta", u32 => &'static [u8];
    /// Telegram user id → what the bot knows about the user.
    pub(crate) users: USERS = "users", i64 => Versioned<UserRecord>;
    /// (chat id, user id) → a conversation waiting for the user's next message.
    pub(crate) sessions: SESSIONS = "sessions", (i64, i64) => Versioned<Session>;
    /// update id → raw JSON of an update received but not yet finished.
    pub(crate) inbox: INBOX = "inbox", i64 => &'static [u8];
    /// update id → unix seconds when it was finished; a redelivered id is skipped.
    pub(crate) processed: PROCESSED = "processed", i64 => i64;
    /// sequence → a body that did not parse, kept for inspection.
    pub(crate) malformed: MALFORMED = "malformed", u64 => Versioned<MalformedUpdate>;
    /// sequence → an analytics event, append-only.
    pub(crate) events: EVENTS = "events", u64 => Versioned<Event>;
    /// sequence → a call committed but not yet accepted by Telegram.
    pub(crate) outbox: OUTBOX = "outbox", u64 => Versioned<OutboxEntry>;
    /// (model digest, text digest) → the text's embedding as little-endian f32s: FAQ
    /// questions are embedded once per model, not at every start.
    pub(crate) embeddings: EMBEDDINGS = "embeddings", (u64, u64) => &'static [u8];
    /// account name → an account of the admin panel and API.
    pub(crate) accounts: ACCOUNTS = "accounts", &'static str => Versioned<Account>;
    /// SHA-256 of a session cookie → the signed-in panel session.
    pub(crate) panel_sessions: PANEL_SESSIONS = "panel_sessions", [u8; 32] => Versioned<PanelSession>;
    /// sequence → what an admin did, append-only.
    pub(crate) audit: AUDIT = "audit", u64 => Versioned<AuditEntry>;
    /// (chat id, thread id) → the current LLM dialog there (schema 5).
    pub(crate) dialogs: DIALOGS = "dialogs", (i64, i64) => Versioned<Dialog>;
    /// (chat id, thread id, dialog number, turn index) → one turn of a dialog.
    pub(crate) turns: TURNS = "turns", (i64, i64, u32, u32) => Versioned<TurnRecord>;
    /// (user id, chat id, thread id) → (): the dialogs a user spoke in, for `/forget` and
    /// the export.
    pub(crate) user_dialogs: USER_DIALOGS = "user_dialogs", (i64, i64, i64) => ();
    /// user id → the name of the personality the user chose.
    pub(crate) personality_choices: PERSONALITY_CHOICES = "personality_choices", i64 => Versioned<String>;
    /// (user id, period kind: 0 a day, 1 a month, period) → the user's LLM usage in it.
    pub(crate) user_usage: USER_USAGE = "user_usage", (i64, u8, u32) => Versioned<Usage>;
    /// (day, provider name) → the provider's usage that day. The day comes first so that
    /// a span of days is one range.
    pub(crate) provider_usage: PROVIDER_USAGE = "provider_usage", (u32, &'static str) => Versioned<Usage>;
}

/// The keys of [`META`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum MetaKey {
    /// u32 little-endian: the layout version of this file.
    SchemaVersion = 1,
    /// UTF-8: the webhook secret generated once, when none is configured.
    WebhookSecret = 2,
    /// i64 little-endian: the next update id the console transport hands out.
    ConsoleUpdateId = 3,
    /// 32 random bytes: the key that signs the admin API's tokens, made on first use.
    TokenKey = 4,
}
