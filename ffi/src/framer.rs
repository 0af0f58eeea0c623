//! The data-mode framer: serial bytes in, payload slices of the same
//! input out (no copy), `+++` with guard times, idle and time limits, the
//! size cap, all on the caller's clock.

use crate::atmail_status;
#[cfg(feature = "std")]
use crate::boundary::{free_boxed, new_boxed};
use crate::boundary::{init_in_place, OutPtr};
use atmail_core::framer::{DataLimits, End, Framed, Framer};
use core::ffi::c_void;
use core::mem::{align_of, size_of};

// Literal values, so the header carries numbers; the tests below hold them
// equal to the core's.
/// The default `+++` guard time in ms (V.250 S12).
pub const ATMAIL_DEFAULT_GUARD_MS: u32 = 1000;
/// Payload bytes allowed for a body, or for all attachments together.
pub const ATMAIL_MAX_PAYLOAD: u64 = 20_971_520;
/// The value of a deadline that never comes.
pub const ATMAIL_NO_DEADLINE: u64 = 0xFFFF_FFFF_FFFF_FFFF;

/// Limits of one data-mode session.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct atmail_data_limits {
    /// Silence before and after `+++`, in ms (0 is read as 1).
    pub guard_ms: u32,
    /// `break_time` in ms: silence that ends data mode normally; 0 for none.
    pub idle_ms: u32,
    /// `<time>` in ms: data mode longer than this is an error end.
    pub time_limit_ms: u64,
    /// Payload bytes allowed; one more is an error end.
    pub max_bytes: u64,
}

impl From<&atmail_data_limits> for DataLimits {
    fn from(l: &atmail_data_limits) -> Self {
        DataLimits {
            guard_ms: l.guard_ms,
            idle_ms: (l.idle_ms > 0).then_some(l.idle_ms),
            time_limit_ms: l.time_limit_ms,
            max_bytes: l.max_bytes,
        }
    }
}

/// What a framer call produced.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum atmail_framer_event {
    /// Payload in `*data`, `*data_len` bytes.
    Data = 0,
    /// Nothing until more input arrives or time passes.
    NeedMore = 1,
    /// `+++` with guard silence on both sides: a normal end.
    EndEscape = 2,
    /// `break_time` without input: a normal end.
    EndIdle = 3,
    /// `<time>` ran out: an error end.
    EndTimeLimit = 4,
    /// More payload than allowed: an error end.
    EndOversize = 5,
}

/// A data-mode framer (opaque).
pub struct atmail_framer {
    inner: Framer,
}

impl atmail_framer {
    fn new(limits: &atmail_data_limits, now_ms: u64) -> Self {
        atmail_framer {
            inner: Framer::new(now_ms, limits.into()),
        }
    }
}

/// Bytes of memory a framer needs for `atmail_framer_init`.
#[no_mangle]
pub extern "C" fn atmail_framer_size() -> usize {
    size_of::<atmail_framer>()
}

/// Alignment a framer needs for `atmail_framer_init`.
#[no_mangle]
pub extern "C" fn atmail_framer_align() -> usize {
    align_of::<atmail_framer>()
}

/// Starts data mode at `now_ms` in caller memory (`atmail_framer_size()`
/// bytes aligned to `atmail_framer_align()`; else `INSUFFICIENT_SIZE` or
/// `MISALIGNED`). Reads `*limits`. `*out` points into `mem`, which the
/// caller owns: never pass it to `atmail_framer_free`.
///
/// # Undefined behavior
/// `mem` must be NULL or point at `mem_len` writable bytes that outlive the
/// framer; `limits` must be NULL or readable; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn atmail_framer_init(
    mem: *mut c_void,
    mem_len: usize,
    limits: *const atmail_data_limits,
    now_ms: u64,
    out: *mut *mut atmail_framer,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let limits = try_ref!(limits);
        let framer = || atmail_framer::new(limits, now_ms);
        // SAFETY: this function's own contract.
        unsafe { init_in_place(mem, mem_len, |slot| slot.write(framer()), out) }
    })
}

/// Starts data mode at `now_ms` on the heap; free with `atmail_framer_free`.
///
/// Host builds only (the `std` feature): a firmware build has no heap.
///
/// # Undefined behavior
/// `limits` must be NULL or readable; `out` NULL or writable.
#[cfg(feature = "std")]
#[no_mangle]
pub unsafe extern "C" fn atmail_framer_new(
    limits: *const atmail_data_limits,
    now_ms: u64,
    out: *mut *mut atmail_framer,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        new_boxed(atmail_framer::new(try_ref!(limits), now_ms), out)
    })
}

/// Frees a framer from `atmail_framer_new`; NULL is a no-op.
///
/// Host builds only (the `std` feature): a firmware build has no heap.
///
/// # Undefined behavior
/// `framer` must be NULL or come from `atmail_framer_new`, and is not used
/// afterwards.
#[cfg(feature = "std")]
#[no_mangle]
pub unsafe extern "C" fn atmail_framer_free(framer: *mut atmail_framer) {
    boundary!((), {
        // SAFETY: this function's own contract.
        unsafe { free_boxed(framer) }
    })
}

