//! One `AT+GTSMTP*` command line, parsed and validated.
//!
//! What it does: turns a line such as `AT+GTSMTPDST=1,1,"a@example.com"`
//! into a typed [`Request`]: the command (any spelling DESIGN.md lists as an
//! alias, case-insensitive), its form (set, read, test, or plain execute),
//! and parameters checked against every range and length of DESIGN.md's
//! table. A line that fails any check is an [`AtError`] and changes nothing,
//! because nothing is changed here: this module only reads.
//!
//! What it does not: answer, keep state, or check what depends on state
//! (the session charset of an attachment name, whether SEND is allowed
//! now). The session does that with the typed request.
//!
//! Why it is built this way: the line comes from a serial host and may be
//! anything, so parsing is total (every byte sequence gives a request or an
//! error, never a panic) and borrows from the line (no copy, no heap).
//! Strings are the bytes between two double quotes, taken literally: no
//! backslash escapes, because `0x5C` is the second byte of many BIG5
//! characters (許 is `B3 5C`).

use crate::charset::Charset;
use crate::header::{Address, HeaderError, Text};
use crate::index;
use crate::message::RecipientKind;
use crate::sasl::Mechanism;
use crate::smtp::TlsPolicy;
use crate::smtp::Transfer;
use crate::token::TOKEN_MAX;

/// The `+GTSMTP*` commands, by their canonical names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// `+GTSMTPLAND`: server, port, mode.
    Land,
    /// `+GTSMTPID`: user name and password.
    Id,
    /// `+GTSMTPDST`: add or delete a recipient.
    Dst,
    /// `+GTSMTPHEAD`: charset and subject.
    Head,
    /// `+GTSMTPSEND`: connect; the mail's time limit.
    Send,
    /// `+GTSMTPDATA`: the body, in data mode.
    Data,
    /// `+GTSMTPFILE`: an attachment, in data mode.
    File,
    /// `+GTSMTPEND`: end the mail and deliver it.
    End,
    /// `+GTSMTPCLR`: clear the configuration.
    Clr,
    /// `+GTSMTPAUTH`: how the mail signs in (an extension: OAuth 2.0).
    Auth,
    /// `+GTSMTPTOKEN`: the OAuth 2.0 access token, in data mode (an
    /// extension).
    Token,
    /// `+GTSMTPERR?`: the code and reason of the last failed mail (an
    /// extension: the spec's URC has the code alone).
    Err,
    /// `+GTSMTPBDAT`: whether the message may go by `BDAT` chunks with
    /// binary parts (an extension: RFC 3030 CHUNKING and BINARYMIME).
    Bdat,
}

/// Every accepted spelling (upper case) and its command: the canonical
/// names, then the spec's variants (DESIGN.md, "Command names").
const NAMES: &[(&str, Command)] = &[
    ("GTSMTPLAND", Command::Land),
    ("GTSMTPID", Command::Id),
    ("GTSMTPDST", Command::Dst),
    ("GTSMTPHEAD", Command::Head),
    ("GTSMTPSEND", Command::Send),
    ("GTSMTPDATA", Command::Data),
    ("GTSMTPFILE", Command::File),
    ("GTSMTPEND", Command::End),
    ("GTSMTPCLR", Command::Clr),
    ("GTSMTPAUTH", Command::Auth),
    ("GTSMTPTOKEN", Command::Token),
    ("GTSMTPERR", Command::Err),
    ("GTSMTPBDAT", Command::Bdat),
    ("GTSMPDST", Command::Dst),
    ("GTSMPHEAD", Command::Head),
    ("GTSMTPEHEAD", Command::Head),
    ("GTSMPSEND", Command::Send),
    ("GTSMTSEND", Command::Send),
    ("GTSMPDATA", Command::Data),
    ("GTSMTPPDATA", Command::Data),
    ("GTSMPFILE", Command::File),
    ("GTSMTPPFILE", Command::File),
    ("GTSMTMPFILE", Command::File),
    ("GTSMTPLIB", Command::File),
    ("GTSMPEND", Command::End),
    ("GTSMPCLR", Command::Clr),
    ("GTSMTPLR", Command::Clr),
];

