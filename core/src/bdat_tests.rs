//! `BDAT` and `BINARYMIME` through the whole session, against a scripted
//! RFC 3030 server in the test: the transfer each mode chooses for each
//! offer, chunk counts and `LAST`, binary parts byte-exact, refusals and
//! aborts (no further chunk, never `LAST`, RSET then QUIT), and the same
//! bytes on the wire however host input, server replies and buffers are
//! cut. Only the public API is used.

use crate::config::Transfer;
use crate::header::Token;
use crate::message::{Boundary, MessageId};
use crate::session::{Event, Session};
use proptest::prelude::*;
use std::boxed::Box;
use std::string::String;
use std::vec;
use std::vec::Vec;

const DATE: &[u8] = b"Wed, 25 Nov 2026 10:00:00 +0000";
const MESSAGE_ID: &[u8] = b"<1@fibocom.com>";

/// What the server reads next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reading {
    Lines,
    Chunk { left: usize, last: bool },
    Data,
}

/// A server that follows RFC 3030 to the letter: `BDAT` octet counts
/// exact, `BODY=BINARYMIME` only with `BDAT` (503 to `DATA` after it), a
/// reply per chunk (the refused one's code, 554 to any chunk after it).
struct Server {
    keywords: Vec<&'static str>,
    /// The chunk (counted from 0) refused, and its code.
    refuse: Option<(usize, u16)>,
    input: Vec<u8>,
    out: Vec<u8>,
    reading: Reading,
    greeted: bool,
    binary: bool,
    failed: bool,
    commands: Vec<String>,
    /// Each chunk's count and `LAST`.
    chunks: Vec<(usize, bool)>,
    message: Vec<u8>,
    delivered: Option<Vec<u8>>,
    /// For each `BDAT`, the reply bytes the client had not read when it
    /// came: not 0 means the client did not wait for an earlier reply.
    unread_at_bdat: Vec<usize>,
}

