//! The whole G510 engine: every host byte in, SMTP bytes to and from the
//! server, answers and URCs back, on the caller's clock.
//!
//! The firmware's loop: feed every UART byte to `atmail_session_handle_host`
//! (command lines and data mode alike; it edits, echoes and executes lines
//! itself), answer what `atmail_session_pending` asks (a command that is
//! not the engine's, or the identity of a mail), send what
//! `atmail_session_poll_host` gives to the UART, open the connection
//! `atmail_session_poll_connect` asks for, pump
//! `atmail_session_poll_server` / `atmail_session_handle_server` over it,
//! report connection events, and call `atmail_session_handle_timeout` at
//! `atmail_session_next_deadline`.

use crate::atmail_status;
use crate::boundary::init_in_place;
#[cfg(feature = "std")]
use crate::boundary::{free_boxed, new_boxed};
use crate::framer::ATMAIL_NO_DEADLINE;
use atmail_core::header::Token;
use atmail_core::message::MessageId;
use atmail_core::session::{Pending, Session, SessionState};
use core::ffi::c_void;
use core::mem::{align_of, size_of, MaybeUninit};
use core::net::IpAddr;

/// The longest server name `atmail_session_poll_connect` can report.
pub const ATMAIL_HOST_MAX: usize = 255;

/// The longest command line `atmail_session_pending` can hand over.
pub const ATMAIL_LINE_MAX: usize = 300;
const _: () = assert!(ATMAIL_LINE_MAX == atmail_core::line::LINE_MAX);

/// One G510 engine (opaque): configuration, the mail in progress and every
/// buffer it needs, in one fixed-size object.
pub struct atmail_session {
    inner: Session,
}

impl atmail_session {
    #[cfg(feature = "std")]
    fn new() -> Self {
        atmail_session {
            inner: Session::new(),
        }
    }

    /// In place, through [`Session::init_in`]: a firmware's stack could
    /// not hold the session as a value on its way into `slot`.
    fn init_in(slot: &mut MaybeUninit<Self>) -> &mut Self {
        let p = slot.as_mut_ptr();
        // SAFETY: `p` comes from a `&mut`, so its one field's place is
        // valid for writes and aligned; once that field is initialised, so
        // is the whole.
        unsafe {
            Session::init_in(&mut *core::ptr::addr_of_mut!((*p).inner).cast());
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
/// pass it to `atmail_session_free`. The session owns no other resource,
/// so the memory may simply be reused afterwards.
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

/// Frees a session from `atmail_session_new`; NULL is a no-op.
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
        // SAFETY: this function's own contract.
        unsafe { free_boxed(session) }
    })
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

/// The `Date:` (RFC 5322 date) and `Message-ID:` (`<id@domain>`) of the
/// next mail: the firmware's clock and entropy. Each `AT+GTSMTPSEND`
/// takes the identity set before it, and waits for one
/// (`ATMAIL_PENDING_IDENTITY`) when none is set; copies both.
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
/// Message-ID (`ATMAIL_PENDING_IDENTITY`): SEND answers `+CME ERROR: no
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

/// Host bytes `input[0..input_len]` that arrived at `now_ms`, every one of
/// them, in command mode and in data mode alike: command lines are edited,
/// echoed and executed as V.250 says, data-mode payload is encoded into
/// `server_out[0..server_out_len]` (bytes for the server, to be sent before
/// anything `atmail_session_poll_server` gives). Sets `*read` and
/// `*written`. Unread input must be offered again later: it waits for room
/// in `server_out`, for the host to read its answers
/// (`atmail_session_poll_host`), or for the caller
/// (`atmail_session_pending`); hold the UART meanwhile. A `server_out` of
/// 128 bytes or more always makes progress in data mode when the mail can
/// take data; in command mode `server_out` may be empty.
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`; `input` readable and `server_out`
/// writable for their lengths, not overlapping; `read`, `written` NULL or
/// writable.
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
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let session = try_mut!(session);
        let input = try_slice!(input, input_len);
        let server_out = try_slice_mut!(server_out, server_out_len);
        let (read, written) = (try_out!(read), try_out!(written));
        let (r, w) = session.inner.handle_host(input, now_ms, server_out);
        read.set(r);
        written.set(w);
        atmail_status::Ok
    })
}

/// What the session waits for from the caller (`atmail_pending`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum atmail_pending {
    /// Nothing: host bytes are taken.
    None = 0,
    /// A command line that is not the engine's (`AT+MIPCALL=...`, `AT&K3`):
    /// answer it with `atmail_session_answer_command`.
    Command = 1,
    /// `AT+GTSMTPSEND` needs the mail's Date and Message-ID: call
    /// `atmail_session_set_identity`.
    Identity = 2,
}

/// Sets `*pending` to what the session waits for from the caller; it takes
/// no host bytes until the caller has done it. For `ATMAIL_PENDING_COMMAND`
/// the command line (from its `AT`, without the CR; at most
/// `ATMAIL_LINE_MAX` bytes, no NUL added) is copied into `line[0..line_cap]`
/// and its length set in `*line_len`; a smaller `line_cap` that does not fit
/// gets `INSUFFICIENT_SIZE` with `*pending` set all the same and the length
/// needed in `*line_len`. The same answer comes until the caller acts.
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`; `line` writable for `line_cap`;
/// `pending`, `line_len` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_pending(
    session: *const atmail_session,
    pending: *mut atmail_pending,
    line: *mut u8,
    line_cap: usize,
    line_len: *mut usize,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let session = try_ref!(session);
        let (pending, line_len) = (try_out!(pending), try_out!(line_len));
        let line = try_slice_mut!(line, line_cap);
        line_len.set(0);
        match session.inner.pending() {
            None => pending.set(atmail_pending::None),
            Some(Pending::Identity) => pending.set(atmail_pending::Identity),
            Some(Pending::Command(command)) => {
                pending.set(atmail_pending::Command);
                line_len.set(command.len());
                if command.len() > line.len() {
                    return atmail_status::InsufficientSize;
                }
                line[..command.len()].copy_from_slice(command);
            }
            Some(_) => return atmail_status::WrongState,
        }
        atmail_status::Ok
    })
}

