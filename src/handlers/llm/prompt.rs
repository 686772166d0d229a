//! What one exchange sends the model: the personality's system prompt with the dialog's
//! summary and hints, then the most recent turns that fit the history budget, then the
//! question. Turns that no longer fit are what the rolling summary folds in.
//!
//! Pure functions over stored turns, so the exact prompt is tested without a model.

use crate::llm::{self, Speaker as LlmSpeaker};
use crate::store::records::{Speaker, TurnRecord};

/// Which of a dialog's unsummarized turns go into the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    /// Index (into the turns given) of the first turn sent; those before it overflow.
    pub(crate) first: usize,
}

/// The newest turns whose tokens, with the question's, fit `budget`. A turn is sent whole
/// or not at all, and an answer is never sent without its question, so the window
/// starts at a user's turn. The question itself is always sent.
pub(crate) fn window(turns: &[TurnRecord], budget: u32, question_tokens: u32) -> Window {
    let mut used = question_tokens;
    let mut first = turns.len();
    for (i, turn) in turns.iter().enumerate().rev() {
        used = used.saturating_add(turn.tokens);
        if used > budget {
            break;
        }
        first = i;
    }
    while first < turns.len() && turns[first].speaker != Speaker::User {
        first += 1;
    }
    Window { first }
}

/// The system prompt: the personality's, then what the model should know besides.
pub(crate) fn system_prompt(
    personality: &str,
    summary: &str,
    mood: Option<&str>,
    group: bool,
) -> String {
    let mut system = personality.trim().to_owned();
    if group {
        system.push_str(
            "\n\nYou are in a group chat. Each message starts with the name of the person who wrote it.",
        );
    }
    if let Some(mood) = mood {
        system.push_str("\n\nThe user's recent messages sound ");
        system.push_str(mood);
        system.push_str("; let that shape your tone.");
    }
    if !summary.is_empty() {
        system.push_str("\n\nSummary of the conversation so far:\n");
        system.push_str(summary.trim());
    }
    system
}

/// The turns of the prompt, oldest first, ending with the question.
pub(crate) fn turns<'a>(history: &'a [TurnRecord], question: &'a str) -> Vec<llm::Turn<'a>> {
    history
        .iter()
        .map(|turn| llm::Turn {
            speaker: match turn.speaker {
                Speaker::User => LlmSpeaker::User,
                Speaker::Assistant => LlmSpeaker::Assistant,
            },
            text: &turn.text,
        })
        .chain(std::iter::once(llm::Turn {
            speaker: LlmSpeaker::User,
            text: question,
        }))
        .collect()
}

/// The system prompt of a summary call.
pub(crate) const SUMMARY_SYSTEM: &str = "You keep the running summary of a conversation between a user and an assistant. \
Rewrite the summary so that it also covers the new part of the conversation. Keep names, facts, \
preferences and open questions; drop small talk. Answer with the summary only, in the conversation's language.";

/// The one user message of a summary call: the summary so far and the turns to fold in.
pub(crate) fn summary_request(summary: &str, overflow: &[TurnRecord]) -> String {
    let mut text = String::new();
    if !summary.is_empty() {
        text.push_str("Summary so far:\n");
        text.push_str(summary.trim());
        text.push_str("\n\n");
    }
    text.push_str("New part of the conversation:\n");
    for turn in overflow {
        text.push_str(match turn.speaker {
            Speaker::User => "User: ",
            Speaker::Assistant => "Assistant: ",
        });
        text.push_str(turn.text.trim());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::UnixSecs;

    fn turn(speaker: Speaker, text: &str, tokens: u32) -> TurnRecord {
        TurnRecord {
            speaker,
            user_id: 7,
            text: text.into(),
            at: UnixSecs(0),
            tokens,
            update_id: 1,
            provider: None,
        }
    }

    #[test]
    fn the_window_takes_the_newest_turns_that_fit_and_starts_at_a_question() {
        let turns = [
            turn(Speaker::User, "q1", 10),
            turn(Speaker::Assistant, "a1", 30),
            turn(Speaker::User, "q2", 10),
            turn(Speaker::Assistant, "a2", 30),
        ];
        assert_eq!(window(&turns, 1000, 10).first, 0);
        // 10 + 30 + 10 + 30 = 80 fits; with q1 too it would be 90 > 85.
        assert_eq!(window(&turns, 85, 10).first, 2);
        // Only a2 fits: an answer without its question is not sent.
        assert_eq!(window(&turns, 45, 10).first, 4);
        assert_eq!(window(&turns, 5, 10).first, 4);
        assert_eq!(window(&[], 5, 10).first, 0);
    }

    #[test]
    fn the_system_prompt_carries_group_mood_and_summary_in_order() {
        assert_eq!(system_prompt(" Be kind. ", "", None, false), "Be kind.");
        let full = system_prompt("Be kind.", "Ann likes tea.", Some("negative"), true);
        let group = full.find("group chat").unwrap();
        let mood = full.find("sound negative").unwrap();
        let summary = full
            .find("Summary of the conversation so far:\nAnn likes tea.")
            .unwrap();
        assert!(full.starts_with("Be kind.") && group < mood && mood < summary);
    }

    #[test]
    fn the_summary_request_lists_the_old_summary_then_the_turns() {
        let overflow = [
            turn(Speaker::User, "hi", 1),
            turn(Speaker::Assistant, "hello", 1),
        ];
        assert_eq!(
            summary_request("Ann.", &overflow),
            "Summary so far:\nAnn.\n\nNew part of the conversation:\nUser: hi\nAssistant: hello\n"
        );
        assert!(summary_request("", &overflow).starts_with("New part"));
    }
}
