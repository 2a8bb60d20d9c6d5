//! Tests of the format (`docs/format.md`) and of the streaming bodies. Section numbers cite the spec.

mod spec;

use std::collections::VecDeque;
use std::ops::Range;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame};
use proptest::collection::vec;
use proptest::prelude::*;

use super::format::{
    ciphertext_len, ciphertext_range_for, plaintext_len, Binding, CipherRange, Commitment, DataKey,
    FormatError, Kek, KeyId, Layout, ObjectKey, ObjectMetadata, PartNumber, Place, Salt, Seal,
    SegmentPrefix, UploadToken, Version, CHUNK_OVERHEAD, CHUNK_SIZE, CIPHER_CHUNK_SIZE,
    LOCAL_WRAPPED_DEK_LEN, MAX_KEY_ID_LEN, MAX_PART_NUMBER, MAX_SEGMENT_LEN, MAX_WRAPPED_DEK_LEN,
    META_COMMITMENT, META_KEY_ID, META_LAYOUT, META_SALT, META_SEAL, META_VERSION,
    META_WRAPPED_DEK,
};
use super::{DecryptBody, EncryptBody, StreamError};

const C: usize = CHUNK_SIZE;
const CC: usize = CIPHER_CHUNK_SIZE;

// === Test bodies ===

enum Item {
    Data(Bytes),
    Trailers,
    Fail,
}

/// A body that yields scripted frames, returning `Pending` (after waking) before each one when
/// `pending` is set, so the adapters' state survives across polls.
pub(super) struct Script {
    items: VecDeque<Item>,
    pending: bool,
    ready: bool,
}

impl Body for Script {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.pending && !self.ready {
            self.ready = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.ready = false;
        Poll::Ready(self.items.pop_front().map(|item| match item {
            Item::Data(data) => Ok(Frame::data(data)),
            Item::Trailers => Ok(Frame::trailers(HeaderMap::from_iter([(
                http::HeaderName::from_static("x-amz-checksum-crc32"),
                HeaderValue::from_static("AAAAAA=="),
            )]))),
            Item::Fail => Err(std::io::Error::other("inner failure")),
        }))
    }
}

/// `data` cut at `cuts` (taken modulo its length, so any values do), as a script.
pub(super) fn split(data: &[u8], cuts: &[usize], pending: bool) -> Script {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.extend([0, data.len()]);
    points.sort_unstable();
    let items = points
        .windows(2)
        .map(|w| Item::Data(Bytes::copy_from_slice(&data[w[0]..w[1]])))
        .collect();
    Script {
        items,
        pending,
        ready: false,
    }
}

fn script(items: Vec<Item>) -> Script {
    Script {
        items: items.into(),
        pending: false,
        ready: false,
    }
}

/// Drives `body` to its end: its data, and its error if it failed. Checks that `size_hint` is
/// exact throughout a successful run and that the body then reports its end.
pub(super) fn drain<B: Body<Data = Bytes>>(body: B) -> (Vec<u8>, Option<B::Error>) {
    let mut body = pin!(body);
    let mut cx = Context::from_waker(Waker::noop());
    let announced = body.size_hint().exact().expect("an exact size hint");
    let mut out = Vec::new();
    loop {
        match body.as_mut().poll_frame(&mut cx) {
            Poll::Pending => {}
            Poll::Ready(None) => {
                assert!(body.is_end_stream());
                assert_eq!(out.len() as u64, announced, "size_hint was not exact");
                return (out, None);
            }
            Poll::Ready(Some(Ok(frame))) => {
                out.extend_from_slice(&frame.into_data().expect("trailers are dropped"));
                assert_eq!(body.size_hint().exact(), Some(announced - out.len() as u64));
            }
            Poll::Ready(Some(Err(e))) => {
                assert!(body.is_end_stream());
                return (out, Some(e));
            }
        }
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from((i * 31 + (i >> 8) * 7 + usize::from(seed)) % 251).unwrap())
        .collect()
}

fn index(at: u64) -> usize {
    usize::try_from(at).unwrap()
}

fn new_object() -> ObjectKey {
    ObjectKey::derive(&DataKey::generate(), Salt::generate())
}

fn encrypt(key: &ObjectKey, part: PartNumber, plain: &[u8]) -> Vec<u8> {
    let inner = split(plain, &[], false);
    let (stored, error) =
        drain(EncryptBody::new(inner, key.part_key(part), plain.len() as u64).unwrap());
    assert!(error.is_none());
    stored
}

/// Decrypts `stored` (already cut to `range`), returning what was released and the error.
fn decrypt_range(
    key: &ObjectKey,
    part: PartNumber,
    stored: &[u8],
    range: CipherRange,
) -> (Vec<u8>, Option<StreamError>) {
    drain(DecryptBody::new(
        split(stored, &[], false),
        key.part_key(part),
        range,
    ))
}

fn decrypt(key: &ObjectKey, stored: &[u8], plain_len: usize) -> (Vec<u8>, Option<StreamError>) {
    let range = CipherRange::whole(plain_len as u64).unwrap();
    decrypt_range(key, PartNumber::SINGLE, stored, range)
}

fn kek(id: &str, byte: u8) -> Kek {
    Kek::new(KeyId::new(id).unwrap(), &[byte; 32])
}

// === Lengths and ranges (§4) ===

#[test]
fn ciphertext_lengths() {
    let o = CHUNK_OVERHEAD as u64;
    let c = C as u64;
    assert_eq!(ciphertext_len(0), Some(o));
    assert_eq!(ciphertext_len(1), Some(1 + o));
    assert_eq!(ciphertext_len(c - 1), Some(c - 1 + o));
    assert_eq!(ciphertext_len(c), Some(CC as u64));
    assert_eq!(ciphertext_len(c + 1), Some(c + 1 + 2 * o));
    assert_eq!(
        ciphertext_len(MAX_SEGMENT_LEN),
        Some(MAX_SEGMENT_LEN + (o << 32))
    );
    assert_eq!(ciphertext_len(MAX_SEGMENT_LEN + 1), None);
    assert_eq!(
        plaintext_len(MAX_SEGMENT_LEN + (o << 32)),
        Some(MAX_SEGMENT_LEN)
    );
}

