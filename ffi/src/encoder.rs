//! The streaming MIME base64 encoder: any-size input chunks in,
//! 76-column CRLF lines out, over caller buffers.

use crate::atmail_status;
use crate::boundary::init_in_place;
#[cfg(feature = "std")]
use crate::boundary::{free_boxed, new_boxed};
use atmail_core::mime_base64::{encoded_len, MimeBase64Encoder};
use atmail_core::CoderResult;
use core::ffi::c_void;
use core::mem::{align_of, size_of};

/// A MIME base64 encoder (opaque). Holds at most 2 input bytes and 6
/// output bytes between calls.
pub struct atmail_base64_encoder {
    inner: MimeBase64Encoder,
    /// The last chunk was taken whole: no more input is accepted.
    closed: bool,
}

impl atmail_base64_encoder {
    const fn new() -> Self {
        atmail_base64_encoder {
            inner: MimeBase64Encoder::new(),
            closed: false,
        }
    }
}

/// Writes to `*out_len` the exact number of bytes the encoder writes for
/// `input_len` input bytes, final CRLF included. Returns
/// `ATMAIL_STATUS_INVALID_PARAMETER` if that does not fit a `size_t`.
///
/// # Undefined behavior
/// `out_len` must be NULL or point at a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn atmail_base64_encoded_len(
    input_len: usize,
    out_len: *mut usize,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let out = try_out!(out_len);
        match encoded_len(input_len) {
            Some(n) => {
                out.set(n);
                atmail_status::Ok
            }
            None => atmail_status::InvalidParameter,
        }
    })
}

/// Bytes of memory an encoder needs for `atmail_base64_encoder_init`.
#[no_mangle]
pub extern "C" fn atmail_base64_encoder_size() -> usize {
    size_of::<atmail_base64_encoder>()
}

/// Alignment an encoder needs for `atmail_base64_encoder_init`.
#[no_mangle]
pub extern "C" fn atmail_base64_encoder_align() -> usize {
    align_of::<atmail_base64_encoder>()
}

/// Starts an encoder in caller memory: `mem` must hold
/// `atmail_base64_encoder_size()` bytes aligned to
/// `atmail_base64_encoder_align()` (else `INSUFFICIENT_SIZE` or
/// `MISALIGNED`). On success `*out` points into `mem`; the caller owns the
/// memory and must not pass it to `atmail_base64_encoder_free`.
///
/// # Undefined behavior
/// `mem` must be NULL or point at `mem_len` writable bytes that outlive the
/// encoder; `out` must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn atmail_base64_encoder_init(
    mem: *mut c_void,
    mem_len: usize,
    out: *mut *mut atmail_base64_encoder,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        // SAFETY: this function's own contract.
        unsafe {
            init_in_place(
                mem,
                mem_len,
                |slot| slot.write(atmail_base64_encoder::new()),
                out,
            )
        }
    })
}

/// Starts an encoder on the heap; free it with `atmail_base64_encoder_free`.
///
/// Host builds only (the `std` feature): a firmware build has no heap.
///
/// # Undefined behavior
/// `out` must be NULL or writable.
#[cfg(feature = "std")]
#[no_mangle]
pub unsafe extern "C" fn atmail_base64_encoder_new(
    out: *mut *mut atmail_base64_encoder,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        new_boxed(atmail_base64_encoder::new(), out)
    })
}

/// Frees an encoder from `atmail_base64_encoder_new`; NULL is a no-op.
///
/// Host builds only (the `std` feature): a firmware build has no heap.
///
/// # Undefined behavior
/// `encoder` must be NULL or come from `atmail_base64_encoder_new`, and is
/// not used afterwards.
#[cfg(feature = "std")]
#[no_mangle]
pub unsafe extern "C" fn atmail_base64_encoder_free(encoder: *mut atmail_base64_encoder) {
    boundary!((), {
        // SAFETY: this function's own contract.
        unsafe { free_boxed(encoder) }
    })
}

/// Encodes as much of `src` into `dst` as fits. Reads `src[0..src_len]`,
/// writes `dst[0..dst_len]`, and sets `*read` and `*written`.
///
/// Returns `ATMAIL_STATUS_OK` when all of `src` was consumed, or
/// `ATMAIL_STATUS_OUTPUT_FULL` when `dst` filled up: call again with the
/// unread rest of `src` and a fresh `dst`. Pass `last = true` with the final
/// chunk (it may be empty); `OK` then means the stream is complete, and any
/// further non-empty input gets `ATMAIL_STATUS_WRONG_STATE`. Any `dst` of
/// one byte or more makes progress. Bytes of `dst` past `*written` may hold
/// scratch data; nothing past `dst_len` is touched.
///
/// # Undefined behavior
/// `encoder` must come from an `_init` or `_new` function. `src` must point
/// at `src_len` readable bytes and `dst` at `dst_len` writable bytes that do
/// not overlap (either may be NULL when its length is 0). `read` and
/// `written` must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn atmail_base64_encoder_encode(
    encoder: *mut atmail_base64_encoder,
    src: *const u8,
    src_len: usize,
    read: *mut usize,
    dst: *mut u8,
    dst_len: usize,
    written: *mut usize,
    last: bool,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let encoder = try_mut!(encoder);
        let src = try_slice!(src, src_len);
        let dst = try_slice_mut!(dst, dst_len);
        let (read, written) = (try_out!(read), try_out!(written));
        if encoder.closed && !src.is_empty() {
            return atmail_status::WrongState;
        }
        let (result, r, w) = encoder.inner.encode(src, dst, last);
        read.set(r);
        written.set(w);
        encoder.closed |= last && r == src.len();
        match result {
            CoderResult::InputEmpty => atmail_status::Ok,
            CoderResult::OutputFull => atmail_status::OutputFull,
        }
    })
}
