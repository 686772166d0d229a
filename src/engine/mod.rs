//! The engine: from one parsed update to committed effects.
//!
//! For each update it loads the sender, asks the guard, parses the command, looks up the
//! route, runs the handler and commits everything the update changed — user counts,
//! events, the conversation, the outbound actions — in one transaction together with the
//! update's removal from the inbox. Transports feed it; the sender drains what it commits.
//!
//! A slow route (one that waits on a service) first has the update kept in the inbox
//! through a `Keep`, which lets its transport acknowledge it, and only then runs.

pub(crate) mod context;
pub(crate) mod dispatcher;
pub(crate) mod guard;
pub(crate) mod inbox;
pub(crate) mod lanes;
pub(crate) mod live;
pub mod ml;
pub mod outbound;
pub mod router;
pub mod sender;

use crate::calendar::UnixSecs;
use crate::config::Config;
use crate::store::records::{EventKind, Profile, UserDelta, UserRecord, UserStatus};
use crate::store::{Finish, Finished, Store, StoreError};
use crate::telegram::command::{CommandParse, parse_message};
use crate::telegram::methods::{Action, AnswerCallbackQuery};
use crate::telegram::types::{
    CallbackQuery, ChatKind, ChatMemberStatus, Message, Update, UpdateKind, User,
};
use crate::telemetry::metrics::Metrics;
use context::{Context, Outcome};
use guard::{Guard, Verdict};
use router::{Incoming, Router, RouterError, Target};
use std::sync::Arc;
use tracing::Instrument;

/// The notice a flooding user gets, once per cooldown.
const SLOW_DOWN: &str =
    "You are sending messages faster than I can read them. Please slow down a little.";

/// The code behind the routing table's handler targets.
///
/// The engine runs handlers through this seam and names none of them: the application
/// passes the built-in set (`crate::handlers::BuiltIn`), so the handlers sit above the
/// engine and may use its context types without a cycle.
#[async_trait::async_trait]
pub(crate) trait Handlers: Send + Sync {
    async fn run(&self, target: &Target, ctx: &Context<'_>, out: &mut Outcome);
}

/// What keeps an update durable before a slow route handles it.
#[async_trait::async_trait]
pub(crate) trait Keep: Send + Sync {
    /// Puts the update in the inbox (if it is not there yet) and releases whoever waits
    /// to acknowledge it.
    async fn keep(&self) -> Result<Kept, StoreError>;
}

/// What [`Keep::keep`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kept {
    /// The update is in the inbox now; handling goes on.
    Now,
    /// It was kept or finished before (a redelivery): handling stops here.
    Before,
}

/// The keeper of an update that is in the inbox already (long polling, a replay at
/// start), or that is kept nowhere (the console).
pub(crate) struct AlreadyKept;

#[async_trait::async_trait]
impl Keep for AlreadyKept {
    async fn keep(&self) -> Result<Kept, StoreError> {
        Ok(Kept::Now)
    }
}

pub struct Engine {
    store: Store,
    handlers: Arc<dyn Handlers>,
    ml: Option<Arc<ml::MlService>>,
    metrics: Arc<Metrics>,
    router: Router,
    guard: Guard,
    bot_username: Option<String>,
    session_ttl_secs: u32,
    /// Where slow handlers show progress; none in the console.
    live: Option<Arc<dyn live::Live>>,
    /// Whether a conversation answers a group's text only when addressed, by default
    /// and per chat.
    require_mention: bool,
    mention_by_chat: std::collections::HashMap<i64, bool>,
}

impl Engine {
    pub(crate) fn new(
        config: &Config,
        store: Store,
        bot_username: Option<String>,
        handlers: Arc<dyn Handlers>,
        ml: Option<Arc<ml::MlService>>,
        metrics: Arc<Metrics>,
    ) -> Result<Engine, RouterError> {
        Ok(Engine {
            store,
            handlers,
            ml,
            metrics,
            router: Router::from_config(config)?,
            guard: Guard::new(&config.limits.inbound),
            bot_username: bot_username
                .or_else(|| config.bot.username.clone())
                .map(|u| u.trim_start_matches('@').to_owned()),
            // In range by the config's own check: 1..=604800.
            session_ttl_secs: u32::try_from(config.storage.session_ttl_secs).unwrap_or(u32::MAX),
            live: None,
            require_mention: config.llm.require_mention,
            mention_by_chat: config
                .llm
                .groups
                .iter()
                .map(|g| {
                    (
                        g.chat_id,
                        g.require_mention.unwrap_or(config.llm.require_mention),
                    )
                })
                .collect(),
        })
    }

