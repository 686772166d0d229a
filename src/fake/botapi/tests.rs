//! End-to-end tests of the fake Bot API over real loopback HTTP.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{FakeBotApi, FakeConfig, Fault, FloodLimits};

pub(super) const TOKEN: &str = "123456:TEST-token";

pub(super) async fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<Bytes>,
) -> (u16, Value) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, "127.0.0.1");
    if let Some(content_type) = content_type {
        builder = builder.header(CONTENT_TYPE, content_type);
    }
    let response = sender
        .send_request(builder.body(Full::new(body.into())).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

pub(super) async fn call(api: &FakeBotApi, method: &str, params: Value) -> (u16, Value) {
    request(
        api.addr(),
        Method::POST,
        &format!("/bot{TOKEN}/{method}"),
        Some("application/json"),
        serde_json::to_vec(&params).unwrap(),
    )
    .await
}

pub(super) async fn start() -> FakeBotApi {
    FakeBotApi::start(FakeConfig::default()).await.unwrap()
}

fn keyboard() -> Value {
    json!({"inline_keyboard": [[{"text": "Yes", "callback_data": "y"}]]})
}

#[tokio::test]
async fn every_body_encoding_yields_the_same_params() {
    let api = start().await;
    let markup = keyboard().to_string();
    let path = format!("/bot{TOKEN}/sendMessage");

    let json_body = json!({"chat_id": 42, "text": "hi there", "reply_markup": keyboard()});
    let (status, json_answer) = call(&api, "sendMessage", json_body).await;
    assert_eq!(status, 200);

    let encoded: String = markup.bytes().map(|b| format!("%{b:02X}")).collect();
    let form = format!("chat_id=42&text=hi+there&reply_markup={encoded}");
    let form_type = Some("application/x-www-form-urlencoded");
    let (status, _) = request(api.addr(), Method::POST, &path, form_type, form).await;
    assert_eq!(status, 200);

    let multipart = format!(
        "--XyZ\r\nContent-Disposition: form-data; name=\"chat_id\"\r\n\r\n42\r\n\
         --XyZ\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nhi there\r\n\
         --XyZ\r\nContent-Disposition: form-data; name=\"reply_markup\"\r\n\r\n{markup}\r\n\
         --XyZ--\r\n"
    );
    let multipart_type = Some("multipart/form-data; boundary=\"XyZ\"");
    let (status, _) = request(api.addr(), Method::POST, &path, multipart_type, multipart).await;
    assert_eq!(status, 200);

    let query = format!("{path}?chat_id=42&text=hi%20there&reply_markup={encoded}");
    let (status, query_answer) = request(api.addr(), Method::GET, &query, None, "").await;
    assert_eq!(status, 200);

    let calls = api.delivered_calls("sendMessage");
    assert_eq!(calls.len(), 4);
    for recorded in &calls {
        assert_eq!(recorded.params, calls[0].params);
        assert_eq!(recorded.chat_id, Some(42));
        assert_eq!(recorded.token, TOKEN);
    }
    assert_eq!(calls[0].params["reply_markup"], keyboard());

    let message = &json_answer["result"];
    assert_eq!(json_answer["ok"], true);
    assert_eq!(message["message_id"], 1);
    assert_eq!(
        message["chat"],
        json!({"id": 42, "type": "private", "first_name": "Test"})
    );
    assert_eq!(message["from"]["is_bot"], true);
    assert_eq!(message["from"]["id"], 123456);
    assert_eq!(message["text"], "hi there");
    assert_eq!(message["reply_markup"], keyboard());
    assert!(message["date"].as_i64().unwrap() > 1_600_000_000);
    assert_eq!(query_answer["result"]["message_id"], 4);
    api.shutdown().await;
}

#[tokio::test]
async fn error_bodies_match_telegram() {
    let config = FakeConfig {
        valid_tokens: vec![TOKEN.to_owned()],
        ..FakeConfig::default()
    };
    let api = FakeBotApi::start(config).await.unwrap();
    let (status, body) = request(api.addr(), Method::GET, "/bot1:wrong/getMe", None, "").await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 401, "description": "Unauthorized"})
    );

    let (status, body) = call(&api, "sendTelepathy", json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 404, "description": "Not Found"})
    );

    let (status, body) = call(&api, "sendMessage", json!({"text": "x"})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 400, "description": "Bad Request: chat_id is empty"})
    );
    let (_, body) = call(&api, "SENDMESSAGE", json!({"chat_id": 1, "text": " "})).await;
    assert_eq!(body["description"], "Bad Request: message text is empty");
    let (_, body) = call(
        &api,
        "sendMessage",
        json!({"chat_id": 1, "text": "x".repeat(4097)}),
    )
    .await;
    assert_eq!(body["description"], "Bad Request: message is too long");

    let escaped = format!("/bot{}/getme", TOKEN.replace(':', "%3A"));
    let (status, body) = request(api.addr(), Method::GET, &escaped, None, "").await;
    assert_eq!(status, 200);
    assert_eq!(body["result"]["username"], "edgebot_test_bot");
    assert_eq!(body["result"]["can_join_groups"], true);

    let statuses: Vec<(String, u16)> = api
        .calls()
        .into_iter()
        .map(|c| (c.method, c.status))
        .collect();
    let expected = [
        ("getMe", 401),
        ("sendTelepathy", 404),
        ("sendMessage", 400),
        ("sendMessage", 400),
        ("sendMessage", 400),
        ("getMe", 200),
    ];
    let expected: Vec<(String, u16)> = expected.iter().map(|(m, s)| (m.to_string(), *s)).collect();
    assert_eq!(statuses, expected);
    api.shutdown().await;
}

