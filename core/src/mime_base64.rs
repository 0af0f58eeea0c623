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
//! are encoded in blocks of 128 lines into the end of the block's own
//! output, which stays in L1, then moved down into place with their CRLFs,
//! so the large destination is fetched and written back once, as by a raw
//! encoder, and no scratch buffer sits on the stack. On x86-64 with
//! AVX2 an own kernel (`avx2`) writes whole lines straight into place.

use crate::index;
use crate::CoderResult;
use base64_simd::Out;

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2;

/// Characters per output line, without the CRLF (RFC 2045 limit).
pub const LINE_CHARS: usize = 76;
/// Input bytes that fill one full line.
pub const LINE_INPUT: usize = LINE_CHARS / 4 * 3;
pub(crate) const LINE_OUTPUT: usize = LINE_CHARS + 2;
/// Lines encoded per `base64-simd` call on the fast path.
const BLOCK_LINES: usize = 128;
pub(crate) const CRLF: &[u8; 2] = b"\r\n";
pub(crate) const ENGINE: base64_simd::Base64 = base64_simd::STANDARD;

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
    let quanta = input_len / 3 + !input_len.is_multiple_of(3) as usize;
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
/// Bytes of `dst` past the `written` count may have been overwritten with
/// scratch data (the SIMD kernel stores whole vectors); nothing past the end
/// of `dst` is ever touched.
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
            let rest = index::get(src, read..);
            if self.held_len > 0 || rest.len() < 3 {
                let took = self.hold(rest);
                read += took;
                if self.held_len < 3 && read == src.len() {
                    if last && !self.finished {
                        self.finish_into_pending();
                        written += self.drain_pending(index::get_mut(dst, written..));
                        continue;
                    }
                    return (CoderResult::InputEmpty, read, written);
                }
                self.group_into_pending();
                written += self.drain_pending(index::get_mut(dst, written..));
                continue;
            }
            let (r, w) = self.encode_groups(rest, index::get_mut(dst, written..));
            read += r;
            written += w;
            if r == 0 {
                // Not even one group fitted: go one group at a time through `pending`.
                self.hold(index::get(rest, ..3));
                read += 3;
                self.group_into_pending();
                written += self.drain_pending(index::get_mut(dst, written..));
            }
        }
    }

    /// The most input bytes [`encode`](Self::encode) (with `last` false)
    /// surely reads whole into `room` bytes of output: those whose encoding
    /// fits behind the output held back from the last call.
    pub fn input_fits(&self, room: usize) -> usize {
        let held_back = (self.pending_len - self.pending_pos) as usize;
        let Some(room) = room.checked_sub(held_back) else {
            return 0;
        };
        let groups = fit_groups(self.column as usize, usize::MAX / 4, room);
        // Up to two bytes past the last group wait in `held`, unwritten.
        (groups * 3 + 2).saturating_sub(self.held_len as usize)
    }

    /// Takes bytes into `held` until it has a whole group; returns how many.
    fn hold(&mut self, src: &[u8]) -> usize {
        let want = (3 - self.held_len as usize).min(src.len());
        let start = self.held_len as usize;
        index::copy(
            index::get_mut(&mut self.held, start..start + want),
            index::get(src, ..want),
        );
        self.held_len += want as u8;
        want
    }

    /// Encodes the complete group in `held` into `pending`.
    fn group_into_pending(&mut self) {
        debug_assert_eq!(self.held_len, 3);
        self.held_len = 0;
        self.push_quad(encode_group(&self.held));
    }

    /// Encodes a held partial group with padding, then the final CRLF.
    fn finish_into_pending(&mut self) {
        self.finished = true;
        self.pending_pos = 0;
        self.pending_len = 0;
        if self.held_len > 0 {
            let n = self.held_len as usize;
            self.held_len = 0;
            self.push_quad(encode_group(index::get(&self.held, ..n)));
        }
        if self.column > 0 {
            self.column = 0;
            let at = self.pending_len as usize;
            *index::array_mut(&mut self.pending, at) = *CRLF;
            self.pending_len += 2;
        }
    }

    fn push_quad(&mut self, quad: [u8; 4]) {
        *index::array_mut(&mut self.pending, 0) = quad;
        self.pending_pos = 0;
        self.pending_len = 4;
        self.column += 4;
        if self.column as usize == LINE_CHARS {
            self.column = 0;
            *index::array_mut(&mut self.pending, 4) = *CRLF;
            self.pending_len = 6;
        }
    }

    fn drain_pending(&mut self, dst: &mut [u8]) -> usize {
        let (pos, len) = (self.pending_pos as usize, self.pending_len as usize);
        if pos == 0 && dst.len() >= self.pending.len() {
            // A fixed-size copy (bytes past `len` are scratch the contract
            // allows): no call into memcpy at every push's edge.
            *index::array_mut(dst, 0) = self.pending;
            self.pending_pos = self.pending_len;
            return len;
        }
        let n = (len - pos).min(dst.len());
        index::copy(
            index::get_mut(dst, ..n),
            index::get(&self.pending, pos..pos + n),
        );
        self.pending_pos += n as u8;
        n
    }

    /// Fast path: whole groups straight from `src` into `dst`, as many as
    /// both allow. Requires no held input and no pending output.
    fn encode_groups(&mut self, src: &[u8], dst: &mut [u8]) -> (usize, usize) {
        let column = self.column as usize;
        let groups = fit_groups(column, src.len() / 3, dst.len());
        let written = encode_run(index::get(src, ..groups * 3), dst, column);
        self.column = ((column + 4 * groups) % LINE_CHARS) as u8;
        (groups * 3, written)
    }
}

