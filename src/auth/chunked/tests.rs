use proptest::prelude::*;

use super::*;

const SIG: &str = "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648";

/// What a whole input decodes to, fed in pieces at the given cut points.
#[derive(Debug, Default, PartialEq, Eq)]
struct Decoded {
    chunks: Vec<(u64, Option<[u8; 32]>)>,
    data: Vec<u8>,
    chunk_ends: usize,
    trailers: Vec<(String, String)>,
    ended: bool,
}

fn decode_split(framing: Framing, input: &[u8], cuts: &[usize]) -> Result<Decoded, ChunkedError> {
    let mut decoder = Decoder::new(framing, MAX_SIGNED_CHUNK_SIZE);
    let mut out = Decoded::default();
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    bounds.push(0);
    bounds.push(input.len());
    bounds.sort_unstable();
    for w in bounds.windows(2) {
        let mut piece = &input[w[0]..w[1]];
        while !piece.is_empty() {
            let (n, event) = decoder.decode(piece)?;
            assert!(n > 0 || event.is_some(), "no progress");
            piece = &piece[n..];
            match event {
                None => assert!(piece.is_empty(), "no event but input left"),
                Some(Event::Chunk { size, signature }) => out.chunks.push((size, signature)),
                Some(Event::Data(d)) => out.data.extend_from_slice(d),
                Some(Event::ChunkEnd) => out.chunk_ends += 1,
                Some(Event::Trailer { name, value }) => out.trailers.push((name, value)),
                Some(Event::End) => out.ended = true,
            }
        }
    }
    decoder.finish()?;
    Ok(out)
}

fn decode(framing: Framing, input: &[u8]) -> Result<Decoded, ChunkedError> {
    decode_split(framing, input, &[])
}

