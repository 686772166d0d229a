//! Actions: what a handler asks the bot to do, as Bot API calls.
//!
//! Each variant's payload serializes to exactly the parameters of its Bot API method,
//! so the engine keeps that JSON in the outbox and the sender sends it as it is.

use crate::telegram::types::InlineKeyboardMarkup;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method")]
pub enum Action {
    #[serde(rename = "sendMessage")]
    SendMessage(SendMessage),
    #[serde(rename = "editMessageText")]
    EditMessageText(EditMessageText),
    #[serde(rename = "answerCallbackQuery")]
    AnswerCallbackQuery(AnswerCallbackQuery),
    #[serde(rename = "deleteMessage")]
    DeleteMessage(MessageRef),
    #[serde(rename = "banChatMember")]
    BanChatMember(ChatMemberRef),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendMessage {
    pub chat_id: i64,
    /// The forum topic to post in; none outside topics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_thread_id: Option<i64>,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parse_mode: Option<ParseMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_parameters: Option<ReplyParameters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_markup: Option<InlineKeyboardMarkup>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyParameters {
    pub message_id: i64,
    /// Send even if the message replied to was deleted meanwhile.
    #[serde(default)]
    pub allow_sending_without_reply: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditMessageText {
    pub chat_id: i64,
    pub message_id: i64,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parse_mode: Option<ParseMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_markup: Option<InlineKeyboardMarkup>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerCallbackQuery {
    pub callback_query_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// An alert the user must dismiss, rather than a notice at the top of the chat.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub show_alert: bool,
}

impl AnswerCallbackQuery {
    /// Stops the client's spinner and says nothing.
    pub fn silent(callback_query_id: String) -> AnswerCallbackQuery {
        AnswerCallbackQuery {
            callback_query_id,
            text: None,
            show_alert: false,
        }
    }
}

/// A partial message streamed to a private chat while an answer is generated (Bot API
/// 9.5+). Ephemeral: it is shown for a while and never stored; the finished answer is
/// persisted with a `sendMessage`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SendMessageDraft {
    pub chat_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_thread_id: Option<i64>,
    /// Non-zero; updates to one draft id are animated as one message.
    pub draft_id: i64,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parse_mode: Option<ParseMode>,
}

/// "typing…" at the top of a chat, for about five seconds or until the bot's next message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SendChatAction {
    pub chat_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_thread_id: Option<i64>,
    /// Always `typing` here.
    pub action: &'static str,
}

/// How Telegram reads a text with markup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParseMode {
    #[serde(rename = "HTML")]
    Html,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRef {
    pub chat_id: i64,
    pub message_id: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMemberRef {
    pub chat_id: i64,
    pub user_id: i64,
}

impl Action {
    /// A plain text message to a chat.
    pub fn send(chat_id: i64, text: impl Into<String>) -> Action {
        Action::SendMessage(SendMessage {
            chat_id,
            message_thread_id: None,
            text: text.into(),
            parse_mode: None,
            reply_parameters: None,
            reply_markup: None,
        })
    }

    /// Every method an action calls, as [`Action::method`] names them.
    pub(crate) const METHODS: [&'static str; 5] = [
        "sendMessage",
        "editMessageText",
        "answerCallbackQuery",
        "deleteMessage",
        "banChatMember",
    ];

    /// The Bot API method this action calls.
    pub(crate) fn method(&self) -> &'static str {
        match self {
            Action::SendMessage(_) => "sendMessage",
            Action::EditMessageText(_) => "editMessageText",
            Action::AnswerCallbackQuery(_) => "answerCallbackQuery",
            Action::DeleteMessage(_) => "deleteMessage",
            Action::BanChatMember(_) => "banChatMember",
        }
    }

    /// The chat this action writes to, which puts it under that chat's flood limit and
    /// ordering. Answering a callback query writes to no chat.
    pub(crate) fn chat_id(&self) -> Option<i64> {
        match self {
            Action::SendMessage(a) => Some(a.chat_id),
            Action::EditMessageText(a) => Some(a.chat_id),
            Action::DeleteMessage(a) => Some(a.chat_id),
            Action::BanChatMember(a) => Some(a.chat_id),
            Action::AnswerCallbackQuery(_) => None,
        }
    }

    /// The method's parameters as the JSON body of the call.
    pub(crate) fn params_json(&self) -> Vec<u8> {
        // These payloads are plain structs of strings and numbers: serialization cannot fail.
        let encoded = match self {
            Action::SendMessage(p) => serde_json::to_vec(p),
            Action::EditMessageText(p) => serde_json::to_vec(p),
            Action::AnswerCallbackQuery(p) => serde_json::to_vec(p),
            Action::DeleteMessage(p) => serde_json::to_vec(p),
            Action::BanChatMember(p) => serde_json::to_vec(p),
        };
        encoded.expect("action parameters always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_the_bot_api_ones() {
        let action = Action::SendMessage(SendMessage {
            chat_id: 5,
            message_thread_id: None,
            text: "hi".into(),
            parse_mode: None,
            reply_parameters: Some(ReplyParameters {
                message_id: 9,
                allow_sending_without_reply: true,
            }),
            reply_markup: None,
        });
        let params: serde_json::Value = serde_json::from_slice(&action.params_json()).unwrap();
        assert_eq!(
            params,
            serde_json::json!({"chat_id":5,"text":"hi","reply_parameters":{"message_id":9,"allow_sending_without_reply":true}})
        );
        let stored = serde_json::to_string(&action).unwrap();
        assert!(stored.contains(r#""method":"sendMessage""#));
        assert_eq!(serde_json::from_str::<Action>(&stored).unwrap(), action);
    }
}
