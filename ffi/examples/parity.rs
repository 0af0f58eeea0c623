//! The Rust half of the parity test (tests/test_c_abi.py): the work of
//! `tests/c/parity.c` done through the Rust API of `atmail-core`, with the
//! same chunking and the same output, so the test can compare the two
//! byte for byte.
//!
//! ```text
//! parity base64 IN_CHUNK OUT_CHUNK < input
//! parity session IN_CHUNK OUT_CHUNK < input
//! ```

use atmail_core::header::Token;
use atmail_core::message::MessageId;
use atmail_core::mime_base64::MimeBase64Encoder;
use atmail_core::session::{Event, Session};
use atmail_core::CoderResult;
use std::io::{Read, Write};
use std::process::ExitCode;

fn base64(input: &[u8], in_chunk: usize, out_chunk: usize) -> Option<Vec<u8>> {
    let mut encoder = MimeBase64Encoder::new();
    let (mut out, mut buf, mut pos) = (Vec::new(), vec![0u8; out_chunk], 0);
    loop {
        let take = in_chunk.min(input.len() - pos);
        let last = pos + take == input.len();
        let (result, r, w) = encoder.encode(&input[pos..pos + take], &mut buf, last);
        out.extend_from_slice(&buf[..w]);
        pos += r;
        if result == CoderResult::InputEmpty && last {
            return Some(out);
        }
    }
}

struct Rig {
    s: Session,
    now: u64,
    out: Vec<u8>,
    serial_out: Vec<u8>,
    host: Vec<u8>,
    wire: Vec<u8>,
    /// Connections the session asked for.
    connects: u32,
}

impl Rig {
    /// Drains what the session has for the server and the host; returns
    /// whether anything came.
    fn pump(&mut self) -> bool {
        let mut any = false;
        loop {
            let w = self.s.poll_server(self.now, &mut self.out);
            self.wire.extend_from_slice(&self.out[..w]);
            let h = self.s.poll_host(&mut self.out);
            self.host.extend_from_slice(&self.out[..h]);
            if w == 0 && h == 0 {
                return any;
            }
            any = true;
        }
    }

    /// A command line as a CRLF host types it, through the serial entry point.
    fn at(&mut self, line: &[u8], in_chunk: usize) -> Option<()> {
        let mut bytes = line.to_vec();
        bytes.extend_from_slice(b"\r\n");
        self.serial(&bytes, in_chunk)
    }

    fn reply(&mut self, mut text: &[u8]) {
        while !text.is_empty() {
            let r = self.s.handle_server(self.now, text);
            self.pump();
            text = &text[r..];
        }
    }

    /// Host bytes in `in_chunk` pieces, a millisecond apart; commands that
    /// are not the engine's get `OK`.
    fn serial(&mut self, mut bytes: &[u8], in_chunk: usize) -> Option<()> {
        while !bytes.is_empty() {
            let take = in_chunk.min(bytes.len());
            self.now += 1;
            let progress = self
                .s
                .handle_host(self.now, &bytes[..take], &mut self.serial_out);
            let (r, w) = (progress.read, progress.written);
            self.wire.extend_from_slice(&self.serial_out[..w]);
            self.handle_events()?;
            bytes = &bytes[r..];
            if r == 0 && w == 0 {
                self.pump().then_some(())?;
            }
        }
        self.pump();
        Some(())
    }

    /// Commands that are not the engine's get `OK`; connections asked
    /// for are counted.
    fn handle_events(&mut self) -> Option<()> {
        while let Some(event) = self.s.poll_event() {
            match event {
                Event::Command(_) => self.s.answer_command(b"\r\nOK\r\n").ok()?,
                Event::Connect(_) => self.connects += 1,
                _ => {}
            }
        }
        Some(())
    }

    fn escape(&mut self) -> Option<()> {
        self.now += 1500;
        self.serial(b"+++", 3)?;
        self.now += 1000;
        self.s.handle_timeout(self.now);
        self.pump();
        Some(())
    }
}

fn session(input: &[u8], in_chunk: usize, out_chunk: usize) -> Option<Vec<u8>> {
    let mut g = Rig {
        s: Session::new(),
        now: 0,
        out: vec![0; out_chunk],
        serial_out: vec![0; out_chunk.max(256)],
        host: Vec::new(),
        wire: Vec::new(),
        connects: 0,
    };
    let date = Token::new(b"Wed, 25 Nov 2026 10:00:00 +0000", true).ok()?;
    g.s.set_identity(date, MessageId::new(b"<parity@fibocom.com>").ok()?);
    let c = in_chunk;
    g.at(b"AT&K3", c)?;
    g.at(b"AT+GTSMTPLAND=25,\"mail.fibocom.com\",3", c)?;
    g.at(b"AT+GTSMTPID=\"wangww@fibocom.com\",\"ght64621178\"", c)?;
    g.at(b"AT+GTSMTPDST=1,1,\"xiangj@fibocom.com\"", c)?;
    g.at(b"AT+GTSMTPDST=1,2,\"cc@fibocom.com\"", c)?;
    g.at("AT+GTSMTPHEAD=1,\"parity 你好\"".as_bytes(), c)?;
    g.at(b"AT+GTSMTPSEND=300", c)?;
    g.handle_events()?;
    (g.connects == 1).then_some(())?;
    g.s.handle_connected(g.now, Some(std::net::IpAddr::from([10, 0, 0, 2])));
    g.reply(
        b"220 mx\r\n250-mx\r\n250-PIPELINING\r\n250 AUTH LOGIN\r\n334 VXNlcm5hbWU6\r\n\
          334 UGFzc3dvcmQ6\r\n235 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n",
    );
    g.at(b"AT+GTSMTPDATA=300", c)?;
    g.serial(b"Hello from the G510.\r\n", in_chunk)?;
    g.escape()?;
    g.at(b"AT+GTSMTPFILE=1,\"parity.bin\"", c)?;
    g.serial(input, in_chunk)?;
    g.escape()?;
    g.at(b"AT+GTSMTPFILE?", c)?;
    g.at(b"AT+GTSMTPEND", c)?;
    g.reply(b"250 queued\r\n221 bye\r\n");
    let mut out = g.host;
    out.extend_from_slice(b"----\n");
    out.extend_from_slice(&g.wire);
    Some(out)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let chunk = |i: usize| args.get(i)?.parse::<usize>().ok().filter(|&n| n > 0);
    let (Some(mode), Some(in_chunk), Some(out_chunk)) = (args.get(1), chunk(2), chunk(3)) else {
        eprintln!("usage: parity base64|session IN_CHUNK OUT_CHUNK < input");
        return ExitCode::from(2);
    };
    let mut input = Vec::new();
    if std::io::stdin().read_to_end(&mut input).is_err() {
        return ExitCode::from(2);
    }
    let out = match mode.as_str() {
        "base64" => base64(&input, in_chunk, out_chunk),
        "session" => session(&input, in_chunk, out_chunk),
        _ => None,
    };
    match out.map(|o| std::io::stdout().write_all(&o)) {
        Some(Ok(())) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}
