//! The whole message, written incrementally: RFC 5322 headers, then a
//! `multipart/mixed` body with one text part and one part per attachment.
//!
//! What it does: [`MessageWriter`] writes, in order, the header block
//! ([`MessageWriter::head`]), the text body ([`MessageWriter::body`],
//! optional, streamed through base64 and checked against the charset), each
//! attachment ([`MessageWriter::attachment`], streamed), and the closing
//! boundary ([`MessageWriter::finish`]). Every call writes into the caller's
//! buffer and stops when it is full.
//!
//! Two encodings, chosen before the header block ([`Encoding`]): base64
//! parts (for `DATA`), or binary parts (RFC 3030 BINARYMIME, for `BDAT`):
//! every part `Content-Transfer-Encoding: binary`, an attachment's bytes
//! exactly as given, the text body in canonical CRLF form. A binary part
//! can hold anything, so its bytes are scanned as they stream for the
//! boundary delimiter, across call edges, and a collision is an error
//! ([`MessageError::BoundaryInPart`]) before the message can end.
//!
//! What it does not: dot-stuff or add SMTP's end-of-data (in base64 mode
//! no line of the output can start with `.`: headers start with a name or
//! a fold space, boundaries with `-`, base64 lines with its alphabet; binary
//! parts may hold any line, which is why they go by `BDAT` only, where
//! nothing is stuffed), pick the date or Message-ID (the caller's clock and
//! entropy), or keep the header values (they are borrowed on each call).
//!
//! Why it is built this way: the fixed pieces (header block, part headers)
//! are at most a few KiB, and firmware cannot spare a buffer for them. So
//! they are generated on demand and *replayed*: a call regenerates the
//! piece and skips the bytes earlier calls already wrote. The only state is
//! one counter, and the output is identical for every `dst` size. The
//! boundary contains `=_`, which base64 cannot produce, so no base64 part
//! needs scanning for it; a binary part does, and the scan keeps one count
//! between calls (how much of the delimiter the last bytes matched).

use crate::charset::{Charset, Validator};
use crate::content_type;
use crate::header::{self, Address, HeaderError, Line, Text, Token};
use crate::index;
use crate::line_breaks::{Encode, LineBreaks, Verbatim};
use crate::mime_base64::MimeBase64Encoder;
use crate::out::Out;
use crate::CoderResult;

/// Recipients a mail may have (the spec's 20).
pub const MAX_RECIPIENTS: usize = 20;
/// Attachments a mail may have (the spec's 20).
pub const MAX_ATTACHMENTS: usize = 20;

/// How a recipient receives the mail (`+GTSMTPDST` type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RecipientKind {
    /// 1: in `To:`.
    To = 1,
    /// 2: in `Cc:`.
    Cc = 2,
    /// 3: in the envelope only, never in a header.
    Bcc = 3,
}

/// One recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recipient<'a> {
    /// How it receives the mail.
    pub kind: RecipientKind,
    /// The address.
    pub address: Address<'a>,
}

/// A mail's recipients, read by index: a slice, or storage of the caller's
/// own (the session's configuration), which would otherwise be copied into
/// a 20-entry array on a firmware stack of 1 KiB for every header block
/// and SMTP flight.
pub trait Recipients {
    /// How many.
    fn count(&self) -> usize;
    /// The `i`th, in order.
    fn recipient(&self, i: usize) -> Option<Recipient<'_>>;
}

/// A slice, through a reference to it (`&&list[..]`): a trait object is
/// made from a sized value.
impl Recipients for &[Recipient<'_>] {
    fn count(&self) -> usize {
        self.len()
    }

    fn recipient(&self, i: usize) -> Option<Recipient<'_>> {
        self.get(i).copied()
    }
}

impl<const N: usize> Recipients for [Recipient<'_>; N] {
    fn count(&self) -> usize {
        N
    }

    fn recipient(&self, i: usize) -> Option<Recipient<'_>> {
        self.get(i).copied()
    }
}

#[cfg(any(feature = "std", test))]
impl Recipients for std::vec::Vec<Recipient<'_>> {
    fn count(&self) -> usize {
        self.len()
    }

    fn recipient(&self, i: usize) -> Option<Recipient<'_>> {
        self.get(i).copied()
    }
}

/// As a list of recipients: the storage behind them is not the point
/// (and Debug of a whole configuration would cost firmware flash).
impl core::fmt::Debug for dyn Recipients + '_ {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl dyn Recipients + '_ {
    /// All of them, in order.
    pub fn iter(&self) -> impl Iterator<Item = Recipient<'_>> + '_ {
        (0..self.count()).filter_map(move |i| self.recipient(i))
    }
}

/// A Message-ID: `<local@domain>`, printable ASCII without spaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageId<'a>(Token<'a>);

impl<'a> MessageId<'a> {
    /// Validates a Message-ID, angle brackets included.
    ///
    /// ```
    /// use atmail_core::message::MessageId;
    /// assert!(MessageId::new(b"<1.2@example.com>").is_ok());
    /// assert!(MessageId::new(b"1.2@example.com").is_err());
    /// ```
    pub fn new(bytes: &'a [u8]) -> Result<Self, HeaderError> {
        let token = Token::new(bytes, false)?;
        let inner = bytes
            .strip_prefix(b"<")
            .and_then(|b| b.strip_suffix(b">"))
            .ok_or(HeaderError::MissingAt)?;
        let at = memchr::memchr(b'@', inner).ok_or(HeaderError::MissingAt)?;
        if at == 0 || at + 1 == inner.len() || inner.iter().any(|&b| b == b'<' || b == b'>') {
            return Err(HeaderError::MissingAt);
        }
        Ok(MessageId(token))
    }

