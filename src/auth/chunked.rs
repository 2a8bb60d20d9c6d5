//! The `aws-chunked` framing, as a sans-IO decoder: it is fed byte slices split anywhere and
//! reports chunk headers, data, chunk ends, trailers and the end. It checks the framing only;
//! signatures and checksums are the caller's business ([`super::verified_body`]).
//!
//! ```text
//! signed:    hex-size ";chunk-signature=" 64HEX CRLF data CRLF ... "0;chunk-signature=" 64HEX CRLF
//! unsigned:  hex-size CRLF data CRLF ... "0" CRLF
//! then:      *( trailer-name ":" value CRLF ) CRLF
//! ```
//!
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html>,
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming-trailers.html>

/// Longest chunk-size line we accept, extension and CRLF included. A signed one is 85 bytes at most
/// (`"ffffff;chunk-signature=" + 64 + CRLF`); the limit keeps an endless line from growing memory.
pub const MAX_CHUNK_META_SIZE: usize = 1024;
/// Longest trailer section (all lines, CRLFs included). S3 trailers are one checksum plus,
/// when signed, `x-amz-trailer-signature`: about 200 bytes.
pub const MAX_TRAILERS_SIZE: usize = 16 * 1024;
/// Largest signed chunk. A signed chunk is buffered whole until its signature is verified, so this
/// bounds memory per request. SDKs use 64 KiB (Java v1: 128 KiB).
pub const MAX_SIGNED_CHUNK_SIZE: u64 = 16 * 1024 * 1024;
/// Largest chunk-size in hex digits: 16 digits fill a `u64`, more could only overflow.
const MAX_CHUNK_SIZE_DIGITS: usize = 16;
const CHUNK_SIGNATURE_EXT: &str = ";chunk-signature=";

/// Whether each chunk carries a `chunk-signature` extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`: the extension is required.
    Signed,
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: no extension is allowed.
    Unsigned,
}

/// What the decoder found in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// A chunk header. `size == 0` is the final chunk: trailers follow, no data.
    Chunk {
        size: u64,
        signature: Option<[u8; 32]>,
    },
    /// Chunk data, a sub-slice of the input.
    Data(&'a [u8]),
    /// The CRLF after a non-empty chunk's data: the chunk is complete.
    ChunkEnd,
    /// One trailing header; the name is lowercased, the value trimmed.
    Trailer { name: String, value: String },
    /// The blank line after the trailers: the body is complete.
    End,
}

