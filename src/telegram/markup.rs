//! Markdown as language models write it, made safe for Telegram's HTML parse mode.
//!
//! Telegram refuses a whole message over one stray `<` or one unclosed tag, so an answer
//! is never sent as the model wrote it. It is parsed into runs of visible text, each with
//! the formatting around it (outermost first), and the HTML is rendered from those runs:
//! balanced and properly nested by construction, whatever the input, with every other
//! character escaped. What the parser does not recognise stays literal text — an unclosed
//! `**` shows as two asterisks.
//!
//! Recognised: paragraphs and line breaks (kept as they are); `**bold**` and `__bold__`;
//! `*italic*` and `_italic_`, never inside a word (`snake_case`, `2*3*4`); `~~strike~~`;
//! `` `code` ``; fenced code blocks (```` ```lang ````, to the end of the text when never
//! closed) as `<pre><code class="language-lang">`; `[text](url)` for `http`, `https`
//! and `tg` URLs (any other URL keeps its text and loses the link); bare and `<…>` URLs
//! kept whole, so that a `_` in one is not read as emphasis; `# headings` as a bold line;
//! `> quotes` as `<blockquote>`; backslash escapes. Lists, tables and rules stay as text.
//!
//! [`split`] cuts a long answer into messages on the same runs, so that a cut never
//! breaks a tag: whatever formatting is open at a cut (a code block, a bold sentence) is
//! closed at the end of one piece and opened again at the start of the next.

use serde_json::{Map, Value};
use std::ops::Range;

/// Formatting Telegram's HTML subset can express.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Mark {
    Quote,
    /// A code block, with its language when the fence named one.
    Pre(Option<String>),
    Bold,
    Italic,
    Strike,
    /// A link to this (allowed) URL.
    Link(String),
    Code,
}

impl Mark {
    fn open(&self, out: &mut String) {
        match self {
            Mark::Quote => out.push_str("<blockquote>"),
            Mark::Pre(None) => out.push_str("<pre>"),
            Mark::Pre(Some(language)) => {
                out.push_str("<pre><code class=\"language-");
                escape_into(language, out, true);
                out.push_str("\">");
            }
            Mark::Bold => out.push_str("<b>"),
            Mark::Italic => out.push_str("<i>"),
            Mark::Strike => out.push_str("<s>"),
            Mark::Link(url) => {
                out.push_str("<a href=\"");
                escape_into(url, out, true);
                out.push_str("\">");
            }
            Mark::Code => out.push_str("<code>"),
        }
    }

    fn close(&self, out: &mut String) {
        out.push_str(match self {
            Mark::Quote => "</blockquote>",
            Mark::Pre(None) => "</pre>",
            Mark::Pre(Some(_)) => "</code></pre>",
            Mark::Bold => "</b>",
            Mark::Italic => "</i>",
            Mark::Strike => "</s>",
            Mark::Link(_) => "</a>",
            Mark::Code => "</code>",
        });
    }
}

/// Visible text and the marks around it, outermost first. Never empty.
#[derive(Clone, Debug, PartialEq)]
struct Run {
    text: String,
    marks: Vec<Mark>,
}

/// The runs of a text, built in order.
#[derive(Default)]
struct Runs(Vec<Run>);

impl Runs {
    /// Appends `text` under `marks`. A mark already around the text is not repeated
    /// (`**a __b__**` is one bold), and text under the same marks as the run before
    /// joins it, so that rendering opens nothing twice.
    fn push(&mut self, text: &str, marks: &[Mark]) {
        if text.is_empty() {
            return;
        }
        let mut kept: Vec<Mark> = Vec::with_capacity(marks.len());
        for mark in marks {
            if !kept.contains(mark) {
                kept.push(mark.clone());
            }
        }
        match self.0.last_mut() {
            Some(last) if last.marks == kept => last.text.push_str(text),
            _ => self.0.push(Run {
                text: text.to_owned(),
                marks: kept,
            }),
        }
    }
}

/// Escapes what HTML parse mode reads as markup; in an attribute value, quotes as well.
fn escape_into(text: &str, out: &mut String, attribute: bool) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' if attribute => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// The HTML of `runs`: between two runs only the marks that differ are closed and
/// opened, innermost first, so every tag is closed in the order it was opened.
fn render(runs: &[Run]) -> String {
    let mut out = String::new();
    let mut open: &[Mark] = &[];
    for run in runs {
        let common = open
            .iter()
            .zip(&run.marks)
            .take_while(|(a, b)| a == b)
            .count();
        for mark in open[common..].iter().rev() {
            mark.close(&mut out);
        }
        for mark in &run.marks[common..] {
            mark.open(&mut out);
        }
        escape_into(&run.text, &mut out, false);
        open = &run.marks;
    }
    for mark in open.iter().rev() {
        mark.close(&mut out);
    }
    out
}

/// `markdown` as Telegram HTML (`parse_mode: "HTML"`): balanced, with only the tags
/// Telegram knows, whatever the input.
pub fn to_html(markdown: &str) -> String {
    render(&parse(markdown))
}

// ---------------------------------------------------------------------------------------
// Blocks: code fences, quotes, headings and paragraphs, line by line.

/// Reads the blocks of `markdown`. Every line of the source is one line of the result,
/// except the fence lines of code blocks, which go.
fn parse(markdown: &str) -> Vec<Run> {
    let normalized = markdown.replace("\r\n", "\n");
    let lines: Vec<&str> = normalized.split('\n').collect();
    let mut runs = Runs::default();
    let mut i = 0;
    while i < lines.len() {
        if i > 0 {
            runs.push("\n", &[]);
        }
        if let Some(fence) = Fence::open(lines[i]) {
            let body = i + 1;
            let mut end = body;
            while end < lines.len() && !fence.closes(lines[end]) {
                end += 1;
            }
            let code = lines[body..end].join("\n");
            runs.push(&code, &[Mark::Pre(fence.language)]);
            // Past the closing fence, or past the end when the block was never closed.
            i = end + 1;
        } else if quoted(lines[i]).is_some() {
            let mut content = Vec::new();
            while let Some(line) = lines.get(i).and_then(|line| quoted(line)) {
                content.push(line);
                i += 1;
            }
            text_lines(&content, &[Mark::Quote], &mut runs);
        } else {
            let start = i;
            while i < lines.len() && Fence::open(lines[i]).is_none() && quoted(lines[i]).is_none() {
                i += 1;
            }
            text_lines(&lines[start..i], &[], &mut runs);
        }
    }
    runs.0
}

