//! The built-in handlers, one file each, and the reply-template handler.
//!
//! A handler is a plain async function from a [`Context`] to an [`Outcome`]: it decides
//! what to say and what to record, and leaves sending and storing to the engine, so each
//! one is tested without a store, a network or a transport.

mod analyze;
mod fallback;
mod feedback;
mod help;
pub(crate) mod llm;
mod profile;
mod reply;
mod service;
mod start;

use crate::config::HandlerName;
use crate::engine::Handlers;
use crate::engine::context::{Context, Outcome};
use crate::engine::router::Target;
use crate::gateway::Services;
use llm::Conversations;

/// The built-in handlers, the services and the conversations that routes may name, as
/// the engine runs them.
pub(crate) struct BuiltIn {
    pub(crate) services: Services,
    /// Only when the config has personalities.
    pub(crate) conversations: Option<Conversations>,
}

#[async_trait::async_trait]
impl Handlers for BuiltIn {
    async fn run(&self, target: &Target, ctx: &Context<'_>, out: &mut Outcome) {
        run(self, target, ctx, out).await;
    }
}

/// Runs the handler a route points to.
async fn run(built_in: &BuiltIn, target: &Target, ctx: &Context<'_>, out: &mut Outcome) {
    match target {
        Target::Handler(HandlerName::Start) => start::handle(ctx, out).await,
        Target::Handler(HandlerName::Help) => help::handle(ctx, out).await,
        Target::Handler(HandlerName::Profile) => profile::handle(ctx, out).await,
        Target::Handler(HandlerName::Feedback) => feedback::handle(ctx, out).await,
        Target::Handler(HandlerName::Analyze) => analyze::handle(ctx, out).await,
        Target::Handler(HandlerName::Fallback) => fallback::handle(ctx, out).await,
        Target::Handler(HandlerName::Ignore) => {}
        Target::Reply(reply) => reply::handle(reply, ctx, out).await,
        Target::Service(name) => service::handle(&built_in.services, name, ctx, out).await,
        // The config's check makes these routes exist only with personalities.
        target => {
            if let Some(conversations) = &built_in.conversations {
                converse(conversations, target, ctx, out).await;
            }
        }
    }
}

/// Runs a conversation's route.
async fn converse(
    conversations: &Conversations,
    target: &Target,
    ctx: &Context<'_>,
    out: &mut Outcome,
) {
    match target {
        Target::Llm(route) => {
            llm::handle(
                conversations,
                &route.personality,
                route.follows_choice,
                ctx,
                out,
            )
            .await
        }
        Target::Handler(HandlerName::Mode) => llm::mode(conversations, ctx, out).await,
        Target::Handler(HandlerName::Reset) => llm::reset(conversations, ctx, out).await,
        Target::Handler(HandlerName::Retry) => llm::retry(conversations, ctx, out).await,
        Target::Handler(HandlerName::Forget) => llm::forget(conversations, ctx, out).await,
        Target::Handler(HandlerName::Usage) => llm::usage(conversations, ctx, out).await,
        _ => {}
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A context over a fixed private-chat update, for handler tests.

    use crate::calendar::UnixSecs;
    use crate::config::Config;
    use crate::engine::context::{Context, Outcome};
    use crate::engine::router::{Router, Target};
    use crate::store::records::{Role, UserRecord, UserStatus};
    use crate::telegram::types::Update;

    pub(crate) fn user() -> UserRecord {
        UserRecord {
            id: 7,
            username: Some("ada".into()),
            first_name: "Ada".into(),
            last_name: None,
            language_code: Some("en".into()),
            role: Role::User,
            status: UserStatus::Active,
            referrer: None,
            referrals: 2,
            message_count: 3,
            first_seen: UnixSecs(1_700_000_000),
            last_seen: UnixSecs(1_700_000_100),
        }
    }

    pub(crate) fn update(text: &str) -> Update {
        let json = serde_json::json!({"update_id": 1, "message": {"message_id": 10, "date": 0,
            "chat": {"id": 7, "type": "private"}, "from": {"id": 7, "first_name": "Ada"}, "text": text}});
        Update::from_json(json.to_string().as_bytes()).unwrap()
    }

    /// Runs the handler behind `target` on `update` from `user`.
    pub(crate) fn outcome(
        target: &Target,
        update: &Update,
        user: &UserRecord,
        args: &str,
        is_new_user: bool,
    ) -> Outcome {
        let router = Router::from_config(&Config::default()).unwrap();
        let crate::telegram::types::UpdateKind::Message(message) = &update.kind else {
            panic!("a message update")
        };
        let ctx = Context {
            update_id: update.update_id,
            update_kind: update.kind.name(),
            chat_id: message.chat.id,
            topic: None,
            message: Some(message),
            callback: None,
            command: None,
            session: None,
            args,
            user: Some(user),
            is_new_user,
            conversation: None,
            router: &router,
            ml: None,
            analysis: None,
            live: None,
            bot_username: Some("edgebot"),
            now: UnixSecs(1_700_000_200),
            session_ttl_secs: 600,
        };
        let mut out = Outcome::default();
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(super::run(
                &super::BuiltIn {
                    services: crate::gateway::Services::none(Default::default()),
                    conversations: None,
                },
                target,
                &ctx,
                &mut out,
            ));
        out
    }

    /// The text of the only message an outcome sends.
    pub(crate) fn sent_text(out: &crate::engine::context::Outcome) -> &str {
        match out.actions.as_slice() {
            [crate::telegram::methods::Action::SendMessage(m)] => &m.text,
            other => panic!("expected one message, got {other:?}"),
        }
    }
}
