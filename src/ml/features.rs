//! Text to hashed feature ids: normalisation, tokenisation and FNV-1a hashing of words,
//! word bigrams and character n-grams into a fixed number of embedding rows.
//!
//! Everything here works on Unicode scalar values and UTF-8 bytes with explicit little-endian
//! seeds, so a given text maps to the same rows on every platform and in every build: the
//! trained weights depend on it.

/// FNV-1a 64-bit parameters (the published offset basis and prime).
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Never part of valid UTF-8, so it cannot make two different word pairs hash alike.
const PAIR_SEPARATOR: u8 = 0xff;

/// Domain separation between feature kinds: the word "ab" and the character n-gram "ab"
/// must not land on the same row by construction.
#[derive(Clone, Copy)]
#[repr(u8)]
enum Kind {
    Word = 1,
    WordPair = 2,
    CharGram = 3,
}

/// Streaming FNV-1a 64; a stable hash we implement ourselves rather than rely on a std hasher
/// whose output may change between releases.
#[derive(Clone, Copy)]
pub(crate) struct Fnv1a(u64);

impl Fnv1a {
    pub fn new() -> Self {
        Self(FNV_OFFSET)
    }

    fn with_seed(seed: u64) -> Self {
        let mut h = Self::new();
        h.write(&seed.to_le_bytes());
        h
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }

    pub(crate) fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for Fnv1a {
    fn default() -> Self {
        Self::new()
    }
}

/// How texts become feature ids; stored in each model file so inference hashes exactly as
/// training did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FeatureConfig {
    pub(crate) buckets: u32,
    pub(crate) seed: u64,
    /// Longest word n-gram (1 = words only, 2 = words and bigrams).
    pub(crate) word_ngrams: u32,
    /// Character n-gram lengths (in characters) taken inside `<word>`; 0 disables them.
    pub(crate) char_min: u32,
    pub(crate) char_max: u32,
}

impl FeatureConfig {
    /// Appends the feature ids of `text` to `out` (not cleared, so callers can batch).
    pub(crate) fn extract(&self, text: &str, out: &mut Vec<u32>) {
        let tokens = tokenize(text);
        let base = Fnv1a::with_seed(self.seed);
        let mut chars: Vec<usize> = Vec::new();
        let mut framed = String::new();
        for (i, tok) in tokens.iter().enumerate() {
            out.push(self.bucket(base, Kind::Word, &[tok.text.as_bytes()]));
            if self.word_ngrams >= 2
                && let Some(next) = tokens.get(i + 1)
            {
                out.push(self.bucket(
                    base,
                    Kind::WordPair,
                    &[tok.text.as_bytes(), &[PAIR_SEPARATOR], next.text.as_bytes()],
                ));
            }
            if tok.is_word && self.char_min > 0 {
                framed.clear();
                framed.push('<');
                framed.push_str(&tok.text);
                framed.push('>');
                chars.clear();
                chars.extend(framed.char_indices().map(|(at, _)| at));
                chars.push(framed.len());
                let n_chars = chars.len() - 1;
                for n in self.char_min as usize..=self.char_max as usize {
                    // The whole framed word is already covered by the word feature.
                    if n >= n_chars {
                        break;
                    }
                    for start in 0..=n_chars - n {
                        let gram = &framed.as_bytes()[chars[start]..chars[start + n]];
                        out.push(self.bucket(base, Kind::CharGram, &[gram]));
                    }
                }
            }
        }
    }

    fn bucket(&self, base: Fnv1a, kind: Kind, parts: &[&[u8]]) -> u32 {
        let mut h = base;
        h.write(&[kind as u8]);
        for p in parts {
            h.write(p);
        }
        // FNV's low bits mix worst; fold the high half in before reducing.
        let x = h.finish();
        ((x ^ (x >> 32)) % u64::from(self.buckets)) as u32
    }
}

/// One token of a normalised message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    text: String,
    /// Letters of some script: the only tokens worth character n-grams.
    is_word: bool,
}

impl Token {
    fn special(text: String) -> Self {
        Self {
            text,
            is_word: false,
        }
    }
}

