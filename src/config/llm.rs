//! `[llm]`, `[[llm.providers]]` and `[[personalities]]`: the LLM providers a bot talks
//! to (OpenAI-compatible or Anthropic), their limits and prices, the fallback order, the
//! conversation settings (memory, streaming pace, groups, budgets), and the personalities
//! that routes and `/mode` name. Provider keys stay in the environment: an entry names
//! the variable, read when the config is loaded.
//!
//! What no single entry can check (names unique, every name naming something that
//! exists) is checked by `Config::check_references`.

use super::{FloatIn, Secret, fraction, integer_in};
use serde::{Deserialize, Serialize};

/// What a user reads when no provider could answer, unless `[llm] apology` says otherwise.
const DEFAULT_APOLOGY: &str = "Sorry, I can't answer right now. Please try again in a moment.";

/// The `[llm]` table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LlmConfig {
    /// A new dialog starts after this much silence: 1..=43200 minutes (30 days).
    #[serde(deserialize_with = "integer_in::<_, _, 1, 43_200>")]
    pub(crate) idle_minutes: u32,
    /// The recent turns sent with a question fit in this many tokens: 100..=1000000.
    #[serde(deserialize_with = "integer_in::<_, _, 100, 1_000_000>")]
    pub(crate) history_tokens: u32,
    /// The rolling summary's `max_tokens`: 50..=4000.
    #[serde(deserialize_with = "integer_in::<_, _, 50, 4000>")]
    pub(crate) summary_tokens: u32,
    /// Drafts in private chats are updated at most this often: 100..=10000 ms.
    #[serde(deserialize_with = "integer_in::<_, _, 100, 10_000>")]
    pub(crate) draft_interval_ms: u32,
    /// Streamed edits elsewhere at most this often: 1000..=60000 ms, since Telegram's
    /// flood limits allow about one edit a second per chat.
    #[serde(deserialize_with = "integer_in::<_, _, 1000, 60_000>")]
    pub(crate) edit_interval_ms: u32,
    /// A typing indicator while waiting for the first piece of an answer.
    pub(crate) typing: bool,
    /// In groups, answer only when mentioned, replied to, or on a command.
    pub(crate) require_mention: bool,
    /// LLM calls in flight over all providers: 1..=100000.
    #[serde(deserialize_with = "integer_in::<_, _, 1, 100_000>")]
    pub(crate) max_concurrent: u32,
    /// Providers tried, in order, after the personality's own failed.
    pub(crate) fallback: Vec<String>,
    /// What the user reads when every provider failed.
    #[serde(deserialize_with = "apology")]
    pub(crate) apology: String,
    /// A text the spam model scores at or above this never reaches the LLM: 0.0..=1.0.
    #[serde(deserialize_with = "fraction")]
    pub(crate) spam_threshold: f32,
    pub(crate) budgets: BudgetsConfig,
    /// Per-chat overrides.
    pub(crate) groups: Vec<GroupConfig>,
    pub(crate) providers: Vec<ProviderConfig>,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            idle_minutes: 180,
            history_tokens: 3000,
            summary_tokens: 300,
            draft_interval_ms: 500,
            edit_interval_ms: 1500,
            typing: true,
            require_mention: true,
            max_concurrent: 256,
            fallback: Vec::new(),
            apology: DEFAULT_APOLOGY.into(),
            spam_threshold: 0.9,
            budgets: BudgetsConfig::default(),
            groups: Vec::new(),
            providers: Vec::new(),
        }
    }
}

/// `[llm.budgets]`: tokens (prompt and answer together) a user may spend; 0 is no limit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct BudgetsConfig {
    /// 0..=1000000000 each.
    #[serde(deserialize_with = "integer_in::<_, _, 0, 1_000_000_000>")]
    pub(crate) guest_daily: u64,
    #[serde(deserialize_with = "integer_in::<_, _, 0, 1_000_000_000>")]
    pub(crate) guest_monthly: u64,
    #[serde(deserialize_with = "integer_in::<_, _, 0, 1_000_000_000>")]
    pub(crate) entitled_daily: u64,
    #[serde(deserialize_with = "integer_in::<_, _, 0, 1_000_000_000>")]
    pub(crate) entitled_monthly: u64,
    /// Who counts as entitled (admins always do).
    pub(crate) entitlement: String,
}

impl Default for BudgetsConfig {
    fn default() -> Self {
        BudgetsConfig {
            guest_daily: 20_000,
            guest_monthly: 200_000,
            entitled_daily: 200_000,
            entitled_monthly: 2_000_000,
            entitlement: "premium".into(),
        }
    }
}

/// `[[llm.groups]]`: settings of one chat that differ from `[llm]`'s.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupConfig {
    /// A Telegram chat id: at most 52 significant bits, as Telegram promises.
    #[serde(
        deserialize_with = "integer_in::<_, _, -4_503_599_627_370_495, 4_503_599_627_370_495>"
    )]
    pub(crate) chat_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) require_mention: Option<bool>,
}

