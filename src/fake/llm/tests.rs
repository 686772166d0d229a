//! End-to-end tests of the fake LLM server over real loopback HTTP: every endpoint in
//! both wire formats, streamed and whole, scripted and echoed, with keys, validation
//! errors, faults and the control API.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HOST, HeaderMap};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Auth, FakeLlm, FakeLlmConfig, Fault, Provider};

const CHAT: &str = "/v1/chat/completions";
const MESSAGES: &str = "/v1/messages";
/// The headers an Anthropic client sends (without a key).
const ANTHROPIC: &[(&str, &str)] = &[("anthropic-version", "2023-06-01")];

/// What came back: the body's frames as they arrived, and whether it was broken off.
struct Reply {
    status: u16,
    headers: HeaderMap,
    frames: Vec<Bytes>,
    broken_off: bool,
}

impl Reply {
    fn bytes(&self) -> Vec<u8> {
        self.frames.concat()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes()).unwrap()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// The body as server-sent events `(event name, data)`, parsed strictly for the
    /// fake's own simple framing (this is not the bot's decoder, on purpose).
    fn events(&self) -> Vec<(Option<String>, String)> {
        let bytes = self.bytes();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.ends_with("\n\n") || self.broken_off, "{text:?}");
        text.split_terminator("\n\n")
            .map(|block| {
                let mut name = None;
                let mut data = None;
                for line in block.split('\n') {
                    if let Some(value) = line.strip_prefix("event: ") {
                        name = Some(value.to_owned());
                    } else if let Some(value) = line.strip_prefix("data: ") {
                        assert!(data.is_none(), "two data lines in {block:?}");
                        data = Some(value.to_owned());
                    } else {
                        panic!("unexpected line {line:?}");
                    }
                }
                (name, data.unwrap())
            })
            .collect()
    }

    /// The JSON of every event but OpenAI's `[DONE]`.
    fn event_json(&self) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|(_, data)| data != "[DONE]")
            .map(|(_, data)| serde_json::from_str(&data).unwrap())
            .collect()
    }
}

async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, "127.0.0.1")
        .header(CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = sender
        .send_request(builder.body(Full::new(body.into())).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = response.into_body();
    let mut frames = Vec::new();
    let mut broken_off = false;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => frames.extend(frame.into_data().ok()),
            Err(_) => {
                broken_off = true;
                break;
            }
        }
    }
    Reply {
        status,
        headers,
        frames,
        broken_off,
    }
}

async fn post(llm: &FakeLlm, path: &str, headers: &[(&str, &str)], body: &Value) -> Reply {
    send(
        llm.addr(),
        Method::POST,
        path,
        headers,
        serde_json::to_vec(body).unwrap(),
    )
    .await
}

async fn get(llm: &FakeLlm, path: &str, headers: &[(&str, &str)]) -> Reply {
    send(llm.addr(), Method::GET, path, headers, Bytes::new()).await
}

async fn start() -> FakeLlm {
    FakeLlm::start(FakeLlmConfig::default()).await.unwrap()
}

fn chat(text: &str) -> Value {
    json!({
        "model": "gpt-test",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": text},
        ],
    })
}

fn messages(text: &str) -> Value {
    json!({
        "model": "claude-test",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
    })
}

fn with(mut body: Value, extra: &Value) -> Value {
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    body
}

/// The prompt "Be brief." (3 tokens) + "Hi there" (2 tokens) as a system and a user
/// message: 3 + (3 + 3) + (3 + 2).
const PROMPT_TOKENS: u64 = 14;

