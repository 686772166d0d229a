//! The service contract's documents agree with each other and with a service that
//! speaks it:
//!
//! * both schemas in `schemas/` are valid JSON Schema draft 2020-12, and
//!   `SERVICE_CONTRACTS.md` embeds each of them verbatim after its marker line;
//! * every JSON block of `SERVICE_CONTRACTS.md` is either a schema or a marked example,
//!   every example request and response validates (every action is shown), every example
//!   marked invalid does not, and neither do responses past each limit;
//! * the demo service `examples/service/service.py`, run by `python3`, answers requests
//!   that the request schema accepts with responses the response schema accepts, that
//!   the update allows and that do what its README says; it repeats its answer to a
//!   repeated `Idempotency-Key`, refuses a body that is not JSON and never logs what a
//!   user wrote. Without `python3` that test fails, unless `EDGEBOT_SKIP_PYTHON=1`;
//! * the demo config routes only to services it defines.

#[path = "support/contract.rs"]
mod contract;

use contract::{
    REQUEST_SCHEMA, RESPONSE_SCHEMA, load_schema, project_file, validate_request, validate_response,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

const DOC: &str = "SERVICE_CONTRACTS.md";
const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

// --- SERVICE_CONTRACTS.md ------------------------------------------------------------

/// A fenced ```json block of the document, with the line before it.
struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    marker: String,
    body: String,
}

fn document() -> String {
    std::fs::read_to_string(project_file(DOC)).expect("SERVICE_CONTRACTS.md")
}

fn json_blocks(doc: &str) -> Vec<Block> {
    let lines: Vec<&str> = doc.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i] == "```json" {
            let start = i;
            let end = (i + 1..lines.len())
                .find(|&j| lines[j] == "```")
                .unwrap_or_else(|| panic!("{DOC}:{}: the block is not closed", start + 1));
            let body: String = lines[start + 1..end]
                .iter()
                .map(|l| format!("{l}\n"))
                .collect();
            let marker = if start > 0 { lines[start - 1] } else { "" };
            blocks.push(Block {
                line: start + 1,
                marker: marker.trim().to_owned(),
                body,
            });
            i = end;
        }
        i += 1;
    }
    blocks
}

fn parse(block: &Block) -> Value {
    serde_json::from_str(&block.body)
        .unwrap_or_else(|e| panic!("{DOC}:{}: not JSON: {e}", block.line))
}

#[test]
fn schemas_are_draft_2020_12_and_the_document_embeds_them_verbatim() {
    let blocks = json_blocks(&document());
    for (path, name) in [
        (REQUEST_SCHEMA, "service-request"),
        (RESPONSE_SCHEMA, "service-response"),
    ] {
        let schema = load_schema(path);
        assert_eq!(schema["$schema"], DRAFT_2020_12, "{path}");
        assert_eq!(
            schema["$id"],
            format!("urn:edgebot:schema:{name}:v1"),
            "{path}"
        );
        assert!(schema["title"].is_string(), "{path} has no title");
        if let Err(e) = jsonschema::draft202012::meta::validate(&schema) {
            panic!("{path} is not a valid draft 2020-12 schema: {e}");
        }
        if let Err(e) = jsonschema::draft202012::new(&schema) {
            panic!("{path} does not compile: {e}");
        }

        let marker = format!("<!-- schema: {path} -->");
        let embedded: Vec<&Block> = blocks.iter().filter(|b| b.marker == marker).collect();
        assert_eq!(
            embedded.len(),
            1,
            "{DOC} needs exactly one ```json block after `{marker}`"
        );
        let file = std::fs::read_to_string(project_file(path)).unwrap();
        assert!(
            embedded[0].body == file,
            "{DOC}:{}: the block after `{marker}` differs from {path}; paste the file again",
            embedded[0].line
        );
    }
}

