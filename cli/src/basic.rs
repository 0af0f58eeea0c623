//! The G510's basic commands: the ones host code sends before any mail.
//!
//! What it does: [`Module`] answers every command line the engine hands
//! the modem (`Event::Command`): identity (`ATI`, `ATIn`, `+CGMI`,
//! `+CGMM`, `+CGMR`, `+CGSN`, `+CIMI`), SIM and network (`+CPIN`, `+CSQ`,
//! `+CREG`, `+CGREG`, `+COPS`, `+CFUN`, `+MIPCALL`), the line (`V`, `Q`,
//! `E` among other basic commands, `&K`, `&C`, `&D`, `+IPR`, `Z`, `&F`)
//! and the SMS settings that host libraries set at start (`+CMGF`,
//! `+CSMP`, `+CPMS`, `+CNMI`, `+CLIP`, `+CRC`, `+CSCS`). Formats are the
//! G5 family AT manual's where it is public, else 3GPP TS 27.007's (and
//! 27.005's for SMS); docs/modem.md says which. Values come from the
//! [`Profile`]. It also keeps the network's state (registration, GPRS
//! attach, the data call, the SIM, the signal) and says the URCs a change
//! makes (`+CREG:`, `+CGREG:`, `+MIPCALL: 0`, `+SIM DROP`, `+SIM READY`).
//!
//! What it does not: touch the session, a port or a socket. Each call
//! returns a [`Reply`]: the answer, URCs to send after it, and the
//! [`Effect`]s the modem must carry out (echo, the error level, the baud
//! rate, flow control, a reset). Sending SMS is out of scope: the
//! settings are taken and read back, `+CMGS` is `ERROR`.
//!
//! Why it is built this way: answers are pure functions of the command
//! and the state, so the modem stays the only place with I/O, and the
//! same answers serve stdio, a pty and a real UART.

use crate::profile::{registration_stat, Profile};

/// How result codes are framed: V.250's `V` and `Q`, which the modem
/// also gives the session (`Session::set_result_format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Format {
    /// `ATV0`.
    pub numeric: bool,
    /// `ATQ1`.
    pub quiet: bool,
}

impl Format {
    /// Information text: `\r\n<text>\r\n`, or `<text>\r\n` under `ATV0`.
    pub fn info(self, out: &mut Vec<u8>, text: &[u8]) {
        if !self.numeric {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(text);
        out.extend_from_slice(b"\r\n");
    }

    /// A result code with text (`+CME ERROR: ...`, a URC): no header and
    /// a CR alone under `ATV0`, nothing under `ATQ1`.
    pub fn result(self, out: &mut Vec<u8>, text: &[u8]) {
        if self.quiet {
            return;
        }
        if self.numeric {
            out.extend_from_slice(text);
            out.push(b'\r');
        } else {
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(text);
            out.extend_from_slice(b"\r\n");
        }
    }

    /// `OK`, or `0` under `ATV0`.
    pub fn ok(self, out: &mut Vec<u8>) {
        match (self.quiet, self.numeric) {
            (true, _) => {}
            (false, true) => out.extend_from_slice(b"0\r"),
            (false, false) => out.extend_from_slice(b"\r\nOK\r\n"),
        }
    }

    /// `ERROR` (`4`), or `+CME ERROR: <text>` as `AT+CMEE` says.
    pub fn error(self, out: &mut Vec<u8>, cmee: u8, text: &str) {
        if cmee > 0 {
            self.result(out, format!("+CME ERROR: {text}").as_bytes());
        } else if !self.quiet {
            out.extend_from_slice(if self.numeric {
                b"4\r"
            } else {
                b"\r\nERROR\r\n"
            });
        }
    }
}

/// What the modem must do besides sending the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// `ATE`: echo on or off.
    Echo(bool),
    /// `ATZ`, `AT&F`: back to `AT+CMEE=0`.
    ErrorsOff,
    /// `+IPR=<rate>`: the UART's rate, after the answer (0: autobaud,
    /// nothing to change).
    Baud(u32),
    /// `&K3` (true) or `&K0`: RTS/CTS flow control.
    RtsCts(bool),
}