#[tokio::test]
async fn openai_answers_with_an_echo_and_counts_tokens() {
    let llm = start().await;
    let reply = post(&llm, CHAT, &[], &chat("Hi there")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let answer = reply.json();
    assert_eq!(answer["object"], "chat.completion");
    assert!(answer["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert!(answer["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(answer["model"], "gpt-test");
    let choice = &answer["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    // "You said: Hi there" is 18 bytes: 5 tokens.
    assert_eq!(choice["message"]["content"], "You said: Hi there");
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(
        answer["usage"],
        json!({"prompt_tokens": PROMPT_TOKENS, "completion_tokens": 5, "total_tokens": PROMPT_TOKENS + 5})
    );

    let recorded = llm.requests();
    assert_eq!(recorded.len(), 1);
    let request = &recorded[0];
    assert_eq!(request.seq, 1);
    assert_eq!(request.provider, Provider::OpenAi);
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", CHAT)
    );
    assert_eq!(request.auth, Auth::Absent);
    assert_eq!(request.body, chat("Hi there"));
    assert!(!request.stream);
    assert_eq!((request.status, request.fault.clone()), (200, None));
    llm.shutdown().await;
}

#[tokio::test]
async fn openai_stream_reassembles_to_the_whole_answer() {
    let llm = start().await;
    let whole = post(&llm, CHAT, &[], &chat("Привет, 😀 world"))
        .await
        .json();
    let body = with(
        chat("Привет, 😀 world"),
        &json!({"stream": true, "stream_options": {"include_usage": true}}),
    );
    let reply = post(&llm, CHAT, &[], &body).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    assert!(!reply.broken_off);
    let events = reply.events();
    assert!(events.iter().all(|(name, _)| name.is_none()));
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let chunks = reply.event_json();
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "gpt-test");
        assert_eq!(chunk["id"], chunks[0]["id"]);
    }
    let (usage_chunk, chunks) = chunks.split_last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"], whole["usage"]);
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let (last, deltas) = chunks.split_last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(last["choices"][0]["delta"], json!({}));
    let mut text = String::new();
    for chunk in deltas {
        assert_eq!(chunk["usage"], Value::Null);
        let choice = &chunk["choices"][0];
        assert_eq!(choice["finish_reason"], Value::Null);
        text.push_str(choice["delta"]["content"].as_str().unwrap());
    }
    assert!(deltas.len() > 3, "a few characters per delta");
    assert_eq!(text, whole["choices"][0]["message"]["content"]);
    assert!(llm.requests()[1].stream);

    // Without include_usage: no usage chunk, no usage fields.
    let reply = post(&llm, CHAT, &[], &with(chat("x"), &json!({"stream": true}))).await;
    let chunks = reply.event_json();
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
    llm.shutdown().await;
}

#[tokio::test]
async fn anthropic_answers_with_an_echo_and_counts_tokens() {
    let llm = start().await;
    let reply = post(&llm, MESSAGES, ANTHROPIC, &messages("Hi there")).await;
    assert_eq!(reply.status, 200);
    let answer = reply.json();
    assert!(answer["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(answer["type"], "message");
    assert_eq!(answer["role"], "assistant");
    assert_eq!(answer["model"], "claude-test");
    assert_eq!(
        answer["content"],
        json!([{"type": "text", "text": "You said: Hi there"}])
    );
    assert_eq!(answer["stop_reason"], "end_turn");
    assert_eq!(answer["stop_sequence"], Value::Null);
    assert_eq!(
        answer["usage"],
        json!({"input_tokens": PROMPT_TOKENS, "output_tokens": 5})
    );
    let request = &llm.requests()[0];
    assert_eq!(request.provider, Provider::Anthropic);
    assert_eq!(request.path, MESSAGES);
    llm.shutdown().await;
}

#[tokio::test]
async fn anthropic_stream_reassembles_to_the_whole_answer() {
    let llm = start().await;
    let whole = post(&llm, MESSAGES, ANTHROPIC, &messages("Привет, 😀 world"))
        .await
        .json();
    let body = with(messages("Привет, 😀 world"), &json!({"stream": true}));
    let reply = post(&llm, MESSAGES, ANTHROPIC, &body).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    let events = reply.events();
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_deref().unwrap()).collect();
    let deltas = names.len() - 6;
    assert!(deltas > 3);
    let mut expected = vec!["message_start", "content_block_start", "ping"];
    expected.extend(std::iter::repeat_n("content_block_delta", deltas));
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names, expected);
    let data = reply.event_json();
    for ((name, _), json) in events.iter().zip(&data) {
        assert_eq!(json["type"].as_str(), name.as_deref(), "type matches event");
    }
    let start = &data[0]["message"];
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    assert_eq!(
        start["usage"]["input_tokens"],
        whole["usage"]["input_tokens"]
    );
    assert_eq!(
        data[1]["content_block"],
        json!({"type": "text", "text": ""})
    );
    let text: String = data[3..3 + deltas]
        .iter()
        .map(|d| {
            assert_eq!(d["delta"]["type"], "text_delta");
            assert_eq!(d["index"], 0);
            d["delta"]["text"].as_str().unwrap()
        })
        .collect();
    assert_eq!(text, whole["content"][0]["text"]);
    let message_delta = &data[data.len() - 2];
    assert_eq!(message_delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(
        message_delta["usage"]["output_tokens"],
        whole["usage"]["output_tokens"]
    );
    llm.shutdown().await;
}

#[tokio::test]
async fn scripted_answers_go_out_in_order_then_the_echo_returns() {
    let llm = FakeLlm::start(FakeLlmConfig {
        answers: vec!["from the config".to_owned()],
        ..FakeLlmConfig::default()
    })
    .await
    .unwrap();
    assert_eq!(llm.script_answers(["second", "third"]), 3);
    let control = post(&llm, "/_fake/answers", &[], &json!({"answer": "fourth"})).await;
    assert_eq!(control.json(), json!({"ok": true, "queued": 4}));
    let queued = get(&llm, "/_fake/answers", &[]).await.json();
    assert_eq!(
        queued["answers"],
        json!(["from the config", "second", "third", "fourth"])
    );

    let openai_text = |reply: Reply| reply.json()["choices"][0]["message"]["content"].clone();
    let anthropic_text = |reply: Reply| reply.json()["content"][0]["text"].clone();
    assert_eq!(
        openai_text(post(&llm, CHAT, &[], &chat("a")).await),
        "from the config"
    );
    // A refused request takes no answer.
    let refused = post(&llm, MESSAGES, &[], &messages("no version header")).await;
    assert_eq!(refused.status, 400);
    assert_eq!(
        anthropic_text(post(&llm, MESSAGES, ANTHROPIC, &messages("b")).await),
        "second"
    );
    let streamed = post(&llm, CHAT, &[], &with(chat("c"), &json!({"stream": true}))).await;
    let text: String = streamed
        .event_json()
        .iter()
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "third");
    assert_eq!(
        anthropic_text(post(&llm, MESSAGES, ANTHROPIC, &messages("d")).await),
        "fourth"
    );
    assert_eq!(
        openai_text(post(&llm, CHAT, &[], &chat("e")).await),
        "You said: e"
    );
    llm.shutdown().await;
}

#[tokio::test]
async fn max_tokens_cuts_the_answer_in_both_formats() {
    let llm = start().await;
    // "You said: a long question" is 25 bytes (7 tokens); 3 tokens allow 12 bytes.
    let body = with(chat("a long question"), &json!({"max_tokens": 3}));
    let answer = post(&llm, CHAT, &[], &body).await.json();
    assert_eq!(answer["choices"][0]["message"]["content"], "You said: a ");
    assert_eq!(answer["choices"][0]["finish_reason"], "length");
    assert_eq!(answer["usage"]["completion_tokens"], 3);
    // max_completion_tokens wins over max_tokens.
    let body = with(
        chat("a long question"),
        &json!({"max_tokens": 3, "max_completion_tokens": 2, "temperature": 0.2}),
    );
    let answer = post(&llm, CHAT, &[], &body).await.json();
    assert_eq!(answer["choices"][0]["message"]["content"], "You said");
    // Streamed, the last chunk says why it ended.
    let body = with(
        chat("a long question"),
        &json!({"max_tokens": 3, "stream": true}),
    );
    let chunks = post(&llm, CHAT, &[], &body).await.event_json();
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "length"
    );

    let body = with(messages("a long question"), &json!({"max_tokens": 3}));
    let answer = post(&llm, MESSAGES, ANTHROPIC, &body).await.json();
    assert_eq!(answer["content"][0]["text"], "You said: a ");
    assert_eq!(answer["stop_reason"], "max_tokens");
    assert_eq!(answer["usage"]["output_tokens"], 3);
    let body = with(
        messages("a long question"),
        &json!({"max_tokens": 3, "stream": true}),
    );
    let events = post(&llm, MESSAGES, ANTHROPIC, &body).await.event_json();
    let message_delta = &events[events.len() - 2];
    assert_eq!(message_delta["delta"]["stop_reason"], "max_tokens");
    assert_eq!(message_delta["usage"]["output_tokens"], 3);
    llm.shutdown().await;
}

