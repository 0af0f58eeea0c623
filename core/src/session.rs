//! The G510 SMTP engine: every host byte in, SMTP out, answers and URCs back.
//!
//! What it does: [`Session`] is the module as the host sees it. It owns
//! the serial line: [`Session::handle_host`] takes every byte the host
//! sends, in command mode and in data mode alike. Command lines are edited
//! as V.250 says ([`LineEditor`]) and echoed as `ATE` says; `AT`, `ATE`,
//! `AT+CMEE` and the `+GTSMTP*` commands are the engine's, and any other
//! line is handed to the caller ([`Event::Command`]), whose answer goes
//! out through the same ordered host stream. Configuration commands change
//! the [`Config`]; `+GTSMTPSEND` starts the mail on a connection (the
//! crate's `connection` module: the connection request, the
//! [`SmtpClient`](crate::smtp::SmtpClient) and how the connection ends;
//! under it `mail`, the message and its
//! [`MessageWriter`](crate::message::MessageWriter)). The session owns
//! the serial data modes (the [`Framer`], the escape's held `+` bytes, a
//! failed mail's payload dropped to its end) and renders everything the
//! host hears from the connection's typed notices: `+GTSMTPSEND: 2` once
//! the header block is written, a data command's `+GTSMTPDATA: <n>`,
//! then `1` or the reply code that ended the mail.
//!
//! What it does not: own a UART, a socket, TLS or a clock. The caller
//! passes bytes and `now_ms` in and takes bytes out (the `handle_*` and
//! `poll_*` methods) and acts on [`Session::poll_event`]; it answers the
//! module commands that are not the engine's (`AT+MIPCALL`, `AT&K3`, ...).
//!
//! Why it is built this way: the shape of quinn-proto's `Connection`
//! under its endpoint: this module is the serial line and the dispatch;
//! the connection owns the conversation and its life, and the mail the
//! message; imports go one way (session, connection, mail, codecs).
//! Each of them is one value in a fixed slot whose phase is one enum
//! (the serial line: commands, a data mode, a part ending, the rest of
//! an aborted payload being dropped), so a combination that cannot
//! happen cannot be written. Answers are rendered into the
//! [`HostQueue`](crate::host_queue::HostQueue) when they are said, so
//! they are fixed from then on, and a command line is only executed when its whole
//! answer fits: every command line gets exactly one final result. Serial
//! data is taken only as far as the socket buffer can hold its encoding:
//! backpressure, not buffering.
//!
//! A mail that fails while the host is streaming (the server drops the
//! connection, `<time>` runs out, the body is not valid in its charset)
//! leaves the line in data mode: the rest of the payload is read and
//! dropped until the escape or an idle end, and only then does the data
//! command answer `ERROR`. Otherwise the host's remaining payload would be
//! taken as command lines. The URC of a failed connection comes at once,
//! so a host that watches for it can stop streaming early.

use crate::answers::Answers;
pub use crate::answers::SessionError;
use crate::at::{self, Basic, Command, Request};
use crate::config::{self, Bounded, Config, Transfer};
use crate::connection::{Connection, Cx, Host, MailState, Notice};
pub use crate::event::{Connect, Event, Failure, MailFailure};
use crate::framer::{DataLimits, End, Framed, Framer, DEFAULT_GUARD_MS};
use crate::header::{Address, Text, Token};
use crate::host_queue::{ANSWER_ROOM, URC_ROOM};
use crate::index;
use crate::line::{Edit, LineEditor};
use crate::mail::{Identity, Part};
use crate::message::MessageId;
use crate::out::{put_decimal, Out};
use crate::token::{ReadStep, TokenRead, TokenStore};
use core::mem::MaybeUninit;
use core::net::IpAddr;
use core::ptr::addr_of_mut;

/// What the serial line carries besides command lines.
#[derive(Clone, Debug)]
enum Serial {
    /// Command lines (or a token: see `Engine::token_read`).
    Command,
    /// A data command's payload.
    Data(DataMode),
    /// A data mode ended normally; the part's last line is being written
    /// before the command's count and `OK` are said.
    Ending { part: Part, count: u64 },
    /// Data mode after its mail failed: payload is read and dropped until
    /// the mode ends, then the data command answers `error`.
    Discard { framer: Framer, error: SessionError },
}

/// A data command's payload being read.
#[derive(Clone, Debug)]
struct DataMode {
    part: Part,
    framer: Framer,
    /// `+` bytes the framer held as a possible escape and released as data
    /// at a timer: written with the part's last line.
    pluses: u8,
}

/// The host's side of the connection's notices: the answers and the
/// serial line they change.
struct HostSide<'a> {
    answers: &'a mut Answers,
    serial: &'a mut Serial,
}

impl Host for HostSide<'_> {
    fn notice(&mut self, notice: Notice) {
        match notice {
            Notice::HeadWritten => self.answers.urc(2),
            Notice::PartWritten => {
                if let Serial::Ending { part, count } = *self.serial {
                    *self.serial = Serial::Command;
                    self.answers.say(|out| {
                        out.put(b"\r\n+");
                        out.put(part_command(part).name().as_bytes());
                        out.put(b": ");
                        put_decimal(out, count);
                        out.put(b"\r\n\r\nOK\r\n");
                    });
                }
            }
            Notice::Delivered => self.answers.urc(1),
            Notice::Aborted { urc, error } => self.aborted(urc, error),
        }
    }
}

impl HostSide<'_> {
    /// The mail ended undelivered: the URC, if any, at once; a data
    /// command still open gets `error` as its final result, after the
    /// mode's end when the host is still streaming (see the module docs).
    /// Not inlined: it builds the discarding state (a framer) on its own
    /// frame, which would otherwise sit in every caller's.
    #[inline(never)]
    fn aborted(&mut self, urc: Option<u16>, error: SessionError) {
        if let Some(urc) = urc {
            self.answers.urc(urc);
        }
        let (streaming, owed) = match &*self.serial {
            Serial::Data(dm) if dm.framer.end().is_none() => (Some(dm.framer.clone()), true),
            Serial::Data(_) | Serial::Ending { .. } => (None, true),
            Serial::Command | Serial::Discard { .. } => (None, false),
        };
        *self.serial = match streaming {
            Some(framer) => Serial::Discard { framer, error },
            None => {
                if owed || urc.is_none() {
                    self.answers.error(error);
                }
                Serial::Command
            }
        };
    }
}

/// The command whose data mode feeds `part`.
const fn part_command(part: Part) -> Command {
    match part {
        Part::Body => Command::Data,
        Part::File => Command::File,
    }
}

/// Why [`Session::answer_command`] refused an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnswerError {
    /// No command line is waiting for the caller.
    NotAsked,
    /// Longer than [`ANSWER_ROOM`] bytes.
    TooLong,
}

impl AnswerError {
    /// A short description.
    pub const fn as_str(self) -> &'static str {
        match self {
            AnswerError::NotAsked => "no command is waiting for an answer",
            AnswerError::TooLong => "answer longer than 2048 bytes",
        }
    }
}

/// Where the session is, as the host sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    /// No mail: configuration commands are taken.
    Idle,
    /// After `+GTSMTPSEND`: connecting, the SMTP handshake, the header block.
    Sending,
    /// `+GTSMTPSEND: 2` was said: waiting for DATA, FILE or END.
    Ready,
    /// Host bytes are payload of the body or an attachment.
    DataMode,
    /// A data mode's end or `+GTSMTPEND`: the message's last bytes and the
    /// server's verdict.
    Finishing,
    /// The mail failed while the host streamed: its payload is read and
    /// dropped until the data mode ends.
    Discarding,
    /// Host bytes are the token of `AT+GTSMTPTOKEN` (no mail is in
    /// progress).
    TokenInput,
}

/// What [`Session::handle_host`] did, and why it stopped.
#[must_use = "unread host bytes must be offered again once `stopped` is dealt with"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostProgress {
    /// Host bytes taken.
    pub read: usize,
    /// Bytes written into `server_out`.
    pub written: usize,
    /// Why the rest of the input was not taken.
    pub stopped: Stopped,
}

/// Why [`Session::handle_host`] stopped taking host bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// All of it was taken (an event may still be owed: the caller
    /// polls them after every call anyway).
    InputEmpty,
    /// `server_out` is full: send it, then offer the rest with room.
    ServerFull,
    /// The answers for the host fill the queue: drain
    /// [`Session::poll_host`], then offer the rest.
    HostFull,
    /// A line waits for the caller ([`Event::Command`],
    /// [`Event::Identity`]): act on [`Session::poll_event`], then offer
    /// the rest.
    Caller,
}

/// What the caller must do before the line in the editor can go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waiting {
    Command,
    /// SEND waits for `set_identity`; it runs as of `at_ms`, when it came.
    Identity {
        at_ms: u64,
    },
}

/// The engine; see the module docs.
#[derive(Debug)]
pub struct Session {
    line: LineEditor,
    waiting: Option<Waiting>,
    /// The waiting line's event has been handed out.
    told: bool,
    engine: Engine,
}

/// Everything but the line being edited, so a line can be executed while
/// it is borrowed from the editor.
#[derive(Debug)]
struct Engine {
    config: Config,
    host: Answers,
    conn: Connection,
    serial: Serial,
    /// The identity for the next SEND, taken by it.
    identity: Option<Identity>,
    echo: bool,
    network_up: bool,
    guard_ms: u32,
    require_tls: bool,
    /// The EHLO name the caller set, if any.
    helo_name: Option<Bounded<80>>,
    /// The OAuth 2.0 token, in the caller's storage.
    token: TokenStore,
    /// `AT+GTSMTPTOKEN=<length>` taking host bytes.
    token_read: Option<TokenRead>,
}

impl Engine {
    /// As [`Session::init_in`], for the engine's fields.
    #[allow(unsafe_code)]
    fn init_in(slot: &mut MaybeUninit<Engine>) {
        // Stops compiling when a field is added, so none is left unwritten.
        let _ = |e: Engine| {
            let Engine {
                config: _,
                host: _,
                conn: _,
                serial: _,
                identity: _,
                echo: _,
                network_up: _,
                guard_ms: _,
                require_tls: _,
                helo_name: _,
                token: _,
                token_read: _,
            } = e;
        };
        let p = slot.as_mut_ptr();
        // SAFETY: as in `Session::init_in`.
        unsafe {
            Config::init_in(&mut *addr_of_mut!((*p).config).cast());
            Answers::init_in(&mut *addr_of_mut!((*p).host).cast());
            Connection::init_in(&mut *addr_of_mut!((*p).conn).cast());
            addr_of_mut!((*p).serial).write(Serial::Command);
            addr_of_mut!((*p).identity).write(None);
            addr_of_mut!((*p).echo).write(true);
            addr_of_mut!((*p).network_up).write(true);
            addr_of_mut!((*p).guard_ms).write(DEFAULT_GUARD_MS);
            addr_of_mut!((*p).require_tls).write(false);
            addr_of_mut!((*p).helo_name).write(None);
            addr_of_mut!((*p).token).write(TokenStore::new());
            addr_of_mut!((*p).token_read).write(None);
        }
    }

    /// Runs `f` on the connection with what it reads of the rest,
    /// borrowed apart.
    fn conn<R>(&mut self, f: impl FnOnce(&mut Connection, &mut Cx<'_>) -> R) -> R {
        let mut host = HostSide {
            answers: &mut self.host,
            serial: &mut self.serial,
        };
        let mut cx = Cx {
            config: &self.config,
            token: self.token.token(),
            host: &mut host,
        };
        f(&mut self.conn, &mut cx)
    }
}

/// What a command line came to.
enum Outcome {
    /// Answered (or its final result is owed by data mode).
    Done,
    /// A data command put the line in data mode; the LF after its CR
    /// is the line's even for a CR host when the payload can have none
    /// (`lf_is_line_end`, a token).
    DataMode { lf_is_line_end: bool },
    /// Not the engine's: the caller answers.
    Caller,
    /// SEND needs the caller's identity first.
    NeedIdentity,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    /// An idle engine with nothing configured, echo on, numeric errors off.
    #[allow(unsafe_code)]
    pub fn new() -> Self {
        let mut slot = MaybeUninit::uninit();
        Self::init_in(&mut slot);
        // SAFETY: `init_in` initialised every field.
        unsafe { slot.assume_init() }
    }

    /// Makes an idle session in `slot`, field by field: the one place the
    /// defaults are written. `Session::new` returns the 7.7 KB value, which
    /// the compiler builds on the stack before moving it; firmware stacks
    /// are 1 KiB, so the C ABI's `atmail_session_init` places a session
    /// with this.
    ///
    /// ```
    /// use atmail_core::session::Session;
    /// let mut slot = core::mem::MaybeUninit::uninit();
    /// let session = Session::init_in(&mut slot);
    /// assert!(!session.in_data_mode());
    /// ```
    #[allow(unsafe_code)]
    pub fn init_in(slot: &mut MaybeUninit<Session>) -> &mut Session {
        // Stops compiling when a field is added, so none is left unwritten.
        let _ = |s: Session| {
            let Session {
                line: _,
                waiting: _,
                told: _,
                engine: _,
            } = s;
        };
        let p = slot.as_mut_ptr();
        // SAFETY: `p` is valid for writes and aligned (it comes from a
        // `&mut`); each field is initialised through its own place, as a
        // `MaybeUninit` of the field's type (same layout), and after that
        // the whole session is.
        unsafe {
            LineEditor::init_in(&mut *addr_of_mut!((*p).line).cast());
            addr_of_mut!((*p).waiting).write(None);
            addr_of_mut!((*p).told).write(false);
            Engine::init_in(&mut *addr_of_mut!((*p).engine).cast());
            slot.assume_init_mut()
        }
    }

    /// `+CME ERROR: <text>` instead of `ERROR`, as `AT+CMEE=2` sets it.
    pub fn set_verbose_errors(&mut self, on: bool) {
        self.engine.host.cmee = if on { 2 } else { 0 };
    }