#[test]
fn impossible_ciphertext_lengths() {
    for c in (0..CHUNK_OVERHEAD).chain(CC + 1..=CC + CHUNK_OVERHEAD) {
        assert_eq!(plaintext_len(c as u64), None, "{c}");
    }
}

#[test]
fn range_mapping_example() {
    // Bytes 65535..=65536 straddle chunks 0 and 1 of a 3-chunk segment.
    let total = 2 * C as u64 + 10;
    let r = ciphertext_range_for(65535..65537, total).unwrap();
    assert_eq!((r.cipher_start(), r.cipher_end()), (0, 2 * CC as u64));
    assert_eq!((r.skip_in_first_chunk(), r.plain_len()), (65535, 2));
    assert_eq!((r.first_chunk(), r.final_chunk()), (0, 2));
    assert_eq!(r.http_range(), format!("bytes=0-{}", 2 * CC - 1));
    // The last byte needs only the short final chunk.
    let r = ciphertext_range_for(total - 1..total, total).unwrap();
    assert_eq!(r.cipher_start(), 2 * CC as u64);
    assert_eq!(r.cipher_end(), ciphertext_len(total).unwrap());
    assert_eq!(r.skip_in_first_chunk(), 9);
    // Empty and out-of-bounds ranges are 416s.
    assert_eq!(ciphertext_range_for(5..5, total), None);
    assert_eq!(ciphertext_range_for(0..total + 1, total), None);
    assert_eq!(ciphertext_range_for(0..1, 0), None);
}

/// An HTTP byte range (RFC 9110 §14.1.2), resolved as §4 says.
#[derive(Debug, Clone)]
enum Form {
    FromTo(u64, u64),
    From(u64),
    Suffix(u64),
}

fn resolve(form: &Form, total: u64) -> Option<Range<u64>> {
    let range = match *form {
        Form::FromTo(x, y) => x..(y + 1).min(total),
        Form::From(x) => x..total,
        Form::Suffix(k) => total - k.min(total)..total,
    };
    (range.start < range.end).then_some(range)
}

fn form() -> impl Strategy<Value = Form> {
    let at = 0..4 * C as u64;
    prop_oneof![
        (at.clone(), at.clone()).prop_map(|(a, b)| Form::FromTo(a.min(b), a.max(b))),
        at.clone().prop_map(Form::From),
        at.prop_map(Form::Suffix),
    ]
}

fn plain_len_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(C - 1),
        Just(C),
        Just(C + 1),
        Just(3 * C),
        0..3 * C + 100,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn lengths_are_a_bijection(p in 0..MAX_SEGMENT_LEN, c in any::<u64>()) {
        prop_assert_eq!(plaintext_len(ciphertext_len(p).unwrap()), Some(p));
        if let Some(p) = plaintext_len(c) {
            prop_assert_eq!(ciphertext_len(p), Some(c));
        }
    }

    /// §4: with 64 KiB-aligned parts and a non-empty last part, a multipart object's stored size
    /// is that of one segment, so listings can show exact plaintext sizes.
    #[test]
    fn aligned_parts_sum_like_one_segment(parts in vec(1..200u64, 1..6), last in 1..3 * C as u64) {
        let mut sizes: Vec<u64> = parts.iter().map(|n| n * C as u64).collect();
        sizes.push(last);
        let stored: u64 = sizes.iter().map(|&p| ciphertext_len(p).unwrap()).sum();
        prop_assert_eq!(plaintext_len(stored), Some(sizes.iter().sum()));
    }

    /// `decrypt(encrypt(x)) == x`, with the stored length equal to the size hint and to
    /// `ciphertext_len`, for any frame splits and `Pending`s, read back by both readers.
    #[test]
    fn roundtrip(
        len in plain_len_strategy(),
        seed: u8,
        cuts in vec(any::<usize>(), 0..6),
        read_cuts in vec(any::<usize>(), 0..6),
        pending: bool,
    ) {
        let plain = pattern(len, seed);
        let kek = kek("local:k1", 7);
        let dek = DataKey::generate();
        let key = ObjectKey::derive(&dek, Salt::generate());
        let mut headers = HeaderMap::new();
        let wrapped = kek.wrap(&dek, Binding::V2(PLACE));
        ObjectMetadata::new(Layout::Single, kek.id().clone(), wrapped, &key, PLACE)
            .write_headers(&mut headers);

        let body = EncryptBody::new(split(&plain, &cuts, pending), key.part_key(PartNumber::SINGLE), len as u64).unwrap();
        let (stored, error) = drain(body);
        prop_assert!(error.is_none());
        prop_assert_eq!(stored.len() as u64, ciphertext_len(len as u64).unwrap());

        // The proxy's read path: metadata → unwrap → commitment → part key.
        let meta = ObjectMetadata::from_headers(&headers).unwrap().unwrap();
        let dek = kek.unwrap(&meta.wrapped_dek, meta.binding(PLACE)).unwrap();
        let key = meta.open(&dek, PLACE).unwrap();
        let range = CipherRange::whole(plaintext_len(stored.len() as u64).unwrap()).unwrap();
        let body = DecryptBody::new(split(&stored, &read_cuts, pending), key.part_key(PartNumber::SINGLE), range);
        let (back, error) = drain(body);
        prop_assert!(error.is_none());
        prop_assert_eq!(&back, &plain);

        let keyring = [("local:k1", [7; 32])];
        prop_assert_eq!(spec::decrypt_single(&headers, &keyring, ("b", "k"), &stored), Ok(plain));
    }

    /// Every range form maps to the chunks that hold it, and only those; decrypting them yields
    /// the plaintext slice.
    #[test]
    fn ranges(len in 1..3 * C + 100, form in form(), cuts in vec(any::<usize>(), 0..4)) {
        let plain = pattern(len, 1);
        let total = len as u64;
        let key = new_object();
        let stored = encrypt(&key, PartNumber::SINGLE, &plain);
        let Some(range) = resolve(&form, total) else {
            return Ok(());
        };
        let r = ciphertext_range_for(range.clone(), total).unwrap();
        let (first, last) = (range.start / C as u64, (range.end - 1) / C as u64);
        prop_assert_eq!(r.cipher_start(), first * CC as u64);
        prop_assert_eq!(r.cipher_end(), ((last + 1) * CC as u64).min(stored.len() as u64));
        prop_assert_eq!(r.skip_in_first_chunk() as u64, range.start % C as u64);

        let fetched = &stored[index(r.cipher_start())..index(r.cipher_end())];
        let body = DecryptBody::new(split(fetched, &cuts, true), key.part_key(PartNumber::SINGLE), r);
        let (back, error) = drain(body);
        prop_assert!(error.is_none());
        prop_assert_eq!(&back[..], &plain[index(range.start)..index(range.end)]);
    }
}

