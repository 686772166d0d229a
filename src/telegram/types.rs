//! The Bot API's wire model: the parts of `Update` a bot routes on.
//!
//! Parsing is built to survive the API's growth. Unknown fields are ignored; an update
//! kind this program does not model is recognised by name and knowingly ignored; a kind
//! nobody has heard of becomes [`UpdateKind::Unknown`]. Fields the bot only reads for
//! convenience (entities, the replied-to message, the sender) are parsed leniently: a
//! value of an unexpected shape becomes `None`, it never drops the update. Only the
//! fields without which an update cannot be routed (ids, chat, date) are strict.

use serde::de::{self, DeserializeOwned, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// One update as Telegram delivers it.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub update_id: i64,
    pub kind: UpdateKind,
}

/// What an update carries. The kinds a bot meets are modelled; the rest are named.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateKind {
    Message(Message),
    EditedMessage(Message),
    ChannelPost(Message),
    EditedChannelPost(Message),
    BusinessMessage(Message),
    EditedBusinessMessage(Message),
    CallbackQuery(CallbackQuery),
    InlineQuery(InlineQuery),
    MyChatMember(ChatMemberUpdated),
    ChatMember(ChatMemberUpdated),
    ChatJoinRequest(ChatJoinRequest),
    MessageReaction(MessageReactionUpdated),
    /// A kind of the Bot API that this program does not act on (polls, payments, boosts…).
    Ignored(&'static str),
    /// A kind newer than this program, or no kind at all: kept raw by the inbox.
    Unknown(String),
}

/// Update kinds of Bot API 10.1 that are recognised but not modelled.
const IGNORED_KINDS: &[&str] = &[
    "business_connection",
    "deleted_business_messages",
    "message_reaction_count",
    "chosen_inline_result",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "chat_boost",
    "removed_chat_boost",
    "guest_message",
    "managed_bot",
];

impl UpdateKind {
    /// The Bot API's name for this kind, as used in `allowed_updates` and metrics.
    pub fn name(&self) -> &str {
        match self {
            UpdateKind::Message(_) => "message",
            UpdateKind::EditedMessage(_) => "edited_message",
            UpdateKind::ChannelPost(_) => "channel_post",
            UpdateKind::EditedChannelPost(_) => "edited_channel_post",
            UpdateKind::BusinessMessage(_) => "business_message",
            UpdateKind::EditedBusinessMessage(_) => "edited_business_message",
            UpdateKind::CallbackQuery(_) => "callback_query",
            UpdateKind::InlineQuery(_) => "inline_query",
            UpdateKind::MyChatMember(_) => "my_chat_member",
            UpdateKind::ChatMember(_) => "chat_member",
            UpdateKind::ChatJoinRequest(_) => "chat_join_request",
            UpdateKind::MessageReaction(_) => "message_reaction",
            UpdateKind::Ignored(name) => name,
            UpdateKind::Unknown(_) => "unknown",
        }
    }
}

/// Why a body could not become an [`Update`].
#[derive(Debug, thiserror::Error)]
#[error("unparsable update: {0}")]
pub struct ParseError(#[from] serde_json::Error);

impl Update {
    /// Parses one update from its JSON body.
    pub fn from_json(bytes: &[u8]) -> Result<Update, ParseError> {
        Ok(serde_json::from_slice(bytes)?)
    }

    /// The chat this update belongs to, which decides its ordering lane.
    pub fn chat_id(&self) -> Option<i64> {
        match &self.kind {
            UpdateKind::Message(m)
            | UpdateKind::EditedMessage(m)
            | UpdateKind::ChannelPost(m)
            | UpdateKind::EditedChannelPost(m)
            | UpdateKind::BusinessMessage(m)
            | UpdateKind::EditedBusinessMessage(m) => Some(m.chat.id),
            UpdateKind::CallbackQuery(q) => {
                Some(q.message.as_ref().map_or(q.from.id, |m| m.chat.id))
            }
            UpdateKind::InlineQuery(q) => Some(q.from.id),
            UpdateKind::MyChatMember(c) | UpdateKind::ChatMember(c) => Some(c.chat.id),
            UpdateKind::ChatJoinRequest(r) => Some(r.chat.id),
            UpdateKind::MessageReaction(r) => Some(r.chat.id),
            UpdateKind::Ignored(_) | UpdateKind::Unknown(_) => None,
        }
    }

    /// The person who caused this update, if any.
    pub fn from(&self) -> Option<&User> {
        match &self.kind {
            UpdateKind::Message(m)
            | UpdateKind::EditedMessage(m)
            | UpdateKind::ChannelPost(m)
            | UpdateKind::EditedChannelPost(m)
            | UpdateKind::BusinessMessage(m)
            | UpdateKind::EditedBusinessMessage(m) => m.from.as_ref(),
            UpdateKind::CallbackQuery(q) => Some(&q.from),
            UpdateKind::InlineQuery(q) => Some(&q.from),
            UpdateKind::MyChatMember(c) | UpdateKind::ChatMember(c) => Some(&c.from),
            UpdateKind::ChatJoinRequest(r) => Some(&r.from),
            UpdateKind::MessageReaction(r) => r.user.as_ref(),
            UpdateKind::Ignored(_) | UpdateKind::Unknown(_) => None,
        }
    }
}

impl<'de> Deserialize<'de> for Update {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(UpdateVisitor)
    }
}

