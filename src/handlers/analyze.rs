//! `/analyze TEXT`, or `/analyze` as a reply to a message: the text's sentiment and
//! spam score, in plain words.

use crate::engine::context::{Context, Outcome};
use crate::ml::Analysis;

pub(crate) async fn handle(ctx: &Context<'_>, out: &mut Outcome) {
    let replied = ctx
        .message
        .and_then(|m| m.reply_to_message.as_deref())
        .and_then(|m| m.text_or_caption());
    let text = Some(ctx.args).filter(|a| !a.is_empty()).or(replied);
    let Some(text) = text else {
        out.send(
            ctx,
            "Send /analyze followed by a text, or reply /analyze to a message.".into(),
        );
        return;
    };
    let Some(ml) = ctx.ml else {
        out.send(ctx, "Text analysis is switched off on this bot.".into());
        return;
    };
    let answer = match ml.analyze(text).await {
        Some(analysis) => describe(&analysis),
        None => "I could not analyze that text just now. Please try again.".into(),
    };
    out.send_with(ctx, answer, None, true);
}

/// The analysis in words a person reads at a glance.
pub(crate) fn describe(analysis: &Analysis) -> String {
    let spam = analysis.spam_probability();
    let verdict = match spam {
        p if p >= 0.9 => "very likely spam",
        p if p >= 0.5 => "possibly spam",
        p if p >= 0.1 => "probably not spam",
        _ => "not spam",
    };
    format!(
        "Sentiment: {} ({:.0}% sure)\nSpam: {verdict} ({:.0}% spam score)",
        analysis.sentiment.label.as_str(),
        analysis.sentiment.score * 100.0,
        spam * 100.0
    )
}

#[cfg(test)]
mod tests {
    use super::describe;
    use crate::config::HandlerName;
    use crate::engine::router::Target;
    use crate::handlers::testing::{outcome, sent_text, update, user};
    use crate::ml::{Analysis, Score, SentimentLabel, SpamLabel};

    #[test]
    fn plain_words_for_the_numbers() {
        let analysis = Analysis {
            spam: Score {
                label: SpamLabel::Ham,
                score: 0.97,
            },
            sentiment: Score {
                label: SentimentLabel::Positive,
                score: 0.876,
            },
        };
        assert_eq!(
            describe(&analysis),
            "Sentiment: positive (88% sure)\nSpam: not spam (3% spam score)"
        );
    }

    #[test]
    fn without_text_or_models_it_says_what_to_do() {
        let target = Target::Handler(HandlerName::Analyze);
        let out = outcome(&target, &update("/analyze"), &user(), "", false);
        assert!(sent_text(&out).contains("followed by a text"));
        let out = outcome(&target, &update("/analyze hi"), &user(), "hi", false);
        assert!(sent_text(&out).contains("switched off"));
    }
}
