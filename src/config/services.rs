//! `[[services]]`: internal HTTP services that routes hand updates to (the contract is in
//! `SERVICE_CONTRACTS.md`), with their limits, and the secrets their headers take from
//! the environment.

use super::{Secret, integer_in};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a user reads when a service fails, unless its entry says otherwise.
pub(crate) const DEFAULT_APOLOGY: &str = "Sorry, that did not work. Please try again in a moment.";

/// One service a route may name.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "ServiceFields", into = "ServiceFields")]
pub(crate) struct ServiceConfig {
    pub(crate) name: String,
    pub(crate) url: String,
    pub(crate) timeout_ms: u32,
    pub(crate) retries: u8,
    pub(crate) max_concurrent: u32,
    pub(crate) breaker_failures: u32,
    pub(crate) breaker_cooldown_secs: u32,
    pub(crate) apology: String,
    /// Sent as they are.
    pub(crate) headers: BTreeMap<String, String>,
    /// Header name → the environment variable that holds its value.
    pub(crate) headers_from_env: BTreeMap<String, String>,
    /// The values of `headers_from_env`, read when the config is loaded.
    pub(crate) secret_headers: Vec<(String, Secret)>,
}

/// The entry as written in TOML.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ServiceFields {
    name: String,
    url: String,
    /// One attempt's limit, connection included: 100 ms..=60 s.
    #[serde(deserialize_with = "integer_in::<_, _, 100, 60_000>")]
    timeout_ms: u32,
    /// Attempts after the first, only after a timeout, a connection error or a 5xx: 0..=3.
    #[serde(deserialize_with = "integer_in::<_, _, 0, 3>")]
    retries: u8,
    /// Calls in flight at once: 1..=1024.
    #[serde(deserialize_with = "integer_in::<_, _, 1, 1024>")]
    max_concurrent: u32,
    /// Consecutive failed calls that open the breaker: 1..=100.
    #[serde(deserialize_with = "integer_in::<_, _, 1, 100>")]
    breaker_failures: u32,
    /// How long an open breaker answers with the apology before one trial call: 1..=3600 s.
    #[serde(deserialize_with = "integer_in::<_, _, 1, 3600>")]
    breaker_cooldown_secs: u32,
    apology: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    headers_from_env: BTreeMap<String, String>,
}

impl Default for ServiceFields {
    fn default() -> Self {
        ServiceFields {
            name: String::new(),
            url: String::new(),
            timeout_ms: 3000,
            retries: 1,
            max_concurrent: 32,
            breaker_failures: 5,
            breaker_cooldown_secs: 30,
            apology: DEFAULT_APOLOGY.into(),
            headers: BTreeMap::new(),
            headers_from_env: BTreeMap::new(),
        }
    }
}

impl TryFrom<ServiceFields> for ServiceConfig {
    type Error = String;

    fn try_from(fields: ServiceFields) -> Result<Self, String> {
        let name_ok = (1..=32).contains(&fields.name.len())
            && fields
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !name_ok {
            return Err(format!(
                "service name `{}`: 1 to 32 of a-z, 0-9, `_` and `-`",
                fields.name
            ));
        }
        super::check_http_url(&fields.url)
            .map_err(|e| format!("service `{}`: `url` {e}", fields.name))?;
        hyper::Uri::try_from(fields.url.as_str())
            .map_err(|e| format!("service `{}`: `url` is not a URL: {e}", fields.name))?;
        let apology = fields.apology.trim();
        if apology.is_empty() || apology.chars().count() > 4096 {
            return Err(format!(
                "service `{}`: `apology` must be 1 to 4096 characters",
                fields.name
            ));
        }
        for (header, value) in &fields.headers {
            check_header(header)?;
            hyper::header::HeaderValue::from_str(value)
                .map_err(|_| format!("header `{header}`: the value is not a valid header value"))?;
        }
        for (header, var) in &fields.headers_from_env {
            check_header(header)?;
            if var.is_empty() || fields.headers.contains_key(header) {
                return Err(format!(
                    "header `{header}`: name one environment variable, and set the header in one place"
                ));
            }
        }
        Ok(ServiceConfig {
            name: fields.name,
            url: fields.url,
            timeout_ms: fields.timeout_ms,
            retries: fields.retries,
            max_concurrent: fields.max_concurrent,
            breaker_failures: fields.breaker_failures,
            breaker_cooldown_secs: fields.breaker_cooldown_secs,
            apology: fields.apology,
            headers: fields.headers,
            headers_from_env: fields.headers_from_env,
            secret_headers: Vec::new(),
        })
    }
}

impl From<ServiceConfig> for ServiceFields {
    fn from(service: ServiceConfig) -> ServiceFields {
        ServiceFields {
            name: service.name,
            url: service.url,
            timeout_ms: service.timeout_ms,
            retries: service.retries,
            max_concurrent: service.max_concurrent,
            breaker_failures: service.breaker_failures,
            breaker_cooldown_secs: service.breaker_cooldown_secs,
            apology: service.apology,
            headers: service.headers,
            headers_from_env: service.headers_from_env,
        }
    }
}

fn check_header(name: &str) -> Result<(), String> {
    hyper::header::HeaderName::from_bytes(name.as_bytes())
        .map(drop)
        .map_err(|_| format!("`{name}` is not a valid header name"))
}

impl ServiceConfig {
    /// Reads the values of `headers_from_env` through `lookup`; a variable that is unset
    /// or not a valid header value is named in the error.
    pub(crate) fn read_secrets(
        &mut self,
        lookup: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), String> {
        self.secret_headers.clear();
        for (header, var) in &self.headers_from_env {
            let value = lookup(var).ok_or_else(|| {
                format!(
                    "service `{}`: header `{header}` takes its value from `{var}`, which is not set",
                    self.name
                )
            })?;
            if hyper::header::HeaderValue::from_str(&value).is_err() {
                return Err(format!(
                    "service `{}`: `{var}` does not hold a valid header value",
                    self.name
                ));
            }
            self.secret_headers
                .push((header.clone(), Secret::new(value)));
        }
        Ok(())
    }
}
