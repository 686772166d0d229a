//! The answer when no route matched: the nearest FAQ entry when the models find one
//! close enough in meaning, otherwise a pointer to /help.

use crate::engine::context::{Context, Outcome};

pub(crate) async fn handle(ctx: &Context<'_>, out: &mut Outcome) {
    let text = ctx.message.and_then(|m| m.text_or_caption());
    if let (Some(ml), Some(text)) = (ctx.ml, text)
        && let Some(answer) = ml.faq_answer(text).await
    {
        out.send(ctx, answer.to_owned());
        return;
    }
    out.send(
        ctx,
        "I did not understand that. Send /help to see what I can do.".into(),
    );
}
