//! `edgebot fake-api` as a process, for the tests that drive the bot over HTTP only: a
//! free loopback port, and the wait for its start-up line rather than for the port.

use super::binary::{Running, edgebot, free_port};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

/// Starts the fake in `dir`; returns it, its address and the line it printed first.
/// Fails the test, with what the process wrote to stderr, if it exits instead.
pub fn start(dir: &Path, patience: Duration) -> (Running, SocketAddr, String) {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut child = edgebot()
        .current_dir(dir)
        .args(["fake-api", "--listen", &addr.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("edgebot fake-api starts");
    let stdout = child.stdout.take().expect("its stdout is piped");
    let mut fake = Running {
        name: "edgebot fake-api",
        child,
    };
    let (lines, line) = mpsc::channel();
    std::thread::spawn(move || {
        let mut first = String::new();
        let _ = BufReader::new(stdout).read_line(&mut first);
        let _ = lines.send(first);
    });
    let first = line.recv_timeout(patience).unwrap_or_default();
    if let Some(status) = fake.exited() {
        let mut stderr = String::new();
        if let Some(mut pipe) = fake.child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        panic!("edgebot fake-api exited early ({status}): {stderr}");
    }
    (fake, addr, first)
}
