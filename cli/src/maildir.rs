//! `--maildir DIR`: an in-process mail server that delivers into a Maildir.
//!
//! What it does: speaks the server side of SMTP to the engine over an
//! in-memory link (no socket): it offers PIPELINING, 8BITMIME, CHUNKING and
//! BINARYMIME and no AUTH (the link never leaves the process, so there is
//! nothing to sign in to; a client that signs in anyway is accepted), and
//! writes each message to `DIR/tmp` and renames it into `DIR/new` only when
//! the end of the message arrives (DATA's dot, or `BDAT n LAST`), as Maildir
//! requires, so a mail that is aborted or refused never appears.
//!
//! How a message is stored: a line-oriented message (DATA, or BDAT without
//! `BODY=BINARYMIME`) is stored with LF line endings, as MTAs store Maildir
//! files (Postfix's virtual delivery does), so mail readers show no `^M`.
//! A `BODY=BINARYMIME` message is stored exactly as it arrived: its binary
//! parts have no lines, and turning CRLF into LF there would change their
//! bytes (a binary part may hold both CRLF and a lone LF).
//!
//! RFC 3030 as a strict server keeps it: `BDAT <n> [LAST]` takes exactly n
//! octets (however the link splits them) and answers each chunk; the octets
//! are read even when the chunk is refused, so the next command is found
//! where the client put it. `BODY=BINARYMIME` goes only with BDAT (DATA after
//! it: `503 5.5.1`), BDAT and DATA do not mix in one transaction, BDAT
//! needs MAIL first, and after a refused chunk every chunk gets 503 until
//! RSET.
//!
//! With `--fault STEP=CODE` it answers that step (greeting, ehlo (EHLO
//! and HELO), auth, mail, rcpt, data (the DATA command), end (the end of
//! data, or the LAST chunk)) with that
//! code and a text that says so, instead of going on: host firmware can
//! meet every refusal a real server makes without one. A 421 closes the
//! connection after it, as RFC 5321 says a server does. With a fault at
//! `auth` it offers AUTH PLAIN LOGIN, so the step exists: a host that
//! allows sign-in in the clear (`AT+GTSMTPLAND` mode 3) meets the code;
//! in the default mode the engine refuses to sign in without TLS. Likewise
//! with a fault at `data` it offers neither CHUNKING nor BINARYMIME, so
//! the engine sends DATA (BDAT has no step before the message's octets).
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

/// Where the client's bytes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Command lines.
    Commands,
    /// Inside DATA: message lines until the dot line.
    Data,
    /// Inside a BDAT chunk: `left` octets to go.
    Chunk { left: u64, last: bool, count: u64 },
}

/// The transaction since MAIL, as far as RFC 3030 needs it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Transaction {
    /// MAIL was taken.
    open: bool,
    /// MAIL said `BODY=BINARYMIME`.
    binary: bool,
    /// A BDAT chunk was taken: DATA may not follow.
    chunked: bool,
    /// A chunk was refused: every chunk gets 503 until RSET.
    failed: bool,
}

/// The message file being written, and how.
struct Message {
    file: BufWriter<File>,
    tmp: PathBuf,
    /// Octets stored as they came (BINARYMIME), not as LF lines.
    exact: bool,
    /// A CR seen last (a line-oriented BDAT message): whether an LF
    /// follows decides what it was, and the LF may be in the next chunk.
    cr: bool,
}

impl Message {
    fn create(dir: &Path, exact: bool) -> io::Result<Self> {
        let tmp = dir.join("tmp").join(unique_name());
        let file = BufWriter::new(File::create(&tmp)?);
        Ok(Message {
            file,
            tmp,
            exact,
            cr: false,
        })
    }

    /// BDAT octets: as they are, or with each CRLF stored as LF.
    fn octets(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.exact {
            return self.file.write_all(bytes);
        }
        for &b in bytes {
            if self.cr && b != b'\n' {
                self.file.write_all(b"\r")?;
            }
            self.cr = b == b'\r';
            if !self.cr {
                self.file.write_all(&[b])?;
            }
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<PathBuf> {
        if self.cr {
            self.file.write_all(b"\r")?;
        }
        self.file
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()?;
        Ok(self.tmp)
    }
}

/// The server side of one connection.
pub struct MaildirSink {
    faults: Faults,
    dir: PathBuf,
    replies: Vec<u8>,
    line: Vec<u8>,
    mode: Mode,
    tx: Transaction,
    /// The reply the chunk being read gets instead of being taken.
    refusal: Option<Vec<u8>>,
    /// Boxed: the sink lives inside the modem's link enum beside a bare
    /// socket.
    message: Option<Box<Message>>,
    /// CHUNKING and BINARYMIME were offered (by the last EHLO).
    chunking: bool,
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
            mode: Mode::Commands,
            tx: Transaction::default(),
            refusal: None,
            message: None,
            chunking: false,
            login_step: 0,
            closed: false,
        };
        if !sink.fault(Step::Greeting) {
            sink.replies
                .extend_from_slice(b"220 atmail maildir ESMTP\r\n");
        }
        Ok(sink)
    }

