//! The mail configuration a host builds with `+GTSMTPLAND/ID/DST/HEAD`,
//! in fixed-capacity storage, and the V.250 answers of the read and test
//! forms.
//!
//! What it does: [`Config`] keeps the server, the login, up to 20
//! recipients and the charset and subject, each in an array sized by the
//! spec's limits, so the configuration is one fixed-size value with no
//! heap. [`Config::apply`] changes it from a validated [`Request`] and
//! refuses what would break an invariant (a 21st recipient, deleting one
//! that is not there) without changing anything. [`write_read`] and
//! [`write_test`] give the exact response lines.
//!
//! [`Transfer`] is `+GTSMTPBDAT`'s setting: a caller's default (kept by
//! `+GTSMTPCLR`) and the current mode the host may change.
//!
//! What it does not: decide *when* a command is allowed (configuration is
//! frozen while a mail is in progress): the session does.
//!
//! Why it is built this way: firmware RAM is scarce and a heap is not a
//! given, so capacity is fixed by the spec's own limits (DESIGN.md's table),
//! and responses are rendered on demand into an [`Out`] instead of being
//! stored.

use crate::at::{Command, Request};
use crate::charset::Charset;
use crate::header::{Address, Text};
use crate::index;
use crate::message::{Recipient, RecipientKind, Recipients, MAX_RECIPIENTS};
use crate::out::{put_decimal, Out};
use crate::sasl::Mechanism;
// `Transfer` lives beside `TlsPolicy`, in the SMTP client that acts on
// it, so the client needs nothing of the configuration.
use crate::smtp::TlsPolicy;
pub use crate::smtp::Transfer;
use core::mem::MaybeUninit;
use core::ptr::addr_of_mut;
use zeroize::Zeroize;

/// Bytes of at most `N`, stored inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Bounded<const N: usize> {
    bytes: [u8; N],
    len: u16,
}

impl<const N: usize> Default for Bounded<N> {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl<const N: usize> Bounded<N> {
    pub(crate) const EMPTY: Self = Bounded {
        bytes: [0; N],
        len: 0,
    };

    /// Copies `src`, which the caller has checked is at most `N` bytes
    /// (longer input is cut, never overrun).
    pub(crate) fn from_slice(src: &[u8]) -> Self {
        let mut b = Self::EMPTY;
        b.set(src);
        b
    }

    /// Replaces the bytes with `src` in place, as [`Bounded::from_slice`]
    /// would make them (a new value would pass through the stack).
    pub(crate) fn set(&mut self, src: &[u8]) {
        debug_assert!(src.len() <= N, "validated by the AT layer");
        let n = src.len().min(N);
        // `n` is at most both lengths; `index` panics without `core::fmt`.
        index::copy(index::get_mut(&mut self.bytes, ..n), index::get(src, ..n));
        index::get_mut(&mut self.bytes, n..).fill(0);
        self.len = n as u16;
    }

    /// The stored bytes.
    pub fn as_bytes(&self) -> &[u8] {
        // `set` keeps `len` within `N`.
        index::get(&self.bytes, ..self.len as usize)
    }
}

impl<const N: usize> core::fmt::Debug for Bounded<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("\"")?;
        for chunk in self.as_bytes().utf8_chunks() {
            f.write_str(chunk.valid())?;
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        f.write_str("\"")
    }
}

/// A password: stored, handed to AUTH, never printed (its `Debug` is
/// five asterisks, like the read form), never copied, and wiped (all 80
/// bytes, by volatile writes) when replaced, cleared or dropped.
#[derive(PartialEq, Eq)]
struct Secret(Bounded<80>);

impl Secret {
    fn set(&mut self, password: &[u8]) {
        self.wipe();
        self.0.set(password);
    }

    fn wipe(&mut self) {
        self.0.bytes.zeroize();
        self.0.len = 0;
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.wipe();
    }
}

impl core::fmt::Debug for Secret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("*****")
    }
}

/// `+GTSMTPLAND`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Server {
    /// The port.
    pub port: u16,
    /// Host name or IP literal.
    pub host: Bounded<255>,
    /// The `<mode>` as given (`None`: blank, which is mode 0).
    pub mode: Option<TlsPolicy>,
}

impl Server {
    const EMPTY: Server = Server {
        port: 0,
        host: Bounded::EMPTY,
        mode: None,
    };

