//! What the session asks of its caller, one event at a time.
//!
//! What it does: [`Event`] is everything a driver must act on besides
//! moving bytes: a command line that is not the engine's, an identity for
//! SEND, a connection to open, TLS to start, a connection to close, a
//! mail's failure to report. [`Session::poll_event`] hands them out in
//! the order they must be acted on, each once, from the small fixed
//! `EventQueue` kept here.
//!
//! What it does not: move bytes (that is `handle_host`, `poll_host`,
//! `handle_server` and `poll_server`) or decide when something is due
//! (the session pushes; the connect request is the session's own state).
//!
//! Why it is built this way: one queue whose order is the engine's
//! replaces flags a driver had to poll in a rule written in prose (close
//! before connect, failure before the next mail). The queue holds at most
//! one entry of each kind, so it is three entries and cannot overflow: a
//! close drops a start-TLS not yet taken (no handshake on a connection
//! that is going), and a newer failure replaces one not yet taken, as a
//! log that keeps the last word would.
//!
//! [`Session::poll_event`]: crate::session::Session::poll_event

use crate::answers::SessionError;
use crate::index;
use crate::out::{put_decimal, Out};
use crate::sasl::{ErrorStatus, Mechanism};
use crate::smtp::{Fault, Step};

/// What the caller must do next; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A command line that is not the engine's (`AT+MIPCALL=1,"apn"`,
    /// `AT&K3`, ...), from its `AT`, without the CR. Answer it with
    /// [`Session::answer_command`](crate::session::Session::answer_command),
    /// final result code included (`b"\r\nERROR\r\n"` for a command the
    /// firmware does not know); no host byte is taken until then.
    Command(&'a [u8]),
    /// `AT+GTSMTPSEND` needs the mail's `Date:` and `Message-ID:`: call
    /// [`set_identity`](crate::session::Session::set_identity) (the
    /// caller's clock and entropy) or
    /// [`refuse_identity`](crate::session::Session::refuse_identity); no
    /// host byte is taken until then.
    Identity,
    /// Open a connection, then call `handle_connected` (for SMTPS: once
    /// TLS is up) or `handle_closed`.
    Connect(Connect<'a>),
    /// Start TLS on the connection now (STARTTLS), then call
    /// `handle_tls_established` or `handle_tls_failed`; never go on in
    /// plaintext.
    StartTls,
    /// Close the connection now (for TLS: close_notify first), then call
    /// nothing: the session is done with it.
    Close,
    /// The last mail failed: its code and reason (the server's words for a
    /// refusal; never a secret), for a log line or the caller's own
    /// report. Every failed mail gives one.
    MailFailed(MailFailure),
}

/// Where a connection should go, asked for once per mail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connect<'a> {
    /// Host name or IP literal, as `+GTSMTPLAND` gave it.
    pub host: &'a [u8],
    /// Port.
    pub port: u16,
    /// Start TLS before any SMTP (SMTPS).
    pub implicit_tls: bool,
}

/// Why a mail failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The caller could not open the connection (it knows why).
    NotConnected,
    /// The SMTP conversation ended without a reply code.
    Smtp(Fault),
    /// The mail's `<time>` ran out, at this step (`None`: before the
    /// connection was up).
    TimeLimit(Option<Step>),
    /// The message grew past the server's `SIZE` (`+GTSMTPSEND: 552`).
    TooLarge {
        /// The server's figure, in bytes.
        limit: u64,
    },
    /// The server refused the OAuth 2.0 token (`+GTSMTPSEND: <code>`, a
    /// 535 as a rule).
    TokenRefused {
        /// XOAUTH2 or OAUTHBEARER.
        mechanism: Mechanism,
        /// The `status` of the server's error challenge (empty if none).
        status: ErrorStatus,
        /// The refusal's reply code.
        code: u16,
        /// The start of the refusal's text.
        text: ServerText,
    },
    /// The server refused the mail with a reply (`+GTSMTPSEND: <code>`).
    Refused {
        /// Where in the conversation.
        step: Step,
        /// The reply code.
        code: u16,
        /// The start of the reply's (last line's) text.
        text: ServerText,
    },
    /// The host's data ended the mail (`ERROR` or `+CME ERROR`, no URC).
    Host(SessionError),
    /// A state the engine should never reach; the mail was ended at once.
    Internal,
}

