//! The G510 SMTP engine: AT lines and serial data in, SMTP out, URCs back.
//!
//! What it does: [`Session`] wires the pieces together as the module does.
//! Configuration commands change the [`Config`]; `+GTSMTPSEND` asks the
//! caller for a connection and runs the [`SmtpClient`] over it; once the
//! server waits for data the header block is written and the host hears
//! `+GTSMTPSEND: 2`; `+GTSMTPDATA` and `+GTSMTPFILE=1` put the serial line
//! in data mode through the [`Framer`] and stream each part through the
//! [`MessageWriter`] straight into the caller's socket buffer;
//! `+GTSMTPEND` closes the message and the host hears `+GTSMTPSEND: 1` or
//! the reply code that ended the mail.
//!
//! What it does not: own a UART, a socket, TLS or a clock. The caller
//! passes bytes and `now_ms` in and takes bytes out (see the `handle_*` and
//! `poll_*` methods), and answers the module commands that are not
//! `+GTSMTP*` (`AT`, `ATE`, `AT+MIPCALL`, ...) itself.
//!
//! Why it is built this way: every call does bounded work on the caller's
//! buffers, and the whole engine is one fixed-size value the firmware can
//! place where it likes. Host answers are rendered on demand from a small
//! queue of what to say (the replay trick of `header::replay`), so a long
//! read form needs no buffer. Serial data is taken only as far as the
//! socket buffer can hold its encoding: backpressure, not buffering.
//!
//! A mail that fails while the host is streaming (the server drops the
//! connection, `<time>` runs out, the body is not valid in its charset)
//! leaves the line in data mode: the rest of the payload is read and
//! dropped until the escape or an idle end, and only then does the data
//! command answer `ERROR`. Otherwise the host's remaining payload would be
//! taken as command lines. The URC of a failed connection comes at once,
//! so a host that watches for it can stop streaming early.

use crate::at::{self, AtError, Command, Request};
use crate::config::{self, Bounded, Config};
use crate::framer::{DataLimits, End, Event as FrameEvent, Framer, DEFAULT_GUARD_MS, MAX_PAYLOAD};
use crate::header::{self, put_decimal, Address, Out, Text, Token};
use crate::message::{
    Boundary, MessageHead, MessageId, MessageWriter, Recipient, MAX_ATTACHMENTS, MAX_RECIPIENTS,
};
use crate::smtp::{Envelope, Event as SmtpEvent, SmtpClient, TlsPolicy};
use crate::CoderResult;

/// Why the session answered `ERROR` (the text of `+CME ERROR:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionError {
    /// The line itself was refused.
    Line(AtError),
    /// A 21st recipient.
    TooManyRecipients,
    /// Deleting a recipient that is not there.
    NoSuchRecipient,
    /// Configuration is frozen while a mail is in progress.
    MailInProgress,
    /// SEND needs LAND, ID and a recipient.
    Incomplete,
    /// The GTSMTPID user is not a mail address, so it cannot be the sender.
    UserNotAddress,
    /// SEND without a date and Message-ID from the caller.
    NoIdentity,
    /// The command needs a connected mail (`+GTSMTPSEND: 2`) in this state.
    WrongState,
    /// The body may be sent once, before any attachment.
    BodyNotAllowed,
    /// More than 20 attachments.
    TooManyAttachments,
    /// Data already on the wire cannot be taken back.
    CannotDelete,
    /// The attachment name is not valid in the session charset.
    BadFileName,
    /// Data mode ran past `<time>`; the mail was aborted.
    DataTimeout,
    /// More than 20 MiB; the mail was aborted.
    DataTooLarge,
    /// The body was not valid in the session charset; the mail was aborted.
    InvalidBody,
    /// The mail failed while data was streaming (see `+GTSMTPSEND`).
    MailAborted,
}

impl SessionError {
    /// The text of `+CME ERROR: <text>`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SessionError::Line(e) => e.as_str(),
            SessionError::TooManyRecipients => "too many recipients",
            SessionError::NoSuchRecipient => "no such recipient",
            SessionError::MailInProgress => "mail in progress",
            SessionError::Incomplete => "server, login and a recipient are needed",
            SessionError::UserNotAddress => "user name is not a mail address",
            SessionError::NoIdentity => "no date and message id",
            SessionError::WrongState => "not allowed now",
            SessionError::BodyNotAllowed => "body only once, before attachments",
            SessionError::TooManyAttachments => "too many attachments",
            SessionError::CannotDelete => "data already sent cannot be deleted",
            SessionError::BadFileName => "file name not valid in the charset",
            SessionError::DataTimeout => "data mode time limit exceeded",
            SessionError::DataTooLarge => "more than 20 MiB",
            SessionError::InvalidBody => "body not valid in the charset",
            SessionError::MailAborted => "mail aborted",
        }
    }
}

/// What to say to the host, rendered when it is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Say {
    Ok,
    Error(SessionError),
    Read(Command),
    Test(Command),
    Prompt,
    Count(Command, u32),
    Urc(u16),
}

const QUEUE: usize = 4;

/// Where a connection should go, asked for once per mail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connect<'a> {
    /// Host name or IP literal, as `+GTSMTPLAND` gave it.
    pub host: &'a [u8],
    /// Port.
    pub port: u16,
    /// Start TLS before any SMTP (SMTPS).
    pub implicit_tls: bool,
}

/// Which part data mode is feeding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Body,
    File,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the caller to connect.
    Connecting { asked: bool },
    /// SMTP up to the server's 354.
    Smtp,
    /// Writing the header block.
    Head,
    /// Waiting for DATA, FILE or END.
    Ready,
    /// Serial bytes are payload.
    DataMode(Part),
    /// Data mode ended normally; the part's last line is being written.
    EndingPart(Part),
    /// Writing the closing boundary.
    Closing,
    /// End-of-data sent; waiting for the server's verdict.
    Verdict,
    /// The mail is over; the SMTP client may still say QUIT.
    Quitting,
}

/// One mail from SEND to its outcome.
#[derive(Debug)]
struct Mail {
    phase: Phase,
    smtp: Option<SmtpClient>,
    writer: MessageWriter,
    framer: Option<Framer>,
    /// Framer payload (`+` bytes held as a possible escape, then released)
    /// still to be written.
    pluses: u8,
    deadline_ms: u64,
    body_sent: bool,
    files: [Bounded<80>; MAX_ATTACHMENTS],
    file_count: u8,
    attachment_bytes: u64,
}

