//! The real binary as a process: a scripted `chat` session through stdin and stdout,
//! state that survives a restart, and one-line errors for bad input.

mod common;

use common::{edgebot, stdout};
use std::process::Command;

#[test]
fn a_scripted_chat_remembers_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let chat = ["chat", "--name", "Ada", "--user-id", "42", "--lang", "de"];
    let first = stdout(&edgebot(
        dir.path(),
        &chat,
        "/start\n/help\n/profile\n/about\n1\nwhat is this\n/quit\n/profile\n",
    ));
    assert!(
        first.contains("Welcome, Ada! You are registered."),
        "{first}"
    );
    assert!(
        first.contains("/profile — What the bot knows about you"),
        "{first}"
    );
    assert!(first.contains("Messages sent: 3"), "{first}");
    assert!(first.contains("Language: de"), "{first}");
    assert!(first.contains("[1] Yes  [2] Not really"), "{first}");
    assert!(
        first.contains("Thanks for telling me, Ada!"),
        "the button press: {first}"
    );
    assert!(first.contains("I did not understand that"), "{first}");
    assert_eq!(
        first.matches("Your profile").count(),
        1,
        "/quit stops reading: {first}"
    );
    assert!(dir.path().join("data/edgebot.redb").exists());

    let second = stdout(&edgebot(dir.path(), &chat, "/start\n/profile\n"));
    assert!(second.contains("Welcome back, Ada!"), "{second}");
    assert!(
        second.contains("Messages sent: 7"),
        "4 earlier texts + 2 now + /about: {second}"
    );

    let export = stdout(&edgebot(dir.path(), &["users", "export"], ""));
    let user: serde_json::Value = serde_json::from_str(export.trim()).unwrap();
    assert_eq!(user["id"], 42);
    assert_eq!(user["first_name"], "Ada");
    assert_eq!(user["language_code"], "de");
    assert_eq!(user["message_count"], 7);
    assert_eq!(user["status"], "active");
    assert_eq!(user["role"], "user");
    for field in [
        "username",
        "last_name",
        "first_seen",
        "last_seen",
        "referrer",
    ] {
        assert!(user.get(field).is_some(), "missing {field}");
    }
}

#[test]
fn a_referral_link_credits_the_referrer() {
    let dir = tempfile::tempdir().unwrap();
    stdout(&edgebot(
        dir.path(),
        &["chat", "--user-id", "1", "--name", "Ref"],
        "/start\n",
    ));
    stdout(&edgebot(
        dir.path(),
        &["chat", "--user-id", "2", "--name", "New"],
        "/start ref_1\n",
    ));
    let profile = stdout(&edgebot(
        dir.path(),
        &["chat", "--user-id", "1"],
        "/profile\n",
    ));
    assert!(profile.contains("Referrals: 1"), "{profile}");
    let shown = stdout(&edgebot(dir.path(), &["users", "show", "2"], ""));
    assert!(shown.contains("\"referrer\": 1"), "{shown}");
}

#[test]
fn init_then_check_prints_redacted_settings() {
    let dir = tempfile::tempdir().unwrap();
    stdout(&edgebot(dir.path(), &["init"], ""));
    assert!(dir.path().join("edgebot.toml").exists());
    let again = edgebot(dir.path(), &["init"], "");
    assert!(!again.status.success(), "init refuses to overwrite");

    let mut check = Command::new(env!("CARGO_BIN_EXE_edgebot"));
    check
        .current_dir(dir.path())
        .env("EDGEBOT_TOKEN", "123:TOPSECRET")
        .arg("check");
    let printed = stdout(&check.output().unwrap());
    assert!(printed.contains("valid"), "{printed}");
    assert!(printed.contains("<redacted>"), "{printed}");
    assert!(!printed.contains("TOPSECRET"), "{printed}");
}

