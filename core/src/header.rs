//! Header fields: validated values and their folded, encoded forms.
//!
//! What it does: validates what a host may put into a header (addresses,
//! the subject, attachment names, the date and Message-ID) as newtypes, so
//! that a value that could inject a header or break a line cannot be built;
//! and writes them as RFC 5322 lines of at most 78 characters: RFC 2047
//! B encoded-words for text that needs encoding (never splitting a
//! character, each word at most 75 characters and decodable on its own under
//! its own label), RFC 2231 `filename*` parameters with continuations.
//!
//! What it does not: parse headers, or transcode. Text is written in the
//! session charset it came in.
//!
//! Why it is built this way: the values come from a serial line and end up
//! in a mail server's input, so validation happens once, at construction,
//! and the writers take only validated types. Writers push bytes into an
//! [`Out`] so the same code sizes, replays and writes a header.

use crate::charset::{CharIndices, Charset};
use crate::index;
use crate::mime_base64::encode_group;
use crate::out::Out;

/// The longest header line written (RFC 5322 §2.1.1 "SHOULD").
pub const MAX_LINE: usize = 78;
/// The longest encoded-word (RFC 2047 §2).
pub const MAX_WORD: usize = 75;
/// The longest address, user name or attachment name (the spec's 80 bytes).
pub const MAX_NAME: usize = 80;
/// The longest subject (the spec's 200 bytes).
pub const MAX_SUBJECT: usize = 200;

/// Why a header value was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// Empty where a value is required.
    Empty,
    /// Longer than the field allows.
    TooLong {
        /// The field's limit, in bytes.
        max: u16,
    },
    /// A control character (CR, LF, NUL, ...) at this offset.
    Control(usize),
    /// Bytes not valid in the charset, from this offset.
    InvalidCharset(usize),
    /// An address without exactly one `@` between a local part and a domain.
    MissingAt,
    /// A byte an address may not hold (space, `<`, `>`, `,`, quotes, non-ASCII, ...).
    BadAddressByte(usize),
}

impl HeaderError {
    /// A short description.
    pub const fn as_str(self) -> &'static str {
        match self {
            HeaderError::Empty => "empty value",
            HeaderError::TooLong { max } => too_long(max),
            HeaderError::Control(_) => "control character in value",
            HeaderError::InvalidCharset(_) => "bytes not valid in the charset",
            HeaderError::MissingAt => "address needs one @ between local part and domain",
            HeaderError::BadAddressByte(_) => "character not allowed in an address",
        }
    }
}

/// "longer than N bytes" for the limits of the spec's fields (a static
/// text, so it can be a `+CME ERROR:` text).
pub(crate) const fn too_long(max: u16) -> &'static str {
    match max {
        76 => "longer than 76 bytes",
        80 => "longer than 80 bytes",
        200 => "longer than 200 bytes",
        255 => "longer than 255 bytes",
        _ => "too long",
    }
}

impl core::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The checks every field shares: present, at most `max` bytes, and no
/// control character (CR, LF, NUL, ...) that could end a header line.
/// In every session charset a byte below 0x20 is a character of its own,
/// never part of a multibyte one, so this holds before charset validation.
fn check_field(bytes: &[u8], max: usize) -> Result<(), HeaderError> {
    if bytes.is_empty() {
        return Err(HeaderError::Empty);
    }
    if bytes.len() > max {
        return Err(HeaderError::TooLong { max: max as u16 });
    }
    match bytes.iter().position(|&b| b < 0x20 || b == 0x7F) {
        Some(at) => Err(HeaderError::Control(at)),
        None => Ok(()),
    }
}

/// A mailbox address (`local@domain`): 1-80 bytes of printable ASCII with
/// one `@` between a non-empty local part and domain, and none of the bytes
/// that would end it or start another (space, `<>()[],;:"\`).
///
/// ```
/// use atmail_core::header::{Address, HeaderError};
/// assert!(Address::new(b"xiangj@fibocom.com").is_ok());
/// assert_eq!(Address::new(b"a@b\r\nBcc: x@y").unwrap_err(), HeaderError::Control(3));
/// assert_eq!(Address::new(b"nobody").unwrap_err(), HeaderError::MissingAt);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Address<'a>(&'a [u8]);

