//! Conversations with a language model: a route with `llm = "personality"`, and the
//! commands around it (`/mode`, `/reset`, `/retry`, `/forget`, `/usage`).
//!
//! One exchange: check the spam verdict and the user's budget, load the dialog of this
//! chat (or forum topic) from the store, start a new one after the idle time, send the
//! personality's prompt with the recent turns that fit the history budget, stream the
//! answer to the chat while it is written, and hand the engine the finished answer (as
//! outbox messages, split at Telegram's limit, markup made safe) and the exchange to
//! commit. When the history outgrows its budget, the model folds the oldest turns into
//! the dialog's rolling summary. Everything is committed with the update, so a crash
//! mid-answer replays the update and the user gets one answer.

mod commands;
mod prompt;
mod stream;

pub(crate) use commands::{forget, mode, reset, retry, usage};

use crate::calendar::{UnixSecs, civil_month};
use crate::config::{Config, LlmConfig, PersonalityConfig};
use crate::engine::context::{Context, Outcome};
use crate::llm::{Completion, Llm, LlmBuildError, Prompt, Sink, Speaker as LlmSpeaker, Turn};
use crate::ml::SentimentLabel;
use crate::store::records::{
    ConversationChange, Dialog, DialogKey, EventKind, Exchange as StoredExchange, Role, Speaker,
    TurnRecord, UsageDelta, UserRecord,
};
use crate::store::{Store, StoreError};
use crate::telegram::markup;
use crate::telegram::methods::{Action, EditMessageText, ParseMode, ReplyParameters, SendMessage};
use crate::telegram::types::ChatKind;
use crate::telemetry::metrics::Metrics;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use stream::{Showing, Stream};

/// Telegram's limit on a message's text, in UTF-16 units after entities are parsed.
pub(crate) const MESSAGE_LIMIT: usize = 4096;

/// How often the typing indicator is renewed while the model has not started answering;
/// Telegram shows it for about five seconds.
const TYPING_EVERY: Duration = Duration::from_secs(4);

/// The conversations: the models, the settings and read access to the dialogs.
pub(crate) struct Conversations {
    llm: Llm,
    store: Store,
    settings: LlmConfig,
    personalities: HashMap<String, PersonalityConfig>,
    /// In the order of the config, for `/mode`.
    order: Vec<String>,
    metrics: Arc<Metrics>,
    /// Set once the Bot API answered a draft with 404: it has none, so answers stream by
    /// edits.
    no_drafts: AtomicBool,
}

/// Why an exchange gave no answer from the model.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("the store could not be read: {0}")]
    Store(#[from] StoreError),
    #[error("no personality `{0}`")]
    UnknownPersonality(String),
}

impl Conversations {
    pub(crate) fn from_config(
        config: &Config,
        store: Store,
        metrics: Arc<Metrics>,
    ) -> Result<Conversations, LlmBuildError> {
        Ok(Conversations {
            llm: Llm::from_config(&config.llm, metrics.clone())?,
            store,
            settings: config.llm.clone(),
            personalities: config
                .personalities
                .iter()
                .map(|p| (p.name.clone(), p.clone()))
                .collect(),
            order: config
                .personalities
                .iter()
                .map(|p| p.name.clone())
                .collect(),
            metrics,
            no_drafts: AtomicBool::new(false),
        })
    }

    /// The personality a user talks to through a route naming `route`: their own
    /// `/mode` choice where the route follows it, else the route's.
    fn personality_for(
        &self,
        route: &str,
        follows_choice: bool,
        user: &UserRecord,
    ) -> Result<&PersonalityConfig, Refusal> {
        if follows_choice
            && let Some(chosen) = self.store.personality_of(user.id)?
            && let Some(personality) = self.personalities.get(&chosen)
            && self.entitled_to(user, personality.requires.as_deref())
        {
            return Ok(personality);
        }
        self.personalities
            .get(route)
            .ok_or_else(|| Refusal::UnknownPersonality(route.to_owned()))
    }

    /// Whether the user holds `entitlement`. Entitlements are granted by payments;
    /// until those exist, the bot's admins hold every one.
    fn entitled_to(&self, user: &UserRecord, entitlement: Option<&str>) -> bool {
        entitlement.is_none() || user.role == Role::Admin
    }