/// What one command line came to.
#[derive(Debug, Default)]
pub struct Reply {
    /// The whole answer, final result included, in the format in force
    /// after the line.
    pub answer: Vec<u8>,
    /// URCs to send after the answer.
    pub urcs: Vec<u8>,
    /// What the modem must do.
    pub effects: Vec<Effect>,
}

/// Why a command line is refused (27.007's texts for `+CME ERROR:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    Unknown,
    NotAllowed,
    Parameters,
    NoSim,
    NoNetwork,
}

impl Refusal {
    fn text(self) -> &'static str {
        match self {
            Refusal::Unknown => "operation not supported",
            Refusal::NotAllowed => "operation not allowed",
            Refusal::Parameters => "incorrect parameters",
            Refusal::NoSim => "SIM not inserted",
            Refusal::NoNetwork => "no network service",
        }
    }
}

/// A parameter of an extended command.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Param {
    Empty,
    Number(u32),
    Text(String),
}

/// The form of an extended command.
enum Form {
    Exec,
    Read,
    Test,
    Set(Vec<Param>),
}

/// The rates `+IPR` takes (0: autobaud, the G510's default).
const RATES: [u32; 13] = [
    0, 300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800,
];

/// The network as the module sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    /// `+CREG`'s `<stat>` (and `+CGREG`'s: GPRS attach follows it).
    pub stat: u8,
    /// The SIM is in and ready.
    pub sim: bool,
    /// The data call (`AT+MIPCALL=1`) is up.
    pub data_call: bool,
    /// `+CSQ`.
    pub rssi: u8,
    pub ber: u8,
}

impl Network {
    /// Registered, on the home network or roaming.
    pub fn registered(self) -> bool {
        matches!(self.stat, 1 | 5)
    }
}

/// A change of the network, from the control socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Registration becomes this `<stat>`.
    Registration(u8),
    /// The data call drops (the PDP context is deactivated).
    DataCallLost,
    /// The SIM is pulled (`false`) or back (`true`).
    Sim(bool),
    /// `+CSQ` changes.
    Signal(u8, u8),
}

/// The module's state; see the module docs.
#[derive(Clone)]
pub struct Module {
    profile: Profile,
    format: Format,
    /// `&K3` at power-up and after a reset (`--rtscts`).
    default_rtscts: bool,
    creg: u8,
    cgreg: u8,
    cops_format: u8,
    ipr: u32,
    cfun: u8,
    cmgf: u8,
    csmp: [u32; 4],
    cnmi: [u32; 5],
    clip: u8,
    crc: u8,
    cscs: &'static str,
    network: Network,
    /// What the registration returns to when the radio comes back on
    /// (`AT+CFUN=1`) or the SIM is back.
    home_stat: u8,
}

impl Module {
    /// The module at power-up. `rtscts`: `--rtscts` (`&K3` from the
    /// start); `baud`: the rate `+IPR?` says (0: autobaud).
    pub fn new(profile: Profile, rtscts: bool, baud: u32) -> Self {
        let home_stat = registration_stat(&profile.registration).unwrap_or(1);
        let sim = profile.sim == "ready";
        let network = Network {
            stat: if sim { home_stat } else { 0 },
            sim,
            data_call: false,
            rssi: profile.rssi,
            ber: profile.ber,
        };
        let mut module = Module {
            profile,
            format: Format::default(),
            default_rtscts: rtscts,
            creg: 0,
            cgreg: 0,
            cops_format: 0,
            ipr: baud,
            cfun: 1,
            cmgf: 0,
            csmp: [0; 4],
            cnmi: [0; 5],
            clip: 0,
            crc: 0,
            cscs: "IRA",
            network,
            home_stat,
        };
        module.defaults();
        module
    }

    /// The format in force.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The network now.
    pub fn network(&self) -> Network {
        self.network
    }

    /// The lines a G510 says when it has started (and after a reset).
    pub fn power_up(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.format.result(&mut out, b"AT command ready");
        if self.network.sim {
            self.format.result(&mut out, b"+SIM READY");
        }
        out
    }

