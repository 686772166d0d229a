//! End to end: the release `edgebot serve` as a child process, in webhook mode with its
//! limits off and a fresh store, fed over loopback keep-alive connections the way
//! Telegram feeds a webhook, answering to the in-process fake Bot API, which notes when
//! each reply arrives. Every update is durably committed before its 200 and costs one
//! `sendMessage` (a welcome for `/start`, the fallback for a text).
//!
//! It prints closed-loop throughput, open-loop latency at a fixed rate (from each
//! update's *scheduled* send time to its reply's arrival at the fake, so a stalled
//! server cannot hide its backlog), the server's CPU seconds per 1,000 updates (from
//! `/proc/<pid>/stat`) and its resident memory after the load.
//!
//! The phases:
//! * (a) closed loop over the webhook; (b) open loop over the webhook at a fixed rate;
//!   (d) RSS after (b), still under the load's footprint;
//! * (c) closed loop over long polling: a second server process, started without a
//!   webhook URL, long-polls the fake's getUpdates while the bench queues updates there
//!   (`push_update`), keeping a window of them queued and unanswered so that every poll
//!   finds a full batch waiting, the way a bot behind its backlog does;
//! * (e) start to ready: a fresh server with every model on, MiniLM included (an FAQ is
//!   configured), timed from spawn to the first 200 from `GET /health/ready` on the admin
//!   listener, probed every few milliseconds over a new loopback connection, as an
//!   orchestrator's probe would; several starts, each with a fresh data dir;
//! * (f) RSS of the last (e) server: right after ready, then after a few texts answered
//!   through the FAQ (so the embedder has run) and a second of idling;
//! * (g) service route against template route: two more servers, one after the other,
//!   under the same open-loop load of plain texts, each from a user of its own. The
//!   first answers them with a template (`[fallback] reply`), handled and committed in
//!   one commit before its 200; the second with a service (`[fallback] service`), a
//!   loopback responder in this process that answers at once: the update is kept in the
//!   inbox before the 200, then the service is called and the effects are committed. It
//!   prints each one's CPU per update and latencies, what the service route adds, and,
//!   from each server's `/metrics`, its store commits per update and its mean commit,
//!   handler run and service call. The responder's own CPU is the bench's, not the
//!   server's;
//! * (h) conversations with a language model, against the in-process fake LLM (its
//!   answer the echo `You said: <text>`, streamed in 4-character deltas). (h1) two more
//!   servers under an open-loop load of texts as in (g), each from a user of its own: the
//!   template route, then the conversation route (`[fallback] llm`, drafts on, no typing
//!   indicator, the fake answering at once), every answer checked; the difference in
//!   server CPU per update is what a turn costs besides the provider, whose CPU is the
//!   bench's. (h2) from the conversation server's `/metrics` over that load, the answer's
//!   first piece to the first draft shown (`edgebot_llm_first_shown_seconds`: mean, and
//!   p50/p99 estimated from its buckets), then the same from outside for a few
//!   conversations one at a time: the fake LLM recording the request to the fake Bot API
//!   recording the chat's first `sendMessageDraft`. (h3) a third server, the fake
//!   pausing 100 ms between events: `E2E_LLM_CONCURRENT` texts posted at once from as
//!   many users, with `/help` from other users at a steady rate beside them (and on the
//!   idle server before, for reference); the texts' webhook 200s, the `/help` replies,
//!   `edgebot_llm_in_flight` sampled every 50 ms, and every conversation answered exactly
//!   once.
//!
//! A plain `harness = false` main rather than criterion: criterion times a closure it
//! may call any number of times in one process, while this measures another process
//! under a load with a fixed size and schedule, and reports CPU and memory figures that
//! criterion has no place for.
//!
//! Environment:
//! * `E2E_UPDATES` (20000): updates in the closed-loop phase;
//! * `E2E_USERS` (5000): distinct users in the closed-loop phases, (a) and (c);
//! * `E2E_RATE` (2000) and `E2E_SECONDS` (5): the open-loop phase;
//! * `E2E_CONNECTIONS` (48): webhook connections, one request in flight on each;
//! * `E2E_POLL_UPDATES` (20000): updates in the long-polling phase (c);
//! * `E2E_POLL_WINDOW` (1000): in (c), at most this many updates queued at the fake and
//!   not yet answered (ten getUpdates batches); at least `E2E_POLL_UPDATES` queues them
//!   all at once;
//! * `E2E_STARTS` (5): starts timed in (e);
//! * `E2E_SERVICE_RATE` (`E2E_RATE`) and `E2E_SERVICE_SECONDS` (`E2E_SECONDS`): the
//!   open-loop load of each server in (g);
//! * `E2E_LLM_RATE` (500) and `E2E_LLM_SECONDS` (4): the open-loop load of each server
//!   in (h1);
//! * `E2E_LLM_CONCURRENT` (500): conversations at once in (h3);
//! * `E2E_ONLY=services` or `E2E_ONLY=llm`: run (g) or (h) alone, without the other
//!   phases and the ceiling, so that its figures are cheap to take again. A quick check
//!   of (h) in a debug build: `E2E_ONLY=llm E2E_LLM_RATE=100 E2E_LLM_SECONDS=1
//!   E2E_LLM_CONCURRENT=50 cargo test --bench e2e` (its figures mean nothing);
//! * `E2E_LOG` (`warn`): the server's `EDGEBOT_LOG`;
//! * `E2E_OTEL=1`: export traces to a loopback OTLP/HTTP sink started here;
//! * `E2E_SERVER` (this build's `edgebot`): another server binary, to compare two builds
//!   in one run on the same machine;
//! * `E2E_CEILING=0`: skip the ceiling. By default the same load then runs against a
//!   trivial responder ([`ceiling`]) and every figure is also given as a ratio to it,
//!   beside its target;
//! * `E2E_ROLE` is set by the bench itself when it runs the ceiling (`ceiling` for the
//!   webhook, `ceiling-poll` for long polling).

use bytes::Bytes;
use edgebot::fake::botapi::{FakeBotApi, FakeConfig, RecordedCall};
use edgebot::fake::llm::{FakeLlm, FakeLlmConfig};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, mpsc};

const TOKEN: &str = "123456:E2E-BENCH";
const SECRET: &str = "e2e-bench-secret";
const CONFIG: &str = "[limits.inbound]\nenabled = false\n\n[limits.outbound]\nenabled = false\n";
/// Longest wait for the server to start or for the last replies of a phase.
const PATIENCE: Duration = Duration::from_secs(60);
/// After the last reply, the server still clears the sent actions from its outbox;
/// the CPU sample waits for that.
const SETTLE: Duration = Duration::from_millis(250);
/// Between two readiness probes in (e), which is how late the figure can be. Not much
/// shorter: every probe costs the starting server a store commit (readiness probes the
/// store for real).
const PROBE_INTERVAL: Duration = Duration::from_millis(3);
/// The FAQ of (e) and (f): configuring one makes the server load MiniLM and embed the
/// questions before it is ready.
const FAQ: [(&str, &str); 3] = [
    (
        "How do I reset my password?",
        "Open Settings, then Account, then Reset password.",
    ),
    (
        "How do I delete my account?",
        "Send /feedback and ask us to delete it.",
    ),
    (
        "Where can I find my invoices?",
        "Invoices are under Settings, then Billing.",
    ),
];
/// Texts of (f): they match no route, so the fallback embeds each and looks it up in
/// the FAQ.
const FAQ_TEXTS: [&str; 4] = [
    "how can I reset my password",
    "I want to delete my account",
    "where are my invoices?",
    "password reset, please",
];

struct Settings {
    updates: usize,
    users: usize,
    rate: u64,
    seconds: u64,
    connections: usize,
    poll_updates: usize,
    poll_window: usize,
    starts: usize,
    service_rate: u64,
    service_seconds: u64,
    llm_rate: u64,
    llm_seconds: u64,
    llm_concurrent: usize,
    log: String,
    otel: bool,
}

fn env_or<T: std::str::FromStr>(var: &str, default: T) -> T {
    match std::env::var(var) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{var}={v} is not a valid value")),
        Err(_) => default,
    }
}

impl Settings {
    fn from_env() -> Settings {
        let rate = env_or("E2E_RATE", 2_000u64).max(1);
        let seconds = env_or("E2E_SECONDS", 5);
        Settings {
            updates: env_or("E2E_UPDATES", 20_000),
            users: env_or("E2E_USERS", 5_000usize).max(1),
            rate,
            seconds,
            connections: env_or("E2E_CONNECTIONS", 48usize).max(1),
            poll_updates: env_or("E2E_POLL_UPDATES", 20_000),
            poll_window: env_or("E2E_POLL_WINDOW", 1_000usize).max(1),
            starts: env_or("E2E_STARTS", 5usize).max(1),
            service_rate: env_or("E2E_SERVICE_RATE", rate).max(1),
            service_seconds: env_or("E2E_SERVICE_SECONDS", seconds),
            llm_rate: env_or("E2E_LLM_RATE", 500u64).max(1),
            llm_seconds: env_or("E2E_LLM_SECONDS", 4),
            llm_concurrent: env_or("E2E_LLM_CONCURRENT", 500usize).max(1),
            log: env_or("E2E_LOG", "warn".to_owned()),
            otel: env_or("E2E_OTEL", 0u8) == 1,
        }
    }
}

/// One update as Telegram sends it: `/start` with its entity, or a plain text, from a
/// user in their private chat.
fn update(update_id: u64, user: u64, start: bool) -> Bytes {
    let text = if start {
        r#""text":"/start","entities":[{"type":"bot_command","offset":0,"length":6}]"#.to_owned()
    } else {
        format!(r#""text":"hello number {update_id}""#)
    };
    message(update_id, user, &text)
}

/// A message update from `user` in their private chat; `text` holds the message's text
/// field (and its entities, if any), already JSON.
fn message(update_id: u64, user: u64, text: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"update_id":{update_id},"message":{{"message_id":{update_id},"date":1732000000,"chat":{{"id":{user},"type":"private","first_name":"Ada"}},"from":{{"id":{user},"is_bot":false,"first_name":"Ada","language_code":"en"}},{text}}}}}"#
    ))
}

/// One keep-alive webhook connection with at most one request in flight, as Telegram
/// uses its connections.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl Conn {
    async fn open(port: u16) -> Conn {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("the webhook listener accepts");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("an HTTP/1.1 handshake");
        tokio::spawn(connection);
        Conn {
            sender,
            host: format!("127.0.0.1:{port}"),
        }
    }

    async fn post(&mut self, body: Bytes) {
        self.sender.ready().await.expect("the connection stays up");
        let request = hyper::Request::post("/webhook")
            .header(hyper::header::HOST, &self.host)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header("x-telegram-bot-api-secret-token", SECRET)
            .body(Full::new(body))
            .expect("a valid request");
        let response = self
            .sender
            .send_request(request)
            .await
            .expect("the webhook answers");
        assert_eq!(response.status(), 200, "the webhook refused an update");
        response
            .into_body()
            .collect()
            .await
            .expect("the answer's body");
    }
}

/// The server process; killed if the bench panics, so no server outlives it.
struct Server {
    child: Child,
    pid: u32,
    log: PathBuf,
    /// Just before the spawn: where (e) starts its clock.
    spawned: Instant,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Waits for the call to the fake that says the server is up (`setWebhook` for a
    /// webhook, `deleteWebhook` before polling), prints its pid for attaching a profiler
    /// (`perf record -p PID`) and forgets the calls so far.
    async fn started(&self, api: &FakeBotApi, method: &str) {
        let up = api
            .wait_for(|calls| calls.iter().any(|c| c.method == method), PATIENCE)
            .await;
        assert!(up, "the server never called {method}:\n{}", self.log_tail());
        println!("server pid {}", self.pid);
        api.take_calls();
    }

    /// Stops it as an operator would (SIGTERM) and checks that it exited cleanly.
    async fn stop(&mut self) {
        // SAFETY: kill(2) on the child we spawned and have not reaped.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().expect("waitpid").is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let status = self.child.try_wait().expect("waitpid");
        assert!(
            status.is_some_and(|s| s.success()),
            "the server did not stop cleanly: {status:?}\n{}",
            self.log_tail()
        );
    }
}

/// How a server under test receives its updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intake {
    /// A webhook listening on this loopback port.
    Webhook(u16),
    /// Long polling of the fake's getUpdates: no webhook URL at all, which is what
    /// makes `edgebot serve` poll.
    Polling,
}

/// Everything that differs between the server processes the bench starts.
struct Launch<'a> {
    settings: &'a Settings,
    role: Role,
    intake: Intake,
    api: &'a FakeBotApi,
    config: &'a Path,
    data: PathBuf,
    admin_port: u16,
    log: PathBuf,
    otlp_sink: Option<u16>,
}

