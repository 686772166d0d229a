//! The fake Bot API as a tool for any bot, driven over HTTP only: the real `edgebot
//! fake-api` and `edgebot serve` run as processes, a `/start` goes in through
//! `POST /_fake/updates`, and the welcome comes back out of `GET /_fake/calls`. Nothing
//! here uses the library; the client is a few lines over `std::net::TcpStream`, so the
//! same session works from any language.

use std::io::Read;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

// Shared with other test crates; this one uses part of it.
#[allow(dead_code)]
#[path = "support/binary.rs"]
mod binary;
#[path = "support/fake_process.rs"]
mod fake_process;

use binary::{Running, edgebot, free_port};

/// Fails the test if the process already exited, with what it wrote to stderr.
fn assert_alive(running: &mut Running) {
    if let Some(status) = running.exited() {
        let mut stderr = String::new();
        if let Some(mut pipe) = running.child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        panic!("{} exited early ({status}): {stderr}", running.name);
    }
}

/// One request to the fake; it must answer.
fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    binary::http(addr, method, path, &[], body).expect("the fake answers")
}

fn start_fake(dir: &std::path::Path) -> (Running, SocketAddr) {
    let (fake, addr, first) = fake_process::start(dir, Duration::from_secs(30));
    assert!(
        first.contains(&format!("http://{addr}")) && first.contains("/_fake/"),
        "the start-up line names the address and the control API: {first:?}"
    );
    (fake, addr)
}

#[test]
fn a_start_pushed_through_the_control_api_gets_the_welcome() {
    let dir = tempfile::tempdir().unwrap();
    let (mut fake, api) = start_fake(dir.path());

    let (status, index) = http(api, "GET", "/_fake/", None);
    assert_eq!(status, 200, "{index}");
    assert!(index["endpoints"].as_array().is_some_and(|e| e.len() >= 5));

    let admin = format!("127.0.0.1:{}", free_port());
    let child = edgebot()
        .current_dir(dir.path())
        .args(["--data-dir"])
        .arg(dir.path().join("data"))
        .arg("serve")
        .env("EDGEBOT_TOKEN", "123456:CONTROL-test")
        .env("EDGEBOT_API_URL", format!("http://{api}"))
        .env("EDGEBOT_ADMIN_LISTEN", &admin)
        .env("EDGEBOT_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("edgebot serve starts");
    let mut bot = Running {
        name: "edgebot serve",
        child,
    };

    let start =
        json!({"text": "/start", "from": {"id": 42, "first_name": "Ann", "language_code": "en"}});
    let (status, pushed) = http(api, "POST", "/_fake/updates", Some(&start));
    assert_eq!(status, 200, "{pushed}");
    assert_eq!(pushed["delivered_to"], "getUpdates", "{pushed}");
    assert!(pushed["update_id"].as_i64().is_some_and(|id| id >= 1));
    assert_eq!(pushed["update"]["message"]["chat"]["id"], 42);
    assert_eq!(
        pushed["update"]["message"]["entities"][0]["type"],
        "bot_command"
    );

    // Poll as a script would: only calls past the last sequence number seen.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut since = 0;
    let mut seen = Vec::new();
    let welcome = loop {
        assert_alive(&mut bot);
        assert_alive(&mut fake);
        let path = format!("/_fake/calls?method=sendMessage&since={since}");
        let (status, calls) = http(api, "GET", &path, None);
        assert_eq!(status, 200, "{calls}");
        since = calls["last_seq"].as_i64().unwrap_or(since);
        let list = calls["calls"].as_array().cloned().unwrap_or_default();
        if let Some(found) = list.iter().find(|c| {
            c["delivered"] == true
                && c["chat_id"] == 42
                && c["params"]["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("Welcome, Ann!"))
        }) {
            break found.clone();
        }
        seen.extend(list);
        assert!(
            Instant::now() < deadline,
            "no welcome within 90 s; sendMessage calls seen: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(welcome["method"], "sendMessage");
    assert_eq!(welcome["status"], 200);
    assert!(welcome["seq"].as_i64().is_some_and(|s| s >= 1));

    // The bot took the update by long polling, and the filters narrow the list.
    let (_, polls) = http(api, "GET", "/_fake/calls?method=getupdates", None);
    let polls = polls["calls"].as_array().cloned().unwrap_or_default();
    assert!(!polls.is_empty());
    assert!(polls.iter().all(|c| c["method"] == "getUpdates"));
    let (_, other_chat) = http(api, "GET", "/_fake/calls?chat_id=7", None);
    assert_eq!(other_chat["calls"], json!([]));
    let (_, webhook) = http(api, "GET", "/_fake/webhook", None);
    assert_eq!(webhook, json!({"ok": true, "webhook": null}));

    // Clearing forgets the calls but not the numbering.
    let (status, cleared) = http(api, "DELETE", "/_fake/calls", None);
    assert_eq!(status, 200);
    assert!(cleared["cleared"].as_u64().is_some_and(|n| n >= 2));
    let (_, after) = http(api, "GET", "/_fake/calls?method=sendMessage", None);
    assert_eq!(after["calls"], json!([]));

    // Errors are JSON with a message, never a dropped connection.
    let (status, error) = http(
        api,
        "POST",
        "/_fake/faults",
        Some(&json!({"fault": "boom"})),
    );
    assert_eq!(status, 400);
    assert_eq!(error["ok"], false);
    assert!(error["error"].as_str().is_some_and(|e| e.contains("fault")));
    let (status, error) = http(api, "GET", "/_fake/nothing", None);
    assert_eq!((status, &error["ok"]), (404, &json!(false)));

    drop(bot);
    drop(fake);
}