    /// How the connection is protected (blank is mode 0).
    pub fn policy(&self) -> TlsPolicy {
        self.mode.unwrap_or(TlsPolicy::Opportunistic)
    }

    /// SMTPS (mode 1): TLS from the first byte.
    pub fn implicit_tls(&self) -> bool {
        self.policy() == TlsPolicy::Implicit
    }
}

/// Everything the configuration commands set.
#[derive(Debug, PartialEq, Eq)]
pub struct Config {
    server: Option<Server>,
    login: Option<(Bounded<80>, Secret)>,
    recipients: [(RecipientKind, Bounded<80>); MAX_RECIPIENTS],
    recipient_count: u8,
    charset: Charset,
    subject: Option<Bounded<200>>,
    /// Whether `+GTSMTPHEAD` has been set (its read form answers 0 if not).
    head_set: bool,
    /// `+GTSMTPAUTH`.
    mechanism: Mechanism,
    /// `+GTSMTPBDAT`'s current mode.
    transfer: Transfer,
    /// What `+GTSMTPCLR` restores: the caller's choice
    /// ([`Config::set_transfer_default`]), [`Transfer::Auto`] until then.
    transfer_default: Transfer,
    /// Whether `+GTSMTPBDAT` set the mode since the last clear (then a new
    /// default waits for the next clear).
    transfer_set: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

impl Config {
    /// Nothing configured.
    #[allow(unsafe_code)]
    pub fn new() -> Self {
        let mut slot = MaybeUninit::uninit();
        Self::init_in(&mut slot);
        // SAFETY: `init_in` initialised every field.
        unsafe { slot.assume_init() }
    }

    /// Makes an empty configuration in `slot`, as [`Config::new`] would,
    /// without first building the 2.3 KB value on the stack (see
    /// [`Session::init_in`](crate::session::Session::init_in)).
    #[allow(unsafe_code)]
    pub(crate) fn init_in(slot: &mut MaybeUninit<Self>) -> &mut Self {
        // Stops compiling when a field is added, so none is left unwritten.
        let _ = |c: Self| {
            let Config {
                server: _,
                login: _,
                recipients: _,
                recipient_count: _,
                charset: _,
                subject: _,
                head_set: _,
                mechanism: _,
                transfer: _,
                transfer_default: _,
                transfer_set: _,
            } = c;
        };
        let p = slot.as_mut_ptr();
        // SAFETY: `p` is valid for writes and aligned (it comes from a
        // `&mut`); each field is written through its own place (each
        // recipient through its own element, in bounds of the array), and
        // after the writes every field is initialised.
        unsafe {
            addr_of_mut!((*p).server).write(None);
            addr_of_mut!((*p).login).write(None);
            let recipients = addr_of_mut!((*p).recipients).cast::<(RecipientKind, Bounded<80>)>();
            for i in 0..MAX_RECIPIENTS {
                recipients.add(i).write((RecipientKind::To, Bounded::EMPTY));
            }
            addr_of_mut!((*p).recipient_count).write(0);
            addr_of_mut!((*p).charset).write(Charset::UsAscii);
            addr_of_mut!((*p).subject).write(None);
            addr_of_mut!((*p).head_set).write(false);
            addr_of_mut!((*p).mechanism).write(Mechanism::Password);
            addr_of_mut!((*p).transfer).write(Transfer::Auto);
            addr_of_mut!((*p).transfer_default).write(Transfer::Auto);
            addr_of_mut!((*p).transfer_set).write(false);
            slot.assume_init_mut()
        }
    }

    /// Back to nothing configured, as [`Config::new`], in place: a new
    /// value would be built on the stack first, and it is 2.3 KB. The
    /// caller's transfer default stays, and is the mode again.
    #[allow(unsafe_code)]
    pub fn clear(&mut self) {
        if let Some((_, password)) = &mut self.login {
            password.wipe();
        }
        let transfer_default = self.transfer_default;
        // SAFETY: the only drop glue in a `Config` is the password's wipe,
        // done just above, so it may be overwritten without being dropped;
        // `MaybeUninit<Config>` has its layout, and `init_in` leaves it
        // initialised.
        let slot = unsafe { &mut *(self as *mut Self).cast::<MaybeUninit<Self>>() };
        let config = Self::init_in(slot);
        config.transfer_default = transfer_default;
        config.transfer = transfer_default;
    }