impl Launch<'_> {
    /// Starts the server (or the ceiling, with the same environment) as a child process.
    fn spawn(&self) -> Server {
        let mut command = match self.role {
            Role::Edgebot => {
                let mut command = Command::new(server_binary());
                command
                    .arg("--config")
                    .arg(self.config)
                    .arg("--data-dir")
                    .arg(&self.data)
                    .arg("serve");
                command
            }
            Role::Ceiling => {
                let mut command = Command::new(std::env::current_exe().expect("this bench"));
                let role = match self.intake {
                    Intake::Webhook(_) => "ceiling",
                    Intake::Polling => "ceiling-poll",
                };
                command.env("E2E_ROLE", role);
                command
            }
        };
        command
            .env("EDGEBOT_TOKEN", TOKEN)
            .env("EDGEBOT_API_URL", self.api.base_url())
            .env(
                "EDGEBOT_ADMIN_LISTEN",
                format!("127.0.0.1:{}", self.admin_port),
            )
            .env("EDGEBOT_LOG", &self.settings.log)
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&self.log).expect("the log file"));
        match self.intake {
            Intake::Webhook(port) => {
                command
                    .env(
                        "EDGEBOT_WEBHOOK_URL",
                        format!("http://127.0.0.1:{port}/webhook"),
                    )
                    .env("EDGEBOT_WEBHOOK_SECRET", SECRET)
                    .env("EDGEBOT_LISTEN", format!("127.0.0.1:{port}"));
            }
            Intake::Polling => {
                // One left in the bench's own environment would turn polling off.
                command.env_remove("EDGEBOT_WEBHOOK_URL");
            }
        }
        if let Some(sink) = self.otlp_sink {
            command.env(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{sink}"),
            );
        }
        let spawned = Instant::now();
        let child = command.spawn().expect("the server starts");
        Server {
            pid: child.id(),
            child,
            log: self.log.clone(),
            spawned,
        }
    }
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // The command name may hold spaces; the fields after it are plain.
    let after_name = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// A process's CPU seconds, from a `/proc` reading to now.
struct CpuMeter {
    pid: String,
    start: u64,
}

impl CpuMeter {
    fn start(pid: &str) -> CpuMeter {
        CpuMeter {
            pid: pid.to_owned(),
            start: cpu_ticks(pid),
        }
    }

    fn seconds(&self) -> f64 {
        (cpu_ticks(&self.pid) - self.start) as f64 / clock_ticks_per_second()
    }
}

/// Fields of `/proc/<pid>/status` given in kB (`VmRSS:`, ...), in MiB; 0 for a field the
/// kernel does not report.
fn status_mib<const N: usize>(pid: u32, keys: [&str; N]) -> [f64; N] {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    keys.map(|key| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    })
}

/// `VmRSS` and `VmHWM` of a process, in MiB.
fn memory_mib(pid: u32) -> (f64, f64) {
    let [rss, peak] = status_mib(pid, ["VmRSS:", "VmHWM:"]);
    (rss, peak)
}

/// Resident memory of a process, in MiB: all of it, and the part that is the process's
/// own (heap, stacks) apart from file pages (the binary, the compiled-in models), which
/// the kernel can drop and read again.
struct Rss {
    total: f64,
    anon: f64,
    file: f64,
}

impl Rss {
    fn of(pid: u32) -> Rss {
        let [total, anon, file] = status_mib(pid, ["VmRSS:", "RssAnon:", "RssFile:"]);
        Rss { total, anon, file }
    }
}

impl std::fmt::Display for Rss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "VmRSS {:.1} MiB (RssAnon {:.1} MiB, RssFile {:.1} MiB)",
            self.total, self.anon, self.file
        )
    }
}

/// Waits until the fake has recorded `n` calls since it was last drained, then drains
/// it and returns the replies. Counting instead of scanning keeps the wait cheap.
async fn collect_replies(api: &FakeBotApi, n: usize) -> Vec<RecordedCall> {
    let deadline = Instant::now() + PATIENCE;
    while api.call_count() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let calls: Vec<RecordedCall> = api
        .take_calls()
        .into_iter()
        .filter(|c| c.method == "sendMessage" && c.delivered())
        .collect();
    assert_eq!(calls.len(), n, "replies missing after {PATIENCE:?}");
    calls
}

/// Sends `count` updates over every connection as fast as they are answered; with
/// `texts_only`, no `/start` among them.
async fn closed_loop(
    conns: Vec<Conn>,
    next_id: &Arc<AtomicU64>,
    count: usize,
    first_user: u64,
    users: usize,
    texts_only: bool,
) -> Vec<Conn> {
    let issued = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for mut conn in conns {
        let issued = issued.clone();
        let next_id = next_id.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = issued.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return conn;
                }
                // A user's first update is /start, the later ones texts.
                let user = first_user + (i % users) as u64;
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                conn.post(update(id, user, !texts_only && i < users)).await;
            }
        }));
    }
    let mut conns = Vec::new();
    for task in tasks {
        conns.push(task.await.expect("a sender task"));
    }
    conns
}

/// When each open-loop update was due, went out and was acknowledged.
struct Timing {
    due: Instant,
    sent: Instant,
    acked: Instant,
}

/// Sends `count` updates at `rate` per second on a schedule fixed in advance, each from
/// a user of its own (`first_user + i`), whichever connection is free: every other one
/// a `/start`, or with `texts_only` all of them plain texts.
async fn open_loop(
    conns: Vec<Conn>,
    next_id: &Arc<AtomicU64>,
    count: usize,
    rate: u64,
    first_user: u64,
    texts_only: bool,
) -> (Vec<Conn>, Vec<Timing>) {
    open_loop_with(conns, next_id, count, rate, move |id, i| {
        update(id, first_user + i as u64, !texts_only && i % 2 == 0)
    })
    .await
}

/// Sends `count` updates at `rate` per second on a schedule fixed in advance, whichever
/// connection is free, the i-th built by `body(update_id, i)`.
async fn open_loop_with<B>(
    conns: Vec<Conn>,
    next_id: &Arc<AtomicU64>,
    count: usize,
    rate: u64,
    body: B,
) -> (Vec<Conn>, Vec<Timing>)
where
    B: Fn(u64, usize) -> Bytes + Send + Sync + 'static,
{
    let start = Instant::now() + Duration::from_millis(50);
    let due = move |i: usize| start + Duration::from_nanos(i as u64 * 1_000_000_000 / rate);
    let (tx, rx) = mpsc::unbounded_channel();
    // A thread of its own paces the schedule: the runtime's timer only has millisecond
    // resolution, which would add up to a millisecond to every latency.
    let pacer = std::thread::spawn(move || {
        for i in 0..count {
            let wait = due(i).saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
            if tx.send(i).is_err() {
                return;
            }
        }
    });
    let rx = Arc::new(Mutex::new(rx));
    let body = Arc::new(body);
    let mut tasks = Vec::new();
    for mut conn in conns {
        let rx = rx.clone();
        let next_id = next_id.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut timings = Vec::new();
            loop {
                let Some(i) = rx.lock().await.recv().await else {
                    return (conn, timings);
                };
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                conn.post(body(id, i)).await;
                timings.push((
                    i,
                    Timing {
                        due: due(i),
                        sent,
                        acked: Instant::now(),
                    },
                ));
            }
        }));
    }
    let mut conns = Vec::new();
    let mut timings: Vec<Option<Timing>> = (0..count).map(|_| None).collect();
    for task in tasks {
        let (conn, done) = task.await.expect("a sender task");
        conns.push(conn);
        for (i, timing) in done {
            timings[i] = Some(timing);
        }
    }
    pacer.join().expect("the pacer");
    let timings = timings
        .into_iter()
        .map(|t| t.expect("every scheduled update was sent"))
        .collect();
    (conns, timings)
}

/// p50, p99, p99.9 and max of durations, in milliseconds.
fn percentiles(mut samples: Vec<Duration>) -> String {
    samples.sort_unstable();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i].as_secs_f64() * 1e3
    };
    format!(
        "p50 {:7.3} ms   p99 {:7.3} ms   p99.9 {:7.3} ms   max {:7.3} ms",
        at(0.50),
        at(0.99),
        at(0.999),
        at(1.0)
    )
}

/// A loopback HTTP/1 endpoint that answers every POST to `path` at once with `answer`
/// (JSON, when there is one) and counts them and their bytes; anything else gets 404. It
/// runs on the bench's runtime, so its CPU is the bench's. It stands in for an OTLP/HTTP
/// collector (`/v1/traces`, an empty 200) and for (g)'s internal service.
async fn start_sink(
    path: &'static str,
    answer: &'static [u8],
    calls: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port for a loopback sink");
    let port = listener.local_addr().expect("its address").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let (calls, bytes) = (calls.clone(), bytes.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let (calls, bytes) = (calls.clone(), bytes.clone());
                        async move {
                            let ours = request.method() == hyper::Method::POST
                                && request.uri().path() == path;
                            let body = request.into_body().collect().await?.to_bytes();
                            let mut response = hyper::Response::new(Full::new(Bytes::new()));
                            if !ours {
                                *response.status_mut() = hyper::StatusCode::NOT_FOUND;
                                return Ok::<_, hyper::Error>(response);
                            }
                            calls.fetch_add(1, Ordering::Relaxed);
                            bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                            if !answer.is_empty() {
                                *response.body_mut() = Full::new(Bytes::from_static(answer));
                                response.headers_mut().insert(
                                    hyper::header::CONTENT_TYPE,
                                    hyper::header::HeaderValue::from_static("application/json"),
                                );
                            }
                            Ok(response)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    port
}

/// A stand-in OTLP/HTTP collector: answers 200 to every export and counts them.
async fn start_otlp_sink(exports: Arc<AtomicU64>, bytes: Arc<AtomicU64>) -> u16 {
    start_sink("/v1/traces", b"", exports, bytes).await
}

/// The disk's durable-write latency where the store lives: every reply waits for at
/// least two commits (the inbox, then the update's effects), so this is about the floor
/// under the open-loop latencies. It overwrites a block in place, as the store does in
/// its preallocated file, so no file-size change adds a journal commit.
fn fdatasync_latency(dir: &std::path::Path) -> String {
    use std::os::unix::fs::FileExt;
    let path = dir.join("fsync-probe");
    let file = std::fs::File::create(&path).expect("a probe file");
    file.write_all_at(&[0u8; 4096], 0).expect("a write");
    file.sync_all().expect("fsync");
    let samples = (0..100u8)
        .map(|i| {
            file.write_all_at(&[i; 4096], 0).expect("a write");
            let started = Instant::now();
            file.sync_data().expect("fdatasync");
            started.elapsed()
        })
        .collect();
    drop(file);
    let _ = std::fs::remove_file(path);
    percentiles(samples)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn main() {
    match std::env::var("E2E_ROLE").as_deref() {
        Ok("ceiling") => return ceiling::run(),
        Ok("ceiling-poll") => return ceiling::run_polling(),
        _ => {}
    }
    // `cargo bench` passes `--bench`; a filter argument would mean nothing here.
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    runtime.block_on(run(settings));
}

/// Which server a measurement runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// `edgebot serve` (this build's, or `E2E_SERVER`).
    Edgebot,
    /// The trivial responder of [`ceiling`].
    Ceiling,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Edgebot => "edgebot",
            Role::Ceiling => "CEILING (trivial responder)",
        }
    }
}

/// The figures a measurement compares.
struct Figures {
    closed_per_second: f64,
    closed_cpu_per_1k: f64,
    open_cpu_per_1k: f64,
    reply_p50_ms: f64,
    reply_p99_ms: f64,
    rss_mib: f64,
}

/// The figures of (c).
struct PollFigures {
    per_second: f64,
    cpu_per_1k: f64,
}

/// The figures of (e) and (f).
struct StartFigures {
    /// Median time to ready (edgebot) or to listening (the ceiling).
    median_ms: f64,
    /// (f), edgebot only: `VmRSS` idle after the FAQ texts.
    rss_idle_mib: Option<f64>,
}

/// The targets, beside the edgebot figures they are about.
const TARGET_CLOSED_RATE: f64 = 0.5;
const TARGET_CPU_RATIO: f64 = 2.0;
const TARGET_P99_EXTRA_MS: f64 = 2.0;
/// The memory targets are set in MB (10^6 bytes); RSS is read and printed in MiB.
const TARGET_RSS_LOAD_MB: f64 = 40.0;
const TARGET_RSS_MINILM_MB: f64 = 72.0;
const MB_PER_MIB: f64 = 1.048_576;
const TARGET_READY_MS: f64 = 150.0;

/// The target and met columns of the comparison table.
fn target(text: &str, met: bool) -> String {
    format!("   {text:<24} {}", if met { "yes" } else { "NO" })
}

