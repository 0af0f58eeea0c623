//! What the engine itself says to the host: `OK`, `ERROR` or
//! `+CME ERROR: <text>`, and the `+GTSMTPSEND` URCs.
//!
//! What it does: [`SessionError`] names every reason a command line is
//! answered with an error, with the text `AT+CMEE=2` shows; `Answers`
//! renders results into the [`HostQueue`] as `AT+CMEE` says, and frames
//! every answer as V.250's `V` and `Q` say (`Reframe`), so the serial
//! line (`session`), the mail transaction (`mail`) and the caller's own
//! answers speak in one voice and one order.
//!
//! What it does not: decide when there is room. Lines run only with
//! [`ANSWER_ROOM`](crate::host_queue::ANSWER_ROOM) plus
//! [`URC_ROOM`](crate::host_queue::URC_ROOM) free, which holds any answer
//! and what can follow it before the next line (see `host_queue`).
//!
//! Why it is built this way: the error level (`AT+CMEE`) and the result
//! code format (`ATV`, `ATQ`) are the state every answer depends on;
//! keeping them beside the queue means no caller renders an answer
//! without them. Every answer is written once, in verbose form
//! (`\r\n<text>\r\n` frames), and reframed on its way into the queue
//! when `ATV0` or `ATQ1` is in force: one small state machine instead of
//! a second form of every answer.

use crate::at::AtError;
use crate::host_queue::HostQueue;
use crate::out::{put_decimal, Out};
use core::mem::MaybeUninit;
use core::ptr::addr_of_mut;

/// Why the session answered `ERROR` (the text of `+CME ERROR:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionError {
    /// The line itself was refused.
    Line(AtError),
    /// The command line was longer than [`LINE_MAX`](crate::line::LINE_MAX).
    LineTooLong,
    /// A 21st recipient.
    TooManyRecipients,
    /// Deleting a recipient that is not there.
    NoSuchRecipient,
    /// Configuration is frozen while a mail is in progress.
    MailInProgress,
    /// SEND needs LAND, ID and a recipient.
    Incomplete,
    /// The GTSMTPID user is not a mail address, so it cannot be the sender.
    UserNotAddress,
    /// SEND while the caller says the network is down.
    NoNetwork,
    /// The command needs a connected mail (`+GTSMTPSEND: 2`) in this state.
    WrongState,
    /// The body may be sent once, before any attachment.
    BodyNotAllowed,
    /// More than 20 attachments.
    TooManyAttachments,
    /// Data already on the wire cannot be taken back.
    CannotDelete,
    /// The attachment name is not valid in the session charset.
    BadFileName,
    /// Data mode ran past `<time>`; the mail was aborted.
    DataTimeout,
    /// More than 20 MiB; the mail was aborted.
    DataTooLarge,
    /// The body was not valid in the session charset; the mail was aborted.
    InvalidBody,
    /// A part sent as binary held the MIME boundary delimiter; the mail
    /// was aborted before its end (nothing delivered).
    BoundaryInPart,
    /// The mail failed while data was streaming (see `+GTSMTPSEND`).
    MailAborted,
    /// The caller gave SEND no Date and Message-ID
    /// ([`Session::refuse_identity`](crate::session::Session::refuse_identity)).
    NoIdentity,
    /// `AT+GTSMTPTOKEN` without token storage from the firmware.
    NoTokenStorage,
    /// A token longer than the token storage.
    TokenTooLong,
    /// The token's bytes stopped coming before its length was reached.
    TokenTimeout,
    /// The token holds a byte no bearer token has (a control, a space,
    /// non-ASCII).
    BadToken,
    /// SEND with `AT+GTSMTPAUTH=1` or `2` and no token.
    NoToken,
    /// The caller replaced or took back the token storage while a token
    /// was being read.
    TokenStorageGone,
    /// The caller replaced or took back the chunk storage while a mail
    /// was sending `BDAT` chunks from it; the mail was aborted.
    ChunkStorageGone,
    /// `AT+GTSMTPCLR` while the end of data may be on the wire.
    Delivering,
}

impl SessionError {
    /// The text of `+CME ERROR: <text>`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SessionError::Line(e) => e.as_str(),
            SessionError::LineTooLong => "command line too long (300 bytes at most)",
            SessionError::TooManyRecipients => "too many recipients",
            SessionError::NoSuchRecipient => "no such recipient",
            SessionError::MailInProgress => "mail in progress",
            SessionError::Incomplete => "server, login and a recipient are needed",
            SessionError::UserNotAddress => "user name is not a mail address",
            SessionError::NoNetwork => "network not up (AT+MIPCALL)",
            SessionError::WrongState => "not allowed now",
            SessionError::BodyNotAllowed => "body only once, before attachments",
            SessionError::TooManyAttachments => "too many attachments",
            SessionError::CannotDelete => "data already sent cannot be deleted",
            SessionError::BadFileName => "file name not valid in the charset",
            SessionError::DataTimeout => "data mode time limit exceeded",
            SessionError::DataTooLarge => "more than 20 MiB",
            SessionError::InvalidBody => "body not valid in the charset",
            SessionError::BoundaryInPart => "data holds the MIME boundary",
            SessionError::MailAborted => "mail aborted",
            SessionError::NoIdentity => "no Date or Message-ID for the mail",
            SessionError::NoTokenStorage => "no token storage (the firmware gives none)",
            SessionError::TokenTooLong => "token longer than the token storage",
            SessionError::TokenTimeout => "token incomplete: no byte for 20 s",
            SessionError::BadToken => "token bytes must be printable ASCII",
            SessionError::NoToken => "no token (AT+GTSMTPTOKEN)",
            SessionError::TokenStorageGone => "token storage taken back during the read",
            SessionError::ChunkStorageGone => "chunk storage taken back",
            SessionError::Delivering => "mail being delivered: wait for +GTSMTPSEND",
        }
    }
}

