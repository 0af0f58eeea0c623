//! The whole G510 engine: every host byte in, SMTP bytes to and from the
//! server, answers and URCs back, on the caller's clock.
//!
//! The firmware's loop: feed every UART byte to `atmail_session_handle_host`
//! (command lines and data mode alike; it edits, echoes and executes lines
//! itself), act on every `atmail_session_poll_event` (a command that is
//! not the engine's, a mail's identity, a connection to open, TLS to
//! start, a connection to close, a failure to log), send what
//! `atmail_session_poll_host` gives to the UART, pump
//! `atmail_session_poll_server` / `atmail_session_handle_server` over the
//! connection, and call `atmail_session_handle_timeout` at
//! `atmail_session_next_deadline`.

use crate::atmail_status;
use crate::boundary::init_in_place;
#[cfg(feature = "std")]
use crate::boundary::{free_boxed, new_boxed};
use crate::framer::ATMAIL_NO_DEADLINE;
use crate::header::put_whole;
use atmail_core::config::Transfer;
use atmail_core::event::{Event, FAILURE_MAX};
use atmail_core::header::Token;
use atmail_core::message::MessageId;
use atmail_core::session::{Session, SessionState, Stopped};
use core::ffi::c_void;
use core::mem::{align_of, size_of, MaybeUninit};
use core::net::IpAddr;

/// The longest server name an `ATMAIL_EVENT_KIND_CONNECT` carries.
pub const ATMAIL_HOST_MAX: usize = 255;

/// The longest command line an `ATMAIL_EVENT_KIND_COMMAND` carries.
pub const ATMAIL_LINE_MAX: usize = 300;
const _: () = assert!(ATMAIL_LINE_MAX == atmail_core::line::LINE_MAX);

/// The longest reason an `ATMAIL_EVENT_KIND_MAIL_FAILED` carries.
pub const ATMAIL_FAILURE_MAX: usize = 200;
const _: () = assert!(ATMAIL_FAILURE_MAX == FAILURE_MAX);

/// A buffer of this many bytes holds any event's text.
pub const ATMAIL_EVENT_MAX: usize = 300;
const _: () = assert!(
    ATMAIL_EVENT_MAX >= ATMAIL_LINE_MAX
        && ATMAIL_EVENT_MAX >= ATMAIL_HOST_MAX
        && ATMAIL_EVENT_MAX >= ATMAIL_FAILURE_MAX
);

/// One G510 engine (opaque): configuration, the mail in progress and every
/// buffer it needs, in one fixed-size object.
pub struct atmail_session {
    inner: Session,
    /// The latest `now_ms` the caller gave: the C calls that report a
    /// close or a TLS failure take no clock (ABI 4), the Rust ones do.
    now_ms: u64,
}

impl atmail_session {
    #[cfg(feature = "std")]
    fn new() -> Self {
        atmail_session {
            inner: Session::new(),
            now_ms: 0,
        }
    }

    /// The session, with `now_ms` kept as the latest time the caller gave.
    fn at(&mut self, now_ms: u64) -> &mut Session {
        self.now_ms = self.now_ms.max(now_ms);
        &mut self.inner
    }

    /// In place, through [`Session::init_in`]: a firmware's stack could
    /// not hold the session as a value on its way into `slot`.
    fn init_in(slot: &mut MaybeUninit<Self>) -> &mut Self {
        let p = slot.as_mut_ptr();
        // SAFETY: `p` comes from a `&mut`, so each field's place is
        // valid for writes and aligned; once both are initialised, so is
        // the whole.
        unsafe {
            Session::init_in(&mut *core::ptr::addr_of_mut!((*p).inner).cast());
            core::ptr::addr_of_mut!((*p).now_ms).write(0);
            slot.assume_init_mut()
        }
    }
}

/// Bytes of memory a session needs for `atmail_session_init`.
#[no_mangle]
pub extern "C" fn atmail_session_size() -> usize {
    size_of::<atmail_session>()
}

/// Alignment a session needs for `atmail_session_init`.
#[no_mangle]
pub extern "C" fn atmail_session_align() -> usize {
    align_of::<atmail_session>()
}

