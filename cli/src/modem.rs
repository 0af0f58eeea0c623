//! `atmail modem`: a virtual G510 on stdio that sends real mail.
//!
//! What it does: plays the module around the engine. A thread reads the
//! host's bytes from stdin and hands them over a channel; the main loop
//! runs the V.250 shell (`AT`, `ATE0/1`, `AT&K3`, `AT+CMEE`,
//! `AT+MIPCALL`), passes `+GTSMTP*` lines and data-mode bytes to
//! [`Session`], opens the connection the session asks for (TCP, or the
//! in-process Maildir server), pumps bytes both ways, and writes answers
//! and URCs to stdout exactly as the session renders them.
//!
//! What it does not (yet): TLS (SMTPS and STARTTLS get `+GTSMTPSEND: 0`
//! and a line on stderr), `--pty`, or `--baud` pacing.
//!
//! Why it is built this way: the session is sans-IO, so this loop is the
//! only place that knows about clocks, threads and sockets; a firmware's
//! main loop looks the same with a UART and a modem socket.

use crate::maildir::MaildirSink;
use atmail_core::header::Token;
use atmail_core::message::MessageId;
use atmail_core::session::Session;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Arguments of `atmail modem`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Send every connection to HOST:PORT instead of the configured server.
    #[arg(long, value_name = "HOST:PORT")]
    connect: Option<String>,
    /// Deliver into this Maildir instead of a network server.
    #[arg(long, value_name = "DIR", conflicts_with = "connect")]
    maildir: Option<PathBuf>,
    /// The `+++` guard time in ms.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    guard_ms: u32,
}

/// The connection the session asked for.
enum Link {
    Tcp(TcpStream),
    Maildir(MaildirSink),
}

impl Link {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Link::Tcp(s) => s.write_all(bytes),
            Link::Maildir(m) => m.write(bytes),
        }
    }

    /// Server bytes available now; `Ok(None)` when the server closed.
    fn read(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<()>> {
        match self {
            Link::Tcp(s) => {
                let mut chunk = [0u8; 4096];
                match s.read(&mut chunk) {
                    Ok(0) => Ok(None),
                    Ok(n) => {
                        buf.extend_from_slice(&chunk[..n]);
                        Ok(Some(()))
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        Ok(Some(()))
                    }
                    Err(e) => Err(e),
                }
            }
            Link::Maildir(m) => {
                buf.extend_from_slice(&m.read());
                Ok(if m.is_closed() { None } else { Some(()) })
            }
        }
    }
}

struct Modem {
    args: Args,
    session: Session,
    start: Instant,
    echo: bool,
    network_up: bool,
    line: Vec<u8>,
    pending: Vec<u8>,
    link: Option<Link>,
    out: io::Stdout,
}

/// Runs `atmail modem` until stdin ends and no mail is in progress.
pub fn run(args: Args) -> Result<(), String> {
    let (tx, rx) = crossbeam_channel::unbounded::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut session = Session::new();
    session.set_guard_ms(args.guard_ms);
    let mut modem = Modem {
        args,
        session,
        start: Instant::now(),
        echo: true,
        network_up: false,
        line: Vec::new(),
        pending: Vec::new(),
        link: None,
        out: io::stdout(),
    };
    modem.run(rx)
}

impl Modem {
    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn run(&mut self, rx: Receiver<Vec<u8>>) -> Result<(), String> {
        let mut eof = false;
        loop {
            let wait = self.wait_ms();
            if eof {
                std::thread::sleep(Duration::from_millis(wait));
            } else {
                match rx.recv_timeout(Duration::from_millis(wait)) {
                    Ok(bytes) => self.pending.extend_from_slice(&bytes),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => eof = true,
                }
            }
            self.service()?;
            // After the host's last byte, run until nothing is left to do:
            // no connection, no data mode, no timer.
            let idle = self.link.is_none()
                && !self.session.in_data_mode()
                && self.session.next_deadline().is_none();
            if eof && self.pending.is_empty() && idle {
                return self.flush_host();
            }
        }
    }