/// The host queue and the error level and format its answers are
/// rendered at.
#[derive(Debug)]
pub(crate) struct Answers {
    pub(crate) queue: HostQueue,
    /// `AT+CMEE`: 0 `ERROR`, 1 and 2 `+CME ERROR: <text>`.
    pub(crate) cmee: u8,
    /// `ATV0`: numeric result codes (`0`, `4`) and information text
    /// without its leading CR LF.
    pub(crate) numeric: bool,
    /// `ATQ1`: no result codes (final or unsolicited); information text
    /// is still sent.
    pub(crate) quiet: bool,
}

impl Answers {
    /// An empty queue at level 0, in place (the queue is 2.3 KB).
    #[allow(unsafe_code)]
    pub(crate) fn init_in(slot: &mut MaybeUninit<Answers>) {
        // Stops compiling when a field is added, so none is left unwritten.
        let _ = |a: Answers| {
            let Answers {
                queue: _,
                cmee: _,
                numeric: _,
                quiet: _,
            } = a;
        };
        let p = slot.as_mut_ptr();
        // SAFETY: as in `Session::init_in`: each field through its own place.
        unsafe {
            HostQueue::init_in(&mut *addr_of_mut!((*p).queue).cast());
            addr_of_mut!((*p).cmee).write(0);
            addr_of_mut!((*p).numeric).write(false);
            addr_of_mut!((*p).quiet).write(false);
        }
    }

    /// Renders `piece`, an answer in verbose form, into the queue in the
    /// format in force.
    pub(crate) fn say(&mut self, piece: impl Fn(&mut dyn Out)) {
        self.say_framed(&piece);
    }

    /// [`say`](Self::say) through a trait object: one copy of the queue
    /// and reframing code, not one per answer.
    #[inline(never)]
    fn say_framed(&mut self, piece: &dyn Fn(&mut dyn Out)) {
        let (numeric, quiet) = (self.numeric, self.quiet);
        let queued = self.queue.say(|out| {
            piece(&mut Reframe {
                out,
                numeric,
                quiet,
                between: true,
            })
        });
        // Lines run only with ANSWER_ROOM + URC_ROOM free, which holds
        // any answer and what can follow it before the next line. Checked
        // in release builds too: a line left without its final result
        // would hang the host, which is worse than the caller's panic
        // hook.
        assert!(queued, "host queue full");
    }

    pub(crate) fn ok(&mut self) {
        self.say(|out| out.put(OK));
    }

    pub(crate) fn error(&mut self, e: SessionError) {
        if self.quiet {
            return;
        }
        let (verbose, numeric) = (self.cmee > 0, self.numeric);
        let queued = self.queue.say(|out| match (verbose, numeric) {
            (true, _) => {
                if !numeric {
                    out.put(b"\r\n");
                }
                out.put(b"+CME ERROR: ");
                out.put(e.as_str().as_bytes());
                out.put(if numeric { &b"\r"[..] } else { b"\r\n" });
            }
            (false, true) => out.put(b"4\r"),
            (false, false) => out.put(b"\r\nERROR\r\n"),
        });
        // As in `say_framed`: never dropped, in any build.
        assert!(queued, "host queue full");
    }

    /// `+GTSMTPSEND: <code>`, an unsolicited result code: under `ATV0`
    /// framed as one (no header, a CR), under `ATQ1` not sent.
    pub(crate) fn urc(&mut self, code: u16) {
        if self.quiet {
            return;
        }
        let numeric = self.numeric;
        let queued = self.queue.say(|out| {
            if !numeric {
                out.put(b"\r\n");
            }
            out.put(b"+GTSMTPSEND: ");
            put_decimal(out, code.into());
            out.put(if numeric { &b"\r"[..] } else { b"\r\n" });
        });
        // As in `say_framed`: never dropped, in any build.
        assert!(queued, "host queue full");
    }
}

/// The final result code of the engine's answers, as they write it: the
/// last bytes of one `put`, which is how [`Reframe`] knows it.
const OK: &[u8] = b"\r\nOK\r\n";