/// The wire format a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ProviderKind {
    /// OpenAI's chat completions, or any server that speaks them (OpenRouter, Ollama,
    /// vLLM, llama.cpp): `POST {base_url}/chat/completions`.
    OpenAi,
    /// Anthropic's Messages API: `POST {base_url}/v1/messages`.
    Anthropic,
}

/// One `[[llm.providers]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "ProviderFields", into = "ProviderFields")]
pub(crate) struct ProviderConfig {
    pub(crate) name: String,
    pub(crate) kind: ProviderKind,
    pub(crate) base_url: String,
    pub(crate) model: String,
    /// The environment variable that holds the key.
    pub(crate) api_key_env: Option<String>,
    /// Its value, read when the config is loaded; never printed.
    pub(crate) api_key: Option<Secret>,
    pub(crate) timeout_ms: u32,
    pub(crate) idle_timeout_ms: u32,
    pub(crate) max_concurrent: u32,
    pub(crate) retries: u8,
    /// USD per million prompt tokens.
    pub(crate) input_price: f64,
    /// USD per million answer tokens.
    pub(crate) output_price: f64,
}

/// The provider entry as written in TOML.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ProviderFields {
    name: String,
    kind: ProviderKind,
    base_url: String,
    model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key_env: Option<String>,
    /// Connection and first byte of the answer: 100 ms..=10 min.
    #[serde(deserialize_with = "integer_in::<_, _, 100, 600_000>")]
    timeout_ms: u32,
    /// The longest silence between two chunks of a stream: 100 ms..=10 min.
    #[serde(deserialize_with = "integer_in::<_, _, 100, 600_000>")]
    idle_timeout_ms: u32,
    /// Calls in flight at once: 1..=10000.
    #[serde(deserialize_with = "integer_in::<_, _, 1, 10_000>")]
    max_concurrent: u32,
    /// Attempts after the first (after a 429, a 5xx, a timeout or a stream stopped
    /// midway) before the fallback: 0..=5.
    #[serde(deserialize_with = "integer_in::<_, _, 0, 5>")]
    retries: u8,
    #[serde(deserialize_with = "price")]
    input_price: f64,
    #[serde(deserialize_with = "price")]
    output_price: f64,
}

impl Default for ProviderFields {
    fn default() -> Self {
        ProviderFields {
            name: String::new(),
            kind: ProviderKind::OpenAi,
            base_url: String::new(),
            model: String::new(),
            api_key_env: None,
            timeout_ms: 30_000,
            idle_timeout_ms: 30_000,
            max_concurrent: 16,
            retries: 2,
            input_price: 0.0,
            output_price: 0.0,
        }
    }
}

impl TryFrom<ProviderFields> for ProviderConfig {
    type Error = String;

    fn try_from(fields: ProviderFields) -> Result<Self, String> {
        let name = &fields.name;
        super::check_http_url(&fields.base_url)
            .map_err(|e| format!("provider `{name}`: `base_url` {e}"))?;
        hyper::Uri::try_from(fields.base_url.as_str())
            .map_err(|e| format!("provider `{name}`: `base_url` is not a URL: {e}"))?;
        if fields.model.trim().is_empty() {
            return Err(format!("provider `{name}`: `model` names the model to ask"));
        }
        if fields.api_key_env.as_deref().is_some_and(str::is_empty) {
            return Err(format!(
                "provider `{name}`: `api_key_env` names an environment variable, or is left out"
            ));
        }
        Ok(ProviderConfig {
            name: fields.name,
            kind: fields.kind,
            base_url: fields.base_url,
            model: fields.model,
            api_key_env: fields.api_key_env,
            api_key: None,
            timeout_ms: fields.timeout_ms,
            idle_timeout_ms: fields.idle_timeout_ms,
            max_concurrent: fields.max_concurrent,
            retries: fields.retries,
            input_price: fields.input_price,
            output_price: fields.output_price,
        })
    }
}

impl From<ProviderConfig> for ProviderFields {
    fn from(provider: ProviderConfig) -> ProviderFields {
        ProviderFields {
            name: provider.name,
            kind: provider.kind,
            base_url: provider.base_url,
            model: provider.model,
            api_key_env: provider.api_key_env,
            timeout_ms: provider.timeout_ms,
            idle_timeout_ms: provider.idle_timeout_ms,
            max_concurrent: provider.max_concurrent,
            retries: provider.retries,
            input_price: provider.input_price,
            output_price: provider.output_price,
        }
    }
}

impl ProviderConfig {
    /// Reads the key named by `api_key_env` through `lookup`; a variable that is unset,
    /// empty or not usable in a header is named in the error (its value never is).
    pub(crate) fn read_key(
        &mut self,
        lookup: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), String> {
        let Some(var) = &self.api_key_env else {
            self.api_key = None;
            return Ok(());
        };
        let value = lookup(var).filter(|v| !v.is_empty()).ok_or_else(|| {
            format!(
                "llm provider `{}`: `api_key_env` names `{var}`, which is not set",
                self.name
            )
        })?;
        if hyper::header::HeaderValue::from_str(&value).is_err() {
            return Err(format!(
                "llm provider `{}`: `{var}` does not hold a valid header value",
                self.name
            ));
        }
        self.api_key = Some(Secret::new(value));
        Ok(())
    }
}

