//! `/help`: the commands of the routing table with their descriptions.

use crate::engine::context::{Context, Outcome};

pub(crate) async fn handle(ctx: &Context<'_>, out: &mut Outcome) {
    let mut text = String::from("Here is what I can do:");
    for command in ctx.router.commands() {
        text.push_str("\n/");
        text.push_str(&command.name);
        if !command.description.is_empty() {
            text.push_str(" — ");
            text.push_str(&command.description);
        }
    }
    out.send(ctx, text);
}

#[cfg(test)]
mod tests {
    use crate::config::HandlerName;
    use crate::engine::router::Target;
    use crate::handlers::testing::{outcome, sent_text, update, user};

    #[test]
    fn lists_every_command_with_its_description() {
        let out = outcome(
            &Target::Handler(HandlerName::Help),
            &update("/help"),
            &user(),
            "",
            false,
        );
        let text = sent_text(&out);
        assert!(
            text.contains("/start — Register and get a greeting"),
            "{text}"
        );
        assert!(
            text.contains("/profile — What the bot knows about you"),
            "{text}"
        );
        assert!(text.contains("/about"), "{text}");
    }
}
