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
//! What it does not: check passwords, relay, or add trace headers. It is
//! for trying the modem on a machine with no mail server, not a server.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// The server side of one connection.
pub struct MaildirSink {
    dir: PathBuf,
    replies: Vec<u8>,
    line: Vec<u8>,
    data: Option<(BufWriter<File>, PathBuf)>,
    login_step: u8,
    closed: bool,
}

impl MaildirSink {
    /// Opens `dir` as a Maildir (creating `tmp`, `new`, `cur`) and greets.
    pub fn open(dir: &Path) -> io::Result<Self> {
        for sub in ["tmp", "new", "cur"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        Ok(MaildirSink {
            dir: dir.to_path_buf(),
            replies: b"220 atmail maildir ESMTP\r\n".to_vec(),
            line: Vec::new(),
            data: None,
            login_step: 0,
            closed: false,
        })
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
        if let Some((file, _)) = self.data.as_mut() {
            if line == b"." {
                return self.deliver();
            }
            let line = line.strip_prefix(b".").unwrap_or(line);
            file.write_all(line)?;
            return file.write_all(b"\n");
        }
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if self.login_step == 1 {
            self.login_step = 2;
            b"334 UGFzc3dvcmQ6\r\n"
        } else if self.login_step == 2 {
            self.login_step = 0;
            b"235 2.7.0 accepted\r\n"
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