/// Feeds `input[0..input_len]`, bytes that arrived at `now_ms`. Sets
/// `*read` (bytes consumed), `*event`, and for `ATMAIL_FRAMER_EVENT_DATA`
/// `*data`/`*data_len`: payload that points into `input` or into static
/// memory, valid until the next call. Call again with the unread rest until
/// the event is `NEED_MORE` (all consumed) or an `END_*` (the rest is not
/// payload).
///
/// # Undefined behavior
/// `framer` from `_init`/`_new`; `input` readable for `input_len` bytes
/// (NULL when 0); `read`, `event`, `data` and `data_len` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn atmail_framer_push(
    framer: *mut atmail_framer,
    now_ms: u64,
    input: *const u8,
    input_len: usize,
    read: *mut usize,
    event: *mut atmail_framer_event,
    data: *mut *const u8,
    data_len: *mut usize,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let framer = try_mut!(framer);
        let input = try_slice!(input, input_len);
        let (read, event, data, data_len) = (
            try_out!(read),
            try_out!(event),
            try_out!(data),
            try_out!(data_len),
        );
        let (got, n) = framer.inner.push(now_ms, input);
        read.set(n);
        set_event(convert(got), &event, &data, &data_len);
        atmail_status::Ok
    })
}

/// Checks the clock at `now_ms` without input; sets `*event` and, for
/// `DATA` (`+` bytes held as a possible escape that were data after all),
/// `*data`/`*data_len` pointing at static memory. Call it at
/// `atmail_framer_next_deadline`.
///
/// # Undefined behavior
/// `framer` from `_init`/`_new`; `event`, `data`, `data_len` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn atmail_framer_poll(
    framer: *mut atmail_framer,
    now_ms: u64,
    event: *mut atmail_framer_event,
    data: *mut *const u8,
    data_len: *mut usize,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let framer = try_mut!(framer);
        let (event, data, data_len) = (try_out!(event), try_out!(data), try_out!(data_len));
        set_event(convert(framer.inner.poll(now_ms)), &event, &data, &data_len);
        atmail_status::Ok
    })
}

/// Writes to `*deadline_ms` when `atmail_framer_poll` must next be called,
/// or `ATMAIL_NO_DEADLINE` once data mode has ended.
///
/// # Undefined behavior
/// `framer` from `_init`/`_new`; `deadline_ms` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn atmail_framer_next_deadline(
    framer: *const atmail_framer,
    deadline_ms: *mut u64,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let (framer, deadline_ms) = (try_ref!(framer), try_out!(deadline_ms));
        deadline_ms.set(framer.inner.next_deadline().unwrap_or(ATMAIL_NO_DEADLINE));
        atmail_status::Ok
    })
}

/// Writes to `*len` the payload bytes handed out so far.
///
/// # Undefined behavior
/// `framer` from `_init`/`_new`; `len` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn atmail_framer_payload_len(
    framer: *const atmail_framer,
    len: *mut u64,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let (framer, len) = (try_ref!(framer), try_out!(len));
        len.set(framer.inner.payload_len());
        atmail_status::Ok
    })
}

fn set_event(
    (event, data, len): (atmail_framer_event, *const u8, usize),
    event_out: &OutPtr<atmail_framer_event>,
    data_out: &OutPtr<*const u8>,
    len_out: &OutPtr<usize>,
) {
    event_out.set(event);
    data_out.set(data);
    len_out.set(len);
}

fn convert(event: Framed<'_>) -> (atmail_framer_event, *const u8, usize) {
    let none = core::ptr::null();
    match event {
        Framed::Data(d) => (atmail_framer_event::Data, d.as_ptr(), d.len()),
        Framed::NeedMore => (atmail_framer_event::NeedMore, none, 0),
        Framed::End(End::Escape) => (atmail_framer_event::EndEscape, none, 0),
        Framed::End(End::Idle) => (atmail_framer_event::EndIdle, none, 0),
        Framed::End(End::TimeLimit) => (atmail_framer_event::EndTimeLimit, none, 0),
        Framed::End(End::Oversize) => (atmail_framer_event::EndOversize, none, 0),
        // `End` is non-exhaustive; an end this ABI does not know yet is an
        // error end, since the caller cannot know it went well.
        Framed::End(_) => (atmail_framer_event::EndTimeLimit, none, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_constants_are_the_cores() {
        assert_eq!(
            ATMAIL_DEFAULT_GUARD_MS,
            atmail_core::framer::DEFAULT_GUARD_MS
        );
        assert_eq!(ATMAIL_MAX_PAYLOAD, atmail_core::framer::MAX_PAYLOAD);
    }
}