/// The opening line of a fenced code block: up to three spaces, then at least three
/// backticks or tildes, then an optional language.
struct Fence {
    marker: char,
    len: usize,
    language: Option<String>,
}

/// A line's indentation, if it is at most the three spaces a block marker allows.
fn unindented(line: &str) -> Option<&str> {
    let rest = line.trim_start_matches(' ');
    (line.len() - rest.len() <= 3).then_some(rest)
}

impl Fence {
    fn open(line: &str) -> Option<Fence> {
        let rest = unindented(line)?;
        let marker = rest.chars().next().filter(|c| *c == '`' || *c == '~')?;
        let len = rest.len() - rest.trim_start_matches(marker).len();
        if len < 3 {
            return None;
        }
        let info = rest[len..].trim();
        if marker == '`' && info.contains('`') {
            return None;
        }
        // Only a plain name goes into the class attribute (`c++`, `objective-c`, `c#`).
        let language = info
            .split_whitespace()
            .next()
            .filter(|l| {
                l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-_.#".contains(c))
            })
            .map(str::to_owned);
        Some(Fence {
            marker,
            len,
            language,
        })
    }

    fn closes(&self, line: &str) -> bool {
        let Some(rest) = unindented(line) else {
            return false;
        };
        let len = rest.len() - rest.trim_start_matches(self.marker).len();
        len >= self.len && rest[len..].trim().is_empty()
    }
}

/// The content of a `> quote` line.
fn quoted(line: &str) -> Option<&str> {
    let rest = unindented(line)?.strip_prefix('>')?;
    Some(rest.strip_prefix(' ').unwrap_or(rest))
}

/// The title of an ATX heading (`## Title ##`); `#hashtag` is no heading.
fn heading(line: &str) -> Option<&str> {
    let rest = unindented(line)?;
    let level = rest.len() - rest.trim_start_matches('#').len();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &rest[level..];
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return None;
    }
    let title = rest.trim();
    // A closing run of `#` belongs to the heading only when it stands apart.
    let unhashed = title.trim_end_matches('#');
    Some(if unhashed.is_empty() {
        unhashed
    } else if unhashed.ends_with([' ', '\t']) {
        unhashed.trim_end()
    } else {
        title
    })
}