/// Starts an idle session in caller memory (`atmail_session_size()` bytes
/// aligned to `atmail_session_align()`; else `INSUFFICIENT_SIZE` or
/// `MISALIGNED`). `*out` points into `mem`, which the caller owns: never
/// pass it to `atmail_session_free`; end it with `atmail_session_deinit`,
/// which wipes the password, the token and every other byte, before the
/// memory is used for anything else.
///
/// # Undefined behavior
/// `mem` must be NULL or point at `mem_len` writable bytes that outlive the
/// session; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_init(
    mem: *mut c_void,
    mem_len: usize,
    out: *mut *mut atmail_session,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        // SAFETY: this function's own contract.
        unsafe { init_in_place(mem, mem_len, atmail_session::init_in, out) }
    })
}

/// Starts an idle session on the heap; free it with `atmail_session_free`.
///
/// Host builds only (the `std` feature): a firmware build has no heap.
///
/// # Undefined behavior
/// `out` must be NULL or writable.
#[cfg(feature = "std")]
#[no_mangle]
pub unsafe extern "C" fn atmail_session_new(out: *mut *mut atmail_session) -> atmail_status {
    boundary!(atmail_status::Panic, {
        new_boxed(atmail_session::new(), out)
    })
}

/// Frees a session from `atmail_session_new`, its memory wiped first (as
/// `atmail_session_deinit` does); NULL is a no-op.
///
/// Host builds only (the `std` feature): a firmware build has no heap.
///
/// # Undefined behavior
/// `session` must be NULL or come from `atmail_session_new`, and is not
/// used afterwards.
#[cfg(feature = "std")]
#[no_mangle]
pub unsafe extern "C" fn atmail_session_free(session: *mut atmail_session) {
    boundary!((), {
        if !session.is_null() {
            // SAFETY: this function's own contract: a live session from
            // `_new`, dropped and wiped here, then its heap block freed as
            // the `MaybeUninit` it now is (same layout).
            unsafe {
                end_in_place(session);
                free_boxed(session.cast::<MaybeUninit<atmail_session>>());
            }
        }
    })
}

/// Ends a session made with `atmail_session_init`: the token storage
/// given to it is wiped (the storage stays the caller's), and then every
/// byte of the session's memory, the password and the lines that carried
/// it among them, is overwritten with zeros in a way the compiler cannot
/// remove. The memory is the caller's again; NULL is a no-op.
///
/// # Undefined behavior
/// `session` must be NULL or come from `atmail_session_init`, and is not
/// used afterwards (another `_init` may reuse its memory).
#[no_mangle]
pub unsafe extern "C" fn atmail_session_deinit(session: *mut atmail_session) {
    boundary!((), {
        if !session.is_null() {
            // SAFETY: this function's own contract.
            unsafe { end_in_place(session) }
        }
    })
}

/// Drops the session where it is (its secrets wipe themselves), then
/// zeros all its bytes.
///
/// # Safety
/// `session` points at a live session that is not used afterwards.
unsafe fn end_in_place(session: *mut atmail_session) {
    // SAFETY: the caller's contract; after the drop the place holds no
    // value, and its bytes are plain memory of `size_of` the session.
    unsafe {
        core::ptr::drop_in_place(session);
        let bytes =
            core::slice::from_raw_parts_mut(session.cast::<u8>(), size_of::<atmail_session>());
        zeroize::Zeroize::zeroize(bytes);
    }
}

/// `+CME ERROR: <text>` instead of `ERROR` (`AT+CMEE=2`); off at start.
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_set_verbose_errors(
    session: *mut atmail_session,
    on: bool,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        try_mut!(session).inner.set_verbose_errors(on);
        atmail_status::Ok
    })
}

/// The `+++` guard time in ms (default 1000).
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_set_guard_ms(
    session: *mut atmail_session,
    guard_ms: u32,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        try_mut!(session).inner.set_guard_ms(guard_ms);
        atmail_status::Ok
    })
}

/// Refuse servers that do not offer STARTTLS (default: use it when offered).
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_set_require_tls(
    session: *mut atmail_session,
    on: bool,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        try_mut!(session).inner.set_require_tls(on);
        atmail_status::Ok
    })
}

