//! Showing an answer while it is written: a draft that grows in a private chat
//! (`sendMessageDraft`), or elsewhere a message sent once and edited, each at a bounded
//! rate. What is shown here is ephemeral; the finished answer goes through the outbox.

use super::MESSAGE_LIMIT;
use crate::engine::live::{Live, LiveCall, Shown};
use crate::llm::Sink;
use crate::telegram::markup;
use crate::telegram::methods::{
    EditMessageText, ParseMode, SendChatAction, SendMessage, SendMessageDraft,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How the answer is shown while it streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Showing {
    /// Drafts under this id (private chats, on a server that has them).
    Drafts { draft_id: i64 },
    /// A message sent with the first pieces, then edited; its id once sent.
    Edits { message_id: Option<i64> },
    /// Nothing (the console, or no live handle).
    Nothing,
}

/// The sink a conversation's answer streams into.
pub(crate) struct Stream<'a> {
    live: Option<&'a dyn Live>,
    chat_id: i64,
    topic: Option<i64>,
    pub(crate) showing: Showing,
    interval: Duration,
    text: String,
    /// What was last shown, so an unchanged text is not sent again (Telegram refuses
    /// an edit that changes nothing).
    shown: String,
    last_shown: Option<Instant>,
    /// When the first piece arrived and when it was first shown, for the metrics.
    pub(crate) first_piece_at: Option<Instant>,
    pub(crate) first_shown_at: Option<Instant>,
    /// Set once the server answered a draft with 404: it has no drafts, so every chat
    /// streams by edits from then on.
    no_drafts: &'a AtomicBool,
    /// Set once anything streamed, which stops the typing indicator.
    pub(crate) started: &'a AtomicBool,
}

impl<'a> Stream<'a> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        live: Option<&'a dyn Live>,
        chat_id: i64,
        topic: Option<i64>,
        showing: Showing,
        interval: Duration,
        no_drafts: &'a AtomicBool,
        started: &'a AtomicBool,
    ) -> Stream<'a> {
        let showing = match showing {
            Showing::Drafts { .. } if no_drafts.load(Ordering::Relaxed) => {
                Showing::Edits { message_id: None }
            }
            other => other,
        };
        Stream {
            live,
            chat_id,
            topic,
            showing: if live.is_some() {
                showing
            } else {
                Showing::Nothing
            },
            interval,
            text: String::new(),
            shown: String::new(),
            last_shown: None,
            first_piece_at: None,
            first_shown_at: None,
            no_drafts,
            started,
        }
    }

    /// A typing indicator, while nothing has streamed yet.
    pub(crate) async fn typing(&self) {
        if !self.started.load(Ordering::Relaxed) {
            typing(self.live, self.chat_id, self.topic).await;
        }
    }

    /// What the stream shows now: the piece being written (a draft), or the first
    /// message's worth (an edited message, which holds the first piece for good).
    fn view(&self) -> String {
        let mut pieces = markup::split(&self.text, MESSAGE_LIMIT);
        match self.showing {
            Showing::Drafts { .. } => pieces.pop().unwrap_or_default(),
            _ => pieces.into_iter().next().unwrap_or_default(),
        }
    }

    async fn show(&mut self) {
        let Some(live) = self.live else { return };
        let view = self.view();
        if view.is_empty() || view == self.shown {
            return;
        }
        let shown = match self.showing {
            Showing::Drafts { draft_id } => {
                let draft = SendMessageDraft {
                    chat_id: self.chat_id,
                    message_thread_id: self.topic,
                    draft_id,
                    text: view.clone(),
                    parse_mode: Some(ParseMode::Html),
                };
                let shown = live.show(LiveCall::Draft(&draft)).await;
                if let Shown::Refused { code } = shown {
                    // A server without the method has no drafts for anyone; any other
                    // refusal is about this chat, which streams by edits instead.
                    if code == 404 {
                        self.no_drafts.store(true, Ordering::Relaxed);
                    }
                    self.showing = Showing::Edits { message_id: None };
                }
                shown
            }
            Showing::Edits { message_id: None } => {
                let send = SendMessage {
                    chat_id: self.chat_id,
                    message_thread_id: self.topic,
                    text: view.clone(),
                    parse_mode: Some(ParseMode::Html),
                    reply_parameters: None,
                    reply_markup: None,
                };
                let shown = live.show(LiveCall::Send(&send)).await;
                if let Shown::Done {
                    message_id: Some(id),
                } = shown
                {
                    self.showing = Showing::Edits {
                        message_id: Some(id),
                    };
                }
                shown
            }
            Showing::Edits {
                message_id: Some(message_id),
            } => {
                let edit = EditMessageText {
                    chat_id: self.chat_id,
                    message_id,
                    text: view.clone(),
                    parse_mode: Some(ParseMode::Html),
                    reply_markup: None,
                };
                live.show(LiveCall::Edit(&edit)).await
            }
            Showing::Nothing => return,
        };
        if let Shown::Done { .. } = shown {
            self.shown = view;
            self.first_shown_at.get_or_insert_with(Instant::now);
        }
        self.last_shown = Some(Instant::now());
    }
}

/// "typing…" in a chat (or forum topic), when there is a live handle.
pub(crate) async fn typing(live: Option<&dyn Live>, chat_id: i64, topic: Option<i64>) {
    if let Some(live) = live {
        let action = SendChatAction {
            chat_id,
            message_thread_id: topic,
            action: "typing",
        };
        live.show(LiveCall::Typing(&action)).await;
    }
}

#[async_trait::async_trait]
impl Sink for Stream<'_> {
    async fn piece(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        self.first_piece_at.get_or_insert_with(Instant::now);
        self.started.store(true, Ordering::Relaxed);
        self.text.push_str(text);
        let due = self
            .last_shown
            .is_none_or(|last| last.elapsed() >= self.interval);
        if due {
            self.show().await;
        }
    }

    fn restart(&mut self) {
        // What was shown stays on screen until the new answer replaces it.
        self.text.clear();
    }
}
