//! Configuration: one TOML file plus the `EDGEBOT_*` environment, with defaults that
//! run a useful bot when neither exists.
//!
//! Everything is validated while deserializing, so every error carries the file, line
//! and key it is about. The environment overrides the file; command-line flags override
//! both (they are applied by the caller).
//!
//! Every number has a range, enforced by `integer_in` and `fraction` as the field is
//! read: past a range a value either cannot work (a webhook body limit of zero, more
//! webhook connections than Telegram allows) or breaks an assumption further in (a flood
//! limit whose period rounds to zero, a session lifetime that overflows a timestamp).

pub(crate) mod llm;
pub(crate) mod services;

pub use crate::secret::Secret;
use crate::telegram::types::InlineKeyboardButton;
pub(crate) use llm::{LlmConfig, MODE_PREFIX, PersonalityConfig, ProviderConfig, ProviderKind};
use serde::{Deserialize, Serialize};
pub(crate) use services::ServiceConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole configuration of one bot.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub bot: BotConfig,
    pub telegram: TelegramConfig,
    pub admin: AdminConfig,
    pub storage: StorageConfig,
    pub limits: LimitsConfig,
    pub models: ModelsConfig,
    /// Routes added to (or replacing, by the same trigger) the built-in ones.
    pub(crate) routes: Vec<RouteConfig>,
    /// What answers when no route matched; the built-in fallback when unset.
    pub(crate) fallback: Option<TargetConfig>,
    pub(crate) faq: Vec<FaqEntry>,
    /// Internal HTTP services that routes may name.
    pub(crate) services: Vec<ServiceConfig>,
    /// LLM providers and the conversation settings.
    pub(crate) llm: LlmConfig,
    /// Who answers an `llm` route or `/mode`'s choice: a prompt, a provider, a model.
    pub(crate) personalities: Vec<PersonalityConfig>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BotConfig {
    /// The bot's @username; taken from getMe when talking to Telegram.
    pub username: Option<String>,
    pub token: Option<Secret>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelegramConfig {
    /// `http://` or `https://` and a host: what the Bot API client accepts.
    #[serde(deserialize_with = "http_url")]
    pub api_url: String,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<Secret>,
    pub listen: SocketAddr,
    /// Telegram's `max_connections` for the webhook, in the 1..=100 Telegram allows.
    #[serde(deserialize_with = "integer_in::<_, _, 1, 100>")]
    pub(crate) max_connections: u8,
    /// How long one long poll waits for updates: 0..=50, as Telegram allows.
    #[serde(deserialize_with = "integer_in::<_, _, 0, 50>")]
    pub(crate) poll_timeout_secs: u32,
    /// The limit on one Bot API call (on top of the poll's own wait): 1..=300.
    #[serde(deserialize_with = "integer_in::<_, _, 1, 300>")]
    pub(crate) request_timeout_secs: u32,
    /// Largest webhook body accepted, in bytes: 1 KiB..=16 MiB. An update is a few KiB;
    /// below 1 KiB even small ones would be refused.
    #[serde(deserialize_with = "integer_in::<_, _, 1024, 16_777_216>")]
    pub max_body_bytes: usize,
}

impl Default for TelegramConfig {
    fn default() -> Self {
        TelegramConfig {
            api_url: "https://api.telegram.org".into(),
            webhook_url: None,
            webhook_secret: None,
            listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            max_connections: 40,
            poll_timeout_secs: 30,
            request_timeout_secs: 10,
            max_body_bytes: 1 << 20,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    pub token: Option<Secret>,
    /// A panel session ends after this long unused: 1..=1440 minutes.
    #[serde(deserialize_with = "integer_in::<_, _, 1, 1440>")]
    pub session_idle_minutes: u64,
    /// A panel session ends after this long however much it is used: 1..=720 hours.
    #[serde(deserialize_with = "integer_in::<_, _, 1, 720>")]
    pub session_max_hours: u64,
    /// An API token from `POST /api/v1/auth/token` lasts this long: 1..=1440 minutes.
    #[serde(deserialize_with = "integer_in::<_, _, 1, 1440>")]
    pub token_minutes: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            token: None,
            session_idle_minutes: 30,
            session_max_hours: 12,
            token_minutes: 15,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    /// How long a session lives after its last use (a service's internal user id and
    /// state, or a built-in conversation such as "waiting for your feedback"):
    /// 1 second..=7 days, 24 hours by default.
    #[serde(deserialize_with = "integer_in::<_, _, 1, 604_800>")]
    pub(crate) session_ttl_secs: u64,
    /// Memory the store keeps of its file's pages: 1..=65536 MiB. What the bot touches on
    /// every update (users, the tails of the append-only tables) is far smaller than the
    /// default; the admin API's scans over old events read the rest from the OS.
    #[serde(deserialize_with = "integer_in::<_, _, 1, 65_536>")]
    pub cache_mib: u64,
}

impl StorageConfig {
    /// The store's page cache, in bytes.
    pub fn cache_bytes(&self) -> usize {
        usize::try_from(self.cache_mib << 20).unwrap_or(usize::MAX)
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("data"),
            session_ttl_secs: 86_400,
            cache_mib: 16,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub inbound: InboundLimits,
    pub outbound: OutboundLimits,
}

/// The per-user limit on what reaches the handlers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InboundLimits {
    pub enabled: bool,
    /// Messages a user may send a second, sustained: 1..=100.
    #[serde(deserialize_with = "integer_in::<_, _, 1, 100>")]
    pub(crate) per_second: std::num::NonZeroU32,
    /// Messages a user may send at once before the rate applies: 1..=100.
    #[serde(deserialize_with = "integer_in::<_, _, 1, 100>")]
    pub(crate) burst: std::num::NonZeroU32,
    /// At most one "slow down" notice per user in this many seconds: 1..=86400 (a day).
    #[serde(deserialize_with = "integer_in::<_, _, 1, 86_400>")]
    pub(crate) notice_cooldown_secs: u64,
}

impl Default for InboundLimits {
    fn default() -> Self {
        InboundLimits {
            enabled: true,
            per_second: std::num::NonZeroU32::MIN,
            burst: std::num::NonZeroU32::new(5).expect("5 is not zero"),
            notice_cooldown_secs: 30,
        }
    }
}

/// Telegram's flood limits, applied to every method that writes to a chat.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundLimits {
    pub enabled: bool,
    /// Messages a second over all chats: 1..=1000 (Telegram's own limit is about 30;
    /// a local Bot API server or paid broadcasts allow more).
    #[serde(deserialize_with = "integer_in::<_, _, 1, 1000>")]
    pub global_per_second: std::num::NonZeroU32,
    /// Messages a second to one private chat: 1..=30.
    #[serde(deserialize_with = "integer_in::<_, _, 1, 30>")]
    pub private_per_second: std::num::NonZeroU32,
    /// Messages a minute to one group or channel: 1..=60.
    #[serde(deserialize_with = "integer_in::<_, _, 1, 60>")]
    pub group_per_minute: std::num::NonZeroU32,
}

impl Default for OutboundLimits {
    fn default() -> Self {
        OutboundLimits {
            enabled: true,
            global_per_second: std::num::NonZeroU32::new(30).expect("30 is not zero"),
            private_per_second: std::num::NonZeroU32::MIN,
            group_per_minute: std::num::NonZeroU32::new(20).expect("20 is not zero"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    pub enabled: bool,
    /// A directory with replacement model files; the built-in models when unset.
    pub dir: Option<PathBuf>,
    /// Cosine similarity a text needs to an FAQ question to get its answer: 0.0..=1.0.
    #[serde(deserialize_with = "fraction")]
    pub(crate) faq_threshold: f32,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            enabled: true,
            dir: None,
            faq_threshold: 0.6,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaqEntry {
    pub(crate) question: String,
    pub(crate) answer: String,
}

/// One line of the routing table: a trigger and what answers it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "RawRoute", into = "RawRoute")]
pub(crate) struct RouteConfig {
    pub(crate) trigger: Trigger,
    pub(crate) target: TargetConfig,
    /// Shown by /help for command routes.
    pub(crate) description: Option<String>,
}

/// What makes a route match.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Trigger {
    /// `/name`, lowercased, without the slash.
    Command(String),
    /// Callback data starting with this prefix.
    CallbackPrefix(String),
    /// A message whose whole text equals this, ignoring case and surrounding space.
    Text(String),
    /// Any message in a chat of this kind that nothing more specific matched.
    ChatKind(ChatKindConfig),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ChatKindConfig {
    Private,
    Group,
    Channel,
}

/// What answers a route: a built-in handler, a reply template, an internal service or
/// an LLM personality.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum TargetConfig {
    Handler {
        handler: HandlerName,
    },
    Reply(ReplyTemplate),
    Service {
        service: String,
    },
    /// The `[[personalities]]` entry of this name.
    Llm {
        llm: String,
    },
}

/// The built-in handlers a route may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandlerName {
    Start,
    Help,
    Profile,
    Feedback,
    /// Spam and sentiment of a text, in plain words.
    Analyze,
    /// The nearest FAQ answer, or "I did not understand".
    Fallback,
    /// Swallow the update without answering.
    Ignore,
    /// The personalities as buttons; a press chooses one.
    Mode,
    /// Start a new dialog.
    Reset,
    /// Answer the last question again.
    Retry,
    /// Delete what is stored of the user's conversations.
    Forget,
    /// Tokens spent and left in the budgets.
    Usage,
}

impl HandlerName {
    /// Whether it works on LLM conversations, so that it needs a personality.
    pub(crate) fn converses(self) -> bool {
        matches!(
            self,
            HandlerName::Mode
                | HandlerName::Reset
                | HandlerName::Retry
                | HandlerName::Forget
                | HandlerName::Usage
        )
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            HandlerName::Start => "start",
            HandlerName::Help => "help",
            HandlerName::Profile => "profile",
            HandlerName::Feedback => "feedback",
            HandlerName::Analyze => "analyze",
            HandlerName::Fallback => "fallback",
            HandlerName::Ignore => "ignore",
            HandlerName::Mode => "mode",
            HandlerName::Reset => "reset",
            HandlerName::Retry => "retry",
            HandlerName::Forget => "forget",
            HandlerName::Usage => "usage",
        }
    }
}

/// A reply written in the config: text with placeholders such as `{first_name}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplyTemplate {
    pub(crate) reply: String,
    /// Send as a reply to the incoming message (`reply_parameters`).
    #[serde(default)]
    pub(crate) reply_to_message: bool,
    /// Rows of inline buttons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) keyboard: Vec<Vec<InlineKeyboardButton>>,
}

/// The route as written in TOML: exactly one trigger key and one target.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    callback_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chat_kind: Option<ChatKindConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    handler: Option<HandlerName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reply: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    llm: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    reply_to_message: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    keyboard: Vec<Vec<InlineKeyboardButton>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

impl TryFrom<RawRoute> for RouteConfig {
    type Error = String;

    fn try_from(raw: RawRoute) -> Result<Self, String> {
        let triggers = [
            raw.command
                .map(|c| Trigger::Command(c.trim_start_matches('/').to_ascii_lowercase())),
            raw.callback_prefix.map(Trigger::CallbackPrefix),
            raw.text.map(|t| Trigger::Text(t.trim().to_lowercase())),
            raw.chat_kind.map(Trigger::ChatKind),
        ];
        let mut triggers = triggers.into_iter().flatten();
        let trigger = triggers.next().ok_or(
            "a route needs one trigger: `command`, `callback_prefix`, `text` or `chat_kind`",
        )?;
        if triggers.next().is_some() {
            return Err("a route takes exactly one trigger".into());
        }
        if let Trigger::Command(name) = &trigger {
            let valid = !name.is_empty()
                && name.len() <= 32
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(format!(
                    "command `{name}`: 1 to 32 letters, digits or underscores"
                ));
            }
        }
        for button in raw.keyboard.iter().flatten() {
            match (&button.callback_data, &button.url) {
                (Some(data), None) if (1..=64).contains(&data.len()) => {}
                (None, Some(_)) => {}
                _ => {
                    return Err(format!(
                        "button `{}` needs either `callback_data` (1-64 bytes) or `url`",
                        button.text
                    ));
                }
            }
        }
        let plain = raw.keyboard.is_empty() && !raw.reply_to_message;
        let target = match (raw.handler, raw.reply, raw.service, raw.llm) {
            (Some(handler), None, None, None) if plain => TargetConfig::Handler { handler },
            (None, None, Some(service), None) if plain => TargetConfig::Service { service },
            (None, None, None, Some(llm)) if plain => TargetConfig::Llm { llm },
            (None, Some(reply), None, None) => {
                crate::template::Template::parse(&reply).map_err(|e| e.to_string())?;
                TargetConfig::Reply(ReplyTemplate {
                    reply,
                    reply_to_message: raw.reply_to_message,
                    keyboard: raw.keyboard,
                })
            }
            (None, None, None, None) => {
                return Err("a route needs `handler`, `reply`, `service` or `llm`".into());
            }
            _ => {
                return Err(
                    "a route takes one of `handler`, `service`, `llm` or `reply` (with `keyboard`, `reply_to_message`)"
                        .into(),
                );
            }
        };
        Ok(RouteConfig {
            trigger,
            target,
            description: raw.description,
        })
    }
}

impl From<RouteConfig> for RawRoute {
    fn from(route: RouteConfig) -> RawRoute {
        let mut raw = RawRoute {
            command: None,
            callback_prefix: None,
            text: None,
            chat_kind: None,
            handler: None,
            reply: None,
            service: None,
            llm: None,
            reply_to_message: false,
            keyboard: Vec::new(),
            description: route.description,
        };
        match route.trigger {
            Trigger::Command(c) => raw.command = Some(c),
            Trigger::CallbackPrefix(p) => raw.callback_prefix = Some(p),
            Trigger::Text(t) => raw.text = Some(t),
            Trigger::ChatKind(k) => raw.chat_kind = Some(k),
        }
        match route.target {
            TargetConfig::Handler { handler } => raw.handler = Some(handler),
            TargetConfig::Service { service } => raw.service = Some(service),
            TargetConfig::Llm { llm } => raw.llm = Some(llm),
            TargetConfig::Reply(template) => {
                raw.reply = Some(template.reply);
                raw.reply_to_message = template.reply_to_message;
                raw.keyboard = template.keyboard;
            }
        }
        raw
    }
}

/// An integer type a config number is stored in, with the values it holds.
trait Integer: Sized {
    const LOWEST: i64;
    const HIGHEST: i64;
    fn from_i64(value: i64) -> Option<Self>;
}

macro_rules! integer {
    ($($t:ty),*) => {$(
        impl Integer for $t {
            const LOWEST: i64 = <$t>::MIN as i64;
            // Past i64 there is nothing TOML can write anyway.
            const HIGHEST: i64 = if (<$t>::MAX as u128) < (i64::MAX as u128) {
                <$t>::MAX as i64
            } else {
                i64::MAX
            };
            fn from_i64(value: i64) -> Option<Self> {
                <$t>::try_from(value).ok()
            }
        }
    )*};
}

integer!(u8, u32, u64, usize, i64);

impl Integer for std::num::NonZeroU32 {
    const LOWEST: i64 = 1;
    const HIGHEST: i64 = u32::MAX as i64;
    fn from_i64(value: i64) -> Option<Self> {
        u32::try_from(value).ok().and_then(Self::new)
    }
}

/// What a config integer must be; serde's errors name it, e.g. "expected an integer in
/// 1..=1000".
#[derive(Clone, Copy)]
struct IntegerIn {
    min: i64,
    max: i64,
}

impl<'de> serde::de::Visitor<'de> for IntegerIn {
    type Value = i64;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "an integer in {}..={}", self.min, self.max)
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<i64, E> {
        if (self.min..=self.max).contains(&value) {
            Ok(value)
        } else {
            Err(E::invalid_value(
                serde::de::Unexpected::Signed(value),
                &self,
            ))
        }
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<i64, E> {
        match i64::try_from(value) {
            Ok(value) => self.visit_i64(value),
            Err(_) => Err(E::invalid_value(
                serde::de::Unexpected::Unsigned(value),
                &self,
            )),
        }
    }

    // TOML hands integers past 64 bits over as 128-bit ones.
    fn visit_i128<E: serde::de::Error>(self, value: i128) -> Result<i64, E> {
        match i64::try_from(value) {
            Ok(value) => self.visit_i64(value),
            Err(_) => Err(out_of_range(value, &self)),
        }
    }

    fn visit_u128<E: serde::de::Error>(self, value: u128) -> Result<i64, E> {
        match i64::try_from(value) {
            Ok(value) => self.visit_i64(value),
            Err(_) => Err(out_of_range(value, &self)),
        }
    }
}

/// serde's `invalid_value` for an integer serde's `Unexpected` has no variant for.
fn out_of_range<E: serde::de::Error>(
    value: impl std::fmt::Display,
    expected: &dyn serde::de::Expected,
) -> E {
    E::invalid_value(
        serde::de::Unexpected::Other(&format!("integer `{value}`")),
        expected,
    )
}

/// Reads an integer in `MIN..=MAX` into `T`, for `#[serde(deserialize_with)]`. Anything
/// else is serde's `invalid_value` (or `invalid_type`) naming the range, so the error
/// gets the file, line and key like every other.
fn integer_in<'de, D, T, const MIN: i64, const MAX: i64>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Integer,
{
    // A range the field's type cannot hold is a mistake in this file: refuse to build
    // (`cargo build` reports it; `cargo check` does not instantiate this).
    const { assert!(T::LOWEST <= MIN && MIN <= MAX && MAX <= T::HIGHEST) };
    let expected = IntegerIn { min: MIN, max: MAX };
    let value = deserializer.deserialize_i64(expected)?;
    T::from_i64(value).ok_or_else(|| {
        serde::de::Error::invalid_value(serde::de::Unexpected::Signed(value), &expected)
    })
}

/// What a config float must be: finite and in `min..=max`.
#[derive(Clone, Copy)]
struct FloatIn {
    min: f64,
    max: f64,
}

impl<'de> serde::de::Visitor<'de> for FloatIn {
    type Value = f64;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a number in {:?}..={:?}", self.min, self.max)
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<f64, E> {
        if self.holds(value) {
            Ok(value)
        } else {
            Err(E::invalid_value(serde::de::Unexpected::Float(value), &self))
        }
    }

    // TOML's `1` is an integer; the user meant 1.0.
    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<f64, E> {
        if self.holds(value as f64) {
            Ok(value as f64)
        } else {
            Err(E::invalid_value(
                serde::de::Unexpected::Signed(value),
                &self,
            ))
        }
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<f64, E> {
        if self.holds(value as f64) {
            Ok(value as f64)
        } else {
            Err(E::invalid_value(
                serde::de::Unexpected::Unsigned(value),
                &self,
            ))
        }
    }

    // No 128-bit integer is in a range of a fraction's kind.
    fn visit_i128<E: serde::de::Error>(self, value: i128) -> Result<f64, E> {
        Err(out_of_range(value, &self))
    }

    fn visit_u128<E: serde::de::Error>(self, value: u128) -> Result<f64, E> {
        Err(out_of_range(value, &self))
    }
}

impl FloatIn {
    /// NaN is in no range (`contains` is false for it), nor, with finite ends, are the
    /// infinities.
    fn holds(self, value: f64) -> bool {
        (self.min..=self.max).contains(&value)
    }
}

/// Reads a fraction, 0.0..=1.0, for `#[serde(deserialize_with)]` (see `integer_in`).
fn fraction<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f32, D::Error> {
    let value = deserializer.deserialize_f64(FloatIn { min: 0.0, max: 1.0 })?;
    // In 0..=1 the narrowing loses only precision a threshold has no use for.
    Ok(value as f32)
}

/// Refuses a URL the Bot API client would refuse at start, so that `check` says so.
fn check_http_url(url: &str) -> Result<(), String> {
    let host = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("`{url}` must start with https:// or http://"))?;
    if host.split(['/', ':']).next().is_none_or(str::is_empty) {
        return Err(format!("`{url}` has no host"));
    }
    Ok(())
}

fn http_url<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let url = String::deserialize(deserializer)?;
    check_http_url(&url).map_err(serde::de::Error::custom)?;
    Ok(url)
}

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: key `{key}`: {message}")]
    Invalid {
        file: PathBuf,
        line: usize,
        column: usize,
        key: String,
        message: String,
    },
    #[error("environment variable {var}: {message}")]
    Env { var: &'static str, message: String },
    /// A service header's secret is missing from the environment.
    #[error("{file}: {message}")]
    ServiceSecret { file: PathBuf, message: String },
    /// An LLM provider's key is missing from the environment.
    #[error("{file}: {message}")]
    LlmKey { file: PathBuf, message: String },
}