#[tokio::test]
async fn injected_faults_are_answered_recorded_and_without_effect() {
    let api = start().await;
    api.inject(
        Fault::TooManyRequests { retry_after: 7 },
        1,
        Some("sendmessage"),
    );
    api.inject(Fault::ServerError(502), 1, None);
    let send = json!({"chat_id": -100, "text": "hello"});

    let (status, body) = call(&api, "getMe", json!({})).await;
    assert_eq!(
        (status, body["description"].as_str()),
        (502, Some("Bad Gateway"))
    );
    let (status, body) = call(&api, "sendMessage", send.clone()).await;
    assert_eq!(status, 429);
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 429,
               "description": "Too Many Requests: retry after 7",
               "parameters": {"retry_after": 7}})
    );
    let (status, body) = call(&api, "sendMessage", send).await;
    assert_eq!(status, 200);
    assert_eq!(body["result"]["message_id"], 1);
    assert_eq!(body["result"]["chat"]["type"], "group");

    assert_eq!(api.calls_for("sendMessage").len(), 2);
    assert_eq!(api.delivered_calls("sendMessage").len(), 1);
    assert_eq!(api.calls_for("sendMessage")[0].status, 429);
    assert_eq!(api.calls_for("sendMessage")[0].chat_id, Some(-100));

    api.inject(Fault::Delay(Duration::from_millis(300)), 1, None);
    let started = Instant::now();
    let (status, _) = call(&api, "getMe", json!({})).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    api.shutdown().await;
}

