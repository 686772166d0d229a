//! `edgebot fake-llm` as a user runs it: the real binary as a process, its start-up line,
//! a scripted answer and an echo over plain HTTP with the key, a refusal without it, the
//! control API, and a clean exit on Ctrl-C (SIGINT). The wire formats themselves are
//! tested in `src/fake/llm/tests.rs`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;

// Shared with other test crates; this one uses part of it.
#[allow(dead_code)]
#[path = "support/binary.rs"]
mod binary;

use binary::{Running, edgebot, free_port, http};

#[test]
fn fake_llm_answers_as_configured_and_stops_on_ctrl_c() {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut child = edgebot()
        .args(["fake-llm", "--listen", &addr.to_string(), "--api-key", "k"])
        .args(["--answer", "Scripted first", "--split-chunks"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("edgebot fake-llm starts");
    let stdout = child.stdout.take().expect("its stdout is piped");
    let mut llm = Running {
        name: "edgebot fake-llm",
        child,
    };
    let (lines, line) = mpsc::channel();
    std::thread::spawn(move || {
        let mut first = String::new();
        let _ = BufReader::new(stdout).read_line(&mut first);
        let _ = lines.send(first);
    });
    let first = line
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_default();
    assert!(
        first.contains(&format!("http://{addr}/v1"))
            && first.contains("openai")
            && first.contains("anthropic")
            && first.contains(&format!("http://{addr}/_fake/")),
        "the start-up line names both base URLs and the control API: {first:?}"
    );

    let bearer = [("authorization", "Bearer k")];
    let chat = json!({"model": "m", "messages": [{"role": "user", "content": "Hello"}]});
    let ask = |headers: &[(&str, &str)]| {
        http(addr, "POST", "/v1/chat/completions", headers, Some(&chat)).expect("an answer")
    };
    let (status, answer) = ask(&bearer);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["choices"][0]["message"]["content"], "Scripted first");
    let (status, answer) = ask(&bearer);
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "You said: Hello"
    );
    assert_eq!(status, 200);
    let (status, refused) = ask(&[]);
    assert_eq!(status, 401, "{refused}");
    assert_eq!(refused["error"]["type"], "invalid_request_error");

    let anthropic = [("x-api-key", "k"), ("anthropic-version", "2023-06-01")];
    let message = json!({"model": "m", "max_tokens": 64,
                         "messages": [{"role": "user", "content": "Hi"}]});
    let (status, answer) =
        http(addr, "POST", "/v1/messages", &anthropic, Some(&message)).expect("an answer");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["content"][0]["text"], "You said: Hi");

    let (status, requests) =
        http(addr, "GET", "/_fake/requests?since=1", &[], None).expect("an answer");
    assert_eq!(status, 200, "{requests}");
    assert_eq!(requests["last_seq"], 4);
    let auths: Vec<&str> = requests["requests"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|r| r["auth"].as_str())
        .collect();
    assert_eq!(auths, ["valid", "absent", "valid"]);

    let pid = libc::pid_t::try_from(llm.child.id()).expect("a pid fits");
    // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = llm.exited() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "{} still running 10 s after Ctrl-C",
            llm.name
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}
