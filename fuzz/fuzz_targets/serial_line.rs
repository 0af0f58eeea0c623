//! The session's serial entry point alone: arbitrary host bytes in
//! arbitrary pieces, with the clock advanced from the input and the
//! caller's duties done (commands that are not the engine's get `OK`, SEND
//! gets an identity, a connection is opened and closed when asked, no
//! server ever answers). Asserts: no panic (debug assertions on, the host
//! queue's and the impossible states' among them), counts within bounds,
//! and no livelock: once its output is drained and nothing is asked of the
//! caller, the session takes host bytes again.
//!
//! The input is pieces, each `wait len bytes`: `wait` x 10 ms pass, then
//! `len` host bytes arrive at once (so seeds are plain AT scripts; see
//! `fuzz/make_seeds.py`).
#![no_main]

use atmail_core::header::Token;
use atmail_core::message::MessageId;
use atmail_core::session::{Pending, Session};
use libfuzzer_sys::fuzz_target;

fn serve(s: &mut Session, now: u64) {
    match s.pending() {
        Some(Pending::Identity) => s.set_identity(
            Token::new(b"Wed, 25 Nov 2026 10:00:00 +0000", true).unwrap(),
            MessageId::new(b"<1@fibocom.com>").unwrap(),
        ),
        Some(Pending::Command(_)) => s.answer_command(b"\r\nOK\r\n").unwrap(),
        _ => {}
    }
    let mut buf = [0u8; 512];
    while s.poll_host(&mut buf) > 0 {}
    while s.poll_server(&mut buf, now) > 0 {}
    if s.poll_close() {
        s.handle_closed();
    }
    if s.poll_connect().is_some() {
        s.handle_connected(now, None);
    }
    let _ = s.poll_start_tls();
    let _ = s.poll_failure();
}

fuzz_target!(|data: &[u8]| {
    let mut s = Session::new();
    let mut now = 0u64;
    let mut out = [0u8; 4096];
    let mut data = data;
    while let [wait, len, rest @ ..] = data {
        let (bytes, rest) = rest.split_at(usize::from(*len).min(rest.len()));
        data = rest;
        now += u64::from(*wait) * 10;
        s.handle_timeout(now);
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let (r, w) = s.handle_host(rest, now, &mut out);
            assert!(r <= rest.len() && w <= out.len());
            rest = &rest[r..];
            if r == 0 && w == 0 {
                serve(&mut s, now);
                let (r, w) = s.handle_host(rest, now, &mut out);
                assert!(r > 0 || w > 0 || s.pending().is_some(), "livelock");
                rest = &rest[r..];
            }
        }
        serve(&mut s, now);
    }
    s.handle_timeout(u64::MAX / 4);
    serve(&mut s, u64::MAX / 4);
});