/// Output bytes of `groups` groups that start at line column `column`,
/// with the CRLF of every line they complete (the AVX2 kernel's size, and
/// the tests' oracle for `fit_groups`).
#[cfg(any(target_arch = "x86_64", test))]
const fn run_len(column: usize, groups: usize) -> usize {
    4 * groups + 2 * ((column + 4 * groups) / LINE_CHARS)
}

/// The most groups, at most `max`, whose run from `column` fits in `room`.
fn fit_groups(column: usize, max: usize, room: usize) -> usize {
    let to_line_end = (LINE_CHARS - column) / 4;
    let groups = match room.checked_sub(to_line_end * 4 + 2) {
        // Cannot finish this line with its CRLF: stop short of its end.
        None => (room / 4).min(to_line_end - 1),
        Some(rest) => {
            let last_line = ((rest % LINE_OUTPUT) / 4).min(LINE_CHARS / 4 - 1);
            to_line_end + rest / LINE_OUTPUT * (LINE_CHARS / 4) + last_line
        }
    };
    groups.min(max)
}

/// Encodes whole groups into `dst` (which holds their run) from `column`:
/// the AVX2 kernel when the CPU has it, else `base64-simd` line by line.
#[allow(unsafe_code)]
fn encode_run(src: &[u8], dst: &mut [u8], column: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2; `src` is whole groups and `dst` holds
        // their run (`fit_groups` sized it).
        return unsafe { avx2::encode_run(src, dst, column) };
    }
    encode_run_portable(src, dst, column)
}

/// `--cfg atmail_force_portable` (the portable bench and test in the
/// README and `tools/test`) takes the path every other CPU takes on an
/// x86-64 machine.
#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    if cfg!(atmail_force_portable) {
        return false;
    }
    avx2::available()
}

/// The portable run: the rest of the current line, whole lines, then the
/// start of the last line, each through `base64-simd`.
fn encode_run_portable(src: &[u8], dst: &mut [u8], column: usize) -> usize {
    let groups = src.len() / 3;
    let head = ((LINE_CHARS - column) / 4).min(groups) * usize::from(column > 0);
    let mut at = encode_partial(index::get(src, ..head * 3), dst, column);
    let lines = (groups - head) / (LINE_CHARS / 4);
    let body = index::get(src, head * 3..(head + lines * (LINE_CHARS / 4)) * 3);
    encode_lines_portable(body, index::get_mut(dst, at..), lines);
    at += lines * LINE_OUTPUT;
    at += encode_partial(
        index::get(src, head * 3 + body.len()..),
        index::get_mut(dst, at..),
        (column + 4 * head) % LINE_CHARS,
    );
    at
}

/// Groups within one line from `column`, with a CRLF if they end it.
fn encode_partial(src: &[u8], dst: &mut [u8], column: usize) -> usize {
    let chars = src.len() / 3 * 4;
    let _ = ENGINE.encode(src, Out::from_slice(index::get_mut(dst, ..chars)));
    if chars > 0 && column + chars == LINE_CHARS {
        *index::array_mut(dst, chars) = *CRLF;
        return chars + 2;
    }
    chars
}

/// Whole lines, block by block: `base64-simd` encodes a block's lines
/// into the end of the block's own output, then each line moves down to
/// its place with its CRLF ([`move_line`]). Line `i` moves from
/// `2n + 76i` to `78i` (`n` lines in the block), never past where line
/// `i + 1` still waits, so the moves go front to back. A block is small
/// enough to stay in L1, so the destination is still fetched and written
/// back once, and no scratch buffer is needed (firmware stacks are a few
/// KiB). A block of 128 lines (7,296 bytes in, 9,984 out) leaves room in
/// a 32 KiB L1. On a quiet x86-64 (20 MiB, forced portable path), blocks
/// of 96 to 384 lines ran within 3% of each other, and blocks of 8 to 64
/// lines 4-12% slower. That is a memory effect, not a cost per call:
/// calls of 32 lines over a region that stays in L1 cost nothing more
/// than calls of 256.
fn encode_lines_portable(src: &[u8], dst: &mut [u8], lines: usize) {
    let in_blocks = index::get(src, ..lines * LINE_INPUT).chunks(BLOCK_LINES * LINE_INPUT);
    let out_blocks =
        index::get_mut(dst, ..lines * LINE_OUTPUT).chunks_mut(BLOCK_LINES * LINE_OUTPUT);
    for (input, output) in in_blocks.zip(out_blocks) {
        let n = input.len() / LINE_INPUT;
        let _ = ENGINE.encode(input, Out::from_slice(index::get_mut(output, 2 * n..)));
        for i in 0..n {
            move_line(output, 2 * n + LINE_CHARS * i, LINE_OUTPUT * i);
        }
    }
}