/// Data mode after its mail failed: payload is read and dropped until the
/// mode ends, then the data command answers `error`.
#[derive(Debug)]
struct Discard {
    framer: Framer,
    error: SessionError,
}

/// The engine; see the module docs.
#[derive(Debug)]
pub struct Session {
    config: Config,
    mail: Option<Mail>,
    discard: Option<Discard>,
    queue: [Say; QUEUE],
    queued: u8,
    replayed: usize,
    verbose: bool,
    guard_ms: u32,
    require_tls: bool,
    date: Bounded<76>,
    message_id: Bounded<76>,
    helo: Bounded<80>,
    close: bool,
    start_tls: bool,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    /// An idle engine with nothing configured.
    pub fn new() -> Self {
        Session {
            config: Config::new(),
            mail: None,
            discard: None,
            queue: [Say::Ok; QUEUE],
            queued: 0,
            replayed: 0,
            verbose: false,
            guard_ms: DEFAULT_GUARD_MS,
            require_tls: false,
            date: Bounded::default(),
            message_id: Bounded::default(),
            helo: Bounded::from_slice(b"localhost"),
            close: false,
            start_tls: false,
        }
    }

    /// `+CME ERROR: <text>` instead of `ERROR` (`AT+CMEE=2`).
    pub fn set_verbose_errors(&mut self, on: bool) {
        self.verbose = on;
    }

    /// The `+++` guard time (default 1000 ms).
    pub fn set_guard_ms(&mut self, ms: u32) {
        self.guard_ms = ms;
    }

    /// Refuse servers that do not offer STARTTLS (default: use it when offered).
    pub fn set_require_tls(&mut self, on: bool) {
        self.require_tls = on;
    }

    /// The EHLO name: this host's name or address literal (`[10.0.0.1]`).
    pub fn set_helo_name(&mut self, name: &[u8]) -> Result<(), SessionError> {
        Token::new(name, false).map_err(|e| SessionError::Line(e.into()))?;
        self.helo = Bounded::from_slice(name);
        Ok(())
    }

    /// The Date and Message-ID of the next mail (the caller's clock and
    /// entropy); set before every SEND.
    pub fn set_identity(&mut self, date: Token<'_>, message_id: MessageId<'_>) {
        self.date = Bounded::from_slice(date.as_bytes());
        self.message_id = Bounded::from_slice(message_id.as_bytes());
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether serial bytes are payload now (see [`handle_serial_data`](Self::handle_serial_data)).
    pub fn in_data_mode(&self) -> bool {
        self.discard.is_some()
            || matches!(
                self.mail.as_ref().map(|m| m.phase),
                Some(Phase::DataMode(_))
            )
    }

    /// Executes one `AT+GTSMTP*` line. Returns `false` (and does nothing)
    /// while earlier answers are still unread: drain
    /// [`poll_host`](Self::poll_host) first.
    pub fn handle_at_line(&mut self, line: &[u8], now_ms: u64) -> bool {
        if self.queued > 0 || self.in_data_mode() {
            return false;
        }
        match at::parse(line) {
            Err(e) => self.say(Say::Error(SessionError::Line(e))),
            Ok(Request::Read(command)) => {
                self.say(Say::Read(command));
                self.say(Say::Ok);
            }
            Ok(Request::Test(command)) => {
                self.say(Say::Test(command));
                self.say(Say::Ok);
            }
            Ok(request) => match self.execute(&request, now_ms) {
                Ok(Some(say)) => self.say(say),
                Ok(None) => {}
                Err(e) => self.say(Say::Error(e)),
            },
        }
        true
    }

    fn execute(&mut self, request: &Request<'_>, now_ms: u64) -> Result<Option<Say>, SessionError> {
        match *request {
            Request::Land { .. }
            | Request::Id { .. }
            | Request::Dst { .. }
            | Request::Head { .. } => {
                if self.mail.is_some() {
                    return Err(SessionError::MailInProgress);
                }
                self.config.apply(request).map_err(|e| match e {
                    config::ConfigError::TooManyRecipients => SessionError::TooManyRecipients,
                    config::ConfigError::NoSuchRecipient => SessionError::NoSuchRecipient,
                    _ => SessionError::WrongState,
                })?;
                Ok(Some(Say::Ok))
            }
            Request::Send { time_s } => self.send(time_s, now_ms).map(|_| Some(Say::Ok)),
            Request::Data { time_s, break_s } => self
                .enter_data(Part::Body, time_s, break_s, now_ms)
                .map(|_| None),
            Request::File { add: false, .. } => Err(SessionError::CannotDelete),
            Request::File {
                add: true,
                name,
                break_s,
            } => {
                let charset = self.config.charset();
                Text::file_name(charset, name).map_err(|_| SessionError::BadFileName)?;
                let mail = self.mail.as_mut().ok_or(SessionError::WrongState)?;
                if mail.file_count as usize == MAX_ATTACHMENTS {
                    return Err(SessionError::TooManyAttachments);
                }
                if mail.phase != Phase::Ready {
                    return Err(SessionError::WrongState);
                }
                mail.files[mail.file_count as usize] = Bounded::from_slice(name);
                mail.file_count += 1;
                self.enter_data(Part::File, 48000, break_s, now_ms)
                    .map(|_| None)
            }
            Request::End => {
                let mail = self.mail.as_mut().ok_or(SessionError::WrongState)?;
                if mail.phase != Phase::Ready {
                    return Err(SessionError::WrongState);
                }
                mail.phase = Phase::Closing;
                Ok(Some(Say::Ok))
            }
            Request::Clr => {
                if self.mail.take().is_some() {
                    self.close = true;
                }
                self.config = Config::new();
                Ok(Some(Say::Ok))
            }
            _ => Err(SessionError::WrongState),
        }
    }

    fn send(&mut self, time_s: u32, now_ms: u64) -> Result<(), SessionError> {
        if self.mail.is_some() {
            return Err(SessionError::MailInProgress);
        }
        let (user, _) = self.config.login().ok_or(SessionError::Incomplete)?;
        if !self.config.is_complete() {
            return Err(SessionError::Incomplete);
        }
        Address::new(user).map_err(|_| SessionError::UserNotAddress)?;
        let id =
            MessageId::new(self.message_id.as_bytes()).map_err(|_| SessionError::NoIdentity)?;
        Token::new(self.date.as_bytes(), true).map_err(|_| SessionError::NoIdentity)?;
        let writer = MessageWriter::new(self.config.charset(), Boundary::from_seed(id.as_bytes()));
        self.mail = Some(Mail {
            phase: Phase::Connecting { asked: false },
            smtp: None,
            writer,
            framer: None,
            pluses: 0,
            deadline_ms: now_ms + time_s as u64 * 1000,
            body_sent: false,
            files: [Bounded::default(); MAX_ATTACHMENTS],
            file_count: 0,
            attachment_bytes: 0,
        });
        Ok(())
    }

    fn enter_data(
        &mut self,
        part: Part,
        time_s: u32,
        break_s: Option<u32>,
        now_ms: u64,
    ) -> Result<(), SessionError> {
        let mail = self.mail.as_mut().ok_or(SessionError::WrongState)?;
        if mail.phase != Phase::Ready {
            return Err(SessionError::WrongState);
        }
        if part == Part::Body && (mail.body_sent || mail.file_count > 0) {
            return Err(SessionError::BodyNotAllowed);
        }
        let mut limits = DataLimits::from_seconds(time_s, break_s);
        limits.guard_ms = self.guard_ms;
        limits.max_bytes = match part {
            Part::Body => MAX_PAYLOAD,
            Part::File => MAX_PAYLOAD - mail.attachment_bytes,
        };
        mail.framer = Some(Framer::new(limits, now_ms));
        mail.phase = Phase::DataMode(part);
        mail.body_sent |= part == Part::Body;
        self.say(Say::Prompt);
        Ok(())
    }

    fn say(&mut self, say: Say) {
        // The queue holds a command's answer (at most two items, and no new
        // line is taken until it is read) plus the URCs that can follow it
        // (at most two per mail step). A full queue would drop this item;
        // debug builds assert that it never fills.
        debug_assert!((self.queued as usize) < QUEUE, "host answer queue full");
        if (self.queued as usize) < QUEUE {
            self.queue[self.queued as usize] = say;
            self.queued += 1;
        }
    }

    /// Writes answers and URCs for the host into `dst`; returns how many bytes.
    pub fn poll_host(&mut self, dst: &mut [u8]) -> usize {
        let mut written = 0;
        while self.queued > 0 && written < dst.len() {
            let say = self.queue[0];
            let (config, verbose, mail) = (&self.config, self.verbose, self.mail.as_ref());
            let (done, w) = header::replay(self.replayed, &mut dst[written..], |out| {
                render(out, say, config, verbose, mail)
            });
            written += w;
            if !done {
                self.replayed += w;
                break;
            }
            self.replayed = 0;
            self.queue.copy_within(1.., 0);
            self.queued -= 1;
        }
        written
    }

    /// Where to connect, once per mail after SEND.
    pub fn poll_connect(&mut self) -> Option<Connect<'_>> {
        let mail = self.mail.as_mut()?;
        if mail.phase != (Phase::Connecting { asked: false }) {
            return None;
        }
        mail.phase = Phase::Connecting { asked: true };
        let server = self.config.server()?;
        Some(Connect {
            host: server.host.as_bytes(),
            port: server.port,
            implicit_tls: server.implicit_tls,
        })
    }

