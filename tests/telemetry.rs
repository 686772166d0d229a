//! Logs and traces of the real update path: webhook body → inbox → engine → outbox →
//! sender → (fake) Telegram.
//!
//! * No message text reaches the logs at info: the JSON output of a run over updates
//!   with distinctive texts is searched for them.
//! * Spans reach an OTLP/HTTP collector (a loopback receiver decoding the protobuf) with
//!   their parent links.

use bytes::Bytes;
use edgebot::app::runtime::Sending;
use edgebot::botapi::Client;
use edgebot::config::{Config, Secret};
use edgebot::fake::botapi::{FakeBotApi, FakeConfig};
use edgebot::store::Store;
use edgebot::telemetry::logging::{self, Format};
use edgebot::telemetry::otel::Pipeline;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message as _;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

/// Log output collected in memory.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;

    fn make_writer(&'a self) -> Buffer {
        self.clone()
    }
}

const SECRETS: [&str; 5] = [
    "PLAINTEXT-ZEBRA-1",
    "FEEDBACK-OKAPI-2",
    "STARTARG-NARWHAL-3",
    "UNKNOWN-AXOLOTL-4",
    "CALLBACK-QUOKKA-5",
];

/// The user who blocked the bot: sends to them get 403, which the sender logs at info.
const BLOCKED: i64 = 43;

fn message(update_id: i64, user: i64, text: &str) -> Value {
    json!({
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1_700_000_000,
            "chat": { "id": user, "type": "private", "first_name": "Ann" },
            "from": { "id": user, "is_bot": false, "first_name": "Ann" },
            "text": text,
        }
    })
}

fn updates() -> Vec<Value> {
    let callback = json!({
        "update_id": 6,
        "callback_query": {
            "id": "cb1",
            "from": { "id": 42, "is_bot": false, "first_name": "Ann" },
            "chat_instance": "ci",
            "data": SECRETS[4],
            "message": {
                "message_id": 1,
                "date": 1_700_000_000,
                "chat": { "id": 42, "type": "private", "first_name": "Ann" },
                "text": "menu"
            }
        }
    });
    vec![
        message(1, 42, &format!("hello {}", SECRETS[0])),
        message(2, 42, "/feedback"),
        message(3, 42, &format!("{} is my feedback", SECRETS[1])),
        message(4, BLOCKED, &format!("/start {}", SECRETS[2])),
        message(5, 42, &format!("/nosuchcommand {}", SECRETS[3])),
        callback,
    ]
}

/// The real path from a webhook body to the fake Bot API; returns once every update is
/// handled and every resulting call settled.
async fn run_updates(fake: &FakeBotApi) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut config = Config::default();
    config.limits.inbound.enabled = false;
    let client = Client::new(
        &fake.base_url(),
        &Secret::new("123:test"),
        Duration::from_secs(5),
    )
    .unwrap();
    let runtime = Sending::start(&config, store, client)
        .unwrap()
        .runtime(&config, Some("edgebot".into()), None)
        .unwrap();
    let inbox = runtime.inbox.clone();
    for update in updates() {
        let raw = Bytes::from(serde_json::to_vec(&update).unwrap());
        inbox.accept(raw, "webhook").await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(20), runtime.drained())
        .await
        .expect("the updates were handled and sent");
}

fn fake_config() -> FakeConfig {
    FakeConfig {
        blocked_chats: vec![BLOCKED],
        ..FakeConfig::default()
    }
}

#[tokio::test]
async fn no_message_text_reaches_the_info_logs() {
    let logs = Buffer::default();
    let subscriber = tracing_subscriber::registry()
        .with(logging::env_filter(Some("info")).unwrap())
        .with(logging::fmt_layer(Format::Json, logs.clone()));
    // The test runtime has one thread, so every task of the run logs through this.
    let _default = tracing::subscriber::set_default(subscriber);
    let fake = FakeBotApi::start(fake_config()).await.unwrap();
    run_updates(&fake).await;
    assert!(
        fake.calls_for("sendMessage").len() >= 3,
        "the bot answered: {:?}",
        fake.calls()
    );

    let text = logs.text();
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret} was logged:\n{text}");
    }
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    // The 403 from the blocked user is logged at info inside the send's span, so the line
    // names the update it came from.
    let blocked = lines
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .unwrap_or_default()
                .contains("blocked")
        })
        .unwrap_or_else(|| panic!("no line about the blocked user:\n{text}"));
    assert_eq!(blocked["level"], "INFO");
    let spans = blocked["spans"].as_array().expect("the enclosing spans");
    assert!(
        spans.iter().any(|s| s["update_id"] == 4),
        "update_id is on the line: {blocked}"
    );
}

/// One span as the collector received it.
#[derive(Debug, Clone)]
struct Received {
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    attributes: HashMap<String, String>,
}

