//! The admin panel (issue 12) as an operator uses it, in a real headless Chromium:
//! the real `edgebot fake-api` and `edgebot serve` as processes, accounts made with
//! `edgebot admin add`, users who wrote to the bot through the fake, and then the
//! panel's pages and forms as `/work/panel-contract.md` describes them — login, the
//! dashboard against the admin API's numbers, search, a ban that the bot then honours,
//! the audit trail, redacted settings, CSRF and role refusals, logout.
//!
//! Screenshots of every page go to `target/panel-screenshots/`; with
//! `EDGEBOT_UPDATE_SCREENSHOTS=1` also to `docs/screenshots/` for the README.
//! Needs `chromium` and `chromedriver` (see `support/browser.rs`).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

// Shared with other test crates; this one uses part of it.
#[allow(dead_code)]
#[path = "support/binary.rs"]
mod binary;
#[path = "support/browser.rs"]
mod browser;
#[path = "support/fake_process.rs"]
mod fake_process;

use binary::{Running, edgebot, free_port};
use browser::Browser;

const BOT_TOKEN: &str = "123456:PANEL-browser-bot-token";
const ADMIN_TOKEN: &str = "panel-admin-api-token-3f9c2e";
const OWNER: (&str, &str) = ("alice", "correct horse battery");
const VIEWER: (&str, &str) = ("victor", "viewer password 42");
/// Two cores shared with other builds: model loading and Chromium both take a while.
const PATIENCE: Duration = Duration::from_secs(90);

/// The users who write to the bot: id, first name, username.
const USERS: [(i64, &str, &str); 3] = [
    (1001, "Mia", "mia_k"),
    (1002, "Noah", "noah_r"),
    (1003, "Olga", "olga_v"),
];
/// The one the operator finds and bans.
const TARGET: (i64, &str, &str) = USERS[1];

/// Fails the test if the process already exited, with what it wrote to stderr.
fn assert_alive(running: &mut Running, log: &Path) {
    if let Some(status) = running.exited() {
        let mut stderr = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(mut pipe) = running.child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        panic!("{} exited early ({status}): {stderr}", running.name);
    }
}

fn start_fake(dir: &Path) -> (Running, SocketAddr) {
    let (fake, addr, first) = fake_process::start(dir, PATIENCE);
    assert!(first.contains(&addr.to_string()), "fake-api said {first:?}");
    (fake, addr)
}

/// A config file naming everything the CLI and `serve` must agree on: the same store,
/// the fake as Telegram, the admin listener and its token.
fn write_config(dir: &Path, api: SocketAddr, admin: SocketAddr) -> PathBuf {
    let path = dir.join("edgebot.toml");
    let config = format!(
        "[bot]\ntoken = \"{BOT_TOKEN}\"\n\n\
         [telegram]\napi_url = \"http://{api}\"\n\n\
         [admin]\nlisten = \"{admin}\"\ntoken = \"{ADMIN_TOKEN}\"\n\n\
         [storage]\ndata_dir = \"{}\"\n\n\
         # The fake is local: Telegram's flood limits would only slow the test.\n\
         [limits.outbound]\nenabled = false\n",
        dir.join("data").display()
    );
    std::fs::write(&path, config).unwrap();
    path
}

/// `edgebot admin add NAME --role ROLE --password-stdin --config CFG`, as an operator
/// runs it before starting the bot (the CLI and `serve` cannot share the store file).
fn add_account(config: &Path, (name, password): (&str, &str), role: &str) {
    let mut child = edgebot()
        .args(["admin", "add", name, "--role", role, "--password-stdin"])
        .arg("--config")
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("edgebot admin add starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "edgebot admin add {name} failed ({}): {stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!("account {name} added (role {role})")),
        "{stdout}"
    );
}

/// The running bot and what the test talks to.
struct Bot {
    serve: Running,
    fake: Running,
    api: SocketAddr,
    admin: SocketAddr,
    log: PathBuf,
}

