//! Tests of the control API under `/_fake/` over real loopback HTTP: updates pushed as a
//! user (to getUpdates or to the webhook), the call log with its filters, faults, and
//! errors that are JSON rather than panics or dropped connections.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use super::tests::{TOKEN, call, request, start};

async fn control(
    api: &super::FakeBotApi,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    request(api.addr(), method, path, Some("application/json"), body).await
}

#[tokio::test]
async fn pushed_updates_wake_a_long_poll_and_messages_are_filled_in() {
    let api = start().await;
    let addr = api.addr();
    let poll = tokio::spawn(async move {
        let path = format!("/bot{TOKEN}/getUpdates?timeout=10");
        request(addr, Method::GET, &path, None, "").await
    });
    // Let the poll start waiting first.
    let waiting = |calls: &[super::RecordedCall]| calls.is_empty();
    api.wait_for(waiting, Duration::from_millis(100)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    let shorthand =
        json!({"text": "/start@edgebot_test_bot go", "from": {"id": 7, "first_name": "Ann"}});
    let (status, pushed) = control(&api, Method::POST, "/_fake/updates", Some(shorthand)).await;
    assert_eq!(status, 200, "{pushed}");
    assert_eq!(
        (&pushed["update_id"], &pushed["delivered_to"]),
        (&json!(1), &json!("getUpdates"))
    );
    let (status, polled) = poll.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(status, 200);
    let message = &polled["result"][0]["message"];
    assert_eq!(polled["result"][0]["update_id"], 1);
    assert_eq!(message["message_id"], 1);
    assert!(message["date"].as_i64().is_some_and(|d| d > 1_600_000_000));
    assert_eq!(
        message["chat"],
        json!({"id": 7, "type": "private", "first_name": "Ann"})
    );
    assert_eq!(message["from"]["is_bot"], false);
    assert_eq!(
        message["entities"],
        json!([{"type": "bot_command", "offset": 0, "length": 23}])
    );

    // Message ids go on per chat; `from` may be an id, `chat_id` a group.
    let next = json!({"text": "again", "from": 7});
    let (_, pushed) = control(&api, Method::POST, "/_fake/updates", Some(next)).await;
    assert_eq!(pushed["update"]["message"]["message_id"], 2);
    assert!(pushed["update"]["message"].get("entities").is_none());
    let group = json!({"text": "hi all", "from": 7, "chat_id": -1001234567890i64});
    let (_, pushed) = control(&api, Method::POST, "/_fake/updates", Some(group)).await;
    assert_eq!(pushed["update"]["message"]["chat"]["type"], "supergroup");
    assert_eq!(pushed["update"]["message"]["message_id"], 1);

    // A whole update passes as given, with only its id added.
    let callback = json!({"callback_query": {"id": "cb1", "from": {"id": 7, "is_bot": false,
        "first_name": "Ann"}, "chat_instance": "x", "data": "go"}});
    let (_, pushed) = control(&api, Method::POST, "/_fake/updates", Some(callback.clone())).await;
    let mut expected = callback;
    expected["update_id"] = json!(4);
    assert_eq!(pushed["update"], expected);
    assert_eq!(pushed["pending"], 4);

    // The bot can answer the pushed message: the fake knows it now.
    let reply = json!({"chat_id": 7, "from_chat_id": 7, "message_id": 2});
    assert_eq!(call(&api, "forwardMessage", reply).await.0, 200);
    api.shutdown().await;
}

#[tokio::test]
async fn bad_control_requests_get_json_errors() {
    let api = start().await;
    let cases = [
        (Method::POST, "/_fake/updates", Some(json!([1]))),
        (Method::POST, "/_fake/updates", Some(json!({}))),
        (Method::POST, "/_fake/updates", Some(json!({"text": 5}))),
        (
            Method::POST,
            "/_fake/updates",
            Some(json!({"text": "x", "from": "ann"})),
        ),
        (
            Method::POST,
            "/_fake/updates",
            Some(json!({"text": "x", "chat_id": 0})),
        ),
        (
            Method::POST,
            "/_fake/updates",
            Some(json!({"text": "x", "photo": []})),
        ),
        (Method::POST, "/_fake/updates", Some(json!({"message": 3}))),
        (
            Method::POST,
            "/_fake/updates",
            Some(json!({"message": {"text": "no chat"}})),
        ),
        (
            Method::POST,
            "/_fake/faults",
            Some(json!({"fault": "boom"})),
        ),
        (
            Method::POST,
            "/_fake/faults",
            Some(json!({"fault": "5xx", "status": 404})),
        ),
        (
            Method::POST,
            "/_fake/faults",
            Some(json!({"fault": "429", "times": 0})),
        ),
        (
            Method::POST,
            "/_fake/faults",
            Some(json!({"fault": "drop", "method": "nope"})),
        ),
        (
            Method::POST,
            "/_fake/faults",
            Some(json!({"fault": "slow", "ms": -1})),
        ),
        (Method::GET, "/_fake/calls?since=abc", None),
        (Method::PUT, "/_fake/calls", None),
        (Method::GET, "/_fake/nothing", None),
    ];
    for (method, path, body) in cases {
        let label = format!("{method} {path} {body:?}");
        let (status, answer) = control(&api, method, path, body).await;
        assert!((400..500).contains(&status), "{label}: {status} {answer}");
        assert_eq!(answer["ok"], false, "{label}");
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{label}: {answer}"
        );
    }
    // Not JSON at all.
    let (status, answer) = request(
        api.addr(),
        Method::POST,
        "/_fake/updates",
        Some("application/json"),
        "{oops",
    )
    .await;
    assert_eq!((status, &answer["ok"]), (400, &json!(false)));
    // Nothing was queued and nothing recorded by the failures.
    assert_eq!(api.call_count(), 0);
    let (_, polled) = call(&api, "getUpdates", json!({})).await;
    assert_eq!(polled["result"], json!([]));
    api.shutdown().await;
}

