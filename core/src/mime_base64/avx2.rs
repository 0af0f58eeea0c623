//! AVX2 kernel for whole MIME lines, written straight into the output.
//!
//! `base64-simd` encodes one contiguous run, so putting CRLFs into its
//! output costs a second pass over every byte (about 25% of the time). This
//! kernel runs the same algorithm (Muła and Lemire's, as `base64-simd` and
//! aklomp/base64 do: 24 input bytes to 32 characters per step) over a run
//! of groups that may start and end mid-line, and stores each 32-character
//! vector at its place in the *lined* output. A vector that crosses a line end is stored twice:
//! whole at its start (right up to the line end), then shifted by whole
//! dwords (line ends fall on multiples of 4 characters) to just past the
//! CRLF; the CRLF goes in last. The bytes a shifted store writes past its
//! data are rewritten by the next step or the tail, so every output byte
//! of the run ends right; bytes of `dst` past the run may be overwritten
//! (the encoder's contract allows it), but never past `dst`.
//!
//! Loads never read past the input: the first step loads 32 bytes at
//! offset 0, every later step loads the 32 bytes *ending* at its last input
//! byte and moves its 24 bytes into place with a dword permute. At the end
//! of `dst`, where a step's stores could pass it, a vector goes through a
//! stack copy; the last few groups are encoded one by one.
//!
//! Whether the CPU has AVX2 is asked at run time (`available`) with `cpuid`
//! and `xgetbv` from `core::arch`, not `std`: the C ABI builds the core
//! without `std`, and a library loaded into Python or a firmware on an x86
//! board must not lose this kernel for it.

use super::{encode_group, run_len, CRLF, LINE_CHARS};
use core::arch::x86_64::*;
use core::sync::atomic::{AtomicU8, Ordering};

/// What `available` found: not asked yet, no, yes.
static AVX2: AtomicU8 = AtomicU8::new(UNKNOWN);
const UNKNOWN: u8 = 0;
const ABSENT: u8 = 1;
const PRESENT: u8 = 2;

/// The CPU runs AVX2 and the OS saves the YMM registers, asked once and
/// remembered (a race only asks twice: the answer is the same).
pub(super) fn available() -> bool {
    match AVX2.load(Ordering::Relaxed) {
        PRESENT => true,
        ABSENT => false,
        _ => {
            let found = detect();
            AVX2.store(if found { PRESENT } else { ABSENT }, Ordering::Relaxed);
            found
        }
    }
}

/// Intel SDM vol. 1, 14.3: CPUID.1:ECX.OSXSAVE and .AVX, XCR0 bits 1 and 2
/// (SSE and AVX state enabled by the OS), then CPUID.(7,0):EBX.AVX2.
// `__cpuid` became a safe function after the declared minimum Rust.
#[allow(unused_unsafe)]
fn detect() -> bool {
    const OSXSAVE_AND_AVX: u32 = (1 << 27) | (1 << 28);
    const YMM_STATE: u64 = 0b110;
    // SAFETY: `cpuid` exists on every x86-64 CPU.
    let max_leaf = unsafe { __cpuid(0) }.eax;
    let leaf1 = unsafe { __cpuid(1) };
    if max_leaf < 7 || leaf1.ecx & OSXSAVE_AND_AVX != OSXSAVE_AND_AVX {
        return false;
    }
    // SAFETY: OSXSAVE says the OS enabled `xgetbv`.
    if unsafe { xcr0() } & YMM_STATE != YMM_STATE {
        return false;
    }
    // SAFETY: leaf 7 exists (`max_leaf`).
    unsafe { __cpuid_count(7, 0) }.ebx & (1 << 5) != 0
}

#[target_feature(enable = "xsave")]
unsafe fn xcr0() -> u64 {
    _xgetbv(0)
}

