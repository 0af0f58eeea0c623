//! The charset validators against the ones they replaced.
//!
//! Until the firmware work, `charset` validated through `encoding_rs`
//! decoders (GBK and Big5 as the WHATWG Encoding Standard defines them,
//! with GB18030's one- and four-byte forms refused for code 2). The engine
//! now checks against bitmaps of the valid cells, so firmware does not
//! link a decoder's tables. This file keeps the old validator as the
//! reference, proves the new one equal over every 1-, 2- and 4-byte
//! sequence the charsets define (offsets included, whole and split), and
//! generates the bitmaps from `encoding_rs`:
//! `ATMAIL_BLESS=1 cargo test -p atmail-core --test charset_exhaustive`
//! rewrites `core/src/cjk_cells.rs`, and without it the test fails when the
//! committed file differs.

use atmail_core::charset::{Charset, InvalidBytes, Validator};
use encoding_rs::{DecoderResult, Encoding};
use std::fmt::Write as _;

/// Today's validator before the firmware work, verbatim in behaviour.
mod reference {
    use super::*;

    fn encoding(charset: Charset) -> &'static Encoding {
        match charset {
            Charset::UsAscii => encoding_rs::WINDOWS_1252,
            Charset::Utf8 => encoding_rs::UTF_8,
            Charset::Gb2312 => encoding_rs::GBK,
            Charset::Big5 => encoding_rs::BIG5,
        }
    }

    pub fn validate(charset: Charset, bytes: &[u8]) -> Result<(), InvalidBytes> {
        let ascii_end = bytes.iter().position(|&b| b >= 0x80).unwrap_or(bytes.len());
        if charset == Charset::UsAscii || ascii_end == bytes.len() {
            return match ascii_end == bytes.len() {
                true => Ok(()),
                false => Err(InvalidBytes { offset: ascii_end }),
            };
        }
        if charset == Charset::Gb2312 {
            gbk_shape(bytes)?;
        }
        let mut decoder = encoding(charset).new_decoder_without_bom_handling();
        let mut scratch = [0u8; 256];
        let mut read = 0;
        loop {
            let (result, r, _) =
                decoder.decode_to_utf8_without_replacement(&bytes[read..], &mut scratch, true);
            read += r;
            match result {
                DecoderResult::InputEmpty => return Ok(()),
                DecoderResult::OutputFull => continue,
                DecoderResult::Malformed(bad, after) => {
                    let offset = read.saturating_sub(bad as usize + after as usize);
                    return Err(InvalidBytes { offset });
                }
            }
        }
    }

    fn gbk_shape(bytes: &[u8]) -> Result<(), InvalidBytes> {
        let mut lead_pending = false;
        for (i, &b) in bytes.iter().enumerate() {
            if lead_pending {
                lead_pending = false;
                if b.is_ascii_digit() {
                    return Err(InvalidBytes { offset: i - 1 });
                }
            } else if b == 0x80 {
                return Err(InvalidBytes { offset: i });
            } else if b > 0x80 {
                lead_pending = true;
            }
        }
        Ok(())
    }
}

const CHARSETS: [Charset; 4] = [
    Charset::UsAscii,
    Charset::Utf8,
    Charset::Gb2312,
    Charset::Big5,
];

/// Checks one sequence whole and split at `cuts` against the reference.
fn check(charset: Charset, bytes: &[u8], cuts: &[usize]) {
    let want = reference::validate(charset, bytes);
    assert_eq!(charset.validate(bytes), want, "{charset:?} {bytes:02x?}");
    for &cut in cuts.iter().filter(|&&c| c <= bytes.len()) {
        let mut v = Validator::new(charset);
        let split = v
            .feed(&bytes[..cut], false)
            .and_then(|_| v.feed(&bytes[cut..], true));
        assert_eq!(
            split.is_ok(),
            want.is_ok(),
            "{charset:?} {bytes:02x?} cut at {cut}"
        );
    }
}

#[test]
fn every_one_and_two_byte_sequence() {
    for charset in CHARSETS {
        for a in 0..=255u8 {
            check(charset, &[a], &[0, 1]);
            for b in 0..=255u8 {
                check(charset, &[a, b], &[1]);
            }
        }
    }
}

#[test]
fn every_three_byte_utf8_sequence() {
    for a in 0xE0..=0xEFu8 {
        for b in 0..=255u8 {
            for c in 0..=255u8 {
                check(Charset::Utf8, &[a, b, c], &[1]);
            }
        }
    }
}

/// Four-byte UTF-8 leads with every continuation byte and the bytes just
/// outside the continuation range; the three-byte test covers the rest of
/// what a bad second or third byte can be.
#[test]
fn every_four_byte_utf8_sequence() {
    let tails: Vec<u8> = (0x80..=0xBF).chain([0x00, 0x7F, 0xC0, 0xFF]).collect();
    for a in 0xF0..=0xF7u8 {
        for &b in &tails {
            for &c in &tails {
                for &d in &tails {
                    check(Charset::Utf8, &[a, b, c, d], &[2]);
                }
            }
        }
    }
}

