//! The real `edgebot serve` as a process against the in-process fake Bot API: webhook
//! and long-polling intake end to end, a graceful restart and a `kill -9` in the middle
//! of the load, and a prompt exit on SIGTERM.
//!
//! Every text reply is a template that replies to the incoming message and names the
//! sender's stored message count, so each `sendMessage` the fake records tells which
//! update it answers and how many messages of that user were committed before it: that
//! is what lets these tests check "exactly once" and "in order" from the outside.

use bytes::Bytes;
use edgebot::fake::botapi::{FakeBotApi, FakeConfig, RecordedCall};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_edgebot");
const TOKEN: &str = "123456:PROCESS-TEST";
const SECRET: &str = "process-test-secret";
/// Generous: two cores are shared with other builds and tests.
const PATIENCE: Duration = Duration::from_secs(60);

/// Limits off, because the tests send far faster than Telegram's flood limits allow;
/// texts in private chats (fallback) and groups (chat-kind route) answer with a reply to
/// the message that carries the sender's id and stored message count.
const CONFIG: &str = r#"
[limits.inbound]
enabled = false

[limits.outbound]
enabled = false

[[routes]]
chat_kind = "group"
reply = "{user_id} #{message_count}"
reply_to_message = true

[fallback]
reply = "{user_id} #{message_count}"
reply_to_message = true
"#;

/// One message update as Telegram would send it.
#[derive(Clone, Debug)]
struct Msg {
    update_id: i64,
    /// Unique across a test, so a reply's `reply_parameters` names its update.
    message_id: i64,
    chat: i64,
    user: i64,
    text: String,
}

impl Msg {
    fn json(&self) -> String {
        let chat = if self.chat > 0 {
            format!(
                r#"{{"id":{},"type":"private","first_name":"U{}"}}"#,
                self.chat, self.user
            )
        } else {
            format!(r#"{{"id":{},"type":"supergroup","title":"G"}}"#, self.chat)
        };
        // Commands carry the bot_command entity Telegram adds.
        let entities = match self.text.strip_prefix('/') {
            Some(rest) => format!(
                r#","entities":[{{"type":"bot_command","offset":0,"length":{}}}]"#,
                1 + rest.split(' ').next().map_or(0, str::len)
            ),
            None => String::new(),
        };
        format!(
            r#"{{"update_id":{},"message":{{"message_id":{},"date":1700000000,"chat":{},"from":{{"id":{},"is_bot":false,"first_name":"U{}"}},"text":"{}"{}}}}}"#,
            self.update_id, self.message_id, chat, self.user, self.user, self.text, entities
        )
    }

    fn value(&self) -> Value {
        serde_json::from_str(&self.json()).expect("a valid update")
    }
}

/// What the fake saw the bot send to a chat.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    /// The greeting `/start` gets.
    Welcome,
    /// A text's answer: the message it replies to, and its text.
    Answer { to: i64, text: String },
}

fn reply_of(call: &RecordedCall) -> Reply {
    let text = call.params["text"].as_str().unwrap_or_default();
    match call.params["reply_parameters"]["message_id"].as_i64() {
        Some(to) => Reply::Answer {
            to,
            text: text.to_owned(),
        },
        None => {
            assert!(text.starts_with("Welcome"), "an unexpected reply: {text}");
            Reply::Welcome
        }
    }
}

/// The replies each chat should get, in order, for `msgs` handled exactly once in the
/// order given.
fn expected_replies(msgs: &[Msg]) -> HashMap<i64, Vec<Reply>> {
    let mut counts: HashMap<i64, u64> = HashMap::new();
    let mut replies: HashMap<i64, Vec<Reply>> = HashMap::new();
    for m in msgs {
        let count = counts.entry(m.user).or_default();
        *count += 1;
        let reply = if m.text.starts_with("/start") {
            Reply::Welcome
        } else {
            Reply::Answer {
                to: m.message_id,
                text: format!("{} #{}", m.user, count),
            }
        };
        replies.entry(m.chat).or_default().push(reply);
    }
    replies
}

