//! Any bytes into the server-sent events decoder (`edgebot::net::sse`) that the LLM
//! client reads provider streams with, fed whole, cut into chunks at fuzzer-chosen
//! offsets, and byte by byte: every way must give exactly the same events, the same
//! error and the same end, and none may panic.
//!
//! The input is read with `arbitrary`: two bytes of event-size limit (0 means the
//! default 1 MiB, so small limits exercise the size error), one byte N, N two-byte
//! cut offsets (taken modulo the stream's length), and the rest is the stream. The seeds
//! from `fuzz/seed.sh` start with `ff ff 03` and three offsets.

#![no_main]

use arbitrary::Unstructured;
use edgebot::net::sse::{DEFAULT_MAX_EVENT_BYTES, Decoder, Event, SseError};
use libfuzzer_sys::fuzz_target;

/// What decoding a stream gave: its events, and how it stopped or ended.
fn decode<'a>(
    limit: usize,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> (Vec<Event>, Result<(), SseError>) {
    let mut decoder = Decoder::with_limit(limit);
    let mut events = Vec::new();
    for chunk in chunks {
        if let Err(error) = decoder.feed(chunk, &mut events) {
            return (events, Err(error));
        }
    }
    (events, decoder.finish())
}

fn input(data: &[u8]) -> arbitrary::Result<(usize, Vec<usize>, &[u8])> {
    let mut u = Unstructured::new(data);
    let limit = match u.arbitrary::<u16>()? {
        0 => DEFAULT_MAX_EVENT_BYTES,
        limit => usize::from(limit),
    };
    let cuts: u8 = u.arbitrary()?;
    let mut offsets = Vec::with_capacity(usize::from(cuts));
    for _ in 0..cuts {
        offsets.push(usize::from(u.arbitrary::<u16>()?));
    }
    Ok((limit, offsets, u.take_rest()))
}

fuzz_target!(|data: &[u8]| {
    let Ok((limit, offsets, stream)) = input(data) else {
        return;
    };
    let whole = decode(limit, [stream]);

    let mut cuts: Vec<usize> = offsets
        .iter()
        .map(|offset| offset % (stream.len() + 1))
        .collect();
    cuts.push(0);
    cuts.push(stream.len());
    cuts.sort_unstable();
    let chunks = cuts.windows(2).map(|pair| &stream[pair[0]..pair[1]]);
    assert_eq!(decode(limit, chunks), whole, "cut at {cuts:?}");

    assert_eq!(decode(limit, stream.chunks(1)), whole, "byte by byte");

    // What came out holds to the standard's shape.
    for event in &whole.0 {
        assert!(!event.event.is_empty());
        assert!(!event.event.contains(['\r', '\n']));
        assert!(!event.data.contains('\r'));
        assert!(!event.id.contains(['\r', '\n', '\0']));
    }
});