#[tokio::test]
async fn drop_connection_closes_the_socket_unanswered() {
    let api = start().await;
    api.inject(Fault::DropConnection, 1, None);
    let mut stream = TcpStream::connect(api.addr()).await.unwrap();
    let body = r#"{"chat_id":5,"text":"x"}"#;
    let head = format!(
        "POST /bot{TOKEN}/sendMessage HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut answer)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    assert!(answer.is_empty());
    let recorded = api.calls();
    assert_eq!((recorded[0].status, recorded[0].chat_id), (0, Some(5)));

    // The same raw request on a fresh connection is now answered, and the
    // connection stays open for the next request (keep-alive).
    let mut stream = TcpStream::connect(api.addr()).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while seen.matches("HTTP/1.1 200 OK").count() < 2 {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed early: {seen}");
        seen.push_str(std::str::from_utf8(&buf[..n]).unwrap());
    }
    assert_eq!(api.delivered_calls("sendMessage").len(), 2);
    api.shutdown().await;
}

#[tokio::test]
async fn get_updates_long_polls_and_respects_offset() {
    let api = start().await;
    let addr = api.addr();
    let poll = tokio::spawn(async move {
        let path = format!("/bot{TOKEN}/getUpdates?timeout=10");
        request(addr, Method::GET, &path, None, "").await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let first = api.push_update(json!({"message": {"message_id": 7, "date": 0, "text": "/start",
        "chat": {"id": 9, "type": "private"}, "from": {"id": 9, "is_bot": false, "first_name": "A"}}}));
    let (status, body) = poll.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(status, 200);
    assert_eq!(body["result"][0]["update_id"], first);
    assert_eq!(body["result"][0]["message"]["text"], "/start");

    let second = api.push_update(json!({"update_id": 100, "message": {}}));
    assert_eq!(second, 100);
    assert_eq!(api.push_update(json!({})), 101);
    let (_, body) = call(&api, "getUpdates", json!({"offset": first + 1, "limit": 1})).await;
    assert_eq!(body["result"], json!([{"update_id": 100, "message": {}}]));
    let (_, body) = call(&api, "getUpdates", json!({"offset": 101})).await;
    assert_eq!(body["result"], json!([{"update_id": 101}]));
    // Updates below the offset are forgotten.
    let (_, body) = call(&api, "getUpdates", json!({})).await;
    assert_eq!(body["result"], json!([{"update_id": 101}]));
    let (_, body) = call(&api, "getUpdates", json!({"offset": 102})).await;
    assert_eq!(body["result"], json!([]));

    // Opt-in update types need allowed_updates, which then persists.
    let member = api.push_update(json!({"chat_member": {}}));
    let (_, body) = call(&api, "getUpdates", json!({})).await;
    assert_eq!(body["result"], json!([]));
    let only_members = json!({"allowed_updates": ["chat_member"]});
    let (_, body) = call(&api, "getUpdates", only_members).await;
    assert_eq!(body["result"][0]["update_id"], member);
    api.push_update(json!({"message": {}}));
    let (_, body) = call(&api, "getUpdates", json!({"offset": member + 1})).await;
    assert_eq!(body["result"], json!([]));

    // The pushed user message is known: the bot may delete it, once.
    let delete = json!({"chat_id": 9, "message_id": 7});
    assert_eq!(call(&api, "deleteMessage", delete.clone()).await.0, 200);
    let (status, body) = call(&api, "deleteMessage", delete).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["description"],
        "Bad Request: message to delete not found"
    );
    // And the bot's next message in that chat follows it.
    let (_, body) = call(&api, "sendMessage", json!({"chat_id": 9, "text": "hi"})).await;
    assert_eq!(body["result"]["message_id"], 8);
    api.shutdown().await;
}

#[tokio::test]
async fn a_newer_get_updates_terminates_the_older_one() {
    let api = start().await;
    let addr = api.addr();
    let older = tokio::spawn(async move {
        let path = format!("/bot{TOKEN}/getUpdates?timeout=10");
        request(addr, Method::GET, &path, None, "").await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _) = call(&api, "getUpdates", json!({"timeout": 0})).await;
    assert_eq!(status, 200);
    let (status, body) = tokio::time::timeout(Duration::from_secs(2), older)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 409);
    assert_eq!(
        body["description"],
        "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
    );
    api.shutdown().await;
}

#[tokio::test]
async fn webhook_state_and_conflict() {
    let api = start().await;
    api.push_update(json!({}));
    let hook = json!({"url": "https://example.com/hook", "secret_token": "s3cr-et_",
                      "allowed_updates": ["message"], "max_connections": 10,
                      "drop_pending_updates": true});
    let (status, body) = call(&api, "setWebhook", hook).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"ok": true, "result": true, "description": "Webhook was set"})
    );
    let state = api.webhook().unwrap();
    assert_eq!(state.url, "https://example.com/hook");
    assert_eq!(state.secret_token.as_deref(), Some("s3cr-et_"));
    assert_eq!(state.allowed_updates, Some(vec!["message".to_owned()]));
    assert_eq!(
        (state.max_connections, state.drop_pending_updates),
        (10, true)
    );

    let (_, info) = call(&api, "getWebhookInfo", json!({})).await;
    assert_eq!(info["result"]["url"], "https://example.com/hook");
    assert_eq!(info["result"]["pending_update_count"], 0);

    let (status, body) = call(&api, "getUpdates", json!({})).await;
    assert_eq!(status, 409);
    assert_eq!(
        body["description"],
        "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
    );
    let (_, body) = call(&api, "setWebhook", json!({"url": "ftp://x"})).await;
    assert_eq!(body["error_code"], 400);

    let (_, body) = call(&api, "deleteWebhook", json!({})).await;
    assert_eq!(body["description"], "Webhook was deleted");
    assert!(api.webhook().is_none());
    assert_eq!(call(&api, "getUpdates", json!({})).await.0, 200);
    api.shutdown().await;
}