#[test]
fn every_example_in_the_document_is_what_it_says() {
    let mut requests = 0;
    let mut responses = Vec::new();
    let mut invalid = 0;
    for block in json_blocks(&document()) {
        let at = format!("{DOC}:{}", block.line);
        match block.marker.as_str() {
            "<!-- example: request -->" => {
                let request = parse(&block);
                if let Err(e) = validate_request(&request) {
                    panic!("{at}: the request example is invalid: {e}");
                }
                requests += 1;
            }
            "<!-- example: response -->" => {
                let response = parse(&block);
                if let Err(e) = validate_response(&response) {
                    panic!("{at}: the response example is invalid: {e}");
                }
                responses.push(response);
            }
            "<!-- example: invalid response -->" => {
                assert!(
                    validate_response(&parse(&block)).is_err(),
                    "{at}: the example marked invalid passes the schema"
                );
                invalid += 1;
            }
            marker if marker.starts_with("<!-- schema: ") => {}
            other => panic!(
                "{at}: a ```json block must follow `<!-- example: request -->`, \
                 `<!-- example: response -->`, `<!-- example: invalid response -->` or \
                 `<!-- schema: PATH -->`, not {other:?}"
            ),
        }
    }
    assert!(requests >= 2, "{DOC} shows {requests} request examples");
    assert!(invalid >= 1, "{DOC} shows no invalid response");

    // Every action, a session that ends, one that is replaced, and events are shown.
    let shown: BTreeSet<String> = responses
        .iter()
        .flat_map(|r| r["actions"].as_array().cloned().unwrap_or_default())
        .map(|a| a["type"].as_str().unwrap().to_owned())
        .collect();
    let every: BTreeSet<String> = ["send", "edit", "answer_callback", "delete"]
        .map(String::from)
        .into();
    assert_eq!(shown, every, "the actions the response examples show");
    assert!(responses.iter().any(|r| r["session"]["end"] == true));
    assert!(responses.iter().any(|r| r["session"]["data"].is_object()));
    assert!(responses.iter().any(|r| r["events"].is_array()));
    assert!(responses.iter().any(|r| r == &json!({})));
}

/// A response with one `send` of `text`, and more keys merged into the action.
fn send(text: &str, more: Value) -> Value {
    let mut action = json!({"type": "send", "text": text});
    action
        .as_object_mut()
        .unwrap()
        .extend(more.as_object().unwrap().clone());
    json!({ "actions": [action] })
}