impl Command {
    /// The canonical name, used in every response (`GTSMTPDST`).
    pub const fn name(self) -> &'static str {
        match self {
            Command::Land => "GTSMTPLAND",
            Command::Id => "GTSMTPID",
            Command::Dst => "GTSMTPDST",
            Command::Head => "GTSMTPHEAD",
            Command::Send => "GTSMTPSEND",
            Command::Data => "GTSMTPDATA",
            Command::File => "GTSMTPFILE",
            Command::End => "GTSMTPEND",
            Command::Clr => "GTSMTPCLR",
            Command::Auth => "GTSMTPAUTH",
            Command::Token => "GTSMTPTOKEN",
            Command::Err => "GTSMTPERR",
            Command::Bdat => "GTSMTPBDAT",
        }
    }

    fn lookup(name: &[u8]) -> Option<Command> {
        NAMES
            .iter()
            .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
            .map(|&(_, c)| c)
    }
}

/// Why a line was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AtError {
    /// Not `AT+<name>...` at all.
    Syntax,
    /// `AT+<name>` with a name that is not a `+GTSMTP*` command.
    UnknownCommand,
    /// A parameter is missing, extra, of the wrong kind, or badly quoted.
    Parameters,
    /// A number outside its range.
    OutOfRange,
    /// An empty string where one is needed.
    Empty,
    /// A string longer than its field allows.
    TooLong {
        /// The field's limit, in bytes (named in the error text).
        max: u16,
    },
    /// A string with a byte its field cannot hold (a control, NUL, ...).
    BadString,
    /// Bytes not valid in the charset the command names.
    Charset,
    /// Not a valid mailbox address.
    Address,
    /// Not a host name or IP literal.
    Server,
}

impl AtError {
    /// A short description, for `+CME ERROR: <text>`.
    pub const fn as_str(self) -> &'static str {
        match self {
            AtError::Syntax => "invalid command line",
            AtError::UnknownCommand => "unknown command",
            AtError::Parameters => "invalid parameters",
            AtError::OutOfRange => "parameter out of range",
            AtError::Empty => "empty string",
            AtError::TooLong { max } => crate::header::too_long(max),
            AtError::BadString => "invalid characters in string",
            AtError::Charset => "bytes not valid in the charset",
            AtError::Address => "invalid mail address",
            AtError::Server => "invalid server address",
        }
    }
}

impl core::fmt::Display for AtError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<HeaderError> for AtError {
    fn from(e: HeaderError) -> Self {
        match e {
            HeaderError::Empty => AtError::Empty,
            HeaderError::TooLong { max } => AtError::TooLong { max },
            HeaderError::Control(_) => AtError::BadString,
            HeaderError::InvalidCharset(_) => AtError::Charset,
            HeaderError::MissingAt | HeaderError::BadAddressByte(_) => AtError::Address,
        }
    }
}