/// The delivered `sendMessage` calls, by chat, in the order they arrived.
fn replies_by_chat(api: &FakeBotApi) -> HashMap<i64, Vec<Reply>> {
    let mut by_chat: HashMap<i64, Vec<Reply>> = HashMap::new();
    for call in api.delivered_calls("sendMessage") {
        let chat = call.chat_id.expect("a reply names its chat");
        by_chat.entry(chat).or_default().push(reply_of(&call));
    }
    by_chat
}

/// Waits until the fake has delivered `n` replies or more; false on timeout.
async fn wait_for_replies(api: &FakeBotApi, n: usize) -> bool {
    api.wait_for(
        |calls| {
            calls
                .iter()
                .filter(|c| c.method == "sendMessage" && c.delivered())
                .count()
                >= n
        },
        PATIENCE,
    )
    .await
}

/// Long enough for a reply sent twice to show up twice before the tests count.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A running `edgebot serve`; killed if a test fails, so no server outlives its test.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A data directory, a config and a fake Bot API, shared by the runs of one bot.
struct Harness {
    dir: TempDir,
    api: Arc<FakeBotApi>,
    runs: usize,
}

impl Harness {
    async fn new() -> Harness {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::write(dir.path().join("edgebot.toml"), CONFIG).expect("the config is written");
        let api = FakeBotApi::start(FakeConfig::default())
            .await
            .expect("the fake Bot API starts");
        Harness {
            dir,
            api: Arc::new(api),
            runs: 0,
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("edgebot.toml")
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self) -> Command {
        let mut command = Command::new(BIN);
        command
            .arg("--config")
            .arg(self.config())
            .arg("--data-dir")
            .arg(self.data());
        for (var, _) in std::env::vars() {
            if var.starts_with("EDGEBOT_") || var.starts_with("OTEL_") {
                command.env_remove(var);
            }
        }
        command
    }

    /// Starts `serve`; with `webhook_port` in webhook mode, else long polling. Its
    /// stderr goes to a log file of its own, shown when a test fails.
    fn spawn(&mut self, webhook_port: Option<u16>) -> Proc {
        self.runs += 1;
        let log = std::fs::File::create(self.dir.path().join(format!("serve-{}.log", self.runs)))
            .expect("the log file is created");
        let mut command = self.command();
        command
            .arg("serve")
            .env("EDGEBOT_TOKEN", TOKEN)
            .env("EDGEBOT_API_URL", self.api.base_url())
            .env("EDGEBOT_ADMIN_LISTEN", format!("127.0.0.1:{}", free_port()))
            .env("EDGEBOT_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(port) = webhook_port {
            command
                .env(
                    "EDGEBOT_WEBHOOK_URL",
                    format!("http://127.0.0.1:{port}/hook"),
                )
                .env("EDGEBOT_WEBHOOK_SECRET", SECRET)
                .env("EDGEBOT_LISTEN", format!("127.0.0.1:{port}"));
        }
        Proc(command.spawn().expect("edgebot serve starts"))
    }

    /// Starts a webhook-mode server and waits until it has set its webhook; returns it
    /// and its port.
    async fn start_webhook(&mut self) -> (Proc, u16) {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}/hook");
        let child = self.spawn(Some(port));
        let set = self
            .api
            .wait_for(
                |calls| {
                    calls.iter().any(|c| {
                        c.method == "setWebhook" && c.params["url"].as_str() == Some(url.as_str())
                    })
                },
                PATIENCE,
            )
            .await;
        assert!(set, "the webhook was never set\n{}", self.logs());
        (child, port)
    }

    /// Starts a long-polling server and waits until it has deleted any webhook, which
    /// it does right before it polls. (The fake records a getUpdates only when it
    /// answers it, up to a poll timeout later.)
    async fn start_polling(&mut self) -> Proc {
        let before = self.api.calls_for("deleteWebhook").len();
        let child = self.spawn(None);
        let polling = self
            .api
            .wait_for(
                |calls| calls.iter().filter(|c| c.method == "deleteWebhook").count() > before,
                PATIENCE,
            )
            .await;
        assert!(polling, "the bot never got ready to poll\n{}", self.logs());
        child
    }

    /// Every run's log, for failure messages.
    fn logs(&self) -> String {
        (1..=self.runs)
            .map(|run| {
                let path = self.dir.path().join(format!("serve-{run}.log"));
                let text = std::fs::read_to_string(path).unwrap_or_default();
                format!("--- serve run {run} ---\n{text}")
            })
            .collect()
    }