/// "met" or "NOT met", for the per-role lines.
fn met(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

async fn run(settings: Settings) {
    match std::env::var("E2E_ONLY").as_deref() {
        Err(_) | Ok("") => {}
        Ok("services") => {
            measure_services(&settings).await;
            return;
        }
        Ok("llm") => {
            measure_llm(&settings).await;
            return;
        }
        Ok(other) => panic!("E2E_ONLY={other}: the phases that run alone are `services` and `llm`"),
    }
    let bot = measure(&settings, Role::Edgebot).await;
    let bot_poll = measure_polling(&settings, Role::Edgebot).await;
    let bot_start = measure_starts(&settings, Role::Edgebot).await;
    let services = measure_services(&settings).await;
    let conversations = measure_llm(&settings).await;
    if std::env::var("E2E_CEILING").is_ok_and(|v| v == "0") {
        return;
    }
    let ceiling = measure(&settings, Role::Ceiling).await;
    let ceiling_poll = measure_polling(&settings, Role::Ceiling).await;
    let ceiling_start = measure_starts(&settings, Role::Ceiling).await;
    println!();
    println!("edgebot against the ceiling, measured side by side:");
    println!(
        "{:<40} {:>12} {:>12} {:>10}   {:<24} met?",
        "figure", "edgebot", "ceiling", "ratio", "target (edgebot)"
    );
    let row = |name: &str, a: f64, b: f64, target: &str| {
        println!("{name:<40} {a:>12.4} {b:>12.4} {:>9.2}x{target}", a / b);
    };
    let rate_target = |a: f64, b: f64| {
        target(
            &format!(">= {TARGET_CLOSED_RATE}x ceiling"),
            a >= TARGET_CLOSED_RATE * b,
        )
    };
    let cpu_target = |a: f64, b: f64| {
        target(
            &format!("<= {TARGET_CPU_RATIO}x ceiling"),
            a <= TARGET_CPU_RATIO * b,
        )
    };
    row(
        "(a) closed loop, updates/s",
        bot.closed_per_second,
        ceiling.closed_per_second,
        &rate_target(bot.closed_per_second, ceiling.closed_per_second),
    );
    row(
        "(a) closed loop, CPU-s per 1k updates",
        bot.closed_cpu_per_1k,
        ceiling.closed_cpu_per_1k,
        &cpu_target(bot.closed_cpu_per_1k, ceiling.closed_cpu_per_1k),
    );
    row(
        "(b) open loop, CPU-s per 1k updates",
        bot.open_cpu_per_1k,
        ceiling.open_cpu_per_1k,
        &cpu_target(bot.open_cpu_per_1k, ceiling.open_cpu_per_1k),
    );
    row(
        "(b) reply p50, ms",
        bot.reply_p50_ms,
        ceiling.reply_p50_ms,
        "",
    );
    row(
        "(b) reply p99, ms",
        bot.reply_p99_ms,
        ceiling.reply_p99_ms,
        "",
    );
    let extra = bot.reply_p99_ms - ceiling.reply_p99_ms;
    // One column narrower than the ratio rows before the target: " ms" is three wide.
    println!(
        "{:<40} {:>12.2} {:>12.2} {:>+9.2} ms {}",
        "(b) reply p99 difference",
        bot.reply_p99_ms,
        ceiling.reply_p99_ms,
        extra,
        target(
            &format!("<= ceiling + {TARGET_P99_EXTRA_MS} ms"),
            extra <= TARGET_P99_EXTRA_MS
        )
        .trim_start()
    );
    row(
        "(c) long polling, updates/s",
        bot_poll.per_second,
        ceiling_poll.per_second,
        &rate_target(bot_poll.per_second, ceiling_poll.per_second),
    );
    row(
        "(c) long polling, CPU-s per 1k updates",
        bot_poll.cpu_per_1k,
        ceiling_poll.cpu_per_1k,
        &cpu_target(bot_poll.cpu_per_1k, ceiling_poll.cpu_per_1k),
    );
    row(
        "(d) RSS after the load, MiB",
        bot.rss_mib,
        ceiling.rss_mib,
        &target(
            &format!("<= {TARGET_RSS_LOAD_MB} MB"),
            bot.rss_mib * MB_PER_MIB <= TARGET_RSS_LOAD_MB,
        ),
    );
    // Not a ratio: the ceiling loads no models and has no readiness to report, so its
    // figure is the time until its webhook port accepts, for reference.
    println!(
        "{:<40} {:>12.1} {:>12.1} {:>10}{}",
        "(e) start->ready/listening, median ms",
        bot_start.median_ms,
        ceiling_start.median_ms,
        "-",
        target(
            &format!("<= {TARGET_READY_MS} ms"),
            bot_start.median_ms <= TARGET_READY_MS
        )
    );
    if let Some(rss) = bot_start.rss_idle_mib {
        println!(
            "{:<40} {:>12.1} {:>12} {:>10}{}",
            "(f) RSS with MiniLM, idle, MiB",
            rss,
            "-",
            "-",
            target(
                &format!("<= {TARGET_RSS_MINILM_MB} MB"),
                rss * MB_PER_MIB <= TARGET_RSS_MINILM_MB
            )
        );
    }
    // Not against the ceiling, which has no routes: the service route against the
    // template route, both edgebot, from (g) of this run.
    println!();
    println!("service route against template route, (g) of this run:");
    services.print_headline();
    println!();
    println!("conversations, (h) of this run:");
    conversations.print_headline();
}

async fn measure(settings: &Settings, role: Role) -> Figures {
    let api = FakeBotApi::start(FakeConfig::default())
        .await
        .expect("the fake Bot API starts");
    // Under target/, not /tmp: /tmp may be a tmpfs, where fsync costs nothing and the
    // figures would not be those of a durable bot.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temp dir");
    let config = dir.path().join("edgebot.toml");
    std::fs::write(&config, CONFIG).expect("the config is written");
    let data = dir.path().join("data");
    let disk = fdatasync_latency(dir.path());
    let exports = Arc::new(AtomicU64::new(0));
    let export_bytes = Arc::new(AtomicU64::new(0));

    let port = free_port();
    let otlp_sink = if settings.otel {
        Some(start_otlp_sink(exports.clone(), export_bytes.clone()).await)
    } else {
        None
    };
    let mut server = Launch {
        settings,
        role,
        intake: Intake::Webhook(port),
        api: &api,
        config: &config,
        data: data.clone(),
        admin_port: free_port(),
        log: dir.path().join("serve.log"),
        otlp_sink,
    }
    .spawn();
    server.started(&api, "setWebhook").await;
    let pid = server.pid.to_string();
    let bench_pid = std::process::id().to_string();
    let next_id = Arc::new(AtomicU64::new(1));

    let mut conns = Vec::new();
    for _ in 0..settings.connections {
        conns.push(Conn::open(port).await);
    }

    // Warm-up: connections, the store file's first pages, the allocator's arenas.
    let warm = 1_000;
    conns = closed_loop(conns, &next_id, warm, 900_000_000, 500, false).await;
    collect_replies(&api, warm).await;

    // (a) Closed loop.
    let server_cpu = CpuMeter::start(&pid);
    let bench_cpu = CpuMeter::start(&bench_pid);
    let started = Instant::now();
    conns = closed_loop(
        conns,
        &next_id,
        settings.updates,
        1_000_000_000,
        settings.users,
        false,
    )
    .await;
    let acked = started.elapsed();
    let replies = collect_replies(&api, settings.updates).await;
    let last = replies.iter().map(|c| c.at).max().expect("replies");
    let closed_wall = last.duration_since(started);
    tokio::time::sleep(SETTLE).await;
    let closed_cpu = (server_cpu.seconds(), bench_cpu.seconds());

    // (b) Open loop.
    let count = (settings.rate * settings.seconds) as usize;
    let first_user = 2_000_000_000;
    let server_cpu = CpuMeter::start(&pid);
    let bench_cpu = CpuMeter::start(&bench_pid);
    let (conns, timings) =
        open_loop(conns, &next_id, count, settings.rate, first_user, false).await;
    let replies = collect_replies(&api, count).await;
    tokio::time::sleep(SETTLE).await;
    let open_cpu = (server_cpu.seconds(), bench_cpu.seconds());
    let mut reply_latency = Vec::with_capacity(count);
    let mut seen = vec![false; count];
    for call in &replies {
        let i = (call.chat_id.expect("a chat") - first_user as i64) as usize;
        assert!(!seen[i], "update {i} answered twice");
        seen[i] = true;
        reply_latency.push(call.at.saturating_duration_since(timings[i].due));
    }
    let ack_latency = timings.iter().map(|t| t.acked - t.due).collect();
    let send_lag = timings.iter().map(|t| t.sent - t.due).collect();
    let open_wall = timings
        .iter()
        .map(|t| t.acked)
        .max()
        .expect("timings")
        .duration_since(timings[0].due);

    // (d) Memory, still under the load's footprint.
    let (rss, peak) = memory_mib(server.pid);
    let parts = Rss::of(server.pid);
    drop(conns);

    println!();
    println!(
        "{} e2e: {} binary, webhook, limits off, EDGEBOT_LOG={}, tracing {}, {} connections",
        role.name(),
        // The binary is built with the bench's own profile.
        if cfg!(debug_assertions) {
            "DEBUG (figures only from `cargo bench`)"
        } else {
            "release"
        },
        settings.log,
        if settings.otel {
            "on (OTLP sink)"
        } else {
            "off"
        },
        settings.connections
    );
    phase_header();
    phase_row(
        &format!("(a) closed loop, {} users", settings.users),
        settings.updates,
        closed_wall,
        closed_cpu,
    );
    phase_row(
        &format!("(b) open loop {}/s x {} s", settings.rate, settings.seconds),
        count,
        open_wall,
        open_cpu,
    );
    println!(
        "(a) all {} acknowledged (200) after {:.2} s; replies in {:.2} s",
        settings.updates,
        acked.as_secs_f64(),
        closed_wall.as_secs_f64()
    );
    let (reply_p50_ms, reply_p99_ms) = p50_p99_ms(&reply_latency);
    println!(
        "(b) scheduled send -> reply at fake:  {}",
        percentiles(reply_latency)
    );
    println!(
        "(b) scheduled send -> 200 from bot:   {}",
        percentiles(ack_latency)
    );
    println!(
        "(b) send lag (client side):          {}",
        percentiles(send_lag)
    );
    println!("disk: 4 KiB overwrite + fdatasync:   {disk}");
    println!("(d) server RSS after the load: {rss:.1} MiB (peak {peak:.1} MiB); {parts}");
    println!(
        "CPU from /proc/<pid>/stat utime+stime at {} ticks/s; bench CPU = load generator and fake Bot API",
        clock_ticks_per_second()
    );

    // Stop it as an operator would, then check the store kept the closed-loop counts.
    server.stop().await;
    let figures = Figures {
        closed_per_second: settings.updates as f64 / closed_wall.as_secs_f64(),
        closed_cpu_per_1k: closed_cpu.0 / (settings.updates as f64 / 1000.0),
        open_cpu_per_1k: open_cpu.0 / (count as f64 / 1000.0),
        reply_p50_ms,
        reply_p99_ms,
        rss_mib: rss,
    };
    if role == Role::Ceiling {
        return figures;
    }
    let shown = Command::new(server_binary())
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .args(["users", "show", "1000000000"])
        .output()
        .expect("edgebot users show");
    let user: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("a user as JSON");
    let expected = settings.updates.div_ceil(settings.users);
    println!(
        "durable: user 1000000000 has message_count {} (sent {expected})",
        user["message_count"]
    );
    if settings.otel {
        println!(
            "OTLP sink: {} exports, {} bytes{}",
            exports.load(Ordering::Relaxed),
            export_bytes.load(Ordering::Relaxed),
            if exports.load(Ordering::Relaxed) == 0 {
                " (the server exported nothing)"
            } else {
                ""
            }
        );
    }
    figures
}

/// (c): the closed loop of (a) through long polling instead of the webhook, in a server
/// process of its own.
async fn measure_polling(settings: &Settings, role: Role) -> PollFigures {
    let api = FakeBotApi::start(FakeConfig::default())
        .await
        .expect("the fake Bot API starts");
    // Under target/, as in (a): the store's fsyncs must cost what they cost on a disk.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temp dir");
    let config = dir.path().join("edgebot.toml");
    std::fs::write(&config, CONFIG).expect("the config is written");
    let otlp_sink = if settings.otel {
        Some(start_otlp_sink(Arc::default(), Arc::default()).await)
    } else {
        None
    };
    let mut server = Launch {
        settings,
        role,
        intake: Intake::Polling,
        api: &api,
        config: &config,
        data: dir.path().join("data"),
        admin_port: free_port(),
        log: dir.path().join("serve.log"),
        otlp_sink,
    }
    .spawn();
    // A getUpdates is recorded only once answered, i.e. once there are updates; the
    // deleteWebhook just before the first one says the poller is starting.
    server.started(&api, "deleteWebhook").await;
    let pid = server.pid.to_string();
    let bench_pid = std::process::id().to_string();
    let window = settings.poll_window;
    let mut next_id = 1;

    // Warm-up, as in (a).
    polling_closed_loop(&api, &mut next_id, 1_000, 900_000_000, 500, window).await;

    let server_cpu = CpuMeter::start(&pid);
    let bench_cpu = CpuMeter::start(&bench_pid);
    let started = Instant::now();
    let count = settings.poll_updates;
    let (replies, polls) = polling_closed_loop(
        &api,
        &mut next_id,
        count,
        1_000_000_000,
        settings.users,
        window,
    )
    .await;
    let last = replies.iter().map(|c| c.at).max().unwrap_or(started);
    let wall = last.duration_since(started);
    tokio::time::sleep(SETTLE).await;
    let cpu = (server_cpu.seconds(), bench_cpu.seconds());
    let (rss, peak) = memory_mib(server.pid);
    server.stop().await;

    println!();
    println!(
        "{} polling: {} binary, long polling (getUpdates, up to 100 a call), limits off, EDGEBOT_LOG={}, at most {} updates queued and unanswered",
        role.name(),
        if cfg!(debug_assertions) {
            "DEBUG (figures only from `cargo bench`)"
        } else {
            "release"
        },
        settings.log,
        window
    );
    phase_header();
    phase_row(
        &format!("(c) long polling, {} users", settings.users),
        count,
        wall,
        cpu,
    );
    println!(
        "(c) from the first update queued to the last reply; {polls} getUpdates answered meanwhile ({:.1} updates each)",
        count as f64 / polls.max(1) as f64
    );
    println!("(c) server RSS after the load: {rss:.1} MiB (peak {peak:.1} MiB)");
    PollFigures {
        per_second: count as f64 / wall.as_secs_f64(),
        cpu_per_1k: cpu.0 / (count as f64 / 1000.0),
    }
}

/// Queues `count` updates at the fake for getUpdates, from users `first_user ..
/// first_user + users` in turn, each user's first a `/start` as in (a), keeping at most
/// `window` of them queued or in the bot and not yet answered: each reply lets another
/// one in. Returns the replies and the number of getUpdates calls answered meanwhile.
async fn polling_closed_loop(
    api: &FakeBotApi,
    next_id: &mut u64,
    count: usize,
    first_user: u64,
    users: usize,
    window: usize,
) -> (Vec<RecordedCall>, usize) {
    let mut replies = Vec::with_capacity(count);
    let mut polls = 0;
    let mut queued = 0;
    let mut progress = Instant::now();
    loop {
        while queued < count && queued - replies.len() < window {
            let user = first_user + (queued % users) as u64;
            let body = update(*next_id, user, queued < users);
            api.push_update(serde_json::from_slice(&body).expect("the bench's updates are JSON"));
            *next_id += 1;
            queued += 1;
        }
        if replies.len() >= count {
            return (replies, polls);
        }
        // A millisecond between refills: the window holds several batches, so the bot
        // finds updates waiting however late this loop wakes.
        tokio::time::sleep(Duration::from_millis(1)).await;
        let before = replies.len();
        for call in api.take_calls() {
            if call.method == "getUpdates" {
                polls += 1;
            } else if call.method == "sendMessage" && call.delivered() {
                replies.push(call);
            }
        }
        if replies.len() > before {
            progress = Instant::now();
        }
        assert!(
            progress.elapsed() < PATIENCE,
            "no reply for {PATIENCE:?}: {} of {count} answered, {queued} queued",
            replies.len()
        );
    }
}

/// (e) and (f): `E2E_STARTS` starts with every model on and an FAQ configured, each
/// with a fresh data dir, timed to the first 200 from `/health/ready` (the ceiling: to
/// its webhook port accepting); then the memory of the last one, right after ready and
/// idle after answering texts through the FAQ.
async fn measure_starts(settings: &Settings, role: Role) -> StartFigures {
    let api = FakeBotApi::start(FakeConfig::default())
        .await
        .expect("the fake Bot API starts");
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temp dir");
    let config = dir.path().join("edgebot.toml");
    // Models on explicitly, although that is the default: this phase is about them.
    let mut text = format!("{CONFIG}\n[models]\nenabled = true\n");
    for (question, answer) in FAQ {
        text.push_str(&format!(
            "\n[[faq]]\nquestion = \"{question}\"\nanswer = \"{answer}\"\n"
        ));
    }
    std::fs::write(&config, text).expect("the config is written");
    let otlp_sink = if settings.otel {
        Some(start_otlp_sink(Arc::default(), Arc::default()).await)
    } else {
        None
    };
    let mut times = Vec::with_capacity(settings.starts);
    let mut memory = None;
    for i in 0..settings.starts {
        let port = free_port();
        let admin_port = free_port();
        api.take_calls();
        let mut server = Launch {
            settings,
            role,
            intake: Intake::Webhook(port),
            api: &api,
            config: &config,
            data: dir.path().join(format!("data-{i}")),
            admin_port,
            log: dir.path().join(format!("serve-{i}.log")),
            otlp_sink,
        }
        .spawn();
        let elapsed = match role {
            Role::Edgebot => {
                time_until(&mut server, || async move {
                    ready_status(admin_port).await == Some(200)
                })
                .await
            }
            Role::Ceiling => {
                time_until(&mut server, || async move {
                    tokio::net::TcpStream::connect(("127.0.0.1", port))
                        .await
                        .is_ok()
                })
                .await
            }
        };
        let after_ready = (role == Role::Edgebot).then(|| Rss::of(server.pid));
        times.push(elapsed);
        // The webhook is set last in a start, after ready; stopping before it would
        // interrupt the start, and (f) needs it.
        server.started(&api, "setWebhook").await;
        if let Some(after_ready) = after_ready
            && i + 1 == settings.starts
        {
            let (answered, idle) = faq_then_idle(&api, &server, port).await;
            memory = Some((after_ready, answered, idle));
        }
        server.stop().await;
    }

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    times.sort_unstable();
    let middle = times.len() / 2;
    let median_ms = if times.len() % 2 == 0 {
        (ms(times[middle - 1]) + ms(times[middle])) / 2.0
    } else {
        ms(times[middle])
    };
    let (min_ms, max_ms) = (ms(times[0]), ms(times[times.len() - 1]));
    println!();
    let spread = format!(
        "{} starts: min {min_ms:.1} ms, median {median_ms:.1} ms, max {max_ms:.1} ms",
        times.len()
    );
    if role == Role::Ceiling {
        println!(
            "{} start: webhook, no models, probed every {} ms",
            role.name(),
            PROBE_INTERVAL.as_millis()
        );
        println!("(e) spawn -> webhook port accepting, {spread}");
        return StartFigures {
            median_ms,
            rss_idle_mib: None,
        };
    }
    println!(
        "{} start: {} binary, webhook, every model on (MiniLM: {} FAQ entries), a fresh data dir each start, EDGEBOT_LOG={}",
        role.name(),
        if cfg!(debug_assertions) {
            "DEBUG (figures only from `cargo bench`)"
        } else {
            "release"
        },
        FAQ.len(),
        settings.log
    );
    println!(
        "(e) spawn -> first 200 from GET /health/ready (probed every {} ms), {spread}; target median <= {TARGET_READY_MS} ms: {}",
        PROBE_INTERVAL.as_millis(),
        met(median_ms <= TARGET_READY_MS)
    );
    let Some((after_ready, answered, idle)) = memory else {
        return StartFigures {
            median_ms,
            rss_idle_mib: None,
        };
    };
    println!("(f) server RSS right after ready: {after_ready}");
    println!(
        "(f) server RSS idle 1 s after {} FAQ texts ({answered} answered from the FAQ): {idle}; target VmRSS <= {TARGET_RSS_MINILM_MB} MB: {}",
        FAQ_TEXTS.len(),
        met(idle.total * MB_PER_MIB <= TARGET_RSS_MINILM_MB)
    );
    StartFigures {
        median_ms,
        rss_idle_mib: Some(idle.total),
    }
}

/// Time from the server's spawn until `probe` first succeeds, probing every
/// [`PROBE_INTERVAL`] (or right after a slower probe); read when that probe returns.
async fn time_until<P, F>(server: &mut Server, probe: P) -> Duration
where
    P: Fn() -> F,
    F: std::future::Future<Output = bool>,
{
    loop {
        let attempt = tokio::time::Instant::now();
        // A probe that hangs must not hang the bench; a starting server answers fast.
        if matches!(tokio::time::timeout(PATIENCE, probe()).await, Ok(true)) {
            return server.spawned.elapsed();
        }
        assert!(
            server.child.try_wait().expect("waitpid").is_none(),
            "the server exited while starting:\n{}",
            server.log_tail()
        );
        assert!(
            server.spawned.elapsed() < PATIENCE,
            "not ready after {PATIENCE:?}:\n{}",
            server.log_tail()
        );
        tokio::time::sleep_until(attempt + PROBE_INTERVAL).await;
    }
}

/// The status of one `GET /health/ready` on a new loopback connection, as an
/// orchestrator's probe asks it; `None` while nothing listens or answers.
async fn ready_status(port: u16) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!(
        "GET /health/ready HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    // "HTTP/1.1 200": the status line's first twelve bytes are all it takes.
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while head.len() < 12 {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    std::str::from_utf8(&head)
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// (f): posts [`FAQ_TEXTS`] to the webhook, each from a user of its own, waits for their
/// replies, then idles a second. Returns how many replies were FAQ answers, and the
/// server's memory then.
async fn faq_then_idle(api: &FakeBotApi, server: &Server, port: u16) -> (usize, Rss) {
    api.take_calls();
    let mut conn = Conn::open(port).await;
    for (i, text) in FAQ_TEXTS.iter().enumerate() {
        let id = 1 + i as u64;
        let text = format!(r#""text":{}"#, serde_json::Value::from(*text));
        conn.post(message(id, 3_000_000_000 + id, &text)).await;
    }
    drop(conn);
    let replied = api
        .wait_for(
            |calls| {
                calls
                    .iter()
                    .filter(|c| c.method == "sendMessage" && c.delivered())
                    .count()
                    >= FAQ_TEXTS.len()
            },
            PATIENCE,
        )
        .await;
    assert!(
        replied,
        "the FAQ texts were not all answered:\n{}",
        server.log_tail()
    );
    let answered = api
        .take_calls()
        .iter()
        .filter(|c| {
            c.method == "sendMessage" && FAQ.iter().any(|(_, answer)| c.params["text"] == *answer)
        })
        .count();
    tokio::time::sleep(Duration::from_secs(1)).await;
    (answered, Rss::of(server.pid))
}

/// Updates each server of (g) answers, closed loop, before it is measured.
const SERVICE_WARM_UP: usize = 1_000;

/// The route every text takes in (g).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// `[fallback] reply`: handled, and its effects committed, before the 200.
    Template,
    /// `[fallback] service`: kept in the inbox before the 200, then the service is
    /// called and the effects committed.
    Service,
}

impl Route {
    fn name(self) -> &'static str {
        match self {
            Route::Template => "template route",
            Route::Service => "service route",
        }
    }

    /// The config: [`CONFIG`] with a fallback that answers every text.
    fn config(self, responder: u16) -> String {
        match self {
            Route::Template => format!("{CONFIG}\n[fallback]\nreply = \"ok {{first_name}}\"\n"),
            Route::Service => format!(
                r#"{CONFIG}
[[services]]
name = "echo"
url = "http://127.0.0.1:{responder}/handle"
timeout_ms = 3000

[fallback]
service = "echo"
"#
            ),
        }
    }

    /// What the user reads: the template rendered for the bench's users, or the
    /// responder's text.
    fn reply(self) -> &'static str {
        match self {
            Route::Template => "ok Ada",
            Route::Service => "ok",
        }
    }
}

/// The figures of one server in (g).
struct RouteFigures {
    cpu_per_1k: f64,
    bench_cpu_per_1k: f64,
    reply_p50_ms: f64,
    reply_p99_ms: f64,
    ack_p50_ms: f64,
    ack_p99_ms: f64,
    /// From the server's own metrics over the measured load.
    inside: Inside,
}

/// What the server's `/metrics` say about (g)'s measured load: store commits (every
/// group commit, lazy ones included) and their mean duration, the mean run of the
/// route's handler (the service call included, the commit not), and the mean service
/// call (one attempt, as the gateway times it).
struct Inside {
    commits: f64,
    commit_seconds: f64,
    handled: f64,
    handler_seconds: f64,
    service_calls: f64,
    service_seconds: f64,
}

impl Inside {
    /// The counters' growth from `before` to `after`, two scrapes of `/metrics`.
    fn between(before: &str, after: &str) -> Inside {
        let delta = |name: &str| metric(after, name) - metric(before, name);
        Inside {
            commits: delta("edgebot_store_commit_duration_seconds_count"),
            commit_seconds: delta("edgebot_store_commit_duration_seconds_sum"),
            handled: delta("edgebot_handler_duration_seconds_count"),
            handler_seconds: delta("edgebot_handler_duration_seconds_sum"),
            service_calls: delta("edgebot_service_call_seconds_count"),
            service_seconds: delta("edgebot_service_call_seconds_sum"),
        }
    }

    fn mean_ms(seconds: f64, count: f64) -> f64 {
        if count > 0.0 {
            seconds / count * 1e3
        } else {
            0.0
        }
    }
}

/// The sum of a metric's samples (every label set) in `/metrics` text; 0 when absent.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The text of one `GET /metrics` from the admin listener, on a new loopback connection.
async fn scrape_metrics(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the admin listener accepts");
    let request =
        format!("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("a request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("a response");
    let text = String::from_utf8_lossy(&response).into_owned();
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "GET /metrics: {}",
        text.lines().next().unwrap_or("")
    );
    text
}

/// The figures of (g): the same load against both routes.
struct ServiceFigures {
    template: RouteFigures,
    service: RouteFigures,
}

impl ServiceFigures {
    /// Server CPU the service route adds per update, in µs (CPU-s per 1,000 updates
    /// are ms per update).
    fn cpu_added_us(&self) -> f64 {
        (self.service.cpu_per_1k - self.template.cpu_per_1k) * 1e3
    }

    /// What the service route adds to the reply p99, in ms.
    fn p99_added_ms(&self) -> f64 {
        self.service.reply_p99_ms - self.template.reply_p99_ms
    }

    /// The two figures the phase is for, one line each.
    fn print_headline(&self) {
        println!(
            "(g) CPU per update added by the service route: {:+.1} µs (server CPU-s/1k {:.4} -> {:.4})",
            self.cpu_added_us(),
            self.template.cpu_per_1k,
            self.service.cpu_per_1k
        );
        println!(
            "(g) reply p99 added by the service route:      {:+.2} ms ({:.2} -> {:.2} ms)",
            self.p99_added_ms(),
            self.template.reply_p99_ms,
            self.service.reply_p99_ms
        );
    }
}

/// (g)'s internal service: answers every call at once with one message, as a service
/// with its answer at hand would.
async fn start_service_responder(served: Arc<AtomicU64>, bytes: Arc<AtomicU64>) -> u16 {
    start_sink(
        "/handle",
        br#"{"actions":[{"type":"send","text":"ok"}]}"#,
        served,
        bytes,
    )
    .await
}

/// (g): the template route, then the service route, each in a server of its own under
/// the same open-loop load of texts; prints both and what the service route adds.
async fn measure_services(settings: &Settings) -> ServiceFigures {
    let served = Arc::new(AtomicU64::new(0));
    let request_bytes = Arc::new(AtomicU64::new(0));
    let responder = start_service_responder(served.clone(), request_bytes.clone()).await;
    let template = measure_route(settings, Route::Template, responder, &served).await;
    let before = (
        served.load(Ordering::Relaxed),
        request_bytes.load(Ordering::Relaxed),
    );
    let service = measure_route(settings, Route::Service, responder, &served).await;
    let calls = served.load(Ordering::Relaxed) - before.0;
    let bytes = request_bytes.load(Ordering::Relaxed) - before.1;
    let figures = ServiceFigures { template, service };

    let count = settings.service_rate * settings.service_seconds;
    println!();
    println!(
        "(g) service route vs template route: {count} texts at {}/s ({} s), each from a user of its own, same load one server after the other; the responder served {calls} calls, one per update ({SERVICE_WARM_UP} of them the warm-up), {} bytes of request on average",
        settings.service_rate,
        settings.service_seconds,
        bytes / calls.max(1)
    );
    println!(
        "{:<32} {:>12} {:>12} {:>12}",
        "figure", "template", "service", "difference"
    );
    let row = |name: &str, a: f64, b: f64| {
        println!("{name:<32} {a:>12.4} {b:>12.4} {:>+12.4}", b - a);
    };
    let (t, s) = (&figures.template, &figures.service);
    row("server CPU-s per 1k updates", t.cpu_per_1k, s.cpu_per_1k);
    row("reply p50, ms", t.reply_p50_ms, s.reply_p50_ms);
    row("reply p99, ms", t.reply_p99_ms, s.reply_p99_ms);
    row("ack (200) p50, ms", t.ack_p50_ms, s.ack_p50_ms);
    row("ack (200) p99, ms", t.ack_p99_ms, s.ack_p99_ms);
    row(
        "bench CPU-s per 1k (+responder)",
        t.bench_cpu_per_1k,
        s.bench_cpu_per_1k,
    );
    let (ti, si) = (&t.inside, &s.inside);
    let per_update = |x: f64| x / count as f64;
    row(
        "store commits per update",
        per_update(ti.commits),
        per_update(si.commits),
    );
    row(
        "mean commit, ms",
        Inside::mean_ms(ti.commit_seconds, ti.commits),
        Inside::mean_ms(si.commit_seconds, si.commits),
    );
    row(
        "mean handler run, ms",
        Inside::mean_ms(ti.handler_seconds, ti.handled),
        Inside::mean_ms(si.handler_seconds, si.handled),
    );
    row(
        "mean service call, ms",
        Inside::mean_ms(ti.service_seconds, ti.service_calls),
        Inside::mean_ms(si.service_seconds, si.service_calls),
    );
    figures.print_headline();
    println!(
        "(g) server CPU excludes the responder, which runs in the bench process (bench CPU: load generator, fake Bot API and, for the service route, the responder)"
    );
    figures
}

/// One server of (g): warmed up, then the open-loop load of texts at
/// `E2E_SERVICE_RATE` for `E2E_SERVICE_SECONDS`, all answered through `route`.
async fn measure_route(
    settings: &Settings,
    route: Route,
    responder: u16,
    served: &AtomicU64,
) -> RouteFigures {
    let api = FakeBotApi::start(FakeConfig::default())
        .await
        .expect("the fake Bot API starts");
    // Under target/, as in (a): the store's fsyncs must cost what they cost on a disk.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temp dir");
    let config = dir.path().join("edgebot.toml");
    std::fs::write(&config, route.config(responder)).expect("the config is written");
    let disk = fdatasync_latency(dir.path());
    let otlp_sink = if settings.otel {
        Some(start_otlp_sink(Arc::default(), Arc::default()).await)
    } else {
        None
    };
    let port = free_port();
    let admin_port = free_port();
    let mut server = Launch {
        settings,
        role: Role::Edgebot,
        intake: Intake::Webhook(port),
        api: &api,
        config: &config,
        data: dir.path().join("data"),
        admin_port,
        log: dir.path().join("serve.log"),
        otlp_sink,
    }
    .spawn();
    server.started(&api, "setWebhook").await;
    let pid = server.pid.to_string();
    let bench_pid = std::process::id().to_string();
    let next_id = Arc::new(AtomicU64::new(1));
    let mut conns = Vec::new();
    for _ in 0..settings.connections {
        conns.push(Conn::open(port).await);
    }
    let served_at_start = served.load(Ordering::Relaxed);

    // Warm-up, as in (a), all texts: the service client's connections, the store's
    // pages, the allocator's arenas.
    let warm = SERVICE_WARM_UP;
    conns = closed_loop(conns, &next_id, warm, 900_000_000, 500, true).await;
    collect_replies(&api, warm).await;

    let count = (settings.service_rate * settings.service_seconds) as usize;
    let first_user = 2_000_000_000;
    // Read before the CPU meter starts and after it stops, so it costs nothing measured.
    let metrics_before = scrape_metrics(admin_port).await;
    let server_cpu = CpuMeter::start(&pid);
    let bench_cpu = CpuMeter::start(&bench_pid);
    let (conns, timings) = open_loop(
        conns,
        &next_id,
        count,
        settings.service_rate,
        first_user,
        true,
    )
    .await;
    let replies = collect_replies(&api, count).await;
    tokio::time::sleep(SETTLE).await;
    let cpu = (server_cpu.seconds(), bench_cpu.seconds());
    let inside = Inside::between(&metrics_before, &scrape_metrics(admin_port).await);
    drop(conns);

    assert_eq!(
        served.load(Ordering::Relaxed) - served_at_start,
        if route == Route::Service {
            (warm + count) as u64
        } else {
            0
        },
        "{}: not one service call per update (a retry?)",
        route.name()
    );
    let mut reply_latency = Vec::with_capacity(count);
    let mut seen = vec![false; count];
    for call in &replies {
        assert_eq!(
            call.params["text"],
            route.reply(),
            "{}: a reply that is not the route's:\n{}",
            route.name(),
            server.log_tail()
        );
        let i = (call.chat_id.expect("a chat") - first_user as i64) as usize;
        assert!(!seen[i], "update {i} answered twice");
        seen[i] = true;
        reply_latency.push(call.at.saturating_duration_since(timings[i].due));
    }
    let ack_latency: Vec<Duration> = timings.iter().map(|t| t.acked - t.due).collect();
    let send_lag = timings.iter().map(|t| t.sent - t.due).collect();
    let wall = timings
        .iter()
        .map(|t| t.acked)
        .max()
        .expect("timings")
        .duration_since(timings[0].due);
    server.stop().await;

    println!();
    println!(
        "(g) {}: {} binary, webhook, limits off, EDGEBOT_LOG={}, {} connections, every update a text from a user of its own",
        route.name(),
        if cfg!(debug_assertions) {
            "DEBUG (figures only from `cargo bench`)"
        } else {
            "release"
        },
        settings.log,
        settings.connections
    );
    phase_header();
    phase_row(
        &format!(
            "(g) {} {}/s x {} s",
            route.name(),
            settings.service_rate,
            settings.service_seconds
        ),
        count,
        wall,
        cpu,
    );
    let (reply_p50_ms, reply_p99_ms) = p50_p99_ms(&reply_latency);
    let (ack_p50_ms, ack_p99_ms) = p50_p99_ms(&ack_latency);
    println!(
        "(g) scheduled send -> reply at fake:  {}",
        percentiles(reply_latency)
    );
    println!(
        "(g) scheduled send -> 200 from bot:   {}",
        percentiles(ack_latency)
    );
    println!(
        "(g) send lag (client side):          {}",
        percentiles(send_lag)
    );
    println!("disk: 4 KiB overwrite + fdatasync:   {disk}");
    let per_1k = count as f64 / 1000.0;
    RouteFigures {
        cpu_per_1k: cpu.0 / per_1k,
        bench_cpu_per_1k: cpu.1 / per_1k,
        reply_p50_ms,
        reply_p99_ms,
        ack_p50_ms,
        ack_p99_ms,
        inside,
    }
}

/// The texts of (h) each ask this, from `user`: long enough that the fake's echo streams
/// in a dozen deltas (about 1.5 s at [`SLOW_CHUNK`]), and naming the user, so every
/// answer can be checked against its own question.
fn question(user: u64) -> String {
    format!("tell me about the number {user}")
}

/// What the fake LLM answers to [`question`]: its echo, which the user gets as is (it
/// holds nothing the HTML markup would change).
fn echo(user: u64) -> String {
    format!("You said: {}", question(user))
}

/// A text update asking [`question`], from `user` in their private chat.
fn question_update(update_id: u64, user: u64) -> Bytes {
    message(update_id, user, &format!(r#""text":"{}""#, question(user)))
}

/// `/help` from `user`: a built-in command, answered before the 200 without leaving the
/// process, the fast route (h3) watches.
fn help_update(update_id: u64, user: u64) -> Bytes {
    message(
        update_id,
        user,
        r#""text":"/help","entities":[{"type":"bot_command","offset":0,"length":5}]"#,
    )
}

/// The fake's pause between two events of a stream in (h3): a slow model writing a few
/// tokens a tenth of a second, so that every answer takes 1–2 s.
const SLOW_CHUNK: Duration = Duration::from_millis(100);
/// `/help` commands in each pass of (h3), at [`HELP_RATE`] per second: one second of
/// them, about as long as the conversations stream.
const HELPS: usize = 200;
const HELP_RATE: u64 = 200;
/// Connections of their own for the `/help` commands, so that none waits on the client
/// side behind the burst's posts.
const HELP_CONNECTIONS: usize = 8;
/// Conversations of (h2) timed from outside, one at a time.
const FIRST_SHOWN_PROBES: usize = 50;
/// The users of (h), one range per purpose, so that a reply's chat says what it answers.
const TURN_USERS: u64 = 2_000_000_000;
const PROBE_USERS: u64 = 3_500_000_000;
const BURST_USERS: u64 = 4_000_000_000;
const IDLE_HELP_USERS: u64 = 4_100_000_000;
const BUSY_HELP_USERS: u64 = 4_200_000_000;
const WARM_USERS: u64 = 4_300_000_000;

/// The config of (h)'s conversation servers: [`CONFIG`] with one OpenAI-compatible
/// provider, the fake LLM at `base_url`, and one personality that answers every text.
/// Slots for 1,000 calls, so that 500 conversations never wait for one; timeouts far
/// above the slow fake's pace; no retries, so a failure shows as an apology instead of
/// hiding behind a second call; drafts at their default pace.
fn llm_config(base_url: &str, typing: bool) -> String {
    format!(
        r#"{CONFIG}
[llm]
typing = {typing}
max_concurrent = 1000

[[llm.providers]]
name = "fake"
kind = "openai"
base_url = "{base_url}"
model = "fake-model"
retries = 0
timeout_ms = 60000
idle_timeout_ms = 60000
max_concurrent = 1000

[[personalities]]
name = "friend"
title = "Friend"
system_prompt = "You are a kind, brief assistant."
provider = "fake"

[fallback]
llm = "friend"
"#
    )
}

/// A server of (h): started on its config with a fresh store under target/ and a fake
/// Bot API of its own, its webhook set. Dropping it kills the server before its
/// directory goes.
struct Running {
    api: FakeBotApi,
    server: Server,
    port: u16,
    admin_port: u16,
    /// The disk's 4 KiB overwrite + fdatasync where the store lives, as in (b).
    disk: String,
    _dir: tempfile::TempDir,
}

async fn launch(settings: &Settings, config_text: &str) -> Running {
    let api = FakeBotApi::start(FakeConfig::default())
        .await
        .expect("the fake Bot API starts");
    // Under target/, as in (a): the store's fsyncs must cost what they cost on a disk.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temp dir");
    let config = dir.path().join("edgebot.toml");
    std::fs::write(&config, config_text).expect("the config is written");
    let disk = fdatasync_latency(dir.path());
    let otlp_sink = if settings.otel {
        Some(start_otlp_sink(Arc::default(), Arc::default()).await)
    } else {
        None
    };
    let port = free_port();
    let admin_port = free_port();
    let server = Launch {
        settings,
        role: Role::Edgebot,
        intake: Intake::Webhook(port),
        api: &api,
        config: &config,
        data: dir.path().join("data"),
        admin_port,
        log: dir.path().join("serve.log"),
        otlp_sink,
    }
    .spawn();
    server.started(&api, "setWebhook").await;
    Running {
        api,
        server,
        port,
        admin_port,
        disk,
        _dir: dir,
    }
}

/// The fake Bot API's calls, drained as they come: a conversation also sends drafts
/// (and typing), so counting all calls cannot tell when the replies are in, and
/// draining keeps each look cheap however many there are.
struct Recorder<'a> {
    api: &'a FakeBotApi,
    calls: Vec<RecordedCall>,
}

impl<'a> Recorder<'a> {
    fn new(api: &'a FakeBotApi) -> Recorder<'a> {
        Recorder {
            api,
            calls: api.take_calls(),
        }
    }

    /// Drains until the calls drained so far hold `n` delivered `sendMessage`s to chats
    /// in `chats`; fails the bench, with the server's log, after [`PATIENCE`].
    async fn wait_messages(&mut self, chats: std::ops::Range<u64>, n: usize, server: &Server) {
        let chats = chats.start as i64..chats.end as i64;
        let reply = |c: &RecordedCall| {
            c.method == "sendMessage"
                && c.delivered()
                && c.chat_id.is_some_and(|id| chats.contains(&id))
        };
        let mut seen = self.calls.iter().filter(|c| reply(c)).count();
        let deadline = Instant::now() + PATIENCE;
        while seen < n {
            assert!(
                Instant::now() < deadline,
                "{seen} of {n} replies to chats {chats:?} after {PATIENCE:?}:\n{}",
                server.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
            let new = self.api.take_calls();
            seen += new.iter().filter(|c| reply(c)).count();
            self.calls.extend(new);
        }
    }

    /// Everything drained so far, and what has arrived since; the recorder starts over.
    fn take(&mut self) -> Vec<RecordedCall> {
        self.calls.extend(self.api.take_calls());
        std::mem::take(&mut self.calls)
    }
}

/// The delivered calls of `method` to chats `first .. first + count`, by chat.
fn by_chat<'c>(
    calls: &'c [RecordedCall],
    method: &str,
    first: u64,
    count: usize,
) -> Vec<Vec<&'c RecordedCall>> {
    let mut chats = vec![Vec::new(); count];
    for call in calls {
        if call.method != method || !call.delivered() {
            continue;
        }
        if let Some(i) = call
            .chat_id
            .and_then(|id| u64::try_from(id).ok()?.checked_sub(first))
            .filter(|i| *i < count as u64)
        {
            chats[i as usize].push(call);
        }
    }
    chats
}

/// Checks that every chat `first + i` got exactly one message, `expected(first + i)`,
/// and returns them in chat order.
fn one_reply_each<'c>(
    calls: &'c [RecordedCall],
    first: u64,
    count: usize,
    expected: impl Fn(u64) -> String,
    server: &Server,
) -> Vec<&'c RecordedCall> {
    by_chat(calls, "sendMessage", first, count)
        .into_iter()
        .enumerate()
        .map(|(i, replies)| {
            let user = first + i as u64;
            assert_eq!(
                replies.len(),
                1,
                "chat {user} got {} messages, not one:\n{}",
                replies.len(),
                server.log_tail()
            );
            let text = replies[0].params["text"].as_str().unwrap_or_default();
            assert_eq!(
                text,
                expected(user),
                "chat {user}: a reply that is not its answer:\n{}",
                server.log_tail()
            );
            replies[0]
        })
        .collect()
}

