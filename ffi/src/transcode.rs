//! UTF-8 text into a session charset, for hosts that hold text as Unicode
//! (the CLI's arguments, Python's `str`).
//!
//! The core never transcodes: a modem host sends bytes already in its
//! charset. Hosts with Unicode text convert it once, here, with
//! `encoding_rs`' encoders for the supersets the core accepts (GBK under
//! GB2312, Big5-HKSCS under BIG5), so the CLI and the Python package turn
//! the same text into the same bytes. A character the charset cannot hold
//! is an error that names it, never a `?` or an HTML entity in a mail.
//! Host builds only (the `std` feature): a firmware has no Unicode text.

use crate::atmail_status;
use crate::header::charset;
use atmail_core::charset::{CharIndices, Charset};
use encoding_rs::EncoderResult;

/// The `encoding_rs` encoding whose encoder writes `charset`.
pub fn encoding(charset: Charset) -> &'static encoding_rs::Encoding {
    match charset {
        Charset::UsAscii => encoding_rs::WINDOWS_1252,
        Charset::Utf8 => encoding_rs::UTF_8,
        Charset::Gb2312 => encoding_rs::GBK,
        Charset::Big5 => encoding_rs::BIG5,
    }
}

/// `text` in `charset`'s bytes (never longer than `text`), or the first
/// character the charset cannot hold.
pub fn to_charset(text: &str, charset: Charset) -> Result<Vec<u8>, char> {
    if charset == Charset::UsAscii {
        return match text.chars().find(|c| !c.is_ascii()) {
            Some(c) => Err(c),
            None => Ok(text.as_bytes().to_vec()),
        };
    }
    let mut encoder = encoding(charset).new_encoder();
    // Every character takes at most as many bytes in these charsets as in
    // UTF-8; the slack is for the encoder's own worst-case check.
    let mut out = vec![0u8; text.len() * 2 + 16];
    let (result, _, written) = encoder.encode_from_utf8_without_replacement(text, &mut out, true);
    if let EncoderResult::Unmappable(c) = result {
        return Err(c);
    }
    out.truncate(written);
    // encoding_rs' GBK encoder writes the euro sign as the single byte
    // 0x80, which strict GBK readers refuse; the core refuses it too.
    if let Err(e) = charset.validate(&out) {
        let index = CharIndices::new(charset, &out)
            .take_while(|&(at, _)| at < e.offset)
            .count();
        return Err(text
            .chars()
            .nth(index)
            .unwrap_or(char::REPLACEMENT_CHARACTER));
    }
    Ok(out)
}

/// Converts the UTF-8 text `src[0..src_len]` into `charset` (an
/// `atmail_charset` code), writing it to `dst[0..dst_len]` and its length
/// to `*written`. The result is never longer than the input: a `dst` of
/// `src_len` bytes always has room; a smaller one that is too small gets
/// `INSUFFICIENT_SIZE` with `*written` set to `src_len`. A character the
/// charset cannot hold gets `INVALID_TEXT` with its code point in
/// `*unmappable`; input that is not UTF-8 gets `INVALID_PARAMETER`.
///
/// Host builds only (the `std` feature).
///
/// # Undefined behavior
/// `src` readable for `src_len` bytes and `dst` writable for `dst_len`
/// bytes (either NULL when its length is 0); `written` and `unmappable`
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn atmail_transcode(
    charset_code: u32,
    src: *const u8,
    src_len: usize,
    dst: *mut u8,
    dst_len: usize,
    written: *mut usize,
    unmappable: *mut u32,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let src = try_slice!(src, src_len);
        let dst = try_slice_mut!(dst, dst_len);
        let (written, unmappable) = (try_out!(written), try_out!(unmappable));
        let Some(charset) = charset(charset_code) else {
            return atmail_status::InvalidParameter;
        };
        let Ok(text) = core::str::from_utf8(src) else {
            return atmail_status::InvalidParameter;
        };
        let bytes = match to_charset(text, charset) {
            Ok(bytes) => bytes,
            Err(c) => {
                unmappable.set(u32::from(c));
                return atmail_status::InvalidText;
            }
        };
        if bytes.len() > dst.len() {
            written.set(src.len());
            return atmail_status::InsufficientSize;
        }
        dst[..bytes.len()].copy_from_slice(&bytes);
        written.set(bytes.len());
        atmail_status::Ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcodes_and_names_what_does_not_fit() {
        assert_eq!(
            to_charset("你好 smtp", Charset::Gb2312).unwrap(),
            b"\xc4\xe3\xba\xc3 smtp"
        );
        assert_eq!(
            to_charset("許功蓋", Charset::Big5).unwrap(),
            b"\xb3\x5c\xa5\x5c\xbb\x5c"
        );
        assert_eq!(to_charset("price €5", Charset::Gb2312), Err('€'));
        assert_eq!(to_charset("😀", Charset::Big5), Err('😀'));
        assert_eq!(to_charset("é", Charset::UsAscii), Err('é'));
    }

    /// `atmail_transcode` into a buffer of `cap` bytes: the status, the
    /// buffer up to `*written` (which may pass `cap`: the size needed)
    /// and the unmappable code point.
    fn transcode(charset: u32, text: &[u8], cap: usize) -> (atmail_status, Vec<u8>, u32) {
        let (mut dst, mut written, mut bad) = (vec![0u8; cap], 0usize, 0u32);
        // SAFETY: valid buffers and out-pointers.
        let status = unsafe {
            atmail_transcode(
                charset,
                text.as_ptr(),
                text.len(),
                dst.as_mut_ptr(),
                cap,
                &mut written,
                &mut bad,
            )
        };
        dst.resize(written, 0);
        (status, dst, bad)
    }

    #[test]
    fn through_the_c_abi() {
        let text = "許功蓋".as_bytes();
        let (status, bytes, _) = transcode(3, text, 9);
        assert_eq!(
            (status, &bytes[..]),
            (atmail_status::Ok, &b"\xb3\x5c\xa5\x5c\xbb\x5c"[..])
        );
        let (status, _, bad) = transcode(2, "a€".as_bytes(), 9);
        assert_eq!((status, bad), (atmail_status::InvalidText, 0x20AC));
        let (status, bytes, _) = transcode(3, text, 2);
        assert_eq!(
            (status, bytes.len()),
            (atmail_status::InsufficientSize, text.len())
        );
        assert_eq!(transcode(1, b"\xff", 9).0, atmail_status::InvalidParameter);
        assert_eq!(transcode(7, b"a", 9).0, atmail_status::InvalidParameter);
    }
}
