//! The client against the fake LLM server (`crate::fake::llm`) on loopback: whole
//! answers streamed in pieces that split characters, the exact requests of both kinds,
//! and every failure the fake can be told to commit — with the retries, the fallback,
//! the sink's restarts and the metrics each one must give.

use super::failure::Wait;
use super::*;
use crate::config::Config;
use crate::fake::llm::{Auth, FakeLlm, FakeLlmConfig, Fault, RecordedRequest};
use serde_json::json;
use std::path::Path;

/// An answer whose bytes the fake's random cuts split inside characters.
const ANSWER: &str = "Привет! Ça va? 😀 Here is a longer answer, with 日本語 and ünïcödé too.";

/// Keeps what the client hands over.
#[derive(Default)]
struct Collect {
    /// Every piece, also those of attempts that were started over.
    pieces: Vec<String>,
    /// The answer as the sink sees it: emptied by a restart.
    text: String,
    restarts: usize,
    /// Told when the first piece arrives.
    first_piece: Option<tokio::sync::oneshot::Sender<()>>,
}

#[async_trait::async_trait]
impl Sink for Collect {
    async fn piece(&mut self, text: &str) {
        assert!(!text.is_empty(), "an empty piece");
        self.pieces.push(text.to_owned());
        self.text.push_str(text);
        if let Some(first) = self.first_piece.take() {
            let _ = first.send(());
        }
    }

    fn restart(&mut self) {
        self.restarts += 1;
        self.text.clear();
    }
}

/// One `[[llm.providers]]` entry: name, kind, base URL, more keys.
struct Entry<'a>(&'a str, &'a str, String, &'a str);

/// The base URL a fake takes for `kind`.
fn base_url(fake: &FakeLlm, kind: &str) -> String {
    match kind {
        "anthropic" => fake.url(),
        _ => fake.base_url(),
    }
}

/// A client built as the program builds it: from TOML through the config's checks.
fn client(table: &str, entries: &[Entry<'_>]) -> (Llm, Arc<Metrics>) {
    let mut text = format!("[llm]\n{table}\n");
    for Entry(name, kind, url, more) in entries {
        text.push_str(&format!(
            "[[llm.providers]]\nname = \"{name}\"\nkind = \"{kind}\"\nbase_url = \"{url}\"\nmodel = \"model-{name}\"\n{more}\n"
        ));
    }
    let mut config = Config::parse(&text, Path::new("test.toml")).unwrap();
    for provider in &mut config.llm.providers {
        provider
            .read_key(&|var| (var == "TEST_LLM_KEY").then(|| "sk-test".to_owned()))
            .unwrap();
    }
    let metrics = Arc::new(Metrics::new());
    let llm = Llm::from_config(&config.llm, Arc::clone(&metrics)).unwrap();
    (llm, metrics)
}

async fn fake(config: FakeLlmConfig) -> FakeLlm {
    FakeLlm::start(config).await.unwrap()
}

fn prompt() -> Prompt<'static> {
    Prompt {
        system: "You are terse.",
        turns: vec![
            Turn {
                speaker: Speaker::User,
                text: "Hi",
            },
            Turn {
                speaker: Speaker::Assistant,
                text: "Hello!",
            },
            Turn {
                speaker: Speaker::User,
                text: "Tell me something 😀",
            },
        ],
        model: None,
        temperature: 0.7,
        max_tokens: 800,
    }
}

/// The fake's token rule: a quarter of the bytes, rounded up.
fn fake_tokens(text: &str) -> u32 {
    u32::try_from(text.len().div_ceil(4)).unwrap()
}

/// The prompt's tokens as the fake counts them: 3, and 3 more per message.
fn fake_prompt_tokens(prompt: &Prompt<'_>) -> u32 {
    prompt
        .turns
        .iter()
        .map(|t| t.text)
        .chain([prompt.system])
        .map(|text| 3 + fake_tokens(text))
        .sum::<u32>()
        + 3
}

fn statuses(requests: &[RecordedRequest]) -> Vec<u16> {
    requests.iter().map(|r| r.status).collect()
}