/// Lines of text (top level, or inside a quote): headings, blank lines, and paragraphs
/// of consecutive lines, within which emphasis may span line breaks.
fn text_lines(lines: &[&str], base: &[Mark], runs: &mut Runs) {
    let mut i = 0;
    while i < lines.len() {
        if i > 0 {
            runs.push("\n", base);
        }
        if let Some(title) = heading(lines[i]) {
            let mut marks = base.to_vec();
            marks.push(Mark::Bold);
            inline(title, &marks, runs);
            i += 1;
        } else if lines[i].trim().is_empty() {
            i += 1;
        } else {
            let start = i;
            while i < lines.len() && !lines[i].trim().is_empty() && heading(lines[i]).is_none() {
                i += 1;
            }
            inline(&lines[start..i].join("\n"), base, runs);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Inline: code spans, links, URLs, escapes and emphasis within a paragraph.

/// How far a link's label and destination may reach: a `[` with no `](…)` within this
/// is text, so that a text full of brackets costs no more than linear time per bracket.
const MAX_LINK_PART: usize = 2048;

enum Token {
    Text(String),
    Code(String),
    /// A run of emphasis markers, by index into [`Inline::delims`].
    Delim(usize),
    /// A link's label; `url` is `None` when the URL is not one Telegram should open.
    Link {
        url: Option<String>,
        label: Inline,
    },
}

/// A run of `*`, `_` or `~~`, and what matching made of it.
struct Delim {
    marker: char,
    /// Markers not (yet) used by a match; those left at the end are literal text.
    count: usize,
    can_open: bool,
    can_close: bool,
    /// Marks this run opens, innermost first.
    opens: Vec<Mark>,
    /// Marks this run closes, innermost first.
    closes: Vec<Mark>,
}

#[derive(Default)]
struct Inline {
    tokens: Vec<Token>,
    delims: Vec<Delim>,
}

fn inline(text: &str, base: &[Mark], runs: &mut Runs) {
    let parsed = Inline::parse(text, true);
    let mut marks = base.to_vec();
    parsed.flatten(&mut marks, runs);
}

/// The length of the run of `c` that `text` starts with.
fn run_len(text: &str, c: char) -> usize {
    text.len() - text.trim_start_matches(c).len()
}

/// Whether a delimiter run between `prev` and `next` can open and close emphasis.
/// CommonMark's flanking rules, with its rule for `_` applied to `*` as well: a run
/// inside a word neither opens nor closes, so `snake_case` and `2*3*4` stay as they are.
fn flanking(prev: Option<char>, next: Option<char>) -> (bool, bool) {
    let space = |c: Option<char>| c.is_none_or(char::is_whitespace);
    let punct = |c: Option<char>| c.is_some_and(|c| !c.is_alphanumeric() && !c.is_whitespace());
    let left = !space(next) && (!punct(next) || space(prev) || punct(prev));
    let right = !space(prev) && (!punct(prev) || space(next) || punct(next));
    (
        left && (!right || punct(prev)),
        right && (!left || punct(next)),
    )
}

impl Inline {
    fn parse(text: &str, links: bool) -> Inline {
        let mut inline = Inline::default();
        let mut plain = String::new();
        // Code span lengths known to have no closing run from here on: looking again
        // would only rescan the rest of the text.
        let mut unclosed: Vec<usize> = Vec::new();
        let mut pos = 0;
        while let Some(c) = text[pos..].chars().next() {
            let rest = &text[pos..];
            match c {
                '\\' => match rest[1..].chars().next() {
                    Some(escaped) if escaped.is_ascii_punctuation() => {
                        plain.push(escaped);
                        pos += 2;
                    }
                    _ => {
                        plain.push('\\');
                        pos += 1;
                    }
                },
                '`' => {
                    let n = run_len(rest, '`');
                    match (!unclosed.contains(&n))
                        .then(|| code_span(&rest[n..], n))
                        .flatten()
                    {
                        Some((code, used)) => {
                            inline.text(&mut plain);
                            inline.tokens.push(Token::Code(code));
                            pos += n + used;
                        }
                        None => {
                            unclosed.push(n);
                            plain.push_str(&rest[..n]);
                            pos += n;
                        }
                    }
                }
                '[' if links => match link(rest) {
                    Some((label, url, used)) => {
                        inline.text(&mut plain);
                        let label = if label.trim().is_empty() {
                            // Nothing to click on: the URL itself is the text.
                            let mut shown = Inline::default();
                            shown.tokens.push(Token::Text(url.to_owned()));
                            shown
                        } else {
                            Inline::parse(label, false)
                        };
                        let url = allowed_url(url).then(|| url.to_owned());
                        inline.tokens.push(Token::Link { url, label });
                        pos += used;
                    }
                    None => {
                        plain.push('[');
                        pos += 1;
                    }
                },
                '<' => match angle_url(rest) {
                    Some((url, used)) => {
                        plain.push_str(url);
                        pos += used;
                    }
                    None => {
                        plain.push('<');
                        pos += 1;
                    }
                },
                '*' | '_' | '~' => {
                    let n = run_len(rest, c);
                    let prev = text[..pos].chars().next_back();
                    let next = rest[n..].chars().next();
                    let (can_open, can_close) = flanking(prev, next);
                    // Strikethrough is exactly two tildes: `~5 min`, `~~~` are text.
                    if (c == '~' && n != 2) || !(can_open || can_close) {
                        plain.push_str(&rest[..n]);
                    } else {
                        inline.text(&mut plain);
                        inline.tokens.push(Token::Delim(inline.delims.len()));
                        inline.delims.push(Delim {
                            marker: c,
                            count: n,
                            can_open,
                            can_close,
                            opens: Vec::new(),
                            closes: Vec::new(),
                        });
                    }
                    pos += n;
                }
                'h' | 'H'
                    if !text[..pos]
                        .chars()
                        .next_back()
                        .is_some_and(char::is_alphanumeric) =>
                {
                    let len = bare_url(rest).unwrap_or(1);
                    plain.push_str(&rest[..len]);
                    pos += len;
                }
                c => {
                    plain.push(c);
                    pos += c.len_utf8();
                }
            }
        }
        inline.text(&mut plain);
        inline.match_emphasis();
        inline
    }

    /// Ends the pending plain text as a token of its own.
    fn text(&mut self, plain: &mut String) {
        if !plain.is_empty() {
            self.tokens.push(Token::Text(std::mem::take(plain)));
        }
    }

    /// Pairs delimiter runs as CommonMark does: each closer takes the nearest opener of
    /// its kind, two markers (bold, or strikethrough) when both runs have two, else one,
    /// and openers between the two are left as text. Pairs are therefore nested, never
    /// crossed.
    fn match_emphasis(&mut self) {
        let mut openers: Vec<usize> = Vec::new();
        // Per marker, how much of the bottom of `openers` is known to hold none of its
        // kind: a closer that found nothing there leaves it to the next one, so that a
        // text of many lone markers is not searched again and again.
        let mut bottoms = [0usize; 3];
        for closer in 0..self.delims.len() {
            let marker = self.delims[closer].marker;
            let kind = match marker {
                '*' => 0,
                '_' => 1,
                _ => 2,
            };
            if self.delims[closer].can_close {
                while self.delims[closer].count > 0 {
                    let bottom = bottoms[kind].min(openers.len());
                    let found = openers[bottom..]
                        .iter()
                        .rposition(|&o| self.delims[o].marker == marker);
                    let Some(at) = found.map(|at| bottom + at) else {
                        bottoms[kind] = openers.len();
                        break;
                    };
                    let opener = openers[at];
                    let both = self.delims[opener].count.min(self.delims[closer].count);
                    let (used, mark) = match marker {
                        '~' => (2, Mark::Strike),
                        _ if both >= 2 => (2, Mark::Bold),
                        _ => (1, Mark::Italic),
                    };
                    self.delims[opener].count -= used;
                    self.delims[opener].opens.push(mark.clone());
                    self.delims[closer].count -= used;
                    self.delims[closer].closes.push(mark);
                    openers.truncate(at + 1);
                    if self.delims[opener].count == 0 {
                        openers.pop();
                    }
                }
            }
            if self.delims[closer].can_open && self.delims[closer].count > 0 {
                openers.push(closer);
            }
        }
    }

    /// Appends the runs of this text, under `marks` (which it leaves as it found them).
    fn flatten(&self, marks: &mut Vec<Mark>, runs: &mut Runs) {
        let depth = marks.len();
        for token in &self.tokens {
            match token {
                Token::Text(text) => runs.push(text, marks),
                Token::Code(code) => {
                    marks.push(Mark::Code);
                    runs.push(code, marks);
                    marks.pop();
                }
                Token::Delim(index) => {
                    let Some(delim) = self.delims.get(*index) else {
                        continue;
                    };
                    for mark in &delim.closes {
                        if let Some(at) = marks.iter().rposition(|m| m == mark) {
                            marks.remove(at);
                        }
                    }
                    let literal = delim.marker.to_string().repeat(delim.count);
                    runs.push(&literal, marks);
                    marks.extend(delim.opens.iter().rev().cloned());
                }
                Token::Link { url, label } => {
                    let outside = marks.len();
                    if let Some(url) = url {
                        marks.push(Mark::Link(url.clone()));
                    }
                    label.flatten(marks, runs);
                    marks.truncate(outside);
                }
            }
        }
        marks.truncate(depth);
    }
}

/// A code span's content and the bytes it takes after its opening run of `n` backticks:
/// up to the next run of exactly `n`. Line breaks become spaces, and one space on each
/// side goes, as in CommonMark.
fn code_span(after: &str, n: usize) -> Option<(String, usize)> {
    let mut at = 0;
    while let Some(found) = after[at..].find('`') {
        let start = at + found;
        let len = run_len(&after[start..], '`');
        if len == n {
            let content = after[..start].replace('\n', " ");
            let content = match content.strip_prefix(' ').and_then(|c| c.strip_suffix(' ')) {
                Some(inner) if !inner.trim().is_empty() => inner.to_owned(),
                _ => content,
            };
            return Some((content, start + n));
        }
        at = start + len;
    }
    None
}

/// The byte offset of the first `c` in `text` within `max` bytes.
fn find_within(text: &str, c: char, max: usize) -> Option<usize> {
    text.char_indices()
        .take_while(|(at, _)| *at <= max)
        .find(|(_, found)| *found == c)
        .map(|(at, _)| at)
}

/// `[label](destination "title")` at the start of `rest`: the label, the destination
/// and the bytes taken.
fn link(rest: &str) -> Option<(&str, &str, usize)> {
    let mut depth = 0usize;
    let mut label_end = None;
    let mut chars = rest.char_indices();
    while let Some((at, c)) = chars.next() {
        if at > MAX_LINK_PART {
            return None;
        }
        match c {
            '\\' => {
                chars.next();
            }
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth == 0 {
                    label_end = Some(at);
                    break;
                }
            }
            _ => {}
        }
    }
    let label_end = label_end?;
    let inside = rest[label_end + 1..].strip_prefix('(')?;
    let dest = inside.trim_start_matches([' ', '\t']);
    let (url, after_url) = if let Some(bracketed) = dest.strip_prefix('<') {
        let end = find_within(bracketed, '>', MAX_LINK_PART)?;
        let url = &bracketed[..end];
        if url.contains('\n') {
            return None;
        }
        (url, &bracketed[end + 1..])
    } else {
        let mut parens = 0usize;
        let mut end = None;
        for (at, c) in dest.char_indices() {
            if at > MAX_LINK_PART {
                return None;
            }
            match c {
                '(' => parens += 1,
                ')' if parens == 0 => {
                    end = Some(at);
                    break;
                }
                ')' => parens -= 1,
                c if c.is_whitespace() => {
                    end = Some(at);
                    break;
                }
                _ => {}
            }
        }
        let end = end?;
        (&dest[..end], &dest[end..])
    };
    let mut tail = after_url.trim_start_matches([' ', '\t', '\n']);
    if let Some(quote) = tail.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let close = find_within(&tail[1..], quote, MAX_LINK_PART)?;
        tail = tail[close + 2..].trim_start_matches([' ', '\t', '\n']);
    }
    let after = tail.strip_prefix(')')?;
    Some((&rest[1..label_end], url, rest.len() - after.len()))
}

/// Whether a link may point at `url`: web pages and Telegram's own `tg://` links only,
/// never `javascript:`, `file:` or a relative path.
fn allowed_url(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    let scheme = scheme.to_ascii_lowercase();
    matches!(scheme.as_str(), "http" | "https" | "tg") && !rest.is_empty()
}

/// Whether `text` starts with `http://` or `https://`, in any case.
fn starts_with_web_scheme(text: &str) -> bool {
    ["http://", "https://"].iter().any(|scheme| {
        text.get(..scheme.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(scheme))
    })
}

/// A bare URL at the start of `rest`: up to whitespace or `<`, less the punctuation that
/// ends the sentence around it (and a `)` it does not open, as in "(see https://x.org)").
fn bare_url(rest: &str) -> Option<usize> {
    if !starts_with_web_scheme(rest) {
        return None;
    }
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '<' || c == '`')
        .unwrap_or(rest.len());
    let mut url = &rest[..end];
    let opened = url.matches('(').count();
    let mut closed = url.matches(')').count();
    while let Some(last) = url.chars().next_back() {
        let unbalanced = last == ')' && closed > opened;
        if !(".,:;!?*_~'\"]".contains(last) || unbalanced) {
            break;
        }
        if last == ')' {
            closed -= 1;
        }
        url = &url[..url.len() - last.len_utf8()];
    }
    Some(url.len())
}

