//! Streaming MIME base64 (RFC 2045 §6.8): any chunking in, 76-column lines
//! ending in CRLF out.
//!
//! What it does: turns bytes into base64 text split into lines of exactly 76
//! characters (the last one shorter), each ended by CRLF, with `=` padding
//! only at the very end. The output of a stream is byte-identical however its
//! input was split, because the only state carried between calls is at most
//! two bytes of an unfinished 3-byte group, the column, and at most six bytes
//! of output that did not fit the caller's buffer.
//!
//! What it does not: decode, allocate, or buffer more than one quantum. The
//! caller owns every buffer.
//!
//! Why it is built this way: a G510 streams up to 20 MiB through a few KiB of
//! RAM, so the encoder must work from caller slices and stop cleanly when the
//! output is full (backpressure). Speed comes from `base64-simd`: whole lines
//! are encoded in blocks of 48 lines into a small stack scratch buffer
//! that stays in L1, then copied out with their CRLFs, so the large
//! destination is written exactly once, as by a raw encoder.

use crate::CoderResult;

/// Characters per output line, without the CRLF (RFC 2045 limit).
pub const LINE_CHARS: usize = 76;
/// Input bytes that fill one full line.
pub const LINE_INPUT: usize = LINE_CHARS / 4 * 3;
const LINE_OUTPUT: usize = LINE_CHARS + 2;
/// Lines encoded per `base64-simd` call on the fast path.
const BLOCK_LINES: usize = 48;
const CRLF: &[u8; 2] = b"\r\n";
const ENGINE: base64_simd::Base64 = base64_simd::STANDARD;

/// Exact number of bytes [`MimeBase64Encoder`] writes for `input_len` bytes
/// of input, including the final CRLF; `None` if that overflows `usize`.
///
/// ```
/// use atmail_core::mime_base64::encoded_len;
/// assert_eq!(encoded_len(0), Some(0));
/// assert_eq!(encoded_len(1), Some(6)); // "AA==\r\n"
/// assert_eq!(encoded_len(57), Some(78)); // one full line
/// assert_eq!(encoded_len(58), Some(84));
/// ```
pub const fn encoded_len(input_len: usize) -> Option<usize> {
    let quanta = input_len / 3 + (input_len % 3 != 0) as usize;
    let chars = match quanta.checked_mul(4) {
        Some(c) => c,
        None => return None,
    };
    let lines = chars / LINE_CHARS + (chars % LINE_CHARS != 0) as usize;
    chars.checked_add(lines * 2)
}

/// A MIME base64 encoder that is fed chunks of any size.
///
/// Protocol, as `encoding_rs` coders: call [`encode`](Self::encode) with the
/// next input chunk and a destination. It returns how many bytes it read and
/// wrote and a [`CoderResult`]:
///
/// - `InputEmpty`: the whole chunk was consumed (up to two trailing bytes are
///   kept inside the encoder); give it the next chunk.
/// - `OutputFull`: `dst` is full; the unread rest of `src` must be passed
///   again, with a fresh `dst`.
///
/// Pass `last = true` with the final chunk (it may be empty); the call then
/// also writes the padding and the final CRLF, and `InputEmpty` means the
/// stream is complete. Any `dst` of one byte or more makes progress, so a
/// small destination cannot loop forever; a zero-length `dst` returns
/// `OutputFull` at once unless there is nothing to write.
///
/// ```
/// use atmail_core::{mime_base64::MimeBase64Encoder, CoderResult};
/// let mut enc = MimeBase64Encoder::new();
/// let mut out = [0u8; 16];
/// let (r, read, written) = enc.encode(b"hello", &mut out, true);
/// assert_eq!(r, CoderResult::InputEmpty);
/// assert_eq!(read, 5);
/// assert_eq!(&out[..written], b"aGVsbG8=\r\n");
/// ```
#[derive(Clone, Debug, Default)]
pub struct MimeBase64Encoder {
    /// Input bytes of the group being gathered: `held[..held_len]`; a
    /// complete group (`held_len == 3`) is encoded before the call returns.
    held: [u8; 3],
    held_len: u8,
    /// Characters already on the current line: a multiple of 4, `< 76`.
    column: u8,
    /// Encoded bytes that did not fit the last `dst`: `pending[pending_pos..pending_len]`.
    pending: [u8; 6],
    pending_pos: u8,
    pending_len: u8,
    /// Set once the final group and CRLF have been produced.
    finished: bool,
}