    /// A Message-ID validated when it was stored (`debug_assert!`ed).
    pub(crate) fn trusted(bytes: &'a [u8]) -> Self {
        debug_assert!(MessageId::new(bytes).is_ok(), "validated when stored");
        MessageId(Token::trusted(bytes))
    }

    /// The bytes, brackets included.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.0.as_bytes()
    }
}

/// What the header block says. All fields are validated types.
#[derive(Clone, Copy, Debug)]
pub struct MessageHead<'a> {
    /// `From:` (and, for SMTP, the envelope sender).
    pub from: Address<'a>,
    /// 1 to [`MAX_RECIPIENTS`] recipients; Bcc ones appear in no header.
    pub recipients: &'a dyn Recipients,
    /// `Subject:`, if any.
    pub subject: Option<Text<'a>>,
    /// `Date:`, an RFC 5322 date-time from the caller's clock.
    pub date: Token<'a>,
    /// `Message-ID:`.
    pub message_id: MessageId<'a>,
}

/// A `multipart/mixed` boundary: `=_atmail_` and 16 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Boundary([u8; 25]);

impl Boundary {
    /// A boundary derived from `seed` (the Message-ID makes it unique per
    /// mail and reproducible for the same input).
    ///
    /// ```
    /// use atmail_core::message::Boundary;
    /// let b = Boundary::from_seed(b"<1@x>");
    /// assert!(b.as_bytes().starts_with(b"=_atmail_"));
    /// assert_eq!(b, Boundary::from_seed(b"<1@x>"));
    /// ```
    pub fn from_seed(seed: &[u8]) -> Self {
        // FNV-1a: a stable, dependency-free hash; uniqueness comes from the seed.
        let hash = seed.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        let mut out = *b"=_atmail_0000000000000000";
        for (i, slot) in out[9..].iter_mut().enumerate() {
            *slot = b"0123456789abcdef"[(hash >> (60 - 4 * i) & 15) as usize];
        }
        Boundary(out)
    }

    /// The boundary text.
    pub const fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// How the parts' bytes are written (chosen before the header block).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Encoding {
    /// `Content-Transfer-Encoding: base64`: 7-bit lines, for `DATA`.
    #[default]
    Base64,
    /// `Content-Transfer-Encoding: binary` (RFC 3030 BINARYMIME): the
    /// attachments' bytes as given, the text canonical; only for `BDAT`
    /// with `BODY=BINARYMIME` (lines are not dot-stuffed).
    Binary,
}

impl Encoding {
    /// The `Content-Transfer-Encoding` value.
    pub const fn label(self) -> &'static str {
        match self {
            Encoding::Base64 => "base64",
            Encoding::Binary => "binary",
        }
    }
}

/// Why a message call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageError {
    /// Calls out of order: head, body (once), attachments, finish.
    OutOfOrder,
    /// No recipient, or more than [`MAX_RECIPIENTS`].
    Recipients,
    /// More than [`MAX_ATTACHMENTS`].
    TooManyAttachments,
    /// The body is not valid in the charset; the offset in the body.
    InvalidBody(u64),
    /// A binary part holds the boundary delimiter (`--` and the boundary
    /// at the start of a line): the message cannot be sent as it is.
    BoundaryInPart,
}

impl MessageError {
    /// A short description.
    pub const fn as_str(self) -> &'static str {
        match self {
            MessageError::OutOfOrder => "message parts written out of order",
            MessageError::Recipients => "a mail needs 1 to 20 recipients",
            MessageError::TooManyAttachments => "a mail may have at most 20 attachments",
            MessageError::InvalidBody(_) => "body bytes not valid in the charset",
            MessageError::BoundaryInPart => "a part holds the MIME boundary",
        }
    }
}

impl core::fmt::Display for MessageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// The header block is (being) written.
    Head,
    /// Headers done; no part started yet.
    BeforeBody,
    /// Streaming the text body.
    Body,
    /// A part ended; `empty` if its section had no bytes.
    BetweenParts {
        empty: bool,
    },
    /// Streaming an attachment.
    Attachment,
    Done,
    /// A binary part held the boundary: the message cannot end.
    Failed,
}

/// The piece a call writes before its section.
#[derive(Clone, Copy)]
enum Next<'n> {
    Body,
    Attachment(&'n Text<'n>),
    Close,
}

/// Writes one message; see the module docs for the call order.
///
/// ```
/// use atmail_core::{charset::Charset, header::{Address, Token}, CoderResult};
/// use atmail_core::message::*;
/// let to = [Recipient { kind: RecipientKind::To, address: Address::new(b"b@example.com").unwrap() }];
/// let head = MessageHead {
///     from: Address::new(b"a@example.com").unwrap(),
///     recipients: &to,
///     subject: None,
///     date: Token::new(b"Tue, 24 Nov 2026 10:00:00 +0000", true).unwrap(),
///     message_id: MessageId::new(b"<1@example.com>").unwrap(),
/// };
/// let mut w = MessageWriter::new(Charset::Utf8, Boundary::from_seed(b"<1@example.com>"));
/// let mut buf = [0u8; 1024];
/// let (r, n1) = w.head(&head, &mut buf).unwrap();
/// assert_eq!(r, CoderResult::InputEmpty);
/// let (_, _, n2) = w.body(b"hi", &mut buf[n1..], true).unwrap();
/// let (_, n3) = w.finish(&mut buf[n1 + n2..]).unwrap();
/// let text = core::str::from_utf8(&buf[..n1 + n2 + n3]).unwrap();
/// assert!(text.contains("\r\naGk=\r\n--=_atmail_"));
/// ```
#[derive(Debug)]
pub struct MessageWriter {
    charset: Charset,
    boundary: Boundary,
    encoding: Encoding,
    /// The boundary scan of the binary part being written.
    scan: DelimiterScan,
    step: Step,
    /// Bytes of the current fixed piece already written by earlier calls.
    replayed: usize,
    encoder: MimeBase64Encoder,
    validator: Option<Validator>,
    /// The text body's line breaks, made CRLF.
    line_breaks: LineBreaks,
    /// Input bytes of the current section so far.
    section_len: u64,
    attachments: usize,
}