impl<'a> Address<'a> {
    /// Validates an address.
    pub fn new(bytes: &'a [u8]) -> Result<Self, HeaderError> {
        check_field(bytes, MAX_NAME)?;
        // `matches!` rather than `<[u8]>::contains`, which links core's
        // memchr (400 bytes of firmware flash) for a dozen bytes.
        let bad = |b: u8| {
            b >= 0x80
                || matches!(
                    b,
                    b' ' | b'<'
                        | b'>'
                        | b'('
                        | b')'
                        | b'['
                        | b']'
                        | b','
                        | b';'
                        | b':'
                        | b'"'
                        | b'\\'
                )
        };
        if let Some(at) = bytes.iter().position(|&b| bad(b)) {
            return Err(HeaderError::BadAddressByte(at));
        }
        match memchr::memchr(b'@', bytes) {
            Some(at)
                if at > 0
                    && at + 1 < bytes.len()
                    && memchr::memchr(b'@', index::get(bytes, at + 1..)).is_none() =>
            {
                Ok(Address(bytes))
            }
            _ => Err(HeaderError::MissingAt),
        }
    }

    /// No address: the unused slots of a fixed recipient array, and the
    /// envelope of a QUIT, which names no one.
    pub(crate) const NONE: Address<'static> = Address(b"");

    /// An address validated when it was stored (`debug_assert!`ed):
    /// stored values are parsed once, not on every use.
    pub(crate) fn trusted(bytes: &'a [u8]) -> Self {
        debug_assert!(Address::new(bytes).is_ok(), "validated when stored");
        Address(bytes)
    }

    /// The address bytes.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The domain, after the `@`.
    pub fn domain(&self) -> &'a [u8] {
        let at = memchr::memchr(b'@', self.0).map_or(0, |at| at + 1);
        &self.0[at..]
    }
}

/// Text in a session charset: non-empty, valid in the charset, no control
/// characters, at most `max` bytes. The subject and attachment names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Text<'a> {
    charset: Charset,
    bytes: &'a [u8],
}

impl<'a> Text<'a> {
    /// A subject: up to [`MAX_SUBJECT`] bytes.
    ///
    /// ```
    /// use atmail_core::{charset::Charset, header::{HeaderError, Text}};
    /// assert!(Text::subject(Charset::Gb2312, b"\xc4\xe3\xba\xc3 smtp").is_ok());
    /// assert_eq!(Text::subject(Charset::UsAscii, b"Hi\r\nBcc: x@y").unwrap_err(), HeaderError::Control(2));
    /// ```
    pub fn subject(charset: Charset, bytes: &'a [u8]) -> Result<Self, HeaderError> {
        Self::new(charset, bytes, MAX_SUBJECT)
    }

    /// An attachment name: up to [`MAX_NAME`] bytes.
    pub fn file_name(charset: Charset, bytes: &'a [u8]) -> Result<Self, HeaderError> {
        Self::new(charset, bytes, MAX_NAME)
    }

    fn new(charset: Charset, bytes: &'a [u8], max: usize) -> Result<Self, HeaderError> {
        check_field(bytes, max)?;
        charset
            .validate(bytes)
            .map_err(|e| HeaderError::InvalidCharset(e.offset))?;
        Ok(Text { charset, bytes })
    }

    /// Text validated when it was stored (`debug_assert!`ed).
    pub(crate) fn trusted(charset: Charset, bytes: &'a [u8]) -> Self {
        debug_assert!(
            Text::new(charset, bytes, MAX_SUBJECT).is_ok(),
            "validated when stored"
        );
        Text { charset, bytes }
    }

    /// The bytes, in [`charset`](Self::charset).
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The charset the bytes are in.
    pub const fn charset(&self) -> Charset {
        self.charset
    }
}

/// A printable-ASCII header value chosen by the caller (the date, the
/// Message-ID): 1-76 bytes, no control characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token<'a>(&'a [u8]);