// === Tampering (§3, §8) ===

/// A 3-chunk object, its stored bytes and its chunks.
fn three_chunks() -> (ObjectKey, Vec<u8>, Vec<u8>) {
    let plain = pattern(2 * C + 100, 9);
    let key = new_object();
    let stored = encrypt(&key, PartNumber::SINGLE, &plain);
    (key, plain, stored)
}

fn chunks(stored: &[u8]) -> Vec<&[u8]> {
    stored.chunks(CC).collect()
}

#[test]
fn truncated_body_is_detected() {
    let (key, plain, stored) = three_chunks();
    let (out, error) = decrypt(&key, &stored[..2 * CC], plain.len());
    assert!(
        matches!(error, Some(StreamError::Truncated { received, .. }) if received == 2 * CC as u64)
    );
    assert_eq!(
        out,
        plain[..2 * C],
        "only authenticated chunks are released"
    );
}

#[test]
fn truncated_object_is_detected() {
    // The attacker truncates the stored object; the proxy derives the shorter length from it.
    let (key, _, stored) = three_chunks();
    for cut in [2 * CC, stored.len() - 1, CC + 500] {
        let short = index(plaintext_len(cut as u64).unwrap());
        let (_, error) = decrypt(&key, &stored[..cut], short);
        assert!(
            matches!(error, Some(StreamError::ChunkAuthentication { index }) if index == u32::try_from(cut.div_ceil(CC) - 1).unwrap()),
            "cut at {cut}: {error:?}"
        );
    }
}

#[test]
fn trailing_data_is_detected() {
    let (key, plain, mut stored) = three_chunks();
    stored.push(0);
    let (_, error) = decrypt(&key, &stored, plain.len());
    assert!(matches!(error, Some(StreamError::TrailingData { .. })));
}

#[test]
fn swapped_and_duplicated_chunks_are_detected() {
    let (key, plain, stored) = three_chunks();
    let c = chunks(&stored);
    let swapped = [c[1], c[0], c[2]].concat();
    let (out, error) = decrypt(&key, &swapped, plain.len());
    assert!(matches!(
        error,
        Some(StreamError::ChunkAuthentication { index: 0 })
    ));
    assert!(out.is_empty());
    let duplicated = [c[0], c[0], c[2]].concat();
    let (out, error) = decrypt(&key, &duplicated, plain.len());
    assert!(matches!(
        error,
        Some(StreamError::ChunkAuthentication { index: 1 })
    ));
    assert_eq!(out, plain[..C]);
}

#[test]
fn chunks_spliced_from_another_object_are_detected() {
    // Same DEK (a cached KMS data key), other salt: the keys differ all the same.
    let dek = DataKey::generate();
    let a = ObjectKey::derive(&dek, Salt::generate());
    let b = ObjectKey::derive(&dek, Salt::generate());
    let plain = pattern(2 * C + 100, 9);
    let (sa, sb) = (
        encrypt(&a, PartNumber::SINGLE, &plain),
        encrypt(&b, PartNumber::SINGLE, &plain),
    );
    let spliced = [chunks(&sa)[0], chunks(&sb)[1], chunks(&sa)[2]].concat();
    let (_, error) = decrypt(&a, &spliced, plain.len());
    assert!(matches!(
        error,
        Some(StreamError::ChunkAuthentication { index: 1 })
    ));
}

#[test]
fn chunks_spliced_from_another_part_are_detected() {
    let key = new_object();
    let plain = pattern(2 * C + 100, 9);
    let [p1, p2] = [1, 2].map(|n| PartNumber::multipart(n).unwrap());
    let (s1, s2) = (encrypt(&key, p1, &plain), encrypt(&key, p2, &plain));
    let spliced = [chunks(&s1)[0], chunks(&s2)[1], chunks(&s1)[2]].concat();
    let range = CipherRange::whole(plain.len() as u64).unwrap();
    let (_, error) = decrypt_range(&key, p1, &spliced, range.clone());
    assert!(matches!(
        error,
        Some(StreamError::ChunkAuthentication { index: 1 })
    ));
    // A whole part presented as a single-part object, or as another part.
    let (_, error) = decrypt_range(&key, PartNumber::SINGLE, &s1, range.clone());
    assert!(matches!(
        error,
        Some(StreamError::ChunkAuthentication { index: 0 })
    ));
    let (_, error) = decrypt_range(&key, p2, &s1, range);
    assert!(matches!(
        error,
        Some(StreamError::ChunkAuthentication { index: 0 })
    ));
}