impl Failure {
    /// The mail's `+GTSMTPSEND: <code>`: the server's reply code, or 0
    /// (0 too for a mail the host's data ended, which has no URC).
    pub const fn code(&self) -> u16 {
        match *self {
            Failure::Refused { code, .. } | Failure::TokenRefused { code, .. } => code,
            Failure::TooLarge { .. } => 552,
            _ => 0,
        }
    }
}

/// The start of a server's reply text, kept for a reason: printable ASCII
/// (any other byte shown as `?`), at most [`ServerText::MAX`] bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ServerText {
    bytes: [u8; ServerText::MAX],
    len: u8,
}

impl ServerText {
    /// The most kept.
    pub const MAX: usize = 96;

    /// The first [`ServerText::MAX`] bytes of `text`, made printable.
    pub fn new(text: &[u8]) -> Self {
        let mut kept = ServerText {
            bytes: [0; ServerText::MAX],
            len: 0,
        };
        for (dst, &b) in kept.bytes.iter_mut().zip(text) {
            *dst = if b == b' ' || b.is_ascii_graphic() {
                b
            } else {
                b'?'
            };
            kept.len += 1;
        }
        kept
    }

    /// The kept bytes.
    pub fn as_bytes(&self) -> &[u8] {
        index::get(&self.bytes, ..self.len as usize)
    }
}

impl core::fmt::Debug for ServerText {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        crate::out::display(f, |out| out.put(self.as_bytes()))
    }
}

/// A [`Failure`] with what its reason needs to say of the server. Its
/// `Display` is the reason, at most [`FAILURE_MAX`] bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MailFailure {
    /// Why.
    pub failure: Failure,
    /// The port of `+GTSMTPLAND`.
    pub port: u16,
    /// Whether the mail used SMTPS (mode 1).
    pub implicit_tls: bool,
}

/// The longest reason a [`MailFailure`] displays.
pub const FAILURE_MAX: usize = 200;

impl MailFailure {
    /// The reason as text (ASCII, at most [`FAILURE_MAX`] bytes), into
    /// `out`; `Display` writes the same.
    pub fn write_to(&self, out: &mut dyn Out) {
        let at_greeting = match self.failure {
            Failure::NotConnected => return out.put(b"could not connect to the server"),
            Failure::Smtp(fault) => {
                fault.write_to(out);
                matches!(
                    fault,
                    Fault::Closed(Step::Greeting) | Fault::TimedOut(Step::Greeting)
                )
            }
            Failure::TimeLimit(None) => {
                return out.put(b"the mail's time limit ran out before the connection was up")
            }
            Failure::TimeLimit(Some(step)) => {
                out.put(b"the mail's time limit ran out ");
                out.put(step.as_str().as_bytes());
                step == Step::Greeting
            }
            Failure::TooLarge { limit } => {
                out.put(b"the message is larger than the server takes (SIZE ");
                put_decimal(out, limit);
                return out.put(b")");
            }
            Failure::TokenRefused {
                mechanism,
                status,
                code,
                text,
            } => return token_refused(out, mechanism, &status, code, &text),
            Failure::Refused { step, code, text } => {
                out.put(b"the server refused the mail ");
                out.put(step.as_str().as_bytes());
                out.put(b": ");
                put_decimal(out, code.into());
                if !text.as_bytes().is_empty() {
                    out.put(b" ");
                    out.put(text.as_bytes());
                }
                // A reply code came: the server speaks SMTP in the clear,
                // so no SMTPS hint.
                return;
            }
            Failure::Host(error) => {
                out.put(b"the mail ended on this side: ");
                return out.put(error.as_str().as_bytes());
            }
            Failure::Internal => return out.put(b"internal error: the mail was ended"),
        };
        if at_greeting && self.port == 465 && !self.implicit_tls {
            out.put(
                b" (port 465 is SMTPS, TLS from the first byte: AT+GTSMTPLAND=465,\"<server>\",1)",
            );
        }
    }
}

