//! A real headless Chromium driven over WebDriver, for tests of the admin panel as a
//! person uses it: `chromedriver` as a child process (killed with its browser however
//! the test ends), one fantoccini session, and the few steps the panel tests take —
//! open a page, fill a field, submit a form, read an element, save a screenshot — plus
//! a raw form POST for requests a browser would never send (a replayed cookie without
//! the form's CSRF token).
//!
//! Missing `chromium` or `chromedriver` fails the test with what to install; only
//! `EDGEBOT_SKIP_BROWSER=1`, set on purpose, turns that into a skip.

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Two cores shared with other builds: Chromium can take a while to start and to render.
const PATIENCE: Duration = Duration::from_secs(60);

/// The browser Debian's `chromium` package installs; `EDGEBOT_CHROMIUM` names another.
const CHROMIUM: &str = "/usr/bin/chromium";

pub struct Browser {
    pub client: Client,
    /// The origin pages are opened under, e.g. `http://127.0.0.1:9090`.
    pub base: String,
    driver: Child,
    /// Chromium's profile and chromedriver's log; removed after the driver is killed.
    _dir: TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver does not take Chromium down when it is killed, so the whole
        // process group goes (the driver was started as its leader).
        let group = -(self.driver.id() as i32);
        unsafe {
            libc::kill(group, libc::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}

/// Where a program is: `override_var` when set, else the first match on `PATH`, else
/// `fallback`.
fn locate(override_var: &str, name: &str, fallback: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(override_var) {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| Some(PathBuf::from(fallback)).filter(|p| p.is_file()))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Browser {
    /// A fresh headless Chromium whose pages are opened under `base`; `None` only when
    /// the browser is missing and `EDGEBOT_SKIP_BROWSER=1` says that is fine.
    pub async fn start(base: &str) -> Option<Browser> {
        let chromium = locate("EDGEBOT_CHROMIUM", "chromium", CHROMIUM).filter(|p| p.is_file());
        let driver = locate(
            "EDGEBOT_CHROMEDRIVER",
            "chromedriver",
            "/usr/bin/chromedriver",
        )
        .filter(|p| p.is_file());
        let (Some(chromium), Some(driver_path)) = (chromium, driver) else {
            let missing = "chromium and chromedriver are needed for the admin panel's \
                           browser test (Debian: apt-get install -y chromium chromium-driver; \
                           .ci/run installs them); EDGEBOT_CHROMIUM / EDGEBOT_CHROMEDRIVER \
                           name other paths";
            if std::env::var("EDGEBOT_SKIP_BROWSER").as_deref() == Ok("1") {
                eprintln!("skipped (EDGEBOT_SKIP_BROWSER=1): {missing}");
                return None;
            }
            panic!("{missing}; set EDGEBOT_SKIP_BROWSER=1 to skip this test on purpose");
        };

        let dir = tempfile::tempdir().expect("a temp dir for the browser");
        let port = free_port();
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                dir.path().join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", driver_path.display()));
        let webdriver = format!("http://127.0.0.1:{port}");
        // A guard before the session exists, so a failed start kills the driver too.
        let mut guard = DriverGuard(Some(driver));
        wait_ready(port, &mut guard, dir.path());

        let profile = dir.path().join("profile");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    // Without these Chromium keeps calling out, and this machine's closed
                    // network refuses it until the session start times out.
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = match tokio::time::timeout(
            PATIENCE,
            ClientBuilder::new(connector)
                .capabilities(capabilities)
                .connect(&webdriver),
        )
        .await
        {
            Ok(Ok(client)) => client,
            failed => {
                let log = driver_log(dir.path());
                panic!(
                    "no WebDriver session with {}: {failed:?}\n{log}",
                    chromium.display()
                );
            }
        };
        Some(Browser {
            client,
            base: base.trim_end_matches('/').to_owned(),
            driver: guard.0.take().unwrap(),
            _dir: dir,
        })
    }

    /// Ends the session cleanly (Chromium exits, its profile is flushed); dropping the
    /// browser without it kills everything instead.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Opens `path` (under `base`) and waits for the page to load.
    pub async fn goto(&self, path: &str) {
        let url = self.url(path);
        self.client
            .goto(&url)
            .await
            .unwrap_or_else(|e| panic!("could not open {url}: {e}"));
    }

    /// The path of the page shown now, after any redirects.
    pub async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("the current URL")
            .path()
            .to_owned()
    }

    pub async fn find(&self, selector: &str) -> Element {
        match self.client.find(Locator::Css(selector)).await {
            Ok(element) => element,
            Err(e) => panic!("no {selector} on {}: {e}", self.describe().await),
        }
    }

    pub async fn find_all(&self, selector: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("looking for {selector} failed: {e}"))
    }

    /// Whether `selector` matches anything on the page.
    pub async fn has(&self, selector: &str) -> bool {
        !self.find_all(selector).await.is_empty()
    }

    /// The rendered text of the first element `selector` matches, trimmed.
    pub async fn text(&self, selector: &str) -> String {
        let element = self.find(selector).await;
        element
            .text()
            .await
            .unwrap_or_else(|e| panic!("no text in {selector}: {e}"))
            .trim()
            .to_owned()
    }

    /// Types `value` into the field named `name` of `form`, replacing what was there
    /// (keystrokes, not a script: the panel's CSP allows no scripts and the test should
    /// not lean on the driver bypassing it).
    pub async fn fill(&self, form: &str, name: &str, value: &str) {
        let selector = format!("{form} [name=\"{name}\"]");
        let field = self.find(&selector).await;
        field
            .clear()
            .await
            .unwrap_or_else(|e| panic!("could not clear {selector}: {e}"));
        field
            .send_keys(value)
            .await
            .unwrap_or_else(|e| panic!("could not type into {selector}: {e}"));
    }

    /// Clicks `form`'s submit button and waits until the answer has replaced the page.
    pub async fn submit(&self, form: &str) {
        let old = self.find("html").await;
        let form_element = self.find(form).await;
        let button = form_element
            .find(Locator::Css(
                "button[type=submit], button:not([type]), input[type=submit]",
            ))
            .await
            .unwrap_or_else(|e| panic!("{form} has no submit button: {e}"));
        button
            .click()
            .await
            .unwrap_or_else(|e| panic!("could not click {form}'s submit button: {e}"));
        // The old document's root goes stale once the new one is in.
        let deadline = Instant::now() + PATIENCE;
        while old.tag_name().await.is_ok() {
            assert!(
                Instant::now() < deadline,
                "submitting {form} never left {}",
                self.describe().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The HTTP status of the page shown now, from the Navigation Timing API (WebDriver
    /// itself has no way to tell a 403 page from a 200 one).
    pub async fn status(&self) -> u16 {
        let status = self
            .client
            .execute(
                "return performance.getEntriesByType('navigation')[0].responseStatus",
                vec![],
            )
            .await
            .expect("the page's response status");
        match status.as_u64().and_then(|s| u16::try_from(s).ok()) {
            Some(code) => code,
            None => panic!("no response status for {}: {status}", self.describe().await),
        }
    }

    /// A PNG of the viewport, written to each of `paths` (their folders are created).
    pub async fn screenshot(&self, paths: &[PathBuf]) {
        let png = self.client.screenshot().await.expect("a screenshot");
        for path in paths {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).unwrap();
            }
            std::fs::write(path, &png)
                .unwrap_or_else(|e| panic!("could not write {}: {e}", path.display()));
        }
    }

    /// The value of the cookie `name` as the browser holds it (HttpOnly ones included:
    /// WebDriver sees every cookie of the page).
    pub async fn cookie(&self, name: &str) -> String {
        self.client
            .get_named_cookie(name)
            .await
            .unwrap_or_else(|e| panic!("no cookie {name}: {e}"))
            .value()
            .to_owned()
    }

    /// The URL and the start of the page's text, for failure messages.
    async fn describe(&self) -> String {
        let url = self
            .client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        let source = self.client.source().await.unwrap_or_default();
        let start: String = source.chars().take(2000).collect();
        format!("{url}:\n{start}")
    }
}

/// Kills the driver's process group if the start fails half-way.
struct DriverGuard(Option<Child>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGKILL);
            }
            let _ = child.wait();
        }
    }
}