#[test]
fn chunks_of_two_uploads_of_one_part_are_not_mixed() {
    let key = new_object();
    let plain = pattern(2 * C + 100, 9);
    let (a, b) = (
        encrypt(&key, PartNumber::SINGLE, &plain),
        encrypt(&key, PartNumber::SINGLE, &plain),
    );
    assert_ne!(a, b, "each upload has its own nonce prefix");
    let mixed = [chunks(&a)[0], chunks(&b)[1], chunks(&b)[2]].concat();
    let (out, error) = decrypt(&key, &mixed, plain.len());
    assert!(matches!(
        error,
        Some(StreamError::SegmentMismatch { index: 1 })
    ));
    assert_eq!(out, plain[..C]);
}

#[test]
fn flipped_bits_are_detected() {
    let (key, plain, stored) = three_chunks();
    // In chunk 1: prefix, ciphertext, tag.
    for at in [CC, CC + 3, CC + 7, CC + 40_000, 2 * CC - 1] {
        let mut tampered = stored.clone();
        tampered[at] ^= 0x10;
        let (out, error) = decrypt(&key, &tampered, plain.len());
        assert!(
            matches!(error, Some(StreamError::ChunkAuthentication { index: 1 })),
            "{at}"
        );
        assert_eq!(out, plain[..C]);
    }
}

#[test]
fn inner_errors_and_trailers() {
    let (key, plain, stored) = three_chunks();
    let part_key = || key.part_key(PartNumber::SINGLE);
    let whole = || CipherRange::whole(plain.len() as u64).unwrap();
    // Trailers of the ciphertext response are dropped.
    let items = vec![Item::Data(stored.clone().into()), Item::Trailers];
    let (out, error) = drain(DecryptBody::new(script(items), part_key(), whole()));
    assert!(error.is_none());
    assert_eq!(out, plain);
    let items = vec![
        Item::Data(Bytes::copy_from_slice(&stored[..CC])),
        Item::Fail,
    ];
    let (out, error) = drain(DecryptBody::new(script(items), part_key(), whole()));
    assert!(matches!(error, Some(StreamError::Body(_))));
    assert_eq!(out, plain[..C]);
}

// === EncryptBody ===

#[test]
fn encrypt_checks_the_declared_length() {
    let key = new_object();
    let plain = pattern(C + 10, 3);
    let encrypt = |declared: usize| {
        drain(
            EncryptBody::new(
                split(&plain, &[C / 2], true),
                key.part_key(PartNumber::SINGLE),
                declared as u64,
            )
            .unwrap(),
        )
    };
    let (out, error) = encrypt(C + 11);
    assert!(
        matches!(error, Some(StreamError::PlaintextLength { declared, received }) if declared == C as u64 + 11 && received == C as u64 + 10)
    );
    assert_eq!(out.len(), CC, "the final chunk is never sealed");
    let (_, error) = encrypt(C + 9);
    assert!(matches!(error, Some(StreamError::PlaintextLength { .. })));
    let (_, error) = encrypt(5);
    assert!(matches!(
        error,
        Some(StreamError::PlaintextLength { declared: 5, .. })
    ));
    assert!(matches!(
        EncryptBody::new(
            split(&[], &[], false),
            key.part_key(PartNumber::SINGLE),
            MAX_SEGMENT_LEN + 1
        ),
        Err(FormatError::TooLarge(_))
    ));
}

#[test]
fn encrypt_seals_the_final_chunk_only_after_the_inner_end() {
    let key = new_object();
    let plain = pattern(C + 10, 3);
    // The inner body fails after its last byte (e.g. a trailing checksum did not match).
    let items = vec![Item::Data(plain.clone().into()), Item::Fail];
    let (out, error) = drain(
        EncryptBody::new(
            script(items),
            key.part_key(PartNumber::SINGLE),
            plain.len() as u64,
        )
        .unwrap(),
    );
    assert!(matches!(error, Some(StreamError::Body(_))));
    assert_eq!(out.len(), CC);
    // Trailers describe the plaintext: dropped, and the object is complete.
    let items = vec![Item::Data(plain.clone().into()), Item::Trailers];
    let (out, error) = drain(
        EncryptBody::new(
            script(items),
            key.part_key(PartNumber::SINGLE),
            plain.len() as u64,
        )
        .unwrap(),
    );
    assert!(error.is_none());
    let (back, error) = decrypt(&key, &out, plain.len());
    assert!(error.is_none());
    assert_eq!(back, plain);
}

// === Keys and metadata (§5, §6) ===

/// Where the tests' objects live.
const PLACE: Place<'static> = Place {
    bucket: "b",
    key: "k",
};

fn written(kek: &Kek) -> (ObjectMetadata, HeaderMap) {
    let dek = DataKey::generate();
    let key = ObjectKey::derive(&dek, Salt::generate());
    let wrapped = kek.wrap(&dek, Binding::V2(PLACE));
    let meta = ObjectMetadata::new(Layout::Single, kek.id().clone(), wrapped, &key, PLACE);
    let mut headers = HeaderMap::new();
    meta.write_headers(&mut headers);
    (meta, headers)
}

/// A version 1 record, as releases before version 2 wrote them.
fn written_v1(kek: &Kek, dek: &DataKey) -> ObjectMetadata {
    let key = ObjectKey::derive(dek, Salt::generate());
    ObjectMetadata {
        version: Version::V1,
        layout: Layout::Single,
        key_id: kek.id().clone(),
        wrapped_dek: kek.wrap(dek, Binding::V1),
        salt: key.salt(),
        commitment: key.commitment(Binding::V1),
        seal: None,
    }
}

fn opens(kek: &Kek, meta: &ObjectMetadata, place: Place<'_>) -> Result<(), FormatError> {
    let dek = kek.unwrap(&meta.wrapped_dek, meta.binding(place))?;
    meta.open(&dek, place).map(|_| ())
}

