//! The simulated Bot API itself: the server's state (chats and their
//! messages, the update queue, the webhook, queued faults, flood windows) and
//! the methods that read and change it, answering like Telegram does.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::Hasher;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::flood::{FloodLimits, FloodState};
use super::{Fault, Shared, lock};

/// Methods the fake knows, in their canonical spelling. Lookups ignore case,
/// as Telegram does; the hot methods come first.
const METHODS: &[&str] = &[
    "sendMessage",
    "getUpdates",
    "editMessageText",
    "editMessageReplyMarkup",
    "answerCallbackQuery",
    "deleteMessage",
    "sendChatAction",
    "getMe",
    "setWebhook",
    "deleteWebhook",
    "getWebhookInfo",
    "forwardMessage",
    "copyMessage",
    "sendPhoto",
    "sendDocument",
    "sendVideo",
    "sendAudio",
    "sendVoice",
    "sendAnimation",
    "sendSticker",
    "sendVideoNote",
    "banChatMember",
    "unbanChatMember",
    "restrictChatMember",
    "getChat",
    "getChatMember",
    "leaveChat",
    "setMyCommands",
    "getMyCommands",
    // Methods below answer `true` once authenticated.
    "deleteMessages",
    "deleteMyCommands",
    "setMyName",
    "setMyDescription",
    "setMyShortDescription",
    "setChatMenuButton",
    "setMyDefaultAdministratorRights",
    "promoteChatMember",
    "setChatAdministratorCustomTitle",
    "banChatSenderChat",
    "unbanChatSenderChat",
    "setChatPermissions",
    "setChatTitle",
    "setChatDescription",
    "setChatPhoto",
    "deleteChatPhoto",
    "setChatStickerSet",
    "deleteChatStickerSet",
    "pinChatMessage",
    "unpinChatMessage",
    "unpinAllChatMessages",
    "approveChatJoinRequest",
    "declineChatJoinRequest",
    "setMessageReaction",
    "answerInlineQuery",
    "answerShippingQuery",
    "answerPreCheckoutQuery",
    "logOut",
    "close",
];

/// Media sends and the parameter carrying their file.
const MEDIA: &[(&str, &str)] = &[
    ("sendPhoto", "photo"),
    ("sendDocument", "document"),
    ("sendVideo", "video"),
    ("sendAudio", "audio"),
    ("sendVoice", "voice"),
    ("sendAnimation", "animation"),
    ("sendSticker", "sticker"),
    ("sendVideoNote", "video_note"),
];

/// Update types Telegram only sends when `allowed_updates` names them.
const OPT_IN_UPDATES: &[&str] = &["chat_member", "message_reaction", "message_reaction_count"];

/// Supergroup and channel ids are -100 followed by ten or more digits.
const SUPERGROUP_IDS_BELOW: i64 = -1_000_000_000_000;

const TEXT_LIMIT: usize = 4096;
const CAPTION_LIMIT: usize = 1024;
const WEBHOOK_ACTIVE: &str = "can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first";
const TERMINATED: &str =
    "terminated by other getUpdates request; make sure that only one bot instance is running";
const NOT_MODIFIED: &str = "message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message";

pub(crate) fn canonical(name: &str) -> Option<&'static str> {
    METHODS
        .iter()
        .copied()
        .find(|known| known.eq_ignore_ascii_case(name))
}

/// The webhook a bot registered with `setWebhook`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookState {
    pub url: String,
    pub secret_token: Option<String>,
    pub allowed_updates: Option<Vec<String>>,
    pub max_connections: u32,
    /// Whether the `setWebhook` call asked to drop pending updates (they were).
    pub drop_pending_updates: bool,
}

/// A successful answer: `result` plus the optional `description` Telegram
/// adds to webhook answers.
pub(crate) struct Reply {
    pub(crate) result: Value,
    pub(crate) description: Option<&'static str>,
}

impl From<Value> for Reply {
    fn from(result: Value) -> Self {
        Self {
            result,
            description: None,
        }
    }
}

