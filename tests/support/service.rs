//! A loopback HTTP service that plays an internal service for edgebot's service routes:
//! each request takes the next scripted behaviour (answer at once, answer late, answer a
//! status, answer something that is not JSON, or wait until the test lets it go), and
//! every request is recorded with the headers the contract names.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// What the service does with one request.
#[derive(Clone)]
pub enum Behaviour {
    /// 200 with this JSON body.
    Json(Value),
    /// 200 with this JSON body, after a delay.
    Late(Duration, Value),
    /// This status, empty body.
    Status(u16),
    /// 200 with a body that is not JSON.
    Garbage,
    /// 200 with this JSON, once [`LoopbackService::release`] is called.
    Held(Value),
}

/// One request as the service saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub idempotency_key: Option<String>,
    pub request_id: Option<String>,
    pub traceparent: Option<String>,
    pub authorization: Option<String>,
    pub body: Value,
}

struct Shared {
    script: Mutex<VecDeque<Behaviour>>,
    /// Used once the script runs out.
    default: Mutex<Behaviour>,
    seen: Mutex<Vec<Seen>>,
    release: Notify,
    arrived: Notify,
}

pub struct LoopbackService {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LoopbackService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A reply that sends `text`.
pub fn says(text: &str) -> Value {
    serde_json::json!({"actions": [{"type": "send", "text": text}]})
}

impl LoopbackService {
    pub async fn start(default: Behaviour) -> LoopbackService {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(default),
            seen: Mutex::new(Vec::new()),
            release: Notify::new(),
            arrived: Notify::new(),
        });
        let task = tokio::spawn({
            let shared = shared.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |request| {
                            let shared = shared.clone();
                            async move { Ok::<_, hyper::Error>(answer(&shared, request).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        });
        LoopbackService { addr, shared, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/handle", self.addr)
    }

    /// Queues behaviours for the next requests, in order.
    pub fn script(&self, behaviours: impl IntoIterator<Item = Behaviour>) {
        self.shared.script.lock().unwrap().extend(behaviours);
    }

    /// Lets every held request answer.
    pub fn release(&self) {
        self.shared.release.notify_waiters();
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Waits until `n` requests have arrived, up to `limit`.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.shared.arrived.notified();
            if self.seen().len() >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.seen().len() >= n;
            }
        }
    }
}

async fn answer(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (idempotency_key, request_id, traceparent, authorization) = (
        header("idempotency-key"),
        header("x-request-id"),
        header("traceparent"),
        header("authorization"),
    );
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let behaviour = {
        let next = shared.script.lock().unwrap().pop_front();
        next.unwrap_or_else(|| shared.default.lock().unwrap().clone())
    };
    // Registered before the request is recorded, so a release right after the test
    // sees the request cannot be missed.
    let released = shared.release.notified();
    shared.seen.lock().unwrap().push(Seen {
        idempotency_key,
        request_id,
        traceparent,
        authorization,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    shared.arrived.notify_waiters();
    let json = |value: &Value| {
        let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
        response
            .headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        response
    };
    match behaviour {
        Behaviour::Json(value) => json(&value),
        Behaviour::Late(delay, value) => {
            tokio::time::sleep(delay).await;
            json(&value)
        }
        Behaviour::Status(status) => {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
            response
        }
        Behaviour::Garbage => Response::new(Full::new(Bytes::from_static(b"<html>oops</html>"))),
        Behaviour::Held(value) => {
            released.await;
            json(&value)
        }
    }
}
