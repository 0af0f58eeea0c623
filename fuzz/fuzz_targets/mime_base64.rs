//! The MIME base64 encoder against the `base64` crate: any input in any
//! pushes into any output room gives 76-column CRLF lines that decode to
//! the input.
#![no_main]

use arbitrary::Arbitrary;
use atmail_core::mime_base64::MimeBase64Encoder;
use atmail_core::CoderResult;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    data: Vec<u8>,
    cuts: Vec<u16>,
    room: u16,
}

fuzz_target!(|input: Input| {
    let mut encoder = MimeBase64Encoder::new();
    let mut out = Vec::new();
    let mut dst = vec![0u8; usize::from(input.room % 512) + 1];
    let mut cuts: Vec<usize> = input
        .cuts
        .iter()
        .map(|&c| usize::from(c) % (input.data.len() + 1))
        .collect();
    cuts.sort_unstable();
    cuts.push(input.data.len());
    let mut start = 0;
    for (i, &cut) in cuts.iter().enumerate() {
        let last = i + 1 == cuts.len();
        let mut rest = &input.data[start..cut];
        loop {
            let (result, r, w) = encoder.encode(rest, &mut dst, last);
            out.extend_from_slice(&dst[..w]);
            rest = &rest[r..];
            if result == CoderResult::InputEmpty {
                assert!(rest.is_empty());
                break;
            }
            assert!(
                r > 0 || w > 0,
                "no progress with {} bytes of room",
                dst.len()
            );
        }
        start = cut;
    }
    for line in out.split(|&b| b == b'\n') {
        assert!(line.len() <= 77, "a line of {}", line.len());
    }
    let text: Vec<u8> = out
        .iter()
        .copied()
        .filter(|b| !b"\r\n".contains(b))
        .collect();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("valid base64");
    assert_eq!(decoded, input.data);
});
