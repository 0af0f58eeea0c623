//! A sans-IO SMTP client (RFC 5321): the conversation, not the socket.
//!
//! What it does: from the greeting to QUIT, [`SmtpClient`] decides what to
//! send and reads what comes back: EHLO (HELO when EHLO is refused),
//! STARTTLS when offered or required (as [`Signal::StartTls`]: the caller
//! runs TLS and says when it is up), AUTH only under TLS unless the
//! [`TlsPolicy`] says otherwise (a STARTTLS that is missing or refused
//! fails a mail with credentials before any of them crosses: that is what
//! a man in the middle who deletes STARTTLS presents), AUTH PLAIN or LOGIN
//! as EHLO offers
//! (or, with a token, XOAUTH2 or OAUTHBEARER: the initial response on the
//! AUTH line when the line fits in 512 octets, else after the server's
//! 334; an error challenge answered before the 535 it announces),
//! MAIL, every RCPT and DATA in one flight when the server offers
//! PIPELINING (RFC 2920), then end-of-data and QUIT. Every way a mail can
//! fail ends in [`Signal::Failed`] with the reply code that ended it, or 0
//! when the server closed, timed out or did not speak SMTP.
//!
//! The verdict ([`Signal::Delivered`] or [`Signal::Failed`]) comes as soon as
//! it is known; the conversation then ends with QUIT whenever the
//! connection can carry one (RFC 5321 4.1.1.10: after a refusal too, once
//! the replies still due to a pipelined flight are read), waits up to
//! [`QUIT_MS`] for the reply, and only then says [`Signal::Closed`]. A
//! connection that cannot carry a QUIT (the server closed it, is not
//! speaking SMTP, is inside DATA or a TLS handshake) is closed at once:
//! inside DATA a QUIT would be read as message text.
//!
//! The client owns the message's framing on the wire, as quinn-proto's
//! `poll_transmit` owns a packet's ([`Framing`]). After EHLO it chooses
//! `DATA` or RFC 3030 `BDAT` from the [`Transfer`] mode, the server's
//! CHUNKING and BINARYMIME and whether the caller's chunk storage holds
//! the header block (`MAIL FROM:<..> BODY=BINARYMIME` only with `BDAT`).
//! After [`Signal::ReadyForData`] it gives the message room
//! ([`SmtpClient::message_room`]: for `DATA`, the caller's buffer itself,
//! since the message writer's output is dot-safe and needs no stuffing;
//! for `BDAT`, room in the [`ChunkStore`], which it sends as
//! `BDAT <n>` when full and `BDAT <n> LAST` at
//! [`SmtpClient::end_message`]). Chunk replies are counted, never waited
//! for one by one; a refused chunk ends the mail with its code: no
//! further chunk, never `LAST`, the replies owed read, then RSET and
//! QUIT. A mail that fails inside DATA has its connection closed, so
//! end-of-data is never sent for a mail that failed: a mail is
//! delivered whole or not at all.
//!
//! What it does not: touch a socket or clock, or write the message (the
//! caller's writer fills the room it is given).
//!
//! Why it is built this way: firmware owns the socket, TLS and time. Commands
//! are generated on demand from the state and replayed into whatever room
//! the caller's buffer has (the `out::replay` trick), so the client has no
//! command buffer; the whole client is a few dozen bytes plus the reply
//! parser's line.

use crate::chunk::ChunkStore;
use crate::header::Address;
use crate::message::Recipients;
use crate::out::{put_decimal, Out};
use crate::reply::{AuthOffer, Extensions, Reply, ReplyParser};
use crate::sasl::{self, Credentials, ErrorStatus, Mechanism};
use crate::CoderResult;

/// RFC 5321 §4.5.3.2 timeouts, in ms.
const GREETING_MS: u64 = 5 * 60_000;
const COMMAND_MS: u64 = 5 * 60_000;
const DATA_INIT_MS: u64 = 2 * 60_000;
const END_OF_DATA_MS: u64 = 10 * 60_000;
/// How long the end of a conversation may take, from the verdict to the
/// close: the replies still due, the QUIT and its 221. RFC 5321 asks the
/// client to wait for the 221 but names no figure; a server that is slower
/// than this is not worth holding a cellular connection open for.
pub const QUIT_MS: u64 = 5_000;

/// Whole `BDAT` chunks on the wire with their replies still to come, at
/// most, on a server that offers PIPELINING (16 KiB chunks: 1 MiB ahead).
const CHUNKS_IN_FLIGHT: u16 = 64;
/// The caller's TLS handshake after STARTTLS (RFC 5321 has no figure; a
/// minute is far more than a handshake over a cellular link takes).
const TLS_HANDSHAKE_MS: u64 = 60_000;

/// How the connection is protected: the `<mode>` of `AT+GTSMTPLAND`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsPolicy {
    /// Mode 0 (or blank): STARTTLS when the server offers it; credentials
    /// only under TLS. Without TLS, a server that offers AUTH fails a
    /// mail that has credentials before AUTH; one that offers no AUTH
    /// takes the mail unauthenticated (nothing secret crosses).
    Opportunistic,
    /// Mode 1: the connection is TLS from the start (SMTPS, port 465).
    Implicit,
    /// Mode 2: STARTTLS or fail, for every mail, credentials or not.
    Required,
    /// Mode 3: STARTTLS when offered, and sign-in in the clear allowed
    /// when it is not (a relay on the host's own network).
    ClearSignIn,
}

impl TlsPolicy {
    /// From the `<mode>` of `AT+GTSMTPLAND` (0-3).
    pub const fn from_mode(mode: u8) -> Option<Self> {
        match mode {
            0 => Some(TlsPolicy::Opportunistic),
            1 => Some(TlsPolicy::Implicit),
            2 => Some(TlsPolicy::Required),
            3 => Some(TlsPolicy::ClearSignIn),
            _ => None,
        }
    }

    /// The `<mode>` of `AT+GTSMTPLAND`.
    pub const fn mode(self) -> u8 {
        match self {
            TlsPolicy::Opportunistic => 0,
            TlsPolicy::Implicit => 1,
            TlsPolicy::Required => 2,
            TlsPolicy::ClearSignIn => 3,
        }
    }
}

/// How the message may cross the wire (`AT+GTSMTPBDAT`; RFC 3030).
///
/// What each mode does with what the server offers (DESIGN.md, "Bytes on
/// the air"): without chunk storage from the caller every mode behaves as
/// [`Transfer::Off`].
///
/// ```
/// use atmail_core::config::Transfer;
/// assert_eq!(Transfer::from_code(2), Some(Transfer::Force));
/// assert_eq!(Transfer::Auto.code(), 1);
/// assert_eq!(Transfer::from_code(3), None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum Transfer {
    /// 0: `DATA` with base64 parts, never `BDAT`, never `BODY=`.
    Off = 0,
    /// 1: `BDAT` with binary parts and `BODY=BINARYMIME` when the server
    /// offers both CHUNKING and BINARYMIME; `DATA` otherwise.
    #[default]
    Auto = 1,
    /// 2: `BDAT` whenever CHUNKING is offered (binary parts only if
    /// BINARYMIME is offered too, base64 otherwise); `DATA` otherwise.
    Force = 2,
}

impl Transfer {
    /// From the `AT+GTSMTPBDAT` code (0-2).
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Transfer::Off),
            1 => Some(Transfer::Auto),
            2 => Some(Transfer::Force),
            _ => None,
        }
    }

    /// The `AT+GTSMTPBDAT` code.
    pub const fn code(self) -> u8 {
        self as u8
    }
}

/// What the client needs to know about the mail, borrowed on each call.
#[derive(Clone, Copy, Debug)]
pub struct Envelope<'a> {
    /// The EHLO argument: this host's name or address literal.
    pub helo_name: &'a [u8],
    /// AUTH user name.
    pub user: &'a [u8],
    /// What AUTH signs in with (never written anywhere but the AUTH
    /// exchange).
    pub credentials: Credentials<'a>,
    /// MAIL FROM.
    pub from: Address<'a>,
    /// RCPT TO, in order: To, Cc and Bcc alike.
    pub recipients: &'a dyn Recipients,
    /// How the message may cross the wire: [`Transfer::Off`] unless the
    /// caller's chunk storage holds the whole header block.
    pub transfer: Transfer,
}

/// How the message crosses the wire, chosen after EHLO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `DATA`, the message, `.`.
    Data,
    /// RFC 3030 `BDAT` chunks; `binary`: with `BODY=BINARYMIME` (every
    /// part `Content-Transfer-Encoding: binary`).
    Bdat {
        /// `BODY=BINARYMIME` was said.
        binary: bool,
    },
}

impl Framing {
    /// Whether the message goes as `BDAT` chunks.
    pub const fn is_bdat(self) -> bool {
        matches!(self, Framing::Bdat { .. })
    }

    /// What `mode` gives with the server's extensions.
    fn choose(mode: Transfer, extensions: &Extensions) -> Self {
        let (chunking, binary) = (extensions.chunking, extensions.binarymime);
        match mode {
            Transfer::Auto if chunking && binary => Framing::Bdat { binary: true },
            Transfer::Force if chunking => Framing::Bdat { binary },
            _ => Framing::Data,
        }
    }
}

/// Where the end of a `BDAT` message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Last {
    No,
    /// [`SmtpClient::end_message`] was called: the `LAST` chunk goes next.
    Due,
    /// The `LAST` chunk is whole on the wire.
    Sent,
}

/// What the caller must act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Signal {
    /// Start TLS on the connection now, then call
    /// [`SmtpClient::handle_tls_established`].
    StartTls,
    /// The server waits for the message: write it, then call
    /// [`SmtpClient::end_message`].
    ReadyForData,
    /// The server accepted the mail (the reply to end-of-data was 2xx).
    Delivered,
    /// The mail failed: the SMTP code that ended it, or 0 (closed, timed
    /// out, not SMTP). The conversation goes on to its QUIT; wait for
    /// [`Signal::Closed`].
    Failed(u16),
    /// The conversation is over; close the connection now.
    Closed,
}

/// Where in the conversation a mail failed without a reply code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Waiting for the server's 220 greeting.
    Greeting,
    /// EHLO or HELO.
    Hello,
    /// STARTTLS and its reply.
    StartTls,
    /// The caller's TLS handshake (after STARTTLS, or SMTPS's first).
    TlsHandshake,
    /// AUTH.
    Auth,
    /// MAIL, RCPT and DATA.
    Envelope,
    /// The message itself.
    Message,
    /// The reply to the end of data.
    EndOfData,
}