#[test]
fn errors_are_one_line_and_a_failure_exit() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[limits.inbound]\nburst = \"five\"\n",
    )
    .unwrap();
    let out = edgebot(dir.path(), &["--config", "bad.toml", "check"], "");
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("edgebot: bad.toml:2:"), "{err}");
    assert!(err.contains("limits.inbound.burst"), "{err}");

    let out = edgebot(dir.path(), &["--config", "missing.toml", "check"], "");
    assert!(!out.status.success());
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("missing.toml")
    );

    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/edgebot.redb"), vec![7u8; 8192]).unwrap();
    let out = edgebot(dir.path(), &["users", "list"], "");
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("corrupt"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn replay_prints_the_calls_the_bot_would_make() {
    let dir = tempfile::tempdir().unwrap();
    let recording = [
        r#"{"update_id":1,"message":{"message_id":1,"date":1,"chat":{"id":5,"type":"private"},"from":{"id":5,"first_name":"Ann"},"text":"/start","entities":[{"type":"bot_command","offset":0,"length":6}]}}"#,
        "not json at all",
        r#"{"update_id":2,"callback_query":{"id":"q1","from":{"id":5,"first_name":"Ann"},"data":"about:yes","message":{"message_id":2,"date":1,"chat":{"id":5,"type":"private"}}}}"#,
        r#"{"update_id":3,"poll":{"id":"p"}}"#,
    ];
    std::fs::write(dir.path().join("updates.jsonl"), recording.join("\n")).unwrap();
    let out = stdout(&edgebot(dir.path(), &["replay", "updates.jsonl"], ""));
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(lines[0]["method"], "sendMessage");
    assert_eq!(lines[0]["params"]["chat_id"], 5);
    assert!(
        lines[0]["params"]["text"]
            .as_str()
            .unwrap()
            .starts_with("Welcome, Ann!")
    );
    assert_eq!(
        lines[1]["line"], 2,
        "the unparsable line is reported: {out}"
    );
    let mut second: Vec<&str> = lines[2..]
        .iter()
        .map(|l| l["method"].as_str().unwrap())
        .collect();
    second.sort_unstable();
    assert_eq!(second, ["answerCallbackQuery", "sendMessage"]);
    assert!(
        !dir.path().join("data").exists(),
        "replay leaves the real store alone"
    );
}

#[test]
fn admin_accounts_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let admin = |args: &[&str], stdin: &str| {
        let mut full = vec!["admin"];
        full.extend_from_slice(args);
        edgebot(dir.path(), &full, stdin)
    };
    let added = stdout(&admin(
        &["add", "alice", "--role", "owner", "--password-stdin"],
        "correct horse battery\n",
    ));
    assert_eq!(added.trim(), "account alice added (role owner)");
    stdout(&admin(
        &["add", "vic", "--role", "viewer", "--password-stdin"],
        "another fine password\n",
    ));
    let listed = stdout(&admin(&["list"], ""));
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(listed.contains("alice") && listed.contains("owner") && listed.contains("totp=off"));
    assert!(!listed.contains("argon2"), "no hash is printed: {listed}");

    let totp = stdout(&admin(&["totp", "vic"], ""));
    assert!(
        totp.contains("otpauth://totp/edgebot:vic?secret="),
        "{totp}"
    );
    assert!(stdout(&admin(&["list"], "")).contains("totp=on"));
    let changed = stdout(&admin(
        &["passwd", "vic", "--password-stdin"],
        "a brand new password\n",
    ));
    assert!(changed.contains("password of vic changed"), "{changed}");
    assert!(stdout(&admin(&["remove", "vic"], "")).contains("account vic removed"));

    // Every refusal is one line and a failure exit, and changes nothing.
    for (args, stdin, says) in [
        (
            &["add", "bob", "--role", "viewer", "--password-stdin"][..],
            "short\n",
            "10 to 256 characters",
        ),
        (
            &["add", "alice", "--role", "viewer", "--password-stdin"][..],
            "long enough password\n",
            "exists already",
        ),
        (
            &["add", "Bob!", "--role", "viewer", "--password-stdin"][..],
            "long enough password\n",
            "account names",
        ),
        (&["remove", "alice"][..], "", "last owner"),
        (&["remove", "nobody"][..], "", "no account named `nobody`"),
        (
            &["passwd", "nobody", "--password-stdin"][..],
            "long enough password\n",
            "no account named",
        ),
    ] {
        let out = admin(args, stdin);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("edgebot: ") && err.contains(says),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    let out = admin(
        &["add", "bob", "--role", "god", "--password-stdin"],
        "long enough password\n",
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("one of viewer, editor, owner")
    );
    assert_eq!(stdout(&admin(&["list"], "")).lines().count(), 1);
}
