//! The admin panel's pages over real HTTP on loopback, signed in, with 100,000 users in
//! a real redb file: what a page costs the person waiting for it, from request to the
//! last byte. The bar is a page of users in 50 ms or less; `baseline_health`
//! (the same listener's `/health`) is the floor measured beside it.
//!
//! `cargo bench --bench panel`; the users are written once per run (a few seconds).

use criterion::{Criterion, criterion_group, criterion_main};
use edgebot::app::runtime::Sending;
use edgebot::auth::{self, Actor};
use edgebot::botapi::Client;
use edgebot::calendar::UnixSecs;
use edgebot::config::{Config, Secret};
use edgebot::http::serve_admin;
use edgebot::store::Store;
use edgebot::store::records::{AdminRole, Profile, UserDelta};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const USERS: i64 = 100_000;
const PASSWORD: &str = "a long enough password";

/// A keep-alive HTTP/1.1 connection that sends the session cookie.
struct Browser {
    reader: BufReader<TcpStream>,
    addr: SocketAddr,
    cookie: String,
}

impl Browser {
    fn connect(addr: SocketAddr, cookie: String) -> Browser {
        let stream = TcpStream::connect(addr).expect("the listener");
        stream.set_nodelay(true).unwrap();
        Browser {
            reader: BufReader::new(stream),
            addr,
            cookie,
        }
    }

    /// Sends one request and reads the whole answer; returns the status and body length.
    fn send(
        &mut self,
        method: &str,
        path: &str,
        body: &str,
    ) -> (u16, Vec<(String, String)>, usize) {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nCookie: edgebot_session={}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            self.cookie,
            body.len()
        );
        self.reader.get_mut().write_all(request.as_bytes()).unwrap();
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line).unwrap();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let mut headers = Vec::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            let name = name.to_ascii_lowercase();
            if name == "content-length" {
                length = value.trim().parse().unwrap();
            }
            headers.push((name, value.trim().to_owned()));
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        (status, headers, length)
    }

    fn get(&mut self, path: &str) -> usize {
        let (status, _, length) = self.send("GET", path, "");
        assert_eq!(status, 200, "{path}");
        length
    }
}

async fn start(dir: &std::path::Path) -> SocketAddr {
    let store = Store::open(dir).unwrap();
    store
        .write(|t| {
            let now = UnixSecs::now();
            for id in 1..=USERS {
                let mut delta = UserDelta::new(id, UnixSecs(now.get() - id * 30));
                delta.profile = Some(Profile {
                    username: Some(format!("user{id}")),
                    first_name: format!("Name {id}"),
                    last_name: Some("Benchmark".into()),
                    language_code: Some("en".into()),
                });
                t.put_user(&delta.apply(None))?;
            }
            Ok(())
        })
        .await
        .unwrap();
    auth::add_account(
        &store,
        "olga",
        AdminRole::Owner,
        PASSWORD.into(),
        &Actor::cli(),
    )
    .await
    .unwrap();
    let config = Config::default();
    // Nothing is sent: the sender points at the discard port.
    let client = Client::new(
        "http://127.0.0.1:9",
        &Secret::new("1:bench"),
        Duration::from_secs(1),
    )
    .unwrap();
    let sending = Sending::start(&config, store, client).unwrap();
    let state = sending.admin_state(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = edgebot::shutdown::channel();
    tokio::spawn(serve_admin(listener, state, stopped));
    // The listener runs until the process ends.
    std::mem::forget(stop);
    addr
}

fn sign_in(addr: SocketAddr) -> String {
    let mut anonymous = Browser::connect(addr, String::new());
    let (status, headers, _) = anonymous.send(
        "POST",
        "/login",
        &format!("username=olga&password={}", PASSWORD.replace(' ', "+")),
    );
    assert_eq!(status, 303);
    let cookie = headers
        .iter()
        .find(|(name, _)| name == "set-cookie")
        .map(|(_, value)| value.clone())
        .expect("a session cookie");
    cookie
        .strip_prefix("edgebot_session=")
        .and_then(|rest| rest.split(';').next())
        .unwrap()
        .to_owned()
}

fn pages(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let addr = runtime.block_on(start(dir.path()));
    let cookie = sign_in(addr);
    let mut browser = Browser::connect(addr, cookie);
    let mut group = c.benchmark_group("panel_100k_users");
    group.sample_size(30);
    // The floor: the same listener answering its smallest request, in the same run.
    for (name, path) in [
        ("baseline_health", "/health"),
        ("users_first_page", "/users"),
        ("users_page_deep", "/users?after=90000"),
        ("users_search_name", "/users?q=user1999"),
        ("users_search_id", "/users?q=99999"),
        ("users_filter_banned", "/users?status=banned"),
        ("user", "/users/50000"),
        ("dashboard", "/"),
        ("events", "/events"),
        ("audit", "/audit"),
    ] {
        group.bench_function(name, |b| b.iter(|| browser.get(path)));
    }
    group.finish();
}

criterion_group!(benches, pages);
criterion_main!(benches);