impl Step {
    /// What the client was doing, for a sentence ("... while waiting for
    /// the greeting").
    pub const fn as_str(self) -> &'static str {
        match self {
            Step::Greeting => "waiting for the greeting",
            Step::Hello => "at EHLO",
            Step::StartTls => "at STARTTLS",
            Step::TlsHandshake => "during the TLS handshake",
            Step::Auth => "at AUTH",
            Step::Envelope => "at MAIL, RCPT or DATA",
            Step::Message => "while sending the message",
            Step::EndOfData => "waiting for the reply to the end of data",
        }
    }
}

/// Why a mail ended without an SMTP reply code (`+GTSMTPSEND: 0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The server closed the connection.
    Closed(Step),
    /// No reply within RFC 5321's timeout for the step.
    TimedOut(Step),
    /// The server sent something that is not an SMTP reply.
    NotSmtp(Step),
    /// No TLS on the connection: the server did not offer STARTTLS
    /// (`refused` 0) or refused it with that code, and TLS was required
    /// (`sign_in` false: mode 2) or the mail has credentials for a server
    /// that offers AUTH (`sign_in` true: mode 0). Nothing was sent after
    /// EHLO but the QUIT.
    NoTls {
        /// The reply code to STARTTLS, 0 when it was not offered.
        refused: u16,
        /// TLS was wanted for the credentials, not for every mail.
        sign_in: bool,
    },
    /// The mail has a password and the server's AUTH names no mechanism
    /// the engine speaks with it (PLAIN, LOGIN): what it does offer.
    NoCommonMechanism(AuthOffer),
    /// Bytes came after the 220 to STARTTLS and before the handshake: a
    /// plaintext injection (the connection is dropped).
    StartTlsInjection,
    /// The mail signs in with a token and the server does not offer the
    /// mechanism (`AUTH XOAUTH2`, `AUTH OAUTHBEARER`).
    MechanismNotOffered(Mechanism),
    /// The caller's TLS failed at this step: the server's certificate was
    /// refused, no parameters were agreed, or a record did not verify.
    Tls(Step),
}

impl Fault {
    /// The reason as text (ASCII), into `out`; `Display` writes the same.
    pub fn write_to(&self, out: &mut dyn Out) {
        let (text, step): (&[u8], Option<Step>) = match *self {
            Fault::Closed(step) => (b"connection closed by the server ", Some(step)),
            Fault::TimedOut(step) => (b"no reply in time ", Some(step)),
            Fault::NotSmtp(step) => {
                out.put(b"the server does not speak SMTP (");
                out.put(step.as_str().as_bytes());
                return out.put(b")");
            }
            Fault::NoTls { refused, sign_in } => return no_tls(out, refused, sign_in),
            Fault::NoCommonMechanism(offered) => {
                out.put(b"the server offers no sign-in the engine speaks with a password (AUTH ");
                offered.write_names(out);
                return out.put(b")");
            }
            Fault::StartTlsInjection => (
                b"bytes after the server's 220 to STARTTLS, before TLS (plaintext injection)",
                None,
            ),
            Fault::MechanismNotOffered(mechanism) => {
                out.put(b"the server does not offer AUTH ");
                return out.put(mechanism.name().as_bytes());
            }
            Fault::Tls(Step::TlsHandshake) => (
                b"the TLS handshake failed (certificate refused or no common parameters)",
                None,
            ),
            Fault::Tls(step) => (b"TLS failed ", Some(step)),
        };
        out.put(text);
        if let Some(step) = step {
            out.put(step.as_str().as_bytes());
        }
    }
}

/// The reason for [`Fault::NoTls`].
fn no_tls(out: &mut dyn Out, refused: u16, sign_in: bool) {
    out.put(if sign_in {
        b"the server "
    } else {
        b"TLS is required and the server "
    });
    if refused != 0 {
        out.put(b"refused STARTTLS (");
        put_decimal(out, refused.into());
        out.put(b")");
    } else if sign_in {
        out.put(b"offers AUTH but not STARTTLS");
    } else {
        out.put(b"does not offer STARTTLS");
    }
    if sign_in {
        out.put(
            b": credentials go only under TLS (mode 3 of AT+GTSMTPLAND allows sign-in without it)",
        );
    }
}

impl core::fmt::Display for Fault {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        crate::out::display(f, |out| self.write_to(out))
    }
}

/// The command being sent, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Command {
    Ehlo,
    Helo,
    StartTls,
    AuthPlain,
    AuthLogin,
    LoginUser,
    LoginPassword,
    /// `AUTH XOAUTH2` or `AUTH OAUTHBEARER`, with the initial response on
    /// the line when `inline`.
    AuthToken {
        inline: bool,
    },
    /// The token's response on its own line, after the server's 334.
    TokenResponse,
    /// The answer to an error challenge (RFC 7628 3.2.3).
    ErrorAnswer,
    /// MAIL, every RCPT and DATA (PIPELINING).
    Flight,
    Mail,
    Rcpt(u8),
    Data,
    EndOfData,
    /// After a refused `BDAT` chunk, before QUIT.
    Rset,
    Quit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for the 220 greeting.
    Greeting,
    /// Waiting for the reply to `Command`.
    Awaiting(Command),
    /// Pipelined flight: replies still due, the next being for recipient
    /// `next` (0 = MAIL, 1..=n = RCPT n-1, n+1 = DATA), the last (DATA's,
    /// or the last RCPT's for `BDAT`) `last`.
    Envelope { next: u8, last: u8 },
    /// STARTTLS accepted; the caller is running the handshake.
    TlsHandshake,
    /// The caller is writing the message.
    Data,
    /// The verdict is given; `due` replies to commands (and chunks)
    /// already sent are read before the QUIT goes.
    Ending { due: u16 },
    /// Finished: the connection is to be closed.
    Done,
}

/// The client; see the module docs.
#[derive(Clone, Debug)]
pub struct SmtpClient {
    policy: TlsPolicy,
    state: State,
    tls: bool,
    extensions: Extensions,
    parser: ReplyParser,
    /// The command to transmit and how much of it was written already.
    sending: Option<Command>,
    replayed: usize,
    deadline: Option<u64>,
    event: Option<Signal>,
    /// [`Signal::Closed`] is due after `event`.
    closed: bool,
    /// The verdict is given (`Delivered` or `Failed`).
    ended: bool,
    delivered: bool,
    /// Why the mail failed without a reply code, once it has.
    failure: Option<Fault>,
    /// The `status` of the server's error challenge to the token.
    token_status: ErrorStatus,
    /// The server refused the token (its reply is the verdict).
    token_refused: bool,
    /// Where the conversation was when the verdict was given.
    verdict_step: Step,
    /// `DATA` or `BDAT`, chosen after EHLO.
    framing: Framing,
    /// `BDAT`: replies owed to chunks whole on the wire.
    owed: u16,
    /// `BDAT`: a chunk is part way out (nothing else may go until it is
    /// whole); `draining_last`: it says `LAST`.
    draining: bool,
    draining_last: bool,
    last: Last,
    /// A refused chunk: RSET goes before QUIT.
    rset: bool,
}

impl SmtpClient {
    /// A client for a connection that has just been opened at `now_ms`
    /// (for [`TlsPolicy::Implicit`], once TLS is up).
    pub fn new(now_ms: u64, policy: TlsPolicy) -> Self {
        SmtpClient {
            policy,
            state: State::Greeting,
            tls: policy == TlsPolicy::Implicit,
            extensions: Extensions::default(),
            parser: ReplyParser::new(),
            sending: None,
            replayed: 0,
            deadline: Some(now_ms.saturating_add(GREETING_MS)),
            event: None,
            closed: false,
            ended: false,
            delivered: false,
            failure: None,
            token_status: ErrorStatus::EMPTY,
            token_refused: false,
            verdict_step: Step::Greeting,
            framing: Framing::Data,
            owed: 0,
            draining: false,
            draining_last: false,
            last: Last::No,
            rset: false,
        }
    }

    /// How the message crosses the wire (`DATA` until the envelope is
    /// sent).
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Whether the message is between the server's go-ahead and its end
    /// being whole on the wire (for `BDAT`: the `LAST` chunk).
    pub fn sending_message(&self) -> bool {
        self.state == State::Data && self.last != Last::Sent
    }

    /// Why the server refused the token, while [`Signal::Failed`] for
    /// that refusal is being taken: the status of its error challenge
    /// (empty if it sent none) and the text of its refusal (as much as the
    /// reply parser keeps; valid until the next call to
    /// [`handle_input`](Self::handle_input)).
    pub fn token_refusal(&self) -> Option<(&ErrorStatus, &[u8])> {
        self.token_refused
            .then(|| (&self.token_status, self.parser.text()))
    }

    /// The start of the last reply line's text, while [`Signal::Failed`]
    /// for a refusal is being taken: the server's words for the reason
    /// (valid until the next call to [`handle_input`](Self::handle_input)).
    pub fn reply_text(&self) -> &[u8] {
        self.parser.text()
    }

    /// Where the conversation was when the verdict was given.
    pub fn verdict_step(&self) -> Step {
        self.verdict_step
    }

    /// Why the mail failed without a reply code, if it did.
    pub fn failure(&self) -> Option<Fault> {
        self.failure
    }

    /// Where the conversation is, for a failure's reason.
    pub fn step(&self) -> Step {
        match self.state {
            State::Greeting => Step::Greeting,
            State::Awaiting(Command::Ehlo | Command::Helo) => Step::Hello,
            State::Awaiting(Command::StartTls) => Step::StartTls,
            State::TlsHandshake => Step::TlsHandshake,
            State::Awaiting(
                Command::AuthPlain
                | Command::AuthLogin
                | Command::LoginUser
                | Command::LoginPassword
                | Command::AuthToken { .. }
                | Command::TokenResponse
                | Command::ErrorAnswer,
            ) => Step::Auth,
            State::Awaiting(Command::Flight | Command::Mail | Command::Rcpt(_) | Command::Data)
            | State::Envelope { .. } => Step::Envelope,
            State::Data if self.last == Last::Sent => Step::EndOfData,
            State::Data => Step::Message,
            State::Awaiting(Command::EndOfData | Command::Rset | Command::Quit)
            | State::Ending { .. }
            | State::Done => Step::EndOfData,
        }
    }

    /// The largest message the server said it takes (EHLO `SIZE n`; 0 and
    /// no figure mean no limit, RFC 1870).
    pub fn size_limit(&self) -> Option<u64> {
        self.extensions.size.filter(|&n| n > 0)
    }

    /// The next signal, if any; call after every `handle_*` until `None`.
    pub fn poll_signal(&mut self) -> Option<Signal> {
        self.event
            .take()
            .or_else(|| core::mem::take(&mut self.closed).then_some(Signal::Closed))
    }

