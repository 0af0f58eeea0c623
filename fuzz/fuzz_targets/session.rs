//! The whole session driven by both sides at once: a V.250 host (command
//! lines with CR or CRLF, payload, guarded escapes, waits) and a server
//! (canned replies, raw bytes, closes, TLS events), in any order from the
//! input. Asserts on every run: the host stream is V.250 items (no torn or
//! unframed answer), every command line gets exactly one final result, an
//! end-of-data only follows a closing boundary and comes at most once per
//! MAIL FROM, a mail the server accepted carries exactly the payload
//! the host sent (the text in canonical form), and the token storage is
//! wiped when it is taken back. The lines include `AT+GTSMTPAUTH` and
//! `AT+GTSMTPTOKEN` (whose bytes are the payload actions') and the
//! replies a token exchange meets (334, the error challenge, 535).
//!
//! The input is a list of actions, each an opcode byte and its operands
//! (see `actions`): a hand-made structure rather than `arbitrary`'s, so the
//! seed corpus (`fuzz/make_seeds.py`) can spell the test suite's scripts.
#![no_main]

use atmail_core::header::Token;
use atmail_core::message::MessageId;
use atmail_core::session::{Event, Session, SessionState, Stopped};
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;

#[derive(Debug)]
enum Action {
    Line(u8, bool),
    RawLine(Vec<u8>, bool),
    Payload(Vec<u8>),
    Escape,
    Wait(u16),
    Reply(u8),
    RawServer(Vec<u8>),
    Closed,
    TlsUp,
    TlsFailed,
}

const LINES: &[&[u8]] = &[
    b"AT+GTSMTPLAND=25,\"mail.fibocom.com\"",
    b"AT+GTSMTPID=\"wangww@fibocom.com\",\"pw\"",
    b"AT+GTSMTPDST=1,1,\"xiangj@fibocom.com\"",
    b"AT+GTSMTPDST=1,3,\"b@fibocom.com\"",
    b"AT+GTSMTPHEAD=1,\"hi\"",
    b"AT+GTSMTPSEND=100",
    b"AT+GTSMTPDATA=300",
    b"AT+GTSMTPDATA=300,3",
    b"AT+GTSMTPFILE=1,\"a.bin\"",
    b"AT+GTSMTPFILE=1,\"b.txt\",3",
    b"AT+GTSMTPFILE?",
    b"AT+GTSMTPDST?",
    b"AT+GTSMTPEND",
    b"AT+GTSMTPCLR",
    b"AT",
    b"AT+CMEE=2",
    b"AT+MIPCALL?",
    b"AT+GTSMTPAUTH=1",
    b"AT+GTSMTPAUTH=2",
    b"AT+GTSMTPTOKEN=12",
    b"AT+GTSMTPTOKEN=600",
    b"AT+GTSMTPTOKEN=0",
    b"AT+GTSMTPTOKEN?",
    b"AT+GTSMTPAUTH=0",
    // The credential modes: sign-in in the clear allowed (this target's
    // servers offer AUTH without STARTTLS), STARTTLS required; and the
    // last failure's words.
    b"AT+GTSMTPLAND=25,\"mail.fibocom.com\",3",
    b"AT+GTSMTPLAND=587,\"mail.fibocom.com\",2",
    b"AT+GTSMTPERR?",
];

const REPLIES: &[&[u8]] = &[
    b"220 mx\r\n",
    b"250-mx\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n",
    b"250-mx\r\n250-SIZE 3000\r\n250-STARTTLS\r\n250 AUTH LOGIN\r\n",
    b"220 go\r\n",
    b"235 ok\r\n",
    b"334 x\r\n",
    b"250 ok\r\n",
    b"250 ok\r\n250 ok\r\n354 go\r\n",
    b"354 go\r\n",
    b"550 no\r\n",
    b"221 bye\r\n",
    b"250-mx\r\n250-PIPELINING\r\n250 AUTH XOAUTH2 OAUTHBEARER\r\n",
    b"334 \r\n",
    b"334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJtYWlsIn0=\r\n",
    b"535 5.7.8 Error: authentication failed\r\n",
];

