//! Bot commands (`/cmd@bot args`) and `/start` deep-link payloads.
//!
//! A command is taken from the message's `bot_command` entity at offset 0 when Telegram
//! marked one, else from a leading `/`. Entity offsets count UTF-16 code units, so they
//! are translated to byte offsets before slicing.

use super::types::{Message, MessageEntity};

/// A command addressed to this bot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command<'a> {
    /// The command's name, lowercased, without the slash or the `@bot` suffix.
    pub name: String,
    /// Everything after the command, trimmed.
    pub args: &'a str,
}

/// What the start of a message's text says about commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandParse<'a> {
    /// Not a command: plain text.
    NotACommand,
    /// A command for this bot.
    Ours(Command<'a>),
    /// `/cmd@otherbot`: a command for another bot in the same group, to be left alone.
    ForAnotherBot,
}

/// The longest command name Telegram accepts.
const MAX_COMMAND_LEN: usize = 32;

/// Parses the command at the start of `message`'s text, if any.
pub(crate) fn parse_message<'a>(
    message: &'a Message,
    bot_username: Option<&str>,
) -> CommandParse<'a> {
    match message.text.as_deref() {
        Some(text) => parse(text, &message.entities, bot_username),
        None => CommandParse::NotACommand,
    }
}

/// Parses the command at the start of `text`. `entities` may be empty (console input,
/// hand-written updates); `bot_username` is compared case-insensitively and, when unknown,
/// any `@suffix` is accepted.
pub fn parse<'a>(
    text: &'a str,
    entities: &[MessageEntity],
    bot_username: Option<&str>,
) -> CommandParse<'a> {
    let end = match entities
        .iter()
        .find(|e| e.kind == "bot_command" && e.offset == 0)
    {
        Some(entity) => match utf16_to_byte_offset(text, entity.length) {
            Some(end) => end,
            None => return CommandParse::NotACommand,
        },
        None if text.starts_with('/') => {
            text.find(|c: char| c.is_whitespace()).unwrap_or(text.len())
        }
        None => return CommandParse::NotACommand,
    };
    let Some(token) = text.get(1..end) else {
        return CommandParse::NotACommand;
    };
    let (name, target) = match token.split_once('@') {
        Some((name, target)) => (name, Some(target)),
        None => (token, None),
    };
    let valid_name = !name.is_empty()
        && name.len() <= MAX_COMMAND_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid_name {
        return CommandParse::NotACommand;
    }
    if let (Some(target), Some(ours)) = (target, bot_username)
        && !target.eq_ignore_ascii_case(ours.trim_start_matches('@'))
    {
        return CommandParse::ForAnotherBot;
    }
    CommandParse::Ours(Command {
        name: name.to_ascii_lowercase(),
        args: text[end..].trim(),
    })
}

/// Translates an offset in UTF-16 code units into a byte offset of `text`.
fn utf16_to_byte_offset(text: &str, units: usize) -> Option<usize> {
    let mut seen = 0;
    for (byte, ch) in text.char_indices() {
        if seen == units {
            return Some(byte);
        }
        seen += ch.len_utf16();
    }
    (seen == units).then_some(text.len())
}

/// The payload of a `t.me/bot?start=PAYLOAD` deep link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeepLink<'a> {
    /// `ref_<user id>`: the user who shared the link.
    Referral(i64),
    /// Any other valid payload, kept for analytics.
    Other(&'a str),
}

/// The longest payload Telegram passes through a deep link.
const MAX_PAYLOAD_LEN: usize = 64;

/// Parses `/start` arguments as a deep-link payload: 1 to 64 of `[A-Za-z0-9_-]`.
/// Anything else is not a deep link (a person typed `/start something else`).
pub fn parse_deep_link(args: &str) -> Option<DeepLink<'_>> {
    let valid = !args.is_empty()
        && args.len() <= MAX_PAYLOAD_LEN
        && args
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return None;
    }
    match args
        .strip_prefix("ref_")
        .and_then(|code| code.parse::<i64>().ok())
    {
        Some(referrer) if referrer > 0 => Some(DeepLink::Referral(referrer)),
        _ => Some(DeepLink::Other(args)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(offset: usize, length: usize) -> MessageEntity {
        MessageEntity {
            kind: "bot_command".into(),
            offset,
            length,
        }
    }

    fn ours<'a>(name: &str, args: &'a str) -> CommandParse<'a> {
        CommandParse::Ours(Command {
            name: name.into(),
            args,
        })
    }

    #[test]
    fn plain_commands_and_arguments() {
        assert_eq!(parse("/help", &[], None), ours("help", ""));
        assert_eq!(parse("/Start  ref_42 ", &[], None), ours("start", "ref_42"));
        assert_eq!(parse("hello /help", &[], None), CommandParse::NotACommand);
        assert_eq!(parse("/", &[], None), CommandParse::NotACommand);
        assert_eq!(parse("/not-a-cmd", &[], None), CommandParse::NotACommand);
    }

    #[test]
    fn addressed_commands_are_ours_only_when_they_name_this_bot() {
        let bot = Some("EdgeBot");
        assert_eq!(parse("/help@edgebot", &[], bot), ours("help", ""));
        assert_eq!(
            parse("/help@other_bot x", &[], bot),
            CommandParse::ForAnotherBot
        );
        assert_eq!(parse("/help@anything", &[], None), ours("help", ""));
    }

    #[test]
    fn entity_lengths_count_utf16_units() {
        let text = "/echo 😀 hi";
        assert_eq!(parse(text, &[entity(0, 5)], None), ours("echo", "😀 hi"));
        assert_eq!(
            parse("/a😀", &[entity(0, 4)], None),
            CommandParse::NotACommand
        );
        assert_eq!(
            parse("/echo", &[entity(0, 99)], None),
            CommandParse::NotACommand
        );
        assert_eq!(
            parse("plain", &[entity(2, 3)], None),
            CommandParse::NotACommand
        );
    }

    #[test]
    fn deep_links() {
        assert_eq!(parse_deep_link("ref_42"), Some(DeepLink::Referral(42)));
        assert_eq!(
            parse_deep_link("promo-2026"),
            Some(DeepLink::Other("promo-2026"))
        );
        assert_eq!(parse_deep_link("ref_x"), Some(DeepLink::Other("ref_x")));
        assert_eq!(parse_deep_link("ref_-5"), Some(DeepLink::Other("ref_-5")));
        assert_eq!(parse_deep_link(""), None);
        assert_eq!(parse_deep_link("two words"), None);
        assert_eq!(parse_deep_link(&"a".repeat(65)), None);
        assert!(parse_deep_link(&"a".repeat(64)).is_some());
    }
}