/// A validated command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request<'a> {
    /// `?`: report the current setting.
    Read(Command),
    /// `=?`: report the parameter ranges.
    Test(Command),
    /// `+GTSMTPLAND=<port>,"<srv>"[,<mode>]`.
    Land {
        /// 1-65535.
        port: u16,
        /// A host name or IP literal, 1-255 bytes.
        server: &'a [u8],
        /// The `<mode>` (0-3), `None` when blank (as 0; the read form
        /// shows what was given).
        mode: Option<TlsPolicy>,
    },
    /// `+GTSMTPID="<user>","<pwd>"`.
    Id {
        /// 1-80 bytes.
        user: &'a [u8],
        /// 0-80 bytes.
        password: &'a [u8],
    },
    /// `+GTSMTPDST=<mode>,<type>,"<addr>"`.
    Dst {
        /// Mode 1 adds, 0 deletes.
        add: bool,
        /// Type 1 To, 2 Cc, 3 Bcc.
        kind: RecipientKind,
        /// The address.
        address: Address<'a>,
    },
    /// `+GTSMTPHEAD=<code>,"<subject>"`.
    Head {
        /// The session charset.
        charset: Charset,
        /// The subject, valid in `charset`; `None` for `""`.
        subject: Option<Text<'a>>,
    },
    /// `+GTSMTPSEND=<time>`, 100-48000 s.
    Send {
        /// The whole mail's time limit, in seconds.
        time_s: u32,
    },
    /// `+GTSMTPDATA=<time>[,<break_time>]`.
    Data {
        /// Data mode's time limit, 1-48000 s.
        time_s: u32,
        /// Idle end, 3-20 s.
        break_s: Option<u32>,
    },
    /// `+GTSMTPFILE=<mode>,"<name>"[,<break_time>]`.
    File {
        /// Mode 1 adds (and enters data mode), 0 deletes.
        add: bool,
        /// 1-80 bytes without controls; its charset is the session's, which
        /// the session checks.
        name: &'a [u8],
        /// Idle end, 3-20 s.
        break_s: Option<u32>,
    },
    /// `+GTSMTPEND`.
    End,
    /// `+GTSMTPCLR`.
    Clr,
    /// `+GTSMTPAUTH=<mech>`, 0-2.
    Auth {
        /// Password, XOAUTH2 or OAUTHBEARER.
        mechanism: Mechanism,
    },
    /// `+GTSMTPTOKEN=<length>`, 0-8192 (0 clears the token).
    Token {
        /// The token's length in bytes.
        len: u16,
    },
    /// `+GTSMTPBDAT=<mode>`, 0-2.
    Transfer {
        /// Off, auto or force.
        mode: Transfer,
    },
}

/// One parameter as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Param<'a> {
    Empty,
    Number(u32),
    Text(&'a [u8]),
}

/// Parameters of a set form; at most four are ever valid.
struct Params<'a> {
    items: [Param<'a>; 4],
    len: usize,
}

impl<'a> Params<'a> {
    fn get(&self, i: usize) -> Param<'a> {
        if i < self.len {
            self.items[i]
        } else {
            Param::Empty
        }
    }

    fn number(&self, i: usize, range: core::ops::RangeInclusive<u32>) -> Result<u32, AtError> {
        match self.get(i) {
            Param::Number(n) if range.contains(&n) => Ok(n),
            Param::Number(_) => Err(AtError::OutOfRange),
            _ => Err(AtError::Parameters),
        }
    }

    fn optional(
        &self,
        i: usize,
        range: core::ops::RangeInclusive<u32>,
    ) -> Result<Option<u32>, AtError> {
        match self.get(i) {
            Param::Empty => Ok(None),
            _ => self.number(i, range).map(Some),
        }
    }

    fn text(&self, i: usize, max: usize) -> Result<&'a [u8], AtError> {
        match self.get(i) {
            Param::Text(t) if t.len() > max => Err(AtError::TooLong { max: max as u16 }),
            Param::Text(t) if t.iter().any(|&b| b < 0x20 || b == 0x7F) => Err(AtError::BadString),
            Param::Text(t) => Ok(t),
            _ => Err(AtError::Parameters),
        }
    }

    fn at_most(&self, count: usize) -> Result<(), AtError> {
        match self.len <= count {
            true => Ok(()),
            false => Err(AtError::Parameters),
        }
    }
}

/// The V.250 commands the engine answers besides `+GTSMTP*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Basic {
    /// `AT` alone.
    At,
    /// `ATE0` or `ATE1` (`ATE` is `ATE0`): echo off or on.
    Echo(bool),
    /// `AT+CMEE=<0-2>`: how errors are reported.
    SetCmee(u8),
    /// `AT+CMEE?`.
    ReadCmee,
    /// `AT+CMEE=?`.
    TestCmee,
}