    /// Sets the mode `+GTSMTPCLR` restores (the caller's: the C ABI, the
    /// CLI's `--bdat`), and the current mode too unless `+GTSMTPBDAT` has
    /// set it since the last clear: the host's word stands until a clear.
    pub fn set_transfer_default(&mut self, mode: Transfer) {
        self.transfer_default = mode;
        if !self.transfer_set {
            self.transfer = mode;
        }
    }

    /// How the next mail may cross the wire (`+GTSMTPBDAT`).
    pub fn transfer(&self) -> Transfer {
        self.transfer
    }

    /// The mode `+GTSMTPCLR` restores.
    pub fn transfer_default(&self) -> Transfer {
        self.transfer_default
    }

    /// Applies a configuration request (LAND, ID, DST, HEAD); anything else
    /// is not a configuration change and is refused. On error nothing changed.
    pub fn apply(&mut self, request: &Request<'_>) -> Result<(), ConfigError> {
        match *request {
            Request::Land { port, server, mode } => {
                // Field by field into the stored value: a new `Server` or
                // login would be built on the stack first (firmware stacks
                // are 1 KiB).
                let stored = self.server.get_or_insert(Server::EMPTY);
                stored.port = port;
                stored.host.set(server);
                stored.mode = mode;
            }
            Request::Id { user, password } => {
                let (stored_user, stored_password) = self
                    .login
                    .get_or_insert((Bounded::EMPTY, Secret(Bounded::EMPTY)));
                stored_user.set(user);
                stored_password.set(password);
            }
            Request::Dst {
                add: true,
                kind,
                address,
            } => self.add_recipient(kind, address)?,
            Request::Dst {
                add: false,
                kind,
                address,
            } => self.remove_recipient(kind, address)?,
            Request::Head { charset, subject } => {
                self.charset = charset;
                match subject {
                    Some(text) => self
                        .subject
                        .get_or_insert(Bounded::EMPTY)
                        .set(text.as_bytes()),
                    None => self.subject = None,
                }
                self.head_set = true;
            }
            Request::Auth { mechanism } => self.mechanism = mechanism,
            Request::Transfer { mode } => {
                self.transfer = mode;
                self.transfer_set = true;
            }
            _ => return Err(ConfigError::NotConfiguration),
        }
        Ok(())
    }

    fn add_recipient(
        &mut self,
        kind: RecipientKind,
        address: Address<'_>,
    ) -> Result<(), ConfigError> {
        if self.position(kind, address).is_some() {
            return Ok(());
        }
        let n = self.recipient_count as usize;
        if n == MAX_RECIPIENTS {
            return Err(ConfigError::TooManyRecipients);
        }
        let (k, a) = index::get_mut(&mut self.recipients, n);
        *k = kind;
        a.set(address.as_bytes());
        self.recipient_count += 1;
        Ok(())
    }

    fn remove_recipient(
        &mut self,
        kind: RecipientKind,
        address: Address<'_>,
    ) -> Result<(), ConfigError> {
        let at = self
            .position(kind, address)
            .ok_or(ConfigError::NoSuchRecipient)?;
        let n = self.recipient_count as usize;
        // Moved down one by one (at most 19 swaps), not by `copy_within`,
        // whose `memmove` is 1.5 KB of firmware flash; the removed entry
        // ends past the count, where nothing reads it.
        for i in at..n - 1 {
            index::array_mut::<_, 2>(&mut self.recipients, i).swap(0, 1);
        }
        self.recipient_count -= 1;
        Ok(())
    }

    fn position(&self, kind: RecipientKind, address: Address<'_>) -> Option<usize> {
        index::get(&self.recipients, ..self.recipient_count as usize)
            .iter()
            .position(|(k, a)| *k == kind && a.as_bytes() == address.as_bytes())
    }

    /// The server, if set.
    pub fn server(&self) -> Option<&Server> {
        self.server.as_ref()
    }

    /// User and password, if set.
    pub fn login(&self) -> Option<(&[u8], &[u8])> {
        self.login
            .as_ref()
            .map(|(u, p)| (u.as_bytes(), p.0.as_bytes()))
    }