#[tokio::test]
async fn split_chunks_cuts_inside_characters_lines_and_json() {
    let llm = FakeLlm::start(FakeLlmConfig {
        split_chunks: true,
        seed: 42,
        ..FakeLlmConfig::default()
    })
    .await
    .unwrap();
    let text = "Привет, мир! 😀😀 Ça va? ありがとう";
    for (path, headers, body) in [
        (CHAT, &[][..], with(chat(text), &json!({"stream": true}))),
        (
            MESSAGES,
            ANTHROPIC,
            with(messages(text), &json!({"stream": true})),
        ),
    ] {
        let reply = post(&llm, path, headers, &body).await;
        assert!(reply.frames.len() > 20, "{} frames", reply.frames.len());
        assert!(reply.frames.iter().all(|f| f.len() <= 12));
        let inside_a_character = reply
            .frames
            .iter()
            .filter(|f| std::str::from_utf8(f).is_err())
            .count();
        assert!(
            inside_a_character > 0,
            "no frame boundary inside a character"
        );
        // Some frame ends inside a line: not at a line end.
        assert!(reply.frames.iter().any(|f| !f.ends_with(b"\n")));
        // Put back together, it is the same answer.
        let reassembled: String = reply
            .event_json()
            .iter()
            .filter_map(|e| {
                e["choices"][0]["delta"]["content"]
                    .as_str()
                    .or(e["delta"]["text"].as_str())
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(reassembled, format!("You said: {text}"));
    }
    llm.shutdown().await;
}

#[tokio::test]
async fn chunk_delay_paces_the_stream() {
    let llm = FakeLlm::start(FakeLlmConfig {
        chunk_delay: Duration::from_millis(20),
        ..FakeLlmConfig::default()
    })
    .await
    .unwrap();
    let started = Instant::now();
    // "You said: hi" is 3 deltas: role, 3 deltas, finish, [DONE] = 6 events, 5 pauses.
    let reply = post(&llm, CHAT, &[], &with(chat("hi"), &json!({"stream": true}))).await;
    assert_eq!(reply.events().len(), 6);
    assert!(started.elapsed() >= Duration::from_millis(100));
    llm.shutdown().await;
}

#[tokio::test]
async fn the_api_key_is_checked_in_each_providers_header_and_shape() {
    let llm = FakeLlm::start(FakeLlmConfig {
        api_key: Some("sk-right".to_owned()),
        ..FakeLlmConfig::default()
    })
    .await
    .unwrap();
    let missing = post(&llm, CHAT, &[], &chat("x")).await;
    assert_eq!(missing.status, 401);
    let error = &missing.json()["error"];
    assert_eq!(error["type"], "invalid_request_error");
    assert!(error["message"].as_str().unwrap().contains("Bearer"));
    let wrong = post(
        &llm,
        CHAT,
        &[("authorization", "Bearer sk-wrong")],
        &chat("x"),
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["error"]["code"], "invalid_api_key");
    let right = post(
        &llm,
        CHAT,
        &[("authorization", "Bearer sk-right")],
        &chat("x"),
    )
    .await;
    assert_eq!(right.status, 200);
    // The OpenAI header means nothing to Anthropic, and the other way round.
    let crossed = post(&llm, CHAT, &[("x-api-key", "sk-right")], &chat("x")).await;
    assert_eq!(crossed.status, 401);

    let anthropic_key = [
        ("anthropic-version", "2023-06-01"),
        ("x-api-key", "sk-right"),
    ];
    let missing = post(&llm, MESSAGES, ANTHROPIC, &messages("x")).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.json()["type"], "error");
    assert_eq!(missing.json()["error"]["type"], "authentication_error");
    let wrong_key = [("anthropic-version", "2023-06-01"), ("x-api-key", "nope")];
    let wrong = post(&llm, MESSAGES, &wrong_key, &messages("x")).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["error"]["type"], "authentication_error");
    let right = post(&llm, MESSAGES, &anthropic_key, &messages("x")).await;
    assert_eq!(right.status, 200);
    // Anthropic's current SDKs send the key as Bearer auth, which Anthropic takes too.
    let bearer = [
        ("anthropic-version", "2023-06-01"),
        ("authorization", "Bearer sk-right"),
    ];
    assert_eq!(
        post(&llm, MESSAGES, &bearer, &messages("x")).await.status,
        200
    );
    // Model lists need the key too.
    assert_eq!(get(&llm, "/v1/models", &[]).await.status, 401);

    let auths: Vec<(Auth, u16)> = llm.requests().iter().map(|r| (r.auth, r.status)).collect();
    assert_eq!(
        auths,
        [
            (Auth::Absent, 401),
            (Auth::Wrong, 401),
            (Auth::Valid, 200),
            (Auth::Absent, 401),
            (Auth::Absent, 401),
            (Auth::Wrong, 401),
            (Auth::Valid, 200),
            (Auth::Valid, 200),
            (Auth::Absent, 401),
        ]
    );
    llm.shutdown().await;
}

