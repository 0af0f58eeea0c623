//! One mail's message, from the server's go-ahead to its last byte.
//!
//! What it does: [`Mail`] is the message of the mail in progress in one
//! fixed slot: the [`MessageWriter`] that turns payload into the
//! RFC 5322 / MIME message, the mail's identity (`Date:`,
//! `Message-ID:`), the attachment names, the `<time>` deadline and the
//! count of message bytes against the server's `SIZE`. It says what
//! comes next ([`Stage`]): the header block, the parts as the host sends
//! them, the closing boundary. Every call returns a typed outcome
//! ([`Piece`], [`MailError`], [`SessionError`] for a refused command).
//!
//! What it does not: speak SMTP, frame the message on the wire (`DATA`
//! and its end are the SMTP client's), know about the connection, the
//! serial line or the host's words. The connection (`connection`) drives
//! it and turns its outcomes into events; the session (`session`) turns
//! those into what the host hears.
//!
//! Why it is built this way: everything a mail owns is reset in place by
//! [`Mail::start`] rather than built as a value and moved, because the
//! writer is 1.5 KB and firmware stacks are 1 KiB. The stage is one
//! enum, so the message is never in two places at once, and a failure
//! is a value the connection acts on, never host text written from
//! inside the message.

use crate::answers::SessionError;
use crate::charset::Charset;
use crate::config::{Bounded, Config};
use crate::header::{Address, Text, Token};
use crate::index;
use crate::message::{
    Boundary, Encoding, MessageError, MessageHead, MessageId, MessageWriter, MAX_ATTACHMENTS,
};
use crate::CoderResult;
use core::mem::MaybeUninit;
use core::ptr::addr_of_mut;

/// Which part a data mode is feeding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    Body,
    File,
}

/// The `Date:` and `Message-ID:` of a mail, validated when set.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Identity {
    date: Bounded<76>,
    message_id: Bounded<76>,
}

impl Identity {
    pub(crate) fn new(date: Token<'_>, message_id: MessageId<'_>) -> Self {
        Identity {
            date: Bounded::from_slice(date.as_bytes()),
            message_id: Bounded::from_slice(message_id.as_bytes()),
        }
    }
}

/// Where the message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The server has not said to go ahead yet.
    Waiting,
    /// The header block is being written.
    Head,
    /// Between parts: waiting for DATA, FILE or END.
    Ready,
    /// A part's payload is streaming in.
    Data(Part),
    /// A part's last line is being written, with the `+` bytes held back
    /// as a possible escape that were data after all.
    Ending { part: Part, pluses: u8 },
    /// The closing boundary is being written.
    Closing,
    /// The whole message is written.
    Written,
}

/// What a [`Mail::write`] finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    /// The header block: the host may send the parts.
    Head,
    /// A part's last line: the data command's result is due.
    Part,
    /// The closing boundary: the message is whole.
    Message,
}

/// Why the message cannot go on; the mail fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MailError {
    /// The message passed the server's `SIZE` (`limit`); the bytes that
    /// passed it are not reported as written.
    TooLarge { limit: u64 },
    /// The body is not valid in its charset.
    InvalidBody,
    /// A binary part holds the boundary delimiter: the message cannot
    /// end (nothing is delivered).
    BoundaryInPart,
    /// A state the design rules out (payload the writer would drop, a
    /// piece out of order).
    Impossible,
}

/// The message of a mail; see the module docs.
#[derive(Debug)]
pub(crate) struct Mail {
    stage: Stage,
    writer: MessageWriter,
    identity: Identity,
    /// The attachment names so far, validated in the session charset when
    /// FILE came.
    files: [Bounded<80>; MAX_ATTACHMENTS],
    file_count: u8,
    deadline_ms: u64,
    body_sent: bool,
    attachment_bytes: u64,
    /// Message bytes written so far, against the server's `SIZE`.
    sent: u64,
}

