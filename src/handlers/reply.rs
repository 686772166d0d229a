//! Reply templates from the config: render the text for the sender and send it, with
//! its keyboard, as a reply when the route says so. A pressed button is acknowledged
//! first, so the client stops its spinner.

use crate::engine::context::{Context, NoUser, Outcome};
use crate::engine::router::Reply;
use crate::telegram::methods::{Action, AnswerCallbackQuery};

pub(crate) async fn handle(reply: &Reply, ctx: &Context<'_>, out: &mut Outcome) {
    let text = match ctx.user {
        Some(user) => reply.text.render(user),
        None => reply.text.render(&NoUser),
    };
    if let Some(query) = ctx.callback {
        out.actions
            .push(Action::AnswerCallbackQuery(AnswerCallbackQuery::silent(
                query.id.clone(),
            )));
    }
    out.send_with(ctx, text, reply.keyboard.clone(), reply.reply_to_message);
}

#[cfg(test)]
mod tests {
    use crate::engine::router::{Reply, Target};
    use crate::handlers::testing::{outcome, update, user};
    use crate::telegram::methods::Action;
    use crate::template::Template;
    use std::sync::Arc;

    #[test]
    fn renders_for_the_sender_and_replies_to_the_message() {
        let target = Target::Reply(Arc::new(Reply {
            text: Template::parse("Hi {first_name}, message {message_count}").unwrap(),
            reply_to_message: true,
            keyboard: None,
        }));
        let out = outcome(&target, &update("rules"), &user(), "", false);
        let [Action::SendMessage(sent)] = out.actions.as_slice() else {
            panic!("one message")
        };
        assert_eq!(sent.text, "Hi Ada, message 3");
        assert_eq!(sent.reply_parameters.as_ref().unwrap().message_id, 10);
    }
}
