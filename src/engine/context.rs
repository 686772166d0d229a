//! What a handler sees of an update, and what it hands back.
//!
//! A handler reads a [`Context`] and fills an [`Outcome`]; it never touches the store,
//! a socket or a transport. The engine commits the outcome atomically with the update.

use super::live::Live;
use super::ml::MlService;
use super::router::Router;
use crate::calendar::UnixSecs;
use crate::ml::Analysis;
use crate::store::records::{
    ConversationChange, ConversationState, Event, EventKind, Session, SessionChange, SessionEdit,
    UserRecord,
};
use crate::telegram::methods::{Action, ParseMode, ReplyParameters, SendMessage};
use crate::telegram::types::{CallbackQuery, InlineKeyboardMarkup, Message};
use crate::template::{Field, Values, push_number};
use smallvec::SmallVec;

/// One update, seen from a handler.
pub(crate) struct Context<'a> {
    pub(crate) update_id: i64,
    /// The update's kind as the Bot API names its field (`message`, `callback_query`…).
    pub(crate) update_kind: &'a str,
    pub chat_id: i64,
    /// The forum topic the message belongs to, where replies go too.
    pub(crate) topic: Option<i64>,
    /// The message that arrived, or the message whose button was pressed.
    pub(crate) message: Option<&'a Message>,
    pub(crate) callback: Option<&'a CallbackQuery>,
    /// The command, without its slash and bot name, for a command.
    pub(crate) command: Option<&'a str>,
    /// The arguments of the command, empty for other updates.
    pub(crate) args: &'a str,
    /// The sender as stored once this update is committed.
    pub(crate) user: Option<&'a UserRecord>,
    /// Whether this update registers the sender.
    pub(crate) is_new_user: bool,
    /// The conversation this text continues, when one is open (the router sent it here
    /// for that reason).
    pub(crate) conversation: Option<ConversationState>,
    /// The live session of the sender in this chat, loaded for the routes that read it
    /// (services, and texts, which may continue a conversation).
    pub(crate) session: Option<Session>,
    pub(crate) router: &'a Router,
    /// The models, when they are switched on.
    pub(crate) ml: Option<&'a MlService>,
    /// What the models made of this update's text, when they ran on it.
    pub(crate) analysis: Option<Analysis>,
    /// Where a slow handler shows progress (typing, drafts); none in the console.
    pub(crate) live: Option<&'a dyn Live>,
    pub bot_username: Option<&'a str>,
    /// When the engine took the update.
    pub(crate) now: UnixSecs,
    pub(crate) session_ttl_secs: u32,
}

/// What a handler decided: actions to send and changes to commit.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) actions: SmallVec<[Action; 2]>,
    pub events: Vec<Event>,
    pub session: Option<SessionChange>,
    /// The user who referred a newly registered sender.
    pub referrer: Option<i64>,
    /// Exchanges with a language model and the changes around them.
    pub(crate) conversation: Vec<ConversationChange>,
}

impl Context<'_> {
    pub(crate) fn user_id(&self) -> Option<i64> {
        self.user.map(|u| u.id)
    }

    /// A change to the sender's session in this chat; `None` without a sender.
    pub(crate) fn session_change(&self, edit: SessionEdit) -> Option<SessionChange> {
        Some(SessionChange {
            chat_id: self.chat_id,
            user_id: self.user_id()?,
            at: self.now,
            default_ttl_secs: self.session_ttl_secs,
            edit,
        })
    }

    /// An event about this update's sender and chat.
    pub(crate) fn event(&self, kind: EventKind) -> Event {
        Event {
            at_ms: self.now.to_millis(),
            user_id: self.user_id(),
            chat_id: Some(self.chat_id),
            kind,
        }
    }
}

impl Outcome {
    /// Sends `text` to the update's chat.
    pub(crate) fn send(&mut self, ctx: &Context<'_>, text: String) {
        self.send_with(ctx, text, None, false);
    }

    /// Sends `text` with an optional keyboard, optionally as a reply to the incoming
    /// message.
    pub(crate) fn send_with(
        &mut self,
        ctx: &Context<'_>,
        text: String,
        keyboard: Option<InlineKeyboardMarkup>,
        reply_to_message: bool,
    ) {
        self.send_formatted(ctx, text, None, keyboard, reply_to_message);
    }

    /// [`Outcome::send_with`], with the text read as markup when `parse_mode` says so.
    pub(crate) fn send_formatted(
        &mut self,
        ctx: &Context<'_>,
        text: String,
        parse_mode: Option<ParseMode>,
        keyboard: Option<InlineKeyboardMarkup>,
        reply_to_message: bool,
    ) {
        let reply_parameters = reply_to_message
            .then(|| ctx.message.filter(|_| ctx.callback.is_none()))
            .flatten()
            .map(|m| ReplyParameters {
                message_id: m.message_id,
                allow_sending_without_reply: true,
            });
        self.actions.push(Action::SendMessage(SendMessage {
            chat_id: ctx.chat_id,
            message_thread_id: ctx.topic,
            text,
            parse_mode,
            reply_parameters,
            reply_markup: keyboard,
        }));
    }
}

/// A stored user fills template placeholders.
impl Values for UserRecord {
    fn value(&self, field: Field, out: &mut String) {
        match field {
            Field::FirstName => out.push_str(&self.first_name),
            Field::LastName => out.push_str(self.last_name.as_deref().unwrap_or("")),
            Field::Username => out.push_str(self.username.as_deref().unwrap_or("")),
            Field::UserId => push_number(out, self.id),
            Field::MessageCount => push_number(out, self.message_count),
            Field::Referrals => push_number(out, self.referrals),
            Field::Language => out.push_str(self.language_code.as_deref().unwrap_or("")),
        }
    }
}

/// An update without a sender (a channel post) renders placeholders empty.
pub(crate) struct NoUser;

impl Values for NoUser {
    fn value(&self, _field: Field, _out: &mut String) {}
}
