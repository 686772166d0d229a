//! Reply templates: text from the config with placeholders such as `{first_name}`.
//!
//! A template is parsed once, when the config loads, so a misspelt placeholder is a
//! config error with its line, and rendering is a walk over prepared pieces. `{{` and
//! `}}` stand for literal braces.

use std::fmt::Write;

/// The values a template can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    FirstName,
    LastName,
    Username,
    UserId,
    MessageCount,
    Referrals,
    Language,
}

impl Field {
    const ALL: [(&'static str, Field); 7] = [
        ("first_name", Field::FirstName),
        ("last_name", Field::LastName),
        ("username", Field::Username),
        ("user_id", Field::UserId),
        ("message_count", Field::MessageCount),
        ("referrals", Field::Referrals),
        ("language", Field::Language),
    ];
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Value(Field),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "unknown placeholder `{{{0}}}`; known: first_name, last_name, username, user_id, message_count, referrals, language"
    )]
    UnknownPlaceholder(String),
    #[error("unclosed `{{` at byte {0}; write `{{{{` for a literal brace")]
    Unclosed(usize),
    #[error("stray `}}` at byte {0}; write `}}}}` for a literal brace")]
    Stray(usize),
}

/// What a placeholder is filled from.
pub trait Values {
    fn value(&self, field: Field, out: &mut String);
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text.char_indices().peekable();
        while let Some((at, ch)) = rest.next() {
            match ch {
                '{' if rest.peek().map(|p| p.1) == Some('{') => {
                    rest.next();
                    literal.push('{');
                }
                '}' if rest.peek().map(|p| p.1) == Some('}') => {
                    rest.next();
                    literal.push('}');
                }
                '{' => {
                    let close = text[at..].find('}').ok_or(TemplateError::Unclosed(at))?;
                    let name = &text[at + 1..at + close];
                    let field = Field::ALL
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, f)| *f)
                        .ok_or_else(|| TemplateError::UnknownPlaceholder(name.to_owned()))?;
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Value(field));
                    while rest.next_if(|(i, _)| *i <= at + close).is_some() {}
                }
                '}' => return Err(TemplateError::Stray(at)),
                other => literal.push(other),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(Template { pieces })
    }

    pub fn render(&self, values: &impl Values) -> String {
        let mut out = String::with_capacity(64);
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Value(field) => values.value(*field, &mut out),
            }
        }
        out
    }
}

/// Writes a number without an intermediate allocation.
pub(crate) fn push_number(out: &mut String, n: impl std::fmt::Display) {
    let _ = write!(out, "{n}");
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Ada;
    impl Values for Ada {
        fn value(&self, field: Field, out: &mut String) {
            match field {
                Field::FirstName => out.push_str("Ada"),
                Field::MessageCount => push_number(out, 3),
                _ => {}
            }
        }
    }

    #[test]
    fn renders_placeholders_and_escapes() {
        let t = Template::parse("Hi {first_name}! {{not}} {message_count}}}").unwrap();
        assert_eq!(t.render(&Ada), "Hi Ada! {not} 3}");
        assert_eq!(Template::parse("plain").unwrap().render(&Ada), "plain");
        assert_eq!(Template::parse("").unwrap().render(&Ada), "");
        assert_eq!(
            Template::parse("{first_name}{first_name}")
                .unwrap()
                .render(&Ada),
            "AdaAda"
        );
    }

    #[test]
    fn rejects_what_it_cannot_render() {
        assert_eq!(
            Template::parse("Hi {name}"),
            Err(TemplateError::UnknownPlaceholder("name".into()))
        );
        assert_eq!(
            Template::parse("Hi {first_name"),
            Err(TemplateError::Unclosed(3))
        );
        assert_eq!(Template::parse("a } b"), Err(TemplateError::Stray(2)));
        assert!(Template::parse("é{first_name}ü").is_ok());
    }
}
