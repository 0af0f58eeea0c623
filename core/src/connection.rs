//! One SMTP connection: how it is asked for, lives and ends, with the
//! mail it carries.
//!
//! What it does: [`Connection`] owns the [`SmtpClient`] of the mail in
//! progress and, in a slot of its own, the client of a finished mail
//! still saying QUIT; it asks the caller for a connection once the last
//! one is closed (`connect_due`), says when to start TLS and when to
//! close ([`Event`]), chooses the EHLO name and the TLS policy, and
//! turns the client's signals into the mail's progress and verdict. It
//! drives the [`Mail`] (the message) and puts the message's bytes where
//! the client says they go on the wire (`DATA`'s room, or the `BDAT`
//! chunk staged in the caller's [`ChunkStore`], which it holds), and it
//! says which transfer a mail may use: `+GTSMTPBDAT`'s mode when there
//! is chunk storage that holds the whole header block. What the host
//! should hear it tells through [`Host::notice`] as typed [`Notice`]s,
//! in the order they happen.
//!
//! What it does not: read the serial line, frame data mode, or write host
//! text (`session`); write the message (`mail`); speak SMTP (`smtp`);
//! touch a socket or a clock (the caller's, as `now_ms`, first in every
//! call that can change time).
//!
//! Why it is built this way: it is the shape of quinn-proto's
//! `Connection`: the session above owns everything the host hears, this
//! owns the conversation and its life, the mail below owns the message.
//! The client (400 bytes) is swapped into the QUIT slot, never moved
//! through the 1 KiB firmware stack.

use crate::answers::SessionError;
use crate::charset::Charset;
use crate::chunk::ChunkStore;
use crate::config::{Bounded, Config, Transfer};
use crate::ehlo::{address_literal, LOOPBACK_LITERAL};
use crate::event::{Connect, Event, EventQueue, Failure, MailFailure, Queued, ServerText};
use crate::header::Address;
use crate::mail::{Identity, Mail, MailError, Part, Piece, Stage};
use crate::message::{Encoding, Recipient};
use crate::sasl::{Credentials, Mechanism};
use crate::smtp::{Envelope, Fault, Framing, Signal, SmtpClient, Step, TlsPolicy};
use core::mem::MaybeUninit;
use core::net::IpAddr;
use core::ptr::addr_of_mut;

/// What the host should hear of the mail, as it happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Notice {
    /// The header block is written (`+GTSMTPSEND: 2`).
    HeadWritten,
    /// A part's last line is written: its data command's result is due.
    PartWritten,
    /// The server accepted the mail (`+GTSMTPSEND: 1`).
    Delivered,
    /// The mail ended undelivered: URC `urc` (none for an error of the
    /// host's own data, which is answered `error` instead); a data
    /// command still open gets `error` as its result.
    Aborted {
        urc: Option<u16>,
        error: SessionError,
    },
}

/// Where the notices go (the session, which renders them for the host).
pub(crate) trait Host {
    fn notice(&mut self, notice: Notice);
}

/// What the connection reads of the rest while it runs: the
/// configuration and the token, frozen by SEND, and the host's ear.
pub(crate) struct Cx<'a> {
    pub(crate) config: &'a Config,
    /// The OAuth 2.0 token (empty for none).
    pub(crate) token: &'a [u8],
    pub(crate) host: &'a mut dyn Host,
}

/// Where the mail is, as far as the connection knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MailState {
    Idle,
    /// Connecting, the SMTP handshake, the header block.
    Sending,
    /// Waiting for DATA, FILE or END.
    Ready,
    /// A part's payload is streaming.
    Data,
    /// A part's last line, the closing boundary, the verdict.
    Finishing,
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
    },
}

/// The connection of a finished mail while it still says QUIT.
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

/// The connection and its mail; see the module docs.
#[derive(Debug)]
pub(crate) struct Connection {
    phase: Phase,
    mail: Mail,
    /// The EHLO name of the connection.
    helo: Bounded<80>,
    /// The connection of a finished mail, still saying QUIT: it is no
    /// longer the mail's, so configuration is free again.
    quitting: Quitting,
    /// What the caller must act on, in order (see [`Event`]).
    events: EventQueue,
    /// `BDAT` chunks, in the caller's storage.
    chunks: ChunkStore,
    /// How the mail on this connection may cross the wire.
    transfer: Transfer,
    /// The caller replaced or took the chunk storage while the mail sent
    /// chunks from it.
    storage_gone: bool,
    /// `BDAT`: message bytes written past the store's room (a base64
    /// group, a line end), staged first once the full chunk has gone:
    /// so every chunk but the last is exactly the storage's size,
    /// whatever the encoder's granularity.
    spill: Spill,
}

/// See [`Connection::spill`].
#[derive(Clone, Copy)]
struct Spill {
    bytes: [u8; SPILL],
    len: u8,
}

/// The most message bytes a write may put past the store's room: more
/// than any piece the writer cannot split (a base64 group and its CRLF).
const SPILL: usize = 16;

/// The length only: the bytes are the user's message.
impl core::fmt::Debug for Spill {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Spill").field("len", &self.len).finish()
    }
}