impl Mail {
    /// An empty slot in `slot`, field by field (see `Session::init_in`).
    #[allow(unsafe_code)]
    pub(crate) fn init_in(slot: &mut MaybeUninit<Mail>) {
        // Stops compiling when a field is added, so none is left unwritten.
        let _ = |m: Mail| {
            let Mail {
                stage: _,
                writer: _,
                identity: _,
                files: _,
                file_count: _,
                deadline_ms: _,
                body_sent: _,
                attachment_bytes: _,
                sent: _,
            } = m;
        };
        let p = slot.as_mut_ptr();
        // SAFETY: `p` is valid for writes and aligned (it comes from a
        // `&mut`); each field is written through its own place, each
        // attachment name through its own element, in bounds of the array.
        unsafe {
            addr_of_mut!((*p).stage).write(Stage::Waiting);
            let boundary = Boundary::from_seed(b"");
            addr_of_mut!((*p).writer).write(MessageWriter::new(Charset::UsAscii, boundary));
            addr_of_mut!((*p).identity).write(Identity {
                date: Bounded::EMPTY,
                message_id: Bounded::EMPTY,
            });
            let files = addr_of_mut!((*p).files).cast::<Bounded<80>>();
            for i in 0..MAX_ATTACHMENTS {
                files.add(i).write(Bounded::EMPTY);
            }
            addr_of_mut!((*p).file_count).write(0);
            addr_of_mut!((*p).deadline_ms).write(0);
            addr_of_mut!((*p).body_sent).write(false);
            addr_of_mut!((*p).attachment_bytes).write(0);
            addr_of_mut!((*p).sent).write(0);
        }
    }

    /// A new message, reset in place, due by `deadline_ms`. Not inlined:
    /// the new writer is built on this frame, which is then not part of
    /// the command dispatch's (the 1 KiB firmware stack).
    #[inline(never)]
    pub(crate) fn start(&mut self, charset: Charset, identity: Identity, deadline_ms: u64) {
        let boundary = Boundary::from_seed(identity.message_id.as_bytes());
        self.identity = identity;
        self.writer = MessageWriter::new(charset, boundary);
        self.stage = Stage::Waiting;
        self.file_count = 0;
        self.deadline_ms = deadline_ms;
        self.body_sent = false;
        self.attachment_bytes = 0;
        self.sent = 0;
    }

    pub(crate) fn stage(&self) -> Stage {
        self.stage
    }

    /// Whether the whole message is written.
    pub(crate) fn is_written(&self) -> bool {
        matches!(self.stage, Stage::Written)
    }

    /// When the mail's `<time>` runs out.
    pub(crate) fn deadline_ms(&self) -> u64 {
        self.deadline_ms
    }

    /// The attachment names so far.
    pub(crate) fn files(&self) -> &[Bounded<80>] {
        index::get(&self.files, ..self.file_count as usize)
    }

    /// The server waits for the message, its parts in `encoding`: the
    /// header block goes first. False when the message was not waiting
    /// for it.
    pub(crate) fn go_ahead(&mut self, encoding: Encoding) -> bool {
        let waiting =
            matches!(self.stage, Stage::Waiting) && self.writer.set_encoding(encoding).is_ok();
        if waiting {
            self.stage = Stage::Head;
        }
        waiting
    }

    /// At least the length of the header block (in either encoding) with
    /// `config`: whether it surely goes whole in a first `BDAT` chunk.
    /// An estimate from the fields' lengths, not a second run of the
    /// header writer: that would cost flash and stack on a Cortex-M4, and
    /// only a storage within a few hundred bytes of the block's size
    /// (never the 16 KiB the CLI and Python give) can tell the
    /// difference. `head_bound_holds` checks it against the writer.
    pub(crate) fn head_bound(&self, config: &Config) -> usize {
        // Date, Message-ID, MIME-Version, the multipart Content-Type with
        // its boundary, Content-Transfer-Encoding and the blank line, with
        // room to spare.
        const FIXED: usize = 400;
        let user = config.login().map_or(0, |(user, _)| user.len());
        let recipients: usize = config
            .recipient_list()
            .iter()
            .map(|r| r.address.as_bytes().len() + 8)
            .sum();
        // RFC 2047 words: at most twice the text (200 bytes at most), with
        // their folds.
        let subject = config.subject().map_or(0, |_| 2 * 200 + 100);
        FIXED
            + self.identity.date.as_bytes().len()
            + self.identity.message_id.as_bytes().len()
            + user
            + 16
            + recipients
            + subject
    }