/// "the server refused the XOAUTH2 token: 535 5.7.8 ... (status 401)".
fn token_refused(
    out: &mut dyn Out,
    mechanism: Mechanism,
    status: &ErrorStatus,
    code: u16,
    text: &ServerText,
) {
    out.put(b"the server refused the ");
    out.put(mechanism.name().as_bytes());
    out.put(b" token: ");
    put_decimal(out, code.into());
    if !text.as_bytes().is_empty() {
        out.put(b" ");
        out.put(text.as_bytes());
    }
    if !status.as_bytes().is_empty() {
        out.put(b" (status ");
        out.put(status.as_bytes());
        out.put(b")");
    }
}

impl core::fmt::Display for MailFailure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        crate::out::display(f, |out| self.write_to(out))
    }
}

/// An event the session pushes as it happens (the others are its state:
/// a connection due, a line waiting for the caller).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Queued {
    StartTls,
    Close,
    Failed(MailFailure),
}

impl Queued {
    pub(crate) fn event(self) -> Event<'static> {
        match self {
            Queued::StartTls => Event::StartTls,
            Queued::Close => Event::Close,
            Queued::Failed(failure) => Event::MailFailed(failure),
        }
    }
}

/// The pushed events in order, one of each kind at most: their kinds in
/// order, and the one failure beside them (the largest entry, so it is
/// stored once rather than in every slot).
#[derive(Clone, Debug, Default)]
pub(crate) struct EventQueue {
    order: [Option<Kind>; 3],
    failure: Option<MailFailure>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    StartTls,
    Close,
    Failed,
}

impl Queued {
    fn kind(self) -> Kind {
        match self {
            Queued::StartTls => Kind::StartTls,
            Queued::Close => Kind::Close,
            Queued::Failed(_) => Kind::Failed,
        }
    }
}

impl EventQueue {
    pub(crate) const EMPTY: EventQueue = EventQueue {
        order: [None; 3],
        failure: None,
    };

    pub(crate) fn push(&mut self, event: Queued) {
        let kind = event.kind();
        if kind == Kind::Close {
            self.remove(Kind::StartTls);
        }
        if let Queued::Failed(failure) = event {
            self.failure = Some(failure);
        }
        let slot = self
            .order
            .iter_mut()
            .find(|item| item.is_none_or(|item| item == kind));
        // One entry per kind in as many slots: there is always one.
        if let Some(slot) = slot {
            *slot = Some(kind);
        }
    }

    pub(crate) fn front(&self) -> Option<Queued> {
        self.queued(self.order[0]?)
    }

    pub(crate) fn pop(&mut self) -> Option<Queued> {
        let front = self.front();
        self.remove_at(0);
        front
    }

    /// The last mail failure, taken or not (`AT+GTSMTPERR?`).
    pub(crate) fn last_failure(&self) -> Option<MailFailure> {
        self.failure
    }

