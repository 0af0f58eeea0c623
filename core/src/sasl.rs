//! SASL for SMTP AUTH (RFC 4954): the mechanisms atmail speaks and the
//! client's side of each, written as base64 group by group.
//!
//! What it does: [`Mechanism`] is what `AT+GTSMTPAUTH` chooses (a
//! password, `XOAUTH2`, or `OAUTHBEARER` of RFC 7628); [`Credentials`] is
//! what one mail signs in with. [`write_response`] writes the base64 of a
//! mechanism's client response (PLAIN's `\0user\0password`, XOAUTH2's
//! `user=...^Aauth=Bearer ...^A^A`, OAUTHBEARER's GS2 header and
//! key-value pairs) and [`response_len`] says how long it is before a byte
//! is written, so the client knows whether the AUTH line holds it.
//! [`ErrorStatus`] is the `status` of an OAuth error challenge (a 334
//! whose text is base64 JSON), for the failure's reason.
//!
//! What it does not: decide when to send what (the SMTP client does), or
//! keep a secret: every function borrows and returns.
//!
//! Why it is built this way: a token's response is up to 11 KB of base64
//! and firmware stacks are 1 KiB, so nothing is assembled: the parts pass
//! through a three-byte group into the caller's [`Out`], which the client
//! replays into whatever room its caller's buffer has.

use crate::index;
use crate::mime_base64::encode_group;
use crate::out::{put_decimal, Count, Out};

/// How the mail signs in (`AT+GTSMTPAUTH`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mechanism {
    /// 0: the `+GTSMTPID` password, by AUTH PLAIN or LOGIN as offered.
    #[default]
    Password,
    /// 1: `XOAUTH2` (Google's and Microsoft's), with the token.
    XOAuth2,
    /// 2: `OAUTHBEARER` (RFC 7628), with the token.
    OAuthBearer,
}

impl Mechanism {
    /// From the `AT+GTSMTPAUTH` code (0-2).
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Mechanism::Password),
            1 => Some(Mechanism::XOAuth2),
            2 => Some(Mechanism::OAuthBearer),
            _ => None,
        }
    }

    /// The `AT+GTSMTPAUTH` code.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The SASL name on the AUTH line, for a token mechanism.
    pub const fn name(self) -> &'static str {
        match self {
            Mechanism::Password => "PLAIN",
            Mechanism::XOAuth2 => "XOAUTH2",
            Mechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// Whether it signs in with a token.
    pub const fn uses_token(self) -> bool {
        !matches!(self, Mechanism::Password)
    }
}

/// What one mail signs in with, borrowed from the configuration.
#[derive(Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credentials<'a> {
    /// AUTH PLAIN or LOGIN with the password, as EHLO offers; none when
    /// the server offers no AUTH or the password is empty.
    Password(&'a [u8]),
    /// AUTH XOAUTH2 with an OAuth 2.0 bearer token.
    XOAuth2 {
        /// The access token.
        token: &'a [u8],
    },
    /// AUTH OAUTHBEARER with an OAuth 2.0 bearer token.
    OAuthBearer {
        /// The access token.
        token: &'a [u8],
        /// The server as `+GTSMTPLAND` named it (RFC 7628 `host=`).
        host: &'a [u8],
        /// Its port (`port=`).
        port: u16,
    },
}

/// Never prints a secret.
impl core::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Credentials::Password(_) => "Password(*****)",
            Credentials::XOAuth2 { .. } => "XOAuth2(*****)",
            Credentials::OAuthBearer { .. } => "OAuthBearer(*****)",
        })
    }
}

impl Credentials<'_> {
    /// The mechanism these credentials are for (PLAIN for a password).
    pub const fn mechanism(&self) -> Mechanism {
        match self {
            Credentials::Password(_) => Mechanism::Password,
            Credentials::XOAuth2 { .. } => Mechanism::XOAuth2,
            Credentials::OAuthBearer { .. } => Mechanism::OAuthBearer,
        }
    }
    /// Whether there is a secret to sign in with: a password that is not
    /// empty, or a token (SEND refuses a token mechanism without one).
    pub const fn is_set(&self) -> bool {
        match self {
            Credentials::Password(password) => !password.is_empty(),
            _ => true,
        }
    }
}