#[tokio::test]
async fn openai_validation_errors_name_the_param_and_code() {
    let llm = start().await;
    let cases = [
        (
            json!({"messages": [{"role": "user", "content": "x"}]}),
            "model",
            "missing_required_parameter",
        ),
        (
            json!({"model": "m"}),
            "messages",
            "missing_required_parameter",
        ),
        (
            json!({"model": "m", "messages": []}),
            "messages",
            "empty_array",
        ),
        (
            json!({"model": "m", "messages": "hi"}),
            "messages",
            "invalid_type",
        ),
        (
            json!({"model": "m", "messages": [{"role": "robot", "content": "x"}]}),
            "messages[0].role",
            "invalid_value",
        ),
        (
            json!({"model": "m", "messages": [{"content": "x"}]}),
            "messages[0].role",
            "missing_required_parameter",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user"}]}),
            "messages[0].content",
            "missing_required_parameter",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]}),
            "messages[0].content[0].text",
            "missing_required_parameter",
        ),
        (
            with(chat("x"), &json!({"temperature": 3})),
            "temperature",
            "invalid_value",
        ),
        (
            with(chat("x"), &json!({"temperature": "hot"})),
            "temperature",
            "invalid_type",
        ),
        (
            with(chat("x"), &json!({"max_tokens": 0})),
            "max_tokens",
            "integer_below_min_value",
        ),
        (
            with(
                chat("x"),
                &json!({"stream_options": {"include_usage": true}}),
            ),
            "stream_options",
            "invalid_value",
        ),
        (
            with(chat("x"), &json!({"stream": "yes"})),
            "stream",
            "invalid_type",
        ),
    ];
    for (body, param, code) in cases {
        let reply = post(&llm, CHAT, &[], &body).await;
        assert_eq!(reply.status, 400, "{body}");
        let answer = reply.json();
        let error = &answer["error"];
        assert_eq!(error["type"], "invalid_request_error", "{body}");
        assert_eq!(error["param"], param, "{body}");
        assert_eq!(error["code"], code, "{body}");
        assert!(!error["message"].as_str().unwrap().is_empty());
        assert_eq!(answer.as_object().unwrap().len(), 1, "only `error`");
    }
    // Every role the brief names is taken, and content parts and a null assistant content.
    let body = json!({"model": "m", "messages": [
        {"role": "system", "content": "s"},
        {"role": "developer", "content": [{"type": "text", "text": "d"}]},
        {"role": "assistant", "content": null},
        {"role": "user", "content": [{"type": "text", "text": "one"},
                                     {"type": "image_url", "image_url": {"url": "x"}},
                                     {"type": "text", "text": "two"}]},
    ]});
    let answer = post(&llm, CHAT, &[], &body).await.json();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "You said: one\ntwo"
    );

    let not_json = send(llm.addr(), Method::POST, CHAT, &[], "{not json").await;
    assert_eq!(not_json.status, 400);
    assert_eq!(not_json.json()["error"]["type"], "invalid_request_error");
    llm.shutdown().await;
}