/// An [`Out`] that takes an answer of the engine in verbose form
/// (`\r\n<text>\r\n` frames ending in [`OK`], or the `\r\n> ` prompt)
/// and writes it as V.250 frames it under `ATV0` (information text
/// `<text>\r\n`, `0\r` for `OK`) and `ATQ1` (no `OK`). Errors and URCs
/// do not come through it: they are result codes throughout, rendered
/// in the format at once.
struct Reframe<'o> {
    out: &'o mut dyn Out,
    numeric: bool,
    quiet: bool,
    /// Between frames: a CR or LF here is a header's.
    between: bool,
}

impl Out for Reframe<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let (text, ok) = match bytes.strip_suffix(OK) {
            Some(text) => (text, true),
            None => (bytes, false),
        };
        for &b in text {
            if !(self.numeric && self.between && (b == b'\r' || b == b'\n')) {
                // Text holds no line end but its trailer's.
                self.between = b == b'\n';
                self.out.put(&[b]);
            }
        }
        if ok && !self.quiet {
            self.out.put(if self.numeric { b"0\r" } else { OK });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn answers(numeric: bool, quiet: bool) -> Answers {
        Answers {
            queue: HostQueue::new(),
            cmee: 0,
            numeric,
            quiet,
        }
    }

    fn drain(a: &mut Answers) -> Vec<u8> {
        let mut got = std::vec![0u8; 4096];
        let n = a.queue.poll(&mut got);
        got.truncate(n);
        got
    }

    /// Verbose answers as the engine writes them (each `put` as the
    /// engine makes it: the final OK is the end of one), and what `ATV0`,
    /// `ATQ1` and both make of them.
    const CASES: &[(&[&[u8]], &[u8], &[u8], &[u8])] = &[
        // (puts, V0, Q1, V0 Q1)
        (&[b"\r\nOK\r\n"], b"0\r", b"", b""),
        (
            &[b"\r\n+CMEE: ", b"2", b"\r\n\r\nOK\r\n"],
            b"+CMEE: 2\r\n0\r",
            b"\r\n+CMEE: 2\r\n",
            b"+CMEE: 2\r\n",
        ),
        (
            &[
                b"\r\n+GTSMTPDST: 1,\"a@b\"\r\n",
                b"\r\n+GTSMTPDST: 2,\"OK\"\r\n",
                b"\r\nOK\r\n",
            ],
            b"+GTSMTPDST: 1,\"a@b\"\r\n+GTSMTPDST: 2,\"OK\"\r\n0\r",
            b"\r\n+GTSMTPDST: 1,\"a@b\"\r\n\r\n+GTSMTPDST: 2,\"OK\"\r\n",
            b"+GTSMTPDST: 1,\"a@b\"\r\n+GTSMTPDST: 2,\"OK\"\r\n",
        ),
        // The data-mode prompt has no trailer.
        (&[b"\r\n> "], b"> ", b"\r\n> ", b"> "),
        (
            &[b"\r\n+", b"GTSMTPDATA", b": ", b"12", b"\r\n\r\nOK\r\n"],
            b"+GTSMTPDATA: 12\r\n0\r",
            b"\r\n+GTSMTPDATA: 12\r\n",
            b"+GTSMTPDATA: 12\r\n",
        ),
    ];

    #[test]
    fn v0_and_q1_reframe_the_engines_answers() {
        for &(puts, v0, q1, both) in CASES {
            let verbose: Vec<u8> = puts.concat();
            for (numeric, quiet, want) in [
                (false, false, &verbose[..]),
                (true, false, v0),
                (false, true, q1),
                (true, true, both),
            ] {
                let mut a = answers(numeric, quiet);
                a.say(|out| puts.iter().for_each(|p| out.put(p)));
                assert_eq!(
                    drain(&mut a),
                    want,
                    "{verbose:?} V{} Q{}",
                    !numeric as u8,
                    quiet as u8
                );
            }
        }
    }

    #[test]
    fn urcs_and_errors_are_result_codes() {
        for (numeric, quiet, want) in [
            (
                false,
                false,
                &b"\r\n+GTSMTPSEND: 550\r\n\r\nERROR\r\n\r\n+CME ERROR: mail in progress\r\n"[..],
            ),
            (
                true,
                false,
                b"+GTSMTPSEND: 550\r4\r+CME ERROR: mail in progress\r",
            ),
            (false, true, b""),
            (true, true, b""),
        ] {
            let mut a = answers(numeric, quiet);
            a.urc(550);
            a.error(SessionError::MailInProgress);
            a.cmee = 2;
            a.error(SessionError::MailInProgress);
            assert_eq!(drain(&mut a), want);
        }
    }

    /// "One final result per line" holds in every build: an answer that
    /// cannot be queued stops the engine rather than vanish.
    #[test]
    #[should_panic(expected = "host queue full")]
    #[allow(unsafe_code)]
    fn an_answer_that_does_not_fit_is_never_dropped() {
        let mut slot = MaybeUninit::uninit();
        Answers::init_in(&mut slot);
        // SAFETY: `init_in` initialised it.
        let answers = unsafe { slot.assume_init_mut() };
        loop {
            answers.say(|out| out.put(&[b'x'; 1000]));
        }
    }
}