    /// The error level `AT+CMEE` set (0: `ERROR`; 1 and 2: `+CME ERROR:
    /// <text>`), for the caller's own answers.
    pub fn error_level(&self) -> u8 {
        self.engine.host.cmee
    }

    /// How every answer and URC is framed, as V.250's `V` and `Q` say
    /// (default verbose, not quiet). `numeric` (`ATV0`): result codes as
    /// `0\r` and `4\r`, `+CME ERROR: <text>\r` and URCs with a CR
    /// alone, information text as `<text>\r\n`. `quiet` (`ATQ1`): no
    /// result codes, final or unsolicited; information text is still
    /// sent. The caller, which takes `ATV` and `ATQ` ([`Event::Command`])
    /// and calls this, frames its own answers and URCs the same way.
    pub fn set_result_format(&mut self, numeric: bool, quiet: bool) {
        self.engine.host.numeric = numeric;
        self.engine.host.quiet = quiet;
    }

    /// Echo of command-mode bytes, as `ATE` sets it (default on): for a
    /// caller that takes `ATZ` or `AT&F`, or `ATE` among other basic
    /// commands on one line.
    pub fn set_echo(&mut self, on: bool) {
        self.engine.echo = on;
    }

    /// The `+++` guard time (default 1000 ms).
    pub fn set_guard_ms(&mut self, ms: u32) {
        self.engine.guard_ms = ms;
    }

    /// Refuse servers that do not offer STARTTLS (default: use it when offered).
    pub fn set_require_tls(&mut self, on: bool) {
        self.engine.require_tls = on;
    }

    /// Whether the caller's network is up (default: up). While it is down,
    /// `+GTSMTPSEND` is refused with "network not up (AT+MIPCALL)".
    pub fn set_network_up(&mut self, up: bool) {
        self.engine.network_up = up;
    }

    /// The EHLO name: this host's fully qualified name. Without one, each
    /// connection uses an address literal of its local end (`[10.1.2.3]`,
    /// `[IPv6:2001:db8::7]`, RFC 5321 4.1.3), which servers that refuse
    /// names that are not fully qualified accept.
    pub fn set_helo_name(&mut self, name: &[u8]) -> Result<(), SessionError> {
        Token::new(name, false).map_err(|e| SessionError::Line(e.into()))?;
        self.engine.helo_name = Some(Bounded::from_slice(name));
        Ok(())
    }

    /// Memory for the OAuth 2.0 token of `AT+GTSMTPTOKEN` (up to 8 KiB of
    /// it is used; the CLI and Python give 8 KiB, firmware what it can
    /// spare). Without it, `AT+GTSMTPTOKEN` answers `+CME ERROR: no token
    /// storage`. The storage given before is wiped and returned.
    /// A token being read then ends with `ERROR` and no token.
    pub fn set_token_storage(&mut self, mem: &'static mut [u8]) -> Option<&'static mut [u8]> {
        self.engine.end_token_read();
        self.engine.token.set_storage(mem)
    }

    /// Takes the token storage back, wiped: no token from now on (a token
    /// being read ends with `ERROR`).
    pub fn take_token_storage(&mut self) -> Option<&'static mut [u8]> {
        self.engine.end_token_read();
        self.engine.token.take_storage()
    }

    /// How mails may cross the wire when the host has not said
    /// (`AT+GTSMTPBDAT`; default [`Transfer::Auto`]): the mode
    /// `AT+GTSMTPCLR` restores, and the current one unless the host has
    /// set it since the last `AT+GTSMTPCLR`.
    pub fn set_transfer(&mut self, mode: Transfer) {
        self.engine.config.set_transfer_default(mode);
    }

    /// Memory for `BDAT` chunks (the largest chunk; the CLI and Python give
    /// 16 KiB, firmware what it can spare). Without it every transfer mode
    /// behaves as [`Transfer::Off`]. The storage given before is wiped and
    /// returned.
    pub fn set_chunk_storage(&mut self, mem: &'static mut [u8]) -> Option<&'static mut [u8]> {
        self.engine.conn.set_chunk_storage(mem)
    }

    /// Takes the chunk storage back, wiped: `DATA` from now on.
    pub fn take_chunk_storage(&mut self) -> Option<&'static mut [u8]> {
        self.engine.conn.take_chunk_storage()
    }

    /// What the caller must do next, once each, in the order it must be
    /// done: see [`Event`]. Call it after every other call until it
    /// returns `None`.
    pub fn poll_event(&mut self) -> Option<Event<'_>> {
        if self.engine.conn.has_event() {
            let e = &mut self.engine;
            return e.conn.poll_event(&e.config);
        }
        if self.told {
            return None;
        }
        self.told = self.waiting.is_some();
        self.waiting_event()
    }

