//! Live calls: what a slow handler shows while it works — a typing indicator, a draft
//! that grows as an answer streams, a message edited as it is written.
//!
//! They bypass the outbox on purpose. They are worth nothing after the moment has passed,
//! so they are never stored, never retried and, when a flood limit says "not now", skipped
//! rather than queued; what the user must end up with always goes through the outbox.

use crate::telegram::methods::{EditMessageText, SendChatAction, SendMessage, SendMessageDraft};

/// One live call.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LiveCall<'a> {
    Typing(&'a SendChatAction),
    Draft(&'a SendMessageDraft),
    /// The first part of an answer edited in place later (chats without drafts).
    Send(&'a SendMessage),
    Edit(&'a EditMessageText),
}

impl LiveCall<'_> {
    pub(crate) fn method(&self) -> &'static str {
        match self {
            LiveCall::Typing(_) => "sendChatAction",
            LiveCall::Draft(_) => "sendMessageDraft",
            LiveCall::Send(_) => "sendMessage",
            LiveCall::Edit(_) => "editMessageText",
        }
    }

    pub(crate) fn chat_id(&self) -> i64 {
        match self {
            LiveCall::Typing(c) => c.chat_id,
            LiveCall::Draft(c) => c.chat_id,
            LiveCall::Send(c) => c.chat_id,
            LiveCall::Edit(c) => c.chat_id,
        }
    }

    /// Whether the call puts a message in the chat, and so counts against the chat's
    /// flood limit like the outbox's calls do. Drafts and chat actions leave nothing.
    pub(crate) fn writes(&self) -> bool {
        matches!(self, LiveCall::Send(_) | LiveCall::Edit(_))
    }

    pub(crate) fn body(&self) -> Vec<u8> {
        // Plain structs of strings and numbers: serialization cannot fail.
        match self {
            LiveCall::Typing(c) => serde_json::to_vec(c),
            LiveCall::Draft(c) => serde_json::to_vec(c),
            LiveCall::Send(c) => serde_json::to_vec(c),
            LiveCall::Edit(c) => serde_json::to_vec(c),
        }
        .expect("live call parameters always serialize")
    }
}

/// What became of a live call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shown {
    /// Telegram took it; a sent message's id comes back.
    Done { message_id: Option<i64> },
    /// A flood limit (or a pause after a 429) said not now.
    Skipped,
    /// Telegram refused it with this status: 404 for a method this server does not
    /// have (no drafts before Bot API 9.5), 400 for a chat where drafts are not
    /// allowed, 403 for a user who blocked the bot…
    Refused { code: u16 },
    /// It failed this time (network, 5xx).
    Failed,
}

/// Where live calls go: the sender, which knows the flood limits.
#[async_trait::async_trait]
pub(crate) trait Live: Send + Sync {
    async fn show(&self, call: LiveCall<'_>) -> Shown;
}
