//! UTF-8 command-line text into a session charset, at the CLI's edge.
//!
//! The core never transcodes: a modem host sends bytes already in its
//! charset. The CLI takes UTF-8 arguments, so it converts them once here,
//! and a character the charset cannot hold is an error that names it
//! rather than a `?` or an HTML entity in the mail.

use atmail_core::charset::Charset;

/// Converts `text` into `charset`'s bytes; `what` names it in the error.
/// The conversion is the C ABI's (`atmail_transcode`), so the CLI and the
/// Python package turn the same text into the same bytes.
pub fn to_charset(text: &str, charset: Charset, what: &str) -> Result<Vec<u8>, String> {
    atmail_ffi::transcode::to_charset(text, charset).map_err(|c| {
        format!(
            "{what}: character '{c}' (U+{:04X}) cannot be written in {}",
            c as u32,
            name(charset)
        )
    })
}

/// The `--charset` spelling of a charset.
pub fn name(charset: Charset) -> &'static str {
    match charset {
        Charset::UsAscii => "ascii",
        Charset::Utf8 => "utf-8",
        Charset::Gb2312 => "gb2312",
        Charset::Big5 => "big5",
    }
}

/// Parses a `--charset` value.
pub fn parse_charset(s: &str) -> Result<Charset, String> {
    match s.to_ascii_lowercase().as_str() {
        "ascii" | "us-ascii" | "0" => Ok(Charset::UsAscii),
        "utf-8" | "utf8" | "1" => Ok(Charset::Utf8),
        "gb2312" | "gbk" | "2" => Ok(Charset::Gb2312),
        "big5" | "3" => Ok(Charset::Big5),
        _ => Err(format!(
            "unknown charset '{s}' (ascii, utf-8, gb2312, big5)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcodes_and_names_what_does_not_fit() {
        assert_eq!(
            to_charset("你好 smtp", Charset::Gb2312, "subject").unwrap(),
            b"\xc4\xe3\xba\xc3 smtp"
        );
        assert_eq!(
            to_charset("許功蓋", Charset::Big5, "subject").unwrap(),
            b"\xb3\x5c\xa5\x5c\xbb\x5c"
        );
        let err = to_charset("price €5", Charset::Gb2312, "subject").unwrap_err();
        assert!(err.contains("'€' (U+20AC)"), "{err}");
        let err = to_charset("😀", Charset::Big5, "subject").unwrap_err();
        assert!(err.contains("U+1F600"), "{err}");
        assert!(to_charset("é", Charset::UsAscii, "name")
            .unwrap_err()
            .contains("U+00E9"));
    }
}