#[test]
fn responses_past_a_limit_are_invalid_and_those_at_it_are_not() {
    let x = |n: usize| "x".repeat(n);
    let button = |b: Value| send("pick", json!({"keyboard": [[b]]}));
    let valid = [
        ("nothing", json!({})),
        ("unknown keys everywhere", {
            let mut r = button(json!({"text": "a", "callback_data": "a", "colour": "red"}));
            r["future"] = json!(true);
            r["actions"][0]["priority"] = json!(1);
            r
        }),
        ("4096 characters", send(&x(4096), json!({}))),
        (
            "4096 non-ASCII characters",
            send(&"é".repeat(4096), json!({})),
        ),
        (
            "html",
            send("<b>hi</b>", json!({"format": "html", "reply": true})),
        ),
        (
            "10 actions",
            json!({"actions": vec![json!({"type": "delete"}); 10]}),
        ),
        (
            "answer_callback of 200",
            json!({"actions": [{"type": "answer_callback", "text": x(200), "alert": true}]}),
        ),
        (
            "answer_callback without text",
            json!({"actions": [{"type": "answer_callback", "text": null}]}),
        ),
        (
            "callback_data of 64",
            button(json!({"text": "a", "callback_data": x(64)})),
        ),
        (
            "a url and a null callback_data",
            button(json!({"text": "a", "url": "tg://resolve?domain=x", "callback_data": null})),
        ),
        (
            "a whole session",
            json!({"session": {"internal_user_id": x(256), "state": "s", "data": {"k": [1]}, "ttl_secs": 604_800}}),
        ),
        ("a null session", json!({"session": null})),
        (
            "an ending session ignores the rest",
            json!({"session": {"end": true, "ttl_secs": 0, "data": [1]}}),
        ),
        (
            "events",
            json!({"events": [{"name": x(64)}, {"name": "a.b-c_1", "data": {"n": 1}}, {"name": "n", "data": null}]}),
        ),
    ];
    for (what, response) in valid {
        if let Err(e) = validate_response(&response) {
            panic!("{what}: {e}");
        }
    }

    let invalid = [
        ("not an object", json!([])),
        ("too long a text", send(&x(4097), json!({}))),
        ("an empty text", send("", json!({}))),
        ("a blank text", send(" \n ", json!({}))),
        ("no text", json!({"actions": [{"type": "send"}]})),
        (
            "an unknown type",
            json!({"actions": [{"type": "shout", "text": "hi"}]}),
        ),
        ("no type", json!({"actions": [{"text": "hi"}]})),
        (
            "11 actions",
            json!({"actions": vec![json!({"type": "delete"}); 11]}),
        ),
        ("null actions", json!({"actions": null})),
        ("markdown", send("*hi*", json!({"format": "markdown"}))),
        (
            "a reply that is not a boolean",
            send("hi", json!({"reply": 1})),
        ),
        (
            "too long a callback answer",
            json!({"actions": [{"type": "answer_callback", "text": x(201)}]}),
        ),
        (
            "a button with both callback_data and url",
            button(json!({"text": "a", "callback_data": "a", "url": "https://example.com"})),
        ),
        ("a button with neither", button(json!({"text": "a"}))),
        (
            "a button with a blank label",
            button(json!({"text": " ", "callback_data": "a"})),
        ),
        (
            "callback_data of 65",
            button(json!({"text": "a", "callback_data": x(65)})),
        ),
        (
            "empty callback_data",
            button(json!({"text": "a", "callback_data": ""})),
        ),
        (
            "an ftp url",
            button(json!({"text": "a", "url": "ftp://example.com"})),
        ),
        ("ttl_secs 0", json!({"session": {"ttl_secs": 0}})),
        (
            "ttl_secs over 7 days",
            json!({"session": {"ttl_secs": 604_801}}),
        ),
        (
            "too long an internal_user_id",
            json!({"session": {"internal_user_id": x(257)}}),
        ),
        (
            "session data that is not an object",
            json!({"session": {"data": [1]}}),
        ),
        ("a session that is a list", json!({"session": []})),
        (
            "an end that is not a boolean",
            json!({"session": {"end": 1}}),
        ),
        (
            "an event name with a space",
            json!({"events": [{"name": "has space"}]}),
        ),
        (
            "an event name with capitals",
            json!({"events": [{"name": "Start"}]}),
        ),
        ("an event name of 65", json!({"events": [{"name": x(65)}]})),
        ("an event without a name", json!({"events": [{"data": {}}]})),
        (
            "event data that is a list",
            json!({"events": [{"name": "e", "data": [1]}]}),
        ),
        (
            "11 events",
            json!({"events": vec![json!({"name": "e"}); 11]}),
        ),
    ];
    for (what, response) in invalid {
        assert!(
            validate_response(&response).is_err(),
            "{what} passes the schema"
        );
    }
}

// --- requests ------------------------------------------------------------------------

/// What one update says, for [`request`].
struct Update<'a> {
    id: i64,
    kind: &'a str,
    command: Option<&'a str>,
    text: Option<&'a str>,
    callback_data: Option<&'a str>,
    message_id: Option<i64>,
}

const USER_ID: i64 = 4242;

/// A request as edgebot builds it, from Ann in her private chat, with `session` as the
/// service last set it (`null` for none) and a `request_id` from `attempt`.
fn request(update: &Update, session: &Value, attempt: u64) -> Value {
    let stored = |key: &str| session.get(key).cloned().unwrap_or(Value::Null);
    let request = json!({
        "version": 1,
        "service": "matching",
        "request_id": format!("{attempt:032x}"),
        "idempotency_key": format!("{}:matching", update.id),
        "traceparent": format!("00-{attempt:032x}-{attempt:016x}-01"),
        "update": {
            "update_id": update.id,
            "kind": update.kind,
            "command": update.command,
            "args": "",
            "text": update.text,
            "callback_data": update.callback_data,
            "message_id": update.message_id,
        },
        "user": {
            "id": USER_ID,
            "first_name": "Ann",
            "last_name": null,
            "username": "ann",
            "language_code": "en",
            "role": "user",
            "is_new": session.is_null(),
        },
        "chat": {"id": USER_ID, "kind": "private", "title": null},
        "session": {
            "internal_user_id": stored("internal_user_id"),
            "state": stored("state"),
            "data": session.get("data").cloned().unwrap_or(json!({})),
            "expires_at": if session.is_null() { Value::Null } else { json!(1_767_312_000) },
        },
    });
    if let Err(e) = validate_request(&request) {
        panic!("the test's own request is invalid: {e}\n{request:#}");
    }
    request
}

