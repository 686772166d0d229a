//! The real `edgebot` binary as a process in integration tests, talked to over plain
//! HTTP: a loopback port, the command with none of the caller's settings, a guard that
//! kills the process however the test ends, and a few-line HTTP/1.1 client.

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The binary with none of the caller's `EDGEBOT_*` or `OTEL_*` settings.
pub fn edgebot() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_edgebot"));
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with("EDGEBOT_") || key_text.starts_with("OTEL_") {
            command.env_remove(key);
        }
    }
    command
}

/// Kills its process when dropped, so a failing assertion leaves nothing running.
pub struct Running {
    pub name: &'static str,
    pub child: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// How the process ended, if it has.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("the child's status")
    }
}

/// One request on a fresh connection: the answer's status and JSON body (a body that is
/// not JSON comes back as `{"raw": …}`); `None` while nothing listens.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Option<(u16, Value)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = serde_json::from_str(body).unwrap_or_else(|_| json!({ "raw": body }));
    Some((status, body))
}

/// `edgebot serve` with a webhook on `port` against the Bot API at `api_url`: the config
/// file, a data directory, and stderr to `log`. The caller adds its own environment.
pub fn serve(
    config: &std::path::Path,
    data_dir: &std::path::Path,
    api_url: &str,
    port: u16,
    log: std::fs::File,
) -> Command {
    let mut command = edgebot();
    command
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("serve")
        .env("EDGEBOT_TOKEN", "1:token")
        .env("EDGEBOT_API_URL", api_url)
        .env(
            "EDGEBOT_WEBHOOK_URL",
            format!("http://127.0.0.1:{port}/hook"),
        )
        .env("EDGEBOT_WEBHOOK_SECRET", "s3cret")
        .env("EDGEBOT_LISTEN", format!("127.0.0.1:{port}"))
        .env("EDGEBOT_ADMIN_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("EDGEBOT_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log);
    command
}

/// Posts an update to the webhook on `port` with the secret [`serve`] sets; the status,
/// or 0 when nothing answered.
pub fn post_update(port: u16, update: &Value) -> u16 {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    http(
        addr,
        "POST",
        "/hook",
        &[("x-telegram-bot-api-secret-token", "s3cret")],
        Some(update),
    )
    .map_or(0, |(status, _)| status)
}

/// The stderr of each run of a process a test starts in one directory, one file per run,
/// read back whole for assertions and failure messages.
pub struct Logs {
    dir: std::path::PathBuf,
    runs: usize,
}

impl Logs {
    pub fn new(dir: &std::path::Path) -> Logs {
        Logs {
            dir: dir.to_owned(),
            runs: 0,
        }
    }

    /// The log file of the next run.
    pub fn next(&mut self) -> std::fs::File {
        self.runs += 1;
        std::fs::File::create(self.path(self.runs)).expect("a log file")
    }

    fn path(&self, run: usize) -> std::path::PathBuf {
        self.dir.join(format!("serve-{run}.log"))
    }

    /// Every run's log, in order.
    pub fn all(&self) -> String {
        (1..=self.runs)
            .map(|run| std::fs::read_to_string(self.path(run)).unwrap_or_default())
            .collect()
    }
}

/// Waits until the bot has set its webhook `times` times (once per start).
pub async fn webhook_set(
    api: &edgebot::fake::botapi::FakeBotApi,
    times: usize,
    patience: Duration,
    logs: &Logs,
) {
    let set = api
        .wait_for(
            |calls| calls.iter().filter(|c| c.method == "setWebhook").count() >= times,
            patience,
        )
        .await;
    assert!(set, "the webhook was never set\n{}", logs.all());
}
