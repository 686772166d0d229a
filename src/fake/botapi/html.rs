//! Telegram's HTML parse mode, as the Bot API reads a `text` or `caption` sent with
//! `parse_mode: "HTML"`: what it refuses, with Telegram's words and byte offsets, and the
//! visible text of what it accepts (whose length is what the 4,096 limit counts).
//!
//! Written for the fake from Telegram's observable behaviour, apart from the bot's own
//! markup code (`telegram::markup`), so that a mistake there cannot hide here too:
//!
//! * Tags: `b`, `strong`, `i`, `em`, `u`, `ins`, `s`, `strike`, `del`, `a`, `code`, `pre`,
//!   `blockquote`, `tg-spoiler`, `span` (only with `class="tg-spoiler"`), `tg-emoji`
//!   (with a numeric `emoji-id`) and `tg-time`; names in any case. Anything else is an
//!   "Unsupported start tag", including the empty name of a lone `<` ("a < b").
//! * An end tag must close the innermost open one, by the same lowercase name; `</>`
//!   closes whatever is open. Every start tag must be closed by the end.
//! * Attributes are `name="value"`, `name='value'` or `name=token` (letters, digits, `.`
//!   and `-`); only `blockquote expandable` stands without a value.
//! * `&lt;`, `&gt;`, `&amp;`, `&quot;` and `&#N;`/`&#xN;` are decoded, the `;` optional;
//!   any other `&` is text, as Telegram keeps it.
//! * Like Telegram, an `<a>` without `href` is accepted (its text becomes the link, or
//!   no link if that is no URL), and how entities nest is not checked: Telegram drops
//!   what it cannot nest rather than refusing the message.

/// Why Telegram cannot parse an HTML text; `Display` is Telegram's own wording, which
/// the Bot API puts after "can't parse entities: ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HtmlError {
    #[error("Unclosed start tag at byte offset {0}")]
    UnclosedStartTag(usize),
    #[error("Unclosed start tag \"{tag}\" at byte offset {at}")]
    UnclosedStartTagNamed { tag: String, at: usize },
    #[error("Unsupported start tag \"{tag}\" at byte offset {at}")]
    UnsupportedStartTag { tag: String, at: usize },
    #[error("Empty attribute name in the tag \"{tag}\" at byte offset {at}")]
    EmptyAttributeName { tag: String, at: usize },
    #[error(
        "Expected equal sign in declaration of an attribute of the tag \"{tag}\" at byte offset {at}"
    )]
    ExpectedEqualSign { tag: String, at: usize },
    #[error("Unexpected end of name token at byte offset {0}")]
    NameTokenEnd(usize),
    #[error("Tag \"span\" must have class \"tg-spoiler\" at byte offset {0}")]
    SpanWithoutSpoiler(usize),
    #[error("Unexpected end tag at byte offset {0}")]
    UnexpectedEndTag(usize),
    #[error("Unclosed end tag at byte offset {0}")]
    UnclosedEndTag(usize),
    #[error(
        "Unmatched end tag at byte offset {at}, expected \"</{expected}>\", found \"</{found}>\""
    )]
    UnmatchedEndTag {
        at: usize,
        expected: String,
        found: String,
    },
    #[error("Can't find end tag corresponding to start tag \"{0}\"")]
    MissingEndTag(String),
    #[error("Invalid custom emoji identifier specified")]
    InvalidCustomEmoji,
}

const TAGS: &[&str] = &[
    "a",
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "code",
    "pre",
    "blockquote",
    "tg-spoiler",
    "span",
    "tg-emoji",
    "tg-time",
];

/// The whitespace Telegram skips inside tags.
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c)
}

/// A start tag still open, and the one attribute Telegram keeps of it.
struct Open {
    name: String,
    argument: String,
}

/// The visible text of `html`, or why Telegram refuses it.
pub fn parse_html(html: &str) -> Result<String, HtmlError> {
    let mut text = String::with_capacity(html.len());
    let mut open: Vec<Open> = Vec::new();
    let mut pos = 0;
    while let Some(found) = html[pos..].find(['<', '&']) {
        let at = pos + found;
        text.push_str(&html[pos..at]);
        if html[at..].starts_with('&') {
            match entity(&html[at..]) {
                Some((c, len)) => {
                    text.push(c);
                    pos = at + len;
                }
                None => {
                    text.push('&');
                    pos = at + 1;
                }
            }
        } else {
            pos = tag(html, at, &mut open)?;
        }
    }
    text.push_str(&html[pos..]);
    match open.pop() {
        Some(last) => Err(HtmlError::MissingEndTag(last.name)),
        None => Ok(text),
    }
}

