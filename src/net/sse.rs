//! The client side of server-sent events: an incremental decoder for the
//! `text/event-stream` answers of LLM providers (OpenAI-compatible `data:` frames,
//! Anthropic's named events), following the WHATWG HTML standard's "event stream
//! interpretation".
//!
//! Bytes go in as they come off the socket, cut anywhere (inside a UTF-8 character,
//! inside a line, between the `\r` and `\n` of a line end); complete events come out.
//! What it does, as the standard says:
//!
//! * Lines end with CRLF, LF or CR. A leading byte-order mark is skipped once.
//! * `event:` sets the event's type (`message` when none is given), `data:` lines are
//!   joined with `\n`, `id:` sets the last event id (ignored when it holds a NUL), which
//!   carries over to later events, as a browser's `lastEventId` does; `retry:` with
//!   only ASCII digits sets [`Decoder::retry`]; lines starting with `:` are comments;
//!   other fields are ignored. One space after the colon is dropped.
//! * A blank line dispatches the event, unless it has no `data` line (then only its
//!   type is reset).
//! * Invalid UTF-8 is replaced with U+FFFD, as the standard's UTF-8 decode does (an
//!   event is never refused for its encoding), one replacement per maximal invalid
//!   subpart; a character cut between two chunks is put back together first.
//! * A stream that ends inside an event loses that event, as the standard says;
//!   [`Decoder::finish`] tells the caller that it happened.
//!
//! Memory is bounded: an event whose lines (without line ends) add up to more than the
//! decoder's limit (1 MiB by default) is an error, [`SseError::EventTooLarge`], and the
//! decoder refuses everything after it, so a stream without blank lines cannot grow a
//! buffer without end. The decoder never panics, whatever it is fed.
//!
//! It knows nothing of the fakes in `crate::fake`, which write the wire format
//! themselves, so a mistake here cannot hide behind the same mistake there.

/// The default bound on one event: [`Decoder::new`] refuses events larger than this.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1024 * 1024;

/// The byte-order mark, as UTF-8.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field, or `message` when the event named none.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The last event id seen so far in the stream (empty when none was), as the
    /// standard's `lastEventId`: an event without an `id:` line carries the previous one.
    pub id: String,
}

/// Why a stream cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// An event's lines are over the limit; the decoder refuses what follows.
    #[error("an event of the stream is over {limit} bytes")]
    EventTooLarge { limit: usize },
    /// The stream ended inside an event, which is discarded (from [`Decoder::finish`]).
    #[error("the stream ended inside an event; its {bytes} bytes were discarded")]
    Unterminated { bytes: usize },
}

/// An incremental event-stream decoder; see the module's documentation.
#[derive(Debug, Clone)]
pub struct Decoder {
    max_event_bytes: usize,
    /// The bytes of the line being read, not yet ended.
    line: Vec<u8>,
    /// Bytes of the current event's lines so far (the partial line included); a blank
    /// line resets it.
    event_bytes: usize,
    /// The last byte was a CR ending a line: an LF right after it belongs to that line end.
    after_cr: bool,
    /// No line has ended yet, so the first line may start with a byte-order mark.
    first_line: bool,
    event_type: String,
    /// The `data` lines so far, each followed by `\n`: empty exactly when the event has
    /// no `data` line yet.
    data: String,
    last_id: String,
    retry: Option<u64>,
    /// Set once an event was too large; every later call returns it.
    failed: Option<SseError>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder that refuses events over [`DEFAULT_MAX_EVENT_BYTES`].
    pub fn new() -> Decoder {
        Self::with_limit(DEFAULT_MAX_EVENT_BYTES)
    }

    /// A decoder that refuses events whose lines add up to more than `max_event_bytes`.
    pub fn with_limit(max_event_bytes: usize) -> Decoder {
        Decoder {
            max_event_bytes,
            line: Vec::new(),
            event_bytes: 0,
            after_cr: false,
            first_line: true,
            event_type: String::new(),
            data: String::new(),
            last_id: String::new(),
            retry: None,
            failed: None,
        }
    }