    /// How long to wait for host bytes: short while a connection is live.
    fn wait_ms(&self) -> u64 {
        let deadline = self
            .session
            .next_deadline()
            .map(|d| d.saturating_sub(self.now()));
        let cap = if self.link.is_some() { 5 } else { 200 };
        deadline.unwrap_or(cap).min(cap)
    }

    fn service(&mut self) -> Result<(), String> {
        let now = self.now();
        self.session.poll(now);
        self.host_input()?;
        self.connect();
        self.pump_server()?;
        if self.session.poll_start_tls() {
            eprintln!(
                "atmail: STARTTLS is not supported by this build yet; giving up the connection"
            );
            self.link = None;
            self.session.handle_closed();
        }
        if self.session.poll_close() {
            self.link = None;
        }
        self.flush_host()
    }

    /// Host bytes: data-mode payload, or command lines.
    fn host_input(&mut self) -> Result<(), String> {
        let mut used = 0;
        while used < self.pending.len() {
            let now = self.now();
            if self.session.in_data_mode() {
                let mut buf = vec![0u8; 64 * 1024];
                let (r, w) = self
                    .session
                    .handle_serial_data(&self.pending[used..], now, &mut buf);
                if let Some(link) = self.link.as_mut() {
                    link.write(&buf[..w])
                        .map_err(|e| format!("writing to the server: {e}"))?;
                }
                used += r;
                if r == 0 {
                    break;
                }
                continue;
            }
            let b = self.pending[used];
            used += 1;
            if self.echo {
                self.echo_byte(b)?;
            }
            match b {
                b'\r' => {
                    let line = std::mem::take(&mut self.line);
                    self.execute(&line, now);
                    self.flush_host()?;
                }
                b'\n' => {}
                _ => self.line.push(b),
            }
        }
        self.pending.drain(..used);
        Ok(())
    }

    fn echo_byte(&mut self, b: u8) -> Result<(), String> {
        self.out
            .write_all(&[b])
            .map_err(|e| format!("writing stdout: {e}"))
    }