/// The EHLO name (`name[0..name_len]`): this host's fully qualified name
/// or an address literal such as `[10.0.0.1]`. Without one, each
/// connection uses an address literal of its local end (the address given
/// to `atmail_session_handle_connected`; `[127.0.0.1]` when none was
/// given). Reads the bytes, keeps a copy.
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`; `name` readable for `name_len`.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_set_helo_name(
    session: *mut atmail_session,
    name: *const u8,
    name_len: usize,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let session = try_mut!(session);
        let name = try_slice!(name, name_len);
        match session.inner.set_helo_name(name) {
            Ok(()) => atmail_status::Ok,
            Err(_) => atmail_status::InvalidParameter,
        }
    })
}

/// Memory for the OAuth 2.0 token of `AT+GTSMTPTOKEN`: `cap` bytes at
/// `mem`, of which up to 8192 are used (a token is as long as the
/// storage at most; Microsoft's are 1.5-3 KB). Without storage,
/// `AT+GTSMTPTOKEN` answers `+CME ERROR: no token storage (the firmware
/// gives none)`. `mem` NULL (with `cap` 0) takes the storage back. Every
/// time a token goes (`AT+GTSMTPCLR`, `AT+GTSMTPTOKEN=0`, a failed read,
/// storage taken back or replaced, `atmail_session_free`) the session
/// writes zeros over it; before reusing the memory of an `_init` session,
/// call this with NULL so the token is wiped.
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`; `mem` NULL, or valid for
/// reads and writes of `cap` bytes, touched by nothing else, until the
/// session is freed (or its memory reused) or this is called again.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_set_token_storage(
    session: *mut atmail_session,
    mem: *mut u8,
    cap: usize,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let session = try_mut!(session);
        // SAFETY: this function's contract is `caller_storage`'s.
        match unsafe { caller_storage(mem, cap) } {
            Err(status) => return status,
            Ok(Some(mem)) => drop(session.inner.set_token_storage(mem)),
            Ok(None) => drop(session.inner.take_token_storage()),
        }
        atmail_status::Ok
    })
}

/// Storage a caller gives the session (the token's, the chunks'):
/// `Some` for `cap` bytes at `mem`, `None` for NULL with `cap` 0 (take it
/// back), `NullParameter` for NULL with a size.
///
/// # Safety
/// `mem` NULL, or valid for reads and writes of `cap` bytes, touched by
/// nothing else for as long as the session may use it: what the
/// `'static` stands for here; the session gives it up (wiped) when it is
/// freed or the storage is replaced.
unsafe fn caller_storage(
    mem: *mut u8,
    cap: usize,
) -> Result<Option<&'static mut [u8]>, atmail_status> {
    match (mem.is_null(), cap) {
        (true, 0) => Ok(None),
        (true, _) => Err(atmail_status::NullParameter),
        // SAFETY: the caller's contract, above.
        (false, _) => Ok(Some(unsafe { core::slice::from_raw_parts_mut(mem, cap) })),
    }
}

// The C codes are the core's `AT+GTSMTPBDAT` codes.
const _: () = assert!(
    crate::atmail_transfer::Off as u32 == Transfer::Off.code() as u32
        && crate::atmail_transfer::Auto as u32 == Transfer::Auto.code() as u32
        && crate::atmail_transfer::Force as u32 == Transfer::Force.code() as u32
);

/// How mails may cross the wire when the host has not said
/// (`AT+GTSMTPBDAT`): an `atmail_transfer` code, `ATMAIL_TRANSFER_AUTO`
/// until set. It is the mode `AT+GTSMTPCLR` restores, and the current mode
/// too unless the host has set one since the last `AT+GTSMTPCLR`. `BDAT`
/// needs chunk storage (`atmail_session_set_chunk_storage`); without it
/// every mode sends `DATA`. Other codes: `ATMAIL_STATUS_INVALID_PARAMETER`,
/// nothing changed.
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_set_transfer(
    session: *mut atmail_session,
    mode: u32,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let session = try_mut!(session);
        let Some(mode) = u8::try_from(mode).ok().and_then(Transfer::from_code) else {
            return atmail_status::InvalidParameter;
        };
        session.inner.set_transfer(mode);
        atmail_status::Ok
    })
}

