//! atmail-ffi: the C ABI of the atmail engine (`libatmail.a`,
//! `libatmail.so`, `include/atmail.h`).
//!
//! What it does: exposes each layer a firmware may want on its own (the
//! MIME base64 encoder, the data-mode framer, the header encoder) and the
//! whole G510 session, as opaque objects behind `atmail_<type>_<verb>`
//! functions that return an [`atmail_status`].
//!
//! What it does not: allocate, except in the `_new` functions (hosts with a
//! heap); every object can instead be placed in caller memory with
//! `_size()`, `_align()` and `_init()`, and none of the objects owns a
//! resource, so memory from `_init` is simply reused or dropped.
//!
//! How Rust maps to C, as `encoding_c` writes it down:
//!
//! - A Rust `&[u8]` is a `const uint8_t *` and a `size_t` length; a
//!   `&mut [u8]` is a `uint8_t *` and its capacity. A zero length may come
//!   with any pointer, NULL included; it is never read.
//! - Counts that Rust returns come back through `size_t *read` and
//!   `size_t *written` out-parameters, which must not be NULL.
//! - `Option<u64>` deadlines become a `uint64_t *` that receives
//!   `UINT64_MAX` for "never".
//! - Rust enums in parameters become `uint32_t` (a C caller may pass any
//!   number, which must not be undefined behavior); in results they are the
//!   header's enums.
//!
//! Why it is built this way: firmware is written in C and must be able to
//! read the whole interface in one sitting, trust that no call crashes on
//! bad input, and keep every byte of memory under its own control. Every
//! entry point checks its pointers, runs inside a panic boundary (a panic
//! becomes `ATMAIL_STATUS_PANIC`, it never unwinds into C), and says in its
//! `# Undefined behavior` note the little that C alone must guarantee.
//!
//! Hosts also get what only a host needs: [`atmail_message`], a whole
//! message composed offline as `atmail encode` writes it, and
//! [`atmail_transcode`], Unicode text into a session charset; the CLI and
//! the Python package use both.
//!
//! Firmware builds (`--no-default-features`, see the README) leave out
//! `std`: there is no heap, so the `_new`/`_free` functions are absent, the
//! composer and the transcoder too, and
//! a panic cannot be caught, so it goes to the hook the firmware sets with
//! `atmail_set_panic_hook` (see the [`mod@panic`] module).
#![cfg_attr(not(any(feature = "std", test)), no_std)]
#![allow(non_camel_case_types)]
// Each export's safety section is headed "Undefined behavior", for the C
// reader of the header, as `encoding_c` heads it.
#![allow(clippy::missing_safety_doc)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[macro_use]
mod boundary;
mod encoder;
mod framer;
mod header;
#[cfg(feature = "std")]
mod message;
pub mod panic;
mod session;
#[cfg(feature = "std")]
pub mod transcode;

pub use encoder::*;
pub use framer::*;
pub use header::*;
#[cfg(feature = "std")]
pub use message::*;
pub use panic::*;
pub use session::*;
#[cfg(feature = "std")]
pub use transcode::atmail_transcode;

use core::ffi::c_char;

/// The ABI version: bumped on any change a linked firmware would notice.
pub const ATMAIL_ABI_VERSION: u32 = 4;

/// What a call did. Values are stable and never reused.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum atmail_status {
    /// Success (for a coder: all input was consumed).
    Ok = 0,
    /// A required pointer was NULL.
    NullParameter = 1,
    /// The output buffer is too small; where documented, the size needed
    /// was written to `*written` and the buffer left untouched.
    InsufficientSize = 2,
    /// A bug inside atmail was caught at the boundary. The object the call
    /// was given must not be used again, except to free it.
    Panic = 3,
    /// Not an error: the output buffer is full; call again with the unread
    /// input and a fresh buffer.
    OutputFull = 4,
    /// A number out of its range (a charset code, an overflowing length).
    InvalidParameter = 5,
    /// Bytes that are not valid in the charset.
    InvalidText = 6,
    /// A value longer than its field allows.
    TooLong = 7,
    /// A control character (CR, LF, NUL, ...) inside a value.
    ControlCharacter = 8,
    /// The call is not allowed in the object's current state.
    WrongState = 9,
    /// Earlier output must be read first. Returned by no function since
    /// ABI 2 (the session takes host bytes only as far as its answers have
    /// room); the value stays reserved.
    Busy = 10,
    /// The memory given to an `_init` function is not aligned for it.
    Misaligned = 11,
    /// An empty value where one is required.
    Empty = 12,
}