    /// The settings `ATZ` and `AT&F` restore.
    fn defaults(&mut self) {
        self.format = Format::default();
        self.creg = 0;
        self.cgreg = 0;
        self.cops_format = 0;
        self.cmgf = 0;
        self.csmp = [17, 167, 0, 0];
        self.cnmi = [0, 0, 0, 0, 0];
        self.clip = 0;
        self.crc = 0;
        self.cscs = "IRA";
    }

    /// Answers one command line (from its `AT`, without the CR) at the
    /// error level `cmee` (`AT+CMEE`, which the engine keeps).
    pub fn command(&mut self, line: &[u8], cmee: u8) -> Reply {
        let mut reply = Reply::default();
        let body = line.get(2..).unwrap_or_default().trim_ascii();
        let mut info = Vec::new();
        let done = match body.first() {
            Some(b'+') => self.extended(&body[1..], &mut info, &mut reply),
            _ => self.basic(body, &mut info, &mut reply),
        };
        reply.answer = info;
        match done {
            Ok(()) => self.format.ok(&mut reply.answer),
            Err(refusal) => {
                // Nothing a refused line did takes effect.
                reply.answer.clear();
                reply.urcs.clear();
                reply.effects.clear();
                self.format.error(&mut reply.answer, cmee, refusal.text());
            }
        }
        reply
    }

    /// A line of basic commands (`E0V1&K3`, `I3`, `Z`): each in turn; the
    /// first refused one refuses the line, and nothing of it takes effect.
    fn basic(&mut self, body: &[u8], info: &mut Vec<u8>, reply: &mut Reply) -> Result<(), Refusal> {
        let before = self.clone();
        let done = self.basic_commands(body, info, reply);
        if done.is_err() {
            *self = before;
        }
        done
    }

    fn basic_commands(
        &mut self,
        mut body: &[u8],
        info: &mut Vec<u8>,
        reply: &mut Reply,
    ) -> Result<(), Refusal> {
        if body.is_empty() {
            return Err(Refusal::Unknown);
        }
        while let Some(&first) = body.first() {
            let (name, rest) = match first.to_ascii_uppercase() {
                b'&' => match body.get(1) {
                    Some(c) => ([b'&', c.to_ascii_uppercase()], &body[2..]),
                    None => return Err(Refusal::Unknown),
                },
                c => ([c, 0], &body[1..]),
            };
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            let value: Option<u32> = match digits {
                0 => None,
                _ => Some(
                    std::str::from_utf8(&rest[..digits])
                        .ok()
                        .and_then(|d| d.parse().ok())
                        .ok_or(Refusal::Parameters)?,
                ),
            };
            body = &rest[digits..];
            let n = value.unwrap_or(0);
            match (name, n) {
                ([b'E', 0], 0 | 1) => reply.effects.push(Effect::Echo(n == 1)),
                ([b'V', 0], 0 | 1) => self.format.numeric = n == 0,
                ([b'Q', 0], 0 | 1) => self.format.quiet = n == 1,
                ([b'I', 0], _) => self.identify(n, info)?,
                ([b'Z', 0], 0) | ([b'&', b'F'], 0) => {
                    self.defaults();
                    reply.effects.push(Effect::Echo(true));
                    reply.effects.push(Effect::ErrorsOff);
                    reply.effects.push(Effect::RtsCts(self.default_rtscts));
                    // The power-up lines follow the reset's OK.
                    reply.urcs = self.power_up();
                }
                ([b'&', b'K'], 0 | 3) => reply.effects.push(Effect::RtsCts(n == 3)),
                ([b'&', b'C'], 0 | 1) | ([b'&', b'D'], 0..=2) => {}
                _ => return Err(Refusal::Unknown),
            }
        }
        Ok(())
    }

    /// `ATI<n>`, as the G5 family manual lists them (1, 2, 4, 5 and 6
    /// are reserved there: `OK` with no text).
    fn identify(&self, n: u32, info: &mut Vec<u8>) -> Result<(), Refusal> {
        let p = &self.profile;
        let text = match n {
            0 => p.build.clone(),
            3 => format!("{} GPRS Module", p.model),
            7 => p.bands.clone(),
            8 => p.revision.clone(),
            9 => p.hardware.clone(),
            1 | 2 | 4..=6 => return Ok(()),
            _ => return Err(Refusal::Unknown),
        };
        self.format.info(info, text.as_bytes());
        Ok(())
    }

