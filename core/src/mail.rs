//! One mail from `+GTSMTPSEND` to its verdict, and the connection that
//! outlives it while it says QUIT.
//!
//! What it does: [`Mail`] is the mail transaction in one fixed slot: the
//! connection request, the [`SmtpClient`] over the caller's connection,
//! the [`MessageWriter`] that turns payload into the message, the mail's
//! identity and attachment names, its `<time>` deadline and the byte count
//! against the server's `SIZE`, the events for the caller ([`Event`]),
//! and the finished mail's connection still saying QUIT. Data-mode
//! payload is framed ([`Framer`]) and encoded straight into the caller's
//! socket buffer; the pieces between payloads (the header block, a part's
//! last line, the closing boundary) are written as the server's room
//! allows. The host hears the mail's URCs and the data commands' results
//! through [`Answers`].
//!
//! What it does not: read command lines, parse or dispatch them (that is
//! `session`), or touch a socket or a clock (the caller's, as `now_ms`).
//!
//! Why it is built this way: everything a mail owns is reset in place by
//! [`Mail::start`] rather than built as a value and moved, because the
//! slot is 2.5 KB and firmware stacks are 1 KiB; the connection of the
//! last mail is swapped into its own slot for the same reason. The phase
//! is one enum, so a mail is idle, connecting, connected in one stage, or
//! dropping the rest of a failed payload, and never two of them.

use crate::answers::{Answers, SessionError};
use crate::at::Command;
use crate::charset::Charset;
use crate::config::{Bounded, Config};
use crate::event::{Connect, Event, EventQueue, Failure, MailFailure, Queued, ServerText};
use crate::framer::{DataLimits, End, Framed, Framer};
use crate::header::{Address, Text, Token};
use crate::message::{
    Boundary, MessageError, MessageHead, MessageId, MessageWriter, Recipient, MAX_ATTACHMENTS,
};
use crate::out::put_decimal;
use crate::sasl::{Credentials, Mechanism};
use crate::session::SessionState;
use crate::smtp::{Envelope, Fault, Signal, SmtpClient, Step, TlsPolicy};
use crate::CoderResult;
use core::mem::MaybeUninit;
use core::ptr::addr_of_mut;

/// Which part data mode is feeding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    Body,
    File,
}

impl Part {
    const fn command(self) -> Command {
        match self {
            Part::Body => Command::Data,
            Part::File => Command::File,
        }
    }
}

/// What the mail reads of the session while it runs: the configuration
/// and the token, frozen by SEND, and the host's answers.
pub(crate) struct Cx<'a> {
    pub(crate) config: &'a Config,
    /// The OAuth 2.0 token (empty for none).
    pub(crate) token: &'a [u8],
    pub(crate) host: &'a mut Answers,
}

/// A data command's payload being read.
#[derive(Clone, Debug)]
struct DataMode {
    part: Part,
    framer: Framer,
    /// The LF of a CRLF host's data command line has not come yet: the
    /// first byte, if it is LF, is line ending, not payload.
    lf_due: bool,
    /// `+` bytes the framer held as a possible escape and released as data
    /// at a timer: written with the part's last line.
    pluses: u8,
}

/// A data mode that ended normally; the part's last line is being written
/// before the command's count and `OK` are said.
#[derive(Clone, Copy, Debug)]
struct Ending {
    part: Part,
    count: u64,
    pluses: u8,
}

/// Where a connected mail is.
#[derive(Clone, Debug)]
enum Stage {
    /// SMTP up to the server's 354.
    Handshake,
    /// Writing the header block.
    Head,
    /// `+GTSMTPSEND: 2` said; waiting for DATA, FILE or END.
    Ready,
    /// Host bytes are payload.
    Data(DataMode),
    /// Writing a part's last line.
    EndingPart(Ending),
    /// Writing the closing boundary.
    Closing,
    /// End-of-data sent; waiting for the server's verdict.
    Verdict,
}

/// Data mode after its mail failed: payload is read and dropped until the
/// mode ends, then the data command answers `error`.
#[derive(Clone, Debug)]
struct Discard {
    framer: Framer,
    lf_due: bool,
    error: SessionError,
}

// The slot is one fixed-size value (no heap to box into), so the largest
// variant sets the size anyway.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum Phase {
    Idle,
    /// Waiting for the caller to connect (`asked`: the connect event was taken).
    Connecting {
        asked: bool,
    },
    /// The connection is up; the SMTP client speaks over it.
    Connected {
        smtp: SmtpClient,
        stage: Stage,
    },
    Discarding(Discard),
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

