//! The data-mode framer: bytes in pushes at times from the input. Asserts
//! the payload is exactly the input minus the one escape that ended it (a
//! `+++` with guard silence on both sides), that nothing comes after an
//! end, and that the payload count matches what was handed out.
#![no_main]

use arbitrary::Arbitrary;
use atmail_core::framer::{DataLimits, End, Framed, Framer};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    guard_ms: u8,
    idle_ms: Option<u16>,
    time_limit_ms: u16,
    max_bytes: u16,
    pushes: Vec<(u8, Vec<u8>)>,
}

fuzz_target!(|input: Input| {
    let limits = DataLimits {
        guard_ms: input.guard_ms.into(),
        idle_ms: input.idle_ms.map(u32::from),
        time_limit_ms: input.time_limit_ms.into(),
        max_bytes: input.max_bytes.into(),
    };
    let mut framer = Framer::new(0, limits);
    let (mut now, mut sent, mut payload) = (0u64, Vec::new(), Vec::new());
    let mut ended = None;
    for (wait, bytes) in &input.pushes {
        now += u64::from(*wait) * 7;
        let mut rest = &bytes[..];
        while ended.is_none() {
            let (event, n) = framer.push(now, rest);
            assert!(n <= rest.len());
            sent.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            match event {
                Framed::Data(d) => payload.extend_from_slice(d),
                Framed::End(end) => ended = Some(end),
                Framed::NeedMore => break,
            }
        }
        if ended.is_some() {
            break;
        }
    }
    // Time runs out at last: the mode ends one way or another.
    while ended.is_none() {
        match framer.poll(u64::MAX / 4) {
            Framed::Data(d) => payload.extend_from_slice(d),
            Framed::End(end) => ended = Some(end),
            Framed::NeedMore => unreachable!("a time limit always ends data mode"),
        }
    }
    assert_eq!(framer.payload_len(), payload.len() as u64);
    assert!(payload.len() as u64 <= limits.max_bytes || ended == Some(End::Oversize));
    match ended {
        Some(End::Escape) => {
            assert!(sent.ends_with(b"+++"));
            assert_eq!(payload, sent[..sent.len() - 3]);
        }
        Some(End::Idle) | Some(End::TimeLimit) => assert!(sent.starts_with(&payload)),
        _ => {}
    }
    assert_eq!(framer.next_deadline(), None);
});