impl<'a> Token<'a> {
    /// Validates a token; `spaces` says whether it may hold spaces.
    ///
    /// ```
    /// use atmail_core::header::Token;
    /// assert!(Token::new(b"Tue, 24 Nov 2026 10:00:00 +0000", true).is_ok());
    /// assert!(Token::new(b"<a b@c>", false).is_err());
    /// ```
    pub fn new(bytes: &'a [u8], spaces: bool) -> Result<Self, HeaderError> {
        check_field(bytes, MAX_LINE - 2)?;
        let bad = |b: u8| b >= 0x80 || (b == b' ' && !spaces);
        match bytes.iter().position(|&b| bad(b)) {
            Some(at) => Err(HeaderError::BadAddressByte(at)),
            None => Ok(Token(bytes)),
        }
    }

    /// A token validated when it was stored (`debug_assert!`ed).
    pub(crate) fn trusted(bytes: &'a [u8]) -> Self {
        debug_assert!(Token::new(bytes, true).is_ok(), "validated when stored");
        Token(bytes)
    }

    /// The bytes.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.0
    }
}

/// A header line being written: tracks the column for folding.
pub struct Line<'o, O: Out + ?Sized> {
    out: &'o mut O,
    column: usize,
}

impl<'o, O: Out + ?Sized> Line<'o, O> {
    /// Starts a header line with `Name:`.
    pub fn start(out: &'o mut O, name: &[u8]) -> Self {
        out.put(name);
        out.put(b":");
        Line {
            out,
            column: name.len() + 1,
        }
    }

    /// Writes raw bytes on the current line.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.out.put(bytes);
        self.column += bytes.len();
    }

    /// Writes `sep` then `token` on this line if it fits in [`MAX_LINE`],
    /// else folds first (CRLF + space; `sep` then becomes that space).
    /// `reserve` more columns are kept free after the token.
    pub fn token(&mut self, sep: &[u8], token: &[u8], reserve: usize) {
        self.before_token(sep, token.len(), reserve);
        self.raw(token);
    }

    /// What [`Line::token`] writes before a token of `len` bytes: `sep`,
    /// or a fold when the token would not fit. The token follows in
    /// [`Line::raw`] pieces.
    fn before_token(&mut self, sep: &[u8], len: usize, reserve: usize) {
        if self.column + sep.len() + len + reserve > MAX_LINE && self.column > 1 {
            self.out.put(b"\r\n ");
            self.column = 1;
        } else {
            self.raw(sep);
        }
    }

    /// Room left on this line, and on a fresh continuation line.
    fn room(&self) -> (usize, usize) {
        (MAX_LINE.saturating_sub(self.column + 1), MAX_LINE - 1)
    }

    /// Ends the line with CRLF.
    pub fn end(self) {
        self.out.put(b"\r\n");
    }
}

/// Writes `Name: a@b, c@d` folded at the commas.
pub fn write_addresses<'a, O: Out + ?Sized>(
    out: &mut O,
    name: &[u8],
    addrs: impl Iterator<Item = Address<'a>>,
) {
    let mut line = Line::start(out, name);
    let mut addrs = addrs.peekable();
    while let Some(addr) = addrs.next() {
        let more = addrs.peek().is_some();
        line.token(b" ", addr.as_bytes(), more as usize);
        if more {
            line.raw(b",");
        }
    }
    line.end();
}

/// Writes `Subject: ...`: readable text folded at spaces when it is plain
/// printable ASCII that needs no encoding, else RFC 2047 encoded-words.
///
/// ```
/// use atmail_core::{charset::Charset, header::{write_subject, Text}, out::FixedBuf};
/// let mut out = FixedBuf::<128>::new();
/// write_subject(&mut out, &Text::subject(Charset::Gb2312, b"\xc4\xe3\xba\xc3 smtp").unwrap());
/// assert_eq!(out.as_bytes(), b"Subject: =?GB2312?B?xOO6wyBzbXRw?=\r\n");
/// ```
pub fn write_subject<O: Out + ?Sized>(out: &mut O, subject: &Text<'_>) {
    let mut line = Line::start(out, b"Subject");
    let text = subject.as_bytes();
    if is_plain(text) {
        for word in text.split(|&b| b == b' ') {
            line.token(b" ", word, 0);
        }
    } else {
        encoded_words(&mut line, subject, b" ", 0);
    }
    line.end();
}