/// The connection of a finished mail while it still says QUIT, in a slot
/// of its own: the client (400 bytes) is swapped in, never moved through
/// the stack.
#[derive(Debug)]
struct Quitting {
    client: SmtpClient,
    active: bool,
}

impl Quitting {
    fn get(&self) -> Option<&SmtpClient> {
        self.active.then_some(&self.client)
    }

    fn get_mut(&mut self) -> Option<&mut SmtpClient> {
        self.active.then_some(&mut self.client)
    }

    /// Takes the mail's client over; the mail is left with this slot's
    /// old one, which it drops as it ends.
    fn take_over(&mut self, smtp: &mut SmtpClient) {
        core::mem::swap(&mut self.client, smtp);
        self.active = true;
    }
}

/// The mail transaction; see the module docs.
#[derive(Debug)]
pub(crate) struct Mail {
    phase: Phase,
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
    /// The EHLO name of the connection.
    helo: Bounded<80>,
    /// The connection of a finished mail, still saying QUIT: it is no
    /// longer the mail's, so configuration is free again.
    quitting: Quitting,
    /// What the caller must act on, in order (see [`Event`]).
    events: EventQueue,
    /// The latest `now_ms` the caller gave: when a mail ends inside a call
    /// that has no clock of its own, its QUIT is timed from this.
    clock_ms: u64,
}

impl Mail {
    /// An idle slot in `slot`, field by field (see `Session::init_in`).
    #[allow(unsafe_code)]
    pub(crate) fn init_in(slot: &mut MaybeUninit<Mail>) {
        // Stops compiling when a field is added, so none is left unwritten.
        let _ = |m: Mail| {
            let Mail {
                phase: _,
                writer: _,
                identity: _,
                files: _,
                file_count: _,
                deadline_ms: _,
                body_sent: _,
                attachment_bytes: _,
                sent: _,
                helo: _,
                quitting: _,
                events: _,
                clock_ms: _,
            } = m;
        };
        let p = slot.as_mut_ptr();
        // SAFETY: `p` is valid for writes and aligned (it comes from a
        // `&mut`); each field is written through its own place, each
        // attachment name through its own element, in bounds of the array.
        unsafe {
            addr_of_mut!((*p).phase).write(Phase::Idle);
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
            addr_of_mut!((*p).helo).write(Bounded::EMPTY);
            let quitting = addr_of_mut!((*p).quitting);
            // A placeholder until a mail's client is swapped in.
            addr_of_mut!((*quitting).client).write(SmtpClient::new(TlsPolicy::Opportunistic, 0));
            addr_of_mut!((*quitting).active).write(false);
            addr_of_mut!((*p).events).write(EventQueue::EMPTY);
            addr_of_mut!((*p).clock_ms).write(0);
        }
    }

    /// A new mail, reset in place: the caller is asked for a connection
    /// once the last mail's is closed. Not inlined: the new writer is
    /// built on this frame, which is then not part of the command
    /// dispatch's (the 1 KiB firmware stack).
    #[inline(never)]
    pub(crate) fn start(&mut self, charset: Charset, identity: Identity, deadline_ms: u64) {
        let boundary = Boundary::from_seed(identity.message_id.as_bytes());
        self.identity = identity;
        self.writer = MessageWriter::new(charset, boundary);
        self.file_count = 0;
        self.deadline_ms = deadline_ms;
        self.body_sent = false;
        self.attachment_bytes = 0;
        self.sent = 0;
        self.phase = Phase::Connecting { asked: false };
        self.events.forget_failure();
    }

    /// The last failed mail's failure, for `AT+GTSMTPERR?`.
    pub(crate) fn last_failure(&self) -> Option<MailFailure> {
        self.events.last_failure()
    }

    /// `AT+GTSMTPCLR`: the mail, if any, ends without a URC.
    pub(crate) fn clear(&mut self) {
        self.release_connection();
        self.phase = Phase::Idle;
    }

    pub(crate) fn tick(&mut self, now_ms: u64) {
        self.clock_ms = self.clock_ms.max(now_ms);
    }

    pub(crate) fn is_idle(&self) -> bool {
        matches!(self.phase, Phase::Idle)
    }

