//! Every number in the configuration has a range. `edgebot check` (the loader `serve`
//! uses too) refuses a value outside it with one line on stderr naming the file, the
//! line, the key and the range, and accepts both ends of it.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `edgebot --config edgebot-test.toml check` in `dir` with `config` as the file and
/// `env` as the only `EDGEBOT_*` variables (the caller's own ones could change the result).
fn check(dir: &Path, config: &str, env: &[(&str, &str)]) -> Output {
    std::fs::write(dir.join("edgebot-test.toml"), config).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_edgebot"));
    command
        .current_dir(dir)
        .args(["--config", "edgebot-test.toml", "check"]);
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("EDGEBOT_") {
            command.env_remove(var);
        }
    }
    command.envs(env.iter().copied());
    command.output().expect("the edgebot binary runs")
}

/// The one line on stderr of a run that must have been refused cleanly (not by a
/// panic), or why it was not.
fn refusal(output: &Output) -> Result<String, String> {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let code = output.status.code();
    if !code.is_some_and(|c| c != 0 && c != 101) || stderr.contains("panicked") {
        return Err(format!("exit {code:?}, stderr: {stderr}"));
    }
    if stderr.lines().count() != 1 {
        return Err(format!("not one line: {stderr}"));
    }
    Ok(stderr)
}

/// `(section, key, range as the error names it, values outside it)`. Every field gets a
/// negative value and a value past each end of its range (where one exists: 0 is the
/// lowest `poll_timeout_secs`); some get one past their Rust type (256 for a `u8`) or
/// past 64 bits; the float gets the non-finite values and one past `f32`.
const OUT_OF_RANGE: &[(&str, &str, &str, &[&str])] = &[
    (
        "telegram",
        "max_connections",
        "1..=100",
        &["0", "101", "-1", "256"],
    ),
    (
        "telegram",
        "poll_timeout_secs",
        "0..=50",
        &["51", "-1", "4294967296"],
    ),
    (
        "telegram",
        "request_timeout_secs",
        "1..=300",
        &["0", "301", "-30"],
    ),
    (
        "telegram",
        "max_body_bytes",
        "1024..=16777216",
        &[
            "0",
            "1023",
            "16777217",
            "-1",
            "9223372036854775807",
            "99999999999999999999",
        ],
    ),
    (
        "storage",
        "session_ttl_secs",
        "1..=604800",
        &["0", "604801", "-600"],
    ),
    ("storage", "cache_mib", "1..=65536", &["0", "65537", "-16"]),
    (
        "limits.inbound",
        "per_second",
        "1..=100",
        &["0", "101", "-1", "-99999999999999999999"],
    ),
    (
        "limits.inbound",
        "burst",
        "1..=100",
        &["0", "101", "-5", "4294967296"],
    ),
    (
        "limits.inbound",
        "notice_cooldown_secs",
        "1..=86400",
        &["0", "86401", "-30"],
    ),
    (
        "limits.outbound",
        "global_per_second",
        "1..=1000",
        &["2000000000", "0", "1001", "-30"],
    ),
    (
        "limits.outbound",
        "private_per_second",
        "1..=30",
        &["0", "31", "-1"],
    ),
    (
        "limits.outbound",
        "group_per_minute",
        "1..=60",
        &["0", "61", "-20"],
    ),
    (
        "models",
        "faq_threshold",
        "0.0..=1.0",
        &[
            "-0.1",
            "1.5",
            "1e40",
            "nan",
            "inf",
            "-inf",
            "2",
            "-1",
            "99999999999999999999",
        ],
    ),
    ("llm", "idle_minutes", "1..=43200", &["0", "43201", "-1"]),
    (
        "llm",
        "history_tokens",
        "100..=1000000",
        &["99", "1000001", "-100"],
    ),
    ("llm", "summary_tokens", "50..=4000", &["49", "4001", "-1"]),
    (
        "llm",
        "draft_interval_ms",
        "100..=10000",
        &["99", "10001", "-500"],
    ),
    (
        "llm",
        "edit_interval_ms",
        "1000..=60000",
        &["999", "60001", "-1500"],
    ),
    (
        "llm",
        "max_concurrent",
        "1..=100000",
        &["0", "100001", "-1", "4294967296"],
    ),
    (
        "llm",
        "spam_threshold",
        "0.0..=1.0",
        &["-0.1", "1.01", "nan", "inf", "2", "-1"],
    ),
    (
        "llm.budgets",
        "guest_daily",
        "0..=1000000000",
        &["1000000001", "-1", "99999999999999999999"],
    ),
    (
        "llm.budgets",
        "guest_monthly",
        "0..=1000000000",
        &["1000000001", "-1"],
    ),
    (
        "llm.budgets",
        "entitled_daily",
        "0..=1000000000",
        &["1000000001", "-1"],
    ),
    (
        "llm.budgets",
        "entitled_monthly",
        "0..=1000000000",
        &["1000000001", "-1"],
    ),
];