/// GB18030's four-byte form, which a host saying GB2312 does not send: all
/// of it is refused, as before. Big5 sees the same bytes as two pairs.
#[test]
fn every_gb18030_four_byte_sequence() {
    for a in 0x81..=0xFEu8 {
        for b in 0x30..=0x39u8 {
            for c in 0x81..=0xFEu8 {
                for d in 0x30..=0x39u8 {
                    check(Charset::Gb2312, &[a, b, c, d], &[2]);
                    check(Charset::Big5, &[a, b, c, d], &[2]);
                }
            }
        }
    }
}

/// A valid pair, then each pair again after it, so offsets past the first
/// character are compared too.
#[test]
fn offsets_after_a_valid_character() {
    for (charset, lead) in [(Charset::Gb2312, b"\xc4\xe3"), (Charset::Big5, b"\xa4\x40")] {
        for a in 0x80..=0xFFu8 {
            for b in 0..=255u8 {
                check(charset, &[lead[0], lead[1], a, b], &[1, 2, 3]);
            }
        }
    }
}

/// Which cells of a double-byte charset `encoding_rs` decodes without
/// error: bit `p % 32` of word `p / 32` for cell `p`.
fn cells(encoding: &'static Encoding, trails: &[u8]) -> Vec<u32> {
    let mut bits = vec![0u32; (126 * trails.len()).div_ceil(32)];
    for lead in 0x81..=0xFEu8 {
        for (i, &trail) in trails.iter().enumerate() {
            if !encoding.decode_without_bom_handling(&[lead, trail]).1 {
                let p = (lead - 0x81) as usize * trails.len() + i;
                bits[p / 32] |= 1 << (p % 32);
            }
        }
    }
    bits
}

/// `charset` checks GBK by shape alone, which holds only while every cell
/// of that shape decodes.
#[test]
fn every_gbk_cell_of_the_shape_decodes() {
    let trails: Vec<u8> = (0x40..=0x7E).chain(0x80..=0xFE).collect();
    let valid: u32 = cells(encoding_rs::GBK, &trails)
        .iter()
        .map(|w| w.count_ones())
        .sum();
    assert_eq!(valid, 126 * 190);
}

/// What `core/src/cjk_cells.rs` holds.
fn cells_source() -> String {
    let trails: Vec<u8> = (0x40..=0x7E).chain(0xA1..=0xFE).collect();
    let bits = cells(encoding_rs::BIG5, &trails);
    let count: u32 = bits.iter().map(|w| w.count_ones()).sum();
    // Most words are alike (all ones, all zeros): each distinct word is
    // kept once, in order of first use, and each word of the bitmap is an
    // index into them (the flash of a firmware is counted in bytes).
    let mut words: Vec<u32> = Vec::new();
    let index: Vec<u8> = bits
        .iter()
        .map(|w| {
            let i = words.iter().position(|x| x == w).unwrap_or_else(|| {
                words.push(*w);
                words.len() - 1
            });
            u8::try_from(i).unwrap()
        })
        .collect();
    let mut out = String::from(
        "//! Generated by `ATMAIL_BLESS=1 cargo test -p atmail-core --test\n\
         //! charset_exhaustive` from `encoding_rs`; do not edit.\n\
         //!\n\
         //! Which double-byte cells Big5 (with HKSCS, as the WHATWG Encoding\n\
         //! Standard defines it) decodes: bit `p % 32` of word `p / 32` of\n\
         //! the bitmap is cell `p = (lead - 0x81) * 157 + trail index`, trails\n\
         //! 0x40..=0x7E then 0xA1..=0xFE; word `w` is\n\
         //! `BIG5_HKSCS_WORDS[BIG5_HKSCS_WORD_OF[w]]`.\n\n",
    );
    writeln!(out, "/// {count} valid cells of {}.", 126 * trails.len()).unwrap();
    writeln!(
        out,
        "pub(crate) static BIG5_HKSCS_WORD_OF: [u8; {}] = [",
        index.len()
    )
    .unwrap();
    // As rustfmt lays them out: as many to a line as fit in 99 columns.
    let mut line = String::from("   ");
    for i in &index {
        let item = format!(" {i},");
        if line.len() + item.len() > 99 {
            writeln!(out, "{line}").unwrap();
            line = String::from("   ");
        }
        line.push_str(&item);
    }
    writeln!(out, "{line}").unwrap();
    out.push_str("];\n");
    writeln!(out, "/// The distinct words of the bitmap.").unwrap();
    writeln!(
        out,
        "pub(crate) static BIG5_HKSCS_WORDS: [u32; {}] = [",
        words.len()
    )
    .unwrap();
    for row in words.chunks(8) {
        let items: Vec<String> = row.iter().map(|w| format!("{w:#010x}")).collect();
        writeln!(out, "    {},", items.join(", ")).unwrap();
    }
    out.push_str("];\n");
    out
}

#[test]
fn the_committed_cells_are_generated_from_encoding_rs() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/cjk_cells.rs");
    let want = cells_source();
    if std::env::var_os("ATMAIL_BLESS").is_some() {
        std::fs::write(path, &want).unwrap();
    }
    let have = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        have == want,
        "{path} differs from what encoding_rs gives; rerun with ATMAIL_BLESS=1"
    );
}