    /// Whether an event is waiting to be taken.
    fn has_event(&self) -> bool {
        self.event.is_some() || self.closed
    }

    /// Writes bytes for the server into `dst`: a `BDAT` chunk that is
    /// due from `chunks`, then commands; returns how many. Pass the same
    /// `envelope` and `chunks` on every call of one mail.
    pub fn poll_transmit(
        &mut self,
        envelope: &Envelope<'_>,
        chunks: &mut ChunkStore,
        dst: &mut [u8],
    ) -> usize {
        let sent = self.poll_chunk(chunks, dst);
        if self.draining {
            return sent;
        }
        let dst = &mut dst[sent..];
        let Some(command) = self.sending else {
            return sent;
        };
        let framing = self.framing;
        let (done, written) = crate::out::replay(self.replayed, dst, |out| {
            write_command(out, command, envelope, framing)
        });
        self.replayed = if done { 0 } else { self.replayed + written };
        if done {
            self.sending = None;
        }
        sent + written
    }

    /// Writes the `BDAT` chunk that is due into `dst`: the one part way
    /// out, a full store's, or the `LAST` one after
    /// [`end_message`](Self::end_message). Returns bytes written. Taking
    /// the storage back while a mail uses it closes the connection.
    pub fn poll_chunk(&mut self, chunks: &mut ChunkStore, dst: &mut [u8]) -> usize {
        let full = chunks.room() == 0 && !chunks.is_empty();
        let due = self.draining
            || (self.state == State::Data
                && self.framing.is_bdat()
                && self.owed < self.chunk_window()
                && (self.last == Last::Due || full));
        if !due || dst.is_empty() {
            return 0;
        }
        if self.draining && !chunks.is_draining() {
            // The storage was replaced or taken back part way through a
            // chunk: its count is on the wire and its octets are gone, so
            // the conversation cannot go on (nothing is delivered).
            self.draining = false;
            self.fail_without_code(Fault::Closed(self.step()));
            return 0;
        }
        let last = self.last == Last::Due;
        if !self.draining {
            self.draining_last = last;
        }
        match chunks.transmit(dst, last) {
            Ok((CoderResult::InputEmpty, written)) => {
                self.draining = false;
                self.owed += 1;
                if self.draining_last {
                    self.last = Last::Sent;
                }
                written
            }
            Ok((CoderResult::OutputFull, written)) => {
                self.draining = true;
                written
            }
            Err(_) => {
                self.draining = false;
                self.fail_without_code(Fault::Closed(self.step()));
                0
            }
        }
    }