/// Plain text stays readable: printable ASCII, single spaces between
/// words, nothing a reader would take for an encoded-word, and every word
/// short enough to fold.
fn is_plain(text: &[u8]) -> bool {
    let printable = text.iter().all(|&b| (0x20..0x7F).contains(&b));
    let spaced = !text.starts_with(b" ") && !text.ends_with(b" ") && !contains_pair(text, *b"  ");
    let short = text
        .split(|&b| b == b' ')
        .all(|w| w.len() <= MAX_LINE - "Subject: ".len());
    printable && spaced && short && !contains_pair(text, *b"=?")
}

/// Whether `pair` occurs in `text`. A header value is a few hundred bytes
/// at most, so a plain scan does; a substring searcher (`memchr::memmem`)
/// would add 4 KB to a firmware's flash for nothing.
fn contains_pair(text: &[u8], pair: [u8; 2]) -> bool {
    text.windows(2).any(|w| w == pair)
}

/// Writes `text` as encoded-words separated by folding: `=?label?B?...?=`,
/// each at most [`MAX_WORD`] and fitting its line with `reserve` columns
/// spare, whole characters only.
fn encoded_words<O: Out + ?Sized>(
    line: &mut Line<'_, O>,
    text: &Text<'_>,
    sep: &[u8],
    reserve: usize,
) {
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut first = true;
    while start < bytes.len() {
        let (here, fresh) = line.room();
        let here = here.saturating_sub(reserve).min(MAX_WORD);
        let fresh = fresh.saturating_sub(reserve).min(MAX_WORD);
        // Prefer filling the current line; a word that fits only on a fresh
        // line is taken at the fresh-line size.
        let mut end = word_end(text.charset(), bytes, start, here);
        if end == start {
            end = word_end(text.charset(), bytes, start, fresh);
        }
        let word = &bytes[start..end.max(start + 1).min(bytes.len())];
        let sep = if first { sep } else { b" " };
        put_word(line, text.charset(), word, sep, reserve);
        start += word.len();
        first = false;
    }
}

/// The largest `end` such that `bytes[start..end]` is whole characters and
/// encodes into a word of at most `room` characters.
fn word_end(charset: Charset, bytes: &[u8], start: usize, room: usize) -> usize {
    let mut end = start;
    for (at, len) in CharIndices::new(charset, index::get(bytes, start..)) {
        let candidate = start + at + len;
        if word_len(charset, index::get(bytes, start..candidate)) > room {
            break;
        }
        end = candidate;
    }
    end
}

fn word_len(charset: Charset, piece: &[u8]) -> usize {
    "=??B??=".len() + charset.label_of(piece).len() + piece.len().div_ceil(3) * 4
}

fn put_word<O: Out + ?Sized>(
    line: &mut Line<'_, O>,
    charset: Charset,
    piece: &[u8],
    sep: &[u8],
    reserve: usize,
) {
    let label = charset.label_of(piece).as_bytes();
    let len = word_len(charset, piece);
    debug_assert!(
        len <= MAX_WORD,
        "word_end keeps words within RFC 2047's limit"
    );
    // Piece by piece, group by group: a buffer for the word would be 75
    // bytes of stack in the deepest call a firmware makes.
    line.before_token(sep, len, reserve);
    line.raw(b"=?");
    line.raw(label);
    line.raw(b"?B?");
    for group in piece.chunks(3) {
        line.raw(&encode_group(group));
    }
    line.raw(b"?=");
}

/// RFC 2231 `attr-char`: what a parameter value may hold unencoded.
fn is_attr_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#' | b'$' | b'&' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
        )
}

/// Whether a name can go as a plain quoted string on one folded line.
fn is_plain_name(name: &[u8], param: &str) -> bool {
    let fits = " =\"\"".len() + param.len() + name.len() <= MAX_LINE;
    fits && name
        .iter()
        .all(|&b| (0x20..0x7F).contains(&b) && b != b'"' && b != b'\\')
}

