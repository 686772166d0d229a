//! OpenTelemetry traces: one trace per update (`update` → `handle` → `store.finish`, the
//! one commit that keeps and applies it, and `handle` → `outbound.call`; a batch from long
//! polling adds `inbox.append`), exported over OTLP/HTTP with protobuf bodies.
//!
//! Only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is
//! set is a layer installed at all; otherwise spans cost what `tracing` spans cost
//! without a subscriber interested in them.
//!
//! The exporter talks HTTP through the hyper and rustls stack the bot already carries
//! for the Bot API, rather than opentelemetry-otlp's default reqwest client: no second
//! HTTP stack, no OpenSSL. The SDK's batch processor exports from a thread of its own,
//! outside any Tokio runtime, so the client keeps a one-thread runtime for its sockets;
//! exporting never depends on the application's runtime still running, which is what
//! lets the final flush happen while the program shuts down.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use std::time::Duration;
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::registry::LookupSpan;

/// The base URL of the collector; `/v1/traces` is appended.
pub(crate) const ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The full URL for traces; used as it is, and preferred over [`ENDPOINT_VAR`].
pub(crate) const TRACES_ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
/// One export (one batch of spans) may take this long, connection included.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// A collector's answer is a small status; anything larger is not read.
const MAX_RESPONSE: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    #[error("OpenTelemetry: the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("OpenTelemetry: the export thread could not start: {0}")]
    Runtime(std::io::Error),
    #[error("OpenTelemetry: flushing the last spans failed: {0}")]
    Flush(#[from] opentelemetry_sdk::error::OTelSdkError),
    #[error("OpenTelemetry: name resolution is unusable: {0}")]
    Resolver(String),
}

/// The export pipeline: hand [`Pipeline::layer`] to the subscriber, and keep the
/// pipeline until the end, then [`Pipeline::shutdown`] it to flush the last spans.
#[derive(Debug)]
pub struct Pipeline {
    provider: SdkTracerProvider,
}

impl Pipeline {
    /// The pipeline the environment asks for; `None` when no endpoint is set.
    pub(crate) fn from_env() -> Result<Option<Pipeline>, OtelError> {
        Pipeline::from_lookup(|var| std::env::var(var).ok())
    }

    /// As [`Pipeline::from_env`], reading variables through `lookup`.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Pipeline>, OtelError> {
        let set = |var| lookup(var).filter(|v| !v.trim().is_empty());
        let url = match (set(TRACES_ENDPOINT_VAR), set(ENDPOINT_VAR)) {
            (Some(traces), _) => traces,
            (None, Some(base)) => traces_url(&base),
            (None, None) => return Ok(None),
        };
        let service = set("OTEL_SERVICE_NAME").unwrap_or_else(|| "edgebot".to_owned());
        Pipeline::new(&url, &service).map(Some)
    }

    /// Exports to the collector at `base` (e.g. `http://127.0.0.1:4318`).
    pub fn to_collector(base: &str) -> Result<Pipeline, OtelError> {
        Pipeline::new(&traces_url(base), "edgebot")
    }

    fn new(traces_url: &str, service: &str) -> Result<Pipeline, OtelError> {
        let exporter = SpanExporter::builder()
            .with_http()
            .with_http_client(ExportClient::new()?)
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(traces_url)
            .with_timeout(EXPORT_TIMEOUT)
            .build()?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name(service.to_owned())
                    .build(),
            )
            .build();
        tracing::debug!(endpoint = traces_url, "exporting traces over OTLP/HTTP");
        Ok(Pipeline { provider })
    }

    /// The `tracing` layer that turns spans into OpenTelemetry spans, parents included.
    pub fn layer<S>(&self) -> OpenTelemetryLayer<S, SdkTracer>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    {
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer("edgebot"))
    }

    /// Exports what is still buffered and stops the exporter. Blocks until done.
    pub fn shutdown(self) -> Result<(), OtelError> {
        self.provider.shutdown()?;
        Ok(())
    }
}

/// The W3C `traceparent` of `span`, for a call that carries the trace on: the span's own
/// trace and id when traces are exported, otherwise fresh random ids flagged as not
/// sampled, so that the other side can still tell calls apart.
pub(crate) fn traceparent(span: &tracing::Span) -> String {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let context = span.context();
    let span = context.span();
    let ids = span.span_context();
    if ids.is_valid() {
        format!(
            "00-{}-{}-{:02x}",
            ids.trace_id(),
            ids.span_id(),
            ids.trace_flags().to_u8()
        )
    } else {
        format!(
            "00-{:032x}-{:016x}-00",
            fastrand::u128(1..),
            fastrand::u64(1..)
        )
    }
}

fn traces_url(base: &str) -> String {
    format!("{}/v1/traces", base.trim_end_matches('/'))
}

/// OTLP over hyper (http or https, rustls with the webpki roots), on a runtime of its own.
#[derive(Debug)]
struct ExportClient {
    http: HyperClient<crate::net::Connector, Full<Bytes>>,
    runtime: OwnedRuntime,
}

/// A runtime that is let go without waiting when dropped: it may be dropped from async
/// code (the last flush at shutdown), where waiting for it would be refused.
#[derive(Debug)]
struct OwnedRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl ExportClient {
    fn new() -> Result<ExportClient, OtelError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("edgebot-otlp")
            .enable_all()
            .build()
            .map_err(OtelError::Runtime)?;
        let connector = crate::net::https_connector(EXPORT_TIMEOUT)
            .map_err(|e| OtelError::Resolver(e.to_string()))?;
        Ok(ExportClient {
            http: HyperClient::builder(TokioExecutor::new()).build(connector),
            runtime: OwnedRuntime(Some(runtime)),
        })
    }
}

#[async_trait::async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let Some(runtime) = &self.runtime.0 else {
            return Err("the OTLP export runtime has stopped".into());
        };
        let http = self.http.clone();
        let (parts, body) = request.into_parts();
        let request = hyper::Request::from_parts(parts, Full::new(body));
        let exchange = async move {
            let response = http.request(request).await?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_RESPONSE).collect().await?.to_bytes();
            Ok::<_, HttpError>(Response::from_parts(parts, body))
        };
        runtime
            .spawn(async move {
                tokio::time::timeout(EXPORT_TIMEOUT, exchange)
                    .await
                    .map_err(|_| HttpError::from("the OTLP export timed out"))?
            })
            .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_without_exported_traces_is_well_formed_and_fresh() {
        let first = traceparent(&tracing::Span::none());
        let parts: Vec<&str> = first.split('-').collect();
        assert_eq!(parts.len(), 4, "{first}");
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [2, 32, 16, 2]
        );
        assert!(first.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()));
        assert_ne!(first, traceparent(&tracing::Span::none()));
    }

    #[test]
    fn nothing_is_built_without_an_endpoint() {
        assert!(Pipeline::from_lookup(|_| None).unwrap().is_none());
        assert!(
            Pipeline::from_lookup(|var| (var == ENDPOINT_VAR).then(|| " ".into()))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn the_base_endpoint_gets_the_traces_path() {
        assert_eq!(
            traces_url("http://collector:4318/"),
            "http://collector:4318/v1/traces"
        );
    }
}