impl MimeBase64Encoder {
    /// A fresh encoder at the start of a stream.
    pub const fn new() -> Self {
        MimeBase64Encoder {
            held: [0; 3],
            held_len: 0,
            column: 0,
            pending: [0; 6],
            pending_pos: 0,
            pending_len: 0,
            finished: false,
        }
    }

    /// Encodes as much of `src` into `dst` as fits; see the type docs for
    /// the protocol. Returns `(result, bytes read, bytes written)`.
    pub fn encode(
        &mut self,
        src: &[u8],
        dst: &mut [u8],
        last: bool,
    ) -> (CoderResult, usize, usize) {
        debug_assert!(
            !self.finished || src.is_empty(),
            "input after the last chunk"
        );
        let mut read = 0;
        let mut written = self.drain_pending(dst);
        loop {
            if self.pending_pos < self.pending_len {
                return (CoderResult::OutputFull, read, written);
            }
            let rest = &src[read..];
            if self.held_len > 0 || rest.len() < 3 {
                let took = self.hold(rest);
                read += took;
                if self.held_len < 3 && read == src.len() {
                    if last && !self.finished {
                        self.finish_into_pending();
                        written += self.drain_pending(&mut dst[written..]);
                        continue;
                    }
                    return (CoderResult::InputEmpty, read, written);
                }
                self.group_into_pending();
                written += self.drain_pending(&mut dst[written..]);
                continue;
            }
            let (r, w) = self.encode_groups(rest, &mut dst[written..]);
            read += r;
            written += w;
            if r == 0 {
                // Not even one group fitted: go one group at a time through `pending`.
                self.hold(&rest[..3]);
                read += 3;
                self.group_into_pending();
                written += self.drain_pending(&mut dst[written..]);
            }
        }
    }

    /// Takes bytes into `held` until it has a whole group; returns how many.
    fn hold(&mut self, src: &[u8]) -> usize {
        let want = (3 - self.held_len as usize).min(src.len());
        let start = self.held_len as usize;
        self.held[start..start + want].copy_from_slice(&src[..want]);
        self.held_len += want as u8;
        want
    }

    /// Encodes the complete group in `held` into `pending`.
    fn group_into_pending(&mut self) {
        debug_assert_eq!(self.held_len, 3);
        self.held_len = 0;
        let mut quad = [0u8; 4];
        let _ = ENGINE.encode(&self.held, base64_simd::Out::from_slice(&mut quad));
        self.push_quad(quad);
    }

    /// Encodes a held partial group with padding, then the final CRLF.
    fn finish_into_pending(&mut self) {
        self.finished = true;
        self.pending_pos = 0;
        self.pending_len = 0;
        if self.held_len > 0 {
            let n = self.held_len as usize;
            let mut quad = [0u8; 4];
            let _ = ENGINE.encode(&self.held[..n], base64_simd::Out::from_slice(&mut quad));
            self.held_len = 0;
            self.push_quad(quad);
        }
        if self.column > 0 {
            self.column = 0;
            let at = self.pending_len as usize;
            self.pending[at..at + 2].copy_from_slice(CRLF);
            self.pending_len += 2;
        }
    }

    fn push_quad(&mut self, quad: [u8; 4]) {
        self.pending[..4].copy_from_slice(&quad);
        self.pending_pos = 0;
        self.pending_len = 4;
        self.column += 4;
        if self.column as usize == LINE_CHARS {
            self.column = 0;
            self.pending[4..6].copy_from_slice(CRLF);
            self.pending_len = 6;
        }
    }