#[tokio::test]
async fn calls_filter_by_method_chat_and_sequence() {
    let api = start().await;
    for chat in [1, 2, 1] {
        call(&api, "sendMessage", json!({"chat_id": chat, "text": "x"})).await;
    }
    call(&api, "getMe", json!({})).await;
    let (status, all) = control(&api, Method::GET, "/_fake/calls", None).await;
    assert_eq!(status, 200);
    assert_eq!(all["calls"].as_array().map(Vec::len), Some(4));
    assert_eq!(all["last_seq"], 4);
    assert_eq!(all["calls"][0]["seq"], 1);
    assert_eq!(
        all["calls"][0]["params"],
        json!({"chat_id": 1, "text": "x"})
    );
    assert_eq!(all["calls"][3]["delivered"], true);

    let (_, sends) = control(&api, Method::GET, "/_fake/calls?method=SENDmessage", None).await;
    assert_eq!(sends["calls"].as_array().map(Vec::len), Some(3));
    let (_, chat) = control(
        &api,
        Method::GET,
        "/_fake/calls?chat_id=1&method=sendMessage",
        None,
    )
    .await;
    let seqs: Vec<&Value> = chat["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["seq"])
        .collect();
    assert_eq!(seqs, [&json!(1), &json!(3)]);
    let (_, none) = control(&api, Method::GET, "/_fake/calls?since=4", None).await;
    assert_eq!(none["calls"], json!([]));

    call(&api, "sendMessage", json!({"chat_id": 2, "text": "y"})).await;
    let (_, new) = control(&api, Method::GET, "/_fake/calls?since=4", None).await;
    assert_eq!(new["calls"].as_array().map(Vec::len), Some(1));
    assert_eq!(new["calls"][0]["seq"], 5);

    let (_, cleared) = control(&api, Method::DELETE, "/_fake/calls", None).await;
    assert_eq!(cleared, json!({"ok": true, "cleared": 5}));
    assert_eq!(api.call_count(), 0);
    call(&api, "getMe", json!({})).await;
    let (_, after) = control(&api, Method::GET, "/_fake/calls", None).await;
    assert_eq!(after["calls"][0]["seq"], 6, "numbering survives a clear");
    assert_eq!(api.calls()[0].seq, 6);
    api.shutdown().await;
}

#[tokio::test]
async fn faults_from_the_control_api() {
    let api = start().await;
    let fault = json!({"fault": "429", "retry_after": 3, "times": 2, "method": "sendmessage"});
    let (status, queued) = control(&api, Method::POST, "/_fake/faults", Some(fault)).await;
    assert_eq!(status, 200, "{queued}");
    assert_eq!(
        queued["faults"],
        json!([{"fault": "429", "retry_after": 3, "times": 2, "method": "sendMessage"}])
    );
    let send = json!({"chat_id": 5, "text": "x"});
    assert_eq!(call(&api, "getMe", json!({})).await.0, 200);
    for _ in 0..2 {
        let (status, body) = call(&api, "sendMessage", send.clone()).await;
        assert_eq!(
            (status, &body["parameters"]["retry_after"]),
            (429, &json!(3))
        );
    }
    assert_eq!(call(&api, "sendMessage", send.clone()).await.0, 200);
    let (_, faults) = control(&api, Method::GET, "/_fake/faults", None).await;
    assert_eq!(faults["faults"], json!([]));

    control(
        &api,
        Method::POST,
        "/_fake/faults",
        Some(json!({"fault": "5xx", "status": 503})),
    )
    .await;
    let (status, body) = call(&api, "getMe", json!({})).await;
    assert_eq!(
        (status, &body["description"]),
        (503, &json!("Service Unavailable"))
    );

    control(
        &api,
        Method::POST,
        "/_fake/faults",
        Some(json!({"fault": "slow", "ms": 300})),
    )
    .await;
    let started = Instant::now();
    assert_eq!(call(&api, "getMe", json!({})).await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    control(
        &api,
        Method::POST,
        "/_fake/faults",
        Some(json!({"fault": "drop"})),
    )
    .await;
    let stream = tokio::net::TcpStream::connect(api.addr()).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let dropped = sender
        .send_request(
            Request::get(format!("/bot{TOKEN}/getMe"))
                .header("host", "x")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert!(dropped.is_err(), "the connection closes unanswered");

    control(
        &api,
        Method::POST,
        "/_fake/faults",
        Some(json!({"fault": "drop", "times": 9})),
    )
    .await;
    let (_, cleared) = control(&api, Method::DELETE, "/_fake/faults", None).await;
    assert_eq!(cleared, json!({"ok": true, "cleared": 1}));
    assert_eq!(call(&api, "getMe", json!({})).await.0, 200);
    api.shutdown().await;
}

#[tokio::test]
async fn updates_go_to_the_webhook_when_one_is_set() {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_addr = listener.local_addr().unwrap();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen_tx = seen_tx.clone();
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let secret = req
                    .headers()
                    .get("x-telegram-bot-api-secret-token")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let seen_tx = seen_tx.clone();
                async move {
                    let body = req.into_body().collect().await?.to_bytes();
                    let _ = seen_tx.send((secret, body));
                    Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::new())))
                }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });

    let api = start().await;
    let (_, none) = control(&api, Method::GET, "/_fake/webhook", None).await;
    assert_eq!(none, json!({"ok": true, "webhook": null}));
    let url = format!("http://{hook_addr}/hook");
    call(
        &api,
        "setWebhook",
        json!({"url": url, "secret_token": "s3cret"}),
    )
    .await;
    let (_, hook) = control(&api, Method::GET, "/_fake/webhook", None).await;
    assert_eq!(hook["webhook"]["url"], url);
    assert_eq!(hook["webhook"]["secret_token"], "s3cret");

    let (status, pushed) = control(
        &api,
        Method::POST,
        "/_fake/updates",
        Some(json!({"text": "hello", "from": 9})),
    )
    .await;
    assert_eq!(status, 200, "{pushed}");
    assert_eq!(pushed["delivered_to"], "webhook");
    assert_eq!(pushed["status"], 200);
    let (secret, body) = seen_rx.recv().await.unwrap();
    assert_eq!(secret.as_deref(), Some("s3cret"));
    let update: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(update, pushed["update"]);
    assert_eq!(update["message"]["text"], "hello");

    // An unreachable webhook is a JSON error naming it.
    call(
        &api,
        "setWebhook",
        json!({"url": "http://127.0.0.1:9/gone"}),
    )
    .await;
    let (status, error) = control(
        &api,
        Method::POST,
        "/_fake/updates",
        Some(json!({"text": "lost", "from": 9})),
    )
    .await;
    assert_eq!(status, 502, "{error}");
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("127.0.0.1:9"))
    );
    api.shutdown().await;
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_long_poll() {
    let api = start().await;
    let addr = api.addr();
    let poll = tokio::spawn(async move {
        let path = format!("/bot{TOKEN}/getUpdates?timeout=60");
        request(addr, Method::GET, &path, None, "").await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    api.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let (status, body) = poll.await.unwrap();
    assert_eq!((status, &body["result"]), (200, &json!([])));
}
