//! Configuration: one TOML file plus the `EDGEBOT_*` environment, with defaults that
//! run a useful bot when neither exists.
//!
//! Everything is validated while deserializing, so every error carries the file, line
//! and key it is about. The environment overrides the file; command-line flags override
//! both (they are applied by the caller).

pub use crate::secret::Secret;
use crate::telegram::types::InlineKeyboardButton;
use serde::{Deserialize, Serialize};
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
    pub routes: Vec<RouteConfig>,
    /// What answers when no route matched; the built-in fallback when unset.
    pub fallback: Option<TargetConfig>,
    pub faq: Vec<FaqEntry>,
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
    pub api_url: String,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<Secret>,
    pub listen: SocketAddr,
    /// Telegram's `max_connections` for the webhook (1–100).
    pub max_connections: u8,
    pub poll_timeout_secs: u32,
    pub request_timeout_secs: u32,
    /// Largest webhook body accepted, in bytes.
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
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            token: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    /// How long a conversation state (e.g. "waiting for your feedback") lives.
    pub session_ttl_secs: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("data"),
            session_ttl_secs: 600,
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
    pub per_second: std::num::NonZeroU32,
    pub burst: std::num::NonZeroU32,
    /// At most one "slow down" notice per user in this many seconds.
    pub notice_cooldown_secs: u64,
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
    pub global_per_second: std::num::NonZeroU32,
    pub private_per_second: std::num::NonZeroU32,
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
    /// Cosine similarity a text needs to an FAQ question to get its answer.
    pub faq_threshold: f32,
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
pub struct FaqEntry {
    pub question: String,
    pub answer: String,
}

/// One line of the routing table: a trigger and what answers it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "RawRoute", into = "RawRoute")]
pub struct RouteConfig {
    pub trigger: Trigger,
    pub target: TargetConfig,
    /// Shown by /help for command routes.
    pub description: Option<String>,
}

/// What makes a route match.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
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
pub enum ChatKindConfig {
    Private,
    Group,
    Channel,
}

/// What answers a route: a built-in handler or a reply template.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetConfig {
    Handler { handler: HandlerName },
    Reply(ReplyTemplate),
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
}

impl HandlerName {
    pub fn as_str(self) -> &'static str {
        match self {
            HandlerName::Start => "start",
            HandlerName::Help => "help",
            HandlerName::Profile => "profile",
            HandlerName::Feedback => "feedback",
            HandlerName::Analyze => "analyze",
            HandlerName::Fallback => "fallback",
            HandlerName::Ignore => "ignore",
        }
    }
}

/// A reply written in the config: text with placeholders such as `{first_name}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyTemplate {
    pub reply: String,
    /// Send as a reply to the incoming message (`reply_parameters`).
    #[serde(default)]
    pub reply_to_message: bool,
    /// Rows of inline buttons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keyboard: Vec<Vec<InlineKeyboardButton>>,
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
        let target = match (raw.handler, raw.reply) {
            (Some(handler), None) if raw.keyboard.is_empty() && !raw.reply_to_message => {
                TargetConfig::Handler { handler }
            }
            (None, Some(reply)) => {
                crate::template::Template::parse(&reply).map_err(|e| e.to_string())?;
                TargetConfig::Reply(ReplyTemplate {
                    reply,
                    reply_to_message: raw.reply_to_message,
                    keyboard: raw.keyboard,
                })
            }
            (Some(_), _) => {
                return Err(
                    "a route takes either `handler` or `reply` (with `keyboard`, `reply_to_message`)"
                        .into(),
                );
            }
            (None, None) => return Err("a route needs `handler` or `reply`".into()),
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
            TargetConfig::Reply(template) => {
                raw.reply = Some(template.reply);
                raw.reply_to_message = template.reply_to_message;
                raw.keyboard = template.keyboard;
            }
        }
        raw
    }
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
        config.apply_env(|var| std::env::var(var).ok())?;
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
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            // Errors raised after a table was read (route validation) carry a vague span;
            // the key path finds the exact place.
            let span = span_of(text, e.path()).or_else(|| e.inner().span());
            invalid(span, key, e.into_inner().message().to_owned())
        })
    }

    /// Applies the `EDGEBOT_*` variables, read through `lookup`.
    pub fn apply_env(
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

/// Where the value at `path` is written in `text`. For a table, the place of its first
/// key, since a table's own span may cover the whole document.
fn span_of(text: &str, path: &serde_path_to_error::Path) -> Option<std::ops::Range<usize>> {
    use serde_path_to_error::Segment;
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let mut table: &DeTable<'_> = root.get_ref();
    let mut current: Option<&toml::Spanned<DeValue<'_>>> = None;
    let mut segments = path.iter().peekable();
    while let Some(segment) = segments.next() {
        let value = match (segment, current.map(|v| v.get_ref())) {
            (Segment::Map { key }, None | Some(DeValue::Table(_))) => {
                if let Some(DeValue::Table(t)) = current.map(|v| v.get_ref()) {
                    table = t;
                }
                let (name, value) = table.iter().find(|(k, _)| k.get_ref() == key)?;
                if segments.peek().is_none() && !matches!(value.get_ref(), DeValue::Table(_)) {
                    return Some(value.span().start.min(name.span().start)..value.span().end);
                }
                value
            }
            (Segment::Seq { index }, Some(DeValue::Array(items))) => items.get(*index)?,
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
pub const EXAMPLE: &str = include_str!("../edgebot.example.toml");

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
