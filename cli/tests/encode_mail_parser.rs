//! `atmail encode` output read back by an independent Rust parser,
//! `mail-parser`: subjects in every charset, names, and attachment bytes.

use mail_parser::{MessageParser, MimeHeaders};
use std::path::{Path, PathBuf};
use std::process::Command;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("atmail-mp-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn encode(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = dir.join("out.eml");
    let status = Command::new(env!("CARGO_BIN_EXE_atmail"))
        .args([
            "encode",
            "--date",
            "Wed, 25 Nov 2026 10:00:00 +0000",
            "--message-id",
            "<mp@example.com>",
        ])
        .args(["--from", "a@example.com", "--to", "b@example.com", "-o"])
        .arg(&out)
        .args(args)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(out).unwrap()
}

#[test]
fn subjects_decode_in_every_charset() {
    let dir = scratch("subjects");
    let cases = [
        (
            "ascii",
            "A plain subject that is long enough to need folding onto a second line, surely",
        ),
        (
            "utf-8",
            "Grüße 你好 😀 — a subject long enough for several encoded words, 中文字符",
        ),
        ("gb2312", "你好 smtp"),
        ("gb2312", "朱镕基中文主题测试，多个编码字分开传输"),
        ("big5", "許功蓋 繁體中文郵件主題測試，多個編碼字"),
    ];
    for (charset, subject) in cases {
        let raw = encode(&dir, &["--charset", charset, "--subject", subject]);
        let msg = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(msg.subject(), Some(subject), "{charset}");
    }
}

#[test]
fn attachments_come_back_byte_identical() {
    let dir = scratch("attach");
    let data: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let file = dir.join("blob.bin");
    std::fs::write(&file, &data).unwrap();
    let body = dir.join("body.txt");
    std::fs::write(&body, "正文\r\n".as_bytes()).unwrap();
    let spec = format!(
        "{}=数据文件很长的名字数据文件很长的名字数据文件很长.bin",
        file.display()
    );
    let raw = encode(&dir, &["--body", body.to_str().unwrap(), "--attach", &spec]);
    let msg = MessageParser::default().parse(&raw).unwrap();
    assert_eq!(msg.body_text(0).as_deref(), Some("正文\r\n"));
    let attachment = msg.attachment(0).unwrap();
    assert_eq!(
        attachment.attachment_name(),
        Some("数据文件很长的名字数据文件很长的名字数据文件很长.bin")
    );
    assert_eq!(attachment.contents(), &data[..]);
}
