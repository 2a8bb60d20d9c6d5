//! The chunk decoder (`docs/format.md` §3, §7): whatever is done to a stored object (bytes
//! flipped, cut, extended; any split into frames; parts in any order), the decryptor releases
//! only a prefix of the plaintext, and all of it only when nothing was changed.
#![no_main]

use std::collections::VecDeque;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http_body::{Body, Frame};
use libfuzzer_sys::fuzz_target;
use s3seal::crypto::format::{CipherRange, DataKey, ObjectKey, PartNumber, Salt};
use s3seal::crypto::{DecryptSegments, EncryptBody, Segment};

struct Frames(VecDeque<Bytes>);

impl Body for Frames {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

/// Everything a body yields, and whether it failed.
fn drain<B: Body<Data = Bytes>>(body: B) -> (Vec<u8>, bool) {
    let mut body = pin!(body);
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    loop {
        match body.as_mut().poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(f))) => out.extend_from_slice(&f.into_data().unwrap_or_default()),
            Poll::Ready(Some(Err(_))) => return (out, true),
            Poll::Ready(None) => return (out, false),
            Poll::Pending => unreachable!("the test bodies are always ready"),
        }
    }
}

fn frames(data: &[u8], step: usize) -> Frames {
    Frames(data.chunks(step.max(1)).map(Bytes::copy_from_slice).collect())
}

const C: usize = 65_536;

fuzz_target!(|input: &[u8]| {
    let [a, b, c, d, e, rest @ ..] = input else {
        return;
    };
    // Two parts of up to ~3 chunks each; the fuzzer picks sizes, edits and framing.
    let lens = [usize::from(*a) * 769 % (3 * C), usize::from(*b) * 1031 % (2 * C + 7)];
    let key = ObjectKey::derive(&DataKey::from_bytes([7; 32]), Salt([9; 32]));
    let part = |i: usize| PartNumber::multipart(u32::try_from(i + 1).unwrap()).unwrap();
    let mut plain = Vec::new();
    let mut stored = Vec::new();
    for (i, len) in lens.iter().enumerate() {
        let data: Vec<u8> = (0..*len).map(|j| (j * 13 + i) as u8).collect();
        let body = EncryptBody::new(frames(&data, 4096), key.part_key(part(i)), *len as u64)
            .expect("a small segment");
        let (cipher, failed) = drain(body);
        assert!(!failed);
        stored.extend(cipher);
        plain.extend(data);
    }
    let pristine = stored.clone();
    // Edits: flip bytes at fuzzer-chosen places, then cut or extend.
    for pair in rest.chunks(3) {
        if let [hi, lo, x] = pair {
            if !stored.is_empty() {
                let at = (usize::from(*hi) << 8 | usize::from(*lo)) * 7 % stored.len();
                stored[at] ^= x;
            }
        }
    }
    match *c % 4 {
        0 => stored.truncate(stored.len() * usize::from(*d) / 256),
        1 => stored.extend_from_slice(&[*d; 5]),
        _ => {}
    }
    let order: &[usize] = if *e & 1 == 0 { &[0, 1] } else { &[1, 0] };
    let segments = order
        .iter()
        .map(|&i| Segment {
            key: key.part_key(part(i)),
            range: CipherRange::whole(lens[i] as u64).unwrap(),
        })
        .collect();
    let step = usize::from(*d) * 257 + 1;
    let (out, failed) = drain(DecryptSegments::new(frames(&stored, step), segments));
    let intact = stored == pristine && order == [0, 1];
    if intact {
        assert!(!failed && out == plain, "an intact object must decrypt");
    } else {
        assert!(plain.starts_with(&out), "released bytes that are not the plaintext");
        assert!(failed, "a changed object was accepted");
    }
});