/// The character an entity at the start of `rest` stands for, and its length.
fn entity(rest: &str) -> Option<(char, usize)> {
    let bytes = rest.as_bytes();
    let mut end = 1;
    let value = if bytes.get(1) == Some(&b'#') {
        let hex = bytes.get(2) == Some(&b'x');
        end = if hex { 3 } else { 2 };
        let radix = if hex { 16 } else { 10 };
        let mut code: u32 = 0;
        while let Some(digit) = bytes.get(end).and_then(|b| char::from(*b).to_digit(radix)) {
            code = code * radix + digit;
            end += 1;
            if code >= 0x10_ffff {
                return None;
            }
        }
        if code == 0 || end >= 10 {
            return None;
        }
        char::from_u32(code)?
    } else {
        while bytes.get(end).is_some_and(u8::is_ascii_alphabetic) {
            end += 1;
        }
        match &rest[1..end] {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            _ => return None,
        }
    };
    if bytes.get(end) == Some(&b';') {
        end += 1;
    }
    Some((value, end))
}

/// Reads the tag at `begin` (a `<`), opening or closing it in `open`; returns where the
/// text goes on.
fn tag(html: &str, begin: usize, open: &mut Vec<Open>) -> Result<usize, HtmlError> {
    let bytes = html.as_bytes();
    let at = |i: usize| bytes.get(i).copied();
    let mut i = begin + 1;
    if at(i) == Some(b'/') {
        if open.is_empty() {
            return Err(HtmlError::UnexpectedEndTag(begin));
        }
        i += 1;
        let name_start = i;
        while at(i).is_some_and(|b| !is_space(b) && b != b'>') {
            i += 1;
        }
        // Stopped at an ASCII byte or the end: a character boundary.
        let found = &html[name_start..i];
        while at(i).is_some_and(is_space) {
            i += 1;
        }
        if at(i) != Some(b'>') {
            return Err(HtmlError::UnclosedEndTag(begin));
        }
        let Some(closed) = open.pop() else {
            return Err(HtmlError::UnexpectedEndTag(begin));
        };
        if !found.is_empty() && found != closed.name {
            return Err(HtmlError::UnmatchedEndTag {
                at: begin,
                expected: closed.name,
                found: found.to_owned(),
            });
        }
        if closed.name == "tg-emoji" && !closed.argument.parse::<i64>().is_ok_and(|id| id != 0) {
            return Err(HtmlError::InvalidCustomEmoji);
        }
        return Ok(i + 1);
    }

    let name_start = i;
    while at(i).is_some_and(|b| !is_space(b) && b != b'>') {
        i += 1;
    }
    if at(i).is_none() {
        return Err(HtmlError::UnclosedStartTag(begin));
    }
    let name = html[name_start..i].to_ascii_lowercase();
    if !TAGS.contains(&name.as_str()) {
        return Err(HtmlError::UnsupportedStartTag {
            tag: name,
            at: begin,
        });
    }
    let mut argument = String::new();
    loop {
        while at(i).is_some_and(is_space) {
            i += 1;
        }
        if at(i) == Some(b'>') {
            break;
        }
        let attribute_start = i;
        while at(i).is_some_and(|b| !is_space(b) && b != b'=' && b != b'>') {
            i += 1;
        }
        let attribute = &html[attribute_start..i];
        if attribute.is_empty() {
            return Err(HtmlError::EmptyAttributeName {
                tag: name,
                at: begin,
            });
        }
        while at(i).is_some_and(is_space) {
            i += 1;
        }
        if at(i) != Some(b'=') {
            if name == "blockquote" && attribute == "expandable" {
                argument = "1".to_owned();
                continue;
            }
            return Err(HtmlError::ExpectedEqualSign {
                tag: name,
                at: begin,
            });
        }
        i += 1;
        while at(i).is_some_and(is_space) {
            i += 1;
        }
        let value = match at(i) {
            None => {
                return Err(HtmlError::UnclosedStartTagNamed {
                    tag: name,
                    at: begin,
                });
            }
            Some(quote @ (b'"' | b'\'')) => {
                i += 1;
                let mut value = String::new();
                while let Some(byte) = at(i).filter(|b| *b != quote) {
                    let rest = &html[i..];
                    match (byte == b'&').then(|| entity(rest)).flatten() {
                        Some((c, len)) => {
                            value.push(c);
                            i += len;
                        }
                        None => {
                            let c = rest.chars().next().unwrap_or('\u{fffd}');
                            value.push(c);
                            i += c.len_utf8().max(1);
                        }
                    }
                }
                if at(i).is_some() {
                    i += 1;
                }
                value
            }
            Some(_) => {
                let token_start = i;
                while at(i).is_some_and(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
                    i += 1;
                }
                if at(i).is_some_and(|b| !is_space(b) && b != b'>') {
                    return Err(HtmlError::NameTokenEnd(token_start));
                }
                html[token_start..i].to_ascii_lowercase()
            }
        };
        if at(i).is_none() {
            return Err(HtmlError::UnclosedStartTag(begin));
        }
        match (name.as_str(), attribute) {
            ("a", "href") | ("tg-emoji", "emoji-id") => argument = value,
            ("code", "class") => {
                if let Some(language) = value.strip_prefix("language-") {
                    argument = language.to_owned();
                }
            }
            ("span", "class") => {
                if let Some(class) = value.strip_prefix("tg-") {
                    argument = class.to_owned();
                }
            }
            _ => {}
        }
    }
    if name == "span" && argument != "spoiler" {
        return Err(HtmlError::SpanWithoutSpoiler(begin));
    }
    open.push(Open { name, argument });
    Ok(i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(html: &str) -> String {
        parse_html(html).unwrap_err().to_string()
    }

    #[test]
    fn accepted_html_gives_its_visible_text() {
        let html = "<b>bold <i>both</i></b> <STRONG>s</strong> <a href=\"https://e.com/?a=1&amp;b=2\">link</a> \
                    <pre><code class=\"language-rust\">a &lt; b</code></pre> <span class='tg-spoiler'>x</span> \
                    <blockquote expandable>q</blockquote> <tg-emoji emoji-id=\"5368324170671202286\">👍</tg-emoji> \
                    <a>no href</a> <b >spaced</b > <u>u</> AT&T &#128512;&#x1F600;&quot &unknown;";
        assert_eq!(
            parse_html(html).unwrap(),
            "bold both s link a < b x q 👍 no href spaced u AT&T 😀😀\" &unknown;"
        );
    }

    #[test]
    fn refusals_in_telegrams_words() {
        assert_eq!(
            refused("a < b"),
            "Unsupported start tag \"\" at byte offset 2"
        );
        assert_eq!(
            refused("<div>x</div>"),
            "Unsupported start tag \"div\" at byte offset 0"
        );
        assert_eq!(
            refused("ok <b>bold"),
            "Can't find end tag corresponding to start tag \"b\""
        );
        assert_eq!(
            refused("<b><i>x</b></i>"),
            "Unmatched end tag at byte offset 7, expected \"</i>\", found \"</b>\""
        );
        assert_eq!(refused("x</b>"), "Unexpected end tag at byte offset 1");
        assert_eq!(refused("<b>x</b"), "Unclosed end tag at byte offset 4");
        assert_eq!(refused("x <b"), "Unclosed start tag at byte offset 2");
        assert_eq!(
            refused("<a href=https://e.com>x</a>"),
            "Unexpected end of name token at byte offset 8"
        );
        assert_eq!(
            refused("<a href>x</a>"),
            "Expected equal sign in declaration of an attribute of the tag \"a\" at byte offset 0"
        );
        assert_eq!(
            refused("<a href=\"x>y"),
            "Unclosed start tag at byte offset 0"
        );
        assert_eq!(
            refused("<a href="),
            "Unclosed start tag \"a\" at byte offset 0"
        );
        assert_eq!(
            refused("<span>x</span>"),
            "Tag \"span\" must have class \"tg-spoiler\" at byte offset 0"
        );
        assert_eq!(
            refused("<tg-emoji emoji-id=\"x\">y</tg-emoji>"),
            "Invalid custom emoji identifier specified"
        );
        assert_eq!(
            refused("<B>x</B>"),
            "Unmatched end tag at byte offset 4, expected \"</b>\", found \"</B>\""
        );
    }
}
