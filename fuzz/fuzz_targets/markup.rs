//! Any text, as a model's Markdown answer, into `edgebot::telegram::markup`: `to_html`,
//! then `split` at a small limit and at Telegram's 4,096. Nothing may panic, and what
//! comes out must be HTML Telegram takes — checked with the fake Bot API's own parser
//! (`edgebot::fake::botapi::parse_html`, written apart from the bot's markup code) —
//! showing what `html_to_plain` says it shows. Every piece must hold its limit in UTF-16
//! units and show something, and the pieces, in order, must be the whole answer's
//! visible text less only whitespace at the cuts. The fake's parser and `html_to_plain`
//! also read the raw input, which must not panic either.
//!
//! The input's first byte is the small limit (taken modulo 64, so 0 and 1 test the floor
//! of 2); the rest, made valid UTF-8, is the answer.

#![no_main]

use edgebot::fake::botapi::parse_html;
use edgebot::telegram::markup::{html_to_plain, split, to_html};
use libfuzzer_sys::fuzz_target;

/// Telegram's limit on a message's text after entities parsing.
const TELEGRAM_LIMIT: usize = 4096;

/// What Telegram shows for one piece of the bot's HTML, checked against the bot's view.
fn shown(html: &str) -> String {
    let shown = match parse_html(html) {
        Ok(shown) => shown,
        Err(e) => panic!("Telegram would refuse {html:?}: {e}"),
    };
    assert_eq!(shown, html_to_plain(html), "in {html:?}");
    shown
}

fn check_split(markdown: &str, whole: &str, limit: usize) {
    let mut rest = whole;
    for piece in split(markdown, limit) {
        let text = shown(&piece);
        assert!(!text.trim().is_empty(), "an empty piece");
        let units = text.encode_utf16().count();
        assert!(
            units <= limit.max(2),
            "{units} units over {limit}: {piece:?}"
        );
        // The piece comes next, after nothing but whitespace.
        let gap = rest.len() - rest.trim_start().len();
        let Some(at) = rest
            .char_indices()
            .map(|(at, _)| at)
            .take_while(|at| *at <= gap)
            .find(|at| rest[*at..].starts_with(&text))
        else {
            panic!("{text:?} is not next in {rest:?}");
        };
        rest = &rest[at + text.len()..];
    }
    assert!(rest.trim().is_empty(), "{rest:?} was lost");
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let markdown = String::from_utf8_lossy(rest);
    let _ = parse_html(&markdown);
    let _ = html_to_plain(&markdown);

    let whole = shown(&to_html(&markdown));
    check_split(&markdown, &whole, usize::from(first % 64));
    check_split(&markdown, &whole, TELEGRAM_LIMIT);
});
