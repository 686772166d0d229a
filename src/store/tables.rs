//! Every table of the store, typed, in one place.
//!
//! Keys are plain integers; values are records in the versioned encoding of
//! [`super::codec`]. A table's name and types change only with a migration.

use redb::TableDefinition;

/// Small settings of the store itself, keyed by [`MetaKey`].
pub const META: TableDefinition<u32, &[u8]> = TableDefinition::new("meta");
/// Telegram user id → `UserRecord`.
pub const USERS: TableDefinition<i64, &[u8]> = TableDefinition::new("users");
/// (chat id, user id) → `Session`: a conversation waiting for the user's next message.
pub const SESSIONS: TableDefinition<(i64, i64), &[u8]> = TableDefinition::new("sessions");
/// update id → raw JSON of an update received but not yet finished.
pub const INBOX: TableDefinition<i64, &[u8]> = TableDefinition::new("inbox");
/// update id → unix seconds when it was finished; a redelivered id is skipped.
pub const PROCESSED: TableDefinition<i64, i64> = TableDefinition::new("processed");
/// sequence → `MalformedUpdate`: bodies that did not parse, kept for inspection.
pub const MALFORMED: TableDefinition<u64, &[u8]> = TableDefinition::new("malformed");
/// sequence → `Event`, append-only analytics.
pub const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// sequence → `OutboxEntry`: an action committed but not yet accepted by Telegram.
pub const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");

/// (model digest, text digest) → the text's embedding as little-endian f32s: FAQ
/// questions are embedded once per model, not at every start.
pub const EMBEDDINGS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("embeddings");

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
}