    pub(crate) fn state(&self) -> SessionState {
        match &self.phase {
            Phase::Idle => SessionState::Idle,
            Phase::Discarding(_) => SessionState::Discarding,
            Phase::Connecting { .. } => SessionState::Sending,
            Phase::Connected { stage, .. } => match stage {
                Stage::Handshake | Stage::Head => SessionState::Sending,
                Stage::Ready => SessionState::Ready,
                Stage::Data(_) => SessionState::DataMode,
                Stage::EndingPart(_) | Stage::Closing | Stage::Verdict => SessionState::Finishing,
            },
        }
    }

    /// Whether a data command's final result is still owed after its data
    /// mode ended.
    pub(crate) fn owes_result(&self) -> bool {
        matches!(self.stage(), Some(Stage::EndingPart(_)))
    }

    /// The attachment names of the mail in progress.
    pub(crate) fn files(&self) -> &[Bounded<80>] {
        match self.phase {
            Phase::Connecting { .. } | Phase::Connected { .. } => {
                &self.files[..self.file_count as usize]
            }
            Phase::Idle | Phase::Discarding(_) => &[],
        }
    }

    /// Whether [`poll_event`](Self::poll_event) has an event.
    pub(crate) fn has_event(&self) -> bool {
        !self.events.is_empty() || self.connect_due()
    }

    /// The next event: the pushed ones first (a close before the next
    /// connection, a failure before the next mail's events), then a
    /// connection due.
    pub(crate) fn poll_event<'a>(&'a mut self, config: &'a Config) -> Option<Event<'a>> {
        if let Some(queued) = self.events.pop() {
            return Some(queued.event());
        }
        if !self.connect_due() {
            return None;
        }
        self.phase = Phase::Connecting { asked: true };
        connect_target(config).map(Event::Connect)
    }

    /// What [`poll_event`](Self::poll_event) would return, without taking it.
    pub(crate) fn peek_event<'a>(&'a self, config: &'a Config) -> Option<Event<'a>> {
        match self.events.front() {
            Some(queued) => Some(queued.event()),
            None if self.connect_due() => connect_target(config).map(Event::Connect),
            None => None,
        }
    }

    /// One connection at a time: a new one once the last is closed.
    fn connect_due(&self) -> bool {
        self.quitting.get().is_none() && matches!(self.phase, Phase::Connecting { asked: false })
    }

    fn stage(&self) -> Option<&Stage> {
        match &self.phase {
            Phase::Connected { stage, .. } => Some(stage),
            _ => None,
        }
    }

    fn set_stage(&mut self, next: Stage) {
        if let Phase::Connected { stage, .. } = &mut self.phase {
            *stage = next;
        }
    }

    /// The SMTP client speaking now: the mail's, or the one saying QUIT.
    fn smtp(&mut self) -> Option<&mut SmtpClient> {
        match &mut self.phase {
            Phase::Connected { smtp, .. } => Some(smtp),
            _ => self.quitting.get_mut(),
        }
    }

    /// Counts message bytes written; false once they pass the server's
    /// `SIZE` (`limit`).
    fn count(&mut self, written: usize, limit: Option<u64>) -> bool {
        self.sent += written as u64;
        limit.is_none_or(|limit| self.sent <= limit)
    }

