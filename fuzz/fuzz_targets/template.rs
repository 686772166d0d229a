//! `Template::parse` on arbitrary text, and `render` of what parses with arbitrary
//! values: templates come from the config, values from users' names.

#![no_main]

use arbitrary::Arbitrary;
use edgebot::template::{Field, Template, Values};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    template: &'a str,
    first_name: &'a str,
    last_name: &'a str,
    username: &'a str,
    user_id: i64,
    message_count: u64,
    referrals: u32,
    language: &'a str,
}

impl Values for Input<'_> {
    fn value(&self, field: Field, out: &mut String) {
        match field {
            Field::FirstName => out.push_str(self.first_name),
            Field::LastName => out.push_str(self.last_name),
            Field::Username => out.push_str(self.username),
            Field::UserId => out.push_str(&self.user_id.to_string()),
            Field::MessageCount => out.push_str(&self.message_count.to_string()),
            Field::Referrals => out.push_str(&self.referrals.to_string()),
            Field::Language => out.push_str(self.language),
        }
    }
}

fuzz_target!(|input: Input<'_>| {
    if let Ok(template) = Template::parse(input.template) {
        let rendered = template.render(&input);
        // A template without braces is its own rendering.
        if !input.template.contains(['{', '}']) {
            assert_eq!(rendered, input.template);
        }
    }
});