    /// What [`poll_event`](Self::poll_event) would return now, without
    /// taking it (for a caller that must size a buffer first).
    pub fn peek_event(&self) -> Option<Event<'_>> {
        let e = &self.engine;
        if e.conn.has_event() {
            return e.conn.peek_event(&e.config);
        }
        if self.told {
            return None;
        }
        self.waiting_event()
    }

    fn waiting_event(&self) -> Option<Event<'_>> {
        match self.waiting? {
            Waiting::Command => Some(Event::Command(self.line.line())),
            Waiting::Identity { .. } => Some(Event::Identity),
        }
    }

    fn stop_waiting(&mut self) {
        self.waiting = None;
        self.told = false;
    }

    /// The Date and Message-ID of the next mail (the caller's clock and
    /// entropy). Each SEND takes the identity set before it; a SEND with
    /// none waits for it ([`Event::Identity`]) and runs when it is set.
    pub fn set_identity(&mut self, date: Token<'_>, message_id: MessageId<'_>) {
        self.engine.identity = Some(Identity::new(date, message_id));
        if let Some(Waiting::Identity { at_ms }) = self.waiting {
            self.stop_waiting();
            self.run_line(at_ms);
        }
    }

    /// The caller cannot give the waiting SEND an identity
    /// ([`Event::Identity`]): SEND answers `+CME ERROR: no Date or
    /// Message-ID for the mail` (`ERROR` under `AT+CMEE=0`), then
    /// `+GTSMTPSEND: 0`, and the session takes host bytes again. Nothing
    /// happens when no SEND waits.
    pub fn refuse_identity(&mut self) {
        if let Some(Waiting::Identity { .. }) = self.waiting {
            self.stop_waiting();
            self.line.clear();
            self.engine.host.error(SessionError::NoIdentity);
            self.engine.host.urc(0);
            let e = &mut self.engine;
            e.conn.identity_refused(&e.config);
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.engine.config
    }

    /// Where the session is.
    pub fn state(&self) -> SessionState {
        self.engine.state()
    }

    /// Whether host bytes are payload now (data mode, the rest of an
    /// aborted payload being dropped, or a token).
    pub fn in_data_mode(&self) -> bool {
        matches!(
            self.state(),
            SessionState::DataMode | SessionState::Discarding | SessionState::TokenInput
        )
    }

    /// The caller's whole answer to [`Event::Command`], final result code
    /// included (`b"\r\nOK\r\n"`, or `b"0\r"` under the caller's `ATV0`:
    /// see [`set_result_format`](Self::set_result_format)); it goes to
    /// the host after everything said before it, and the session takes
    /// host bytes again.
    pub fn answer_command(&mut self, answer: &[u8]) -> Result<(), AnswerError> {
        if self.waiting != Some(Waiting::Command) {
            return Err(AnswerError::NotAsked);
        }
        if answer.len() > ANSWER_ROOM {
            return Err(AnswerError::TooLong);
        }
        let queued = self.engine.host.queue.push(answer);
        // In release builds too: the host must get the line's result.
        assert!(
            queued,
            "a line is only handed over with room for its answer"
        );
        self.stop_waiting();
        self.line.clear();
        Ok(())
    }

    /// Takes bytes from the host at `now_ms`: command lines (edited and
    /// echoed; executed once their answer has room) and data-mode payload,
    /// which is encoded into `server_out` with the part's last line. The
    /// bytes for the server leave by this call and by
    /// [`poll_server`](Self::poll_server): send each call's output after
    /// the one before. Unread input must be offered again once the reason
    /// it stopped is gone; hold the UART meanwhile.
    pub fn handle_host(
        &mut self,
        now_ms: u64,
        input: &[u8],
        server_out: &mut [u8],
    ) -> HostProgress {
        let (mut read, mut written) = (0, 0);
        let stopped = loop {
            if read == input.len() {
                break Stopped::InputEmpty;
            }
            if self.waiting.is_some() {
                break Stopped::Caller;
            }
            let before = self.engine.state();
            let handed_over = matches!(
                before,
                SessionState::TokenInput | SessionState::DataMode | SessionState::Discarding
            );
            if handed_over && self.line.line_end(index::get(input, read..)) == 1 {
                // The LF of a CRLF host's data command line: never payload.
                read += 1;
                continue;
            }
            if self.engine.token_read.is_some() {
                match self.engine.token_input(index::get(input, read..), now_ms) {
                    0 => break Stopped::HostFull,
                    n => read += n,
                }
                continue;
            }
            let e = &mut self.engine;
            let (r, w) = match before {
                SessionState::DataMode | SessionState::Discarding => e.data_input(
                    now_ms,
                    index::get(input, read..),
                    index::get_mut(server_out, written..),
                ),
                // The part's last line goes before the data command's
                // count and OK, and before any later line runs.
                SessionState::Finishing if matches!(e.serial, Serial::Ending { .. }) => (
                    0,
                    e.conn(|c, cx| {
                        c.write_message(now_ms, cx, index::get_mut(server_out, written..))
                    }),
                ),
                _ if self.command_byte(*index::get(input, read), now_ms) => (1, 0),
                _ => break Stopped::HostFull,
            };
            read += r;
            written += w;
            // Nothing moved and nothing changed: only room for the
            // server's bytes is missing.
            if r == 0 && w == 0 && self.engine.state() == before {
                break Stopped::ServerFull;
            }
        };
        HostProgress {
            read,
            written,
            stopped,
        }
    }

    /// One command-mode byte; returns whether it was taken (there must be
    /// room for its echo and, past it, for a whole answer).
    fn command_byte(&mut self, b: u8, now_ms: u64) -> bool {
        let host = &mut self.engine.host.queue;
        if host.free() < ANSWER_ROOM + URC_ROOM + ECHO_MAX {
            return false;
        }
        let step = self.line.push(b);
        if self.engine.echo {
            let echo: &[u8] = match step {
                Edit::Silent => b"",
                Edit::Erase => b"\x08 \x08",
                Edit::Echo | Edit::Line | Edit::Overlong => core::slice::from_ref(&b),
            };
            host.push(echo);
        }
        match step {
            Edit::Line => self.run_line(now_ms),
            Edit::Overlong => self.engine.host.error(SessionError::LineTooLong),
            Edit::Silent | Edit::Echo | Edit::Erase => {}
        }
        true
    }

    /// Executes the line in the editor.
    fn run_line(&mut self, now_ms: u64) {
        match self.engine.execute(self.line.line(), now_ms) {
            Outcome::Done => self.line.clear(),
            Outcome::DataMode { lf_is_line_end } => {
                self.line.hand_over(lf_is_line_end);
                self.line.clear();
            }
            Outcome::Caller => self.waiting = Some(Waiting::Command),
            Outcome::NeedIdentity => self.waiting = Some(Waiting::Identity { at_ms: now_ms }),
        }
    }

    /// Moves answers, echo and URCs for the host into `dst`; returns how
    /// many bytes. Any `dst` of one byte or more makes progress.
    pub fn poll_host(&mut self, dst: &mut [u8]) -> usize {
        self.engine.host.queue.poll(dst)
    }

    /// The connection is open (for SMTPS: TLS is up); `local` is the
    /// address of its local end, for the EHLO name when the caller set
    /// none (`None`: not known; then `[127.0.0.1]`).
    pub fn handle_connected(&mut self, now_ms: u64, local: Option<IpAddr>) {
        let e = &mut self.engine;
        let helo = e.helo_name.as_ref();
        e.conn
            .handle_connected(now_ms, &e.config, local, helo, e.require_tls);
    }

    /// The connection could not be made, or it closed, at `now_ms`.
    pub fn handle_closed(&mut self, now_ms: u64) {
        self.engine.conn(|c, cx| c.handle_closed(now_ms, cx));
    }

    /// TLS is up after [`Event::StartTls`].
    pub fn handle_tls_established(&mut self, now_ms: u64) {
        self.engine.conn.handle_tls_established(now_ms);
    }

    /// The caller's TLS failed: the handshake (the server's certificate
    /// was refused, no parameters were agreed) or a record that did not
    /// verify. The connection is to be closed at once
    /// ([`Event::Close`]); the mail fails with URC 0 and a
    /// reason that says TLS.
    pub fn handle_tls_failed(&mut self, now_ms: u64) {
        self.engine.conn(|c, cx| c.handle_tls_failed(now_ms, cx));
    }

    /// Feeds bytes from the server; returns how many were consumed. Replies
    /// are read only once the commands they answer have been taken with
    /// [`poll_server`](Self::poll_server): offer unconsumed bytes again
    /// after that.
    pub fn handle_server(&mut self, now_ms: u64, input: &[u8]) -> usize {
        self.engine.conn(|c, cx| c.handle_server(now_ms, cx, input))
    }

    /// Writes bytes for the server (SMTP commands and message parts that
    /// are not serial payload) into `dst`; returns how many.
    pub fn poll_server(&mut self, now_ms: u64, dst: &mut [u8]) -> usize {
        self.engine.conn(|c, cx| c.poll_transmit(now_ms, cx, dst))
    }

    /// Advances the timers to `now_ms`: data-mode ends, SMTP step timeouts,
    /// the mail's `<time>` limit. Call it at
    /// [`next_deadline`](Self::next_deadline) (earlier is harmless).
    pub fn handle_timeout(&mut self, now_ms: u64) {
        let e = &mut self.engine;
        e.token_timeout(now_ms);
        if let Serial::Discard { framer, .. } = &mut e.serial {
            loop {
                match framer.poll(now_ms) {
                    Framed::Data(_) => {}
                    Framed::NeedMore => break,
                    Framed::End(_) => {
                        e.end_discard();
                        break;
                    }
                }
            }
        }
        if e.conn(|c, cx| c.handle_deadline(now_ms, cx)) {
            return;
        }
        e.data_timers(now_ms);
        e.conn(|c, cx| c.handle_timeout(now_ms, cx));
    }

    /// When [`handle_timeout`](Self::handle_timeout) needs calling next, if ever.
    pub fn next_deadline(&self) -> Option<u64> {
        let e = &self.engine;
        // A token is read only while no mail is in progress, but the last
        // mail's QUIT may still be due.
        let token = e.token_read.map(|read| read.deadline());
        let framer = match &e.serial {
            Serial::Data(dm) => dm.framer.next_deadline(),
            Serial::Discard { framer, .. } => framer.next_deadline(),
            Serial::Command | Serial::Ending { .. } => None,
        };
        [token, framer, e.conn.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }
}

/// The most a command-mode byte echoes (a backspace: BS SP BS).
const ECHO_MAX: usize = 3;

impl Engine {
    fn state(&self) -> SessionState {
        if self.token_read.is_some() {
            return SessionState::TokenInput;
        }
        match self.serial {
            Serial::Data(_) => SessionState::DataMode,
            Serial::Ending { .. } => SessionState::Finishing,
            Serial::Discard { .. } => SessionState::Discarding,
            Serial::Command => match self.conn.state() {
                MailState::Idle => SessionState::Idle,
                MailState::Sending => SessionState::Sending,
                MailState::Ready => SessionState::Ready,
                // Data mode is the serial line's; the connection's part
                // without it is a state the serial line never leaves.
                MailState::Data | MailState::Finishing => SessionState::Finishing,
            },
        }
    }

    /// Data-mode host bytes: payload into `out`, or the rest of an aborted
    /// one. Returns `(bytes read, bytes written)`. Not inlined: the
    /// payload's frame is then not part of `handle_host`'s while a command
    /// line runs.
    #[inline(never)]
    fn data_input(&mut self, now_ms: u64, input: &[u8], out: &mut [u8]) -> (usize, usize) {
        match self.serial {
            Serial::Discard { .. } => (self.discard(now_ms, input), 0),
            _ => self.payload(now_ms, input, out),
        }
    }

    /// Data mode of a failed mail: reads to the mode's end; returns how
    /// much of `input` it took.
    fn discard(&mut self, now_ms: u64, input: &[u8]) -> usize {
        let Serial::Discard { framer, .. } = &mut self.serial else {
            return 0;
        };
        let mut read = 0;
        while read < input.len() {
            let (event, n) = framer.push(now_ms, index::get(input, read..));
            read += n;
            if let Framed::End(_) = event {
                self.end_discard();
                break;
            }
        }
        read
    }

    fn end_discard(&mut self) {
        if let Serial::Discard { error, .. } = self.serial {
            self.serial = Serial::Command;
            self.host.error(error);
        }
    }

    /// Payload through the connection's message into `out`. Returns
    /// `(bytes read, bytes written)`.
    fn payload(&mut self, now_ms: u64, input: &[u8], out: &mut [u8]) -> (usize, usize) {
        let (mut read, mut written) = (0, 0);
        while matches!(self.serial, Serial::Data(_)) {
            let w = self.conn(|c, cx| c.payload(now_ms, cx, b"", index::get_mut(out, written..)));
            let Some(w) = w else { break };
            if w > 0 {
                // The part header (or encoder output held back) went first.
                written += w;
                continue;
            }
            // The framer's bytes are gone once it passes them on: take
            // only what the encoder surely takes whole.
            let take = self
                .conn
                .input_fits(out.len() - written)
                .min(input.len() - read);
            let Serial::Data(dm) = &mut self.serial else {
                break;
            };
            if take == 0 {
                break;
            }
            let (event, n) = dm.framer.push(now_ms, index::get(input, read..read + take));
            read += n;
            match event {
                Framed::Data(data) => {
                    let w = self
                        .conn(|c, cx| c.payload(now_ms, cx, data, index::get_mut(out, written..)));
                    let Some(w) = w else { break };
                    written += w;
                }
                Framed::NeedMore if read == input.len() => break,
                Framed::NeedMore => {}
                Framed::End(end) => {
                    self.end_data_mode(now_ms, end);
                    break;
                }
            }
        }
        (read, written)
    }

    fn end_data_mode(&mut self, now_ms: u64, end: End) {
        let error = match end {
            End::TimeLimit => SessionError::DataTimeout,
            End::Oversize => SessionError::DataTooLarge,
            End::Escape | End::Idle => {
                if let Serial::Data(dm) = &self.serial {
                    let (part, count, pluses) = (dm.part, dm.framer.payload_len(), dm.pluses);
                    self.serial = Serial::Ending { part, count };
                    self.conn.end_part(count, pluses);
                }
                return;
            }
        };
        self.conn(|c, cx| c.abort(now_ms, cx, Some(error), 0));
    }

    /// Data mode's timers: its end, and `+` bytes held as a possible
    /// escape that were data after all.
    fn data_timers(&mut self, now_ms: u64) {
        let Serial::Data(dm) = &mut self.serial else {
            return;
        };
        loop {
            match dm.framer.poll(now_ms) {
                // Held `+` bytes that were data after all: written with the part's end.
                Framed::Data(d) => dm.pluses += d.len() as u8,
                Framed::NeedMore => break,
                Framed::End(end) => {
                    self.end_data_mode(now_ms, end);
                    break;
                }
            }
        }
    }

    /// Host bytes of `AT+GTSMTPTOKEN`; returns how many were taken (0:
    /// the host queue has no room for the final result yet).
    fn token_input(&mut self, input: &[u8], now_ms: u64) -> usize {
        let Some(read) = self.token_read.as_mut() else {
            return 0;
        };
        if self.host.queue.free() < ANSWER_ROOM {
            return 0;
        }
        let (n, step) = self.token.read(now_ms, read, input);
        match step {
            ReadStep::More => {}
            ReadStep::Stored => {
                self.token_read = None;
                self.host.ok();
            }
            ReadStep::Invalid => {
                self.token_read = None;
                self.host.error(SessionError::BadToken);
            }
        }
        n
    }

    /// The storage goes under a token being read: its command still gets
    /// its one final result.
    fn end_token_read(&mut self) {
        if self.token_read.take().is_some() {
            self.host.error(SessionError::TokenStorageGone);
        }
    }

    /// A token read whose bytes stopped coming ends: `ERROR`, no token.
    fn token_timeout(&mut self, now_ms: u64) {
        if self.token_read.is_some_and(|r| now_ms >= r.deadline()) {
            self.token_read = None;
            self.token.wipe();
            self.host.error(SessionError::TokenTimeout);
        }
    }

    /// `AT+GTSMTPTOKEN=<len>`: the prompt and the read, or (0) no token.
    fn start_token(&mut self, len: u16, now_ms: u64) -> Result<Outcome, SessionError> {
        if !self.conn.is_idle() {
            return Err(SessionError::MailInProgress);
        }
        if len == 0 {
            self.token.wipe();
            self.host.ok();
            return Ok(Outcome::Done);
        }
        match self.token.capacity() {
            0 => return Err(SessionError::NoTokenStorage),
            cap if len as usize > cap => return Err(SessionError::TokenTooLong),
            _ => {}
        }
        self.token_read = Some(self.token.begin(now_ms, len));
        self.say(|out| out.put(b"\r\n> "));
        // No token has an LF: one right after the prompt is the line's.
        Ok(Outcome::DataMode {
            lf_is_line_end: true,
        })
    }

    fn say(&mut self, piece: impl Fn(&mut dyn Out)) {
        self.host.say(piece);
    }

    /// One command line, from its `AT`.
    fn execute(&mut self, line: &[u8], now_ms: u64) -> Outcome {
        // The line editor announces a line only from its `AT`.
        let body = index::get(line, 2..).trim_ascii_end();
        let upper = |n: usize| body.len() >= n && body[..n].eq_ignore_ascii_case(&b"+GTSMTP"[..n]);
        if upper(5) {
            return self.gtsmtp(line, now_ms);
        }
        match at::parse_basic(body) {
            Some(Ok(Basic::At)) => self.host.ok(),
            Some(Ok(Basic::Echo(on))) => {
                self.echo = on;
                self.host.ok();
            }
            Some(Ok(Basic::SetCmee(level))) => {
                self.host.cmee = level;
                self.host.ok();
            }
            Some(Ok(Basic::ReadCmee)) => {
                let level = self.host.cmee;
                self.say(|out| {
                    out.put(b"\r\n+CMEE: ");
                    put_decimal(out, level.into());
                    out.put(b"\r\n\r\nOK\r\n");
                });
            }
            Some(Ok(Basic::TestCmee)) => self.say(|out| out.put(b"\r\n+CMEE: (0-2)\r\n\r\nOK\r\n")),
            Some(Err(e)) => self.host.error(SessionError::Line(e)),
            None => return Outcome::Caller,
        }
        Outcome::Done
    }

    /// An `AT+GTSMTP*` line.
    fn gtsmtp(&mut self, line: &[u8], now_ms: u64) -> Outcome {
        let request = match at::parse(line) {
            Ok(request) => request,
            Err(e) => {
                self.host.error(SessionError::Line(e));
                return Outcome::Done;
            }
        };
        match request {
            Request::Read(command) => self.say_read(command),
            Request::Test(command) => self.say(|out| {
                config::write_test(out, command);
                out.put(b"\r\nOK\r\n");
            }),
            request => match self.execute_request(&request, now_ms) {
                Ok(outcome) => return outcome,
                Err(e) => self.host.error(e),
            },
        }
        Outcome::Done
    }

    fn say_read(&mut self, command: Command) {
        if command == Command::Err {
            let last = self.conn.last_failure();
            return self.say(|out| write_last_failure(out, last));
        }
        if command == Command::Token {
            let len = self.token.token().len();
            return self.say(|out| {
                out.put(b"\r\n+GTSMTPTOKEN: ");
                put_decimal(out, len as u64);
                out.put(b"\r\n\r\nOK\r\n");
            });
        }
        let (config, files) = (&self.config, self.conn.files());
        self.host.say(|out| {
            config::write_read(out, config, command, files.iter().map(|f| f.as_bytes()));
            out.put(b"\r\nOK\r\n");
        });
    }

    fn execute_request(
        &mut self,
        request: &Request<'_>,
        now_ms: u64,
    ) -> Result<Outcome, SessionError> {
        match *request {
            Request::Land { .. }
            | Request::Id { .. }
            | Request::Dst { .. }
            | Request::Head { .. }
            | Request::Auth { .. }
            | Request::Transfer { .. } => {
                if !self.conn.is_idle() {
                    return Err(SessionError::MailInProgress);
                }
                self.config.apply(request).map_err(|e| match e {
                    config::ConfigError::TooManyRecipients => SessionError::TooManyRecipients,
                    config::ConfigError::NoSuchRecipient => SessionError::NoSuchRecipient,
                    _ => SessionError::WrongState,
                })?;
            }
            Request::Send { time_s } => return self.send(time_s, now_ms),
            Request::Token { len } => return self.start_token(len, now_ms),
            Request::Data { time_s, break_s } => {
                return self.enter_data(Part::Body, time_s, break_s, now_ms)
            }
            Request::File { add: false, .. } => return Err(SessionError::CannotDelete),
            Request::File {
                add: true,
                name,
                break_s,
            } => {
                Text::file_name(self.config.charset(), name)
                    .map_err(|_| SessionError::BadFileName)?;
                self.conn.add_file(name)?;
                return self.enter_data(Part::File, 48000, break_s, now_ms);
            }
            Request::End => self.conn.end_message()?,
            Request::Clr => {
                if self.state() == SessionState::Finishing {
                    // The end of data may be on the wire: the verdict
                    // comes first, or a delivered mail would go unsaid.
                    return Err(SessionError::Delivering);
                }
                self.conn.clear(now_ms);
                self.config.clear();
                self.token.wipe();
            }
            _ => return Err(SessionError::WrongState),
        }
        self.host.ok();
        Ok(Outcome::Done)
    }

    fn send(&mut self, time_s: u32, now_ms: u64) -> Result<Outcome, SessionError> {
        if !self.conn.is_idle() {
            return Err(SessionError::MailInProgress);
        }
        let (user, _) = self.config.login().ok_or(SessionError::Incomplete)?;
        if !self.config.is_complete() {
            return Err(SessionError::Incomplete);
        }
        Address::new(user).map_err(|_| SessionError::UserNotAddress)?;
        if self.config.mechanism().uses_token() && self.token.token().is_empty() {
            return Err(SessionError::NoToken);
        }
        if !self.network_up {
            return Err(SessionError::NoNetwork);
        }
        let Some(identity) = self.identity.take() else {
            return Ok(Outcome::NeedIdentity);
        };
        // A connection of the last mail still saying QUIT finishes first
        // (within QUIT_MS): the new one is asked for once it is closed.
        let deadline_ms = now_ms.saturating_add(time_s as u64 * 1000);
        self.conn
            .start(self.config.charset(), identity, deadline_ms);
        self.host.ok();
        Ok(Outcome::Done)
    }

    fn enter_data(
        &mut self,
        part: Part,
        time_s: u32,
        break_s: Option<u32>,
        now_ms: u64,
    ) -> Result<Outcome, SessionError> {
        let mut limits = DataLimits::from_seconds(time_s, break_s);
        limits.guard_ms = self.guard_ms;
        limits.max_bytes = self.conn.begin_part(part, limits.max_bytes)?;
        self.serial = Serial::Data(DataMode {
            part,
            framer: Framer::new(now_ms, limits),
            pluses: 0,
        });
        self.say(|out| out.put(b"\r\n> "));
        Ok(Outcome::DataMode {
            lf_is_line_end: false,
        })
    }
}

/// `+GTSMTPERR: <code>,"<reason>"` (`0,""` when no mail failed since the
/// last SEND): the reason with any `"` shown as `'`, so the string stays
/// one V.250 string.
fn write_last_failure(out: &mut dyn Out, last: Option<MailFailure>) {
    out.put(b"\r\n+GTSMTPERR: ");
    put_decimal(out, last.map_or(0, |f| f.failure.code()).into());
    out.put(b",\"");
    if let Some(failure) = last {
        failure.write_to(&mut Unquoted(out));
    }
    out.put(b"\"\r\n\r\nOK\r\n");
}

/// An [`Out`] that writes `"` as `'`.
struct Unquoted<'a>(&'a mut dyn Out);