struct UpdateVisitor;

impl<'de> Visitor<'de> for UpdateVisitor {
    type Value = Update;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Telegram Update object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Update, A::Error> {
        let mut update_id = None;
        let mut kind = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "update_id" {
                update_id = Some(map.next_value::<i64>()?);
                continue;
            }
            if kind.is_some() {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            kind = Some(match key.as_ref() {
                "message" => UpdateKind::Message(map.next_value()?),
                "edited_message" => UpdateKind::EditedMessage(map.next_value()?),
                "channel_post" => UpdateKind::ChannelPost(map.next_value()?),
                "edited_channel_post" => UpdateKind::EditedChannelPost(map.next_value()?),
                "business_message" => UpdateKind::BusinessMessage(map.next_value()?),
                "edited_business_message" => UpdateKind::EditedBusinessMessage(map.next_value()?),
                "callback_query" => UpdateKind::CallbackQuery(map.next_value()?),
                "inline_query" => UpdateKind::InlineQuery(map.next_value()?),
                "my_chat_member" => UpdateKind::MyChatMember(map.next_value()?),
                "chat_member" => UpdateKind::ChatMember(map.next_value()?),
                "chat_join_request" => UpdateKind::ChatJoinRequest(map.next_value()?),
                "message_reaction" => UpdateKind::MessageReaction(map.next_value()?),
                other => {
                    map.next_value::<IgnoredAny>()?;
                    match IGNORED_KINDS.iter().find(|k| **k == other) {
                        Some(name) => UpdateKind::Ignored(name),
                        None => UpdateKind::Unknown(other.to_owned()),
                    }
                }
            });
        }
        let update_id = update_id.ok_or_else(|| de::Error::missing_field("update_id"))?;
        let kind = kind.unwrap_or_else(|| UpdateKind::Unknown(String::new()));
        Ok(Update { update_id, kind })
    }
}

/// Deserializes an optional part of an update we only read for convenience: a value of
/// an unexpected shape becomes `None` instead of failing the whole update.
fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

/// Like [`lenient`] for lists: unparsable elements are skipped, the rest kept.
fn lenient_list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(match value {
        serde_json::Value::Array(items) => items
            .into_iter()
            .filter_map(|item| serde_json::from_value(item).ok())
            .collect(),
        _ => Vec::new(),
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    #[serde(default)]
    pub(crate) is_bot: bool,
    #[serde(default)]
    pub first_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_code: Option<String>,
}

/// The kind of a chat; a kind added to the API later is `Other`, not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatKind {
    Private,
    Group,
    Supergroup,
    Channel,
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Chat {
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: ChatKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// Written by hand because real clients have sent a chat with a key twice
/// (`"type":"private","type":"private"`): like most JSON readers, the last one wins,
/// where a derived implementation would reject the whole update.
impl<'de> Deserialize<'de> for Chat {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ChatVisitor;
        impl<'de> Visitor<'de> for ChatVisitor {
            type Value = Chat;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a Telegram Chat object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Chat, A::Error> {
                let mut chat = Chat {
                    id: 0,
                    kind: ChatKind::Other,
                    title: None,
                    username: None,
                };
                let mut has_id = false;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.as_ref() {
                        "id" => {
                            chat.id = map.next_value()?;
                            has_id = true;
                        }
                        "type" => chat.kind = map.next_value()?,
                        "title" => chat.title = map.next_value()?,
                        "username" => chat.username = map.next_value()?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                if !has_id {
                    return Err(de::Error::missing_field("id"));
                }
                Ok(chat)
            }
        }
        deserializer.deserialize_map(ChatVisitor)
    }
}

/// A marked span of a message's text. Offsets and lengths count UTF-16 code units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageEntity {
    #[serde(rename = "type")]
    pub kind: String,
    pub offset: usize,
    pub length: usize,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Message {
    pub message_id: i64,
    pub(crate) date: i64,
    pub chat: Chat,
    #[serde(default, deserialize_with = "lenient")]
    pub from: Option<User>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) message_thread_id: Option<i64>,
    /// Whether the message belongs to a forum topic (`message_thread_id` names it).
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) is_topic_message: Option<bool>,
    #[serde(default, deserialize_with = "lenient")]
    pub text: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) caption: Option<String>,
    #[serde(default, deserialize_with = "lenient_list")]
    pub(crate) entities: Vec<MessageEntity>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) reply_to_message: Option<Box<Message>>,
    #[serde(default, deserialize_with = "lenient_list")]
    pub(crate) new_chat_members: Vec<User>,
}