#[tokio::test]
async fn deliver_webhook_posts_with_the_secret() {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_addr = listener.local_addr().unwrap();
    let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let seen_tx = std::sync::Mutex::new(Some(seen_tx));
        let service = service_fn(move |req: Request<hyper::body::Incoming>| {
            let secret = req
                .headers()
                .get("x-telegram-bot-api-secret-token")
                .cloned();
            let path = req.uri().path().to_owned();
            let seen_tx = seen_tx.lock().unwrap().take();
            async move {
                let body = req.into_body().collect().await?.to_bytes();
                if let Some(tx) = seen_tx {
                    let _ = tx.send((path, secret, body));
                }
                Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::new())))
            }
        });
        let _ = http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .await;
    });

    let api = start().await;
    let url = format!("http://{hook_addr}/tg");
    call(
        &api,
        "setWebhook",
        json!({"url": url, "secret_token": "abc"}),
    )
    .await;
    let status = api
        .deliver_webhook(json!({"message": {"text": "x"}}))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (path, secret, body) = seen_rx.await.unwrap();
    assert_eq!(path, "/tg");
    assert_eq!(secret.unwrap(), "abc");
    let update: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(update, json!({"update_id": 1, "message": {"text": "x"}}));
    api.shutdown().await;
}

#[tokio::test]
async fn blocked_chat_is_forbidden() {
    let config = FakeConfig {
        blocked_chats: vec![666],
        ..FakeConfig::default()
    };
    let api = FakeBotApi::start(config).await.unwrap();
    let (status, body) = call(&api, "sendMessage", json!({"chat_id": "666", "text": "hi"})).await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"})
    );
    assert_eq!(api.calls()[0].chat_id, Some(666));
    let addr = api.addr();
    tokio::spawn(async move {
        let path = format!("/bot{TOKEN}/sendMessage?chat_id=667&text=hi");
        request(addr, Method::GET, &path, None, "").await
    });
    let delivered = |calls: &[super::RecordedCall]| calls.iter().any(|c| c.delivered());
    assert!(api.wait_for(delivered, Duration::from_secs(2)).await);
    let more = |calls: &[super::RecordedCall]| calls.len() > 2;
    assert!(!api.wait_for(more, Duration::from_millis(50)).await);
    api.shutdown().await;
}

#[tokio::test]
async fn flood_limits_are_enforced_when_enabled() {
    let config = FakeConfig {
        enforce_limits: Some(FloodLimits {
            global_per_second: 3,
            ..FloodLimits::default()
        }),
        ..FakeConfig::default()
    };
    let api = FakeBotApi::start(config).await.unwrap();
    let send = |chat: i64| json!({"chat_id": chat, "text": "x"});
    assert_eq!(call(&api, "sendMessage", send(1)).await.0, 200);
    let (status, body) = call(&api, "sendMessage", send(1)).await;
    assert_eq!(status, 429);
    assert_eq!(body["parameters"]["retry_after"], 1);
    assert_eq!(call(&api, "sendMessage", send(2)).await.0, 200);
    assert_eq!(call(&api, "sendMessage", send(-3)).await.0, 200);
    assert_eq!(call(&api, "sendMessage", send(-4)).await.0, 429);
    // Refused sends are recorded but not delivered.
    assert_eq!(api.calls_for("sendMessage").len(), 5);
    assert_eq!(api.delivered_calls("sendMessage").len(), 3);
    api.shutdown().await;
}

