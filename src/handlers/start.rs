//! `/start`: registers the sender, greets them by name, and credits a referral when
//! they came through someone's `ref_<id>` link.

use crate::engine::context::{Context, Outcome};
use crate::store::records::EventKind;
use crate::telegram::command::{DeepLink, parse_deep_link};

pub(crate) async fn handle(ctx: &Context<'_>, out: &mut Outcome) {
    let name = ctx.user.map_or("there", |u| u.first_name.as_str());
    match parse_deep_link(ctx.args) {
        Some(DeepLink::Referral(referrer)) if ctx.is_new_user => out.referrer = Some(referrer),
        Some(DeepLink::Other(payload)) => out.events.push(ctx.event(EventKind::Command {
            name: format!("start:{payload}"),
        })),
        _ => {}
    }
    let text = if ctx.is_new_user {
        format!("Welcome, {name}! You are registered. Send /help to see what I can do.")
    } else {
        format!("Welcome back, {name}! Send /help to see what I can do.")
    };
    out.send(ctx, text);
}

#[cfg(test)]
mod tests {
    use crate::config::HandlerName;
    use crate::engine::router::Target;
    use crate::handlers::testing::{outcome, sent_text, update, user};

    const START: Target = Target::Handler(HandlerName::Start);

    #[test]
    fn greets_new_and_returning_users_by_name() {
        let out = outcome(&START, &update("/start"), &user(), "", true);
        assert!(sent_text(&out).starts_with("Welcome, Ada!"));
        let out = outcome(&START, &update("/start"), &user(), "", false);
        assert!(sent_text(&out).starts_with("Welcome back, Ada!"));
    }

    #[test]
    fn a_referral_counts_only_for_a_new_user() {
        let out = outcome(&START, &update("/start ref_99"), &user(), "ref_99", true);
        assert_eq!(out.referrer, Some(99));
        let out = outcome(&START, &update("/start ref_99"), &user(), "ref_99", false);
        assert_eq!(out.referrer, None);
    }
}