    /// The message waits for DATA, FILE or END.
    pub(crate) fn ready(&self) -> Result<(), SessionError> {
        match self.stage {
            Stage::Ready => Ok(()),
            _ => Err(SessionError::WrongState),
        }
    }

    /// `AT+GTSMTPFILE=1,<name>`: the name, validated by the caller, is
    /// the next attachment's.
    pub(crate) fn add_file(&mut self, name: &[u8]) -> Result<(), SessionError> {
        self.ready()?;
        let count = self.file_count as usize;
        if count == MAX_ATTACHMENTS {
            return Err(SessionError::TooManyAttachments);
        }
        index::get_mut(&mut self.files, count).set(name);
        self.file_count += 1;
        Ok(())
    }

    /// A part's payload begins; returns the most payload it may have, of
    /// `max_bytes` for all attachments together.
    pub(crate) fn begin_part(&mut self, part: Part, max_bytes: u64) -> Result<u64, SessionError> {
        self.ready()?;
        if part == Part::Body && (self.body_sent || self.file_count > 0) {
            return Err(SessionError::BodyNotAllowed);
        }
        self.body_sent |= part == Part::Body;
        self.stage = Stage::Data(part);
        Ok(match part {
            Part::Body => max_bytes,
            Part::File => max_bytes - self.attachment_bytes,
        })
    }

    /// The part's payload ended after `count` bytes; `pluses` `+` bytes
    /// held as a possible escape were data and go with its last line.
    pub(crate) fn end_part(&mut self, count: u64, pluses: u8) {
        if let Stage::Data(part) = self.stage {
            if part == Part::File {
                self.attachment_bytes += count;
            }
            self.stage = Stage::Ending { part, pluses };
        }
    }

    /// `AT+GTSMTPEND`: the closing boundary goes next.
    pub(crate) fn end_message(&mut self) -> Result<(), SessionError> {
        self.ready()?;
        self.stage = Stage::Closing;
        Ok(())
    }

    /// The most payload bytes surely taken whole into `room` bytes.
    pub(crate) fn input_fits(&self, room: usize) -> usize {
        self.writer.input_fits(room)
    }

    /// Payload of the streaming part (or, with `src` empty, the part's
    /// header and any output held back) into `dst`; returns bytes
    /// written. All of `src` is taken: the caller offers no more than
    /// [`input_fits`](Self::input_fits).
    pub(crate) fn payload(
        &mut self,
        src: &[u8],
        dst: &mut [u8],
        limit: Option<u64>,
    ) -> Result<usize, MailError> {
        let Stage::Data(part) = self.stage else {
            return Err(MailError::Impossible);
        };
        let (_, read, written) = self.part_step(part, src, dst, false).map_err(part_error)?;
        if read < src.len() {
            // Payload would be lost: the mail fails whole.
            return Err(MailError::Impossible);
        }
        self.count(written, limit)
    }

    /// The message piece due between payloads (the header block, a
    /// part's last line, the closing boundary) into `dst`, with `config`
    /// for the header block. Returns bytes written and the piece it
    /// finished, if one. Its one caller, the connection's
    /// `write_message`, is kept off the host's and the server's frames.
    pub(crate) fn write(
        &mut self,
        config: &Config,
        dst: &mut [u8],
        limit: Option<u64>,
    ) -> Result<(usize, Option<Piece>), MailError> {
        let (written, done) = match self.stage {
            Stage::Head => {
                let (r, w) = write_head(config, &self.identity, &mut self.writer, dst)
                    .map_err(|_| MailError::Impossible)?;
                let done = r == CoderResult::InputEmpty;
                if done {
                    self.stage = Stage::Ready;
                }
                (w, done.then_some(Piece::Head))
            }
            Stage::Ending { part, pluses } => {
                let held = index::get(b"+++", ..pluses as usize);
                let (r, read, w) = self.part_step(part, held, dst, true).map_err(part_error)?;
                let done = r == CoderResult::InputEmpty;
                self.stage = match done {
                    true => Stage::Ready,
                    false => Stage::Ending {
                        part,
                        pluses: pluses - read as u8,
                    },
                };
                (w, done.then_some(Piece::Part))
            }
            Stage::Closing => {
                let (r, w) = self.writer.finish(dst).map_err(|_| MailError::Impossible)?;
                let done = r == CoderResult::InputEmpty;
                if done {
                    self.stage = Stage::Written;
                }
                (w, done.then_some(Piece::Message))
            }
            _ => (0, None),
        };
        Ok((self.count(written, limit)?, done))
    }

