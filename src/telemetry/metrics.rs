//! The Prometheus metrics of the whole process, in one registry.
//!
//! prometheus-client is used directly rather than OpenTelemetry metrics with a
//! Prometheus exporter: it is the Prometheus project's own Rust client, encodes the text
//! format without an intermediate SDK pipeline, and its counters are plain atomics, so
//! recording costs a few nanoseconds on the hot path. Gauges that describe state (queue
//! depths, store size, active users) are read when scraped, not maintained per update.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct UpdateLabels {
    pub kind: String,
    pub(crate) transport: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabels {
    pub(crate) route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CallLabels {
    pub method: &'static str,
    pub(crate) outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ModelLabels {
    pub(crate) model: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct WindowLabels {
    pub(crate) window: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ServiceLabels {
    pub(crate) service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ServiceOutcomeLabels {
    pub(crate) service: String,
    pub(crate) outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KindLabels {
    pub(crate) kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabels {
    pub(crate) reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct LlmLabels {
    pub(crate) provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct LlmOutcomeLabels {
    pub(crate) provider: String,
    pub(crate) outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct LlmTokenLabels {
    pub(crate) provider: String,
    /// `input` (the prompt) or `output` (the answer).
    pub(crate) direction: &'static str,
}

/// Every metric, registered once at start.
pub struct Metrics {
    registry: Registry,
    pub(crate) updates_received: Family<UpdateLabels, Counter>,
    pub(crate) updates_duplicate: Counter,
    pub(crate) updates_malformed: Counter,
    pub(crate) handler_seconds: Family<RouteLabels, Histogram>,
    pub(crate) outbound_calls: Family<CallLabels, Counter>,
    pub(crate) outbound_seconds: Histogram,
    pub(crate) rate_limited: Counter,
    pub(crate) rate_limit_wait_seconds: Counter<f64, AtomicU64>,
    pub(crate) inbound_dropped: Counter,
    pub(crate) inbox_depth: Gauge,
    pub(crate) outbox_depth: Gauge,
    pub(crate) store_bytes: Gauge,
    pub(crate) store_commit_seconds: Histogram,
    pub(crate) inference_seconds: Family<ModelLabels, Histogram>,
    pub(crate) active_users: Family<WindowLabels, Gauge>,
    pub(crate) resident_memory_bytes: Gauge,
    pub(crate) service_calls: Family<ServiceOutcomeLabels, Counter>,
    pub(crate) service_seconds: Family<ServiceLabels, Histogram>,
    pub(crate) service_retries: Family<ServiceLabels, Counter>,
    pub(crate) service_breaker: Family<ServiceLabels, Gauge>,
    pub(crate) llm_calls: Family<LlmOutcomeLabels, Counter>,
    pub(crate) llm_tokens: Family<LlmTokenLabels, Counter>,
    pub(crate) llm_cost_usd: Family<LlmLabels, Counter<f64, AtomicU64>>,
    pub(crate) llm_first_token_seconds: Family<LlmLabels, Histogram>,
    pub(crate) llm_in_flight: Gauge,
    pub(crate) llm_first_shown: Histogram,
    pub(crate) llm_turns: Family<KindLabels, Counter>,
    pub(crate) llm_refused: Family<ReasonLabels, Counter>,
}

fn latency_histogram() -> Histogram {
    // 10 µs .. ~20 s: a handler, a commit and a call to Telegram all fit.
    Histogram::new(exponential_buckets(1e-5, 2.5, 17))
}

fn first_token_histogram() -> Histogram {
    // 50 ms .. ~1 min: a small local model answers in the first buckets, a large remote
    // one with a long prompt in the last.
    Histogram::new(exponential_buckets(0.05, 1.6, 16))
}

impl Metrics {
    /// A conversation answered: a first answer or a `/retry`.
    pub(crate) fn llm_turn(&self, retry: bool) {
        let kind = if retry { "retry" } else { "answer" };
        self.llm_turns.get_or_create(&KindLabels { kind }).inc();
    }

    /// A text kept from the language model, and why.
    pub(crate) fn llm_refused(&self, reason: &'static str) {
        self.llm_refused
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("edgebot");
        let m = Metrics {
            updates_received: Family::default(),
            updates_duplicate: Counter::default(),
            updates_malformed: Counter::default(),
            handler_seconds: Family::new_with_constructor(latency_histogram),
            outbound_calls: Family::default(),
            outbound_seconds: latency_histogram(),
            rate_limited: Counter::default(),
            rate_limit_wait_seconds: Counter::default(),
            inbound_dropped: Counter::default(),
            inbox_depth: Gauge::default(),
            outbox_depth: Gauge::default(),
            store_bytes: Gauge::default(),
            store_commit_seconds: latency_histogram(),
            inference_seconds: Family::new_with_constructor(latency_histogram),
            active_users: Family::default(),
            resident_memory_bytes: Gauge::default(),
            service_calls: Family::default(),
            service_seconds: Family::new_with_constructor(latency_histogram),
            service_retries: Family::default(),
            service_breaker: Family::default(),
            llm_calls: Family::default(),
            llm_tokens: Family::default(),
            llm_cost_usd: Family::default(),
            llm_first_token_seconds: Family::new_with_constructor(first_token_histogram),
            llm_in_flight: Gauge::default(),
            llm_first_shown: latency_histogram(),
            llm_turns: Family::default(),
            llm_refused: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "updates_received",
            "Updates received, by kind and transport",
            m.updates_received.clone(),
        );
        registry.register(
            "updates_duplicate",
            "Redelivered updates recognised and skipped",
            m.updates_duplicate.clone(),
        );
        registry.register(
            "updates_malformed",
            "Bodies that did not parse as an update (acknowledged and kept)",
            m.updates_malformed.clone(),
        );
        registry.register(
            "handler_duration_seconds",
            "Time a route's handler took, by route (for a service route, the call to the service included; the commit is not)",
            m.handler_seconds.clone(),
        );
        registry.register(
            "outbound_calls",
            "Calls to the Bot API, by method and outcome",
            m.outbound_calls.clone(),
        );
        registry.register(
            "outbound_call_duration_seconds",
            "Duration of calls to the Bot API",
            m.outbound_seconds.clone(),
        );
        registry.register(
            "rate_limited_responses",
            "429 answers from Telegram",
            m.rate_limited.clone(),
        );
        registry.register(
            "rate_limit_wait_seconds",
            "Time spent waiting for retry_after",
            m.rate_limit_wait_seconds.clone(),
        );
        registry.register(
            "service_calls",
            "Calls to internal services, by service and outcome (ok, http_4xx, http_5xx, timeout, connect_error, invalid_response, breaker_open, overloaded)",
            m.service_calls.clone(),
        );
        registry.register(
            "service_call_seconds",
            "Duration of one attempt of a call to an internal service",
            m.service_seconds.clone(),
        );
        registry.register(
            "service_retries",
            "Second and later attempts of calls to internal services",
            m.service_retries.clone(),
        );
        registry.register(
            "service_breaker_state",
            "A service's circuit breaker: 0 closed, 1 half-open (one trial call), 2 open",
            m.service_breaker.clone(),
        );
        registry.register(
            "llm_calls",
            "Attempts of calls to LLM providers, by provider and outcome (ok, rate_limited, http_4xx, http_5xx, timeout, stopped_midway, invalid_response, overloaded, connect_error)",
            m.llm_calls.clone(),
        );
        registry.register(
            "llm_tokens",
            "Tokens of answered LLM calls, by provider and direction (input: the prompt, output: the answer); the provider's count, or an estimate where it gave none",
            m.llm_tokens.clone(),
        );
        registry.register(
            "llm_cost_usd",
            "What answered LLM calls cost by the configured prices, in USD, by provider",
            m.llm_cost_usd.clone(),
        );
        registry.register(
            "llm_first_token_seconds",
            "Time from sending a request to an LLM provider to the first piece of its answer",
            m.llm_first_token_seconds.clone(),
        );
        registry.register(
            "llm_in_flight",
            "LLM calls in flight (each holds one of [llm] max_concurrent's slots)",
            m.llm_in_flight.clone(),
        );
        registry.register(
            "llm_first_shown_seconds",
            "Time from an answer's first piece arriving to the user seeing it (the first draft, or the first message of an answer edited as it streams)",
            m.llm_first_shown.clone(),
        );
        registry.register(
            "llm_turns",
            "Conversation answers committed, by kind (answer, retry)",
            m.llm_turns.clone(),
        );
        registry.register(
            "llm_refused",
            "Texts kept from the language model, by reason (spam: the spam model's verdict, budget: the user's token budget is spent)",
            m.llm_refused.clone(),
        );
        registry.register(
            "inbound_dropped",
            "Updates held back by the per-user inbound limit",
            m.inbound_dropped.clone(),
        );
        registry.register(
            "inbox_depth",
            "Updates received and not yet finished",
            m.inbox_depth.clone(),
        );
        registry.register(
            "outbox_depth",
            "Actions committed and not yet accepted by Telegram",
            m.outbox_depth.clone(),
        );
        registry.register(
            "store_size_bytes",
            "Size of the redb file",
            m.store_bytes.clone(),
        );
        registry.register(
            "store_commit_duration_seconds",
            "Duration of one group commit",
            m.store_commit_seconds.clone(),
        );
        registry.register(
            "inference_duration_seconds",
            "Model inference time, by model",
            m.inference_seconds.clone(),
        );
        registry.register(
            "active_users",
            "Users seen within the window (24h, 7d, 30d)",
            m.active_users.clone(),
        );
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory of this process",
            m.resident_memory_bytes.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn update_received(&self, kind: &str, transport: &'static str) {
        self.updates_received
            .get_or_create(&UpdateLabels {
                kind: kind.to_owned(),
                transport,
            })
            .inc();
    }

    pub(crate) fn outbound_call(&self, method: &'static str, outcome: &'static str, seconds: f64) {
        self.outbound_calls
            .get_or_create(&CallLabels { method, outcome })
            .inc();
        self.outbound_seconds.observe(seconds);
    }

    pub(crate) fn handler_done(&self, route: &str, seconds: f64) {
        self.handler_seconds
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// The text exposition of every metric.
    pub(crate) fn encode(&self) -> String {
        self.resident_memory_bytes.set(resident_memory_bytes());
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Resident set size from /proc (Linux); 0 where unavailable.
fn resident_memory_bytes() -> i64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: i64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        let m = Metrics::new();
        m.update_received("message", "webhook");
        m.outbound_call("sendMessage", "ok", 0.01);
        m.handler_done("start", 0.0002);
        let text = m.encode();
        assert!(
            text.contains(
                r#"edgebot_updates_received_total{kind="message",transport="webhook"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"edgebot_outbound_calls_total{method="sendMessage",outcome="ok"} 1"#)
        );
        assert!(text.contains("edgebot_handler_duration_seconds_bucket"));
        assert!(text.contains("edgebot_process_resident_memory_bytes"));
        assert!(text.ends_with("# EOF\n"));
    }
}