struct Drive {
    s: Session,
    now: u64,
    host: Vec<u8>,
    wire: Vec<u8>,
    inbox: Vec<u8>,
    connected: bool,
    lines: usize,
    /// The payload of each part of the mail in progress, as sent, and
    /// whether it is the text body.
    parts: Vec<(bool, Vec<u8>)>,
    /// How much of the host stream `check_delivered` has looked at.
    scanned: usize,
    /// The last line ended with CRLF (what the engine learns the host's
    /// line ending from).
    crlf: bool,
    /// A CRLF host's data command line ended with CR alone: the first byte
    /// of data mode, if it is LF, is that line's ending, not payload.
    lf_due: bool,
}

impl Drive {
    fn serve(&mut self) {
        for _ in 0..64 {
            while let Some(event) = self.s.poll_event() {
                match event {
                    Event::Identity => self.s.set_identity(
                        Token::new(b"Wed, 25 Nov 2026 10:00:00 +0000", true).unwrap(),
                        MessageId::new(b"<1@fibocom.com>").unwrap(),
                    ),
                    Event::Command(_) => self.s.answer_command(b"\r\nOK\r\n").unwrap(),
                    Event::Close => {
                        self.connected = false;
                        self.inbox.clear();
                    }
                    Event::Connect(_) => {
                        assert!(!self.connected, "one connection at a time");
                        self.connected = true;
                        self.s.handle_connected(self.now, None);
                    }
                    // This server never offers STARTTLS; a failure's reason
                    // is for a log.
                    _ => {}
                }
            }
            assert_eq!(self.s.peek_event(), None, "every event is handed out");
            let mut buf = [0u8; 97];
            let w = self.s.poll_server(self.now, &mut buf);
            if self.connected {
                self.wire.extend_from_slice(&buf[..w]);
            }
            let used = self.s.handle_server(self.now, &self.inbox);
            self.inbox.drain(..used);
            let h = self.s.poll_host(&mut buf);
            self.host.extend_from_slice(&buf[..h]);
            if w == 0 && used == 0 && h == 0 {
                break;
            }
        }
        self.check_delivered();
    }

    fn send(&mut self, mut bytes: &[u8]) -> usize {
        let mut taken = 0;
        let mut out = [0u8; 2048];
        for _ in 0..10_000 {
            if bytes.is_empty() {
                break;
            }
            let progress = self.s.handle_host(self.now, bytes, &mut out);
            let (r, w) = (progress.read, progress.written);
            assert_eq!(r == bytes.len(), progress.stopped == Stopped::InputEmpty);
            if self.connected {
                self.wire.extend_from_slice(&out[..w]);
            }
            bytes = &bytes[r..];
            taken += r;
            self.serve();
        }
        taken
    }

    fn line(&mut self, line: &[u8], crlf: bool) {
        if self.s.in_data_mode() {
            return;
        }
        let upper = line.to_ascii_uppercase();
        // The editor keeps a line from its first "AT"; without one the line
        // is ignored and gets no answer.
        let command = upper.windows(2).any(|w| w == b"AT");
        let mut bytes = line.to_vec();
        bytes.extend_from_slice(if crlf { b"\r\n" } else { b"\r" });
        let idle = self.s.state() == SessionState::Idle;
        let sent = self.send(&bytes);
        assert_eq!(
            sent,
            bytes.len(),
            "a whole line is taken once its answer has room"
        );
        self.lines += usize::from(command);
        if self.s.state() == SessionState::TokenInput {
            // A token, not a part of the mail: its bytes are the
            // Payload actions' until it is whole or times out.
            return;
        }
        let body = upper.windows(10).any(|w| w == b"+GTSMTPDAT");
        if self.s.in_data_mode() {
            // A CRLF host that showed CR before: its LF here is payload.
            let lf = if crlf && !self.crlf {
                b"\n".to_vec()
            } else {
                Vec::new()
            };
            self.parts.push((body, lf));
            self.lf_due = self.crlf && !crlf;
            // The byte after a data command's CR is data mode's: the line
            // editor learns nothing from this line's ending.
            return;
        }
        if idle && self.s.state() != SessionState::Idle {
            // A SEND that started a mail (a refused one starts nothing).
            self.parts.clear();
        }
        self.crlf = crlf;
    }