#[tokio::test]
async fn anthropic_validation_errors_have_anthropics_shape() {
    let llm = start().await;
    let user = json!({"role": "user", "content": "x"});
    let assistant = json!({"role": "assistant", "content": "y"});
    let base = |messages: Value| json!({"model": "m", "max_tokens": 10, "messages": messages});
    let cases = [
        (
            ANTHROPIC,
            json!({"max_tokens": 10, "messages": [user]}),
            "model",
        ),
        (
            ANTHROPIC,
            json!({"model": "m", "messages": [user]}),
            "max_tokens",
        ),
        (
            ANTHROPIC,
            with(base(json!([user])), &json!({"max_tokens": 0})),
            "max_tokens",
        ),
        (
            ANTHROPIC,
            json!({"model": "m", "max_tokens": 10}),
            "messages",
        ),
        (ANTHROPIC, base(json!([])), "messages"),
        (ANTHROPIC, base(json!([assistant])), "messages.0.role"),
        (ANTHROPIC, base(json!([user, user])), "messages.1.role"),
        (
            ANTHROPIC,
            base(json!([{"role": "system", "content": "x"}])),
            "messages.0.role",
        ),
        (
            ANTHROPIC,
            base(json!([{"role": "user"}])),
            "messages.0.content",
        ),
        (
            ANTHROPIC,
            base(json!([{"role": "user", "content": [{"type": "text", "text": 1}]}])),
            "messages.0.content.0.text",
        ),
        (
            ANTHROPIC,
            with(base(json!([user])), &json!({"system": 5})),
            "system",
        ),
        (
            ANTHROPIC,
            with(base(json!([user])), &json!({"temperature": 1.5})),
            "temperature",
        ),
        (&[][..], base(json!([user])), "anthropic-version"),
    ];
    for (headers, body, names) in cases {
        let reply = post(&llm, MESSAGES, headers, &body).await;
        assert_eq!(reply.status, 400, "{body}");
        let answer = reply.json();
        assert_eq!(answer["type"], "error");
        assert_eq!(answer["error"]["type"], "invalid_request_error");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(names),
            "{message:?} should name {names}"
        );
    }
    let body = base(json!([user, assistant, {"role": "user", "content": [
        {"type": "text", "text": "one"}, {"type": "image", "source": {}}, {"type": "text", "text": "two"}]}]));
    let answer = post(&llm, MESSAGES, ANTHROPIC, &body).await.json();
    assert_eq!(answer["content"][0]["text"], "You said: one\ntwo");
    llm.shutdown().await;
}

