//! The text body in canonical form: every line break CRLF.
//!
//! What it does: [`LineBreaks`] sits in front of the encoder of the
//! `text/plain` part (base64, or [`Verbatim`] for a binary part sent by
//! `BDAT`) and turns a bare LF, a bare CR and a CRLF alike into
//! CRLF (RFC 2045 6.8 and RFC 2046 4.1.1: text is encoded from its
//! canonical form, so a reader that decodes it gets CRLF line breaks
//! whatever the host's own convention). It streams: a CR at the end of one
//! piece and an LF at the start of the next stay one line break.
//!
//! What it does not: touch anything else. NUL and other control bytes
//! pass through as the host sent them (base64 carries them intact; the
//! host's text is not ours to edit beyond its line breaks), and
//! attachments never come here: their bytes are data.
//!
//! Why it is built this way: a CR is turned into CRLF as soon as it is
//! seen, and an LF right after a CR is then dropped, so no byte is ever
//! held back waiting for the next piece; runs without line breaks go to
//! the encoder straight from the caller's buffer, found with `memchr2`.

use crate::index;
use crate::mime_base64::MimeBase64Encoder;
use crate::CoderResult;

/// What takes the canonical text: a streaming encoder of the
/// [`MimeBase64Encoder::encode`] shape, with its sizing.
pub trait Encode {
    /// Encodes what fits of `src` into `dst`; `(result, read, written)`.
    fn encode(&mut self, src: &[u8], dst: &mut [u8], last: bool) -> (CoderResult, usize, usize);
    /// The most input bytes `encode` (with `last` false) surely reads
    /// whole into `room` bytes of output.
    fn input_fits(&self, room: usize) -> usize;
}

impl Encode for MimeBase64Encoder {
    #[inline]
    fn encode(&mut self, src: &[u8], dst: &mut [u8], last: bool) -> (CoderResult, usize, usize) {
        MimeBase64Encoder::encode(self, src, dst, last)
    }

    #[inline]
    fn input_fits(&self, room: usize) -> usize {
        MimeBase64Encoder::input_fits(self, room)
    }
}

/// The identity encoder: bytes copied as they are (a binary MIME part,
/// RFC 3030), as much as `dst` holds.
///
/// ```
/// use atmail_core::line_breaks::{Encode, Verbatim};
/// use atmail_core::CoderResult;
/// let mut dst = [0u8; 3];
/// assert_eq!(Verbatim.encode(b"abcd", &mut dst, false), (CoderResult::OutputFull, 3, 3));
/// assert_eq!(Verbatim.encode(b"d", &mut dst, true), (CoderResult::InputEmpty, 1, 1));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verbatim;

impl Encode for Verbatim {
    #[inline]
    fn encode(&mut self, src: &[u8], dst: &mut [u8], _last: bool) -> (CoderResult, usize, usize) {
        let n = src.len().min(dst.len());
        index::copy(index::get_mut(dst, ..n), index::get(src, ..n));
        let result = match n == src.len() {
            true => CoderResult::InputEmpty,
            false => CoderResult::OutputFull,
        };
        (result, n, n)
    }

    #[inline]
    fn input_fits(&self, room: usize) -> usize {
        room
    }
}

/// The line-break state between pieces; see the module docs.
///
/// ```
/// use atmail_core::{line_breaks::LineBreaks, mime_base64::MimeBase64Encoder};
/// let (mut lines, mut enc, mut out) = (LineBreaks::new(), MimeBase64Encoder::new(), [0u8; 64]);
/// let (_, r1, w1) = lines.encode(&mut enc, b"a\r", &mut out, false);
/// let (_, r2, w2) = lines.encode(&mut enc, b"\nb\n", &mut out[w1..], true);
/// assert_eq!((r1, r2), (2, 3));
/// assert_eq!(&out[..w1 + w2], b"YQ0KYg0K\r\n"); // "a\r\nb\r\n"
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LineBreaks {
    /// The last byte taken was a CR (already written as CRLF): an LF next
    /// is its second half.
    after_cr: bool,
    /// Bytes of a CRLF not yet taken by the encoder (0, 1 or 2).
    owed: u8,
}

impl LineBreaks {
    /// At the start of a text.
    pub const fn new() -> Self {
        LineBreaks {
            after_cr: false,
            owed: 0,
        }
    }

    /// The most text bytes [`encode`](Self::encode) surely reads whole
    /// into `room` bytes of output: every byte may be a line break that
    /// becomes two, behind the CRLF still owed.
    pub fn input_fits(&self, encoder: &dyn Encode, room: usize) -> usize {
        encoder.input_fits(room).saturating_sub(self.owed.into()) / 2
    }

    /// Encodes `src` in canonical form with `encoder` into `dst`, as
    /// [`MimeBase64Encoder::encode`] does (`last` with the final piece).
    /// Returns `(result, bytes of src read, bytes written)`; on `OutputFull`
    /// call again with the unread rest and more room. The encoder is a
    /// trait object: one copy of this loop serves base64 and binary parts
    /// (firmware flash), at the cost of an indirect call per run of text
    /// between line breaks.
    pub fn encode(
        &mut self,
        encoder: &mut dyn Encode,
        src: &[u8],
        dst: &mut [u8],
        last: bool,
    ) -> (CoderResult, usize, usize) {
        let (mut read, mut written) = (0, 0);
        loop {
            if self.owed > 0 {
                let crlf = index::get(b"\r\n", 2 - self.owed as usize..);
                let (_, r, w) = encoder.encode(crlf, index::get_mut(dst, written..), false);
                self.owed -= r as u8;
                written += w;
                if self.owed > 0 {
                    return (CoderResult::OutputFull, read, written);
                }
            }
            let Some(&first) = src.get(read) else {
                break;
            };
            let after_cr = core::mem::take(&mut self.after_cr);
            if first == b'\r' || first == b'\n' {
                read += 1;
                if !(after_cr && first == b'\n') {
                    self.owed = 2;
                    self.after_cr = first == b'\r';
                }
                continue;
            }
            let rest = index::get(src, read..);
            let run = memchr::memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
            let (_, r, w) = encoder.encode(
                index::get(rest, ..run),
                index::get_mut(dst, written..),
                false,
            );
            read += r;
            written += w;
            if r < run {
                return (CoderResult::OutputFull, read, written);
            }
        }
        if !last {
            return (CoderResult::InputEmpty, read, written);
        }
        let (result, _, w) = encoder.encode(&[], index::get_mut(dst, written..), true);
        (result, read, written + w)
    }
}