/// Encodes `src` (whole groups) into `dst` starting at line column
/// `column`, with a CRLF at every line end; returns the bytes written,
/// `run_len(column, src.len() / 3)`.
///
/// # Safety
/// The CPU must support AVX2. `src.len()` must be a multiple of 3 and `dst`
/// must hold the run (both checked with asserts).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn encode_run(src: &[u8], dst: &mut [u8], column: usize) -> usize {
    let groups = src.len() / 3;
    let out_len = run_len(column, groups);
    assert!(src.len().is_multiple_of(3) && dst.len() >= out_len && column < LINE_CHARS);
    let (mut at, mut col, mut k) = (0, column, 0);
    // Masks and multipliers hidden from the optimizer: seeing them, LLVM
    // turns the 16-bit multiplies into widen/multiply/pack sequences
    // several instructions long.
    let multipliers = core::hint::black_box([
        _mm256_set1_epi32(0x0fc0_fc00),
        _mm256_set1_epi32(0x0400_0040),
        _mm256_set1_epi32(0x003f_03f0),
        _mm256_set1_epi32(0x0100_0010),
    ]);
    // Step k encodes input [24k, 24k + 24). The fast loop runs while its
    // load, 4 bytes early, stays inside `src` and its stores inside `dst`;
    // from a line start, whole blocks of 8 lines (19 steps) run on a fixed
    // schedule. Careful steps do the first step and those near either end.
    if src.len() >= 32 {
        (at, col) = careful_step(src, dst, 0, at, col, multipliers);
        k = 1;
    }
    while k > 0 && 24 * k + 28 <= src.len() && at + 66 <= dst.len() {
        if col == 0 && 24 * k + BLOCK_READ <= src.len() && at + BLOCK_OUT <= dst.len() {
            // SAFETY: the block reads [24k - 4, 24k + 460) of `src` and
            // writes [at, at + 624) of `dst`, all checked just above.
            unsafe {
                block(
                    src.as_ptr().add(24 * k),
                    dst.as_mut_ptr().add(at),
                    multipliers,
                )
            };
            (k, at) = (k + BLOCK_STEPS, at + BLOCK_OUT);
            continue;
        }
        // SAFETY: reads [24k - 4, 24k + 28), inside `src` by the loop condition.
        let input = unsafe { _mm256_loadu_si256(src.as_ptr().add(24 * k - 4).cast()) };
        let chars = translate(reshuffle(input, spread_order(4), multipliers));
        // SAFETY: the stores end by `at + 66 <= dst.len()`.
        (at, col) = unsafe { store_step(dst.as_mut_ptr(), at, col, chars) };
        k += 1;
    }
    while k > 0 && 24 * k + 24 <= src.len() {
        (at, col) = careful_step(src, dst, k, at, col, multipliers);
        k += 1;
    }
    // Fewer than 24 bytes left (or fewer than 32 in all): a few groups.
    for group in src[24 * k..].chunks_exact(3) {
        dst[at..at + 4].copy_from_slice(&encode_group(group));
        (at, col) = (at + 4, col + 4);
        if col == LINE_CHARS {
            dst[at..at + 2].copy_from_slice(CRLF);
            (at, col) = (at + 2, 0);
        }
    }
    debug_assert_eq!(at, out_len);
    at
}

/// One step whose load or stores need care: the first (nothing before
/// `src` to load early), the last ones (nothing after `src`, or too little
/// room in `dst`, where the vector goes through a stack copy).
#[target_feature(enable = "avx2")]
fn careful_step(
    src: &[u8],
    dst: &mut [u8],
    k: usize,
    at: usize,
    col: usize,
    multipliers: [__m256i; 4],
) -> (usize, usize) {
    assert!(src.len() >= 32 && 24 * k + 24 <= src.len());
    let from = if k == 0 { 0 } else { 24 * k - 8 };
    let order = if k == 0 {
        _mm256_setr_epi32(0, 1, 2, 3, 3, 4, 5, 6)
    } else {
        _mm256_setr_epi32(2, 3, 4, 5, 5, 6, 7, 7)
    };
    // SAFETY: reads [0, 32) or [24k - 8, 24k + 24), inside `src` as asserted.
    let input = _mm256_permutevar8x32_epi32(
        unsafe { _mm256_loadu_si256(src.as_ptr().add(from).cast()) },
        order,
    );
    let chars = translate(reshuffle(input, spread_order(0), multipliers));
    if at + 66 <= dst.len() {
        // SAFETY: the stores end by `at + 66 <= dst.len()`.
        return unsafe { store_step(dst.as_mut_ptr(), at, col, chars) };
    }
    let mut buf = [0u8; 32];
    // SAFETY: `buf` is 32 bytes.
    unsafe { _mm256_storeu_si256(buf.as_mut_ptr().cast(), chars) };
    put_chars(dst, at, col, &buf)
}

/// Stores a step's 32 characters at `at` (line column `col`) with the CRLF
/// if they cross or end the line; returns the next position and column.
///
/// The crossing store is a branch rather than done always: a branch-free
/// form (always store the shifted vector and a CRLF, as scratch when the
/// line goes on) was measured 10-15% slower on 512-byte pushes, the extra
/// 32-byte stores costing more than the mispredictions they save.
///
/// # Safety
/// `dst` must be writable for `at + 66` bytes.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn store_step(dst: *mut u8, at: usize, col: usize, chars: __m256i) -> (usize, usize) {
    let split = LINE_CHARS - col;
    // SAFETY: the stores end by `at + split + 34 <= at + 66` (split < 32) or `at + 34`.
    unsafe {
        _mm256_storeu_si256(dst.add(at).cast(), chars);
        if split > 32 {
            return (at + 32, col + 32);
        }
        if split < 32 {
            let shift = _mm256_add_epi32(
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                _mm256_set1_epi32(split as i32 / 4),
            );
            _mm256_storeu_si256(
                dst.add(at + split + 2).cast(),
                _mm256_permutevar8x32_epi32(chars, shift),
            );
        }
        dst.add(at + split).cast::<[u8; 2]>().write_unaligned(*CRLF);
    }
    (at + 34, 32 - split)
}