/// A histogram's cumulative buckets in `/metrics` text, summed over its label sets:
/// (upper bound, observations at or under it), bounds ascending, `+Inf` last.
fn buckets(text: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{");
    let mut found: Vec<(f64, f64)> = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(&prefix) else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once(' ') else {
            continue;
        };
        let Some(le) = labels
            .split_once("le=\"")
            .and_then(|(_, after)| after.split_once('"'))
            .map(|(le, _)| le)
        else {
            continue;
        };
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().expect("a bucket bound")
        };
        let value: f64 = value.parse().expect("a bucket count");
        match found.iter_mut().find(|(bound, _)| *bound == le) {
            Some((_, total)) => *total += value,
            None => found.push((le, value)),
        }
    }
    found.sort_by(|a, b| a.0.total_cmp(&b.0));
    found
}

/// The `q` quantile of a histogram's cumulative buckets, interpolated linearly inside
/// the bucket that holds it, as Prometheus's `histogram_quantile` does (the first
/// bucket from 0): only an estimate, as good as the buckets are narrow. NaN without
/// observations; past the last finite bound, that bound.
fn bucket_quantile(buckets: &[(f64, f64)], q: f64) -> f64 {
    let total = buckets.last().map_or(0.0, |b| b.1);
    if total <= 0.0 {
        return f64::NAN;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank && count > below {
            if bound.is_infinite() {
                return lower;
            }
            return lower + (bound - lower) * (rank - below) / (count - below);
        }
        (lower, below) = (bound, count);
    }
    lower
}