/// What the fake remembers of a message: enough to refuse edits of unknown
/// or foreign messages and no-op edits, without keeping message texts.
#[derive(Clone, Copy)]
struct MessageState {
    by_bot: bool,
    text: u64,
    markup: u64,
}

#[derive(Default)]
struct ChatState {
    last_message_id: i64,
    messages: HashMap<i64, MessageState>,
}

struct QueuedFault {
    fault: Fault,
    remaining: usize,
    method: Option<String>,
}

pub(crate) struct State {
    chats: HashMap<i64, ChatState>,
    pub(crate) webhook: Option<WebhookState>,
    updates: VecDeque<(i64, Value)>,
    next_update_id: i64,
    /// Bumped by each getUpdates; a waiting poll that sees a newer number was
    /// superseded and must answer 409.
    poll_generation: u64,
    faults: VecDeque<QueuedFault>,
    flood: Option<FloodState>,
    commands: Value,
    /// The last `allowed_updates` given to getUpdates; `None` is Telegram's
    /// default of everything except the opt-in update types.
    allowed_updates: Option<Vec<String>>,
}

impl State {
    pub(crate) fn new(limits: Option<FloodLimits>) -> Self {
        Self {
            chats: HashMap::new(),
            webhook: None,
            updates: VecDeque::new(),
            next_update_id: 1,
            poll_generation: 0,
            faults: VecDeque::new(),
            flood: limits.map(FloodState::new),
            commands: json!([]),
            allowed_updates: None,
        }
    }

    pub(crate) fn inject(&mut self, fault: Fault, times: usize, method: Option<&str>) {
        if times == 0 {
            return;
        }
        let method = method.map(|m| canonical(m).map_or_else(|| m.to_owned(), str::to_owned));
        self.faults.push_back(QueuedFault {
            fault,
            remaining: times,
            method,
        });
    }

    pub(crate) fn take_fault(&mut self, method: &str) -> Option<Fault> {
        let index = self.faults.iter().position(|queued| {
            queued
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
        })?;
        let queued = &mut self.faults[index];
        queued.remaining -= 1;
        let fault = queued.fault.clone();
        if queued.remaining == 0 {
            self.faults.remove(index);
        }
        Some(fault)
    }

    /// Gives `update` an `update_id` if it has none and learns the messages
    /// it carries; returns the id and the numbered update.
    pub(crate) fn number_update(&mut self, mut update: Value) -> (i64, Value) {
        let id = match update.get("update_id").and_then(Value::as_i64) {
            Some(id) => id,
            None => {
                let id = self.next_update_id;
                if let Value::Object(fields) = &mut update {
                    fields.insert("update_id".to_owned(), Value::from(id));
                }
                id
            }
        };
        self.next_update_id = self.next_update_id.max(id.saturating_add(1));
        self.learn_messages(&update);
        (id, update)
    }

    pub(crate) fn push_update(&mut self, update: Value) -> i64 {
        let (id, update) = self.number_update(update);
        self.updates.push_back((id, update));
        id
    }

    fn learn_messages(&mut self, update: &Value) {
        let keys = [
            "message",
            "edited_message",
            "channel_post",
            "edited_channel_post",
            "business_message",
        ];
        let callback_message = update.get("callback_query").and_then(|q| q.get("message"));
        let messages = keys.iter().filter_map(|key| update.get(*key));
        for message in messages.chain(callback_message) {
            let chat = message.pointer("/chat/id").and_then(Value::as_i64);
            let id = message.get("message_id").and_then(Value::as_i64);
            let (Some(chat), Some(id)) = (chat, id) else {
                continue;
            };
            let by_bot = message.pointer("/from/is_bot") == Some(&Value::Bool(true));
            let text = message.get("text").or_else(|| message.get("caption"));
            let state = MessageState {
                by_bot,
                text: hash_text(text.and_then(Value::as_str)),
                markup: hash_markup(message.get("reply_markup")),
            };
            let chat = self.chats.entry(chat).or_default();
            chat.last_message_id = chat.last_message_id.max(id);
            chat.messages.insert(id, state);
        }
    }