    /// `+NAME...`: the name, then its form.
    fn extended(
        &mut self,
        rest: &[u8],
        info: &mut Vec<u8>,
        reply: &mut Reply,
    ) -> Result<(), Refusal> {
        let len = rest
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        let name = String::from_utf8_lossy(&rest[..len]).to_ascii_uppercase();
        let form = match rest[len..].trim_ascii() {
            b"" => Form::Exec,
            b"?" => Form::Read,
            b"=?" => Form::Test,
            [b'=', params @ ..] => Form::Set(parse_params(params).ok_or(Refusal::Parameters)?),
            _ => return Err(Refusal::Unknown),
        };
        let f = self.format;
        let mut say = |text: String| f.info(info, text.as_bytes());
        let p = &self.profile;
        let net = self.network;
        match (name.as_str(), form) {
            ("CGMI" | "GMI", Form::Exec) => say(format!("+{name}: \"{}\"", p.manufacturer)),
            ("CGMM" | "GMM", Form::Exec) => {
                say(format!("+{name}: \"{}\",\"{}\"", p.technology, p.model))
            }
            ("CGMR" | "GMR", Form::Exec) => say(format!("+{name}: \"{}\"", p.revision)),
            ("CGSN" | "GSN", Form::Exec | Form::Read) => say(format!("+{name}: \"{}\"", p.imei)),
            (
                "CGMI" | "GMI" | "CGMM" | "GMM" | "CGMR" | "GMR" | "CGSN" | "GSN" | "CIMI",
                Form::Test,
            ) => {}
            ("CIMI", Form::Exec) if net.sim => say(format!("+CIMI: {}", p.imsi)),
            ("CPIN", Form::Read) if net.sim => say("+CPIN: READY".into()),
            ("CIMI", Form::Exec) | ("CPIN", Form::Read) => return Err(Refusal::NoSim),
            ("CPIN", Form::Test) => {}
            ("CPIN", Form::Set(_)) => return Err(Refusal::NotAllowed),
            ("CSQ", Form::Exec) => say(format!("+CSQ: {},{}", net.rssi, net.ber)),
            ("CSQ", Form::Test) => say("+CSQ: (0-31,99),(0-7,99)".into()),
            ("CREG" | "CGREG", Form::Read) => {
                let n = if name == "CREG" {
                    self.creg
                } else {
                    self.cgreg
                };
                let mut text = format!("+{name}: {n},{}", net.stat);
                if n == 2 && net.registered() {
                    text += &format!(",\"{}\",\"{}\"", p.lac, p.ci);
                }
                say(text);
            }
            ("CREG" | "CGREG", Form::Set(params)) => {
                let n = match params.as_slice() {
                    [Param::Number(n @ 0..=2)] => *n as u8,
                    _ => return Err(Refusal::Parameters),
                };
                if name == "CREG" {
                    self.creg = n;
                } else {
                    self.cgreg = n;
                }
            }
            ("CREG" | "CGREG", Form::Test) => say(format!("+{name}: (0-2)")),
            ("COPS", Form::Read) if net.registered() => {
                let oper = match self.cops_format {
                    2 => &p.operator_numeric,
                    _ => &p.operator,
                };
                say(format!("+COPS: 0,{},\"{oper}\"", self.cops_format));
            }
            ("COPS", Form::Read) => say("+COPS: 0".into()),
            ("COPS", Form::Set(params)) => match params.as_slice() {
                [Param::Number(0)] => {}
                [Param::Number(0 | 3), Param::Number(f @ 0..=2)] => self.cops_format = *f as u8,
                _ => return Err(Refusal::NotAllowed),
            },
            ("COPS", Form::Test) => {
                let stat = if net.registered() { 2 } else { 1 };
                say(format!(
                    "+COPS: ({stat},\"{}\",\"{}\",\"{}\"),,(0-4),(0-2)",
                    p.operator, p.operator, p.operator_numeric
                ));
            }
            ("CFUN", Form::Read) => say(format!("+CFUN: {}", self.cfun)),
            ("CFUN", Form::Test) => say("+CFUN: (0,1,4),(0-1)".into()),
            ("CFUN", Form::Set(params)) => {
                let (fun, reset) = match params.as_slice() {
                    [Param::Number(f @ (0 | 1 | 4))] => (*f as u8, false),
                    [Param::Number(f @ (0 | 1 | 4)), Param::Number(r @ 0..=1)] => {
                        (*f as u8, *r == 1)
                    }
                    _ => return Err(Refusal::Parameters),
                };
                self.cfun = fun;
                let stat = if fun == 1 && self.network.sim {
                    self.home_stat
                } else {
                    0
                };
                reply.urcs = self.change(Change::Registration(stat));
                if reset {
                    self.defaults();
                    reply.effects.extend([
                        Effect::Echo(true),
                        Effect::ErrorsOff,
                        Effect::RtsCts(self.default_rtscts),
                    ]);
                    reply.urcs.extend(self.power_up());
                }
            }
            ("IPR", Form::Read) => say(format!("+IPR: {}", self.ipr)),
            ("IPR", Form::Test) => say(
                "+IPR: (0,300,600,1200,2400,4800,9600,19200,38400,57600,115200),(230400,460800)"
                    .into(),
            ),
            ("IPR", Form::Set(params)) => match params.as_slice() {
                [Param::Number(rate)] if RATES.contains(rate) => {
                    self.ipr = *rate;
                    reply.effects.push(Effect::Baud(*rate));
                }
                _ => return Err(Refusal::Parameters),
            },
            ("MIPCALL", Form::Read) if net.data_call => say(format!("+MIPCALL: 1,{}", p.ip)),
            ("MIPCALL", Form::Read) => say("+MIPCALL: 0".into()),
            ("MIPCALL", Form::Test) => {
                say("+MIPCALL: (0-1),(\"APN\"),(\"USERID\"),(\"PASSWORD\")".into())
            }
            ("MIPCALL", Form::Set(params)) => match params.as_slice() {
                [Param::Number(0)] => self.network.data_call = false,
                [Param::Number(1), Param::Text(_), rest @ ..]
                    if rest.len() <= 2 && rest.iter().all(|r| matches!(r, Param::Text(_))) =>
                {
                    if !net.sim {
                        return Err(Refusal::NoSim);
                    }
                    if !net.registered() {
                        return Err(Refusal::NoNetwork);
                    }
                    self.network.data_call = true;
                    f.result(&mut reply.urcs, format!("+MIPCALL: {}", p.ip).as_bytes());
                }
                _ => return Err(Refusal::Parameters),
            },
            ("CMGF", Form::Read) => say(format!("+CMGF: {}", self.cmgf)),
            ("CMGF", Form::Test) => say("+CMGF: (0-1)".into()),
            ("CMGF", Form::Set(params)) => self.cmgf = one_of(&params, 0..=1)? as u8,
            ("CSMP", Form::Read) => {
                let [fo, vp, pid, dcs] = self.csmp;
                say(format!("+CSMP: {fo},{vp},{pid},{dcs}"));
            }
            ("CSMP", Form::Test) => {}
            ("CSMP", Form::Set(params)) => {
                let limits = [255, 255, 255, 255];
                self.csmp = numbers(&params, self.csmp, limits)?;
            }
            ("CPMS", Form::Read) => say("+CPMS: \"SM\",0,30,\"SM\",0,30,\"SM\",0,30".into()),
            ("CPMS", Form::Test) => say("+CPMS: (\"SM\"),(\"SM\"),(\"SM\")".into()),
            ("CPMS", Form::Set(params)) => {
                let sm = |p: &Param| matches!(p, Param::Text(t) if t == "SM");
                if params.is_empty() || params.len() > 3 || !params.iter().all(sm) {
                    return Err(Refusal::NotAllowed);
                }
                say(["+CPMS: 0,30", ",0,30", ",0,30"][..params.len()].concat());
            }
            ("CNMI", Form::Read) => {
                let [mode, mt, bm, ds, bfr] = self.cnmi;
                say(format!("+CNMI: {mode},{mt},{bm},{ds},{bfr}"));
            }
            ("CNMI", Form::Test) => say("+CNMI: (0-2),(0-3),(0,2),(0-1),(0-1)".into()),
            ("CNMI", Form::Set(params)) => {
                self.cnmi = numbers(&params, self.cnmi, [2, 3, 2, 1, 1])?
            }
            ("CLIP", Form::Read) => say(format!("+CLIP: {},2", self.clip)),
            ("CLIP", Form::Test) => say("+CLIP: (0-1)".into()),
            ("CLIP", Form::Set(params)) => self.clip = one_of(&params, 0..=1)? as u8,
            ("CRC", Form::Read) => say(format!("+CRC: {}", self.crc)),
            ("CRC", Form::Test) => say("+CRC: (0-1)".into()),
            ("CRC", Form::Set(params)) => self.crc = one_of(&params, 0..=1)? as u8,
            ("CSCS", Form::Read) => say(format!("+CSCS: \"{}\"", self.cscs)),
            ("CSCS", Form::Test) => say("+CSCS: (\"IRA\",\"GSM\",\"UCS2\")".into()),
            ("CSCS", Form::Set(params)) => {
                self.cscs = match params.as_slice() {
                    [Param::Text(t)] if t == "IRA" => "IRA",
                    [Param::Text(t)] if t == "GSM" => "GSM",
                    [Param::Text(t)] if t == "UCS2" => "UCS2",
                    _ => return Err(Refusal::NotAllowed),
                };
            }
            _ => return Err(Refusal::Unknown),
        }
        Ok(())
    }