#[test]
fn the_request_schema_takes_what_edgebot_sends_and_nothing_malformed() {
    let start = Update {
        id: 1,
        kind: "message",
        command: Some("start"),
        text: Some("/start"),
        callback_data: None,
        message_id: Some(1),
    };
    let good = request(&start, &Value::Null, 1);

    let mut channel_post = good.clone();
    channel_post["user"] = Value::Null;
    channel_post["chat"] = json!({"id": -100_123, "kind": "channel", "title": "News"});
    channel_post["update"]["kind"] = json!("channel_post");
    let mut with_more = good.clone();
    with_more["added_in_a_later_release"] = json!({"any": "thing"});
    with_more["update"]["kind"] = json!("message_reaction");
    for (what, request) in [
        ("a channel post", channel_post),
        ("keys added later", with_more),
    ] {
        if let Err(e) = validate_request(&request) {
            panic!("{what}: {e}");
        }
    }

    /// Spoils a good request.
    type Breaks = fn(&mut Value);
    let broken: [(&str, Breaks); 8] = [
        ("version 2", |r| r["version"] = json!(2)),
        ("an upper-case request id", |r| {
            r["request_id"] = json!("0123456789ABCDEF0123456789ABCDEF")
        }),
        ("a short request id", |r| r["request_id"] = json!("0123")),
        ("a bad traceparent", |r| r["traceparent"] = json!("01-xyz")),
        ("a missing user key", |r| {
            r.as_object_mut().unwrap().remove("user");
        }),
        ("a session without data", |r| {
            r["session"]["data"] = Value::Null
        }),
        ("an unknown role", |r| r["user"]["role"] = json!("owner")),
        ("args null", |r| r["update"]["args"] = Value::Null),
    ];
    for (what, breaks) in broken {
        let mut request = good.clone();
        breaks(&mut request);
        assert!(validate_request(&request).is_err(), "{what} passes");
    }
}

// --- the demo service ----------------------------------------------------------------

/// `examples/service/service.py` as a child process, killed when dropped, with what it
/// wrote on stderr.
struct Service {
    child: Child,
    addr: SocketAddr,
    path: String,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    /// `None` when python3 is missing and `EDGEBOT_SKIP_PYTHON=1` says that is fine.
    fn start() -> Option<Service> {
        let script = project_file("examples/service/service.py");
        let spawned = Command::new("python3")
            .arg(&script)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if std::env::var("EDGEBOT_SKIP_PYTHON").as_deref() == Ok("1") {
                    eprintln!("python3 is missing and EDGEBOT_SKIP_PYTHON=1: skipped");
                    return None;
                }
                panic!(
                    "python3 is needed to run examples/service/service.py (install Python 3.9 \
                     or later, e.g. `apt-get install python3`), or set EDGEBOT_SKIP_PYTHON=1 \
                     to skip this test on purpose"
                );
            }
            Err(e) => panic!("starting python3: {e}"),
        };

        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut chunk = [0; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        let (first_line, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = first_line.send(lines.next());
            lines.for_each(drop);
        });

        let mut service = Service {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            path: String::new(),
            stderr,
        };
        let line = match lines.recv_timeout(Duration::from_secs(30)) {
            Ok(Some(Ok(line))) => line,
            other => panic!(
                "service.py printed no address ({other:?}); stderr:\n{}",
                service.stderr()
            ),
        };
        let url = line
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("service.py's first line: {line:?}"));
        let (host_port, path) = url.split_once('/').expect("a path after the port");
        service.addr = host_port.parse().expect("HOST:PORT");
        service.path = format!("/{path}");
        assert_eq!(service.path, "/handle", "{line:?}");
        Some(service)
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// POSTs `body` to `path`; the status and the body of the answer.
    fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Vec<u8>) {
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))
            .expect("connecting to service.py");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .expect("reading service.py's answer");
        let split = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("an HTTP answer");
        let head = String::from_utf8_lossy(&answer[..split]).into_owned();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("a status line: {head:?}"));
        let body = answer[split + 4..].to_vec();
        let length = head
            .lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            })
            .map(|(_, v)| v.trim().parse::<usize>().unwrap());
        assert_eq!(length, Some(body.len()), "Content-Length of {head:?}");
        (status, body)
    }

    /// A call as edgebot makes it: the contract's headers, a 200 and a valid response,
    /// which is returned with its exact bytes.
    fn call(&self, request: &Value) -> (Value, Vec<u8>) {
        let key = request["idempotency_key"].as_str().unwrap();
        let id = request["request_id"].as_str().unwrap();
        let trace = request["traceparent"].as_str().unwrap();
        let headers = [
            ("Idempotency-Key", key),
            ("X-Request-Id", id),
            ("traceparent", trace),
            ("User-Agent", "edgebot/test"),
        ];
        let (status, body) = self.post(&self.path, &headers, request.to_string().as_bytes());
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, 200, "{text}\nstderr:\n{}", self.stderr());
        let response: Value =
            serde_json::from_slice(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        if let Err(e) = validate_response(&response) {
            panic!("service.py's response breaks the schema: {e}\n{response:#}");
        }
        allowed_for(&request["update"], &response);
        (response, body)
    }
}

