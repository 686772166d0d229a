//! What the fake answers and how it counts: a request of either kind, once validated,
//! is a [`Prompt`]; its [`Answer`] is a scripted text or an echo, cut to `max_tokens`,
//! with the token counts both wire formats report (the rules are in the module
//! documentation of `fake::llm`).

/// Bytes of UTF-8 per token, rounded up.
const BYTES_PER_TOKEN: usize = 4;
/// Tokens each message of the prompt costs on top of its text.
const MESSAGE_TOKENS: u32 = 3;
/// Tokens every prompt costs on top of its messages.
const PROMPT_TOKENS: u32 = 3;
/// Characters in one delta of a stream.
const DELTA_CHARS: usize = 4;

/// The tokens of a text: one per 4 bytes, rounded up.
pub(crate) fn tokens(text: &str) -> u32 {
    u32::try_from(text.len().div_ceil(BYTES_PER_TOKEN)).unwrap_or(u32::MAX)
}

/// One message of a prompt, reduced to what the fake looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Turn {
    pub(crate) role: String,
    /// Its text parts, joined with `\n`.
    pub(crate) text: String,
}

/// A validated request of either kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Prompt {
    pub(crate) model: String,
    /// The messages, a system prompt first when there is one.
    pub(crate) turns: Vec<Turn>,
    pub(crate) max_tokens: Option<u32>,
    pub(crate) stream: bool,
    /// OpenAI's `stream_options.include_usage`.
    pub(crate) include_usage: bool,
}

impl Prompt {
    pub(crate) fn input_tokens(&self) -> u32 {
        self.turns.iter().fold(PROMPT_TOKENS, |sum, turn| {
            sum.saturating_add(MESSAGE_TOKENS)
                .saturating_add(tokens(&turn.text))
        })
    }

    /// `You said: <the last user message's text>`.
    pub(crate) fn echo(&self) -> String {
        let said = self
            .turns
            .iter()
            .rev()
            .find(|turn| turn.role == "user")
            .map_or("", |turn| turn.text.as_str());
        format!("You said: {said}")
    }
}

/// What the fake answers one prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) text: String,
    /// Whether `max_tokens` cut the text.
    pub(crate) truncated: bool,
    pub(crate) input_tokens: u32,
    pub(crate) output_tokens: u32,
}

impl Answer {
    /// The answer to `prompt`: `scripted` when given, else the echo; cut to the prompt's
    /// `max_tokens`.
    pub(crate) fn new(prompt: &Prompt, scripted: Option<String>) -> Answer {
        let mut text = scripted.unwrap_or_else(|| prompt.echo());
        let limit = prompt.max_tokens.map_or(usize::MAX, |max| {
            usize::try_from(max)
                .unwrap_or(usize::MAX)
                .saturating_mul(BYTES_PER_TOKEN)
        });
        let truncated = text.len() > limit;
        if truncated {
            let cut = (0..=limit)
                .rev()
                .find(|&at| text.is_char_boundary(at))
                .unwrap_or(0);
            text.truncate(cut);
        }
        Answer {
            output_tokens: tokens(&text),
            input_tokens: prompt.input_tokens(),
            truncated,
            text,
        }
    }

    /// The text in stream deltas of a few characters each.
    pub(crate) fn deltas(&self) -> Vec<&str> {
        let mut deltas = Vec::new();
        let mut rest = self.text.as_str();
        while !rest.is_empty() {
            let end = rest
                .char_indices()
                .nth(DELTA_CHARS)
                .map_or(rest.len(), |(at, _)| at);
            let (delta, tail) = rest.split_at(end);
            deltas.push(delta);
            rest = tail;
        }
        deltas
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(turns: &[(&str, &str)], max_tokens: Option<u32>) -> Prompt {
        Prompt {
            model: "m".to_owned(),
            turns: turns
                .iter()
                .map(|(role, text)| Turn {
                    role: (*role).to_owned(),
                    text: (*text).to_owned(),
                })
                .collect(),
            max_tokens,
            stream: false,
            include_usage: false,
        }
    }

    #[test]
    fn tokens_are_four_bytes_rounded_up() {
        assert_eq!(tokens(""), 0);
        assert_eq!(tokens("a"), 1);
        assert_eq!(tokens("abcd"), 1);
        assert_eq!(tokens("abcde"), 2);
        // Bytes, not characters: "😀" is 4 bytes, "Привет" 12.
        assert_eq!(tokens("😀"), 1);
        assert_eq!(tokens("Привет"), 3);
    }

    #[test]
    fn the_prompt_costs_three_plus_three_per_message_plus_texts() {
        let p = prompt(&[("system", "Be brief."), ("user", "Hi")], None);
        // 3 + (3 + 3) + (3 + 1)
        assert_eq!(p.input_tokens(), 13);
        assert_eq!(prompt(&[], None).input_tokens(), 3);
    }

    #[test]
    fn echo_repeats_the_last_user_message() {
        let p = prompt(
            &[("user", "first"), ("assistant", "ok"), ("user", "second")],
            None,
        );
        assert_eq!(Answer::new(&p, None).text, "You said: second");
        assert_eq!(Answer::new(&p, Some("x".to_owned())).text, "x");
        assert_eq!(prompt(&[("system", "s")], None).echo(), "You said: ");
    }

    #[test]
    fn max_tokens_cuts_at_a_character_boundary_to_exactly_that_many_tokens() {
        let p = prompt(&[("user", "ab")], Some(2));
        let answer = Answer::new(&p, Some("Привет, мир".to_owned()));
        // 8 bytes allowed: "Прив" is 8 bytes.
        assert_eq!(answer.text, "Прив");
        assert!(answer.truncated);
        assert_eq!(answer.output_tokens, 2);

        let answer = Answer::new(&p, Some("a😀b".to_owned()));
        // 6 bytes, within the 8 allowed: not cut.
        assert_eq!((answer.text.as_str(), answer.truncated), ("a😀b", false));

        let answer = Answer::new(&p, Some("abcdefg😀".to_owned()));
        // 11 bytes; the boundary at or below 8 is 7.
        assert_eq!(answer.text, "abcdefg");
        assert_eq!(answer.output_tokens, 2);
    }

    #[test]
    fn deltas_are_four_characters_and_add_up_to_the_text() {
        let p = prompt(&[("user", "Приветики 😀!")], None);
        let answer = Answer::new(&p, None);
        let deltas = answer.deltas();
        assert_eq!(deltas.concat(), answer.text);
        assert!(deltas.iter().all(|d| (1..=4).contains(&d.chars().count())));
        assert_eq!(deltas[0], "You ");
    }
}