/// The callback data of a `/mode` button: this prefix and the personality's name.
pub(crate) const MODE_PREFIX: &str = "mode:";

/// One `[[personalities]]` entry: who answers, with which prompt and provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "PersonalityFields", into = "PersonalityFields")]
pub(crate) struct PersonalityConfig {
    /// 1 to 32 of a-z, 0-9, `_` and `-`; also the callback data `mode:<name>`.
    pub(crate) name: String,
    /// Shown on the `/mode` button; the name when not given.
    pub(crate) title: String,
    pub(crate) description: String,
    pub(crate) system_prompt: String,
    /// The `[[llm.providers]]` entry that answers first.
    pub(crate) provider: String,
    /// Overrides the provider's model.
    pub(crate) model: Option<String>,
    pub(crate) temperature: f32,
    pub(crate) max_tokens: u32,
    /// Sent when a user picks this personality in `/mode`.
    pub(crate) welcome: Option<String>,
    /// The entitlement a user needs to pick it.
    pub(crate) requires: Option<String>,
    /// Pass the user's recent sentiment to the model as a hint.
    pub(crate) adaptive: bool,
}

/// The personality as written in TOML.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct PersonalityFields {
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    title: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    description: String,
    system_prompt: String,
    provider: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    /// 0.0..=2.0, the range OpenAI takes (Anthropic's 0.0..=1.0 is applied when sent).
    #[serde(deserialize_with = "temperature")]
    temperature: f32,
    /// 1..=100000.
    #[serde(deserialize_with = "integer_in::<_, _, 1, 100_000>")]
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    welcome: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    requires: Option<String>,
    adaptive: bool,
}

impl Default for PersonalityFields {
    fn default() -> Self {
        PersonalityFields {
            name: String::new(),
            title: String::new(),
            description: String::new(),
            system_prompt: String::new(),
            provider: String::new(),
            model: None,
            temperature: 0.7,
            max_tokens: 800,
            welcome: None,
            requires: None,
            adaptive: false,
        }
    }
}

impl TryFrom<PersonalityFields> for PersonalityConfig {
    type Error = String;

    fn try_from(fields: PersonalityFields) -> Result<Self, String> {
        let name = &fields.name;
        if fields.model.as_deref().is_some_and(|m| m.trim().is_empty()) {
            return Err(format!(
                "personality `{name}`: `model` names a model, or is left out for the provider's"
            ));
        }
        if fields
            .welcome
            .as_deref()
            .is_some_and(|w| w.trim().is_empty() || w.chars().count() > 4096)
        {
            return Err(format!(
                "personality `{name}`: `welcome` must be 1 to 4096 characters"
            ));
        }
        let title = if fields.title.trim().is_empty() {
            fields.name.clone()
        } else {
            fields.title
        };
        Ok(PersonalityConfig {
            name: fields.name,
            title,
            description: fields.description,
            system_prompt: fields.system_prompt,
            provider: fields.provider,
            model: fields.model,
            temperature: fields.temperature,
            max_tokens: fields.max_tokens,
            welcome: fields.welcome,
            requires: fields.requires,
            adaptive: fields.adaptive,
        })
    }
}

impl From<PersonalityConfig> for PersonalityFields {
    fn from(personality: PersonalityConfig) -> PersonalityFields {
        PersonalityFields {
            name: personality.name,
            title: personality.title,
            description: personality.description,
            system_prompt: personality.system_prompt,
            provider: personality.provider,
            model: personality.model,
            temperature: personality.temperature,
            max_tokens: personality.max_tokens,
            welcome: personality.welcome,
            requires: personality.requires,
            adaptive: personality.adaptive,
        }
    }
}

/// Whether `name` can name a provider or a personality: 1 to 32 of a-z, 0-9, `_` and
/// `-` (it ends up in metric labels and in callback data).
pub(crate) fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Reads a sampling temperature, 0.0..=2.0 (see `integer_in`).
fn temperature<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f32, D::Error> {
    let value = deserializer.deserialize_f64(FloatIn { min: 0.0, max: 2.0 })?;
    // In 0..=2 the narrowing loses only precision no sampler has a use for.
    Ok(value as f32)
}

/// Reads a price in USD per million tokens, 0.0..=10000.0 (see `integer_in`).
fn price<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    deserializer.deserialize_f64(FloatIn {
        min: 0.0,
        max: 10_000.0,
    })
}

/// Reads the apology: 1 to 4096 characters, what one Telegram message holds.
fn apology<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.trim().is_empty() || text.chars().count() > 4096 {
        return Err(serde::de::Error::custom(
            "the apology must be 1 to 4096 characters",
        ));
    }
    Ok(text)
}