/// The actions the update allows, which the schema cannot know: `edit` only for a button
/// under a message, `answer_callback` only for a button, `delete` not for a button of an
/// inline-mode message.
fn allowed_for(update: &Value, response: &Value) {
    let button = update["kind"] == "callback_query";
    let message = !update["message_id"].is_null();
    for action in response["actions"].as_array().into_iter().flatten() {
        let ok = match action["type"].as_str().unwrap() {
            "edit" => button && message,
            "answer_callback" => button,
            "delete" => message,
            _ => true,
        };
        assert!(ok, "{action} is not allowed for {update}");
    }
}

fn types(response: &Value) -> Vec<&str> {
    response["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| a["type"].as_str().unwrap())
        .collect()
}

#[test]
fn the_example_service_keeps_the_contract() {
    let Some(service) = Service::start() else {
        return;
    };
    let internal_id = format!("u-{USER_ID}");

    // First contact: an id of the service's own, a counter, two buttons.
    let start = Update {
        id: 100,
        kind: "message",
        command: Some("start"),
        text: Some("/start"),
        callback_data: None,
        message_id: Some(58),
    };
    let first = request(&start, &Value::Null, 1);
    let (greeting, greeting_bytes) = service.call(&first);
    assert_eq!(types(&greeting), ["send"], "{greeting:#}");
    let text = greeting["actions"][0]["text"].as_str().unwrap();
    assert!(text.contains(&internal_id), "{text:?}");
    let buttons: Vec<&Value> = greeting["actions"][0]["keyboard"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap())
        .map(|b| &b["callback_data"])
        .collect();
    assert_eq!(buttons, [&json!("match:connect"), &json!("match:skip")]);
    let session = greeting["session"].clone();
    assert_eq!(session["internal_user_id"], json!(internal_id));
    assert_eq!(session["data"], json!({"visits": 1}));

    // The same update again, as after a crash: a new request id, the same key, the
    // same answer to the byte, though the request's session would now count 2.
    let (_, replay_bytes) = service.call(&request(&start, &session, 2));
    assert_eq!(
        String::from_utf8_lossy(&replay_bytes),
        String::from_utf8_lossy(&greeting_bytes),
        "a repeated Idempotency-Key gets the first answer"
    );

    // A second /start counts on from the session it was given.
    let again = Update { id: 101, ..start };
    let (greeting, _) = service.call(&request(&again, &session, 3));
    assert_eq!(greeting["session"]["data"], json!({"visits": 2}));
    let session = greeting["session"].clone();

    // CONNECT under the greeting: the message is edited, the press answered, and the
    // session replaced whole, keeping the visits.
    let connect = Update {
        id: 102,
        kind: "callback_query",
        command: None,
        text: None,
        callback_data: Some("match:connect"),
        message_id: Some(59),
    };
    let (pressed, _) = service.call(&request(&connect, &session, 4));
    assert_eq!(types(&pressed), ["edit", "answer_callback"], "{pressed:#}");
    assert_eq!(pressed["session"]["internal_user_id"], json!(internal_id));
    assert_eq!(
        pressed["session"]["data"],
        json!({"visits": 2, "connections": 1})
    );
    assert_eq!(pressed["events"][0]["name"], "matching.connect");
    let session = pressed["session"].clone();

    // SKIP on an inline-mode message (no message to edit): only the answer.
    let skip = Update {
        id: 103,
        callback_data: Some("match:skip"),
        message_id: None,
        ..connect
    };
    let (skipped, _) = service.call(&request(&skip, &session, 5));
    assert_eq!(types(&skipped), ["answer_callback"], "{skipped:#}");

    // /profile shows the session and leaves it as it is.
    let profile = Update {
        id: 104,
        command: Some("profile"),
        text: Some("/profile"),
        ..start
    };
    let (shown, _) = service.call(&request(&profile, &session, 6));
    let text = shown["actions"][0]["text"].as_str().unwrap();
    assert!(
        text.contains(&internal_id) && text.contains("connections: 1"),
        "{text:?}"
    );
    assert!(shown.get("session").is_none(), "{shown:#}");

    // Any other text: a short echo. What the user wrote stays out of the log.
    let secret = "my password is swordfish";
    let chat = Update {
        id: 105,
        command: None,
        text: Some(secret),
        ..start
    };
    let (echo, _) = service.call(&request(&chat, &session, 7));
    assert_eq!(types(&echo), ["send"], "{echo:#}");
    assert!(
        echo["actions"][0]["text"]
            .as_str()
            .unwrap()
            .contains(secret)
    );

    // A channel post has no user: valid, and nothing to say.
    let mut post = request(&Update { id: 106, ..chat }, &Value::Null, 8);
    post["user"] = Value::Null;
    post["chat"] = json!({"id": -100_123, "kind": "channel", "title": "News"});
    post["update"]["kind"] = json!("channel_post");
    validate_request(&post).unwrap();
    let (quiet, _) = service.call(&post);
    assert!(types(&quiet).is_empty(), "{quiet:#}");

    // Not JSON, and not its path.
    let (status, body) = service.post("/handle", &[], b"this is not json");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let (status, _) = service.post("/elsewhere", &[], first.to_string().as_bytes());
    assert_eq!(status, 404);

    // Its log names the requests, and never what was written.
    let last_id = format!("{:032x}", 8);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !service.stderr().contains(&last_id) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = service.stderr();
    assert!(log.contains(&last_id), "no request id in the log:\n{log}");
    for word in ["swordfish", "/start", "/profile", "Ann"] {
        assert!(!log.contains(word), "the log repeats {word:?}:\n{log}");
    }
}

#[test]
fn the_example_config_routes_to_the_example_service() {
    let text = std::fs::read_to_string(project_file("examples/service/edgebot.toml")).unwrap();
    let config: toml::Table = text.parse().expect("examples/service/edgebot.toml");
    let services: Vec<&toml::Table> = config["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_table().unwrap())
        .collect();
    let names: BTreeSet<&str> = services
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, BTreeSet::from(["matching"]));
    // service.py listens on 8001 unless told otherwise.
    assert_eq!(
        services[0]["url"].as_str(),
        Some("http://127.0.0.1:8001/handle")
    );
    let script = std::fs::read_to_string(project_file("examples/service/service.py")).unwrap();
    assert!(script.contains("default=8001"), "service.py's default port");

    let mut routed = BTreeSet::new();
    for route in config["routes"].as_array().unwrap() {
        let service = route["service"].as_str().unwrap();
        assert!(names.contains(service), "a route to {service}");
        let trigger = route
            .get("command")
            .map(|c| format!("/{}", c.as_str().unwrap()))
            .or_else(|| {
                let prefix = route.get("callback_prefix")?.as_str().unwrap();
                Some(format!("{prefix}*"))
            })
            .unwrap();
        routed.insert(trigger);
    }
    assert_eq!(
        routed,
        BTreeSet::from(["/start".into(), "/profile".into(), "match:*".into()])
    );
    assert_eq!(config["fallback"]["service"].as_str(), Some("matching"));
}