    fn drain_pending(&mut self, dst: &mut [u8]) -> usize {
        let (pos, len) = (self.pending_pos as usize, self.pending_len as usize);
        let n = (len - pos).min(dst.len());
        dst[..n].copy_from_slice(&self.pending[pos..pos + n]);
        self.pending_pos += n as u8;
        n
    }

    /// Fast path: whole groups straight from `src` into `dst`, as many as
    /// both allow. Requires no held input and no pending output.
    fn encode_groups(&mut self, src: &[u8], dst: &mut [u8]) -> (usize, usize) {
        let (mut read, mut written) = (0, 0);
        if self.column > 0 {
            let (r, w) = self.encode_partial_line(src, dst);
            read += r;
            written += w;
            if self.column > 0 {
                return (read, written);
            }
        }
        let (r, w) = encode_lines(&src[read..], &mut dst[written..]);
        read += r;
        written += w;
        let (r, w) = self.encode_partial_line(&src[read..], &mut dst[written..]);
        (read + r, written + w)
    }

    /// Groups up to the end of the current line (with its CRLF when the line
    /// completes), limited by input and by output space.
    fn encode_partial_line(&mut self, src: &[u8], dst: &mut [u8]) -> (usize, usize) {
        let line_left = (LINE_CHARS - self.column as usize) / 4;
        let mut groups = line_left.min(src.len() / 3).min(dst.len() / 4);
        if groups == line_left && dst.len() < groups * 4 + 2 {
            groups -= 1;
        }
        if groups == 0 {
            return (0, 0);
        }
        let chars = groups * 4;
        let _ = ENGINE.encode(
            &src[..groups * 3],
            base64_simd::Out::from_slice(&mut dst[..chars]),
        );
        let mut written = chars;
        self.column += chars as u8;
        if self.column as usize == LINE_CHARS {
            dst[chars..chars + 2].copy_from_slice(CRLF);
            written += 2;
            self.column = 0;
        }
        (groups * 3, written)
    }
}

