//! `atmail encode`: one message, composed offline.
//!
//! Everything that can be checked before the first byte goes out is checked
//! first (addresses, counts, sizes, charsets, the body's bytes), so an error
//! leaves no partial output; with `-o`, the message is written to a
//! temporary file beside the target and renamed into place only when whole.
//! Files are read in fixed-size chunks, so memory does not grow with them.

use crate::transcode;
use atmail_core::charset::{Charset, Validator};
use atmail_core::framer::MAX_PAYLOAD;
use atmail_core::header::{Address, Text, Token};
use atmail_core::message::{
    Boundary, MessageError, MessageHead, MessageId, MessageWriter, Recipient, RecipientKind,
    MAX_ATTACHMENTS, MAX_RECIPIENTS,
};
use atmail_core::CoderResult;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

const CHUNK: usize = 64 * 1024;

/// Arguments of `atmail encode`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Sender address (From:).
    #[arg(long, value_name = "ADDR")]
    from: String,
    /// Recipient in To: (repeatable).
    #[arg(long, value_name = "ADDR")]
    to: Vec<String>,
    /// Recipient in Cc: (repeatable).
    #[arg(long, value_name = "ADDR")]
    cc: Vec<String>,
    /// Recipient in the envelope only, never in a header (repeatable).
    #[arg(long, value_name = "ADDR")]
    bcc: Vec<String>,
    /// Subject, UTF-8; transcoded into --charset.
    #[arg(long, value_name = "TEXT")]
    subject: Option<String>,
    /// Charset of the subject, names and body: ascii, utf-8, gb2312, big5.
    #[arg(long, default_value = "utf-8", value_parser = transcode::parse_charset)]
    charset: Charset,
    /// Body file, sent as its bytes; must be valid in --charset.
    #[arg(long, value_name = "FILE")]
    body: Option<PathBuf>,
    /// Attachment, optionally with the name the mail gives it (repeatable).
    #[arg(long, value_name = "FILE[=NAME]")]
    attach: Vec<String>,
    /// Date: header (RFC 5322 date-time); default: now.
    #[arg(long, value_name = "RFC5322-DATE")]
    date: Option<String>,
    /// Message-ID (with or without <>); default: random. Also seeds the boundary.
    #[arg(long, value_name = "ID")]
    message_id: Option<String>,
    /// Output file; default: stdout.
    #[arg(short, value_name = "OUT")]
    o: Option<PathBuf>,
}

/// An attachment: where its bytes are and the name the mail gives it.
struct Attachment {
    path: PathBuf,
    name: Vec<u8>,
}

