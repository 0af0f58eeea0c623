//! The header encoder: a subject and an attachment name in each charset.
//! The oracle decodes every RFC 2047 encoded-word alone under its own
//! label (and the RFC 2231 `filename*` parameter) and compares the text
//! with the input; every line stays within 78 columns.
#![no_main]

use arbitrary::Arbitrary;
use atmail_core::charset::Charset;
use atmail_core::header::{self, Text};
use atmail_core::out::Out;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    code: u8,
    text: Vec<u8>,
}

struct Buf(Vec<u8>);

impl Out for Buf {
    fn put(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
}

/// The header's value with folding undone, split into its tokens.
fn unfold(header: &[u8]) -> String {
    let text = String::from_utf8(header.to_vec()).expect("headers are ASCII");
    for line in text.split("\r\n") {
        assert!(line.len() <= 78, "a line of {}: {line:?}", line.len());
    }
    text.replace("\r\n", "")
}

fn decode_word(word: &str) -> String {
    let inner = word
        .strip_prefix("=?")
        .and_then(|w| w.strip_suffix("?="))
        .expect("a word");
    let mut parts = inner.split('?');
    let (label, b, payload) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    assert_eq!(b, "B");
    assert!(word.len() <= 75, "a word of {}", word.len());
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .expect("base64");
    let encoding = encoding_rs::Encoding::for_label(label.as_bytes()).expect("a known label");
    encoding
        .decode_without_bom_handling_and_without_replacement(&bytes)
        .expect("every word decodes alone")
        .into_owned()
}

fn subject_text(value: &str) -> String {
    if !value.trim_start().starts_with("=?") {
        return value.trim_start().to_owned();
    }
    value.split_whitespace().map(decode_word).collect()
}

fn percent_decode(value: &str) -> Vec<u8> {
    let bytes = value.as_bytes();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&value[i + 1..i + 3], 16).expect("hex"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// The decoder of each session charset: the oracle for what the engine
/// accepted.
fn encoding(charset: Charset) -> &'static encoding_rs::Encoding {
    match charset {
        Charset::UsAscii => encoding_rs::WINDOWS_1252,
        Charset::Utf8 => encoding_rs::UTF_8,
        Charset::Gb2312 => encoding_rs::GBK,
        Charset::Big5 => encoding_rs::BIG5,
    }
}

fuzz_target!(|input: Input| {
    let Some(charset) = Charset::from_code(input.code % 4) else {
        return;
    };
    let expected = |bytes: &[u8]| {
        encoding(charset)
            .decode_without_bom_handling_and_without_replacement(bytes)
            .expect("valid text")
            .into_owned()
    };
    if let Ok(subject) = Text::subject(charset, &input.text) {
        let mut out = Buf(Vec::new());
        header::write_subject(&mut out, &subject);
        let value = unfold(&out.0);
        let value = value.strip_prefix("Subject:").expect("a Subject line");
        assert_eq!(subject_text(value), expected(&input.text));
    }
    if let Ok(name) = Text::file_name(charset, &input.text) {
        let mut out = Buf(Vec::new());
        header::write_disposition(&mut out, &name);
        let value = unfold(&out.0);
        let decoded = if let Some(at) = value.find("filename=\"") {
            let rest = &value[at + 10..];
            rest[..rest.rfind('"').unwrap()].as_bytes().to_vec()
        } else {
            // filename*=CHARSET''%XX..., or continuations filename*0*=...; ...
            let mut bytes = Vec::new();
            for param in value.split(';').skip(1) {
                let (_, v) = param.split_once('=').expect("a parameter");
                let v = v.split_once("''").map_or(v, |(_, v)| v);
                bytes.extend(percent_decode(v.trim()));
            }
            bytes
        };
        assert_eq!(decoded, input.text);
        let mut out = Buf(Vec::new());
        header::write_content_type(&mut out, "application/octet-stream", &name);
        unfold(&out.0);
    }
});