/// The client response of `credentials` for `user`, as base64, into
/// `out` (PLAIN's for a password).
pub fn write_response(out: &mut dyn Out, user: &[u8], credentials: &Credentials<'_>) {
    let mut b64 = Base64 {
        out,
        group: [0; 3],
        held: 0,
    };
    // Each mechanism as its parts: `head`, the user, `tail`. OAUTHBEARER's
    // user is its GS2 authorization identity, escaped; its port is digits.
    let (head, tail): (&[u8], [&[u8]; 5]) = match *credentials {
        Credentials::Password(password) => (b"\0", [b"\0", password, b"", b"", b""]),
        Credentials::XOAuth2 { token } => (
            b"user=",
            [b"\x01auth=Bearer ", token, b"\x01\x01", b"", b""],
        ),
        Credentials::OAuthBearer { host, .. } => {
            (b"n,a=", [b",\x01host=", host, b"\x01port=", b"", b""])
        }
    };
    b64.push(head);
    match credentials {
        Credentials::OAuthBearer { .. } => push_saslname(&mut b64, user),
        _ => b64.push(user),
    }
    for part in tail {
        b64.push(part);
    }
    if let Credentials::OAuthBearer { token, port, .. } = *credentials {
        put_decimal(&mut b64, port.into());
        for part in [b"\x01auth=Bearer ", token, b"\x01\x01"] {
            b64.push(part);
        }
    }
    b64.finish();
}

/// Base64 of `bytes` into `out` (AUTH LOGIN's user and password).
pub fn write_base64(out: &mut dyn Out, bytes: &[u8]) {
    let mut b64 = Base64 {
        out,
        group: [0; 3],
        held: 0,
    };
    b64.push(bytes);
    b64.finish();
}

/// The length of [`write_response`]'s output, without keeping it: the
/// response is generated into a counter (once per mail; less flash than
/// the arithmetic).
pub fn response_len(user: &[u8], credentials: &Credentials<'_>) -> usize {
    let mut count = Count(0);
    write_response(&mut count, user, credentials);
    count.0
}

/// RFC 5801's saslname: `=` and `,` of the authorization identity escaped
/// (`=3D`, `=2C`), so an address cannot end the GS2 header early.
fn push_saslname(b64: &mut Base64<'_>, user: &[u8]) {
    for &b in user {
        match b {
            b'=' => b64.push(b"=3D"),
            b',' => b64.push(b"=2C"),
            _ => b64.push(&[b]),
        }
    }
}

/// Base64 without a buffer of the whole: bytes pass through one group.
struct Base64<'o> {
    out: &'o mut dyn Out,
    group: [u8; 3],
    held: usize,
}

impl Base64<'_> {
    fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            *index::get_mut(&mut self.group, self.held) = b;
            self.held += 1;
            if self.held == 3 {
                self.out.put(&encode_group(&self.group));
                self.held = 0;
            }
        }
    }

    fn finish(&mut self) {
        if self.held > 0 {
            self.out
                .put(&encode_group(index::get(&self.group, ..self.held)));
            self.held = 0;
        }
    }
}

/// So a port's digits can be pushed with [`put_decimal`].
impl Out for Base64<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.push(bytes);
    }
}

/// The `status` of an OAuth error challenge (RFC 7628 3.2.2; Google's
/// and Microsoft's XOAUTH2 send the same JSON): `401`, `invalid_token`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ErrorStatus {
    bytes: [u8; STATUS_MAX],
    len: u8,
}

/// The longest status kept (RFC 6749's error codes are shorter).
const STATUS_MAX: usize = 24;

impl core::fmt::Debug for ErrorStatus {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        crate::out::display(f, |out| out.put(self.as_bytes()))
    }
}

impl ErrorStatus {
    /// No status.
    pub const EMPTY: ErrorStatus = ErrorStatus {
        bytes: [0; STATUS_MAX],
        len: 0,
    };

    /// The status read from a challenge's base64 text, as far as it was
    /// kept; empty when there is none to read.
    pub fn from_challenge(text: &[u8]) -> Self {
        // A JSON object's start is all the status needs: it comes first in
        // every server seen, and the reply parser keeps 124 bytes.
        let mut json = [0u8; 93];
        let n = decode_base64(text, &mut json);
        let json = index::get(&json, ..n);
        let mut status = ErrorStatus::EMPTY;
        // A plain window search: memmem's searchers are 3 KB of flash
        // for one 93-byte haystack per refused mail.
        const KEY: &[u8] = b"\"status\"";
        let Some(at) = json.windows(KEY.len()).position(|w| w == KEY) else {
            return status;
        };
        let mut rest = index::get(json, at + KEY.len()..);
        while let [b' ' | b':' | b'"', tail @ ..] = rest {
            rest = tail;
        }
        for &b in rest.iter().take(STATUS_MAX) {
            if !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')) {
                break;
            }
            *index::get_mut(&mut status.bytes, status.len as usize) = b;
            status.len += 1;
        }
        status
    }

    /// The status's bytes (letters, digits, `_`, `.`, `-`).
    pub fn as_bytes(&self) -> &[u8] {
        index::get(&self.bytes, ..self.len as usize)
    }
}