/// Parses `AT`, `ATE<n>` and `AT+CMEE`, from the line's body after `AT`
/// (trailing spaces ignored); `None` for any other line, which is not the
/// engine's to answer (the caller's, or `+GTSMTP*`'s: see [`parse`]).
///
/// ```
/// use atmail_core::at::{parse_basic, AtError, Basic};
/// assert_eq!(parse_basic(b"E1"), Some(Ok(Basic::Echo(true))));
/// assert_eq!(parse_basic(b"+cmee=2"), Some(Ok(Basic::SetCmee(2))));
/// assert_eq!(parse_basic(b"+CMEE=3"), Some(Err(AtError::Parameters)));
/// assert_eq!(parse_basic(b"+MIPCALL?"), None);
/// ```
pub fn parse_basic(body: &[u8]) -> Option<Result<Basic, AtError>> {
    let body = body.trim_ascii_end();
    Some(Ok(match body {
        b"" => Basic::At,
        b"E" | b"e" | b"E0" | b"e0" => Basic::Echo(false),
        b"E1" | b"e1" => Basic::Echo(true),
        _ => {
            let tail = strip_prefix_ignore_case(body, b"+CMEE")?;
            match tail {
                b"?" => Basic::ReadCmee,
                b"=?" => Basic::TestCmee,
                [b'=', n @ b'0'..=b'2'] => Basic::SetCmee(n - b'0'),
                _ => return Some(Err(AtError::Parameters)),
            }
        }
    }))
}

/// Parses and validates one command line (without its CR; a trailing CR
/// or LF is ignored).
///
/// ```
/// use atmail_core::at::{parse, Command, Request};
/// assert_eq!(parse(b"at+gtsmtpsend=300"), Ok(Request::Send { time_s: 300 }));
/// assert_eq!(parse(b"AT+GTSMPHEAD?"), Ok(Request::Read(Command::Head)));
/// assert!(parse(b"AT+GTSMTPSEND=99").is_err());
/// ```
pub fn parse(line: &[u8]) -> Result<Request<'_>, AtError> {
    let line = trim_end(line);
    let rest = strip_prefix_ignore_case(line, b"AT+").ok_or(AtError::Syntax)?;
    let name_len = rest
        .iter()
        .position(|b| !b.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    let (name, tail) = rest.split_at(name_len);
    let command = Command::lookup(name).ok_or(AtError::UnknownCommand)?;
    let tail = trim_start(tail);
    match tail {
        b"" => execute(command),
        b"?" => Ok(Request::Read(command)),
        _ => match trim_start(tail.strip_prefix(b"=").ok_or(AtError::Syntax)?) {
            b"?" => Ok(Request::Test(command)),
            args => set(command, &params(args)?),
        },
    }
}

fn execute(command: Command) -> Result<Request<'static>, AtError> {
    match command {
        Command::End => Ok(Request::End),
        Command::Clr => Ok(Request::Clr),
        _ => Err(AtError::Parameters),
    }
}

