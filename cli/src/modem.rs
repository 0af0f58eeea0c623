//! `atmail modem`: a virtual G510 on stdio or a pty that sends real mail.
//!
//! What it does: plays the module around the engine. A thread reads the
//! host's bytes (stdin, the pty or a real serial port) and hands them
//! over a channel; the main loop gives every one of them to [`Session`]
//! (which edits, echoes and executes command lines and takes data-mode
//! payload itself), answers the commands the session hands over with the
//! G510's basic commands (`basic`: identity, SIM, network, `AT+MIPCALL`,
//! `ATV`, `ATQ`, `AT&K3`, ...), says the power-up lines, gives each mail
//! its date and Message-ID, opens the connection the session asks for
//! (TCP, TLS, or the in-process Maildir server), pumps bytes both ways
//! through the link's shaping (`shaping`), applies the network's events
//! from the control socket (`control`), and writes what the session and
//! the module say to the host, paced like a serial line when `--baud` is
//! given without `--device`.
//!
//! What it does not: pace the host's input (that is the host's UART), or
//! retry a mail; a failed mail is reported and the host decides.
//!
//! Why it is built this way: the session is sans-IO, so this loop is the
//! only place that knows about clocks, threads and sockets; a firmware's
//! main loop looks the same with a UART and a modem socket.

use crate::basic::{Change, Effect, Module};
use crate::control::{self, Control};
use crate::link::{self, Handshake, Link};
use crate::maildir::{self, Faults, MaildirSink, Step};
use crate::profile::Profile;
use crate::serial::{self, Device, Paced, Pty};
use crate::shaping::{Lane, Piece, Shaping, WINDOW};
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
    /// Serve a real serial port (a USB-serial adapter wired to the host's
    /// MCU), raw, 8N1, at --baud (default 115200).
    #[arg(long, value_name = "PATH", conflicts_with = "pty")]
    device: Option<PathBuf>,
    /// With --device: RTS/CTS flow control from the start (AT&K3).
    #[arg(long, requires = "device")]
    rtscts: bool,
    /// With --device, the port's rate; otherwise pace output like a
    /// serial line at N baud (8N1; default unpaced).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    baud: Option<u32>,
    /// Who the module says it is (IMEI, IMSI, operator, signal,
    /// firmware strings) and the network it starts on: a TOML file.
    #[arg(long, value_name = "FILE")]
    profile: Option<PathBuf>,
    /// Take network events (registration, the data call, the SIM, the
    /// signal) from this Unix socket, one line each.
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
    /// Shape the link to the server: at most this many bytes a second,
    /// each way.
    #[arg(long, value_name = "BYTES_PER_S", value_parser = clap::value_parser!(u64).range(1..))]
    link_rate: Option<u64>,
    /// Shape the link to the server: this one-way delay, each way.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    link_delay: u64,
    /// Drop each connection once this many bytes have crossed it.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    link_drop_after: Option<u64>,
    /// With --maildir: answer an SMTP step (greeting, ehlo, auth, mail,
    /// rcpt, data, end) with this code and a text; repeatable.
    #[arg(long, value_name = "STEP=CODE", requires = "maildir", value_parser = maildir::parse_fault)]
    fault: Vec<(Step, u16)>,
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
/// pipe, pty or port the host: flow control instead of memory. With the
/// reader's 4 KiB reads ([`serial::READ_MAX`]) and [`PENDING_MAX`], at
/// most about 24 KiB of the host's bytes wait in the modem, a few UART
/// buffers' worth, so a slow link holds the host soon, as on a module.
const HOST_QUEUE: usize = 4;
/// Host bytes the loop holds that the session has not taken yet.
const PENDING_MAX: usize = 4 * 1024;