#[tokio::test]
async fn rate_limits_and_server_errors_come_in_the_providers_shape() {
    let llm = start().await;
    llm.inject(
        Fault::RateLimited {
            retry_after_secs: 7,
        },
        1,
        Some(Provider::Anthropic),
    );
    llm.inject(Fault::ServerError(503), 1, Some(Provider::OpenAi));
    llm.inject(Fault::ServerError(529), 1, None);
    llm.inject(
        Fault::RateLimited {
            retry_after_secs: 2,
        },
        1,
        None,
    );
    // An invalid request consumes no fault.
    assert_eq!(post(&llm, CHAT, &[], &json!({})).await.status, 400);

    let limited = post(&llm, MESSAGES, ANTHROPIC, &messages("x")).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after"), Some("7"));
    assert_eq!(limited.json()["error"]["type"], "rate_limit_error");

    let server = post(&llm, CHAT, &[], &chat("x")).await;
    assert_eq!(server.status, 503);
    assert_eq!(server.json()["error"]["type"], "server_error");

    let overloaded = post(&llm, MESSAGES, ANTHROPIC, &messages("x")).await;
    assert_eq!(overloaded.status, 529);
    assert_eq!(
        overloaded.json(),
        json!({"type": "error", "error": {"type": "overloaded_error",
               "message": "the fake server answered 529, as it was told to"}})
    );

    let limited = post(&llm, CHAT, &[], &with(chat("x"), &json!({"stream": true}))).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after"), Some("2"));
    assert_eq!(limited.header("x-ratelimit-remaining-requests"), Some("0"));
    let error = &limited.json()["error"];
    assert_eq!(error["code"], "rate_limit_exceeded");
    assert_eq!(error["param"], Value::Null);

    assert_eq!(post(&llm, CHAT, &[], &chat("x")).await.status, 200);
    let faults: Vec<Option<Fault>> = llm.requests().iter().map(|r| r.fault.clone()).collect();
    assert_eq!(
        faults,
        [
            None,
            Some(Fault::RateLimited {
                retry_after_secs: 7
            }),
            Some(Fault::ServerError(503)),
            Some(Fault::ServerError(529)),
            Some(Fault::RateLimited {
                retry_after_secs: 2
            }),
            None,
        ]
    );
    llm.shutdown().await;
}