/// Memory for `BDAT` chunks: `cap` bytes at `mem`, the largest chunk the
/// session sends (the CLI and Python give 16 KiB; the whole header block
/// must fit in it, or the mail goes by `DATA`). Without storage every
/// `atmail_transfer` mode sends `DATA`. `mem` NULL (with `cap` 0) takes the
/// storage back; storage taken back or replaced, and the session's at
/// `atmail_session_free`, is wiped (it held the message).
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`; `mem` NULL, or valid for
/// reads and writes of `cap` bytes, touched by nothing else, until the
/// session is freed (or its memory reused) or this is called again.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_set_chunk_storage(
    session: *mut atmail_session,
    mem: *mut u8,
    cap: usize,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let session = try_mut!(session);
        // SAFETY: this function's contract is `caller_storage`'s.
        match unsafe { caller_storage(mem, cap) } {
            Err(status) => return status,
            Ok(Some(mem)) => drop(session.inner.set_chunk_storage(mem)),
            Ok(None) => drop(session.inner.take_chunk_storage()),
        }
        atmail_status::Ok
    })
}

/// The `Date:` (RFC 5322 date) and `Message-ID:` (`<id@domain>`) of the
/// next mail: the firmware's clock and entropy. Each `AT+GTSMTPSEND`
/// takes the identity set before it, and waits for one
/// (`ATMAIL_EVENT_KIND_IDENTITY`) when none is set; copies both.
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`; `date` and `message_id` readable
/// for their lengths.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_set_identity(
    session: *mut atmail_session,
    date: *const u8,
    date_len: usize,
    message_id: *const u8,
    message_id_len: usize,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let session = try_mut!(session);
        let date = try_slice!(date, date_len);
        let message_id = try_slice!(message_id, message_id_len);
        let date = match Token::new(date, true) {
            Ok(date) => date,
            Err(e) => return crate::header::status_of(e),
        };
        let Ok(id) = MessageId::new(message_id) else {
            return atmail_status::InvalidParameter;
        };
        session.inner.set_identity(date, id);
        atmail_status::Ok
    })
}

/// The firmware cannot give the waiting `AT+GTSMTPSEND` a Date and
/// Message-ID (`ATMAIL_EVENT_KIND_IDENTITY`): SEND answers `+CME ERROR: no
/// Date or Message-ID for the mail` (`ERROR` under `AT+CMEE=0`) and
/// `+GTSMTPSEND: 0`, and the session takes host bytes again. Nothing
/// happens when no SEND waits.
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_refuse_identity(
    session: *mut atmail_session,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        try_mut!(session).inner.refuse_identity();
        atmail_status::Ok
    })
}

/// Whether the caller's network is up (default: up); while it is down,
/// `AT+GTSMTPSEND` is refused ("network not up (AT+MIPCALL)").
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_set_network_up(
    session: *mut atmail_session,
    up: bool,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        try_mut!(session).inner.set_network_up(up);
        atmail_status::Ok
    })
}

/// Why `atmail_session_handle_host` stopped taking host bytes.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum atmail_stopped {
    /// All of the input was taken.
    InputEmpty = 0,
    /// `server_out` is full: send it, then offer the rest with room.
    ServerFull = 1,
    /// The host's answers fill the queue: drain `atmail_session_poll_host`,
    /// then offer the rest.
    HostFull = 2,
    /// A line waits for the caller: act on `atmail_session_poll_event`
    /// (`ATMAIL_EVENT_KIND_COMMAND`, `ATMAIL_EVENT_KIND_IDENTITY`), then offer the rest.
    Caller = 3,
}