impl MessageWriter {
    /// A writer for a mail whose text is in `charset`, with base64 parts.
    pub fn new(charset: Charset, boundary: Boundary) -> Self {
        Self::with_encoding(charset, boundary, Encoding::Base64)
    }

    /// A writer for a mail whose text is in `charset`, with `encoding`'s
    /// parts.
    pub fn with_encoding(charset: Charset, boundary: Boundary, encoding: Encoding) -> Self {
        MessageWriter {
            charset,
            boundary,
            encoding,
            scan: DelimiterScan::new(),
            step: Step::Head,
            replayed: 0,
            encoder: MimeBase64Encoder::new(),
            validator: None,
            line_breaks: LineBreaks::new(),
            section_len: 0,
            attachments: 0,
        }
    }

    /// The charset of the mail's text.
    pub fn charset(&self) -> Charset {
        self.charset
    }

    /// How the parts are written.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Chooses the encoding (the transfer is known once the server's EHLO
    /// is); only before the first byte of the header block, else
    /// [`MessageError::OutOfOrder`] and nothing changes.
    pub fn set_encoding(&mut self, encoding: Encoding) -> Result<(), MessageError> {
        if self.step != Step::Head || self.replayed != 0 {
            return Err(MessageError::OutOfOrder);
        }
        self.encoding = encoding;
        Ok(())
    }

    /// Whether the closing boundary has been written.
    pub fn is_done(&self) -> bool {
        self.step == Step::Done
    }

    /// Writes the header block; call again with more room until it returns
    /// `InputEmpty`, passing the same `head`. Returns bytes written.
    pub fn head(
        &mut self,
        head: &MessageHead<'_>,
        dst: &mut [u8],
    ) -> Result<(CoderResult, usize), MessageError> {
        if self.step != Step::Head {
            return Err(MessageError::OutOfOrder);
        }
        if !(1..=MAX_RECIPIENTS).contains(&head.recipients.count()) {
            return Err(MessageError::Recipients);
        }
        let (boundary, encoding) = (self.boundary, self.encoding);
        let (done, written) = self.replay(dst, |out| write_head(out, head, &boundary, encoding));
        if done {
            self.step = Step::BeforeBody;
        }
        Ok((result(done), written))
    }

    /// Streams the text body, as [`MimeBase64Encoder::encode`] does; `last`
    /// with the final chunk. The body may be written once, before any
    /// attachment. Returns `(result, read, written)`.
    pub fn body(
        &mut self,
        src: &[u8],
        dst: &mut [u8],
        last: bool,
    ) -> Result<(CoderResult, usize, usize), MessageError> {
        match self.step {
            Step::BeforeBody => {}
            Step::Body => return self.section(src, dst, last),
            _ => return Err(MessageError::OutOfOrder),
        }
        let (done, written) = self.preamble(dst, Next::Body);
        if !done {
            return Ok((CoderResult::OutputFull, 0, written));
        }
        self.start_section(Step::Body);
        let (r, read, w) = self.section(src, index::get_mut(dst, written..), last)?;
        Ok((r, read, written + w))
    }

    /// Streams one attachment; pass the same `name` on every call for it,
    /// `last` with its final chunk. Returns `(result, read, written)`.
    pub fn attachment(
        &mut self,
        name: &Text<'_>,
        src: &[u8],
        dst: &mut [u8],
        last: bool,
    ) -> Result<(CoderResult, usize, usize), MessageError> {
        match self.step {
            Step::BeforeBody | Step::BetweenParts { .. } => {}
            Step::Attachment => return self.section(src, dst, last),
            _ => return Err(MessageError::OutOfOrder),
        }
        if self.attachments == MAX_ATTACHMENTS {
            return Err(MessageError::TooManyAttachments);
        }
        let (done, written) = self.preamble(dst, Next::Attachment(name));
        if !done {
            return Ok((CoderResult::OutputFull, 0, written));
        }
        self.attachments += 1;
        self.start_section(Step::Attachment);
        let (r, read, w) = self.section(src, index::get_mut(dst, written..), last)?;
        Ok((r, read, written + w))
    }

    /// The most payload bytes the part being written surely takes whole
    /// (with `last` false) into `room` bytes of output; 0 before its
    /// header is written (a call with no input writes it).
    pub fn input_fits(&self, room: usize) -> usize {
        match (self.step, self.encoding) {
            (Step::Body, Encoding::Base64) => self.line_breaks.input_fits(&self.encoder, room),
            (Step::Body, Encoding::Binary) => self.line_breaks.input_fits(&Verbatim, room),
            (Step::Attachment, Encoding::Base64) => self.encoder.input_fits(room),
            (Step::Attachment, Encoding::Binary) => room,
            _ => 0,
        }
    }

    /// Writes the closing boundary (and an empty text part if there was no
    /// body). Returns bytes written; `InputEmpty` when the message is complete.
    pub fn finish(&mut self, dst: &mut [u8]) -> Result<(CoderResult, usize), MessageError> {
        match self.step {
            Step::BeforeBody | Step::BetweenParts { .. } => {}
            Step::Done => return Ok((CoderResult::InputEmpty, 0)),
            _ => return Err(MessageError::OutOfOrder),
        }
        let (done, written) = self.preamble(dst, Next::Close);
        if done {
            self.step = Step::Done;
        }
        Ok((result(done), written))
    }

    fn start_section(&mut self, step: Step) {
        self.step = step;
        self.encoder = MimeBase64Encoder::new();
        self.line_breaks = LineBreaks::new();
        self.section_len = 0;
        self.scan = DelimiterScan::new();
        self.validator = (step == Step::Body).then(|| Validator::new(self.charset));
    }