    /// Forgets updates confirmed by `offset`, the way getUpdates does.
    fn confirm(&mut self, offset: i64) {
        if offset > 0 {
            self.updates.retain(|(id, _)| *id >= offset);
        } else if offset < 0 {
            let keep = usize::try_from(offset.unsigned_abs()).unwrap_or(usize::MAX);
            let excess = self.updates.len().saturating_sub(keep);
            self.updates.drain(..excess);
        }
    }

    fn allows(&self, update: &Value) -> bool {
        let Some(kind) = update
            .as_object()
            .and_then(|fields| fields.keys().find(|key| *key != "update_id"))
        else {
            return true;
        };
        match &self.allowed_updates {
            Some(allowed) => allowed.iter().any(|a| a == kind),
            None => !OPT_IN_UPDATES.contains(&kind.as_str()),
        }
    }

    fn store_message(&mut self, chat: i64, state: MessageState) -> i64 {
        let chat = self.chats.entry(chat).or_default();
        chat.last_message_id += 1;
        chat.messages.insert(chat.last_message_id, state);
        chat.last_message_id
    }

    fn message_mut(&mut self, chat: i64, id: i64) -> Option<&mut MessageState> {
        self.chats.get_mut(&chat)?.messages.get_mut(&id)
    }
}

/// Hashes stand in for message contents in the not-modified check.
struct HashWriter(DefaultHasher);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Hasher::write(&mut self.0, buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn hash_text(text: Option<&str>) -> u64 {
    let mut hasher = DefaultHasher::new();
    hasher.write(text.unwrap_or("").as_bytes());
    hasher.finish()
}

/// Only inline keyboards stay attached to a message, so only they count.
fn hash_markup(markup: Option<&Value>) -> u64 {
    let mut writer = HashWriter(DefaultHasher::new());
    if let Some(markup) = inline_markup(markup) {
        let _ = serde_json::to_writer(&mut writer, markup);
    }
    writer.0.finish()
}

fn inline_markup(markup: Option<&Value>) -> Option<&Value> {
    markup.filter(|m| m.get("inline_keyboard").is_some())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// An integer parameter, whether sent as a number or as a string of digits.
pub(crate) fn int_of(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn int(params: &Map<String, Value>, name: &str) -> Option<i64> {
    params.get(name).and_then(int_of)
}

fn is_empty(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(_) => false,
    }
}

fn require(params: &Map<String, Value>, name: &str) -> Result<(), ApiError> {
    if is_empty(params.get(name)) {
        return Err(ApiError::bad_request(format!("{name} is empty")));
    }
    Ok(())
}

/// A chat id; usernames (`@name`) cannot be resolved by the fake.
fn require_chat(params: &Map<String, Value>, name: &str) -> Result<i64, ApiError> {
    require(params, name)?;
    int(params, name)
        .filter(|&id| id != 0)
        .ok_or_else(|| ApiError::bad_request("chat not found"))
}

fn require_message_id(params: &Map<String, Value>) -> Result<i64, ApiError> {
    int(params, "message_id")
        .ok_or_else(|| ApiError::bad_request("message identifier is not specified"))
}

fn require_text(params: &Map<String, Value>) -> Result<&str, ApiError> {
    let text = params.get("text").and_then(Value::as_str).unwrap_or("");
    if text.trim().is_empty() {
        return Err(ApiError::bad_request("message text is empty"));
    }
    if text.encode_utf16().count() > TEXT_LIMIT {
        return Err(ApiError::bad_request("message is too long"));
    }
    Ok(text)
}

fn caption(params: &Map<String, Value>) -> Result<Option<&str>, ApiError> {
    let caption = params.get("caption").and_then(Value::as_str);
    if caption.is_some_and(|c| c.encode_utf16().count() > CAPTION_LIMIT) {
        return Err(ApiError::bad_request("message caption is too long"));
    }
    Ok(caption)
}

fn bot_id(token: &str) -> i64 {
    token
        .split_once(':')
        .and_then(|(id, _)| id.parse().ok())
        .unwrap_or(1)
}

fn bot_user(shared: &Shared, token: &str) -> Value {
    json!({
        "id": bot_id(token),
        "is_bot": true,
        "first_name": "Edgebot Test",
        "username": shared.bot_username,
    })
}

/// Chat ids say what kind of chat they are: users are positive, basic groups
/// small negatives, supergroups and channels -100xxxxxxxxxx.
fn chat_json(id: i64) -> Value {
    if id > 0 {
        json!({ "id": id, "type": "private", "first_name": "Test" })
    } else if id <= SUPERGROUP_IDS_BELOW {
        json!({ "id": id, "type": "supergroup", "title": "Test supergroup" })
    } else {
        json!({ "id": id, "type": "group", "title": "Test group" })
    }
}

/// Refuses sends to users who blocked the bot and, when enforced, sends over
/// the flood limits; an admitted send counts towards the limits.
fn admit_send(shared: &Shared, state: &mut State, chat: i64, at: Instant) -> Result<(), ApiError> {
    if shared.blocked_chats.contains(&chat) {
        return Err(ApiError::Forbidden("bot was blocked by the user"));
    }
    if let Some(flood) = &mut state.flood {
        flood
            .admit(chat, at)
            .map_err(|retry_after| ApiError::TooManyRequests { retry_after })?;
    }
    Ok(())
}

struct Call<'a> {
    shared: &'a Shared,
    token: &'a str,
    params: &'a Map<String, Value>,
    at: Instant,
}

impl Call<'_> {
    fn message(&self, chat: i64, message_id: i64) -> Map<String, Value> {
        let mut message = Map::new();
        message.insert("message_id".to_owned(), Value::from(message_id));
        message.insert("from".to_owned(), bot_user(self.shared, self.token));
        message.insert("chat".to_owned(), chat_json(chat));
        message.insert("date".to_owned(), Value::from(unix_now()));
        message
    }

    /// Copies the parameters Telegram echoes back into a sent message.
    fn echo(&self, message: &mut Map<String, Value>, names: &[&str]) {
        for name in names {
            if let Some(value) = self.params.get(*name) {
                message.insert((*name).to_owned(), value.clone());
            }
        }
        if let Some(markup) = inline_markup(self.params.get("reply_markup")) {
            message.insert("reply_markup".to_owned(), markup.clone());
        }
    }

    fn send_message(&self, state: &mut State) -> Result<Reply, ApiError> {
        let chat = require_chat(self.params, "chat_id")?;
        let text = require_text(self.params)?;
        admit_send(self.shared, state, chat, self.at)?;
        let id = state.store_message(
            chat,
            MessageState {
                by_bot: true,
                text: hash_text(Some(text)),
                markup: hash_markup(self.params.get("reply_markup")),
            },
        );
        let mut message = self.message(chat, id);
        self.echo(&mut message, &["text", "entities", "message_thread_id"]);
        Ok(Value::Object(message).into())
    }

    fn send_media(&self, state: &mut State, field: &str) -> Result<Reply, ApiError> {
        let chat = require_chat(self.params, "chat_id")?;
        if is_empty(self.params.get(field)) {
            return Err(ApiError::bad_request(format!(
                "there is no {field} in the request"
            )));
        }
        let caption = caption(self.params)?;
        admit_send(self.shared, state, chat, self.at)?;
        let id = state.store_message(
            chat,
            MessageState {
                by_bot: true,
                text: hash_text(caption),
                markup: hash_markup(self.params.get("reply_markup")),
            },
        );
        let file = json!({
            "file_id": format!("fake-{field}-{chat}-{id}"),
            "file_unique_id": format!("fake{chat}{id}"),
        });
        let mut message = self.message(chat, id);
        let media = if field == "photo" {
            json!([file])
        } else {
            file
        };
        message.insert(field.to_owned(), media);
        self.echo(&mut message, &["caption", "caption_entities"]);
        Ok(Value::Object(message).into())
    }

    /// Applies an edit to a tracked message; inline messages (by
    /// `inline_message_id`) are not tracked and always succeed.
    fn edit(&self, state: &mut State, new_text: Option<&str>) -> Result<Reply, ApiError> {
        if !is_empty(self.params.get("inline_message_id")) {
            return Ok(Value::Bool(true).into());
        }
        let chat = require_chat(self.params, "chat_id")?;
        let id = require_message_id(self.params)?;
        if self.shared.blocked_chats.contains(&chat) {
            return Err(ApiError::Forbidden("bot was blocked by the user"));
        }
        let message = state
            .message_mut(chat, id)
            .ok_or_else(|| ApiError::bad_request("message to edit not found"))?;
        if !message.by_bot {
            return Err(ApiError::bad_request("message can't be edited"));
        }
        let markup = hash_markup(self.params.get("reply_markup"));
        let text = new_text.map_or(message.text, |t| hash_text(Some(t)));
        if text == message.text && markup == message.markup {
            return Err(ApiError::bad_request(NOT_MODIFIED));
        }
        message.text = text;
        message.markup = markup;
        let mut answer = self.message(chat, id);
        answer.insert("edit_date".to_owned(), Value::from(unix_now()));
        self.echo(&mut answer, &["text", "entities"]);
        Ok(Value::Object(answer).into())
    }

    /// forwardMessage and copyMessage: the source must be a known message.
    fn duplicate(&self, state: &mut State, copy: bool) -> Result<Reply, ApiError> {
        let chat = require_chat(self.params, "chat_id")?;
        let from_chat = require_chat(self.params, "from_chat_id")?;
        let source_id = require_message_id(self.params)?;
        let source = state
            .chats
            .get(&from_chat)
            .and_then(|c| c.messages.get(&source_id))
            .copied()
            .ok_or_else(|| {
                ApiError::bad_request(if copy {
                    "message to copy not found"
                } else {
                    "message to forward not found"
                })
            })?;
        admit_send(self.shared, state, chat, self.at)?;
        let markup = if copy {
            hash_markup(self.params.get("reply_markup"))
        } else {
            hash_markup(None)
        };
        let id = state.store_message(
            chat,
            MessageState {
                by_bot: true,
                text: source.text,
                markup,
            },
        );
        if copy {
            return Ok(json!({ "message_id": id }).into());
        }
        let mut message = self.message(chat, id);
        let origin = if from_chat > 0 {
            json!({ "type": "user", "date": unix_now(),
                    "sender_user": { "id": from_chat, "is_bot": false, "first_name": "Test" } })
        } else {
            json!({ "type": "chat", "date": unix_now(), "sender_chat": chat_json(from_chat) })
        };
        message.insert("forward_origin".to_owned(), origin);
        Ok(Value::Object(message).into())
    }

    fn delete_message(&self, state: &mut State) -> Result<Reply, ApiError> {
        let chat = require_chat(self.params, "chat_id")?;
        let id = require_message_id(self.params)?;
        state
            .chats
            .get_mut(&chat)
            .and_then(|c| c.messages.remove(&id))
            .ok_or_else(|| ApiError::bad_request("message to delete not found"))?;
        Ok(Value::Bool(true).into())
    }

    fn member_change(&self, supergroups_only: bool) -> Result<Reply, ApiError> {
        let chat = require_chat(self.params, "chat_id")?;
        require(self.params, "user_id")?;
        if supergroups_only && chat > SUPERGROUP_IDS_BELOW {
            return Err(ApiError::bad_request(
                "method is available only for supergroups",
            ));
        }
        if chat > 0 {
            return Err(ApiError::bad_request(
                "chat member status can't be changed in private chats",
            ));
        }
        Ok(Value::Bool(true).into())
    }

    fn set_webhook(&self, state: &mut State) -> Result<Reply, ApiError> {
        let url = self.params.get("url").and_then(Value::as_str).unwrap_or("");
        if url.is_empty() {
            return Ok(delete_webhook(self.shared, state, self.params));
        }
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(ApiError::bad_request(
                "bad webhook: An HTTPS URL must be provided for webhook",
            ));
        }
        let secret_token = self.params.get("secret_token").and_then(Value::as_str);
        if let Some(secret) = secret_token {
            let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
            if secret.is_empty() || secret.len() > 256 || !secret.chars().all(allowed) {
                return Err(ApiError::bad_request(
                    "secret token contains unallowed characters",
                ));
            }
        }
        let max_connections = int(self.params, "max_connections").unwrap_or(40);
        let max_connections = u32::try_from(max_connections.clamp(1, 100)).unwrap_or(40);
        let allowed_updates = self.params.get("allowed_updates").and_then(|v| {
            v.as_array().map(|list| {
                list.iter()
                    .filter_map(|u| u.as_str().map(str::to_owned))
                    .collect()
            })
        });
        let drop_pending_updates =
            self.params.get("drop_pending_updates") == Some(&Value::Bool(true));
        if drop_pending_updates {
            state.updates.clear();
        }
        let hook = WebhookState {
            url: url.to_owned(),
            secret_token: secret_token.map(str::to_owned),
            allowed_updates,
            max_connections,
            drop_pending_updates,
        };
        let description = if state.webhook.as_ref().is_some_and(|h| h.url == hook.url) {
            "Webhook is already set"
        } else {
            "Webhook was set"
        };
        state.webhook = Some(hook);
        // Pending long polls must now answer 409.
        self.shared.updates_changed.notify_waiters();
        Ok(Reply {
            result: Value::Bool(true),
            description: Some(description),
        })
    }
}