#[test]
fn metadata_roundtrip() {
    let kek = kek("local:k1", 1);
    let (meta, mut headers) = written(&kek);
    headers.insert("content-type", HeaderValue::from_static("text/plain"));
    headers.insert("x-amz-meta-owner", HeaderValue::from_static("someone"));
    assert_eq!(
        ObjectMetadata::from_headers(&headers),
        Ok(Some(meta.clone()))
    );
    assert_eq!(headers[&META_VERSION], "2");
    assert_eq!(meta.wrapped_dek.len(), LOCAL_WRAPPED_DEK_LEN);
    assert_eq!(headers[&META_KEY_ID], meta.key_id.as_str());
    assert_eq!(opens(&kek, &meta, PLACE), Ok(()));
    // A multipart record, then with its seal.
    let mut multipart = meta.clone();
    multipart.layout = Layout::Multipart;
    let mut headers = HeaderMap::new();
    multipart.write_headers(&mut headers);
    assert_eq!(headers[&META_LAYOUT], "multipart");
    assert_eq!(
        ObjectMetadata::from_headers(&headers),
        Ok(Some(multipart.clone()))
    );
    multipart.seal = Some(vec![1, 2, 3]);
    multipart.write_headers(&mut headers);
    assert_eq!(headers[&META_SEAL], "AQID");
    assert_eq!(ObjectMetadata::from_headers(&headers), Ok(Some(multipart)));
    // Version 1 records stay readable.
    let v1 = written_v1(&kek, &DataKey::generate());
    let mut headers = HeaderMap::new();
    v1.write_headers(&mut headers);
    assert_eq!(headers[&META_VERSION], "1");
    assert_eq!(ObjectMetadata::from_headers(&headers), Ok(Some(v1)));
}

#[test]
fn legacy_objects_have_no_metadata() {
    let mut headers = HeaderMap::new();
    headers.insert("x-amz-meta-owner", HeaderValue::from_static("someone"));
    assert_eq!(ObjectMetadata::from_headers(&headers), Ok(None));
}

#[test]
fn malformed_metadata_is_refused() {
    let (_, headers) = written(&kek("k1", 1));
    let with = |name: &'static str, value: &'static str| {
        let mut h = headers.clone();
        h.insert(name, HeaderValue::from_static(value));
        ObjectMetadata::from_headers(&h)
    };
    assert_eq!(
        with("x-amz-meta-s3seal-v", "3"),
        Err(FormatError::UnsupportedVersion("3".into()))
    );
    assert!(matches!(
        with("x-amz-meta-s3seal-layout", "striped"),
        Err(FormatError::InvalidField(_))
    ));
    assert!(matches!(
        with("x-amz-meta-s3seal-salt", "AAAA"),
        Err(FormatError::InvalidField(_))
    ));
    assert!(matches!(
        with("x-amz-meta-s3seal-commit", "not base64!"),
        Err(FormatError::InvalidField(_))
    ));
    assert!(matches!(
        with("x-amz-meta-s3seal-dek", ""),
        Err(FormatError::InvalidField(_))
    ));
    assert!(matches!(
        with("x-amz-meta-s3seal-kid", "no spaces"),
        Err(FormatError::InvalidField(_))
    ));
    assert!(matches!(
        with("x-amz-meta-s3seal-extra", "1"),
        Err(FormatError::InvalidField(_))
    ));
    // A seal belongs to version 2 multipart records only.
    assert!(matches!(
        with("x-amz-meta-s3seal-seal", "AQID"),
        Err(FormatError::InvalidField(_))
    ));
    let mut v1 = headers.clone();
    v1.insert(&META_VERSION, HeaderValue::from_static("1"));
    v1.insert(&META_LAYOUT, HeaderValue::from_static("multipart"));
    v1.insert(&META_SEAL, HeaderValue::from_static("AQID"));
    assert!(matches!(
        ObjectMetadata::from_headers(&v1),
        Err(FormatError::InvalidField(_))
    ));
    for name in [
        META_VERSION,
        META_LAYOUT,
        META_KEY_ID,
        META_WRAPPED_DEK,
        META_SALT,
        META_COMMITMENT,
    ] {
        let mut h = headers.clone();
        h.remove(&name);
        assert_eq!(
            ObjectMetadata::from_headers(&h),
            Err(FormatError::MissingField(name.to_string()))
        );
        let mut h = headers.clone();
        h.append(&name, h[&name].clone());
        assert!(
            matches!(
                ObjectMetadata::from_headers(&h),
                Err(FormatError::InvalidField(_))
            ),
            "{name}"
        );
    }
}

#[test]
fn metadata_fits_the_user_metadata_limit() {
    let key = new_object();
    let longest = KeyId::new("k".repeat(MAX_KEY_ID_LEN)).unwrap();
    let meta = ObjectMetadata::new(
        Layout::Multipart,
        longest,
        vec![0; MAX_WRAPPED_DEK_LEN],
        &key,
        PLACE,
    );
    assert_eq!(meta.encoded_len(), 1103, "docs/format.md §6");
    // With the seal of an upload of parts of 4 sizes, which the record keeps room for.
    let sealed = meta.encoded_len() + ObjectMetadata::seal_field_len(Seal::encoded_v2_len_for(4));
    assert_eq!(sealed, 1226, "docs/format.md §6");
    let mut headers = HeaderMap::new();
    meta.write_headers(&mut headers);
    assert_eq!(ObjectMetadata::from_headers(&headers), Ok(Some(meta)));
    assert!(KeyId::new("k".repeat(MAX_KEY_ID_LEN + 1)).is_err());
    assert!(KeyId::new("").is_err());
    let meta = ObjectMetadata::new(
        Layout::Single,
        KeyId::new("local:2024-rotation").unwrap(),
        vec![0; LOCAL_WRAPPED_DEK_LEN],
        &key,
        PLACE,
    );
    assert!(meta.encoded_len() < 260, "{}", meta.encoded_len());
}