/// Moves the 76 characters at `from` down to `to` (`to < from`, and
/// `from - to` even and at least 2) and ends them with CRLF. The first 64
/// go by `copy_within`, which LLVM inlines as loads, then stores (so
/// overlap is harmless); the last 14 and the CRLF go as two 8-byte words,
/// the CRLF shifted into the second. Both this and `copy_within(76)`
/// plus a 2-byte CRLF are six stores on x86-64, but this one moved 20 MiB
/// worth of lines 10% faster (blocks in L1, nothing else timed), and the
/// move is about a quarter of the portable path's time. The words are
/// read before anything is written: `to + 64 <= from + 62` since
/// `from - to >= 2`.
#[inline(always)]
fn move_line(block: &mut [u8], from: usize, to: usize) {
    let head = word(block, from + 62);
    let tail = (word(block, from + 68) >> 16) | (u64::from(u16::from_le_bytes(*CRLF)) << 48);
    // Eight words front to back rather than `copy_within`, which links
    // `memmove` (1.5 KB of a 64 KiB firmware image) for this one move: the
    // destination is below the source, so no write reaches a word before
    // it is read.
    for k in 0..8 {
        *index::array_mut(block, to + 8 * k) = word(block, from + 8 * k).to_le_bytes();
    }
    *index::array_mut(block, to + 62) = head.to_le_bytes();
    *index::array_mut(block, to + 70) = tail.to_le_bytes();
}

/// The eight bytes at `at`, little-endian, whatever the target's order.
#[inline(always)]
fn word(block: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(*index::array(block, at))
}

/// One group (1 to 3 bytes, padded) without a SIMD call: the edges of a
/// push are too short for one to pay off.
#[inline]
pub(crate) fn encode_group(group: &[u8]) -> [u8; 4] {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = [
        *index::get(group, 0),
        *group.get(1).unwrap_or(&0),
        *group.get(2).unwrap_or(&0),
    ];
    let n = (b[0] as usize) << 16 | (b[1] as usize) << 8 | b[2] as usize;
    let mut quad = [
        ALPHABET[n >> 18],
        ALPHABET[n >> 12 & 63],
        ALPHABET[n >> 6 & 63],
        ALPHABET[n & 63],
    ];
    for slot in quad.iter_mut().skip(group.len() + 1) {
        *slot = b'=';
    }
    quad
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
            // A cut of 0 is an empty push, then one byte.
            let size = cuts[cut % cuts.len()];
            cut += 1;
            if size == 0 && pos < input.len() {
                assert_eq!(
                    enc.encode(b"", &mut buf, false),
                    (CoderResult::InputEmpty, 0, 0)
                );
            }
            let end = (pos + size.max(1)).min(input.len());
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
                BLOCK_LINES * LINE_INPUT * 3 + 5,
                &[BLOCK_LINES * LINE_INPUT + 1],
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
    #[allow(unsafe_code)]
    fn both_run_kernels_match_the_oracle() {
        // A run from `column` must equal the oracle's output for a stream
        // that has `column / 4` groups before it.
        let data = input(57 * 12 + 30);
        for column in (0..LINE_CHARS).step_by(4) {
            let before = column / 4 * 3;
            let expect = &naive(&data[..data.len() / 3 * 3])[before / 3 * 4..];
            for groups in 0..(data.len() - before) / 3 {
                let src = &data[before..before + groups * 3];
                let len = run_len(column, groups);
                let want = &expect[..len];
                let mut out = std::vec![0xAAu8; len];
                assert_eq!(encode_run_portable(src, &mut out, column), len);
                assert_eq!(
                    out[..want.len()],
                    want[..],
                    "portable, column {column}, {groups} groups"
                );
                #[cfg(target_arch = "x86_64")]
                if std::is_x86_feature_detected!("avx2") {
                    // Exact room (stack copies at the end) and spare room (scratch stores past the run).
                    for slack in [0, 70] {
                        let mut out = std::vec![0xAAu8; len + slack];
                        // SAFETY: AVX2 checked just above; `out` holds the run.
                        assert_eq!(unsafe { avx2::encode_run(src, &mut out, column) }, len);
                        assert_eq!(
                            out[..len],
                            want[..],
                            "avx2, column {column}, {groups} groups, slack {slack}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn avx2_detection_without_std_agrees_with_std() {
        let want = std::is_x86_feature_detected!("avx2");
        // Twice: the first asks the CPU, the second reads the cache.
        assert_eq!(avx2::available(), want);
        assert_eq!(avx2::available(), want);
    }

    #[test]
    fn fit_groups_is_the_largest_run_that_fits() {
        for column in (0..LINE_CHARS).step_by(4) {
            for room in 0..400 {
                let g = fit_groups(column, usize::MAX, room);
                assert!(run_len(column, g) <= room, "column {column} room {room}");
                assert!(run_len(column, g + 1) > room, "column {column} room {room}");
            }
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