fn set<'a>(command: Command, p: &Params<'a>) -> Result<Request<'a>, AtError> {
    match command {
        Command::Land => {
            p.at_most(3)?;
            let port = p.number(0, 1..=65535)? as u16;
            let server = server(p.text(1, 255)?)?;
            let mode = p.optional(2, 0..=3)?;
            Ok(Request::Land {
                port,
                server,
                mode: mode.and_then(|m| TlsPolicy::from_mode(m as u8)),
            })
        }
        Command::Id => {
            p.at_most(2)?;
            let user = p.text(0, 80)?;
            if user.is_empty() {
                return Err(AtError::Empty);
            }
            Ok(Request::Id {
                user,
                password: p.text(1, 80)?,
            })
        }
        Command::Dst => {
            p.at_most(3)?;
            let add = p.number(0, 0..=1)? == 1;
            let kind = match p.number(1, 1..=3)? {
                1 => RecipientKind::To,
                2 => RecipientKind::Cc,
                _ => RecipientKind::Bcc,
            };
            let address = Address::new(p.text(2, 80)?)?;
            Ok(Request::Dst { add, kind, address })
        }
        Command::Head => {
            p.at_most(2)?;
            let charset =
                Charset::from_code(p.number(0, 0..=3)? as u8).ok_or(AtError::OutOfRange)?;
            let subject = match p.text(1, crate::header::MAX_SUBJECT)? {
                b"" => None,
                text => Some(Text::subject(charset, text)?),
            };
            Ok(Request::Head { charset, subject })
        }
        Command::Send => {
            p.at_most(1)?;
            Ok(Request::Send {
                time_s: p.number(0, 100..=48000)?,
            })
        }
        Command::Data => {
            p.at_most(2)?;
            Ok(Request::Data {
                time_s: p.number(0, 1..=48000)?,
                break_s: p.optional(1, 3..=20)?,
            })
        }
        Command::File => {
            p.at_most(3)?;
            let add = p.number(0, 0..=1)? == 1;
            let name = p.text(1, 80)?;
            if name.is_empty() {
                return Err(AtError::Empty);
            }
            Ok(Request::File {
                add,
                name,
                break_s: p.optional(2, 3..=20)?,
            })
        }
        Command::Auth => {
            p.at_most(1)?;
            let code = p.number(0, 0..=2)? as u8;
            let mechanism = Mechanism::from_code(code).ok_or(AtError::OutOfRange)?;
            Ok(Request::Auth { mechanism })
        }
        Command::Token => {
            p.at_most(1)?;
            Ok(Request::Token {
                len: p.number(0, 0..=TOKEN_MAX as u32)? as u16,
            })
        }
        Command::Bdat => {
            p.at_most(1)?;
            let code = p.number(0, 0..=2)? as u8;
            let mode = Transfer::from_code(code).ok_or(AtError::OutOfRange)?;
            Ok(Request::Transfer { mode })
        }
        Command::End | Command::Clr | Command::Err => Err(AtError::Parameters),
    }
}

/// A host name (letters, digits, `-`, `.`) or an IP literal (`1.2.3.4`,
/// `[::1]`): nothing that could reach a resolver or a log as anything else.
fn server(name: &[u8]) -> Result<&[u8], AtError> {
    // `matches!`, not `b"-.:[]".contains`: that links core's memchr,
    // 400 bytes of firmware flash, for a set of five bytes.
    let ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']');
    match !name.is_empty()
        && name.iter().all(|&b| ok(b))
        && !name.starts_with(b".")
        && !name.starts_with(b"-")
    {
        true => Ok(name),
        false => Err(AtError::Server),
    }
}

/// Splits `a,"b",,3` into parameters; spaces outside quotes are ignored.
fn params(args: &[u8]) -> Result<Params<'_>, AtError> {
    let mut p = Params {
        items: [Param::Empty; 4],
        len: 0,
    };
    let mut rest = args;
    loop {
        rest = trim_start(rest);
        let (param, after) = one_param(rest)?;
        if p.len == p.items.len() {
            return Err(AtError::Parameters);
        }
        *index::get_mut(&mut p.items, p.len) = param;
        p.len += 1;
        let after = trim_start(after);
        match after.split_first() {
            None => return Ok(p),
            Some((b',', more)) => rest = more,
            Some(_) => return Err(AtError::Parameters),
        }
    }
}

