//! The whole engine in data mode, beside the encoder alone and its SIMD
//! ceiling, in one run on one input.
//!
//! A session that has reached `+GTSMTPFILE=1` is fed 4 MiB of attachment
//! in 16 KiB serial reads (what a UART driver hands over) and writes into
//! a 64 KiB socket buffer; the figure includes the framer (`+++` guard
//! times), the message writer and base64. Beside it: the bare MIME base64
//! encoder with the same pushes, and `base64-simd` raw. The gap between
//! the first two is what the engine costs beyond encoding.

use atmail_benches::random;
use atmail_core::header::Token;
use atmail_core::message::MessageId;
use atmail_core::mime_base64::MimeBase64Encoder;
use atmail_core::session::{Event, Session};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const SIZE: usize = 4 << 20;
const READ: usize = 16 << 10;

fn drain(s: &mut Session) {
    let mut buf = [0u8; 4096];
    while s.poll_server(0, &mut buf) + s.poll_host(&mut buf) > 0 {}
}

/// A command line through the serial entry point, its answer drained.
fn at(s: &mut Session, line: &[u8]) {
    let mut bytes = line.to_vec();
    bytes.push(b'\r');
    let progress = s.handle_host(0, &bytes, &mut []);
    assert_eq!((progress.read, progress.written), (bytes.len(), 0));
    drain(s);
}

/// A session in data mode for an attachment, after a pipelined handshake.
fn in_data_mode() -> Session {
    let mut s = Session::new();
    let date = Token::new(b"Wed, 25 Nov 2026 10:00:00 +0000", true).expect("date");
    s.set_identity(date, MessageId::new(b"<bench@fibocom.com>").expect("id"));
    for line in [
        &b"AT+GTSMTPLAND=25,\"mail.fibocom.com\",3"[..],
        b"AT+GTSMTPID=\"wangww@fibocom.com\",\"ght64621178\"",
        b"AT+GTSMTPDST=1,1,\"xiangj@fibocom.com\"",
        b"AT+GTSMTPSEND=300",
    ] {
        at(&mut s, line);
    }
    assert!(matches!(s.poll_event(), Some(Event::Connect(_))), "connect");
    s.handle_connected(0, None);
    for reply in [
        &b"220 mx\r\n"[..],
        b"250-mx\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n",
        b"235 ok\r\n",
        b"250 ok\r\n250 ok\r\n354 go\r\n",
    ] {
        assert_eq!(s.handle_server(0, reply), reply.len());
        drain(&mut s);
    }
    at(&mut s, b"AT+GTSMTPFILE=1,\"a.bin\"");
    assert!(s.in_data_mode());
    s
}

/// Feeds `src` in `READ`-byte serial reads, 1 ms apart; returns the bytes
/// written for the server.
fn session(s: &mut Session, src: &[u8], out: &mut [u8]) -> usize {
    let mut total = 0;
    for (i, read) in src.chunks(READ).enumerate() {
        let mut rest = read;
        while !rest.is_empty() {
            let progress = s.handle_host(1 + i as u64, rest, out);
            rest = &rest[progress.read..];
            total += progress.written;
        }
    }
    total
}

fn encoder(src: &[u8], out: &mut [u8]) -> usize {
    let mut enc = MimeBase64Encoder::new();
    let mut total = 0;
    for read in src.chunks(READ) {
        let mut rest = read;
        while !rest.is_empty() {
            let (_, r, w) = enc.encode(rest, out, false);
            rest = &rest[r..];
            total += w;
        }
    }
    total
}

fn bench(c: &mut Criterion) {
    let src = random(SIZE, 0x2545_F491_4F6C_DD1D);
    let mut out = vec![0u8; 64 << 10];
    let mut raw = vec![0u8; SIZE.div_ceil(3) * 4];
    // The engine's output is the encoder's plus the part header.
    let (engine, bare) = (
        session(&mut in_data_mode(), &src, &mut out),
        encoder(&src, &mut out),
    );
    assert!(engine > bare && engine - bare < 512, "{engine} vs {bare}");

    let mut group = c.benchmark_group("data_mode/4MiB");
    group.throughput(Throughput::Bytes(SIZE as u64));
    group.sample_size(30);
    group.bench_function("atmail_session", |b| {
        b.iter_batched_ref(
            in_data_mode,
            |s| session(s, black_box(&src), &mut out),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("atmail_encoder", |b| {
        b.iter(|| encoder(black_box(&src), &mut out))
    });
    group.bench_function("base64_simd_raw", |b| {
        b.iter(|| {
            base64_simd::STANDARD
                .encode(black_box(&src), base64_simd::Out::from_slice(&mut raw))
                .len()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