/// The sample of `name{labels}` in the exposition, if any.
fn sample(metrics: &Metrics, series: &str) -> Option<String> {
    metrics.encode().lines().find_map(|line| {
        line.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .map(str::to_owned)
    })
}

fn calls(metrics: &Metrics, provider: &str, outcome: &str) -> Option<String> {
    sample(
        metrics,
        &format!("edgebot_llm_calls_total{{provider=\"{provider}\",outcome=\"{outcome}\"}}"),
    )
}

#[tokio::test]
async fn a_streamed_answer_cut_anywhere_comes_out_whole_with_its_usage() {
    for (seed, kind) in [
        (1, "openai"),
        (2, "anthropic"),
        (3, "openai"),
        (4, "anthropic"),
    ] {
        let fake = fake(FakeLlmConfig {
            answers: vec![ANSWER.into()],
            split_chunks: true,
            seed,
            ..FakeLlmConfig::default()
        })
        .await;
        let (llm, metrics) = client(
            "",
            &[Entry(
                "a",
                kind,
                base_url(&fake, kind),
                "input_price = 2.0\noutput_price = 10.0",
            )],
        );
        let mut sink = Collect::default();
        let prompt = prompt();
        let completion = llm.complete("a", &prompt, &mut sink).await.unwrap();
        let input = fake_prompt_tokens(&prompt);
        let output = fake_tokens(ANSWER);
        assert_eq!(
            completion,
            Completion {
                text: ANSWER.into(),
                provider: "a".into(),
                model: "model-a".into(),
                input_tokens: input,
                output_tokens: output,
                cost_micro_usd: u64::from(input * 2 + output * 10),
                truncated: false,
            },
            "{kind}"
        );
        assert_eq!(sink.text, ANSWER, "{kind}");
        assert_eq!(sink.pieces.concat(), ANSWER, "{kind}");
        assert!(sink.pieces.len() > 5, "{kind}: {:?}", sink.pieces);
        assert_eq!(sink.restarts, 0);
        assert_eq!(calls(&metrics, "a", "ok").as_deref(), Some("1"));
        let tokens = |direction| {
            sample(
                &metrics,
                &format!("edgebot_llm_tokens_total{{provider=\"a\",direction=\"{direction}\"}}"),
            )
        };
        assert_eq!(tokens("input"), Some(input.to_string()));
        assert_eq!(tokens("output"), Some(output.to_string()));
        assert_eq!(
            sample(&metrics, "edgebot_llm_in_flight").as_deref(),
            Some("0")
        );
        assert!(
            metrics
                .encode()
                .contains("edgebot_llm_first_token_seconds_count{provider=\"a\"} 1"),
            "{kind}"
        );
        let cost = sample(&metrics, "edgebot_llm_cost_usd_total{provider=\"a\"}").unwrap();
        let cost: f64 = cost.parse().unwrap();
        assert!(
            (cost * 1e6 - f64::from(input * 2 + output * 10)).abs() < 1e-6,
            "{cost}"
        );
        fake.shutdown().await;
    }
}

#[tokio::test]
async fn the_requests_are_exactly_what_each_api_takes() {
    let fake = fake(FakeLlmConfig {
        api_key: Some("sk-test".into()),
        ..FakeLlmConfig::default()
    })
    .await;
    let (llm, _) = client(
        "",
        &[
            Entry(
                "o",
                "openai",
                fake.base_url(),
                "api_key_env = \"TEST_LLM_KEY\"",
            ),
            Entry(
                "c",
                "anthropic",
                fake.url(),
                "api_key_env = \"TEST_LLM_KEY\"",
            ),
        ],
    );
    let prompt = Prompt {
        model: Some("override-1"),
        temperature: 0.7,
        max_tokens: 50,
        ..prompt()
    };
    let mut sink = Collect::default();
    let openai = llm.complete("o", &prompt, &mut sink).await.unwrap();
    let anthropic = llm.complete("c", &prompt, &mut sink).await.unwrap();
    // The fake echoes the last user turn, and names the model it was asked for.
    assert_eq!(openai.text, "You said: Tell me something 😀");
    assert_eq!(anthropic.text, openai.text);
    assert_eq!(openai.model, "override-1");
    assert_eq!(anthropic.model, "override-1");

    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].path, "/v1/chat/completions");
    assert_eq!(requests[1].path, "/v1/messages");
    assert!(
        requests
            .iter()
            .all(|r| r.auth == Auth::Valid && r.status == 200)
    );
    assert_eq!(
        requests[0].body,
        json!({
            "model": "override-1",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "Tell me something 😀"},
            ],
            "temperature": 0.7,
            "max_tokens": 50,
            "stream": true,
            "stream_options": {"include_usage": true},
        })
    );
    assert_eq!(
        requests[1].body,
        json!({
            "model": "override-1",
            "system": "You are terse.",
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "Tell me something 😀"},
            ],
            "temperature": 0.7,
            "max_tokens": 50,
            "stream": true,
        })
    );
    fake.shutdown().await;
}