    fn section(
        &mut self,
        src: &[u8],
        dst: &mut [u8],
        last: bool,
    ) -> Result<(CoderResult, usize, usize), MessageError> {
        let (r, read, written) = match (self.step, self.encoding) {
            // The text in canonical form (RFC 2045 6.8): line breaks CRLF.
            (Step::Body, Encoding::Base64) => {
                self.line_breaks.encode(&mut self.encoder, src, dst, last)
            }
            (Step::Body, Encoding::Binary) => {
                self.line_breaks.encode(&mut Verbatim, src, dst, last)
            }
            (_, Encoding::Base64) => self.encoder.encode(src, dst, last),
            (_, Encoding::Binary) => Verbatim.encode(src, dst, last),
        };
        // Base64 cannot hold the boundary (`=_`); binary bytes are what the
        // reader will split on, so they are checked as they go out.
        if self.encoding == Encoding::Binary
            && self.scan.feed(&self.boundary, index::get(dst, ..written))
        {
            self.step = Step::Failed;
            return Err(MessageError::BoundaryInPart);
        }
        if let Some(v) = &mut self.validator {
            let done = last && r == CoderResult::InputEmpty;
            v.feed(index::get(src, ..read), done)
                .map_err(|e| MessageError::InvalidBody(e.offset as u64))?;
        }
        self.section_len += read as u64;
        if last && r == CoderResult::InputEmpty {
            self.step = Step::BetweenParts {
                empty: self.section_len == 0,
            };
        }
        Ok((r, read, written))
    }

    /// Writes what goes before the next section: a text part if none was
    /// written, the CRLF an empty section owes its delimiter, and the part
    /// header or the closing delimiter.
    fn preamble(&mut self, dst: &mut [u8], next: Next<'_>) -> (bool, usize) {
        let (step, charset, boundary, encoding) =
            (self.step, self.charset, self.boundary, self.encoding);
        self.replay(dst, |out| {
            let no_body = step == Step::BeforeBody && !matches!(next, Next::Body);
            if no_body {
                write_body_header(out, charset, &boundary, encoding);
            }
            // The CRLF before a delimiter is the delimiter's (RFC 2046
            // 5.1.1): a base64 section ends with one of its own lines'
            // CRLF, an empty or binary one does not.
            let owed = match step {
                Step::BetweenParts { empty } => empty || encoding == Encoding::Binary,
                _ => no_body,
            };
            if owed {
                out.put(b"\r\n");
            }
            match next {
                Next::Body => write_body_header(out, charset, &boundary, encoding),
                Next::Attachment(name) => write_attachment_header(out, name, &boundary, encoding),
                Next::Close => {
                    out.put(b"--");
                    out.put(boundary.as_bytes());
                    out.put(b"--\r\n");
                }
            }
        })
    }

    /// Regenerates a fixed piece, writing only the bytes past those earlier
    /// calls wrote. Returns whether the piece is complete, and bytes written.
    fn replay(&mut self, dst: &mut [u8], piece: impl FnOnce(&mut dyn Out)) -> (bool, usize) {
        let (done, written) = crate::out::replay(self.replayed, dst, piece);
        self.replayed = if done { 0 } else { self.replayed + written };
        (done, written)
    }
}

fn result(done: bool) -> CoderResult {
    if done {
        CoderResult::InputEmpty
    } else {
        CoderResult::OutputFull
    }
}

fn write_head<O: Out + ?Sized>(
    out: &mut O,
    head: &MessageHead<'_>,
    boundary: &Boundary,
    encoding: Encoding,
) {
    let mut line = Line::start(out, b"Date");
    line.raw(b" ");
    line.raw(head.date.as_bytes());
    line.end();
    header::write_addresses(out, b"From", core::iter::once(head.from));
    for (name, kind) in [(&b"To"[..], RecipientKind::To), (b"Cc", RecipientKind::Cc)] {
        let mut of_kind = head
            .recipients
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.address)
            .peekable();
        if of_kind.peek().is_some() {
            header::write_addresses(out, name, of_kind);
        }
    }
    if let Some(subject) = &head.subject {
        header::write_subject(out, subject);
    }
    let mut line = Line::start(out, b"Message-ID");
    line.raw(b" ");
    line.raw(head.message_id.as_bytes());
    line.end();
    out.put(b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed;\r\n boundary=\"");
    out.put(boundary.as_bytes());
    out.put(b"\"\r\n");
    if encoding == Encoding::Binary {
        // A multipart is labelled with the widest encoding of its parts
        // (RFC 2045 6.4); base64 parts leave it the default 7bit.
        out.put(b"Content-Transfer-Encoding: binary\r\n");
    }
    out.put(b"\r\n");
}

fn write_delimiter<O: Out + ?Sized>(out: &mut O, boundary: &Boundary) {
    out.put(b"--");
    out.put(boundary.as_bytes());
    out.put(b"\r\n");
}

fn write_body_header<O: Out + ?Sized>(
    out: &mut O,
    charset: Charset,
    boundary: &Boundary,
    encoding: Encoding,
) {
    write_delimiter(out, boundary);
    out.put(b"Content-Type: text/plain; charset=");
    out.put(charset.body_label().as_bytes());
    out.put(b"\r\n");
    write_transfer_encoding(out, encoding);
}

fn write_attachment_header<O: Out + ?Sized>(
    out: &mut O,
    name: &Text<'_>,
    boundary: &Boundary,
    encoding: Encoding,
) {
    write_delimiter(out, boundary);
    header::write_content_type(out, content_type::for_name(name.as_bytes()), name);
    header::write_disposition(out, name);
    write_transfer_encoding(out, encoding);
}

/// The part header's last line and the blank line after it.
fn write_transfer_encoding<O: Out + ?Sized>(out: &mut O, encoding: Encoding) {
    out.put(b"Content-Transfer-Encoding: ");
    out.put(encoding.label().as_bytes());
    out.put(b"\r\n\r\n");
}