    /// The daily and monthly token budgets of a user (0: no limit).
    fn budget_of(&self, user: &UserRecord) -> (u64, u64) {
        let budgets = &self.settings.budgets;
        if self.entitled_to(user, Some(&budgets.entitlement)) {
            (budgets.entitled_daily, budgets.entitled_monthly)
        } else {
            (budgets.guest_daily, budgets.guest_monthly)
        }
    }

    /// What stops the user from asking now: an exhausted budget, as the words to say.
    fn over_budget(&self, user: &UserRecord, now: UnixSecs) -> Result<Option<String>, Refusal> {
        let (daily, monthly) = self.budget_of(user);
        let day = day_of(now);
        let (today, month) = self
            .store
            .usage_of(user.id, day, civil_month(i64::from(day)))?;
        let spent = |u: &crate::store::records::Usage| u.input_tokens + u.output_tokens;
        Ok(if daily > 0 && spent(&today) >= daily {
            Some(format!(
                "You have used today's {daily} tokens. The budget renews at midnight UTC; /usage shows where you stand."
            ))
        } else if monthly > 0 && spent(&month) >= monthly {
            Some(format!(
                "You have used this month's {monthly} tokens. The budget renews on the 1st; /usage shows where you stand."
            ))
        } else {
            None
        })
    }

    /// The dialog an exchange at `now` continues, or the number of the new one it opens.
    fn current_dialog(&self, key: DialogKey, now: UnixSecs) -> Result<Current, Refusal> {
        let idle = i64::from(self.settings.idle_minutes) * 60;
        Ok(match self.store.dialog(key)? {
            Some(dialog) if now.get() - dialog.last_at.get() <= idle => Current::Continues(dialog),
            Some(dialog) => Current::Opens(dialog.number + 1),
            None => Current::Opens(1),
        })
    }
}

/// The dialog an exchange belongs to.
enum Current {
    Continues(Dialog),
    Opens(u32),
}

/// Days since 1970-01-01.
fn day_of(at: UnixSecs) -> u32 {
    u32::try_from(at.get().div_euclid(86_400)).unwrap_or(0)
}

/// The dialog of a chat: per chat, and per forum topic in groups.
fn dialog_key(ctx: &Context<'_>) -> DialogKey {
    DialogKey {
        chat_id: ctx.chat_id,
        thread_id: ctx.topic.unwrap_or(0),
    }
}

fn is_group(ctx: &Context<'_>) -> bool {
    ctx.message
        .is_some_and(|m| !matches!(m.chat.kind, ChatKind::Private))
}

/// An exchange to run: what is asked, of which personality, with which history.
struct Exchange<'p> {
    personality: &'p PersonalityConfig,
    key: DialogKey,
    number: u32,
    /// The dialog's summary and the index its unsummarized turns start at.
    summary: String,
    summarized_upto: u32,
    /// Unsummarized turns before the question, oldest first.
    history: Vec<TurnRecord>,
    /// The question as the model reads it.
    question: String,
    /// Whether the answer replaces the dialog's last one (`/retry`).
    retry: bool,
}

/// A route with `llm = "…"`: one exchange about the message's text.
pub(crate) async fn handle(
    conversations: &Conversations,
    route: &str,
    follows_choice: bool,
    ctx: &Context<'_>,
    out: &mut Outcome,
) {
    let (Some(user), Some(message)) = (ctx.user, ctx.message) else {
        return;
    };
    let text = if ctx.command.is_some() {
        ctx.args
    } else {
        message.text_or_caption().unwrap_or("")
    };
    let text = strip_mention(text, ctx.bot_username);
    if text.trim().is_empty() {
        if ctx.command.is_some() {
            out.send(ctx, "Ask me something after the command.".into());
        }
        return;
    }
    if let Some(analysis) = &ctx.analysis
        && analysis.spam_probability() >= conversations.settings.spam_threshold
    {
        conversations.metrics.llm_refused("spam");
        out.events.push(ctx.event(EventKind::LlmRefused {
            reason: "spam".into(),
        }));
        return;
    }
    let prepared = async {
        if let Some(words) = conversations.over_budget(user, ctx.now)? {
            return Ok::<_, Refusal>(Err(words));
        }
        let personality = conversations.personality_for(route, follows_choice, user)?;
        let key = dialog_key(ctx);
        let (number, summary, summarized_upto, history) =
            match conversations.current_dialog(key, ctx.now)? {
                Current::Continues(dialog) => {
                    let history =
                        conversations
                            .store
                            .turns(key, dialog.number, dialog.summarized_upto)?;
                    (
                        dialog.number,
                        dialog.summary,
                        dialog.summarized_upto,
                        history,
                    )
                }
                Current::Opens(number) => (number, String::new(), 0, Vec::new()),
            };
        let question = if is_group(ctx) {
            format!("{}: {text}", user.first_name)
        } else {
            text.into_owned()
        };
        Ok(Ok(Exchange {
            personality,
            key,
            number,
            summary,
            summarized_upto,
            history,
            question,
            retry: false,
        }))
    };
    match prepared.await {
        Ok(Ok(exchange)) => converse(conversations, exchange, ctx, out).await,
        Ok(Err(words)) => {
            conversations.metrics.llm_refused("budget");
            out.events.push(ctx.event(EventKind::LlmRefused {
                reason: "budget".into(),
            }));
            out.send(ctx, words);
        }
        Err(refusal) => {
            tracing::error!(error = %refusal, "a conversation could not start");
            out.send(ctx, conversations.settings.apology.clone());
        }
    }
}