    /// The reply a step's fault gives, if it has one.
    fn fault_reply(&self, step: Step) -> Option<Vec<u8>> {
        let code = self.faults.get(step)?;
        let name = STEPS[step as usize].0;
        Some(
            format!(
                "{code} {}.0.0 fault injected at {name} (--fault {name}={code})\r\n",
                code / 100
            )
            .into_bytes(),
        )
    }

    /// Answers `step` with its fault, if it has one; returns whether it
    /// did.
    fn fault(&mut self, step: Step) -> bool {
        let Some(reply) = self.fault_reply(step) else {
            return false;
        };
        self.refuse(reply);
        true
    }

    /// Sends a refusal; a 421 closes the connection after it.
    fn refuse(&mut self, reply: Vec<u8>) {
        if reply.starts_with(b"421") {
            self.closed = true;
        }
        self.replies.extend_from_slice(&reply);
    }

    /// Bytes from the client.
    pub fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            if let Mode::Chunk { left, last, count } = self.mode {
                // usize fits in u64 on every target this runs on; the
                // minimum fits back in usize.
                let take = usize::try_from(left.min(bytes.len() as u64)).unwrap_or(bytes.len());
                let (octets, rest) = bytes.split_at(take);
                bytes = rest;
                if self.refusal.is_none() {
                    if let Some(message) = self.message.as_mut() {
                        message.octets(octets)?;
                    }
                }
                let left = left - take as u64;
                self.mode = Mode::Chunk { left, last, count };
                if left == 0 {
                    self.end_chunk(count, last)?;
                }
                continue;
            }
            let Some(end) = bytes.iter().position(|&b| b == b'\n') else {
                self.line.extend_from_slice(bytes);
                break;
            };
            self.line.extend_from_slice(&bytes[..end]);
            bytes = &bytes[end + 1..];
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

    /// A new transaction (MAIL), or none (RSET, EHLO, HELO): a message
    /// not ended is dropped.
    fn reset(&mut self, tx: Transaction) -> io::Result<()> {
        self.tx = tx;
        self.discard()
    }

    fn discard(&mut self) -> io::Result<()> {
        if let Some(message) = self.message.take() {
            let tmp = message.tmp.clone();
            drop(message);
            fs::remove_file(tmp)?;
        }
        Ok(())
    }