struct Modem {
    args: Args,
    session: Session,
    /// The module's basic commands and its network.
    module: Module,
    /// The real port, for `AT+IPR` and `AT&K`.
    device: Option<Device>,
    start: Instant,
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
    shaping: Shaping,
    /// Wire bytes on their way to the server, and from it.
    up: Lane,
    down: Lane,
    /// Bytes that crossed the current connection, both ways.
    crossed: u64,
    /// The lanes are being released (a release that would start inside
    /// one leaves the work to it).
    releasing: bool,
    /// A write to the server failed: nothing more goes up, and the close
    /// is reported once the server's last bytes are read.
    write_failed: bool,
    /// URCs of the module, said after what the session has queued.
    urcs: Vec<u8>,
    /// A rate `AT+IPR` set, applied once its answer has gone.
    baud: Option<u32>,
    /// Why the modem took the connection away (the network, the link's
    /// drop), for the mail's failure.
    lost: Option<String>,
    faults: Faults,
    control: Option<Receiver<control::Request>>,
    /// Removes the control socket's path when the modem ends.
    _control: Option<Control>,
}

/// Runs `atmail modem` until the host's line ends and no mail is in
/// progress (a pty never ends: stop the modem with a signal).
pub fn run(args: Args) -> Result<(), String> {
    // Everything the command line names is checked before the module
    // powers up: a bad profile stops it with nothing said on the line.
    let profile = match &args.profile {
        Some(path) => Profile::load(path).map_err(|e| format!("--profile {e}"))?,
        None => Profile::default(),
    };
    let mut faults = Faults::default();
    args.fault.iter().for_each(|&fault| faults.set(fault));
    let (control_tx, control_rx) = crossbeam_channel::bounded(1);
    let control = match &args.control {
        Some(path) => Some(control::listen(path, control_tx)?),
        None => None,
    };
    let (host_tx, host_rx) = crossbeam_channel::bounded::<HostInput>(HOST_QUEUE);
    let (server_tx, server_rx) = crossbeam_channel::unbounded();
    let start = Instant::now();
    let forward = move |got: HostInput| host_tx.send(got).is_ok();
    // The pty must outlive the loop: it holds the line's slave side open.
    let mut _pty = None;
    let mut device = None;
    let out: Box<dyn Write> = if let Some(path) = &args.device {
        let port = Device::open(path, args.baud.unwrap_or(115_200), args.rtscts)?;
        let (reader, writer) = port.split()?;
        serial::spawn_reader(reader, start, forward);
        device = Some(port);
        Box::new(writer)
    } else if args.pty {
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
    // A real port is paced by its UART.
    let out = match (args.baud, &device) {
        (Some(baud), None) => Box::new(Paced::new(out, baud)),
        _ => out,
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
    // A G510 autobauds (AT+IPR? says 0) unless its rate was fixed.
    let module = Module::new(
        profile,
        args.rtscts,
        if device.is_some() {
            args.baud.unwrap_or(115_200)
        } else {
            0
        },
    );
    let urcs = module.power_up();
    let shaping = Shaping {
        rate: args.link_rate,
        delay_ms: args.link_delay,
        drop_after: args.link_drop_after,
    };
    let mut modem = Modem {
        args,
        session,
        module,
        device,
        start,
        pending: VecDeque::new(),
        link: None,
        serial_out: vec![0u8; 64 * 1024].into_boxed_slice(),
        from_server: Vec::new(),
        link_id: 0,
        server_tx,
        out,
        tls_config,
        tls_name: String::new(),
        shaping,
        up: Lane::default(),
        down: Lane::default(),
        crossed: 0,
        releasing: false,
        write_failed: false,
        urcs,
        baud: None,
        lost: None,
        faults,
        control: control.as_ref().map(|_| control_rx),
        _control: control,
    };
    modem.flush_host()?;
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
        let control = self.control.take();
        loop {
            let mut select = Select::new();
            let from_server = select.recv(&server);
            let from_control = control.as_ref().map(|c| select.recv(c));
            let from_host = self.wants_host(eof).then(|| select.recv(&host));
            if let Ok(op) = select.select_timeout(Duration::from_millis(self.wait_ms())) {
                if op.index() == from_server {
                    if let Ok((id, input)) = op.recv(&server) {
                        self.on_server(id, input);
                    }
                } else if Some(op.index()) == from_host {
                    self.on_host(op.recv(&host).ok().flatten(), &mut eof);
                } else if let (Some(c), Some(_)) = (&control, from_control) {
                    if let Ok(request) = op.recv(c) {
                        self.on_control(request)?;
                    }
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
                && self.session.next_deadline().is_none()
                && self.up.next_due().is_none()
                && self.down.next_due().is_none();
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
        let piece = match input {
            ServerInput::Bytes(bytes) => Piece::Bytes(bytes),
            ServerInput::End => Piece::End,
        };
        let now = self.now();
        self.down.push(&self.shaping, now, piece);
        self.release();
    }

    /// A network event from the control socket: the module's URCs, then
    /// what it means for a mail in flight; answered once applied.
    fn on_control(&mut self, request: control::Request) -> Result<(), String> {
        let urcs = self.module.change(request.change);
        self.urcs.extend_from_slice(&urcs);
        // The module's URCs, then what they mean for a mail.
        self.flush_host()?;
        self.apply_network(Some(request.change));
        self.flush_host()?;
        let _ = request.done.send(());
        Ok(())
    }

    /// Tells the session whether mail can go, and takes the connection
    /// away when the network under it went (`why`: what went).
    fn apply_network(&mut self, why: Option<Change>) {
        let net = self.module.network();
        self.session.set_network_up(net.data_call);
        if net.data_call || self.link.is_none() {
            return;
        }
        let reason = match why {
            Some(Change::Sim(false)) => "the SIM was removed (+SIM DROP)".to_owned(),
            Some(Change::DataCallLost) => "the data call dropped (+MIPCALL: 0)".to_owned(),
            _ if !net.registered() => format!(
                "the network registration was lost (+CREG: {}, {})",
                net.stat,
                match net.stat {
                    2 => "searching",
                    3 => "denied",
                    _ => "not registered",
                }
            ),
            _ => "the data call was ended (AT+MIPCALL=0)".to_owned(),
        };
        self.take_link_away(reason);
    }

    /// The modem ends the connection for `why` (the network, the link's
    /// drop): the session hears it closed, the mail's failure says why.
    fn take_link_away(&mut self, why: String) {
        self.lost = Some(why);
        self.lose_link("");
    }

    /// How long to wait for host bytes: short while a connection is live,
    /// and no later than the link's next piece.
    fn wait_ms(&self) -> u64 {
        let now = self.now();
        let deadline = [
            self.session.next_deadline(),
            self.up.next_due(),
            self.down.next_due(),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|d| d.saturating_sub(now));
        let cap = if self.link.is_some() { 5 } else { 200 };
        deadline.unwrap_or(cap).min(cap)
    }

    fn service(&mut self) -> Result<(), String> {
        self.release();
        self.host_input()?;
        // Timers may not run past host bytes still waiting to be taken.
        let now = self.pending.front().map_or(self.now(), |(at, _)| *at);
        self.session.handle_timeout(now);
        self.handle_events()?;
        self.pump_server();
        self.flush_host()
    }

    /// What the uplink may still take before the host is held: all a
    /// buffer holds on a plain link, the window on a shaped one.
    fn up_room(&self) -> usize {
        match self.shaping.on() {
            true => WINDOW.saturating_sub(self.up.held()),
            false => usize::MAX,
        }
    }

    /// The session's plaintext for the server, onto the uplink.
    fn send_plain(&mut self, plain: &[u8]) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        let mut wire = Vec::new();
        if let Err(e) = link.write(plain, &mut wire) {
            return self.lose_link(&format!("writing to the server: {e}"));
        }
        self.send_wire(wire);
    }

    fn send_wire(&mut self, wire: Vec<u8>) {
        let now = self.now();
        self.up.push(&self.shaping, now, Piece::Bytes(wire));
        self.release();
    }

    /// Carries what the link has carried by now: uplink bytes to the
    /// server (the in-process server answers at once, onto the downlink),
    /// downlink bytes to the session; the link drops at `--link-drop-after`.
    fn release(&mut self) {
        if std::mem::replace(&mut self.releasing, true) {
            return;
        }
        loop {
            let now = self.now();
            if let Some(piece) = self.up.pop_due(now) {
                if let Piece::Bytes(bytes) = piece {
                    self.carry_up(&bytes, now);
                }
            } else if let Some(piece) = self.down.pop_due(now) {
                match piece {
                    Piece::Bytes(bytes) if self.cross(bytes.len()) => self.server_raw(&bytes),
                    Piece::Bytes(_) => {}
                    Piece::End => self.lose_link(""),
                }
            } else {
                break;
            }
        }
        self.releasing = false;
    }

    /// Uplink bytes onto the wire, as far as the drop allows.
    fn carry_up(&mut self, bytes: &[u8], now: u64) {
        let room = match self.shaping.drop_after {
            Some(limit) => (limit.saturating_sub(self.crossed) as usize).min(bytes.len()),
            None => bytes.len(),
        };
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if self.write_failed {
            return;
        }
        if let Err(e) = link.deliver(&bytes[..room]) {
            // A server that refuses and resets (a 554 inside DATA, then
            // RST) makes the write fail while its reply is still to be
            // read: the session hears the close only after the reader
            // ends, so the reply's code is the URC.
            eprintln!("atmail: writing to the server: {e}");
            self.write_failed = true;
            self.up.clear();
            return;
        }
        if !self.cross(room) || room < bytes.len() {
            return self.drop_link();
        }
        if let Some(Link::Maildir(sink)) = self.link.as_mut() {
            let replies = sink.read();
            let closed = sink.is_closed();
            self.down.push(&self.shaping, now, Piece::Bytes(replies));
            if closed {
                self.down.push(&self.shaping, now, Piece::End);
            }
        }
    }

    /// Counts `n` bytes across the link; false when the link drops with
    /// them (`--link-drop-after`).
    fn cross(&mut self, n: usize) -> bool {
        self.crossed += n as u64;
        match self.shaping.drop_after {
            Some(limit) if self.crossed >= limit && n > 0 => {
                self.drop_link();
                false
            }
            _ => true,
        }
    }

    fn drop_link(&mut self) {
        if self.link.is_some() {
            let limit = self.shaping.drop_after.unwrap_or(self.crossed);
            self.take_link_away(format!(
                "the link dropped after {limit} bytes (--link-drop-after)"
            ));
        }
    }

    /// Everything the session asks of the modem, in the session's order.
    fn handle_events(&mut self) -> Result<(), String> {
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::Command(line) => {
                    let line = line.to_vec();
                    self.answer_command(&line)?;
                }
                Event::Identity => self.set_identity(),
                Event::Connect(target) => {
                    let host = String::from_utf8_lossy(target.host).into_owned();
                    let (port, tls) = (target.port, target.implicit_tls);
                    self.lost = None;
                    self.connect(host, port, tls);
                }
                Event::StartTls => self.start_tls(Handshake::StartTls),
                Event::Close => self.close_link(),
                // The engine heard the connection close; when the modem
                // closed it, the modem knows why.
                Event::MailFailed(failure) => match self.lost.take() {
                    Some(why) => eprintln!("atmail: mail failed: {why}"),
                    None => eprintln!("atmail: mail failed: {failure}"),
                },
            }
        }
        Ok(())
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
            let room = self.up_room().min(self.serial_out.len());
            let progress =
                self.session
                    .handle_host(&chunk[used..], at, &mut self.serial_out[..room]);
            if progress.written > 0 {
                let written = self.serial_out[..progress.written].to_vec();
                self.send_plain(&written);
            }
            used += progress.read;
            match progress.stopped {
                Stopped::Caller => self.handle_events()?,
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

    /// The module commands that are not the engine's (`basic`): the
    /// answer and URCs in the format in force, and what they change.
    fn answer_command(&mut self, line: &[u8]) -> Result<(), String> {
        let reply = self.module.command(line, self.session.error_level());
        let format = self.module.format();
        self.session.set_result_format(format.numeric, format.quiet);
        for effect in &reply.effects {
            match *effect {
                Effect::Echo(on) => self.session.set_echo(on),
                Effect::ErrorsOff => self.session.set_verbose_errors(false),
                Effect::Baud(rate) if rate > 0 => self.baud = Some(rate),
                Effect::Baud(_) => {}
                Effect::RtsCts(on) => {
                    if let Some(Err(e)) = self.device.as_ref().map(|d| d.set_rtscts(on)) {
                        eprintln!("atmail: AT&K: {e}");
                    }
                }
            }
        }
        let _ = self.session.answer_command(&reply.answer);
        // A URC the command made goes out right after its answer, before
        // any later line runs, and before what it does to a mail.
        if !reply.urcs.is_empty() {
            self.urcs.extend_from_slice(&reply.urcs);
            self.flush_host()?;
        }
        self.apply_network(None);
        Ok(())
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
        self.up.clear();
        self.down.clear();
        self.crossed = 0;
        let link = match (&self.args.maildir, &self.args.connect) {
            (Some(dir), _) => MaildirSink::open(dir, self.faults)
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
                // The in-process server's greeting, through the link.
                if let Some(Link::Maildir(sink)) = self.link.as_mut() {
                    let greeting = sink.read();
                    let closed = sink.is_closed();
                    self.down.push(&self.shaping, now, Piece::Bytes(greeting));
                    if closed {
                        self.down.push(&self.shaping, now, Piece::End);
                    }
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

    /// Closes the connection (if any) and forgets its unread bytes,
    /// and what the link still carried.
    fn close_link(&mut self) {
        if let Some(link) = self.link.take() {
            link.close();
        }
        self.from_server.clear();
        self.up.clear();
        self.down.clear();
        self.write_failed = false;
    }

    fn start_tls(&mut self, why: Handshake) {
        let config = match &self.tls_config {
            Some(config) => config.clone(),
            None => match link::client_config(self.args.tls_ca.as_deref()) {
                Ok(config) => self.tls_config.insert(config).clone(),
                Err(e) => return self.lose_link(&format!("TLS: {e}")),
            },
        };
        let mut wire = Vec::new();
        let started = self
            .link
            .as_mut()
            .map(|link| link.start_tls(config, &self.tls_name, why, &mut wire));
        match started {
            Some(Err(e)) => self.tls_failed(&e),
            Some(Ok(())) => self.send_wire(wire),
            None => {}
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
        let mut wire = Vec::new();
        let received = link.receive(raw, &mut wire);
        self.send_wire(wire);
        match received {
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
        if self.link.is_none() {
            return false;
        }
        let n = self.session.poll_server(&mut buf, now);
        if n == 0 {
            return false;
        }
        self.send_plain(&buf[..n]);
        true
    }

    /// Sends what the session has for the server (the in-process server
    /// answers onto the downlink at once).
    fn pump_server(&mut self) {
        while self.transmit() {}
        self.release();
    }

    /// Writes what the session has said, then the module's URCs (after
    /// the answer that made them), then applies a rate `AT+IPR` set.
    fn flush_host(&mut self) -> Result<(), String> {
        let mut buf = [0u8; 4096];
        loop {
            let n = self.session.poll_host(&mut buf);
            if n == 0 {
                break;
            }
            self.out
                .write_all(&buf[..n])
                .map_err(|e| format!("writing to the host: {e}"))?;
        }
        if !self.urcs.is_empty() {
            let urcs = std::mem::take(&mut self.urcs);
            self.out
                .write_all(&urcs)
                .map_err(|e| format!("writing to the host: {e}"))?;
        }
        self.out
            .flush()
            .map_err(|e| format!("writing to the host: {e}"))?;
        if let (Some(rate), Some(device)) = (self.baud.take(), &self.device) {
            device.set_baud(rate).map_err(|e| format!("AT+IPR: {e}"))?;
        }
        Ok(())
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
