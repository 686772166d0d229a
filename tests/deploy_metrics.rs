//! The monitoring files of `deploy/` name only metrics that edgebot really exports: the
//! Grafana dashboard (`deploy/grafana/edgebot-dashboard.json`) and the Prometheus alerting
//! rules (`deploy/prometheus/edgebot-alerts.yml`) are read, every series name in their
//! PromQL is extracted, and each must be a family declared by the `# TYPE` lines of a real
//! `/metrics` scrape, with the suffix its type gives it (`_total` for a counter, `_bucket`,
//! `_sum`, `_count` for a histogram, none for a gauge).
//!
//! prometheus-client leaves a family with no sample out of the exposition altogether (no
//! `# TYPE` line either), so the scrape is taken from `serve` running in this process
//! against the fake Bot API, after a little traffic has given every labelled family a
//! sample: a command (a handler and a `sendMessage`), a plain text (a model inference), a
//! failing service call, and two questions to the fake LLM, the second over budget.

#[path = "support/loopback.rs"]
mod loopback;

use edgebot::config::{Config, Secret};
use edgebot::fake::botapi::{FakeBotApi, FakeConfig};
use edgebot::fake::llm::{FakeLlm, FakeLlmConfig};
use edgebot::shutdown;
use loopback::{free_port, request};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

const DASHBOARD: &str = "deploy/grafana/edgebot-dashboard.json";
const ALERTS: &str = "deploy/prometheus/edgebot-alerts.yml";

/// Series the files may name that edgebot does not export: Prometheus' own.
const NOT_EDGEBOTS: &[&str] = &["up"];

// --- PromQL ------------------------------------------------------------------------

/// Words of PromQL that are not series names when they stand without a `(` after them:
/// aggregations (which may take `by (...)` before their argument), set and comparison
/// modifiers, and literals.
const KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "atan2",
    "inf",
    "nan",
];