/// `(section, key, min, max)`, as `check` prints them back.
const BOUNDS: &[(&str, &str, &str, &str)] = &[
    ("telegram", "max_connections", "1", "100"),
    ("telegram", "poll_timeout_secs", "0", "50"),
    ("telegram", "request_timeout_secs", "1", "300"),
    ("telegram", "max_body_bytes", "1024", "16777216"),
    ("storage", "session_ttl_secs", "1", "604800"),
    ("storage", "cache_mib", "1", "65536"),
    ("limits.inbound", "per_second", "1", "100"),
    ("limits.inbound", "burst", "1", "100"),
    ("limits.inbound", "notice_cooldown_secs", "1", "86400"),
    ("limits.outbound", "global_per_second", "1", "1000"),
    ("limits.outbound", "private_per_second", "1", "30"),
    ("limits.outbound", "group_per_minute", "1", "60"),
    ("models", "faq_threshold", "0.0", "1.0"),
    ("llm", "idle_minutes", "1", "43200"),
    ("llm", "history_tokens", "100", "1000000"),
    ("llm", "summary_tokens", "50", "4000"),
    ("llm", "draft_interval_ms", "100", "10000"),
    ("llm", "edit_interval_ms", "1000", "60000"),
    ("llm", "max_concurrent", "1", "100000"),
    ("llm", "spam_threshold", "0.0", "1.0"),
    ("llm.budgets", "guest_daily", "0", "1000000000"),
    ("llm.budgets", "guest_monthly", "0", "1000000000"),
    ("llm.budgets", "entitled_daily", "0", "1000000000"),
    ("llm.budgets", "entitled_monthly", "0", "1000000000"),
];

/// The file puts the key on line 4, after another key of its table, so that a wrong
/// line shows.
fn file_with(section: &str, key: &str, value: &str) -> String {
    let other = match section {
        "telegram" => "api_url = \"http://127.0.0.1:8081\"",
        "storage" => "data_dir = \"data\"",
        "llm" => "typing = true",
        "llm.budgets" => "entitlement = \"premium\"",
        _ => "enabled = true",
    };
    format!("# written by tests/config_ranges.rs\n[{section}]\n{other}\n{key} = {value}\n")
}

#[test]
fn the_values_found_by_a_new_user_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            file_with("limits.outbound", "global_per_second", "2000000000"),
            "key `limits.outbound.global_per_second`: invalid value: integer `2000000000`, \
             expected an integer in 1..=1000",
        ),
        (
            file_with("telegram", "max_body_bytes", "0"),
            "key `telegram.max_body_bytes`: invalid value: integer `0`, \
             expected an integer in 1024..=16777216",
        ),
    ];
    for (config, message) in cases {
        let err = refusal(&check(dir.path(), &config, &[])).unwrap();
        assert_eq!(err, format!("edgebot: edgebot-test.toml:4:1: {message}\n"));
    }
}