impl atmail_status {
    const fn message(self) -> &'static core::ffi::CStr {
        match self {
            atmail_status::Ok => c"ok",
            atmail_status::NullParameter => c"a required pointer was NULL",
            atmail_status::InsufficientSize => c"output buffer too small",
            atmail_status::Panic => c"internal error (panic caught at the C boundary)",
            atmail_status::OutputFull => c"output buffer full; call again",
            atmail_status::InvalidParameter => c"parameter out of range",
            atmail_status::InvalidText => c"bytes not valid in the charset",
            atmail_status::TooLong => c"value too long",
            atmail_status::ControlCharacter => c"control character in value",
            atmail_status::WrongState => c"not allowed in this state",
            atmail_status::Busy => c"earlier output must be read first",
            atmail_status::Misaligned => c"memory not aligned for this object",
            atmail_status::Empty => c"empty value",
        }
    }

    const ALL: [atmail_status; 13] = [
        atmail_status::Ok,
        atmail_status::NullParameter,
        atmail_status::InsufficientSize,
        atmail_status::Panic,
        atmail_status::OutputFull,
        atmail_status::InvalidParameter,
        atmail_status::InvalidText,
        atmail_status::TooLong,
        atmail_status::ControlCharacter,
        atmail_status::WrongState,
        atmail_status::Busy,
        atmail_status::Misaligned,
        atmail_status::Empty,
    ];
}

/// A session charset, by its `AT+GTSMTPHEAD` code. Functions take it as a
/// `uint32_t`; other values get `ATMAIL_STATUS_INVALID_PARAMETER`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum atmail_charset {
    /// Code 0: US-ASCII.
    UsAscii = 0,
    /// Code 1: UTF-8.
    Utf8 = 1,
    /// Code 2: GB2312 (GBK accepted).
    Gb2312 = 2,
    /// Code 3: BIG5 (HKSCS accepted).
    Big5 = 3,
}

/// How mails may cross the wire, by its `AT+GTSMTPBDAT` code (RFC 3030
/// CHUNKING and BINARYMIME). `atmail_session_set_transfer` takes it as a
/// `uint32_t`; other values get `ATMAIL_STATUS_INVALID_PARAMETER`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum atmail_transfer {
    /// 0: `DATA` with base64 parts, exactly as without the extension.
    Off = 0,
    /// 1 (the default): `BDAT` with binary parts and `BODY=BINARYMIME`
    /// when the server offers both CHUNKING and BINARYMIME, else `DATA`.
    Auto = 1,
    /// 2: `BDAT` whenever CHUNKING is offered (binary parts only with
    /// BINARYMIME, base64 parts otherwise), else `DATA`.
    Force = 2,
}

/// The library's version, e.g. `"0.1.0"`: a static NUL-terminated string.
#[no_mangle]
pub extern "C" fn atmail_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// A static NUL-terminated English message for a status value; any number
/// is accepted (unknown ones get `"unknown status"`). Never NULL.
#[no_mangle]
pub extern "C" fn atmail_status_str(status: u32) -> *const c_char {
    atmail_status::ALL
        .iter()
        .find(|s| **s as u32 == status)
        .map_or(c"unknown status", |s| s.message())
        .as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn every_status_has_its_own_message() {
        let mut seen = std::collections::HashSet::new();
        for (i, status) in atmail_status::ALL.iter().enumerate() {
            assert_eq!(*status as usize, i, "values are dense and in order");
            // SAFETY: atmail_status_str returns a static C string.
            let text = unsafe { CStr::from_ptr(atmail_status_str(*status as u32)) };
            assert!(seen.insert(text.to_owned()));
        }
        // SAFETY: as above.
        let unknown = unsafe { CStr::from_ptr(atmail_status_str(999)) };
        assert_eq!(unknown.to_bytes(), b"unknown status");
    }

    #[test]
    fn the_version_is_the_crate_version() {
        // SAFETY: atmail_version returns a static C string.
        let v = unsafe { CStr::from_ptr(atmail_version()) };
        assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }
}