fn unsigned(chunks: &[&[u8]], trailers: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chunks {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n");
    out.extend_from_slice(trailers.as_bytes());
    out.extend_from_slice(b"\r\n");
    out
}

#[test]
fn signed_chunks_and_trailers() {
    let input = format!(
        "3;chunk-signature={SIG}\r\nabc\r\n0;chunk-signature={SIG}\r\nx-amz-checksum-crc32:NSRBwg==\r\nx-amz-trailer-signature:{SIG}\r\n\r\n"
    );
    let d = decode(Framing::Signed, input.as_bytes()).unwrap();
    let sig = super::super::sigv4::parse_signature(SIG);
    assert_eq!(d.chunks, vec![(3, sig), (0, sig)]);
    assert_eq!(d.data, b"abc");
    assert_eq!(d.chunk_ends, 1);
    assert_eq!(
        d.trailers,
        vec![
            ("x-amz-checksum-crc32".to_owned(), "NSRBwg==".to_owned()),
            ("x-amz-trailer-signature".to_owned(), SIG.to_owned())
        ]
    );
    assert!(d.ended);
}

#[test]
fn unsigned_chunks() {
    let input = unsigned(&[b"hello ", b"world"], "X-Amz-Checksum-CRC32:  abc=  \r\n");
    let d = decode(Framing::Unsigned, &input).unwrap();
    assert_eq!(d.data, b"hello world");
    assert_eq!(
        d.trailers,
        vec![("x-amz-checksum-crc32".to_owned(), "abc=".to_owned())]
    );
}

#[test]
fn rejects_malformed_framing() {
    let cases: &[(Framing, &[u8], ChunkedError)] = &[
        (
            Framing::Unsigned,
            b"+3\r\nabc\r\n0\r\n\r\n",
            ChunkedError::InvalidChunkMeta("chunk-size must be 1 to 16 hex digits"),
        ),
        (
            Framing::Unsigned,
            b" 3\r\nabc\r\n0\r\n\r\n",
            ChunkedError::InvalidChunkMeta("chunk-size must be 1 to 16 hex digits"),
        ),
        (
            Framing::Unsigned,
            b"0x3\r\nabc\r\n0\r\n\r\n",
            ChunkedError::InvalidChunkMeta("chunk-size must be 1 to 16 hex digits"),
        ),
        (
            Framing::Unsigned,
            b"\r\n",
            ChunkedError::InvalidChunkMeta("chunk-size must be 1 to 16 hex digits"),
        ),
        (
            Framing::Unsigned,
            b"10000000000000000\r\n",
            ChunkedError::InvalidChunkMeta("chunk-size must be 1 to 16 hex digits"),
        ),
        (
            Framing::Unsigned,
            b"3;ext=1\r\nabc\r\n0\r\n\r\n",
            ChunkedError::InvalidChunkMeta("chunk-size must be 1 to 16 hex digits"),
        ),
        (
            Framing::Unsigned,
            b"3\nabc\r\n0\r\n\r\n",
            ChunkedError::InvalidChunkMeta("lines must end with CRLF"),
        ),
        (
            Framing::Unsigned,
            b"3\r\nabcX\n0\r\n\r\n",
            ChunkedError::MissingCrlf,
        ),
        (
            Framing::Unsigned,
            b"3\r\nabc\rX0\r\n\r\n",
            ChunkedError::MissingCrlf,
        ),
        (
            Framing::Unsigned,
            b"0\r\nnocolon\r\n\r\n",
            ChunkedError::InvalidTrailer("expecting 'name:value'"),
        ),
        (
            Framing::Unsigned,
            b"0\r\nbad name:v\r\n\r\n",
            ChunkedError::InvalidTrailer("invalid trailer name"),
        ),
        (
            Framing::Unsigned,
            b"0\r\nname:v\n\r\n",
            ChunkedError::InvalidTrailer("lines must end with CRLF"),
        ),
        (
            Framing::Unsigned,
            b"0\r\n\r\nextra",
            ChunkedError::TrailingData,
        ),
        (Framing::Unsigned, b"3\r\nabc\r\n", ChunkedError::Truncated),
        (Framing::Unsigned, b"3\r\nab", ChunkedError::Truncated),
        (Framing::Unsigned, b"0\r\nx:y\r\n", ChunkedError::Truncated),
        (
            Framing::Signed,
            b"3\r\nabc\r\n",
            ChunkedError::InvalidChunkMeta("missing chunk-signature"),
        ),
        (
            Framing::Signed,
            b"3;chunk-sig=00\r\n",
            ChunkedError::InvalidChunkMeta("expecting ';chunk-signature='"),
        ),
        (
            Framing::Signed,
            b"3;chunk-signature=00\r\n",
            ChunkedError::InvalidChunkMeta("chunk-signature must be 64 lowercase hex digits"),
        ),
    ];
    for (framing, input, expected) in cases {
        assert_eq!(
            decode(*framing, input).unwrap_err(),
            *expected,
            "{}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn limits_are_enforced() {
    let too_big = format!("{:x};chunk-signature={SIG}\r\n", MAX_SIGNED_CHUNK_SIZE + 1);
    assert_eq!(
        decode(Framing::Signed, too_big.as_bytes()).unwrap_err(),
        ChunkedError::ChunkTooLarge {
            size: MAX_SIGNED_CHUNK_SIZE + 1,
            limit: MAX_SIGNED_CHUNK_SIZE
        }
    );
    let endless_meta = vec![b'1'; MAX_CHUNK_META_SIZE + 1];
    assert_eq!(
        decode(Framing::Unsigned, &endless_meta).unwrap_err(),
        ChunkedError::MetaTooLong
    );
    // The limit holds however the line is split.
    assert_eq!(
        decode_split(Framing::Unsigned, &endless_meta, &[1, 7, 500]).unwrap_err(),
        ChunkedError::MetaTooLong
    );
    let mut endless_trailers = b"0\r\n".to_vec();
    while endless_trailers.len() < MAX_TRAILERS_SIZE + 100 {
        endless_trailers.extend_from_slice(b"x-amz-meta-a:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n");
    }
    assert_eq!(
        decode(Framing::Unsigned, &endless_trailers).unwrap_err(),
        ChunkedError::TrailersTooLong
    );
}

#[test]
fn sizes_are_hex_of_any_case() {
    let d = decode(Framing::Unsigned, &unsigned(&[&[7u8; 0x1af]], "")).unwrap();
    assert_eq!(d.data.len(), 0x1af);
    let d = decode(
        Framing::Unsigned,
        b"01A\r\naaaaaaaaaaaaaaaaaaaaaaaaaa\r\n0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(d.data.len(), 26);
}

proptest! {
    /// The decoder's output does not depend on how the input is split.
    #[test]
    fn any_split_decodes_the_same(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 0..6),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        signed in any::<bool>(),
    ) {
        let mut input = Vec::new();
        let ext = if signed { format!(";chunk-signature={SIG}") } else { String::new() };
        for c in &chunks {
            input.extend_from_slice(format!("{:x}{ext}\r\n", c.len()).as_bytes());
            input.extend_from_slice(c);
            input.extend_from_slice(b"\r\n");
        }
        input.extend_from_slice(format!("0{ext}\r\nx-amz-checksum-crc32c:sOO8/Q==\r\n\r\n").as_bytes());
        let framing = if signed { Framing::Signed } else { Framing::Unsigned };
        let whole = decode(framing, &input).unwrap();
        prop_assert_eq!(&whole.data, &chunks.concat());
        prop_assert_eq!(whole.chunk_ends, chunks.len());
        prop_assert!(whole.ended);
        prop_assert_eq!(decode_split(framing, &input, &cuts).unwrap(), whole);
        // Every strict prefix is incomplete, never accepted.
        let cut = cuts.first().map_or(0, |c| c % input.len());
        prop_assert!(decode(framing, &input[..cut]).is_err());
    }

    /// Arbitrary bytes never panic, and errors do not depend on the split either.
    #[test]
    fn garbage_is_rejected_consistently(
        input in proptest::collection::vec(prop_oneof![
            Just(b'\r'), Just(b'\n'), Just(b'0'), Just(b'3'), Just(b'a'), Just(b':'), any::<u8>()
        ], 0..200),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let whole = decode(Framing::Unsigned, &input);
        let split = decode_split(Framing::Unsigned, &input, &cuts);
        prop_assert_eq!(whole, split);
    }
}