/// `<https://…>`: the URL without its brackets, and the bytes taken.
fn angle_url(rest: &str) -> Option<(&str, usize)> {
    let inner = &rest[1..];
    if !starts_with_web_scheme(inner) {
        return None;
    }
    let end = inner.find(|c: char| c == '>' || c == '<' || c.is_whitespace())?;
    inner[end..]
        .starts_with('>')
        .then(|| (&inner[..end], end + 2))
}

// ---------------------------------------------------------------------------------------
// Back to plain text.

/// What Telegram shows for `html` in HTML parse mode: the text without its tags, with
/// `&lt;`, `&gt;`, `&amp;`, `&quot;` and numeric references decoded (Telegram takes them
/// with or without the `;`; any other `&` is itself). A tag runs from `<` and a letter
/// (or `/`) to the next `>`; a `<` that starts no tag is kept.
pub fn html_to_plain(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let last_gt = html.rfind('>');
    let mut pos = 0;
    while let Some(found) = html[pos..].find(['<', '&']) {
        let at = pos + found;
        out.push_str(&html[pos..at]);
        let rest = &html[at..];
        if let Some(inside) = rest.strip_prefix('<') {
            let named = inside
                .strip_prefix('/')
                .unwrap_or(inside)
                .starts_with(|c: char| c.is_ascii_alphabetic());
            match last_gt.filter(|gt| named && *gt > at) {
                Some(_) => {
                    let end = rest.find('>').map_or(rest.len(), |gt| gt + 1);
                    pos = at + end;
                }
                None => {
                    out.push('<');
                    pos = at + 1;
                }
            }
        } else {
            match entity(rest) {
                Some((c, len)) => {
                    out.push(c);
                    pos = at + len;
                }
                None => {
                    out.push('&');
                    pos = at + 1;
                }
            }
        }
    }
    out.push_str(&html[pos..]);
    out
}