    /// Applies a change of the network; returns the URCs it makes, in
    /// the format in force.
    pub fn change(&mut self, change: Change) -> Vec<u8> {
        let mut urcs = Vec::new();
        let f = self.format;
        let stat = match change {
            Change::Registration(stat) => stat,
            Change::DataCallLost => {
                if std::mem::take(&mut self.network.data_call) {
                    f.result(&mut urcs, b"+MIPCALL: 0");
                }
                return urcs;
            }
            Change::Signal(rssi, ber) => {
                (self.network.rssi, self.network.ber) = (rssi, ber);
                return urcs;
            }
            Change::Sim(true) if !self.network.sim => {
                self.network.sim = true;
                f.result(&mut urcs, b"+SIM READY");
                if self.cfun == 1 {
                    self.home_stat
                } else {
                    0
                }
            }
            Change::Sim(false) if self.network.sim => {
                self.network.sim = false;
                f.result(&mut urcs, b"+SIM DROP");
                0
            }
            Change::Sim(_) => return urcs,
        };
        if let Change::Registration(stat) = change {
            // What the network comes back to after a radio or SIM change.
            if self.network.sim && self.cfun == 1 && stat != 0 {
                self.home_stat = stat;
            }
        }
        if stat == self.network.stat {
            return urcs;
        }
        self.network.stat = stat;
        let registered = self.network.registered();
        for (name, n) in [("CREG", self.creg), ("CGREG", self.cgreg)] {
            match n {
                1 => f.result(&mut urcs, format!("+{name}: {stat}").as_bytes()),
                2 if registered => f.result(
                    &mut urcs,
                    format!(
                        "+{name}: {stat},\"{}\",\"{}\"",
                        self.profile.lac, self.profile.ci
                    )
                    .as_bytes(),
                ),
                2 => f.result(&mut urcs, format!("+{name}: {stat}").as_bytes()),
                _ => {}
            }
        }
        if !registered && std::mem::take(&mut self.network.data_call) {
            f.result(&mut urcs, b"+MIPCALL: 0");
        }
        urcs
    }
}

