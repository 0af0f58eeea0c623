//! What the engine itself says to the host: `OK`, `ERROR` or
//! `+CME ERROR: <text>`, and the `+GTSMTPSEND` URCs.
//!
//! What it does: [`SessionError`] names every reason a command line is
//! answered with an error, with the text `AT+CMEE=2` shows; `Answers`
//! renders results into the [`HostQueue`] as `AT+CMEE` says, so the
//! serial line (`session`) and the mail transaction (`mail`) speak in
//! one voice and one order.
//!
//! What it does not: decide when there is room. Lines run only with
//! [`ANSWER_ROOM`](crate::host_queue::ANSWER_ROOM) plus
//! [`URC_ROOM`](crate::host_queue::URC_ROOM) free, which holds any answer
//! and what can follow it before the next line (see `host_queue`).
//!
//! Why it is built this way: the error level (`AT+CMEE`) is the one piece
//! of state every answer depends on; keeping it beside the queue means no
//! caller renders an error without it.

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
            SessionError::MailAborted => "mail aborted",
            SessionError::NoIdentity => "no Date or Message-ID for the mail",
            SessionError::NoTokenStorage => "no token storage (the firmware gives none)",
            SessionError::TokenTooLong => "token longer than the token storage",
            SessionError::TokenTimeout => "token incomplete: no byte for 20 s",
            SessionError::BadToken => "token bytes must be printable ASCII",
            SessionError::NoToken => "no token (AT+GTSMTPTOKEN)",
            SessionError::TokenStorageGone => "token storage taken back during the read",
            SessionError::Delivering => "mail being delivered: wait for +GTSMTPSEND",
        }
    }
}

/// The host queue and the error level its answers are rendered at.
#[derive(Debug)]
pub(crate) struct Answers {
    pub(crate) queue: HostQueue,
    /// `AT+CMEE`: 0 `ERROR`, 1 and 2 `+CME ERROR: <text>`.
    pub(crate) cmee: u8,
}

impl Answers {
    /// An empty queue at level 0, in place (the queue is 2.3 KB).
    #[allow(unsafe_code)]
    pub(crate) fn init_in(slot: &mut MaybeUninit<Answers>) {
        // Stops compiling when a field is added, so none is left unwritten.
        let _ = |a: Answers| {
            let Answers { queue: _, cmee: _ } = a;
        };
        let p = slot.as_mut_ptr();
        // SAFETY: as in `Session::init_in`: each field through its own place.
        unsafe {
            HostQueue::init_in(&mut *addr_of_mut!((*p).queue).cast());
            addr_of_mut!((*p).cmee).write(0);
        }
    }

    /// Renders `piece` into the queue.
    pub(crate) fn say(&mut self, piece: impl Fn(&mut dyn Out)) {
        let queued = self.queue.say(piece);
        // Lines run only with ANSWER_ROOM + URC_ROOM free, which holds
        // any answer and what can follow it before the next line. Checked
        // in release builds too: a line left without its final result
        // would hang the host, which is worse than the caller's panic
        // hook.
        assert!(queued, "host queue full");
    }

    pub(crate) fn ok(&mut self) {
        self.say(|out| out.put(b"\r\nOK\r\n"));
    }

    pub(crate) fn error(&mut self, e: SessionError) {
        let verbose = self.cmee > 0;
        self.say(|out| {
            if verbose {
                out.put(b"\r\n+CME ERROR: ");
                out.put(e.as_str().as_bytes());
                out.put(b"\r\n");
            } else {
                out.put(b"\r\nERROR\r\n");
            }
        });
    }

    /// `+GTSMTPSEND: <code>`.
    pub(crate) fn urc(&mut self, code: u16) {
        self.say(|out| {
            out.put(b"\r\n+GTSMTPSEND: ");
            put_decimal(out, code.into());
            out.put(b"\r\n");
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
