//! atmail-core: the e-mail engine behind the G510 `AT+GTSMTP*` commands,
//! as state machines the caller drives; it never does I/O or reads a clock.
//!
//! Every piece works over caller-provided buffers and allocates nothing:
//!
//! - [`mime_base64`]: streaming base64 in 76-column MIME lines.
//! - [`framer`]: serial data mode: payload slices, `+++` escape with guard
//!   times, idle and time limits, the 20 MiB cap.
//! - [`charset`]: the session charsets (US-ASCII, UTF-8, GB2312, BIG5).
//! - [`line_breaks`]: the text body's line breaks made CRLF, streaming.
//! - [`header`]: RFC 2047 subjects, RFC 2231 file names, validated addresses.
//! - [`message`]: the RFC 5322 / `multipart/mixed` message, written
//!   incrementally.
//! - [`line`](mod@line): the host's command lines, edited as V.250 says.
//! - [`host_queue`]: the ordered bytes to the host, fixed when said.
//! - [`at`]: one `AT+GTSMTP*` command line, parsed and validated.
//! - [`config`]: the configuration it builds, in fixed storage, and the
//!   read and test forms' answers.
//! - [`reply`]: SMTP replies from server bytes split anyhow, with the EHLO
//!   extensions.
//! - [`sasl`]: AUTH's mechanisms (PLAIN, LOGIN, XOAUTH2, OAUTHBEARER) and
//!   their responses, streamed as base64.
//! - [`token`]: the OAuth 2.0 token in the caller's storage, read from the
//!   serial line, wiped when it goes.
//! - [`chunk`]: RFC 3030 `BDAT` chunks staged in the caller's storage and
//!   written into output buffers of any size.
//! - [`smtp`]: the SMTP conversation (EHLO, STARTTLS, AUTH, PIPELINING,
//!   DATA or BDAT, QUIT) as a state machine over the caller's socket and clock.
//! - [`session`]: all of it wired together as the G510 engine firmware links: the
//!   serial line, its data modes and command dispatch, and everything the
//!   host hears, over private modules in the shape of quinn-proto's
//!   endpoint and connection: `connection` (the SMTP client, how a
//!   connection lives and ends, the `DATA` or `BDAT` transfer), under it
//!   `mail` (the message in one fixed slot), and `answers` (what the
//!   engine itself says to the host). Imports go one way: session,
//!   connection, mail, the codecs.
//! - [`event`]: what the session asks of its caller, one event at a time.
//!
//! Streaming calls follow one shape, taken from `encoding_rs`: they consume
//! what fits, and say how much they read and wrote with a [`CoderResult`].
//!
//! # Example
//!
//! A host configures a mail over the serial line; the session answers each
//! command and, at `AT+GTSMTPSEND`, asks the caller for the mail's `Date:`
//! and `Message-ID:` (its clock and entropy) and then for a connection. A
//! real caller opens a socket there and goes on with
//! [`handle_connected`](session::Session::handle_connected),
//! [`handle_server`](session::Session::handle_server) and
//! [`poll_server`](session::Session::poll_server); the README's loop shows
//! the whole of it.
//!
//! ```
//! use atmail_core::header::Token;
//! use atmail_core::message::MessageId;
//! use atmail_core::session::{Event, Session};
//!
//! let mut session = Session::new();
//! session.set_network_up(true); // AT+MIPCALL is the caller's
//! let host: &[u8] = b"ATE0\r\
//!     AT+GTSMTPLAND=25,\"mail.example.com\"\r\
//!     AT+GTSMTPID=\"me@example.com\",\"secret\"\r\
//!     AT+GTSMTPDST=1,1,\"you@example.com\"\r\
//!     AT+GTSMTPSEND=300\r";
//! let (mut read, mut connect_to) = (0, None);
//! let mut to_server = [0u8; 512];
//! let mut answers = Vec::new();
//! for _ in 0..10 {
//!     // A real caller loops for ever, sleeping until I/O or next_deadline().
//!     let now_ms = 0; // the caller's monotonic clock
//!     let progress = session.handle_host(now_ms, &host[read..], &mut to_server);
//!     read += progress.read;
//!     while let Some(event) = session.poll_event() {
//!         match event {
//!             Event::Identity => session.set_identity(
//!                 Token::new(b"Mon, 7 Dec 2026 10:00:00 +0800", true).unwrap(),
//!                 MessageId::new(b"<1@example.com>").unwrap(),
//!             ),
//!             Event::Connect(to) => connect_to = Some((to.host.to_vec(), to.port)),
//!             _ => {}
//!         }
//!     }
//!     let mut buf = [0u8; 64];
//!     let n = session.poll_host(&mut buf); // to the UART
//!     answers.extend_from_slice(&buf[..n]);
//!     if connect_to.is_some() {
//!         break;
//!     }
//! }
//! assert_eq!(read, host.len());
//! assert_eq!(connect_to, Some((b"mail.example.com".to_vec(), 25)));
//! // Echo is on until ATE0; then each command's final result.
//! assert_eq!(answers, [&b"ATE0\r"[..], &b"\r\nOK\r\n".repeat(5)].concat());
//! ```
#![cfg_attr(not(any(feature = "std", test)), no_std)]
// Unsafe code, each block with its SAFETY reason beside it, is of two
// kinds: the AVX2 kernel and its call after run-time CPU detection
// (`mime_base64::avx2`, `mime_base64`); and in-place initialisation of
// the values too big for a firmware's 1 KiB stack, field by field
// (`init_in` of `Session`, its engine, `Config`, `Mail`, the answers, the
// line editor and the host queue; `Session::new` and `Config::new` after
// them; `Config::clear`, which initialises in place again once the
// password is wiped). Each module that has some allows it per item;
// the crate denies it everywhere else.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod answers;
pub mod at;
#[cfg(test)]
mod bdat_tests;
pub mod charset;
pub mod chunk;
mod cjk_cells;
pub mod config;
mod connection;
pub mod content_type;
mod ehlo;
pub mod event;
pub mod framer;
mod gb2312_big5_tables;
pub mod header;
pub mod host_queue;
mod index;
pub mod line;
pub mod line_breaks;
mod mail;
pub mod message;
pub mod mime_base64;
pub mod out;
pub mod reply;
pub mod sasl;
pub mod session;
pub mod smtp;
pub mod token;

/// Why a streaming call returned.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoderResult {
    /// All input was consumed; supply more (or, after the last chunk, the
    /// stream is complete).
    InputEmpty,
    /// The destination is full; call again with the unread input and more room.
    OutputFull,
}