    /// The connection is open (for SMTPS: TLS is up).
    pub fn handle_connected(&mut self, now_ms: u64) {
        let policy = match (
            self.config.server().map(|s| s.implicit_tls),
            self.require_tls,
        ) {
            (Some(true), _) => TlsPolicy::Implicit,
            (_, true) => TlsPolicy::Required,
            _ => TlsPolicy::Opportunistic,
        };
        if let Some(mail) = self
            .mail
            .as_mut()
            .filter(|m| matches!(m.phase, Phase::Connecting { .. }))
        {
            mail.smtp = Some(SmtpClient::new(policy, now_ms));
            mail.phase = Phase::Smtp;
        }
    }

    /// The connection could not be made, or it closed.
    pub fn handle_closed(&mut self) {
        if let Some(smtp) = self.mail.as_mut().and_then(|m| m.smtp.as_mut()) {
            smtp.handle_closed();
            self.take_smtp_events();
        } else if self.mail.is_some() {
            self.abort(None, 0);
        }
    }

    /// Whether the caller must start TLS on the connection now (STARTTLS);
    /// then call [`handle_tls_established`](Self::handle_tls_established).
    pub fn poll_start_tls(&mut self) -> bool {
        core::mem::take(&mut self.start_tls)
    }

    /// TLS is up after [`poll_start_tls`](Self::poll_start_tls).
    pub fn handle_tls_established(&mut self, now_ms: u64) {
        if let Some(smtp) = self.mail.as_mut().and_then(|m| m.smtp.as_mut()) {
            smtp.handle_tls_established(now_ms);
        }
    }

    /// Whether the caller must close the connection now.
    pub fn poll_close(&mut self) -> bool {
        core::mem::take(&mut self.close)
    }

    /// Feeds bytes from the server; returns how many were consumed. Replies
    /// are read only once the commands they answer have been taken with
    /// [`poll_server`](Self::poll_server): offer unconsumed bytes again
    /// after that.
    pub fn handle_server(&mut self, input: &[u8], now_ms: u64) -> usize {
        let mut used = 0;
        while used < input.len() {
            let Some((all, n)) = recipients(&self.config) else {
                return input.len();
            };
            let Some(envelope) = envelope(&self.config, &self.helo, &all[..n]) else {
                return input.len();
            };
            let Some(smtp) = self.mail.as_mut().and_then(|m| m.smtp.as_mut()) else {
                return input.len();
            };
            let n = smtp.handle_input(&envelope, &input[used..], now_ms);
            used += n;
            let had_event = self.take_smtp_events();
            if n == 0 && !had_event {
                break;
            }
        }
        used
    }

    /// Acts on what the SMTP client says; returns whether it said anything.
    fn take_smtp_events(&mut self) -> bool {
        let Some(event) = self
            .mail
            .as_mut()
            .and_then(|m| m.smtp.as_mut())
            .and_then(|s| s.poll_event())
        else {
            return false;
        };
        match event {
            SmtpEvent::StartTls => self.start_tls = true,
            SmtpEvent::ReadyForData => {
                if let Some(mail) = self.mail.as_mut() {
                    mail.phase = Phase::Head;
                }
            }
            SmtpEvent::Delivered => {
                self.say(Say::Urc(1));
                if let Some(mail) = self.mail.as_mut() {
                    mail.phase = Phase::Quitting;
                }
            }
            SmtpEvent::Failed(code) => self.abort(None, code),
            _ => {
                self.mail = None;
                self.close = true;
            }
        }
        true
    }