    /// How many whole chunks may wait for their replies. RFC 3030 lets
    /// `BDAT` be pipelined only where PIPELINING is offered (a server
    /// without it may refuse a chunk and then take the ones behind it,
    /// `LAST` included, or call them a synchronization error, as Exim
    /// does): there, one chunk at a time. Elsewhere a bounded window, so a
    /// server that stops answering does not get the whole message ahead
    /// of its replies.
    fn chunk_window(&self) -> u16 {
        match self.extensions.pipelining {
            true => CHUNKS_IN_FLIGHT,
            false => 1,
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) needs calling next, if ever.
    pub fn next_deadline(&self) -> Option<u64> {
        self.deadline
    }

    /// Advances the step timeout to `now_ms`.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        if self.deadline.is_none_or(|d| now_ms < d) {
            return;
        }
        if self.ended {
            // The end of the conversation took too long: close.
            return self.close_now();
        }
        self.failure = Some(Fault::TimedOut(self.step()));
        self.verdict(Signal::Failed(0));
        let due = self.replies_owed();
        self.wind_down(due, now_ms);
    }

    /// The caller gives the mail up (its time limit ran out, the host
    /// aborted it): no verdict is said; the conversation ends with QUIT
    /// when the connection can carry one, else [`Signal::Closed`] comes at
    /// once. Nothing happens once a verdict was given.
    pub fn quit(&mut self, now_ms: u64) {
        if !self.ended && self.state != State::Done {
            self.ended = true;
            let due = self.replies_owed();
            self.wind_down(due, now_ms);
        }
    }

    /// The caller's TLS failed (the handshake, or a record that did not
    /// verify): the connection is closed at once.
    pub fn handle_tls_failed(&mut self) {
        if self.state != State::Done {
            self.fail_without_code(Fault::Tls(self.step()));
        }
    }

    /// The caller's TLS handshake after [`Signal::StartTls`] is done.
    pub fn handle_tls_established(&mut self, now_ms: u64) {
        if self.state == State::TlsHandshake {
            self.tls = true;
            // RFC 3207: all knowledge from before TLS is discarded, a
            // partly read line among it.
            self.extensions = Extensions::default();
            self.parser = ReplyParser::new();
            self.send(Command::Ehlo, now_ms, COMMAND_MS);
        }
    }

    /// The connection closed (or failed) under the client.
    pub fn handle_closed(&mut self) {
        if self.state != State::Done {
            self.fail_without_code(Fault::Closed(self.step()));
        }
    }

    /// Whether the conversation is over and the connection closed (or to
    /// be closed at [`Signal::Closed`]).
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Where message bytes go in `dst`, the caller's buffer for the
    /// server, while the message is being sent (after
    /// [`Signal::ReadyForData`], before [`end_message`](Self::end_message);
    /// empty otherwise): for `DATA`, all of `dst`, and the message is on
    /// the wire as written (dot-safe: no line may begin with `.`); for
    /// `BDAT`, as much of `dst` as `chunks` can stage and `slack` more
    /// (the caller stages them, and keeps what did not fit for after the
    /// full chunk has gone).
    pub fn message_room<'d>(
        &self,
        chunks: &ChunkStore,
        slack: usize,
        dst: &'d mut [u8],
    ) -> &'d mut [u8] {
        let room = match (self.state, self.framing) {
            (State::Data, Framing::Data) if self.sending.is_none() => dst.len(),
            (State::Data, Framing::Bdat { .. }) if self.last == Last::No && !self.draining => {
                (chunks.room() + slack).min(dst.len())
            }
            _ => 0,
        };
        &mut dst[..room]
    }

    /// The caller has written the whole message after
    /// [`Signal::ReadyForData`]; the client ends it (`.` for `DATA`, the
    /// `LAST` chunk for `BDAT`).
    pub fn end_message(&mut self, now_ms: u64) {
        if self.state != State::Data || self.last != Last::No {
            return;
        }
        match self.framing {
            Framing::Data => self.send(Command::EndOfData, now_ms, END_OF_DATA_MS),
            Framing::Bdat { .. } => {
                self.last = Last::Due;
                self.deadline = Some(now_ms.saturating_add(END_OF_DATA_MS));
            }
        }
    }

    /// Feeds bytes from the server; returns how many were consumed. Feeding
    /// stops while an event is waiting, and while command bytes are still
    /// to be sent ([`poll_transmit`](Self::poll_transmit)): a reply is only
    /// read once the command it answers is on the wire, so a server that
    /// answers ahead cannot reorder what the client sends. Offer the rest
    /// again after taking the event or transmitting.
    pub fn handle_input(&mut self, now_ms: u64, envelope: &Envelope<'_>, input: &[u8]) -> usize {
        let mut used = 0;
        if self.state == State::TlsHandshake && !input.is_empty() {
            // Nothing may come between the 220 and the handshake.
            self.fail_without_code(Fault::StartTlsInjection);
            return input.len();
        }
        while used < input.len()
            && !self.has_event()
            && self.sending.is_none()
            && self.state != State::Done
        {
            match self.parser.feed(&input[used..]) {
                Ok((reply, n)) => {
                    used += n;
                    if let Some(reply) = reply {
                        self.on_reply(envelope, reply, now_ms);
                    }
                }
                Err(_) => {
                    self.fail_without_code(Fault::NotSmtp(self.step()));
                    return input.len();
                }
            }
        }
        if self.state == State::TlsHandshake && used < input.len() {
            // Bytes in the same read as the 220 to STARTTLS: an injection
            // (Poddebniak et al., 2021), never to be read as if under TLS.
            self.fail_without_code(Fault::StartTlsInjection);
            return input.len();
        }
        used
    }

    fn on_reply(&mut self, envelope: &Envelope<'_>, reply: Reply, now_ms: u64) {
        let code = reply.code;
        match self.state {
            State::Greeting if code == 220 => self.send(Command::Ehlo, now_ms, COMMAND_MS),
            State::Awaiting(Command::Ehlo) if reply.is_positive() => {
                self.extensions = reply.extensions;
                self.after_hello(envelope, now_ms);
            }
            State::Awaiting(Command::Ehlo) if code / 100 == 5 && !self.tls => {
                self.send(Command::Helo, now_ms, COMMAND_MS)
            }
            State::Awaiting(Command::Helo) if reply.is_positive() => {
                self.after_hello(envelope, now_ms)
            }
            State::Awaiting(Command::StartTls) if code == 220 => {
                self.state = State::TlsHandshake;
                self.deadline = Some(now_ms.saturating_add(TLS_HANDSHAKE_MS));
                self.event = Some(Signal::StartTls);
            }
            // RFC 3207: the session goes on without TLS, as if STARTTLS
            // had not been offered (a 454 is what a downgrade looks like).
            State::Awaiting(Command::StartTls) if code >= 400 => {
                self.sign_in(envelope, code, now_ms)
            }
            State::Awaiting(Command::AuthLogin) if code == 334 => {
                self.send(Command::LoginUser, now_ms, COMMAND_MS)
            }
            State::Awaiting(Command::LoginUser) if code == 334 => {
                self.send(Command::LoginPassword, now_ms, COMMAND_MS)
            }
            State::Awaiting(Command::AuthToken { inline: false }) if code == 334 => {
                self.send(Command::TokenResponse, now_ms, COMMAND_MS)
            }
            State::Awaiting(Command::AuthToken { inline: true } | Command::TokenResponse)
                if code == 334 =>
            {
                // The token is refused; the 535 comes once this is answered.
                self.token_status = ErrorStatus::from_challenge(self.parser.text());
                self.send(Command::ErrorAnswer, now_ms, COMMAND_MS)
            }
            State::Awaiting(
                Command::AuthPlain
                | Command::LoginPassword
                | Command::AuthToken { .. }
                | Command::TokenResponse,
            ) if code == 235 => self.start_envelope(envelope, now_ms),
            State::Awaiting(Command::Mail) if reply.is_positive() => {
                self.next_rcpt(envelope, 0, now_ms)
            }
            State::Awaiting(Command::Rcpt(i)) if reply.is_positive() => {
                self.next_rcpt(envelope, i + 1, now_ms)
            }
            State::Awaiting(Command::Data) if code == 354 => self.ready_for_data(),
            State::Envelope { next, last } => self.on_flight_reply(next, last, reply, now_ms),
            State::Awaiting(Command::EndOfData) if reply.is_positive() => {
                self.delivered = true;
                self.verdict(Signal::Delivered);
                self.wind_down(Some(0), now_ms);
            }
            State::Awaiting(Command::Quit) => self.close_now(),
            // RFC 3030 4.2: the transaction a refused chunk left is reset
            // before the conversation ends.
            State::Awaiting(Command::Rset) => {
                self.rset = false;
                self.wind_down(Some(0), now_ms)
            }
            State::Data if self.framing.is_bdat() && self.owed > 0 => {
                self.on_chunk_reply(reply, now_ms)
            }
            State::Ending { .. } if code / 100 == 3 => {
                // DATA or AUTH went ahead: the server now takes whatever
                // comes as message or credentials, never as a QUIT.
                self.close_now()
            }
            State::Ending { due } => self.wind_down(Some(due - 1), now_ms),
            _ => self.refused(code, now_ms),
        }
    }

    /// A reply to a whole `BDAT` chunk: the mail goes on, is delivered
    /// (the `LAST` chunk's, the last owed), or ends with the refusal's
    /// code: no further chunk (one part way out is finished, so the
    /// server can read what follows), the replies owed read, then RSET
    /// and QUIT.
    fn on_chunk_reply(&mut self, reply: Reply, now_ms: u64) {
        self.owed -= 1;
        if reply.is_positive() {
            if self.owed == 0 && self.last == Last::Sent {
                self.delivered = true;
                self.verdict(Signal::Delivered);
                self.wind_down(Some(0), now_ms);
            }
            return;
        }
        if reply.code < 400 {
            self.failure = Some(Fault::NotSmtp(self.step()));
            self.verdict(Signal::Failed(0));
        } else {
            self.verdict(Signal::Failed(reply.code));
        }
        self.rset = true;
        let due = self.owed + u16::from(self.draining);
        self.wind_down(Some(due), now_ms);
    }

    /// The reply `code` ends the mail; the replies of the flight still due
    /// are read before the QUIT. Inside DATA the connection is closed at
    /// once: the server would read a QUIT as message text.
    fn refused(&mut self, code: u16, now_ms: u64) {
        let due = match self.state {
            State::Envelope { next, last } => Some(u16::from(last - next)),
            State::Data => None,
            _ => Some(0),
        };
        if self.ended {
            return self.close_now();
        }
        if code < 400 {
            // A positive reply where none fits is no verdict: a URC of 250
            // would tell the host the mail went.
            self.failure = Some(Fault::NotSmtp(self.step()));
            self.verdict(Signal::Failed(0));
            return self.wind_down(due, now_ms);
        }
        self.token_refused = matches!(
            self.state,
            State::Awaiting(
                Command::AuthToken { .. } | Command::TokenResponse | Command::ErrorAnswer
            )
        );
        self.verdict(Signal::Failed(code));
        self.wind_down(due, now_ms);
    }

    /// The replies owed to commands on the wire, or `None` when the
    /// connection cannot carry a QUIT (inside DATA, inside TLS or STARTTLS,
    /// over).
    fn replies_owed(&mut self) -> Option<u16> {
        if self.sending == Some(Command::EndOfData) {
            // The server is still reading message text: a QUIT would be
            // part of it.
            return None;
        }
        if self.sending.is_some() && self.replayed == 0 {
            // Not on the wire yet: never sent, never answered.
            self.sending = None;
            return Some(0);
        }
        match self.state {
            State::Greeting => Some(1),
            State::Awaiting(Command::StartTls | Command::Quit) => None,
            State::Awaiting(_) => Some(1),
            State::Envelope { next, last } => Some(u16::from(last - next) + 1),
            State::Ending { due } => Some(due),
            // BDAT: between chunks the server reads commands again; the
            // chunk's transaction is reset before the QUIT.
            State::Data if self.framing.is_bdat() && !self.draining => {
                self.rset = true;
                Some(self.owed)
            }
            State::TlsHandshake | State::Data | State::Done => None,
        }
    }

    /// After the verdict: QUIT once `due` replies are read, or close at
    /// once (`None`). The whole end is bounded by [`QUIT_MS`] from its
    /// start.
    fn wind_down(&mut self, due: Option<u16>, now_ms: u64) {
        let deadline = match self.state {
            State::Ending { .. } => self.deadline,
            _ => Some(now_ms.saturating_add(QUIT_MS)),
        };
        match due {
            None => return self.close_now(),
            Some(0) => {
                let next = match self.rset {
                    true => Command::Rset,
                    false => Command::Quit,
                };
                self.sending = Some(next);
                self.replayed = 0;
                self.state = State::Awaiting(next);
            }
            Some(due) => self.state = State::Ending { due },
        }
        self.deadline = deadline;
    }

    fn verdict(&mut self, event: Signal) {
        self.verdict_step = self.step();
        self.ended = true;
        self.event = Some(event);
    }

    /// EHLO or HELO accepted: STARTTLS when offered, then sign-in.
    fn after_hello(&mut self, envelope: &Envelope<'_>, now_ms: u64) {
        if !self.tls && self.extensions.starttls {
            return self.send(Command::StartTls, now_ms, COMMAND_MS);
        }
        self.sign_in(envelope, 0, now_ms)
    }

    /// AUTH as the policy allows on this connection (`refused`: the reply
    /// to STARTTLS if it was refused), then the envelope.
    fn sign_in(&mut self, envelope: &Envelope<'_>, refused: u16, now_ms: u64) {
        let offered = self.extensions.auth;
        let has_secret = envelope.credentials.is_set();
        if !self.tls {
            // A refused STARTTLS says the server wanted TLS: a mail with
            // credentials stops there even when AUTH is offered only
            // under TLS (Postfix's default), rather than going on
            // unauthenticated into a refusal that hides why.
            let wants_auth = !offered.is_empty() || refused != 0;
            let sign_in = match self.policy {
                TlsPolicy::Required => Some(false),
                TlsPolicy::Opportunistic if has_secret && wants_auth => Some(true),
                _ => None,
            };
            if let Some(sign_in) = sign_in {
                return self.give_up(Fault::NoTls { refused, sign_in }, now_ms);
            }
        }
        let mechanism = envelope.credentials.mechanism();
        if mechanism.uses_token() {
            return self.auth_token(envelope, mechanism, now_ms);
        }
        if offered.contains(AuthOffer::PLAIN) && has_secret {
            self.send(Command::AuthPlain, now_ms, COMMAND_MS)
        } else if offered.contains(AuthOffer::LOGIN) && has_secret {
            self.send(Command::AuthLogin, now_ms, COMMAND_MS)
        } else if offered.is_empty() || !has_secret {
            // A server that offers no AUTH (a relay on a private network),
            // or a mail without a password: no sign-in.
            self.start_envelope(envelope, now_ms)
        } else {
            self.give_up(Fault::NoCommonMechanism(offered), now_ms)
        }
    }

    /// The mail fails before MAIL FROM for `fault`; the connection ends
    /// with QUIT.
    fn give_up(&mut self, fault: Fault, now_ms: u64) {
        self.failure = Some(fault);
        self.verdict(Signal::Failed(0));
        self.wind_down(Some(0), now_ms);
    }

    /// AUTH with a token, when the server offers its mechanism (never a
    /// password instead: the host chose the token).
    fn auth_token(&mut self, envelope: &Envelope<'_>, mechanism: Mechanism, now_ms: u64) {
        let wanted = match mechanism {
            Mechanism::XOAuth2 => AuthOffer::XOAUTH2,
            _ => AuthOffer::OAUTHBEARER,
        };
        if !self.extensions.auth.contains(wanted) {
            return self.give_up(Fault::MechanismNotOffered(mechanism), now_ms);
        }
        // RFC 4954 4: "AUTH", the name, the response and CRLF within the
        // 512 octets of a command line, else the response after a 334.
        let line = 5
            + mechanism.name().len()
            + 1
            + sasl::response_len(envelope.user, &envelope.credentials)
            + 2;
        let inline = line <= 512;
        self.send(Command::AuthToken { inline }, now_ms, COMMAND_MS)
    }

    fn start_envelope(&mut self, envelope: &Envelope<'_>, now_ms: u64) {
        self.framing = Framing::choose(envelope.transfer, &self.extensions);
        if self.extensions.pipelining {
            self.sending = Some(Command::Flight);
            self.replayed = 0;
            // BDAT: no DATA in the flight; the last RCPT's reply is the go-ahead.
            let data = u8::from(!self.framing.is_bdat());
            self.state = State::Envelope {
                next: 0,
                last: envelope.recipients.count() as u8 + data,
            };
            self.deadline = Some(now_ms.saturating_add(COMMAND_MS));
        } else {
            self.send(Command::Mail, now_ms, COMMAND_MS);
        }
    }

    fn next_rcpt(&mut self, envelope: &Envelope<'_>, i: u8, now_ms: u64) {
        if (i as usize) < envelope.recipients.count() {
            self.send(Command::Rcpt(i), now_ms, COMMAND_MS);
        } else if !self.framing.is_bdat() {
            self.send(Command::Data, now_ms, DATA_INIT_MS);
        } else {
            self.ready_for_data();
        }
    }

    /// One reply of the pipelined flight, in order: MAIL, each RCPT, DATA.
    fn on_flight_reply(&mut self, next: u8, last: u8, reply: Reply, now_ms: u64) {
        if next < last {
            if !reply.is_positive() {
                return self.refused(reply.code, now_ms);
            }
            self.state = State::Envelope {
                next: next + 1,
                last,
            };
            let timeout = if next + 1 == last {
                DATA_INIT_MS
            } else {
                COMMAND_MS
            };
            self.deadline = Some(now_ms.saturating_add(timeout));
        } else if reply.code == 354 && !self.framing.is_bdat() {
            self.ready_for_data();
        } else if reply.is_positive() && self.framing.is_bdat() {
            // BDAT: the last RCPT's acceptance.
            self.ready_for_data();
        } else {
            self.refused(reply.code, now_ms);
        }
    }

    fn ready_for_data(&mut self) {
        self.state = State::Data;
        self.deadline = None;
        self.event = Some(Signal::ReadyForData);
    }

    fn send(&mut self, command: Command, now_ms: u64, timeout_ms: u64) {
        self.sending = Some(command);
        self.replayed = 0;
        self.state = State::Awaiting(command);
        self.deadline = Some(now_ms.saturating_add(timeout_ms));
    }

    /// The connection cannot go on (closed, not SMTP, TLS failed or
    /// injected into): the verdict, if none was given, then the close.
    fn fail_without_code(&mut self, failure: Fault) {
        if !self.ended {
            self.failure = Some(failure);
            self.verdict(Signal::Failed(0));
        }
        self.close_now();
    }

    fn close_now(&mut self) {
        self.ended = true;
        self.state = State::Done;
        self.sending = None;
        self.deadline = None;
        self.closed = true;
    }
}