/// The streaming scan of a binary part for its boundary delimiter: `--`
/// and the boundary at the start of a line. RFC 2046's delimiter is CRLF
/// `--boundary`; a bare CR or LF before it counts here too, because lenient
/// readers (Python's `email`, many clients) split lines at either, and the
/// part's very start counts, because the blank line of its header ends in
/// CRLF. One count carries across calls, so where the caller's buffers
/// split the bytes does not change the verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DelimiterScan {
    /// Bytes of `--<boundary>` matched so far, at a line start.
    matched: u8,
    /// The last byte ended a line (or the part has just begun).
    line_start: bool,
}

impl DelimiterScan {
    const fn new() -> Self {
        DelimiterScan {
            matched: 0,
            line_start: true,
        }
    }

    /// The byte of `--<boundary>` at `i`.
    fn expected(boundary: &Boundary, i: usize) -> u8 {
        match i {
            0 | 1 => b'-',
            _ => *index::get(boundary.as_bytes(), i - 2),
        }
    }

    /// Scans the part's next bytes; true when the delimiter is complete.
    fn feed(&mut self, boundary: &Boundary, bytes: &[u8]) -> bool {
        let full = boundary.as_bytes().len() + 2;
        let mut i = 0;
        while i < bytes.len() {
            if self.matched == 0 && !self.line_start {
                // Nothing can begin before the next line break.
                match memchr::memchr2(b'\r', b'\n', index::get(bytes, i..)) {
                    Some(at) => i += at,
                    None => return false,
                }
            }
            let b = *index::get(bytes, i);
            i += 1;
            if (self.matched > 0 || self.line_start)
                && b == Self::expected(boundary, self.matched as usize)
            {
                self.matched += 1;
                self.line_start = false;
                if self.matched as usize == full {
                    return true;
                }
                continue;
            }
            // `--<boundary>` has no CR or LF, so a mismatch can only start
            // over at a line break.
            self.matched = 0;
            self.line_start = b == b'\r' || b == b'\n';
        }
        false
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn head<'a>(recipients: &'a dyn Recipients, subject: Option<Text<'a>>) -> MessageHead<'a> {
        MessageHead {
            from: Address::new(b"wangww@fibocom.com").unwrap(),
            recipients,
            subject,
            date: Token::new(b"Wed, 25 Nov 2026 10:00:00 +0000", true).unwrap(),
            message_id: MessageId::new(b"<42@fibocom.com>").unwrap(),
        }
    }

    /// Writes a whole message through `dst` buffers of `dst_len` bytes, the
    /// body and attachments in chunks of `chunk` bytes.
    fn compose(
        body: Option<&[u8]>,
        files: &[(&[u8], &[u8])],
        dst_len: usize,
        chunk: usize,
    ) -> Vec<u8> {
        compose_with(Encoding::Base64, body, files, dst_len, chunk).unwrap()
    }

    /// [`compose`] in `encoding`; the first error ends it.
    fn compose_with(
        encoding: Encoding,
        body: Option<&[u8]>,
        files: &[(&[u8], &[u8])],
        dst_len: usize,
        chunk: usize,
    ) -> Result<Vec<u8>, MessageError> {
        let rcpt = [
            Recipient {
                kind: RecipientKind::To,
                address: Address::new(b"xiangj@fibocom.com").unwrap(),
            },
            Recipient {
                kind: RecipientKind::Cc,
                address: Address::new(b"cc@fibocom.com").unwrap(),
            },
            Recipient {
                kind: RecipientKind::Bcc,
                address: Address::new(b"secret@fibocom.com").unwrap(),
            },
        ];
        let subject = Text::subject(Charset::Gb2312, b"\xc4\xe3\xba\xc3 smtp").unwrap();
        let head = head(&rcpt, Some(subject));
        let mut w = MessageWriter::new(Charset::Gb2312, Boundary::from_seed(b"<42@fibocom.com>"));
        w.set_encoding(encoding).unwrap();
        let mut out = Vec::new();
        let mut buf = std::vec![0u8; dst_len];
        loop {
            let (r, n) = w.head(&head, &mut buf).unwrap();
            assert_eq!(w.set_encoding(encoding), Err(MessageError::OutOfOrder));
            out.extend_from_slice(&buf[..n]);
            if r == CoderResult::InputEmpty {
                break;
            }
        }
        let mut stream = |w: &mut MessageWriter,
                          name: Option<&Text<'_>>,
                          data: &[u8]|
         -> Result<(), MessageError> {
            let mut chunks: Vec<&[u8]> = data.chunks(chunk.max(1)).collect();
            if chunks.is_empty() {
                chunks.push(b"");
            }
            let count = chunks.len();
            for (i, mut c) in chunks.into_iter().enumerate() {
                loop {
                    let last = i + 1 == count;
                    let (r, read, n) = match name {
                        None => w.body(c, &mut buf, last)?,
                        Some(name) => w.attachment(name, c, &mut buf, last)?,
                    };
                    out.extend_from_slice(&buf[..n]);
                    c = &c[read..];
                    if r == CoderResult::InputEmpty {
                        break;
                    }
                }
            }
            Ok(())
        };
        if let Some(body) = body {
            stream(&mut w, None, body)?;
        }
        for (name, data) in files {
            stream(
                &mut w,
                Some(&Text::file_name(Charset::Gb2312, name).unwrap()),
                data,
            )?;
        }
        loop {
            let (r, n) = w.finish(&mut buf).unwrap();
            out.extend_from_slice(&buf[..n]);
            if r == CoderResult::InputEmpty {
                return Ok(out);
            }
        }
    }

    #[test]
    fn the_spec_case_message() {
        let out = compose(
            Some(b"hello"),
            &[(b"eee.wma", b"\x00\x01+++\x02")],
            4096,
            4096,
        );
        let text = std::string::String::from_utf8(out).unwrap();
        let expect = "Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n\
From: wangww@fibocom.com\r\n\
To: xiangj@fibocom.com\r\n\
Cc: cc@fibocom.com\r\n\
Subject: =?GB2312?B?xOO6wyBzbXRw?=\r\n\
Message-ID: <42@fibocom.com>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed;\r\n boundary=\"=_atmail_BND\"\r\n\
\r\n\
--=_atmail_BND\r\n\
Content-Type: text/plain; charset=GBK\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
aGVsbG8=\r\n\
--=_atmail_BND\r\n\
Content-Type: audio/x-ms-wma; name=\"eee.wma\"\r\n\
Content-Disposition: attachment; filename=\"eee.wma\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
AAErKysC\r\n\
--=_atmail_BND--\r\n";
        let boundary = Boundary::from_seed(b"<42@fibocom.com>");
        let b = core::str::from_utf8(&boundary.as_bytes()[9..]).unwrap();
        assert_eq!(text, expect.replace("BND", b));
        assert!(!text.contains("secret"));
    }

    #[test]
    fn empty_sections_keep_their_crlf() {
        let out = compose(None, &[(b"a.bin", b"")], 4096, 64);
        let text = std::string::String::from_utf8(out).unwrap();
        assert!(text
            .contains("charset=GBK\r\nContent-Transfer-Encoding: base64\r\n\r\n\r\n--=_atmail_"));
        let boundary = core::str::from_utf8(Boundary::from_seed(b"<42@fibocom.com>").as_bytes())
            .unwrap()
            .to_owned();
        assert!(text.ends_with(&std::format!("base64\r\n\r\n\r\n--{boundary}--\r\n")));
    }

    #[test]
    fn order_and_limits_are_enforced() {
        let rcpt = [Recipient {
            kind: RecipientKind::To,
            address: Address::new(b"a@b").unwrap(),
        }];
        let mut w = MessageWriter::new(Charset::Utf8, Boundary::from_seed(b""));
        let mut buf = [0u8; 4096];
        assert_eq!(w.body(b"x", &mut buf, true), Err(MessageError::OutOfOrder));
        assert_eq!(
            w.head(&head(&[] as &[Recipient; 0], None), &mut buf),
            Err(MessageError::Recipients)
        );
        let many = [rcpt[0]; 21];
        assert_eq!(
            w.head(&head(&many, None), &mut buf),
            Err(MessageError::Recipients)
        );
        let _ = w.head(&head(&rcpt, None), &mut buf).unwrap();
        let name = Text::file_name(Charset::Utf8, b"f").unwrap();
        let _ = w.attachment(&name, b"", &mut buf, true).unwrap();
        assert_eq!(w.body(b"x", &mut buf, true), Err(MessageError::OutOfOrder));
        for _ in 1..MAX_ATTACHMENTS {
            let _ = w.attachment(&name, b"", &mut buf, true).unwrap();
        }
        assert_eq!(
            w.attachment(&name, b"", &mut buf, true),
            Err(MessageError::TooManyAttachments)
        );
    }

    #[test]
    fn invalid_body_bytes_are_refused() {
        let rcpt = [Recipient {
            kind: RecipientKind::To,
            address: Address::new(b"a@b").unwrap(),
        }];
        let mut w = MessageWriter::new(Charset::UsAscii, Boundary::from_seed(b""));
        let mut buf = [0u8; 4096];
        let _ = w.head(&head(&rcpt, None), &mut buf).unwrap();
        assert_eq!(
            w.body(b"ok\xff", &mut buf, true),
            Err(MessageError::InvalidBody(2))
        );
    }

    proptest! {
        #[test]
        fn any_dst_and_chunk_size_gives_the_same_message(
            dst_len in 1usize..300,
            chunk in 1usize..200,
            body in proptest::collection::vec(any::<u8>().prop_map(|b| b & 0x7f), 0..500),
            file in proptest::collection::vec(any::<u8>(), 0..500),
        ) {
            let files: [(&[u8], &[u8]); 2] = [(b"\xc4\xe3\xba\xc3.txt", &file), (b"b.bin", b"")];
            let whole = compose(Some(&body), &files, 1 << 16, 1 << 16);
            prop_assert_eq!(compose(Some(&body), &files, dst_len, chunk), whole);
        }

        /// Binary mode: any chunking and any dst give the same message and
        /// the same collision verdict as the oracle, whatever the payload
        /// and wherever a delimiter is planted in it.
        #[test]
        fn any_chunking_gives_the_same_binary_message_and_verdict(
            dst_len in 1usize..300,
            chunk in 1usize..200,
            file in proptest::collection::vec(prop_oneof![
                4 => any::<u8>(),
                1 => Just(b'\r'),
                1 => Just(b'\n'),
                1 => Just(b'-'),
            ], 0..400),
            plant in proptest::option::of((0usize..400, 0usize..4, 20usize..28)),
        ) {
            let mut file = file;
            if let Some((at, lead, len)) = plant {
                let lead: &[u8] = [&b""[..], b"\r\n", b"\n", b"x"][lead];
                let planted = [lead, &dash_boundary()[..len]].concat();
                let at = at.min(file.len());
                file.splice(at..at, planted);
            }
            let files: [(&[u8], &[u8]); 2] = [(b"a.bin", &file), (b"b.bin", b"\r\n")];
            let whole = compose_with(Encoding::Binary, Some(b"hi\n"), &files, 1 << 16, 1 << 16);
            prop_assert_eq!(whole.is_err(), naive_collision(&file));
            let split = compose_with(Encoding::Binary, Some(b"hi\n"), &files, dst_len, chunk);
            prop_assert_eq!(split, whole);
        }

        /// What `input_fits` promises is read whole, in any state a part
        /// can be in (column, held bytes, output held back, a CRLF owed),
        /// with the worst input: line breaks for the body (each one
        /// becomes two bytes), anything for an attachment.
        #[test]
        fn input_fits_is_always_read_whole(
            attachment in any::<bool>(),
            lead in proptest::collection::vec(any::<u8>(), 0..200),
            lead_room in 0usize..40,
            room in 0usize..400,
            worst in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), Just(b'a')], 400),
        ) {
            let rcpt = [Recipient {
                kind: RecipientKind::To,
                address: Address::new(b"a@b").unwrap(),
            }];
            let mut w = MessageWriter::new(Charset::UsAscii, Boundary::from_seed(b""));
            let mut buf = [0u8; 4096];
            let _ = w.head(&head(&rcpt, None), &mut buf).unwrap();
            let name = Text::trusted(Charset::UsAscii, b"a.bin");
            let lead: Vec<u8> = if attachment { lead } else { lead.iter().map(|b| b & 0x7f).collect() };
            let step = |w: &mut MessageWriter, src: &[u8], dst: &mut [u8]| {
                if attachment {
                    w.attachment(&name, src, dst, false)
                } else {
                    w.body(src, dst, false)
                }
            };
            // The part header, then a lead-in whose output may not fit.
            let (_, _, _) = step(&mut w, b"", &mut buf).unwrap();
            let (_, _, _) = step(&mut w, &lead, &mut buf[..lead_room]).unwrap();
            let fits = w.input_fits(room);
            let worst = if attachment { &lead[..lead.len().min(fits)] } else { &worst[..fits.min(400)] };
            let (_, read, written) = step(&mut w, worst, &mut buf[..room]).unwrap();
            prop_assert_eq!(read, worst.len());
            prop_assert!(written <= room);
        }
    }

    fn boundary() -> Boundary {
        Boundary::from_seed(b"<42@fibocom.com>")
    }

    /// `--<boundary>`: what a binary part must not hold at a line start.
    fn dash_boundary() -> Vec<u8> {
        [&b"--"[..], boundary().as_bytes()].concat()
    }

    #[test]
    fn the_spec_case_message_in_binary() {
        let file = b"\x00\x01+++\x02\r\n.\r\nBDAT 5 LAST\r\n\xff".to_vec();
        let out = compose_with(
            Encoding::Binary,
            Some(b"hello\n.world\r"),
            &[(b"eee.wma", &file), (b"e.bin", b"")],
            4096,
            4096,
        )
        .unwrap();
        let expect = [
            &b"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n\
From: wangww@fibocom.com\r\n\
To: xiangj@fibocom.com\r\n\
Cc: cc@fibocom.com\r\n\
Subject: =?GB2312?B?xOO6wyBzbXRw?=\r\n\
Message-ID: <42@fibocom.com>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed;\r\n boundary=\"=_atmail_BND\"\r\n\
Content-Transfer-Encoding: binary\r\n\
\r\n\
--=_atmail_BND\r\n\
Content-Type: text/plain; charset=GBK\r\n\
Content-Transfer-Encoding: binary\r\n\
\r\n\
hello\r\n.world\r\n\r\n\
--=_atmail_BND\r\n\
Content-Type: audio/x-ms-wma; name=\"eee.wma\"\r\n\
Content-Disposition: attachment; filename=\"eee.wma\"\r\n\
Content-Transfer-Encoding: binary\r\n\
\r\n"[..],
            &file,
            b"\r\n--=_atmail_BND\r\n\
Content-Type: application/octet-stream; name=\"e.bin\"\r\n\
Content-Disposition: attachment; filename=\"e.bin\"\r\n\
Content-Transfer-Encoding: binary\r\n\
\r\n\
\r\n\
--=_atmail_BND--\r\n",
        ]
        .concat();
        let boundary = boundary();
        let b = &boundary.as_bytes()[9..];
        let expect = std::string::String::from_utf8_lossy(&expect)
            .replace("BND", core::str::from_utf8(b).unwrap());
        assert_eq!(std::string::String::from_utf8_lossy(&out), expect);
        // No body and no attachment: an empty text part, then the end.
        let out = compose_with(Encoding::Binary, None, &[], 7, 3).unwrap();
        let text = std::string::String::from_utf8(out).unwrap();
        assert!(text.ends_with(&std::format!(
            "Content-Transfer-Encoding: binary\r\n\r\n\r\n--{}--\r\n",
            core::str::from_utf8(boundary.as_bytes()).unwrap()
        )));
    }

    /// Each binary payload, with the verdict: does it hold `--<boundary>`
    /// at a line start (the part's start, after CR, after LF)?
    fn delimiter_cases() -> Vec<(&'static str, Vec<u8>, bool)> {
        let d = dash_boundary();
        let cat = |parts: &[&[u8]]| parts.concat();
        let mut wrong_digit = d.clone();
        *wrong_digit.last_mut().unwrap() ^= 1;
        vec![
            ("at the part's start", cat(&[&d, b"\r\n"]), true),
            ("the whole payload", d.clone(), true),
            ("after crlf", cat(&[b"abc\r\n", &d, b"--"]), true),
            ("after a bare lf", cat(&[b"abc\n", &d]), true),
            ("after a bare cr", cat(&[b"abc\r", &d]), true),
            ("after crlf crlf", cat(&[b"\r\n\r\n", &d, b"x"]), true),
            (
                "after a near miss",
                cat(&[b"\r\n", &d[..20], b"\r\n", &d]),
                true,
            ),
            ("not at a line start", cat(&[b"x", &d]), false),
            ("after a space", cat(&[b"\r\n ", &d]), false),
            ("one dash", cat(&[b"\r\n", &d[1..]]), false),
            (
                "cut short at the end",
                cat(&[b"\r\n", &d[..d.len() - 1]]),
                false,
            ),
            ("another boundary", cat(&[b"\r\n", &wrong_digit]), false),
            ("three dashes", cat(&[b"\r\n-", &d]), false),
            ("empty", Vec::new(), false),
            ("binary noise", (0u8..=255).collect(), false),
        ]
    }

    /// The oracle: a line start (the part's start, or after CR or LF)
    /// followed by `--<boundary>`.
    fn naive_collision(part: &[u8]) -> bool {
        let d = dash_boundary();
        (0..part.len()).any(|i| {
            (i == 0 || part[i - 1] == b'\r' || part[i - 1] == b'\n') && part[i..].starts_with(&d)
        })
    }

    #[test]
    fn the_delimiter_is_found_across_every_call_edge() {
        for (name, payload, collides) in delimiter_cases() {
            assert_eq!(naive_collision(&payload), collides, "oracle, {name}");
            for chunk in 1..=payload.len().max(1) {
                for dst_len in [1, 2, 5, 4096] {
                    let got = compose_with(
                        Encoding::Binary,
                        Some(b"text"),
                        &[(b"a.bin", &payload)],
                        dst_len,
                        chunk,
                    );
                    match collides {
                        true => {
                            assert_eq!(got, Err(MessageError::BoundaryInPart), "{name} {chunk}")
                        }
                        false => assert!(got.is_ok(), "{name}, chunk {chunk}, dst {dst_len}"),
                    }
                    // The text body is canonical first: its LF and CR are
                    // CRLF on the wire, so they start lines alike.
                    let mut text: Vec<u8> = payload
                        .iter()
                        .map(|&b| b & 0x7f)
                        .filter(|&b| b != 0)
                        .collect();
                    text.retain(|&b| b != b'\x7f');
                    let got = compose_with(Encoding::Binary, Some(&text), &[], dst_len, chunk);
                    assert_eq!(got.is_err(), naive_collision(&text), "body {name} {chunk}");
                }
            }
        }
        // Base64 parts are never scanned: the same bytes are fine there.
        let (_, payload, _) = &delimiter_cases()[0];
        assert!(compose_with(Encoding::Base64, Some(payload), &[(b"a", payload)], 9, 4).is_ok());
    }

    #[test]
    fn a_failed_part_ends_the_message() {
        let rcpt = [Recipient {
            kind: RecipientKind::To,
            address: Address::new(b"a@b").unwrap(),
        }];
        let b = Boundary::from_seed(b"x");
        let mut w = MessageWriter::with_encoding(Charset::Utf8, b, Encoding::Binary);
        assert_eq!(w.encoding(), Encoding::Binary);
        let mut buf = [0u8; 4096];
        let _ = w.head(&head(&rcpt, None), &mut buf).unwrap();
        let name = Text::file_name(Charset::Utf8, b"f").unwrap();
        let bad = [&b"\n--"[..], b.as_bytes()].concat();
        assert_eq!(
            w.attachment(&name, &bad, &mut buf, false),
            Err(MessageError::BoundaryInPart)
        );
        assert_eq!(
            w.attachment(&name, b"", &mut buf, true),
            Err(MessageError::OutOfOrder)
        );
        assert_eq!(w.finish(&mut buf), Err(MessageError::OutOfOrder));
        assert!(!w.is_done());
    }

    /// A whole binary message read back by an independent parser
    /// (`mail-parser`): the attachments' bytes exactly, the text canonical.
    #[test]
    fn a_binary_message_reads_back_whole() {
        let blob: Vec<u8> = (0..70_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .chain(*b"\r\n.\r\n+++BDAT 5 LAST\r\n")
            .collect();
        let text = b"line one\nline two\r\n.dot line\rlast";
        let files: [(&[u8], &[u8]); 3] = [
            (b"blob.bin", &blob),
            (b"\xc4\xe3\xba\xc3.txt", b"\r\n\r\nends in crlf\r\n"),
            (b"empty.bin", b""),
        ];
        let out = compose_with(Encoding::Binary, Some(text), &files, 1000, 333).unwrap();
        let message = mail_parser::MessageParser::default()
            .parse(&out[..])
            .expect("parses");
        let parts: Vec<_> = message.attachments().collect();
        assert_eq!(parts.len(), 3);
        for (part, (_, bytes)) in parts.iter().zip(files.iter()) {
            assert_eq!(part.contents(), *bytes);
        }
        assert_eq!(
            message.body_text(0).unwrap().as_bytes(),
            crate::line_breaks::canonical_form(text)
        );
        let octets = out.len()
            - compose_with(Encoding::Binary, Some(text), &[], 1000, 333)
                .unwrap()
                .len();
        let payload: usize = files.iter().map(|(_, bytes)| bytes.len()).sum();
        // Three part headers of under 200 bytes each; base64 would add a
        // third to the payload.
        assert!(
            octets < payload + 600,
            "1.00 per attachment byte plus the part headers: {octets} for {payload}"
        );
    }

    #[test]
    fn input_fits_grows_with_the_room() {
        let mut w = MessageWriter::new(Charset::UsAscii, Boundary::from_seed(b""));
        let rcpt = [Recipient {
            kind: RecipientKind::To,
            address: Address::new(b"a@b").unwrap(),
        }];
        let mut buf = [0u8; 4096];
        let _ = w.head(&head(&rcpt, None), &mut buf).unwrap();
        assert_eq!(w.input_fits(4096), 0, "before the part's header");
        let name = Text::trusted(Charset::UsAscii, b"a.bin");
        let _ = w.attachment(&name, b"", &mut buf, false).unwrap();
        // 76 characters and CRLF carry 57 bytes; two more wait unwritten.
        assert_eq!(w.input_fits(78), 59);
        assert_eq!(w.input_fits(77), 56);
        assert_eq!(w.input_fits(78 * 100), 5702);
    }
}