impl Message {
    /// The words of the message: its text, or the caption of its media.
    pub(crate) fn text_or_caption(&self) -> Option<&str> {
        self.text.as_deref().or(self.caption.as_deref())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CallbackQuery {
    pub id: String,
    pub from: User,
    /// Absent for inline-mode messages; an inaccessible message still has its chat.
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) message: Option<Message>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) data: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct InlineQuery {
    pub id: String,
    pub from: User,
    #[serde(default)]
    pub(crate) query: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct ChatMember {
    pub status: ChatMemberStatus,
    pub(crate) user: User,
}

/// A member's standing in a chat. In a private chat, `Kicked` means the user blocked the
/// bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ChatMemberStatus {
    Creator,
    Administrator,
    Member,
    Restricted,
    Left,
    Kicked,
    /// A status a later Bot API may add.
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ChatMemberUpdated {
    pub chat: Chat,
    pub from: User,
    pub(crate) date: i64,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) old_chat_member: Option<ChatMember>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) new_chat_member: Option<ChatMember>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ChatJoinRequest {
    pub chat: Chat,
    pub from: User,
    pub(crate) date: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MessageReactionUpdated {
    pub chat: Chat,
    pub message_id: i64,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) user: Option<User>,
    pub(crate) date: i64,
}

/// One button of an inline keyboard: it either sends callback data or opens a URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InlineKeyboardButton {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InlineKeyboardMarkup {
    pub inline_keyboard: Vec<Vec<InlineKeyboardButton>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_private_text_message() {
        let update = Update::from_json(
            br#"{"update_id":10,"message":{"message_id":5,"date":1,"chat":{"id":42,"type":"private"},
                "from":{"id":42,"is_bot":false,"first_name":"Ada","language_code":"en"},"text":"/start",
                "entities":[{"type":"bot_command","offset":0,"length":6}],"some_future_field":{"x":1}}}"#,
        )
        .unwrap();
        assert_eq!(update.update_id, 10);
        assert_eq!(update.chat_id(), Some(42));
        let UpdateKind::Message(message) = &update.kind else {
            panic!("not a message")
        };
        assert_eq!(message.text.as_deref(), Some("/start"));
        assert_eq!(message.entities[0].kind, "bot_command");
        assert_eq!(update.from().unwrap().first_name, "Ada");
    }

    #[test]
    fn a_wrongly_typed_optional_part_does_not_drop_the_update() {
        let update = Update::from_json(
            br#"{"update_id":1,"message":{"message_id":5,"date":1,"chat":{"id":7,"type":"group"},
                "entities":"not a list","from":17,"reply_to_message":[1,2]}}"#,
        )
        .unwrap();
        let UpdateKind::Message(message) = update.kind else {
            panic!("not a message")
        };
        assert!(message.entities.is_empty());
        assert!(message.from.is_none());
        assert!(message.reply_to_message.is_none());
    }

    #[test]
    fn unknown_and_ignored_kinds_are_named() {
        let unknown = Update::from_json(br#"{"update_id":1,"brand_new":{"a":1}}"#).unwrap();
        assert_eq!(unknown.kind, UpdateKind::Unknown("brand_new".into()));
        let poll = Update::from_json(br#"{"update_id":2,"poll":{"id":"1"}}"#).unwrap();
        assert_eq!(poll.kind, UpdateKind::Ignored("poll"));
        let bare = Update::from_json(br#"{"update_id":3}"#).unwrap();
        assert_eq!(bare.kind, UpdateKind::Unknown(String::new()));
    }

    #[test]
    fn a_message_without_its_chat_is_unparsable() {
        assert!(Update::from_json(br#"{"update_id":1,"message":{"message_id":1}}"#).is_err());
        assert!(Update::from_json(b"[1,2]").is_err());
        assert!(Update::from_json(br#"{"message":{}}"#).is_err());
    }

    #[test]
    fn a_repeated_chat_key_keeps_the_last_value() {
        let chat: Chat =
            serde_json::from_str(r#"{"id":1,"type":"group","type":"private","x":[1]}"#).unwrap();
        assert_eq!(chat.kind, ChatKind::Private);
        assert!(serde_json::from_str::<Chat>(r#"{"type":"private"}"#).is_err());
    }

    #[test]
    fn an_unknown_chat_type_is_other() {
        let chat: Chat = serde_json::from_str(r#"{"id":1,"type":"hyperchat"}"#).unwrap();
        assert_eq!(chat.kind, ChatKind::Other);
    }
}