/// Host bytes `input[0..input_len]` that arrived at `now_ms`, every one of
/// them, in command mode and in data mode alike: command lines are edited,
/// echoed and executed as V.250 says, data-mode payload is encoded into
/// `server_out[0..server_out_len]` with its part's last line. Bytes for
/// the server leave by this call and by `atmail_session_poll_server`:
/// send each call's output after the one before. Sets `*read`, `*written`
/// and `*stopped` (why the rest was not taken); offer unread input again
/// once that is dealt with, and hold the UART meanwhile. A `server_out` of
/// 128 bytes or more always makes progress in data mode when the mail can
/// take data; in command mode `server_out` may be empty.
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`; `input` readable and `server_out`
/// writable for their lengths, not overlapping; `read`, `written`,
/// `stopped` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_handle_host(
    session: *mut atmail_session,
    now_ms: u64,
    input: *const u8,
    input_len: usize,
    read: *mut usize,
    server_out: *mut u8,
    server_out_len: usize,
    written: *mut usize,
    stopped: *mut atmail_stopped,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let session = try_mut!(session);
        let input = try_slice!(input, input_len);
        let server_out = try_slice_mut!(server_out, server_out_len);
        let (read, written, stopped) = (try_out!(read), try_out!(written), try_out!(stopped));
        let progress = session.at(now_ms).handle_host(now_ms, input, server_out);
        read.set(progress.read);
        written.set(progress.written);
        stopped.set(match progress.stopped {
            Stopped::InputEmpty => atmail_stopped::InputEmpty,
            Stopped::ServerFull => atmail_stopped::ServerFull,
            Stopped::HostFull => atmail_stopped::HostFull,
            Stopped::Caller => atmail_stopped::Caller,
        });
        atmail_status::Ok
    })
}

/// What an `atmail_event` asks of the caller.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum atmail_event_kind {
    /// Nothing to do now.
    None = 0,
    /// A command line that is not the engine's (`AT+MIPCALL=...`,
    /// `AT&K3`), its text in the buffer: answer it with
    /// `atmail_session_answer_command`.
    Command = 1,
    /// `AT+GTSMTPSEND` needs the mail's Date and Message-ID: call
    /// `atmail_session_set_identity` or `atmail_session_refuse_identity`.
    Identity = 2,
    /// Open a connection to the host name in the buffer, `port`, with TLS
    /// from the first byte when `implicit_tls`; then call
    /// `atmail_session_handle_connected` (for SMTPS: once TLS is up) or
    /// `atmail_session_handle_closed`.
    Connect = 3,
    /// Start TLS on the connection now (STARTTLS); then call
    /// `atmail_session_handle_tls_established` or
    /// `atmail_session_handle_tls_failed`. Never fall back to plaintext.
    StartTls = 4,
    /// Close the connection now: at once for one that cannot go on, after
    /// the QUIT's reply (or 5 s) for one that ended politely.
    Close = 5,
    /// The last mail failed (every failed mail gives one): its URC code in
    /// `code` (0 for a connection that failed without a reply, or a mail
    /// the host's data ended), the reason with the server's words, as
    /// text, in the buffer (for a log line). Never a secret.
    MailFailed = 6,
}

/// One event for the caller; see `atmail_session_poll_event`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct atmail_event {
    /// What to do.
    pub kind: atmail_event_kind,
    /// Bytes of text in the caller's buffer (the command line, the host
    /// name, the reason; no NUL), or needed there on `INSUFFICIENT_SIZE`.
    pub len: usize,
    /// `ATMAIL_EVENT_KIND_CONNECT`: the port.
    pub port: u16,
    /// `ATMAIL_EVENT_KIND_CONNECT`: TLS from the first byte (SMTPS).
    pub implicit_tls: bool,
    /// `ATMAIL_EVENT_KIND_MAIL_FAILED`: the SMTP code (`+GTSMTPSEND`), 0
    /// for none.
    pub code: u16,
}

/// The next thing the caller must do, once each and in the order it must
/// be done (a close before the next connection): `event->kind` is
/// `ATMAIL_EVENT_KIND_NONE` when there is nothing. Call it after every other
/// call until it says none. The event's text goes into `buf[0..buf_cap]`
/// (no NUL); a `buf_cap` of `ATMAIL_EVENT_MAX` always fits, and a smaller
/// one that does not gets `INSUFFICIENT_SIZE` with `event->kind` and the
/// length needed in `event->len`, and the event stays for the next call.
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`; `buf` writable for `buf_cap`;
/// `event` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_poll_event(
    session: *mut atmail_session,
    event: *mut atmail_event,
    buf: *mut u8,
    buf_cap: usize,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let session = try_mut!(session);
        let (event, buf) = (try_out!(event), try_slice_mut!(buf, buf_cap));
        let mut out = atmail_event {
            kind: atmail_event_kind::None,
            len: 0,
            port: 0,
            implicit_tls: false,
            code: 0,
        };
        let status = match session.inner.peek_event() {
            None => atmail_status::Ok,
            Some(next) => describe(next, &mut out, buf),
        };
        if status == atmail_status::Ok && out.kind != atmail_event_kind::None {
            let _ = session.inner.poll_event();
        }
        event.set(out);
        status
    })
}