    /// The mail waits for DATA, FILE or END.
    pub(crate) fn ready(&self) -> Result<(), SessionError> {
        match self.stage() {
            Some(Stage::Ready) => Ok(()),
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
        self.files[count].set(name);
        self.file_count += 1;
        Ok(())
    }

    /// A data command's data mode begins at `now_ms`.
    pub(crate) fn enter_data(
        &mut self,
        part: Part,
        mut limits: DataLimits,
        now_ms: u64,
        crlf: bool,
    ) -> Result<(), SessionError> {
        self.ready()?;
        if part == Part::Body && (self.body_sent || self.file_count > 0) {
            return Err(SessionError::BodyNotAllowed);
        }
        limits.max_bytes = match part {
            Part::Body => limits.max_bytes,
            Part::File => limits.max_bytes - self.attachment_bytes,
        };
        self.body_sent |= part == Part::Body;
        self.set_stage(Stage::Data(DataMode {
            part,
            framer: Framer::new(limits, now_ms),
            lf_due: crlf,
            pluses: 0,
        }));
        Ok(())
    }

    /// `AT+GTSMTPEND`: the closing boundary goes next.
    pub(crate) fn end_message(&mut self) -> Result<(), SessionError> {
        self.ready()?;
        self.set_stage(Stage::Closing);
        Ok(())
    }

    /// The connection is open; `helo` is its EHLO name.
    pub(crate) fn handle_connected(&mut self, helo: Bounded<80>, policy: TlsPolicy, now_ms: u64) {
        if let Phase::Connecting { asked: true } = self.phase {
            self.helo = helo;
            self.phase = Phase::Connected {
                smtp: SmtpClient::new(policy, now_ms),
                stage: Stage::Handshake,
            };
        }
    }

    pub(crate) fn handle_tls_established(&mut self, now_ms: u64) {
        if let Some(smtp) = self.smtp() {
            smtp.handle_tls_established(now_ms);
        }
    }

    pub(crate) fn handle_closed(&mut self, cx: &mut Cx<'_>) {
        if let Some(smtp) = self.smtp() {
            smtp.handle_closed();
            self.take_smtp_events(cx);
        } else if let Phase::Connecting { asked: true } = self.phase {
            self.fail(cx, Failure::NotConnected, 0);
        }
        // Otherwise the close is of a connection already given up (a
        // server that closes after its 221 races the caller's own close):
        // nothing of the next mail's.
    }

    pub(crate) fn handle_tls_failed(&mut self, cx: &mut Cx<'_>) {
        let tls = Fault::Tls(Step::TlsHandshake);
        match &mut self.phase {
            Phase::Connected { smtp, .. } => {
                smtp.handle_tls_failed();
                self.take_smtp_events(cx);
            }
            // SMTPS: the handshake comes before the SMTP client.
            Phase::Connecting { asked: true } => self.fail(cx, Failure::Smtp(tls), 0),
            _ => self.handle_closed(cx),
        }
    }

    /// Ends the mail with URC `urc` and says why. Not inlined: its frame
    /// is then on the stack only while a mail fails, never beside the
    /// header block's (the 1 KiB firmware stack).
    #[inline(never)]
    fn fail(&mut self, cx: &mut Cx<'_>, failure: Failure, urc: u16) {
        self.tell_failure(cx, failure);
        self.abort(cx, None, urc);
    }

    /// A SEND the caller gave no identity ended before it began: its
    /// failure is told like any other.
    pub(crate) fn identity_refused(&mut self, cx: &Cx<'_>) {
        self.events.forget_failure();
        self.tell_failure(cx, Failure::Host(SessionError::NoIdentity));
    }

    /// Queues the mail's [`Event::MailFailed`](crate::event::Event::MailFailed).
    fn tell_failure(&mut self, cx: &Cx<'_>, failure: Failure) {
        if let Some(server) = cx.config.server() {
            self.events.push(Queued::Failed(MailFailure {
                failure,
                port: server.port,
                implicit_tls: server.implicit_tls(),
            }));
        }
    }

    /// A state the design rules out: debug builds stop here; release builds
    /// end the mail at once rather than waiting for `<time>`.
    fn impossible(&mut self, cx: &mut Cx<'_>) {
        debug_assert!(false, "impossible session state");
        self.fail(cx, Failure::Internal, 0);
    }

    /// Ends the mail without delivering it: the end-of-data is never sent.
    /// The host hears the URC (`urc`) or, for an error of its own data
    /// (`error`), `ERROR`; a data command still open gets its final result,
    /// after the mode's end when the host is still streaming (see the
    /// session's module docs). Not inlined: it builds the discarding
    /// state (a framer) on its own frame, which would otherwise sit in
    /// every caller's.
    #[inline(never)]
    fn abort(&mut self, cx: &mut Cx<'_>, error: Option<SessionError>, urc: u16) {
        if let Some(error) = error {
            self.tell_failure(cx, Failure::Host(error));
        }
        self.release_connection();
        let (streaming, owed) = match self.stage() {
            Some(Stage::Data(dm)) if dm.framer.end().is_none() => {
                (Some((dm.framer.clone(), dm.lf_due)), true)
            }
            Some(Stage::Data(_) | Stage::EndingPart(_)) => (None, true),
            _ => (None, false),
        };
        let given = error.is_some();
        if !given {
            cx.host.urc(urc);
        }
        let error = error.unwrap_or(SessionError::MailAborted);
        self.phase = match streaming {
            Some((framer, lf_due)) => Phase::Discarding(Discard {
                framer,
                lf_due,
                error,
            }),
            None => {
                if owed || given {
                    cx.host.error(error);
                }
                Phase::Idle
            }
        };
    }

    /// The mail's connection is no longer the mail's: its client ends the
    /// conversation on its own (QUIT, kept as `quitting` until it says
    /// closed), or the caller closes it now.
    fn release_connection(&mut self) {
        match &mut self.phase {
            Phase::Connected { smtp, .. } => {
                smtp.quit(self.clock_ms);
                if smtp.is_done() {
                    self.events.push(Queued::Close);
                } else {
                    self.quitting.take_over(smtp);
                }
            }
            Phase::Connecting { asked: true } => self.events.push(Queued::Close),
            // No connection asked for yet (the last mail's may still be
            // saying QUIT: it is not this mail's to close).
            Phase::Connecting { asked: false } | Phase::Idle | Phase::Discarding(_) => {}
        }
    }

    pub(crate) fn handle_server(&mut self, cx: &mut Cx<'_>, input: &[u8], now_ms: u64) -> usize {
        let mut used = 0;
        while used < input.len() {
            let Some(n) = self.feed_smtp(cx, &input[used..], now_ms) else {
                // No conversation: nothing to read the bytes.
                return input.len();
            };
            used += n;
            let had_event = self.take_smtp_events(cx);
            if n == 0 && !had_event {
                break;
            }
        }
        used
    }

    /// Server bytes into the SMTP client of the mail or of the connection
    /// still saying QUIT; `None` if there is neither. Not inlined: its
    /// frame is then off the stack while the events it causes are acted
    /// on.
    #[inline(never)]
    fn feed_smtp(&mut self, cx: &Cx<'_>, input: &[u8], now_ms: u64) -> Option<usize> {
        let mail = matches!(self.phase, Phase::Connected { .. });
        let envelope = envelope(cx, &self.helo, mail);
        let smtp = match &mut self.phase {
            Phase::Connected { smtp, .. } => smtp,
            _ => self.quitting.get_mut()?,
        };
        Some(smtp.handle_input(&envelope, input, now_ms))
    }

    /// Acts on everything the SMTP client says; returns whether it said
    /// anything.
    fn take_smtp_events(&mut self, cx: &mut Cx<'_>) -> bool {
        let mut any = false;
        while self.take_smtp_event(cx) {
            any = true;
        }
        any
    }

    /// Acts on the SMTP client's next event; returns whether there was one.
    fn take_smtp_event(&mut self, cx: &mut Cx<'_>) -> bool {
        let mine = matches!(self.phase, Phase::Connected { .. });
        let Some(event) = self.smtp().and_then(SmtpClient::poll_signal) else {
            return false;
        };
        match (event, mine) {
            (Signal::StartTls, true) => self.events.push(Queued::StartTls),
            (Signal::ReadyForData, true) if matches!(self.stage(), Some(Stage::Handshake)) => {
                self.set_stage(Stage::Head)
            }
            (Signal::Delivered, true) if matches!(self.stage(), Some(Stage::Verdict)) => {
                cx.host.urc(1);
                self.release_connection();
                // Configuration is free again as soon as the URC is said.
                self.phase = Phase::Idle;
            }
            (Signal::Failed(code), true) => {
                let failure = self.failure_of(cx.config, code);
                self.fail(cx, failure, code)
            }
            (_, true) => self.impossible(cx),
            (Signal::Closed, false) => {
                self.quitting.active = false;
                self.events.push(Queued::Close);
            }
            (_, false) => {}
        }
        true
    }

    /// Why the SMTP client failed the mail with `code`.
    fn failure_of(&mut self, config: &Config, code: u16) -> Failure {
        let Some(smtp) = self.smtp() else {
            return Failure::Internal;
        };
        if let Some(fault) = smtp.failure() {
            return Failure::Smtp(fault);
        }
        if let Some((status, text)) = smtp.token_refusal() {
            return Failure::TokenRefused {
                mechanism: config.mechanism(),
                status: *status,
                code,
                text: ServerText::new(text),
            };
        }
        Failure::Refused {
            step: smtp.verdict_step(),
            code,
            text: ServerText::new(smtp.reply_text()),
        }
    }

    /// Data-mode host bytes: payload into `out`, or the rest of an aborted
    /// one. Returns `(bytes read, bytes written)`. Not inlined: the
    /// payload's frame is then not part of `handle_host`'s while a command
    /// line runs.
    #[inline(never)]
    pub(crate) fn data_input(
        &mut self,
        cx: &mut Cx<'_>,
        input: &[u8],
        now_ms: u64,
        out: &mut [u8],
    ) -> (usize, usize) {
        let lf_due = match &mut self.phase {
            Phase::Discarding(d) => &mut d.lf_due,
            Phase::Connected {
                stage: Stage::Data(dm),
                ..
            } => &mut dm.lf_due,
            _ => return (0, 0),
        };
        if core::mem::take(lf_due) && input.first() == Some(&b'\n') {
            // The LF of a CRLF host's data command line: never payload.
            return (1, 0);
        }
        match self.phase {
            Phase::Discarding(_) => (self.discard(cx, input, now_ms), 0),
            _ => self.payload(cx, input, now_ms, out),
        }
    }

    /// Data mode of a failed mail: reads to the mode's end; returns how
    /// much of `input` it took.
    fn discard(&mut self, cx: &mut Cx<'_>, input: &[u8], now_ms: u64) -> usize {
        let Phase::Discarding(discard) = &mut self.phase else {
            return 0;
        };
        let mut read = 0;
        while read < input.len() {
            let (event, n) = discard.framer.push(now_ms, &input[read..]);
            read += n;
            if let Framed::End(_) = event {
                self.end_discard(cx);
                break;
            }
        }
        read
    }

    fn end_discard(&mut self, cx: &mut Cx<'_>) {
        if let Phase::Discarding(discard) = &self.phase {
            let error = discard.error;
            self.phase = Phase::Idle;
            cx.host.error(error);
        }
    }

    /// Payload through the message writer into `out`. Returns
    /// `(bytes read, bytes written)`.
    fn payload(
        &mut self,
        cx: &mut Cx<'_>,
        input: &[u8],
        now_ms: u64,
        out: &mut [u8],
    ) -> (usize, usize) {
        let (mut read, mut written) = (0, 0);
        while let Phase::Connected {
            stage: Stage::Data(dm),
            smtp,
        } = &mut self.phase
        {
            let limit = smtp.size_limit();
            let name = &self.files[(self.file_count as usize).saturating_sub(1)];
            let step = part_step(
                &mut self.writer,
                dm.part,
                name,
                b"",
                &mut out[written..],
                false,
            );
            let Ok((_, _, w)) = step else {
                self.abort(cx, Some(SessionError::InvalidBody), 0);
                break;
            };
            if w > 0 {
                // The part header (or encoder output held back) went first.
                if !self.count(w, limit) {
                    return self.too_large(cx, limit, read, written);
                }
                written += w;
                continue;
            }
            // The framer's bytes are gone once it passes them on: take
            // only what the encoder surely takes whole.
            let take = self
                .writer
                .input_fits(out.len() - written)
                .min(input.len() - read);
            if take == 0 {
                break;
            }
            let (event, n) = dm.framer.push(now_ms, &input[read..read + take]);
            read += n;
            match event {
                Framed::Data(data) => {
                    let step = part_step(
                        &mut self.writer,
                        dm.part,
                        name,
                        data,
                        &mut out[written..],
                        false,
                    );
                    let Ok((_, r, w)) = step else {
                        self.abort(cx, Some(SessionError::InvalidBody), 0);
                        break;
                    };
                    if r < data.len() {
                        // Payload would be lost: the mail fails whole.
                        self.impossible(cx);
                        break;
                    }
                    if !self.count(w, limit) {
                        return self.too_large(cx, limit, read, written);
                    }
                    written += w;
                }
                Framed::NeedMore if read == input.len() => break,
                Framed::NeedMore => {}
                Framed::End(end) => {
                    self.end_data_mode(cx, end);
                    break;
                }
            }
        }
        (read, written)
    }

    /// The message passed the server's `SIZE`: the mail ends with 552, and
    /// the bytes that passed it are not reported as written (so never sent).
    fn too_large(
        &mut self,
        cx: &mut Cx<'_>,
        limit: Option<u64>,
        read: usize,
        written: usize,
    ) -> (usize, usize) {
        let limit = limit.unwrap_or_default();
        self.fail(cx, Failure::TooLarge { limit }, 552);
        (read, written)
    }

    fn end_data_mode(&mut self, cx: &mut Cx<'_>, end: End) {
        match end {
            End::TimeLimit => self.abort(cx, Some(SessionError::DataTimeout), 0),
            End::Oversize => self.abort(cx, Some(SessionError::DataTooLarge), 0),
            End::Escape | End::Idle => {
                if let Some(Stage::Data(dm)) = self.stage() {
                    let ending = Ending {
                        part: dm.part,
                        count: dm.framer.payload_len(),
                        pluses: dm.pluses,
                    };
                    self.set_stage(Stage::EndingPart(ending));
                }
            }
        }
    }

    pub(crate) fn poll_server(&mut self, cx: &mut Cx<'_>, dst: &mut [u8], now_ms: u64) -> usize {
        let written = self.write_message(cx, dst, now_ms);
        written + self.transmit(cx, &mut dst[written..])
    }

    /// SMTP commands of the mail's client, or of the connection still
    /// saying QUIT. Not inlined, for the reason `feed_smtp` is not.
    #[inline(never)]
    fn transmit(&mut self, cx: &Cx<'_>, dst: &mut [u8]) -> usize {
        let mail = matches!(self.phase, Phase::Connected { .. });
        let envelope = envelope(cx, &self.helo, mail);
        let smtp = match &mut self.phase {
            Phase::Connected { smtp, .. } => Some(smtp),
            _ => self.quitting.get_mut(),
        };
        smtp.map_or(0, |smtp| smtp.poll_transmit(&envelope, dst))
    }

    /// The message pieces the mail writes between payloads: the header
    /// block, a part's last line, the closing boundary. Not inlined: it is
    /// called from `poll_server` and `handle_host`, and inlined into either
    /// it adds its frame to theirs (past the 1 KiB firmware stack).
    #[inline(never)]
    pub(crate) fn write_message(&mut self, cx: &mut Cx<'_>, dst: &mut [u8], now_ms: u64) -> usize {
        let Phase::Connected { smtp, stage } = &mut self.phase else {
            return 0;
        };
        let limit = smtp.size_limit();
        let written = match stage {
            Stage::Head => match write_head(cx.config, &self.identity, &mut self.writer, dst) {
                Ok((CoderResult::InputEmpty, w)) => {
                    *stage = Stage::Ready;
                    cx.host.urc(2);
                    w
                }
                Ok((CoderResult::OutputFull, w)) => w,
                Err(_) => {
                    self.impossible(cx);
                    0
                }
            },
            Stage::EndingPart(ending) => {
                let held = &b"+++"[..ending.pluses as usize];
                let name = &self.files[(self.file_count as usize).saturating_sub(1)];
                match part_step(&mut self.writer, ending.part, name, held, dst, true) {
                    Ok((r, read, w)) => {
                        ending.pluses -= read as u8;
                        if r == CoderResult::InputEmpty {
                            let Ending { part, count, .. } = *ending;
                            if part == Part::File {
                                self.attachment_bytes += count;
                            }
                            *stage = Stage::Ready;
                            cx.host.say(|out| {
                                out.put(b"\r\n+");
                                out.put(part.command().name().as_bytes());
                                out.put(b": ");
                                put_decimal(out, count);
                                out.put(b"\r\n\r\nOK\r\n");
                            });
                        }
                        w
                    }
                    Err(_) => {
                        self.abort(cx, Some(SessionError::InvalidBody), 0);
                        0
                    }
                }
            }
            Stage::Closing => match self.writer.finish(dst) {
                Ok((CoderResult::InputEmpty, w)) => {
                    *stage = Stage::Verdict;
                    smtp.end_data(now_ms);
                    w
                }
                Ok((CoderResult::OutputFull, w)) => w,
                Err(_) => {
                    self.impossible(cx);
                    0
                }
            },
            _ => 0,
        };
        // The step may have ended the mail; then nothing is counted.
        let over = matches!(self.phase, Phase::Connected { .. }) && !self.count(written, limit);
        if over {
            return self.too_large(cx, limit, 0, 0).1;
        }
        written
    }

    pub(crate) fn handle_timeout(&mut self, cx: &mut Cx<'_>, now_ms: u64) {
        if let Phase::Discarding(discard) = &mut self.phase {
            loop {
                match discard.framer.poll(now_ms) {
                    Framed::Data(_) => {}
                    Framed::NeedMore => break,
                    Framed::End(_) => {
                        self.end_discard(cx);
                        break;
                    }
                }
            }
        }
        // Once the end of data is sent, the verdict is the server's: a
        // mail it may have accepted is never reported as failed.
        let step = match &self.phase {
            Phase::Connecting { .. } => Some(None),
            Phase::Connected { smtp, stage } if !matches!(stage, Stage::Verdict) => {
                Some(Some(smtp.step()))
            }
            _ => None,
        };
        if let Some(step) = step.filter(|_| now_ms >= self.deadline_ms) {
            return self.fail(cx, Failure::TimeLimit(step), 0);
        }
        if let Some(Stage::Data(_)) = self.stage() {
            self.data_timers(cx, now_ms);
        }
        if let Some(smtp) = self.smtp() {
            smtp.handle_timeout(now_ms);
            self.take_smtp_events(cx);
        }
    }

    fn data_timers(&mut self, cx: &mut Cx<'_>, now_ms: u64) {
        let Phase::Connected {
            stage: Stage::Data(dm),
            ..
        } = &mut self.phase
        else {
            return;
        };
        loop {
            match dm.framer.poll(now_ms) {
                // Held `+` bytes that were data after all: written with the part's end.
                Framed::Data(d) => dm.pluses += d.len() as u8,
                Framed::NeedMore => break,
                Framed::End(end) => {
                    self.end_data_mode(cx, end);
                    break;
                }
            }
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<u64> {
        let quit = self.quitting.get().and_then(SmtpClient::next_deadline);
        let (framer, smtp, limit) = match &self.phase {
            Phase::Idle => (None, None, None),
            Phase::Discarding(discard) => (discard.framer.next_deadline(), None, None),
            Phase::Connecting { .. } => (None, None, Some(self.deadline_ms)),
            Phase::Connected { smtp, stage } => (
                match stage {
                    Stage::Data(dm) => dm.framer.next_deadline(),
                    _ => None,
                },
                smtp.next_deadline(),
                (!matches!(stage, Stage::Verdict)).then_some(self.deadline_ms),
            ),
        };
        [limit, framer, smtp, quit].into_iter().flatten().min()
    }
}

fn connect_target(config: &Config) -> Option<Connect<'_>> {
    let server = config.server()?;
    Some(Connect {
        host: server.host.as_bytes(),
        port: server.port,
        implicit_tls: server.implicit_tls(),
    })
}

/// One step of the part data mode feeds.
fn part_step(
    writer: &mut MessageWriter,
    part: Part,
    name: &Bounded<80>,
    src: &[u8],
    dst: &mut [u8],
    last: bool,
) -> Result<(CoderResult, usize, usize), MessageError> {
    match part {
        Part::Body => writer.body(src, dst, last),
        Part::File => {
            // Validated in the session charset when FILE came.
            let name = Text::trusted(writer.charset(), name.as_bytes());
            writer.attachment(&name, src, dst, last)
        }
    }
}

/// What the SMTP client reads of the mail: the configuration, frozen and
/// validated by SEND while `mail` is in progress; nothing of it for the
/// QUIT of a finished mail, whose configuration may have changed since.
fn envelope<'a>(cx: &Cx<'a>, helo: &'a Bounded<80>, mail: bool) -> Envelope<'a> {
    const NONE: &[Recipient<'static>; 0] = &[];
    let config = cx.config;
    let login = config.login().filter(|_| mail);
    let (user, password) = login.unwrap_or((b"", b""));
    Envelope {
        helo_name: helo.as_bytes(),
        user,
        credentials: credentials(config, cx.token, password),
        from: login.map_or(Address::NONE, |_| Address::trusted(user)),
        recipients: if mail { config.recipient_list() } else { NONE },
    }
}

/// What the mail signs in with, as `+GTSMTPAUTH` chose.
fn credentials<'a>(config: &'a Config, token: &'a [u8], password: &'a [u8]) -> Credentials<'a> {
    match config.mechanism() {
        Mechanism::XOAuth2 => Credentials::XOAuth2 { token },
        Mechanism::OAuthBearer => Credentials::OAuthBearer {
            token,
            host: config.server().map_or(&b""[..], |s| s.host.as_bytes()),
            port: config.server().map_or(0, |s| s.port),
        },
        _ => Credentials::Password(password),
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
