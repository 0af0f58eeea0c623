//! UTF-8 command-line text into a session charset, at the CLI's edge.
//!
//! The core never transcodes: a modem host sends bytes already in its
//! charset. The CLI takes UTF-8 arguments, so it converts them once here,
//! and a character the charset cannot hold is an error that names it
//! rather than a `?` or an HTML entity in the mail.

use atmail_core::charset::Charset;
use encoding_rs::EncoderResult;

/// The `encoding_rs` encoding whose encoder writes `charset`: the
/// supersets the core accepts (GBK under code 2, Big5-HKSCS under code 3).
pub fn encoding(charset: Charset) -> &'static encoding_rs::Encoding {
    match charset {
        Charset::UsAscii => encoding_rs::WINDOWS_1252,
        Charset::Utf8 => encoding_rs::UTF_8,
        Charset::Gb2312 => encoding_rs::GBK,
        Charset::Big5 => encoding_rs::BIG5,
    }
}

/// Converts `text` into `charset`'s bytes.
pub fn to_charset(text: &str, charset: Charset, what: &str) -> Result<Vec<u8>, String> {
    let unmappable = |c: char| {
        format!(
            "{what}: character '{c}' (U+{:04X}) cannot be written in {}",
            c as u32,
            name(charset)
        )
    };
    if charset == Charset::UsAscii {
        return match text.chars().find(|c| !c.is_ascii()) {
            Some(c) => Err(unmappable(c)),
            None => Ok(text.as_bytes().to_vec()),
        };
    }
    let mut encoder = encoding(charset).new_encoder();
    let mut out = vec![0u8; text.len() * 2 + 16];
    let (result, read, written) =
        encoder.encode_from_utf8_without_replacement(text, &mut out, true);
    match result {
        EncoderResult::InputEmpty => {}
        EncoderResult::Unmappable(c) => return Err(unmappable(c)),
        EncoderResult::OutputFull => {
            return Err(format!("{what}: text too long ({read} bytes converted)"))
        }
    }
    out.truncate(written);
    // encoding_rs' GBK encoder writes the euro sign as the single byte 0x80,
    // which strict GBK readers refuse; the core refuses it too.
    if let Err(e) = charset.validate(&out) {
        let c = text
            .chars()
            .nth(char_index_of_byte(&out, e.offset, charset))
            .unwrap_or('?');
        return Err(unmappable(c));
    }
    Ok(out)
}

/// Which character of the text the byte at `offset` belongs to.
fn char_index_of_byte(bytes: &[u8], offset: usize, charset: Charset) -> usize {
    atmail_core::charset::CharIndices::new(charset, bytes)
        .take_while(|&(at, _)| at < offset)
        .count()
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