    /// One step of the part being fed. Inlined: a frame of its own
    /// would sit on the payload's path (the 1 KiB firmware stack).
    #[inline(always)]
    fn part_step(
        &mut self,
        part: Part,
        src: &[u8],
        dst: &mut [u8],
        last: bool,
    ) -> Result<(CoderResult, usize, usize), MessageError> {
        match part {
            Part::Body => self.writer.body(src, dst, last),
            Part::File => {
                let name = index::get(&self.files, (self.file_count as usize).saturating_sub(1));
                // Validated in the session charset when FILE came.
                let name = Text::trusted(self.writer.charset(), name.as_bytes());
                self.writer.attachment(&name, src, dst, last)
            }
        }
    }

    /// Counts `written` message bytes against the server's `SIZE`
    /// (`limit`).
    fn count(&mut self, written: usize, limit: Option<u64>) -> Result<usize, MailError> {
        self.sent += written as u64;
        match limit {
            Some(limit) if self.sent > limit => Err(MailError::TooLarge { limit }),
            _ => Ok(written),
        }
    }
}

/// What a part's failure means for the mail.
fn part_error(e: MessageError) -> MailError {
    match e {
        MessageError::BoundaryInPart => MailError::BoundaryInPart,
        _ => MailError::InvalidBody,
    }
}

