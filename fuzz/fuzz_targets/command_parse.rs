//! `command::parse` on arbitrary text with arbitrary entities (offsets and lengths are
//! UTF-16 units that a client may get wrong), and `parse_deep_link` on the arguments and
//! on arbitrary text. Checks the promises callers rely on: a command name is a valid,
//! lowercased name and the arguments are a slice of the text.

#![no_main]

use arbitrary::Arbitrary;
use edgebot::telegram::command::{self, CommandParse, DeepLink};
use edgebot::telegram::types::MessageEntity;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    text: &'a str,
    entities: Vec<Entity<'a>>,
    bot_username: Option<&'a str>,
    payload: &'a str,
}

#[derive(Debug, Arbitrary)]
struct Entity<'a> {
    /// Mostly `bot_command`, the only kind the parser looks at.
    command: bool,
    other_kind: &'a str,
    /// Small values hit the text; `huge` reaches the overflow edges.
    offset: u8,
    length: u16,
    huge: Option<usize>,
}

impl Entity<'_> {
    fn to_entity(&self) -> MessageEntity {
        MessageEntity {
            kind: if self.command {
                "bot_command".to_owned()
            } else {
                self.other_kind.to_owned()
            },
            offset: usize::from(self.offset % 4),
            length: self.huge.unwrap_or(usize::from(self.length)),
        }
    }
}

fn check_deep_link(args: &str) {
    match command::parse_deep_link(args) {
        Some(DeepLink::Referral(referrer)) => assert!(referrer > 0),
        Some(DeepLink::Other(payload)) => {
            assert!(!payload.is_empty() && payload.len() <= 64);
        }
        None => {}
    }
}

fuzz_target!(|input: Input<'_>| {
    let entities: Vec<MessageEntity> = input.entities.iter().map(Entity::to_entity).collect();
    if let CommandParse::Ours(cmd) = command::parse(input.text, &entities, input.bot_username) {
        assert!(!cmd.name.is_empty() && cmd.name.len() <= 32, "{cmd:?}");
        assert!(
            cmd.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{cmd:?}"
        );
        let text = input.text.as_bytes().as_ptr_range();
        let args = cmd.args.as_bytes().as_ptr_range();
        assert!(
            text.start <= args.start && args.end <= text.end,
            "arguments outside the text"
        );
        check_deep_link(cmd.args);
    }
    check_deep_link(input.payload);
});