/// The character an entity at the start of `rest` (which starts with `&`) stands for,
/// and its length.
fn entity(rest: &str) -> Option<(char, usize)> {
    let body = &rest[1..];
    let (value, len) = if let Some(number) = body.strip_prefix('#') {
        let (digits, radix, prefix) = match number.strip_prefix('x') {
            Some(hex) => (hex, 16, 3),
            None => (number, 10, 2),
        };
        let n = digits
            .bytes()
            .take_while(|b| char::from(*b).is_digit(radix))
            .count();
        // Telegram reads at most seven digits; longer is no reference.
        if n == 0 || prefix + n > 9 {
            return None;
        }
        let code = u32::from_str_radix(&digits[..n], radix).ok()?;
        // Telegram stops short of the last code point, U+10FFFF.
        let c = char::from_u32(code).filter(|c| *c != '\0' && *c != '\u{10FFFF}')?;
        (c, prefix + n)
    } else {
        let n = body.bytes().take_while(u8::is_ascii_alphabetic).count();
        let c = match &body[..n] {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            _ => return None,
        };
        (c, 1 + n)
    };
    let len = if rest[len..].starts_with(';') {
        len + 1
    } else {
        len
    };
    Some((value, len))
}

/// A call's JSON parameters made plain, for sending again after Telegram could not
/// parse its markup: without `parse_mode`, and, when that was HTML, with `text` and
/// `caption` as [`html_to_plain`] shows them. `None` when the parameters have no
/// `parse_mode` (so a call is made plain once) or are not a JSON object.
pub(crate) fn plain_params(params: &[u8]) -> Option<Vec<u8>> {
    let mut object: Map<String, Value> = serde_json::from_slice(params).ok()?;
    let mode = object.remove("parse_mode")?;
    if mode
        .as_str()
        .is_some_and(|m| m.eq_ignore_ascii_case("html"))
    {
        for key in ["text", "caption"] {
            if let Some(Value::String(text)) = object.get_mut(key) {
                *text = html_to_plain(text);
            }
        }
    }
    serde_json::to_vec(&object).ok()
}

// ---------------------------------------------------------------------------------------
// Splitting.

/// How a cut point ends the text before it, from least to most preferred.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Boundary {
    Space,
    Sentence,
    Line,
    Paragraph,
}

/// A place a piece may end: the byte offset, its rank, and the UTF-16 length of the
/// piece if it ends there.
struct Candidate {
    at: usize,
    boundary: Boundary,
    units: usize,
}

/// `markdown` as messages of at most `limit` UTF-16 code units of visible text each
/// (Telegram's 4,096 "characters after entities parsing"), each one Telegram HTML that
/// stands on its own.
///
/// A piece ends at the last paragraph break (blank line) that keeps it at least half
/// the limit long, else the last line break, else sentence end (`.`, `!`, `?`, `…`
/// before whitespace; `。！？` anywhere), else space; with no such place past the
/// first half, at the last of any of them; with none at all, at the last character
/// that fits. Formatting open at a cut (a code block, a bold line) is closed at the end
/// of the piece and opened again in the next.
///
/// The whitespace at a cut is dropped: a piece neither ends nor (except for the
/// indentation of a code line) starts with whitespace, and whitespace before the first
/// piece and after the last goes too. So the pieces' visible texts, in order, are
/// exactly the visible text of [`to_html`]`(markdown)` once that whitespace is taken
/// out; nothing else is lost, and no piece is empty (an answer of only whitespace
/// gives no piece). A `limit` below 2 counts as 2: one character may take two units.
pub fn split(markdown: &str, limit: usize) -> Vec<String> {
    let runs = parse(markdown);
    let mut starts = Vec::with_capacity(runs.len());
    let mut at = 0;
    for run in &runs {
        starts.push(at);
        at += run.text.len();
    }
    cuts(&runs, limit.max(2))
        .into_iter()
        .map(|range| render(&slice(&runs, &starts, range)))
        .collect()
}

/// Where each piece of the runs' text begins and ends (byte offsets).
fn cuts(runs: &[Run], limit: usize) -> Vec<Range<usize>> {
    let text: String = runs.iter().map(|run| run.text.as_str()).collect();
    let pre = pre_ranges(runs);
    let mut pieces = Vec::new();
    let mut start = piece_start(&text, &pre, 0);
    while start < text.len() {
        let (fits, candidates) = window(&text, start, limit);
        let cut = if fits == text.len() {
            fits
        } else {
            let half = limit / 2;
            candidates
                .iter()
                .filter(|c| c.units >= half)
                .max_by_key(|c| (c.boundary, c.at))
                .or_else(|| candidates.last())
                .map_or(fits, |c| c.at)
        };
        let end = start + text[start..cut].trim_end().len();
        if end > start {
            pieces.push(start..end);
        }
        start = piece_start(&text, &pre, cut);
    }
    pieces
}

/// The byte ranges of the text inside code blocks.
fn pre_ranges(runs: &[Run]) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut at = 0;
    for run in runs {
        let end = at + run.text.len();
        if run.marks.iter().any(|m| matches!(m, Mark::Pre(_))) {
            ranges.push(at..end);
        }
        at = end;
    }
    ranges
}

/// Where the piece after a cut at `at` starts: past the whitespace there, except that
/// a line of a code block keeps its indentation.
fn piece_start(text: &str, pre: &[Range<usize>], at: usize) -> usize {
    let in_code = |pos: usize| {
        let after = pre.partition_point(|range| range.end <= pos);
        pre.get(after).is_some_and(|range| range.contains(&pos))
    };
    let mut pos = at;
    let mut line_start = text[..at].ends_with('\n');
    for c in text[at..].chars() {
        let indents = line_start && in_code(pos);
        if !c.is_whitespace() || (indents && c != '\n' && c != '\r') {
            break;
        }
        line_start = c == '\n';
        pos += c.len_utf8();
    }
    pos
}