fn write_command(out: &mut dyn Out, command: Command, env: &Envelope<'_>, framing: Framing) {
    match command {
        Command::Ehlo => line(out, &[b"EHLO ", env.helo_name]),
        Command::Helo => line(out, &[b"HELO ", env.helo_name]),
        Command::StartTls => out.put(b"STARTTLS\r\n"),
        Command::AuthPlain => {
            out.put(b"AUTH PLAIN ");
            sasl::write_response(out, env.user, &env.credentials);
            out.put(b"\r\n");
        }
        Command::AuthLogin => out.put(b"AUTH LOGIN\r\n"),
        Command::LoginUser => {
            sasl::write_base64(out, env.user);
            out.put(b"\r\n");
        }
        Command::LoginPassword => {
            if let Credentials::Password(password) = env.credentials {
                sasl::write_base64(out, password);
            }
            out.put(b"\r\n");
        }
        Command::AuthToken { inline } => {
            out.put(b"AUTH ");
            out.put(env.credentials.mechanism().name().as_bytes());
            if inline {
                out.put(b" ");
                sasl::write_response(out, env.user, &env.credentials);
            }
            out.put(b"\r\n");
        }
        Command::TokenResponse => {
            sasl::write_response(out, env.user, &env.credentials);
            out.put(b"\r\n");
        }
        // XOAUTH2: an empty response; OAUTHBEARER: %x01 (RFC 7628 3.2.3).
        Command::ErrorAnswer => match env.credentials.mechanism() {
            Mechanism::OAuthBearer => out.put(b"AQ==\r\n"),
            _ => out.put(b"\r\n"),
        },
        Command::Flight => {
            write_command(out, Command::Mail, env, framing);
            for i in 0..env.recipients.count() {
                write_command(out, Command::Rcpt(i as u8), env, framing);
            }
            if !framing.is_bdat() {
                write_command(out, Command::Data, env, framing);
            }
        }
        Command::Mail => {
            // RFC 3030 3: BINARYMIME only with BDAT, never with DATA.
            let body: &[u8] = match framing {
                Framing::Bdat { binary: true } => b" BODY=BINARYMIME",
                _ => b"",
            };
            line(out, &[b"MAIL FROM:<", env.from.as_bytes(), b">", body])
        }
        Command::Rcpt(i) => {
            let recipient = env.recipients.recipient(i as usize);
            let address = recipient.map_or(&b""[..], |r| r.address.as_bytes());
            line(out, &[b"RCPT TO:<", address, b">"]);
        }
        Command::Data => out.put(b"DATA\r\n"),
        // The message ends with CRLF, so this completes "CRLF . CRLF".
        Command::EndOfData => out.put(b".\r\n"),
        Command::Rset => out.put(b"RSET\r\n"),
        Command::Quit => out.put(b"QUIT\r\n"),
    }
}