/// Writes `Content-Type: <type>; name=...` for an attachment: the name as
/// a quoted string when plain ASCII, else RFC 2047 encoded-words inside the
/// quotes, which older readers (and most current ones) understand.
pub fn write_content_type<O: Out + ?Sized>(out: &mut O, mime_type: &str, name: &Text<'_>) {
    let mut line = Line::start(out, b"Content-Type");
    line.raw(b" ");
    line.raw(mime_type.as_bytes());
    line.raw(b";");
    if mime_type.starts_with("text/") {
        // A text attachment is read in the session charset, as the body is.
        let label = name.charset().body_label();
        line.token(b" ", b"charset=", label.len() + 1);
        line.raw(label.as_bytes());
        line.raw(b";");
    }
    if is_plain_name(name.as_bytes(), "name") {
        line.token(b" ", b"name=\"", name.as_bytes().len() + 1);
        line.raw(name.as_bytes());
        line.raw(b"\"");
    } else {
        line.token(b" ", b"name=\"", 20);
        encoded_words(&mut line, name, b"", 1);
        line.raw(b"\"");
    }
    line.end();
}

/// Writes `Content-Disposition: attachment; filename=...`: a quoted string
/// when plain ASCII, else RFC 2231 `filename*` (with `*0*`, `*1*`, ...
/// continuations when long), whole characters per continuation.
///
/// ```
/// use atmail_core::{charset::Charset, header::{write_disposition, Text}, out::FixedBuf};
/// let mut out = FixedBuf::<128>::new();
/// write_disposition(&mut out, &Text::file_name(Charset::Utf8, "é.txt".as_bytes()).unwrap());
/// assert_eq!(out.as_bytes(), b"Content-Disposition: attachment;\r\n filename*=UTF-8''%C3%A9.txt\r\n");
/// ```
pub fn write_disposition<O: Out + ?Sized>(out: &mut O, name: &Text<'_>) {
    let mut line = Line::start(out, b"Content-Disposition");
    line.raw(b" attachment;");
    let bytes = name.as_bytes();
    if is_plain_name(bytes, "filename") {
        line.token(b" ", b"filename=\"", bytes.len() + 1);
        line.raw(bytes);
        line.raw(b"\"");
        return line.end();
    }
    let label = name.charset().label_of(bytes).as_bytes();
    let single = 1 + "filename*=".len() + label.len() + 2 + percent_len(bytes) <= MAX_LINE;
    let mut start = 0;
    let mut index = 0;
    while start < bytes.len() || index == 0 {
        let end = if single {
            bytes.len()
        } else {
            segment_end(name.charset(), bytes, start, index, label.len())
        };
        line.out.put(b"\r\n ");
        line.column = 1;
        line.raw(b"filename*");
        if !single {
            let mut digits = [0u8; 3];
            line.raw(itoa(index, &mut digits));
            line.raw(b"*");
        }
        line.raw(b"=");
        if index == 0 {
            line.raw(label);
            line.raw(b"''");
        }
        for &b in index::get(bytes, start..end) {
            put_attr_byte(&mut line, b);
        }
        start = end;
        index += 1;
        if start < bytes.len() {
            line.raw(b";");
        }
    }
    line.end();
}

fn percent_len(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .map(|&b| if is_attr_char(b) { 1 } else { 3 })
        .sum()
}

/// End of the continuation segment starting at `start`: whole characters
/// whose percent-encoding fits the line.
fn segment_end(
    charset: Charset,
    bytes: &[u8],
    start: usize,
    index: usize,
    label_len: usize,
) -> usize {
    let head = 1 + "filename*00*=".len() + if index == 0 { label_len + 2 } else { 0 };
    let room = MAX_LINE - head - 1;
    let mut used = 0;
    let mut end = start;
    for (at, len) in CharIndices::new(charset, index::get(bytes, start..)) {
        used += percent_len(index::get(bytes, start + at..start + at + len));
        if used > room {
            break;
        }
        end = start + at + len;
    }
    end.max(start + 1).min(bytes.len())
}

fn put_attr_byte<O: Out + ?Sized>(line: &mut Line<'_, O>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    if is_attr_char(b) {
        line.raw(&[b]);
    } else {
        line.raw(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
    }
}