#[tokio::test]
async fn an_answer_cut_at_max_tokens_says_so() {
    let fake = fake(FakeLlmConfig::default()).await;
    for kind in ["openai", "anthropic"] {
        fake.script_answers([ANSWER]);
        let (llm, _) = client("", &[Entry("a", kind, base_url(&fake, kind), "")]);
        let prompt = Prompt {
            max_tokens: 3,
            ..prompt()
        };
        let completion = llm
            .complete("a", &prompt, &mut Collect::default())
            .await
            .unwrap();
        assert!(completion.truncated, "{kind}");
        assert_eq!(completion.output_tokens, 3, "{kind}");
        assert!(ANSWER.starts_with(&completion.text), "{kind}");
        assert!(completion.text.len() <= 12, "{kind}: {}", completion.text);
    }
    fake.shutdown().await;
}

#[tokio::test]
async fn a_429_is_waited_out_for_its_retry_after_then_answered() {
    let fake = fake(FakeLlmConfig::default()).await;
    fake.inject(
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        1,
        None,
    );
    let (llm, metrics) = client("", &[Entry("a", "openai", fake.base_url(), "retries = 2")]);
    let mut sink = Collect::default();
    let completion = llm.complete("a", &prompt(), &mut sink).await.unwrap();
    assert_eq!(completion.text, "You said: Tell me something 😀");
    assert_eq!(&*completion.provider, "a");
    let requests = fake.requests();
    assert_eq!(statuses(&requests), [429, 200]);
    let waited = requests[1].at.duration_since(requests[0].at);
    assert!(waited >= Duration::from_secs(1), "{waited:?}");
    assert_eq!(sink.restarts, 1);
    assert_eq!(calls(&metrics, "a", "rate_limited").as_deref(), Some("1"));
    assert_eq!(calls(&metrics, "a", "ok").as_deref(), Some("1"));
    fake.shutdown().await;
}