#[test]
fn values_out_of_range_are_refused_with_file_line_key_and_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut wrong = Vec::new();
    for &(section, key, range, values) in OUT_OF_RANGE {
        for value in values {
            let what = format!("{section}.{key} = {value}");
            let output = check(dir.path(), &file_with(section, key, value), &[]);
            let err = match refusal(&output) {
                Ok(err) => err,
                Err(why) => {
                    wrong.push(format!("{what}: {why}"));
                    continue;
                }
            };
            let names_range = err.contains(&format!("expected an integer in {range}"))
                || err.contains(&format!("expected a number in {range}"));
            let named = err.starts_with("edgebot: edgebot-test.toml:4:")
                && err.contains(&format!("key `{section}.{key}`"))
                && names_range;
            if !named {
                wrong.push(format!("{what}: not file, line 4, key and {range}: {err}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn both_ends_of_every_range_pass() {
    let dir = tempfile::tempdir().unwrap();
    for &(section, key, min, max) in BOUNDS {
        for value in [min, max] {
            let output = check(dir.path(), &file_with(section, key, value), &[]);
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success(),
                "{section}.{key} = {value}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(
                stdout.contains(&format!("\n{key} = {value}\n")),
                "{section}.{key} = {value} is the effective setting: {stdout}"
            );
        }
    }
}

#[test]
fn a_wrong_type_names_the_range_too() {
    let dir = tempfile::tempdir().unwrap();
    let output = check(
        dir.path(),
        &file_with("limits.outbound", "group_per_minute", "\"twenty\""),
        &[],
    );
    let err = refusal(&output).unwrap();
    assert!(err.starts_with("edgebot: edgebot-test.toml:4:"), "{err}");
    assert!(err.contains("limits.outbound.group_per_minute"), "{err}");
    assert!(err.contains("1..=60"), "{err}");
}

#[test]
fn a_number_in_the_environment_is_checked_and_the_variable_named() {
    // The only numbers the `EDGEBOT_*` variables carry are the ports of the listen
    // addresses; a port past 65535 must stop `check` as it would stop `serve`.
    let dir = tempfile::tempdir().unwrap();
    for var in ["EDGEBOT_LISTEN", "EDGEBOT_ADMIN_LISTEN"] {
        let output = check(dir.path(), "", &[(var, "127.0.0.1:65536")]);
        let err = refusal(&output).unwrap();
        assert!(
            err.starts_with(&format!("edgebot: environment variable {var}:")),
            "{err}"
        );
        assert!(err.contains("65536"), "{err}");

        let output = check(dir.path(), "", &[(var, "127.0.0.1:65535")]);
        assert!(
            output.status.success(),
            "{var}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn the_configured_store_cache_defaults_to_the_stores_own() {
    let config = edgebot::config::Config::default();
    assert_eq!(
        config.storage.cache_bytes(),
        edgebot::store::DEFAULT_CACHE_BYTES
    );
}

/// `[[services]]` numbers: `(key, range, values outside it, min, max)`.
const SERVICE_NUMBERS: &[(&str, &str, &[&str], &str, &str)] = &[
    (
        "timeout_ms",
        "100..=60000",
        &["99", "60001", "-1"],
        "100",
        "60000",
    ),
    ("retries", "0..=3", &["4", "-1", "256"], "0", "3"),
    ("max_concurrent", "1..=1024", &["0", "1025"], "1", "1024"),
    ("breaker_failures", "1..=100", &["0", "101"], "1", "100"),
    (
        "breaker_cooldown_secs",
        "1..=3600",
        &["0", "3601"],
        "1",
        "3600",
    ),
];

/// A service entry with the key on line 4, between its name and its URL.
fn service_with(key: &str, value: &str) -> String {
    format!(
        "# written by tests/config_ranges.rs\n[[services]]\nname = \"svc\"\n{key} = {value}\nurl = \"http://127.0.0.1:9/handle\"\n"
    )
}

#[test]
fn service_numbers_have_ranges_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut wrong = Vec::new();
    for &(key, range, values, min, max) in SERVICE_NUMBERS {
        for value in values {
            let output = check(dir.path(), &service_with(key, value), &[]);
            match refusal(&output) {
                Ok(err)
                    if err.starts_with("edgebot: edgebot-test.toml:4:")
                        && err.contains(&format!("key `services[0].{key}`"))
                        && err.contains(&format!("expected an integer in {range}")) => {}
                Ok(err) => wrong.push(format!("{key} = {value}: {err}")),
                Err(why) => wrong.push(format!("{key} = {value}: {why}")),
            }
        }
        for value in [min, max] {
            let output = check(dir.path(), &service_with(key, value), &[]);
            let stdout = String::from_utf8_lossy(&output.stdout);
            if !output.status.success() || !stdout.contains(&format!("\n{key} = {value}\n")) {
                wrong.push(format!(
                    "{key} = {value} should pass: {}",
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn services_are_checked_where_they_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[[routes]]\ncommand = \"start\"\nservice = \"profile\"\n",
            "edgebot: edgebot-test.toml:3:1: key `routes[0].service`: no `[[services]]` entry is named `profile`",
        ),
        (
            "[[services]]\nname = \"a\"\nurl = \"http://x/\"\n[[services]]\nname = \"a\"\nurl = \"http://y/\"\n",
            "edgebot: edgebot-test.toml:5:1: key `services[1].name`: a second service named `a`",
        ),
        (
            "[fallback]\nservice = \"nope\"\n",
            "edgebot: edgebot-test.toml:2:1: key `fallback.service`: no `[[services]]` entry is named `nope`",
        ),
        (
            "[[services]]\nname = \"a\"\nurl = \"ftp://x/\"\n",
            "edgebot: edgebot-test.toml:2:1: key `services[0]`: service `a`: `url` `ftp://x/` must start with https:// or http://",
        ),
        (
            "[[services]]\nname = \"a\"\nurl = \"http://x/\"\nheaders_from_env = { \"Authorization\" = \"EDGEBOT_TEST_UNSET_VAR\" }\n",
            "edgebot: edgebot-test.toml: service `a`: header `Authorization` takes its value from `EDGEBOT_TEST_UNSET_VAR`, which is not set",
        ),
    ];
    for (config, expected) in cases {
        let err = refusal(&check(dir.path(), config, &[])).unwrap();
        assert_eq!(err.trim_end(), expected, "for:\n{config}");
    }
    // Set, the secret is used and never printed.
    let config = cases[4].0;
    let output = check(
        dir.path(),
        config,
        &[("EDGEBOT_TEST_UNSET_VAR", "Bearer do-not-print")],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("EDGEBOT_TEST_UNSET_VAR"), "{stdout}");
    assert!(!stdout.contains("do-not-print"), "{stdout}");
}

/// What an entry of an array of tables looks like with `key = value` on line 4, and
/// whatever else it needs to be valid (a personality needs a provider).
type Entry = fn(&str, &str) -> String;

fn provider_with(key: &str, value: &str) -> String {
    format!(
        "# written by tests/config_ranges.rs\n[[llm.providers]]\nname = \"p\"\n{key} = {value}\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n"
    )
}

fn personality_with(key: &str, value: &str) -> String {
    format!(
        "# written by tests/config_ranges.rs\n[[personalities]]\nname = \"friend\"\n{key} = {value}\nprovider = \"p\"\n\n[[llm.providers]]\nname = \"p\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n"
    )
}

fn group_with(key: &str, value: &str) -> String {
    format!(
        "# written by tests/config_ranges.rs\n[[llm.groups]]\nrequire_mention = false\n{key} = {value}\n"
    )
}

/// A number of `[[llm.providers]]`, `[[personalities]]` or `[[llm.groups]]`.
struct EntryNumber {
    entry: Entry,
    /// The entry's key path.
    path: &'static str,
    key: &'static str,
    /// As the error names it.
    range: &'static str,
    outside: &'static [&'static str],
    min: &'static str,
    max: &'static str,
}

const ENTRY_NUMBERS: &[EntryNumber] = &[
    EntryNumber {
        entry: provider_with,
        path: "llm.providers[0]",
        key: "timeout_ms",
        range: "100..=600000",
        outside: &["99", "600001", "-1"],
        min: "100",
        max: "600000",
    },
    EntryNumber {
        entry: provider_with,
        path: "llm.providers[0]",
        key: "idle_timeout_ms",
        range: "100..=600000",
        outside: &["99", "600001", "-30000"],
        min: "100",
        max: "600000",
    },
    EntryNumber {
        entry: provider_with,
        path: "llm.providers[0]",
        key: "max_concurrent",
        range: "1..=10000",
        outside: &["0", "10001", "-16"],
        min: "1",
        max: "10000",
    },
    EntryNumber {
        entry: provider_with,
        path: "llm.providers[0]",
        key: "retries",
        range: "0..=5",
        outside: &["6", "-1", "256"],
        min: "0",
        max: "5",
    },
    EntryNumber {
        entry: provider_with,
        path: "llm.providers[0]",
        key: "input_price",
        range: "0.0..=10000.0",
        outside: &[
            "-0.01",
            "10000.5",
            "nan",
            "inf",
            "-1",
            "99999999999999999999",
        ],
        min: "0.0",
        max: "10000.0",
    },
    EntryNumber {
        entry: provider_with,
        path: "llm.providers[0]",
        key: "output_price",
        range: "0.0..=10000.0",
        outside: &["-0.01", "10001", "-inf"],
        min: "0.0",
        max: "10000.0",
    },
    EntryNumber {
        entry: personality_with,
        path: "personalities[0]",
        key: "temperature",
        range: "0.0..=2.0",
        outside: &["-0.1", "2.01", "3", "nan", "inf"],
        min: "0.0",
        max: "2.0",
    },
    EntryNumber {
        entry: personality_with,
        path: "personalities[0]",
        key: "max_tokens",
        range: "1..=100000",
        outside: &["0", "100001", "-800"],
        min: "1",
        max: "100000",
    },
    EntryNumber {
        entry: group_with,
        path: "llm.groups[0]",
        key: "chat_id",
        range: "-4503599627370495..=4503599627370495",
        outside: &[
            "4503599627370496",
            "-4503599627370496",
            "99999999999999999999",
        ],
        min: "-4503599627370495",
        max: "4503599627370495",
    },
];

#[test]
fn llm_entry_numbers_have_ranges_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut wrong = Vec::new();
    for &EntryNumber {
        entry,
        path,
        key,
        range,
        outside,
        min,
        max,
    } in ENTRY_NUMBERS
    {
        for value in outside {
            let output = check(dir.path(), &entry(key, value), &[]);
            let names_range = |err: &str| {
                err.contains(&format!("expected an integer in {range}"))
                    || err.contains(&format!("expected a number in {range}"))
            };
            match refusal(&output) {
                Ok(err)
                    if err.starts_with("edgebot: edgebot-test.toml:4:")
                        && err.contains(&format!("key `{path}.{key}`"))
                        && names_range(&err) => {}
                Ok(err) => wrong.push(format!("{path}.{key} = {value}: {err}")),
                Err(why) => wrong.push(format!("{path}.{key} = {value}: {why}")),
            }
        }
        for value in [min, max] {
            let output = check(dir.path(), &entry(key, value), &[]);
            let stdout = String::from_utf8_lossy(&output.stdout);
            if !output.status.success() || !stdout.contains(&format!("\n{key} = {value}\n")) {
                wrong.push(format!(
                    "{path}.{key} = {value} should pass: {}{stdout}",
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A provider entry, for the cases that need one to exist.
const PROVIDER_A: &str =
    "[[llm.providers]]\nname = \"a\"\nbase_url = \"http://x/v1\"\nmodel = \"m\"\n";

#[test]
fn llm_names_are_checked_where_they_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let with_a = |rest: &str| format!("{PROVIDER_A}{rest}");
    let cases = [
        (
            "[[routes]]\ncommand = \"ask\"\nllm = \"friend\"\n".to_owned(),
            "edgebot: edgebot-test.toml:3:1: key `routes[0].llm`: no `[[personalities]]` entry is named `friend`",
        ),
        (
            "[fallback]\nllm = \"friend\"\n".to_owned(),
            "edgebot: edgebot-test.toml:2:1: key `fallback.llm`: no `[[personalities]]` entry is named `friend`",
        ),
        (
            with_a("[[llm.providers]]\nname = \"a\"\nbase_url = \"http://y/v1\"\nmodel = \"m\"\n"),
            "edgebot: edgebot-test.toml:6:1: key `llm.providers[1].name`: a second provider named `a`",
        ),
        (
            "[[llm.providers]]\nbase_url = \"http://x/v1\"\nmodel = \"m\"\nname = \"Big A\"\n".to_owned(),
            "edgebot: edgebot-test.toml:4:1: key `llm.providers[0].name`: provider name `Big A`: 1 to 32 of a-z, 0-9, `_` and `-`",
        ),
        (
            "[llm]\nfallback = [\"a\", \"nope\"]\n\n".to_owned() + PROVIDER_A,
            "edgebot: edgebot-test.toml:2:18: key `llm.fallback[1]`: no `[[llm.providers]]` entry is named `nope`",
        ),
        (
            "[[personalities]]\nname = \"friend\"\nprovider = \"nope\"\n".to_owned(),
            "edgebot: edgebot-test.toml:3:1: key `personalities[0].provider`: no `[[llm.providers]]` entry is named `nope`",
        ),
        (
            with_a("[[personalities]]\nname = \"friend\"\nprovider = \"a\"\n[[personalities]]\nname = \"friend\"\nprovider = \"a\"\n"),
            "edgebot: edgebot-test.toml:9:1: key `personalities[1].name`: a second personality named `friend`",
        ),
        (
            with_a("[[personalities]]\nprovider = \"a\"\nname = \"my friend\"\n"),
            "edgebot: edgebot-test.toml:7:1: key `personalities[0].name`: personality name `my friend`: 1 to 32 of a-z, 0-9, `_` and `-`",
        ),
        (
            "[[llm.groups]]\nchat_id = -100\n[[llm.groups]]\nchat_id = -100\n".to_owned(),
            "edgebot: edgebot-test.toml:4:1: key `llm.groups[1].chat_id`: a second `[[llm.groups]]` entry for chat -100",
        ),
        (
            "[[routes]]\ncommand = \"m\"\nhandler = \"mode\"\n".to_owned(),
            "edgebot: edgebot-test.toml:3:1: key `routes[0].handler`: `mode` works on conversations with a personality, and no `[[personalities]]` entry exists",
        ),
        (
            "[[routes]]\ncommand = \"ask\"\nllm = \"friend\"\nservice = \"svc\"\n".to_owned(),
            "edgebot: edgebot-test.toml:2:1: key `routes[0]`: a route takes one of `handler`, `service`, `llm` or `reply` (with `keyboard`, `reply_to_message`)",
        ),
        (
            "[[llm.providers]]\nname = \"a\"\nbase_url = \"x\"\nmodel = \"m\"\n".to_owned(),
            "edgebot: edgebot-test.toml:2:1: key `llm.providers[0]`: provider `a`: `base_url` `x` must start with https:// or http://",
        ),
        (
            "[[llm.providers]]\nname = \"a\"\nkind = \"gemini\"\nbase_url = \"http://x/v1\"\nmodel = \"m\"\n".to_owned(),
            "edgebot: edgebot-test.toml:3:1: key `llm.providers[0].kind`: unknown variant `gemini`, expected `openai` or `anthropic`",
        ),
        (
            with_a("api_key_env = \"EDGEBOT_TEST_UNSET_LLM_KEY\"\n"),
            "edgebot: edgebot-test.toml: llm provider `a`: `api_key_env` names `EDGEBOT_TEST_UNSET_LLM_KEY`, which is not set",
        ),
    ];
    let mut wrong = Vec::new();
    for (config, expected) in &cases {
        match refusal(&check(dir.path(), config, &[])) {
            Ok(err) if err.trim_end() == *expected => {}
            Ok(err) => wrong.push(format!("for:\n{config}\n  got: {err}  want: {expected}")),
            Err(why) => wrong.push(format!("for:\n{config}\n  {why}")),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // Set, the key is used and never printed; `check` shows the variable's name.
    let config = &cases[cases.len() - 1].0;
    let output = check(
        dir.path(),
        config,
        &[("EDGEBOT_TEST_UNSET_LLM_KEY", "sk-do-not-print")],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("api_key_env = \"EDGEBOT_TEST_UNSET_LLM_KEY\""),
        "{stdout}"
    );
    assert!(!stdout.contains("do-not-print"), "{stdout}");

    // A whole conversation setup passes.
    let config = with_a(
        "[[personalities]]\nname = \"friend\"\nprovider = \"a\"\n\n[[routes]]\ncommand = \"ask\"\nllm = \"friend\"\n\n[[routes]]\ncommand = \"m\"\nhandler = \"mode\"\n\n[fallback]\nllm = \"friend\"\n",
    );
    let output = check(dir.path(), &config, &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
