//! Logs: `tracing` to stderr, readable at a terminal and JSON lines everywhere else
//! (systemd, Docker, a log shipper), plus the OpenTelemetry layer when a collector is
//! configured.
//!
//! Every line written inside an update's span carries the span's fields (`update_id`,
//! `kind`): in JSON under `spans`, at a terminal as the `update{update_id=…}` prefix.
//! Message text never appears at info or above; the test in `tests/telemetry.rs` runs
//! the engine and checks the JSON output for it.

use super::otel::{OtelError, Pipeline};
use std::io::IsTerminal;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The variable holding the filter, in `EnvFilter` syntax (`info,edgebot=debug`).
pub(crate) const FILTER_VAR: &str = "EDGEBOT_LOG";
pub(crate) const DEFAULT_FILTER: &str = "info";

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("{FILTER_VAR}: not a valid filter: {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    #[error("logging was already set up: {0}")]
    AlreadySet(#[from] tracing_subscriber::util::TryInitError),
    #[error(transparent)]
    Otel(#[from] OtelError),
}

/// How lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// For a person at a terminal: one line each, coloured, spans as prefixes.
    Human,
    /// One JSON object per line, with the fields of every enclosing span.
    Json,
}

impl Format {
    /// Human at a terminal, JSON otherwise.
    pub(crate) fn for_stderr() -> Format {
        if std::io::stderr().is_terminal() {
            Format::Human
        } else {
            Format::Json
        }
    }
}

/// Keeps the telemetry running; dropping it flushes the spans not yet exported.
#[must_use = "dropping the guard stops trace export"]
#[derive(Debug)]
pub struct Guard {
    otel: Option<Pipeline>,
}

impl Guard {
    /// Flushes the last spans and reports whether that worked (dropping does the same
    /// silently).
    pub fn shutdown(mut self) -> Result<(), TelemetryError> {
        match self.otel.take() {
            Some(pipeline) => Ok(pipeline.shutdown()?),
            None => Ok(()),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(pipeline) = self.otel.take() {
            let _ = pipeline.shutdown();
        }
    }
}

/// The filter from `directives`, else from `EDGEBOT_LOG`, else `info`.
pub fn env_filter(directives: Option<&str>) -> Result<EnvFilter, TelemetryError> {
    let from_env = std::env::var(FILTER_VAR).ok();
    let directives = directives
        .or(from_env.as_deref())
        .filter(|d| !d.trim().is_empty())
        .unwrap_or(DEFAULT_FILTER);
    Ok(EnvFilter::builder().parse(directives)?)
}

/// The formatting layer, writing to `writer`.
pub fn fmt_layer<S, W>(format: Format, writer: W) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer().with_writer(writer);
    match format {
        Format::Human => layer.boxed(),
        Format::Json => layer
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .boxed(),
    }
}

/// Sets up logging (and trace export when `OTEL_EXPORTER_OTLP_ENDPOINT` is set) for the
/// whole process. `filter` overrides `EDGEBOT_LOG`, e.g. from a command-line flag.
pub fn init(filter: Option<&str>) -> Result<Guard, TelemetryError> {
    let otel = Pipeline::from_env()?;
    // Each layer has its own filter: `EDGEBOT_LOG=warn` quiets the log, not the traces,
    // whose spans are at info level.
    tracing_subscriber::registry()
        .with(fmt_layer(Format::for_stderr(), std::io::stderr).with_filter(env_filter(filter)?))
        .with(otel.as_ref().map(|pipeline| {
            let ours = tracing_subscriber::filter::Targets::new()
                .with_target("edgebot", tracing::Level::INFO);
            pipeline.layer().with_filter(ours)
        }))
        .try_init()?;
    if otel.is_some() {
        tracing::info!("exporting traces over OTLP/HTTP");
    }
    Ok(Guard { otel })
}