/// `event` as the C struct, its text into `buf`.
fn describe(event: Event<'_>, out: &mut atmail_event, buf: &mut [u8]) -> atmail_status {
    let text = match event {
        Event::Command(line) => {
            out.kind = atmail_event_kind::Command;
            line
        }
        Event::Identity => {
            out.kind = atmail_event_kind::Identity;
            b""
        }
        Event::Connect(connect) => {
            out.kind = atmail_event_kind::Connect;
            out.port = connect.port;
            out.implicit_tls = connect.implicit_tls;
            connect.host
        }
        Event::StartTls => {
            out.kind = atmail_event_kind::StartTls;
            b""
        }
        Event::Close => {
            out.kind = atmail_event_kind::Close;
            b""
        }
        Event::MailFailed(failure) => {
            out.kind = atmail_event_kind::MailFailed;
            out.code = failure.failure.code();
            let (len, status) = put_whole(buf, |text| failure.write_to(text));
            out.len = len;
            return status;
        }
    };
    let (len, status) = put_whole(buf, |dst| dst.put(text));
    out.len = len;
    status
}

/// The caller's whole answer (`answer[0..answer_len]`, final result code
/// included, e.g. `"\r\nOK\r\n"`) to `ATMAIL_EVENT_KIND_COMMAND`; it goes to the host after everything said before it.
/// `WRONG_STATE` when no command waits, `TOO_LONG` past 2048 bytes.
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`; `answer` readable for `answer_len`.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_answer_command(
    session: *mut atmail_session,
    answer: *const u8,
    answer_len: usize,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let session = try_mut!(session);
        let answer = try_slice!(answer, answer_len);
        match session.inner.answer_command(answer) {
            Ok(()) => atmail_status::Ok,
            Err(atmail_core::session::AnswerError::TooLong) => atmail_status::TooLong,
            Err(_) => atmail_status::WrongState,
        }
    })
}

/// Where the session is (`atmail_state`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum atmail_state {
    /// No mail: configuration commands are taken.
    Idle = 0,
    /// After `AT+GTSMTPSEND`: connecting, the SMTP handshake, the headers.
    Sending = 1,
    /// `+GTSMTPSEND: 2` was said: waiting for DATA, FILE or END.
    Ready = 2,
    /// Host bytes are payload.
    DataMode = 3,
    /// The message's last bytes and the server's verdict.
    Finishing = 4,
    /// A failed mail's payload is read and dropped until data mode ends.
    Discarding = 5,
    /// Host bytes are the token of `AT+GTSMTPTOKEN`.
    TokenInput = 6,
}

/// Where the session is; `ATMAIL_STATE_IDLE` for NULL.
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_state(session: *const atmail_session) -> atmail_state {
    boundary!(atmail_state::Idle, {
        // SAFETY: this function's own contract.
        match unsafe { session.as_ref() }.map(|s| s.inner.state()) {
            None | Some(SessionState::Idle) => atmail_state::Idle,
            Some(SessionState::Sending) => atmail_state::Sending,
            Some(SessionState::Ready) => atmail_state::Ready,
            Some(SessionState::DataMode) => atmail_state::DataMode,
            Some(SessionState::Finishing) => atmail_state::Finishing,
            Some(SessionState::Discarding) => atmail_state::Discarding,
            Some(SessionState::TokenInput) => atmail_state::TokenInput,
        }
    })
}

/// Whether host bytes are payload now (after a `> ` prompt, or while a
/// failed mail's payload is dropped). False for NULL.
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_in_data_mode(session: *const atmail_session) -> bool {
    boundary!(false, {
        // SAFETY: this function's own contract.
        unsafe { session.as_ref() }.is_some_and(|s| s.inner.in_data_mode())
    })
}

/// Bytes for the host (answers, prompts, URCs) into `dst[0..dst_len]`;
/// sets `*written` (0 when there is nothing). Any `dst` of one byte or
/// more makes progress.
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`; `dst` writable for `dst_len`;
/// `written` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_poll_host(
    session: *mut atmail_session,
    dst: *mut u8,
    dst_len: usize,
    written: *mut usize,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let session = try_mut!(session);
        let (dst, written) = (try_slice_mut!(dst, dst_len), try_out!(written));
        written.set(session.inner.poll_host(dst));
        atmail_status::Ok
    })
}

