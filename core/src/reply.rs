//! SMTP replies (RFC 5321 §4.2), read from server bytes split anyhow.
//!
//! What it does: [`ReplyParser`] takes server bytes in pieces of any size
//! and yields each complete reply as a [`Reply`]: its three-digit code and,
//! for EHLO, the extensions atmail uses (PIPELINING, STARTTLS, SIZE,
//! CHUNKING, BINARYMIME and the AUTH mechanisms: PLAIN, LOGIN, XOAUTH2, OAUTHBEARER, and the names
//! of others a reason may have to cite). Multi-line replies (`250-...` then
//! `250 ...`) are one reply. The start of the last line's text is kept
//! until the next call ([`ReplyParser::text`]): the words of a refusal, or
//! an error challenge, for the reason a failed mail gives.
//!
//! What it does not: keep more than that one line's start, or act on the
//! reply: the SMTP client does.
//!
//! Why it is built this way: a server may send a reply in many TCP
//! segments or several replies in one (PIPELINING), so the parser consumes
//! bytes up to the end of one reply and says how many, leaving the rest for
//! the next call. Its memory is fixed: a line is examined as it completes,
//! and only its first [`LINE_KEEP`] bytes are kept for that; a longer line
//! (RFC 5321 allows 512) is still consumed whole.

use crate::index;
use crate::out::Out;

/// Bytes of a line kept for parsing; the rest of a long line is skipped.
pub const LINE_KEEP: usize = 128;

/// EHLO extensions atmail acts on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extensions {
    /// RFC 2920: commands may be sent in one flight.
    pub pipelining: bool,
    /// RFC 3207: TLS can be started on this connection.
    pub starttls: bool,
    /// RFC 4954: the SASL mechanisms of the `AUTH` keyword.
    pub auth: AuthOffer,
    /// RFC 1870: the largest message the server takes, if it says.
    pub size: Option<u64>,
    /// RFC 3030: the message may go as `BDAT` chunks.
    pub chunking: bool,
    /// RFC 3030: `MAIL FROM:<..> BODY=BINARYMIME` is accepted (with
    /// `BDAT` only; the client checks `chunking` too).
    pub binarymime: bool,
}

/// The SASL mechanisms an EHLO `AUTH` line names, as a set: the four the
/// engine speaks, the common ones it does not (so a reason can name what
/// the server wanted), and one bit for any other name.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthOffer(u16);

/// The names [`AuthOffer`] knows, in bit order.
const AUTH_NAMES: [&str; 10] = [
    "PLAIN",
    "LOGIN",
    "XOAUTH2",
    "OAUTHBEARER",
    "CRAM-MD5",
    "DIGEST-MD5",
    "SCRAM-SHA-1",
    "SCRAM-SHA-256",
    "NTLM",
    "GSSAPI",
];
const AUTH_OTHER: u16 = 1 << 15;

impl AuthOffer {
    /// RFC 4616 PLAIN.
    pub const PLAIN: AuthOffer = AuthOffer(1);
    /// LOGIN.
    pub const LOGIN: AuthOffer = AuthOffer(1 << 1);
    /// XOAUTH2.
    pub const XOAUTH2: AuthOffer = AuthOffer(1 << 2);
    /// RFC 7628 OAUTHBEARER.
    pub const OAUTHBEARER: AuthOffer = AuthOffer(1 << 3);
    /// Nothing offered.
    pub const NONE: AuthOffer = AuthOffer(0);

    /// Adds a mechanism by its name (case-insensitive, RFC 4954).
    pub fn insert(&mut self, name: &[u8]) {
        let bit = AUTH_NAMES
            .iter()
            .position(|known| name.eq_ignore_ascii_case(known.as_bytes()))
            .map_or(AUTH_OTHER, |i| 1 << i);
        self.0 |= bit;
    }