#[tokio::test]
async fn a_long_retry_after_goes_to_the_next_provider_at_once() {
    let (first, second) = (
        fake(FakeLlmConfig::default()).await,
        fake(FakeLlmConfig::default()).await,
    );
    first.inject(
        Fault::RateLimited {
            retry_after_secs: 60,
        },
        1,
        None,
    );
    let (llm, _) = client(
        "fallback = [\"b\"]",
        &[
            Entry("a", "openai", first.base_url(), "retries = 2"),
            Entry("b", "anthropic", second.url(), ""),
        ],
    );
    let started = Instant::now();
    let completion = llm
        .complete("a", &prompt(), &mut Collect::default())
        .await
        .unwrap();
    assert_eq!(&*completion.provider, "b");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(statuses(&first.requests()), [429]);
    assert_eq!(statuses(&second.requests()), [200]);
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test]
async fn server_errors_use_up_the_retries_then_the_fallback_answers() {
    let (first, second) = (
        fake(FakeLlmConfig::default()).await,
        fake(FakeLlmConfig::default()).await,
    );
    first.inject(Fault::ServerError(500), 2, None);
    second.script_answers([ANSWER]);
    let (llm, metrics) = client(
        "fallback = [\"b\", \"a\", \"b\"]",
        &[
            Entry("a", "openai", first.base_url(), "retries = 1"),
            Entry("b", "anthropic", second.url(), "output_price = 1.0"),
        ],
    );
    let mut sink = Collect::default();
    let completion = llm.complete("a", &prompt(), &mut sink).await.unwrap();
    assert_eq!(&*completion.provider, "b");
    assert_eq!(completion.text, ANSWER);
    assert_eq!(completion.cost_micro_usd, u64::from(fake_tokens(ANSWER)));
    assert_eq!(sink.text, ANSWER);
    // Before a's retry, and before b.
    assert_eq!(sink.restarts, 2);
    // Each provider once, though the fallback names them again.
    assert_eq!(statuses(&first.requests()), [500, 500]);
    assert_eq!(statuses(&second.requests()), [200]);
    assert_eq!(calls(&metrics, "a", "http_5xx").as_deref(), Some("2"));
    assert_eq!(calls(&metrics, "b", "ok").as_deref(), Some("1"));
    assert_eq!(calls(&metrics, "a", "ok"), None);
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test]
async fn a_hang_times_out_and_the_fallback_answers() {
    let (first, second) = (
        fake(FakeLlmConfig::default()).await,
        fake(FakeLlmConfig::default()).await,
    );
    first.inject(Fault::Hang, 1, None);
    let (llm, metrics) = client(
        "fallback = [\"b\"]",
        &[
            Entry(
                "a",
                "anthropic",
                first.url(),
                "retries = 0\ntimeout_ms = 300",
            ),
            Entry("b", "openai", second.base_url(), ""),
        ],
    );
    let started = Instant::now();
    let mut sink = Collect::default();
    let completion = llm.complete("a", &prompt(), &mut sink).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(&*completion.provider, "b");
    assert_eq!(sink.restarts, 1);
    assert_eq!(statuses(&first.requests()), [0]);
    assert_eq!(calls(&metrics, "a", "timeout").as_deref(), Some("1"));
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test]
async fn silence_between_chunks_past_the_idle_timeout_is_a_timeout() {
    let fake = fake(FakeLlmConfig {
        chunk_delay: Duration::from_millis(500),
        ..FakeLlmConfig::default()
    })
    .await;
    let (llm, metrics) = client(
        "",
        &[Entry(
            "a",
            "openai",
            fake.base_url(),
            "retries = 0\ntimeout_ms = 5000\nidle_timeout_ms = 150",
        )],
    );
    let error = llm
        .complete("a", &prompt(), &mut Collect::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            LlmError::Exhausted {
                last: Failure::Timeout(Wait::NextChunk)
            }
        ),
        "{error:?}"
    );
    assert_eq!(calls(&metrics, "a", "timeout").as_deref(), Some("1"));
    fake.shutdown().await;
}

#[tokio::test]
async fn a_stream_stopped_midway_is_retried_from_the_start() {
    for (kind, after) in [("openai", 3), ("anthropic", 5)] {
        let fake = fake(FakeLlmConfig {
            answers: vec![ANSWER.into(), ANSWER.into()],
            ..FakeLlmConfig::default()
        })
        .await;
        fake.inject(
            Fault::StopMidway {
                after_chunks: after,
            },
            1,
            None,
        );
        let (llm, metrics) = client(
            "",
            &[Entry("a", kind, base_url(&fake, kind), "retries = 1")],
        );
        let mut sink = Collect::default();
        let completion = llm.complete("a", &prompt(), &mut sink).await.unwrap();
        assert_eq!(completion.text, ANSWER, "{kind}");
        assert_eq!(sink.text, ANSWER, "{kind}");
        assert_eq!(sink.restarts, 1, "{kind}");
        // The broken attempt had handed over two pieces before it stopped.
        let before: String = sink.pieces[..2].concat();
        assert!(ANSWER.starts_with(&before), "{kind}: {before}");
        assert_eq!(sink.pieces[2..].concat(), ANSWER, "{kind}");
        assert_eq!(calls(&metrics, "a", "stopped_midway").as_deref(), Some("1"));
        assert_eq!(calls(&metrics, "a", "ok").as_deref(), Some("1"));
        fake.shutdown().await;
    }
}