    /// Ends the mail without delivering it: the end-of-data is never sent.
    /// Ends the mail with an `ERROR` or a URC; in data mode the error waits
    /// for the mode's end (see the module docs).
    fn abort(&mut self, error: Option<SessionError>, urc: u16) {
        // A framer that has not ended means the host is still streaming.
        let streaming = self
            .mail
            .as_mut()
            .filter(|m| matches!(m.phase, Phase::DataMode(_)))
            .and_then(|m| m.framer.take_if(|f| f.end().is_none()));
        match streaming {
            Some(framer) => {
                if error.is_none() {
                    self.say(Say::Urc(urc));
                }
                let error = error.unwrap_or(SessionError::MailAborted);
                self.discard = Some(Discard { framer, error });
            }
            None => self.say(error.map_or(Say::Urc(urc), Say::Error)),
        }
        self.mail = None;
        self.close = true;
    }

    /// Data mode of a failed mail: reads to the mode's end; returns how
    /// much of `input` it took.
    fn discard_serial(&mut self, input: &[u8], now_ms: u64) -> usize {
        let Some(discard) = self.discard.as_mut() else {
            return 0;
        };
        let mut read = 0;
        while read < input.len() {
            let (event, n) = discard.framer.push(now_ms, &input[read..]);
            read += n;
            if let FrameEvent::End(_) = event {
                self.end_discard();
                break;
            }
        }
        read
    }

    fn end_discard(&mut self) {
        if let Some(discard) = self.discard.take() {
            self.say(Say::Error(discard.error));
        }
    }

    /// Writes bytes for the server (SMTP commands and message parts that
    /// are not serial payload) into `dst`; returns how many.
    pub fn poll_server(&mut self, dst: &mut [u8], now_ms: u64) -> usize {
        let written = self.write_message(dst, now_ms);
        let Some((all, n)) = recipients(&self.config) else {
            return written;
        };
        let Some(envelope) = envelope(&self.config, &self.helo, &all[..n]) else {
            return written;
        };
        match self.mail.as_mut().and_then(|m| m.smtp.as_mut()) {
            Some(smtp) => written + smtp.poll_transmit(&envelope, &mut dst[written..]),
            None => written,
        }
    }

    /// The message pieces the session writes itself: the header block,
    /// a part's last line, the closing boundary.
    fn write_message(&mut self, dst: &mut [u8], now_ms: u64) -> usize {
        let Some(mail) = self.mail.as_mut() else {
            return 0;
        };
        match mail.phase {
            Phase::Head => {
                let Some((all, n)) = recipients(&self.config) else {
                    return 0;
                };
                let Some(head) =
                    message_head(&self.config, &all[..n], &self.date, &self.message_id)
                else {
                    return 0;
                };
                let Ok((r, n)) = mail.writer.head(&head, dst) else {
                    return 0;
                };
                if r == CoderResult::InputEmpty {
                    mail.phase = Phase::Ready;
                    self.say(Say::Urc(2));
                }
                n
            }
            Phase::EndingPart(part) => {
                let pluses = b"+++";
                let held = &pluses[..mail.pluses as usize];
                let charset = self.config.charset();
                let name = mail.files[mail.file_count.saturating_sub(1) as usize];
                let step = part_step(
                    &mut mail.writer,
                    part,
                    charset,
                    name.as_bytes(),
                    held,
                    dst,
                    true,
                );
                match step {
                    Ok((r, read, n)) => {
                        mail.pluses -= read as u8;
                        if r == CoderResult::InputEmpty {
                            let count = mail.framer.take().map_or(0, |f| f.payload_len());
                            if part == Part::File {
                                mail.attachment_bytes += count;
                            }
                            mail.phase = Phase::Ready;
                            let command = if part == Part::Body {
                                Command::Data
                            } else {
                                Command::File
                            };
                            self.say(Say::Count(command, count as u32));
                            self.say(Say::Ok);
                        }
                        n
                    }
                    Err(_) => {
                        self.abort(Some(SessionError::InvalidBody), 0);
                        0
                    }
                }
            }
            Phase::Closing => match mail.writer.finish(dst) {
                Ok((CoderResult::InputEmpty, n)) => {
                    mail.phase = Phase::Verdict;
                    if let Some(smtp) = mail.smtp.as_mut() {
                        smtp.end_data(now_ms);
                    }
                    n
                }
                Ok((_, n)) => n,
                Err(_) => 0,
            },
            _ => 0,
        }
    }

    /// Serial bytes in data mode: payload goes through the message writer
    /// into `server_out`. Returns `(bytes read, bytes written)`; unread
    /// input must be offered again (backpressure: stop the UART meanwhile).
    pub fn handle_serial_data(
        &mut self,
        input: &[u8],
        now_ms: u64,
        server_out: &mut [u8],
    ) -> (usize, usize) {
        if self.discard.is_some() {
            return (self.discard_serial(input, now_ms), 0);
        }
        let (mut read, mut written) = (0, 0);
        let charset = self.config.charset();
        while let Some(mail) = self.mail.as_mut() {
            let Phase::DataMode(part) = mail.phase else {
                break;
            };
            let name = mail.files[mail.file_count.saturating_sub(1) as usize];
            let Some(framer) = mail.framer.as_mut() else {
                break;
            };
            // Encoding grows data by 78/57 plus a part header, first; take
            // only what surely fits.
            let room = server_out.len() - written;
            let take = ((room.saturating_sub(16) / 78) * 57)
                .saturating_sub(3)
                .min(input.len() - read);
            let preamble = part_step(
                &mut mail.writer,
                part,
                charset,
                name.as_bytes(),
                b"",
                &mut server_out[written..],
                false,
            );
            let Ok((_, _, w)) = preamble else {
                self.abort(Some(SessionError::InvalidBody), 0);
                break;
            };
            written += w;
            if w > 0 {
                // The part header (or encoder output held back) went first.
                continue;
            }
            if take == 0 {
                break;
            }
            let (event, n) = framer.push(now_ms, &input[read..read + take]);
            read += n;
            match event {
                FrameEvent::Data(data) => {
                    match part_step(
                        &mut mail.writer,
                        part,
                        charset,
                        name.as_bytes(),
                        data,
                        &mut server_out[written..],
                        false,
                    ) {
                        Ok((_, r, w)) => {
                            debug_assert_eq!(
                                r,
                                data.len(),
                                "room was reserved for the whole slice"
                            );
                            written += w;
                        }
                        Err(_) => {
                            self.abort(Some(SessionError::InvalidBody), 0);
                            break;
                        }
                    }
                }
                FrameEvent::NeedMore => {
                    if read == input.len() {
                        break;
                    }
                }
                FrameEvent::End(end) => {
                    self.end_data_mode(end);
                    break;
                }
            }
        }
        (read, written)
    }