#[tokio::test]
async fn a_hang_never_answers_until_shutdown() {
    let llm = start().await;
    llm.inject(Fault::Hang, 1, None);
    let mut client = TcpStream::connect(llm.addr()).await.unwrap();
    let body = chat("x").to_string();
    let request = format!(
        "POST {CHAT} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    client.write_all(request.as_bytes()).await.unwrap();
    let hanging = tokio::spawn(async move {
        let mut answer = Vec::new();
        let _ = client.read_to_end(&mut answer).await;
        answer
    });
    assert!(
        llm.wait_for(|requests| requests.len() == 1, Duration::from_secs(5))
            .await
    );
    let recorded = &llm.requests()[0];
    assert_eq!(
        (recorded.status, recorded.fault.clone()),
        (0, Some(Fault::Hang))
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!hanging.is_finished());
    // The next request is answered at once.
    assert_eq!(post(&llm, CHAT, &[], &chat("y")).await.status, 200);
    let started = Instant::now();
    llm.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(2));
    // The hanging client's connection is closed without an answer.
    assert_eq!(hanging.await.unwrap(), b"");
}

#[tokio::test]
async fn stop_midway_breaks_the_stream_off_without_its_end() {
    let llm = start().await;
    llm.inject(
        Fault::StopMidway { after_chunks: 3 },
        1,
        Some(Provider::Anthropic),
    );
    llm.inject(
        Fault::StopMidway { after_chunks: 2 },
        1,
        Some(Provider::OpenAi),
    );
    llm.inject(
        Fault::StopMidway { after_chunks: 1 },
        1,
        Some(Provider::OpenAi),
    );

    let body = with(messages("a long enough question"), &json!({"stream": true}));
    let reply = post(&llm, MESSAGES, ANTHROPIC, &body).await;
    assert_eq!(reply.status, 200);
    assert!(reply.broken_off);
    let names: Vec<String> = reply.events().into_iter().filter_map(|(n, _)| n).collect();
    assert_eq!(names, ["message_start", "content_block_start", "ping"]);

    let reply = post(
        &llm,
        CHAT,
        &[],
        &with(chat("question"), &json!({"stream": true})),
    )
    .await;
    assert!(reply.broken_off);
    assert_eq!(reply.events().len(), 2);
    assert!(!reply.events().iter().any(|(_, data)| data == "[DONE]"));

    // A whole answer is cut after half its bytes.
    let reply = post(&llm, CHAT, &[], &chat("question")).await;
    assert_eq!(reply.status, 200);
    assert!(reply.broken_off);
    assert!(serde_json::from_slice::<Value>(&reply.bytes()).is_err());

    // Faults spent, the next stream is whole.
    let reply = post(
        &llm,
        CHAT,
        &[],
        &with(chat("question"), &json!({"stream": true})),
    )
    .await;
    assert!(!reply.broken_off);
    assert_eq!(reply.events().last().unwrap().1, "[DONE]");
    llm.shutdown().await;
}