/// Runs `atmail encode`.
pub fn run(args: Args) -> Result<(), String> {
    let charset = args.charset;
    let from =
        Address::new(args.from.as_bytes()).map_err(|e| format!("--from {:?}: {e}", args.from))?;
    let lists = [
        (RecipientKind::To, &args.to),
        (RecipientKind::Cc, &args.cc),
        (RecipientKind::Bcc, &args.bcc),
    ];
    let mut recipients = Vec::new();
    for (kind, list) in lists {
        for addr in list.iter() {
            let address =
                Address::new(addr.as_bytes()).map_err(|e| format!("recipient {addr:?}: {e}"))?;
            recipients.push(Recipient { kind, address });
        }
    }
    if recipients.is_empty() || recipients.len() > MAX_RECIPIENTS {
        return Err(format!(
            "{} recipients given; a mail needs 1 to {MAX_RECIPIENTS}",
            recipients.len()
        ));
    }
    let subject_bytes = args
        .subject
        .as_deref()
        .map(|s| transcode::to_charset(s, charset, "--subject"))
        .transpose()?;
    let subject = match &subject_bytes {
        Some(bytes) if !bytes.is_empty() => {
            Some(Text::subject(charset, bytes).map_err(|e| format!("--subject: {e}"))?)
        }
        _ => None,
    };
    let attachments = attachments(&args.attach, charset)?;
    let names = attachments
        .iter()
        .map(|a| {
            Text::file_name(charset, &a.name)
                .map_err(|e| format!("attachment name of '{}': {e}", a.path.display()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(body) = &args.body {
        check_body(body, charset)?;
    }
    let date_text = match &args.date {
        Some(d) => d.clone(),
        None => now_rfc5322()?,
    };
    let date = Token::new(date_text.as_bytes(), true).map_err(|e| format!("--date: {e}"))?;
    let id_text = message_id(args.message_id.as_deref(), from.domain());
    let message_id =
        MessageId::new(id_text.as_bytes()).map_err(|e| format!("--message-id {id_text:?}: {e}"))?;
    let head = MessageHead {
        from,
        recipients: &recipients,
        subject,
        date,
        message_id,
    };
    let parts = Parts {
        head,
        charset,
        body: args.body.as_deref(),
        attachments: &attachments,
        names: &names,
    };
    match &args.o {
        Some(path) => write_atomically(path, |out| parts.write(out)),
        None => {
            let stdout = io::stdout();
            let mut out = io::BufWriter::with_capacity(CHUNK, stdout.lock());
            parts.write(&mut out)?;
            out.flush().map_err(|e| format!("writing stdout: {e}"))
        }
    }
}

/// Parses `FILE[=NAME]`s, checks counts and sizes, and transcodes names.
fn attachments(specs: &[String], charset: Charset) -> Result<Vec<Attachment>, String> {
    if specs.len() > MAX_ATTACHMENTS {
        return Err(format!(
            "{} attachments given; at most {MAX_ATTACHMENTS}",
            specs.len()
        ));
    }
    let mut total = 0u64;
    let mut out = Vec::new();
    for spec in specs {
        let (path, name) = match spec.split_once('=') {
            Some((path, name)) => (PathBuf::from(path), name.to_owned()),
            None => {
                let path = PathBuf::from(spec);
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (path, name)
            }
        };
        total += file_len(&path)?;
        if total > MAX_PAYLOAD {
            return Err(format!(
                "attachments total {total} bytes; at most {MAX_PAYLOAD} (20 MiB)"
            ));
        }
        let name = transcode::to_charset(
            &name,
            charset,
            &format!("attachment name of '{}'", path.display()),
        )?;
        out.push(Attachment { path, name });
    }
    Ok(out)
}

fn file_len(path: &Path) -> Result<u64, String> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The body must fit the cap and be valid text in the charset: checked in
/// a first pass, so a bad byte is reported before any output.
fn check_body(path: &Path, charset: Charset) -> Result<(), String> {
    let len = file_len(path)?;
    if len > MAX_PAYLOAD {
        return Err(format!(
            "body {} is {len} bytes; at most {MAX_PAYLOAD} (20 MiB)",
            path.display()
        ));
    }
    let mut validator = Validator::new(charset);
    let mut file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut buf = vec![0u8; CHUNK];
    let mut seen = 0u64;
    loop {
        let n = read_some(&mut file, &mut buf, path)?;
        validator.feed(&buf[..n], n == 0).map_err(|e| {
            format!(
                "body {}: bytes not valid {} at offset {}",
                path.display(),
                transcode::name(charset),
                e.offset
            )
        })?;
        seen += n as u64;
        if n == 0 {
            return Ok(());
        }
        if seen > MAX_PAYLOAD {
            return Err(format!(
                "body {} grew past {MAX_PAYLOAD} bytes while read",
                path.display()
            ));
        }
    }
}

fn read_some(file: &mut File, buf: &mut [u8], path: &Path) -> Result<usize, String> {
    loop {
        match file.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        }
    }
}

struct Parts<'a> {
    head: MessageHead<'a>,
    charset: Charset,
    body: Option<&'a Path>,
    attachments: &'a [Attachment],
    names: &'a [Text<'a>],
}

impl Parts<'_> {
    fn write(&self, out: &mut dyn Write) -> Result<(), String> {
        let seed = self.head.message_id.as_bytes();
        let mut writer = MessageWriter::new(self.charset, Boundary::from_seed(seed));
        let mut dst = vec![0u8; 2 * CHUNK];
        loop {
            let (r, n) = writer
                .head(&self.head, &mut dst)
                .map_err(|e| e.to_string())?;
            emit(out, &dst[..n])?;
            if r == CoderResult::InputEmpty {
                break;
            }
        }
        if let Some(body) = self.body {
            stream(body, out, &mut dst, |src, dst, last| {
                writer.body(src, dst, last)
            })?;
        }
        for (file, name) in self.attachments.iter().zip(self.names) {
            stream(&file.path, out, &mut dst, |src, dst, last| {
                writer.attachment(name, src, dst, last)
            })?;
        }
        loop {
            let (r, n) = writer.finish(&mut dst).map_err(|e| e.to_string())?;
            emit(out, &dst[..n])?;
            if r == CoderResult::InputEmpty {
                return Ok(());
            }
        }
    }
}

/// Pumps a file through one part of the writer, chunk by chunk.
fn stream(
    path: &Path,
    out: &mut dyn Write,
    dst: &mut [u8],
    mut step: impl FnMut(&[u8], &mut [u8], bool) -> Result<(CoderResult, usize, usize), MessageError>,
) -> Result<(), String> {
    let mut file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = read_some(&mut file, &mut buf, path)?;
        let last = n == 0;
        let mut src = &buf[..n];
        loop {
            let (r, read, written) =
                step(src, dst, last).map_err(|e| format!("{}: {e}", path.display()))?;
            emit(out, &dst[..written])?;
            src = &src[read..];
            if r == CoderResult::InputEmpty {
                break;
            }
        }
        if last {
            return Ok(());
        }
    }
}

fn emit(out: &mut dyn Write, bytes: &[u8]) -> Result<(), String> {
    out.write_all(bytes)
        .map_err(|e| format!("writing output: {e}"))
}

/// Writes through a temporary file beside `path`, renamed into place only
/// when `write` succeeds; removed otherwise.
fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<(), String>,
) -> Result<(), String> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .ok_or_else(|| format!("-o {}: not a file name", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.atmail-{}.tmp",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let file = File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        let mut out = io::BufWriter::with_capacity(CHUNK, file);
        write(&mut out)?;
        let file = out
            .into_inner()
            .map_err(|e| format!("writing {}: {}", path.display(), e.error()))?;
        file.sync_all()
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn now_rfc5322() -> Result<String, String> {
    let now = time::OffsetDateTime::now_utc();
    now.format(&time::format_description::well_known::Rfc2822)
        .map_err(|e| format!("formatting the date: {e}"))
}

/// The given Message-ID in angle brackets, or a random one at `domain`.
fn message_id(given: Option<&str>, domain: &[u8]) -> String {
    match given {
        Some(id) if id.starts_with('<') => id.to_owned(),
        Some(id) => format!("<{id}>"),
        None => {
            use std::hash::{BuildHasher, Hasher};
            // RandomState is seeded from the OS: enough entropy for a unique id.
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            format!(
                "<{:016x}.atmail@{}>",
                hasher.finish(),
                String::from_utf8_lossy(domain)
            )
        }
    }
}
