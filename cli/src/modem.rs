//! `atmail modem`: a virtual G510 on stdio or a pty that sends real mail.
//!
//! What it does: plays the module around the engine. A thread reads the
//! host's bytes (stdin or the pty) and hands them over a channel; the main
//! loop gives every one of them to [`Session`] (which edits, echoes and
//! executes command lines and takes data-mode payload itself), answers
//! the commands the session hands over (`AT+MIPCALL`, `AT&K3`), gives each
//! mail its date and Message-ID, opens the connection the session asks
//! for (TCP, TLS, or the in-process Maildir server), pumps bytes both
//! ways, and writes what the session says to the host, paced like a
//! serial line when `--baud` is given.
//!
//! What it does not: pace the host's input (that is the host's UART), or
//! retry a mail; a failed mail is reported and the host decides.
//!
//! Why it is built this way: the session is sans-IO, so this loop is the
//! only place that knows about clocks, threads and sockets; a firmware's
//! main loop looks the same with a UART and a modem socket.

use crate::link::{self, Handshake, Link};
use crate::maildir::MaildirSink;
use crate::serial::{self, Paced, Pty};
use atmail_core::header::Token;
use atmail_core::message::MessageId;
use atmail_core::session::{Event, Session, Stopped};
use atmail_core::token::TOKEN_MAX;
use crossbeam_channel::{Receiver, Select, Sender, TryRecvError};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
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
    /// Trust only the CA certificates in this PEM file for TLS (default:
    /// the system's roots).
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// Refuse to send over a connection without TLS (STARTTLS must be
    /// offered when the server is not SMTPS).
    #[arg(long)]
    require_tls: bool,
    /// Serve a pseudo-terminal instead of stdio; its path is printed on
    /// stdout.
    #[arg(long)]
    pty: bool,
    /// Pace output like a serial line at N baud (8N1); default unpaced.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    baud: Option<u32>,
    /// The EHLO name (this host's fully qualified name); default an address
    /// literal of the connection's local end, such as `[10.1.2.3]`.
    #[arg(long, value_name = "NAME")]
    helo: Option<String>,
}

/// Host bytes and the time they arrived (ms since start), or `None` when
/// the line ended. Data mode's guard times are about arrival, not about
/// when the loop gets to the bytes.
type HostInput = Option<(u64, Vec<u8>)>;

/// What a connection's reader thread hands to the main loop.
enum ServerInput {
    Bytes(Vec<u8>),
    End,
}

/// Host reads queued between the reader thread and the loop. The queue is
/// bounded so a loop that cannot keep up stops the reader, and through the
/// pipe or pty the host: flow control instead of memory.
const HOST_QUEUE: usize = 4;
/// Host bytes the loop holds that the session has not taken yet.
const PENDING_MAX: usize = 64 * 1024;

struct Modem {
    args: Args,
    session: Session,
    start: Instant,
    network_up: bool,
    /// Host bytes not yet taken (backpressure), with their arrival times.
    pending: VecDeque<(u64, Vec<u8>)>,
    link: Option<Link>,
    /// Where data-mode payload is encoded for the server, reused.
    serial_out: Box<[u8]>,
    /// Server bytes not yet read by the session.
    from_server: Vec<u8>,
    /// Bumped per connection, so a closed connection's reader is ignored.
    link_id: u64,
    server_tx: Sender<(u64, ServerInput)>,
    out: Box<dyn Write>,
    /// Built at the first TLS connection, then shared by all.
    tls_config: Option<Arc<rustls::ClientConfig>>,
    /// The configured server's name, which its certificate must match.
    tls_name: String,
}

