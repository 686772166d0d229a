//! Running the real binary from integration tests: one place for spawning it with a
//! script on stdin and for reading a successful run's output.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `edgebot ARGS` in `dir` with `stdin` piped in. The caller's own `EDGEBOT_*`
/// settings are removed so that they cannot leak into a test.
pub fn edgebot(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgebot"))
        .current_dir(dir)
        .env_remove("EDGEBOT_DATA_DIR")
        .env_remove("EDGEBOT_TOKEN")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the edgebot binary runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// The standard output of a run that must have succeeded.
pub fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}
