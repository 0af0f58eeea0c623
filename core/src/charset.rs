//! The four session charsets of `+GTSMTPHEAD`: validation, character
//! boundaries and honest MIME labels.
//!
//! What it does: checks that bytes are valid in a charset (through
//! `encoding_rs`, strictly: no replacement characters), walks them character
//! by character so an encoded-word never splits one, and names the charset a
//! piece of text really is in.
//!
//! What it does not: transcode. The mail carries the host's bytes as they
//! came; only the std CLI transcodes its UTF-8 arguments, at its edge.
//!
//! Why the labels vary: hosts that say GB2312 send code page 936 (GBK), and
//! hosts that say BIG5 may send HKSCS characters. A strict reader decodes a
//! `GB2312` or `Big5` word with a strict table, so a piece of text is labeled
//! with the strict name only when every character is in the strict table
//! (`gb2312_big5_tables`, generated from Python's strict codecs), and with
//! the superset's name (`GBK`, `Big5-HKSCS`) otherwise.

use crate::gb2312_big5_tables::{BIG5_CELLS, GB2312_CELLS};
use encoding_rs::{DecoderResult, Encoding};

/// A session charset, by its `+GTSMTPHEAD` code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Charset {
    /// Code 0: US-ASCII; bytes >= 0x80 are invalid.
    #[default]
    UsAscii = 0,
    /// Code 1: UTF-8 (the spec's "GIF", see DESIGN.md).
    Utf8 = 1,
    /// Code 2: GB2312 as hosts send it, which is GBK.
    Gb2312 = 2,
    /// Code 3: BIG5, including HKSCS characters.
    Big5 = 3,
}

/// Bytes that are not valid in the charset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidBytes {
    /// Offset of the first invalid byte.
    pub offset: usize,
}

impl Charset {
    /// The charset of a `+GTSMTPHEAD` code.
    ///
    /// ```
    /// use atmail_core::charset::Charset;
    /// assert_eq!(Charset::from_code(2), Some(Charset::Gb2312));
    /// assert_eq!(Charset::from_code(4), None);
    /// ```
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Charset::UsAscii),
            1 => Some(Charset::Utf8),
            2 => Some(Charset::Gb2312),
            3 => Some(Charset::Big5),
            _ => None,
        }
    }

    /// The `+GTSMTPHEAD` code.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The `encoding_rs` encoding that decodes this charset.
    pub fn encoding(self) -> &'static Encoding {
        match self {
            Charset::UsAscii => encoding_rs::WINDOWS_1252,
            Charset::Utf8 => encoding_rs::UTF_8,
            Charset::Gb2312 => encoding_rs::GBK,
            Charset::Big5 => encoding_rs::BIG5,
        }
    }

    /// The label of a text body part, which is written before its bytes
    /// arrive and so must be true of any text the validator accepts:
    /// `GBK` under code 2, `Big5-HKSCS` under code 3.
    pub const fn body_label(self) -> &'static str {
        match self {
            Charset::UsAscii => "US-ASCII",
            Charset::Utf8 => "UTF-8",
            Charset::Gb2312 => "GBK",
            Charset::Big5 => "Big5-HKSCS",
        }
    }

    /// The label of a piece of valid text, as strict as the text allows.
    ///
    /// ```
    /// use atmail_core::charset::Charset;
    /// assert_eq!(Charset::Gb2312.label_of(b"\xc4\xe3\xba\xc3"), "GB2312"); // 你好
    /// assert_eq!(Charset::Gb2312.label_of(b"\xe9\x46"), "GBK"); // 镕
    /// ```
    pub fn label_of(self, text: &[u8]) -> &'static str {
        let strict = |table: &[[u64; 3]], trail_index: fn(u8) -> Option<usize>| {
            CharIndices::new(self, text)
                .all(|(at, len)| len == 1 || in_table(table, text[at], trail_index(text[at + 1])))
        };
        match self {
            Charset::Gb2312 if !strict(&GB2312_CELLS, gb2312_trail) => "GBK",
            Charset::Big5 if !strict(&BIG5_CELLS, big5_trail) => "Big5-HKSCS",
            Charset::Gb2312 => "GB2312",
            Charset::Big5 => "Big5",
            other => other.body_label(),
        }
    }

    /// Checks that `bytes` are valid text in this charset.
    ///
    /// ```
    /// use atmail_core::charset::{Charset, InvalidBytes};
    /// assert!(Charset::Utf8.validate("你好".as_bytes()).is_ok());
    /// assert_eq!(Charset::UsAscii.validate(b"ok\xff"), Err(InvalidBytes { offset: 2 }));
    /// ```
    pub fn validate(self, bytes: &[u8]) -> Result<(), InvalidBytes> {
        let ascii_end = bytes.iter().position(|&b| b >= 0x80).unwrap_or(bytes.len());
        if self == Charset::UsAscii || ascii_end == bytes.len() {
            return match ascii_end == bytes.len() {
                true => Ok(()),
                false => Err(InvalidBytes { offset: ascii_end }),
            };
        }
        Validator::new(self).feed(bytes, true).map(|_| ())
    }
}