/// Keywords followed by a parenthesised list of label names.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The series names a PromQL expression selects, in order of appearance. Skipped: string
/// literals, label names inside `{...}` and after `by`/`on`/..., function names (an
/// identifier followed by `(`), keywords, numbers and durations, Grafana variables
/// (`$__rate_interval`, `${job}`), and `#` comments.
fn series_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    let mut braces = 0usize;
    let mut parens = 0usize;
    // The paren depth of a label list being read, and whether the next `(` opens one.
    let mut label_list: Option<usize> = None;
    let mut expect_label_list = false;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let opens_label_list = std::mem::take(&mut expect_label_list);
        match c {
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    if chars[i] == '\\' && c != '`' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '{' => {
                braces += 1;
                i += 1;
            }
            '}' => {
                braces = braces.saturating_sub(1);
                i += 1;
            }
            '(' => {
                parens += 1;
                if opens_label_list {
                    label_list = Some(parens);
                }
                i += 1;
            }
            ')' => {
                if label_list == Some(parens) {
                    label_list = None;
                }
                parens = parens.saturating_sub(1);
                i += 1;
            }
            '$' => {
                i += 1;
                if chars.get(i) == Some(&'{') {
                    while i < chars.len() && chars[i] != '}' {
                        i += 1;
                    }
                    i += 1;
                } else {
                    while i < chars.len() && is_ident(chars[i]) {
                        i += 1;
                    }
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                // A number or a duration: 0.99, 1e3, 0x1f, 5m, 1h30m.
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if is_ident_start(c) => {
                let start = i;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = chars[i..].iter().find(|c| !c.is_whitespace());
                if braces > 0 || label_list.is_some() {
                    // A label name.
                } else if LABEL_LISTS.contains(&word.as_str()) {
                    expect_label_list = true;
                } else if KEYWORDS.contains(&word.as_str()) || next == Some(&'(') {
                    // A keyword, or a function.
                } else {
                    names.push(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

// --- The exposition ----------------------------------------------------------------

/// Metric families by name, with their type, from the `# TYPE name type` lines.
fn declared_families(exposition: &str) -> BTreeMap<String, String> {
    exposition
        .lines()
        .filter_map(|line| {
            let mut words = line.strip_prefix("# TYPE ")?.split_whitespace();
            Some((words.next()?.to_owned(), words.next()?.to_owned()))
        })
        .collect()
}

/// Whether a query may name `series`: a family of `families` under the name its type
/// exposes (that family is returned), or one of [`NOT_EDGEBOTS`] (`None`). The error says
/// what is wrong.
fn check_series<'f>(
    series: &str,
    families: &'f BTreeMap<String, String>,
) -> Result<Option<&'f str>, String> {
    if NOT_EDGEBOTS.contains(&series) {
        return Ok(None);
    }
    let suffixes: &[(&str, &[&str])] = &[
        ("", &["gauge", "unknown", "stateset", "info"]),
        ("_total", &["counter"]),
        ("_created", &["counter", "histogram", "summary"]),
        ("_bucket", &["histogram", "gaugehistogram"]),
        ("_sum", &["histogram", "summary"]),
        ("_count", &["histogram", "summary"]),
    ];
    let mut found = None;
    for (suffix, kinds) in suffixes {
        let Some(family) = series.strip_suffix(suffix) else {
            continue;
        };
        if let Some((family, kind)) = families.get_key_value(family) {
            if kinds.contains(&kind.as_str()) {
                return Ok(Some(family));
            }
            found = Some(format!(
                "{series}: {family} is a {kind}, which has no series named so"
            ));
        }
    }
    Err(found.unwrap_or_else(|| format!("{series}: no such metric is exported")))
}

/// The name of a sample line of the exposition, if it is one.
fn sample_name(line: &str) -> Option<&str> {
    if line.starts_with('#') || line.is_empty() {
        return None;
    }
    line.split(['{', ' ']).next()
}

// --- The files ---------------------------------------------------------------------

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

#[derive(Debug, Deserialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Debug, Deserialize)]
struct RuleGroup {
    name: String,
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    alert: String,
    expr: String,
    #[serde(rename = "for")]
    for_: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

/// Every alert's name and expression; panics unless each rule is complete.
fn alert_exprs(yaml: &str) -> Vec<(String, String)> {
    let file: RuleFile = serde_norway::from_str(yaml).expect("the rules file parses");
    let mut exprs = Vec::new();
    let mut names = BTreeSet::new();
    for group in file.groups {
        assert!(!group.name.is_empty());
        for rule in group.rules {
            let what = &rule.alert;
            assert!(
                names.insert(what.clone()),
                "{what}: two alerts of that name"
            );
            assert!(!rule.for_.is_empty(), "{what}: no `for`");
            let severity = rule.labels.get("severity").map(String::as_str);
            assert!(
                matches!(severity, Some("critical" | "warning" | "info")),
                "{what}: severity {severity:?}"
            );
            for key in ["summary", "description"] {
                assert!(
                    rule.annotations
                        .get(key)
                        .is_some_and(|s| !s.trim().is_empty()),
                    "{what}: no {key}"
                );
            }
            exprs.push((rule.alert, rule.expr));
        }
    }
    exprs
}

/// The PromQL of a Grafana variable query: `label_values(SELECTOR, label)` selects
/// SELECTOR (and `label_values(label)` nothing), `query_result(EXPR)` runs EXPR.
fn variable_promql(query: &str) -> Option<String> {
    let query = query.trim();
    if let Some(args) = query
        .strip_prefix("label_values(")
        .and_then(|a| a.strip_suffix(')'))
    {
        return args
            .rsplit_once(',')
            .map(|(selector, _)| selector.to_owned());
    }
    if let Some(expr) = query
        .strip_prefix("query_result(")
        .and_then(|a| a.strip_suffix(')'))
    {
        return Some(expr.to_owned());
    }
    Some(query.to_owned())
}

/// Every PromQL expression of the dashboard, with where it is: each `expr` anywhere in
/// the panels (rows nest theirs), and each query variable.
fn dashboard_exprs(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(value: &Value, at: &str, out: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                let here = map
                    .get("title")
                    .and_then(Value::as_str)
                    .map_or_else(|| at.to_owned(), |t| format!("panel {t:?}"));
                for (key, v) in map {
                    match (key.as_str(), v) {
                        ("expr", Value::String(expr)) => out.push((here.clone(), expr.clone())),
                        _ => walk(v, &here, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, at, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], "panels", &mut out);
    let variables = dashboard["templating"]["list"].as_array().cloned();
    for variable in variables.unwrap_or_default() {
        if variable["type"] != "query" {
            continue;
        }
        let query = match &variable["query"] {
            Value::String(q) => q.clone(),
            q => q["query"].as_str().unwrap_or_default().to_owned(),
        };
        if let Some(expr) = variable_promql(&query) {
            out.push((format!("variable {}", variable["name"]), expr));
        }
    }
    out
}

/// The dashboard's own shape: a description, a Prometheus datasource variable that every
/// panel and query uses, no datasource uid written in.
fn check_dashboard_shape(dashboard: &Value) {
    assert!(
        dashboard["description"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
    assert!(dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        variables.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "no Prometheus datasource variable"
    );
    fn datasources<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    if key == "datasource" && v.is_object() {
                        out.push(v);
                    } else {
                        datasources(v, out);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| datasources(v, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    datasources(&dashboard["panels"], &mut found);
    datasources(&dashboard["templating"], &mut found);
    assert!(!found.is_empty());
    for ds in found {
        assert_eq!(
            ds,
            &json!({"type": "prometheus", "uid": "${datasource}"}),
            "a datasource other than the variable"
        );
    }
}

/// The families the expressions use, and a line for each series name they select that
/// is not exported.
fn unknown_series<'f>(
    exprs: &[(String, String)],
    families: &'f BTreeMap<String, String>,
) -> (BTreeSet<&'f str>, Vec<String>) {
    let mut used = BTreeSet::new();
    let mut problems = Vec::new();
    for (at, expr) in exprs {
        let names = series_names(expr);
        if names.is_empty() {
            problems.push(format!("{at}: no series in {expr:?}"));
        }
        for name in names {
            match check_series(&name, families) {
                Ok(family) => used.extend(family),
                Err(e) => problems.push(format!("{at}: {e}")),
            }
        }
    }
    (used, problems)
}

// --- The checker itself ------------------------------------------------------------

#[test]
fn the_checker_catches_wrong_names() {
    assert_eq!(
        series_names(
            r#"histogram_quantile(0.99, sum by (le, route) (rate(edgebot_handler_duration_seconds_bucket{job=~"$job", route!="x y"}[$__rate_interval])))"#
        ),
        ["edgebot_handler_duration_seconds_bucket"]
    );
    assert_eq!(
        series_names(
            "a_gauge > 0\n  unless on (job, instance) group_left (route)\nsum without (kind) (rate(b_total[5m] offset 1h)) > 400 * 1024 # c_comment\n  or vector(1) and ${var} == bool inf"
        ),
        ["a_gauge", "b_total"]
    );
    assert_eq!(series_names(r#"up{job="edgebot"} == 0"#), ["up"]);
    assert_eq!(series_names("absent(up)"), ["up"]);
    assert_eq!(
        series_names(r#"sum(x:recorded:rate5m{a="}"}) / count(y)"#),
        ["x:recorded:rate5m", "y"]
    );
    assert_eq!(
        variable_promql(r#"label_values(m{job=~"$job"}, instance)"#).as_deref(),
        Some(r#"m{job=~"$job"}"#)
    );
    assert_eq!(variable_promql("label_values(job)"), None);

    let families = declared_families(
        "# HELP a_calls Calls\n# TYPE a_calls counter\n# TYPE a_depth gauge\n\
         # TYPE a_seconds histogram\na_depth 3\n# EOF\n",
    );
    for (good, family) in [
        ("a_calls_total", Some("a_calls")),
        ("a_depth", Some("a_depth")),
        ("a_seconds_bucket", Some("a_seconds")),
        ("a_seconds_sum", Some("a_seconds")),
        ("a_seconds_count", Some("a_seconds")),
        ("up", None),
    ] {
        assert_eq!(check_series(good, &families), Ok(family), "{good}");
    }
    for wrong in [
        "a_cals_total",   // misspelled
        "a_calls",        // a counter without _total
        "a_depth_total",  // a gauge with a counter's suffix
        "a_seconds",      // a histogram without a suffix
        "a_depth_bucket", // a gauge with a histogram's suffix
        "a_calls_bucket", // a counter with a histogram's suffix
        "b_depth",        // not exported at all
        "a_seconds_bucket_total",
    ] {
        assert!(check_series(wrong, &families).is_err(), "{wrong} passed");
    }
    // Through the same path as the files: a misspelled name in an expression is caught.
    let exprs = [(
        "test".to_owned(),
        r#"sum(rate(a_cals_total{job="x"}[5m])) / sum(rate(a_calls_total[5m]))"#.to_owned(),
    )];
    let (_, problems) = unknown_series(&exprs, &families);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("a_cals_total"), "{problems:?}");
}

// --- Against a real scrape -----------------------------------------------------------

fn message(update_id: i64, text: &str, command: bool) -> Value {
    let mut message = json!({
        "message_id": update_id,
        "date": 1,
        "chat": {"id": 5, "type": "private"},
        "from": {"id": 5, "first_name": "Ann"},
        "text": text,
    });
    if command {
        message["entities"] = json!([{"type": "bot_command", "offset": 0, "length": text.len()}]);
    }
    json!({"update_id": update_id, "message": message})
}

/// A command with arguments: the entity covers the command only.
fn ask(update_id: i64, text: &str) -> Value {
    let mut update = message(update_id, text, false);
    let length = text.split(' ').next().unwrap_or("").len();
    update["message"]["entities"] = json!([{"type": "bot_command", "offset": 0, "length": length}]);
    update
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_the_alerts_name_only_exported_metrics() {
    // `serve` with long polling against the fake Bot API, limits off.
    let api = FakeBotApi::start(FakeConfig::default()).await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let admin = free_port();
    // A service route too, to a port where nothing listens: the call fails, is retried
    // once, and the user gets the apology, which samples every service family.
    let nobody = free_port();
    // And a conversation through the fake LLM, with a budget of one answer a day, so that
    // the second question is refused: every LLM family gets a sample.
    let llm = FakeLlm::start(FakeLlmConfig::default()).await.unwrap();
    let mut config = Config::parse(
        &format!(
            "[[services]]\nname = \"down\"\nurl = \"http://{nobody}/handle\"\n\n\
             [[routes]]\ncommand = \"ping\"\nservice = \"down\"\n\n\
             [[routes]]\ncommand = \"ask\"\nllm = \"friend\"\n\n\
             [llm.budgets]\nguest_daily = 1\n\n\
             [[llm.providers]]\nname = \"fake\"\nbase_url = \"{}\"\nmodel = \"m\"\n\n\
             [[personalities]]\nname = \"friend\"\nprovider = \"fake\"\n",
            llm.base_url()
        ),
        Path::new("deploy_metrics.toml"),
    )
    .unwrap();
    config.bot.token = Some(Secret::new("1:token"));
    config.telegram.api_url = api.base_url();
    config.admin.listen = admin;
    config.storage.data_dir = data.path().to_owned();
    config.limits.inbound.enabled = false;
    config.limits.outbound.enabled = false;
    let (trigger, stop) = shutdown::channel();
    let server = tokio::spawn({
        let config = config.clone();
        async move { edgebot::app::serve::serve(&config, stop).await }
    });

    // A command, a plain text (which the models analyze) and a service's command, each
    // answered.
    api.push_update(message(1, "/start", true));
    api.push_update(message(2, "hello there, how are you today?", false));
    api.push_update(message(3, "/ping", true));
    api.push_update(ask(4, "/ask what is tea?"));
    api.push_update(ask(5, "/ask and coffee?"));
    assert!(
        api.wait_for(
            |calls| calls.iter().filter(|c| c.method == "sendMessage").count() >= 5,
            Duration::from_secs(60)
        )
        .await,
        "the bot did not answer all five messages"
    );
    // The sender counts a call once its answer is in: wait for the labelled families.
    let deadline = Instant::now() + Duration::from_secs(30);
    let exposition = loop {
        let (status, text) = request(admin, "GET", "/metrics", &[], b"").await;
        assert_eq!(status, 200, "{text}");
        let sampled = [
            "edgebot_updates_received_total{",
            "edgebot_handler_duration_seconds_count{",
            "edgebot_outbound_calls_total{",
            "edgebot_inference_duration_seconds_count{",
            "edgebot_active_users{",
            "edgebot_service_calls_total{",
            "edgebot_llm_calls_total{",
            "edgebot_llm_turns_total{",
            "edgebot_llm_refused_total{",
        ]
        .iter()
        .all(|s| text.contains(s));
        if sampled || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    trigger.fire();
    tokio::time::timeout(Duration::from_secs(15), server)
        .await
        .expect("serve stops")
        .unwrap()
        .unwrap();

    let families = declared_families(&exposition);
    assert!(families.len() > 10, "{exposition}");
    // The suffix rules agree with what the exposition really holds: every sample it
    // has is accepted.
    for line in exposition.lines() {
        if let Some(name) = sample_name(line) {
            assert!(check_series(name, &families).is_ok(), "{line}");
        }
    }
    // And they are not vacuous against the real families.
    for wrong in [
        "edgebot_updates_recieved_total",
        "edgebot_updates_received",
        "edgebot_outbox_depth_total",
        "edgebot_handler_duration_seconds",
        "edgebot_store_commit_seconds_bucket",
    ] {
        assert!(check_series(wrong, &families).is_err(), "{wrong} passed");
    }

    let dashboard: Value = serde_json::from_str(&read(DASHBOARD)).expect("the dashboard parses");
    check_dashboard_shape(&dashboard);
    let mut exprs = dashboard_exprs(&dashboard);
    let panels = exprs.len();
    exprs.extend(
        alert_exprs(&read(ALERTS))
            .into_iter()
            .map(|(alert, expr)| (format!("alert {alert}"), expr)),
    );
    assert!(panels > 10 && exprs.len() > panels, "{exprs:?}");

    let (used, problems) = unknown_series(&exprs, &families);
    assert!(
        problems.is_empty(),
        "names that edgebot does not export:\n{}\n\nexported: {families:?}",
        problems.join("\n")
    );
    // Every family edgebot exports is on the dashboard or in an alert.
    let unused: Vec<&String> = families
        .keys()
        .filter(|f| !used.contains(f.as_str()))
        .collect();
    assert!(
        unused.is_empty(),
        "exported but in neither file: {unused:?}"
    );
}
