//! `/profile`: what the bot knows about the sender, and their referral link.

use crate::calendar::utc_minute;
use crate::engine::context::{Context, Outcome};

pub(crate) async fn handle(ctx: &Context<'_>, out: &mut Outcome) {
    let Some(user) = ctx.user else {
        out.send(ctx, "I only keep profiles of people.".into());
        return;
    };
    let mut text = format!(
        "Your profile\nName: {}{}\nFirst seen: {}\nMessages sent: {}\nLanguage: {}\nReferrals: {}",
        user.first_name,
        user.username
            .as_deref()
            .map(|u| format!(" (@{u})"))
            .unwrap_or_default(),
        utc_minute(user.first_seen),
        user.message_count,
        user.language_code.as_deref().unwrap_or("unknown"),
        user.referrals,
    );
    if let Some(bot) = ctx.bot_username {
        text.push_str(&format!(
            "\nInvite friends: https://t.me/{bot}?start=ref_{}",
            user.id
        ));
    }
    out.send(ctx, text);
}

#[cfg(test)]
mod tests {
    use crate::config::HandlerName;
    use crate::engine::router::Target;
    use crate::handlers::testing::{outcome, sent_text, update, user};

    #[test]
    fn shows_what_the_store_knows() {
        let out = outcome(
            &Target::Handler(HandlerName::Profile),
            &update("/profile"),
            &user(),
            "",
            false,
        );
        let text = sent_text(&out);
        assert!(text.contains("Ada (@ada)"), "{text}");
        assert!(text.contains("Messages sent: 3"), "{text}");
        assert!(text.contains("Language: en"), "{text}");
        assert!(text.contains("Referrals: 2"), "{text}");
        assert!(text.contains("First seen: 2023-11-14 22:13 UTC"), "{text}");
        assert!(text.contains("start=ref_7"), "{text}");
    }
}