#[test]
fn wrong_kek_key_id_or_place_does_not_unwrap() {
    let kek1 = kek("k1", 1);
    let (meta, _) = written(&kek1);
    let bound = Binding::V2(PLACE);
    assert_eq!(kek1.unwrap(&meta.wrapped_dek, bound).map(|_| ()), Ok(()));
    // Another KEK under the same name.
    assert_eq!(
        kek("k1", 2).unwrap(&meta.wrapped_dek, bound).map(|_| ()),
        Err(FormatError::Unwrap)
    );
    // The same key bytes under another name: the key id is in the associated data.
    assert_eq!(
        kek("k2", 1).unwrap(&meta.wrapped_dek, bound).map(|_| ()),
        Err(FormatError::Unwrap)
    );
    // Another place: the bucket and the key are in the associated data (§5.2).
    for place in [
        Place {
            bucket: "b2",
            key: "k",
        },
        Place {
            bucket: "b",
            key: "k2",
        },
        Place {
            bucket: "bk",
            key: "",
        },
    ] {
        assert_eq!(
            kek1.unwrap(&meta.wrapped_dek, Binding::V2(place))
                .map(|_| ()),
            Err(FormatError::Unwrap),
            "{place:?}"
        );
    }
    // Read as version 1.
    assert_eq!(
        kek1.unwrap(&meta.wrapped_dek, Binding::V1).map(|_| ()),
        Err(FormatError::Unwrap)
    );
    // A metadata record edited to name another key of the keyring.
    let mut edited = meta.clone();
    edited.key_id = KeyId::new("k2").unwrap();
    let keyring = [kek1, kek("k2", 2)];
    let chosen = keyring.iter().find(|k| *k.id() == edited.key_id).unwrap();
    assert_eq!(
        chosen.unwrap(&edited.wrapped_dek, bound).map(|_| ()),
        Err(FormatError::Unwrap)
    );
    let mut cut = meta.wrapped_dek.clone();
    cut.pop();
    assert_eq!(
        keyring[0].unwrap(&cut, bound).map(|_| ()),
        Err(FormatError::Unwrap)
    );
}

#[test]
fn commitment_binds_the_data_key_salt_and_place() {
    let kek = kek("k1", 1);
    let (meta, _) = written(&kek);
    let dek = kek.unwrap(&meta.wrapped_dek, Binding::V2(PLACE)).unwrap();
    let mut tampered = meta.clone();
    tampered.commitment.0[0] ^= 1;
    assert_eq!(
        tampered.open(&dek, PLACE).map(|_| ()),
        Err(FormatError::CommitmentMismatch)
    );
    let mut tampered = meta.clone();
    tampered.salt.0[31] ^= 1;
    assert_eq!(
        tampered.open(&dek, PLACE).map(|_| ()),
        Err(FormatError::CommitmentMismatch)
    );
    // Another object's data key.
    let (other, _) = written(&kek);
    let other_dek = kek.unwrap(&other.wrapped_dek, Binding::V2(PLACE)).unwrap();
    assert_eq!(
        meta.open(&other_dek, PLACE).map(|_| ()),
        Err(FormatError::CommitmentMismatch)
    );
    // Moved, even with a data key the attacker could unwrap there (KMS names only the bucket).
    let moved = Place {
        bucket: "b",
        key: "other",
    };
    assert_eq!(
        meta.open(&dek, moved).map(|_| ()),
        Err(FormatError::CommitmentMismatch)
    );
    // A version 1 record opens wherever it is read.
    let v1 = written_v1(&kek, &dek);
    assert_eq!(opens(&kek, &v1, PLACE), Ok(()));
    assert_eq!(opens(&kek, &v1, moved), Ok(()));
}

/// A copy's record (§5.4): the same data key and salt, bound to the new place only.
#[test]
fn moved_records_open_only_at_their_new_place() {
    let kek = kek("k1", 1);
    let dek = DataKey::generate();
    let v1 = written_v1(&kek, &dek);
    let key = v1.open(&dek, PLACE).unwrap();
    let to = Place {
        bucket: "b2",
        key: "copy",
    };
    let seal = Seal::new(vec![(PartNumber::multipart(1).unwrap(), 9)]).unwrap();
    let moved = v1.moved(
        &key,
        kek.id().clone(),
        kek.wrap(&dek, Binding::V2(to)),
        to,
        Some(&seal),
    );
    assert_eq!(moved.version, Version::V2);
    assert_eq!(moved.salt, v1.salt);
    assert_eq!(opens(&kek, &moved, to), Ok(()));
    assert!(opens(&kek, &moved, PLACE).is_err());
    let reopened = moved.open(&dek, to).unwrap();
    assert_eq!(moved.seal(&reopened), Ok(Some(seal)));
}

#[test]
fn part_numbers() {
    assert_eq!(PartNumber::multipart(0), None);
    assert!(PartNumber::multipart(1).is_some());
    assert!(PartNumber::multipart(MAX_PART_NUMBER).is_some());
    assert_eq!(PartNumber::multipart(MAX_PART_NUMBER + 1), None);
}

#[test]
fn secrets_are_redacted() {
    let shown = format!(
        "{:?} {:?} {:?}",
        DataKey::from_bytes([0xab; 32]),
        kek("k1", 0xab),
        new_object().part_key(PartNumber::SINGLE)
    );
    assert!(
        !shown.contains("171") && !shown.to_lowercase().contains("ab, "),
        "{shown}"
    );
}

// === Known answer (§9) ===