#[tokio::test]
async fn edits_follow_message_state() {
    let api = start().await;
    let (_, sent) = call(
        &api,
        "sendMessage",
        json!({"chat_id": 3, "text": "a", "reply_markup": keyboard()}),
    )
    .await;
    let id = sent["result"]["message_id"].clone();
    let edit = json!({"chat_id": 3, "message_id": id, "text": "a", "reply_markup": keyboard()});
    let (status, body) = call(&api, "editMessageText", edit).await;
    assert_eq!(status, 400);
    assert!(
        body["description"]
            .as_str()
            .unwrap()
            .starts_with("Bad Request: message is not modified")
    );

    let edit = json!({"chat_id": 3, "message_id": id, "text": "b", "reply_markup": keyboard()});
    let (status, body) = call(&api, "editMessageText", edit).await;
    assert_eq!(status, 200);
    assert_eq!(body["result"]["text"], "b");
    assert!(body["result"]["edit_date"].is_i64());
    let (status, _) = call(
        &api,
        "editMessageReplyMarkup",
        json!({"chat_id": 3, "message_id": id}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, body) = call(
        &api,
        "editMessageText",
        json!({"chat_id": 3, "message_id": 99, "text": "c"}),
    )
    .await;
    assert_eq!(
        body["description"],
        "Bad Request: message to edit not found"
    );

    let (_, body) = call(
        &api,
        "copyMessage",
        json!({"chat_id": 4, "from_chat_id": 3, "message_id": id}),
    )
    .await;
    assert_eq!(body["result"], json!({"message_id": 1}));
    let (_, body) = call(
        &api,
        "forwardMessage",
        json!({"chat_id": 4, "from_chat_id": 3, "message_id": id}),
    )
    .await;
    assert_eq!(body["result"]["message_id"], 2);
    assert_eq!(body["result"]["forward_origin"]["type"], "user");
    let (_, body) = call(
        &api,
        "answerCallbackQuery",
        json!({"callback_query_id": "q"}),
    )
    .await;
    assert_eq!(body, json!({"ok": true, "result": true}));
    let (_, body) = call(
        &api,
        "restrictChatMember",
        json!({"chat_id": 3, "user_id": 3}),
    )
    .await;
    assert_eq!(
        body["description"],
        "Bad Request: method is available only for supergroups"
    );
    let restrict = json!({"chat_id": -1001234567890_i64, "user_id": 3, "permissions": {}});
    assert_eq!(call(&api, "restrictChatMember", restrict).await.0, 200);
    let (_, body) = call(
        &api,
        "pinChatMessage",
        json!({"chat_id": 3, "message_id": 1}),
    )
    .await;
    assert_eq!(body["result"], true);
    api.shutdown().await;
}

#[tokio::test]
async fn html_texts_are_parsed_like_telegram_parses_them() {
    let api = start().await;
    let send = |text: &str| json!({"chat_id": 5, "text": text, "parse_mode": "HTML"});
    let (status, body) = call(&api, "sendMessage", send("<b>ok</b> &lt;3")).await;
    assert_eq!(status, 200);
    assert_eq!(body["result"]["text"], "<b>ok</b> &lt;3", "echoed as sent");

    for (text, reason) in [
        ("a < b", "Unsupported start tag \"\" at byte offset 2"),
        (
            "<div>x</div>",
            "Unsupported start tag \"div\" at byte offset 0",
        ),
        (
            "<b>never closed",
            "Can't find end tag corresponding to start tag \"b\"",
        ),
        (
            "<b><i>x</b></i>",
            "Unmatched end tag at byte offset 7, expected \"</i>\", found \"</b>\"",
        ),
    ] {
        let (status, body) = call(&api, "sendMessage", send(text)).await;
        assert_eq!(status, 400, "{text}");
        assert_eq!(
            body["description"],
            format!("Bad Request: can't parse entities: {reason}")
        );
    }
    // Without a parse mode the same text is plain, and fine.
    let plain = json!({"chat_id": 5, "text": "a < b"});
    assert_eq!(call(&api, "sendMessage", plain).await.0, 200);
    // Lowercase mode names are the same mode.
    let lower = json!({"chat_id": 5, "text": "<p>", "parse_mode": "html"});
    assert_eq!(call(&api, "sendMessage", lower).await.0, 400);

    // The limits count what is shown, in UTF-16 code units.
    let long = format!("<b>{}</b>", "&amp;".repeat(4096));
    assert_eq!(call(&api, "sendMessage", send(&long)).await.0, 200);
    let (status, body) = call(&api, "sendMessage", send(&"😀".repeat(2049))).await;
    assert_eq!(status, 400);
    assert_eq!(body["description"], "Bad Request: message is too long");
    let (_, body) = call(&api, "sendMessage", send("<b> </b>")).await;
    assert_eq!(body["description"], "Bad Request: message text is empty");

    let (_, sent) = call(&api, "sendMessage", send("first")).await;
    let id = sent["result"]["message_id"].clone();
    let edit = json!({"chat_id": 5, "message_id": id, "text": "<i>x", "parse_mode": "HTML"});
    let (status, body) = call(&api, "editMessageText", edit).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["description"],
        "Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"i\""
    );

    let photo = |caption: &str| json!({"chat_id": 5, "photo": "file", "caption": caption, "parse_mode": "HTML"});
    let (status, body) = call(&api, "sendPhoto", photo("<x>")).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["description"],
        "Bad Request: can't parse entities: Unsupported start tag \"x\" at byte offset 0"
    );
    let caption = format!("<b>{}</b>", "y".repeat(1024));
    assert_eq!(call(&api, "sendPhoto", photo(&caption)).await.0, 200);
    let (_, body) = call(&api, "sendPhoto", photo(&"y".repeat(1025))).await;
    assert_eq!(
        body["description"],
        "Bad Request: message caption is too long"
    );
    api.shutdown().await;
}