/// The mood hint of an adaptive personality: the sentiment of the message, when the
/// models have an opinion.
fn mood(ctx: &Context<'_>, personality: &PersonalityConfig) -> Option<&'static str> {
    if !personality.adaptive {
        return None;
    }
    ctx.analysis.as_ref().map(|a| match a.sentiment.label {
        SentimentLabel::Positive => "positive",
        SentimentLabel::Negative => "negative",
        SentimentLabel::Neutral => "neutral",
    })
}

/// Runs one exchange: the prompt, the streamed answer, the summary when due, and the
/// outcome.
async fn converse(
    conversations: &Conversations,
    exchange: Exchange<'_>,
    ctx: &Context<'_>,
    out: &mut Outcome,
) {
    let settings = &conversations.settings;
    let personality = exchange.personality;
    let question_tokens = Llm::estimate_tokens(&exchange.question);
    let window = prompt::window(&exchange.history, settings.history_tokens, question_tokens);
    let (overflow, recent) = exchange.history.split_at(window.first);
    let group = is_group(ctx);
    let system = prompt::system_prompt(
        &personality.system_prompt,
        &exchange.summary,
        mood(ctx, personality),
        group,
    );
    let request = Prompt {
        system: &system,
        turns: prompt::turns(recent, &exchange.question),
        model: personality.model.as_deref(),
        temperature: personality.temperature,
        max_tokens: personality.max_tokens,
    };
    let showing = if ctx.live.is_none() {
        Showing::Nothing
    } else if group {
        Showing::Edits { message_id: None }
    } else {
        // Non-zero, and one per update, so a replay animates the same draft.
        Showing::Drafts {
            draft_id: ctx.update_id.unsigned_abs().max(1) as i64,
        }
    };
    let interval = Duration::from_millis(u64::from(match showing {
        Showing::Drafts { .. } => settings.draft_interval_ms,
        _ => settings.edit_interval_ms,
    }));
    let started = AtomicBool::new(false);
    let mut stream = Stream::new(
        ctx.live,
        ctx.chat_id,
        ctx.topic,
        showing,
        interval,
        &conversations.no_drafts,
        &started,
    );
    if settings.typing {
        stream.typing().await;
    }
    let result = {
        let call = conversations
            .llm
            .complete(&personality.provider, &request, &mut stream);
        tokio::pin!(call);
        let mut ticks = tokio::time::interval(TYPING_EVERY);
        ticks.tick().await;
        loop {
            tokio::select! {
                result = &mut call => break result,
                // The stream is borrowed by the call: the ticker renews the indicator
                // through the live handle itself.
                _ = ticks.tick(), if settings.typing && !started.load(Ordering::Relaxed) => {
                    stream::typing(ctx.live, ctx.chat_id, ctx.topic).await;
                }
            }
        }
    };
    if let (Some(first), Some(shown)) = (stream.first_piece_at, stream.first_shown_at) {
        conversations
            .metrics
            .llm_first_shown
            .observe(shown.saturating_duration_since(first).as_secs_f64());
    }
    let completion = match result {
        Ok(completion) => completion,
        Err(error) => {
            tracing::warn!(personality = %personality.name, error = %error, "no answer from any provider");
            out.events.push(ctx.event(EventKind::LlmTurn {
                personality: personality.name.clone(),
                provider: String::new(),
                input_tokens: 0,
                output_tokens: 0,
                ok: false,
            }));
            out.send(ctx, settings.apology.clone());
            return;
        }
    };
    let summary = if overflow.is_empty() {
        None
    } else {
        summarize(conversations, personality, &exchange.summary, overflow)
            .await
            .map(|(text, usage)| {
                (
                    text,
                    exchange.summarized_upto + u32::try_from(overflow.len()).unwrap_or(0),
                    usage,
                )
            })
    };
    deliver(ctx, stream.showing, &completion.text, group, out);
    record(
        conversations,
        exchange,
        ctx,
        completion,
        summary,
        question_tokens,
        out,
    );
}

/// The finished answer, into the outbox: split at Telegram's limit, each piece as safe
/// HTML. A message already streamed by edits gets its final text by one more edit.
fn deliver(ctx: &Context<'_>, showing: Showing, answer: &str, group: bool, out: &mut Outcome) {
    let mut pieces = markup::split(answer, MESSAGE_LIMIT).into_iter();
    let reply_parameters = ctx.message.filter(|_| group).map(|m| ReplyParameters {
        message_id: m.message_id,
        allow_sending_without_reply: true,
    });
    if let Showing::Edits {
        message_id: Some(message_id),
    } = showing
        && let Some(first) = pieces.next()
    {
        out.actions.push(Action::EditMessageText(EditMessageText {
            chat_id: ctx.chat_id,
            message_id,
            text: first,
            parse_mode: Some(ParseMode::Html),
            reply_markup: None,
        }));
    }
    for (i, piece) in pieces.enumerate() {
        out.actions.push(Action::SendMessage(SendMessage {
            chat_id: ctx.chat_id,
            message_thread_id: ctx.topic,
            text: piece,
            parse_mode: Some(ParseMode::Html),
            reply_parameters: reply_parameters.clone().filter(|_| i == 0),
            reply_markup: None,
        }));
    }
}

/// The model folds the turns that left the window into the dialog's summary. `None`
/// when that fails: the history then just drops those turns, and the next exchange
/// tries again.
async fn summarize(
    conversations: &Conversations,
    personality: &PersonalityConfig,
    summary: &str,
    overflow: &[TurnRecord],
) -> Option<(String, Completion)> {
    let request_text = prompt::summary_request(summary, overflow);
    let request = Prompt {
        system: prompt::SUMMARY_SYSTEM,
        turns: vec![Turn {
            speaker: LlmSpeaker::User,
            text: &request_text,
        }],
        model: personality.model.as_deref(),
        temperature: 0.2,
        max_tokens: conversations.settings.summary_tokens,
    };
    let mut quiet = Quiet;
    match conversations
        .llm
        .complete(&personality.provider, &request, &mut quiet)
        .await
    {
        Ok(completion) if !completion.text.trim().is_empty() => {
            Some((completion.text.trim().to_owned(), completion))
        }
        Ok(_) => None,
        Err(error) => {
            tracing::warn!(error = %error, "the summary could not be made; older turns are dropped instead");
            None
        }
    }
}

/// A sink that shows nothing: summaries are not for the user's eyes.
struct Quiet;

#[async_trait::async_trait]
impl Sink for Quiet {
    async fn piece(&mut self, _text: &str) {}
    fn restart(&mut self) {}
}

/// The exchange, its usage and its event, into the outcome.
fn record(
    conversations: &Conversations,
    exchange: Exchange<'_>,
    ctx: &Context<'_>,
    completion: Completion,
    summary: Option<(String, u32, Completion)>,
    question_tokens: u32,
    out: &mut Outcome,
) {
    let Some(user_id) = ctx.user_id() else { return };
    let (mut input, mut output, mut cost) = (
        completion.input_tokens,
        completion.output_tokens,
        completion.cost_micro_usd,
    );
    let summary = summary.map(|(text, upto, made)| {
        input = input.saturating_add(made.input_tokens);
        output = output.saturating_add(made.output_tokens);
        cost = cost.saturating_add(made.cost_micro_usd);
        (text, upto)
    });
    let day = day_of(ctx.now);
    let turn = |speaker, text: String, tokens, provider| TurnRecord {
        speaker,
        user_id,
        text,
        at: ctx.now,
        tokens,
        update_id: ctx.update_id,
        provider,
    };
    out.events.push(ctx.event(EventKind::LlmTurn {
        personality: exchange.personality.name.clone(),
        provider: completion.provider.to_string(),
        input_tokens: input,
        output_tokens: output,
        ok: true,
    }));
    conversations.metrics.llm_turn(exchange.retry);
    out.conversation
        .push(ConversationChange::from(StoredExchange {
            key: exchange.key,
            number: exchange.number,
            personality: exchange.personality.name.clone(),
            question: (!exchange.retry).then(|| {
                turn(
                    Speaker::User,
                    exchange.question.clone(),
                    question_tokens,
                    None,
                )
            }),
            answer: turn(
                Speaker::Assistant,
                completion.text,
                completion.output_tokens,
                Some(completion.provider.to_string()),
            ),
            replaces_answer: exchange.retry,
            summary,
            usage: UsageDelta {
                user_id,
                provider: completion.provider.to_string(),
                day,
                month: civil_month(i64::from(day)),
                input_tokens: input,
                output_tokens: output,
                cost_micro_usd: cost,
            },
        }));
}

/// The text without the bot's `@name`, which addressed it in a group.
fn strip_mention<'t>(text: &'t str, bot_username: Option<&str>) -> std::borrow::Cow<'t, str> {
    let Some(name) = bot_username.filter(|n| !n.is_empty()) else {
        return text.into();
    };
    let mention = format!("@{name}");
    let lower = text.to_lowercase();
    // Lower-casing can change byte lengths outside ASCII; only strip when it did not.
    if lower.len() != text.len() {
        return text.into();
    }
    match lower.find(&mention.to_lowercase()) {
        Some(at) => {
            let mut stripped = String::with_capacity(text.len());
            stripped.push_str(text[..at].trim_end());
            let rest = text[at + mention.len()..]
                .trim_start_matches([',', ':'])
                .trim_start();
            if !stripped.is_empty() && !rest.is_empty() {
                stripped.push(' ');
            }
            stripped.push_str(rest);
            stripped.into()
        }
        None => text.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::router::Router;
    use crate::handlers::testing::{update, user};
    use crate::ml::{Analysis, Score, SpamLabel};
    use crate::store::records::Event;

    /// A conversation over a fresh store whose provider listens nowhere: nothing here
    /// may reach it.
    fn conversations(dir: &std::path::Path) -> Conversations {
        let config = Config::parse(
            "[[llm.providers]]\nname = \"p\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n\n\
             [[personalities]]\nname = \"friend\"\nprovider = \"p\"\n",
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        let store = Store::open(dir).unwrap();
        Conversations::from_config(&config, store, Arc::new(Metrics::default())).unwrap()
    }

    #[test]
    fn a_text_the_spam_model_flags_never_reaches_the_model() {
        let dir = tempfile::tempdir().unwrap();
        let conversations = conversations(dir.path());
        let update = update("win a free iphone now");
        let crate::telegram::types::UpdateKind::Message(message) = &update.kind else {
            unreachable!()
        };
        let user = user();
        let router = Router::from_config(&Config::default()).unwrap();
        let ctx = Context {
            update_id: 1,
            update_kind: "message",
            chat_id: 7,
            topic: None,
            message: Some(message),
            callback: None,
            command: None,
            args: "",
            user: Some(&user),
            is_new_user: false,
            conversation: None,
            session: None,
            router: &router,
            ml: None,
            analysis: Some(Analysis {
                spam: Score {
                    label: SpamLabel::Spam,
                    score: 0.97,
                },
                sentiment: Score {
                    label: SentimentLabel::Neutral,
                    score: 0.5,
                },
            }),
            live: None,
            bot_username: None,
            now: UnixSecs(1_700_000_000),
            session_ttl_secs: 600,
        };
        let mut out = Outcome::default();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(handle(&conversations, "friend", true, &ctx, &mut out));
        assert!(out.actions.is_empty() && out.conversation.is_empty());
        assert!(matches!(
            out.events.as_slice(),
            [Event { kind: EventKind::LlmRefused { reason }, .. }] if reason == "spam"
        ));
    }

    #[test]
    fn a_mention_of_the_bot_is_taken_out_of_the_question() {
        assert_eq!(
            strip_mention("@EdgeBot what is 2+2?", Some("edgebot")),
            "what is 2+2?"
        );
        assert_eq!(strip_mention("hey @edgebot, hi", Some("edgebot")), "hey hi");
        assert_eq!(strip_mention("no mention", Some("edgebot")), "no mention");
        assert_eq!(strip_mention("@edgebot", None), "@edgebot");
    }
}