    /// A new mail starts: the last failure is forgotten once the caller
    /// has taken it.
    pub(crate) fn forget_failure(&mut self) {
        // Not `contains`: for a byte-sized element it links core's memchr
        // (400 bytes of firmware flash) for three entries.
        #[allow(clippy::manual_contains)]
        let queued = self.order.iter().any(|&k| k == Some(Kind::Failed));
        if !queued {
            self.failure = None;
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.order[0].is_none()
    }

    fn queued(&self, kind: Kind) -> Option<Queued> {
        Some(match kind {
            Kind::StartTls => Queued::StartTls,
            Kind::Close => Queued::Close,
            Kind::Failed => Queued::Failed(self.failure?),
        })
    }

    /// Whether an entry of `kind`'s kind is queued.
    #[cfg(test)]
    fn holds(&self, kind: Queued) -> bool {
        self.order.contains(&Some(kind.kind()))
    }

    fn remove(&mut self, kind: Kind) {
        if let Some(i) = self.order.iter().position(|&item| item == Some(kind)) {
            self.remove_at(i);
        }
    }

    /// Takes entry `i` out, the later ones moving up. By hand: the
    /// slice methods that would do it (`rotate_left`, `copy_within`,
    /// `contains` above) link `memmove` and `memchr`, 2 KB of firmware
    /// flash for a three-entry array.
    fn remove_at(&mut self, i: usize) {
        for at in i..self.order.len() - 1 {
            self.order[at] = self.order[at + 1];
        }
        if let Some(last) = self.order.last_mut() {
            *last = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAILED: Queued = Queued::Failed(MailFailure {
        failure: Failure::NotConnected,
        port: 25,
        implicit_tls: false,
    });

    fn drain(q: &mut EventQueue) -> std::vec::Vec<Queued> {
        core::iter::from_fn(|| q.pop()).collect()
    }

    /// The longest reason of each kind fits [`FAILURE_MAX`] (the C ABI's
    /// and `AT+GTSMTPERR?`'s buffers are sized by it).
    #[test]
    fn every_reason_fits_failure_max() {
        use crate::sasl::ErrorStatus;
        let text = ServerText::new(&[b'x'; 200]);
        let status = ErrorStatus::from_challenge(
            b"eyJzdGF0dXMiOiJ4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eCJ9",
        );
        let mut every_name = crate::reply::AuthOffer::default();
        for name in [
            &b"PLAIN"[..],
            b"LOGIN",
            b"XOAUTH2",
            b"OAUTHBEARER",
            b"CRAM-MD5",
            b"DIGEST-MD5",
            b"SCRAM-SHA-1",
            b"SCRAM-SHA-256",
            b"NTLM",
            b"GSSAPI",
            b"X-OTHER",
        ] {
            every_name.insert(name);
        }
        let failures = [
            Failure::Refused {
                step: Step::EndOfData,
                code: 554,
                text,
            },
            Failure::Refused {
                step: Step::Greeting,
                code: 554,
                text,
            },
            Failure::TokenRefused {
                mechanism: Mechanism::OAuthBearer,
                status,
                code: 535,
                text,
            },
            Failure::Smtp(Fault::TimedOut(Step::Greeting)),
            Failure::Smtp(Fault::NoCommonMechanism(every_name)),
            Failure::Host(crate::answers::SessionError::LineTooLong),
        ];
        for failure in failures {
            for (port, implicit_tls) in [(465, false), (25, false)] {
                let reason = std::format!(
                    "{}",
                    MailFailure {
                        failure,
                        port,
                        implicit_tls
                    }
                );
                assert!(reason.len() <= FAILURE_MAX, "{} {reason}", reason.len());
            }
        }
    }

    #[test]
    fn events_come_in_the_order_pushed_one_of_each_kind() {
        let later = Queued::Failed(MailFailure {
            port: 587,
            ..match FAILED {
                Queued::Failed(f) => f,
                _ => unreachable!(),
            }
        });
        let table: &[(&[Queued], &[Queued])] = &[
            (&[], &[]),
            (&[Queued::StartTls], &[Queued::StartTls]),
            (&[FAILED, Queued::Close], &[FAILED, Queued::Close]),
            (&[Queued::Close, FAILED], &[Queued::Close, FAILED]),
            // A newer failure keeps the older one's place.
            (&[FAILED, Queued::Close, later], &[later, Queued::Close]),
            // A close makes a handshake not yet started pointless.
            (&[Queued::StartTls, Queued::Close], &[Queued::Close]),
            (
                &[Queued::StartTls, FAILED, Queued::Close],
                &[FAILED, Queued::Close],
            ),
            (
                &[Queued::Close, Queued::StartTls],
                &[Queued::Close, Queued::StartTls],
            ),
            (&[Queued::Close, Queued::Close], &[Queued::Close]),
        ];
        for &(pushed, expected) in table {
            let mut q = EventQueue::EMPTY;
            for &event in pushed {
                q.push(event);
            }
            assert_eq!(q.front(), expected.first().copied(), "{pushed:?}");
            assert_eq!(drain(&mut q), expected, "{pushed:?}");
            assert!(q.is_empty());
        }
    }

    #[test]
    fn any_push_sequence_keeps_one_of_each_kind_and_never_loses_the_last() {
        let kinds = [Queued::StartTls, Queued::Close, FAILED];
        // Every sequence of up to 6 pushes.
        for len in 0..=6u32 {
            for code in 0..3u32.pow(len) {
                let mut q = EventQueue::EMPTY;
                let mut c = code;
                let mut last = None;
                for _ in 0..len {
                    let event = kinds[(c % 3) as usize];
                    c /= 3;
                    q.push(event);
                    last = Some(event);
                }
                if let Some(last) = last {
                    assert!(q.holds(last));
                }
                let out = drain(&mut q);
                for kind in kinds {
                    assert!(out.iter().filter(|e| e.kind() == kind.kind()).count() <= 1);
                }
            }
        }
    }
}
