//! Whole messages, as a Rust user choosing a mail library compares them:
//! the same message (a small body, a CJK subject, one attachment of 64 KiB,
//! 1 MiB or 20 MiB with a CJK name) built by atmail's message writer, by
//! `mail-builder` and by `lettre`'s builder, each the way its documentation
//! shows. Into a sink where the library can stream (atmail, `mail-builder`'s
//! `write_to`), and into memory for all three (`lettre` only builds into
//! memory). Every output is parsed with `mail-parser` before timing: the
//! subject, the body and the attachment must come back as they went in.

use atmail_benches::random;
use atmail_core::charset::Charset;
use atmail_core::header::{Address, Text, Token};
use atmail_core::message::{
    Boundary, MessageHead, MessageId, MessageWriter, Recipient, RecipientKind,
};
use atmail_core::CoderResult;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::io::Write;

const FROM: &str = "wangww@fibocom.com";
const TO: &str = "xiangj@fibocom.com";
const SUBJECT: &str = "你好 smtp：模块报告";
const BODY: &str = "Hello from the G510.\r\nThe report is attached.\r\n";
const NAME: &str = "报告.bin";
const DATE: &str = "Thu, 26 Nov 2026 08:00:00 +0000";
const MESSAGE_ID: &str = "1.g510@fibocom.com";

/// atmail's message writer through a 64 KiB buffer into `out`.
fn atmail(attachment: &[u8], out: &mut impl Write) -> usize {
    let to = [Recipient {
        kind: RecipientKind::To,
        address: Address::new(TO.as_bytes()).expect("address"),
    }];
    let id = format!("<{MESSAGE_ID}>");
    let head = MessageHead {
        from: Address::new(FROM.as_bytes()).expect("address"),
        recipients: &to,
        subject: Some(Text::subject(Charset::Utf8, SUBJECT.as_bytes()).expect("subject")),
        date: Token::new(DATE.as_bytes(), true).expect("date"),
        message_id: MessageId::new(id.as_bytes()).expect("id"),
    };
    let name = Text::file_name(Charset::Utf8, NAME.as_bytes()).expect("name");
    let mut w = MessageWriter::new(Charset::Utf8, Boundary::from_seed(id.as_bytes()));
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0;
    let mut flush = |n: usize, buf: &[u8]| {
        out.write_all(&buf[..n]).expect("write");
        total += n;
    };
    loop {
        let (r, n) = w.head(&head, &mut buf).expect("head");
        flush(n, &buf);
        if r == CoderResult::InputEmpty {
            break;
        }
    }
    let mut body = BODY.as_bytes();
    loop {
        let (r, read, n) = w.body(body, &mut buf, true).expect("body");
        flush(n, &buf);
        body = &body[read..];
        if r == CoderResult::InputEmpty {
            break;
        }
    }
    let mut rest = attachment;
    loop {
        let (r, read, n) = w
            .attachment(&name, rest, &mut buf, true)
            .expect("attachment");
        flush(n, &buf);
        rest = &rest[read..];
        if r == CoderResult::InputEmpty {
            break;
        }
    }
    loop {
        let (r, n) = w.finish(&mut buf).expect("finish");
        flush(n, &buf);
        if r == CoderResult::InputEmpty {
            break;
        }
    }
    total
}

fn mail_builder(attachment: &[u8]) -> mail_builder::MessageBuilder<'_> {
    mail_builder::MessageBuilder::new()
        .from(FROM)
        .to(TO)
        .subject(SUBJECT)
        .date(1_795_680_000_i64)
        .message_id(MESSAGE_ID)
        .text_body(BODY)
        .attachment("application/octet-stream", NAME, attachment)
}

fn lettre(attachment: &[u8]) -> Vec<u8> {
    use lettre::message::{header::ContentType, Attachment, MultiPart, SinglePart};
    let kind = ContentType::parse("application/octet-stream").expect("content type");
    lettre::Message::builder()
        .from(FROM.parse().expect("from"))
        .to(TO.parse().expect("to"))
        .subject(SUBJECT)
        .date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_680_000))
        .message_id(Some(format!("<{MESSAGE_ID}>")))
        .multipart(
            MultiPart::mixed()
                .singlepart(SinglePart::plain(BODY.to_string()))
                .singlepart(Attachment::new(NAME.to_string()).body(attachment.to_vec(), kind)),
        )
        .expect("message")
        .formatted()
}

/// What a reader gets back: subject, body and attachment as they went in.
fn check(who: &str, message: &[u8], attachment: &[u8]) {
    use mail_parser::MimeHeaders;
    let parsed = mail_parser::MessageParser::default()
        .parse(message)
        .unwrap_or_else(|| panic!("{who}: not a message"));
    assert_eq!(parsed.subject(), Some(SUBJECT), "{who}: subject");
    let body = parsed
        .body_text(0)
        .unwrap_or_else(|| panic!("{who}: no body"));
    assert_eq!(
        body.replace("\r\n", "\n").trim_end(),
        BODY.replace("\r\n", "\n").trim_end(),
        "{who}: body"
    );
    let part = parsed
        .attachment(0)
        .unwrap_or_else(|| panic!("{who}: no attachment"));
    assert_eq!(part.attachment_name(), Some(NAME), "{who}: attachment name");
    assert!(part.contents() == attachment, "{who}: attachment bytes");
}

fn bench(c: &mut Criterion) {
    for (size, label) in [(64 << 10, "64KiB"), (1 << 20, "1MiB"), (20 << 20, "20MiB")] {
        let attachment = random(size, 0x9E37_79B9_7F4A_7C15);
        let mut ours = Vec::new();
        atmail(&attachment, &mut ours);
        check("atmail", &ours, &attachment);
        let mut theirs = Vec::new();
        mail_builder(&attachment)
            .write_to(&mut theirs)
            .expect("mail-builder");
        check("mail-builder", &theirs, &attachment);
        check("lettre", &lettre(&attachment), &attachment);

        let mut group = c.benchmark_group(format!("compose/{label}"));
        group.throughput(Throughput::Bytes(size as u64));
        if size >= 1 << 20 {
            group.sample_size(10);
        }
        group.bench_with_input(
            BenchmarkId::new("atmail_sink", label),
            &attachment,
            |b, a| b.iter(|| atmail(black_box(a), &mut std::io::sink())),
        );
        group.bench_with_input(
            BenchmarkId::new("mail_builder_sink", label),
            &attachment,
            |b, a| b.iter(|| mail_builder(black_box(a)).write_to(std::io::sink())),
        );
        group.bench_with_input(
            BenchmarkId::new("atmail_memory", label),
            &attachment,
            |b, a| {
                b.iter(|| {
                    let mut out = Vec::new();
                    atmail(black_box(a), &mut out);
                    out
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("mail_builder_memory", label),
            &attachment,
            |b, a| {
                b.iter(|| {
                    let mut out = Vec::new();
                    mail_builder(black_box(a))
                        .write_to(&mut out)
                        .expect("write");
                    out
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("lettre_memory", label),
            &attachment,
            |b, a| b.iter(|| lettre(black_box(a))),
        );
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