/// A loopback OTLP/HTTP collector: accepts `POST /v1/traces` with protobuf bodies.
async fn collector() -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let sink = sink.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let sink = sink.clone();
                    async move {
                        assert_eq!(req.uri().path(), "/v1/traces");
                        assert_eq!(req.headers()["content-type"], "application/x-protobuf");
                        let body = req.into_body().collect().await?.to_bytes();
                        let export = ExportTraceServiceRequest::decode(body).unwrap();
                        let spans = export
                            .resource_spans
                            .into_iter()
                            .flat_map(|r| r.scope_spans)
                            .flat_map(|s| s.spans);
                        sink.lock().unwrap().extend(spans.map(|span| {
                            Received {
                                name: span.name,
                                trace_id: span.trace_id,
                                span_id: span.span_id,
                                parent_span_id: span.parent_span_id,
                                attributes: span
                                    .attributes
                                    .into_iter()
                                    .map(|kv| {
                                        let value = match kv.value.and_then(|v| v.value) {
                                            Some(any_value::Value::StringValue(s)) => s,
                                            Some(any_value::Value::IntValue(i)) => i.to_string(),
                                            other => format!("{other:?}"),
                                        };
                                        (kv.key, value)
                                    })
                                    .collect(),
                            }
                        }));
                        Ok::<_, hyper::Error>(
                            hyper::Response::builder()
                                .header("content-type", "application/x-protobuf")
                                .body(Full::new(Bytes::new()))
                                .unwrap(),
                        )
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (base, received)
}

#[tokio::test]
async fn spans_reach_the_collector_with_their_parents() {
    let (base, received) = collector().await;
    let pipeline = Pipeline::to_collector(&base).unwrap();
    let subscriber = tracing_subscriber::registry().with(pipeline.layer());
    {
        let _default = tracing::subscriber::set_default(subscriber);
        // The shape of one update's trace, as the transport, inbox, dispatcher and sender
        // nest them.
        let update = tracing::info_span!("update", update_id = 77, kind = "message");
        let _in_update = update.enter();
        let handle = tracing::info_span!("handle", update_id = 77);
        let _in_handle = handle.enter();
        tracing::info_span!("store.finish", update_id = 77).in_scope(|| {});
        tracing::info_span!("outbound.call", method = "sendMessage", update_id = 77)
            .in_scope(|| {});
    }
    // Spans of the real path arrive too.
    let fake = FakeBotApi::start(fake_config()).await.unwrap();
    {
        let subscriber = tracing_subscriber::registry().with(pipeline.layer());
        let _default = tracing::subscriber::set_default(subscriber);
        run_updates(&fake).await;
    }
    // Shutting down flushes; it blocks, and the collector runs on this runtime.
    tokio::task::spawn_blocking(move || pipeline.shutdown())
        .await
        .unwrap()
        .unwrap();

    let spans = received.lock().unwrap().clone();
    let update_id = |s: &Received| s.attributes.get("update_id").cloned().unwrap_or_default();
    let one = |name: &str| -> &Received {
        spans
            .iter()
            .find(|s| s.name == name && update_id(s) == "77")
            .unwrap_or_else(|| panic!("no {name} span among {spans:#?}"))
    };
    let update = one("update");
    let commit = one("store.finish");
    let handle = one("handle");
    let call = one("outbound.call");
    assert!(update.parent_span_id.is_empty(), "the update is the root");
    assert_eq!(update.attributes["update_id"], "77");
    assert_eq!(update.attributes["kind"], "message");
    for child in [commit, handle, call] {
        assert_eq!(
            child.trace_id, update.trace_id,
            "{} is in the update's trace",
            child.name
        );
    }
    assert_eq!(handle.parent_span_id, update.span_id);
    assert_eq!(commit.parent_span_id, handle.span_id);
    assert_eq!(call.parent_span_id, handle.span_id);
    assert_eq!(update.span_id.len(), 8);
    assert_eq!(update.trace_id.len(), 16);

    for name in ["handle", "store.finish", "outbound.call"] {
        let real = spans
            .iter()
            .filter(|s| s.name == name && update_id(s) != "77");
        assert!(
            real.count() >= 2,
            "spans named {name} from the real path: {spans:#?}"
        );
    }
    // On the real path too, an update's one commit is part of its handling.
    let handles: Vec<&Received> = spans
        .iter()
        .filter(|s| s.name == "handle" && update_id(s) != "77")
        .collect();
    for commit in spans
        .iter()
        .filter(|s| s.name == "store.finish" && update_id(s) != "77")
    {
        assert!(
            handles.iter().any(|h| h.span_id == commit.parent_span_id
                && h.trace_id == commit.trace_id
                && update_id(h) == update_id(commit)),
            "store.finish of update {} outside its handle span",
            update_id(commit)
        );
    }
}