/// A histogram's observations between two scrapes of `/metrics`.
struct Histo {
    sum: f64,
    count: f64,
    buckets: Vec<(f64, f64)>,
}

impl Histo {
    fn between(before: &str, after: &str, name: &str) -> Histo {
        let earlier = buckets(before, name);
        let buckets = buckets(after, name)
            .into_iter()
            .map(|(bound, count)| {
                let then = earlier
                    .iter()
                    .find(|(b, _)| *b == bound)
                    .map_or(0.0, |(_, c)| *c);
                (bound, count - then)
            })
            .collect();
        let delta = |suffix: &str| {
            let name = format!("{name}_{suffix}");
            metric(after, &name) - metric(before, &name)
        };
        Histo {
            sum: delta("sum"),
            count: delta("count"),
            buckets,
        }
    }

    fn mean_ms(&self) -> f64 {
        if self.count > 0.0 {
            self.sum / self.count * 1e3
        } else {
            f64::NAN
        }
    }

    fn quantile_ms(&self, q: f64) -> f64 {
        bucket_quantile(&self.buckets, q) * 1e3
    }

    /// "mean M ms, p50 ~A ms, p99 ~B ms over N", the quantiles from the buckets.
    fn describe(&self) -> String {
        format!(
            "mean {:.3} ms, p50 ~{:.3} ms, p99 ~{:.3} ms (from buckets) over {}",
            self.mean_ms(),
            self.quantile_ms(0.50),
            self.quantile_ms(0.99),
            self.count
        )
    }
}

