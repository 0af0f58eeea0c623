//! The checks every entry point makes before it touches Rust code: the
//! panic boundary, NULL pointers, and C buffers turned into slices.
//!
//! Why macros: each check must `return` a status from the entry point's
//! body, which a function cannot do for its caller (the same reason
//! `rustls-ffi` has `try_ref!` and `ffi_panic_boundary!`).

use crate::atmail_status;
use core::mem::{align_of, size_of, MaybeUninit};

/// Runs `$body` (which evaluates to the entry point's result) and turns a
/// panic into `$on_panic`, so no unwind ever crosses into C.
#[cfg(feature = "std")]
macro_rules! boundary {
    ($on_panic:expr, $body:block) => {
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(value) => value,
            Err(_) => $on_panic,
        }
    };
}

/// Without `std` a panic aborts (see `crate::panic`), so there is no
/// unwind to catch and the body runs as it is.
#[cfg(not(feature = "std"))]
macro_rules! boundary {
    ($on_panic:expr, $body:block) => {
        $body
    };
}

/// `&mut T` from a pointer, or `return NullParameter`.
macro_rules! try_mut {
    ($ptr:expr) => {
        // SAFETY: the entry point's contract: a non-NULL pointer is valid,
        // aligned and not aliased for the call.
        match unsafe { $ptr.as_mut() } {
            Some(r) => r,
            None => return $crate::atmail_status::NullParameter,
        }
    };
}

/// `&T` from a pointer, or `return NullParameter`.
macro_rules! try_ref {
    ($ptr:expr) => {
        // SAFETY: the entry point's contract: a non-NULL pointer is valid
        // and aligned for the call.
        match unsafe { $ptr.as_ref() } {
            Some(r) => r,
            None => return $crate::atmail_status::NullParameter,
        }
    };
}

/// An out-parameter, checked for NULL before the call does any work, and
/// only ever written, never read: C may hand over an uninitialised
/// variable, and a `bool` or enum with a stray bit pattern must not become
/// a Rust reference.
pub(crate) struct OutPtr<T>(pub(crate) core::ptr::NonNull<T>);

impl<T> OutPtr<T> {
    pub(crate) fn set(&self, value: T) {
        // SAFETY: an `OutPtr` is only made by `try_out!` from an entry
        // point's out-parameter, which the contract makes valid, aligned
        // and writable for the call.
        unsafe { self.0.as_ptr().write(value) }
    }
}

/// An [`OutPtr`] from a pointer, or `return NullParameter`.
macro_rules! try_out {
    ($ptr:expr) => {
        match ::core::ptr::NonNull::new($ptr) {
            Some(p) => $crate::boundary::OutPtr(p),
            None => return $crate::atmail_status::NullParameter,
        }
    };
}

/// `&[u8]` from `(ptr, len)`, or `return NullParameter`.
macro_rules! try_slice {
    ($ptr:expr, $len:expr) => {
        // SAFETY: the entry point's contract: `len` readable bytes at a
        // non-NULL `ptr`.
        match unsafe { $crate::boundary::slice($ptr, $len) } {
            Some(s) => s,
            None => return $crate::atmail_status::NullParameter,
        }
    };
}

/// `&mut [u8]` from `(ptr, len)`, or `return NullParameter`.
macro_rules! try_slice_mut {
    ($ptr:expr, $len:expr) => {
        // SAFETY: the entry point's contract: `len` writable bytes at a
        // non-NULL `ptr`, not overlapping any other buffer of the call.
        match unsafe { $crate::boundary::slice_mut($ptr, $len) } {
            Some(s) => s,
            None => return $crate::atmail_status::NullParameter,
        }
    };
}

/// # Safety
/// A non-NULL `ptr` with `len > 0` must point at `len` readable bytes that
/// stay unchanged for `'a`.
pub(crate) unsafe fn slice<'a>(ptr: *const u8, len: usize) -> Option<&'a [u8]> {
    match (ptr.is_null(), len) {
        (_, 0) => Some(&[]),
        (true, _) => None,
        // SAFETY: the caller's contract above.
        (false, _) => Some(unsafe { core::slice::from_raw_parts(ptr, len) }),
    }
}

/// # Safety
/// A non-NULL `ptr` with `len > 0` must point at `len` writable bytes that
/// nothing else uses for `'a`.
pub(crate) unsafe fn slice_mut<'a>(ptr: *mut u8, len: usize) -> Option<&'a mut [u8]> {
    match (ptr.is_null(), len) {
        (_, 0) => Some(&mut []),
        (true, _) => None,
        // SAFETY: the caller's contract above.
        (false, _) => Some(unsafe { core::slice::from_raw_parts_mut(ptr, len) }),
    }
}

/// Makes an object in caller memory with `init`, checking size and
/// alignment first. `init` writes the object in place (a session is built
/// field by field: as a returned value it would pass through the stack).
///
/// # Safety
/// A non-NULL `mem` must point at `len` writable bytes; `out` must be NULL
/// or writable.
pub(crate) unsafe fn init_in_place<T>(
    mem: *mut core::ffi::c_void,
    len: usize,
    init: impl FnOnce(&mut MaybeUninit<T>) -> &mut T,
    out: *mut *mut T,
) -> atmail_status {
    let out = try_out!(out);
    if mem.is_null() {
        return atmail_status::NullParameter;
    }
    if len < size_of::<T>() {
        return atmail_status::InsufficientSize;
    }
    if !(mem as usize).is_multiple_of(align_of::<T>()) {
        return atmail_status::Misaligned;
    }
    // SAFETY: `mem` is non-NULL, aligned and has room for a `T` (checked
    // above), and the caller owns it while the object lives; as a
    // `MaybeUninit` it may hold any bytes, and nothing is dropped.
    let slot = unsafe { &mut *mem.cast::<MaybeUninit<T>>() };
    out.set(init(slot) as *mut T);
    atmail_status::Ok
}

/// Boxes `value` for a `_new` function.
#[cfg(feature = "std")]
pub(crate) fn new_boxed<T>(value: T, out: *mut *mut T) -> atmail_status {
    let out = try_out!(out);
    out.set(Box::into_raw(Box::new(value)));
    atmail_status::Ok
}

/// Frees what [`new_boxed`] made; NULL is a no-op.
///
/// # Safety
/// `ptr` is NULL or came from [`new_boxed`] and is not used afterwards.
#[cfg(feature = "std")]
pub(crate) unsafe fn free_boxed<T>(ptr: *mut T) {
    if !ptr.is_null() {
        // SAFETY: the caller's contract above.
        drop(unsafe { Box::from_raw(ptr) });
    }
}

#[cfg(test)]
mod tests {
    use crate::atmail_status;

    #[cfg(feature = "std")]
    #[test]
    fn a_panic_becomes_a_status() {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let status = boundary!(atmail_status::Panic, {
            if std::hint::black_box(true) {
                panic!("a bug inside atmail");
            }
            atmail_status::Ok
        });
        std::panic::set_hook(previous);
        assert_eq!(status, atmail_status::Panic);
    }

    #[test]
    fn zero_lengths_take_any_pointer_and_null_is_refused_otherwise() {
        // SAFETY: zero lengths are never read; NULL with a length is refused.
        unsafe {
            assert_eq!(super::slice(std::ptr::null(), 0), Some(&[][..]));
            assert_eq!(super::slice(std::ptr::null(), 1), None);
            assert!(super::slice_mut(std::ptr::null_mut(), 1).is_none());
        }
    }
}