/// The mail's header block into `dst`. Not inlined: its frame is then not
/// on the stack while the other pieces of a message are written.
#[inline(never)]
fn write_head(
    config: &Config,
    identity: &Identity,
    writer: &mut MessageWriter,
    dst: &mut [u8],
) -> Result<(CoderResult, usize), MessageError> {
    let head = MessageHead {
        from: Address::trusted(config.login().map_or(&b""[..], |(user, _)| user)),
        recipients: config.recipient_list(),
        subject: config.subject(),
        date: Token::trusted(identity.date.as_bytes()),
        message_id: MessageId::trusted(identity.message_id.as_bytes()),
    };
    writer.head(&head, dst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::at;
    use std::vec::Vec;

    const DATE: &[u8] = b"Wed, 25 Nov 2026 10:00:00 +0000";

    fn config() -> Config {
        let mut config = Config::new();
        for line in [
            &b"AT+GTSMTPLAND=25,\"mail.example.com\""[..],
            b"AT+GTSMTPID=\"me@example.com\",\"pw\"",
            b"AT+GTSMTPDST=1,1,\"you@example.com\"",
        ] {
            config.apply(&at::parse(line).unwrap()).unwrap();
        }
        config
    }

    fn mail() -> std::boxed::Box<Mail> {
        let mut slot = std::boxed::Box::new(MaybeUninit::uninit());
        Mail::init_in(&mut slot);
        // SAFETY: init_in initialised every field.
        #[allow(unsafe_code)]
        let mut mail =
            unsafe { std::boxed::Box::from_raw(std::boxed::Box::into_raw(slot).cast::<Mail>()) };
        let identity = Identity::new(
            Token::new(DATE, true).unwrap(),
            MessageId::new(b"<1@example.com>").unwrap(),
        );
        mail.start(Charset::Utf8, identity, 1_000);
        mail
    }

    /// Writes the piece due with `room` bytes a call; returns the bytes
    /// and the pieces finished.
    fn drain(
        mail: &mut Mail,
        config: &Config,
        room: usize,
        limit: Option<u64>,
    ) -> Result<(Vec<u8>, Vec<Piece>), MailError> {
        let (mut wire, mut pieces) = (Vec::new(), Vec::new());
        let mut buf = vec![0u8; room];
        for _ in 0..10_000 {
            let (w, done) = mail.write(config, &mut buf, limit)?;
            wire.extend_from_slice(&buf[..w]);
            if let Some(piece) = done {
                pieces.push(piece);
                return Ok((wire, pieces));
            }
            if w == 0 {
                break;
            }
        }
        Ok((wire, pieces))
    }

    fn feed(
        mail: &mut Mail,
        payload: &[u8],
        room: usize,
        limit: Option<u64>,
    ) -> Result<Vec<u8>, MailError> {
        let mut wire = Vec::new();
        let mut buf = vec![0u8; room];
        let mut rest = payload;
        loop {
            let w = mail.payload(b"", &mut buf, limit)?;
            wire.extend_from_slice(&buf[..w]);
            if w > 0 {
                continue;
            }
            let take = mail.input_fits(room).min(rest.len());
            if take == 0 {
                break;
            }
            let w = mail.payload(&rest[..take], &mut buf, limit)?;
            wire.extend_from_slice(&buf[..w]);
            rest = &rest[take..];
        }
        assert!(rest.is_empty(), "room {room} too small for any payload");
        Ok(wire)
    }

    /// A whole message: head, body, one attachment, end; each piece with
    /// `room` bytes of output a call.
    fn whole(room: usize) -> Vec<u8> {
        let config = config();
        let mut mail = mail();
        assert_eq!(mail.stage(), Stage::Waiting);
        assert_eq!(mail.ready(), Err(SessionError::WrongState));
        assert!(mail.go_ahead(Encoding::Base64));
        assert!(!mail.go_ahead(Encoding::Base64), "once");
        let (mut wire, pieces) = drain(&mut mail, &config, room, None).unwrap();
        assert_eq!(pieces, [Piece::Head]);
        assert_eq!(mail.begin_part(Part::Body, 100), Ok(100));
        wire.extend(feed(&mut mail, b"Hello\nworld", room, None).unwrap());
        mail.end_part(11, 2);
        let (w, pieces) = drain(&mut mail, &config, room, None).unwrap();
        assert_eq!(pieces, [Piece::Part]);
        wire.extend(w);
        assert_eq!(
            mail.begin_part(Part::Body, 100),
            Err(SessionError::BodyNotAllowed)
        );
        mail.add_file(b"a.bin").unwrap();
        assert_eq!(mail.begin_part(Part::File, 100), Ok(100));
        wire.extend(feed(&mut mail, &[0, 1, 2, 3, 4], room, None).unwrap());
        mail.end_part(5, 0);
        wire.extend(drain(&mut mail, &config, room, None).unwrap().0);
        mail.add_file(b"b.bin").unwrap();
        assert_eq!(
            mail.begin_part(Part::File, 100),
            Ok(95),
            "attachments share the cap"
        );
        mail.end_part(0, 0);
        wire.extend(drain(&mut mail, &config, room, None).unwrap().0);
        assert_eq!(mail.files().len(), 2);
        mail.end_message().unwrap();
        let (w, pieces) = drain(&mut mail, &config, room, None).unwrap();
        assert_eq!(pieces, [Piece::Message]);
        assert_eq!(mail.stage(), Stage::Written);
        wire.extend(w);
        wire
    }

    #[test]
    fn a_message_is_the_same_whatever_the_room() {
        let base = whole(4096);
        let text = String::from_utf8_lossy(&base);
        assert!(
            text.contains("Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n"),
            "{text}"
        );
        assert!(text.contains("Message-ID: <1@example.com>\r\n"), "{text}");
        assert!(text.contains("filename=\"a.bin\""), "{text}");
        // Hello\nworld and the held `++` are the body.
        for room in [80, 97, 200, 1000] {
            assert_eq!(whole(room), base, "room {room}");
        }
    }

    #[test]
    fn pieces_out_of_order_are_refused() {
        let config = config();
        let mut mail = mail();
        assert_eq!(mail.add_file(b"x"), Err(SessionError::WrongState));
        assert_eq!(mail.end_message(), Err(SessionError::WrongState));
        assert_eq!(
            mail.payload(b"x", &mut [0; 100], None),
            Err(MailError::Impossible)
        );
        assert_eq!(mail.write(&config, &mut [0; 100], None), Ok((0, None)));
        for _ in 0..MAX_ATTACHMENTS {
            mail.stage = Stage::Ready;
            mail.add_file(b"f").unwrap();
        }
        assert_eq!(mail.add_file(b"f"), Err(SessionError::TooManyAttachments));
    }

    #[test]
    fn size_counts_every_piece_and_stops_at_the_limit() {
        let config = config();
        let head_len = {
            let mut mail = mail();
            mail.go_ahead(Encoding::Base64);
            drain(&mut mail, &config, 4096, None).unwrap().0.len() as u64
        };
        for (limit, fails) in [(head_len, false), (head_len - 1, true)] {
            let mut mail = mail();
            mail.go_ahead(Encoding::Base64);
            let got = drain(&mut mail, &config, 4096, Some(limit));
            assert_eq!(got.is_err(), fails, "limit {limit}");
            if fails {
                assert_eq!(got, Err(MailError::TooLarge { limit }));
            }
        }
        // Payload counts too.
        let mut mail = mail();
        mail.go_ahead(Encoding::Base64);
        drain(&mut mail, &config, 4096, None).unwrap();
        mail.begin_part(Part::Body, 100).unwrap();
        assert_eq!(
            feed(&mut mail, &[b'a'; 600], 4096, Some(head_len + 100)),
            Err(MailError::TooLarge {
                limit: head_len + 100
            })
        );
    }

    proptest::proptest! {
        /// The estimate a mail uses to choose `BDAT` is never below the
        /// header block the writer writes, in either encoding, up to every
        /// field's limit.
        #[test]
        fn head_bound_holds(
            user in 1usize..=66,
            recipients in proptest::collection::vec((1usize..=66, 1u8..=3), 1..=20),
            subject in proptest::option::of((0usize..=66, proptest::bool::ANY)),
            date in 10usize..=76,
            id in 5usize..=76,
        ) {
            let mut config = Config::new();
            let mut apply = |line: Vec<u8>| config.apply(&at::parse(&line).unwrap()).unwrap();
            apply(b"AT+GTSMTPLAND=25,\"mx.example.com\"".to_vec());
            let local = "u".repeat(user);
            apply(std::format!("AT+GTSMTPID=\"{local}@example.com\",\"pw\"").into_bytes());
            for (i, &(len, kind)) in recipients.iter().enumerate() {
                let local = std::format!("{i:02}").repeat(len / 2 + 1);
                apply(std::format!("AT+GTSMTPDST=1,{kind},\"{local}@example.com\"").into_bytes());
            }
            if let Some((len, wide)) = subject {
                // Three bytes a character in UTF-8, as dense in encoded
                // words as a subject gets (200 bytes at most).
                let text = if wide { "\u{4e2d}".repeat(len) } else { "s ".repeat(len / 2 + 1) };
                apply([&b"AT+GTSMTPHEAD=1,\""[..], text.as_bytes(), b"\""].concat());
            }
            let date = "D".repeat(date);
            let id = std::format!("<{}@x>", "i".repeat(id - 4));
            let identity = Identity::new(
                Token::new(date.as_bytes(), true).unwrap(),
                MessageId::new(id.as_bytes()).unwrap(),
            );
            for encoding in [Encoding::Base64, Encoding::Binary] {
                let mut slot = mail();
                slot.start(Charset::Utf8, identity, 0);
                let bound = slot.head_bound(&config);
                proptest::prop_assert!(slot.go_ahead(encoding));
                let (head, _) = drain(&mut slot, &config, 8192, None).unwrap();
                proptest::prop_assert!(head.len() <= bound, "{} > {}", head.len(), bound);
            }
        }
    }

    #[test]
    fn a_body_not_in_its_charset_fails_the_message() {
        let config = config();
        let mut mail = mail();
        mail.go_ahead(Encoding::Base64);
        drain(&mut mail, &config, 4096, None).unwrap();
        mail.begin_part(Part::Body, 100).unwrap();
        assert_eq!(
            feed(&mut mail, b"ok \xff\xfe", 4096, None),
            Err(MailError::InvalidBody)
        );
    }
}