/// Whole lines, block by block, through an L1-resident scratch buffer.
fn encode_lines(src: &[u8], dst: &mut [u8]) -> (usize, usize) {
    let lines = (src.len() / LINE_INPUT).min(dst.len() / LINE_OUTPUT);
    let mut scratch = [0u8; BLOCK_LINES * LINE_CHARS];
    let in_blocks = src[..lines * LINE_INPUT].chunks(BLOCK_LINES * LINE_INPUT);
    let out_blocks = dst[..lines * LINE_OUTPUT].chunks_mut(BLOCK_LINES * LINE_OUTPUT);
    for (input, output) in in_blocks.zip(out_blocks) {
        let encoded = ENGINE.encode(
            input,
            base64_simd::Out::from_slice(&mut scratch[..input.len() / 3 * 4]),
        );
        for (line, out) in encoded
            .chunks_exact(LINE_CHARS)
            .zip(output.chunks_exact_mut(LINE_OUTPUT))
        {
            out[..LINE_CHARS].copy_from_slice(line);
            out[LINE_CHARS..].copy_from_slice(CRLF);
        }
    }
    (lines * LINE_INPUT, lines * LINE_OUTPUT)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use base64::Engine as _;
    use proptest::prelude::*;
    use std::vec::Vec;

    /// The oracle: one-shot encoding with the `base64` crate, wrapped by hand.
    fn naive(input: &[u8]) -> Vec<u8> {
        let text = base64::engine::general_purpose::STANDARD.encode(input);
        let mut out = Vec::new();
        for line in text.as_bytes().chunks(LINE_CHARS) {
            out.extend_from_slice(line);
            out.extend_from_slice(CRLF);
        }
        out
    }

    /// Streams `input` split at `cuts` (input sizes, cycled) through a `dst`
    /// of `dst_len` bytes per call.
    fn streamed(input: &[u8], cuts: &[usize], dst_len: usize) -> Vec<u8> {
        let mut enc = MimeBase64Encoder::new();
        let mut out = Vec::new();
        let mut buf = std::vec![0u8; dst_len];
        let mut pos = 0;
        let mut cut = 0;
        loop {
            let size = cuts[cut % cuts.len()];
            cut += 1;
            let end = (pos + size).min(input.len());
            let last = end == input.len();
            let mut chunk = &input[pos..end];
            loop {
                let (r, read, written) = enc.encode(chunk, &mut buf, last);
                out.extend_from_slice(&buf[..written]);
                chunk = &chunk[read..];
                if r == CoderResult::InputEmpty {
                    assert!(chunk.is_empty());
                    break;
                }
                assert!(written > 0 || dst_len == 0, "no progress");
            }
            pos = end;
            if last {
                return out;
            }
        }
    }

    fn input(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 13) as u8).collect()
    }

    #[test]
    fn sizes_match_the_oracle() {
        for len in 0..400 {
            let expect = naive(&input(len));
            assert_eq!(encoded_len(len), Some(expect.len()), "len {len}");
        }
        assert_eq!(encoded_len(usize::MAX), None);
    }

    #[test]
    fn chunk_edges() {
        let cases: &[(&str, usize, &[usize], usize)] = &[
            ("empty input", 0, &[1], 64),
            ("one byte", 1, &[1], 64),
            ("two bytes", 2, &[1], 64),
            ("exact line", 57, &[57], 200),
            ("line plus one", 58, &[57, 1], 200),
            ("empty chunks between bytes", 10, &[0, 1, 0, 2], 64),
            ("byte at a time", 300, &[1], 4096),
            ("group split 1+2", 3, &[1, 2], 64),
            ("group split 2+1", 3, &[2, 1], 64),
            ("one-byte dst", 200, &[13], 1),
            ("two-byte dst", 200, &[64], 2),
            ("five-byte dst", 200, &[64], 5),
            ("dst one short of a line", 500, &[500], 77),
            ("dst exactly a line", 500, &[500], 78),
            (
                "chunk across block edge",
                48 * 57 * 3 + 5,
                &[48 * 57 + 1],
                1 << 16,
            ),
            ("large", 1 << 20, &[1 << 16], 1 << 16),
        ];
        for &(name, len, cuts, dst_len) in cases {
            let data = input(len);
            assert_eq!(streamed(&data, cuts, dst_len), naive(&data), "{name}");
        }
    }

    #[test]
    fn zero_length_dst_reports_output_full() {
        let mut enc = MimeBase64Encoder::new();
        assert_eq!(
            enc.encode(b"abc", &mut [], false),
            (CoderResult::OutputFull, 3, 0)
        );
        let mut out = [0u8; 8];
        assert_eq!(
            enc.encode(b"", &mut out, true),
            (CoderResult::InputEmpty, 0, 6)
        );
        assert_eq!(&out[..6], b"YWJj\r\n");
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_one_shot_output(
            data in proptest::collection::vec(any::<u8>(), 0..3000),
            cuts in proptest::collection::vec(0usize..200, 1..8),
            dst_len in 1usize..400,
        ) {
            prop_assert_eq!(streamed(&data, &cuts, dst_len), naive(&data));
        }

        #[test]
        fn an_independent_decoder_gives_the_input_back(
            data in proptest::collection::vec(any::<u8>(), 0..5000),
            cuts in proptest::collection::vec(1usize..700, 1..5),
        ) {
            let out = streamed(&data, &cuts, 1024);
            prop_assert_eq!(out.len(), encoded_len(data.len()).unwrap());
            let mut text = Vec::new();
            for line in out.split(|&b| b == b'\n') {
                prop_assert!(line.len() <= LINE_CHARS + 1);
                text.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
            }
            let back = base64::engine::general_purpose::STANDARD.decode(&text).unwrap();
            prop_assert_eq!(back, data);
        }
    }
}