fn delete_webhook(shared: &Shared, state: &mut State, params: &Map<String, Value>) -> Reply {
    if params.get("drop_pending_updates") == Some(&Value::Bool(true)) {
        state.updates.clear();
    }
    let description = if state.webhook.take().is_some() {
        "Webhook was deleted"
    } else {
        "Webhook is already deleted"
    };
    shared.updates_changed.notify_waiters();
    Reply {
        result: Value::Bool(true),
        description: Some(description),
    }
}

fn webhook_info(state: &State) -> Value {
    let mut info = json!({
        "url": "",
        "has_custom_certificate": false,
        "pending_update_count": state.updates.len(),
    });
    if let Some(hook) = &state.webhook {
        info["url"] = Value::from(hook.url.as_str());
        info["max_connections"] = Value::from(hook.max_connections);
        info["ip_address"] = Value::from("127.0.0.1");
        if let Some(allowed) = &hook.allowed_updates {
            info["allowed_updates"] = json!(allowed);
        }
    }
    info
}

/// Runs every method except getUpdates; the state lock is held for the whole
/// call, which is short and never awaits.
pub(crate) fn call(
    shared: &Shared,
    method: &'static str,
    token: &str,
    params: &Map<String, Value>,
    at: Instant,
) -> Result<Reply, ApiError> {
    let call = Call {
        shared,
        token,
        params,
        at,
    };
    let mut state = lock(&shared.state);
    let state = &mut *state;
    match method {
        "sendMessage" => call.send_message(state),
        "editMessageText" => {
            let text = require_text(params)?;
            call.edit(state, Some(text))
        }
        "editMessageReplyMarkup" => call.edit(state, None),
        "answerCallbackQuery" => {
            require(params, "callback_query_id")?;
            Ok(Value::Bool(true).into())
        }
        "deleteMessage" => call.delete_message(state),
        "sendChatAction" => {
            let chat = require_chat(params, "chat_id")?;
            require(params, "action")?;
            if shared.blocked_chats.contains(&chat) {
                return Err(ApiError::Forbidden("bot was blocked by the user"));
            }
            Ok(Value::Bool(true).into())
        }
        "getMe" => {
            let mut me = bot_user(shared, token);
            me["can_join_groups"] = Value::Bool(true);
            me["can_read_all_group_messages"] = Value::Bool(false);
            me["supports_inline_queries"] = Value::Bool(false);
            me["can_connect_to_business"] = Value::Bool(false);
            me["has_main_web_app"] = Value::Bool(false);
            Ok(me.into())
        }
        "setWebhook" => call.set_webhook(state),
        "deleteWebhook" => Ok(delete_webhook(shared, state, params)),
        "getWebhookInfo" => Ok(webhook_info(state).into()),
        "forwardMessage" => call.duplicate(state, false),
        "copyMessage" => call.duplicate(state, true),
        "banChatMember" => call.member_change(false),
        "restrictChatMember" => call.member_change(true),
        "unbanChatMember" => {
            require_chat(params, "chat_id")?;
            require(params, "user_id")?;
            Ok(Value::Bool(true).into())
        }
        "getChat" => {
            let mut chat = chat_json(require_chat(params, "chat_id")?);
            chat["accent_color_id"] = Value::from(0);
            chat["max_reaction_count"] = Value::from(11);
            Ok(chat.into())
        }
        "getChatMember" => {
            require_chat(params, "chat_id")?;
            require(params, "user_id")?;
            let user = int(params, "user_id").unwrap_or(0);
            let (status, is_bot) = if user == bot_id(token) {
                ("administrator", true)
            } else {
                ("member", false)
            };
            Ok(json!({
                "status": status,
                "user": { "id": user, "is_bot": is_bot, "first_name": "Test" },
            })
            .into())
        }
        "leaveChat" => {
            require_chat(params, "chat_id")?;
            Ok(Value::Bool(true).into())
        }
        "setMyCommands" => {
            let Some(commands) = params.get("commands").filter(|c| c.is_array()) else {
                return Err(ApiError::bad_request("commands is empty"));
            };
            state.commands = commands.clone();
            Ok(Value::Bool(true).into())
        }
        "getMyCommands" => Ok(state.commands.clone().into()),
        media => match MEDIA.iter().find(|(name, _)| *name == media) {
            Some((_, field)) => call.send_media(state, field),
            None => Ok(Value::Bool(true).into()),
        },
    }
}