    /// The engine, with slow handlers showing progress through `live`.
    pub(crate) fn with_live(mut self, live: Arc<dyn live::Live>) -> Engine {
        self.live = Some(live);
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn router(&self) -> &Router {
        &self.router
    }

    /// Handles one update that is in the inbox already, or kept nowhere (the console),
    /// and commits its effects. An update finished before is not handled again.
    pub async fn process(&self, update: &Update) -> Result<Finished, StoreError> {
        self.process_kept_by(update, &AlreadyKept).await
    }

    /// [`Engine::process`], where a slow route first asks `keeper` to keep the update.
    pub(crate) async fn process_kept_by(
        &self,
        update: &Update,
        keeper: &dyn Keep,
    ) -> Result<Finished, StoreError> {
        let now = UnixSecs::now();
        let mut finish = Finish {
            update_id: update.update_id,
            finished_at: now,
            ..Finish::default()
        };
        match &update.kind {
            UpdateKind::Message(message) | UpdateKind::BusinessMessage(message) => {
                if let Some(from) = &message.from
                    && self
                        .on_message(update, message, from, now, keeper, &mut finish)
                        .await?
                        == Kept::Before
                {
                    return Ok(Finished::AlreadyFinished);
                }
            }
            UpdateKind::CallbackQuery(query) => {
                if self
                    .on_callback(update, query, now, keeper, &mut finish)
                    .await?
                    == Kept::Before
                {
                    return Ok(Finished::AlreadyFinished);
                }
            }
            UpdateKind::MyChatMember(change) if change.chat.kind == ChatKind::Private => {
                // In a private chat, "kicked" means the user blocked the bot.
                let status = change.new_chat_member.as_ref().map(|m| m.status);
                let mut delta = seen(&change.from, now);
                delta.status = Some(if status == Some(ChatMemberStatus::Kicked) {
                    UserStatus::Blocked
                } else {
                    UserStatus::Active
                });
                finish.users.push(delta);
            }
            other => {
                if let Some(from) = update.from()
                    && !matches!(other, UpdateKind::Ignored(_) | UpdateKind::Unknown(_))
                {
                    finish.users.push(seen(from, now));
                }
            }
        }
        let span = tracing::info_span!("store.finish", update_id = update.update_id);
        self.store.finish(finish).instrument(span).await
    }

    async fn on_message(
        &self,
        update: &Update,
        message: &Message,
        from: &User,
        now: UnixSecs,
        keeper: &dyn Keep,
        finish: &mut Finish,
    ) -> Result<Kept, StoreError> {
        let mut delta = seen(from, now);
        delta.messages = 1;
        let before = self.store.user(from.id)?;
        let Some((user, is_new)) = self.admit(&mut delta, before, message.chat.id, finish) else {
            return Ok(Kept::Now);
        };
        let command = parse_message(message, self.bot_username.as_deref());
        let mut ctx = self.context(update, message.chat.id, &user, now);
        ctx.is_new_user = is_new;
        ctx.message = Some(message);
        ctx.topic = message
            .message_thread_id
            .filter(|_| message.is_topic_message == Some(true));
        let mut out = Outcome::default();
        let mut target = None;
        match &command {
            CommandParse::ForAnotherBot => {}
            CommandParse::Ours(command) => {
                out.events.push(ctx.event(EventKind::Command {
                    name: command.name.clone(),
                }));
                ctx.args = command.args;
                ctx.command = Some(&command.name);
                target = self.router.route(Incoming::Command(&command.name));
            }
            CommandParse::NotACommand => match message.text_or_caption() {
                Some(text) => {
                    if let Some(ml) = &self.ml
                        && let Some(analysis) = ml.analyze(text).await
                    {
                        out.events.push(ctx.event(EventKind::Text {
                            sentiment: analysis.sentiment.label.as_str().to_owned(),
                            sentiment_score: analysis.sentiment.score,
                            spam_score: analysis.spam_probability(),
                        }));
                        ctx.analysis = Some(analysis);
                    }
                    ctx.session = self.store.session(message.chat.id, from.id, now)?;
                    ctx.conversation = ctx.session.as_ref().and_then(|s| s.conversation);
                    let incoming = match ctx.conversation {
                        Some(state) => Incoming::Conversation(state),
                        None => Incoming::Text {
                            text,
                            chat: message.chat.kind,
                        },
                    };
                    target = self
                        .router
                        .route(incoming)
                        .filter(|target| self.may_answer(target, message));
                }
                None => {
                    target = self.router.route(Incoming::Other {
                        chat: message.chat.kind,
                    });
                }
            },
        }
        if let Some(target) = target
            && self.answer(target, &mut ctx, &mut out, keeper).await? == Kept::Before
        {
            return Ok(Kept::Before);
        }
        apply(out, delta, finish);
        Ok(Kept::Now)
    }

    async fn on_callback(
        &self,
        update: &Update,
        query: &CallbackQuery,
        now: UnixSecs,
        keeper: &dyn Keep,
        finish: &mut Finish,
    ) -> Result<Kept, StoreError> {
        let mut delta = seen(&query.from, now);
        let before = self.store.user(query.from.id)?;
        // A button under a message answers in that message's chat; an inline-mode
        // button has no message, and answers in the user's private chat.
        let chat_id = query.message.as_ref().map_or(query.from.id, |m| m.chat.id);
        let Some((user, is_new)) = self.admit(&mut delta, before, chat_id, finish) else {
            return Ok(Kept::Now);
        };
        let mut ctx = self.context(update, chat_id, &user, now);
        ctx.is_new_user = is_new;
        ctx.message = query.message.as_ref();
        ctx.callback = Some(query);
        let data = query.data.as_deref().unwrap_or("");
        let mut out = Outcome::default();
        out.events.push(ctx.event(EventKind::Callback {
            data: data.to_owned(),
        }));
        match self.router.route(Incoming::Callback(data)) {
            Some(target) => {
                if self.answer(target, &mut ctx, &mut out, keeper).await? == Kept::Before {
                    return Ok(Kept::Before);
                }
            }
            // A stale or foreign button: stop the client's spinner, say nothing.
            None => out
                .actions
                .push(Action::AnswerCallbackQuery(AnswerCallbackQuery::silent(
                    query.id.clone(),
                ))),
        }
        apply(out, delta, finish);
        Ok(Kept::Now)
    }

    /// Runs the route's handler. A slow route first has the update kept; a service also
    /// gets the sender's session.
    async fn answer(
        &self,
        target: &Target,
        ctx: &mut Context<'_>,
        out: &mut Outcome,
        keeper: &dyn Keep,
    ) -> Result<Kept, StoreError> {
        if target.is_slow() {
            if keeper.keep().await? == Kept::Before {
                return Ok(Kept::Before);
            }
            // Only a service reads the session; a conversation keeps its own dialog.
            if matches!(target, Target::Service(_))
                && ctx.session.is_none()
                && let Some(user_id) = ctx.user_id()
            {
                ctx.session = self.store.session(ctx.chat_id, user_id, ctx.now)?;
            }
        }
        self.run(target, ctx, out).await;
        Ok(Kept::Now)
    }

    /// Whether a text may reach its route. A conversation in a group answers only when
    /// addressed (unless the chat says otherwise): most of a group's messages are people
    /// talking to each other, and every answer costs tokens.
    fn may_answer(&self, target: &Target, message: &Message) -> bool {
        if !matches!(target, Target::Llm(_)) || message.chat.kind == ChatKind::Private {
            return true;
        }
        let required = self
            .mention_by_chat
            .get(&message.chat.id)
            .copied()
            .unwrap_or(self.require_mention);
        !required || addressed(message, self.bot_username.as_deref())
    }

    /// Applies bans and the inbound limit. Returns the sender as they will be stored when
    /// the update may reach a handler; otherwise records only the sighting.
    fn admit(
        &self,
        delta: &mut UserDelta,
        before: Option<UserRecord>,
        chat_id: i64,
        finish: &mut Finish,
    ) -> Option<(UserRecord, bool)> {
        let is_new = before.is_none();
        match before.as_ref().map(|u| u.status) {
            Some(UserStatus::Banned) => {
                finish.users.push(delta.clone());
                return None;
            }
            // Writing to the bot again means they unblocked it.
            Some(UserStatus::Blocked) => delta.status = Some(UserStatus::Active),
            _ => {}
        }
        match self.guard.check(delta.id) {
            Verdict::Pass => Some((delta.apply(before), is_new)),
            verdict => {
                self.metrics.inbound_dropped.inc();
                if verdict == Verdict::Notify {
                    finish
                        .outbox
                        .push(outbound::call_of(&Action::send(chat_id, SLOW_DOWN)));
                    finish.events.push(crate::store::records::Event {
                        at_ms: finish.finished_at.to_millis(),
                        user_id: Some(delta.id),
                        chat_id: Some(chat_id),
                        kind: EventKind::RateLimited,
                    });
                }
                finish.users.push(delta.clone());
                None
            }
        }
    }

    /// Runs the handler of a route and records how long it took, by route.
    async fn run(&self, target: &Target, ctx: &Context<'_>, out: &mut Outcome) {
        let started = std::time::Instant::now();
        self.handlers.run(target, ctx, out).await;
        self.metrics
            .handler_done(target.name(), started.elapsed().as_secs_f64());
    }

    fn context<'a>(
        &'a self,
        update: &'a Update,
        chat_id: i64,
        user: &'a UserRecord,
        now: UnixSecs,
    ) -> Context<'a> {
        Context {
            update_id: update.update_id,
            update_kind: update.kind.name(),
            command: None,
            session: None,
            chat_id,
            topic: None,
            message: None,
            callback: None,
            args: "",
            user: Some(user),
            is_new_user: false,
            conversation: None,
            router: &self.router,
            ml: self.ml.as_deref(),
            analysis: None,
            live: self.live.as_deref(),
            bot_username: self.bot_username.as_deref(),
            now,
            session_ttl_secs: self.session_ttl_secs,
        }
    }
}

