//! Telemetry: metrics and the health facts behind readiness.

pub mod health;
pub mod logging;
pub mod metrics;
pub mod otel;
