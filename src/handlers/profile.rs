//! `/profile`: what the bot knows about the sender, and their referral link.

use crate::engine::context::{Context, Outcome};

pub async fn handle(ctx: &Context<'_>, out: &mut Outcome) {
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
        format_date(user.first_seen),
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

/// A unix time as `YYYY-MM-DD HH:MM UTC`, without a date crate for one line of output.
fn format_date(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm), valid for the whole i64 day range we meet.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::format_date;
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

    #[test]
    fn dates() {
        assert_eq!(format_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(format_date(1_798_761_599), "2026-12-31 23:59 UTC");
    }
}