impl Spill {
    const EMPTY: Spill = Spill {
        bytes: [0; SPILL],
        len: 0,
    };

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stages the spilled bytes once `chunks` has room for all of them
    /// (after a chunk has gone it has its whole capacity, at least the
    /// header block's): whole, so nothing is shifted (a `memmove` would
    /// cost 1.5 KB of firmware flash).
    fn unspill(&mut self, chunks: &mut ChunkStore) {
        let len = self.len as usize;
        if len > 0 && chunks.room() >= len && chunks.stage(&self.bytes[..len]) == len {
            self.len = 0;
        }
    }

    /// Message bytes written: staged, the rest (at most [`SPILL`]) kept.
    /// Bytes come only while nothing is kept (the room says so).
    fn stage(&mut self, chunks: &mut ChunkStore, bytes: &[u8]) -> Result<(), MailError> {
        let rest = &bytes[chunks.stage(bytes)..];
        if rest.is_empty() {
            return Ok(());
        }
        let kept = self
            .bytes
            .get_mut(..rest.len())
            .ok_or(MailError::Impossible)?;
        kept.copy_from_slice(rest);
        self.len = rest.len() as u8;
        Ok(())
    }
}

impl Connection {
    /// No connection, in `slot`, field by field (see `Session::init_in`).
    #[allow(unsafe_code)]
    pub(crate) fn init_in(slot: &mut MaybeUninit<Connection>) {
        // Stops compiling when a field is added, so none is left unwritten.
        let _ = |c: Connection| {
            let Connection {
                phase: _,
                mail: _,
                helo: _,
                quitting: _,
                events: _,
                chunks: _,
                transfer: _,
                storage_gone: _,
                spill: _,
            } = c;
        };
        let p = slot.as_mut_ptr();
        // SAFETY: `p` is valid for writes and aligned (it comes from a
        // `&mut`); each field is written through its own place.
        unsafe {
            addr_of_mut!((*p).phase).write(Phase::Idle);
            Mail::init_in(&mut *addr_of_mut!((*p).mail).cast());
            addr_of_mut!((*p).helo).write(Bounded::EMPTY);
            let quitting = addr_of_mut!((*p).quitting);
            // A placeholder until a mail's client is swapped in.
            addr_of_mut!((*quitting).client).write(SmtpClient::new(0, TlsPolicy::Opportunistic));
            addr_of_mut!((*quitting).active).write(false);
            addr_of_mut!((*p).events).write(EventQueue::EMPTY);
            addr_of_mut!((*p).chunks).write(ChunkStore::new());
            addr_of_mut!((*p).transfer).write(Transfer::Off);
            addr_of_mut!((*p).storage_gone).write(false);
            addr_of_mut!((*p).spill).write(Spill::EMPTY);
        }
    }

