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
use super::html;
use super::shape::{self, Hints, Method};
use super::{Fault, Shared, lock};
use crate::shutdown::Shutdown;

/// Keys of an update that hold a message the bot may later reply to, edit or delete.
pub(crate) const MESSAGE_KEYS: &[&str] = &[
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_message",
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

/// The Bot API method called `name` (in any case), if there is one.
pub(crate) fn canonical(name: &str) -> Option<&'static Method> {
    shape::method(name)
}

/// The webhook a bot registered with `setWebhook`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookState {
    pub(crate) url: String,
    pub secret_token: Option<String>,
    pub allowed_updates: Option<Vec<String>>,
    pub(crate) max_connections: u32,
    /// Whether the `setWebhook` call asked to drop pending updates (they were).
    pub(crate) drop_pending_updates: bool,
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
        let method =
            method.map(|m| canonical(m).map_or_else(|| m.to_owned(), |m| m.name.to_owned()));
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

    /// Queues an already numbered update for getUpdates.
    pub(crate) fn queue(&mut self, id: i64, update: Value) {
        self.updates.push_back((id, update));
    }

    pub(crate) fn pending_updates(&self) -> usize {
        self.updates.len()
    }

    /// The id the next message in `chat` gets.
    pub(crate) fn next_message_id(&self, chat: i64) -> i64 {
        self.chats
            .get(&chat)
            .map_or(0, |c| c.last_message_id)
            .saturating_add(1)
    }

    /// The queued faults, for the control API.
    pub(crate) fn faults_json(&self) -> Value {
        let faults: Vec<Value> = self
            .faults
            .iter()
            .map(|queued| {
                let mut fault = match &queued.fault {
                    Fault::TooManyRequests { retry_after } => {
                        json!({ "fault": "429", "retry_after": retry_after })
                    }
                    Fault::ServerError(status) => json!({ "fault": "5xx", "status": status }),
                    Fault::Delay(delay) => json!({
                        "fault": "slow",
                        "ms": u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    }),
                    Fault::DropConnection => json!({ "fault": "drop" }),
                };
                fault["times"] = json!(queued.remaining);
                fault["method"] = json!(queued.method);
                fault
            })
            .collect();
        Value::Array(faults)
    }

    /// Forgets every queued fault; returns how many there were.
    pub(crate) fn clear_faults(&mut self) -> usize {
        std::mem::take(&mut self.faults).len()
    }

    fn learn_messages(&mut self, update: &Value) {
        let callback_message = update.get("callback_query").and_then(|q| q.get("message"));
        let messages = MESSAGE_KEYS.iter().filter_map(|key| update.get(*key));
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

pub(crate) fn unix_now() -> i64 {
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

/// What `params[field]` shows once Telegram has read it under the call's `parse_mode`:
/// with `HTML`, the text without its markup, or the refusal Telegram answers; with no
/// parse mode (or one the fake does not parse), the text as sent.
fn shown(params: &Map<String, Value>, field: &str) -> Result<Option<String>, ApiError> {
    let Some(raw) = params.get(field).and_then(Value::as_str) else {
        return Ok(None);
    };
    let html = params
        .get("parse_mode")
        .and_then(Value::as_str)
        .is_some_and(|mode| mode.eq_ignore_ascii_case("html"));
    if !html {
        return Ok(Some(raw.to_owned()));
    }
    html::parse_html(raw)
        .map(Some)
        .map_err(|e| ApiError::bad_request(format!("can't parse entities: {e}")))
}

/// The `text` of a message, as sent, once Telegram would take it: parsed, not empty,
/// and within the limit after parsing.
fn require_text(params: &Map<String, Value>) -> Result<&str, ApiError> {
    let shown = shown(params, "text")?.unwrap_or_default();
    if shown.trim().is_empty() {
        return Err(ApiError::bad_request("message text is empty"));
    }
    if shown.encode_utf16().count() > TEXT_LIMIT {
        return Err(ApiError::bad_request("message is too long"));
    }
    Ok(params.get("text").and_then(Value::as_str).unwrap_or(""))
}

/// The `caption` of a message, as sent, once Telegram would take it (parsed, within the
/// limit after parsing).
fn caption(params: &Map<String, Value>) -> Result<Option<&str>, ApiError> {
    if shown(params, "caption")?.is_some_and(|c| c.encode_utf16().count() > CAPTION_LIMIT) {
        return Err(ApiError::bad_request("message caption is too long"));
    }
    Ok(params.get("caption").and_then(Value::as_str))
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
pub(crate) fn chat_json(id: i64) -> Value {
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
    /// The bot's own message that an edit names, refused as Telegram refuses it: in a
    /// chat that blocked the bot, when unknown, or when someone else sent it.
    fn editable<'s>(
        &self,
        state: &'s mut State,
        chat: i64,
        id: i64,
    ) -> Result<&'s mut MessageState, ApiError> {
        if self.shared.blocked_chats.contains(&chat) {
            return Err(ApiError::Forbidden("bot was blocked by the user"));
        }
        let message = state
            .message_mut(chat, id)
            .ok_or_else(|| ApiError::bad_request("message to edit not found"))?;
        if !message.by_bot {
            return Err(ApiError::bad_request("message can't be edited"));
        }
        Ok(message)
    }

    /// Keeps a message the bot sends with this call's `reply_markup`, for later edits;
    /// returns its id.
    fn store_sent(&self, state: &mut State, chat: i64, text: Option<&str>) -> i64 {
        state.store_message(
            chat,
            MessageState {
                by_bot: true,
                text: hash_text(text),
                markup: hash_markup(self.params.get("reply_markup")),
            },
        )
    }

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

    /// sendMessageDraft: a draft streamed to a private chat. Drafts are for private
    /// chats only; elsewhere Telegram answers `TEXTDRAFT_PEER_INVALID`. The text may be
    /// empty (a "Thinking…" placeholder); nothing is stored.
    fn send_draft(&self) -> Result<Reply, ApiError> {
        let chat = require_chat(self.params, "chat_id")?;
        require(self.params, "draft_id")?;
        if self.shared.blocked_chats.contains(&chat) {
            return Err(ApiError::Forbidden("bot was blocked by the user"));
        }
        if chat < 0 {
            return Err(ApiError::bad_request("TEXTDRAFT_PEER_INVALID"));
        }
        let text = shown(self.params, "text")?.unwrap_or_default();
        if text.encode_utf16().count() > TEXT_LIMIT {
            return Err(ApiError::bad_request("message is too long"));
        }
        Ok(Value::Bool(true).into())
    }

    fn send_message(&self, state: &mut State) -> Result<Reply, ApiError> {
        let chat = require_chat(self.params, "chat_id")?;
        let text = require_text(self.params)?;
        admit_send(self.shared, state, chat, self.at)?;
        let id = self.store_sent(state, chat, Some(text));
        let mut message = self.message(chat, id);
        self.echo(&mut message, &["text", "entities", "message_thread_id"]);
        Ok(Value::Object(message).into())
    }

    /// Every send that returns its `Message` except sendMessage: photos, documents,
    /// invoices, dice... What was sent goes into the message's field named after the
    /// method (`sendVideoNote` fills `video_note`), shaped as its type requires.
    fn send(&self, state: &mut State, spec: &Method) -> Result<Reply, ApiError> {
        let chat = require_chat(self.params, "chat_id")?;
        self.require_all(spec)?;
        let caption = caption(self.params)?;
        admit_send(self.shared, state, chat, self.at)?;
        let id = self.store_sent(state, chat, caption);
        let mut message = self.message(chat, id);
        if let Some((field, ty)) = spec.content {
            message.insert(field.to_owned(), self.content(field, ty, chat, id));
        }
        self.echo(
            &mut message,
            &["caption", "caption_entities", "message_thread_id"],
        );
        Ok(Value::Object(message).into())
    }

    /// Refuses a call that lacks a required parameter, the way Telegram words it.
    fn require_all(&self, spec: &Method) -> Result<(), ApiError> {
        for name in spec.required {
            if is_empty(self.params.get(*name)) {
                let description = match spec.content {
                    Some((field, _)) if field == *name => {
                        format!("there is no {field} in the request")
                    }
                    _ => format!("{name} is empty"),
                };
                return Err(ApiError::bad_request(description));
            }
        }
        Ok(())
    }

    /// What a send put into its message: files get ids of their own, an invoice its
    /// total, a poll its options, anything else the plausible value of its type (with
    /// the parameters of the same name, such as a location's `latitude`).
    fn content(&self, field: &str, ty: &str, chat: i64, id: i64) -> Value {
        let file_id = format!("fake-{field}-{chat}-{id}");
        let unique_id = format!("fake{}{id}", chat.unsigned_abs());
        if ty == "Array of PhotoSize" {
            // Telegram answers with several sizes of the photo, smallest first.
            return json!([
                { "file_id": format!("{file_id}-s"), "file_unique_id": format!("{unique_id}s"),
                  "width": 90, "height": 68 },
                { "file_id": file_id, "file_unique_id": unique_id, "width": 640, "height": 480 },
            ]);
        }
        let hints = Hints {
            params: self.params,
            now: unix_now(),
        };
        let mut value = shape::plausible(ty, field, &hints, 0);
        let Value::Object(object) = &mut value else {
            return value;
        };
        if object.contains_key("file_id") {
            object.insert("file_id".to_owned(), json!(file_id));
            object.insert("file_unique_id".to_owned(), json!(unique_id));
        }
        match field {
            "invoice" => {
                let prices = self.params.get("prices").and_then(Value::as_array);
                let total: i64 = prices
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.get("amount").and_then(int_of))
                    .fold(0, i64::saturating_add);
                object.insert("total_amount".to_owned(), json!(total));
                let start = self.params.get("start_parameter").cloned();
                object.insert("start_parameter".to_owned(), start.unwrap_or(json!("")));
            }
            "poll" => {
                let options = self.params.get("options").and_then(Value::as_array);
                let options: Vec<Value> = options
                    .into_iter()
                    .flatten()
                    .map(|o| {
                        let text = o.get("text").unwrap_or(o);
                        json!({ "text": text.as_str().unwrap_or(""), "voter_count": 0 })
                    })
                    .collect();
                object.insert("options".to_owned(), Value::Array(options));
                object.insert("id".to_owned(), json!(format!("{unique_id}poll")));
            }
            "dice" => {
                // A die that always shows the same face would be easy to overlook.
                object.insert("value".to_owned(), json!(id.rem_euclid(6) + 1));
            }
            _ => {}
        }
        // What the overrides built by hand (poll options) gets its required fields.
        shape::complete(ty, &mut value, &hints, 0);
        value
    }

    /// The edits this fake does not track in detail (captions, media, live
    /// locations, game scores, checklists): inline messages answer `true`, others
    /// must be a known message of the bot's and come back as edited.
    fn edit_other(&self, state: &mut State, spec: &Method) -> Result<Reply, ApiError> {
        self.require_all(spec)?;
        if spec.returns.contains("True") && !is_empty(self.params.get("inline_message_id")) {
            return Ok(Value::Bool(true).into());
        }
        let (chat, id) = (
            require_chat(self.params, "chat_id")?,
            require_message_id(self.params)?,
        );
        let caption = caption(self.params)?;
        let message = self.editable(state, chat, id)?;
        if spec.name == "editMessageCaption" {
            message.text = hash_text(caption);
        }
        if self.params.contains_key("reply_markup") {
            message.markup = hash_markup(self.params.get("reply_markup"));
        }
        let mut answer = self.message(chat, id);
        answer.insert("edit_date".to_owned(), Value::from(unix_now()));
        self.echo(&mut answer, &["caption", "caption_entities"]);
        Ok(Value::Object(answer).into())
    }

    /// A method this fake does not model beyond its signature: the required
    /// parameters are checked and the answer is what the method returns, plausibly.
    fn generic(&self, state: &mut State, spec: &Method) -> Result<Reply, ApiError> {
        if spec.returns == "Message" && spec.name.starts_with("send") {
            return self.send(state, spec);
        }
        if spec.returns == "Message or True" || spec.returns == "Message" {
            return self.edit_other(state, spec);
        }
        self.require_all(spec)?;
        let result = match spec.returns {
            "True" => Value::Bool(true),
            "Integer" => json!(1),
            "String" if spec.name.contains("Token") => json!(format!(
                "{}:FAKE-managed-bot-token",
                bot_id(self.token).saturating_add(1)
            )),
            "String" if spec.name.contains("Link") => json!("https://t.me/+fakeinvite"),
            "String" => json!("fake"),
            array if array.starts_with("Array of ") => json!([]),
            object => {
                let hints = Hints {
                    params: self.params,
                    now: unix_now(),
                };
                shape::plausible(object, "", &hints, 0)
            }
        };
        Ok(result.into())
    }

    /// forwardMessages and copyMessages: the messages found are duplicated in order,
    /// the others skipped, as Telegram does.
    fn duplicate_many(&self, state: &mut State, spec: &Method) -> Result<Reply, ApiError> {
        let chat = require_chat(self.params, "chat_id")?;
        let from_chat = require_chat(self.params, "from_chat_id")?;
        self.require_all(spec)?;
        let ids: Vec<i64> = match self.params.get("message_ids") {
            Some(Value::Array(ids)) => ids.iter().filter_map(int_of).collect(),
            _ => return Err(ApiError::bad_request("message_ids is empty")),
        };
        admit_send(self.shared, state, chat, self.at)?;
        let mut sent = Vec::new();
        for source_id in ids {
            let Some(source) = state
                .chats
                .get(&from_chat)
                .and_then(|c| c.messages.get(&source_id))
                .copied()
            else {
                continue;
            };
            let id = state.store_message(
                chat,
                MessageState {
                    by_bot: true,
                    ..source
                },
            );
            sent.push(json!({ "message_id": id }));
        }
        Ok(Value::Array(sent).into())
    }

    /// sendMediaGroup: one message per item of `media`, sharing a `media_group_id`.
    fn send_media_group(&self, state: &mut State, spec: &Method) -> Result<Reply, ApiError> {
        let chat = require_chat(self.params, "chat_id")?;
        self.require_all(spec)?;
        let Some(items) = self.params.get("media").and_then(Value::as_array) else {
            return Err(ApiError::bad_request("media is empty"));
        };
        if !(2..=10).contains(&items.len()) {
            return Err(ApiError::bad_request(
                "wrong number of media in the album; must be from 2 to 10",
            ));
        }
        // Each item's caption is read under that item's own parse_mode.
        for item in items.iter().filter_map(Value::as_object) {
            caption(item)?;
        }
        admit_send(self.shared, state, chat, self.at)?;
        let group = format!("fakegroup{}", state.next_message_id(chat));
        let mut sent = Vec::new();
        for item in items {
            let kind = item.get("type").and_then(Value::as_str).unwrap_or("");
            let ty = match kind {
                "photo" => "Array of PhotoSize",
                "video" => "Video",
                "audio" => "Audio",
                "document" => "Document",
                "animation" => "Animation",
                "live_photo" => "LivePhoto",
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "unsupported media type {kind:?} in the album"
                    )));
                }
            };
            let caption = item.get("caption").and_then(Value::as_str);
            let id = state.store_message(
                chat,
                MessageState {
                    by_bot: true,
                    text: hash_text(caption),
                    markup: hash_markup(None),
                },
            );
            let mut message = self.message(chat, id);
            message.insert("media_group_id".to_owned(), json!(group));
            message.insert(kind.to_owned(), self.content(kind, ty, chat, id));
            if let Some(caption) = caption {
                message.insert("caption".to_owned(), json!(caption));
            }
            sent.push(Value::Object(message));
        }
        Ok(Value::Array(sent).into())
    }

    /// Applies an edit to a tracked message; inline messages (by
    /// `inline_message_id`) are not tracked and always succeed.
    fn edit(&self, state: &mut State, new_text: Option<&str>) -> Result<Reply, ApiError> {
        if !is_empty(self.params.get("inline_message_id")) {
            return Ok(Value::Bool(true).into());
        }
        let chat = require_chat(self.params, "chat_id")?;
        let id = require_message_id(self.params)?;
        let message = self.editable(state, chat, id)?;
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
/// call, which is short and never awaits. Whatever the method, a successful
/// result is completed to carry every field its type requires.
pub(crate) fn call(
    shared: &Shared,
    spec: &'static Method,
    token: &str,
    params: &Map<String, Value>,
    at: Instant,
) -> Result<Reply, ApiError> {
    let mut reply = run(shared, spec, token, params, at)?;
    let hints = Hints {
        params,
        now: unix_now(),
    };
    shape::complete(spec.returns, &mut reply.result, &hints, 0);
    Ok(reply)
}

fn run(
    shared: &Shared,
    spec: &'static Method,
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
    match spec.name {
        "sendMessage" => call.send_message(state),
        "sendMessageDraft" => call.send_draft(),
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
            let id = require_chat(params, "chat_id")?;
            let mut chat = chat_json(id);
            chat["accent_color_id"] = Value::from(0);
            chat["max_reaction_count"] = Value::from(11);
            // Users accept every kind of gift unless they said otherwise.
            let accepted = id > 0;
            chat["accepted_gift_types"] = json!({
                "unlimited_gifts": accepted,
                "limited_gifts": accepted,
                "unique_gifts": accepted,
                "premium_subscription": accepted,
                "gifts_from_channels": accepted,
            });
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
        "forwardMessages" | "copyMessages" => call.duplicate_many(state, spec),
        "sendMediaGroup" => call.send_media_group(state, spec),
        _ => call.generic(state, spec),
    }
}

/// getUpdates, long polling up to `timeout` seconds without holding the lock. A
/// shutdown ends the wait at once (with what there is), so that stopping the server
/// never waits for a bot's long poll.
pub(crate) async fn get_updates(
    shared: &Shared,
    params: &Map<String, Value>,
    mut shutdown: Shutdown,
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
        // On timeout the loop runs once more and answers with what it has. A
        // shutdown (or a server handle dropped) answers at once.
        let stopped = tokio::select! {
            _ = tokio::time::timeout_at(deadline, changed) => false,
            () = shutdown.wait() => true,
        };
        if stopped {
            return Ok(Value::Array(Vec::new()).into());
        }
    }
}
