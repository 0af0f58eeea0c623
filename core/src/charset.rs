//! The four session charsets of `+GTSMTPHEAD`: validation, character
//! boundaries and honest MIME labels.
//!
//! What it does: checks that bytes are valid in a charset (strictly: what a
//! WHATWG decoder would decode without a replacement character), walks them
//! character by character so an encoded-word never splits one, and names the
//! charset a piece of text really is in.
//!
//! How it checks: UTF-8 by the ranges of RFC 3629 section 4, a byte at a
//! time (`core::str::from_utf8` is faster on long text and costs 550 bytes
//! of firmware flash more; only a text body is validated, and it arrives
//! at serial speed); GBK by the shape of its
//! byte pairs (every cell of that shape decodes); Big5-HKSCS with one bit per
//! double-byte cell (`cjk_cells`, 2.5 KB, generated from `encoding_rs`). A decoder would also map each cell to Unicode, which the
//! engine never needs, and its tables are what kept the engine out of a
//! firmware's flash (`core/tests/charset_exhaustive.rs` proves the bitmaps
//! equal to the `encoding_rs` validation they replaced, over every sequence).
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

use crate::cjk_cells::{BIG5_HKSCS_WORDS, BIG5_HKSCS_WORD_OF};
use crate::gb2312_big5_tables::{BIG5_ROWS, BIG5_ROW_OF, GB2312_ROWS, GB2312_ROW_OF};
use crate::index;

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
        let strict = |table: Table, trail_index: fn(u8) -> Option<usize>| {
            CharIndices::new(self, text).all(|(at, len)| {
                len == 1 || {
                    // A two-byte character: `CharIndices` checked both bytes are there.
                    let (lead, trail) = (*index::get(text, at), *index::get(text, at + 1));
                    in_table(table, lead, trail_index(trail))
                }
            })
        };
        match self {
            Charset::Gb2312 if !strict((&GB2312_ROWS, &GB2312_ROW_OF), gb2312_trail) => "GBK",
            Charset::Big5 if !strict((&BIG5_ROWS, &BIG5_ROW_OF), big5_trail) => "Big5-HKSCS",
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
#[derive(Clone, Debug)]
pub struct Validator {
    charset: Charset,
    /// The first bytes of a character the previous piece ended inside.
    partial: [u8; 3],
    partial_len: usize,
    /// Bytes seen before the current piece, for error offsets.
    seen: usize,
}

/// Where a scan of valid text stopped.
enum Stop {
    /// An invalid character starts here.
    Invalid(usize),
    /// A character that may still be valid starts here and runs past the end.
    Unfinished(usize),
}

impl Validator {
    /// A validator at the start of a text.
    pub fn new(charset: Charset) -> Self {
        Validator {
            charset,
            partial: [0; 3],
            partial_len: 0,
            seen: 0,
        }
    }

    /// Checks the next piece; `last` marks the end of the text (a character
    /// left unfinished is then an error). Returns the piece's length.
    pub fn feed(&mut self, piece: &[u8], last: bool) -> Result<usize, InvalidBytes> {
        let base = self.seen;
        self.seen += piece.len();
        let taken = self.finish_partial(piece, base, last)?;
        if self.partial_len > 0 {
            return Ok(piece.len());
        }
        match scan(self.charset, index::get(piece, taken..)) {
            Ok(()) => Ok(piece.len()),
            Err(Stop::Unfinished(at)) if !last => {
                let tail = index::get(piece, taken + at..);
                index::copy(index::get_mut(&mut self.partial, ..tail.len()), tail);
                self.partial_len = tail.len();
                Ok(piece.len())
            }
            Err(Stop::Invalid(at) | Stop::Unfinished(at)) => Err(InvalidBytes {
                offset: base + taken + at,
            }),
        }
    }

    /// Completes a character the previous piece ended inside with the
    /// first bytes of `piece`; returns how many it took.
    fn finish_partial(
        &mut self,
        piece: &[u8],
        base: usize,
        last: bool,
    ) -> Result<usize, InvalidBytes> {
        let held = self.partial_len;
        if held == 0 {
            return Ok(0);
        }
        let take = piece.len().min(4 - held);
        let mut char = [0u8; 4];
        // `held + take` is at most 4, the longest character.
        index::copy(
            index::get_mut(&mut char, ..held),
            index::get(&self.partial, ..held),
        );
        index::copy(
            index::get_mut(&mut char, held..held + take),
            index::get(piece, ..take),
        );
        let invalid = InvalidBytes {
            offset: base - held,
        };
        match scan(self.charset, index::get(&char, ..held + take)) {
            Err(Stop::Invalid(0)) => Err(invalid),
            Err(Stop::Unfinished(0)) if last => Err(invalid),
            Err(Stop::Unfinished(0)) => {
                index::copy(
                    index::get_mut(&mut self.partial, held..held + take),
                    index::get(piece, ..take),
                );
                self.partial_len = held + take;
                Ok(take)
            }
            // The character ends at the first boundary after the held bytes;
            // what follows it is the piece's own and is scanned again there.
            _ => {
                let len = char_len(self.charset, char[0]);
                self.partial_len = 0;
                Ok(len - held)
            }
        }
    }
}

/// The length of the character `lead` starts, in text known to be valid
/// so far.
fn char_len(charset: Charset, lead: u8) -> usize {
    match (charset, lead) {
        (_, 0..=0x7F) | (Charset::UsAscii, _) => 1,
        (Charset::Utf8, 0..=0xDF) => 2,
        (Charset::Utf8, 0xE0..=0xEF) => 3,
        (Charset::Utf8, _) => 4,
        (Charset::Gb2312 | Charset::Big5, _) => 2,
    }
}

/// Scans `bytes` for the first character that is not valid (or not
/// finished) in `charset`.
fn scan(charset: Charset, bytes: &[u8]) -> Result<(), Stop> {
    match charset {
        Charset::UsAscii => match bytes.iter().position(|&b| b >= 0x80) {
            Some(at) => Err(Stop::Invalid(at)),
            None => Ok(()),
        },
        Charset::Utf8 => scan_utf8(bytes),
        Charset::Gb2312 => scan_pairs(bytes, gbk_cell),
        Charset::Big5 => scan_pairs(bytes, big5_hkscs_cell),
    }
}

/// Scans UTF-8 as RFC 3629 section 4 gives its byte ranges: no overlong
/// forms, no surrogates, nothing past U+10FFFF. A character cut off by the
/// end of `bytes`, valid as far as it goes, is `Unfinished`.
fn scan_utf8(bytes: &[u8]) -> Result<(), Stop> {
    let mut at = 0;
    while let Some(&lead) = bytes.get(at) {
        // The character's length and the range of its second byte.
        let (len, low, high) = match lead {
            0..=0x7F => (1, 0, 0),
            0xC2..=0xDF => (2, 0x80, 0xBF),
            0xE0 => (3, 0xA0, 0xBF),
            0xED => (3, 0x80, 0x9F),
            0xE1..=0xEF => (3, 0x80, 0xBF),
            0xF0 => (4, 0x90, 0xBF),
            0xF1..=0xF3 => (4, 0x80, 0xBF),
            0xF4 => (4, 0x80, 0x8F),
            _ => return Err(Stop::Invalid(at)),
        };
        for i in 1..len {
            let (low, high) = if i == 1 { (low, high) } else { (0x80, 0xBF) };
            match bytes.get(at + i) {
                None => return Err(Stop::Unfinished(at)),
                Some(&b) if !(low..=high).contains(&b) => return Err(Stop::Invalid(at)),
                Some(_) => {}
            }
        }
        at += len;
    }
    Ok(())
}

/// Scans a double-byte charset: ASCII, or a lead 0x81..=0xFE and a trail
/// that `cell` accepts after it.
fn scan_pairs(bytes: &[u8], cell: fn(u8, u8) -> bool) -> Result<(), Stop> {
    let mut at = 0;
    while let Some(&lead) = bytes.get(at) {
        if lead < 0x80 {
            at += 1;
            continue;
        }
        if !(0x81..=0xFE).contains(&lead) {
            return Err(Stop::Invalid(at));
        }
        match bytes.get(at + 1) {
            None => return Err(Stop::Unfinished(at)),
            Some(&trail) if !cell(lead, trail) => return Err(Stop::Invalid(at)),
            Some(_) => at += 2,
        }
    }
    Ok(())
}

/// GBK decodes every cell of its shape (the generator of `cjk_cells`
/// checks that), so a trail in range is all it takes. GB18030's four-byte
/// form, a digit after the lead, is refused: a host saying GB2312 does not
/// send it, and no GBK reader could decode it.
fn gbk_cell(_lead: u8, trail: u8) -> bool {
    matches!(trail, 0x40..=0x7E | 0x80..=0xFE)
}

/// Big5 with HKSCS leaves holes (18,594 of 19,782 cells decode): one bit
/// per cell in the bitmap of `cjk_cells`.
fn big5_hkscs_cell(lead: u8, trail: u8) -> bool {
    let index = match trail {
        0x40..=0x7E => trail - 0x40,
        0xA1..=0xFE => trail - 0x62,
        _ => return false,
    };
    let cell = (lead - 0x81) as usize * 157 + index as usize;
    BIG5_HKSCS_WORD_OF
        .get(cell / 32)
        .and_then(|&w| BIG5_HKSCS_WORDS.get(w as usize))
        .is_some_and(|word| word >> (cell % 32) & 1 == 1)
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

/// A strict table: its distinct rows, and which row each lead has.
type Table = (&'static [[u64; 3]], &'static [u8]);

fn in_table((rows, row_of): Table, lead: u8, trail: Option<usize>) -> bool {
    let row = (lead as usize)
        .checked_sub(0xA1)
        .and_then(|r| row_of.get(r))
        .and_then(|&i| rows.get(i as usize));
    match (row, trail) {
        (Some(words), Some(i)) => *index::get(words, i / 64) >> (i % 64) & 1 == 1,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encoding(charset: Charset) -> &'static encoding_rs::Encoding {
        match charset {
            Charset::UsAscii => encoding_rs::WINDOWS_1252,
            Charset::Utf8 => encoding_rs::UTF_8,
            Charset::Gb2312 => encoding_rs::GBK,
            Charset::Big5 => encoding_rs::BIG5,
        }
    }

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
                let (bytes, _, lossy) = encoding(cs).encode(&text);
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