    /// Stored message counts of every user, from `edgebot users export` (the server must
    /// have stopped: the store is locked while it runs).
    fn message_counts(&self) -> HashMap<i64, u64> {
        let out = self
            .command()
            .args(["users", "export"])
            .output()
            .expect("edgebot users export runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("UTF-8")
            .lines()
            .map(|line| {
                let user: Value = serde_json::from_str(line).expect("a JSON line");
                (
                    user["id"].as_i64().expect("an id"),
                    user["message_count"].as_u64().expect("a count"),
                )
            })
            .collect()
    }

    /// `edgebot users show ID`'s message count.
    fn shown_count(&self, id: i64) -> u64 {
        let out = self
            .command()
            .args(["users", "show", &id.to_string()])
            .output()
            .expect("edgebot users show runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let user: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        user["message_count"].as_u64().expect("a count")
    }
}

fn sigterm(child: &Proc) {
    let pid = libc::pid_t::try_from(child.0.id()).expect("a pid fits");
    // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
    let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(sent, 0, "SIGTERM could not be sent");
}

/// Waits for the process to exit; `None` when it is still running after `limit`.
async fn wait_exit(child: &mut Proc, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.0.try_wait().expect("waitpid works") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// SIGTERM, then expects a clean exit.
async fn stop(harness: &Harness, child: &mut Proc) {
    sigterm(child);
    let status = wait_exit(child, Duration::from_secs(20)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "serve did not stop cleanly: {status:?}\n{}",
        harness.logs()
    );
}

/// One keep-alive webhook connection, one request in flight at a time, as Telegram
/// uses them.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl Conn {
    async fn open(port: u16) -> anyhow::Result<Conn> {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        // Ends when the sender is dropped or the server goes away.
        tokio::spawn(connection);
        Ok(Conn {
            sender,
            host: format!("127.0.0.1:{port}"),
        })
    }

    /// POSTs one update and returns the status the bot answered.
    async fn post(&mut self, msg: &Msg) -> anyhow::Result<u16> {
        self.sender.ready().await?;
        let request = hyper::Request::post("/hook")
            .header(hyper::header::HOST, &self.host)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header("x-telegram-bot-api-secret-token", SECRET)
            .body(Full::new(Bytes::from(msg.json())))?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        response.into_body().collect().await?;
        Ok(status)
    }
}

/// Private chats and a few supergroups with several members each; every chat's messages
/// in the order they are to be sent. `/start` and texts alternate in per-chat patterns,
/// so a swapped pair would show in the replies.
fn conversations(privates: i64, groups: i64, members: i64, per_user: i64) -> Vec<Vec<Msg>> {
    let mut next = 0;
    let mut msg = |chat, user, text: &str| {
        next += 1;
        Msg {
            update_id: next,
            message_id: 1000 + next,
            chat,
            user,
            text: text.to_owned(),
        }
    };
    let text_of = |i: i64, k: i64| {
        if k == 0 || (i + k) % 4 == 0 {
            "/start".to_owned()
        } else {
            format!("text {k} of {i}")
        }
    };
    let mut chats = Vec::new();
    for i in 0..privates {
        let user = 10_000 + i;
        chats.push(
            (0..per_user)
                .map(|k| msg(user, user, &text_of(i, k)))
                .collect(),
        );
    }
    for g in 0..groups {
        let chat = -1_001_000_000_000 - g;
        let mut in_chat = Vec::new();
        for k in 0..per_user {
            for j in 0..members {
                let user = 20_000 + g * 100 + j;
                in_chat.push(msg(chat, user, &text_of(j, k)));
            }
        }
        chats.push(in_chat);
    }
    chats
}

fn all_users(chats: &[Vec<Msg>]) -> HashMap<i64, u64> {
    let mut users = HashMap::new();
    for m in chats.iter().flatten() {
        *users.entry(m.user).or_default() += 1;
    }
    users
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_answers_every_update_once_in_chat_order() {
    let mut harness = Harness::new().await;
    let (mut child, port) = harness.start_webhook().await;
    let chats = conversations(120, 4, 4, 6);
    let total: usize = chats.iter().map(Vec::len).sum();

    // Chats go out concurrently over 24 connections; the messages of one chat one after
    // the other, each only once the previous one was acknowledged.
    let queue = Arc::new(Mutex::new(chats.clone()));
    let mut workers = Vec::new();
    for _ in 0..24 {
        let queue = queue.clone();
        workers.push(tokio::spawn(async move {
            let mut conn = Conn::open(port).await?;
            loop {
                let Some(chat) = queue.lock().expect("queue lock").pop() else {
                    return anyhow::Ok(());
                };
                for m in &chat {
                    anyhow::ensure!(conn.post(m).await? == 200, "update {} refused", m.update_id);
                }
            }
        }));
    }
    for worker in workers {
        worker
            .await
            .expect("no panic")
            .expect("every update accepted");
    }

    assert!(
        wait_for_replies(&harness.api, total).await,
        "not every update was answered\n{}",
        harness.logs()
    );
    settle().await;
    let got = replies_by_chat(&harness.api);
    let flat: Vec<Msg> = chats.iter().flatten().cloned().collect();
    let expected = expected_replies(&flat);
    assert_eq!(got.len(), expected.len(), "chats answered");
    for (chat, want) in &expected {
        assert_eq!(got.get(chat), Some(want), "the replies in chat {chat}");
    }

    stop(&harness, &mut child).await;
    assert_eq!(harness.message_counts(), all_users(&chats));
    assert_eq!(harness.shown_count(20_000), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polling_restarts_without_loss_or_repetition() {
    let mut harness = Harness::new().await;
    let users = 40;
    let per_user = 8;
    // Round robin over users, so every chat's updates spread over the whole run.
    let msgs: Vec<Msg> = (0..users * per_user)
        .map(|i| {
            let user = 30_000 + i % users;
            Msg {
                update_id: i + 1,
                message_id: 5000 + i,
                chat: user,
                user,
                text: if i < users {
                    "/start".to_owned()
                } else {
                    format!("polled {i}")
                },
            }
        })
        .collect();

    let mut child = harness.start_polling().await;
    // Updates keep arriving, ten at a time, while the bot works, while it stops (so it
    // stops with batches half handled) and while it is down.
    let pusher = {
        let api = harness.api.clone();
        let msgs = msgs.clone();
        tokio::spawn(async move {
            for chunk in msgs.chunks(10) {
                for m in chunk {
                    api.push_update(m.value());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    assert!(
        wait_for_replies(&harness.api, msgs.len() / 4).await,
        "the first run answered too little\n{}",
        harness.logs()
    );
    stop(&harness, &mut child).await;
    let answered_before_restart = harness.api.delivered_calls("sendMessage").len();
    assert!(
        answered_before_restart < msgs.len(),
        "the stop came after the last update"
    );
    pusher.await.expect("the pusher finishes");

    let mut child = harness.start_polling().await;
    assert!(
        wait_for_replies(&harness.api, msgs.len()).await,
        "not every update was answered after the restart\n{}",
        harness.logs()
    );
    settle().await;
    let got = replies_by_chat(&harness.api);
    let expected = expected_replies(&msgs);
    for (chat, want) in &expected {
        assert_eq!(got.get(chat), Some(want), "the replies in chat {chat}");
    }
    stop(&harness, &mut child).await;
    eprintln!(
        "long polling: {answered_before_restart} of {} answered before the restart",
        msgs.len()
    );
    let want: HashMap<i64, u64> = (0..users).map(|u| (30_000 + u, per_user as u64)).collect();
    assert_eq!(harness.message_counts(), want);
    assert_eq!(harness.shown_count(30_000), per_user as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_and_repeats_nothing() {
    let mut harness = Harness::new().await;
    let (mut child, port) = harness.start_webhook().await;
    let chats = conversations(60, 0, 0, 12);
    let total: usize = chats.iter().map(Vec::len).sum();

    // 12 connections, 5 users each; a worker stops at its first unanswered request and
    // hands back what it has not had acknowledged.
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let mut workers = Vec::new();
    for share in chats.chunks(5) {
        let mut msgs: Vec<Msg> = Vec::new();
        for k in 0..12 {
            msgs.extend(share.iter().map(|chat| chat[k].clone()));
        }
        let acked = acked.clone();
        workers.push(tokio::spawn(async move {
            let Ok(mut conn) = Conn::open(port).await else {
                return msgs;
            };
            for (i, m) in msgs.iter().enumerate() {
                match conn.post(m).await {
                    Ok(200) => {
                        acked.lock().expect("acked lock").insert(m.update_id);
                    }
                    _ => return msgs[i..].to_vec(),
                }
            }
            Vec::new()
        }));
    }
    let deadline = Instant::now() + PATIENCE;
    while acked.lock().expect("acked lock").len() < total / 3 {
        assert!(Instant::now() < deadline, "no progress\n{}", harness.logs());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    child.0.kill().expect("SIGKILL");
    child.0.wait().expect("the killed process is reaped");
    let mut unanswered = Vec::new();
    for worker in workers {
        unanswered.extend(worker.await.expect("no panic"));
    }
    let acked_before_kill = acked.lock().expect("acked lock").len();
    assert!(
        acked_before_kill < total,
        "the kill came after the load ended"
    );

    // Telegram delivers again what was not acknowledged, in each chat's order.
    let (mut child, port) = harness.start_webhook().await;
    unanswered.sort_by_key(|m| m.update_id);
    let mut conn = Conn::open(port).await.expect("the restarted bot accepts");
    for m in &unanswered {
        assert_eq!(conn.post(m).await.expect("an answer"), 200, "{m:?}");
    }
    drop(conn);

    // Every update has its reply (a reply in flight at the kill may come twice).
    let want: HashSet<i64> = chats
        .iter()
        .flatten()
        .filter(|m| !m.text.starts_with("/start"))
        .map(|m| m.message_id)
        .collect();
    let answered = harness
        .api
        .wait_for(
            |calls| {
                let got: HashSet<i64> = calls
                    .iter()
                    .filter_map(|c| c.params["reply_parameters"]["message_id"].as_i64())
                    .collect();
                want.is_subset(&got)
            },
            PATIENCE,
        )
        .await;
    assert!(answered, "some text was never answered\n{}", harness.logs());
    let got = replies_by_chat(&harness.api);
    for chat in &chats {
        let starts = chat.iter().filter(|m| m.text.starts_with("/start")).count();
        let welcomes = got[&chat[0].chat]
            .iter()
            .filter(|r| **r == Reply::Welcome)
            .count();
        assert!(
            welcomes >= starts,
            "chat {}: {welcomes} greetings for {starts} /start",
            chat[0].chat
        );
    }

    stop(&harness, &mut child).await;
    eprintln!(
        "kill -9: {acked_before_kill} of {total} acknowledged before the kill, {} sent again",
        unanswered.len()
    );
    // Counted once each: nothing acknowledged was lost, nothing sent twice was counted twice.
    assert_eq!(harness.message_counts(), all_users(&chats));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_when_idle_exits_within_a_second() {
    for mode in ["webhook", "long polling"] {
        let mut harness = Harness::new().await;
        // Idle as in production: in webhook mode with a keep-alive connection left open
        // after an update, as Telegram keeps them; in polling mode with a long poll
        // pending.
        let (mut child, conn) = if mode == "webhook" {
            let (child, port) = harness.start_webhook().await;
            let mut conn = Conn::open(port).await.expect("the webhook accepts");
            let hello = Msg {
                update_id: 1,
                message_id: 1,
                chat: 40_000,
                user: 40_000,
                text: "/start".to_owned(),
            };
            assert_eq!(conn.post(&hello).await.expect("an answer"), 200);
            assert!(wait_for_replies(&harness.api, 1).await, "no greeting");
            (child, Some(conn))
        } else {
            (harness.start_polling().await, None)
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        sigterm(&child);
        let status = wait_exit(&mut child, Duration::from_secs(10)).await;
        let took = started.elapsed();
        drop(conn);
        eprintln!("{mode}: SIGTERM to exit in {took:?}");
        assert!(
            status.is_some_and(|s| s.success()),
            "{mode}: {status:?}\n{}",
            harness.logs()
        );
        // A second of budget, doubled for a loaded two-core machine.
        assert!(took < Duration::from_secs(2), "{mode}: took {took:?}");
    }
}