    /// How the mail signs in (`+GTSMTPAUTH`; a password until it is set).
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The session charset (US-ASCII until `+GTSMTPHEAD` sets one).
    pub fn charset(&self) -> Charset {
        self.charset
    }

    /// The subject, if any.
    pub fn subject(&self) -> Option<Text<'_>> {
        // Validated in its charset by `+GTSMTPHEAD`, which set both.
        self.subject
            .as_ref()
            .map(|s| Text::trusted(self.charset, s.as_bytes()))
    }

    /// The recipients, in the order they were added.
    pub fn recipients(&self) -> impl Iterator<Item = Recipient<'_>> {
        index::get(&self.recipients, ..self.recipient_count as usize)
            .iter()
            // Validated by `+GTSMTPDST` before they were stored.
            .map(|(kind, a)| Recipient {
                kind: *kind,
                address: Address::trusted(a.as_bytes()),
            })
    }

    /// The recipients as the header block and the SMTP envelope read them.
    pub fn recipient_list(&self) -> &dyn Recipients {
        self
    }

    /// Whether SEND has what it needs: LAND, ID and a recipient.
    pub fn is_complete(&self) -> bool {
        self.server.is_some() && self.login.is_some() && self.recipient_count > 0
    }
}

/// The stored recipients, read in place.
impl Recipients for Config {
    fn count(&self) -> usize {
        self.recipient_count as usize
    }

    fn recipient(&self, i: usize) -> Option<Recipient<'_>> {
        self.recipients().nth(i)
    }
}

/// Why a configuration change was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A 21st recipient.
    TooManyRecipients,
    /// Deleting a recipient that is not in the list (with that type).
    NoSuchRecipient,
    /// Not a configuration command.
    NotConfiguration,
}

/// Writes the read form's information lines (without the final `OK`),
/// each framed by CRLF as V.250 verbose mode frames them. The password
/// is never written: always five asterisks. `files` are the attachment
/// names of the mail in progress.
pub fn write_read<'f>(
    out: &mut dyn Out,
    config: &Config,
    command: Command,
    files: impl Iterator<Item = &'f [u8]>,
) {
    let name = command.name().as_bytes();
    let start = |out: &mut dyn Out| {
        out.put(b"\r\n+");
        out.put(name);
        out.put(b": ");
    };
    let nothing = |out: &mut dyn Out| {
        start(out);
        out.put(b"0\r\n");
    };
    match command {
        Command::Land => match config.server() {
            None => nothing(out),
            Some(s) => {
                start(out);
                put_decimal(out, s.port.into());
                out.put(b",");
                put_quoted(out, s.host.as_bytes());
                if let Some(mode) = s.mode {
                    out.put(b",");
                    put_decimal(out, mode.mode().into());
                }
                out.put(b"\r\n");
            }
        },
        Command::Id => match config.login() {
            None => nothing(out),
            Some((user, _)) => {
                start(out);
                put_quoted(out, user);
                out.put(b",\"*****\"\r\n");
            }
        },
        Command::Dst => {
            let mut any = false;
            for r in config.recipients() {
                any = true;
                start(out);
                put_decimal(out, r.kind as u64);
                out.put(b",");
                put_quoted(out, r.address.as_bytes());
                out.put(b"\r\n");
            }
            if !any {
                nothing(out);
            }
        }
        Command::Head if config.head_set => {
            start(out);
            put_decimal(out, config.charset().code().into());
            out.put(b",");
            put_quoted(
                out,
                config.subject.as_ref().map_or(&b""[..], |s| s.as_bytes()),
            );
            out.put(b"\r\n");
        }
        Command::Head => nothing(out),
        Command::Auth => {
            start(out);
            put_decimal(out, config.mechanism.code().into());
            out.put(b"\r\n");
        }
        Command::Bdat => {
            start(out);
            put_decimal(out, config.transfer.code().into());
            out.put(b"\r\n");
        }
        Command::File => {
            let mut any = false;
            for f in files {
                any = true;
                start(out);
                put_quoted(out, f);
                out.put(b"\r\n");
            }
            if !any {
                nothing(out);
            }
        }
        // SEND, DATA, END, CLR: the read form answers just OK; TOKEN's is
        // the session's, which holds the token.
        _ => {}
    }
}