#[tokio::test]
async fn when_every_provider_fails_the_last_failure_is_the_error() {
    let (first, second) = (
        fake(FakeLlmConfig::default()).await,
        fake(FakeLlmConfig::default()).await,
    );
    first.inject(Fault::ServerError(500), 2, None);
    second.inject(Fault::ServerError(503), 1, None);
    let (llm, metrics) = client(
        "fallback = [\"b\"]",
        &[
            Entry("a", "openai", first.base_url(), "retries = 1"),
            Entry("b", "anthropic", second.url(), "retries = 0"),
        ],
    );
    let mut sink = Collect::default();
    let error = llm.complete("a", &prompt(), &mut sink).await.unwrap_err();
    match error {
        LlmError::Exhausted {
            last: Failure::Status { status, detail },
        } => {
            assert_eq!(status, 503);
            assert!(detail.starts_with("api_error: "), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sink.restarts, 2);
    assert!(sink.pieces.is_empty());
    assert_eq!(statuses(&first.requests()), [500, 500]);
    assert_eq!(statuses(&second.requests()), [503]);
    assert_eq!(calls(&metrics, "b", "http_5xx").as_deref(), Some("1"));
    assert_eq!(
        sample(&metrics, "edgebot_llm_in_flight").as_deref(),
        Some("0")
    );
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test]
async fn a_4xx_is_not_retried_and_the_fallback_answers() {
    let first = fake(FakeLlmConfig {
        api_key: Some("another-key".into()),
        ..FakeLlmConfig::default()
    })
    .await;
    let second = fake(FakeLlmConfig::default()).await;
    let (llm, metrics) = client(
        "fallback = [\"b\"]",
        &[
            Entry(
                "a",
                "openai",
                first.base_url(),
                "retries = 5\napi_key_env = \"TEST_LLM_KEY\"",
            ),
            Entry("b", "openai", second.base_url(), ""),
        ],
    );
    let completion = llm
        .complete("a", &prompt(), &mut Collect::default())
        .await
        .unwrap();
    assert_eq!(&*completion.provider, "b");
    assert_eq!(statuses(&first.requests()), [401]);
    assert_eq!(first.requests()[0].auth, Auth::Wrong);
    assert_eq!(calls(&metrics, "a", "http_4xx").as_deref(), Some("1"));

    // Alone, the 4xx is the error, with the provider's words.
    let (alone, _) = client(
        "",
        &[Entry(
            "a",
            "openai",
            first.base_url(),
            "retries = 5\napi_key_env = \"TEST_LLM_KEY\"",
        )],
    );
    let error = alone
        .complete("a", &prompt(), &mut Collect::default())
        .await
        .unwrap_err();
    let LlmError::Exhausted {
        last: Failure::Status {
            status: 401,
            detail,
        },
    } = error
    else {
        panic!("{error:?}");
    };
    assert!(detail.contains("invalid_api_key"), "{detail}");
    assert_eq!(statuses(&first.requests()), [401, 401]);
    first.shutdown().await;
    second.shutdown().await;
}

/// Starts a call that streams [`ANSWER`] for about 2 s, and returns once its first piece
/// arrived, so that it holds its slots.
async fn hold_a_slot(llm: &Arc<Llm>) -> tokio::task::JoinHandle<Result<Completion, LlmError>> {
    let (told, first_piece) = tokio::sync::oneshot::channel();
    let llm = Arc::clone(llm);
    let call = tokio::spawn(async move {
        let mut sink = Collect {
            first_piece: Some(told),
            ..Collect::default()
        };
        llm.complete("a", &prompt(), &mut sink).await
    });
    first_piece.await.unwrap();
    call
}

/// A fake whose stream of [`ANSWER`] (about 20 deltas) takes about 2 s.
async fn slow_fake() -> FakeLlm {
    fake(FakeLlmConfig {
        answers: vec![ANSWER.into()],
        chunk_delay: Duration::from_millis(100),
        ..FakeLlmConfig::default()
    })
    .await
}

#[tokio::test]
async fn a_provider_at_its_cap_is_overloaded_and_the_fallback_answers() {
    let (first, second) = (slow_fake().await, fake(FakeLlmConfig::default()).await);
    let (llm, metrics) = client(
        "fallback = [\"b\"]",
        &[
            Entry(
                "a",
                "openai",
                first.base_url(),
                "max_concurrent = 1\ntimeout_ms = 300",
            ),
            Entry("b", "openai", second.base_url(), ""),
        ],
    );
    let llm = Arc::new(llm);
    let held = hold_a_slot(&llm).await;
    let started = Instant::now();
    let completion = llm
        .complete("a", &prompt(), &mut Collect::default())
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(&*completion.provider, "b");
    assert_eq!(calls(&metrics, "a", "overloaded").as_deref(), Some("1"));
    assert!(
        !held.is_finished(),
        "the first call ended before the second gave up"
    );
    let first_answer = held.await.unwrap().unwrap();
    assert_eq!(first_answer.text, ANSWER);
    assert_eq!(&*first_answer.provider, "a");
    assert_eq!(first.requests().len(), 1);
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test]
async fn calls_past_the_global_cap_are_overloaded() {
    let (first, second) = (slow_fake().await, fake(FakeLlmConfig::default()).await);
    let (llm, metrics) = client(
        "max_concurrent = 1\nfallback = [\"b\"]",
        &[
            Entry("a", "openai", first.base_url(), "timeout_ms = 300"),
            Entry("b", "openai", second.base_url(), ""),
        ],
    );
    let llm = Arc::new(llm);
    let held = hold_a_slot(&llm).await;
    assert_eq!(
        sample(&metrics, "edgebot_llm_in_flight").as_deref(),
        Some("1")
    );
    let error = llm
        .complete("a", &prompt(), &mut Collect::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            LlmError::Exhausted {
                last: Failure::Overloaded
            }
        ),
        "{error:?}"
    );
    assert!(
        !held.is_finished(),
        "the first call ended before the second gave up"
    );
    // The fallback shares the global cap, so it was not asked.
    assert!(second.requests().is_empty());
    assert_eq!(calls(&metrics, "a", "overloaded").as_deref(), Some("1"));
    assert!(held.await.unwrap().is_ok());
    assert_eq!(
        sample(&metrics, "edgebot_llm_in_flight").as_deref(),
        Some("0")
    );
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test]
async fn an_unknown_provider_is_refused_without_a_request() {
    let fake = fake(FakeLlmConfig::default()).await;
    let (llm, _) = client("", &[Entry("a", "openai", fake.base_url(), "")]);
    let error = llm
        .complete("nope", &prompt(), &mut Collect::default())
        .await
        .unwrap_err();
    assert!(matches!(error, LlmError::UnknownProvider), "{error:?}");
    let none = Llm::none(Arc::new(Metrics::new()));
    let error = none
        .complete("a", &prompt(), &mut Collect::default())
        .await
        .unwrap_err();
    assert!(matches!(error, LlmError::UnknownProvider), "{error:?}");
    assert!(fake.requests().is_empty());
    fake.shutdown().await;
}

#[test]
fn a_completion_prints_without_its_text() {
    let completion = Completion {
        text: "a private answer".into(),
        provider: "a".into(),
        model: "m".into(),
        input_tokens: 1,
        output_tokens: 2,
        cost_micro_usd: 3,
        truncated: false,
    };
    let printed = format!("{completion:?}");
    assert!(!printed.contains("private"), "{printed}");
    assert!(printed.contains("<16 bytes>"), "{printed}");
}

#[test]
fn estimates_are_a_quarter_of_the_bytes_and_three() {
    assert_eq!(Llm::estimate_tokens(""), 3);
    assert_eq!(Llm::estimate_tokens("abcd"), 4);
    assert_eq!(Llm::estimate_tokens("abcde"), 5);
    // Bytes, not characters: 😀 is four.
    assert_eq!(Llm::estimate_tokens("😀😀"), 5);
    assert_eq!(prompt().estimated_tokens(), 3 * 4 + 4 + 1 + 2 + 6);
}
