//! Conformance of the fake Bot API to the Bot API 10.2 schema: every method in the schema
//! is called over real HTTP with plausible parameters (built from its required
//! parameters), must answer `{"ok":true}`, and its `result` is checked recursively
//! against the return type the schema's description names — every required field present
//! with the right JSON type, every present field typed as the schema says, no field the
//! type does not have, unions (`Message or True`, `ChatMember`) accepted in any of their
//! forms.
//!
//! The schema is read from `$EDGEBOT_SHARED_DATA/botapi/bot-api-10.2.json` (default
//! `../shared/data`); it is not copied into the repository. The return types are read
//! from the schema's prose here, independently of the fake's own table, so a mistake in
//! one cannot hide in the other.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::Bytes;
use edgebot::fake::botapi::{FakeBotApi, FakeConfig};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};

const TOKEN: &str = "123456:CONFORMANCE";
/// A supergroup: most chat methods are allowed there.
const CHAT: i64 = -1_001_234_567_890;
const USER: i64 = 42;

/// The schema, or `None` (after printing why) when it is absent and the environment
/// allows skipping; absent without that permission is a failure, not a silent pass.
fn schema() -> Option<Schema> {
    let base = std::env::var_os("EDGEBOT_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let path = base.join("botapi/bot-api-10.2.json");
    match std::fs::read(&path) {
        Ok(bytes) => {
            let doc: Value = serde_json::from_slice(&bytes).expect("the schema is JSON");
            Some(Schema {
                methods: doc["methods"].as_object().expect("methods").clone(),
                types: doc["types"].as_object().expect("types").clone(),
            })
        }
        Err(e) if std::env::var("EDGEBOT_SKIP_MISSING_DATA").as_deref() == Ok("1") => {
            println!("SKIPPED: the Bot API schema {} ({e})", path.display());
            None
        }
        Err(e) => panic!(
            "the Bot API schema {} is missing ({e}); set EDGEBOT_SHARED_DATA to the shared \
             data folder, or EDGEBOT_SKIP_MISSING_DATA=1 to skip",
            path.display()
        ),
    }
}

struct Schema {
    methods: Map<String, Value>,
    types: Map<String, Value>,
}

const PRIMITIVES: &[&str] = &["True", "Integer", "String", "Boolean", "Float"];

impl Schema {
    fn fields<'a>(&'a self, ty: &str) -> Option<&'a Vec<Value>> {
        self.types.get(ty)?["fields"].as_array()
    }

    /// The return type named by a method's description: in every sentence that speaks
    /// of returning, the known type names (optionally "Array of ..."), in order, joined
    /// with " or " (`Message or True` for edits of possibly inline messages).
    fn return_type(&self, method: &str) -> String {
        let description = self.methods[method]["description"].as_str().unwrap_or("");
        let mut found: Vec<String> = Vec::new();
        for sentence in description.split(". ") {
            if !sentence.to_lowercase().contains("return") {
                continue;
            }
            let words: Vec<&str> = sentence
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .collect();
            for (i, word) in words.iter().enumerate() {
                let known = PRIMITIVES.contains(word) || self.types.contains_key(*word);
                if !known || !word.starts_with(|c: char| c.is_ascii_uppercase()) {
                    continue;
                }
                let array = i >= 2 && words[i - 2] == "Array" && words[i - 1] == "of";
                let ty = if array {
                    format!("Array of {word}")
                } else {
                    (*word).to_owned()
                };
                if !found.contains(&ty) {
                    found.push(ty);
                }
            }
        }
        found.join(" or ")
    }

    /// The forms an abstract type (one without fields) can take: the names listed as
    /// "  - Name" in its description, plus `String` or `Array of X` named before the list.
    fn variants(&self, ty: &str) -> Vec<String> {
        let description = self.types[ty]["description"].as_str().unwrap_or("");
        let mut parts = description.split("  - ");
        let prefix = parts.next().unwrap_or("");
        let mut variants: Vec<String> = parts
            .filter_map(|item| item.split_whitespace().next())
            .map(|name| name.trim_end_matches([',', '.']).to_owned())
            .collect();
        if prefix.contains("a String") {
            variants.push("String".to_owned());
        }
        if let Some(at) = prefix.find("Array of ") {
            let rest = &prefix[at + "Array of ".len()..];
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric()).collect();
            variants.push(format!("Array of {name}"));
        }
        variants
    }

    /// Checks `value` against the type expression `ty`, appending what is wrong.
    fn check(&self, ty: &str, value: &Value, path: &str, errors: &mut Vec<String>) {
        if ty.contains(" or ") {
            let fits = ty.split(" or ").any(|one| {
                let mut scratch = Vec::new();
                self.check(one, value, path, &mut scratch);
                scratch.is_empty()
            });
            if !fits {
                errors.push(format!("{path}: {value} is none of {ty}"));
            }
            return;
        }
        if let Some(item) = ty.strip_prefix("Array of ") {
            let Some(items) = value.as_array() else {
                errors.push(format!("{path}: expected {ty}, got {value}"));
                return;
            };
            for (i, element) in items.iter().enumerate() {
                self.check(item, element, &format!("{path}[{i}]"), errors);
            }
            return;
        }
        let fits = match ty {
            "Integer" => Some(value.is_i64() || value.is_u64()),
            "Float" => Some(value.is_number()),
            "String" => Some(value.is_string()),
            "Boolean" => Some(value.is_boolean()),
            "True" => Some(value == &Value::Bool(true)),
            _ => None,
        };
        if let Some(fits) = fits {
            if !fits {
                errors.push(format!("{path}: expected {ty}, got {value}"));
            }
            return;
        }
        let Some(fields) = self.fields(ty) else {
            errors.push(format!("{path}: type {ty} is not in the schema"));
            return;
        };
        if fields.is_empty() {
            let variants = self.variants(ty);
            if variants.is_empty() {
                // "Currently holds no information": any object.
                if !value.is_object() {
                    errors.push(format!("{path}: expected {ty} (an object), got {value}"));
                }
                return;
            }
            self.check(&variants.join(" or "), value, path, errors);
            return;
        }
        let Some(object) = value.as_object() else {
            errors.push(format!("{path}: expected {ty} (an object), got {value}"));
            return;
        };
        let mut known = BTreeSet::new();
        for field in fields {
            let name = field["name"].as_str().unwrap_or("");
            let field_type = field["type"].as_str().unwrap_or("");
            known.insert(name);
            match object.get(name) {
                Some(present) => self.check(field_type, present, &format!("{path}.{name}"), errors),
                None if field["required"] == Value::Bool(true) => {
                    errors.push(format!("{path}: {ty} lacks required field {name}"));
                }
                None => {}
            }
        }
        for name in object.keys() {
            if !known.contains(name.as_str()) {
                errors.push(format!("{path}: {ty} has no field {name}"));
            }
        }
    }

    /// A plausible value for a parameter of type `ty`: the names the fake (and Telegram)
    /// look at get meaningful values, anything else a value of the right JSON type.
    fn sample(&self, name: &str, ty: &str, depth: usize) -> Value {
        match name {
            "chat_id" | "from_chat_id" => return json!(CHAT),
            "user_id" => return json!(USER),
            "text" => return json!("hello"),
            "url" => return json!("https://example.com/hook"),
            "currency" => return json!("XTR"),
            "prices" => return json!([{"label": "Stars", "amount": 5}]),
            "action" => return json!("typing"),
            "commands" => return json!([{"command": "start", "description": "Start"}]),
            _ => {}
        }
        let ty = ty.split(" or ").next().unwrap_or(ty);
        if let Some(item) = ty.strip_prefix("Array of ") {
            // "Array of InputMediaAudio, InputMediaDocument ... and InputMediaVideo".
            let item = item.split([',', ' ']).next().unwrap_or(item);
            return if depth > 4 {
                json!([])
            } else {
                json!([self.sample(name, item, depth + 1)])
            };
        }
        match ty {
            "Integer" => return json!(1),
            "Float" => return json!(1.5),
            "String" => return json!("test"),
            "Boolean" | "True" => return json!(true),
            "InputFile" => return json!("fake-file-id"),
            _ => {}
        }
        let Some(fields) = self.fields(ty) else {
            return json!({});
        };
        if fields.is_empty() || depth > 4 {
            return match self.variants(ty).first() {
                Some(first) if depth <= 4 => self.sample(name, first, depth + 1),
                _ => json!({}),
            };
        }
        let mut object = Map::new();
        for field in fields.iter().filter(|f| f["required"] == Value::Bool(true)) {
            let field_name = field["name"].as_str().unwrap_or("");
            let description = field["description"].as_str().unwrap_or("");
            let value = match discriminator(description) {
                Some(constant) => json!(constant),
                None => self.sample(
                    field_name,
                    field["type"].as_str().unwrap_or("String"),
                    depth + 1,
                ),
            };
            object.insert(field_name.to_owned(), value);
        }
        Value::Object(object)
    }
}

