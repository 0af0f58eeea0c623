//! MIME base64 encoding, atmail beside its peers, in one run on one input.
//!
//! Per size: the atmail streaming encoder (one push, 64 KiB pushes, 512 B
//! pushes; 64 KiB pushes through the C ABI too), `base64-simd` raw with no line breaks (the ceiling: the same
//! SIMD kernel without MIME's lines), the `base64` crate wrapped at 76
//! columns (what most Rust mail code does), and a plain memory copy (the
//! physical limit). Every variant writes into preallocated buffers, so the
//! figures compare encoding work, not allocators. Outputs are checked
//! against each other before timing.

use atmail_benches::random;
use atmail_core::mime_base64::{encoded_len, MimeBase64Encoder, LINE_CHARS};
use atmail_core::CoderResult;
use base64::Engine as _;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const SIZES: &[(usize, &str)] = &[(512, "512B"), (64 << 10, "64KiB"), (20 << 20, "20MiB")];

/// atmail: `src` pushed `push` bytes at a time into one output buffer.
fn atmail(src: &[u8], push: usize, dst: &mut [u8]) -> usize {
    let mut enc = MimeBase64Encoder::new();
    let mut written = 0;
    let mut chunks = src.chunks(push).peekable();
    while let Some(chunk) = chunks.next() {
        let (r, read, w) = enc.encode(chunk, &mut dst[written..], chunks.peek().is_none());
        debug_assert!(r == CoderResult::InputEmpty && read == chunk.len());
        written += w;
    }
    written
}

/// The C ABI's encoder, called as C calls it (`atmail_base64_encoder_encode`
/// through its `extern "C"` symbol), `push` bytes at a time: what the C
/// ABI adds to the Rust encoder, in the same run.
fn c_abi(src: &[u8], push: usize, dst: &mut [u8]) -> usize {
    use atmail_ffi::*;
    let mut enc = core::ptr::null_mut();
    // SAFETY: `enc` is a valid out-pointer; every buffer below is a live
    // slice with its own length, and `enc` is freed once, at the end.
    unsafe {
        assert_eq!(atmail_base64_encoder_new(&mut enc), atmail_status::Ok);
        let (mut at, mut written) = (0, 0);
        while at < src.len() {
            let n = push.min(src.len() - at);
            let (mut r, mut w) = (0, 0);
            let out = &mut dst[written..];
            let status = atmail_base64_encoder_encode(
                enc,
                src[at..].as_ptr(),
                n,
                &mut r,
                out.as_mut_ptr(),
                out.len(),
                &mut w,
                at + n == src.len(),
            );
            debug_assert!(status == atmail_status::Ok && r == n);
            at += n;
            written += w;
        }
        atmail_base64_encoder_free(enc);
        written
    }
}

fn simd_raw(src: &[u8], dst: &mut [u8]) -> usize {
    base64_simd::STANDARD
        .encode(src, base64_simd::Out::from_slice(dst))
        .len()
}

/// The `base64` crate, then wrapped into 76-column CRLF lines.
fn base64_wrapped(src: &[u8], scratch: &mut [u8], dst: &mut [u8]) -> usize {
    let n = base64::engine::general_purpose::STANDARD
        .encode_slice(src, scratch)
        .unwrap_or(0);
    let mut written = 0;
    for line in scratch[..n].chunks(LINE_CHARS) {
        dst[written..written + line.len()].copy_from_slice(line);
        dst[written + line.len()..written + line.len() + 2].copy_from_slice(b"\r\n");
        written += line.len() + 2;
    }
    written
}

fn bench(c: &mut Criterion) {
    for &(size, label) in SIZES {
        let src = random(size, 0x9E37_79B9_7F4A_7C15);
        let mime_len = encoded_len(size).unwrap_or(0);
        let mut dst = vec![0u8; mime_len];
        let mut raw = vec![0u8; size.div_ceil(3) * 4];
        let mut scratch = raw.clone();

        // Check outputs before timing.
        let mut expect = vec![0u8; mime_len];
        assert_eq!(base64_wrapped(&src, &mut scratch, &mut expect), mime_len);
        for push in [size, 64 << 10, 512] {
            dst.fill(0);
            assert_eq!(atmail(&src, push, &mut dst), mime_len);
            assert!(dst == expect, "atmail output differs with {push} B pushes");
        }
        dst.fill(0);
        assert_eq!(c_abi(&src, 64 << 10, &mut dst), mime_len);
        assert!(dst == expect, "the C ABI's output differs");

        let mut group = c.benchmark_group(format!("mime_base64/{label}"));
        group.throughput(Throughput::Bytes(size as u64));
        if size >= 1 << 20 {
            group.sample_size(20);
        }
        group.bench_with_input(BenchmarkId::new("atmail", label), &src, |b, s| {
            b.iter(|| atmail(black_box(s), s.len(), &mut dst))
        });
        if size > 64 << 10 {
            group.bench_with_input(BenchmarkId::new("atmail_push64KiB", label), &src, |b, s| {
                b.iter(|| atmail(black_box(s), 64 << 10, &mut dst))
            });
        }
        if size > 64 << 10 {
            group.bench_with_input(BenchmarkId::new("c_abi_push64KiB", label), &src, |b, s| {
                b.iter(|| c_abi(black_box(s), 64 << 10, &mut dst))
            });
        }
        if size > 512 {
            group.bench_with_input(BenchmarkId::new("atmail_push512B", label), &src, |b, s| {
                b.iter(|| atmail(black_box(s), 512, &mut dst))
            });
        }
        group.bench_with_input(BenchmarkId::new("base64_simd_raw", label), &src, |b, s| {
            b.iter(|| simd_raw(black_box(s), &mut raw))
        });
        group.bench_with_input(BenchmarkId::new("base64_wrapped76", label), &src, |b, s| {
            b.iter(|| base64_wrapped(black_box(s), &mut scratch, &mut dst))
        });
        let mut copy = vec![0u8; size];
        group.bench_with_input(BenchmarkId::new("memcpy", label), &src, |b, s| {
            b.iter(|| copy.copy_from_slice(black_box(s)))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