    fn on_line(&mut self, line: &[u8]) -> io::Result<()> {
        if self.mode == Mode::Data {
            return self.data_line(line);
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
        } else if upper.starts_with(b"EHLO") {
            self.reset(Transaction::default())?;
            // A fault at `data` answers the DATA command: without CHUNKING
            // offered, the engine sends one (BDAT has no such step).
            self.chunking = self.faults.get(Step::Data).is_none();
            let mut ehlo = b"250-atmail\r\n250-PIPELINING\r\n250-8BITMIME\r\n".to_vec();
            if self.chunking {
                ehlo.extend_from_slice(b"250-CHUNKING\r\n250-BINARYMIME\r\n");
            }
            if self.faults.get(Step::Auth).is_some() {
                // The auth step exists only where AUTH is offered.
                ehlo.extend_from_slice(b"250-AUTH PLAIN LOGIN\r\n");
            }
            // The last line's dash becomes the space that ends the reply.
            let last = ehlo[..ehlo.len() - 2]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(3, |at| at + 4);
            ehlo[last] = b' ';
            self.replies.extend_from_slice(&ehlo);
            return Ok(());
        } else if upper.starts_with(b"MAIL") {
            let binary = upper
                .split(|&b| b == b' ')
                .any(|param| param == b"BODY=BINARYMIME");
            if binary && !self.chunking {
                self.replies.extend_from_slice(
                    b"555 5.5.4 BODY=BINARYMIME but BINARYMIME was not offered\r\n",
                );
                return Ok(());
            }
            self.reset(Transaction {
                open: true,
                binary,
                ..Transaction::default()
            })?;
            b"250 2.0.0 ok\r\n"
        } else if upper.starts_with(b"HELO") || upper.starts_with(b"RSET") {
            if upper.starts_with(b"HELO") {
                self.chunking = false;
            }
            self.reset(Transaction::default())?;
            b"250 2.0.0 ok\r\n"
        } else if upper.starts_with(b"RCPT") || upper.starts_with(b"NOOP") {
            b"250 2.0.0 ok\r\n"
        } else if upper == b"AUTH LOGIN" {
            self.login_step = 1;
            b"334 VXNlcm5hbWU6\r\n"
        } else if upper.starts_with(b"AUTH PLAIN") {
            b"235 2.7.0 accepted\r\n"
        } else if upper == b"DATA" && self.tx.binary {
            // RFC 3030 3: a BINARYMIME message cannot be sent with DATA.
            b"503 5.5.1 BODY=BINARYMIME needs BDAT, not DATA\r\n"
        } else if upper == b"DATA" && self.tx.chunked {
            b"503 5.5.1 BDAT and DATA cannot be mixed in one transaction\r\n"
        } else if upper == b"DATA" {
            self.discard()?;
            self.message = Some(Box::new(Message::create(&self.dir, false)?));
            self.mode = Mode::Data;
            b"354 end with <CRLF>.<CRLF>\r\n"
        } else if upper.starts_with(b"BDAT ") {
            return self.bdat(&upper[5..]);
        } else if upper == b"QUIT" {
            self.closed = true;
            b"221 2.0.0 bye\r\n"
        } else {
            b"502 5.5.2 not implemented\r\n"
        };
        self.replies.extend_from_slice(reply);
        Ok(())
    }

    /// A line inside DATA: the dot line ends the message.
    fn data_line(&mut self, line: &[u8]) -> io::Result<()> {
        if line == b"." {
            self.mode = Mode::Commands;
            if let Some(reply) = self.fault_reply(Step::End) {
                // Refused: the message goes, as on an abort.
                self.refuse(reply);
                return self.reset(Transaction::default());
            }
            return self.deliver();
        }
        if let Some(message) = self.message.as_mut() {
            let line = line.strip_prefix(b".").unwrap_or(line);
            message.file.write_all(line)?;
            message.file.write_all(b"\n")?;
        }
        Ok(())
    }

    /// `BDAT <n> [LAST]` (the arguments in upper case): decides the
    /// chunk's answer now and reads its octets whatever it is.
    fn bdat(&mut self, args: &[u8]) -> io::Result<()> {
        let Some((count, last)) = parse_bdat(args) else {
            // No count, so no octets to read either.
            self.replies
                .extend_from_slice(b"501 5.5.4 syntax: BDAT <chunk-size> [LAST]\r\n");
            return Ok(());
        };
        let fault = if last {
            self.fault_reply(Step::End)
        } else {
            None
        };
        self.refusal = if !self.chunking {
            Some(b"502 5.5.1 BDAT without CHUNKING offered\r\n".to_vec())
        } else if !self.tx.open {
            Some(b"503 5.5.1 MAIL first\r\n".to_vec())
        } else if self.tx.failed {
            Some(b"503 5.5.1 the transaction failed: RSET first\r\n".to_vec())
        } else if fault.is_some() {
            // A refused chunk fails the transaction (RFC 3030 2).
            self.tx.failed = true;
            self.discard()?;
            fault
        } else {
            None
        };
        if self.refusal.is_none() && !self.tx.chunked {
            self.tx.chunked = true;
            self.message = Some(Box::new(Message::create(&self.dir, self.tx.binary)?));
        }
        self.mode = Mode::Chunk {
            left: count,
            last,
            count,
        };
        if count == 0 {
            self.end_chunk(count, last)?;
        }
        Ok(())
    }

    /// The chunk's last octet came: its answer.
    fn end_chunk(&mut self, count: u64, last: bool) -> io::Result<()> {
        self.mode = Mode::Commands;
        if let Some(reply) = self.refusal.take() {
            self.refuse(reply);
            return Ok(());
        }
        if !last {
            let reply = format!("250 2.0.0 {count} octets received\r\n");
            self.replies.extend_from_slice(reply.as_bytes());
            return Ok(());
        }
        self.deliver()
    }