/// `always 'x'` / `must be x`: the value that tells a union's forms apart.
fn discriminator(description: &str) -> Option<String> {
    for marker in ["always '", "must be '", "must be "] {
        if let Some(at) = description.find(marker) {
            let word: String = description[at + marker.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            // "must be one of 'a', 'b'" names no single value.
            if !word.is_empty() && word != "one" {
                return Some(word);
            }
        }
    }
    None
}

async fn post(addr: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::post(path)
        .header(HOST, "127.0.0.1")
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(body).unwrap())))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| json!({"unparsable": String::from_utf8_lossy(&bytes)}));
    (status, body)
}

async fn call(api: &FakeBotApi, method: &str, params: &Value) -> (u16, Value) {
    post(api.addr(), &format!("/bot{TOKEN}/{method}"), params).await
}

/// A fresh message of the bot's in `CHAT`, for methods that act on one.
async fn fresh_message(api: &FakeBotApi) -> i64 {
    let (status, body) = call(api, "sendMessage", &json!({"chat_id": CHAT, "text": "hi"})).await;
    assert_eq!(status, 200, "sendMessage: {body}");
    body["result"]["message_id"].as_i64().unwrap()
}

/// The parameters for one call: every required parameter, plus the chat and message
/// (optional where an inline message may be meant instead) so that edits find theirs.
async fn params_for(schema: &Schema, api: &FakeBotApi, method: &str) -> Value {
    let fields = schema.methods[method]["fields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let has = |name: &str| fields.iter().any(|f| f["name"] == name);
    let mut params = Map::new();
    for field in fields.iter().filter(|f| f["required"] == Value::Bool(true)) {
        let name = field["name"].as_str().unwrap_or("");
        let ty = field["type"].as_str().unwrap_or("String");
        params.insert(name.to_owned(), schema.sample(name, ty, 0));
    }
    if has("message_id") || has("message_ids") {
        let id = fresh_message(api).await;
        if has("chat_id") {
            params.insert("chat_id".to_owned(), json!(CHAT));
        }
        if has("message_id") {
            params.insert("message_id".to_owned(), json!(id));
        } else {
            params.insert("message_ids".to_owned(), json!([id]));
        }
    }
    match method {
        "editMessageText" => {
            params.insert("text".to_owned(), json!("edited"));
        }
        "sendMediaGroup" => {
            // An album has two to ten items.
            let album = json!([{"type": "photo", "media": "a"}, {"type": "photo", "media": "b"}]);
            params.insert("media".to_owned(), album);
        }
        "sendMessageDraft" => {
            // Drafts go to private chats only.
            params.insert("chat_id".to_owned(), json!(USER));
        }
        "editMessageReplyMarkup" => {
            let keyboard = json!({"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]});
            params.insert("reply_markup".to_owned(), keyboard);
        }
        _ => {}
    }
    Value::Object(params)
}

#[tokio::test]
async fn every_method_answers_shaped_as_the_schema_says() {
    let Some(schema) = schema() else { return };
    assert!(
        schema.methods.len() >= 185,
        "expected the 185 methods of Bot API 10.2, found {}",
        schema.methods.len()
    );
    let api = FakeBotApi::start(FakeConfig::default()).await.unwrap();
    let mut errors = Vec::new();
    let mut failing = BTreeSet::new();
    for method in schema.methods.keys() {
        let before = errors.len();
        let returns = schema.return_type(method);
        if returns.is_empty() {
            errors.push(format!("{method}: no return type found in its description"));
            failing.insert(method.clone());
            continue;
        }
        let params = params_for(&schema, &api, method).await;
        let (status, body) = call(&api, method, &params).await;
        if status != 200 || body["ok"] != Value::Bool(true) {
            errors.push(format!("{method}: HTTP {status} {body} for {params}"));
            failing.insert(method.clone());
            continue;
        }
        let mut found = Vec::new();
        schema.check(&returns, &body["result"], "result", &mut found);
        errors.extend(
            found
                .into_iter()
                .map(|e| format!("{method} ({returns}): {e}")),
        );
        if method == "setWebhook" {
            // A webhook would make getUpdates answer 409; this test is not about that.
            call(&api, "deleteWebhook", &json!({})).await;
        }
        if errors.len() > before {
            failing.insert(method.clone());
        }
    }
    api.shutdown().await;
    assert!(
        errors.is_empty(),
        "{} of {} methods do not conform ({}):\n{}",
        failing.len(),
        schema.methods.len(),
        failing.into_iter().collect::<Vec<_>>().join(", "),
        errors.join("\n")
    );
}

#[tokio::test]
async fn required_parameters_are_checked_and_unknown_methods_are_not_found() {
    let Some(schema) = schema() else { return };
    let api = FakeBotApi::start(FakeConfig::default()).await.unwrap();
    // A method the fake does not model beyond its signature still checks it.
    assert!(schema.methods.contains_key("getStickerSet"));
    let (status, body) = call(&api, "getStickerSet", &json!({})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["ok"], false);
    assert!(
        body["description"]
            .as_str()
            .unwrap_or("")
            .starts_with("Bad Request: "),
        "{body}"
    );
    // Names are matched without regard to case, as Telegram does.
    let (status, body) = call(&api, "GETME", &json!({})).await;
    assert_eq!((status, &body["result"]["is_bot"]), (200, &json!(true)));

    let (status, body) = call(&api, "sendTelepathy", &json!({"chat_id": 1})).await;
    assert!(!schema.methods.contains_key("sendTelepathy"));
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 404, "description": "Not Found"})
    );
    api.shutdown().await;
}