/// A framing error. Every one is the client's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkedError {
    #[error("an aws-chunked chunk-size line is longer than {MAX_CHUNK_META_SIZE} bytes")]
    MetaTooLong,
    #[error("invalid aws-chunked chunk-size line: {0}")]
    InvalidChunkMeta(&'static str),
    #[error("an aws-chunked chunk of {size} bytes exceeds the limit of {limit} bytes")]
    ChunkTooLarge { size: u64, limit: u64 },
    #[error("aws-chunked chunk data is not followed by CRLF")]
    MissingCrlf,
    #[error("the aws-chunked trailers are longer than {MAX_TRAILERS_SIZE} bytes")]
    TrailersTooLong,
    #[error("invalid aws-chunked trailer line: {0}")]
    InvalidTrailer(&'static str),
    #[error("data follows the end of the aws-chunked body")]
    TrailingData,
    #[error("the aws-chunked body ended before its final chunk and trailers")]
    Truncated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a chunk-size line into `line`.
    Meta,
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// Reading trailer lines into `line`; `used` bytes of the trailer budget are spent.
    Trailers {
        used: usize,
    },
    Done,
}

/// The decoder. Holds at most one line (bounded by the consts above), never chunk data.
#[derive(Debug, Clone)]
pub struct Decoder {
    framing: Framing,
    max_chunk_size: u64,
    state: State,
    line: Vec<u8>,
}

impl Decoder {
    /// `max_chunk_size` bounds each chunk; use [`MAX_SIGNED_CHUNK_SIZE`] when chunks are buffered.
    pub fn new(framing: Framing, max_chunk_size: u64) -> Self {
        Decoder {
            framing,
            max_chunk_size,
            state: State::Meta,
            line: Vec::new(),
        }
    }

    /// Consumes a prefix of `input` and returns its length and at most one event.
    ///
    /// When no event is returned, all of `input` was consumed; so the caller loops until `input`
    /// is empty. After an error the decoder must not be used again.
    pub fn decode<'a>(
        &mut self,
        input: &'a [u8],
    ) -> Result<(usize, Option<Event<'a>>), ChunkedError> {
        match self.state {
            State::Meta => {
                let Some(n) =
                    self.take_line(input, MAX_CHUNK_META_SIZE, ChunkedError::MetaTooLong)?
                else {
                    return Ok((input.len(), None));
                };
                let (size, signature) = self.parse_meta()?;
                self.line.clear();
                self.state = if size == 0 {
                    State::Trailers { used: 0 }
                } else {
                    State::Data { remaining: size }
                };
                Ok((n, Some(Event::Chunk { size, signature })))
            }
            State::Data { remaining } => {
                let n = usize::try_from(remaining).map_or(input.len(), |r| r.min(input.len()));
                if n == 0 {
                    return Ok((0, None));
                }
                let left = remaining - n as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data { remaining: left }
                };
                Ok((n, Some(Event::Data(&input[..n]))))
            }
            State::DataCr => match input.first() {
                None => Ok((0, None)),
                Some(b'\r') => {
                    self.state = State::DataLf;
                    self.continue_after(input, 1)
                }
                Some(_) => Err(ChunkedError::MissingCrlf),
            },
            State::DataLf => match input.first() {
                None => Ok((0, None)),
                Some(b'\n') => {
                    self.state = State::Meta;
                    Ok((1, Some(Event::ChunkEnd)))
                }
                Some(_) => Err(ChunkedError::MissingCrlf),
            },
            State::Trailers { used } => {
                let budget = MAX_TRAILERS_SIZE - used;
                let Some(n) = self.take_line(input, budget, ChunkedError::TrailersTooLong)? else {
                    return Ok((input.len(), None));
                };
                let used = used + self.line.len() + 2;
                if self.line.is_empty() {
                    self.state = State::Done;
                    return Ok((n, Some(Event::End)));
                }
                let (name, value) = parse_trailer(&self.line)?;
                self.line.clear();
                self.state = State::Trailers { used };
                Ok((n, Some(Event::Trailer { name, value })))
            }
            State::Done if input.is_empty() => Ok((0, None)),
            State::Done => Err(ChunkedError::TrailingData),
        }
    }

    /// After consuming `n` bytes without an event, goes on with the rest of the input so that the
    /// "no event means all consumed" contract holds.
    fn continue_after<'a>(
        &mut self,
        input: &'a [u8],
        n: usize,
    ) -> Result<(usize, Option<Event<'a>>), ChunkedError> {
        let (m, event) = self.decode(&input[n..])?;
        Ok((n + m, event))
    }

    /// Called when the input has ended: the body must be complete.
    pub fn finish(&self) -> Result<(), ChunkedError> {
        match self.state {
            State::Done => Ok(()),
            _ => Err(ChunkedError::Truncated),
        }
    }

    /// Appends input up to and including `\n` to `self.line`. Returns the bytes consumed once the
    /// line is complete (with its CRLF stripped), or `None` if all input was consumed without one.
    fn take_line(
        &mut self,
        input: &[u8],
        limit: usize,
        too_long: ChunkedError,
    ) -> Result<Option<usize>, ChunkedError> {
        let room = limit.saturating_sub(self.line.len());
        let window = &input[..input.len().min(room)];
        if let Some(pos) = window.iter().position(|&b| b == b'\n') {
            self.line.extend_from_slice(&input[..pos]);
            // A bare LF is not a line ending here: the framing is `\r\n` exactly.
            if self.line.pop() != Some(b'\r') {
                return Err(match self.state {
                    State::Trailers { .. } => {
                        ChunkedError::InvalidTrailer("lines must end with CRLF")
                    }
                    _ => ChunkedError::InvalidChunkMeta("lines must end with CRLF"),
                });
            }
            return Ok(Some(pos + 1));
        }
        if window.len() < input.len() {
            return Err(too_long);
        }
        self.line.extend_from_slice(input);
        Ok(None)
    }

    fn parse_meta(&self) -> Result<(u64, Option<[u8; 32]>), ChunkedError> {
        let line = std::str::from_utf8(&self.line)
            .map_err(|_| ChunkedError::InvalidChunkMeta("not ASCII"))?;
        let (size, signature) = match self.framing {
            Framing::Signed => {
                let (size, ext) = line
                    .split_once(';')
                    .ok_or(ChunkedError::InvalidChunkMeta("missing chunk-signature"))?;
                let hex = ext.strip_prefix(&CHUNK_SIGNATURE_EXT[1..]).ok_or(
                    ChunkedError::InvalidChunkMeta("expecting ';chunk-signature='"),
                )?;
                let signature =
                    super::sigv4::parse_signature(hex).ok_or(ChunkedError::InvalidChunkMeta(
                        "chunk-signature must be 64 lowercase hex digits",
                    ))?;
                (size, Some(signature))
            }
            Framing::Unsigned => (line, None),
        };
        let size = parse_hex_size(size)?;
        if size > self.max_chunk_size {
            return Err(ChunkedError::ChunkTooLarge {
                size,
                limit: self.max_chunk_size,
            });
        }
        Ok((size, signature))
    }
}

/// 1 to 16 hex digits, nothing else: no sign, no spaces, no `0x`.
fn parse_hex_size(s: &str) -> Result<u64, ChunkedError> {
    if s.is_empty() || s.len() > MAX_CHUNK_SIZE_DIGITS || !s.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(ChunkedError::InvalidChunkMeta(
            "chunk-size must be 1 to 16 hex digits",
        ));
    }
    u64::from_str_radix(s, 16).map_err(|_| ChunkedError::InvalidChunkMeta("chunk-size overflows"))
}

/// `name:value`, name a token, value visible ASCII (spaces and tabs trimmed around it).
fn parse_trailer(line: &[u8]) -> Result<(String, String), ChunkedError> {
    let line = std::str::from_utf8(line).map_err(|_| ChunkedError::InvalidTrailer("not ASCII"))?;
    let (name, value) = line
        .split_once(':')
        .ok_or(ChunkedError::InvalidTrailer("expecting 'name:value'"))?;
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(ChunkedError::InvalidTrailer("invalid trailer name"));
    }
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    if !value
        .bytes()
        .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
    {
        return Err(ChunkedError::InvalidTrailer("invalid trailer value"));
    }
    Ok((name.to_ascii_lowercase(), value.to_owned()))
}

#[cfg(test)]
mod tests;
