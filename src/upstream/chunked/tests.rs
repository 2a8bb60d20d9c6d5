use std::collections::VecDeque;

use super::*;
use crate::auth::checksum::{checksum, ChecksumAlgorithm};
use crate::auth::chunked::{Decoder, Event, Framing};
use http::{HeaderMap, HeaderValue};
use http_body_util::BodyExt;

/// A body that yields the given frames one by one.
struct Frames(VecDeque<Frame<Bytes>>);

impl Body for Frames {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Poll::Ready(self.0.pop_front().map(Ok))
    }
}

fn source(data: &[u8], split: usize, trailer: Option<(ChecksumAlgorithm, String)>) -> Frames {
    let mut frames: VecDeque<Frame<Bytes>> = data
        .chunks(split.max(1))
        .map(|c| Frame::data(Bytes::copy_from_slice(c)))
        .collect();
    if let Some((alg, value)) = trailer {
        let mut h = HeaderMap::new();
        h.insert(alg.header_name(), HeaderValue::from_str(&value).unwrap());
        frames.push_back(Frame::trailers(h));
    }
    Frames(frames)
}

async fn encode(data: &[u8], split: usize, alg: ChecksumAlgorithm) -> Vec<u8> {
    let value = ChecksumAlgorithm::encode(&checksum(alg, data));
    let body = AwsChunked::new(
        source(data, split, Some((alg, value))),
        alg,
        data.len() as u64,
    );
    assert_eq!(
        body.size_hint().exact(),
        Some(encoded_len(data.len() as u64, alg))
    );
    body.collect().await.unwrap().to_bytes().to_vec()
}

#[tokio::test]
async fn encoding_has_the_announced_length_and_decodes_back() {
    let algs = [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32c,
        ChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
    ];
    for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17] {
        for split in [1000, CHUNK, 100_000] {
            for alg in algs {
                let data: Vec<u8> = (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect();
                let enc = encode(&data, split, alg).await;
                assert_eq!(
                    enc.len() as u64,
                    encoded_len(len as u64, alg),
                    "len {len} split {split} {alg:?}"
                );
                // Decode with the proxy's own (independently tested) aws-chunked parser.
                let mut dec = Decoder::new(Framing::Unsigned, u64::MAX);
                let mut out = Vec::new();
                let mut trailers = Vec::new();
                let mut input = &enc[..];
                let mut ended = false;
                while !input.is_empty() {
                    let (n, ev) = dec.decode(input).unwrap();
                    match ev {
                        Some(Event::Data(d)) => out.extend_from_slice(d),
                        Some(Event::Trailer { name, value }) => trailers.push((name, value)),
                        Some(Event::End) => ended = true,
                        _ => {}
                    }
                    input = &input[n..];
                }
                assert!(ended);
                assert_eq!(out, data);
                assert_eq!(
                    trailers,
                    [(
                        alg.header_name().to_owned(),
                        ChecksumAlgorithm::encode(&checksum(alg, &data))
                    )]
                );
            }
        }
    }
}

#[tokio::test]
async fn a_missing_trailer_is_an_error() {
    let alg = ChecksumAlgorithm::Crc32;
    let body = AwsChunked::new(source(b"abc", 2, None), alg, 3);
    assert!(body.collect().await.is_err());
}
