//! `--maildir DIR`: an in-process mail server that delivers into a Maildir.
//!
//! What it does: speaks the server side of SMTP to the engine over an
//! in-memory link (no socket): it offers PIPELINING and no AUTH (the
//! link never leaves the process, so there is nothing to sign in to; a
//! client that signs in anyway is accepted), and writes each message to `DIR/tmp` and renames it
//! into `DIR/new` only when the end-of-data arrives, as Maildir requires, so
//! a mail that is aborted never appears. Lines are stored with LF endings,
//! as MTAs store Maildir files (Postfix's virtual delivery does), so mail
//! readers show no `^M`.
//!
//! With `--fault STEP=CODE` it answers that step (greeting, ehlo (EHLO
//! and HELO), auth, mail, rcpt, data, end (the end of data)) with that
//! code and a text that says so, instead of going on: host firmware can
//! meet every refusal a real server makes without one. A 421 closes the
//! connection after it, as RFC 5321 says a server does. With a fault at
//! `auth` it offers AUTH PLAIN LOGIN, so the step exists: a host that
//! allows sign-in in the clear (`AT+GTSMTPLAND` mode 3) meets the code;
//! in the default mode the engine refuses to sign in without TLS.
//!
//! What it does not: check passwords, relay, or add trace headers. It is
//! for trying the modem on a machine with no mail server, not a server.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// An SMTP step a fault can answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Greeting,
    Ehlo,
    Auth,
    Mail,
    Rcpt,
    Data,
    End,
}

/// The steps by their `--fault` names, in the conversation's order.
const STEPS: [(&str, Step); 7] = [
    ("greeting", Step::Greeting),
    ("ehlo", Step::Ehlo),
    ("auth", Step::Auth),
    ("mail", Step::Mail),
    ("rcpt", Step::Rcpt),
    ("data", Step::Data),
    ("end", Step::End),
];

/// The code each step answers with instead of going on (`--fault`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults([Option<u16>; 7]);

impl Faults {
    /// Sets `step` to answer `code`.
    pub fn set(&mut self, (step, code): (Step, u16)) {
        self.0[step as usize] = Some(code);
    }

    fn get(&self, step: Step) -> Option<u16> {
        self.0[step as usize]
    }
}

/// Parses `STEP=CODE` (`rcpt=550`); the code must be a refusal, 400-599.
pub fn parse_fault(text: &str) -> Result<(Step, u16), String> {
    let names = || STEPS.map(|(n, _)| n).join(", ");
    let (name, code) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected STEP=CODE, such as rcpt=550"))?;
    let step = STEPS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.trim()))
        .map(|(_, s)| *s)
        .ok_or_else(|| format!("{name:?} is not a step (the steps: {})", names()))?;
    let code: u16 = code
        .trim()
        .parse()
        .ok()
        .filter(|c| (400..=599).contains(c))
        .ok_or_else(|| format!("{text:?}: the code must be a refusal, 400 to 599"))?;
    Ok((step, code))
}

/// The server side of one connection.
pub struct MaildirSink {
    faults: Faults,
    dir: PathBuf,
    replies: Vec<u8>,
    line: Vec<u8>,
    data: Option<(BufWriter<File>, PathBuf)>,
    login_step: u8,
    closed: bool,
}

