//! Indexing that panics without formatting: `get`, `get_mut` and `copy`
//! stand in for `s[i]`, `&s[a..b]` and `copy_from_slice` where the index
//! rests on an invariant of the caller (a stored length within its
//! buffer, a position a loop has checked).
//!
//! What it does: the same check as the index operator, and on failure the
//! same panic, with the caller's file and line (`#[track_caller]`), but a
//! constant message.
//!
//! What it does not: make a broken invariant safe to ignore. It still
//! panics; code whose input can be out of range checks it and returns an
//! error instead, as before.
//!
//! Why: the operator's panic message formats the index and the length,
//! and that alone links `core::fmt`'s integer printing, padding and
//! `char` counting (about 2.3 KB of a 64 KB firmware flash) although the
//! firmware's panic handler never prints the message. `firmware/fmt_sites.py`
//! lists the lines that still do.

use core::slice::SliceIndex;

/// `&s[i]`, for an `i` the caller's invariant keeps in range.
#[inline(always)]
#[track_caller]
pub(crate) fn get<T, I: SliceIndex<[T]>>(s: &[T], i: I) -> &I::Output {
    match s.get(i) {
        Some(x) => x,
        None => out_of_range(),
    }
}

/// `&mut s[i]`, for an `i` the caller's invariant keeps in range.
#[inline(always)]
#[track_caller]
pub(crate) fn get_mut<T, I: SliceIndex<[T]>>(s: &mut [T], i: I) -> &mut I::Output {
    match s.get_mut(i) {
        Some(x) => x,
        None => out_of_range(),
    }
}

/// The `N` items at `at` as an array (`s[at..at + N]`), for an `at` the
/// caller's invariant keeps in range; assigning to it is a fixed-size
/// copy.
///
/// The range is cut to length `N` first (a range past `usize::MAX` wraps
/// below its start, which `get` refuses), so the compiler sees the
/// array's length: `get(at..)` with `first_chunk` made the portable
/// base64 path's line moves a third slower on x86-64.
#[inline(always)]
#[track_caller]
pub(crate) fn array<T, const N: usize>(s: &[T], at: usize) -> &[T; N] {
    match s
        .get(at..at.wrapping_add(N))
        .and_then(|s| s.try_into().ok())
    {
        Some(a) => a,
        None => out_of_range(),
    }
}

/// [`array`], to write.
#[inline(always)]
#[track_caller]
pub(crate) fn array_mut<T, const N: usize>(s: &mut [T], at: usize) -> &mut [T; N] {
    match s
        .get_mut(at..at.wrapping_add(N))
        .and_then(|s| s.try_into().ok())
    {
        Some(a) => a,
        None => out_of_range(),
    }
}

/// `dst.copy_from_slice(src)`, for lengths the caller has made equal.
///
/// Not `copy_from_slice` itself: the compiler keeps its body out of line
/// in the firmware, with its own length check and formatted panic, so
/// one call anywhere links `core::fmt`. The loop below compiles to a
/// `memcpy` call, or to a few moves when the length is small and known.
#[inline(always)]
#[track_caller]
pub(crate) fn copy<T: Copy>(dst: &mut [T], src: &[T]) {
    if dst.len() != src.len() {
        out_of_range()
    }
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s;
    }
}

/// The one panic of this module: cold and out of line, so the checks
/// above cost a compare and a branch at each site. The checks themselves
/// are `inline(always)`: left to `opt-level = "z"`, they stayed calls,
/// which cost the firmware 1.6 KB of flash and 40 bytes of worst stack.
#[cold]
#[inline(never)]
#[track_caller]
fn out_of_range() -> ! {
    panic!("index out of range")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_range_is_the_operator() {
        let mut b = [1u8, 2, 3, 4];
        assert_eq!(get(&b, 1..3), &b[1..3]);
        assert_eq!(*get(&b, 3), 4);
        get_mut(&mut b, ..2).fill(0);
        copy(get_mut(&mut b, 2..), &[7, 8]);
        assert_eq!(b, [0, 0, 7, 8]);
        *array_mut(&mut b, 1) = [5, 6];
        assert_eq!(array::<u8, 3>(&b, 1), &[5, 6, 8]);
    }

    #[test]
    #[should_panic(expected = "index out of range")]
    fn a_range_past_the_end_panics() {
        let b = [0u8; 4];
        let _ = get(&b, 2..5);
    }

    #[test]
    #[should_panic(expected = "index out of range")]
    fn an_index_past_the_end_panics() {
        let mut b = [0u8; 4];
        *get_mut(&mut b, 4) = 1;
    }

    #[test]
    #[should_panic(expected = "index out of range")]
    fn an_array_past_the_end_panics() {
        let _ = array::<u8, 2>(&[0u8; 4], 3);
    }

    #[test]
    #[should_panic(expected = "index out of range")]
    fn a_copy_of_another_length_panics() {
        copy(&mut [0u8; 3], &[1, 2]);
    }
}