/// Runs `atmail modem` until the host's line ends and no mail is in
/// progress (a pty never ends: stop the modem with a signal).
pub fn run(args: Args) -> Result<(), String> {
    let (host_tx, host_rx) = crossbeam_channel::bounded::<HostInput>(HOST_QUEUE);
    let (server_tx, server_rx) = crossbeam_channel::unbounded();
    let start = Instant::now();
    let forward = move |got: HostInput| host_tx.send(got).is_ok();
    // The pty must outlive the loop: it holds the line's slave side open.
    let mut _pty = None;
    let out: Box<dyn Write> = if args.pty {
        let pty = Pty::open()?;
        let (reader, writer) = pty.split()?;
        let mut stdout = io::stdout();
        writeln!(stdout, "{}", pty.path.display()).map_err(|e| e.to_string())?;
        stdout.flush().map_err(|e| e.to_string())?;
        serial::spawn_reader(reader, start, forward);
        _pty = Some(pty);
        Box::new(writer)
    } else {
        serial::spawn_reader(io::stdin(), start, forward);
        Box::new(io::stdout())
    };
    let out = match args.baud {
        Some(baud) => Box::new(Paced::new(out, baud)),
        None => out,
    };
    // A CA file given on the command line is checked now, not at the
    // first mail: a typo should stop the modem, not fail mails later.
    let tls_config = match &args.tls_ca {
        Some(path) => Some(link::client_config(Some(path))?),
        None => None,
    };
    let mut session = Session::new();
    session.set_guard_ms(args.guard_ms);
    session.set_require_tls(args.require_tls);
    if let Some(name) = &args.helo {
        session
            .set_helo_name(name.as_bytes())
            .map_err(|e| format!("--helo {name:?}: {}", e.as_str()))?;
    }
    // The token of AT+GTSMTPTOKEN, 8 KiB as DESIGN.md gives hosts: one
    // buffer for the process's one session, which wipes it when a token
    // goes (CLR, =0, a failed read) and when it is dropped.
    session.set_token_storage(Box::leak(vec![0u8; TOKEN_MAX].into_boxed_slice()));
    // Like the module, no mail before `AT+MIPCALL=1` brings the network up.
    session.set_network_up(false);
    let mut modem = Modem {
        args,
        session,
        start,
        network_up: false,
        pending: VecDeque::new(),
        link: None,
        serial_out: vec![0u8; 64 * 1024].into_boxed_slice(),
        from_server: Vec::new(),
        link_id: 0,
        server_tx,
        out,
        tls_config,
        tls_name: String::new(),
    };
    modem.run(host_rx, server_rx)
}

impl Modem {
    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn run(
        &mut self,
        host: Receiver<HostInput>,
        server: Receiver<(u64, ServerInput)>,
    ) -> Result<(), String> {
        let mut eof = false;
        loop {
            let mut select = Select::new();
            let from_server = select.recv(&server);
            if self.wants_host(eof) {
                select.recv(&host);
            }
            if let Ok(op) = select.select_timeout(Duration::from_millis(self.wait_ms())) {
                if op.index() == from_server {
                    if let Ok((id, input)) = op.recv(&server) {
                        self.on_server(id, input);
                    }
                } else {
                    self.on_host(op.recv(&host).ok().flatten(), &mut eof);
                }
            }
            while let Ok((id, input)) = server.try_recv() {
                self.on_server(id, input);
            }
            while self.wants_host(eof) {
                match host.try_recv() {
                    Err(TryRecvError::Empty) => break,
                    got => self.on_host(got.ok().flatten(), &mut eof),
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

    fn wants_host(&self, eof: bool) -> bool {
        !eof && self.pending.iter().map(|(_, b)| b.len()).sum::<usize>() < PENDING_MAX
    }

    fn on_host(&mut self, got: HostInput, eof: &mut bool) {
        match got {
            Some(chunk) => self.pending.push_back(chunk),
            None => *eof = true,
        }
    }

    fn on_server(&mut self, id: u64, input: ServerInput) {
        if id != self.link_id || self.link.is_none() {
            return; // a connection already given up
        }
        match input {
            ServerInput::Bytes(bytes) => self.server_raw(&bytes),
            ServerInput::End => self.lose_link(""),
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
        self.host_input()?;
        // Timers may not run past host bytes still waiting to be taken.
        let now = self.pending.front().map_or(self.now(), |(at, _)| *at);
        self.session.handle_timeout(now);
        self.handle_events();
        self.pump_server();
        self.flush_host()
    }

    /// Everything the session asks of the modem, in the session's order.
    fn handle_events(&mut self) {
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::Command(line) => {
                    let line = line.to_vec();
                    self.answer_command(&line);
                }
                Event::Identity => self.set_identity(),
                Event::Connect(target) => {
                    let host = String::from_utf8_lossy(target.host).into_owned();
                    let (port, tls) = (target.port, target.implicit_tls);
                    self.connect(host, port, tls);
                }
                Event::StartTls => self.start_tls(Handshake::StartTls),
                Event::Close => self.close_link(),
                Event::MailFailed(failure) => eprintln!("atmail: mail failed: {failure}"),
            }
        }
    }

    /// Host bytes, each chunk at its arrival time, all to the session.
    fn host_input(&mut self) -> Result<(), String> {
        while let Some((at, mut chunk)) = self.pending.pop_front() {
            let used = self.host_chunk(at, &chunk)?;
            if used < chunk.len() {
                chunk.drain(..used);
                self.pending.push_front((at, chunk));
                return Ok(());
            }
        }
        Ok(())
    }

    /// Takes what the session can of one chunk; returns how much.
    fn host_chunk(&mut self, at: u64, chunk: &[u8]) -> Result<usize, String> {
        let mut used = 0;
        while used < chunk.len() {
            // What poll_server has goes before what handle_host writes.
            self.pump_server();
            let progress = self
                .session
                .handle_host(&chunk[used..], at, &mut self.serial_out);
            let written = &self.serial_out[..progress.written];
            let sent = self.link.as_mut().map(|l| l.write(written));
            if let Some(Err(e)) = sent {
                self.lose_link(&format!("writing to the server: {e}"));
            }
            used += progress.read;
            match progress.stopped {
                Stopped::Caller => self.handle_events(),
                Stopped::HostFull => self.flush_host()?,
                Stopped::InputEmpty => {}
                // The server must take bytes first (or, for a reason this
                // modem does not know, the next turn tries again).
                _ if progress.read + progress.written == 0 => break,
                _ => {}
            }
        }
        Ok(used)
    }

    /// The module commands that are not the engine's: flow control and
    /// the data call (`AT+MIPCALL`), which a real G510 needs before SEND.
    fn answer_command(&mut self, line: &[u8]) {
        let upper = line.trim_ascii().to_ascii_uppercase();
        let answer: &[u8] = match upper.as_slice() {
            b"AT&K3" | b"AT&K0" => b"\r\nOK\r\n",
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
            _ => b"\r\nERROR\r\n",
        };
        self.session.set_network_up(self.network_up);
        let _ = self.session.answer_command(answer);
    }

    /// The mail's Date and Message-ID; a SEND is never left waiting: if
    /// they cannot be made, it fails with a clear error.
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
                    .rposition(|&b| b == b'@')
                    .map(|at| user[at + 1..].to_vec())
            })
            .unwrap_or_default();
        let local = format!(
            "{:x}.{}",
            (self.start.elapsed().as_nanos() ^ random()) as u64,
            std::process::id()
        );
        let id = message_id(&local, &String::from_utf8_lossy(&domain));
        match (
            Token::new(date.as_bytes(), true),
            MessageId::new(id.as_bytes()),
        ) {
            (Ok(date), Ok(id)) => self.session.set_identity(date, id),
            _ => {
                eprintln!("atmail: no Date or Message-ID for the mail ({date:?}, {id:?})");
                self.session.refuse_identity();
            }
        }
    }