impl Out for Unquoted<'_> {
    fn put(&mut self, bytes: &[u8]) {
        for part in bytes.split_inclusive(|&b| b == b'"') {
            match part.split_last() {
                Some((b'"', head)) => {
                    self.0.put(head);
                    self.0.put(b"'");
                }
                _ => self.0.put(part),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::{Fault, Step};
    use base64::Engine as _;
    use std::string::String;
    use std::vec::Vec;

    const DATE: &[u8] = b"Wed, 25 Nov 2026 10:00:00 +0000";

    /// A host, a server script and the session between them. Echo is off
    /// unless a test turns it on, so answers read as they do on the wire.
    struct Rig {
        s: Session,
        host: Vec<u8>,
        server: Vec<u8>,
        now: u64,
        /// How the host ends its lines.
        eol: &'static [u8],
        /// Events taken from the session and not yet looked at.
        events: Vec<Seen>,
    }

    /// An [`Event`] as the rig keeps it.
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Seen {
        Command,
        Identity,
        Connect(Vec<u8>, u16, bool),
        StartTls,
        Close,
        Failed(MailFailure),
    }

    impl From<Event<'_>> for Seen {
        fn from(event: Event<'_>) -> Self {
            match event {
                Event::Command(_) => Seen::Command,
                Event::Identity => Seen::Identity,
                Event::Connect(c) => Seen::Connect(c.host.to_vec(), c.port, c.implicit_tls),
                Event::StartTls => Seen::StartTls,
                Event::Close => Seen::Close,
                Event::MailFailed(f) => Seen::Failed(f),
            }
        }
    }

    impl HostProgress {
        fn pair(self) -> (usize, usize) {
            (self.read, self.written)
        }
    }

    impl Rig {
        fn new() -> Self {
            let mut s = Session::new();
            s.engine.echo = false;
            Rig {
                s,
                host: Vec::new(),
                server: Vec::new(),
                now: 0,
                eol: b"\r",
                events: Vec::new(),
            }
        }

        /// Feeds host bytes as a UART would, answering what the session
        /// asks of the caller (an identity for SEND; `ERROR` for commands
        /// that are not the engine's) and draining what it says.
        fn serial(&mut self, bytes: &[u8]) {
            let mut rest = bytes;
            while !rest.is_empty() {
                let mut out = [0u8; 300];
                let (r, w) = self.s.handle_host(self.now, rest, &mut out).pair();
                self.server.extend_from_slice(&out[..w]);
                rest = &rest[r..];
                let asked = self.answer_pending();
                if r == 0 && w == 0 && !asked && self.pump().is_empty() {
                    break;
                }
            }
        }

        /// Takes the session's events into `events`.
        fn drain_events(&mut self) {
            while let Some(event) = self.s.poll_event() {
                self.events.push(event.into());
            }
        }

        /// The first event taken that `pick` picks, removed.
        fn take(&mut self, pick: impl Fn(&Seen) -> Option<Seen>) -> Option<Seen> {
            self.drain_events();
            let i = self.events.iter().position(|e| pick(e).is_some())?;
            Some(self.events.remove(i))
        }

        fn poll_connect(&mut self) -> Option<(Vec<u8>, u16, bool)> {
            match self.take(|e| matches!(e, Seen::Connect(..)).then(|| e.clone()))? {
                Seen::Connect(host, port, tls) => Some((host, port, tls)),
                _ => None,
            }
        }

        fn poll_close(&mut self) -> bool {
            self.take(|e| (e == &Seen::Close).then(|| e.clone()))
                .is_some()
        }

        fn poll_failure(&mut self) -> Option<MailFailure> {
            match self.take(|e| matches!(e, Seen::Failed(_)).then(|| e.clone()))? {
                Seen::Failed(f) => Some(f),
                _ => None,
            }
        }

        fn answer_pending(&mut self) -> bool {
            let waiting =
                self.take(|e| matches!(e, Seen::Command | Seen::Identity).then(|| e.clone()));
            match waiting {
                Some(Seen::Identity) => {
                    self.s.set_identity(
                        Token::new(DATE, true).unwrap(),
                        MessageId::new(b"<1@fibocom.com>").unwrap(),
                    );
                    true
                }
                Some(_) => {
                    self.s.answer_command(b"\r\nERROR\r\n").unwrap();
                    true
                }
                None => false,
            }
        }

        /// Runs a line; returns what the host reads back.
        fn at(&mut self, line: &[u8]) -> String {
            let before = self.host.len();
            let mut bytes = line.to_vec();
            bytes.extend_from_slice(self.eol);
            self.serial(&bytes);
            self.pump();
            String::from_utf8_lossy(&self.host[before..]).into_owned()
        }

        fn pump(&mut self) -> String {
            let mut buf = [0u8; 5];
            let before = self.host.len();
            loop {
                let mut out = [0u8; 100];
                let n = self.s.poll_server(self.now, &mut out);
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
            let before = self.host.len();
            let mut rest = bytes;
            while !rest.is_empty() {
                let n = self.s.handle_server(self.now, rest);
                rest = &rest[n..];
                self.pump();
                if n == 0 {
                    break;
                }
            }
            self.pump();
            String::from_utf8_lossy(&self.host[before..]).into_owned()
        }

        fn wait(&mut self, ms: u64) -> String {
            self.now += ms;
            self.s.handle_timeout(self.now);
            self.pump()
        }

        /// The message on the wire, between DATA and end-of-data.
        fn parts(&self) -> Vec<Vec<u8>> {
            let wire = String::from_utf8(self.server.clone()).unwrap();
            let start = wire.find("DATA\r\n").unwrap() + 6;
            let message = &wire[start..];
            message
                .split("--=_atmail_")
                .skip(1)
                .filter(|part| part.contains("\r\n\r\n"))
                .map(|part| {
                    let body = &part[part.find("\r\n\r\n").unwrap() + 4..];
                    base64::engine::general_purpose::STANDARD
                        .decode(body.replace("\r\n", ""))
                        .unwrap()
                })
                .collect()
        }
    }

    fn configure(rig: &mut Rig) {
        for line in [
            &b"at+gtsmtpland=25,\"mail.fibocom.com\",3"[..],
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
        rig.poll_connect().unwrap();
        rig.s
            .handle_connected(rig.now, Some(IpAddr::from([10, 0, 0, 7])));
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

    /// A rig whose session has `cap` bytes of token storage.
    fn token_rig(cap: usize) -> Rig {
        let mut rig = Rig::new();
        let mem = std::boxed::Box::leak(std::vec![0u8; cap].into_boxed_slice());
        assert!(rig.s.set_token_storage(mem).is_none());
        rig
    }

    /// `AT+GTSMTPTOKEN=<n>` and its bytes, as a host sends them.
    fn set_token(rig: &mut Rig, token: &[u8]) -> String {
        let before = rig.host.len();
        let line = std::format!("AT+GTSMTPTOKEN={}", token.len());
        rig.at(line.as_bytes());
        rig.serial(token);
        rig.pump();
        String::from_utf8_lossy(&rig.host[before..]).into_owned()
    }

    #[test]
    fn the_token_commands() {
        let mut rig = token_rig(8192);
        rig.s.engine.echo = true;
        rig.eol = b"\r\n";
        let token = b"eyJhbGciOiJIUzI1NiJ9.+++.\x41SECRETsig_-~/=";
        let heard = set_token(&mut rig, token);
        // The command line is echoed (its LF is the token read's to drop);
        // not one byte of the token is.
        assert_eq!(heard, "AT+GTSMTPTOKEN=40\r\r\n> \r\nOK\r\n");
        assert_eq!(rig.s.engine.token.token(), token);
        assert_eq!(
            rig.at(b"AT+GTSMTPTOKEN?"),
            "AT+GTSMTPTOKEN?\r\r\n+GTSMTPTOKEN: 40\r\n\r\nOK\r\n"
        );
        rig.s.engine.echo = false;
        assert_eq!(
            rig.at(b"AT+GTSMTPTOKEN=?"),
            "\r\n+GTSMTPTOKEN: (0-8192)\r\n\r\nOK\r\n"
        );
        assert_eq!(
            rig.at(b"AT+GTSMTPAUTH?"),
            "\r\n+GTSMTPAUTH: 0\r\n\r\nOK\r\n"
        );
        assert_eq!(rig.at(b"AT+GTSMTPAUTH=1"), "\r\nOK\r\n");
        assert_eq!(
            rig.at(b"AT+GTSMTPAUTH?"),
            "\r\n+GTSMTPAUTH: 1\r\n\r\nOK\r\n"
        );
        assert_eq!(
            rig.at(b"AT+GTSMTPAUTH=?"),
            "\r\n+GTSMTPAUTH: (0-2)\r\n\r\nOK\r\n"
        );
        assert_eq!(rig.at(b"AT+GTSMTPAUTH=3"), "\r\nERROR\r\n");
        // =0 clears; CLR clears the token and the mechanism.
        assert_eq!(rig.at(b"AT+GTSMTPTOKEN=0"), "\r\nOK\r\n");
        assert_eq!(
            rig.at(b"AT+GTSMTPTOKEN?"),
            "\r\n+GTSMTPTOKEN: 0\r\n\r\nOK\r\n"
        );
        set_token(&mut rig, b"abc");
        assert_eq!(rig.at(b"AT+GTSMTPCLR"), "\r\nOK\r\n");
        assert_eq!(
            rig.at(b"AT+GTSMTPTOKEN?"),
            "\r\n+GTSMTPTOKEN: 0\r\n\r\nOK\r\n"
        );
        assert_eq!(
            rig.at(b"AT+GTSMTPAUTH?"),
            "\r\n+GTSMTPAUTH: 0\r\n\r\nOK\r\n"
        );
        let mem = rig.s.take_token_storage().unwrap();
        assert!(
            mem.iter().all(|&b| b == 0),
            "the token is wiped, not forgotten"
        );
    }

    #[test]
    fn token_reads_that_fail_store_nothing_and_say_why() {
        let mut rig = Rig::new();
        rig.at(b"AT+CMEE=2");
        assert_eq!(
            rig.at(b"AT+GTSMTPTOKEN=10"),
            "\r\n+CME ERROR: no token storage (the firmware gives none)\r\n"
        );
        let mut rig = token_rig(16);
        rig.at(b"AT+CMEE=2");
        assert_eq!(
            rig.at(b"AT+GTSMTPTOKEN=17"),
            "\r\n+CME ERROR: token longer than the token storage\r\n"
        );
        assert_eq!(
            set_token(&mut rig, b"ab\x01cd"),
            "\r\n> \r\n+CME ERROR: token bytes must be printable ASCII\r\n"
        );
        assert_eq!(
            rig.at(b"AT+GTSMTPTOKEN?"),
            "\r\n+GTSMTPTOKEN: 0\r\n\r\nOK\r\n"
        );
        // A host that stops early: the read ends after 20 s of silence.
        assert_eq!(rig.at(b"AT+GTSMTPTOKEN=8"), "\r\n> ");
        rig.serial(b"abc");
        assert_eq!(rig.s.state(), SessionState::TokenInput);
        assert!(rig.s.in_data_mode());
        assert_eq!(rig.s.next_deadline(), Some(rig.now + 20_000));
        assert_eq!(rig.wait(19_999), "");
        assert_eq!(
            rig.wait(1),
            "\r\n+CME ERROR: token incomplete: no byte for 20 s\r\n"
        );
        assert_eq!(rig.s.state(), SessionState::Idle);
        assert_eq!(
            rig.at(b"AT+GTSMTPTOKEN?"),
            "\r\n+GTSMTPTOKEN: 0\r\n\r\nOK\r\n"
        );
        // SEND with a token mechanism and no token.
        configure(&mut rig);
        rig.at(b"AT+GTSMTPAUTH=2");
        assert_eq!(
            rig.at(b"AT+GTSMTPSEND=300"),
            "\r\n+CME ERROR: no token (AT+GTSMTPTOKEN)\r\n"
        );
    }

    #[test]
    fn storage_taken_back_mid_read_still_answers_the_command() {
        let mut rig = token_rig(16);
        rig.at(b"AT+CMEE=2");
        assert_eq!(rig.at(b"AT+GTSMTPTOKEN=8"), "\r\n> ");
        rig.serial(b"abc");
        let mem = rig.s.take_token_storage().unwrap();
        assert!(mem.iter().all(|&b| b == 0));
        assert_eq!(
            rig.pump(),
            "\r\n+CME ERROR: token storage taken back during the read\r\n"
        );
        assert_eq!(rig.s.state(), SessionState::Idle);
        assert_eq!(rig.at(b"AT"), "\r\nOK\r\n");
    }

    #[test]
    fn configuration_is_frozen_while_a_mail_is_in_progress() {
        let mut rig = token_rig(64);
        configure(&mut rig);
        set_token(&mut rig, b"tok");
        rig.at(b"AT+GTSMTPAUTH=1");
        send_and_connect(&mut rig);
        assert_eq!(rig.at(b"AT+GTSMTPAUTH=0"), "\r\nERROR\r\n");
        assert_eq!(rig.at(b"AT+GTSMTPTOKEN=3"), "\r\nERROR\r\n");
        assert_eq!(rig.at(b"AT+GTSMTPTOKEN=0"), "\r\nERROR\r\n");
        assert_eq!(rig.s.engine.token.token(), b"tok");
    }

    #[test]
    fn a_refused_token_is_answered_then_reported_with_the_servers_words() {
        for (mech, answer) in [(&b"1"[..], &b"\r\n"[..]), (b"2", b"AQ==\r\n")] {
            let mut rig = token_rig(8192);
            configure(&mut rig);
            rig.at(&[&b"AT+GTSMTPAUTH="[..], mech].concat());
            let token = [b'k'; 2600];
            assert_eq!(set_token(&mut rig, &token), "\r\n> \r\nOK\r\n");
            send_and_connect(&mut rig);
            rig.reply(b"250-mx\r\n250-PIPELINING\r\n250 AUTH PLAIN XOAUTH2 OAUTHBEARER\r\n");
            let wire = String::from_utf8(rig.server.clone()).unwrap();
            let auth = wire.lines().last().unwrap();
            assert!(
                auth == "AUTH XOAUTH2" || auth == "AUTH OAUTHBEARER",
                "{auth}"
            );
            rig.reply(b"334 \r\n");
            let response = &rig.server[wire.len()..];
            assert!(response.len() > 3400 && response.ends_with(b"\r\n"));
            let before = rig.server.len();
            let challenge = base64::engine::general_purpose::STANDARD
                .encode(br#"{"status":"401","schemes":"bearer","scope":"mail"}"#);
            rig.reply(std::format!("334 {challenge}\r\n").as_bytes());
            assert_eq!(&rig.server[before..], answer);
            let before = rig.server.len();
            assert_eq!(
                rig.reply(b"535 5.7.8 Error: authentication failed: \x07bad\r\n"),
                "\r\n+GTSMTPSEND: 535\r\n"
            );
            assert_eq!(&rig.server[before..], b"QUIT\r\n");
            let reason = std::format!("{}", rig.poll_failure().unwrap());
            let name = if mech == b"1" {
                "XOAUTH2"
            } else {
                "OAUTHBEARER"
            };
            assert_eq!(
                reason,
                std::format!("the server refused the {name} token: 535 5.7.8 Error: authentication failed: ?bad (status 401)")
            );
            assert!(!reason.contains("kkkk"));
            rig.reply(b"221 bye\r\n");
            assert!(rig.poll_close());
        }
    }

    #[test]
    fn the_spec_case_delivers_a_whole_mail() {
        let mut rig = Rig::new();
        configure(&mut rig);
        assert_eq!(rig.at(b"at+gtsmtpsend=300"), "\r\nOK\r\n");
        let connect = rig.poll_connect().unwrap();
        assert_eq!(connect, (b"mail.fibocom.com".to_vec(), 25, false));
        rig.s
            .handle_connected(rig.now, Some(IpAddr::from([10, 0, 0, 7])));
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
        assert!(rig.poll_close());

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
        // RFC 5321 4.1.1.10: QUIT after the refusal, the close after 221.
        assert!(rig.server.ends_with(b"QUIT\r\n"));
        assert!(!rig.poll_close());
        assert_eq!(rig.reply(b"221 bye\r\n"), "");
        assert!(rig.poll_close());
        assert_eq!(
            rig.at(b"AT+GTSMTPDST?"),
            "\r\n+GTSMTPDST: 1,\"xiangj@fibocom.com\"\r\n\r\nOK\r\n"
        );
        // The next SEND works again.
        assert_eq!(rig.at(b"AT+GTSMTPSEND=300"), "\r\nOK\r\n");
        assert!(rig.poll_connect().is_some());
        rig.s.handle_closed(rig.now);
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
        assert!(
            rig.poll_connect().is_some(),
            "taken by the rig with SEND's OK"
        );
        assert_eq!(rig.at(b"AT+GTSMTPCLR"), "\r\nOK\r\n");
        assert!(rig.poll_close(), "the connection asked for is given up");
        assert_eq!(rig.poll_connect(), None);
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
        assert!(rig.poll_close());
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
        rig.s.handle_closed(rig.now);
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
        rig.s.handle_closed(rig.now);
        assert_eq!(rig.pump(), "\r\n+GTSMTPSEND: 0\r\n");
        assert_eq!(rig.s.next_deadline(), Some(2000));
        assert_eq!(rig.wait(2000), "\r\nERROR\r\n");
        assert!(!rig.s.in_data_mode());
    }

    /// A connected mail at `+GTSMTPSEND: 2`, for a host ending lines with `eol`.
    fn ready(eol: &'static [u8]) -> Rig {
        let mut rig = Rig::new();
        rig.eol = eol;
        configure(&mut rig);
        send_and_connect(&mut rig);
        until_ready(&mut rig);
        rig
    }

    #[test]
    fn a_crlf_host_has_the_lf_of_a_data_command_dropped_however_it_is_split() {
        let command = b"AT+GTSMTPDATA=300\r\n";
        let payload = b"line one\r\nline two\r\n";
        let mut stream = command.to_vec();
        stream.extend_from_slice(payload);
        for split in 0..=stream.len() {
            let mut rig = ready(b"\r\n");
            rig.serial(&stream[..split]);
            rig.now += 10;
            rig.serial(&stream[split..]);
            rig.now += 1500;
            rig.serial(b"+++");
            assert_eq!(
                rig.wait(1000),
                std::format!("\r\n> \r\n+GTSMTPDATA: {}\r\n\r\nOK\r\n", payload.len()),
                "split at {split}"
            );
            assert_eq!(rig.at(b"AT+GTSMTPEND"), "\r\nOK\r\n");
            assert_eq!(rig.parts()[0], payload, "split at {split}");
        }
    }

    #[test]
    fn payload_streams_through_any_socket_room_whole() {
        // A firmware's socket buffer may be a few dozen bytes: payload still
        // goes through, every byte of it.
        let body: Vec<u8> = (0..700u32)
            .map(|i| {
                if i % 5 == 0 {
                    b'\n'
                } else {
                    b'a' + (i % 26) as u8
                }
            })
            .collect();
        for room in [7, 12, 40, 77, 78, 93, 300] {
            let mut rig = ready(b"\r");
            rig.at(b"AT+GTSMTPFILE=1,\"a.bin\"");
            let mut rest = &body[..];
            while !rest.is_empty() {
                let mut out = [0u8; 300];
                let (r, w) = rig.s.handle_host(rig.now, rest, &mut out[..room]).pair();
                assert!(r + w > 0, "room {room}: stalled with {} left", rest.len());
                rig.server.extend_from_slice(&out[..w]);
                rest = &rest[r..];
            }
            rig.now += 1500;
            rig.serial(b"+++");
            assert_eq!(
                rig.wait(1000),
                "\r\n+GTSMTPFILE: 700\r\n\r\nOK\r\n",
                "room {room}"
            );
            rig.at(b"AT+GTSMTPEND");
            assert_eq!(rig.parts()[1], body, "room {room}");
        }
    }

    #[test]
    fn a_crlf_host_whose_lf_comes_late_still_has_it_dropped() {
        let mut rig = ready(b"\r\n");
        rig.serial(b"AT+GTSMTPFILE=1,\"a.bin\"\r");
        assert_eq!(rig.pump(), "\r\n> ");
        rig.now += 500;
        rig.s.handle_timeout(rig.now);
        rig.serial(b"\n\x00\x01BIN");
        rig.now += 1500;
        rig.serial(b"+++");
        assert_eq!(rig.wait(1000), "\r\n+GTSMTPFILE: 5\r\n\r\nOK\r\n");
        rig.at(b"AT+GTSMTPEND");
        assert_eq!(rig.parts()[1], b"\x00\x01BIN");
    }

    #[test]
    fn a_cr_host_keeps_a_payload_that_begins_with_lf() {
        let mut rig = ready(b"\r");
        rig.serial(b"AT+GTSMTPDATA=300\r\nbody");
        rig.now += 1500;
        rig.serial(b"+++");
        assert_eq!(rig.wait(1000), "\r\n> \r\n+GTSMTPDATA: 5\r\n\r\nOK\r\n");
        rig.serial(b"AT+GTSMTPFILE=1,\"a.bin\"\r\n\x00\x01BIN");
        rig.now += 1500;
        rig.serial(b"+++");
        assert_eq!(rig.wait(1000), "\r\n> \r\n+GTSMTPFILE: 6\r\n\r\nOK\r\n");
        rig.at(b"AT+GTSMTPEND");
        // The text in canonical form; the attachment as sent.
        assert_eq!(rig.parts(), [&b"\r\nbody"[..], b"\n\x00\x01BIN"]);
    }

    #[test]
    fn backspace_edits_a_line_and_echo_shows_it() {
        let mut rig = Rig::new();
        rig.s.engine.echo = true;
        rig.serial(b"AT+GTSMTPLAND=25,\"mx.example.com\"\r\n");
        rig.pump();
        let got = rig.at(b"AT+GTSMTPLANX\x08D?");
        assert_eq!(
            got,
            "AT+GTSMTPLANX\x08 \x08D?\r\r\n+GTSMTPLAND: 25,\"mx.example.com\"\r\n\r\nOK\r\n"
        );
        assert_eq!(rig.at(b"ATE0"), "ATE0\r\r\nOK\r\n");
        assert_eq!(rig.at(b"AT"), "\r\nOK\r\n");
    }

    #[test]
    fn an_overlong_line_is_refused_not_cut_into_another_command() {
        let mut rig = Rig::new();
        rig.s.set_verbose_errors(true);
        let mut line = b"AT+GTSMTPLAND=25,\"".to_vec();
        line.resize(crate::line::LINE_MAX, b'a');
        line.extend_from_slice(b"\",1");
        assert_eq!(
            rig.at(&line),
            "\r\n+CME ERROR: command line too long (300 bytes at most)\r\n"
        );
        assert_eq!(
            rig.at(b"AT+GTSMTPLAND?"),
            "\r\n+GTSMTPLAND: 0\r\n\r\nOK\r\n"
        );
    }

    #[test]
    fn other_commands_go_to_the_caller_and_its_answer_keeps_its_place() {
        let mut rig = Rig::new();
        let (r, _) = rig
            .s
            .handle_host(0, b"AT+MIPCALL?\r\nAT+CMEE=2\r\n", &mut [])
            .pair();
        assert_eq!(r, 12, "nothing past the line until the caller answers");
        assert_eq!(rig.s.peek_event(), Some(Event::Command(b"AT+MIPCALL?")));
        assert_eq!(rig.s.handle_host(0, b"\n", &mut []).pair(), (0, 0));
        rig.s
            .answer_command(b"\r\n+MIPCALL: 0\r\n\r\nOK\r\n")
            .unwrap();
        assert_eq!(rig.s.answer_command(b"x"), Err(AnswerError::NotAsked));
        rig.serial(b"\nAT+CMEE=2\r\nAT+CMEE?\r\n");
        assert_eq!(
            rig.pump(),
            "\r\n+MIPCALL: 0\r\n\r\nOK\r\n\r\nOK\r\n\r\n+CMEE: 2\r\n\r\nOK\r\n"
        );
    }

    #[test]
    fn send_waits_for_the_callers_identity_and_takes_it() {
        let mut rig = Rig::new();
        configure(&mut rig);
        let progress = rig.s.handle_host(7, b"AT+GTSMTPSEND=300\rAT\r", &mut []);
        assert_eq!((progress.read, progress.stopped), (18, Stopped::Caller));
        assert_eq!(rig.s.peek_event(), Some(Event::Identity));
        assert_eq!(rig.s.poll_event(), Some(Event::Identity));
        assert_eq!(rig.s.poll_event(), None, "told once");
        let again = rig.s.handle_host(8, b"AT\r", &mut []);
        assert_eq!(
            (again.read, again.stopped),
            (0, Stopped::Caller),
            "still waiting"
        );
        assert_eq!(rig.pump(), "");
        rig.s.set_identity(
            Token::new(DATE, true).unwrap(),
            MessageId::new(b"<2@fibocom.com>").unwrap(),
        );
        assert_eq!(
            rig.s.peek_event(),
            Some(Event::Connect(Connect {
                host: b"mail.fibocom.com",
                port: 25,
                implicit_tls: false
            }))
        );
        assert_eq!(rig.pump(), "\r\nOK\r\n");
        assert_eq!(
            rig.s.next_deadline(),
            Some(7 + 300_000),
            "as of the line's time"
        );
        assert!(rig.s.engine.identity.is_none(), "each mail takes its own");
    }

    #[test]
    fn send_is_refused_while_the_network_is_down() {
        let mut rig = Rig::new();
        rig.s.set_verbose_errors(true);
        configure(&mut rig);
        rig.s.set_network_up(false);
        assert_eq!(
            rig.at(b"AT+GTSMTPSEND=300"),
            "\r\n+CME ERROR: network not up (AT+MIPCALL)\r\n"
        );
        assert_eq!(
            rig.at(b"AT+GTSMTPSEND=99"),
            "\r\n+CME ERROR: parameter out of range\r\n",
            "the line's own checks come first"
        );
    }

    // The review's findings, each failing on the session before the
    // serial line moved into it.

    #[test]
    fn a_read_form_drained_while_the_connection_drops_is_not_torn() {
        let mut rig = ready(b"\r");
        rig.serial(b"AT+GTSMTPFILE=1,\"a.bin\"\rpayload");
        rig.now += 1500;
        rig.serial(b"+++");
        rig.wait(1000);
        rig.serial(b"AT+GTSMTPFILE?\r");
        let mut first = [0u8; 1];
        assert_eq!(rig.s.poll_host(&mut first), 1);
        rig.s.handle_closed(rig.now);
        let mut rest = [0u8; 200];
        let n = rig.s.poll_host(&mut rest);
        let mut got = first.to_vec();
        got.extend_from_slice(&rest[..n]);
        assert_eq!(
            String::from_utf8(got).unwrap(),
            "\r\n+GTSMTPFILE: \"a.bin\"\r\n\r\nOK\r\n\r\n+GTSMTPSEND: 0\r\n"
        );
    }

    #[test]
    fn the_header_block_keeps_the_identity_of_its_send() {
        let mut rig = Rig::new();
        configure(&mut rig);
        send_and_connect(&mut rig);
        rig.reply(b"250-mx\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n");
        rig.reply(b"235 ok\r\n");
        let mut rest: &[u8] = b"250 ok\r\n250 ok\r\n354 go\r\n";
        while !rest.is_empty() {
            let n = rig.s.handle_server(rig.now, rest);
            rest = &rest[n..];
            let mut out = [0u8; 100];
            let n = rig.s.poll_server(rig.now, &mut out);
            rig.server.extend_from_slice(&out[..n]);
        }
        // Part of the header block is out; the caller sets a new identity.
        let mut out = [0u8; 20];
        let n = rig.s.poll_server(rig.now, &mut out);
        rig.server.extend_from_slice(&out[..n]);
        rig.s.set_identity(
            Token::new(b"Thu, 26 Nov 2026 11:11:11 +0000", true).unwrap(),
            MessageId::new(b"<other@fibocom.com>").unwrap(),
        );
        assert_eq!(rig.pump(), "\r\n+GTSMTPSEND: 2\r\n");
        let wire = String::from_utf8(rig.server.clone()).unwrap();
        assert!(
            wire.contains("\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n"),
            "{wire}"
        );
        assert!(
            wire.contains("\r\nMessage-ID: <1@fibocom.com>\r\n"),
            "{wire}"
        );
    }

    #[test]
    fn an_abort_while_a_part_ends_still_gives_the_data_command_its_result() {
        let mut rig = ready(b"\r");
        rig.s.set_verbose_errors(true);
        rig.serial(b"AT+GTSMTPDATA=300\rbody");
        assert_eq!(rig.pump(), "\r\n> ");
        rig.now += 1500;
        rig.serial(b"+++");
        // The mode ends on the timer, but the part's last line has not
        // been written (the socket buffer is full) when the link drops.
        rig.now += 1000;
        rig.s.handle_timeout(rig.now);
        assert_eq!(rig.s.state(), SessionState::Finishing);
        rig.s.handle_closed(rig.now);
        assert_eq!(
            rig.pump(),
            "\r\n+GTSMTPSEND: 0\r\n\r\n+CME ERROR: mail aborted\r\n"
        );
        assert_eq!(rig.s.state(), SessionState::Idle);
        assert_eq!(rig.at(b"AT"), "\r\nOK\r\n");
    }

    #[test]
    fn configuration_is_free_as_soon_as_the_final_urc_is_said() {
        let mut rig = ready(b"\r");
        rig.at(b"AT+GTSMTPEND");
        assert_eq!(rig.reply(b"250 queued\r\n"), "\r\n+GTSMTPSEND: 1\r\n");
        assert!(rig.server.ends_with(b"QUIT\r\n"), "QUIT is in flight");
        assert_eq!(rig.at(b"AT+GTSMTPDST=1,2,\"cc@fibocom.com\""), "\r\nOK\r\n");
        assert_eq!(rig.at(b"AT+GTSMTPCLR"), "\r\nOK\r\n");
        // The QUIT's reply is still read, though nothing is configured.
        assert_eq!(rig.s.handle_server(rig.now, b"221 bye\r\n"), 9);
        assert!(rig.poll_close());
        assert_eq!(rig.s.next_deadline(), None);
    }

    #[test]
    fn a_new_send_while_quit_is_in_flight_connects_once_that_connection_closed() {
        let mut rig = ready(b"\r");
        rig.at(b"AT+GTSMTPEND");
        rig.reply(b"250 queued\r\n");
        assert_eq!(rig.at(b"AT+GTSMTPSEND=300"), "\r\nOK\r\n");
        assert!(
            rig.poll_connect().is_none(),
            "not before the old one is closed"
        );
        assert!(!rig.poll_close(), "its QUIT is answered first");
        assert_eq!(rig.reply(b"221 bye\r\n"), "");
        assert!(rig.poll_close());
        assert!(rig.poll_connect().is_some());
        // A server that never answers the QUIT holds the next mail back
        // for QUIT_MS at most.
        let mut rig = ready(b"\r");
        rig.at(b"AT+GTSMTPEND");
        rig.reply(b"250 queued\r\n");
        let verdict = rig.now;
        rig.at(b"AT+GTSMTPSEND=300");
        assert_eq!(rig.s.next_deadline(), Some(verdict + crate::smtp::QUIT_MS));
        rig.wait(crate::smtp::QUIT_MS);
        assert!(rig.poll_close());
        assert!(rig.poll_connect().is_some());
    }

    #[test]
    fn events_come_in_the_engines_order_each_once() {
        // A server gone during the mail: the failure, then the close; a
        // new SEND's connection only after both.
        let mut rig = ready(b"\r");
        rig.s.handle_closed(rig.now);
        assert_eq!(rig.pump(), "\r\n+GTSMTPSEND: 0\r\n");
        rig.s.set_identity(
            Token::new(DATE, true).unwrap(),
            MessageId::new(b"<3@fibocom.com>").unwrap(),
        );
        assert_eq!(
            rig.s
                .handle_host(rig.now, b"AT+GTSMTPSEND=300\r", &mut [])
                .stopped,
            Stopped::InputEmpty
        );
        let mut seen = Vec::new();
        while let Some(event) = rig.s.poll_event() {
            seen.push(Seen::from(event));
        }
        let failure = MailFailure {
            failure: Failure::Smtp(Fault::Closed(Step::Message)),
            port: 25,
            implicit_tls: false,
        };
        assert_eq!(
            seen,
            [
                Seen::Failed(failure),
                Seen::Close,
                Seen::Connect(b"mail.fibocom.com".to_vec(), 25, false)
            ]
        );
        assert_eq!(rig.s.peek_event(), None);
        // STARTTLS: asked for once, and a close before the caller took it
        // makes it moot.
        let mut rig = Rig::new();
        configure(&mut rig);
        send_and_connect(&mut rig);
        rig.reply(b"250-mx\r\n250 STARTTLS\r\n");
        rig.reply(b"220 go\r\n");
        assert_eq!(rig.s.peek_event(), Some(Event::StartTls));
        assert_eq!(rig.s.poll_event(), Some(Event::StartTls));
        assert_eq!(rig.s.poll_event(), None);
        let mut rig = Rig::new();
        configure(&mut rig);
        send_and_connect(&mut rig);
        rig.reply(b"250-mx\r\n250 STARTTLS\r\n");
        rig.reply(b"220 go\r\n");
        rig.s.handle_closed(rig.now);
        assert!(matches!(rig.s.poll_event(), Some(Event::MailFailed(_))));
        assert_eq!(rig.s.poll_event(), Some(Event::Close));
        assert_eq!(rig.s.poll_event(), None);
    }

    #[test]
    fn handle_host_says_why_it_stopped() {
        // The host queue full: the host has read nothing back.
        let mut rig = Rig::new();
        let many = b"AT\r".repeat(2000);
        let progress = rig.s.handle_host(0, &many, &mut []);
        assert_eq!(progress.stopped, Stopped::HostFull);
        assert!(progress.read > 0 && progress.read < many.len());
        rig.pump();
        let rest = rig.s.handle_host(0, &many[progress.read..], &mut []);
        assert!(rest.read > 0);
        // No room for the server's bytes in data mode; then room.
        let mut rig = ready(b"\r");
        rig.at(b"AT+GTSMTPDATA=300");
        let progress = rig.s.handle_host(rig.now, b"body", &mut []);
        assert_eq!(
            (progress.read, progress.written, progress.stopped),
            (0, 0, Stopped::ServerFull)
        );
        let mut out = [0u8; 300];
        let progress = rig.s.handle_host(rig.now, b"body", &mut out);
        assert_eq!((progress.read, progress.stopped), (4, Stopped::InputEmpty));
        // The part's last line goes out through handle_host too, before
        // the command that follows the data mode runs.
        rig.server.extend_from_slice(&out[..progress.written]);
        rig.now += 1500;
        rig.serial(b"+++");
        rig.now += 1000;
        rig.s.handle_timeout(rig.now);
        let progress = rig.s.handle_host(rig.now, b"AT+GTSMTPEND\r", &mut out);
        assert_eq!(progress.stopped, Stopped::InputEmpty);
        let ending = String::from_utf8_lossy(&out[..progress.written]).into_owned();
        assert_eq!(ending, "eQ==\r\n", "the held-back last group");
        rig.server.extend_from_slice(&out[..progress.written]);
        assert_eq!(rig.pump(), "\r\n+GTSMTPDATA: 4\r\n\r\nOK\r\n\r\nOK\r\n");
        assert_eq!(rig.parts()[0], b"body");
    }

    #[test]
    fn every_refusal_and_the_time_limit_end_with_quit() {
        // Refused at AUTH, at RCPT (a pipelined flight) and at the end of
        // data; and the time limit running out while a reply is owed.
        let cases: &[(&str, &[&[u8]], &str)] = &[
            (
                "auth",
                &[b"250-mx\r\n250 AUTH PLAIN\r\n", b"535 no\r\n"],
                "535",
            ),
            (
                "rcpt",
                &[
                    b"250-mx\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n",
                    b"235 ok\r\n",
                    b"250 ok\r\n550 no such user\r\n554 no valid recipients\r\n",
                ],
                "550",
            ),
        ];
        for (name, replies, urc) in cases {
            let mut rig = Rig::new();
            configure(&mut rig);
            send_and_connect(&mut rig);
            let mut said = String::new();
            for r in *replies {
                said += &rig.reply(r);
            }
            assert_eq!(said, std::format!("\r\n+GTSMTPSEND: {urc}\r\n"), "{name}");
            assert!(rig.server.ends_with(b"QUIT\r\n"), "{name}");
            assert_eq!(rig.s.state(), SessionState::Idle, "{name}");
            rig.reply(b"221 bye\r\n");
            assert!(rig.poll_close(), "{name}");
        }
        let mut rig = ready(b"\r");
        rig.at(b"AT+GTSMTPEND");
        assert_eq!(rig.reply(b"452 full\r\n"), "\r\n+GTSMTPSEND: 452\r\n");
        assert!(rig.server.ends_with(b".\r\nQUIT\r\n"));
        // The time limit while EHLO's reply is owed: QUIT after it.
        let mut rig = Rig::new();
        configure(&mut rig);
        send_and_connect(&mut rig);
        assert_eq!(rig.wait(300_000), "\r\n+GTSMTPSEND: 0\r\n");
        assert!(!rig.server.ends_with(b"QUIT\r\n"), "EHLO is unanswered");
        rig.reply(b"250 mx\r\n");
        assert!(rig.server.ends_with(b"QUIT\r\n"));
        rig.reply(b"221 bye\r\n");
        assert!(rig.poll_close());
    }

    /// Mode blank, as the spec case gives it: a server without STARTTLS
    /// that offers AUTH (what a man in the middle presents) gets no AUTH;
    /// the URC is 0, the reason says why, and `AT+GTSMTPERR?` tells the
    /// host the same words. With STARTTLS the mail signs in after TLS.
    #[test]
    fn blank_mode_signs_in_only_after_starttls() {
        let mut rig = Rig::new();
        configure(&mut rig);
        assert_eq!(
            rig.at(b"AT+GTSMTPLAND=25,\"mail.fibocom.com\""),
            "\r\nOK\r\n"
        );
        assert_eq!(
            rig.at(b"AT+GTSMTPLAND?"),
            "\r\n+GTSMTPLAND: 25,\"mail.fibocom.com\"\r\n\r\nOK\r\n"
        );
        assert_eq!(
            rig.at(b"AT+GTSMTPERR?"),
            "\r\n+GTSMTPERR: 0,\"\"\r\n\r\nOK\r\n"
        );
        send_and_connect(&mut rig);
        let said = rig.reply(b"250-mx\r\n250 AUTH PLAIN LOGIN\r\n");
        assert_eq!(said, "\r\n+GTSMTPSEND: 0\r\n");
        assert!(rig.server.ends_with(b"EHLO [10.0.0.7]\r\nQUIT\r\n"));
        let reason = "the server offers AUTH but not STARTTLS: credentials go only under TLS (mode 3 of AT+GTSMTPLAND allows sign-in without it)";
        let failure = rig.poll_failure().unwrap();
        assert_eq!(std::format!("{failure}"), reason);
        assert_eq!(
            rig.at(b"AT+GTSMTPERR?"),
            std::format!("\r\n+GTSMTPERR: 0,\"{reason}\"\r\n\r\nOK\r\n")
        );
        rig.reply(b"221 bye\r\n");
        assert!(rig.poll_close());

        rig.server.clear();
        send_and_connect(&mut rig);
        assert_eq!(
            rig.at(b"AT+GTSMTPERR?"),
            "\r\n+GTSMTPERR: 0,\"\"\r\n\r\nOK\r\n"
        );
        rig.reply(b"250-mx\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n");
        assert!(rig.server.ends_with(b"STARTTLS\r\n"));
        rig.reply(b"220 go ahead\r\n");
        assert!(rig
            .take(|e| (e == &Seen::StartTls).then(|| e.clone()))
            .is_some());
        rig.s.handle_tls_established(rig.now);
        rig.pump();
        until_ready(&mut rig);
        let wire = String::from_utf8(rig.server.clone()).unwrap();
        assert!(wire.contains("STARTTLS\r\nEHLO [10.0.0.7]\r\nAUTH PLAIN "));
    }

    /// Every failed mail leaves its code and the server's words for
    /// `AT+GTSMTPERR?` and the caller's event; a `"` in them cannot end
    /// the string early.
    #[test]
    fn a_refusal_gives_its_code_and_the_servers_words() {
        let mut rig = Rig::new();
        configure(&mut rig);
        send_and_connect(&mut rig);
        rig.reply(b"250-mx\r\n250 AUTH PLAIN\r\n");
        assert_eq!(
            rig.reply(b"535 5.7.8 \"bad\" credentials\r\n"),
            "\r\n+GTSMTPSEND: 535\r\n"
        );
        let failure = rig.poll_failure().unwrap();
        assert_eq!(failure.failure.code(), 535);
        assert_eq!(
            std::format!("{failure}"),
            "the server refused the mail at AUTH: 535 5.7.8 \"bad\" credentials"
        );
        assert_eq!(
            rig.at(b"AT+GTSMTPERR?"),
            "\r\n+GTSMTPERR: 535,\"the server refused the mail at AUTH: 535 5.7.8 'bad' credentials\"\r\n\r\nOK\r\n"
        );
        assert_eq!(rig.at(b"AT+GTSMTPERR=?"), "\r\nOK\r\n");
        assert!(rig.at(b"AT+GTSMTPERR=1").contains("ERROR"));
        assert!(rig.at(b"AT+GTSMTPERR").contains("ERROR"));
    }

    /// A reply inside DATA ends the mail and the connection at once: no
    /// QUIT goes into the message.
    #[test]
    fn a_reply_inside_data_closes_the_connection_without_quit() {
        let mut rig = ready(b"\r");
        assert_eq!(rig.at(b"AT+GTSMTPDATA=300"), "\r\n> ");
        rig.serial(b"some body");
        let sent = rig.server.len();
        let said = rig.reply(b"421 4.3.0 shutting down\r\n");
        assert!(said.contains("+GTSMTPSEND: 421"), "{said:?}");
        assert!(rig.poll_close());
        assert!(!rig.server[sent..].windows(4).any(|w| w == b"QUIT"));
        let failure = rig.poll_failure().unwrap();
        assert_eq!(
            std::format!("{failure}"),
            "the server refused the mail while sending the message: 421 4.3.0 shutting down"
        );
    }

    /// `AT+GTSMTPCLR` while the end of data may be on the wire is refused
    /// until the verdict, which the host then hears.
    #[test]
    fn clear_waits_for_the_verdict_of_a_mail_being_delivered() {
        let mut rig = ready(b"\r");
        rig.s.set_verbose_errors(true);
        assert_eq!(rig.at(b"at+gtsmtpend"), "\r\nOK\r\n");
        assert!(rig.server.ends_with(b"\r\n.\r\n"));
        assert_eq!(
            rig.at(b"AT+GTSMTPCLR"),
            "\r\n+CME ERROR: mail being delivered: wait for +GTSMTPSEND\r\n"
        );
        assert_eq!(rig.reply(b"250 queued\r\n"), "\r\n+GTSMTPSEND: 1\r\n");
        assert_eq!(rig.at(b"AT+GTSMTPCLR"), "\r\nOK\r\n");
    }

    /// `Debug` of a session with a password typed and echoed, its echo
    /// not drained, a token set, and half an ID line typed: no secret.
    #[test]
    fn the_debug_of_a_session_shows_no_secret() {
        let mut rig = token_rig(64);
        rig.s.engine.echo = true;
        rig.serial(b"AT+GTSMTPID=\"u@x.com\",\"pw-6f1c2a9e\"\r");
        assert!(set_token(&mut rig, b"ya29.tok-4d5e").ends_with("OK\r\n"));
        rig.serial(b"AT+GTSMTPID=\"u@x.com\",\"pw-half");
        let shown = std::format!("{:?}", rig.s);
        for secret in ["pw-6f1c2a9e", "ya29.tok", "pw-half"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        // Bytes shown as numbers would hide it from `contains`.
        assert!(!shown.contains("112, 119, 45"), "{shown}");
    }

    /// The password, the token and the lines that carried them are in no
    /// byte of the session after `AT+GTSMTPCLR`, nor after a drop.
    #[test]
    #[allow(unsafe_code)]
    fn no_secret_is_left_in_the_session() {
        const PASSWORD: &[u8] = b"pw-6f1c2a9e-secret";
        const TOKEN: &[u8] = b"ya29.tok-4d5e6f7a8b9c";
        fn holds(bytes: &[u8], needle: &[u8]) -> bool {
            bytes.windows(needle.len()).any(|w| w == needle)
        }
        fn session_bytes(s: &Session) -> &[u8] {
            // SAFETY: reading the bytes of a live value as `u8`s; padding
            // may be uninitialised in principle, which the scan only reads.
            unsafe {
                core::slice::from_raw_parts(
                    (s as *const Session).cast::<u8>(),
                    core::mem::size_of::<Session>(),
                )
            }
        }
        let mem: &'static mut [u8] = std::boxed::Box::leak(std::vec![0u8; 64].into_boxed_slice());
        let token_mem = mem.as_ptr();
        let mut slot = std::boxed::Box::new(MaybeUninit::<Session>::uninit());
        let s = Session::init_in(&mut slot);
        let mut rig = Rig {
            s: Session::new(),
            host: Vec::new(),
            server: Vec::new(),
            now: 0,
            eol: b"\r",
            events: Vec::new(),
        };
        core::mem::swap(&mut rig.s, s);
        assert!(rig.s.set_token_storage(mem).is_none());
        rig.s.engine.echo = true;
        let id = [&b"AT+GTSMTPID=\"u@x.com\",\""[..], PASSWORD, b"\""].concat();
        assert!(rig.at(&id).ends_with("\r\nOK\r\n"));
        assert!(set_token(&mut rig, TOKEN).ends_with("OK\r\n"));
        assert!(holds(session_bytes(&rig.s), PASSWORD));
        assert_eq!(rig.at(b"AT+GTSMTPCLR"), "AT+GTSMTPCLR\r\r\nOK\r\n");
        let bytes = session_bytes(&rig.s);
        assert!(!holds(bytes, PASSWORD) && !holds(bytes, &PASSWORD[..8]));
        // SAFETY: the token storage is alive (leaked) and not borrowed now.
        let storage = unsafe { core::slice::from_raw_parts(token_mem, 64) };
        assert!(!holds(storage, &TOKEN[..8]));

        // Set again, then dropped in place (what the C ABI's deinit does).
        assert!(rig.at(&id).ends_with("\r\nOK\r\n"));
        assert!(set_token(&mut rig, TOKEN).ends_with("OK\r\n"));
        core::mem::swap(&mut rig.s, s);
        // SAFETY: `s` was initialised by `init_in` (and swapped in whole);
        // it is not used after this drop.
        unsafe { core::ptr::drop_in_place(s as *mut Session) };
        // SAFETY: the slot's bytes, read as `u8`s after the drop.
        let bytes = unsafe {
            core::slice::from_raw_parts(slot.as_ptr().cast::<u8>(), core::mem::size_of::<Session>())
        };
        assert!(!holds(bytes, &PASSWORD[..8]));
        let storage = unsafe { core::slice::from_raw_parts(token_mem, 64) };
        assert!(!holds(storage, &TOKEN[..8]));
    }

    #[test]
    fn a_close_of_a_connection_already_given_up_is_not_the_next_mails() {
        let mut rig = Rig::new();
        configure(&mut rig);
        send_and_connect(&mut rig);
        rig.reply(b"250-mx\r\n250 AUTH PLAIN\r\n");
        rig.reply(b"535 no\r\n221 bye\r\n");
        assert!(rig.poll_close());
        assert_eq!(rig.at(b"AT+GTSMTPSEND=300"), "\r\nOK\r\n");
        // The server's FIN after its 221 reaches the caller only now.
        rig.s.handle_closed(rig.now);
        assert_eq!(rig.pump(), "", "no URC for the next mail");
        assert!(rig.poll_connect().is_some());
    }

    #[test]
    fn a_refused_identity_fails_the_send_and_the_next_one_works() {
        let mut rig = Rig::new();
        rig.s.set_verbose_errors(true);
        configure(&mut rig);
        let mut out = [0u8; 64];
        let line = b"AT+GTSMTPSEND=300\r";
        assert_eq!(rig.s.handle_host(0, line, &mut out).pair(), (line.len(), 0));
        assert_eq!(rig.s.peek_event(), Some(Event::Identity));
        rig.s.refuse_identity();
        assert_eq!(
            rig.pump(),
            "\r\n+CME ERROR: no Date or Message-ID for the mail\r\n\r\n+GTSMTPSEND: 0\r\n"
        );
        // Told like every failed mail.
        let failure = rig.poll_failure().unwrap();
        assert_eq!(
            std::format!("{failure}"),
            "the mail ended on this side: no Date or Message-ID for the mail"
        );
        assert_eq!(rig.s.peek_event(), None);
        assert_eq!(rig.s.state(), SessionState::Idle);
        assert_eq!(rig.poll_connect(), None);
        assert_eq!(rig.at(b"AT+GTSMTPSEND=300"), "\r\nOK\r\n");
    }

    /// How a host ends its lines.
    #[derive(Clone, Copy, Debug)]
    enum Eol {
        Cr,
        CrLf,
        /// CRLF, with the LF 500 ms after the CR (after the answer).
        CrLfLate,
    }

    /// A V.250 host and a well-behaved SMTP server around the session,
    /// with the host's bytes split and its answers drained in pieces of
    /// sizes from the test input, and the connection dropped at a chosen
    /// turn.
    struct Drive {
        rig: Rig,
        eol: Eol,
        splits: Vec<usize>,
        next_split: usize,
        drain: usize,
        /// Server bytes not yet read by the session.
        inbox: Vec<u8>,
        /// How far the server has read the wire, and whether it is in DATA.
        seen: usize,
        in_data: bool,
        connected: bool,
        turns: u32,
        drop_at: Option<u32>,
        /// Command lines the host sent.
        lines: usize,
        /// The LF a late CRLF host still owes.
        lf_owed: bool,
    }

    impl Drive {
        fn turn(&mut self) {
            self.turns += 1;
            if self.rig.poll_close() {
                self.connected = false;
                self.inbox.clear();
            }
            let connect = self.rig.poll_connect();
            let s = &mut self.rig.s;
            if connect.is_some() {
                self.connected = true;
                self.seen = self.rig.server.len();
                self.in_data = false;
                self.inbox = b"220 mx\r\n".to_vec();
                s.handle_connected(self.rig.now, None);
            }
            if self.connected && Some(self.turns) == self.drop_at {
                self.connected = false;
                self.inbox.clear();
                s.handle_closed(self.rig.now);
            }
            loop {
                let mut out = [0u8; 64];
                let n = self.rig.s.poll_server(self.rig.now, &mut out);
                if self.connected {
                    self.rig.server.extend_from_slice(&out[..n]);
                }
                self.serve();
                let used = self.rig.s.handle_server(self.rig.now, &self.inbox);
                self.inbox.drain(..used);
                let mut host = [0u8; 64];
                let h = self.rig.s.poll_host(&mut host[..self.drain]);
                self.rig.host.extend_from_slice(&host[..h]);
                if n == 0 && used == 0 && h == 0 {
                    break;
                }
            }
        }

        /// The server's replies to what the client has sent since last time.
        fn serve(&mut self) {
            if !self.connected {
                return;
            }
            loop {
                let wire = &self.rig.server[self.seen..];
                if self.in_data {
                    let Some(end) = find(wire, b"\r\n.\r\n") else {
                        return;
                    };
                    self.seen += end + 5;
                    self.in_data = false;
                    self.inbox.extend_from_slice(b"250 queued\r\n");
                    continue;
                }
                let Some(end) = find(wire, b"\r\n") else {
                    return;
                };
                let reply: &[u8] = match wire.get(..4).unwrap_or(b"") {
                    b"EHLO" => b"250-mx\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n",
                    b"AUTH" => b"235 ok\r\n",
                    b"DATA" => b"354 go\r\n",
                    b"QUIT" => b"221 bye\r\n",
                    _ => b"250 ok\r\n",
                };
                self.in_data = &wire[..4] == b"DATA";
                self.seen += end + 2;
                self.inbox.extend_from_slice(reply);
            }
        }

        /// Host bytes at the current time, in the test's pieces.
        fn send(&mut self, bytes: &[u8]) {
            let mut rest = bytes;
            while !rest.is_empty() {
                let size = self.splits[self.next_split % self.splits.len()].min(rest.len());
                self.next_split += 1;
                let mut piece = &rest[..size];
                rest = &rest[size..];
                while !piece.is_empty() {
                    let mut out = [0u8; 256];
                    let (r, w) = self.rig.s.handle_host(self.rig.now, piece, &mut out).pair();
                    if self.connected {
                        self.rig.server.extend_from_slice(&out[..w]);
                    }
                    piece = &piece[r..];
                    self.rig.answer_pending();
                    self.turn();
                }
            }
        }

        fn line(&mut self, line: &[u8]) {
            if core::mem::take(&mut self.lf_owed) {
                self.send(b"\n");
            }
            self.lines += 1;
            self.send(line);
            match self.eol {
                Eol::Cr => self.send(b"\r"),
                Eol::CrLf => self.send(b"\r\n"),
                Eol::CrLfLate => {
                    self.send(b"\r");
                    self.lf_owed = true;
                }
            }
        }

        /// Lets time pass in steps until `done` holds of the host stream
        /// (or 10 minutes pass); then a late LF goes.
        fn wait_for(&mut self, done: impl Fn(&[u8]) -> bool) {
            for _ in 0..1200 {
                if done(&self.rig.host) {
                    break;
                }
                self.rig.now += 500;
                self.rig.s.handle_timeout(self.rig.now);
                self.turn();
            }
            if matches!(self.eol, Eol::CrLfLate) && core::mem::take(&mut self.lf_owed) {
                self.rig.now += 500;
                self.send(b"\n");
            }
        }

        fn finals(&self) -> usize {
            count_finals(&self.rig.host)
        }

        /// Streams a payload and ends data mode with `+++` and its guards.
        fn payload(&mut self, bytes: &[u8]) {
            for chunk in bytes.chunks(97) {
                self.rig.now += 5;
                self.send(chunk);
            }
            self.rig.now += 1100;
            self.rig.s.handle_timeout(self.rig.now);
            self.turn();
            self.send(b"+++");
        }

        /// One command line, answered before the host goes on.
        fn command(&mut self, line: &[u8]) {
            let finals = self.finals();
            self.line(line);
            self.wait_for(move |host| count_finals(host) > finals);
        }

        /// A data command: the payload goes only after the prompt.
        fn data_command(&mut self, line: &[u8], payload: &[u8]) {
            let finals = self.finals();
            self.line(line);
            let prompted = |host: &[u8]| {
                count_finals(host) > finals || items(host).last() == Some(&Item::Prompt)
            };
            self.wait_for(prompted);
            if self.finals() > finals {
                return;
            }
            self.payload(payload);
            self.wait_for(move |host| count_finals(host) > finals);
        }
    }

    fn count_finals(host: &[u8]) -> usize {
        items(host).iter().filter(|i| i.is_final()).count()
    }

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    /// One V.250 item of the host stream (echo off).
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Item {
        Prompt,
        Line(String),
    }

    impl Item {
        fn is_final(&self) -> bool {
            match self {
                Item::Prompt => false,
                Item::Line(l) => l == "OK" || l == "ERROR" || l.starts_with("+CME ERROR: "),
            }
        }
    }

    /// The host stream as V.250 items; panics on anything else, a torn
    /// or unframed answer among them.
    fn items(host: &[u8]) -> Vec<Item> {
        let mut items = Vec::new();
        let mut rest = host;
        while !rest.is_empty() {
            assert!(
                rest.starts_with(b"\r\n"),
                "unframed: {:?}",
                String::from_utf8_lossy(rest)
            );
            rest = &rest[2..];
            if let Some(after) = rest.strip_prefix(b"> ") {
                items.push(Item::Prompt);
                rest = after;
                continue;
            }
            let end = find(rest, b"\r\n").expect("a line without its end");
            let line = String::from_utf8_lossy(&rest[..end]).into_owned();
            assert!(!line.contains('\r') && !line.contains('\n'));
            items.push(Item::Line(line));
            rest = &rest[end + 2..];
        }
        items
    }

    fn eol() -> impl proptest::strategy::Strategy<Value = Eol> {
        proptest::prop_oneof![
            proptest::strategy::Just(Eol::Cr),
            proptest::strategy::Just(Eol::CrLf),
            proptest::strategy::Just(Eol::CrLfLate),
        ]
    }

    /// Bytes with `+`, CR and LF among them, perhaps starting with LF;
    /// `text` keeps them valid UTF-8 (the body's charset).
    fn payload(text: bool) -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let bytes = if text {
            proptest::collection::vec(
                prop_oneof![Just('+'), Just('\n'), Just('\r'), any::<char>()],
                0..300,
            )
            .prop_map(|chars| chars.into_iter().collect::<String>().into_bytes())
            .boxed()
        } else {
            proptest::collection::vec(
                prop_oneof![Just(b'+'), Just(b'\n'), Just(b'\r'), any::<u8>()],
                0..600,
            )
            .boxed()
        };
        (any::<bool>(), bytes).prop_map(|(lf, mut bytes)| {
            if lf {
                bytes.insert(0, b'\n');
            }
            bytes
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// The spec case played by a V.250 host through the serial entry
        /// point alone, with its bytes split anyhow, its answers drained in
        /// pieces, any line ending, and the connection dropped at any turn
        /// or not at all: the host stream is V.250 items (none torn), every
        /// command line gets exactly one final result, an end-of-data only
        /// follows a closing boundary, and a delivered mail's parts are the
        /// payload the host sent, byte for byte, counted as sent.
        #[test]
        fn a_v250_host_gets_one_final_result_per_line_and_its_payload_delivered(
            eol in eol(),
            splits in proptest::collection::vec(1usize..40, 1..8),
            drain in 1usize..64,
            drop_at in proptest::option::weighted(0.5, 1u32..400),
            body in payload(true),
            blob in payload(false),
        ) {
            let mut d = Drive {
                rig: Rig::new(),
                eol,
                splits,
                next_split: 0,
                drain,
                inbox: Vec::new(),
                seen: 0,
                in_data: false,
                connected: false,
                turns: 0,
                drop_at,
                lines: 0,
                lf_owed: false,
            };
            d.command(b"AT+GTSMTPLAND=25,\"mail.fibocom.com\",3");
            d.command(b"AT+GTSMTPID=\"wangww@fibocom.com\",\"ght64621178\"");
            d.command(b"AT+GTSMTPDST=1,1,\"xiangj@fibocom.com\"");
            d.command(b"AT+GTSMTPHEAD=1,\"hi\"");
            d.command(b"AT+GTSMTPSEND=300");
            d.wait_for(|host| find(host, b"+GTSMTPSEND: ").is_some());
            d.data_command(b"AT+GTSMTPDATA=300", &body);
            d.data_command(b"AT+GTSMTPFILE=1,\"a.bin\"", &blob);
            d.command(b"AT+GTSMTPFILE?");
            d.command(b"AT+GTSMTPEND");
            d.wait_for(|host| {
                let items = items(host);
                let urcs = items.iter().filter(|i| matches!(i, Item::Line(l) if l.starts_with("+GTSMTPSEND: "))).count();
                urcs >= 2 || items.iter().any(|i| matches!(i, Item::Line(l) if l.starts_with("+GTSMTPSEND: ") && l != "+GTSMTPSEND: 2"))
            });
            d.wait_for(|_| false);

            let items = items(&d.rig.host);
            proptest::prop_assert_eq!(d.finals(), d.lines, "{:?}", items);
            let wire = &d.rig.server;
            let ends: Vec<usize> = (0..wire.len().saturating_sub(4))
                .filter(|&i| &wire[i..i + 5] == b"\r\n.\r\n")
                .collect();
            proptest::prop_assert!(ends.len() <= 1);
            for &end in &ends {
                proptest::prop_assert!(wire[..end].ends_with(b"--"));
            }
            let line = |s: String| Item::Line(s);
            if items.contains(&line("+GTSMTPSEND: 1".into())) {
                proptest::prop_assert_eq!(
                    d.rig.parts(),
                    std::vec![crate::line_breaks::canonical_form(&body), blob.clone()]
                );
                let data = std::format!("+GTSMTPDATA: {}", body.len());
                let file = std::format!("+GTSMTPFILE: {}", blob.len());
                proptest::prop_assert!(items.contains(&line(data)));
                proptest::prop_assert!(items.contains(&line(file)));
                proptest::prop_assert!(items.contains(&line("+GTSMTPFILE: \"a.bin\"".into())));
            } else {
                proptest::prop_assert!(drop_at.is_some(), "{:?}", items);
            }
        }
    }

    #[test]
    fn the_ehlo_name_is_the_callers_or_an_address_literal_of_the_local_end() {
        let cases: [(Option<&[u8]>, Option<IpAddr>, &str); 4] = [
            (
                None,
                Some(IpAddr::from([10, 1, 2, 3])),
                "EHLO [10.1.2.3]\r\n",
            ),
            (
                None,
                Some(IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 7])),
                "EHLO [IPv6:2001:db8::7]\r\n",
            ),
            (None, None, "EHLO [127.0.0.1]\r\n"),
            (
                Some(b"modem.fibocom.com"),
                Some(IpAddr::from([10, 1, 2, 3])),
                "EHLO modem.fibocom.com\r\n",
            ),
        ];
        for (name, local, ehlo) in cases {
            let mut rig = Rig::new();
            if let Some(name) = name {
                rig.s.set_helo_name(name).unwrap();
            }
            configure(&mut rig);
            rig.at(b"AT+GTSMTPSEND=300");
            rig.poll_connect().unwrap();
            rig.s.handle_connected(0, local);
            rig.reply(b"220 mx\r\n");
            assert!(rig.server.ends_with(ehlo.as_bytes()), "{ehlo}");
        }
    }

    #[test]
    fn a_message_past_the_servers_size_ends_at_once_with_552() {
        let mut rig = Rig::new();
        configure(&mut rig);
        send_and_connect(&mut rig);
        rig.reply(b"250-mx\r\n250-PIPELINING\r\n250-SIZE 4000\r\n250 AUTH PLAIN\r\n");
        rig.reply(b"235 ok\r\n");
        rig.reply(b"250 ok\r\n250 ok\r\n354 go\r\n");
        let head = rig.server.len()
            - rig
                .server
                .windows(6)
                .position(|w| w == b"DATA\r\n")
                .unwrap()
            - 6;
        assert_eq!(rig.at(b"AT+GTSMTPFILE=1,\"big.bin\""), "\r\n> ");
        let mut urc_at = None;
        for i in 0..100 {
            rig.now += 5;
            rig.serial(&[0x55; 100]);
            if urc_at.is_none() && rig.pump().contains("+GTSMTPSEND: 552") {
                urc_at = Some(i);
            }
        }
        let urc_at = urc_at.expect("552 while the host streams");
        assert!(urc_at < 40, "at once: after {urc_at} of 100 pieces");
        assert!(rig.s.in_data_mode(), "the rest of the payload is dropped");
        let message = rig.server.len()
            - (rig
                .server
                .windows(6)
                .position(|w| w == b"DATA\r\n")
                .unwrap()
                + 6);
        assert!(
            message <= 4000 && message > head,
            "{message} message bytes sent"
        );
        assert!(!rig.server.ends_with(b".\r\n"));
        assert_eq!(
            rig.poll_failure().map(|f| f.failure),
            Some(Failure::TooLarge { limit: 4000 })
        );
        rig.now += 1500;
        rig.serial(b"+++");
        assert_eq!(rig.wait(1000), "\r\nERROR\r\n");
    }

    #[test]
    fn the_time_limit_never_fails_a_mail_whose_end_of_data_is_sent() {
        let mut rig = ready(b"\r");
        rig.at(b"AT+GTSMTPEND");
        assert!(rig.server.ends_with(b".\r\n"));
        assert_eq!(
            rig.wait(300_000),
            "",
            "SEND's <time> is over, the verdict is not"
        );
        assert_eq!(rig.s.state(), SessionState::Finishing);
        assert_eq!(rig.reply(b"250 queued\r\n"), "\r\n+GTSMTPSEND: 1\r\n");
        // Without a verdict, RFC 5321's 10 minutes end it.
        let mut rig = ready(b"\r");
        rig.at(b"AT+GTSMTPEND");
        assert_eq!(rig.wait(10 * 60_000), "\r\n+GTSMTPSEND: 0\r\n");
        let failure = rig.poll_failure().unwrap();
        assert_eq!(
            failure.failure,
            Failure::Smtp(Fault::TimedOut(Step::EndOfData))
        );
    }

    #[test]
    fn a_plain_mail_to_port_465_says_what_is_wrong() {
        let mut rig = Rig::new();
        for line in [
            &b"AT+GTSMTPLAND=465,\"mail.fibocom.com\""[..],
            b"AT+GTSMTPID=\"wangww@fibocom.com\",\"pw\"",
            b"AT+GTSMTPDST=1,1,\"xiangj@fibocom.com\"",
            b"AT+GTSMTPSEND=100",
        ] {
            rig.at(line);
        }
        rig.poll_connect().unwrap();
        rig.s.handle_connected(0, None);
        assert_eq!(rig.wait(100_000), "\r\n+GTSMTPSEND: 0\r\n");
        let why = std::format!("{}", rig.poll_failure().unwrap());
        assert_eq!(
            why,
            "the mail's time limit ran out waiting for the greeting (port 465 is SMTPS, \
             TLS from the first byte: AT+GTSMTPLAND=465,\"<server>\",1)"
        );
        assert_eq!(rig.poll_failure(), None, "said once");
    }

    #[test]
    fn the_longest_answer_fits_its_room() {
        let mut rig = Rig::new();
        for i in 0..crate::message::MAX_RECIPIENTS {
            let mut line = b"AT+GTSMTPDST=1,3,\"".to_vec();
            let local = std::format!("{i:02}");
            line.extend_from_slice(local.as_bytes());
            line.resize(18 + 80 - 12, b'x');
            line.extend_from_slice(b"@fibocom.com\"");
            assert_eq!(rig.at(&line), "\r\nOK\r\n");
        }
        let answer = rig.at(b"AT+GTSMTPDST?");
        std::println!("longest answer: {} bytes", answer.len());
        assert!(answer.ends_with("\r\nOK\r\n"));
        assert!(answer.len() <= ANSWER_ROOM);
        assert_eq!(answer.len(), 20 * 100 + 6);
    }

    /// Built in place over dirty memory, a session is the one `new` makes
    /// (compared through `Debug`, which shows every field), and it works.
    #[test]
    #[allow(unsafe_code)]
    fn init_in_makes_what_new_makes() {
        let mut slot = MaybeUninit::<Session>::uninit();
        // SAFETY: bytes written into a `MaybeUninit`, before any read.
        unsafe {
            slot.as_mut_ptr()
                .cast::<u8>()
                .write_bytes(0xA5, core::mem::size_of::<Session>())
        };
        let session = Session::init_in(&mut slot);
        assert_eq!(
            std::format!("{session:?}"),
            std::format!("{:?}", Session::new())
        );
        let mut out = [0u8; 64];
        assert_eq!(session.handle_host(0, b"AT\r", &mut out).pair(), (3, 0));
        let mut said = [0u8; 64];
        let n = session.poll_host(&mut said);
        assert_eq!(&said[..n], b"AT\r\r\nOK\r\n");
    }

    #[test]
    fn the_session_is_one_fixed_size_value() {
        std::println!("size_of::<Session>() = {}", core::mem::size_of::<Session>());
        assert!(core::mem::size_of::<Session>() <= 8192);
    }
}