fn driver_log(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("chromedriver.log")).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(60).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// Waits until chromedriver's `/status` says it is ready for a session.
fn wait_ready(port: u16, guard: &mut DriverGuard, dir: &Path) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some((200, body)) = get_json(addr, "/status")
            && body["value"]["ready"] == true
        {
            return;
        }
        let child = guard.0.as_mut().unwrap();
        if let Some(status) = child.try_wait().expect("chromedriver's status") {
            panic!("chromedriver exited ({status}):\n{}", driver_log(dir));
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver never became ready:\n{}",
            driver_log(dir)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn get_json(addr: SocketAddr, path: &str) -> Option<(u16, Value)> {
    let (status, _, body) = raw(addr, "GET", path, &[], "")?;
    Some((status, serde_json::from_str(&body).ok()?))
}

/// A form POST on a fresh connection, as a browser would send it but without one:
/// `body` is already `application/x-www-form-urlencoded`. Answers the status, the
/// response's header lines and its body; `None` while nothing listens.
pub fn post_form(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, String, String)> {
    let mut headers = headers.to_vec();
    headers.push(("Content-Type", "application/x-www-form-urlencoded"));
    raw(addr, "POST", path, &headers, body)
}

/// One HTTP/1.1 request; the status, the head and the body of its answer.
pub fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, String, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    // chromedriver keeps the connection open despite `Connection: close`, so the body
    // is read by its length rather than to the end of the stream.
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    let mut body = Vec::new();
    match length {
        Some(length) => {
            body.resize(length, 0);
            reader.read_exact(&mut body).ok()?;
        }
        None => {
            reader.read_to_end(&mut body).ok()?;
        }
    }
    Some((status, head, String::from_utf8_lossy(&body).into_owned()))
}