    fn deliver(&mut self) -> io::Result<()> {
        self.tx = Transaction::default();
        let Some(message) = self.message.take() else {
            return Ok(());
        };
        let tmp = message.finish()?;
        let name = tmp.file_name().map(|n| n.to_owned()).unwrap_or_default();
        let new = self.dir.join("new").join(name);
        fs::rename(&tmp, &new)?;
        eprintln!("atmail: delivered {}", new.display());
        self.replies.extend_from_slice(b"250 2.0.0 delivered\r\n");
        Ok(())
    }
}

/// `<n>` or `<n> LAST` (upper case); n as RFC 3030 writes it, digits.
fn parse_bdat(args: &[u8]) -> Option<(u64, bool)> {
    let (digits, last) = match args.strip_suffix(b" LAST") {
        Some(digits) => (digits, true),
        None => (args, false),
    };
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let count = digits
        .iter()
        .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
    Some((count, last))
}

impl Drop for MaildirSink {
    fn drop(&mut self) {
        // An aborted mail leaves nothing behind.
        let _ = self.discard();
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A Maildir of its own under the system's temporary directory,
    /// removed at the end.
    struct Dir(PathBuf);

    impl Dir {
        fn new() -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir()
                .join(format!("atmail-maildir-test-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            Dir(path)
        }

        /// The delivered messages, in no particular order but sorted by
        /// content for comparison.
        fn delivered(&self) -> Vec<Vec<u8>> {
            let mut out: Vec<Vec<u8>> = fs::read_dir(self.0.join("new"))
                .unwrap()
                .map(|e| fs::read(e.unwrap().path()).unwrap())
                .collect();
            out.sort();
            out
        }

        fn leftovers(&self) -> usize {
            fs::read_dir(self.0.join("tmp")).unwrap().count()
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn sink(dir: &Dir, faults: &[(Step, u16)]) -> MaildirSink {
        let mut f = Faults::default();
        for &fault in faults {
            f.set(fault);
        }
        MaildirSink::open(&dir.0, f).unwrap()
    }

    /// Feeds `input` cut at `cuts`; returns every reply, greeting included.
    fn run(dir: &Dir, faults: &[(Step, u16)], input: &[u8], cuts: &[usize]) -> String {
        let mut s = sink(dir, faults);
        let mut out = s.read();
        let mut at = 0;
        for &cut in cuts.iter().chain([input.len()].iter()) {
            let cut = cut.clamp(at, input.len());
            s.write(&input[at..cut]).unwrap();
            out.extend(s.read());
            at = cut;
        }
        String::from_utf8(out).unwrap()
    }

    const ENVELOPE: &[u8] =
        b"EHLO [127.0.0.1]\r\nMAIL FROM:<a@b.c> BODY=BINARYMIME\r\nRCPT TO:<x@y.z>\r\n";

    fn binary_mail() -> (Vec<u8>, Vec<u8>) {
        let message: Vec<u8> = b"Subject: x\r\n\r\n\r\n.\r\nBDAT 5 LAST\r\n+++\0\xff\r\rbare\nlf"
            .iter()
            .copied()
            .chain((0..=255u8).cycle().take(3000))
            .collect();
        let mut wire = ENVELOPE.to_vec();
        wire.extend(format!("BDAT {}\r\n", 40).as_bytes());
        wire.extend(&message[..40]);
        wire.extend(format!("BDAT {} LAST\r\n", message.len() - 40).as_bytes());
        wire.extend(&message[40..]);
        wire.extend(b"QUIT\r\n");
        (wire, message)
    }

    #[test]
    fn ehlo_offers_chunking_and_binarymime() {
        let dir = Dir::new();
        let replies = run(&dir, &[], b"EHLO [127.0.0.1]\r\n", &[]);
        assert!(replies.contains("250-CHUNKING\r\n"), "{replies}");
        assert!(replies.contains("BINARYMIME\r\n"), "{replies}");
        let replies = run(&dir, &[(Step::Auth, 535)], b"EHLO [127.0.0.1]\r\n", &[]);
        assert!(replies.contains("250-BINARYMIME\r\n250 AUTH PLAIN LOGIN\r\n"));
    }

    #[test]
    fn a_binarymime_message_is_stored_exactly_with_counts_exact() {
        let dir = Dir::new();
        let (wire, message) = binary_mail();
        let replies = run(&dir, &[], &wire, &[]);
        assert!(
            replies.ends_with(
                "250 2.0.0 ok\r\n250 2.0.0 ok\r\n250 2.0.0 40 octets received\r\n250 2.0.0 delivered\r\n221 2.0.0 bye\r\n"
            ),
            "{replies}"
        );
        assert_eq!(dir.delivered(), vec![message]);
        assert_eq!(dir.leftovers(), 0);
    }

    /// Table: the input cut at every single place, and byte by byte.
    #[test]
    fn every_cut_gives_the_same_replies_and_bytes() {
        let (wire, message) = binary_mail();
        let whole = run(&Dir::new(), &[], &wire, &[]);
        for cut in (0..wire.len()).step_by(7).chain([wire.len() - 1]) {
            let dir = Dir::new();
            assert_eq!(run(&dir, &[], &wire, &[cut]), whole, "cut at {cut}");
            assert_eq!(dir.delivered(), vec![message.clone()], "cut at {cut}");
        }
        let dir = Dir::new();
        let cuts: Vec<usize> = (1..wire.len()).collect();
        assert_eq!(run(&dir, &[], &wire, &cuts), whole);
        assert_eq!(dir.delivered(), vec![message]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_chunking_gives_the_same_output(mut cuts in proptest::collection::vec(0usize..3200, 0..40)) {
            let (wire, message) = binary_mail();
            cuts.sort_unstable();
            let whole = run(&Dir::new(), &[], &wire, &[]);
            let dir = Dir::new();
            prop_assert_eq!(run(&dir, &[], &wire, &cuts), whole);
            prop_assert_eq!(dir.delivered(), vec![message]);
        }
    }

    #[test]
    fn bdat_0_last_ends_a_message_and_alone_sends_an_empty_one() {
        let dir = Dir::new();
        let wire = [
            ENVELOPE,
            b"BDAT 3\r\nabcBDAT 0 LAST\r\nMAIL FROM:<a@b.c> BODY=BINARYMIME\r\nRCPT TO:<x@y.z>\r\nBDAT 0 last\r\n",
        ]
        .concat();
        let replies = run(&dir, &[], &wire, &[]);
        assert!(replies.ends_with("250 2.0.0 3 octets received\r\n250 2.0.0 delivered\r\n250 2.0.0 ok\r\n250 2.0.0 ok\r\n250 2.0.0 delivered\r\n"), "{replies}");
        assert_eq!(dir.delivered(), vec![b"".to_vec(), b"abc".to_vec()]);
    }

    #[test]
    fn binarymime_goes_only_with_bdat_and_bdat_only_after_mail() {
        let dir = Dir::new();
        let wire = [
            b"EHLO x\r\nBDAT 6\r\nQUIT\r\nNOOP\r\n" as &[u8],
            b"MAIL FROM:<a@b.c> body=binarymime\r\nRCPT TO:<x@y.z>\r\nDATA\r\n",
            b"BDAT 2 LAST\r\nok",
            b"MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nBDAT 1\r\nxDATA\r\nRSET\r\nBDAT x\r\n",
        ]
        .concat();
        let replies = run(&dir, &[], &wire, &[]);
        let lines: Vec<&str> = replies.lines().skip(6).collect();
        assert_eq!(
            lines,
            [
                "503 5.5.1 MAIL first",
                "250 2.0.0 ok",
                "250 2.0.0 ok",
                "250 2.0.0 ok",
                "503 5.5.1 BODY=BINARYMIME needs BDAT, not DATA",
                "250 2.0.0 delivered",
                "250 2.0.0 ok",
                "250 2.0.0 ok",
                "250 2.0.0 1 octets received",
                "503 5.5.1 BDAT and DATA cannot be mixed in one transaction",
                "250 2.0.0 ok",
                "501 5.5.4 syntax: BDAT <chunk-size> [LAST]",
            ],
            "{replies}"
        );
        assert_eq!(dir.delivered(), vec![b"ok".to_vec()]);
        assert_eq!(dir.leftovers(), 0);
    }

    #[test]
    fn a_line_oriented_bdat_message_is_stored_with_lf_lines() {
        let dir = Dir::new();
        // A CRLF cut between two chunks, and a lone CR kept.
        let wire = b"EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nBDAT 4\r\nab\r\rBDAT 6 LAST\r\n\nc\r\n.\r";
        run(&dir, &[], wire, &[]);
        assert_eq!(dir.delivered(), vec![b"ab\r\nc\n.\r".to_vec()]);
    }

    #[test]
    fn data_is_stored_as_before() {
        let dir = Dir::new();
        let wire = b"EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nDATA\r\n..dot\r\nline\r\n.\r\nQUIT\r\n";
        let replies = run(&dir, &[], wire, &[]);
        assert!(replies.contains("354 "), "{replies}");
        assert_eq!(dir.delivered(), vec![b".dot\nline\n".to_vec()]);
    }

    #[test]
    fn a_fault_at_end_answers_the_last_chunk_and_nothing_is_delivered() {
        let dir = Dir::new();
        let wire = [ENVELOPE, b"BDAT 3\r\nabcBDAT 2 LAST\r\nde", b"RSET\r\n"].concat();
        let replies = run(&dir, &[(Step::End, 554)], &wire, &[]);
        assert!(replies.ends_with(
            "250 2.0.0 3 octets received\r\n554 5.0.0 fault injected at end (--fault end=554)\r\n250 2.0.0 ok\r\n"
        ), "{replies}");
        assert_eq!(dir.delivered(), Vec::<Vec<u8>>::new());
        assert_eq!(dir.leftovers(), 0);
        // And at the end of DATA, as before.
        let wire = b"EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nDATA\r\nx\r\n.\r\n";
        let replies = run(&dir, &[(Step::End, 554)], wire, &[]);
        assert!(replies.ends_with(
            "354 end with <CRLF>.<CRLF>\r\n554 5.0.0 fault injected at end (--fault end=554)\r\n"
        ));
        assert_eq!(dir.leftovers(), 0);
    }

    #[test]
    fn a_fault_at_data_withdraws_chunking_so_data_is_the_step() {
        let dir = Dir::new();
        let wire = b"EHLO x\r\nMAIL FROM:<a@b.c> BODY=BINARYMIME\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nBDAT 3 LAST\r\nabcDATA\r\n";
        let replies = run(&dir, &[(Step::Data, 451)], wire, &[]);
        assert!(
            !replies.contains("250-CHUNKING") && !replies.contains("-BINARYMIME"),
            "{replies}"
        );
        assert!(
            replies.ends_with(
                "250 8BITMIME\r\n555 5.5.4 BODY=BINARYMIME but BINARYMIME was not offered\r\n250 2.0.0 ok\r\n250 2.0.0 ok\r\n\
                 502 5.5.1 BDAT without CHUNKING offered\r\n451 4.0.0 fault injected at data (--fault data=451)\r\n"
            ),
            "{replies}"
        );
        assert_eq!(dir.delivered(), Vec::<Vec<u8>>::new());
        assert_eq!(dir.leftovers(), 0);
    }

    #[test]
    fn bdat_before_ehlo_or_after_helo_is_not_offered() {
        let dir = Dir::new();
        let wire = b"BDAT 4\r\nNOOPHELO x\r\nMAIL FROM:<a@b.c>\r\nBDAT 1 LAST\r\nxNOOP\r\n";
        let replies = run(&dir, &[], wire, &[]);
        assert_eq!(
            replies,
            "220 atmail maildir ESMTP\r\n502 5.5.1 BDAT without CHUNKING offered\r\n250 2.0.0 ok\r\n250 2.0.0 ok\r\n\
             502 5.5.1 BDAT without CHUNKING offered\r\n250 2.0.0 ok\r\n"
        );
        assert_eq!(dir.delivered(), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn a_421_at_end_closes_after_the_last_chunk() {
        let dir = Dir::new();
        let wire = [ENVELOPE, b"BDAT 2 LAST\r\nab"].concat();
        let mut s = sink(&dir, &[(Step::End, 421)]);
        s.write(&wire).unwrap();
        assert!(!s.is_closed());
        let replies = String::from_utf8(s.read()).unwrap();
        assert!(replies.ends_with("421 4.0.0 fault injected at end (--fault end=421)\r\n"));
        assert!(s.is_closed());
    }

    #[test]
    fn bdat_counts_parse_as_rfc_3030_writes_them() {
        assert_eq!(parse_bdat(b"0 LAST"), Some((0, true)));
        assert_eq!(parse_bdat(b"16384"), Some((16384, false)));
        for bad in [
            &b""[..],
            b"LAST",
            b" 5",
            b"5 ",
            b"-1",
            b"5 LAST ",
            b"1234567890123456789",
        ] {
            assert_eq!(parse_bdat(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