    fn end_data_mode(&mut self, end: End) {
        match end {
            End::TimeLimit => self.abort(Some(SessionError::DataTimeout), 0),
            End::Oversize => self.abort(Some(SessionError::DataTooLarge), 0),
            _ => {
                if let Some(mail) = self.mail.as_mut() {
                    if let Phase::DataMode(part) = mail.phase {
                        mail.phase = Phase::EndingPart(part);
                    }
                }
            }
        }
    }

    /// Checks the clock: data-mode ends, SMTP step timeouts, the mail's
    /// `<time>` limit.
    pub fn poll(&mut self, now_ms: u64) {
        if let Some(discard) = self.discard.as_mut() {
            loop {
                match discard.framer.poll(now_ms) {
                    FrameEvent::Data(_) => {}
                    FrameEvent::NeedMore => break,
                    FrameEvent::End(_) => {
                        self.end_discard();
                        break;
                    }
                }
            }
        }
        let Some(mail) = self.mail.as_mut() else {
            return;
        };
        if now_ms >= mail.deadline_ms && mail.phase != Phase::Quitting {
            return self.abort(None, 0);
        }
        if let Some(framer) = mail
            .framer
            .as_mut()
            .filter(|_| matches!(mail.phase, Phase::DataMode(_)))
        {
            loop {
                match framer.poll(now_ms) {
                    // Held `+` bytes that were data after all: written with the part's end.
                    FrameEvent::Data(d) => mail.pluses += d.len() as u8,
                    FrameEvent::NeedMore => break,
                    FrameEvent::End(end) => {
                        self.end_data_mode(end);
                        break;
                    }
                }
            }
        }
        if let Some(smtp) = self.mail.as_mut().and_then(|m| m.smtp.as_mut()) {
            smtp.poll(now_ms);
            self.take_smtp_events();
        }
    }

    /// When [`poll`](Self::poll) needs calling next, if ever.
    pub fn next_deadline(&self) -> Option<u64> {
        if let Some(discard) = &self.discard {
            return discard.framer.next_deadline();
        }
        let mail = self.mail.as_ref()?;
        let framer = mail.framer.as_ref().and_then(Framer::next_deadline);
        let smtp = mail.smtp.as_ref().and_then(SmtpClient::next_deadline);
        [Some(mail.deadline_ms), framer, smtp]
            .into_iter()
            .flatten()
            .min()
    }
}

/// One step of the part data mode feeds.
fn part_step(
    writer: &mut MessageWriter,
    part: Part,
    charset: crate::charset::Charset,
    name: &[u8],
    src: &[u8],
    dst: &mut [u8],
    last: bool,
) -> Result<(CoderResult, usize, usize), crate::message::MessageError> {
    match part {
        Part::Body => writer.body(src, dst, last),
        Part::File => {
            let name = Text::file_name(charset, name)
                .map_err(|_| crate::message::MessageError::OutOfOrder)?;
            writer.attachment(&name, src, dst, last)
        }
    }
}

/// The recipients as one slice (the SMTP envelope and the header block
/// borrow them), built on the stack from the configuration.
fn recipients(config: &Config) -> Option<([Recipient<'_>; MAX_RECIPIENTS], usize)> {
    let first = config.recipients().next()?;
    let mut all = [first; MAX_RECIPIENTS];
    let mut n = 0;
    for r in config.recipients() {
        all[n] = r;
        n += 1;
    }
    Some((all, n))
}

fn envelope<'a>(
    config: &'a Config,
    helo: &'a Bounded<80>,
    recipients: &'a [Recipient<'a>],
) -> Option<Envelope<'a>> {
    let (user, password) = config.login()?;
    Some(Envelope {
        helo_name: helo.as_bytes(),
        user,
        password,
        from: Address::new(user).ok()?,
        recipients,
    })
}

fn message_head<'a>(
    config: &'a Config,
    recipients: &'a [Recipient<'a>],
    date: &'a Bounded<76>,
    message_id: &'a Bounded<76>,
) -> Option<MessageHead<'a>> {
    Some(MessageHead {
        from: Address::new(config.login()?.0).ok()?,
        recipients,
        subject: config.subject(),
        date: Token::new(date.as_bytes(), true).ok()?,
        message_id: MessageId::new(message_id.as_bytes()).ok()?,
    })
}