/// The connection asked for is open (for SMTPS: TLS is up).
/// `local_ip[0..local_ip_len]` is the address of its local end, 4 bytes
/// (IPv4) or 16 (IPv6) in network order, for the EHLO name when none was
/// set (`[10.1.2.3]`); NULL with 0 when not known. Another length gets
/// `INVALID_PARAMETER` and changes nothing.
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`; `local_ip` readable for
/// `local_ip_len`.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_handle_connected(
    session: *mut atmail_session,
    now_ms: u64,
    local_ip: *const u8,
    local_ip_len: usize,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let session = try_mut!(session);
        let local = match *try_slice!(local_ip, local_ip_len) {
            [] => None,
            [a, b, c, d] => Some(IpAddr::from([a, b, c, d])),
            ref bytes => match <[u8; 16]>::try_from(bytes) {
                Ok(v6) => Some(IpAddr::from(v6)),
                Err(_) => return atmail_status::InvalidParameter,
            },
        };
        session.at(now_ms).handle_connected(now_ms, local);
        atmail_status::Ok
    })
}

/// The connection could not be made, failed, or closed. The mail in
/// progress, if any, ends with `+GTSMTPSEND: 0`.
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_handle_closed(
    session: *mut atmail_session,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let session = try_mut!(session);
        session.inner.handle_closed(session.now_ms);
        atmail_status::Ok
    })
}

/// TLS is up after `ATMAIL_EVENT_KIND_START_TLS`.
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_handle_tls_established(
    session: *mut atmail_session,
    now_ms: u64,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        try_mut!(session).at(now_ms).handle_tls_established(now_ms);
        atmail_status::Ok
    })
}

/// The firmware's TLS failed: the handshake (the server's certificate was
/// refused, no parameters were agreed; for SMTPS too, before
/// `atmail_session_handle_connected`) or a record that did not verify. The
/// connection is to be closed at once (`ATMAIL_EVENT_KIND_CLOSE`); the
/// mail fails with `+GTSMTPSEND: 0` and a reason that says TLS.
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_handle_tls_failed(
    session: *mut atmail_session,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let session = try_mut!(session);
        session.inner.handle_tls_failed(session.now_ms);
        atmail_status::Ok
    })
}

/// Bytes from the server, `input[0..input_len]`, received at `now_ms`;
/// sets `*read`. Offer unread bytes again after reading the output they
/// caused (`atmail_session_poll_server`, `atmail_session_poll_host`).
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`; `input` readable for
/// `input_len`; `read` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_handle_server(
    session: *mut atmail_session,
    now_ms: u64,
    input: *const u8,
    input_len: usize,
    read: *mut usize,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let session = try_mut!(session);
        let (input, read) = (try_slice!(input, input_len), try_out!(read));
        read.set(session.at(now_ms).handle_server(now_ms, input));
        atmail_status::Ok
    })
}

/// Bytes for the server (SMTP commands, message headers and boundaries)
/// into `dst[0..dst_len]`; sets `*written` (0 when there is nothing). Any
/// `dst` of one byte or more makes progress.
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`; `dst` writable for `dst_len`;
/// `written` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_poll_server(
    session: *mut atmail_session,
    now_ms: u64,
    dst: *mut u8,
    dst_len: usize,
    written: *mut usize,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let session = try_mut!(session);
        let (dst, written) = (try_slice_mut!(dst, dst_len), try_out!(written));
        written.set(session.at(now_ms).poll_server(now_ms, dst));
        atmail_status::Ok
    })
}

/// Advances the timers to `now_ms`: data-mode ends, SMTP timeouts, the
/// mail's `<time>`. Call it at `atmail_session_next_deadline` (earlier is
/// harmless).
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_handle_timeout(
    session: *mut atmail_session,
    now_ms: u64,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        try_mut!(session).at(now_ms).handle_timeout(now_ms);
        atmail_status::Ok
    })
}

/// Writes to `*deadline_ms` when `atmail_session_handle_timeout` must next
/// be called, or `ATMAIL_NO_DEADLINE`.
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`; `deadline_ms` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_next_deadline(
    session: *const atmail_session,
    deadline_ms: *mut u64,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let (session, deadline_ms) = (try_ref!(session), try_out!(deadline_ms));
        deadline_ms.set(session.inner.next_deadline().unwrap_or(ATMAIL_NO_DEADLINE));
        atmail_status::Ok
    })
}
