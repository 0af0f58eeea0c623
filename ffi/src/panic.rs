//! What a panic inside atmail does when the library is built without
//! `std` (the firmware build).
//!
//! What it does: calls the hook the firmware registered with
//! [`atmail_set_panic_hook`], with the file and line of the panic, and
//! traps if there is none or if it returns (on ARM a permanently undefined
//! instruction, which the firmware sees as a HardFault).
//!
//! What it does not: format the panic message. Formatting would link
//! `core::fmt`'s machinery for a path that should never run, and a file
//! and line identify the check that failed in this version of the source.
//!
//! Why: a no_std library cannot unwind, so a panic cannot become
//! `ATMAIL_STATUS_PANIC` as in host builds (there `catch_unwind` does it and
//! the hook is never called). Firmware decides what a fatal error means
//! (log and reset, or halt for the debugger), so the library hands the
//! decision over instead of choosing one; no symbol is required from the
//! firmware for it, so the library links with nothing but the C memory
//! functions.

use core::sync::atomic::{AtomicPtr, Ordering};

/// A firmware's panic hook: `file` is `file_len` bytes of UTF-8 (not
/// NUL-terminated), `line` its 1-based line. It must not return; if it
/// does, the library traps.
pub type atmail_panic_hook =
    Option<unsafe extern "C" fn(file: *const u8, file_len: usize, line: u32)>;

static HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Registers the function a panic calls in a build without `std`; NULL
/// removes it (a panic then traps at once). Host builds catch panics and
/// return `ATMAIL_STATUS_PANIC` instead, and never call the hook.
#[no_mangle]
pub extern "C" fn atmail_set_panic_hook(hook: atmail_panic_hook) {
    let raw = hook.map_or(core::ptr::null_mut(), |f| f as *mut ());
    HOOK.store(raw, Ordering::Release);
}

#[cfg(not(any(feature = "std", test)))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let raw = HOOK.load(Ordering::Acquire);
    if !raw.is_null() {
        // SAFETY: only `atmail_set_panic_hook` stores into HOOK, and only a
        // function pointer of this type.
        let hook: unsafe extern "C" fn(*const u8, usize, u32) =
            unsafe { core::mem::transmute(raw) };
        let (file, line) = info.location().map_or(("", 0), |l| (l.file(), l.line()));
        // SAFETY: the hook's contract, which the firmware took on by setting it.
        unsafe { hook(file.as_ptr(), file.len(), line) };
    }
    trap()
}

#[cfg(not(any(feature = "std", test)))]
fn trap() -> ! {
    loop {
        #[cfg(target_arch = "arm")]
        // SAFETY: `udf` raises an undefined-instruction fault and touches
        // no memory.
        unsafe {
            core::arch::asm!("udf #0", options(nomem, nostack))
        };
        core::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    unsafe extern "C" fn hook(_: *const u8, _: usize, _: u32) {}

    #[test]
    fn a_hook_is_stored_and_removed() {
        atmail_set_panic_hook(Some(hook));
        assert_eq!(HOOK.load(Ordering::Acquire), hook as *mut ());
        atmail_set_panic_hook(None);
        assert!(HOOK.load(Ordering::Acquire).is_null());
    }
}