/// Writes the test form's information line (without the final `OK`).
pub fn write_test(out: &mut dyn Out, command: Command) {
    let ranges: &[u8] = match command {
        Command::Land => b"(1-65535),(\"SERVER ADDR\"),(0-3)",
        Command::Id => b"(\"username\"),(\"password\")",
        Command::Dst => b"(0-1),(1-3),(\"receiver ID\")",
        Command::Head => b"(0-3),(\"Title\")",
        Command::Send => b"(100-48000)",
        Command::Data => b"(1-48000),(3-20)",
        Command::File => b"(0-1),(\"file name\"),(3-20)",
        Command::Auth => b"(0-2)",
        Command::Token => b"(0-8192)",
        Command::Bdat => b"(0-2)",
        _ => return,
    };
    out.put(b"\r\n+");
    out.put(command.name().as_bytes());
    out.put(b": ");
    out.put(ranges);
    out.put(b"\r\n");
}

fn put_quoted(out: &mut dyn Out, bytes: &[u8]) {
    out.put(b"\"");
    out.put(bytes);
    out.put(b"\"");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::at::parse;
    use std::vec::Vec;

    fn read(config: &Config, command: Command) -> Vec<u8> {
        let mut out = Vec::new();
        write_read(&mut out, config, command, core::iter::empty());
        out
    }

    /// A line through the AT parser and into `config`; `None` when the
    /// parser refuses it.
    fn apply(config: &mut Config, line: &[u8]) -> Result<(), Option<ConfigError>> {
        let request = parse(line).map_err(|_| None)?;
        config.apply(&request).map_err(Some)
    }

    /// `clear` and `init_in` give what `new` gives (compared through
    /// `Debug`, which shows every field), from a full configuration and from
    /// dirty memory.
    #[test]
    #[allow(unsafe_code)]
    fn clear_and_init_in_make_what_new_makes() {
        let new = std::format!("{:?}", Config::new());
        let mut c = Config::new();
        for line in [
            &b"AT+GTSMTPLAND=465,\"mail.example\",1"[..],
            b"AT+GTSMTPID=\"a@example.com\",\"pw\"",
            b"AT+GTSMTPDST=1,1,\"b@example.com\"",
            b"AT+GTSMTPEHEAD=1,\"hi\"",
        ] {
            apply(&mut c, line).unwrap();
        }
        assert_ne!(std::format!("{c:?}"), new);
        c.clear();
        assert_eq!(std::format!("{c:?}"), new);
        let mut slot = MaybeUninit::<Config>::uninit();
        // SAFETY: bytes written into a `MaybeUninit`, before any read.
        unsafe {
            slot.as_mut_ptr()
                .cast::<u8>()
                .write_bytes(0xA5, core::mem::size_of::<Config>())
        };
        assert_eq!(std::format!("{:?}", Config::init_in(&mut slot)), new);
    }

    #[test]
    fn the_spec_case_configures_and_reads_back() {
        let mut c = Config::new();
        for command in [
            Command::Land,
            Command::Id,
            Command::Dst,
            Command::Head,
            Command::File,
        ] {
            let want = std::format!("\r\n+{}: 0\r\n", command.name());
            assert_eq!(read(&c, command), want.as_bytes());
        }
        apply(&mut c, b"at+gtsmtpland=25,\"mail.fibocom.com\"").unwrap();
        apply(
            &mut c,
            b"at+gtsmtpid=\"wangww@fibocom.com\",\"ght64621178\"",
        )
        .unwrap();
        apply(&mut c, b"at+gtsmtpdst=1,1,\"xiangj@fibocom.com\"").unwrap();
        apply(&mut c, b"AT+GTSMTPEHEAD=2,\"\xc4\xe3\xba\xc3 smtp\"").unwrap();
        assert!(c.is_complete());
        assert_eq!(
            read(&c, Command::Land),
            b"\r\n+GTSMTPLAND: 25,\"mail.fibocom.com\"\r\n"
        );
        assert_eq!(
            read(&c, Command::Id),
            b"\r\n+GTSMTPID: \"wangww@fibocom.com\",\"*****\"\r\n"
        );
        assert_eq!(
            read(&c, Command::Dst),
            b"\r\n+GTSMTPDST: 1,\"xiangj@fibocom.com\"\r\n"
        );
        assert_eq!(
            read(&c, Command::Head),
            b"\r\n+GTSMTPHEAD: 2,\"\xc4\xe3\xba\xc3 smtp\"\r\n"
        );
        apply(&mut c, b"AT+GTSMTPLAND=465,\"smtp.example.com\",1").unwrap();
        assert_eq!(
            read(&c, Command::Land),
            b"\r\n+GTSMTPLAND: 465,\"smtp.example.com\",1\r\n"
        );
    }

    #[test]
    fn the_password_never_appears() {
        let mut c = Config::new();
        apply(&mut c, b"AT+GTSMTPID=\"u@x\",\"s3cr3t-pw\"").unwrap();
        for command in [
            Command::Land,
            Command::Id,
            Command::Dst,
            Command::Head,
            Command::Send,
            Command::File,
        ] {
            let out = read(&c, command);
            assert!(!out.windows(9).any(|w| w == b"s3cr3t-pw"), "{command:?}");
        }
        assert!(!std::format!("{c:?}").contains("s3cr3t"));
        assert_eq!(c.login(), Some((&b"u@x"[..], &b"s3cr3t-pw"[..])));
    }

    #[test]
    fn recipients_add_delete_and_limits() {
        let mut c = Config::new();
        for i in 0..20 {
            apply(
                &mut c,
                std::format!("AT+GTSMTPDST=1,1,\"r{i}@x.com\"").as_bytes(),
            )
            .unwrap();
        }
        let before = read(&c, Command::Dst);
        assert_eq!(
            apply(&mut c, b"AT+GTSMTPDST=1,2,\"r20@x.com\""),
            Err(Some(ConfigError::TooManyRecipients))
        );
        apply(&mut c, b"AT+GTSMTPDST=1,1,\"r3@x.com\"").unwrap();
        assert_eq!(read(&c, Command::Dst), before, "re-adding changes nothing");
        assert_eq!(
            apply(&mut c, b"AT+GTSMTPDST=0,2,\"r3@x.com\""),
            Err(Some(ConfigError::NoSuchRecipient))
        );
        assert_eq!(
            read(&c, Command::Dst),
            before,
            "a refused delete changes nothing"
        );
        apply(&mut c, b"AT+GTSMTPDST=0,1,\"r3@x.com\"").unwrap();
        let after = read(&c, Command::Dst);
        assert_eq!(
            after.len(),
            before.len() - b"\r\n+GTSMTPDST: 1,\"r3@x.com\"\r\n".len()
        );
        assert_eq!(
            c.recipients().nth(3).unwrap().address.as_bytes(),
            b"r4@x.com",
            "order kept"
        );
    }

    #[test]
    fn bad_lines_leave_every_read_form_unchanged() {
        let mut c = Config::new();
        apply(&mut c, b"AT+GTSMTPLAND=25,\"mx.example.com\"").unwrap();
        apply(&mut c, b"AT+GTSMTPID=\"u@x\",\"pw\"").unwrap();
        apply(&mut c, b"AT+GTSMTPDST=1,1,\"a@x.com\"").unwrap();
        apply(&mut c, b"AT+GTSMTPHEAD=1,\"hi\"").unwrap();
        let snapshot = |c: &Config| {
            [Command::Land, Command::Id, Command::Dst, Command::Head].map(|k| read(c, k))
        };
        let before = snapshot(&c);
        let bad: &[&[u8]] = &[
            b"AT+GTSMTPLAND=0,\"mx\"",
            b"AT+GTSMTPLAND=25,mx",
            b"AT+GTSMTPLAND=25,\"mx\r\nX\"",
            b"AT+GTSMTPID=\"u\"",
            b"AT+GTSMTPID=\"u\0\",\"p\"",
            b"AT+GTSMTPDST=1,1,\"a@x.com\rBcc: z@z\"",
            b"AT+GTSMTPDST=1,4,\"b@x.com\"",
            b"AT+GTSMTPDST=0,1,\"nobody@x.com\"",
            b"AT+GTSMTPHEAD=2,\"\xc4\"",
            b"AT+GTSMTPHEAD=0,\"caf\xe9\"",
            b"AT+GTSMTPHEAD=9,\"x\"",
            b"AT+GTSMTPSEND=300",
        ];
        for line in bad {
            assert!(
                apply(&mut c, line).is_err(),
                "{}",
                std::string::String::from_utf8_lossy(line)
            );
            assert_eq!(
                snapshot(&c),
                before,
                "{}",
                std::string::String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn test_forms() {
        let mut out = Vec::new();
        write_test(&mut out, Command::Send);
        assert_eq!(out, b"\r\n+GTSMTPSEND: (100-48000)\r\n");
        let mut out = Vec::new();
        write_test(&mut out, Command::End);
        assert!(out.is_empty());
        let mut out = Vec::new();
        write_test(&mut out, Command::Auth);
        assert_eq!(out, b"\r\n+GTSMTPAUTH: (0-2)\r\n");
        let mut out = Vec::new();
        write_test(&mut out, Command::Token);
        assert_eq!(out, b"\r\n+GTSMTPTOKEN: (0-8192)\r\n");
    }

    #[test]
    fn auth_is_set_read_and_cleared() {
        let mut config = Config::new();
        assert_eq!(read(&config, Command::Auth), b"\r\n+GTSMTPAUTH: 0\r\n");
        apply(&mut config, b"AT+GTSMTPAUTH=2").unwrap();
        assert_eq!(config.mechanism(), Mechanism::OAuthBearer);
        assert_eq!(read(&config, Command::Auth), b"\r\n+GTSMTPAUTH: 2\r\n");
        config.clear();
        assert_eq!(config.mechanism(), Mechanism::Password);
    }

    #[test]
    fn transfer_is_set_read_tested_and_cleared_to_the_default() {
        let mut c = Config::new();
        assert_eq!(c.transfer(), Transfer::Auto);
        assert_eq!(read(&c, Command::Bdat), b"\r\n+GTSMTPBDAT: 1\r\n");
        let mut out = Vec::new();
        write_test(&mut out, Command::Bdat);
        assert_eq!(out, b"\r\n+GTSMTPBDAT: (0-2)\r\n");
        for (line, want) in [
            (&b"AT+GTSMTPBDAT=0"[..], &b"\r\n+GTSMTPBDAT: 0\r\n"[..]),
            (b"at+gtsmtpbdat=2", b"\r\n+GTSMTPBDAT: 2\r\n"),
            (b"AT+GTSMTPBDAT=1", b"\r\n+GTSMTPBDAT: 1\r\n"),
        ] {
            apply(&mut c, line).unwrap();
            assert_eq!(read(&c, Command::Bdat), want);
        }
        // A refused line changes nothing.
        apply(&mut c, b"AT+GTSMTPBDAT=0").unwrap();
        for bad in [&b"AT+GTSMTPBDAT=3"[..], b"AT+GTSMTPBDAT=", b"AT+GTSMTPBDAT"] {
            assert!(apply(&mut c, bad).is_err());
            assert_eq!(c.transfer(), Transfer::Off);
        }
        // CLR restores the built-in default while the caller set none.
        c.clear();
        assert_eq!(c.transfer(), Transfer::Auto);
    }

    #[test]
    fn the_callers_default_survives_clear_and_yields_to_the_host() {
        let mut c = Config::new();
        c.set_transfer_default(Transfer::Off);
        assert_eq!(
            (c.transfer(), c.transfer_default()),
            (Transfer::Off, Transfer::Off)
        );
        // The host's word stands over a later default until CLR.
        apply(&mut c, b"AT+GTSMTPBDAT=2").unwrap();
        c.set_transfer_default(Transfer::Auto);
        assert_eq!(c.transfer(), Transfer::Force);
        apply(&mut c, b"AT+GTSMTPID=\"u@x\",\"pw\"").unwrap();
        c.clear();
        assert_eq!(
            c.transfer(),
            Transfer::Auto,
            "CLR restores the caller's default"
        );
        assert_eq!(c.transfer_default(), Transfer::Auto);
        assert_eq!(c.login(), None);
        // After CLR a new default applies at once again.
        c.set_transfer_default(Transfer::Force);
        assert_eq!(c.transfer(), Transfer::Force);
        c.set_transfer_default(Transfer::Off);
        c.clear();
        assert_eq!(read(&c, Command::Bdat), b"\r\n+GTSMTPBDAT: 0\r\n");
    }

    #[test]
    fn config_is_small_and_fixed() {
        let size = core::mem::size_of::<Config>();
        std::println!("size_of::<Config>() = {size}");
        assert!(size < 4096, "{size}");
    }
}