/// Decodes the leading base64 of `text` into `dst` (as much as fits);
/// returns how many bytes. Stops at the first byte that is not base64
/// (the padding among them): an error challenge is for a reason, not for
/// verification.
fn decode_base64(text: &[u8], dst: &mut [u8]) -> usize {
    let (mut bits, mut held, mut n) = (0u32, 0u32, 0);
    for &c in text {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => break,
        };
        bits = bits << 6 | v as u32;
        held += 6;
        if held >= 8 {
            held -= 8;
            let Some(slot) = dst.get_mut(n) else { break };
            *slot = (bits >> held) as u8;
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn response(user: &[u8], credentials: Credentials<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        write_response(&mut out, user, &credentials);
        assert_eq!(out.len(), response_len(user, &credentials));
        base64::engine::general_purpose::STANDARD
            .decode(&out)
            .unwrap()
    }

    #[test]
    fn xoauth2_is_googles_form() {
        let got = response(
            b"someuser@example.com",
            Credentials::XOAuth2 {
                token: b"ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg",
            },
        );
        assert_eq!(
            got,
            b"user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"
        );
    }

    #[test]
    fn oauthbearer_is_rfc_7628s_form() {
        // RFC 7628 4.1, with the host and port of the example.
        let got = response(
            b"user@example.com",
            Credentials::OAuthBearer {
                token: b"vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg==",
                host: b"server.example.com",
                port: 587,
            },
        );
        assert_eq!(
            got,
            &b"n,a=user@example.com,\x01host=server.example.com\x01port=587\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg==\x01\x01"[..]
        );
    }

    #[test]
    fn the_authorization_identity_is_escaped() {
        let got = response(
            b"a=b@x.org",
            Credentials::OAuthBearer {
                token: b"t",
                host: b"h",
                port: 7,
            },
        );
        assert!(got.starts_with(b"n,a=a=3Db@x.org,\x01host=h\x01port=7\x01"));
    }

    #[test]
    fn plain_is_nul_separated() {
        let got = response(b"wangww@fibocom.com", Credentials::Password(b"ght64621178"));
        assert_eq!(got, b"\0wangww@fibocom.com\0ght64621178");
    }

    #[test]
    fn error_status_from_dovecot_and_google_challenges() {
        let b64 = |s: &[u8]| {
            base64::engine::general_purpose::STANDARD
                .encode(s)
                .into_bytes()
        };
        let dovecot = b64(br#"{"status":"401","schemes":"bearer","scope":"mail"}"#);
        assert_eq!(ErrorStatus::from_challenge(&dovecot).as_bytes(), b"401");
        let rfc = b64(br#"{ "status": "invalid_token", "scope": "x" }"#);
        assert_eq!(
            ErrorStatus::from_challenge(&rfc).as_bytes(),
            b"invalid_token"
        );
        // A long challenge is cut where the parser cut it: the status is
        // at its start.
        let google = b64(br#"{"status":"400","schemes":"Bearer realm=\"https://accounts.google.com/\"","scope":"https://mail.google.com/"}"#);
        assert_eq!(
            ErrorStatus::from_challenge(&google[..124]).as_bytes(),
            b"400"
        );
        for junk in [&b""[..], b"!!!!", b"e30=", b"not base64 at all"] {
            assert_eq!(ErrorStatus::from_challenge(junk).as_bytes(), b"");
        }
    }

    proptest! {
        #[test]
        fn decode_is_base64s_inverse(bytes in proptest::collection::vec(any::<u8>(), 0..93)) {
            let text = base64::engine::general_purpose::STANDARD.encode(&bytes);
            let mut dst = [0u8; 93];
            let n = decode_base64(text.as_bytes(), &mut dst);
            prop_assert_eq!(&dst[..n], &bytes[..]);
        }
    }
}