/// getUpdates, long polling up to `timeout` seconds without holding the lock.
pub(crate) async fn get_updates(
    shared: &Shared,
    params: &Map<String, Value>,
) -> Result<Reply, ApiError> {
    let offset = int(params, "offset").unwrap_or(0);
    let limit = usize::try_from(int(params, "limit").unwrap_or(100).clamp(1, 100)).unwrap_or(100);
    let timeout = u64::try_from(int(params, "timeout").unwrap_or(0).clamp(0, 3600)).unwrap_or(0);
    let generation = {
        let mut state = lock(&shared.state);
        if state.webhook.is_some() {
            return Err(ApiError::Conflict(WEBHOOK_ACTIVE));
        }
        state.confirm(offset);
        if let Some(allowed) = params.get("allowed_updates").and_then(Value::as_array) {
            let allowed: Vec<String> = allowed
                .iter()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect();
            state.allowed_updates = (!allowed.is_empty()).then_some(allowed);
        }
        state.poll_generation += 1;
        state.poll_generation
    };
    // Wakes an older poll so it can notice it was superseded.
    shared.updates_changed.notify_waiters();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    loop {
        let changed = shared.updates_changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        {
            let state = lock(&shared.state);
            if state.poll_generation != generation {
                return Err(ApiError::Conflict(TERMINATED));
            }
            if state.webhook.is_some() {
                return Err(ApiError::Conflict(WEBHOOK_ACTIVE));
            }
            let batch: Vec<Value> = state
                .updates
                .iter()
                .filter(|(id, update)| *id >= offset && state.allows(update))
                .take(limit)
                .map(|(_, update)| update.clone())
                .collect();
            if !batch.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(Value::Array(batch).into());
            }
        }
        // On timeout the loop runs once more and answers with what it has.
        let _ = tokio::time::timeout_at(deadline, changed).await;
    }
}