/// Checks text that arrives in pieces (a body streamed in data mode): a
/// character split across pieces is held for the next one.
///
/// ```
/// use atmail_core::charset::{Charset, Validator};
/// let mut v = Validator::new(Charset::Utf8);
/// assert!(v.feed(b"\xe4\xbd", false).is_ok()); // first two bytes of 你
/// assert!(v.feed(b"\xa0", true).is_ok());
/// ```
#[derive(Debug)]
pub struct Validator {
    charset: Charset,
    decoder: encoding_rs::Decoder,
    /// Bytes seen before the current piece, for error offsets.
    seen: usize,
    /// For GBK: whether the previous piece ended on a lead byte.
    gbk_lead_pending: bool,
}

impl Validator {
    /// A validator at the start of a text.
    pub fn new(charset: Charset) -> Self {
        let decoder = charset.encoding().new_decoder_without_bom_handling();
        Validator {
            charset,
            decoder,
            seen: 0,
            gbk_lead_pending: false,
        }
    }

    /// Checks the next piece; `last` marks the end of the text (a character
    /// left unfinished is then an error). Returns the piece's length.
    pub fn feed(&mut self, piece: &[u8], last: bool) -> Result<usize, InvalidBytes> {
        let base = self.seen;
        self.seen += piece.len();
        if self.charset == Charset::UsAscii {
            return match piece.iter().position(|&b| b >= 0x80) {
                Some(at) => Err(InvalidBytes { offset: base + at }),
                None => Ok(piece.len()),
            };
        }
        if self.charset == Charset::Gb2312 {
            self.check_gbk_shape(piece, base)?;
        }
        let mut scratch = [0u8; 256];
        let mut read = 0;
        loop {
            let (result, r, _) =
                self.decoder
                    .decode_to_utf8_without_replacement(&piece[read..], &mut scratch, last);
            read += r;
            match result {
                DecoderResult::InputEmpty => return Ok(piece.len()),
                DecoderResult::OutputFull => continue,
                DecoderResult::Malformed(bad, after) => {
                    let offset = (base + read).saturating_sub(bad as usize + after as usize);
                    return Err(InvalidBytes { offset });
                }
            }
        }
    }

    /// `encoding_rs` decodes `gb2312` as GB18030; a host that says GB2312
    /// means GBK, so the GB18030-only forms (0x80 alone, four-byte
    /// sequences) are refused: no strict GBK reader could decode them.
    fn check_gbk_shape(&mut self, piece: &[u8], base: usize) -> Result<(), InvalidBytes> {
        for (i, &b) in piece.iter().enumerate() {
            if self.gbk_lead_pending {
                self.gbk_lead_pending = false;
                if b.is_ascii_digit() {
                    return Err(InvalidBytes {
                        offset: (base + i).saturating_sub(1),
                    });
                }
            } else if b == 0x80 {
                return Err(InvalidBytes { offset: base + i });
            } else if b > 0x80 {
                self.gbk_lead_pending = true;
            }
        }
        Ok(())
    }
}

/// `(offset, length)` of each character of valid text.
#[derive(Clone, Debug)]
pub struct CharIndices<'a> {
    charset: Charset,
    text: &'a [u8],
    at: usize,
}

impl<'a> CharIndices<'a> {
    /// Walks `text`, which must be valid in `charset` (see
    /// [`Charset::validate`]); on invalid text the lengths are unspecified
    /// but stay within `text`.
    pub fn new(charset: Charset, text: &'a [u8]) -> Self {
        CharIndices {
            charset,
            text,
            at: 0,
        }
    }
}

impl Iterator for CharIndices<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        let lead = *self.text.get(self.at)?;
        let len = match (self.charset, lead) {
            (_, 0..=0x7F) | (Charset::UsAscii, _) => 1,
            (Charset::Utf8, 0..=0xDF) => 2,
            (Charset::Utf8, 0xE0..=0xEF) => 3,
            (Charset::Utf8, _) => 4,
            (Charset::Gb2312 | Charset::Big5, _) => 2,
        };
        let len = len.min(self.text.len() - self.at);
        let item = (self.at, len);
        self.at += len;
        Some(item)
    }
}

fn gb2312_trail(b: u8) -> Option<usize> {
    (0xA1..=0xFE).contains(&b).then(|| (b - 0xA1) as usize)
}

fn big5_trail(b: u8) -> Option<usize> {
    match b {
        0x40..=0x7E => Some((b - 0x40) as usize),
        0xA1..=0xFE => Some((b - 0xA1) as usize + 63),
        _ => None,
    }
}