impl Bot {
    fn alive(&mut self) {
        assert_alive(&mut self.serve, &self.log);
        assert_alive(&mut self.fake, Path::new("/nonexistent"));
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The admin API, with its bearer token.
    fn api_get(&self, path: &str) -> Value {
        let bearer = format!("Bearer {ADMIN_TOKEN}");
        let (status, body) = binary::http(
            self.admin,
            "GET",
            path,
            &[("Authorization", bearer.as_str())],
            None,
        )
        .unwrap_or_else(|| panic!("the admin listener does not answer {path}"));
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    fn user(&self, id: i64) -> Value {
        self.api_get(&format!("/api/v1/users/{id}"))
    }

    /// A user sends `text` to the bot.
    fn push(&self, (id, first_name, username): (i64, &str, &str), text: &str) {
        let update = json!({"text": text,
            "from": {"id": id, "first_name": first_name, "username": username,
                     "language_code": "en"}});
        let (status, body) = binary::http(self.api, "POST", "/_fake/updates", &[], Some(&update))
            .expect("the fake answers");
        assert_eq!(status, 200, "{body}");
    }

    /// The fake's sequence number of the last call the bot made.
    fn last_seq(&self) -> i64 {
        let (_, calls) =
            binary::http(self.api, "GET", "/_fake/calls", &[], None).expect("the fake answers");
        calls["last_seq"].as_i64().unwrap_or(0)
    }

    /// The `sendMessage` calls to `chat` after `since`.
    fn sent_to(&self, chat: i64, since: i64) -> Vec<Value> {
        let path = format!("/_fake/calls?method=sendMessage&chat_id={chat}&since={since}");
        let (status, calls) =
            binary::http(self.api, "GET", &path, &[], None).expect("the fake answers");
        assert_eq!(status, 200, "{calls}");
        calls["calls"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until the bot has sent `chat` a message after `since`.
    async fn wait_for_reply(&mut self, chat: i64, since: i64) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(call) = self.sent_to(chat, since).into_iter().next() {
                return call;
            }
            self.alive();
            assert!(
                Instant::now() < deadline,
                "no reply to {chat} within {PATIENCE:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Where a page's screenshot goes: always the build's folder, and the README's when
/// asked for.
fn shots(name: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = vec![root.join(format!("target/panel-screenshots/{name}.png"))];
    if std::env::var("EDGEBOT_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        paths.push(root.join(format!("docs/screenshots/{name}.png")));
    }
    paths
}

async fn log_in(browser: &Browser, (name, password): (&str, &str)) {
    browser.goto("/login").await;
    browser.fill("form#login", "username", name).await;
    browser.fill("form#login", "password", password).await;
    browser.submit("form#login").await;
    assert_eq!(
        browser.path().await,
        "/",
        "logging in as {name} did not land on the dashboard"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_manages_users_in_the_panel() {
    let dir = tempfile::tempdir().unwrap();
    let (fake, api) = start_fake(dir.path());
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = write_config(dir.path(), api, admin);
    add_account(&config, OWNER, "owner");
    add_account(&config, VIEWER, "viewer");

    let log = dir.path().join("serve.log");
    let child = edgebot()
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("EDGEBOT_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("edgebot serve starts");
    let mut bot = Bot {
        serve: Running {
            name: "edgebot serve",
            child,
        },
        fake,
        api,
        admin,
        log,
    };

    // Three people start the bot; each gets the welcome, so each is in the store.
    for user in USERS {
        bot.push(user, "/start");
    }
    for (id, first_name, _) in USERS {
        let welcome = bot.wait_for_reply(id, 0).await;
        let text = welcome["params"]["text"].as_str().unwrap_or_default();
        assert!(text.contains(first_name), "{welcome}");
    }

    let Some(browser) = Browser::start(&format!("http://{admin}")).await else {
        return;
    };

    // Not logged in: the panel sends you to the login page.
    browser.goto("/").await;
    assert_eq!(browser.path().await, "/login");
    assert!(browser.has("form#login button[type=submit]").await);
    browser.screenshot(&shots("login")).await;

    browser.goto("/login").await;
    browser.fill("form#login", "username", OWNER.0).await;
    browser
        .fill("form#login", "password", "not the password")
        .await;
    browser.submit("form#login").await;
    assert_eq!(browser.status().await, 401);
    let error = browser.text("p.error[role=alert]").await;
    assert!(
        error.contains("wrong name, password or code"),
        "the login refusal says {error:?}"
    );

    log_in(&browser, OWNER).await;
    let stats = bot.api_get("/api/v1/stats");
    let total = stats["users"]["total"].as_u64().expect("users.total");
    assert_eq!(total, USERS.len() as u64, "{stats}");
    assert_eq!(browser.text("#users-total").await, total.to_string());
    browser.screenshot(&shots("dashboard")).await;

    // Find one user by username: exactly that row.
    let (target, _, target_username) = TARGET;
    browser.goto("/users").await;
    browser.fill("form#user-search", "q", target_username).await;
    browser.submit("form#user-search").await;
    let rows = browser.find_all("table#users tr[data-user-id]").await;
    assert_eq!(
        rows.len(),
        1,
        "a search for {target_username} matched {} rows",
        rows.len()
    );
    let row_id = rows[0].attr("data-user-id").await.unwrap();
    assert_eq!(row_id.as_deref(), Some(target.to_string().as_str()));
    browser.screenshot(&shots("users")).await;

    let link = browser
        .find(&format!(
            "tr[data-user-id=\"{target}\"] a[href=\"/users/{target}\"]"
        ))
        .await;
    link.click().await.expect("the user's link opens");
    let deadline = Instant::now() + PATIENCE;
    while browser.path().await != format!("/users/{target}") {
        assert!(Instant::now() < deadline, "the user's page never opened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(browser.text("#user-status").await, "active");
    browser.screenshot(&shots("user")).await;

    // Ban them from the panel: the page, the admin API and the bot all agree.
    browser.submit("form#ban").await;
    assert_eq!(browser.path().await, format!("/users/{target}"));
    assert_eq!(browser.text("#user-status").await, "banned");
    assert!(
        browser.find("p.notice").await.is_displayed().await.unwrap(),
        "no notice after the ban"
    );
    let user = bot.user(target);
    assert_eq!(user["status"], "banned", "{user}");

    // A banned user's message is still counted when handled (the guard records the
    // sighting), so the count going up proves the update was handled; the reply, had
    // there been one, is committed in that same write. A later update from someone
    // else, answered, gives the sender time to have sent anything queued.
    let messages_before = user["message_count"].as_u64().expect("message_count");
    let since = bot.last_seq();
    bot.push(TARGET, "hello? anyone?");
    let deadline = Instant::now() + PATIENCE;
    while bot.user(target)["message_count"].as_u64() != Some(messages_before + 1) {
        bot.alive();
        assert!(
            Instant::now() < deadline,
            "the banned user's message was never handled:\n{}",
            bot.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let other = USERS[2];
    bot.push(other, "/help");
    bot.wait_for_reply(other.0, since).await;
    let to_banned = bot.sent_to(target, since);
    assert!(
        to_banned.is_empty(),
        "the bot answered a banned user: {to_banned:?}"
    );

    browser.goto("/events").await;
    assert!(browser.has("form#event-filter").await);
    assert!(browser.has("table#events").await);
    browser.screenshot(&shots("events")).await;

    // The ban is in the audit trail, by alice, naming the user.
    browser.goto("/audit").await;
    let mut found = false;
    for row in browser.find_all("table#audit tr").await {
        let cells = row.find_all(fantoccini::Locator::Css("td")).await.unwrap();
        let mut texts = Vec::new();
        for cell in cells {
            texts.push(cell.text().await.unwrap().trim().to_owned());
        }
        // time, account, action, target, address
        if texts.len() >= 4
            && texts[1] == OWNER.0
            && texts[2].contains("ban")
            && !texts[2].contains("unban")
            && texts[3].contains(&target.to_string())
        {
            found = true;
        }
    }
    assert!(
        found,
        "no ban of {target} by {} in the audit table:\n{}",
        OWNER.0,
        browser.text("table#audit").await
    );
    browser.screenshot(&shots("audit")).await;

    browser.goto("/settings").await;
    let settings = browser.text("pre#config").await;
    assert!(settings.contains("<redacted>"), "{settings}");
    assert!(!settings.contains(ADMIN_TOKEN), "the admin token is shown");
    assert!(!settings.contains(BOT_TOKEN), "the bot token is shown");
    browser.screenshot(&shots("settings")).await;

    browser.goto("/accounts").await;
    let accounts = browser.text("table#accounts").await;
    assert!(
        accounts.contains(OWNER.0) && accounts.contains(VIEWER.0),
        "{accounts}"
    );
    assert!(browser.has("form#add-account").await);
    browser.screenshot(&shots("accounts")).await;

    // The session cookie replayed without the form's CSRF token changes nothing.
    let session = browser.cookie("edgebot_session").await;
    let cookie = format!("edgebot_session={session}");
    let (status, _, body) = browser::post_form(
        admin,
        &format!("/users/{target}/unban"),
        &[("Cookie", cookie.as_str())],
        "",
    )
    .expect("the admin listener answers");
    assert_eq!(status, 403, "an unban without its CSRF token: {body}");
    assert!(body.contains("CSRF"), "{body}");
    assert_eq!(bot.user(target)["status"], "banned");

    // Logging out ends the session in the store, not only in the browser.
    browser.goto("/").await;
    browser.submit("form#logout").await;
    assert_eq!(browser.path().await, "/login");
    browser.goto("/").await;
    assert_eq!(browser.path().await, "/login");
    let (status, head, _) = browser::raw(admin, "GET", "/", &[("Cookie", cookie.as_str())], "")
        .expect("the admin listener answers");
    assert_eq!(
        status, 303,
        "the old session still opens the panel:\n{head}"
    );

    // A viewer may look but not unban.
    log_in(&browser, VIEWER).await;
    browser.goto(&format!("/users/{target}")).await;
    assert_eq!(browser.text("#user-status").await, "banned");
    browser.submit("form#unban").await;
    assert_eq!(browser.status().await, 403);
    let error = browser.text("p.error").await;
    assert!(
        error.contains("editor"),
        "the viewer's refusal says {error:?}"
    );
    assert_eq!(bot.user(target)["status"], "banned");

    browser.close().await;
    bot.alive();
}