    /// A mail whose `+GTSMTPSEND: 1` came carried exactly its payload.
    fn check_delivered(&mut self) {
        // Only what came since the last look; a URC (16 bytes) that ended
        // there was counted then.
        let from = self.scanned.saturating_sub(15);
        self.scanned = self.host.len();
        if count(&self.host[from..], b"+GTSMTPSEND: 1\r\n") == 0 {
            return;
        }
        let end = rfind(&self.wire, b"\r\n.\r\n").expect("an end of data");
        let start = rfind(&self.wire[..end], b"DATA\r\n").expect("DATA") + 6;
        let message = String::from_utf8(self.wire[start..end + 2].to_vec()).expect("ASCII");
        let got: Vec<Vec<u8>> = message
            .split("--=_atmail_")
            .skip(1)
            .filter(|p| p.contains("\r\n\r\n"))
            .map(|p| {
                let body = &p[p.find("\r\n\r\n").unwrap() + 4..];
                base64::engine::general_purpose::STANDARD
                    .decode(body.replace("\r\n", ""))
                    .unwrap()
            })
            .collect();
        let parts = core::mem::take(&mut self.parts);
        // The text part comes first, empty when the host sent no body.
        let mut want = vec![Vec::new()];
        for (body, payload) in parts {
            match body {
                true => want[0] = canonical(&payload),
                false => want.push(payload),
            }
        }
        assert_eq!(got, want);
    }
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

fn canonical(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'\r' if text.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 1;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// The host stream as V.250 items; panics on anything else.
fn finals(host: &[u8]) -> usize {
    let (mut rest, mut finals) = (host, 0);
    while !rest.is_empty() {
        assert!(
            rest.starts_with(b"\r\n"),
            "unframed: {:?}",
            String::from_utf8_lossy(rest)
        );
        rest = &rest[2..];
        if let Some(after) = rest.strip_prefix(b"> ") {
            rest = after;
            continue;
        }
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a line without its end");
        let line = &rest[..end];
        finals +=
            usize::from(line == b"OK" || line == b"ERROR" || line.starts_with(b"+CME ERROR: "));
        rest = &rest[end + 2..];
    }
    finals
}

/// Decodes the input: `0 i` a table line (CRLF when `i` has its top bit),
/// `1 n bytes` a raw line (`n & 0x7f` bytes; CRLF when `n >= 0x80`), `2 n
/// bytes` payload, `3` an escape, `4 t` a wait of `t` x 100 ms, `5 i` a
/// canned reply, `6 n bytes` raw server bytes, `7` a close, `8` TLS up
/// (TLS failed when the byte is 0x80 or more).
fn actions(data: &[u8]) -> Vec<Action> {
    fn byte(data: &[u8], i: &mut usize) -> u8 {
        let b = data.get(*i).copied().unwrap_or(0);
        *i += 1;
        b
    }
    fn bytes(data: &[u8], i: &mut usize, n: usize) -> Vec<u8> {
        let start = (*i).min(data.len());
        let end = (start + n).min(data.len());
        *i = end;
        data[start..end].to_vec()
    }
    let (mut actions, mut i) = (Vec::new(), 0);
    while i < data.len() {
        let op = data[i] % 9;
        i += 1;
        actions.push(match op {
            0 => {
                let b = byte(data, &mut i);
                Action::Line(b & 0x7f, b >= 0x80)
            }
            1 => {
                let b = byte(data, &mut i);
                Action::RawLine(bytes(data, &mut i, usize::from(b & 0x7f)), b >= 0x80)
            }
            2 => {
                let n = byte(data, &mut i);
                Action::Payload(bytes(data, &mut i, n.into()))
            }
            3 => Action::Escape,
            4 => Action::Wait(u16::from(byte(data, &mut i)) * 10),
            5 => Action::Reply(byte(data, &mut i)),
            6 => {
                let n = byte(data, &mut i);
                Action::RawServer(bytes(data, &mut i, n.into()))
            }
            7 => Action::Closed,
            _ if data[i - 1] >= 0x80 => Action::TlsFailed,
            _ => Action::TlsUp,
        });
    }
    actions
}

static STORAGE: std::sync::Mutex<Option<&'static mut [u8]>> = std::sync::Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let actions = actions(data);
    let mut s = Session::new();
    // One token storage for every run, lent to each session and taken
    // back (wiped) at its end: a leak per run would be one to the fuzzer.
    let storage = STORAGE.lock().unwrap().take();
    let _ = s.set_token_storage(
        storage.unwrap_or_else(|| Box::leak(vec![0u8; 8192].into_boxed_slice())),
    );
    let mut d = Drive {
        s,
        now: 0,
        host: Vec::new(),
        wire: Vec::new(),
        inbox: Vec::new(),
        connected: false,
        lines: 0,
        parts: Vec::new(),
        scanned: 0,
        crlf: false,
        lf_due: false,
    };
    d.send(b"ATE0\r");
    d.host.clear();
    for action in &actions {
        match action {
            Action::Line(i, crlf) => d.line(LINES[usize::from(*i) % LINES.len()], *crlf),
            Action::RawLine(bytes, crlf) => {
                // Any line but one that could turn echo on, or that edits
                // or ends itself.
                let line: Vec<u8> = bytes
                    .iter()
                    .copied()
                    .filter(|b| !b"\r\n\x08".contains(b))
                    .collect();
                if !line.to_ascii_uppercase().windows(3).any(|w| w == b"ATE") {
                    d.line(&line, *crlf);
                }
            }
            Action::Payload(bytes) => {
                // All at one instant, after the timers: data mode cannot
                // end in the middle (the escape has its own action).
                d.now += 1;
                d.s.handle_timeout(d.now);
                d.serve();
                if !d.s.in_data_mode() {
                    continue;
                }
                let payload: Vec<u8> = bytes.iter().copied().filter(|&b| b != b'+').collect();
                if d.s.state() == SessionState::TokenInput {
                    // Byte by byte while the token is due: what follows
                    // it would be command bytes no line accounts for.
                    for b in bytes {
                        if d.s.state() != SessionState::TokenInput {
                            break;
                        }
                        d.send(&[*b]);
                    }
                    continue;
                }
                let taken = d.send(&payload);
                let mut sent = &payload[..taken];
                if taken > 0 && core::mem::take(&mut d.lf_due) {
                    sent = sent.strip_prefix(b"\n").unwrap_or(sent);
                }
                if let Some((_, part)) = d.parts.last_mut() {
                    part.extend_from_slice(sent);
                }
            }
            Action::Escape => {
                d.now += 1001;
                d.s.handle_timeout(d.now);
                d.serve();
                if d.s.in_data_mode() {
                    d.lf_due = false;
                    d.send(b"+++");
                }
                d.now += 1001;
                d.s.handle_timeout(d.now);
                d.serve();
            }
            Action::Wait(ms) => {
                d.now += u64::from(*ms) * 10;
                d.s.handle_timeout(d.now);
                d.serve();
            }
            Action::Reply(i) if d.connected => {
                d.inbox
                    .extend_from_slice(REPLIES[usize::from(*i) % REPLIES.len()]);
                d.serve();
            }
            Action::RawServer(bytes) if d.connected => {
                d.inbox.extend_from_slice(bytes);
                d.serve();
            }
            Action::Closed if d.connected => {
                d.connected = false;
                d.inbox.clear();
                d.s.handle_closed(d.now);
                d.serve();
            }
            Action::TlsUp => {
                d.s.handle_tls_established(d.now);
                d.serve();
            }
            Action::TlsFailed => {
                d.s.handle_tls_failed(d.now);
                d.serve();
            }
            _ => {}
        }
    }
    // Let every timer run out: data modes end (a FILE's after 48,000 s
    // when the host never escapes), mails end, QUIT ends.
    for _ in 0..100 {
        let Some(deadline) = d.s.next_deadline() else {
            break;
        };
        d.now = d.now.max(deadline);
        d.s.handle_timeout(d.now);
        d.serve();
    }
    assert_eq!(d.s.next_deadline(), None, "a timer that never ends");
    assert_eq!(
        finals(&d.host),
        d.lines,
        "{:?}",
        String::from_utf8_lossy(&d.host)
    );
    let ends: Vec<usize> = (0..d.wire.len().saturating_sub(4))
        .filter(|&i| &d.wire[i..i + 5] == b"\r\n.\r\n")
        .collect();
    for &end in &ends {
        assert!(
            d.wire[..end].ends_with(b"--"),
            "end of data without a closing boundary"
        );
    }
    assert!(ends.len() <= count(&d.wire, b"MAIL FROM:"));
    let storage = d.s.take_token_storage().expect("the storage lent");
    assert!(storage.iter().all(|&b| b == 0), "a token left behind");
    *STORAGE.lock().unwrap() = Some(storage);
});