    /// Memory for `BDAT` chunks; the storage given before is wiped and
    /// returned. A mail sending chunks from it fails at the next call that
    /// would stage or send one (its staged bytes are gone: nothing is
    /// delivered).
    pub(crate) fn set_chunk_storage(
        &mut self,
        mem: &'static mut [u8],
    ) -> Option<&'static mut [u8]> {
        self.storage_gone |= self.may_send_chunks();
        self.chunks.set_storage(mem)
    }

    /// Takes the chunk storage back, wiped: `DATA` from now on (as
    /// [`set_chunk_storage`](Self::set_chunk_storage) for a mail sending
    /// chunks).
    pub(crate) fn take_chunk_storage(&mut self) -> Option<&'static mut [u8]> {
        self.storage_gone |= self.may_send_chunks();
        self.chunks.take_storage()
    }

    /// Whether the connection's mail may send chunks: it chose `BDAT` at
    /// connect (the header block fitted the storage then), even if the
    /// server has not said yet whether it takes them. A storage change
    /// then is judged when the framing is known.
    fn may_send_chunks(&self) -> bool {
        matches!(self.phase, Phase::Connected { .. }) && self.transfer != Transfer::Off
    }

    /// Whether the mail's message goes as chunks and is not all on the
    /// wire.
    fn sends_chunks(&self) -> bool {
        match &self.phase {
            Phase::Connected { smtp } => smtp.framing().is_bdat() && smtp.sending_message(),
            _ => false,
        }
    }

    /// A mail whose chunk storage went fails, before anything else is
    /// staged or sent; returns whether it did. Not inlined: two callers
    /// (firmware flash).
    #[inline(never)]
    fn storage_went(&mut self, now_ms: u64, cx: &mut Cx<'_>) -> bool {
        if !self.sends_chunks() {
            // Not (yet) sending chunks: judged again when it is.
            return false;
        }
        self.storage_gone = false;
        let gone = Failure::Host(SessionError::ChunkStorageGone);
        self.fail(now_ms, cx, gone, 0);
        true
    }

    /// A new mail: the caller is asked for a connection once the last
    /// mail's is closed.
    pub(crate) fn start(&mut self, charset: Charset, identity: Identity, deadline_ms: u64) {
        self.mail.start(charset, identity, deadline_ms);
        self.phase = Phase::Connecting { asked: false };
        self.events.forget_failure();
    }

    /// The last failed mail's failure, for `AT+GTSMTPERR?`.
    pub(crate) fn last_failure(&self) -> Option<MailFailure> {
        self.events.last_failure()
    }

    /// `AT+GTSMTPCLR`: the mail, if any, ends without a notice.
    pub(crate) fn clear(&mut self, now_ms: u64) {
        self.release(now_ms);
        self.phase = Phase::Idle;
    }

    pub(crate) fn is_idle(&self) -> bool {
        matches!(self.phase, Phase::Idle)
    }

    pub(crate) fn state(&self) -> MailState {
        match &self.phase {
            Phase::Idle => MailState::Idle,
            Phase::Connecting { .. } => MailState::Sending,
            Phase::Connected { .. } => match self.mail.stage() {
                Stage::Waiting | Stage::Head => MailState::Sending,
                Stage::Ready => MailState::Ready,
                Stage::Data(_) => MailState::Data,
                Stage::Ending { .. } | Stage::Closing | Stage::Written => MailState::Finishing,
            },
        }
    }

    /// The attachment names of the mail in progress.
    pub(crate) fn files(&self) -> &[Bounded<80>] {
        match self.phase {
            Phase::Idle => &[],
            _ => self.mail.files(),
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

    /// The SMTP client speaking now: the mail's, or the one saying QUIT.
    fn smtp(&mut self) -> Option<&mut SmtpClient> {
        match &mut self.phase {
            Phase::Connected { smtp } => Some(smtp),
            _ => self.quitting.get_mut(),
        }
    }

    /// `AT+GTSMTPFILE=1,<name>`.
    pub(crate) fn add_file(&mut self, name: &[u8]) -> Result<(), SessionError> {
        self.mail.add_file(name)
    }

    /// A data command's part begins; returns the most payload it may
    /// have, of `max_bytes`.
    pub(crate) fn begin_part(&mut self, part: Part, max_bytes: u64) -> Result<u64, SessionError> {
        match self.phase {
            Phase::Connected { .. } => self.mail.begin_part(part, max_bytes),
            _ => Err(SessionError::WrongState),
        }
    }

    /// The part's payload ended normally after `count` bytes, `pluses`
    /// of them held `+` bytes still to write.
    pub(crate) fn end_part(&mut self, count: u64, pluses: u8) {
        self.mail.end_part(count, pluses);
    }

    /// `AT+GTSMTPEND`: the closing boundary goes next.
    pub(crate) fn end_message(&mut self) -> Result<(), SessionError> {
        match self.phase {
            Phase::Connected { .. } => self.mail.end_message(),
            _ => Err(SessionError::WrongState),
        }
    }

    /// The connection is open at `now_ms`; `local` is its local end,
    /// `helo_name` the caller's EHLO name, if it set one.
    pub(crate) fn handle_connected(
        &mut self,
        now_ms: u64,
        config: &Config,
        local: Option<IpAddr>,
        helo_name: Option<&Bounded<80>>,
        require_tls: bool,
    ) {
        if let Phase::Connecting { asked: true } = self.phase {
            self.helo = match (helo_name, local) {
                (Some(name), _) => *name,
                (None, Some(ip)) => address_literal(ip),
                (None, None) => Bounded::from_slice(LOOPBACK_LITERAL),
            };
            let policy = tls_policy(config, require_tls);
            // The whole header block goes in the first chunk, or the
            // mail goes by DATA.
            self.chunks.reset();
            self.spill = Spill::EMPTY;
            self.storage_gone = false;
            let fits = self.chunks.capacity() > 0 && self.chunks.fits(self.mail.head_bound(config));
            self.transfer = match fits {
                true => config.transfer(),
                false => Transfer::Off,
            };
            self.phase = Phase::Connected {
                smtp: SmtpClient::new(now_ms, policy),
            };
        }
    }

    pub(crate) fn handle_tls_established(&mut self, now_ms: u64) {
        if let Some(smtp) = self.smtp() {
            smtp.handle_tls_established(now_ms);
        }
    }

    pub(crate) fn handle_closed(&mut self, now_ms: u64, cx: &mut Cx<'_>) {
        if let Some(smtp) = self.smtp() {
            smtp.handle_closed();
            self.take_smtp_events(now_ms, cx);
        } else if let Phase::Connecting { asked: true } = self.phase {
            self.fail(now_ms, cx, Failure::NotConnected, 0);
        }
        // Otherwise the close is of a connection already given up (a
        // server that closes after its 221 races the caller's own close):
        // nothing of the next mail's.
    }

    pub(crate) fn handle_tls_failed(&mut self, now_ms: u64, cx: &mut Cx<'_>) {
        let tls = Fault::Tls(Step::TlsHandshake);
        match &mut self.phase {
            Phase::Connected { smtp } => {
                smtp.handle_tls_failed();
                self.take_smtp_events(now_ms, cx);
            }
            // SMTPS: the handshake comes before the SMTP client.
            Phase::Connecting { asked: true } => self.fail(now_ms, cx, Failure::Smtp(tls), 0),
            _ => self.handle_closed(now_ms, cx),
        }
    }

    /// Ends the mail with URC `urc` and says why. Not inlined: its frame
    /// is then on the stack only while a mail fails, never beside the
    /// header block's (the 1 KiB firmware stack).
    #[inline(never)]
    fn fail(&mut self, now_ms: u64, cx: &mut Cx<'_>, failure: Failure, urc: u16) {
        self.tell_failure(cx.config, failure);
        self.abort(now_ms, cx, None, urc);
    }

    /// A SEND the caller gave no identity ended before it began: its
    /// failure is told like any other.
    pub(crate) fn identity_refused(&mut self, config: &Config) {
        self.events.forget_failure();
        self.tell_failure(config, Failure::Host(SessionError::NoIdentity));
    }

    /// Queues [`Failure::Host`]. Not inlined: the failure (130 bytes) is
    /// then built on this frame, not on `abort`'s, which is on the stack
    /// while the host hears of it.
    #[inline(never)]
    fn tell_host_error(&mut self, config: &Config, error: SessionError) {
        self.tell_failure(config, Failure::Host(error));
    }

    /// Queues the mail's [`Event::MailFailed`].
    fn tell_failure(&mut self, config: &Config, failure: Failure) {
        if let Some(server) = config.server() {
            self.events.push(Queued::Failed(MailFailure {
                failure,
                port: server.port,
                implicit_tls: server.implicit_tls(),
            }));
        }
    }

    /// A state the design rules out: debug builds stop here; release builds
    /// end the mail at once rather than waiting for `<time>`.
    fn impossible(&mut self, now_ms: u64, cx: &mut Cx<'_>) {
        debug_assert!(false, "impossible connection state");
        self.fail(now_ms, cx, Failure::Internal, 0);
    }

    /// Ends the mail without delivering it: the end of the message is
    /// never sent. The host is told with URC `urc`, or, for an error of
    /// its own data (`error`), with that error and no URC.
    pub(crate) fn abort(
        &mut self,
        now_ms: u64,
        cx: &mut Cx<'_>,
        error: Option<SessionError>,
        urc: u16,
    ) {
        if let Some(error) = error {
            self.tell_host_error(cx.config, error);
        }
        self.release(now_ms);
        self.phase = Phase::Idle;
        cx.host.notice(Notice::Aborted {
            urc: error.is_none().then_some(urc),
            error: error.unwrap_or(SessionError::MailAborted),
        });
    }

    /// Acts on a [`MailError`] of the message.
    fn mail_failed(&mut self, now_ms: u64, cx: &mut Cx<'_>, error: MailError) {
        match error {
            MailError::TooLarge { limit } => {
                self.fail(now_ms, cx, Failure::TooLarge { limit }, 552)
            }
            MailError::InvalidBody => self.abort(now_ms, cx, Some(SessionError::InvalidBody), 0),
            MailError::BoundaryInPart => {
                self.abort(now_ms, cx, Some(SessionError::BoundaryInPart), 0)
            }
            MailError::Impossible => self.impossible(now_ms, cx),
        }
    }

    /// The mail's connection is no longer the mail's: its client ends the
    /// conversation on its own (QUIT, kept as `quitting` until it says
    /// closed), or the caller closes it now.
    fn release(&mut self, now_ms: u64) {
        self.chunks.wipe();
        self.spill = Spill::EMPTY;
        match &mut self.phase {
            Phase::Connected { smtp } => {
                smtp.quit(now_ms);
                if smtp.is_done() {
                    self.events.push(Queued::Close);
                } else {
                    self.quitting.take_over(smtp);
                }
            }
            Phase::Connecting { asked: true } => self.events.push(Queued::Close),
            // No connection asked for yet (the last mail's may still be
            // saying QUIT: it is not this mail's to close).
            Phase::Connecting { asked: false } | Phase::Idle => {}
        }
    }

    pub(crate) fn handle_server(&mut self, now_ms: u64, cx: &mut Cx<'_>, input: &[u8]) -> usize {
        let mut used = 0;
        while used < input.len() {
            let Some(n) = self.feed_smtp(now_ms, cx, &input[used..]) else {
                // No conversation: nothing to read the bytes.
                return input.len();
            };
            used += n;
            let had_event = self.take_smtp_events(now_ms, cx);
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
    fn feed_smtp(&mut self, now_ms: u64, cx: &Cx<'_>, input: &[u8]) -> Option<usize> {
        let mail = matches!(self.phase, Phase::Connected { .. });
        let envelope = envelope(cx.config, cx.token, &self.helo, mail, self.transfer);
        let smtp = match &mut self.phase {
            Phase::Connected { smtp } => smtp,
            _ => self.quitting.get_mut()?,
        };
        Some(smtp.handle_input(now_ms, &envelope, input))
    }

    /// Acts on everything the SMTP client says; returns whether it said
    /// anything.
    fn take_smtp_events(&mut self, now_ms: u64, cx: &mut Cx<'_>) -> bool {
        let mut any = false;
        while self.take_smtp_event(now_ms, cx) {
            any = true;
        }
        any
    }

    /// Acts on the SMTP client's next signal; returns whether there was one.
    fn take_smtp_event(&mut self, now_ms: u64, cx: &mut Cx<'_>) -> bool {
        let mine = matches!(self.phase, Phase::Connected { .. });
        let Some(signal) = self.smtp().and_then(SmtpClient::poll_signal) else {
            return false;
        };
        match (signal, mine) {
            (Signal::StartTls, true) => self.events.push(Queued::StartTls),
            (Signal::ReadyForData, true) => {
                let encoding = self.encoding();
                if !self.mail.go_ahead(encoding) {
                    self.impossible(now_ms, cx);
                }
            }
            (Signal::Delivered, true) if self.mail.is_written() => {
                cx.host.notice(Notice::Delivered);
                self.release(now_ms);
                // Configuration is free again as soon as the URC is said.
                self.phase = Phase::Idle;
            }
            (Signal::Failed(code), true) => {
                let failure = self.failure_of(cx.config, code);
                self.fail(now_ms, cx, failure, code)
            }
            (_, true) => self.impossible(now_ms, cx),
            (Signal::Closed, false) => {
                self.quitting.active = false;
                self.events.push(Queued::Close);
            }
            (_, false) => {}
        }
        true
    }

    /// How the mail's parts are written: binary with `BODY=BINARYMIME`.
    fn encoding(&mut self) -> Encoding {
        match self.smtp().map(|smtp| smtp.framing()) {
            Some(Framing::Bdat { binary: true }) => Encoding::Binary,
            _ => Encoding::Base64,
        }
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

    /// The most payload bytes the streaming part surely takes whole into
    /// `room` bytes for the server (and, for `BDAT`, the chunk's room).
    pub(crate) fn input_fits(&self, room: usize) -> usize {
        let room = match &self.phase {
            Phase::Connected { smtp } if smtp.framing().is_bdat() => {
                match self.spill.is_empty() && !self.chunks.is_draining() {
                    true => room.min(self.chunks.room() + SPILL),
                    false => 0,
                }
            }
            _ => room,
        };
        self.mail.input_fits(room)
    }

    /// Payload of the streaming part (`src` empty: its header and any
    /// output held back) into `dst`; returns bytes written, or `None`
    /// when the mail ended on it (the host was told).
    pub(crate) fn payload(
        &mut self,
        now_ms: u64,
        cx: &mut Cx<'_>,
        src: &[u8],
        dst: &mut [u8],
    ) -> Option<usize> {
        if self.storage_gone && self.storage_went(now_ms, cx) {
            return None;
        }
        let Phase::Connected { smtp } = &mut self.phase else {
            return None;
        };
        let bdat = smtp.framing().is_bdat();
        if bdat && src.is_empty() {
            // A full chunk goes before more of the message is staged.
            let sent = smtp.poll_chunk(&mut self.chunks, dst);
            if sent > 0 {
                return Some(sent);
            }
            self.spill.unspill(&mut self.chunks);
        }
        let limit = smtp.size_limit();
        let slack = if self.spill.is_empty() { SPILL } else { 0 };
        let room = smtp.message_room(&self.chunks, slack, dst);
        let written = self
            .mail
            .payload(src, room, limit)
            .and_then(|w| match bdat {
                true => self.spill.stage(&mut self.chunks, &dst[..w]).map(|()| 0),
                false => Ok(w),
            });
        match written {
            Ok(written) => Some(written),
            Err(error) => {
                self.mail_failed(now_ms, cx, error);
                None
            }
        }
    }

    /// Bytes for the server: the message piece due, then the SMTP
    /// client's commands (of the mail, or of the connection saying QUIT).
    pub(crate) fn poll_transmit(&mut self, now_ms: u64, cx: &mut Cx<'_>, dst: &mut [u8]) -> usize {
        let written = self.write_message(now_ms, cx, dst);
        written + self.transmit(cx, &mut dst[written..])
    }

    /// SMTP commands of the mail's client, or of the connection still
    /// saying QUIT. Not inlined, for the reason `feed_smtp` is not.
    #[inline(never)]
    fn transmit(&mut self, cx: &Cx<'_>, dst: &mut [u8]) -> usize {
        let mail = matches!(self.phase, Phase::Connected { .. });
        let envelope = envelope(cx.config, cx.token, &self.helo, mail, self.transfer);
        let smtp = match &mut self.phase {
            Phase::Connected { smtp } => Some(smtp),
            _ => self.quitting.get_mut(),
        };
        smtp.map_or(0, |smtp| {
            smtp.poll_transmit(&envelope, &mut self.chunks, dst)
        })
    }

    /// The message piece due between payloads (the header block, a
    /// part's last line, the closing boundary), in the room the SMTP
    /// client gives it; for `BDAT`, with the chunks that fill as it is
    /// staged, and the `LAST` one. Returns bytes on the wire. Not inlined:
    /// it is called from the host's and the server's paths, and inlined
    /// into either it adds its frame to theirs (past the 1 KiB firmware
    /// stack).
    #[inline(never)]
    pub(crate) fn write_message(&mut self, now_ms: u64, cx: &mut Cx<'_>, dst: &mut [u8]) -> usize {
        if self.storage_gone && self.storage_went(now_ms, cx) {
            return 0;
        }
        let mut on_wire = 0;
        loop {
            let Phase::Connected { smtp } = &mut self.phase else {
                return on_wire;
            };
            let bdat = smtp.framing().is_bdat();
            let sent = smtp.poll_chunk(&mut self.chunks, &mut dst[on_wire..]);
            on_wire += sent;
            self.spill.unspill(&mut self.chunks);
            let dst = &mut dst[on_wire..];
            let limit = smtp.size_limit();
            let slack = if self.spill.is_empty() { SPILL } else { 0 };
            let room = smtp.message_room(&self.chunks, slack, dst);
            let step = self
                .mail
                .write(cx.config, room, limit)
                .and_then(|(w, piece)| {
                    let wire = match bdat {
                        true => self.spill.stage(&mut self.chunks, &dst[..w]).map(|()| 0)?,
                        false => w,
                    };
                    Ok((w, wire, piece))
                });
            let (written, wire) = match step {
                Ok((written, wire, piece)) => {
                    match piece {
                        Some(Piece::Head) => cx.host.notice(Notice::HeadWritten),
                        Some(Piece::Part) => cx.host.notice(Notice::PartWritten),
                        Some(Piece::Message) | None => {}
                    }
                    (written, wire)
                }
                Err(error) => {
                    self.mail_failed(now_ms, cx, error);
                    return on_wire;
                }
            };
            on_wire += wire;
            // The end goes once every byte of the message is out or staged.
            if self.mail.is_written() && self.spill.is_empty() {
                smtp.end_message(now_ms);
            }
            // DATA: one piece per call, written straight to the wire.
            if !bdat || (sent == 0 && written == 0) {
                return on_wire;
            }
        }
    }

    /// The mail's `<time>`: at `now_ms` past it, a mail whose message is
    /// not all sent fails (once it is, the verdict is the server's: a
    /// mail it may have accepted is never reported as failed). Returns
    /// whether it did.
    pub(crate) fn handle_deadline(&mut self, now_ms: u64, cx: &mut Cx<'_>) -> bool {
        let step = match &self.phase {
            Phase::Connecting { .. } => None,
            Phase::Connected { smtp } if !self.mail.is_written() => Some(smtp.step()),
            _ => return false,
        };
        if now_ms < self.mail.deadline_ms() {
            return false;
        }
        self.fail(now_ms, cx, Failure::TimeLimit(step), 0);
        true
    }

    /// The SMTP client's timers at `now_ms`.
    pub(crate) fn handle_timeout(&mut self, now_ms: u64, cx: &mut Cx<'_>) {
        if let Some(smtp) = self.smtp() {
            smtp.handle_timeout(now_ms);
            self.take_smtp_events(now_ms, cx);
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<u64> {
        let quit = self.quitting.get().and_then(SmtpClient::next_deadline);
        let (smtp, limit) = match &self.phase {
            Phase::Idle => (None, None),
            Phase::Connecting { .. } => (None, Some(self.mail.deadline_ms())),
            Phase::Connected { smtp } => (
                smtp.next_deadline(),
                (!self.mail.is_written()).then_some(self.mail.deadline_ms()),
            ),
        };
        [limit, smtp, quit].into_iter().flatten().min()
    }
}

/// The TLS policy of a connection: `AT+GTSMTPLAND`'s mode, made
/// STARTTLS-or-fail when the caller requires TLS.
fn tls_policy(config: &Config, require_tls: bool) -> TlsPolicy {
    let mode = config
        .server()
        .map_or(TlsPolicy::Opportunistic, |s| s.policy());
    match mode {
        TlsPolicy::Implicit => mode,
        _ if require_tls => TlsPolicy::Required,
        _ => mode,
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

/// What the SMTP client reads of the mail: the configuration, frozen and
/// validated by SEND while `mail` is in progress; nothing of it for the
/// QUIT of a finished mail, whose configuration may have changed since.
fn envelope<'a>(
    config: &'a Config,
    token: &'a [u8],
    helo: &'a Bounded<80>,
    mail: bool,
    transfer: Transfer,
) -> Envelope<'a> {
    const NONE: &[Recipient<'static>; 0] = &[];
    let login = config.login().filter(|_| mail);
    let (user, password) = login.unwrap_or((b"", b""));
    Envelope {
        helo_name: helo.as_bytes(),
        user,
        credentials: credentials(config, token, password),
        from: login.map_or(Address::NONE, |_| Address::trusted(user)),
        recipients: if mail { config.recipient_list() } else { NONE },
        transfer,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::at;
    use crate::header::Token;
    use crate::message::MessageId;
    use std::boxed::Box;
    use std::vec::Vec;

    /// The notices, in order.
    #[derive(Default)]
    struct Heard(Vec<Notice>);

    impl Host for Heard {
        fn notice(&mut self, notice: Notice) {
            self.0.push(notice);
        }
    }

    /// A connection with a configuration, driven as the session drives
    /// it, against a scripted server.
    struct Rig {
        conn: Box<Connection>,
        config: Config,
        heard: Heard,
        wire: Vec<u8>,
        now: u64,
    }

    impl Rig {
        fn new() -> Self {
            let mut slot = Box::new(MaybeUninit::uninit());
            Connection::init_in(&mut slot);
            // SAFETY: init_in initialised every field.
            #[allow(unsafe_code)]
            let conn = unsafe { Box::from_raw(Box::into_raw(slot).cast::<Connection>()) };
            let mut config = Config::new();
            for line in [
                &b"AT+GTSMTPLAND=25,\"mx.example.com\""[..],
                b"AT+GTSMTPID=\"me@example.com\",\"pw\"",
                b"AT+GTSMTPDST=1,1,\"you@example.com\"",
            ] {
                config.apply(&at::parse(line).unwrap()).unwrap();
            }
            Rig {
                conn,
                config,
                heard: Heard::default(),
                wire: Vec::new(),
                now: 0,
            }
        }

        fn with<R>(&mut self, f: impl FnOnce(&mut Connection, &mut Cx<'_>) -> R) -> R {
            let mut cx = Cx {
                config: &self.config,
                token: b"",
                host: &mut self.heard,
            };
            f(&mut self.conn, &mut cx)
        }

        fn start(&mut self, deadline_ms: u64) {
            let identity = Identity::new(
                Token::new(b"Mon, 7 Dec 2026 10:00:00 +0000", true).unwrap(),
                MessageId::new(b"<1@example.com>").unwrap(),
            );
            self.conn.start(Charset::UsAscii, identity, deadline_ms);
        }

        fn events(&mut self) -> Vec<std::string::String> {
            let mut seen = Vec::new();
            while let Some(event) = self.conn.poll_event(&self.config) {
                seen.push(std::format!("{event:?}"));
            }
            seen
        }

        fn connect(&mut self) {
            let events = self.events();
            assert!(
                events.iter().any(|e| e.starts_with("Connect")),
                "{events:?}"
            );
            let now = self.now;
            self.conn
                .handle_connected(now, &self.config, None, None, false);
        }

        /// Server bytes in, everything due out.
        fn server(&mut self, mut bytes: &[u8]) {
            let now = self.now;
            loop {
                let n = self.with(|c, cx| c.handle_server(now, cx, bytes));
                bytes = &bytes[n..];
                let before = self.wire.len();
                self.pump();
                if bytes.is_empty() || (n == 0 && self.wire.len() == before) {
                    break;
                }
            }
            assert!(bytes.is_empty(), "server bytes left unread");
        }

        fn pump(&mut self) {
            let now = self.now;
            loop {
                let mut buf = [0u8; 64];
                let n = self.with(|c, cx| c.poll_transmit(now, cx, &mut buf));
                if n == 0 {
                    break;
                }
                self.wire.extend_from_slice(&buf[..n]);
            }
        }

        fn payload(&mut self, src: &[u8]) {
            let now = self.now;
            let mut buf = [0u8; 256];
            let n = self
                .with(|c, cx| c.payload(now, cx, b"", &mut buf))
                .unwrap();
            self.wire.extend_from_slice(&buf[..n]);
            assert!(self.conn.input_fits(256) >= src.len());
            let n = self
                .with(|c, cx| c.payload(now, cx, src, &mut buf))
                .unwrap();
            self.wire.extend_from_slice(&buf[..n]);
        }

        fn take_wire(&mut self) -> std::string::String {
            std::string::String::from_utf8(core::mem::take(&mut self.wire)).unwrap()
        }

        fn heard(&mut self) -> Vec<Notice> {
            core::mem::take(&mut self.heard.0)
        }

        /// Up to the server's go-ahead, without PIPELINING or AUTH.
        fn until_go_ahead(&mut self) {
            self.start(60_000);
            self.connect();
            self.server(b"220 mx\r\n");
            self.server(b"250 mx\r\n");
            self.server(b"250 ok\r\n");
            self.server(b"250 ok\r\n");
            assert_eq!(
                self.take_wire(),
                "EHLO [127.0.0.1]\r\nMAIL FROM:<me@example.com>\r\nRCPT TO:<you@example.com>\r\nDATA\r\n"
            );
            self.server(b"354 go\r\n");
        }
    }

    #[test]
    fn a_mail_lives_from_connect_to_close() {
        let mut rig = Rig::new();
        assert!(rig.conn.is_idle());
        rig.until_go_ahead();
        assert_eq!(rig.heard(), [Notice::HeadWritten]);
        assert_eq!(rig.conn.state(), MailState::Ready);
        assert!(rig.take_wire().contains("Message-ID: <1@example.com>\r\n"));
        assert_eq!(rig.conn.begin_part(Part::Body, 100), Ok(100));
        assert_eq!(rig.conn.state(), MailState::Data);
        rig.payload(b"hi");
        rig.conn.end_part(2, 0);
        rig.pump();
        assert_eq!(rig.heard(), [Notice::PartWritten]);
        rig.conn.end_message().unwrap();
        rig.pump();
        let wire = rig.take_wire();
        assert!(wire.ends_with("--\r\n.\r\n"), "{wire}");
        assert_eq!(rig.conn.state(), MailState::Finishing);
        rig.server(b"250 queued\r\n");
        assert_eq!(rig.heard(), [Notice::Delivered]);
        assert!(rig.conn.is_idle(), "configuration is free at the verdict");
        assert_eq!(rig.take_wire(), "QUIT\r\n");
        assert_eq!(rig.events(), std::vec::Vec::<std::string::String>::new());
        rig.server(b"221 bye\r\n");
        assert_eq!(rig.events(), ["Close"]);
        assert_eq!(rig.conn.next_deadline(), None);
    }

    #[test]
    fn a_refusal_aborts_with_its_code_and_the_next_mail_waits_for_the_close() {
        let mut rig = Rig::new();
        rig.start(60_000);
        rig.connect();
        rig.server(b"220 mx\r\n250 mx\r\n");
        rig.server(b"550 no such sender\r\n");
        assert_eq!(
            rig.heard(),
            [Notice::Aborted {
                urc: Some(550),
                error: SessionError::MailAborted
            }]
        );
        let events = rig.events();
        assert!(events[0].starts_with("MailFailed"), "{events:?}");
        assert_eq!(rig.conn.last_failure().map(|f| f.failure.code()), Some(550));
        assert!(rig.take_wire().ends_with("QUIT\r\n"));
        // A new mail: no connection asked for while the last says QUIT.
        rig.start(60_000);
        assert_eq!(rig.events(), std::vec::Vec::<std::string::String>::new());
        rig.server(b"221 bye\r\n");
        let events = rig.events();
        assert_eq!(events[0], "Close");
        assert!(events[1].starts_with("Connect"), "{events:?}");
    }

    #[test]
    fn a_close_before_the_connection_is_up_fails_the_mail() {
        let mut rig = Rig::new();
        rig.start(60_000);
        assert!(rig.events()[0].starts_with("Connect"));
        let now = rig.now;
        rig.with(|c, cx| c.handle_closed(now, cx));
        assert_eq!(
            rig.heard(),
            [Notice::Aborted {
                urc: Some(0),
                error: SessionError::MailAborted
            }]
        );
        assert_eq!(
            rig.conn.last_failure().map(|f| f.failure),
            Some(Failure::NotConnected)
        );
        // A close of a connection already given up is not the next mail's.
        rig.start(60_000);
        rig.with(|c, cx| c.handle_closed(now, cx));
        assert_eq!(rig.heard(), []);
    }

    #[test]
    fn the_time_limit_fails_a_mail_until_its_message_is_sent() {
        let mut rig = Rig::new();
        rig.until_go_ahead();
        rig.heard();
        assert_eq!(rig.conn.next_deadline(), Some(60_000));
        assert!(!rig.with(|c, cx| c.handle_deadline(59_999, cx)));
        rig.conn.end_message().unwrap();
        rig.pump();
        assert!(rig.take_wire().ends_with(".\r\n"));
        assert!(
            !rig.with(|c, cx| c.handle_deadline(60_000, cx)),
            "the verdict is the server's now"
        );
        // The same mail before its end: it fails at the limit.
        let mut rig = Rig::new();
        rig.until_go_ahead();
        rig.heard();
        rig.take_wire();
        assert!(rig.with(|c, cx| c.handle_deadline(60_000, cx)));
        assert_eq!(
            rig.heard(),
            [Notice::Aborted {
                urc: Some(0),
                error: SessionError::MailAborted
            }]
        );
        // Inside DATA: closed, never QUIT.
        let events = rig.events();
        assert!(events[0].contains("TimeLimit(Some(Message))"), "{events:?}");
        assert_eq!(events[1], "Close");
        rig.pump();
        assert_eq!(rig.take_wire(), "", "no QUIT inside DATA");
    }

    #[test]
    fn required_tls_and_the_ehlo_name_are_the_connections() {
        let mut rig = Rig::new();
        rig.start(60_000);
        rig.events();
        let name = Bounded::from_slice(b"host.example.com");
        rig.conn
            .handle_connected(0, &rig.config, None, Some(&name), true);
        rig.server(b"220 mx\r\n250 mx\r\n");
        assert!(rig.take_wire().starts_with("EHLO host.example.com\r\n"));
        // No STARTTLS offered: the mail fails before MAIL FROM.
        assert!(matches!(
            rig.heard()[..],
            [Notice::Aborted { urc: Some(0), .. }]
        ));
        assert!(matches!(
            rig.conn.last_failure().map(|f| f.failure),
            Some(Failure::Smtp(Fault::NoTls { .. }))
        ));
    }

    #[test]
    fn payload_past_size_fails_with_552() {
        let mut rig = Rig::new();
        rig.start(60_000);
        rig.connect();
        rig.server(b"220 mx\r\n");
        rig.server(b"250-mx\r\n250 SIZE 100\r\n");
        rig.server(b"250 ok\r\n");
        rig.server(b"250 ok\r\n");
        rig.take_wire();
        rig.server(b"354 go\r\n");
        // The header block alone passes 100 bytes.
        assert_eq!(
            rig.heard(),
            [Notice::Aborted {
                urc: Some(552),
                error: SessionError::MailAborted
            }]
        );
        assert_eq!(
            rig.conn.last_failure().map(|f| f.failure),
            Some(Failure::TooLarge { limit: 100 })
        );
        assert!(
            rig.take_wire().len() <= 100,
            "nothing past the limit is written"
        );
    }
}