/// Copies characters to `dst[at..]` from line column `col`, with a CRLF at
/// the line end; returns the new position and column.
fn put_chars(dst: &mut [u8], at: usize, col: usize, chars: &[u8]) -> (usize, usize) {
    let head = chars.len().min(LINE_CHARS - col);
    dst[at..at + head].copy_from_slice(&chars[..head]);
    if col + head < LINE_CHARS {
        return (at + head, col + head);
    }
    dst[at + head..at + head + 2].copy_from_slice(CRLF);
    let rest = &chars[head..];
    dst[at + head + 2..at + head + 2 + rest.len()].copy_from_slice(rest);
    (at + head + 2 + rest.len(), rest.len())
}

/// Steps in a block of 8 lines: 8 * 76 characters, 32 per step.
const BLOCK_STEPS: usize = 19;
/// Input a block reads past its start: 8 * 57 bytes, plus 4 that the last
/// 32-byte load touches but does not use. It also reads the 4 bytes before
/// its start.
const BLOCK_READ: usize = 8 * 57 + 4;
/// Output a block writes: 8 lines with their CRLFs.
const BLOCK_OUT: usize = 8 * 78;

/// Where step `j` of a block stores, and how far its vector is from its
/// line's end (`split`; under 32 means the vector crosses it).
const SCHEDULE: [(usize, usize); BLOCK_STEPS] = {
    let mut table = [(0, 0); BLOCK_STEPS];
    let mut j = 0;
    while j < BLOCK_STEPS {
        let raw = 32 * j;
        table[j] = (raw + 2 * (raw / LINE_CHARS), LINE_CHARS - raw % LINE_CHARS);
        j += 1;
    }
    table
};

/// Encodes 8 whole lines from `src` into `dst` on the fixed schedule; the
/// loop unrolls, so every branch on `split` folds away.
///
/// # Safety
/// `src` must be readable from 4 bytes before to [`BLOCK_READ`] bytes after, and `dst` writable for
/// [`BLOCK_OUT`] bytes; the CPU must support AVX2.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn block(src: *const u8, dst: *mut u8, multipliers: [__m256i; 4]) {
    let order = spread_order(4);
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (j, &(at, split)) in SCHEDULE.iter().enumerate() {
        // SAFETY: loads span [-4, 24 * 18 + 28) = [-4, BLOCK_READ); stores
        // end by BLOCK_OUT (the last step ends the last line with its CRLF).
        unsafe {
            let input = _mm256_loadu_si256(src.add(24 * j).sub(4).cast());
            let chars = translate(reshuffle(input, order, multipliers));
            _mm256_storeu_si256(dst.add(at).cast(), chars);
            if split < 32 {
                let shift = _mm256_add_epi32(lanes, _mm256_set1_epi32(split as i32 / 4));
                _mm256_storeu_si256(
                    dst.add(at + split + 2).cast(),
                    _mm256_permutevar8x32_epi32(chars, shift),
                );
                dst.add(at + split).cast::<[u8; 2]>().write_unaligned(*CRLF);
            } else if split == 32 {
                dst.add(at + 32).cast::<[u8; 2]>().write_unaligned(*CRLF);
            }
        }
    }
}

/// Spreads each 3-byte group over 4 bytes as 6-bit indices.
#[target_feature(enable = "avx2")]
fn reshuffle(input: __m256i, order: __m256i, multipliers: [__m256i; 4]) -> __m256i {
    let spread = _mm256_shuffle_epi8(input, order);
    let t0 = _mm256_and_si256(spread, multipliers[0]);
    let t1 = _mm256_mulhi_epu16(t0, multipliers[1]);
    let t2 = _mm256_and_si256(spread, multipliers[2]);
    let t3 = _mm256_mullo_epi16(t2, multipliers[3]);
    _mm256_or_si256(t1, t3)
}

/// The byte shuffle that spreads 12 bytes per lane into 4-byte groups,
/// with the low lane's bytes starting at `low_offset` (4 when the vector
/// was loaded 4 bytes early, so that the high lane needs no permute).
#[target_feature(enable = "avx2")]
fn spread_order(low_offset: i8) -> __m256i {
    let o = low_offset;
    _mm256_setr_epi8(
        1 + o,
        o,
        2 + o,
        1 + o,
        4 + o,
        3 + o,
        5 + o,
        4 + o,
        7 + o,
        6 + o,
        8 + o,
        7 + o,
        10 + o,
        9 + o,
        11 + o,
        10 + o,
        1,
        0,
        2,
        1,
        4,
        3,
        5,
        4,
        7,
        6,
        8,
        7,
        10,
        9,
        11,
        10,
    )
}

/// Maps 6-bit indices to the base64 alphabet by adding a per-range offset.
#[target_feature(enable = "avx2")]
fn translate(indices: __m256i) -> __m256i {
    let offsets = _mm256_setr_epi8(
        65, 71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 0, 0, 65, 71, -4, -4, -4, -4, -4,
        -4, -4, -4, -4, -4, -19, -16, 0, 0,
    );
    let range = _mm256_subs_epu8(indices, _mm256_set1_epi8(51));
    let above_25 = _mm256_cmpgt_epi8(indices, _mm256_set1_epi8(25));
    let range = _mm256_sub_epi8(range, above_25);
    _mm256_add_epi8(indices, _mm256_shuffle_epi8(offsets, range))
}
