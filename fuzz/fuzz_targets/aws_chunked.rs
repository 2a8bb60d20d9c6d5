//! The aws-chunked decoder: never panics, always makes progress, and decodes any input the same
//! way however it is split (the first input bytes choose the framing and the split points).
#![no_main]

use libfuzzer_sys::fuzz_target;
use s3seal::auth::chunked::{ChunkedError, Decoder, Event, Framing, MAX_SIGNED_CHUNK_SIZE};

/// Everything the decoder reported, flattened so two runs can be compared.
fn run(
    framing: Framing,
    input: &[u8],
    step: usize,
) -> (Vec<u8>, Vec<String>, Result<(), ChunkedError>) {
    let mut decoder = Decoder::new(framing, MAX_SIGNED_CHUNK_SIZE);
    let (mut data, mut events) = (Vec::new(), Vec::new());
    for mut piece in input.chunks(step.max(1)) {
        while !piece.is_empty() {
            let (n, event) = match decoder.decode(piece) {
                Ok(r) => r,
                Err(e) => return (data, events, Err(e)),
            };
            assert!(n <= piece.len());
            assert!(n > 0 || event.is_some(), "the decoder must make progress");
            piece = &piece[n..];
            match event {
                None => assert!(piece.is_empty(), "no event means all input was consumed"),
                Some(Event::Data(d)) => data.extend_from_slice(d),
                Some(other) => events.push(format!("{other:?}")),
            }
        }
    }
    (data, events, decoder.finish())
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, body)) = input.split_first() else {
        return;
    };
    let framing = if selector & 1 == 0 {
        Framing::Unsigned
    } else {
        Framing::Signed
    };
    let step = usize::from(selector >> 1) + 1;
    let whole = run(framing, body, body.len());
    let split = run(framing, body, step);
    assert_eq!(whole, split);
});