/// The oracle of the tests here and of the session's: what a whole text
/// becomes at once, byte by byte.
#[cfg(test)]
pub(crate) fn canonical_form(text: &[u8]) -> std::vec::Vec<u8> {
    let mut out = std::vec::Vec::new();
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'\r' if text.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 1;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use std::vec::Vec;

    /// Encodes `pieces` through `dst` buffers of `room` bytes; returns the
    /// decoded text.
    fn canonical(pieces: &[&[u8]], room: usize) -> Vec<u8> {
        let (mut lines, mut enc) = (LineBreaks::new(), MimeBase64Encoder::new());
        let mut out = Vec::new();
        let mut dst = std::vec![0u8; room];
        for (i, piece) in pieces.iter().enumerate() {
            let last = i + 1 == pieces.len();
            let mut rest = *piece;
            loop {
                let (result, r, w) = lines.encode(&mut enc, rest, &mut dst, last);
                out.extend_from_slice(&dst[..w]);
                rest = &rest[r..];
                if result == CoderResult::InputEmpty {
                    assert!(rest.is_empty());
                    break;
                }
            }
        }
        let text: Vec<u8> = out.into_iter().filter(|b| !b"\r\n".contains(b)).collect();
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap()
    }

    #[test]
    fn table() {
        let cases: &[(&str, &[&[u8]], &[u8])] = &[
            ("crlf stays", &[b"a\r\nb\r\n"], b"a\r\nb\r\n"),
            ("bare lf", &[b"a\nb\n"], b"a\r\nb\r\n"),
            ("bare cr", &[b"a\rb\r"], b"a\r\nb\r\n"),
            ("mixed", &[b"a\r\nb\nc\rd"], b"a\r\nb\r\nc\r\nd"),
            ("lf cr is two breaks", &[b"a\n\rb"], b"a\r\n\r\nb"),
            ("cr cr lf", &[b"\r\r\n"], b"\r\n\r\n"),
            ("cr | lf across pieces", &[b"a\r", b"\nb"], b"a\r\nb"),
            ("cr | empty | lf", &[b"a\r", b"", b"\nb"], b"a\r\nb"),
            ("cr at the very end", &[b"a\r"], b"a\r\n"),
            ("nul and controls pass", &[b"\x00\x07\x1b"], b"\x00\x07\x1b"),
            ("empty", &[b""], b""),
        ];
        for (name, pieces, want) in cases {
            for room in [1, 2, 5, 100] {
                assert_eq!(canonical(pieces, room), *want, "{name}, room {room}");
            }
        }
    }

    /// Through [`Verbatim`], the canonical text itself, for every room.
    fn canonical_verbatim(pieces: &[&[u8]], room: usize) -> Vec<u8> {
        let mut lines = LineBreaks::new();
        let mut out = Vec::new();
        let mut dst = std::vec![0u8; room];
        for (i, piece) in pieces.iter().enumerate() {
            let last = i + 1 == pieces.len();
            let mut rest = *piece;
            loop {
                let fits = lines.input_fits(&Verbatim, room);
                let (result, r, w) = lines.encode(&mut Verbatim, rest, &mut dst, last);
                assert!(r >= fits.min(rest.len()), "input_fits is read whole");
                out.extend_from_slice(&dst[..w]);
                rest = &rest[r..];
                if result == CoderResult::InputEmpty {
                    assert!(rest.is_empty());
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn verbatim_gives_the_canonical_text() {
        let text = b"one\r\ntwo\nthree\rfour\r\n\r\n.five\n\nsix\r\rseven\r";
        for at in 0..=text.len() {
            for room in [1, 2, 3, 64] {
                let got = canonical_verbatim(&[&text[..at], &text[at..]], room);
                assert_eq!(got, canonical_form(text), "split at {at}, room {room}");
            }
        }
    }

    #[test]
    fn a_mixed_text_split_at_every_position_decodes_to_crlf_only() {
        let text = b"one\r\ntwo\nthree\rfour\r\n\r\nfive\n\nsix\r\rseven\r";
        for at in 0..=text.len() {
            let got = canonical(&[&text[..at], &text[at..]], 7);
            assert_eq!(got, canonical_form(text), "split at {at}");
            assert!(!got.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
        }
    }

    proptest::proptest! {
        #[test]
        fn any_chunking_gives_the_canonical_text(
            text in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just(b'\r'),
                    proptest::strategy::Just(b'\n'),
                    proptest::prelude::any::<u8>(),
                ],
                0..400,
            ),
            cuts in proptest::collection::vec(0usize..400, 0..6),
            room in 1usize..200,
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(text.len())).collect();
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut start = 0;
            for cut in cuts {
                pieces.push(&text[start..cut]);
                start = cut;
            }
            pieces.push(&text[start..]);
            proptest::prop_assert_eq!(canonical(&pieces, room), canonical_form(&text));
            proptest::prop_assert_eq!(canonical_verbatim(&pieces, room), canonical_form(&text));
        }
    }
}