/// Formats a small number into `buf`.
pub(crate) fn itoa(mut n: usize, buf: &mut [u8; 3]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        *index::get_mut(buf, i) = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 || i == 0 {
            return index::get(buf, i..);
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn subject(cs: Charset, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_subject(&mut out, &Text::subject(cs, bytes).unwrap());
        out
    }

    fn lines_fit(out: &[u8]) {
        assert!(out.ends_with(b"\r\n"));
        for line in out[..out.len() - 2].split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            assert!(
                line.len() <= MAX_LINE,
                "{}",
                std::string::String::from_utf8_lossy(line)
            );
            assert!(!line.contains(&b'\r'));
        }
    }

    #[test]
    fn address_table() {
        let cases: &[(&[u8], Result<(), HeaderError>)] = &[
            (b"a@b.c", Ok(())),
            (b"", Err(HeaderError::Empty)),
            (&[b'a'; 81], Err(HeaderError::TooLong { max: 80 })),
            (b"a@b\rc", Err(HeaderError::Control(3))),
            (b"a\0@b", Err(HeaderError::Control(1))),
            (b"a b@c", Err(HeaderError::BadAddressByte(1))),
            (b"<a@b>", Err(HeaderError::BadAddressByte(0))),
            (b"a@b,c@d", Err(HeaderError::BadAddressByte(3))),
            (b"\xe4@b", Err(HeaderError::BadAddressByte(0))),
            (b"@b", Err(HeaderError::MissingAt)),
            (b"a@", Err(HeaderError::MissingAt)),
            (b"a@b@c", Err(HeaderError::MissingAt)),
        ];
        for (bytes, want) in cases {
            assert_eq!(Address::new(bytes).map(|_| ()), *want, "{:?}", bytes);
        }
    }

    #[test]
    fn plain_subjects_stay_readable_and_fold() {
        assert_eq!(
            subject(Charset::UsAscii, b"Hello world"),
            b"Subject: Hello world\r\n"
        );
        let long = [&b"word"[..]; 30].join(&b' ');
        let out = subject(Charset::UsAscii, &long);
        lines_fit(&out);
        assert!(out.starts_with(b"Subject: word word"));
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 3);
    }

    #[test]
    fn subjects_that_need_encoding() {
        assert_eq!(
            subject(Charset::UsAscii, b"a =?x?= b"),
            b"Subject: =?US-ASCII?B?YSA9P3g/PSBi?=\r\n"
        );
        assert_eq!(
            subject(Charset::UsAscii, b" lead"),
            b"Subject: =?US-ASCII?B?IGxlYWQ=?=\r\n"
        );
        assert_eq!(
            subject(Charset::Gb2312, b"\xd6\xec\xe9\x46"),
            b"Subject: =?GBK?B?1uzpRg==?=\r\n"
        );
        let long = "你好世界😀".repeat(10);
        let out = subject(Charset::Utf8, long.as_bytes());
        lines_fit(&out);
        for word in out
            .split(|&b| b == b' ' || b == b'\n')
            .filter(|w| w.starts_with(b"=?"))
        {
            let word = word.strip_suffix(b"\r").unwrap_or(word);
            assert!(word.len() <= MAX_WORD);
        }
    }

    #[test]
    fn dispositions() {
        let disp = |cs, name: &[u8]| {
            let mut out = Vec::new();
            write_disposition(&mut out, &Text::file_name(cs, name).unwrap());
            out
        };
        assert_eq!(
            disp(Charset::UsAscii, b"eee.wma"),
            b"Content-Disposition: attachment; filename=\"eee.wma\"\r\n"
        );
        let long = disp(Charset::Utf8, "文件".repeat(13).as_bytes());
        lines_fit(&long);
        assert!(long.windows(14).any(|w| w == b"filename*1*=%E"));
        let plain80 = disp(Charset::UsAscii, &[b'n'; 80]);
        lines_fit(&plain80);
    }

    #[test]
    fn itoa_formats() {
        let mut buf = [0u8; 3];
        assert_eq!(itoa(0, &mut buf), b"0");
        assert_eq!(itoa(17, &mut buf), b"17");
    }
}
