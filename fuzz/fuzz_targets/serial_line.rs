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
use atmail_core::session::{Event, Session, Stopped};
use libfuzzer_sys::fuzz_target;

fn serve(s: &mut Session, now: u64) {
    while let Some(event) = s.poll_event() {
        match event {
            Event::Identity => s.set_identity(
                Token::new(b"Wed, 25 Nov 2026 10:00:00 +0000", true).unwrap(),
                MessageId::new(b"<1@fibocom.com>").unwrap(),
            ),
            Event::Command(_) => s.answer_command(b"\r\nOK\r\n").unwrap(),
            Event::Connect(_) => s.handle_connected(now, None),
            // No server answers: a close is the only thing it asks then.
            _ => {}
        }
    }
    assert_eq!(s.peek_event(), None, "every event is handed out");
    let mut buf = [0u8; 512];
    while s.poll_host(&mut buf) > 0 {}
    while s.poll_server(now, &mut buf) > 0 {}
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
            let progress = s.handle_host(now, rest, &mut out);
            let (r, w) = (progress.read, progress.written);
            assert!(r <= rest.len() && w <= out.len());
            assert_eq!(r == rest.len(), progress.stopped == Stopped::InputEmpty);
            rest = &rest[r..];
            if r == 0 && w == 0 {
                serve(&mut s, now);
                let again = s.handle_host(now, rest, &mut out);
                let moved = again.read > 0 || again.written > 0;
                assert!(moved || again.stopped == Stopped::Caller, "livelock");
                rest = &rest[again.read..];
            }
        }
        serve(&mut s, now);
    }
    s.handle_timeout(u64::MAX / 4);
    serve(&mut s, u64::MAX / 4);
});