fn render(out: &mut dyn Out, say: Say, config: &Config, verbose: bool, mail: Option<&Mail>) {
    match say {
        Say::Ok => out.put(b"\r\nOK\r\n"),
        Say::Error(e) if verbose => {
            out.put(b"\r\n+CME ERROR: ");
            out.put(e.as_str().as_bytes());
            out.put(b"\r\n");
        }
        Say::Error(_) => out.put(b"\r\nERROR\r\n"),
        Say::Read(command) => {
            let files = mail.map_or(&[][..], |m| &m.files[..m.file_count as usize]);
            config::write_read(out, config, command, files.iter().map(|f| f.as_bytes()));
        }
        Say::Test(command) => config::write_test(out, command),
        Say::Prompt => out.put(b"\r\n> "),
        Say::Count(command, n) => {
            out.put(b"\r\n+");
            out.put(command.name().as_bytes());
            out.put(b": ");
            put_decimal(out, n as u64);
            out.put(b"\r\n");
        }
        Say::Urc(code) => {
            out.put(b"\r\n+GTSMTPSEND: ");
            put_decimal(out, code as u64);
            out.put(b"\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use std::string::String;
    use std::vec::Vec;

    /// A host, a server script and the session between them.
    struct Rig {
        s: Session,
        host: Vec<u8>,
        server: Vec<u8>,
        now: u64,
    }

    impl Rig {
        fn new() -> Self {
            let mut s = Session::new();
            s.set_identity(
                Token::new(b"Wed, 25 Nov 2026 10:00:00 +0000", true).unwrap(),
                MessageId::new(b"<1@fibocom.com>").unwrap(),
            );
            Rig {
                s,
                host: Vec::new(),
                server: Vec::new(),
                now: 0,
            }
        }

        /// Runs a line; returns what the host reads back.
        fn at(&mut self, line: &[u8]) -> String {
            assert!(self.s.handle_at_line(line, self.now));
            self.pump()
        }

        fn pump(&mut self) -> String {
            let mut buf = [0u8; 5];
            let before = self.host.len();
            loop {
                let mut out = [0u8; 100];
                let n = self.s.poll_server(&mut out, self.now);
                self.server.extend_from_slice(&out[..n]);
                let h = self.s.poll_host(&mut buf);
                self.host.extend_from_slice(&buf[..h]);
                if n == 0 && h == 0 {
                    break;
                }
            }
            String::from_utf8_lossy(&self.host[before..]).into_owned()
        }

        fn reply(&mut self, bytes: &[u8]) -> String {
            let mut rest = bytes;
            while !rest.is_empty() {
                let n = self.s.handle_server(rest, self.now);
                rest = &rest[n..];
                if n == 0 {
                    break;
                }
            }
            self.pump()
        }

        fn serial(&mut self, bytes: &[u8]) {
            let mut rest = bytes;
            while !rest.is_empty() {
                let mut out = [0u8; 300];
                let (r, w) = self.s.handle_serial_data(rest, self.now, &mut out);
                self.server.extend_from_slice(&out[..w]);
                rest = &rest[r..];
                if r == 0 && w == 0 {
                    break;
                }
            }
        }

        fn wait(&mut self, ms: u64) -> String {
            self.now += ms;
            self.s.poll(self.now);
            self.pump()
        }
    }

    fn configure(rig: &mut Rig) {
        for line in [
            &b"at+gtsmtpland=25,\"mail.fibocom.com\""[..],
            b"at+gtsmtpid=\"wangww@fibocom.com\",\"ght64621178\"",
            b"at+gtsmtpdst=1,1,\"xiangj@fibocom.com\"",
            b"AT+GTSMTPEHEAD=2,\"\xc4\xe3\xba\xc3 smtp\"",
        ] {
            assert_eq!(rig.at(line), "\r\nOK\r\n");
        }
    }

    /// SEND, then the caller connects and the server greets.
    fn send_and_connect(rig: &mut Rig) {
        assert_eq!(rig.at(b"at+gtsmtpsend=300"), "\r\nOK\r\n");
        rig.s.poll_connect().unwrap();
        rig.s.handle_connected(rig.now);
        rig.reply(b"220 mx ESMTP\r\n");
    }

    /// The rest of a pipelined handshake, up to `+GTSMTPSEND: 2`.
    fn until_ready(rig: &mut Rig) {
        rig.reply(b"250-mx\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n");
        rig.reply(b"235 ok\r\n");
        assert_eq!(
            rig.reply(b"250 ok\r\n250 ok\r\n354 go\r\n"),
            "\r\n+GTSMTPSEND: 2\r\n"
        );
    }

    #[test]
    fn the_spec_case_delivers_a_whole_mail() {
        let mut rig = Rig::new();
        configure(&mut rig);
        assert_eq!(rig.at(b"at+gtsmtpsend=300"), "\r\nOK\r\n");
        let connect = rig.s.poll_connect().unwrap();
        assert_eq!(
            (connect.host, connect.port, connect.implicit_tls),
            (&b"mail.fibocom.com"[..], 25, false)
        );
        rig.s.handle_connected(rig.now);
        rig.reply(b"220 mx ESMTP\r\n");
        until_ready(&mut rig);

        assert_eq!(rig.at(b"AT+GTSMTPPDATA=300"), "\r\n> ");
        assert!(rig.s.in_data_mode());
        rig.serial(b"hello ");
        rig.now += 10;
        rig.serial(b"body");
        rig.now += 1500;
        rig.serial(b"+++");
        assert_eq!(rig.wait(1000), "\r\n+GTSMTPDATA: 10\r\n\r\nOK\r\n");

        assert_eq!(rig.at(b"at+gtsmtplib=1,\"eee.wma\""), "\r\n> ");
        let blob: Vec<u8> = (0..5000u32)
            .map(|i| if i % 100 < 3 { b'+' } else { (i * 7) as u8 })
            .collect();
        for chunk in blob.chunks(512) {
            rig.now += 5;
            rig.serial(chunk);
        }
        rig.now += 2000;
        rig.serial(b"+++");
        assert_eq!(rig.wait(1000), "\r\n+GTSMTPFILE: 5000\r\n\r\nOK\r\n");
        assert_eq!(
            rig.at(b"AT+GTSMTPFILE?"),
            "\r\n+GTSMTPFILE: \"eee.wma\"\r\n\r\nOK\r\n"
        );

        assert_eq!(rig.at(b"at+gtsmtpend"), "\r\nOK\r\n");
        assert!(rig.server.ends_with(b"--\r\n.\r\n"));
        assert_eq!(rig.reply(b"250 queued\r\n"), "\r\n+GTSMTPSEND: 1\r\n");
        assert!(rig.server.ends_with(b"QUIT\r\n"));
        rig.reply(b"221 bye\r\n");
        assert!(rig.s.poll_close());

        let wire = String::from_utf8(rig.server.clone()).unwrap();
        let message = &wire[wire.find("DATA\r\n").unwrap() + 6..wire.len() - 3 - 6];
        assert!(message.contains("Subject: =?GB2312?B?xOO6wyBzbXRw?=\r\n"));
        assert!(message.contains("From: wangww@fibocom.com\r\nTo: xiangj@fibocom.com\r\n"));
        let parts: Vec<&str> = message.split("--=_atmail_").collect();
        let decode = |part: &str| {
            let body = &part[part.find("\r\n\r\n").unwrap() + 4..];
            base64::engine::general_purpose::STANDARD
                .decode(body.replace("\r\n", ""))
                .unwrap()
        };
        assert_eq!(decode(parts[1]), b"hello body");
        assert_eq!(decode(parts[2]), blob);
        assert!(!wire.contains("ght64621178"));
    }

    #[test]
    fn failures_report_the_code_and_keep_the_configuration() {
        let mut rig = Rig::new();
        configure(&mut rig);
        send_and_connect(&mut rig);
        assert_eq!(rig.reply(b"250-mx\r\n250 AUTH PLAIN\r\n"), "");
        assert_eq!(
            rig.reply(b"535 bad credentials\r\n"),
            "\r\n+GTSMTPSEND: 535\r\n"
        );
        assert!(rig.s.poll_close());
        assert_eq!(
            rig.at(b"AT+GTSMTPDST?"),
            "\r\n+GTSMTPDST: 1,\"xiangj@fibocom.com\"\r\n\r\nOK\r\n"
        );
        // The next SEND works again.
        assert_eq!(rig.at(b"AT+GTSMTPSEND=300"), "\r\nOK\r\n");
        assert!(rig.s.poll_connect().is_some());
        rig.s.handle_closed();
        assert_eq!(rig.pump(), "\r\n+GTSMTPSEND: 0\r\n");
    }

    #[test]
    fn wrong_state_and_frozen_configuration() {
        let mut rig = Rig::new();
        rig.s.set_verbose_errors(true);
        assert_eq!(
            rig.at(b"AT+GTSMTPSEND=300"),
            "\r\n+CME ERROR: server, login and a recipient are needed\r\n"
        );
        assert_eq!(
            rig.at(b"AT+GTSMTPDATA=300"),
            "\r\n+CME ERROR: not allowed now\r\n"
        );
        configure(&mut rig);
        rig.at(b"AT+GTSMTPSEND=300");
        assert_eq!(
            rig.at(b"AT+GTSMTPDST=1,1,\"x@y.z\""),
            "\r\n+CME ERROR: mail in progress\r\n"
        );
        assert_eq!(
            rig.at(b"AT+GTSMTPFILE=0,\"a\""),
            "\r\n+CME ERROR: data already sent cannot be deleted\r\n"
        );
        assert_eq!(rig.at(b"AT+GTSMTPCLR"), "\r\nOK\r\n");
        assert!(rig.s.poll_close());
        assert_eq!(
            rig.at(b"AT+GTSMTPLAND?"),
            "\r\n+GTSMTPLAND: 0\r\n\r\nOK\r\n"
        );
    }

    #[test]
    fn data_time_limit_aborts_the_mail_without_end_of_data() {
        let mut rig = Rig::new();
        configure(&mut rig);
        send_and_connect(&mut rig);
        until_ready(&mut rig);
        rig.at(b"AT+GTSMTPDATA=2");
        rig.serial(b"partial");
        assert_eq!(rig.wait(2000), "\r\nERROR\r\n");
        assert!(rig.s.poll_close());
        assert!(!rig.server.ends_with(b".\r\n"));
    }

    #[test]
    fn a_connection_lost_while_streaming_drops_the_rest_of_the_payload() {
        let mut rig = Rig::new();
        rig.s.set_verbose_errors(true);
        configure(&mut rig);
        send_and_connect(&mut rig);
        until_ready(&mut rig);
        assert_eq!(rig.at(b"AT+GTSMTPDATA=300"), "\r\n> ");
        rig.serial(b"first part ");
        rig.s.handle_closed();
        // The host hears at once, but the line stays in data mode.
        assert_eq!(rig.pump(), "\r\n+GTSMTPSEND: 0\r\n");
        assert!(rig.s.in_data_mode());
        let sent = rig.server.len();
        rig.now += 10;
        rig.serial(b"AT+GTSMTPCLR\r\nmore payload that looks like commands\r");
        assert_eq!(rig.server.len(), sent, "nothing more goes to the server");
        assert_eq!(rig.pump(), "");
        rig.now += 1500;
        rig.serial(b"+++");
        assert_eq!(rig.wait(1000), "\r\n+CME ERROR: mail aborted\r\n");
        assert!(!rig.s.in_data_mode());
        assert_eq!(rig.s.next_deadline(), None);
        assert!(!rig.server.ends_with(b".\r\n"));
        // The configuration is kept for the next SEND.
        assert_eq!(rig.at(b"AT+GTSMTPSEND=300"), "\r\nOK\r\n");
    }

    #[test]
    fn a_discarded_data_mode_still_ends_at_its_time_limit() {
        let mut rig = Rig::new();
        configure(&mut rig);
        send_and_connect(&mut rig);
        until_ready(&mut rig);
        rig.at(b"AT+GTSMTPDATA=2");
        rig.s.handle_closed();
        assert_eq!(rig.pump(), "\r\n+GTSMTPSEND: 0\r\n");
        assert_eq!(rig.s.next_deadline(), Some(2000));
        assert_eq!(rig.wait(2000), "\r\nERROR\r\n");
        assert!(!rig.s.in_data_mode());
    }

    /// One step of a caller that may do anything in any order, including
    /// not reading the host's answers for a long while.
    #[derive(Clone, Debug)]
    enum Step {
        Line(usize),
        Serial(Vec<u8>),
        Server(usize),
        RandomServer(Vec<u8>),
        Wait(u64),
        Connected,
        Closed,
        TlsUp,
        DrainHost,
        DrainServer,
        Connect,
        Close,
        Next,
    }

    const LINES: &[&[u8]] = &[
        b"at+gtsmtpland=25,\"mail.fibocom.com\"",
        b"at+gtsmtpland=465,\"mail.fibocom.com\",1",
        b"at+gtsmtpid=\"wangww@fibocom.com\",\"ght64621178\"",
        b"at+gtsmtpdst=1,1,\"xiangj@fibocom.com\"",
        b"at+gtsmtpdst=0,1,\"xiangj@fibocom.com\"",
        b"AT+GTSMTPHEAD=2,\"\xc4\xe3\"",
        b"AT+GTSMTPSEND=100",
        b"AT+GTSMTPDATA=1,3",
        b"AT+GTSMTPDATA=300",
        b"AT+GTSMTPFILE=1,\"a.bin\",3",
        b"AT+GTSMTPFILE=0,\"a.bin\"",
        b"AT+GTSMTPEND",
        b"AT+GTSMTPCLR",
        b"AT+GTSMTPDST?",
        b"AT+GTSMTPFILE=?",
        b"AT+GTSMTPSEND=9",
    ];

    const REPLIES: &[&[u8]] = &[
        b"220 mx\r\n",
        b"250-mx\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n",
        b"250 mx\r\n",
        b"220 go ahead\r\n",
        b"235 ok\r\n",
        b"334 VXNlcm5hbWU6\r\n",
        b"250 ok\r\n",
        b"354 go\r\n",
        b"550 refused\r\n",
        b"421 closing\r\n",
        b"221 bye\r\n",
        b"250-mx\r\n250-STARTTLS\r\n250 AUTH LOGIN\r\n",
    ];

    /// A well-behaved caller and server: the spec case with PIPELINING.
    /// `Step::Next` plays its next step, so random steps fall between them.
    fn script() -> Vec<Step> {
        let drain = [Step::DrainServer, Step::DrainServer, Step::DrainHost];
        let mut script = std::vec![
            Step::Line(0),
            Step::DrainHost,
            Step::Line(2),
            Step::DrainHost,
            Step::Line(3),
            Step::DrainHost,
            Step::Line(5),
            Step::DrainHost,
            Step::Line(6),
            Step::DrainHost,
            Step::Connect,
            Step::Connected,
            Step::Server(0),
        ];
        for reply in [1, 4, 6, 6, 7] {
            script.extend(drain.clone());
            script.push(Step::Server(reply));
        }
        script.extend(drain.clone());
        script.extend([
            Step::Line(8),
            Step::DrainHost,
            Step::Serial(b"body".to_vec()),
            Step::Wait(1000),
            Step::Serial(b"+++".to_vec()),
            Step::Wait(1000),
            Step::DrainHost,
            Step::Line(9),
            Step::DrainHost,
            Step::Serial((0..=255).collect()),
            Step::Wait(3000),
            Step::DrainHost,
            Step::Line(11),
        ]);
        script.extend(drain.clone());
        script.extend([Step::Server(6), Step::DrainServer, Step::Server(10)]);
        script.extend(drain);
        script
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            80 => Just(Step::Next),
            2 => (0..LINES.len()).prop_map(Step::Line),
            3 => proptest::collection::vec(prop_oneof![Just(b'+'), any::<u8>()], 0..200)
                .prop_map(Step::Serial),
            2 => (0..REPLIES.len()).prop_map(Step::Server),
            1 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Step::RandomServer),
            2 => prop_oneof![
                8 => prop_oneof![Just(0u64), Just(10), Just(999), Just(1000), Just(3000)],
                1 => Just(200_000u64),
            ]
            .prop_map(Step::Wait),
            1 => Just(Step::Connected),
            1 => Just(Step::Closed),
            1 => Just(Step::TlsUp),
            2 => Just(Step::DrainHost),
            2 => Just(Step::DrainServer),
            1 => Just(Step::Connect),
            1 => Just(Step::Close),
        ]
    }

    fn play(rig: &mut Rig, step: &Step, script: &[Step], next: &mut usize) {
        let now = rig.now;
        let mut buf = [0u8; 300];
        match step {
            Step::Line(i) => {
                rig.s.handle_at_line(LINES[*i], now);
            }
            Step::Serial(bytes) if rig.s.in_data_mode() => {
                let (r, w) = rig.s.handle_serial_data(bytes, now, &mut buf);
                assert!(r <= bytes.len() && w <= buf.len());
                rig.server.extend_from_slice(&buf[..w]);
            }
            Step::Serial(_) => {}
            Step::Server(i) => {
                let n = rig.s.handle_server(REPLIES[*i], now);
                assert!(n <= REPLIES[*i].len());
            }
            Step::RandomServer(bytes) => {
                rig.s.handle_server(bytes, now);
            }
            Step::Wait(ms) => {
                rig.now += ms;
                rig.s.poll(rig.now);
                if let Some(deadline) = rig.s.next_deadline() {
                    assert!(deadline > rig.now || rig.s.in_data_mode() || rig.s.mail.is_some());
                }
            }
            Step::Connected => rig.s.handle_connected(now),
            Step::Closed => rig.s.handle_closed(),
            Step::TlsUp => rig.s.handle_tls_established(now),
            Step::DrainHost => {
                rig.pump();
            }
            Step::DrainServer => {
                let n = rig.s.poll_server(&mut buf, now);
                rig.server.extend_from_slice(&buf[..n]);
            }
            Step::Connect => {
                rig.s.poll_connect();
            }
            Step::Close => {
                rig.s.poll_close();
                rig.s.poll_start_tls();
            }
            Step::Next => {
                if let Some(step) = script.get(*next) {
                    *next += 1;
                    if let Step::Line(_) = step {
                        // A well-behaved host reads its answers first.
                        rig.pump();
                    }
                    play(rig, step, script, next);
                }
            }
        }
    }

    #[test]
    fn the_script_alone_delivers_a_mail() {
        let mut rig = Rig::new();
        let (script, mut next) = (script(), 0);
        while next < script.len() {
            play(&mut rig, &Step::Next, &script, &mut next);
        }
        let host = String::from_utf8_lossy(&rig.host).into_owned();
        assert!(host.ends_with("\r\n+GTSMTPSEND: 1\r\n"), "{host}");
        assert!(rig.s.poll_close());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// No order of calls makes the engine panic (debug assertions on,
        /// the host queue's among them) or answer the host with bytes that
        /// are not V.250 framed.
        #[test]
        fn any_sequence_of_calls_is_handled(steps in proptest::collection::vec(step(), 1..250)) {
            let mut rig = Rig::new();
            let (script, mut next) = (script(), 0);
            for step in &steps {
                play(&mut rig, step, &script, &mut next);
            }
            rig.pump();
            let host = String::from_utf8_lossy(&rig.host).into_owned();
            proptest::prop_assert!(host.is_empty() || host.starts_with("\r\n"), "{}", host);
            // Whole or nothing: an end-of-data only ever follows a closing
            // boundary, and there is one per transaction at most.
            let wire = &rig.server;
            let ends: Vec<usize> = (0..wire.len().saturating_sub(4))
                .filter(|&i| &wire[i..i + 5] == b"\r\n.\r\n")
                .collect();
            for &end in &ends {
                proptest::prop_assert!(wire[..end].ends_with(b"--"), "end-of-data without a closing boundary");
            }
            let mails = wire.windows(10).filter(|w| w == b"MAIL FROM:").count();
            proptest::prop_assert!(ends.len() <= mails);
        }
    }

    #[test]
    fn the_session_is_one_fixed_size_value() {
        std::println!("size_of::<Session>() = {}", core::mem::size_of::<Session>());
        assert!(core::mem::size_of::<Session>() < 8192);
    }
}