/// Lowercases and splits a message. URLs become `<url>` plus their host, @mentions
/// `<mention>`, digit runs `<numN>` (N = length, capped) so that phone numbers and prices
/// generalise; letter runs of any script are words; every other visible character (punctuation,
/// currency, emoji) is a token of its own.
fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    for chunk in text.split_whitespace() {
        let lower = chunk.to_lowercase();
        if let Some(host) = url_host(&lower) {
            tokens.push(Token::special("<url>".to_owned()));
            if !host.is_empty() {
                tokens.push(Token::special(host.to_owned()));
            }
            continue;
        }
        if lower.len() > 1
            && lower.starts_with('@')
            && lower[1..].chars().all(|c| c.is_alphanumeric() || c == '_')
        {
            tokens.push(Token::special("<mention>".to_owned()));
            continue;
        }
        split_chunk(&lower, &mut tokens);
    }
    tokens
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Class {
    Letter,
    Digit,
    Other,
}

fn classify(c: char) -> Class {
    if c.is_numeric() {
        Class::Digit
    } else if c.is_alphabetic() {
        Class::Letter
    } else {
        Class::Other
    }
}

fn split_chunk(chunk: &str, tokens: &mut Vec<Token>) {
    let mut run = String::new();
    let mut run_class = Class::Other;
    let flush = |run: &mut String, class: Class, tokens: &mut Vec<Token>| {
        if run.is_empty() {
            return;
        }
        match class {
            Class::Letter => tokens.push(Token {
                text: std::mem::take(run),
                is_word: true,
            }),
            Class::Digit => {
                let n = run.chars().count().min(12);
                tokens.push(Token::special(format!("<num{n}>")));
                run.clear();
            }
            Class::Other => run.clear(),
        }
    };
    for c in chunk.chars() {
        let class = classify(c);
        // Combining marks (e.g. in Devanagari or decomposed accents) belong to the letter
        // before them rather than starting a token of their own.
        let is_mark = class == Class::Other && run_class == Class::Letter && is_combining(c);
        if is_mark {
            run.push(c);
            continue;
        }
        if class != run_class {
            flush(&mut run, run_class, tokens);
            run_class = class;
        }
        match class {
            Class::Other => tokens.push(Token::special(c.to_string())),
            _ => run.push(c),
        }
    }
    flush(&mut run, run_class, tokens);
}

fn is_combining(c: char) -> bool {
    matches!(c as u32, 0x0300..=0x036f | 0x0900..=0x0dff | 0x200c | 0x200d)
}

/// Returns the host if `chunk` looks like a link (scheme, `www.` or a bare Telegram link).
fn url_host(chunk: &str) -> Option<&str> {
    let rest = if let Some(i) = chunk.find("://") {
        &chunk[i + 3..]
    } else if chunk.starts_with("www.") || chunk.starts_with("t.me/") {
        chunk
    } else {
        return None;
    };
    let host = rest
        .split(['/', '?', '#', ':'])
        .next()
        .unwrap_or("")
        .trim_start_matches("www.");
    Some(host.trim_end_matches(|c: char| !c.is_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> FeatureConfig {
        FeatureConfig {
            buckets: 1 << 20,
            seed: 7,
            word_ngrams: 2,
            char_min: 3,
            char_max: 5,
        }
    }

    #[test]
    fn fnv1a_matches_published_vectors() {
        let hash = |s: &str| {
            let mut h = Fnv1a::new();
            h.write(s.as_bytes());
            h.finish()
        };
        assert_eq!(hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn feature_ids_are_stable() {
        // Pinned values: if these change, every shipped model silently degrades.
        let mut ids = Vec::new();
        cfg().extract("Привет WIN £1000 https://t.me/x", &mut ids);
        assert_eq!(ids.len(), 31);
        assert_eq!(&ids[..4], &[398_848, 946_586, 139_847, 524_789]);
    }

    #[test]
    fn tokenizer_normalises_links_mentions_and_numbers() {
        let toks: Vec<String> = tokenize("Call 08452810075 now! @Spam_Bot www.Example.com/a?b")
            .into_iter()
            .map(|t| t.text)
            .collect();
        assert_eq!(
            toks,
            [
                "call",
                "<num11>",
                "now",
                "!",
                "<mention>",
                "<url>",
                "example.com"
            ]
        );
    }

    #[test]
    fn any_script_yields_features() {
        for text in [
            "日本語のテキスト",
            "مرحبا بالعالم",
            "नमस्ते दुनिया",
            "🙂🙂",
            "Ünïcödé",
        ] {
            let mut ids = Vec::new();
            cfg().extract(text, &mut ids);
            assert!(!ids.is_empty(), "{text}");
            assert!(ids.iter().all(|&i| i < 1 << 20));
        }
    }
}