/// One number in `range`, the only parameter.
fn one_of(params: &[Param], range: std::ops::RangeInclusive<u32>) -> Result<u32, Refusal> {
    match params {
        [Param::Number(n)] if range.contains(n) => Ok(*n),
        _ => Err(Refusal::Parameters),
    }
}

/// Up to `N` numbers, each at most its limit; an empty or missing one
/// keeps its value.
fn numbers<const N: usize>(
    params: &[Param],
    mut now: [u32; N],
    limits: [u32; N],
) -> Result<[u32; N], Refusal> {
    if params.is_empty() || params.len() > N {
        return Err(Refusal::Parameters);
    }
    for (i, p) in params.iter().enumerate() {
        match p {
            Param::Empty => {}
            Param::Number(n) if *n <= limits[i] => now[i] = *n,
            _ => return Err(Refusal::Parameters),
        }
    }
    Ok(now)
}

/// Comma-separated parameters: decimal numbers, quoted strings (no `"`
/// inside, no escapes, as the engine's own), or empty.
fn parse_params(text: &[u8]) -> Option<Vec<Param>> {
    let mut params = Vec::new();
    let mut rest = text.trim_ascii();
    loop {
        let (param, after) = match rest.first() {
            Some(b'"') => {
                let end = rest[1..].iter().position(|&b| b == b'"')? + 1;
                let text = String::from_utf8(rest[1..end].to_vec()).ok()?;
                (Param::Text(text), rest[end + 1..].trim_ascii_start())
            }
            Some(b',') | None => (Param::Empty, rest),
            Some(_) => {
                let len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                let n = std::str::from_utf8(&rest[..len]).ok()?.parse().ok()?;
                (Param::Number(n), rest[len..].trim_ascii_start())
            }
        };
        params.push(param);
        match after.first() {
            None => return Some(params),
            Some(b',') => rest = after[1..].trim_ascii_start(),
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module() -> Module {
        Module::new(Profile::default(), false, 0)
    }

    fn answer(m: &mut Module, line: &str) -> String {
        String::from_utf8(m.command(line.as_bytes(), 0).answer).unwrap()
    }

    #[test]
    fn identity_answers_carry_their_prefix_and_quotes() {
        let mut m = module();
        assert_eq!(
            answer(&mut m, "AT+CGMI"),
            "\r\n+CGMI: \"Fibocom\"\r\n\r\nOK\r\n"
        );
        assert_eq!(
            answer(&mut m, "AT+CGMM"),
            "\r\n+CGMM: \"GPRS\",\"G510\"\r\n\r\nOK\r\n"
        );
        assert_eq!(
            answer(&mut m, "at+cgsn"),
            "\r\n+CGSN: \"352656100012346\"\r\n\r\nOK\r\n"
        );
        assert_eq!(answer(&mut m, "ATI3"), "\r\nG510 GPRS Module\r\n\r\nOK\r\n");
        assert_eq!(answer(&mut m, "ATI1"), "\r\nOK\r\n");
        assert_eq!(answer(&mut m, "ATI10"), "\r\nERROR\r\n");
    }

    #[test]
    fn basic_commands_chain_and_a_refused_one_undoes_the_line() {
        let mut m = module();
        let reply = m.command(b"ATE0V0&K3", 0);
        assert_eq!(reply.answer, b"0\r");
        assert_eq!(reply.effects, [Effect::Echo(false), Effect::RtsCts(true)]);
        let reply = m.command(b"ATV1X9", 0);
        assert_eq!(reply.answer, b"4\r", "the format stays as it was");
        assert!(m.format().numeric);
    }

    #[test]
    fn parameters_parse_as_at_strings_and_numbers() {
        assert_eq!(
            parse_params(b"1, \"cmnet\",,\"a b\""),
            Some(vec![
                Param::Number(1),
                Param::Text("cmnet".into()),
                Param::Empty,
                Param::Text("a b".into())
            ])
        );
        assert_eq!(parse_params(b"1x"), None);
        assert_eq!(parse_params(b"\"open"), None);
    }

    #[test]
    fn losing_registration_says_creg_and_ends_the_data_call() {
        let mut m = module();
        m.command(b"AT+CREG=2", 0);
        m.command(b"AT+CGREG=1", 0);
        m.command(b"AT+MIPCALL=1,\"cmnet\"", 0);
        let urcs = m.change(Change::Registration(2));
        assert_eq!(
            urcs,
            b"\r\n+CREG: 2\r\n\r\n+CGREG: 2\r\n\r\n+MIPCALL: 0\r\n"
        );
        let refused = m.command(b"AT+MIPCALL=1,\"cmnet\"", 2);
        assert_eq!(refused.answer, b"\r\n+CME ERROR: no network service\r\n");
        let urcs = m.change(Change::Registration(1));
        assert_eq!(urcs, b"\r\n+CREG: 1,\"2A4F\",\"0B12\"\r\n\r\n+CGREG: 1\r\n");
    }
}