fn one_param(s: &[u8]) -> Result<(Param<'_>, &[u8]), AtError> {
    match s.first() {
        Some(b'"') => {
            let text = index::get(s, 1..);
            let end = memchr::memchr(b'"', text).ok_or(AtError::Parameters)?;
            Ok((
                Param::Text(index::get(text, ..end)),
                index::get(text, end + 1..),
            ))
        }
        Some(b) if b.is_ascii_digit() => {
            let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
            let mut n: u32 = 0;
            let (digits, rest) = s.split_at(digits);
            for &d in digits {
                n = n
                    .checked_mul(10)
                    .and_then(|n| n.checked_add((d - b'0') as u32))
                    .ok_or(AtError::OutOfRange)?;
            }
            Ok((Param::Number(n), rest))
        }
        Some(b',') | None => Ok((Param::Empty, s)),
        Some(_) => Err(AtError::Parameters),
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let (head, tail) = s.split_at_checked(prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then_some(tail)
}

fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ').count();
    index::get(s, n..)
}

fn trim_end(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .rev()
        .take_while(|&&b| b == b'\r' || b == b'\n' || b == b' ')
        .count();
    index::get(s, ..s.len() - n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr(a: &[u8]) -> Address<'_> {
        Address::new(a).unwrap()
    }

    #[test]
    fn every_set_form() {
        let gb = Charset::Gb2312;
        let cases: &[(&[u8], Request<'_>)] = &[
            (
                b"AT+GTSMTPLAND=25,\"mail.fibocom.com\"",
                Request::Land {
                    port: 25,
                    server: b"mail.fibocom.com",
                    mode: None,
                },
            ),
            (
                b"AT+GTSMTPLAND=465,\"10.0.0.1\",1",
                Request::Land {
                    port: 465,
                    server: b"10.0.0.1",
                    mode: Some(TlsPolicy::Implicit),
                },
            ),
            (
                b"AT+GTSMTPLAND=25,\"[::1]\",0",
                Request::Land {
                    port: 25,
                    server: b"[::1]",
                    mode: Some(TlsPolicy::Opportunistic),
                },
            ),
            (
                b"AT+GTSMTPLAND=25,\"mx\",",
                Request::Land {
                    port: 25,
                    server: b"mx",
                    mode: None,
                },
            ),
            (
                b"at+gtsmtpid=\"wangww@fibocom.com\",\"ght64621178\"",
                Request::Id {
                    user: b"wangww@fibocom.com",
                    password: b"ght64621178",
                },
            ),
            (
                b"AT+GTSMTPID=\"u\",\"\"",
                Request::Id {
                    user: b"u",
                    password: b"",
                },
            ),
            (
                b"at+gtsmtpdst=1,1,\"xiangj@fibocom.com\"",
                Request::Dst {
                    add: true,
                    kind: RecipientKind::To,
                    address: addr(b"xiangj@fibocom.com"),
                },
            ),
            (
                b"AT+GTSMPDST=0,2,\"c@d.e\"",
                Request::Dst {
                    add: false,
                    kind: RecipientKind::Cc,
                    address: addr(b"c@d.e"),
                },
            ),
            (
                b"AT+GTSMTPDST = 1 , 3 , \"b@c.d\"",
                Request::Dst {
                    add: true,
                    kind: RecipientKind::Bcc,
                    address: addr(b"b@c.d"),
                },
            ),
            (
                b"AT+GTSMTPEHEAD=2,\"\xc4\xe3\xba\xc3 smtp\"",
                Request::Head {
                    charset: gb,
                    subject: Some(Text::subject(gb, b"\xc4\xe3\xba\xc3 smtp").unwrap()),
                },
            ),
            (
                b"AT+GTSMTPHEAD= 3,\"\xb3\x5c\"",
                Request::Head {
                    charset: Charset::Big5,
                    subject: Some(Text::subject(Charset::Big5, b"\xb3\x5c").unwrap()),
                },
            ),
            (
                b"AT+GTSMTPHEAD=0,\"\"",
                Request::Head {
                    charset: Charset::UsAscii,
                    subject: None,
                },
            ),
            (b"at+gtsmtpsend=300\r", Request::Send { time_s: 300 }),
            (b"AT+GTSMTSEND=48000", Request::Send { time_s: 48000 }),
            (
                b"AT+GTSMTPPDATA=300",
                Request::Data {
                    time_s: 300,
                    break_s: None,
                },
            ),
            (
                b"AT+GTSMTPDATA=1,20",
                Request::Data {
                    time_s: 1,
                    break_s: Some(20),
                },
            ),
            (
                b"at+gtsmtplib=1,\"eee.wma\"",
                Request::File {
                    add: true,
                    name: b"eee.wma",
                    break_s: None,
                },
            ),
            (
                b"AT+GTSMTPPFILE=1,\"100k.txt\",3",
                Request::File {
                    add: true,
                    name: b"100k.txt",
                    break_s: Some(3),
                },
            ),
            (
                b"AT+GTSMTMPFILE=0,\"a\"",
                Request::File {
                    add: false,
                    name: b"a",
                    break_s: None,
                },
            ),
            (b"at+gtsmtpend", Request::End),
            (b"At+gtsmtpclr", Request::Clr),
            (b"AT+GTSMTPLR", Request::Clr),
            (
                b"AT+GTSMTPAUTH=1",
                Request::Auth {
                    mechanism: Mechanism::XOAuth2,
                },
            ),
            (
                b"at+gtsmtpauth=2",
                Request::Auth {
                    mechanism: Mechanism::OAuthBearer,
                },
            ),
            (
                b"AT+GTSMTPAUTH=0",
                Request::Auth {
                    mechanism: Mechanism::Password,
                },
            ),
            (b"AT+GTSMTPTOKEN=8192", Request::Token { len: 8192 }),
            (b"AT+GTSMTPTOKEN=0", Request::Token { len: 0 }),
            (
                b"AT+GTSMTPBDAT=0",
                Request::Transfer {
                    mode: Transfer::Off,
                },
            ),
            (
                b"at+gtsmtpbdat=1",
                Request::Transfer {
                    mode: Transfer::Auto,
                },
            ),
            (
                b"AT+GtSmTpBdAt = 2",
                Request::Transfer {
                    mode: Transfer::Force,
                },
            ),
        ];
        for (line, want) in cases {
            assert_eq!(
                parse(line),
                Ok(*want),
                "{}",
                std::string::String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn every_alias_in_read_and_test_forms() {
        for &(name, command) in NAMES {
            let read = std::format!("AT+{}?", name.to_ascii_lowercase());
            assert_eq!(parse(read.as_bytes()), Ok(Request::Read(command)), "{read}");
            let test = std::format!("AT+{name}=?");
            assert_eq!(parse(test.as_bytes()), Ok(Request::Test(command)), "{test}");
        }
    }

    #[test]
    fn bad_lines() {
        let cases: &[(&[u8], AtError)] = &[
            (b"", AtError::Syntax),
            (b"ATD123", AtError::Syntax),
            (b"AT+CGMI", AtError::UnknownCommand),
            (b"AT+GTSMTPAUTH=3", AtError::OutOfRange),
            (b"AT+GTSMTPAUTH=", AtError::Parameters),
            (b"AT+GTSMTPAUTH=1,1", AtError::Parameters),
            (b"AT+GTSMTPAUTH=\"1\"", AtError::Parameters),
            (b"AT+GTSMTPAUTH", AtError::Parameters),
            (b"AT+GTSMTPTOKEN=8193", AtError::OutOfRange),
            (b"AT+GTSMTPBDAT=3", AtError::OutOfRange),
            (b"AT+GTSMTPBDAT=99999999999", AtError::OutOfRange),
            (b"AT+GTSMTPBDAT=", AtError::Parameters),
            (b"AT+GTSMTPBDAT=1,1", AtError::Parameters),
            (b"AT+GTSMTPBDAT=\"1\"", AtError::Parameters),
            (b"AT+GTSMTPBDAT=-1", AtError::Parameters),
            (b"AT+GTSMTPBDAT", AtError::Parameters),
            (b"AT+GTSMTPTOKEN", AtError::Parameters),
            (b"AT+GTSMTPLAND=0,\"m\"", AtError::OutOfRange),
            (b"AT+GTSMTPLAND=65536,\"m\"", AtError::OutOfRange),
            (b"AT+GTSMTPLAND=99999999999,\"m\"", AtError::OutOfRange),
            (b"AT+GTSMTPLAND=25,m", AtError::Parameters),
            (b"AT+GTSMTPLAND=25,\"m", AtError::Parameters),
            (b"AT+GTSMTPLAND=25,\"m\",4", AtError::OutOfRange),
            (b"AT+GTSMTPLAND=25,\"m x\"", AtError::Server),
            (b"AT+GTSMTPLAND=25,\"\"", AtError::Server),
            (b"AT+GTSMTPLAND=25,\"m\",1,1", AtError::Parameters),
            (b"AT+GTSMTPLAND=-25,\"m\"", AtError::Parameters),
            (b"AT+GTSMTPID=\"\",\"p\"", AtError::Empty),
            (b"AT+GTSMTPID=\"u\"", AtError::Parameters),
            (b"AT+GTSMTPID=\"u\",\"p\0w\"", AtError::BadString),
            (b"AT+GTSMTPDST=2,1,\"a@b\"", AtError::OutOfRange),
            (b"AT+GTSMTPDST=1,4,\"a@b\"", AtError::OutOfRange),
            (b"AT+GTSMTPDST=1,1,\"nobody\"", AtError::Address),
            (b"AT+GTSMTPDST=1,1,\"a@b\x0bBcc: x@y\"", AtError::BadString),
            (b"AT+GTSMTPHEAD=4,\"x\"", AtError::OutOfRange),
            (b"AT+GTSMTPHEAD=0,\"caf\xe9\"", AtError::Charset),
            (b"AT+GTSMTPHEAD=2,\"\xc4\"", AtError::Charset),
            (b"AT+GTSMTPHEAD=3,\"\xb3\x20\"", AtError::Charset),
            (b"AT+GTSMTPHEAD=1,\"\xff\"", AtError::Charset),
            (b"AT+GTSMTPSEND=99", AtError::OutOfRange),
            (b"AT+GTSMTPSEND=48001", AtError::OutOfRange),
            (b"AT+GTSMTPSEND", AtError::Parameters),
            (b"AT+GTSMTPDATA=0", AtError::OutOfRange),
            (b"AT+GTSMTPDATA=10,2", AtError::OutOfRange),
            (b"AT+GTSMTPDATA=10,21", AtError::OutOfRange),
            (b"AT+GTSMTPFILE=1,\"\"", AtError::Empty),
            (b"AT+GTSMTPEND=1", AtError::Parameters),
            (b"AT+GTSMTPSEND=300x", AtError::Parameters),
            (b"AT+GTSMTPSEND?x", AtError::Syntax),
        ];
        for (line, want) in cases {
            assert_eq!(
                parse(line),
                Err(*want),
                "{}",
                std::string::String::from_utf8_lossy(line)
            );
        }
        let long_subject = [&b"AT+GTSMTPHEAD=0,\""[..], &[b'x'; 201], b"\""].concat();
        assert_eq!(parse(&long_subject), Err(AtError::TooLong { max: 200 }));
        let long_user = [&b"AT+GTSMTPID=\""[..], &[b'u'; 81], b"\",\"p\""].concat();
        assert_eq!(parse(&long_user), Err(AtError::TooLong { max: 80 }));
        let long_server = [&b"AT+GTSMTPLAND=25,\""[..], &[b'm'; 256], b"\""].concat();
        assert_eq!(parse(&long_server), Err(AtError::TooLong { max: 255 }));
    }

    proptest! {
        #[test]
        fn any_line_parses_or_errors_without_panic(line in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = parse(&line);
            let mut prefixed = b"AT+GTSMTPDST=".to_vec();
            prefixed.extend_from_slice(&line);
            let _ = parse(&prefixed);
        }
    }
}