#[tokio::test]
async fn slow_delays_the_first_byte() {
    let llm = start().await;
    llm.inject(Fault::Slow { delay_ms: 150 }, 1, None);
    let started = Instant::now();
    let reply = post(&llm, CHAT, &[], &chat("x")).await;
    assert_eq!(reply.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(llm.requests()[0].fault, Some(Fault::Slow { delay_ms: 150 }));
    let started = Instant::now();
    post(&llm, CHAT, &[], &chat("x")).await;
    assert!(started.elapsed() < Duration::from_millis(150));
    llm.shutdown().await;
}

#[tokio::test]
async fn models_are_listed_in_the_shape_of_the_asking_provider() {
    let llm = FakeLlm::start(FakeLlmConfig {
        models: vec!["small".to_owned(), "large".to_owned()],
        ..FakeLlmConfig::default()
    })
    .await
    .unwrap();
    let openai = get(&llm, "/v1/models", &[]).await.json();
    assert_eq!(openai["object"], "list");
    assert_eq!(openai["data"][1]["id"], "large");
    assert_eq!(openai["data"][0]["object"], "model");
    let anthropic = get(&llm, "/v1/models", ANTHROPIC).await.json();
    assert_eq!(anthropic["data"][0]["type"], "model");
    assert_eq!(anthropic["data"][0]["id"], "small");
    assert_eq!(
        (
            &anthropic["first_id"],
            &anthropic["last_id"],
            &anthropic["has_more"]
        ),
        (&json!("small"), &json!("large"), &json!(false))
    );
    let providers: Vec<Provider> = llm.requests().iter().map(|r| r.provider).collect();
    assert_eq!(providers, [Provider::OpenAi, Provider::Anthropic]);
    llm.shutdown().await;
}

#[tokio::test]
async fn unknown_paths_get_404() {
    let llm = start().await;
    let openai = get(&llm, "/v1/completions", &[]).await;
    assert_eq!(openai.status, 404);
    assert_eq!(openai.json()["error"]["code"], "unknown_url");
    let anthropic = get(&llm, "/v1/messages", ANTHROPIC).await;
    assert_eq!(anthropic.status, 404);
    assert_eq!(anthropic.json()["error"]["type"], "not_found_error");
    let elsewhere = get(&llm, "/health", &[]).await;
    assert_eq!(elsewhere.status, 404);
    assert_eq!(elsewhere.json()["ok"], false);
    let control = get(&llm, "/_fake/nothing", &[]).await;
    assert_eq!(control.status, 404);
    assert_eq!(control.json()["ok"], false);
    assert!(
        control.json()["error"]
            .as_str()
            .unwrap()
            .contains("/_fake/nothing")
    );
    llm.shutdown().await;
}

#[tokio::test]
async fn the_control_api_reads_requests_and_queues_faults() {
    let llm = start().await;
    let index = get(&llm, "/_fake/", &[]).await.json();
    assert_eq!(index["ok"], true);

    let fault = json!({"fault": "429", "retry_after": 5, "times": 2, "provider": "openai"});
    let queued = post(&llm, "/_fake/faults", &[], &fault).await;
    assert_eq!(queued.status, 200);
    assert_eq!(queued.json()["queued"], fault);
    let faults = get(&llm, "/_fake/faults", &[]).await.json();
    assert_eq!(faults["faults"], json!([fault]));
    for bad in [
        json!({"fault": "explode"}),
        json!({"fault": "5xx", "status": 404}),
        json!({"fault": "hang", "times": 0}),
        json!({"fault": "hang", "provider": "gemini"}),
    ] {
        let reply = post(&llm, "/_fake/faults", &[], &bad).await;
        assert_eq!(reply.status, 400, "{bad}");
        assert_eq!(reply.json()["ok"], false);
    }
    let not_json = send(llm.addr(), Method::POST, "/_fake/answers", &[], "[").await;
    assert_eq!(not_json.status, 400);

    assert_eq!(
        post(&llm, MESSAGES, ANTHROPIC, &messages("x")).await.status,
        200
    );
    assert_eq!(post(&llm, CHAT, &[], &chat("x")).await.status, 429);
    assert_eq!(post(&llm, CHAT, &[], &chat("x")).await.status, 429);
    assert_eq!(post(&llm, CHAT, &[], &chat("x")).await.status, 200);

    let all = get(&llm, "/_fake/requests", &[]).await.json();
    assert_eq!(all["last_seq"], 4);
    let requests = all["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 4);
    assert_eq!(requests[0]["provider"], "anthropic");
    assert_eq!(requests[0]["auth"], "absent");
    assert_eq!(requests[0]["body"], messages("x"));
    assert_eq!(requests[1]["status"], 429);
    assert_eq!(
        requests[1]["fault"],
        json!({"fault": "429", "retry_after": 5})
    );
    let since = get(&llm, "/_fake/requests?since=2&provider=openai", &[])
        .await
        .json();
    let seqs: Vec<&Value> = since["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["seq"])
        .collect();
    assert_eq!(seqs, [&json!(3), &json!(4)]);
    let bad = get(&llm, "/_fake/requests?since=x", &[]).await;
    assert_eq!(bad.status, 400);

    post(&llm, "/_fake/answers", &[], &json!({"answers": ["a"]})).await;
    llm.inject(Fault::Hang, 1, None);
    let reset = post(&llm, "/_fake/reset", &[], &json!({})).await;
    assert_eq!(reset.json(), json!({"ok": true}));
    assert!(llm.requests().is_empty());
    let answer = post(&llm, CHAT, &[], &chat("after")).await.json();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "You said: after"
    );
    // Sequence numbers go on after a reset.
    assert_eq!(llm.requests()[0].seq, 5);
    llm.shutdown().await;
}
