//! What `atmail modem --maildir` receives by BDAT with BINARYMIME (issue
//! 32: the in-process server offers both, so the default sends binary
//! parts), read back by an independent Rust parser, `mail-parser`: every
//! part `Content-Transfer-Encoding: binary`, the attachment's bytes the
//! host's (DATA's end, a BDAT line, `+++` and NUL/0xFF inside), the text
//! in canonical CRLF form. The modem is driven over stdio as a host does,
//! with real guard-time pauses around `+++`.

use mail_parser::{MessageParser, MimeHeaders};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const GUARD: Duration = Duration::from_millis(300);

struct Modem {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Arc<Mutex<Vec<u8>>>,
    seen: usize,
}

impl Modem {
    fn start(maildir: &PathBuf) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_atmail"))
            .args(["modem", "--guard-ms", "300", "--maildir"])
            .arg(maildir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = Arc::new(Mutex::new(Vec::new()));
        let mut stdout = child.stdout.take().unwrap();
        let sink = Arc::clone(&out);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    return;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let stdin = child.stdin.take();
        Modem {
            child,
            stdin,
            out,
            seen: 0,
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    fn wait_for(&mut self, needle: &[u8]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            {
                let out = self.out.lock().unwrap();
                if let Some(at) = out[self.seen..]
                    .windows(needle.len())
                    .position(|w| w == needle)
                {
                    self.seen += at + needle.len();
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "{:?} not seen in {:?}",
                    String::from_utf8_lossy(needle),
                    String::from_utf8_lossy(&out[self.seen..])
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn at(&mut self, line: &[u8], expect: &[u8]) {
        self.write(&[line, b"\r"].concat());
        self.wait_for(expect);
    }

    /// Streams `payload` in UART-sized pieces with no pause (so `+++`
    /// inside it is data), then the escape between guard times.
    fn data(&mut self, payload: &[u8]) {
        for piece in payload.chunks(4096) {
            self.write(piece);
        }
        std::thread::sleep(GUARD + Duration::from_millis(200));
        self.write(b"+++");
        std::thread::sleep(GUARD + Duration::from_millis(200));
        self.wait_for(b"OK\r\n");
    }

    fn close(mut self) {
        drop(self.stdin.take());
        assert!(self.child.wait().unwrap().success());
    }
}

#[test]
fn a_binarymime_mail_reads_back_byte_for_byte() {
    let dir = std::env::temp_dir().join(format!("atmail-bdat-mp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut attachment: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    for (at, piece) in [
        (0, &b"\r\n.\r\n"[..]),
        (100, b"\r\nBDAT 5 LAST\r\n"),
        (1000, b"+++"),
        (2000, b"\0\0\0\xff\xff\xff\n\r"),
    ] {
        attachment[at..at + piece.len()].copy_from_slice(piece);
    }
    let body = "你好，这是正文。\n.\r\n第二行\r\n";
    let body_gb2312: &[u8] = b"\xc4\xe3\xba\xc3\xa3\xac\xd5\xe2\xca\xc7\xd5\xfd\xce\xc4\xa1\xa3\n.\r\n\xb5\xda\xb6\xfe\xd0\xd0\r\n";

    let mut modem = Modem::start(&dir);
    modem.at(b"ATE0", b"OK\r\n");
    modem.at(b"at+mipcall=1,\"cmnet\"", b"+MIPCALL: 127.0.0.1\r\n");
    modem.at(b"at+gtsmtpland=25,\"mail.fibocom.com\",3", b"OK\r\n");
    modem.at(
        b"at+gtsmtpid=\"wangww@fibocom.com\",\"ght64621178\"",
        b"OK\r\n",
    );
    modem.at(b"at+gtsmtpdst=1,1,\"xiangj@fibocom.com\"", b"OK\r\n");
    // The GB2312 subject: it sets the mail's charset, the body's too.
    modem.at(b"AT+GTSMTPEHEAD=2,\"\xc4\xe3\xba\xc3 smtp\"", b"OK\r\n");
    modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 2\r\n");
    modem.at(b"AT+GTSMTPDATA=300", b"> ");
    modem.data(body_gb2312);
    modem.at(b"AT+GTSMTPFILE=1,\"eee.wma\"", b"> ");
    modem.data(&attachment);
    modem.at(b"AT+GTSMTPEND", b"+GTSMTPSEND: 1\r\n");
    modem.close();

    let files: Vec<_> = std::fs::read_dir(dir.join("new"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let raw = std::fs::read(&files[0]).unwrap();
    let msg = MessageParser::default().parse(&raw).unwrap();
    assert_eq!(msg.subject(), Some("你好 smtp"));
    let text = msg.text_bodies().next().unwrap();
    assert_eq!(text.content_transfer_encoding(), Some("binary"));
    assert_eq!(
        msg.body_text(0).as_deref(),
        Some("你好，这是正文。\r\n.\r\n第二行\r\n"),
        "the text in canonical CRLF form: {body:?}"
    );
    let part = msg.attachment(0).unwrap();
    assert_eq!(part.content_transfer_encoding(), Some("binary"));
    assert_eq!(part.attachment_name(), Some("eee.wma"));
    assert_eq!(part.contents(), &attachment[..]);
    let _ = std::fs::remove_dir_all(&dir);
}