impl Server {
    fn new(keywords: &[&'static str]) -> Self {
        Server {
            keywords: keywords.to_vec(),
            refuse: None,
            input: Vec::new(),
            out: Vec::new(),
            reading: Reading::Lines,
            greeted: false,
            binary: false,
            failed: false,
            commands: Vec::new(),
            chunks: Vec::new(),
            message: Vec::new(),
            delivered: None,
            unread_at_bdat: Vec::new(),
        }
    }

    fn greet(&mut self) {
        if !self.greeted {
            self.greeted = true;
            self.out.extend_from_slice(b"220 mx ESMTP\r\n");
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
        loop {
            match self.reading {
                Reading::Lines => {
                    let Some(eol) = self.input.windows(2).position(|w| w == b"\r\n") else {
                        return;
                    };
                    let line: Vec<u8> = self.input.drain(..eol + 2).collect();
                    let line = String::from_utf8(line[..eol].to_vec()).unwrap();
                    self.command(line);
                }
                Reading::Chunk { left, last } => {
                    let take = left.min(self.input.len());
                    let bytes: Vec<u8> = self.input.drain(..take).collect();
                    self.message.extend_from_slice(&bytes);
                    self.reading = Reading::Chunk {
                        left: left - take,
                        last,
                    };
                    if left - take > 0 {
                        return;
                    }
                    self.end_chunk(last);
                }
                Reading::Data => {
                    let Some(end) = self.input.windows(5).position(|w| w == b"\r\n.\r\n") else {
                        return;
                    };
                    let body: Vec<u8> = self.input.drain(..end + 5).collect();
                    self.delivered = Some(body[..end + 2].to_vec());
                    self.out.extend_from_slice(b"250 2.0.0 queued\r\n");
                    self.reading = Reading::Lines;
                }
            }
        }
    }

    fn end_chunk(&mut self, last: bool) {
        let (count, _) = match self.reading {
            Reading::Chunk { .. } => (self.chunks.len(), ()),
            _ => unreachable!(),
        };
        let n = self.commands.last().unwrap().split(' ').nth(1).unwrap();
        self.chunks.push((n.parse().unwrap(), last));
        self.reading = Reading::Lines;
        match self.refuse {
            _ if self.failed => self
                .out
                .extend_from_slice(b"554 5.5.0 transaction failed\r\n"),
            Some((at, code)) if at == count => {
                self.failed = true;
                self.out
                    .extend_from_slice(std::format!("{code} 5.3.4 refused\r\n").as_bytes());
            }
            _ => {
                self.out.extend_from_slice(b"250 2.0.0 chunk ok\r\n");
                if last {
                    self.delivered = Some(core::mem::take(&mut self.message));
                }
            }
        }
    }

    fn command(&mut self, line: String) {
        self.commands.push(line.clone());
        let upper = line.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            let mut lines = vec!["mx"];
            lines.extend(self.keywords.iter());
            let mut r = String::new();
            for (i, l) in lines.iter().enumerate() {
                let sep = if i + 1 == lines.len() { ' ' } else { '-' };
                r += &std::format!("250{sep}{l}\r\n");
            }
            r
        } else if upper.starts_with("MAIL FROM:") {
            self.binary = upper.ends_with(" BODY=BINARYMIME");
            self.failed = false;
            self.message.clear();
            "250 ok\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            "250 ok\r\n".into()
        } else if upper == "DATA" {
            if self.binary {
                "503 5.5.1 BINARYMIME needs BDAT\r\n".into()
            } else {
                self.reading = Reading::Data;
                "354 go\r\n".into()
            }
        } else if let Some(rest) = upper.strip_prefix("BDAT ") {
            self.unread_at_bdat.push(self.out.len());
            let mut words = rest.split(' ');
            let left: usize = words.next().unwrap().parse().unwrap();
            let last = words.next() == Some("LAST");
            self.reading = Reading::Chunk { left, last };
            if left == 0 {
                self.end_chunk(last);
            }
            return;
        } else if upper == "RSET" {
            self.failed = false;
            self.message.clear();
            "250 reset\r\n".into()
        } else if upper == "QUIT" {
            "221 bye\r\n".into()
        } else {
            "500 what\r\n".into()
        };
        self.out.extend_from_slice(reply.as_bytes());
    }

    /// The commands, without chunk octets.
    fn verbs(&self) -> Vec<String> {
        self.commands
            .iter()
            .map(|c| c.split(' ').next().unwrap().to_ascii_uppercase())
            .collect()
    }
}

/// How a run is cut.
#[derive(Clone, Copy, Debug)]
struct Cuts {
    host: usize,
    reply: usize,
    out: usize,
}

const WHOLE: Cuts = Cuts {
    host: 1 << 20,
    reply: 1 << 20,
    out: 4096,
};

/// A session with a host and the server.
struct Run {
    s: Box<Session>,
    server: Server,
    /// Every byte the session sent the server.
    wire: Vec<u8>,
    host: Vec<u8>,
    failures: Vec<u16>,
    now: u64,
    cuts: Cuts,
}

impl Run {
    fn new(keywords: &[&'static str], storage: usize, mode: Option<Transfer>, cuts: Cuts) -> Self {
        let mut s = Box::new(Session::new());
        s.set_echo(false);
        if storage > 0 {
            let _ = s.set_chunk_storage(Box::leak(vec![0u8; storage].into_boxed_slice()));
        }
        if let Some(mode) = mode {
            s.set_transfer(mode);
        }
        Run {
            s,
            server: Server::new(keywords),
            wire: Vec::new(),
            host: Vec::new(),
            failures: Vec::new(),
            now: 0,
            cuts,
        }
    }

    fn events(&mut self) {
        while let Some(event) = self.s.poll_event() {
            match event {
                Event::Identity => self.s.set_identity(
                    Token::new(DATE, true).unwrap(),
                    MessageId::new(MESSAGE_ID).unwrap(),
                ),
                Event::Connect(_) => {
                    self.s.handle_connected(self.now, None);
                    self.server.greet();
                }
                Event::MailFailed(f) => self.failures.push(f.failure.code()),
                _ => {}
            }
        }
    }

    fn pump(&mut self) {
        for _ in 0..100_000 {
            self.events();
            let mut out = vec![0u8; self.cuts.out];
            let n = self.s.poll_server(self.now, &mut out);
            self.wire.extend_from_slice(&out[..n]);
            self.server.feed(&out[..n]);
            let cut = self.cuts.reply.min(self.server.out.len());
            let used = self.s.handle_server(self.now, &self.server.out[..cut]);
            self.server.out.drain(..used);
            let mut buf = [0u8; 64];
            let h = self.s.poll_host(&mut buf);
            self.host.extend_from_slice(&buf[..h]);
            if n == 0 && used == 0 && h == 0 && self.s.peek_event().is_none() {
                return;
            }
        }
        panic!("no end");
    }

    fn serial(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        for _ in 0..1_000_000 {
            if rest.is_empty() {
                break;
            }
            let take = self.cuts.host.min(rest.len());
            let mut out = vec![0u8; self.cuts.out];
            let p = self.s.handle_host(self.now, &rest[..take], &mut out);
            self.wire.extend_from_slice(&out[..p.written]);
            self.server.feed(&out[..p.written]);
            rest = &rest[p.read..];
            self.pump();
        }
        assert!(rest.is_empty(), "host bytes left");
        self.pump();
    }

    fn wait(&mut self, ms: u64) {
        self.now += ms;
        self.s.handle_timeout(self.now);
        self.pump();
    }

    fn host_text(&self) -> String {
        String::from_utf8_lossy(&self.host).into_owned()
    }

    /// The spec case's server (mode 3: these servers have no TLS),
    /// login and recipient.
    fn configure(&mut self) {
        for line in [
            &b"AT+GTSMTPLAND=25,\"mail.fibocom.com\",3\r"[..],
            b"AT+GTSMTPID=\"wangww@fibocom.com\",\"pw\"\r",
            b"AT+GTSMTPDST=1,1,\"xiangj@fibocom.com\"\r",
        ] {
            self.serial(line);
        }
    }

    /// A whole mail: body, attachments, END.
    fn mail(&mut self, body: &[u8], files: &[(&str, &[u8])]) {
        self.configure();
        self.serial(b"AT+GTSMTPSEND=300\r");
        self.data(b"AT+GTSMTPDATA=100\r", body);
        for (name, bytes) in files {
            self.data(
                std::format!("AT+GTSMTPFILE=1,\"{name}\"\r").as_bytes(),
                bytes,
            );
        }
        self.serial(b"AT+GTSMTPEND\r");
        self.wait(1);
    }

    /// A data command and its payload, ended by the escape.
    fn data(&mut self, command: &[u8], payload: &[u8]) {
        self.serial(command);
        self.serial(payload);
        self.wait(1500);
        self.serial(b"+++");
        self.wait(1500);
    }
}

/// What the parts of a message hold, decoded as their
/// `Content-Transfer-Encoding` says.
fn parts(message: &[u8]) -> Vec<(String, Vec<u8>)> {
    let boundary = Boundary::from_seed(MESSAGE_ID);
    let delimiter = [&b"\r\n--"[..], boundary.as_bytes()].concat();
    let mut at = find(message, &delimiter).unwrap();
    let mut parts = Vec::new();
    loop {
        let start = at + delimiter.len();
        if message[start..].starts_with(b"--") {
            return parts;
        }
        let next = start + find(&message[start..], &delimiter).unwrap();
        let part = &message[start + 2..next];
        let split = find(part, b"\r\n\r\n").unwrap();
        let head = String::from_utf8(part[..split].to_vec()).unwrap();
        let body = &part[split + 4..];
        let body = if head.contains("Content-Transfer-Encoding: base64") {
            use base64::Engine as _;
            let text: Vec<u8> = body
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .unwrap()
        } else {
            body.to_vec()
        };
        parts.push((head, body));
        at = next;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The attachment of the spec's worst case: SMTP and modem syntax in it.
fn tricky() -> Vec<u8> {
    let mut bytes = b"\r\n.\r\nBDAT 5 LAST\r\n+++.\r\n\x00\xff".to_vec();
    bytes.extend((0..3000u32).map(|i| (i * 7 % 256) as u8));
    bytes
}

const BOTH: &[&str] = &["PIPELINING", "CHUNKING", "BINARYMIME", "SIZE 100000000"];

#[test]
fn each_mode_with_each_offer_chooses_its_transfer() {
    // (mode, keywords, storage, BDAT, BODY=BINARYMIME)
    let table: &[(Option<Transfer>, &[&'static str], usize, bool, bool)] = &[
        (Some(Transfer::Off), BOTH, 16384, false, false),
        (None, BOTH, 16384, true, true),
        (
            Some(Transfer::Auto),
            &["chunking", "binarymime"],
            16384,
            true,
            true,
        ),
        (
            Some(Transfer::Auto),
            &["CHUNKING", "PIPELINING"],
            16384,
            false,
            false,
        ),
        (Some(Transfer::Auto), &["BINARYMIME"], 16384, false, false),
        (Some(Transfer::Force), &["CHUNKING"], 16384, true, false),
        (
            Some(Transfer::Force),
            &["Chunking", "BinaryMime"],
            16384,
            true,
            true,
        ),
        (
            Some(Transfer::Force),
            &["BINARYMIME", "8BITMIME"],
            16384,
            false,
            false,
        ),
        (Some(Transfer::Auto), BOTH, 0, false, false),
        // The header block does not fit in the storage: DATA.
        (Some(Transfer::Force), BOTH, 64, false, false),
        // Chunks smaller than the message: several, the header block whole
        // in the first.
        (Some(Transfer::Auto), BOTH, 700, true, true),
        (Some(Transfer::Force), &["CHUNKING"], 700, true, false),
    ];
    let file = tricky();
    for &(mode, keywords, storage, bdat, binary) in table {
        let name = std::format!("{mode:?} {keywords:?} {storage}");
        let mut run = Run::new(keywords, storage, mode, WHOLE);
        run.mail(b"Hello\nworld.\n.\n", &[("a.bin", &file)]);
        assert!(
            run.host_text().ends_with("\r\n+GTSMTPSEND: 1\r\n"),
            "{name}: {}",
            run.host_text()
        );
        let verbs = run.server.verbs();
        assert_eq!(verbs.contains(&"BDAT".into()), bdat, "{name}: {verbs:?}");
        assert_eq!(!verbs.contains(&"DATA".into()), bdat, "{name}: {verbs:?}");
        let mail_from = run
            .server
            .commands
            .iter()
            .find(|c| c.starts_with("MAIL"))
            .unwrap();
        assert_eq!(mail_from.ends_with(" BODY=BINARYMIME"), binary, "{name}");
        let message = run.server.delivered.clone().unwrap();
        let parts = parts(&message);
        assert_eq!(parts.len(), 2, "{name}");
        assert_eq!(parts[1].1, file, "{name}: the attachment's bytes");
        let cte = if binary { "binary" } else { "base64" };
        for (head, _) in &parts {
            assert!(
                head.contains(&std::format!("Content-Transfer-Encoding: {cte}")),
                "{name}"
            );
        }
        if binary {
            assert_eq!(
                parts[0].1, b"Hello\r\nworld.\r\n.\r\n",
                "{name}: canonical text"
            );
            let octets = message.len() as f64 / file.len() as f64;
            assert!(octets < 1.2, "{name}: {octets}");
        }
        if bdat {
            let chunks = &run.server.chunks;
            assert_eq!(
                chunks.iter().filter(|c| c.1).count(),
                1,
                "{name}: LAST once"
            );
            assert!(chunks.last().unwrap().1, "{name}: LAST last");
            // Every chunk but the last is the storage's size exactly.
            let (last, full) = chunks.split_last().unwrap();
            assert!(full.iter().all(|c| c.0 == storage), "{name}: {chunks:?}");
            assert!(last.0 <= storage, "{name}");
            assert!(chunks.len() > 1 || storage > message.len(), "{name}");
            let head_end = find(&message, b"\r\n\r\n").unwrap() + 4;
            assert!(
                chunks[0].0 >= head_end,
                "{name}: header block in the first chunk"
            );
        }
        assert_eq!(verbs.last().unwrap(), "QUIT", "{name}");
    }
}

/// Mode 0 (and any mode the server or the storage rules out) is `DATA`
/// exactly as without chunk storage: the same bytes on the wire.
#[test]
fn without_bdat_the_wire_is_the_same_bytes_as_before() {
    let file = tricky();
    let base = {
        let mut run = Run::new(&["PIPELINING"], 0, None, WHOLE);
        run.mail(b"text", &[("a.bin", &file)]);
        run.wire
    };
    for (mode, keywords, storage) in [
        (Transfer::Off, BOTH, 16384),
        (Transfer::Auto, &["PIPELINING", "CHUNKING"][..], 16384),
        (Transfer::Force, &["PIPELINING", "BINARYMIME"][..], 16384),
        (Transfer::Force, BOTH, 0),
    ] {
        let mut run = Run::new(keywords, storage, Some(mode), WHOLE);
        run.mail(b"text", &[("a.bin", &file)]);
        assert_eq!(
            String::from_utf8_lossy(&run.wire),
            String::from_utf8_lossy(&base),
            "{mode:?} {keywords:?} {storage}"
        );
    }
}

#[test]
fn a_refused_chunk_ends_the_mail_with_its_code_and_never_says_last() {
    let file: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    for refused in [0usize, 1, 3] {
        // The host streams as a UART does, so replies are read between
        // its pieces.
        let cuts = Cuts { host: 256, ..WHOLE };
        let mut run = Run::new(BOTH, 512, None, cuts);
        run.server.refuse = Some((refused, 552));
        run.mail(b"text", &[("a.bin", &file)]);
        let text = run.host_text();
        assert!(
            text.contains("\r\n+GTSMTPSEND: 552\r\n"),
            "{refused}: {text}"
        );
        assert!(!text.contains("+GTSMTPSEND: 1\r\n"), "{refused}");
        assert_eq!(run.failures, [552], "{refused}");
        assert!(run.server.delivered.is_none(), "{refused}");
        assert!(
            run.server.chunks.iter().all(|c| !c.1),
            "{refused}: never LAST"
        );
        let verbs = run.server.verbs();
        let tail: Vec<&str> = verbs
            .iter()
            .rev()
            .take(2)
            .rev()
            .map(|v| v.as_str())
            .collect();
        assert_eq!(tail, ["RSET", "QUIT"], "{refused}: {verbs:?}");
        // Nothing after the refusal but what was already on the wire:
        // with replies read as they come, at most one chunk more.
        assert!(
            run.server.chunks.len() <= refused + 2,
            "{refused}: {:?}",
            run.server.chunks
        );
    }
}

#[test]
fn a_refused_last_chunk_fails_the_mail() {
    let mut run = Run::new(BOTH, 16384, None, WHOLE);
    run.server.refuse = Some((0, 554));
    run.mail(b"text", &[]);
    assert!(
        run.host_text().ends_with("\r\n+GTSMTPSEND: 554\r\n"),
        "{}",
        run.host_text()
    );
    assert_eq!(run.server.chunks, [(run.server.chunks[0].0, true)]);
    assert_eq!(run.failures, [554]);
}

#[test]
fn size_still_aborts_early_with_bdat() {
    let file = vec![7u8; 4000];
    let mut run = Run::new(
        &["PIPELINING", "CHUNKING", "BINARYMIME", "SIZE 2000"],
        512,
        None,
        WHOLE,
    );
    run.mail(b"text", &[("a.bin", &file)]);
    let text = run.host_text();
    assert!(text.contains("\r\n+GTSMTPSEND: 552\r\n"), "{text}");
    assert!(run.server.delivered.is_none());
    assert!(run.server.chunks.iter().all(|c| !c.1), "never LAST");
    let staged: usize = run.server.chunks.iter().map(|c| c.0).sum();
    assert!(staged <= 2000, "nothing past SIZE goes: {staged}");
    assert_eq!(run.server.verbs().last().unwrap(), "QUIT");
}

#[test]
fn the_boundary_in_a_binary_part_fails_the_mail_before_last() {
    let boundary = Boundary::from_seed(MESSAGE_ID);
    let mut file = b"some bytes".to_vec();
    file.extend_from_slice(b"\r\n--");
    file.extend_from_slice(boundary.as_bytes());
    file.extend_from_slice(b"-- and more");
    let mut run = Run::new(BOTH, 512, Some(Transfer::Auto), WHOLE);
    run.s.set_verbose_errors(true);
    run.mail(b"text", &[("a.bin", &file)]);
    let text = run.host_text();
    assert!(
        text.contains("+CME ERROR: data holds the MIME boundary"),
        "{text}"
    );
    assert!(run.server.delivered.is_none());
    assert!(run.server.chunks.iter().all(|c| !c.1), "never LAST");
    assert_eq!(run.server.verbs().last().unwrap(), "QUIT");
    // The same bytes in base64 are no collision.
    let mut run = Run::new(BOTH, 512, Some(Transfer::Off), WHOLE);
    run.mail(b"text", &[("a.bin", &file)]);
    assert!(run.host_text().ends_with("+GTSMTPSEND: 1\r\n"));
}

#[test]
fn a_lost_connection_mid_chunks_delivers_nothing() {
    let file = vec![1u8; 3000];
    let mut run = Run::new(BOTH, 512, None, WHOLE);
    run.configure();
    run.serial(b"AT+GTSMTPSEND=300\r");
    run.serial(b"AT+GTSMTPFILE=1,\"a.bin\"\r");
    run.serial(&file[..2000]);
    assert!(run.server.chunks.len() >= 2);
    run.s.handle_closed(run.now);
    run.pump();
    assert!(
        run.host_text().contains("+GTSMTPSEND: 0"),
        "{}",
        run.host_text()
    );
    assert!(run.server.delivered.is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// However host input, server replies and the caller's buffers are
    /// cut, the same bytes go on the wire and the same message arrives.
    #[test]
    fn any_cutting_gives_the_same_wire(
        host in 1usize..700,
        reply in 1usize..40,
        out in 16usize..600,
        storage in prop_oneof![Just(400usize), Just(1000), Just(16384)],
        file in proptest::collection::vec(any::<u8>(), 0..3000),
        mode in prop_oneof![Just(Transfer::Auto), Just(Transfer::Force), Just(Transfer::Off)],
        chunking_only in proptest::bool::ANY,
        body in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'\r'), Just(b'\n'), Just(b'.')], 0..300),
    ) {
        let keywords: &[&'static str] = if chunking_only { &["PIPELINING", "CHUNKING"] } else { BOTH };
        let run_with = |cuts: Cuts| {
            let mut run = Run::new(keywords, storage, Some(mode), cuts);
            run.mail(&body, &[("f.bin", &file)]);
            run
        };
        let base = run_with(WHOLE);
        let cut = run_with(Cuts { host, reply, out });
        prop_assert!(base.host_text().ends_with("+GTSMTPSEND: 1\r\n"), "{}", base.host_text());
        prop_assert_eq!(&cut.host, &base.host);
        prop_assert_eq!(cut.server.commands.clone(), base.server.commands.clone());
        prop_assert_eq!(&cut.server.delivered, &base.server.delivered);
        // Chunk edges follow the storage, not the cuts.
        prop_assert_eq!(&cut.wire, &base.wire);
        if let Some((_, full)) = base.server.chunks.split_last() {
            prop_assert!(full.iter().all(|c| c.0 == storage), "{:?}", base.server.chunks);
        }
        let message = base.server.delivered.clone().unwrap();
        prop_assert_eq!(&parts(&message)[1].1, &file);
    }
}

#[test]
fn chunk_storage_taken_back_mid_mail_fails_it_and_delivers_nothing() {
    let file = vec![9u8; 3000];
    for replace in [false, true] {
        let cuts = Cuts { host: 256, ..WHOLE };
        let mut run = Run::new(BOTH, 512, None, cuts);
        run.s.set_verbose_errors(true);
        run.configure();
        run.serial(b"AT+GTSMTPSEND=300\r");
        run.serial(b"AT+GTSMTPFILE=1,\"a.bin\"\r");
        run.serial(&file[..1500]);
        let chunks = run.server.chunks.len();
        assert!(chunks >= 2, "{replace}");
        let old = match replace {
            true => run
                .s
                .set_chunk_storage(Box::leak(vec![0u8; 512].into_boxed_slice())),
            false => run.s.take_chunk_storage(),
        };
        assert!(old.is_some_and(|m| m.iter().all(|&b| b == 0)), "wiped");
        run.serial(&file[1500..]);
        run.wait(1500);
        run.serial(b"+++");
        run.wait(1500);
        let text = run.host_text();
        assert!(text.contains("\r\n+GTSMTPSEND: 0\r\n"), "{replace}: {text}");
        assert!(
            text.ends_with("+CME ERROR: mail aborted\r\n"),
            "{replace}: {text}"
        );
        assert_eq!(run.failures, [0], "{replace}");
        assert!(run.server.delivered.is_none(), "{replace}");
        assert!(
            run.server.chunks.iter().all(|c| !c.1),
            "{replace}: never LAST"
        );
        assert_eq!(run.server.chunks.len(), chunks, "{replace}: no chunk after");
    }
}

#[test]
fn chunks_are_pipelined_only_where_pipelining_is_offered() {
    let file = vec![7u8; 5000];
    let cuts = Cuts {
        host: 4096,
        ..WHOLE
    };
    for (keywords, pipelined) in [(&["CHUNKING", "BINARYMIME"][..], false), (BOTH, true)] {
        let mut run = Run::new(keywords, 512, None, cuts);
        run.mail(b"hi\r\n", &[("a.bin", &file)]);
        assert!(
            run.host_text().contains("+GTSMTPSEND: 1\r\n"),
            "{}",
            run.host_text()
        );
        let unread = &run.server.unread_at_bdat;
        assert!(unread.len() >= 9, "{unread:?}");
        // RFC 3030 section 2 / RFC 2920: without PIPELINING, each BDAT waits
        // for the reply to the one before.
        assert_eq!(
            unread.iter().any(|&n| n > 0),
            pipelined,
            "{keywords:?}: {unread:?}"
        );
        assert_eq!(
            run.server.delivered.as_ref().map(|m| parts(m)[1].1.clone()),
            Some(file.clone())
        );
    }
}

#[test]
fn chunk_storage_taken_back_before_the_server_answers_ehlo_fails_the_mail() {
    let mut run = Run::new(BOTH, 4096, None, WHOLE);
    run.s.set_verbose_errors(true);
    run.configure();
    // SEND connects; the storage goes before the greeting is read.
    let mut out = vec![0u8; 4096];
    let p = run.s.handle_host(run.now, b"AT+GTSMTPSEND=300\r", &mut out);
    assert_eq!(p.written, 0);
    while let Some(event) = run.s.poll_event() {
        match event {
            Event::Identity => run.s.set_identity(
                Token::new(DATE, true).unwrap(),
                MessageId::new(MESSAGE_ID).unwrap(),
            ),
            Event::Connect(_) => run.s.handle_connected(run.now, None),
            _ => {}
        }
    }
    assert!(run.s.take_chunk_storage().is_some());
    run.server.greet();
    run.pump();
    run.data(b"AT+GTSMTPDATA=100\r", b"hello\r\n");
    run.serial(b"AT+GTSMTPEND\r");
    run.wait(1);
    let text = run.host_text();
    assert!(text.contains("+GTSMTPSEND: 0\r\n"), "{text}");
    assert!(run.server.delivered.is_none());
    assert!(run.server.chunks.iter().all(|c| !c.1), "never LAST");
}

#[test]
fn the_chunk_storage_is_zero_after_a_mail() {
    let mem: &'static mut [u8] = Box::leak(vec![0u8; 1024].into_boxed_slice());
    let at = mem.as_ptr();
    let mut run = Run::new(BOTH, 0, None, WHOLE);
    let _ = run.s.set_chunk_storage(mem);
    run.mail(b"a secret body\r\n", &[("a.bin", &[0x5a; 700])]);
    assert!(run.host_text().contains("+GTSMTPSEND: 1\r\n"));
    assert!(run.server.chunks.len() >= 2);
    // Read while the session still holds it (taking it back wipes it
    // anyway): what stays in the caller's memory between mails.
    // SAFETY: the buffer is leaked, so it lives; the session is not
    // running while it is read.
    #[allow(unsafe_code)]
    let left = unsafe { std::slice::from_raw_parts(at, 1024) }.to_vec();
    assert!(left.iter().all(|&b| b == 0), "{:?}", &left[..32]);
    assert!(run.s.take_chunk_storage().is_some());
}