impl MaildirSink {
    /// Opens `dir` as a Maildir (creating `tmp`, `new`, `cur`) and greets
    /// (or answers the greeting's fault).
    pub fn open(dir: &Path, faults: Faults) -> io::Result<Self> {
        for sub in ["tmp", "new", "cur"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        let mut sink = MaildirSink {
            faults,
            dir: dir.to_path_buf(),
            replies: Vec::new(),
            line: Vec::new(),
            data: None,
            login_step: 0,
            closed: false,
        };
        if !sink.fault(Step::Greeting) {
            sink.replies
                .extend_from_slice(b"220 atmail maildir ESMTP\r\n");
        }
        Ok(sink)
    }

    /// Answers `step` with its fault, if it has one; returns whether it
    /// did.
    fn fault(&mut self, step: Step) -> bool {
        let Some(code) = self.faults.get(step) else {
            return false;
        };
        let name = STEPS[step as usize].0;
        let reply = format!(
            "{code} {}.0.0 fault injected at {name} (--fault {name}={code})\r\n",
            code / 100
        );
        self.replies.extend_from_slice(reply.as_bytes());
        if code == 421 {
            self.closed = true;
        }
        true
    }

    /// Bytes from the client.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        for &b in bytes {
            if b != b'\n' {
                self.line.push(b);
                continue;
            }
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            self.on_line(&line)?;
        }
        Ok(())
    }

    /// Replies for the client; empty when there are none.
    pub fn read(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.replies)
    }

    /// Whether the client said QUIT.
    pub fn is_closed(&self) -> bool {
        self.closed && self.replies.is_empty()
    }

    fn on_line(&mut self, line: &[u8]) -> io::Result<()> {
        if self.data.is_some() && line == b"." {
            if self.fault(Step::End) {
                // Refused: the message goes, as on an abort.
                if let Some((_, tmp)) = self.data.take() {
                    fs::remove_file(tmp)?;
                }
                return Ok(());
            }
            return self.deliver();
        }
        if let Some((file, _)) = self.data.as_mut() {
            let line = line.strip_prefix(b".").unwrap_or(line);
            file.write_all(line)?;
            return file.write_all(b"\n");
        }
        let upper = line.to_ascii_uppercase();
        let step = match upper.get(..4) {
            Some(b"EHLO" | b"HELO") => Some(Step::Ehlo),
            Some(b"AUTH") => Some(Step::Auth),
            Some(b"MAIL") => Some(Step::Mail),
            Some(b"RCPT") => Some(Step::Rcpt),
            Some(b"DATA") => Some(Step::Data),
            _ => None,
        };
        if self.login_step == 0 && step.is_some_and(|step| self.fault(step)) {
            return Ok(());
        }
        let reply: &[u8] = if self.login_step == 1 {
            self.login_step = 2;
            b"334 UGFzc3dvcmQ6\r\n"
        } else if self.login_step == 2 {
            self.login_step = 0;
            b"235 2.7.0 accepted\r\n"
        } else if upper.starts_with(b"EHLO") && self.faults.get(Step::Auth).is_some() {
            // The auth step exists only where AUTH is offered.
            b"250-atmail\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 AUTH PLAIN LOGIN\r\n"
        } else if upper.starts_with(b"EHLO") {
            b"250-atmail\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
        } else if [&b"HELO"[..], b"MAIL", b"RCPT", b"RSET", b"NOOP"]
            .iter()
            .any(|c| upper.starts_with(c))
        {
            b"250 2.0.0 ok\r\n"
        } else if upper == b"AUTH LOGIN" {
            self.login_step = 1;
            b"334 VXNlcm5hbWU6\r\n"
        } else if upper.starts_with(b"AUTH PLAIN") {
            b"235 2.7.0 accepted\r\n"
        } else if upper == b"DATA" {
            let name = unique_name();
            let path = self.dir.join("tmp").join(&name);
            self.data = Some((BufWriter::new(File::create(&path)?), path));
            b"354 end with <CRLF>.<CRLF>\r\n"
        } else if upper == b"QUIT" {
            self.closed = true;
            b"221 2.0.0 bye\r\n"
        } else {
            b"502 5.5.2 not implemented\r\n"
        };
        self.replies.extend_from_slice(reply);
        Ok(())
    }

    fn deliver(&mut self) -> io::Result<()> {
        let Some((file, tmp)) = self.data.take() else {
            return Ok(());
        };
        file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        let name = tmp.file_name().map(|n| n.to_owned()).unwrap_or_default();
        let new = self.dir.join("new").join(name);
        fs::rename(&tmp, &new)?;
        eprintln!("atmail: delivered {}", new.display());
        self.replies.extend_from_slice(b"250 2.0.0 delivered\r\n");
        Ok(())
    }
}

impl Drop for MaildirSink {
    fn drop(&mut self) {
        // An aborted mail leaves nothing behind.
        if let Some((_, tmp)) = self.data.take() {
            let _ = fs::remove_file(tmp);
        }
    }
}

fn unique_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}.{}_{}.{}.atmail",
        now.as_secs(),
        now.subsec_micros(),
        n,
        std::process::id()
    )
}