    fn connect(&mut self, host: String, port: u16, tls: bool) {
        let now = self.now();
        let link = match (&self.args.maildir, &self.args.connect) {
            (Some(dir), _) => MaildirSink::open(dir)
                .map(Link::Maildir)
                .map_err(|e| format!("{}: {e}", dir.display())),
            (None, Some(addr)) => tcp(addr),
            (None, None) => tcp(&format!("{host}:{port}")),
        };
        match link {
            Ok(link) => {
                self.link_id += 1;
                self.from_server.clear();
                if let Link::Tcp { stream, .. } = &link {
                    self.spawn_reader(stream);
                }
                // SMTPS talks TLS from the first byte; the Maildir server
                // is in-process and has no wire to protect.
                let implicit = tls && matches!(link, Link::Tcp { .. });
                self.link = Some(link);
                self.tls_name = host;
                if implicit {
                    self.start_tls(Handshake::Implicit);
                } else {
                    let local = self.link.as_ref().and_then(Link::local_ip);
                    self.session.handle_connected(now, local);
                }
            }
            Err(e) => {
                eprintln!("atmail: connecting: {e}");
                self.session.handle_closed();
            }
        }
    }

    /// Reads the server on its own thread, so the main loop never waits on it.
    fn spawn_reader(&self, stream: &TcpStream) {
        let (Ok(mut stream), tx, id) = (stream.try_clone(), self.server_tx.clone(), self.link_id)
        else {
            return;
        };
        std::thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            loop {
                match stream.read(&mut buf) {
                    Ok(n) if n > 0 => {
                        if tx
                            .send((id, ServerInput::Bytes(buf[..n].to_vec())))
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    _ => {
                        let _ = tx.send((id, ServerInput::End));
                        return;
                    }
                }
            }
        });
    }

    /// The connection failed or ended; the session hears of it once.
    fn lose_link(&mut self, why: &str) {
        if !why.is_empty() {
            eprintln!("atmail: {why}");
        }
        self.close_link();
        self.session.handle_closed();
    }

    /// Closes the connection (if any) and forgets its unread bytes.
    fn close_link(&mut self) {
        if let Some(link) = self.link.take() {
            link.close();
        }
        self.from_server.clear();
    }

    fn start_tls(&mut self, why: Handshake) {
        let config = match &self.tls_config {
            Some(config) => config.clone(),
            None => match link::client_config(self.args.tls_ca.as_deref()) {
                Ok(config) => self.tls_config.insert(config).clone(),
                Err(e) => return self.lose_link(&format!("TLS: {e}")),
            },
        };
        let started = self
            .link
            .as_mut()
            .map(|link| link.start_tls(config, &self.tls_name, why));
        if let Some(Err(e)) = started {
            self.tls_failed(&e);
        }
    }

    /// TLS failed (a refused certificate, a bad record): the session hears
    /// it as TLS, not as the server closing.
    fn tls_failed(&mut self, why: &str) {
        eprintln!("atmail: {why}");
        self.close_link();
        self.session.handle_tls_failed();
    }

    /// The server's bytes as they came off the socket.
    fn server_raw(&mut self, raw: &[u8]) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        let local = link.local_ip();
        match link.receive(raw) {
            Ok(got) => {
                let now = self.now();
                match got.handshake_done {
                    Some(Handshake::Implicit) => self.session.handle_connected(now, local),
                    Some(Handshake::StartTls) => self.session.handle_tls_established(now),
                    None => {}
                }
                self.server_input(&got.plaintext);
            }
            Err(e) => self.tls_failed(&e),
        }
    }

    /// Server bytes the session reads once the commands they answer are
    /// on the wire; the rest waits in `from_server`.
    fn server_input(&mut self, bytes: &[u8]) {
        self.from_server.extend_from_slice(bytes);
        while !self.from_server.is_empty() {
            let n = self.session.handle_server(&self.from_server, self.now());
            self.from_server.drain(..n);
            if n == 0 && !self.transmit() {
                break;
            }
        }
    }

    /// Sends one buffer of what the session has for the server; returns
    /// whether there was anything.
    fn transmit(&mut self) -> bool {
        let mut buf = [0u8; 16 * 1024];
        let now = self.now();
        let Some(link) = self.link.as_mut() else {
            return false;
        };
        let n = self.session.poll_server(&mut buf, now);
        if n == 0 {
            return false;
        }
        if let Err(e) = link.write(&buf[..n]) {
            self.lose_link(&format!("writing to the server: {e}"));
            return false;
        }
        true
    }

    /// Sends what the session has for the server; the Maildir server
    /// answers at once.
    fn pump_server(&mut self) {
        loop {
            let sent = self.transmit();
            let Some(Link::Maildir(sink)) = self.link.as_mut() else {
                return;
            };
            let replies = sink.read();
            let closed = sink.is_closed();
            self.server_input(&replies);
            if closed {
                return self.lose_link("");
            }
            if !sent && replies.is_empty() {
                return;
            }
        }
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

fn tcp(addr: &str) -> Result<Link, String> {
    let target = addr
        .to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))?;
    let stream = TcpStream::connect_timeout(&target, Duration::from_secs(30))
        .map_err(|e| format!("{addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(Link::Tcp { stream, tls: None })
}

/// The longest Message-ID `MessageId::new` takes, brackets included.
const MESSAGE_ID_MAX: usize = 76;

/// `<local@domain>` within [`MESSAGE_ID_MAX`]: a login's domain too long
/// for it loses its leftmost labels (`mx.eu.example.com` becomes
/// `example.com`), and one with nothing usable left, or bytes a
/// Message-ID cannot hold, becomes `atmail.invalid` (RFC 2606).
fn message_id(local: &str, domain: &str) -> String {
    let room = MESSAGE_ID_MAX.saturating_sub(local.len() + 3);
    let usable = |d: &str| {
        !d.is_empty()
            && d.len() <= room
            && d.bytes()
                .all(|b| b.is_ascii_graphic() && !b"<>@".contains(&b))
    };
    let mut rest = domain;
    while !usable(rest) {
        match rest.split_once('.') {
            Some((_, tail)) if tail.contains('.') => rest = tail,
            _ => {
                rest = "atmail.invalid";
                break;
            }
        }
    }
    format!("<{local}@{rest}>")
}

fn random() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    h.finish() as u128
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_id_is_valid_for_any_login_domain() {
        let local = "18f3a9c2b7d4e5f6.4242";
        let cases = [
            ("fibocom.com", "fibocom.com"),
            (
                "a-very-long-department-name.mail.eu-west.corp.example.com",
                "mail.eu-west.corp.example.com",
            ),
            (&"x".repeat(67), "atmail.invalid"),
            ("", "atmail.invalid"),
            ("b\u{e4}d.example.com", "example.com"),
            ("white space.com", "atmail.invalid"),
        ];
        for (domain, kept) in cases {
            let id = message_id(local, domain);
            assert_eq!(id, format!("<{local}@{kept}>"), "{domain:?}");
            assert!(MessageId::new(id.as_bytes()).is_ok(), "{id}");
        }
        let long = format!("{}.example.com", "y".repeat(60));
        let id = message_id(local, &long);
        assert!(MessageId::new(id.as_bytes()).is_ok(), "{id}");
    }
}