const KAT_COMMITMENT: &str = "c02f5d86b7dd256addd0539349dba156149080f2e47d6b6c52d5af8f05d1607d";
const KAT_PART_KEY: &str = "771c10f278a2a4eacde640d7dbf050623184cfa39e034d69d1a15eda88fbf8f8";
const KAT_CHUNK: &str = "4041424344454619801f338729d4998125776f4fb295140c817dbfead7";

/// The DEK and salt of §9.1: bytes 0x00..0x1f and 0x20..0x3f.
fn kat_dek_and_salt() -> ([u8; 32], [u8; 32]) {
    let dek = std::array::from_fn(|i| u8::try_from(i).unwrap());
    let salt = std::array::from_fn(|i| u8::try_from(i + 32).unwrap());
    (dek, salt)
}

#[test]
fn known_answer() {
    let bytes = |hex: &str| hex::decode(hex).unwrap();
    let (dek, salt) = kat_dek_and_salt();
    let prefix = SegmentPrefix(bytes("40414243444546").try_into().unwrap());
    let key = ObjectKey::derive(&DataKey::from_bytes(dek), Salt(salt));
    let chunk = key
        .part_key(PartNumber::SINGLE)
        .seal_chunk(prefix, 0, true, b"s3seal");
    assert_eq!(hex::encode(key.commitment(Binding::V1).0), KAT_COMMITMENT);
    assert_eq!(hex::encode(&chunk), KAT_CHUNK);
    // The independent reader agrees.
    let (commitment, part_key) = spec::object_keys(&dek, &salt);
    assert_eq!(Commitment(commitment), key.commitment(Binding::V1));
    assert_eq!(hex::encode(part_key), KAT_PART_KEY);
    assert_eq!(
        spec::open_chunk(&part_key, 0, true, &chunk).as_deref(),
        Some(&b"s3seal"[..])
    );
    assert_eq!(spec::open_chunk(&part_key, 0, false, &chunk), None);
}

/// Version 2 (§9.2): computed independently with Python's `hmac`, `hashlib` and
/// `cryptography`, for the object `photos`/`2026/cat.jpg` with the DEK and salt of §9.
const KAT_V2_COMMITMENT: &str = "fddb9dc1174a1005fbf7c717d50108df509dc51ead1a8941b371aa14d1a1071c";
const KAT_V2_WRAP: &str = "000102030405060708090a0b1880eb73190cdf4e7fbbef97ee5562f5f12da49d0c7761260ed779a192ca731a42a90ec5d74725b5386e1aadb5cb3fdb";
const KAT_V2_SEAL: &str = "00020001000200000000008000000003000100000000000030393d3c64da3b1c92f54e1fef1f344f9cf9ed4e9c101e3a4bbb7caf2d2872e2026c";
const KAT_V2_UPLOAD_TAG: &str = "e036bba2136a9a1520a3045595cb8bef";

#[test]
fn known_answer_v2() {
    let bytes = |hex: &str| hex::decode(hex).unwrap();
    let (dek, salt) = kat_dek_and_salt();
    let place = Place {
        bucket: "photos",
        key: "2026/cat.jpg",
    };
    let key = ObjectKey::derive(&DataKey::from_bytes(dek), Salt(salt));
    assert_eq!(
        hex::encode(key.commitment(Binding::V2(place)).0),
        KAT_V2_COMMITMENT
    );
    assert_eq!(
        hex::encode(spec::commitment_v2(&dek, &salt, place.bucket, place.key)),
        KAT_V2_COMMITMENT
    );
    // The local wrap, with KEK 0x07 × 32 and nonce 00..0b under the key id `local:k1`.
    let kek = kek("local:k1", 7);
    let unwrapped = kek.unwrap(&bytes(KAT_V2_WRAP), Binding::V2(place)).unwrap();
    assert_eq!(unwrapped.expose(), &dek);
    // Parts 1 and 2 of 8 MiB, part 3 of 12345 bytes: two runs.
    let p = |n| PartNumber::multipart(n).unwrap();
    let seal = Seal::new(vec![(p(1), 8 << 20), (p(2), 8 << 20), (p(3), 12345)]).unwrap();
    assert_eq!(hex::encode(seal.encode_v2(&key)), KAT_V2_SEAL);
    assert_eq!(
        spec::read_seal_v2(&dek, &salt, &bytes(KAT_V2_SEAL)),
        Ok(vec![(1, 8 << 20), (2, 8 << 20), (3, 12345)])
    );
    let token = UploadToken::new(&key, vec![9; 60], "backend-upload-1", place).encode();
    let raw =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, token).unwrap();
    assert_eq!(raw[0], 2);
    assert_eq!(&raw[1..33], &salt);
    assert_eq!(hex::encode(&raw[33..49]), KAT_V2_UPLOAD_TAG);
    assert_eq!(&raw[49..], &[9; 60]);
}

// === Multipart seal (§7) and segments ===

#[test]
fn seals_verify_only_under_their_object_key() {
    let dek = DataKey::generate();
    let key = ObjectKey::derive(&dek, Salt::generate());
    let p = |n| PartNumber::multipart(n).unwrap();
    let seal = Seal::new(vec![(p(1), 5 << 20), (p(3), 7)]).unwrap();
    let bytes = seal.encode(&key);
    assert_eq!(Seal::decode(&bytes, &key).unwrap(), seal);
    assert_eq!(seal.plaintext_len(), (5 << 20) + 7);
    assert_eq!(
        seal.ciphertext_len(),
        ciphertext_len(5 << 20).unwrap() + ciphertext_len(7).unwrap()
    );
    let other = ObjectKey::derive(&dek, Salt::generate());
    assert_eq!(Seal::decode(&bytes, &other), Err(FormatError::SealMismatch));
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 1;
        assert!(Seal::decode(&bad, &key).is_err(), "flip at {i}");
    }
    assert!(Seal::decode(&bytes[..bytes.len() - 1], &key).is_err());
    assert!(Seal::new(vec![(p(2), 1), (p(2), 1)]).is_err());
    assert!(Seal::new(vec![(p(3), 1), (p(2), 1)]).is_err());
    assert!(Seal::new(vec![]).is_err());
}