    /// The reconnection time a `retry:` field set last, in milliseconds.
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    /// Decodes `chunk`, appending the events it completes to `events`. On an error the
    /// events completed before the offending byte are in `events` all the same, so
    /// feeding a stream in any cuts gives the same events and the same error as feeding
    /// it whole.
    pub fn feed(&mut self, chunk: &[u8], events: &mut Vec<Event>) -> Result<(), SseError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let mut rest = chunk;
        if self.after_cr && !rest.is_empty() {
            self.after_cr = false;
            if let Some(tail) = rest.strip_prefix(b"\n") {
                rest = tail;
            }
        }
        while !rest.is_empty() {
            let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') else {
                self.take(rest)?;
                break;
            };
            self.take(&rest[..end])?;
            let cr = rest[end] == b'\r';
            rest = &rest[end + 1..];
            if cr {
                match rest.strip_prefix(b"\n") {
                    Some(tail) => rest = tail,
                    None => self.after_cr = rest.is_empty(),
                }
            }
            self.end_line(events);
        }
        Ok(())
    }

    /// Ends the stream: `Ok` when it ended between events, otherwise the error that a
    /// partial event was discarded (or the earlier error that stopped the decoder).
    pub fn finish(self) -> Result<(), SseError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        match self.event_bytes {
            0 => Ok(()),
            bytes => Err(SseError::Unterminated { bytes }),
        }
    }

    /// Adds bytes to the line being read, within the limit.
    fn take(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.event_bytes = self.event_bytes.saturating_add(bytes.len());
        if self.event_bytes > self.max_event_bytes {
            let error = SseError::EventTooLarge {
                limit: self.max_event_bytes,
            };
            self.failed = Some(error.clone());
            self.line = Vec::new();
            self.data = String::new();
            self.event_type = String::new();
            return Err(error);
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    /// A line ended: interpret it.
    fn end_line(&mut self, events: &mut Vec<Event>) {
        let mut raw = std::mem::take(&mut self.line);
        let mut bytes = raw.as_slice();
        if std::mem::replace(&mut self.first_line, false) {
            bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
        }
        if bytes.is_empty() {
            self.event_bytes = 0;
            self.dispatch(events);
        } else if bytes[0] != b':' {
            let line = String::from_utf8_lossy(bytes);
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line.as_ref(), ""),
            };
            self.field(field, value);
        }
        // Keep the allocation for the next line, unless a long line made it large.
        raw.clear();
        if raw.capacity() <= 4096 {
            self.line = raw;
        }
    }

    fn field(&mut self, field: &str, value: &str) {
        match field {
            "event" => value.clone_into(&mut self.event_type),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "id" if !value.contains('\0') => value.clone_into(&mut self.last_id),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                // A number too long for u64 is as good as forever.
                self.retry = Some(value.parse().unwrap_or(u64::MAX));
            }
            _ => {}
        }
    }

    /// A blank line: the event so far goes out, if it has data.
    fn dispatch(&mut self, events: &mut Vec<Event>) {
        let event_type = std::mem::take(&mut self.event_type);
        if self.data.is_empty() {
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop();
        let event = if event_type.is_empty() {
            "message".to_owned()
        } else {
            event_type
        };
        events.push(Event {
            event,
            data,
            id: self.last_id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in(chunks: &[&[u8]]) -> (Vec<Event>, Result<(), SseError>) {
        let mut decoder = Decoder::new();
        let mut events = Vec::new();
        for chunk in chunks {
            if let Err(error) = decoder.feed(chunk, &mut events) {
                return (events, Err(error));
            }
        }
        (events, decoder.finish())
    }

    fn decode(stream: &[u8]) -> Vec<Event> {
        let (events, end) = decode_in(&[stream]);
        assert_eq!(end, Ok(()), "{:?}", String::from_utf8_lossy(stream));
        events
    }

    fn event(name: &str, data: &str, id: &str) -> Event {
        Event {
            event: name.to_owned(),
            data: data.to_owned(),
            id: id.to_owned(),
        }
    }

    /// An OpenAI-style and an Anthropic-style stream with every kind of line end,
    /// a comment, a BOM, a retry, ids and multi-byte characters.
    const MIXED: &[u8] = "\u{FEFF}: keep-alive\r\n\
        retry: 1500\r\n\
        data: {\"delta\":\"Приве\"}\r\n\r\n\
        event: content_block_delta\n\
        id: 7\n\
        data: {\"text\":\"😀 ok\"}\n\n\
        data: first\rdata:second\r\rdata\r\n\
        \n\
        event: ignored-no-data\n\n\
        data: [DONE]\n\n"
        .as_bytes();

    fn mixed_events() -> Vec<Event> {
        vec![
            event("message", "{\"delta\":\"Приве\"}", ""),
            event("content_block_delta", "{\"text\":\"😀 ok\"}", "7"),
            event("message", "first\nsecond", "7"),
            event("message", "", "7"),
            event("message", "[DONE]", "7"),
        ]
    }

    #[test]
    fn decodes_every_line_end_comment_bom_and_retry() {
        let mut decoder = Decoder::new();
        let mut events = Vec::new();
        decoder.feed(MIXED, &mut events).unwrap();
        assert_eq!(decoder.retry(), Some(1500));
        assert_eq!(events, mixed_events());
        assert_eq!(decoder.finish(), Ok(()));
    }

    #[test]
    fn every_two_way_cut_gives_the_same_events() {
        let whole = decode(MIXED);
        assert_eq!(whole, mixed_events());
        for cut in 0..=MIXED.len() {
            let (head, tail) = MIXED.split_at(cut);
            assert_eq!(
                decode_in(&[head, tail]),
                (whole.clone(), Ok(())),
                "cut at {cut}"
            );
        }
        let bytes: Vec<&[u8]> = MIXED.chunks(1).collect();
        assert_eq!(decode_in(&bytes), (whole, Ok(())), "byte by byte");
    }

    #[test]
    fn crlf_split_between_chunks_is_one_line_end() {
        let expected = vec![event("message", "a\nb", "")];
        assert_eq!(
            decode_in(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]),
            (expected.clone(), Ok(()))
        );
        // An empty chunk between the CR and the LF changes nothing.
        assert_eq!(
            decode_in(&[b"data: a\r", b"", b"\ndata: b\r\n\r", b"", b"\n"]),
            (expected, Ok(()))
        );
        // A CR alone ends a line, and the CR after it a second (blank) one.
        assert_eq!(
            decode_in(&[b"data: a\r", b"\r"]),
            (vec![event("message", "a", "")], Ok(()))
        );
    }

    #[test]
    fn multi_line_data_is_joined_with_newlines() {
        assert_eq!(
            decode(b"data: one\ndata:  two\ndata\ndata: four\n\n"),
            vec![event("message", "one\n two\n\nfour", "")]
        );
    }

    #[test]
    fn a_four_byte_emoji_split_anywhere_comes_out_whole() {
        let stream = "data: 😀\n\n".as_bytes();
        let start = stream.len() - "😀\n\n".len();
        for (a, b) in [(1, 3), (2, 2), (3, 1)] {
            let first = start + a;
            assert_eq!(first + b, start + 4);
            let (events, end) = decode_in(&[&stream[..first], &stream[first..]]);
            assert_eq!(end, Ok(()));
            assert_eq!(events, vec![event("message", "😀", "")], "split {a}+{b}");
        }
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        assert_eq!(
            decode(b"data: a\xFFb\xE2\x82\n\n"),
            vec![event("message", "a\u{FFFD}b\u{FFFD}", "")]
        );
    }

    #[test]
    fn fields_follow_the_standard() {
        let stream = b"event: first\ndata: 1\n\n\
            data: 2\n\n\
            id: 3\ndata: x\n\n\
            id: bad\0id\ndata: y\n\n\
            id\ndata: z\n\n\
            retry: 12a\nretry: \nfoo: bar\nevent\ndata:no space\n\n";
        let mut decoder = Decoder::new();
        let mut events = Vec::new();
        decoder.feed(stream, &mut events).unwrap();
        assert_eq!(
            events,
            vec![
                event("first", "1", ""),
                event("message", "2", ""),
                event("message", "x", "3"),
                event("message", "y", "3"),
                event("message", "z", ""),
                event("message", "no space", ""),
            ]
        );
        assert_eq!(decoder.retry(), None);
    }

    #[test]
    fn a_bom_is_skipped_only_at_the_start_and_even_when_cut() {
        let stream = "\u{FEFF}data: a\n\n\u{FEFF}data: b\n\n".as_bytes();
        // The second line's BOM makes its field name "\u{FEFF}data", which is ignored.
        for cut in 1..3 {
            let (events, end) = decode_in(&[&stream[..cut], &stream[cut..]]);
            assert_eq!(end, Ok(()));
            assert_eq!(events, vec![event("message", "a", "")]);
        }
    }

    #[test]
    fn an_unterminated_event_is_discarded_and_reported() {
        assert_eq!(
            decode_in(&[b"data: done\n\ndata: cut"]),
            (
                vec![event("message", "done", "")],
                Err(SseError::Unterminated { bytes: 9 })
            )
        );
        assert_eq!(
            decode_in(&[b"data: x\n"]),
            (vec![], Err(SseError::Unterminated { bytes: 7 }))
        );
    }

    #[test]
    fn an_oversized_event_is_an_error_and_stops_the_decoder() {
        let mut decoder = Decoder::with_limit(16);
        let mut events = Vec::new();
        decoder
            .feed(b"data: 0123456789\n\ndata: 01234", &mut events)
            .unwrap();
        let too_large = Err(SseError::EventTooLarge { limit: 16 });
        assert_eq!(decoder.feed(b"56789ab", &mut events), too_large);
        assert_eq!(decoder.feed(b"\n\n", &mut events), too_large);
        assert_eq!(events, vec![event("message", "0123456789", "")]);
        assert_eq!(decoder.finish(), too_large);

        // Many lines without a blank one count together.
        let mut decoder = Decoder::with_limit(64);
        let endless = b"data\n".repeat(100);
        assert_eq!(
            decoder.feed(&endless, &mut events),
            Err(SseError::EventTooLarge { limit: 64 })
        );
    }
}
