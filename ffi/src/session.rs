//! The whole G510 engine: AT lines and serial data from the host, SMTP
//! bytes to and from the server, URCs back, on the caller's clock.
//!
//! The firmware's loop: feed each host line to
//! `atmail_session_handle_at_line` (or, in data mode, the serial bytes to
//! `atmail_session_handle_serial_data`), send what
//! `atmail_session_poll_host` gives to the UART, open the connection
//! `atmail_session_poll_connect` asks for, pump
//! `atmail_session_poll_server` / `atmail_session_handle_server` over it,
//! report connection events, and call `atmail_session_poll` at
//! `atmail_session_next_deadline`.

use crate::atmail_status;
use crate::boundary::{free_boxed, init_in_place, new_boxed};
use crate::framer::ATMAIL_NO_DEADLINE;
use atmail_core::header::Token;
use atmail_core::message::MessageId;
use atmail_core::session::Session;
use std::ffi::c_void;
use std::mem::{align_of, size_of};

/// The longest server name `atmail_session_poll_connect` can report.
pub const ATMAIL_HOST_MAX: usize = 255;

/// One G510 engine (opaque): configuration, the mail in progress and every
/// buffer it needs, in one fixed-size object.
pub struct atmail_session {
    inner: Session,
}

impl atmail_session {
    fn new() -> Self {
        atmail_session {
            inner: Session::new(),
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
        unsafe { init_in_place(mem, mem_len, atmail_session::new, out) }
    })
}

/// Starts an idle session on the heap; free it with `atmail_session_free`.
///
/// # Undefined behavior
/// `out` must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_new(out: *mut *mut atmail_session) -> atmail_status {
    boundary!(atmail_status::Panic, {
        new_boxed(atmail_session::new(), out)
    })
}

/// Frees a session from `atmail_session_new`; NULL is a no-op.
///
/// # Undefined behavior
/// `session` must be NULL or come from `atmail_session_new`, and is not
/// used afterwards.
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

/// The EHLO name (`name[0..name_len]`): this host's name or an address
/// literal such as `[10.0.0.1]`; default `localhost`. Reads the bytes, keeps
/// a copy.
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
/// next mail: the firmware's clock and entropy. Set before every
/// `AT+GTSMTPSEND`; copies both.
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

/// Executes one `AT+GTSMTP*` command line (`line[0..line_len]`, without or
/// with its CR) at `now_ms`. The answer (and any later URC) is read with
/// `atmail_session_poll_host`. Returns `BUSY` when earlier answers are
/// still unread (read them, then call again) and `WRONG_STATE` in data
/// mode; a refused line is not an error status: its `ERROR` answer is
/// output.
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`; `line` readable for `line_len`.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_handle_at_line(
    session: *mut atmail_session,
    now_ms: u64,
    line: *const u8,
    line_len: usize,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let session = try_mut!(session);
        let line = try_slice!(line, line_len);
        if session.inner.in_data_mode() {
            return atmail_status::WrongState;
        }
        match session.inner.handle_at_line(line, now_ms) {
            true => atmail_status::Ok,
            false => atmail_status::Busy,
        }
    })
}

/// Whether serial bytes are payload now (after a `> ` prompt). False for
/// NULL.
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

/// Data-mode serial bytes `input[0..input_len]` that arrived at `now_ms`:
/// payload is encoded into `server_out[0..server_out_len]`, bytes for the
/// server. Sets `*read` and `*written`. Unread input must be offered again
/// later (backpressure: hold the UART meanwhile). A `server_out` of 128
/// bytes or more always makes progress when the mail can take data.
/// `WRONG_STATE` outside data mode.
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`; `input` readable and `server_out`
/// writable for their lengths, not overlapping; `read`, `written` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_handle_serial_data(
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
        if !session.inner.in_data_mode() {
            return atmail_status::WrongState;
        }
        let (r, w) = session.inner.handle_serial_data(input, now_ms, server_out);
        read.set(r);
        written.set(w);
        atmail_status::Ok
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
/// needed in `*host_len`, and the request stays pending. Then call
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
        let needed = session
            .inner
            .config()
            .server()
            .map_or(0, |s| s.host.as_bytes().len());
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
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_handle_connected(
    session: *mut atmail_session,
    now_ms: u64,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        try_mut!(session).inner.handle_connected(now_ms);
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
        try_mut!(session).inner.handle_closed();
        atmail_status::Ok
    })
}

/// Sets `*start` to whether TLS must be started on the connection now
/// (STARTTLS); then call `atmail_session_handle_tls_established`, or
/// `atmail_session_handle_closed` if the handshake fails. Never fall back
/// to plaintext.
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

/// Sets `*close` to whether the connection must be closed now.
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

/// Checks the clock: data-mode ends, SMTP timeouts, the mail's `<time>`.
///
/// # Undefined behavior
/// `session` NULL or from `_init`/`_new`.
#[no_mangle]
pub unsafe extern "C" fn atmail_session_poll(
    session: *mut atmail_session,
    now_ms: u64,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        try_mut!(session).inner.poll(now_ms);
        atmail_status::Ok
    })
}

/// Writes to `*deadline_ms` when `atmail_session_poll` must next be
/// called, or `ATMAIL_NO_DEADLINE`.
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