/// Several segments (parts) under their own keys, fetched as one span in arbitrary frames.
#[test]
fn segments_decrypt_across_parts_and_refuse_swaps() {
    use super::{DecryptSegments, Segment};
    let key = new_object();
    let lens = [C + 10, 0, 2 * C, 5];
    let number = |i: usize| PartNumber::multipart(u32::try_from(i + 1).unwrap()).unwrap();
    let mut plain = Vec::new();
    let mut stored = Vec::new();
    for (i, len) in lens.iter().enumerate() {
        let data = pattern(*len, u8::try_from(i).unwrap());
        stored.extend(encrypt(&key, number(i), &data));
        plain.extend(data);
    }
    let segments = |order: &[usize]| -> Vec<Segment> {
        order
            .iter()
            .map(|&i| Segment {
                key: key.part_key(number(i)),
                range: CipherRange::whole(lens[i] as u64).unwrap(),
            })
            .collect()
    };
    let cuts = [1, 1000, 65_559, 65_600, 131_000];
    let body = DecryptSegments::new(split(&stored, &cuts, true), segments(&[0, 1, 2, 3]));
    let (out, error) = drain(body);
    assert!(error.is_none(), "{error:?}");
    assert!(out == plain);
    // The parts' keys in another order: refused, and nothing of the swapped parts released.
    let body = DecryptSegments::new(split(&stored, &cuts, false), segments(&[0, 1, 3, 2]));
    let (out, error) = drain(body);
    assert!(matches!(
        error,
        Some(StreamError::ChunkAuthentication { .. })
    ));
    assert!(plain.starts_with(&out) && out.len() <= lens[0]);
    // Bytes after the last part: refused.
    let mut longer = stored.clone();
    longer.push(0);
    let body = DecryptSegments::new(split(&longer, &cuts, false), segments(&[0, 1, 2, 3]));
    assert!(matches!(
        drain(body).1,
        Some(StreamError::TrailingData { .. })
    ));
}

#[test]
fn version_2_seals_are_compact_and_authentic() {
    let dek = DataKey::generate();
    let key = ObjectKey::derive(&dek, Salt::generate());
    let p = |n| PartNumber::multipart(n).unwrap();
    // Gaps, repeated sizes, a last part of its own: runs (1,2,L) (4,1,L) (5,1,7).
    let parts = vec![(p(1), 5 << 20), (p(2), 5 << 20), (p(4), 5 << 20), (p(5), 7)];
    let seal = Seal::new(parts).unwrap();
    assert_eq!(seal.run_count(), 3);
    let bytes = seal.encode_v2(&key);
    assert_eq!(bytes.len(), Seal::encoded_v2_len_for(3));
    assert_eq!(Seal::decode_v2(&bytes, &key), Ok(seal.clone()));
    let other = ObjectKey::derive(&dek, Salt::generate());
    assert_eq!(
        Seal::decode_v2(&bytes, &other),
        Err(FormatError::SealMismatch)
    );
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 1;
        assert!(Seal::decode_v2(&bad, &key).is_err(), "flip at {i}");
    }
    assert!(Seal::decode_v2(&bytes[..bytes.len() - 1], &key).is_err());
    // A version 1 seal's bytes are no version 2 seal, and the other way round.
    assert!(Seal::decode_v2(&seal.encode(&key), &key).is_err());
    assert!(Seal::decode(&bytes, &key).is_err());
    // Every part number used, of one size: one run.
    let all = (1..=MAX_PART_NUMBER).map(|n| (p(n), 5 << 20)).collect();
    let all = Seal::new(all).unwrap();
    assert_eq!(all.run_count(), 1);
    assert_eq!(Seal::decode_v2(&all.encode_v2(&key), &key), Ok(all));
}

#[test]
fn upload_tokens_name_one_upload_of_one_object() {
    let dek = DataKey::generate();
    let key = ObjectKey::derive(&dek, Salt::generate());
    let wrapped = kek("k1", 1).wrap(&dek, Binding::V2(PLACE));
    let token = UploadToken::new(&key, wrapped.clone(), "up-1", PLACE).encode();
    let parsed = UploadToken::parse(&token).unwrap();
    assert_eq!(parsed.salt, key.salt());
    assert_eq!(parsed.wrapped_dek, wrapped);
    assert_eq!(parsed.verify(&key, "up-1", PLACE), Ok(()));
    // Another backend upload, another place, another object's keys.
    let other_place = Place {
        bucket: "b",
        key: "k2",
    };
    assert_eq!(
        parsed.verify(&key, "up-2", PLACE),
        Err(FormatError::UploadToken)
    );
    assert_eq!(
        parsed.verify(&key, "up-1", other_place),
        Err(FormatError::UploadToken)
    );
    let other = ObjectKey::derive(&dek, Salt::generate());
    assert_eq!(
        parsed.verify(&other, "up-1", PLACE),
        Err(FormatError::UploadToken)
    );
    // A token whose salt was swapped for another object's: its tag no longer matches.
    let mut swapped = parsed.clone();
    swapped.salt = other.salt();
    assert_eq!(
        swapped.verify(&other, "up-1", PLACE),
        Err(FormatError::UploadToken)
    );
    // A version 1 token (`salt || wrapped DEK`), garbage, and truncations are refused.
    let v1 = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        [&key.salt().0[..], &wrapped].concat(),
    );
    for bad in [v1.as_str(), "", "not base64!", &token[..token.len() / 2]] {
        let refused = UploadToken::parse(bad).and_then(|t| t.verify(&key, "up-1", PLACE));
        assert!(refused.is_err(), "{bad}");
    }
}