fn line(out: &mut dyn Out, parts: &[&[u8]]) {
    for part in parts {
        out.put(part);
    }
    out.put(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Recipient, RecipientKind};
    use base64::Engine as _;
    use std::vec;
    use std::vec::Vec;

    const NOBODY: [Recipient<'static>; 0] = [];

    /// A scripted server: for each step, the replies it sends, then the
    /// exact bytes the client must have sent before the next step.
    struct Script<'s> {
        steps: &'s [(&'s [u8], &'s [u8])],
    }

    struct Run {
        sent: Vec<u8>,
        events: Vec<Signal>,
        flights: usize,
        /// What `token_refusal` said while the failure was taken.
        refusal: Option<(Vec<u8>, Vec<u8>)>,
    }

    fn envelope<'a>(recipients: &'a dyn Recipients) -> Envelope<'a> {
        Envelope {
            helo_name: b"[10.44.221.130]",
            user: b"wangww@fibocom.com",
            credentials: Credentials::Password(b"ght64621178"),
            from: Address::new(b"wangww@fibocom.com").unwrap(),
            recipients,
            transfer: Transfer::Off,
        }
    }

    /// Plays `script`, feeding each server reply in `cut`-byte pieces; the
    /// caller writes `message` at ReadyForData and starts TLS at StartTls.
    fn run(policy: TlsPolicy, env: &Envelope<'_>, script: Script<'_>, cut: usize) -> Run {
        run_with(&mut SmtpClient::new(0, policy), env, script, cut)
    }

    /// As [`run`], with a client the caller looks at afterwards.
    fn run_with(
        client: &mut SmtpClient,
        env: &Envelope<'_>,
        script: Script<'_>,
        cut: usize,
    ) -> Run {
        let mut run = Run {
            sent: Vec::new(),
            events: Vec::new(),
            flights: 0,
            refusal: None,
        };
        let mut buf = [0u8; 7];
        for (i, (replies, expect)) in script.steps.iter().enumerate() {
            let now = i as u64 * 10;
            let before = run.sent.len();
            for piece in replies.chunks(cut) {
                let mut rest = piece;
                while !rest.is_empty() {
                    let n = client.handle_input(now, env, rest);
                    rest = &rest[n..];
                    while let Some(event) = client.poll_signal() {
                        run.events.push(event);
                        if let Some((status, text)) = client.token_refusal() {
                            run.refusal = Some((status.as_bytes().to_vec(), text.to_vec()));
                        }
                        match event {
                            Signal::StartTls => client.handle_tls_established(now),
                            Signal::ReadyForData => {
                                run.sent.extend_from_slice(b"<message>\r\n");
                                client.end_message(now);
                            }
                            _ => {}
                        }
                    }
                    if client.state == State::Done {
                        rest = &[];
                    }
                }
            }
            loop {
                let n = client.poll_transmit(env, &mut ChunkStore::new(), &mut buf);
                if n == 0 {
                    break;
                }
                run.sent.extend_from_slice(&buf[..n]);
            }
            run.flights += (run.sent.len() > before) as usize;
            let sent = &run.sent[before..];
            assert_eq!(
                sent,
                *expect,
                "step {i}: client sent {:?}",
                std::string::String::from_utf8_lossy(sent)
            );
        }
        run
    }

    const EHLO_PIPE: &[u8] = b"250-mx\r\n250-PIPELINING\r\n250 AUTH LOGIN PLAIN\r\n";

    #[test]
    fn pipelined_mail_with_auth_plain() {
        let rcpt = [
            Recipient {
                kind: RecipientKind::To,
                address: Address::new(b"xiangj@fibocom.com").unwrap(),
            },
            Recipient {
                kind: RecipientKind::Bcc,
                address: Address::new(b"b@x.com").unwrap(),
            },
        ];
        let env = envelope(&rcpt);
        let steps: &[(&[u8], &[u8])] = &[
            (b"220 mx ESMTP\r\n", b"EHLO [10.44.221.130]\r\n"),
            (EHLO_PIPE, b"AUTH PLAIN AHdhbmd3d0BmaWJvY29tLmNvbQBnaHQ2NDYyMTE3OA==\r\n"),
            (b"235 ok\r\n", b"MAIL FROM:<wangww@fibocom.com>\r\nRCPT TO:<xiangj@fibocom.com>\r\nRCPT TO:<b@x.com>\r\nDATA\r\n"),
            (b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", b"<message>\r\n.\r\n"),
            (b"250 queued\r\n", b"QUIT\r\n"),
            (b"221 bye\r\n", b""),
        ];
        for cut in [1, 3, 100] {
            let r = run(TlsPolicy::ClearSignIn, &env, Script { steps }, cut);
            assert_eq!(
                r.events,
                [Signal::ReadyForData, Signal::Delivered, Signal::Closed],
                "cut {cut}"
            );
        }
    }

    #[test]
    fn twenty_recipients_go_in_one_flight() {
        let addrs: Vec<std::string::String> = (0..20).map(|i| std::format!("r{i}@x.com")).collect();
        let rcpt: Vec<Recipient<'_>> = addrs
            .iter()
            .map(|a| Recipient {
                kind: RecipientKind::To,
                address: Address::new(a.as_bytes()).unwrap(),
            })
            .collect();
        let env = envelope(&rcpt);
        let mut flight = b"MAIL FROM:<wangww@fibocom.com>\r\n".to_vec();
        for a in &addrs {
            flight.extend_from_slice(std::format!("RCPT TO:<{a}>\r\n").as_bytes());
        }
        flight.extend_from_slice(b"DATA\r\n");
        let replies = [&b"250 ok\r\n".repeat(21)[..], b"354 go\r\n"].concat();
        let steps: &[(&[u8], &[u8])] = &[
            (b"220 mx\r\n", b"EHLO [10.44.221.130]\r\n"),
            (b"250-mx\r\n250 PIPELINING\r\n", &flight),
            (&replies, b"<message>\r\n.\r\n"),
        ];
        let r = run(TlsPolicy::ClearSignIn, &env, Script { steps }, 64);
        assert_eq!(r.events, [Signal::ReadyForData]);
        assert_eq!(
            r.flights, 3,
            "EHLO, the envelope, the message: one flight each"
        );
    }

    fn b64(bytes: &[u8]) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .encode(bytes)
            .into_bytes()
    }

    fn with_crlf(mut line: Vec<u8>) -> Vec<u8> {
        line.extend_from_slice(b"\r\n");
        line
    }

    /// The token exchanges: inline when the AUTH line fits in 512 octets,
    /// else after the 334; accepted, and refused after an error challenge.
    #[test]
    fn token_auth_inline_or_after_334_and_the_error_challenge() {
        let rcpt = [Recipient {
            kind: RecipientKind::To,
            address: Address::new(b"xiangj@fibocom.com").unwrap(),
        }];
        let ehlo: &[u8] = b"250-mx\r\n250 AUTH PLAIN XOAUTH2 OAUTHBEARER\r\n";
        let challenge = with_crlf(
            [
                &b"334 "[..],
                &b64(br#"{"status":"401","schemes":"bearer","scope":"mail"}"#),
            ]
            .concat(),
        );
        let short = [b'T'; 40];
        let long = [b'L'; 2600];
        for (token, mechanism) in [
            (&short[..], Mechanism::XOAuth2),
            (&long[..], Mechanism::XOAuth2),
            (&short[..], Mechanism::OAuthBearer),
            (&long[..], Mechanism::OAuthBearer),
        ] {
            let credentials = match mechanism {
                Mechanism::XOAuth2 => Credentials::XOAuth2 { token },
                _ => Credentials::OAuthBearer {
                    token,
                    host: b"mail.fibocom.com",
                    port: 587,
                },
            };
            let env = Envelope {
                credentials,
                ..envelope(&rcpt)
            };
            let mut response = Vec::new();
            sasl::write_response(&mut response, env.user, &credentials);
            let name = mechanism.name().as_bytes();
            let inline = with_crlf([&b"AUTH "[..], name, b" ", &response].concat());
            let first: Vec<u8> = if inline.len() <= 512 {
                inline.clone()
            } else {
                with_crlf([&b"AUTH "[..], name].concat())
            };
            assert_eq!(inline.len() <= 512, token.len() == 40);
            let mut steps: Vec<(&[u8], Vec<u8>)> = vec![
                (b"220 mx\r\n", b"EHLO [10.44.221.130]\r\n".to_vec()),
                (ehlo, first.clone()),
            ];
            let response_line = with_crlf(response.clone());
            if inline.len() > 512 {
                steps.push((b"334 \r\n", response_line.clone()));
            }
            let accepted = [
                &steps[..],
                &[
                    (
                        &b"235 2.7.0 ok\r\n"[..],
                        b"MAIL FROM:<wangww@fibocom.com>\r\n".to_vec(),
                    ),
                    (b"250 ok\r\n", b"RCPT TO:<xiangj@fibocom.com>\r\n".to_vec()),
                ][..],
            ]
            .concat();
            let answer: &[u8] = match mechanism {
                Mechanism::XOAuth2 => b"\r\n",
                _ => b"AQ==\r\n",
            };
            let refused = [
                &steps[..],
                &[
                    (&challenge[..], answer.to_vec()),
                    (
                        b"535 5.7.8 Error: authentication failed\r\n",
                        b"QUIT\r\n".to_vec(),
                    ),
                ][..],
            ]
            .concat();
            for cut in [1, 7, 1000] {
                let steps: Vec<(&[u8], &[u8])> =
                    accepted.iter().map(|(a, b)| (*a, &b[..])).collect();
                let r = run(TlsPolicy::ClearSignIn, &env, Script { steps: &steps }, cut);
                assert!(r.events.is_empty(), "{mechanism:?} {cut}: {:?}", r.events);

                let steps: Vec<(&[u8], &[u8])> =
                    refused.iter().map(|(a, b)| (*a, &b[..])).collect();
                let r = run(TlsPolicy::ClearSignIn, &env, Script { steps: &steps }, cut);
                assert_eq!(r.events, [Signal::Failed(535)], "{mechanism:?} {cut}");
                let (status, text) = r.refusal.unwrap();
                assert_eq!(status, b"401");
                assert_eq!(text, b"5.7.8 Error: authentication failed");
            }
        }
    }

    #[test]
    fn a_token_for_a_mechanism_not_offered_fails_with_a_reason_and_quits() {
        let rcpt: [Recipient<'static>; 0] = [];
        let env = Envelope {
            credentials: Credentials::OAuthBearer {
                token: b"t",
                host: b"mx",
                port: 25,
            },
            ..envelope(&rcpt)
        };
        let steps: &[(&[u8], &[u8])] = &[
            (b"220 mx\r\n", b"EHLO [10.44.221.130]\r\n"),
            (b"250-mx\r\n250 AUTH PLAIN LOGIN XOAUTH2\r\n", b"QUIT\r\n"),
            (b"221 bye\r\n", b""),
        ];
        let mut client = SmtpClient::new(0, TlsPolicy::ClearSignIn);
        let r = run_with(&mut client, &env, Script { steps }, 100);
        assert_eq!(r.events, [Signal::Failed(0), Signal::Closed]);
        let fault = client.failure().unwrap();
        assert_eq!(fault, Fault::MechanismNotOffered(Mechanism::OAuthBearer));
        assert_eq!(
            std::format!("{fault}"),
            "the server does not offer AUTH OAUTHBEARER"
        );
    }

    #[test]
    fn starttls_then_auth_login_without_pipelining() {
        let rcpt = [Recipient {
            kind: RecipientKind::Cc,
            address: Address::new(b"c@x.com").unwrap(),
        }];
        let env = envelope(&rcpt);
        let steps: &[(&[u8], &[u8])] = &[
            (b"220 mx\r\n", b"EHLO [10.44.221.130]\r\n"),
            (
                b"250-mx\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n",
                b"STARTTLS\r\n",
            ),
            (b"220 go ahead\r\n", b"EHLO [10.44.221.130]\r\n"),
            (b"250-mx\r\n250 AUTH LOGIN\r\n", b"AUTH LOGIN\r\n"),
            (b"334 VXNlcm5hbWU6\r\n", b"d2FuZ3d3QGZpYm9jb20uY29t\r\n"),
            (b"334 UGFzc3dvcmQ6\r\n", b"Z2h0NjQ2MjExNzg=\r\n"),
            (b"235 ok\r\n", b"MAIL FROM:<wangww@fibocom.com>\r\n"),
            (b"250 ok\r\n", b"RCPT TO:<c@x.com>\r\n"),
            (b"250 ok\r\n", b"DATA\r\n"),
            (b"354 go\r\n", b"<message>\r\n.\r\n"),
            (b"250 ok\r\n", b"QUIT\r\n"),
        ];
        let r = run(TlsPolicy::Required, &env, Script { steps }, 5);
        assert_eq!(
            r.events,
            [Signal::StartTls, Signal::ReadyForData, Signal::Delivered]
        );
    }

    #[test]
    fn every_step_that_refuses_fails_with_its_code() {
        let rcpt = [Recipient {
            kind: RecipientKind::To,
            address: Address::new(b"t@x.com").unwrap(),
        }];
        let env = envelope(&rcpt);
        let plain_ehlo: &[u8] = b"250-mx\r\n250 AUTH PLAIN\r\n";
        let auth: &[u8] = b"AUTH PLAIN AHdhbmd3d0BmaWJvY29tLmNvbQBnaHQ2NDYyMTE3OA==\r\n";
        let cases: &[(&str, &[(&[u8], &[u8])], Signal)] = &[
            (
                "greeting 554",
                &[(b"554 go away\r\n", b"QUIT\r\n"), (b"221 bye\r\n", b"")],
                Signal::Failed(554),
            ),
            (
                "greeting 421",
                &[(b"421 busy\r\n", b"QUIT\r\n"), (b"221 bye\r\n", b"")],
                Signal::Failed(421),
            ),
            (
                "helo refused too",
                &[
                    (b"220 mx\r\n", b"EHLO [10.44.221.130]\r\n"),
                    (b"502 no\r\n", b"HELO [10.44.221.130]\r\n"),
                    (b"501 no\r\n", b"QUIT\r\n"),
                    (b"221 bye\r\n", b""),
                ],
                Signal::Failed(501),
            ),
            (
                "ehlo 421",
                &[
                    (b"220 mx\r\n", b"EHLO [10.44.221.130]\r\n"),
                    (b"421 bye\r\n", b"QUIT\r\n"),
                    (b"221 bye\r\n", b""),
                ],
                Signal::Failed(421),
            ),
            (
                "auth 535",
                &[
                    (b"220 mx\r\n", b"EHLO [10.44.221.130]\r\n"),
                    (plain_ehlo, auth),
                    (b"535 bad\r\n", b"QUIT\r\n"),
                    (b"221 bye\r\n", b""),
                ],
                Signal::Failed(535),
            ),
            (
                "mail 550",
                &[
                    (b"220 mx\r\n", b"EHLO [10.44.221.130]\r\n"),
                    (plain_ehlo, auth),
                    (b"235 ok\r\n", b"MAIL FROM:<wangww@fibocom.com>\r\n"),
                    (b"550 no\r\n", b"QUIT\r\n"),
                    (b"221 bye\r\n", b""),
                ],
                Signal::Failed(550),
            ),
            (
                "rcpt 450",
                &[
                    (b"220 mx\r\n", b"EHLO [10.44.221.130]\r\n"),
                    (plain_ehlo, auth),
                    (b"235 ok\r\n", b"MAIL FROM:<wangww@fibocom.com>\r\n"),
                    (b"250 ok\r\n", b"RCPT TO:<t@x.com>\r\n"),
                    (b"450 later\r\n", b"QUIT\r\n"),
                    (b"221 bye\r\n", b""),
                ],
                Signal::Failed(450),
            ),
            (
                "data 554",
                &[
                    (b"220 mx\r\n", b"EHLO [10.44.221.130]\r\n"),
                    (plain_ehlo, auth),
                    (b"235 ok\r\n", b"MAIL FROM:<wangww@fibocom.com>\r\n"),
                    (b"250 ok\r\n", b"RCPT TO:<t@x.com>\r\n"),
                    (b"250 ok\r\n", b"DATA\r\n"),
                    (b"554 no\r\n", b"QUIT\r\n"),
                    (b"221 bye\r\n", b""),
                ],
                Signal::Failed(554),
            ),
            ("not smtp", &[(b"HTTP/1.1 400\r\n", b"")], Signal::Failed(0)),
        ];
        for (name, steps, want) in cases {
            let r = run(TlsPolicy::ClearSignIn, &env, Script { steps }, 4);
            assert_eq!(r.events, [*want, Signal::Closed], "{name}");
            assert!(!r.sent.ends_with(b".\r\n"), "{name}: end-of-data sent");
            let quits = r.sent.windows(6).filter(|w| w == b"QUIT\r\n").count();
            assert_eq!(quits, usize::from(*want != Signal::Failed(0)), "{name}");
        }
    }

    #[test]
    fn pipelined_rcpt_refusal_fails_even_if_data_is_accepted() {
        let rcpt = [Recipient {
            kind: RecipientKind::To,
            address: Address::new(b"t@x.com").unwrap(),
        }];
        let env = envelope(&rcpt);
        let steps: &[(&[u8], &[u8])] = &[
            (b"220 mx\r\n", b"EHLO [10.44.221.130]\r\n"),
            (
                b"250-mx\r\n250 PIPELINING\r\n",
                b"MAIL FROM:<wangww@fibocom.com>\r\nRCPT TO:<t@x.com>\r\nDATA\r\n",
            ),
            (b"250 ok\r\n553 no such user\r\n354 go\r\n", b""),
        ];
        let r = run(TlsPolicy::ClearSignIn, &env, Script { steps }, 100);
        // The server takes whatever comes now as the message: no QUIT, the
        // connection closes at once.
        assert_eq!(r.events, [Signal::Failed(553), Signal::Closed]);
    }

    #[test]
    fn a_refusal_in_a_flight_says_quit_after_the_flights_last_reply() {
        let rcpt = [
            Recipient {
                kind: RecipientKind::To,
                address: Address::new(b"t@x.com").unwrap(),
            },
            Recipient {
                kind: RecipientKind::To,
                address: Address::new(b"u@x.com").unwrap(),
            },
        ];
        let env = envelope(&rcpt);
        let steps: &[(&[u8], &[u8])] = &[
            (b"220 mx\r\n", b"EHLO [10.44.221.130]\r\n"),
            (
                b"250-mx\r\n250 PIPELINING\r\n",
                b"MAIL FROM:<wangww@fibocom.com>\r\nRCPT TO:<t@x.com>\r\nRCPT TO:<u@x.com>\r\nDATA\r\n",
            ),
            (b"250 ok\r\n550 no such user\r\n", b""),
            (b"550 no such user\r\n", b""),
            (b"554 no valid recipients\r\n", b"QUIT\r\n"),
            (b"221 bye\r\n", b""),
        ];
        for cut in [1, 7, 100] {
            let r = run(TlsPolicy::ClearSignIn, &env, Script { steps }, cut);
            assert_eq!(r.events, [Signal::Failed(550), Signal::Closed], "cut {cut}");
        }
    }

    /// A client that has sent EHLO and waits for its reply.
    fn at_ehlo() -> SmtpClient {
        let env = envelope(&NOBODY);
        let mut c = SmtpClient::new(0, TlsPolicy::ClearSignIn);
        let mut buf = [0u8; 64];
        assert_eq!(c.handle_input(0, &env, b"220 mx\r\n"), 8);
        assert!(c.poll_transmit(&env, &mut ChunkStore::new(), &mut buf) > 0);
        c
    }

    #[test]
    fn quit_waits_for_the_reply_owed_then_for_221_then_closes() {
        let env = envelope(&NOBODY);
        let mut buf = [0u8; 64];
        let mut c = at_ehlo();
        c.quit(1000);
        assert_eq!(c.poll_signal(), None, "the caller gave up: no verdict");
        assert_eq!(
            c.poll_transmit(&env, &mut ChunkStore::new(), &mut buf),
            0,
            "EHLO is still owed"
        );
        assert_eq!(c.handle_input(1100, &env, b"250 mx\r\n"), 8);
        let n = c.poll_transmit(&env, &mut ChunkStore::new(), &mut buf);
        assert_eq!(&buf[..n], b"QUIT\r\n");
        assert_eq!(
            c.next_deadline(),
            Some(1000 + QUIT_MS),
            "bounded from the start"
        );
        assert_eq!(c.handle_input(1200, &env, b"221 bye\r\n"), 9);
        assert_eq!(c.poll_signal(), Some(Signal::Closed));
        assert!(c.is_done());
        // A command not yet on the wire is never sent: QUIT goes instead.
        let mut c = SmtpClient::new(0, TlsPolicy::ClearSignIn);
        assert_eq!(c.handle_input(0, &env, b"220 mx\r\n"), 8);
        c.quit(10);
        let n = c.poll_transmit(&env, &mut ChunkStore::new(), &mut buf);
        assert_eq!(&buf[..n], b"QUIT\r\n");
    }

    #[test]
    fn the_end_of_a_conversation_is_bounded_and_a_close_ends_it() {
        let env = envelope(&NOBODY);
        let mut buf = [0u8; 64];
        // No reply to QUIT: closed at QUIT_MS after the verdict.
        let mut c = at_ehlo();
        assert_eq!(c.handle_input(50, &env, b"451 later\r\n"), 11);
        assert_eq!(c.poll_signal(), Some(Signal::Failed(451)));
        assert_eq!(c.poll_transmit(&env, &mut ChunkStore::new(), &mut buf), 6);
        c.handle_timeout(50 + QUIT_MS - 1);
        assert_eq!(c.poll_signal(), None);
        c.handle_timeout(50 + QUIT_MS);
        assert_eq!(c.poll_signal(), Some(Signal::Closed));
        assert_eq!(c.failure(), None, "a refusal has its code, not a reason");
        // The server closing after the refusal closes, with no second verdict.
        let mut c = at_ehlo();
        assert_eq!(c.handle_input(50, &env, b"421 bye\r\n"), 9);
        assert_eq!(c.poll_signal(), Some(Signal::Failed(421)));
        c.handle_closed();
        assert_eq!(c.poll_signal(), Some(Signal::Closed));
        assert_eq!(c.poll_signal(), None);
        // Inside DATA there is nothing polite to say: closed at once.
        let mut c = at_ehlo();
        c.state = State::Data;
        c.quit(50);
        assert_eq!(c.poll_signal(), Some(Signal::Closed));
        assert_eq!(c.poll_transmit(&env, &mut ChunkStore::new(), &mut buf), 0);
    }

    #[test]
    fn a_failed_tls_says_tls_and_closes() {
        let (mut c, _) = at_starttls(b"");
        assert_eq!(c.poll_signal(), Some(Signal::StartTls));
        c.handle_tls_failed();
        assert_eq!(c.poll_signal(), Some(Signal::Failed(0)));
        assert_eq!(c.poll_signal(), Some(Signal::Closed));
        assert_eq!(c.failure(), Some(Fault::Tls(Step::TlsHandshake)));
        assert_eq!(
            std::format!("{}", Fault::Tls(Step::TlsHandshake)),
            "the TLS handshake failed (certificate refused or no common parameters)"
        );
    }

    /// What a mail does on a connection without TLS, for each mode, EHLO
    /// offer, STARTTLS reply and credential: a man in the middle who
    /// deletes STARTTLS or answers it 454 gets no credential byte, unless
    /// mode 3 said so.
    #[test]
    fn credentials_cross_only_under_tls_unless_mode_3() {
        use TlsPolicy::*;
        const AUTH_PLAIN: &[u8] = b"AUTH PLAIN AHdhbmd3d0BmaWJvY29tLmNvbQBnaHQ2NDYyMTE3OA==\r\n";
        const MAIL: &[u8] = b"MAIL FROM:<wangww@fibocom.com>\r\n";
        const STRIPPED: &[u8] = b"250-mx\r\n250 AUTH PLAIN LOGIN\r\n";
        const OFFERED: &[u8] = b"250-mx\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n";
        const RELAY: &[u8] = b"250 mx\r\n";
        let no_tls = |refused, sign_in| Some(Fault::NoTls { refused, sign_in });
        // (mode, password, EHLO reply, reply to STARTTLS if sent, what the
        // client sends next, the fault)
        let table: &[(TlsPolicy, &[u8], &[u8], &[u8], &[u8], Option<Fault>)] = &[
            (
                Opportunistic,
                b"pw",
                STRIPPED,
                b"",
                b"QUIT\r\n",
                no_tls(0, true),
            ),
            (
                Opportunistic,
                b"pw",
                OFFERED,
                b"454 4.7.0 TLS not available\r\n",
                b"QUIT\r\n",
                no_tls(454, true),
            ),
            (Opportunistic, b"", STRIPPED, b"", MAIL, None),
            (Opportunistic, b"pw", RELAY, b"", MAIL, None),
            (
                Opportunistic,
                b"",
                OFFERED,
                b"454 4.7.0 TLS not available\r\n",
                MAIL,
                None,
            ),
            // Postfix's default: AUTH only after TLS; a 454 still stops a
            // mail with a password.
            (
                Opportunistic,
                b"pw",
                b"250-mx\r\n250 STARTTLS\r\n",
                b"454 4.7.0 TLS not available\r\n",
                b"QUIT\r\n",
                no_tls(454, true),
            ),
            (Required, b"", RELAY, b"", b"QUIT\r\n", no_tls(0, false)),
            (
                Required,
                b"",
                OFFERED,
                b"454 4.7.0 TLS not available\r\n",
                b"QUIT\r\n",
                no_tls(454, false),
            ),
            (ClearSignIn, b"pw", STRIPPED, b"", AUTH_PLAIN, None),
            (
                ClearSignIn,
                b"pw",
                OFFERED,
                b"454 4.7.0 TLS not available\r\n",
                AUTH_PLAIN,
                None,
            ),
        ];
        for &(policy, password, ehlo, starttls, next, fault) in table {
            let mut env = envelope(&NOBODY);
            if password.is_empty() {
                env.credentials = Credentials::Password(b"");
            }
            let mut steps: Vec<(&[u8], &[u8])> = vec![(b"220 mx\r\n", b"EHLO [10.44.221.130]\r\n")];
            if starttls.is_empty() {
                steps.push((ehlo, next));
            } else {
                steps.push((ehlo, b"STARTTLS\r\n"));
                steps.push((starttls, next));
            }
            let mut client = SmtpClient::new(0, policy);
            let r = run_with(&mut client, &env, Script { steps: &steps }, 3);
            let case = std::format!("{policy:?} {password:?} {:?}", std::str::from_utf8(ehlo));
            assert_eq!(client.failure(), fault, "{case}");
            assert!(
                !r.sent.windows(4).any(|w| w == b"AUTH") || next == AUTH_PLAIN,
                "{case}"
            );
            assert_eq!(fault.is_some(), r.events == [Signal::Failed(0)], "{case}");
        }
        let reasons = [
            (no_tls(0, true), "the server offers AUTH but not STARTTLS: credentials go only under TLS (mode 3 of AT+GTSMTPLAND allows sign-in without it)"),
            (no_tls(454, true), "the server refused STARTTLS (454): credentials go only under TLS (mode 3 of AT+GTSMTPLAND allows sign-in without it)"),
            (no_tls(0, false), "TLS is required and the server does not offer STARTTLS"),
            (no_tls(454, false), "TLS is required and the server refused STARTTLS (454)"),
        ];
        for (fault, text) in reasons {
            assert_eq!(std::format!("{}", fault.unwrap()), text);
        }
    }

    /// A token is a secret too: no XOAUTH2 line without TLS in mode 0.
    #[test]
    fn a_token_never_crosses_without_tls() {
        let mut env = envelope(&NOBODY);
        env.credentials = Credentials::XOAuth2 { token: b"ya29.tok" };
        let steps: &[(&[u8], &[u8])] = &[
            (b"220 mx\r\n", b"EHLO [10.44.221.130]\r\n"),
            (b"250-mx\r\n250 AUTH XOAUTH2\r\n", b"QUIT\r\n"),
        ];
        let mut client = SmtpClient::new(0, TlsPolicy::Opportunistic);
        run_with(&mut client, &env, Script { steps }, 4);
        assert_eq!(
            client.failure(),
            Some(Fault::NoTls {
                refused: 0,
                sign_in: true
            })
        );
    }

    /// A password and an AUTH list with nothing the engine speaks: the mail
    /// fails before MAIL FROM, naming what was offered.
    #[test]
    fn no_common_mechanism_fails_before_mail_naming_the_offer() {
        let env = envelope(&NOBODY);
        let cases: &[(&[u8], &str)] = &[
            (b"250-mx\r\n250 AUTH CRAM-MD5\r\n", "CRAM-MD5"),
            (
                b"250-mx\r\n250 AUTH cram-md5 DIGEST-MD5 X-FOO\r\n",
                "CRAM-MD5 DIGEST-MD5 and others",
            ),
            (
                b"250-mx\r\n250 AUTH XOAUTH2 OAUTHBEARER\r\n",
                "XOAUTH2 OAUTHBEARER",
            ),
            (b"250-mx\r\n250 AUTH X-FOO\r\n", "others"),
        ];
        for &(ehlo, names) in cases {
            let steps: &[(&[u8], &[u8])] = &[
                (b"220 mx\r\n", b"EHLO [10.44.221.130]\r\n"),
                (ehlo, b"QUIT\r\n"),
            ];
            let mut client = SmtpClient::new(0, TlsPolicy::Implicit);
            let r = run_with(&mut client, &env, Script { steps }, 5);
            assert_eq!(r.events, [Signal::Failed(0)]);
            let reason = std::format!("{}", client.failure().unwrap());
            assert_eq!(
                reason,
                std::format!(
                    "the server offers no sign-in the engine speaks with a password (AUTH {names})"
                )
            );
            assert!(reason.len() <= crate::event::FAILURE_MAX);
        }
    }

    /// Inside DATA, a reply ends the mail and the connection at once: a
    /// QUIT there would be message text.
    #[test]
    fn a_reply_inside_data_closes_without_quit() {
        let env = envelope(&NOBODY);
        for (reply, signal) in [
            (&b"421 4.3.0 going down\r\n"[..], Signal::Failed(421)),
            (b"554 5.7.1 no\r\n", Signal::Failed(554)),
            (b"250 ok\r\n", Signal::Failed(0)),
        ] {
            let mut c = SmtpClient::new(0, TlsPolicy::Implicit);
            c.state = State::Data;
            assert_eq!(c.handle_input(5, &env, reply), reply.len());
            assert_eq!(c.poll_signal(), Some(signal));
            assert_eq!(c.poll_signal(), Some(Signal::Closed));
            assert_eq!(
                c.poll_transmit(&env, &mut ChunkStore::new(), &mut [0u8; 64]),
                0
            );
            assert_eq!(c.next_deadline(), None);
        }
    }

    /// An end of data not yet written is still inside DATA: giving the
    /// mail up (or its timeout) closes; no QUIT becomes message text.
    #[test]
    fn an_unwritten_end_of_data_is_closed_not_quit() {
        let env = envelope(&NOBODY);
        for timeout in [false, true] {
            let mut c = SmtpClient::new(0, TlsPolicy::Implicit);
            c.state = State::Data;
            c.end_message(10);
            if timeout {
                c.handle_timeout(u64::MAX);
            } else {
                c.quit(20);
            }
            let mut buf = [0u8; 64];
            let n = c.poll_transmit(&env, &mut ChunkStore::new(), &mut buf);
            assert!(
                !buf[..n].windows(4).any(|w| w == b"QUIT"),
                "{:?}",
                &buf[..n]
            );
            assert!(c.is_done());
        }
    }

    /// A clock near its end never overflows a deadline.
    #[test]
    fn deadlines_saturate_at_the_end_of_the_clock() {
        let mut c = SmtpClient::new(u64::MAX - 1, TlsPolicy::Implicit);
        assert_eq!(c.next_deadline(), Some(u64::MAX));
        let env = envelope(&NOBODY);
        c.handle_input(u64::MAX, &env, b"220 mx\r\n");
        assert_eq!(c.next_deadline(), Some(u64::MAX));
    }

    #[test]
    fn required_tls_never_downgrades() {
        let env = envelope(&NOBODY);
        let steps: &[(&[u8], &[u8])] = &[
            (b"220 mx\r\n", b"EHLO [10.44.221.130]\r\n"),
            (b"250-mx\r\n250 AUTH PLAIN\r\n", b"QUIT\r\n"),
            (b"221 bye\r\n", b""),
        ];
        let r = run(TlsPolicy::Required, &env, Script { steps }, 100);
        assert_eq!(r.events, [Signal::Failed(0), Signal::Closed]);
    }

    #[test]
    fn replies_wait_until_their_commands_are_on_the_wire() {
        let env = envelope(&NOBODY);
        let mut c = SmtpClient::new(0, TlsPolicy::ClearSignIn);
        let ahead = b"220 mx\r\n250-mx\r\n250 AUTH PLAIN\r\n";
        // The greeting is read; the EHLO reply that came with it waits.
        assert_eq!(c.handle_input(0, &env, ahead), 8);
        assert_eq!(c.handle_input(0, &env, &ahead[8..]), 0);
        let mut buf = [0u8; 64];
        let n = c.poll_transmit(&env, &mut ChunkStore::new(), &mut buf[..5]);
        assert_eq!(&buf[..n], b"EHLO ");
        assert_eq!(c.handle_input(0, &env, &ahead[8..]), 0, "EHLO half sent");
        let rest = c.poll_transmit(&env, &mut ChunkStore::new(), &mut buf);
        assert_eq!(&buf[..rest], b"[10.44.221.130]\r\n");
        assert_eq!(c.handle_input(0, &env, &ahead[8..]), ahead.len() - 8);
        let n = c.poll_transmit(&env, &mut ChunkStore::new(), &mut buf);
        assert!(buf[..n].starts_with(b"AUTH PLAIN "));
    }

    #[test]
    fn timeouts_and_closes_fail_with_zero() {
        let mut c = SmtpClient::new(1000, TlsPolicy::ClearSignIn);
        assert_eq!(c.next_deadline(), Some(1000 + GREETING_MS));
        c.handle_timeout(1000 + GREETING_MS - 1);
        assert_eq!(c.poll_signal(), None);
        c.handle_timeout(1000 + GREETING_MS);
        assert_eq!(c.poll_signal(), Some(Signal::Failed(0)));
        let mut c = SmtpClient::new(0, TlsPolicy::ClearSignIn);
        c.handle_closed();
        assert_eq!(c.poll_signal(), Some(Signal::Failed(0)));
    }

    /// The client at the 220 to STARTTLS, with `after` in the same read.
    fn at_starttls(after: &[u8]) -> (SmtpClient, usize) {
        let env = envelope(&NOBODY);
        let mut c = SmtpClient::new(0, TlsPolicy::ClearSignIn);
        let mut buf = [0u8; 64];
        assert_eq!(c.handle_input(0, &env, b"220 mx\r\n"), 8);
        c.poll_transmit(&env, &mut ChunkStore::new(), &mut buf);
        let ehlo = b"250-mx\r\n250 STARTTLS\r\n";
        assert_eq!(c.handle_input(0, &env, ehlo), ehlo.len());
        assert_eq!(
            c.poll_transmit(&env, &mut ChunkStore::new(), &mut buf),
            10,
            "STARTTLS"
        );
        let mut input = b"220 go ahead\r\n".to_vec();
        input.extend_from_slice(after);
        let n = c.handle_input(0, &env, &input);
        (c, n)
    }

    #[test]
    fn bytes_after_the_starttls_220_end_the_connection() {
        for after in [
            &b"250-mx\r\n250 AUTH PLAIN\r\n"[..],
            b"250-AUTH PLAIN\r\n",
            b"2",
        ] {
            let (mut c, _) = at_starttls(after);
            assert_eq!(c.poll_signal(), Some(Signal::Failed(0)), "{after:?}");
            assert_eq!(c.failure(), Some(Fault::StartTlsInjection));
            let mut buf = [0u8; 64];
            assert_eq!(
                c.poll_transmit(&envelope(&NOBODY), &mut ChunkStore::new(), &mut buf),
                0,
                "nothing after STARTTLS"
            );
        }
        // Bytes that come in a later read, before the handshake, too.
        let (mut c, n) = at_starttls(b"");
        assert_eq!(n, 14);
        assert_eq!(c.poll_signal(), Some(Signal::StartTls));
        assert_eq!(c.handle_input(5, &envelope(&NOBODY), b"250 ok\r\n"), 8);
        assert_eq!(c.poll_signal(), Some(Signal::Failed(0)));
        assert_eq!(c.failure(), Some(Fault::StartTlsInjection));
    }

    #[test]
    fn tls_forgets_the_extensions_and_has_a_deadline() {
        let env = envelope(&NOBODY);
        let (mut c, _) = at_starttls(b"");
        assert_eq!(c.poll_signal(), Some(Signal::StartTls));
        assert_eq!(c.next_deadline(), Some(TLS_HANDSHAKE_MS));
        c.handle_tls_established(100);
        assert_eq!(c.extensions, Extensions::default());
        let mut buf = [0u8; 64];
        assert!(
            c.poll_transmit(&env, &mut ChunkStore::new(), &mut buf) > 0,
            "EHLO again"
        );
        // A handshake that never ends fails at its deadline.
        let (mut c, _) = at_starttls(b"");
        c.poll_signal();
        c.handle_timeout(TLS_HANDSHAKE_MS);
        assert_eq!(c.poll_signal(), Some(Signal::Failed(0)));
        assert_eq!(c.failure(), Some(Fault::TimedOut(Step::TlsHandshake)));
    }

    #[test]
    fn failures_without_a_code_say_where() {
        let mut c = SmtpClient::new(0, TlsPolicy::ClearSignIn);
        c.handle_closed();
        assert_eq!(c.failure(), Some(Fault::Closed(Step::Greeting)));
        let mut c = SmtpClient::new(0, TlsPolicy::ClearSignIn);
        assert_eq!(
            c.handle_input(0, &envelope(&NOBODY), b"HTTP/1.1 400\r\n"),
            14
        );
        assert_eq!(c.failure(), Some(Fault::NotSmtp(Step::Greeting)));
        assert_eq!(
            std::format!("{}", Fault::Closed(Step::Greeting)),
            "connection closed by the server waiting for the greeting"
        );
    }
}