#[tokio::test]
async fn drafts_go_to_private_chats_only() {
    let config = FakeConfig {
        blocked_chats: vec![9],
        ..FakeConfig::default()
    };
    let api = FakeBotApi::start(config).await.unwrap();
    let draft = |chat: i64, text: &str| json!({"chat_id": chat, "draft_id": 7, "text": text, "parse_mode": "HTML"});
    assert_eq!(
        call(&api, "sendMessageDraft", draft(5, "<b>so far</b>")).await,
        (200, json!({"ok": true, "result": true}))
    );
    assert_eq!(
        call(&api, "sendMessageDraft", draft(5, "")).await.0,
        200,
        "Thinking…"
    );
    for group in [-5, -1001234567890] {
        let (status, body) = call(&api, "sendMessageDraft", draft(group, "x")).await;
        assert_eq!(status, 400);
        assert_eq!(body["description"], "Bad Request: TEXTDRAFT_PEER_INVALID");
    }
    let (_, body) = call(&api, "sendMessageDraft", draft(5, "<b>x")).await;
    assert_eq!(
        body["description"],
        "Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"b\""
    );
    let (_, body) = call(&api, "sendMessageDraft", draft(5, &"x".repeat(4097))).await;
    assert_eq!(body["description"], "Bad Request: message is too long");
    let (status, _) = call(&api, "sendMessageDraft", draft(9, "x")).await;
    assert_eq!(status, 403);
    let (_, body) = call(&api, "sendMessageDraft", json!({"chat_id": 5, "text": "x"})).await;
    assert_eq!(body["description"], "Bad Request: draft_id is empty");
    api.shutdown().await;
}

#[tokio::test]
async fn multipart_file_parts_are_summarized() {
    let api = start().await;
    let body = "--b\r\nContent-Disposition: form-data; name=\"chat_id\"\r\n\r\n-1001234567890\r\n\
                --b\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"cat.jpg\"\r\n\
                Content-Type: image/jpeg\r\n\r\n\x01\x02\x03\r\n--b--\r\n";
    let path = format!("/bot{TOKEN}/sendPhoto");
    let (status, answer) = request(
        api.addr(),
        Method::POST,
        &path,
        Some("multipart/form-data; boundary=b"),
        body,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(answer["result"]["chat"]["type"], "supergroup");
    assert!(answer["result"]["photo"][0]["file_id"].is_string());
    let params = &api.calls()[0].params;
    assert_eq!(params["chat_id"], -1001234567890_i64);
    assert_eq!(
        params["photo"],
        json!({"file_name": "cat.jpg", "content_type": "image/jpeg", "size": 3})
    );
    api.shutdown().await;
}

#[tokio::test]
async fn shutdown_releases_the_port() {
    let api = start().await;
    let addr = api.addr();
    assert!(api.base_url().starts_with("http://127.0.0.1:"));
    api.shutdown().await;
    assert!(TcpStream::connect(addr).await.is_err());
}