/// Whether the text before `at` ends a sentence: `.`, `!`, `?` or `…`, maybe followed by
/// a closing quote or bracket.
fn ends_sentence(before: &str) -> bool {
    let trimmed = before.trim_end_matches(['"', '\'', ')', ']', '»', '”', '’']);
    trimmed.ends_with(['.', '!', '?', '…'])
}

/// How much of the text from `start` fits in `limit` units (the offset of the first
/// character that does not, or the text's end), and the places a piece may end there.
fn window(text: &str, start: usize, limit: usize) -> (usize, Vec<Candidate>) {
    let mut candidates = Vec::new();
    let mut units = 0;
    let mut prev: Option<char> = None;
    for (offset, c) in text[start..].char_indices() {
        let at = start + offset;
        if let Some(p) = prev {
            if c.is_whitespace() && !p.is_whitespace() {
                let newlines = text[at..]
                    .chars()
                    .take_while(|c| c.is_whitespace())
                    .filter(|c| *c == '\n')
                    .count();
                let boundary = match newlines {
                    0 if ends_sentence(&text[..at]) => Boundary::Sentence,
                    0 => Boundary::Space,
                    1 => Boundary::Line,
                    _ => Boundary::Paragraph,
                };
                candidates.push(Candidate {
                    at,
                    boundary,
                    units,
                });
            } else if !c.is_whitespace() && matches!(p, '。' | '！' | '？') {
                candidates.push(Candidate {
                    at,
                    boundary: Boundary::Sentence,
                    units,
                });
            }
        }
        units += c.len_utf16();
        if units > limit {
            return (at, candidates);
        }
        prev = Some(c);
    }
    (text.len(), candidates)
}