    fn execute(&mut self, line: &[u8], now: u64) {
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            return;
        }
        let upper = trimmed.to_ascii_uppercase();
        let reply: &[u8] = match upper.as_slice() {
            b"AT" | b"AT&K3" | b"AT&K0" => b"\r\nOK\r\n",
            b"ATE0" => {
                self.echo = false;
                b"\r\nOK\r\n"
            }
            b"ATE1" => {
                self.echo = true;
                b"\r\nOK\r\n"
            }
            b"AT+CMEE=0" | b"AT+CMEE=1" | b"AT+CMEE=2" => {
                self.session.set_verbose_errors(upper != b"AT+CMEE=0");
                b"\r\nOK\r\n"
            }
            b"AT+MIPCALL=0" => {
                self.network_up = false;
                b"\r\nOK\r\n"
            }
            b"AT+MIPCALL?" if self.network_up => b"\r\n+MIPCALL: 1\r\n\r\nOK\r\n",
            b"AT+MIPCALL?" => b"\r\n+MIPCALL: 0\r\n\r\nOK\r\n",
            _ if upper.starts_with(b"AT+MIPCALL=1,\"") && upper.ends_with(b"\"") => {
                self.network_up = true;
                b"\r\nOK\r\n\r\n+MIPCALL: 127.0.0.1\r\n"
            }
            _ if upper.starts_with(b"AT+GTSM") => return self.engine_line(trimmed, &upper, now),
            _ => b"\r\nERROR\r\n",
        };
        let _ = self.out.write_all(reply);
    }

    /// A `+GTSMTP*` line: SEND needs the network and a fresh date and id.
    fn engine_line(&mut self, line: &[u8], upper: &[u8], now: u64) {
        let is_send_set = upper.contains(&b'=') && !upper.ends_with(b"=?") && is_send(upper);
        if is_send_set {
            if !self.network_up {
                let _ = self.out.write_all(b"\r\nERROR\r\n");
                return;
            }
            self.set_identity();
        }
        while !self.session.handle_at_line(line, now) {
            let _ = self.flush_host();
        }
    }

    fn set_identity(&mut self) {
        let date = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap_or_default();
        let domain = self
            .session
            .config()
            .login()
            .and_then(|(user, _)| {
                user.iter()
                    .position(|&b| b == b'@')
                    .map(|at| user[at + 1..].to_vec())
            })
            .unwrap_or_else(|| b"atmail.invalid".to_vec());
        let id = format!(
            "<{:x}.{}@{}>",
            self.start.elapsed().as_nanos() ^ random(),
            std::process::id(),
            String::from_utf8_lossy(&domain)
        );
        if let (Ok(date), Ok(id)) = (
            Token::new(date.as_bytes(), true),
            MessageId::new(id.as_bytes()),
        ) {
            self.session.set_identity(date, id);
        }
    }

    fn connect(&mut self) {
        let now = self.now();
        let Some(target) = self.session.poll_connect() else {
            return;
        };
        let (host, port, tls) = (
            String::from_utf8_lossy(target.host).into_owned(),
            target.port,
            target.implicit_tls,
        );
        if tls && self.args.maildir.is_none() {
            eprintln!("atmail: SMTPS (implicit TLS) is not supported by this build yet");
            return self.session.handle_closed();
        }
        let link = match (&self.args.maildir, &self.args.connect) {
            (Some(dir), _) => MaildirSink::open(dir)
                .map(Link::Maildir)
                .map_err(|e| format!("{}: {e}", dir.display())),
            (None, Some(addr)) => tcp(addr),
            (None, None) => tcp(&format!("{host}:{port}")),
        };
        match link {
            Ok(link) => {
                self.link = Some(link);
                self.session.handle_connected(now);
            }
            Err(e) => {
                eprintln!("atmail: connecting: {e}");
                self.session.handle_closed();
            }
        }
    }

    fn pump_server(&mut self) -> Result<(), String> {
        let Some(link) = self.link.as_mut() else {
            return Ok(());
        };
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = self
                .session
                .poll_server(&mut buf, self.start.elapsed().as_millis() as u64);
            if n == 0 {
                break;
            }
            if let Err(e) = link.write(&buf[..n]) {
                eprintln!("atmail: writing to the server: {e}");
                self.link = None;
                self.session.handle_closed();
                return Ok(());
            }
        }
        let mut input = Vec::new();
        let open = link.read(&mut input);
        let now = self.now();
        let mut rest = &input[..];
        while !rest.is_empty() {
            let n = self.session.handle_server(rest, now);
            if n == 0 {
                break;
            }
            rest = &rest[n..];
        }
        if !matches!(open, Ok(Some(()))) {
            self.link = None;
            self.session.handle_closed();
        }
        if !input.is_empty() {
            // Replies may call for more commands at once.
            return self.pump_server();
        }
        Ok(())
    }

    fn flush_host(&mut self) -> Result<(), String> {
        let mut buf = [0u8; 4096];
        loop {
            let n = self.session.poll_host(&mut buf);
            if n == 0 {
                break;
            }
            self.out
                .write_all(&buf[..n])
                .map_err(|e| format!("writing stdout: {e}"))?;
        }
        self.out.flush().map_err(|e| format!("writing stdout: {e}"))
    }
}

fn is_send(upper: &[u8]) -> bool {
    ["AT+GTSMTPSEND=", "AT+GTSMPSEND=", "AT+GTSMTSEND="]
        .iter()
        .any(|p| upper.starts_with(p.as_bytes()))
}

fn tcp(addr: &str) -> Result<Link, String> {
    let target = addr
        .to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))?;
    let stream = TcpStream::connect_timeout(&target, Duration::from_secs(30))
        .map_err(|e| format!("{addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_millis(2)))
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(Link::Tcp(stream))
}

fn random() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    h.finish() as u128
}
