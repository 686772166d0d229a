//! `/feedback`: a two-step conversation. The command asks for a note and opens a session;
//! the sender's next text in that chat is recorded as feedback and closes it.

use crate::engine::context::{Context, Outcome};
use crate::store::records::{ConversationState, EventKind, SessionEdit};

pub(crate) async fn handle(ctx: &Context<'_>, out: &mut Outcome) {
    if ctx.user_id().is_none() {
        return;
    }
    if ctx.conversation == Some(ConversationState::AwaitingFeedback) {
        let text = ctx.message.and_then(|m| m.text_or_caption()).unwrap_or("");
        continue_feedback(ctx, out, text);
        return;
    }
    if !ctx.args.is_empty() {
        record(ctx, out, ctx.args);
        return;
    }
    out.session = ctx.session_change(SessionEdit::Conversation(Some(
        ConversationState::AwaitingFeedback,
    )));
    out.send(
        ctx,
        "What would you like to tell the bot's owner? Send it as your next message.".into(),
    );
}

/// The message that answers an open feedback session.
fn continue_feedback(ctx: &Context<'_>, out: &mut Outcome, text: &str) {
    out.session = ctx.session_change(SessionEdit::Conversation(None));
    record(ctx, out, text);
}

fn record(ctx: &Context<'_>, out: &mut Outcome, text: &str) {
    out.events.push(ctx.event(EventKind::Feedback {
        text: text.to_owned(),
    }));
    out.send(ctx, "Thank you! Your feedback was recorded.".into());
}

#[cfg(test)]
mod tests {
    use crate::calendar::UnixSecs;
    use crate::config::HandlerName;
    use crate::engine::router::Target;
    use crate::handlers::testing::{outcome, sent_text, update, user};
    use crate::store::records::{ConversationState, EventKind, SessionEdit};

    const FEEDBACK: Target = Target::Handler(HandlerName::Feedback);

    #[test]
    fn asks_then_opens_a_session() {
        let out = outcome(&FEEDBACK, &update("/feedback"), &user(), "", false);
        assert!(sent_text(&out).contains("next message"));
        let change = out.session.expect("a session opened");
        assert_eq!(
            change.edit,
            SessionEdit::Conversation(Some(ConversationState::AwaitingFeedback))
        );
        let session = change.applied_to(None).expect("a conversation is kept");
        assert_eq!(session.expires_at, UnixSecs(1_700_000_200 + 600));
        assert_eq!(session.internal_user_id, None);
    }

    #[test]
    fn inline_feedback_is_recorded_at_once() {
        let out = outcome(
            &FEEDBACK,
            &update("/feedback great bot"),
            &user(),
            "great bot",
            false,
        );
        assert!(out.session.is_none());
        assert_eq!(
            out.events[0].kind,
            EventKind::Feedback {
                text: "great bot".into()
            }
        );
    }
}