    /// Whether every mechanism of `other` is offered.
    pub const fn contains(self, other: AuthOffer) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the server offers AUTH at all.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The names offered, space-separated, `and others` for names not
    /// known here.
    pub fn write_names(self, out: &mut dyn Out) {
        let mut sep: &[u8] = b"";
        for (i, name) in AUTH_NAMES.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                out.put(sep);
                out.put(name.as_bytes());
                sep = b" ";
            }
        }
        if self.0 & AUTH_OTHER != 0 {
            out.put(if sep.is_empty() {
                b"others"
            } else {
                b" and others"
            });
        }
    }
}

impl core::fmt::Debug for AuthOffer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        crate::out::display(f, |out| self.write_names(out))
    }
}

/// One complete reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code (200-599 in practice; 100-599 accepted).
    pub code: u16,
    /// What the lines of an EHLO reply announce (empty for other replies).
    pub extensions: Extensions,
}

impl Reply {
    /// 2xx.
    pub const fn is_positive(&self) -> bool {
        self.code / 100 == 2
    }
}

/// Why server bytes could not be a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyError {
    /// A line that does not start with three digits and ` `, `-` or its end.
    Malformed,
    /// Lines of one reply with different codes.
    CodeMismatch,
}

/// The reply parser; see the module docs.
///
/// ```
/// use atmail_core::reply::{AuthOffer, ReplyParser};
/// let mut p = ReplyParser::new();
/// let input = b"250-mail.example.com\r\n250-PIPELINING\r\n250 AUTH LOGIN PLAIN\r\n";
/// let (reply, used) = p.feed(&input[..20]).unwrap();
/// assert!(reply.is_none());
/// let (reply, _) = p.feed(&input[used..]).unwrap();
/// let reply = reply.unwrap();
/// assert_eq!(reply.code, 250);
/// assert!(reply.extensions.pipelining);
/// assert!(reply.extensions.auth.contains(AuthOffer::PLAIN));
/// ```
#[derive(Clone, Debug)]
pub struct ReplyParser {
    line: [u8; LINE_KEEP],
    /// Bytes of the current line seen (may exceed `LINE_KEEP`).
    line_len: usize,
    /// Code of the reply's earlier lines, if any.
    code: Option<u16>,
    extensions: Extensions,
    /// The first line of a reply is the greeting/domain, not an extension.
    first_line: bool,
    /// The text of the last reply's last line, as kept: `line[text]`.
    text: (u8, u8),
}

impl Default for ReplyParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplyParser {
    /// A parser at the start of a reply.
    pub const fn new() -> Self {
        ReplyParser {
            line: [0; LINE_KEEP],
            line_len: 0,
            code: None,
            extensions: Extensions::default_const(),
            first_line: true,
            text: (0, 0),
        }
    }

    /// The text of the reply [`feed`](Self::feed) just returned (its last
    /// line after the code, up to [`LINE_KEEP`] bytes of the line; a 334's
    /// base64 challenge, a 535's reason), until the next call to `feed`.
    pub fn text(&self) -> &[u8] {
        let (at, len) = self.text;
        // `keep` stored the text within `line`.
        index::get(index::get(&self.line, at as usize..), ..len as usize)
    }

    /// Feeds server bytes. Returns a reply if one completed, and how many
    /// bytes were consumed: up to the end of that reply, or all of `input`.
    /// Bytes after a completed reply must be fed again. An error means the
    /// server is not speaking SMTP; the connection should be dropped.
    pub fn feed(&mut self, input: &[u8]) -> Result<(Option<Reply>, usize), ReplyError> {
        let mut used = 0;
        while used < input.len() {
            let rest = index::get(input, used..);
            let Some(lf) = memchr::memchr(b'\n', rest) else {
                self.keep(rest);
                return Ok((None, input.len()));
            };
            self.keep(index::get(rest, ..lf));
            used += lf + 1;
            if let Some(reply) = self.end_line()? {
                return Ok((Some(reply), used));
            }
        }
        Ok((None, used))
    }

    fn keep(&mut self, bytes: &[u8]) {
        let room = LINE_KEEP.saturating_sub(self.line_len);
        let n = room.min(bytes.len());
        let line = index::get_mut(&mut self.line, self.line_len.min(LINE_KEEP)..);
        index::copy(index::get_mut(line, ..n), index::get(bytes, ..n));
        self.line_len += bytes.len();
    }