/// The metrics of (h2) and (h3): the answer's first piece to the first draft shown, and
/// the request to the first piece, both as the server times them.
const FIRST_SHOWN: &str = "edgebot_llm_first_shown_seconds";
const FIRST_TOKEN: &str = "edgebot_llm_first_token_seconds";

/// Posts `count` updates over every connection as fast as each is acknowledged, the
/// i-th built by `body(update_id, i)`; returns the connections and, per update, when it
/// went out and when its 200 came.
async fn burst<B>(
    conns: Vec<Conn>,
    next_id: &Arc<AtomicU64>,
    count: usize,
    body: B,
) -> (Vec<Conn>, Vec<(Instant, Instant)>)
where
    B: Fn(u64, usize) -> Bytes + Send + Sync + 'static,
{
    let issued = Arc::new(AtomicUsize::new(0));
    let body = Arc::new(body);
    let mut tasks = Vec::new();
    for mut conn in conns {
        let (issued, next_id, body) = (issued.clone(), next_id.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = issued.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return (conn, done);
                }
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                conn.post(body(id, i)).await;
                done.push((i, sent, Instant::now()));
            }
        }));
    }
    let mut conns = Vec::new();
    let mut times = vec![None; count];
    for task in tasks {
        let (conn, done) = task.await.expect("a sender task");
        conns.push(conn);
        for (i, sent, acked) in done {
            times[i] = Some((sent, acked));
        }
    }
    let times = times
        .into_iter()
        .map(|t| t.expect("every update was sent"))
        .collect();
    (conns, times)
}

/// Reads `edgebot_llm_in_flight` from `/metrics` every 50 ms until `stop` is set.
fn sample_in_flight(admin_port: u16, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<f64>> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_millis(50));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut samples = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            ticks.tick().await;
            let text = scrape_metrics(admin_port).await;
            samples.push(metric(&text, "edgebot_llm_in_flight"));
        }
        samples
    })
}

/// Which route answers (h1)'s texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// `[fallback] reply`, as in (g).
    Template,
    /// `[fallback] llm = "friend"`, the fake LLM answering at once.
    Conversation,
}

impl Turn {
    fn name(self) -> &'static str {
        match self {
            Turn::Template => "template route",
            Turn::Conversation => "conversation route",
        }
    }
}

/// The figures of one server of (h1), and for the conversation route (h2).
struct TurnFigures {
    cpu_per_1k: f64,
    bench_cpu_per_1k: f64,
    reply_p50_ms: f64,
    reply_p99_ms: f64,
    ack_p50_ms: f64,
    ack_p99_ms: f64,
    drafts_per_turn: f64,
    inside: Inside,
    shown: Option<ShownFigures>,
}

/// (h2): from the answer's first piece to the first draft shown.
struct ShownFigures {
    /// The server's histogram over (h1)'s measured load.
    metric: Histo,
    /// The server's request -> first piece over the same load.
    first_token: Histo,
    /// From outside, one conversation at a time on the idle server.
    outside: Vec<Duration>,
    /// The server's histogram over those same conversations.
    outside_metric: Histo,
}