/// The runs' text between two byte offsets, under the same marks; `starts` holds where
/// each run begins.
fn slice(runs: &[Run], starts: &[usize], range: Range<usize>) -> Vec<Run> {
    let first = starts
        .partition_point(|start| *start <= range.start)
        .saturating_sub(1);
    let mut out = Vec::new();
    for (run, &at) in runs.iter().zip(starts).skip(first) {
        if at >= range.end {
            break;
        }
        let from = range.start.max(at);
        let to = range.end.min(at + run.text.len());
        if from < to
            && let Some(text) = run.text.get(from - at..to - at)
        {
            out.push(Run {
                text: text.to_owned(),
                marks: run.marks.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Checks HTML the way this module writes it: only Telegram's tags, each closed in
    /// order, `<a>` with an `href`, no raw `<` or `>` in text, and `&` only in the four
    /// entities the renderer writes.
    fn check(html: &str) -> Result<(), String> {
        let mut open: Vec<&str> = Vec::new();
        let mut pos = 0;
        while let Some(c) = html[pos..].chars().next() {
            let rest = &html[pos..];
            match c {
                '<' => {
                    let end = rest.find('>').ok_or(format!("unclosed tag at {pos}"))?;
                    let tag = &rest[1..end];
                    if let Some(name) = tag.strip_prefix('/') {
                        if open.pop() != Some(name) {
                            return Err(format!("</{name}> at {pos} closes nothing open"));
                        }
                    } else {
                        let name = tag.split(' ').next().unwrap_or("");
                        let attributes = &tag[name.len()..];
                        let fine = match name {
                            "b" | "i" | "s" | "u" | "pre" | "blockquote" | "tg-spoiler" => {
                                attributes.is_empty()
                            }
                            "code" => {
                                attributes.is_empty()
                                    || (attributes.starts_with(" class=\"language-")
                                        && attributes.ends_with('"')
                                        && open.last() == Some(&"pre"))
                            }
                            "a" => {
                                attributes.starts_with(" href=\"")
                                    && attributes.ends_with('"')
                                    && attributes.matches('"').count() == 2
                            }
                            _ => false,
                        };
                        if !fine {
                            return Err(format!("tag <{tag}> at {pos}"));
                        }
                        open.push(name);
                    }
                    pos += end + 1;
                }
                '>' => return Err(format!("raw > at {pos}")),
                '&' => {
                    let known = ["&lt;", "&gt;", "&amp;", "&quot;"];
                    let len = known
                        .iter()
                        .find(|e| rest.starts_with(**e))
                        .ok_or(format!("bare & at {pos}"))?
                        .len();
                    pos += len;
                }
                c => pos += c.len_utf8(),
            }
        }
        match open.last() {
            Some(name) => Err(format!("<{name}> never closed")),
            None => Ok(()),
        }
    }

    fn html(markdown: &str) -> String {
        let html = to_html(markdown);
        check(&html).unwrap_or_else(|e| panic!("{e} in {html:?} from {markdown:?}"));
        html
    }

    fn units(text: &str) -> usize {
        text.encode_utf16().count()
    }

    /// Asserts what [`split`] promises for `markdown` and returns the pieces' HTML.
    fn pieces(markdown: &str, limit: usize) -> Vec<String> {
        let pieces = split(markdown, limit);
        let whole = html_to_plain(&html(markdown));
        let mut rest = whole.as_str();
        for piece in &pieces {
            check(piece).unwrap_or_else(|e| panic!("{e} in piece {piece:?} of {markdown:?}"));
            let shown = html_to_plain(piece);
            assert!(!shown.trim().is_empty(), "an empty piece of {markdown:?}");
            assert!(
                units(&shown) <= limit.max(2),
                "{shown:?} is over {limit} units"
            );
            assert!(
                !shown.ends_with(char::is_whitespace),
                "{shown:?} ends blank"
            );
            // The piece follows what the pieces before it took, after whitespace only.
            let gap = rest.len() - rest.trim_start().len();
            let at = rest
                .char_indices()
                .map(|(at, _)| at)
                .take_while(|at| *at <= gap)
                .find(|at| rest[*at..].starts_with(&shown))
                .unwrap_or_else(|| panic!("{shown:?} is not next in {rest:?} ({markdown:?})"));
            rest = &rest[at + shown.len()..];
        }
        assert!(rest.trim().is_empty(), "{rest:?} of {markdown:?} was lost");
        pieces
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            html("a < b & c > d \"q\" &amp;"),
            "a &lt; b &amp; c &gt; d \"q\" &amp;amp;"
        );
        assert_eq!(html("<b>not a tag</b>"), "&lt;b&gt;not a tag&lt;/b&gt;");
        assert_eq!(html(""), "");
    }

    #[test]
    fn bold_italic_and_strike() {
        assert_eq!(html("**bold** and __bold__"), "<b>bold</b> and <b>bold</b>");
        assert_eq!(html("*it* and _it_"), "<i>it</i> and <i>it</i>");
        assert_eq!(html("~~gone~~ ~5 min ~~~"), "<s>gone</s> ~5 min ~~~");
        assert_eq!(html("***both***"), "<i><b>both</b></i>");
        assert_eq!(
            html("**bold *and italic***"),
            "<b>bold <i>and italic</i></b>"
        );
        assert_eq!(
            html("**a __b__ c**"),
            "<b>a b c</b>",
            "bold in bold is bold"
        );
        assert_eq!(html("**over\ntwo lines**"), "<b>over\ntwo lines</b>");
    }

    #[test]
    fn emphasis_never_inside_words() {
        assert_eq!(html("snake_case_name"), "snake_case_name");
        assert_eq!(html("2*3*4 = 24"), "2*3*4 = 24");
        assert_eq!(html("a**b**c"), "a**b**c");
        assert_eq!(html("__init__ is *fine*"), "<b>init</b> is <i>fine</i>");
    }

    #[test]
    fn unbalanced_markers_stay_literal() {
        assert_eq!(html("**never closed"), "**never closed");
        assert_eq!(html("* a list\n* of two"), "* a list\n* of two");
        assert_eq!(html("**a *b**"), "*<i>a b</i>", "as CommonMark pairs them");
        assert_eq!(html("*a **b*"), "*a *<i>b</i>");
        assert_eq!(html("**a\n\nb**"), "**a\n\nb**", "not across paragraphs");
        assert_eq!(html("_a *b_ c*"), "<i>a *b</i> c*", "never crossed");
        assert_eq!(html("a ** b"), "a ** b");
    }

    #[test]
    fn code_spans_are_literal() {
        assert_eq!(
            html("run `rm -rf <dir> **now**`"),
            "run <code>rm -rf &lt;dir&gt; **now**</code>"
        );
        assert_eq!(html("`` a ` b ``"), "<code>a ` b</code>");
        assert_eq!(html("a `b"), "a `b");
        assert_eq!(html("**`x`**"), "<b><code>x</code></b>");
    }

    #[test]
    fn fenced_code_blocks() {
        assert_eq!(
            html("Look:\n```rust\nfn main() {\n    a < b\n}\n```\nDone."),
            "Look:\n<pre><code class=\"language-rust\">fn main() {\n    a &lt; b\n}</code></pre>\nDone."
        );
        assert_eq!(html("```\n**raw**\n```"), "<pre>**raw**</pre>");
        assert_eq!(
            html("~~~c++\nx\n~~~"),
            "<pre><code class=\"language-c++\">x</code></pre>"
        );
        assert_eq!(
            html("```py\nnever closed\n\nstill code"),
            "<pre><code class=\"language-py\">never closed\n\nstill code</code></pre>"
        );
        assert_eq!(
            html("```\"><script>\nx\n```"),
            "<pre>x</pre>",
            "an odd language is no class"
        );
        assert_eq!(html("````\n```\n````"), "<pre>```</pre>");
    }

    #[test]
    fn links_only_to_web_and_telegram() {
        assert_eq!(
            html("[docs](https://example.com/a?b=1&c=\"2\")"),
            "<a href=\"https://example.com/a?b=1&amp;c=&quot;2&quot;\">docs</a>"
        );
        assert_eq!(
            html("[**me**](tg://user?id=1)"),
            "<a href=\"tg://user?id=1\"><b>me</b></a>"
        );
        assert_eq!(html("[x](javascript:alert(1))"), "x");
        assert_eq!(html("[x](/relative)"), "x");
        assert_eq!(
            html("[a](<http://e.com/x y> \"title\")"),
            "<a href=\"http://e.com/x y\">a</a>"
        );
        assert_eq!(
            html("[](https://e.com)"),
            "<a href=\"https://e.com\">https://e.com</a>"
        );
        assert_eq!(html("[not a link] (x)"), "[not a link] (x)");
        assert_eq!(
            html("[[x](http://a.b)](http://c.d)"),
            "<a href=\"http://c.d\">[x](http://a.b)</a>",
            "no link in a link"
        );
    }

    #[test]
    fn urls_are_kept_whole() {
        assert_eq!(
            html("see https://e.com/_a_/b*c* now"),
            "see https://e.com/_a_/b*c* now"
        );
        assert_eq!(html("**https://e.com**"), "<b>https://e.com</b>");
        assert_eq!(html("(at https://e.com/x)."), "(at https://e.com/x).");
        assert_eq!(html("<https://e.com/a_b_>"), "https://e.com/a_b_");
        assert_eq!(html("<not a url>"), "&lt;not a url&gt;");
    }

    #[test]
    fn headings_quotes_and_escapes() {
        assert_eq!(html("# Title\ntext"), "<b>Title</b>\ntext");
        assert_eq!(html("### **Big** one ###"), "<b>Big one</b>");
        assert_eq!(html("#hashtag"), "#hashtag");
        assert_eq!(html("#"), "");
        assert_eq!(
            html("> quoted *line*\n> two\nafter"),
            "<blockquote>quoted <i>line</i>\ntwo</blockquote>\nafter"
        );
        assert_eq!(html(">> nested"), "<blockquote>&gt; nested</blockquote>");
        assert_eq!(html("\\*not italic\\* \\\\ \\q"), "*not italic* \\ \\q");
        assert_eq!(html("a\r\nb"), "a\nb");
    }

    #[test]
    fn plain_text_is_what_telegram_shows() {
        assert_eq!(
            html_to_plain("<b>a</b> &lt;b&gt; &amp;lt; &quot;q&quot; <a href=\"x\">l</a>"),
            "a <b> &lt; \"q\" l"
        );
        assert_eq!(html_to_plain("&#128512;&#x1F600;&lt"), "😀😀<");
        assert_eq!(
            html_to_plain("AT&T &unknown; &#0; &#xD800;"),
            "AT&T &unknown; &#0; &#xD800;"
        );
        assert_eq!(html_to_plain("a < b <3 <"), "a < b <3 <");
        assert_eq!(
            html_to_plain("<pre><code class=\"language-x\">c</code></pre>"),
            "c"
        );
        assert_eq!(html_to_plain("<b unclosed"), "<b unclosed");
    }

    #[test]
    fn params_are_made_plain_once() {
        let params = br#"{"chat_id":1,"text":"<b>a &amp; b","parse_mode":"HTML"}"#;
        let plain: Value = serde_json::from_slice(&plain_params(params).unwrap()).unwrap();
        assert_eq!(plain, serde_json::json!({"chat_id": 1, "text": "a & b"}));
        assert_eq!(plain_params(&serde_json::to_vec(&plain).unwrap()), None);
        let caption = br#"{"caption":"<i>x</i>","parse_mode":"MarkdownV2"}"#;
        let plain: Value = serde_json::from_slice(&plain_params(caption).unwrap()).unwrap();
        assert_eq!(plain, serde_json::json!({"caption": "<i>x</i>"}));
        assert_eq!(plain_params(b"[1]"), None);
    }

    #[test]
    fn short_answers_are_one_piece() {
        assert_eq!(pieces("**hi**", 4096), ["<b>hi</b>"]);
        assert!(pieces("", 10).is_empty());
        assert!(pieces(" \n\n ", 10).is_empty());
        assert_eq!(pieces("\n\n  hi  \n", 10), ["hi"]);
    }

    #[test]
    fn cuts_prefer_paragraphs_then_lines_then_sentences_then_spaces() {
        let text = "one two three.\nfour five\n\nsix seven";
        assert_eq!(pieces(text, 30), ["one two three.\nfour five", "six seven"]);
        assert_eq!(
            pieces(text, 22),
            ["one two three.", "four five\n\nsix seven"]
        );
        assert_eq!(pieces("aa bb. cc dd ee", 12), ["aa bb.", "cc dd ee"]);
        assert_eq!(pieces("aaa bbb ccc", 8), ["aaa bbb", "ccc"]);
        assert_eq!(pieces("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(pieces("一句。二句。", 4), ["一句。", "二句。"]);
    }

    #[test]
    fn a_boundary_too_early_is_passed_over() {
        // The paragraph break would leave a piece of 2 units out of 21.
        assert_eq!(
            pieces("ab\n\ncd ef gh ij kl mn op qr", 21),
            ["ab\n\ncd ef gh ij kl mn", "op qr"]
        );
    }

    #[test]
    fn limits_count_utf16_units() {
        // Each emoji is two units.
        assert_eq!(pieces("😀😀😀", 4), ["😀😀", "😀"]);
        assert_eq!(pieces("😀😀", 1), ["😀", "😀"], "below 2 counts as 2");
        assert_eq!(pieces("a&b<c", 3), ["a&amp;b", "&lt;c"], "entities are one");
    }

    #[test]
    fn formatting_open_at_a_cut_is_reopened() {
        assert_eq!(
            pieces("**bold words here**", 11),
            ["<b>bold words</b>", "<b>here</b>"]
        );
        assert_eq!(
            pieces("```py\nif x:\n    return 1\n```", 10),
            [
                "<pre><code class=\"language-py\">if x:</code></pre>",
                "<pre><code class=\"language-py\">    return</code></pre>",
                "<pre><code class=\"language-py\">1</code></pre>"
            ]
        );
        assert_eq!(
            pieces("> a quoted line\n> and more", 16),
            [
                "<blockquote>a quoted line</blockquote>",
                "<blockquote>and more</blockquote>"
            ]
        );
        assert_eq!(
            pieces("[link text](https://e.com)", 5),
            [
                "<a href=\"https://e.com\">link</a>",
                "<a href=\"https://e.com\">text</a>"
            ]
        );
    }

    /// Markdown-ish text: fragments that mean something to the parser, in any order.
    fn markdownish() -> impl Strategy<Value = String> {
        let fragment = prop::sample::select(vec![
            "*",
            "**",
            "***",
            "_",
            "__",
            "~~",
            "~",
            "`",
            "``",
            "```",
            "```py\n",
            "\n```\n",
            "[",
            "]",
            "](",
            "(",
            ")",
            "https://a.b/c_d",
            "tg://x",
            "javascript:x",
            "<",
            ">",
            "<https://e.com>",
            "&",
            "&amp;",
            "&#128512;",
            "\"",
            "#",
            "# ",
            "> ",
            "\n",
            "\n\n",
            " ",
            "  ",
            "\t",
            "word",
            "wörd",
            "😀",
            "。",
            ".",
            "!",
            "\\",
            "x_y",
            "2*3",
        ]);
        prop::collection::vec(fragment, 0..80).prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn any_markdown_gives_balanced_html(markdown in markdownish()) {
            html(&markdown);
        }

        #[test]
        fn any_text_gives_balanced_html(markdown in any::<String>()) {
            html(&markdown);
        }

        #[test]
        fn pieces_hold_the_limit_and_lose_nothing(
            markdown in markdownish(),
            limit in 0usize..40,
        ) {
            pieces(&markdown, limit);
        }

        #[test]
        fn pieces_of_any_text(markdown in any::<String>(), limit in 0usize..24) {
            pieces(&markdown, limit);
        }
    }
}