fn in_table(table: &[[u64; 3]], lead: u8, trail: Option<usize>) -> bool {
    let row = (lead as usize).checked_sub(0xA1).and_then(|r| table.get(r));
    match (row, trail) {
        (Some(words), Some(i)) => words[i / 64] >> (i % 64) & 1 == 1,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn validation_table() {
        let cases: &[(&str, Charset, &[u8], Result<(), InvalidBytes>)] = &[
            ("ascii ok", Charset::UsAscii, b"Hello, world", Ok(())),
            (
                "ascii high byte",
                Charset::UsAscii,
                b"caf\xe9",
                Err(InvalidBytes { offset: 3 }),
            ),
            ("utf-8 ok", Charset::Utf8, "你好 smtp".as_bytes(), Ok(())),
            (
                "utf-8 truncated",
                Charset::Utf8,
                b"ab\xe4\xbd",
                Err(InvalidBytes { offset: 2 }),
            ),
            (
                "utf-8 overlong",
                Charset::Utf8,
                b"\xc0\xaf",
                Err(InvalidBytes { offset: 0 }),
            ),
            (
                "utf-8 surrogate",
                Charset::Utf8,
                b"\xed\xa0\x80",
                Err(InvalidBytes { offset: 0 }),
            ),
            (
                "gb2312 ok",
                Charset::Gb2312,
                b"\xc4\xe3\xba\xc3 smtp",
                Ok(()),
            ),
            (
                "gbk-only ok",
                Charset::Gb2312,
                b"\xd6\xec\xe9\x46\xbb\xf9",
                Ok(()),
            ),
            (
                "gb lone lead",
                Charset::Gb2312,
                b"a\xc4",
                Err(InvalidBytes { offset: 1 }),
            ),
            (
                "gb bad trail",
                Charset::Gb2312,
                b"\xc4\x0a",
                Err(InvalidBytes { offset: 0 }),
            ),
            (
                "gb 0x80",
                Charset::Gb2312,
                b"\x80",
                Err(InvalidBytes { offset: 0 }),
            ),
            (
                "gb18030 four-byte",
                Charset::Gb2312,
                b"\x81\x30\x81\x30",
                Err(InvalidBytes { offset: 0 }),
            ),
            (
                "big5 ok with 0x5C trail",
                Charset::Big5,
                b"\xb3\x5c\xa5\x5c",
                Ok(()),
            ),
            (
                "big5 lone lead",
                Charset::Big5,
                b"\xb3",
                Err(InvalidBytes { offset: 0 }),
            ),
            (
                "big5 bad trail",
                Charset::Big5,
                b"\xb3\x20",
                Err(InvalidBytes { offset: 0 }),
            ),
        ];
        for (name, cs, bytes, want) in cases {
            assert_eq!(cs.validate(bytes), *want, "{name}");
        }
    }

    #[test]
    fn labels_are_as_strict_as_the_text() {
        assert_eq!(Charset::Gb2312.label_of(b"abc"), "GB2312");
        assert_eq!(Charset::Gb2312.label_of(b"\xd6\xec\xe9\x46"), "GBK");
        assert_eq!(Charset::Big5.label_of(b"\xb3\x5c"), "Big5");
        assert_eq!(Charset::Big5.label_of(b"\x88\x62"), "Big5-HKSCS");
        assert_eq!(Charset::Utf8.label_of("é".as_bytes()), "UTF-8");
    }

    #[test]
    fn char_indices_follow_each_charset() {
        let walk = |cs, t: &[u8]| {
            CharIndices::new(cs, t)
                .map(|(_, l)| l)
                .collect::<std::vec::Vec<_>>()
        };
        assert_eq!(walk(Charset::Utf8, "a你😀".as_bytes()), [1, 3, 4]);
        assert_eq!(walk(Charset::Gb2312, b"a\xc4\xe3"), [1, 2]);
        assert_eq!(walk(Charset::Big5, b"\xb3\x5cz"), [2, 1]);
    }

    proptest! {
        #[test]
        fn streamed_validation_agrees_with_one_shot(
            text in "\\PC{0,40}",
            cut in 0usize..160,
        ) {
            for cs in [Charset::Utf8, Charset::Gb2312, Charset::Big5] {
                let (bytes, _, lossy) = cs.encoding().encode(&text);
                let bytes = bytes.into_owned();
                let whole = cs.validate(&bytes);
                if !lossy && cs == Charset::Utf8 {
                    prop_assert!(whole.is_ok());
                }
                let cut = cut.min(bytes.len());
                let mut v = Validator::new(cs);
                let split = v.feed(&bytes[..cut], false).and_then(|_| v.feed(&bytes[cut..], true));
                prop_assert_eq!(split.is_ok(), whole.is_ok());
            }
        }
    }
}