/// (h2) from outside: [`FIRST_SHOWN_PROBES`] conversations one after the other on the
/// idle server, each from a new user, each timed from the fake LLM recording the
/// request to the fake Bot API recording the chat's first draft. The fake LLM answers
/// at once, so this holds nothing to subtract: it is an upper bound of first piece ->
/// first shown, which adds the fake writing the answer's head, its first (role-only)
/// event and the first piece over loopback, and the server reading them.
async fn probe_first_shown(
    running: &Running,
    llm: &FakeLlm,
    next_id: &AtomicU64,
) -> (Vec<Duration>, Histo) {
    llm.reset();
    let mut recorder = Recorder::new(&running.api);
    recorder.take();
    let before = scrape_metrics(running.admin_port).await;
    let mut conn = Conn::open(running.port).await;
    for k in 0..FIRST_SHOWN_PROBES {
        let user = PROBE_USERS + k as u64;
        conn.post(question_update(
            next_id.fetch_add(1, Ordering::Relaxed),
            user,
        ))
        .await;
        recorder
            .wait_messages(user..user + 1, 1, &running.server)
            .await;
        // A pause, so the next conversation finds nothing of this one still running.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = scrape_metrics(running.admin_port).await;
    let calls = recorder.take();
    let drafts = by_chat(&calls, "sendMessageDraft", PROBE_USERS, FIRST_SHOWN_PROBES);
    let mut asked = vec![None; FIRST_SHOWN_PROBES];
    for request in llm.requests() {
        // The last message is the question, which names its user.
        let user = request.body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .and_then(|m| m["content"].as_str())
            .and_then(|q| q.rsplit(' ').next()?.parse::<u64>().ok())
            .and_then(|u| u.checked_sub(PROBE_USERS))
            .filter(|i| *i < FIRST_SHOWN_PROBES as u64);
        if let Some(i) = user {
            assert!(asked[i as usize].is_none(), "conversation {i} asked twice");
            asked[i as usize] = Some(request.at);
        }
    }
    let outside = drafts
        .iter()
        .zip(&asked)
        .enumerate()
        .map(|(i, (drafts, asked))| {
            let asked = asked.unwrap_or_else(|| panic!("conversation {i} never asked the LLM"));
            let first = drafts.iter().map(|d| d.at).min().unwrap_or_else(|| {
                panic!(
                    "conversation {i} was answered without a draft:\n{}",
                    running.server.log_tail()
                )
            });
            first.saturating_duration_since(asked)
        })
        .collect();
    (outside, Histo::between(&before, &after, FIRST_SHOWN))
}

/// One server of (h1): warmed up, then the open-loop load of texts at `E2E_LLM_RATE`
/// for `E2E_LLM_SECONDS`, every one answered through `turn`; for the conversation
/// route, then (h2) from outside.
async fn measure_turns(settings: &Settings, turn: Turn, llm: &FakeLlm) -> TurnFigures {
    let config = match turn {
        Turn::Template => Route::Template.config(0),
        // No typing indicator: the template route sends nothing before its answer
        // either, so the difference is the turn itself.
        Turn::Conversation => llm_config(&llm.base_url(), false),
    };
    let mut running = launch(settings, &config).await;
    let pid = running.server.pid.to_string();
    let bench_pid = std::process::id().to_string();
    let next_id = Arc::new(AtomicU64::new(1));
    let mut conns = Vec::new();
    for _ in 0..settings.connections {
        conns.push(Conn::open(running.port).await);
    }
    let mut recorder = Recorder::new(&running.api);

    // Warm-up, as in (g): the LLM client's connections, the store's pages, the
    // allocator's arenas; 500 users, two texts each.
    let warm = SERVICE_WARM_UP;
    conns = closed_loop(conns, &next_id, warm, WARM_USERS, 500, true).await;
    recorder
        .wait_messages(WARM_USERS..WARM_USERS + 500, warm, &running.server)
        .await;
    recorder.take();
    llm.reset();

    let count = (settings.llm_rate * settings.llm_seconds) as usize;
    // Read before the CPU meter starts and after it stops, so it costs nothing measured.
    let metrics_before = scrape_metrics(running.admin_port).await;
    let server_cpu = CpuMeter::start(&pid);
    let bench_cpu = CpuMeter::start(&bench_pid);
    let (conns, timings) = open_loop_with(conns, &next_id, count, settings.llm_rate, |id, i| {
        question_update(id, TURN_USERS + i as u64)
    })
    .await;
    recorder
        .wait_messages(
            TURN_USERS..TURN_USERS + count as u64,
            count,
            &running.server,
        )
        .await;
    tokio::time::sleep(SETTLE).await;
    let cpu = (server_cpu.seconds(), bench_cpu.seconds());
    let metrics_after = scrape_metrics(running.admin_port).await;
    drop(conns);
    let calls = recorder.take();

    let expected = |user: u64| match turn {
        Turn::Template => Route::Template.reply().to_owned(),
        Turn::Conversation => echo(user),
    };
    let replies = one_reply_each(&calls, TURN_USERS, count, expected, &running.server);
    let reply_latency: Vec<Duration> = replies
        .iter()
        .zip(&timings)
        .map(|(reply, t)| reply.at.saturating_duration_since(t.due))
        .collect();
    let drafts = by_chat(&calls, "sendMessageDraft", TURN_USERS, count)
        .iter()
        .map(Vec::len)
        .sum::<usize>();
    if turn == Turn::Conversation {
        let asked = llm.requests().iter().filter(|r| r.status == 200).count();
        assert_eq!(asked, count, "not one LLM call per text (a retry?)");
    }
    let ack_latency: Vec<Duration> = timings.iter().map(|t| t.acked - t.due).collect();
    let send_lag = timings.iter().map(|t| t.sent - t.due).collect();
    let wall = timings
        .iter()
        .map(|t| t.acked)
        .max()
        .expect("timings")
        .duration_since(timings[0].due);

    let shown = if turn == Turn::Conversation {
        let (outside, outside_metric) = probe_first_shown(&running, llm, &next_id).await;
        Some(ShownFigures {
            metric: Histo::between(&metrics_before, &metrics_after, FIRST_SHOWN),
            first_token: Histo::between(&metrics_before, &metrics_after, FIRST_TOKEN),
            outside,
            outside_metric,
        })
    } else {
        None
    };
    running.server.stop().await;

    println!();
    println!(
        "(h1) {}: {} binary, webhook, limits off, EDGEBOT_LOG={}, {} connections, every update a text from a user of its own",
        turn.name(),
        if cfg!(debug_assertions) {
            "DEBUG (figures only from `cargo bench`)"
        } else {
            "release"
        },
        settings.log,
        settings.connections
    );
    phase_header();
    phase_row(
        &format!(
            "(h1) {} {}/s x {} s",
            turn.name(),
            settings.llm_rate,
            settings.llm_seconds
        ),
        count,
        wall,
        cpu,
    );
    let (reply_p50_ms, reply_p99_ms) = p50_p99_ms(&reply_latency);
    let (ack_p50_ms, ack_p99_ms) = p50_p99_ms(&ack_latency);
    println!(
        "(h1) scheduled send -> reply at fake: {}",
        percentiles(reply_latency)
    );
    println!(
        "(h1) scheduled send -> 200 from bot:  {}",
        percentiles(ack_latency)
    );
    println!(
        "(h1) send lag (client side):         {}",
        percentiles(send_lag)
    );
    println!("disk: 4 KiB overwrite + fdatasync:   {}", running.disk);
    let per_1k = count as f64 / 1000.0;
    TurnFigures {
        cpu_per_1k: cpu.0 / per_1k,
        bench_cpu_per_1k: cpu.1 / per_1k,
        reply_p50_ms,
        reply_p99_ms,
        ack_p50_ms,
        ack_p99_ms,
        drafts_per_turn: drafts as f64 / count as f64,
        inside: Inside::between(&metrics_before, &metrics_after),
        shown,
    }
}

/// The figures of (h3).
struct ConcurrentFigures {
    conversations: usize,
    /// The webhook's 200s for the conversations' texts, post -> 200.
    ack: Vec<Duration>,
    /// From the first post to the last 200.
    intake: Duration,
    /// `/help`, scheduled send -> reply at the fake: on the idle server, then while the
    /// conversations stream.
    help_idle: Vec<Duration>,
    help_busy: Vec<Duration>,
    /// `/help`, scheduled send -> 200, idle then busy.
    help_idle_ack: Vec<Duration>,
    help_busy_ack: Vec<Duration>,
    /// The busy `/help`s again, split by when they were due: while the texts were still
    /// being posted, and after that while the answers streamed (before the last one
    /// arrived).
    help_during_intake: Vec<Duration>,
    help_while_streaming: Vec<Duration>,
    in_flight_max: f64,
    in_flight_samples: usize,
    /// From the first post to the last answer at the fake.
    all_answered: Duration,
    drafts_per_conversation: f64,
    /// From outside, per conversation: the fake LLM recording the request -> the
    /// chat's first draft at the fake Bot API, less the fake's pause before the first
    /// piece ([`SLOW_CHUNK`]).
    shown_outside: Vec<Duration>,
    shown_metric: Histo,
    first_token: Histo,
}

impl ConcurrentFigures {
    fn help_p99_ms(&self) -> (f64, f64) {
        (p50_p99_ms(&self.help_idle).1, p50_p99_ms(&self.help_busy).1)
    }

    fn ack_p99_max_ms(&self) -> (f64, f64) {
        let max = self.ack.iter().max().copied().unwrap_or_default();
        (p50_p99_ms(&self.ack).1, max.as_secs_f64() * 1e3)
    }
}

/// (h3): `E2E_LLM_CONCURRENT` conversations at once against a slow fake LLM, posted as
/// fast as the connections take them, while `/help` comes at a steady rate from other
/// users; the same `/help` load on the idle server before, for comparison.
async fn measure_concurrent(settings: &Settings) -> ConcurrentFigures {
    let llm = FakeLlm::start(FakeLlmConfig {
        chunk_delay: SLOW_CHUNK,
        ..FakeLlmConfig::default()
    })
    .await
    .expect("the fake LLM starts");
    // Typing on, the default: a bot under this load sends it too.
    let mut running = launch(settings, &llm_config(&llm.base_url(), true)).await;
    let next_id = Arc::new(AtomicU64::new(1));
    let mut conns = Vec::new();
    for _ in 0..settings.connections {
        conns.push(Conn::open(running.port).await);
    }
    let mut help_conns = Vec::new();
    for _ in 0..HELP_CONNECTIONS {
        help_conns.push(Conn::open(running.port).await);
    }
    let mut recorder = Recorder::new(&running.api);

    // Warm-up: the LLM client's connections, the store's pages, the /help path.
    let warm = settings.connections;
    conns = closed_loop(conns, &next_id, warm, WARM_USERS, warm, true).await;
    help_conns = burst(help_conns, &next_id, warm, |id, i| {
        help_update(id, WARM_USERS + 1_000_000 + i as u64)
    })
    .await
    .0;
    recorder
        .wait_messages(WARM_USERS..WARM_USERS + warm as u64, warm, &running.server)
        .await;
    recorder
        .wait_messages(
            WARM_USERS + 1_000_000..WARM_USERS + 1_000_000 + warm as u64,
            warm,
            &running.server,
        )
        .await;
    recorder.take();

    // The idle server's /help, the reference.
    let (help_conns, idle_timings) =
        open_loop_with(help_conns, &next_id, HELPS, HELP_RATE, |id, i| {
            help_update(id, IDLE_HELP_USERS + i as u64)
        })
        .await;
    recorder
        .wait_messages(
            IDLE_HELP_USERS..IDLE_HELP_USERS + HELPS as u64,
            HELPS,
            &running.server,
        )
        .await;
    let calls = recorder.take();
    // Every user gets the same list; the first one's is the text to expect.
    let help_text = by_chat(&calls, "sendMessage", IDLE_HELP_USERS, 1)[0]
        .first()
        .and_then(|reply| reply.params["text"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(
        help_text.starts_with("Here is what I can do:"),
        "/help answered {help_text:?}"
    );
    let idle_replies = one_reply_each(
        &calls,
        IDLE_HELP_USERS,
        HELPS,
        |_| help_text.clone(),
        &running.server,
    );
    let help_idle = idle_replies
        .iter()
        .zip(&idle_timings)
        .map(|(r, t)| r.at.saturating_duration_since(t.due))
        .collect();
    let help_idle_ack = idle_timings.iter().map(|t| t.acked - t.due).collect();

    // The burst, with /help beside it and the gauge sampled throughout.
    let n = settings.llm_concurrent;
    llm.reset();
    let before = scrape_metrics(running.admin_port).await;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_in_flight(running.admin_port, stop.clone());
    let started = Instant::now();
    let ((conns, acks), (help_conns, busy_timings)) = tokio::join!(
        burst(conns, &next_id, n, |id, i| question_update(
            id,
            BURST_USERS + i as u64
        )),
        open_loop_with(help_conns, &next_id, HELPS, HELP_RATE, |id, i| {
            help_update(id, BUSY_HELP_USERS + i as u64)
        })
    );
    recorder
        .wait_messages(BURST_USERS..BURST_USERS + n as u64, n, &running.server)
        .await;
    recorder
        .wait_messages(
            BUSY_HELP_USERS..BUSY_HELP_USERS + HELPS as u64,
            HELPS,
            &running.server,
        )
        .await;
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.await.expect("the sampler");
    // A second answer to any chat (a replay, a retry) would come soon after the first:
    // a second's wait lets the check below see it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = scrape_metrics(running.admin_port).await;
    let calls = recorder.take();
    drop((conns, help_conns));

    let answers = one_reply_each(&calls, BURST_USERS, n, echo, &running.server);
    let busy_replies = one_reply_each(
        &calls,
        BUSY_HELP_USERS,
        HELPS,
        |_| help_text.clone(),
        &running.server,
    );
    let asked: Vec<_> = llm
        .requests()
        .into_iter()
        .filter(|r| r.status == 200)
        .collect();
    assert_eq!(
        asked.len(),
        n,
        "not one LLM call per conversation (a retry?)"
    );
    let last_answer = answers.iter().map(|a| a.at).max().expect("answers");
    let drafts = by_chat(&calls, "sendMessageDraft", BURST_USERS, n);
    let mut asked_at = vec![None; n];
    for request in &asked {
        let i = request.body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .and_then(|m| m["content"].as_str())
            .and_then(|q| q.rsplit(' ').next()?.parse::<u64>().ok())
            .and_then(|u| u.checked_sub(BURST_USERS))
            .expect("a question of the burst") as usize;
        asked_at[i] = Some(request.at);
    }
    let help_busy: Vec<Duration> = busy_replies
        .iter()
        .zip(&busy_timings)
        .map(|(r, t)| r.at.saturating_duration_since(t.due))
        .collect();
    let intake_end = acks.iter().map(|(_, acked)| *acked).max().expect("acks");
    let (mut help_during_intake, mut help_while_streaming) = (Vec::new(), Vec::new());
    for (latency, t) in help_busy.iter().zip(&busy_timings) {
        if t.due < intake_end {
            help_during_intake.push(*latency);
        } else if t.due < last_answer {
            help_while_streaming.push(*latency);
        }
    }
    let shown_outside = drafts
        .iter()
        .zip(&asked_at)
        .filter_map(|(drafts, asked)| {
            let first = drafts.iter().map(|d| d.at).min()?;
            Some(first.saturating_duration_since((*asked)? + SLOW_CHUNK))
        })
        .collect();
    running.server.stop().await;
    llm.shutdown().await;

    ConcurrentFigures {
        conversations: n,
        ack: acks.iter().map(|(sent, acked)| *acked - *sent).collect(),
        intake: intake_end.duration_since(started),
        help_idle,
        help_busy,
        help_idle_ack,
        help_busy_ack: busy_timings.iter().map(|t| t.acked - t.due).collect(),
        help_during_intake,
        help_while_streaming,
        in_flight_max: samples.iter().copied().fold(0.0, f64::max),
        in_flight_samples: samples.len(),
        all_answered: last_answer.duration_since(started),
        drafts_per_conversation: drafts.iter().map(Vec::len).sum::<usize>() as f64 / n as f64,
        shown_outside,
        shown_metric: Histo::between(&before, &after, FIRST_SHOWN),
        first_token: Histo::between(&before, &after, FIRST_TOKEN),
    }
}

/// The figures of (h).
struct LlmFigures {
    template: TurnFigures,
    conversation: TurnFigures,
    concurrent: ConcurrentFigures,
}

impl LlmFigures {
    /// Server CPU a conversation turn adds over a template reply, in µs (CPU-s per 1,000
    /// updates are ms per update); the fake LLM's own CPU is the bench's.
    fn cpu_added_us(&self) -> f64 {
        (self.conversation.cpu_per_1k - self.template.cpu_per_1k) * 1e3
    }

    /// The three figures the phase is for, one line each.
    fn print_headline(&self) {
        if let Some(shown) = &self.conversation.shown {
            let (outside_p50, _) = p50_p99_ms(&shown.outside);
            println!(
                "(h) first token -> first draft shown: mean {:.3} ms, p50 ~{:.3} ms, p99 ~{:.3} ms (server's histogram, {} turns); from outside, idle, one at a time: p50 {:.3} ms (an upper bound)",
                shown.metric.mean_ms(),
                shown.metric.quantile_ms(0.50),
                shown.metric.quantile_ms(0.99),
                shown.metric.count,
                outside_p50
            );
        }
        println!(
            "(h) server CPU per conversation turn besides the provider: {:+.1} µs (server CPU-s/1k {:.4} template -> {:.4} conversation)",
            self.cpu_added_us(),
            self.template.cpu_per_1k,
            self.conversation.cpu_per_1k
        );
        let c = &self.concurrent;
        let (ack_p99, ack_max) = c.ack_p99_max_ms();
        let (help_idle_p99, help_busy_p99) = c.help_p99_ms();
        println!(
            "(h) {} concurrent conversations, slow LLM: webhook ack p99 {:.2} ms (max {:.2}); /help reply p99 {:.2} ms beside them ({:.2} idle); in flight at most {}; all answered, once each, {:.2} s after the first post",
            c.conversations,
            ack_p99,
            ack_max,
            help_busy_p99,
            help_idle_p99,
            c.in_flight_max,
            c.all_answered.as_secs_f64()
        );
    }
}

/// (h): (h1) the template route, then the conversation route against a fake LLM that
/// answers at once, each in a server of its own under the same open-loop load of texts,
/// and (h2) the conversation server's first piece -> first draft; then (h3) 500
/// conversations at once against a slow fake. Prints each and the headline.
async fn measure_llm(settings: &Settings) -> LlmFigures {
    let llm = FakeLlm::start(FakeLlmConfig::default())
        .await
        .expect("the fake LLM starts");
    let template = measure_turns(settings, Turn::Template, &llm).await;
    let conversation = measure_turns(settings, Turn::Conversation, &llm).await;
    llm.shutdown().await;
    let concurrent = measure_concurrent(settings).await;
    let figures = LlmFigures {
        template,
        conversation,
        concurrent,
    };

    let count = settings.llm_rate * settings.llm_seconds;
    println!();
    println!(
        "(h1) conversation route vs template route: {count} texts at {}/s ({} s), each from a user of its own, same load one server after the other; the conversation server asks the fake LLM in this process (answers at once, {} bytes a turn), drafts on, no typing",
        settings.llm_rate,
        settings.llm_seconds,
        echo(TURN_USERS).len()
    );
    println!(
        "{:<32} {:>12} {:>12} {:>12}",
        "figure", "template", "conversation", "difference"
    );
    let row = |name: &str, a: f64, b: f64| {
        println!("{name:<32} {a:>12.4} {b:>12.4} {:>+12.4}", b - a);
    };
    let (t, c) = (&figures.template, &figures.conversation);
    row("server CPU-s per 1k updates", t.cpu_per_1k, c.cpu_per_1k);
    row("reply p50, ms", t.reply_p50_ms, c.reply_p50_ms);
    row("reply p99, ms", t.reply_p99_ms, c.reply_p99_ms);
    row("ack (200) p50, ms", t.ack_p50_ms, c.ack_p50_ms);
    row("ack (200) p99, ms", t.ack_p99_ms, c.ack_p99_ms);
    row(
        "bench CPU-s per 1k (+fake LLM)",
        t.bench_cpu_per_1k,
        c.bench_cpu_per_1k,
    );
    let (ti, ci) = (&t.inside, &c.inside);
    let per_update = |x: f64| x / count as f64;
    row(
        "store commits per update",
        per_update(ti.commits),
        per_update(ci.commits),
    );
    row(
        "mean commit, ms",
        Inside::mean_ms(ti.commit_seconds, ti.commits),
        Inside::mean_ms(ci.commit_seconds, ci.commits),
    );
    row(
        "mean handler run, ms",
        Inside::mean_ms(ti.handler_seconds, ti.handled),
        Inside::mean_ms(ci.handler_seconds, ci.handled),
    );
    row("drafts per update", t.drafts_per_turn, c.drafts_per_turn);

    if let Some(shown) = &c.shown {
        println!();
        println!(
            "(h2) first piece -> first draft shown, the server's histogram over (h1)'s load: {}",
            shown.metric.describe()
        );
        println!(
            "(h2) request -> first piece, the server's histogram over (h1)'s load: mean {:.3} ms over {}",
            shown.first_token.mean_ms(),
            shown.first_token.count
        );
        println!(
            "(h2) from outside, {FIRST_SHOWN_PROBES} conversations one at a time on the idle server, LLM request recorded -> first draft recorded (an upper bound: the fake's answer head and first events over loopback are in it): {}",
            percentiles(shown.outside.clone())
        );
        println!(
            "(h2) the server's histogram over those same {FIRST_SHOWN_PROBES}: {}",
            shown.outside_metric.describe()
        );
    }

    let k = &figures.concurrent;
    println!();
    println!(
        "(h3) {} conversations at once over {} connections, fake LLM pausing {} ms between events ({} events an answer), [llm] and provider max_concurrent 1000, typing on; {HELPS} /help at {HELP_RATE}/s over {HELP_CONNECTIONS} more connections, idle then beside the conversations",
        k.conversations,
        settings.connections,
        SLOW_CHUNK.as_millis(),
        // The role event, one per 4 characters, the finish, the usage, [DONE].
        echo(BURST_USERS).len().div_ceil(4) + 4
    );
    println!(
        "(h3) the texts' webhook 200s, post -> 200: {}; all {} acknowledged {:.1} ms after the first post",
        percentiles(k.ack.clone()),
        k.conversations,
        k.intake.as_secs_f64() * 1e3
    );
    println!(
        "{:<32} {:>12} {:>12} {:>12}",
        "figure", "idle", "beside them", "difference"
    );
    let (idle_p50, idle_p99) = p50_p99_ms(&k.help_idle);
    let (busy_p50, busy_p99) = p50_p99_ms(&k.help_busy);
    row("/help reply p50, ms", idle_p50, busy_p50);
    row("/help reply p99, ms", idle_p99, busy_p99);
    let (idle_p50, idle_p99) = p50_p99_ms(&k.help_idle_ack);
    let (busy_p50, busy_p99) = p50_p99_ms(&k.help_busy_ack);
    row("/help ack (200) p50, ms", idle_p50, busy_p50);
    row("/help ack (200) p99, ms", idle_p99, busy_p99);
    println!(
        "(h3) /help beside them, scheduled send -> reply: {}",
        percentiles(k.help_busy.clone())
    );
    // Empty when the texts were all in before the first /help was due, or when the
    // answers were all in before the /help load ended.
    let part = |samples: &[Duration]| {
        if samples.is_empty() {
            "none".to_owned()
        } else {
            percentiles(samples.to_vec())
        }
    };
    println!(
        "(h3) of those, {} due while the texts were being posted: {}",
        k.help_during_intake.len(),
        part(&k.help_during_intake)
    );
    println!(
        "(h3) and {} due after, while the answers streamed:  {}",
        k.help_while_streaming.len(),
        part(&k.help_while_streaming)
    );
    println!(
        "(h3) edgebot_llm_in_flight, sampled every 50 ms ({} samples): max {}",
        k.in_flight_samples, k.in_flight_max
    );
    println!(
        "(h3) all {} answered, each exactly once and its own echo, {:.3} s after the first post; {:.2} drafts per conversation",
        k.conversations,
        k.all_answered.as_secs_f64(),
        k.drafts_per_conversation
    );
    println!(
        "(h3) first piece -> first draft shown under this load, the server's histogram: {}",
        k.shown_metric.describe()
    );
    println!(
        "(h3) request -> first piece, the server's histogram: mean {:.3} ms over {} (the fake pauses {} ms before it)",
        k.first_token.mean_ms(),
        k.first_token.count,
        SLOW_CHUNK.as_millis()
    );
    println!(
        "(h3) from outside, LLM request recorded -> first draft recorded, less the fake's {} ms pause (its timer's lateness stays in), {} conversations: {}",
        SLOW_CHUNK.as_millis(),
        k.shown_outside.len(),
        percentiles(k.shown_outside.clone())
    );
    figures.print_headline();
    println!(
        "(h) server CPU excludes the fake LLM, which runs in the bench process (bench CPU: load generator, fake Bot API and fake LLM)"
    );
    figures
}

/// The header of the per-phase table.
fn phase_header() {
    println!(
        "{:<34} {:>8} {:>8} {:>10} {:>12} {:>13} {:>11}",
        "phase", "updates", "wall s", "updates/s", "server CPU s", "CPU s/1k upd", "bench CPU s"
    );
}

/// One phase: `n` updates in `wall`, costing `cpu` (server, bench) CPU seconds.
fn phase_row(name: &str, n: usize, wall: Duration, cpu: (f64, f64)) {
    println!(
        "{:<34} {:>8} {:>8.2} {:>10.0} {:>12.2} {:>13.4} {:>11.2}",
        name,
        n,
        wall.as_secs_f64(),
        n as f64 / wall.as_secs_f64(),
        cpu.0,
        cpu.0 / (n as f64 / 1000.0),
        cpu.1
    );
}

/// The median and 99th percentile of latencies, in milliseconds.
fn p50_p99_ms(samples: &[Duration]) -> (f64, f64) {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let at = |q: f64| {
        let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[i].as_secs_f64() * 1e3
    };
    (at(0.50), at(0.99))
}

/// The server under test: `E2E_SERVER`, or the binary of this build.
fn server_binary() -> std::path::PathBuf {
    std::env::var_os("E2E_SERVER")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_edgebot").into())
}

/// The ceiling: the same load against a bot that does nothing durable. It is this bench
/// binary run again with `E2E_ROLE=ceiling` (webhook) or `E2E_ROLE=ceiling-poll` (long
/// polling), started exactly as `edgebot serve` is (a child process with the same
/// environment), and built from edgebot's own parts — the one HTTP serving loop, the Bot
/// API client, the update parser — with a counter in memory instead of a store and no
/// models. Every edgebot figure is then given as a ratio to the ceiling's, measured side
/// by side on the same noisy machine.
mod ceiling {
    use bytes::Bytes;
    use edgebot::botapi::Client;
    use edgebot::net::server::{self, Handler, Options};
    use edgebot::secret::Secret;
    use edgebot::telegram::types::Update;
    use http_body_util::{BodyExt, Full};
    use hyper::body::Incoming;
    use hyper::{Request, Response, StatusCode};
    use serde_json::value::RawValue;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    struct Responder {
        client: Client,
        path: String,
        secret: Secret,
        handled: AtomicU64,
    }

    fn status(code: StatusCode) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = code;
        response
    }

    impl Handler for Responder {
        async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
            let authorised = request
                .headers()
                .get("x-telegram-bot-api-secret-token")
                .is_some_and(|given| self.secret.matches(given.as_bytes()));
            if request.uri().path() != self.path || !authorised {
                return status(StatusCode::UNAUTHORIZED);
            }
            let Ok(body) = request.into_body().collect().await else {
                return status(StatusCode::BAD_REQUEST);
            };
            let Ok(update) = Update::from_json(&body.to_bytes()) else {
                return status(StatusCode::OK);
            };
            let count = self.handled.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some(chat_id) = update.chat_id() {
                reply(&self.client, chat_id, format!("update {count}"));
            }
            status(StatusCode::OK)
        }
    }

    /// One sendMessage in a task of its own, so that the next update need not wait for it.
    fn reply(client: &Client, chat_id: i64, text: String) {
        let client = client.clone();
        tokio::spawn(async move {
            let params = serde_json::json!({"chat_id": chat_id, "text": text});
            let body = Bytes::from(serde_json::to_vec(&params).unwrap_or_default());
            let _ = client.call_raw("sendMessage", body, client.timeout()).await;
        });
    }

    fn var(name: &str) -> String {
        std::env::var(name).unwrap_or_else(|_| panic!("{name} is set"))
    }

    /// The Bot API client, configured as `edgebot serve` configures its own.
    fn client() -> Client {
        Client::new(
            &var("EDGEBOT_API_URL"),
            &Secret::new(var("EDGEBOT_TOKEN")),
            Duration::from_secs(10),
        )
        .expect("a Bot API client")
    }

    /// Long-polls until SIGTERM, as edgebot does: getUpdates for up to 100 updates past the
    /// last one seen, waiting up to 30 s, then one sendMessage per update, with nothing
    /// stored.
    pub fn run_polling() {
        let runtime = tokio::runtime::Runtime::new().expect("a Tokio runtime");
        runtime.block_on(async {
            let client = client();
            // As edgebot does before polling: getUpdates is refused while a webhook is set.
            let _: bool = client
                .call(
                    "deleteWebhook",
                    &serde_json::json!({"drop_pending_updates": false}),
                )
                .await
                .expect("deleteWebhook");
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("a SIGTERM handler");
            let mut offset = 0i64;
            let mut handled = 0u64;
            loop {
                let params = serde_json::json!({
                    "offset": offset,
                    "limit": 100,
                    "timeout": 30,
                    "allowed_updates": ["message"],
                });
                let body = Bytes::from(serde_json::to_vec(&params).unwrap_or_default());
                let poll = client.call_raw("getUpdates", body, Duration::from_secs(40));
                let result = tokio::select! {
                    result = poll => result,
                    _ = term.recv() => return,
                };
                let updates = result
                    .ok()
                    .and_then(|raw| serde_json::from_slice::<Vec<Box<RawValue>>>(&raw).ok());
                let Some(updates) = updates else {
                    // Only the fake answers here, and it fails only in passing (a 409
                    // for a superseded poll): retry after a pause, as a poller would.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                for raw in updates {
                    // The bench queues only updates it wrote, and they all parse.
                    let Ok(update) = Update::from_json(raw.get().as_bytes()) else {
                        continue;
                    };
                    offset = offset.max(update.update_id + 1);
                    handled += 1;
                    if let Some(chat_id) = update.chat_id() {
                        reply(&client, chat_id, format!("update {handled}"));
                    }
                }
            }
        });
    }

    /// Serves until SIGTERM, configured by the same variables as `edgebot serve`.
    pub fn run() {
        let runtime = tokio::runtime::Runtime::new().expect("a Tokio runtime");
        runtime.block_on(async {
            // Before the port opens: the start-up phase stops it as soon as it accepts.
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("a SIGTERM handler");
            let client = client();
            let url = var("EDGEBOT_WEBHOOK_URL");
            let secret = Secret::new(var("EDGEBOT_WEBHOOK_SECRET"));
            let listener = tokio::net::TcpListener::bind(var("EDGEBOT_LISTEN"))
                .await
                .expect("the webhook port");
            client
                .set_webhook(&url, &secret, &["message"], 40)
                .await
                .expect("setWebhook");
            let path = edgebot::transport::webhook::path_of(&url);
            let responder = Arc::new(Responder {
                client,
                path,
                secret,
                handled: AtomicU64::new(0),
            });
            let (trigger, shutdown) = edgebot::shutdown::channel();
            tokio::spawn(async move {
                term.recv().await;
                trigger.fire();
            });
            server::serve(listener, responder, Options::new("ceiling"), shutdown).await;
        });
    }
}