/// The caller's whole answer (`answer[0..answer_len]`, final result code
/// included, e.g. `"\r\nOK\r\n"`) to the command `atmail_session_pending`
/// handed over; it goes to the host after everything said before it.
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
            Some(_) => atmail_state::Idle,
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

/// Whether to open a connection now (once per mail, after SEND): sets
/// `*connect`, and when true copies the server name into
/// `host[0..host_cap]` with its length in `*host_len` (no NUL), the port
/// to `*port`, and whether it is SMTPS (TLS from the first byte) to
/// `*implicit_tls`. A `host_cap` of `ATMAIL_HOST_MAX` always fits; a
/// smaller one that does not gets `INSUFFICIENT_SIZE` with the length
/// needed in `*host_len`, and the request stays pending. No request comes
/// while a close (`atmail_session_poll_close`) is still to be taken. Then call
/// `atmail_session_handle_connected` (for SMTPS: once TLS is up) or
/// `atmail_session_handle_closed`.
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`; `host` writable for `host_cap`;
/// the other pointers NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_poll_connect(
    session: *mut atmail_session,
    connect: *mut bool,
    host: *mut u8,
    host_cap: usize,
    host_len: *mut usize,
    port: *mut u16,
    implicit_tls: *mut bool,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let session = try_mut!(session);
        let connect = try_out!(connect);
        let host = try_slice_mut!(host, host_cap);
        let (host_len, port, implicit_tls) =
            (try_out!(host_len), try_out!(port), try_out!(implicit_tls));
        connect.set(false);
        // Sized against the request due, if any: a long server name is no
        // error while no connection is asked for.
        let needed = session.inner.connect_due().map_or(0, |c| c.host.len());
        if needed > host.len() {
            host_len.set(needed);
            return atmail_status::InsufficientSize;
        }
        if let Some(target) = session.inner.poll_connect() {
            host[..target.host.len()].copy_from_slice(target.host);
            connect.set(true);
            host_len.set(target.host.len());
            port.set(target.port);
            implicit_tls.set(target.implicit_tls);
        }
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
        session.inner.handle_connected(now_ms, local);
        atmail_status::Ok
    })
}

/// Why the last mail failed without a reply code (or beyond what its code
/// says), once: the text goes into `buf[0..buf_cap]` (no NUL) with its
/// length in `*len`, 0 when there is nothing to say. A `buf_cap` under
/// `ATMAIL_FAILURE_MAX` may get `INSUFFICIENT_SIZE`, and the text stays.
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`; `buf` writable for `buf_cap`;
/// `len` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_poll_failure(
    session: *mut atmail_session,
    buf: *mut u8,
    buf_cap: usize,
    len: *mut usize,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let session = try_mut!(session);
        let (buf, len) = (try_slice_mut!(buf, buf_cap), try_out!(len));
        len.set(0);
        let Some(failure) = session.inner.poll_failure() else {
            return atmail_status::Ok;
        };
        let mut text = Text { buf, len: 0 };
        if core::fmt::write(&mut text, format_args!("{failure}")).is_err() {
            session.inner.keep_failure(failure);
            return atmail_status::InsufficientSize;
        }
        len.set(text.len);
        atmail_status::Ok
    })
}

/// The longest text `atmail_session_poll_failure` writes.
pub const ATMAIL_FAILURE_MAX: usize = 160;

/// A caller's buffer as a `fmt::Write`.
struct Text<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl core::fmt::Write for Text<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(core::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
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
        try_mut!(session).inner.handle_closed();
        atmail_status::Ok
    })
}

/// Sets `*start` to whether TLS must be started on the connection now
/// (STARTTLS); then call `atmail_session_handle_tls_established`, or
/// `atmail_session_handle_tls_failed` if the handshake fails. Never fall
/// back to plaintext.
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`; `start` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_poll_start_tls(
    session: *mut atmail_session,
    start: *mut bool,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let (session, start) = (try_mut!(session), try_out!(start));
        start.set(session.inner.poll_start_tls());
        atmail_status::Ok
    })
}

/// TLS is up after `atmail_session_poll_start_tls` asked for it.
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_handle_tls_established(
    session: *mut atmail_session,
    now_ms: u64,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        try_mut!(session).inner.handle_tls_established(now_ms);
        atmail_status::Ok
    })
}

/// The firmware's TLS failed: the handshake (the server's certificate was
/// refused, no parameters were agreed; for SMTPS too, before
/// `atmail_session_handle_connected`) or a record that did not verify. The
/// connection is to be closed at once (`atmail_session_poll_close`); the
/// mail fails with `+GTSMTPSEND: 0` and a reason that says TLS.
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_handle_tls_failed(
    session: *mut atmail_session,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        try_mut!(session).inner.handle_tls_failed();
        atmail_status::Ok
    })
}

/// Sets `*close` to whether the connection must be closed now: at once for
/// a connection that cannot go on, and after the QUIT's reply (or
/// `QUIT_MS`, 5 s) for one that ended politely.
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`; `close` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_poll_close(
    session: *mut atmail_session,
    close: *mut bool,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let (session, close) = (try_mut!(session), try_out!(close));
        close.set(session.inner.poll_close());
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
        read.set(session.inner.handle_server(input, now_ms));
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
        written.set(session.inner.poll_server(dst, now_ms));
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
        try_mut!(session).inner.handle_timeout(now_ms);
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