/// Whether a group message speaks to the bot: it mentions the bot's `@name`, or replies
/// to one of the bot's messages.
fn addressed(message: &Message, bot_username: Option<&str>) -> bool {
    let Some(name) = bot_username.filter(|n| !n.is_empty()) else {
        return false;
    };
    let replied_to_bot = message
        .reply_to_message
        .as_ref()
        .and_then(|r| r.from.as_ref())
        .is_some_and(|from| {
            from.is_bot
                && from
                    .username
                    .as_deref()
                    .is_some_and(|u| u.eq_ignore_ascii_case(name))
        });
    let mentioned = message.text_or_caption().is_some_and(|text| {
        text.match_indices('@').any(|(at, _)| {
            text.get(at + 1..at + 1 + name.len())
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
                && !text[at + 1 + name.len()..]
                    .starts_with(|c: char| c.is_alphanumeric() || c == '_')
        })
    });
    replied_to_bot || mentioned
}

/// A sighting of a user: their current names, no counts.
fn seen(user: &User, now: UnixSecs) -> UserDelta {
    let mut delta = UserDelta::new(user.id, now);
    delta.profile = Some(Profile {
        username: user.username.clone(),
        first_name: user.first_name.clone(),
        last_name: user.last_name.clone(),
        language_code: user.language_code.clone(),
    });
    delta
}

fn apply(out: Outcome, mut delta: UserDelta, finish: &mut Finish) {
    delta.referrer = out.referrer;
    finish.users.push(delta);
    finish.events.extend(out.events);
    finish.session = out.session;
    finish.conversation = out.conversation;
    finish
        .outbox
        .extend(out.actions.iter().map(outbound::call_of));
}