/// Where the configuration came from: a file, or nothing but defaults.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub file: Option<PathBuf>,
}

impl Config {
    /// Loads `path`. A missing file is an error only when `required` (the user named it);
    /// otherwise the defaults apply. The environment is applied on top either way.
    pub fn load(path: &Path, required: bool) -> Result<Loaded, ConfigError> {
        let (mut config, file) = match std::fs::read_to_string(path) {
            Ok(text) => (Config::parse(&text, path)?, Some(path.to_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                (Config::default(), None)
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    file: path.to_owned(),
                    source,
                });
            }
        };
        let lookup = |var: &str| std::env::var(var).ok();
        config.apply_env(lookup)?;
        for service in &mut config.services {
            service
                .read_secrets(&lookup)
                .map_err(|message| ConfigError::ServiceSecret {
                    file: file.clone().unwrap_or_else(|| path.to_owned()),
                    message,
                })?;
        }
        for provider in &mut config.llm.providers {
            provider
                .read_key(&lookup)
                .map_err(|message| ConfigError::LlmKey {
                    file: file.clone().unwrap_or_else(|| path.to_owned()),
                    message,
                })?;
        }
        Ok(Loaded { config, file })
    }

    /// Parses TOML text; `file` only names the source in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let invalid = |span: Option<std::ops::Range<usize>>, key: String, message: String| {
            let (line, column) = line_and_column(text, span.map_or(0, |s| s.start));
            ConfigError::Invalid {
                file: file.to_owned(),
                line,
                column,
                key,
                message,
            }
        };
        let deserializer = toml::de::Deserializer::parse(text)
            .map_err(|e| invalid(e.span(), String::new(), e.message().to_owned()))?;
        let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            // Errors raised after a table was read (route validation) carry a vague span;
            // the key path finds the exact place.
            let steps = e.path().iter().filter_map(|segment| match segment {
                serde_path_to_error::Segment::Map { key } => Some(Step::Key(key)),
                serde_path_to_error::Segment::Seq { index } => Some(Step::Index(*index)),
                _ => None,
            });
            let span = span_of(text, steps).or_else(|| e.inner().span());
            invalid(span, key, e.into_inner().message().to_owned())
        })?;
        config.check_references().map_err(|(steps, message)| {
            let key = steps
                .iter()
                .map(|step| match step {
                    Step::Key(key) => format!(".{key}"),
                    Step::Index(index) => format!("[{index}]"),
                })
                .collect::<String>();
            let span = span_of(text, steps.iter().copied());
            invalid(span, key.trim_start_matches('.').to_owned(), message)
        })?;
        Ok(config)
    }

    /// What no single entry can check: service, provider and personality names are
    /// unique (and well formed), and every name in a route, the fallback, `[llm]
    /// fallback` or a personality names something that exists. An error says where, as
    /// key steps.
    fn check_references(&self) -> Result<(), (Vec<Step<'static>>, String)> {
        for (i, service) in self.services.iter().enumerate() {
            if self.services[..i].iter().any(|s| s.name == service.name) {
                return Err((
                    vec![Step::Key("services"), Step::Index(i), Step::Key("name")],
                    format!("a second service named `{}`", service.name),
                ));
            }
        }
        self.check_llm_references()?;
        for (i, route) in self.routes.iter().enumerate() {
            self.check_target(&route.target).map_err(|(key, message)| {
                (vec![Step::Key("routes"), Step::Index(i), key], message)
            })?;
        }
        if let Some(fallback) = &self.fallback {
            self.check_target(fallback)
                .map_err(|(key, message)| (vec![Step::Key("fallback"), key], message))?;
        }
        Ok(())
    }

    /// Whether what `target` names exists; the error names the target's key.
    fn check_target(&self, target: &TargetConfig) -> Result<(), (Step<'static>, String)> {
        match target {
            TargetConfig::Service { service }
                if !self.services.iter().any(|s| s.name == *service) =>
            {
                Err((
                    Step::Key("service"),
                    format!("no `[[services]]` entry is named `{service}`"),
                ))
            }
            TargetConfig::Llm { llm } if !self.personalities.iter().any(|p| p.name == *llm) => {
                Err((
                    Step::Key("llm"),
                    format!("no `[[personalities]]` entry is named `{llm}`"),
                ))
            }
            TargetConfig::Handler { handler }
                if handler.converses() && self.personalities.is_empty() =>
            {
                Err((
                    Step::Key("handler"),
                    format!(
                        "`{}` works on conversations with a personality, and no `[[personalities]]` entry exists",
                        handler.as_str()
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    /// `[llm]`'s providers, fallback order and groups, and the personalities.
    fn check_llm_references(&self) -> Result<(), (Vec<Step<'static>>, String)> {
        const NAME_RULE: &str = "1 to 32 of a-z, 0-9, `_` and `-`";
        let providers = &self.llm.providers;
        for (i, provider) in providers.iter().enumerate() {
            let at = vec![
                Step::Key("llm"),
                Step::Key("providers"),
                Step::Index(i),
                Step::Key("name"),
            ];
            if !llm::valid_name(&provider.name) {
                return Err((
                    at,
                    format!("provider name `{}`: {NAME_RULE}", provider.name),
                ));
            }
            if providers[..i].iter().any(|p| p.name == provider.name) {
                return Err((at, format!("a second provider named `{}`", provider.name)));
            }
        }
        let no_provider = |name: &str| format!("no `[[llm.providers]]` entry is named `{name}`");
        let known = |name: &str| providers.iter().any(|p| p.name == name);
        for (i, name) in self.llm.fallback.iter().enumerate() {
            if !known(name) {
                return Err((
                    vec![Step::Key("llm"), Step::Key("fallback"), Step::Index(i)],
                    no_provider(name),
                ));
            }
        }
        let groups = &self.llm.groups;
        for (i, group) in groups.iter().enumerate() {
            if groups[..i].iter().any(|g| g.chat_id == group.chat_id) {
                return Err((
                    vec![
                        Step::Key("llm"),
                        Step::Key("groups"),
                        Step::Index(i),
                        Step::Key("chat_id"),
                    ],
                    format!("a second `[[llm.groups]]` entry for chat {}", group.chat_id),
                ));
            }
        }
        let personalities = &self.personalities;
        for (i, personality) in personalities.iter().enumerate() {
            let at = |key| vec![Step::Key("personalities"), Step::Index(i), Step::Key(key)];
            if !llm::valid_name(&personality.name) {
                return Err((
                    at("name"),
                    format!("personality name `{}`: {NAME_RULE}", personality.name),
                ));
            }
            if personalities[..i]
                .iter()
                .any(|p| p.name == personality.name)
            {
                return Err((
                    at("name"),
                    format!("a second personality named `{}`", personality.name),
                ));
            }
            if !known(&personality.provider) {
                return Err((at("provider"), no_provider(&personality.provider)));
            }
        }
        Ok(())
    }

    /// Applies the `EDGEBOT_*` variables, read through `lookup`.
    pub(crate) fn apply_env(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        fn addr(var: &'static str, value: String) -> Result<SocketAddr, ConfigError> {
            value.parse().map_err(|e| ConfigError::Env {
                var,
                message: format!("`{value}` is not a host:port address ({e})"),
            })
        }
        if let Some(v) = lookup("EDGEBOT_TOKEN") {
            self.bot.token = Some(Secret::new(v));
        }
        if let Some(v) = lookup("EDGEBOT_API_URL") {
            check_http_url(&v).map_err(|message| ConfigError::Env {
                var: "EDGEBOT_API_URL",
                message,
            })?;
            self.telegram.api_url = v;
        }
        if let Some(v) = lookup("EDGEBOT_WEBHOOK_URL") {
            self.telegram.webhook_url = Some(v).filter(|v| !v.is_empty());
        }
        if let Some(v) = lookup("EDGEBOT_WEBHOOK_SECRET") {
            self.telegram.webhook_secret = Some(Secret::new(v));
        }
        if let Some(v) = lookup("EDGEBOT_LISTEN") {
            self.telegram.listen = addr("EDGEBOT_LISTEN", v)?;
        }
        if let Some(v) = lookup("EDGEBOT_ADMIN_LISTEN") {
            self.admin.listen = addr("EDGEBOT_ADMIN_LISTEN", v)?;
        }
        if let Some(v) = lookup("EDGEBOT_ADMIN_TOKEN") {
            self.admin.token = Some(Secret::new(v)).filter(|s| !s.expose().is_empty());
        }
        if let Some(v) = lookup("EDGEBOT_DATA_DIR") {
            self.storage.data_dir = PathBuf::from(v);
        }
        Ok(())
    }

    /// The effective settings as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# unprintable: {e}\n"))
    }
}

/// One step of a key path: a table's key or an array's index.
#[derive(Debug, Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Where the value at `path` is written in `text`. For a table, the place of its first
/// key, since a table's own span may cover the whole document.
fn span_of<'a>(text: &str, path: impl Iterator<Item = Step<'a>>) -> Option<std::ops::Range<usize>> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let mut table: &DeTable<'_> = root.get_ref();
    let mut current: Option<&toml::Spanned<DeValue<'_>>> = None;
    let mut segments = path.peekable();
    while let Some(segment) = segments.next() {
        let value = match (segment, current.map(|v| v.get_ref())) {
            (Step::Key(key), None | Some(DeValue::Table(_))) => {
                if let Some(DeValue::Table(t)) = current.map(|v| v.get_ref()) {
                    table = t;
                }
                let (name, value) = table.iter().find(|(k, _)| k.get_ref() == key)?;
                if segments.peek().is_none() && !matches!(value.get_ref(), DeValue::Table(_)) {
                    return Some(value.span().start.min(name.span().start)..value.span().end);
                }
                value
            }
            (Step::Index(index), Some(DeValue::Array(items))) => items.get(index)?,
            _ => break,
        };
        current = Some(value);
    }
    match current?.get_ref() {
        DeValue::Table(t) => t.iter().map(|(k, _)| k.span()).min_by_key(|s| s.start),
        _ => Some(current?.span()),
    }
}

/// 1-based line and column of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// The commented example written by `edgebot init`.
pub const EXAMPLE: &str = include_str!("../../edgebot.example.toml");

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("bot.toml"))
    }

    #[test]
    fn the_example_parses() {
        let config = parse(EXAMPLE).unwrap();
        assert!(!config.routes.is_empty());
    }

    #[test]
    fn the_examples_llm_section_parses_once_uncommented() {
        let start = EXAMPLE.find("\n# [llm]\n").unwrap();
        let section: String = EXAMPLE[start + 1..]
            .lines()
            .take_while(|line| line.starts_with('#'))
            .map(|line| line.trim_start_matches('#').trim_start())
            .map(|line| format!("{line}\n"))
            .collect();
        let config = parse(&section).unwrap();
        assert_eq!(config.llm.providers.len(), 2);
        assert_eq!(config.llm.fallback, ["backup"]);
        assert_eq!(config.personalities[0].title, "Friend");
        assert!(matches!(
            &config.routes[0].target,
            TargetConfig::Llm { llm } if llm == "friend"
        ));
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let config = parse("").unwrap();
        assert_eq!(config.limits.inbound.burst.get(), 5);
        assert_eq!(config.admin.listen.port(), 9090);
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let err = parse("[limits.inbound]\nenabled = true\nburst = 0\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("bot.toml:3:"), "{text}");
        assert!(text.contains("limits.inbound.burst"), "{text}");

        let err = parse("[bot]\nusername = \"x\"\ncolour = \"red\"\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("bot.toml:3:"), "{text}");
        assert!(text.contains("colour"), "{text}");
    }

    /// Runs a `deserialize_with` helper on one value, as serde would.
    fn read<T>(
        helper: impl FnOnce(
            serde::de::value::I64Deserializer<serde::de::value::Error>,
        ) -> Result<T, serde::de::value::Error>,
        value: i64,
    ) -> Result<T, String> {
        use serde::de::IntoDeserializer;
        helper(value.into_deserializer()).map_err(|e| e.to_string())
    }

    #[test]
    fn integer_in_takes_both_ends_and_refuses_past_them_naming_the_range() {
        let helper = integer_in::<_, u8, 1, 100>;
        assert_eq!(read(helper, 1), Ok(1));
        assert_eq!(read(helper, 100), Ok(100));
        for outside in [0, 101, -1, 256, i64::MIN, i64::MAX] {
            let err = read(helper, outside).unwrap_err();
            assert_eq!(
                err,
                format!("invalid value: integer `{outside}`, expected an integer in 1..=100")
            );
        }
        let err = read(
            integer_in::<_, std::num::NonZeroU32, 1, 1000>,
            2_000_000_000,
        )
        .unwrap_err();
        assert!(err.ends_with("expected an integer in 1..=1000"), "{err}");
        assert_eq!(
            read(integer_in::<_, std::num::NonZeroU32, 1, 1000>, 1000).map(|n| n.get()),
            Ok(1000)
        );
    }

    #[test]
    fn integer_in_names_the_range_for_other_types_and_huge_unsigned_values() {
        use serde::de::IntoDeserializer;
        let from_str: Result<u32, serde::de::value::Error> =
            integer_in::<_, u32, 0, 50>("ten".into_deserializer());
        let err = from_str.unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid type: string \"ten\", expected an integer in 0..=50"
        );
        let from_u64: Result<u64, serde::de::value::Error> =
            integer_in::<_, u64, 1, 10>(u64::MAX.into_deserializer());
        let err = from_u64.unwrap_err().to_string();
        assert!(err.contains(&u64::MAX.to_string()), "{err}");
        assert!(err.ends_with("expected an integer in 1..=10"), "{err}");
        let from_i128: Result<u64, serde::de::value::Error> =
            integer_in::<_, u64, 1, 10>(i128::MIN.into_deserializer());
        let err = from_i128.unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "invalid value: integer `{}`, expected an integer in 1..=10",
                i128::MIN
            )
        );
    }

    #[test]
    fn the_integer_types_know_what_they_hold() {
        assert_eq!(u8::from_i64(255), Some(255));
        assert_eq!(u8::from_i64(256), None);
        assert_eq!(u64::from_i64(-1), None);
        assert_eq!(<u64 as Integer>::HIGHEST, i64::MAX);
        assert_eq!(<u8 as Integer>::HIGHEST, 255);
        assert_eq!(std::num::NonZeroU32::from_i64(0), None);
        assert_eq!(<std::num::NonZeroU32 as Integer>::LOWEST, 1);
    }

    #[test]
    fn api_urls_are_checked_as_the_client_checks_them() {
        assert!(check_http_url("https://api.telegram.org").is_ok());
        assert!(check_http_url("http://127.0.0.1:8081").is_ok());
        assert!(check_http_url("api.telegram.org").is_err());
        assert!(check_http_url("https://").is_err());
        assert!(check_http_url("ftp://example.com").is_err());
        let error = Config::parse(
            "[telegram]\napi_url = \"api.telegram.org\"\n",
            Path::new("edgebot.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(error.starts_with("edgebot.toml:2:"), "{error}");
        assert!(error.contains("telegram.api_url"), "{error}");
    }

    #[test]
    fn fraction_takes_finite_numbers_in_zero_to_one() {
        use serde::de::IntoDeserializer;
        let read = |value: f64| -> Result<f32, String> {
            fraction::<serde::de::value::F64Deserializer<serde::de::value::Error>>(
                value.into_deserializer(),
            )
            .map_err(|e| e.to_string())
        };
        assert_eq!(read(0.0), Ok(0.0));
        assert_eq!(read(1.0), Ok(1.0));
        assert_eq!(read(0.25), Ok(0.25));
        for outside in [
            -0.001,
            1.001,
            1e40,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            let err = read(outside).unwrap_err();
            assert!(
                err.ends_with("expected a number in 0.0..=1.0"),
                "{outside}: {err}"
            );
        }
        let whole = |value: i64| {
            fraction::<serde::de::value::I64Deserializer<serde::de::value::Error>>(
                value.into_deserializer(),
            )
            .map_err(|e| e.to_string())
        };
        assert_eq!(whole(1), Ok(1.0));
        assert_eq!(
            whole(2),
            Err("invalid value: integer `2`, expected a number in 0.0..=1.0".to_owned())
        );
    }

    #[test]
    fn a_number_out_of_range_names_file_line_key_and_range() {
        let err = parse("[limits.outbound]\nenabled = true\nglobal_per_second = 2000000000\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "bot.toml:3:1: key `limits.outbound.global_per_second`: invalid value: \
             integer `2000000000`, expected an integer in 1..=1000"
        );
        let err = parse("[models]\nfaq_threshold = nan\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("bot.toml:2:"), "{err}");
        assert!(err.contains("`models.faq_threshold`"), "{err}");
        assert!(err.contains("0.0..=1.0"), "{err}");
        let err = parse("[telegram]\nmax_body_bytes = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("bot.toml:2:"), "{err}");
        assert!(err.contains("1024..=16777216"), "{err}");
    }

    #[test]
    fn the_defaults_are_in_range() {
        let defaults = Config::default().to_redacted_toml();
        let reparsed = parse(&defaults).unwrap();
        assert_eq!(reparsed.to_redacted_toml(), defaults);
    }

    #[test]
    fn route_validation_points_at_the_route() {
        let text = "[[routes]]\ncommand = \"a\"\nhandler = \"start\"\n\n[[routes]]\ncommand = \"b\"\ntext = \"c\"\nreply = \"x\"\n";
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains("routes[1]"), "{err}");
        assert!(err.contains("exactly one trigger"), "{err}");
        assert!(
            err.starts_with("bot.toml:5:") || err.starts_with("bot.toml:6:"),
            "{err}"
        );

        let err = parse("[[routes]]\ncommand = \"x\"\nhandler = \"nope\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn environment_overrides_and_secrets_are_redacted() {
        let mut config = parse("[bot]\ntoken = \"from-file\"\n").unwrap();
        config
            .apply_env(|var| match var {
                "EDGEBOT_TOKEN" => Some("123:SECRET".into()),
                "EDGEBOT_ADMIN_LISTEN" => Some("127.0.0.1:9999".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(config.bot.token.as_ref().unwrap().expose(), "123:SECRET");
        assert_eq!(config.admin.listen.port(), 9999);
        let printed = config.to_redacted_toml();
        assert!(!printed.contains("SECRET"), "{printed}");
        assert!(printed.contains("<redacted>"));
        assert!(!format!("{config:?}").contains("SECRET"));

        let err = config
            .apply_env(|var| (var == "EDGEBOT_LISTEN").then(|| "nowhere".into()))
            .unwrap_err();
        assert!(err.to_string().contains("EDGEBOT_LISTEN"));
    }

    #[test]
    fn secrets_compare_whole_values() {
        let secret = Secret::new("abc");
        assert!(secret.matches(b"abc"));
        assert!(!secret.matches(b"abd"));
        assert!(!secret.matches(b"ab"));
        assert!(!secret.matches(b""));
    }
}