    /// A line ended: check it, note what it says, and finish the reply on
    /// its last line.
    fn end_line(&mut self) -> Result<Option<Reply>, ReplyError> {
        let kept = &self.line[..self.line_len.min(LINE_KEEP)];
        let kept = kept.strip_suffix(b"\r").unwrap_or(kept);
        self.line_len = 0;
        let (code, last, text) = split_line(kept)?;
        if self.code.is_some_and(|c| c != code) {
            self.reset();
            return Err(ReplyError::CodeMismatch);
        }
        self.code = Some(code);
        if !self.first_line {
            note_extension(&mut self.extensions, text);
        }
        self.first_line = false;
        if !last {
            return Ok(None);
        }
        // `text` is a suffix of the kept line, which stays in `line`
        // until the next byte is fed.
        self.text = ((kept.len() - text.len()) as u8, text.len() as u8);
        let reply = Reply {
            code,
            extensions: self.extensions,
        };
        self.reset();
        Ok(Some(reply))
    }

    fn reset(&mut self) {
        self.code = None;
        self.extensions = Extensions::default();
        self.first_line = true;
    }
}

impl Extensions {
    const fn default_const() -> Self {
        Extensions {
            pipelining: false,
            starttls: false,
            auth: AuthOffer::NONE,
            size: None,
            chunking: false,
            binarymime: false,
        }
    }
}

/// `250-text` -> (250, false, "text"); `250 text` or `250` -> last line.
fn split_line(line: &[u8]) -> Result<(u16, bool, &[u8]), ReplyError> {
    let digits = line
        .get(..3)
        .filter(|d| d.iter().all(u8::is_ascii_digit))
        .ok_or(ReplyError::Malformed)?;
    let code = digits.iter().fold(0u16, |n, &d| n * 10 + (d - b'0') as u16);
    if !(100..600).contains(&code) {
        return Err(ReplyError::Malformed);
    }
    match line.get(3) {
        None => Ok((code, true, b"")),
        Some(b' ') => Ok((code, true, index::get(line, 4..))),
        Some(b'-') => Ok((code, false, index::get(line, 4..))),
        Some(_) => Err(ReplyError::Malformed),
    }
}

/// Records an EHLO keyword line (case-insensitive keywords). The keyword
/// is the line's first word, whole: RFC 5321 4.1.1.1 makes it letters,
/// digits and `-`, ended by the line's end or a space before its
/// parameters, so `BINARYMIME=yes` or `CHUNKINGS` is no keyword atmail
/// knows.
fn note_extension(ext: &mut Extensions, text: &[u8]) {
    let mut words = text
        .split(|&b| b == b' ' || b == b'=')
        .filter(|w| !w.is_empty());
    let Some(keyword) = words.next() else { return };
    // Opening the line (the same memory, not only the same bytes), then
    // the end or a space.
    let whole = core::ptr::eq(keyword.as_ptr(), text.as_ptr())
        && text.get(keyword.len()).is_none_or(|&b| b == b' ');
    // The one exception: `AUTH=LOGIN PLAIN`, the pre-RFC 2554 form older
    // servers still send beside `AUTH LOGIN PLAIN`.
    if !whole && !keyword.eq_ignore_ascii_case(b"AUTH") {
        return;
    }
    if keyword.eq_ignore_ascii_case(b"PIPELINING") {
        ext.pipelining = true;
    } else if keyword.eq_ignore_ascii_case(b"STARTTLS") {
        ext.starttls = true;
    } else if keyword.eq_ignore_ascii_case(b"AUTH") {
        for mechanism in words {
            ext.auth.insert(mechanism);
        }
    } else if keyword.eq_ignore_ascii_case(b"SIZE") {
        ext.size = words.next().and_then(parse_u64).filter(|&n| n > 0);
    } else if keyword.eq_ignore_ascii_case(b"CHUNKING") {
        ext.chunking = true;
    } else if keyword.eq_ignore_ascii_case(b"BINARYMIME") {
        ext.binarymime = true;
    }
}

fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add((d - b'0') as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    /// Feeds `input` in pieces of `cut` bytes; returns every reply, up to
    /// and including the first error (after which a client hangs up).
    fn replies(input: &[u8], cut: usize) -> Vec<Result<Reply, ReplyError>> {
        let mut p = ReplyParser::new();
        let mut out = Vec::new();
        for piece in input.chunks(cut.max(1)) {
            let mut rest = piece;
            while !rest.is_empty() {
                match p.feed(rest) {
                    Ok((reply, used)) => {
                        out.extend(reply.map(Ok));
                        rest = &rest[used..];
                    }
                    Err(e) => {
                        out.push(Err(e));
                        return out;
                    }
                }
            }
        }
        out
    }

    const EHLO: &[u8] = b"250-smtp.example.com Hello\r\n250-SIZE 35882577\r\n250-8BITMIME\r\n250-STARTTLS\r\n250-auth=LOGIN\r\n250-AUTH PLAIN XOAUTH2\r\n250-pipelining\r\n250 SMTPUTF8\r\n";

    #[test]
    fn the_last_lines_text_is_kept_until_the_next_feed() {
        let mut p = ReplyParser::new();
        let input = b"334 eyJzdGF0dXMiOiI0MDEifQ==\r\n535-5.7.8 first\r\n535 5.7.8 Authentication failed\r\n";
        let (reply, used) = p.feed(input).unwrap();
        assert_eq!(reply.unwrap().code, 334);
        assert_eq!(p.text(), b"eyJzdGF0dXMiOiI0MDEifQ==");
        let (reply, _) = p.feed(&input[used..]).unwrap();
        assert_eq!(reply.unwrap().code, 535);
        assert_eq!(p.text(), b"5.7.8 Authentication failed");
        let long = [b'x'; 300];
        let mut line = b"535 ".to_vec();
        line.extend_from_slice(&long);
        line.extend_from_slice(b"\r\n");
        let (reply, _) = p.feed(&line).unwrap();
        assert_eq!(reply.unwrap().code, 535);
        assert_eq!(p.text(), &long[..LINE_KEEP - 4]);
    }

    #[test]
    fn replies_table() {
        let ext = Extensions {
            pipelining: true,
            starttls: true,
            auth: AuthOffer(0b111),
            size: Some(35882577),
            chunking: false,
            binarymime: false,
        };
        let cases: &[(&str, &[u8], &[Result<Reply, ReplyError>])] = &[
            (
                "greeting",
                b"220 mx ESMTP\r\n",
                &[Ok(Reply {
                    code: 220,
                    extensions: Extensions::default(),
                })],
            ),
            (
                "bare code",
                b"354\r\n",
                &[Ok(Reply {
                    code: 354,
                    extensions: Extensions::default(),
                })],
            ),
            (
                "lf only",
                b"250 ok\n",
                &[Ok(Reply {
                    code: 250,
                    extensions: Extensions::default(),
                })],
            ),
            (
                "ehlo",
                EHLO,
                &[Ok(Reply {
                    code: 250,
                    extensions: ext,
                })],
            ),
            (
                "pipelined",
                b"250 ok\r\n550 no\r\n354 go\r\n",
                &[
                    Ok(Reply {
                        code: 250,
                        extensions: Extensions::default(),
                    }),
                    Ok(Reply {
                        code: 550,
                        extensions: Extensions::default(),
                    }),
                    Ok(Reply {
                        code: 354,
                        extensions: Extensions::default(),
                    }),
                ],
            ),
            ("malformed", b"hello\r\n", &[Err(ReplyError::Malformed)]),
            (
                "code mismatch",
                b"250-a\r\n251 b\r\n",
                &[Err(ReplyError::CodeMismatch)],
            ),
            ("bad separator", b"250+x\r\n", &[Err(ReplyError::Malformed)]),
            (
                "code out of range",
                b"999 x\r\n",
                &[Err(ReplyError::Malformed)],
            ),
        ];
        for (name, input, want) in cases {
            for cut in [usize::MAX, 1, 2, 7] {
                assert_eq!(replies(input, cut), *want, "{name}, cut {cut}");
            }
        }
    }

    /// CHUNKING and BINARYMIME in any letter case, on any line, with
    /// parameters (which RFC 3030 does not define, so they are ignored);
    /// a keyword that only begins or ends like one is not it.
    #[test]
    fn chunking_and_binarymime_in_any_case() {
        let cases: &[(&str, &[u8], bool, bool)] = &[
            (
                "office365",
                b"250-SN4PR0501CA0001.outlook.office365.com Hello\r\n250-SIZE 157286400\r\n250-PIPELINING\r\n250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n250-STARTTLS\r\n250-8BITMIME\r\n250-BINARYMIME\r\n250-CHUNKING\r\n250 SMTPUTF8\r\n",
                true,
                true,
            ),
            ("lower case", b"250-mx\r\n250-chunking\r\n250 binarymime\r\n", true, true),
            ("mixed case", b"250-mx\r\n250-ChUnKiNg\r\n250 BinaryMime\r\n", true, true),
            ("chunking alone (postfix)", b"250-mx\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 8BITMIME\r\n", true, false),
            ("binarymime alone", b"250-mx\r\n250 BINARYMIME\r\n", false, true),
            ("on the last line", b"250-mx\r\n250 CHUNKING\r\n", true, false),
            ("with parameters", b"250-mx\r\n250-CHUNKING 1000\r\n250 BINARYMIME yes x\r\n", true, true),
            ("a keyword then `=` is another word", b"250-mx\r\n250-CHUNKING=1\r\n250 BINARYMIME=yes\r\n", false, false),
            ("a space before the keyword", b"250-mx\r\n250- CHUNKING\r\n250  BINARYMIME\r\n", false, false),
            ("`=` after a space is a parameter", b"250-mx\r\n250-CHUNKING =1\r\n250 BINARYMIME x=yes\r\n", true, true),
            ("not the keyword", b"250-mx\r\n250-CHUNKINGS\r\n250-XCHUNKING\r\n250-BINARY\r\n250 BINARYMIME8\r\n", false, false),
            ("only as a parameter", b"250-mx\r\n250 AUTH CHUNKING BINARYMIME\r\n", false, false),
            ("in the greeting line", b"250-CHUNKING BINARYMIME\r\n250 8BITMIME\r\n", false, false),
            ("not an EHLO reply line", b"220 CHUNKING\r\n", false, false),
        ];
        for &(name, input, chunking, binarymime) in cases {
            for cut in [usize::MAX, 1, 3] {
                let got = replies(input, cut);
                let ext = got[0].unwrap().extensions;
                assert_eq!(
                    (ext.chunking, ext.binarymime),
                    (chunking, binarymime),
                    "{name}, cut {cut}"
                );
            }
        }
        // Nothing carries over from one reply to the next.
        let got = replies(b"250-mx\r\n250 CHUNKING\r\n250 ok\r\n", 1);
        assert!(got[0].unwrap().extensions.chunking);
        assert!(!got[1].unwrap().extensions.chunking);
    }

    #[test]
    fn long_lines_are_consumed_whole() {
        let mut input = b"250-".to_vec();
        input.extend(core::iter::repeat_n(b'x', 2000));
        input.extend_from_slice(b"\r\n250 PIPELINING\r\n");
        let got = replies(&input, 100);
        assert_eq!(got.len(), 1);
        assert!(got[0].unwrap().extensions.pipelining);
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_replies(cut in 1usize..40, extra in proptest::collection::vec(any::<u8>(), 0..60)) {
            let mut input = EHLO.to_vec();
            input.extend_from_slice(b"221 bye\r\n");
            input.extend_from_slice(&extra);
            prop_assert_eq!(replies(&input, cut), replies(&input, usize::MAX));
        }
    }
}
