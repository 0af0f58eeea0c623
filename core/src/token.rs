//! The OAuth 2.0 access token: in storage the caller gives, read from the
//! serial line by `AT+GTSMTPTOKEN`, wiped when it goes.
//!
//! What it does: [`TokenStore`] holds the caller's memory and the length
//! of the token in it; [`TokenRead`] is one `AT+GTSMTPTOKEN=<length>` in
//! progress: exactly `<length>` host bytes, taken as they come (no line
//! editing, no echo, no `+++`), until the last one or a silence of
//! [`TOKEN_IDLE_MS`]. A token is stored only whole and only when every
//! byte can be in a bearer token (RFC 6750's `b64token` and the rest of
//! printable ASCII); a read that fails leaves no token.
//!
//! What it does not: know mechanisms or SMTP. The session decides when a
//! read may start and answers the host; the SMTP client borrows the token.
//!
//! Why it is built this way: a Microsoft token is 1.5-3 KB and the session
//! must stay within 8 KiB on a Cortex-M4, so the session holds a slice of
//! memory the firmware chose (the CLI and Python give 8 KiB). Every way a
//! token leaves (cleared, replaced, a failed read, the storage taken back,
//! the session dropped) writes zeros over it first: a secret is not left
//! in RAM that is handed to something else. `Debug` shows the length only.

use crate::index;
use zeroize::Zeroize;

/// The longest token `AT+GTSMTPTOKEN` takes.
pub const TOKEN_MAX: usize = 8192;

/// Silence that ends an unfinished token read (`ERROR`, nothing stored):
/// the longest idle end a data command may set (`break_time` 20 s).
pub const TOKEN_IDLE_MS: u64 = 20_000;

/// The caller's token memory and the token in it; see the module docs.
#[derive(Default)]
pub struct TokenStore {
    mem: Option<&'static mut [u8]>,
    len: u16,
}

/// One `AT+GTSMTPTOKEN=<length>` being read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenRead {
    /// Bytes still due.
    due: u16,
    /// When the last byte (or the prompt) came.
    last_ms: u64,
}

/// How a token read stands after some host bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadStep {
    /// More bytes are due.
    More,
    /// The whole token is stored.
    Stored,
    /// The token holds a byte no bearer token has: nothing is stored.
    Invalid,
}

impl core::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TokenStore")
            .field("capacity", &self.capacity())
            .field("len", &self.len)
            .finish()
    }
}

impl Drop for TokenStore {
    fn drop(&mut self) {
        self.wipe();
    }
}

impl TokenStore {
    /// No storage: `AT+GTSMTPTOKEN` is refused.
    pub const fn new() -> Self {
        TokenStore { mem: None, len: 0 }
    }

    /// Uses `mem` for the token from now on (the first [`TOKEN_MAX`]
    /// bytes of it); the storage given before, and its token, are wiped
    /// and given back.
    pub fn set_storage(&mut self, mem: &'static mut [u8]) -> Option<&'static mut [u8]> {
        let old = self.take_storage();
        mem.zeroize();
        self.mem = Some(mem);
        old
    }

    /// Gives the storage back, wiped; no token from now on.
    pub fn take_storage(&mut self) -> Option<&'static mut [u8]> {
        self.wipe();
        self.mem.take()
    }

    /// The most a token may be here: the storage's size, at most
    /// [`TOKEN_MAX`]; 0 without storage.
    pub fn capacity(&self) -> usize {
        self.mem.as_ref().map_or(0, |m| m.len().min(TOKEN_MAX))
    }

    /// The stored token (empty for none).
    pub fn token(&self) -> &[u8] {
        self.mem
            .as_ref()
            .map_or(&[], |m| index::get(m, ..self.len as usize))
    }

    /// Wipes the token: zeros over every byte it had.
    pub fn wipe(&mut self) {
        if let Some(mem) = self.mem.as_mut() {
            index::get_mut(mem, ..self.len as usize).zeroize();
        }
        self.len = 0;
    }

    /// Starts reading a token of `len` bytes (1 to [`capacity`](Self::capacity),
    /// which the caller checked) at `now_ms`; the token before it is wiped.
    pub fn begin(&mut self, now_ms: u64, len: u16) -> TokenRead {
        self.wipe();
        TokenRead {
            due: len,
            last_ms: now_ms,
        }
    }

    /// Host bytes of the read at `now_ms`; returns how many it took (never
    /// past its last byte) and how it stands.
    pub fn read(&mut self, now_ms: u64, read: &mut TokenRead, input: &[u8]) -> (usize, ReadStep) {
        let rest = input;
        let n = rest.len().min(read.due as usize);
        let Some(mem) = self.mem.as_mut() else {
            return (input.len(), ReadStep::Invalid);
        };
        let at = self.len as usize;
        let Some(dst) = mem.get_mut(at..at + n) else {
            return (input.len(), ReadStep::Invalid);
        };
        index::copy(dst, index::get(rest, ..n));
        self.len += n as u16;
        read.due -= n as u16;
        if !input.is_empty() {
            read.last_ms = now_ms;
        }
        let step = match read.due {
            0 if self.token().iter().all(|b| b.is_ascii_graphic()) => ReadStep::Stored,
            0 => {
                self.wipe();
                ReadStep::Invalid
            }
            _ => ReadStep::More,
        };
        (n, step)
    }
}

impl TokenRead {
    /// When the read gives up if no byte comes.
    pub fn deadline(&self) -> u64 {
        self.last_ms.saturating_add(TOKEN_IDLE_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::boxed::Box;
    use std::vec;
    use std::vec::Vec;

    fn store(cap: usize) -> TokenStore {
        let mut s = TokenStore::new();
        let _ = s.set_storage(Box::leak(vec![0xAA; cap].into_boxed_slice()));
        s
    }

    #[test]
    fn a_token_is_taken_exactly_and_wiped_when_it_goes() {
        let mut s = store(64);
        let mut r = s.begin(0, 5);
        assert_eq!(s.read(1, &mut r, b"ab"), (2, ReadStep::More));
        assert_eq!(s.read(2, &mut r, b"c+++\r\nAT"), (3, ReadStep::Stored));
        assert_eq!(s.token(), b"abc++");
        s.wipe();
        assert_eq!(s.token(), b"");
        let mem = s.take_storage().unwrap();
        assert!(mem.iter().all(|&b| b == 0), "wiped, not just forgotten");
    }

    #[test]
    fn bytes_no_bearer_token_has_store_nothing() {
        let mut s = store(64);
        for bad in [&b"ab\x01c"[..], b"ab c", b"ab\r\n", b"\xc3\xa9ab"] {
            let mut r = s.begin(0, bad.len() as u16);
            assert_eq!(s.read(1, &mut r, bad), (bad.len(), ReadStep::Invalid));
            assert_eq!(s.token(), b"");
        }
    }

    #[test]
    fn silence_is_measured_from_the_last_byte() {
        let mut s = store(8);
        let mut r = s.begin(100, 4);
        assert_eq!(r.deadline(), 100 + TOKEN_IDLE_MS);
        let _ = s.read(5_000, &mut r, b"ab");
        assert_eq!(r.deadline(), 5_000 + TOKEN_IDLE_MS);
    }

    #[test]
    fn debug_never_shows_the_token() {
        let mut s = store(16);
        let mut r = s.begin(0, 6);
        let _ = s.read(0, &mut r, b"SECRET");
        let shown = std::format!("{s:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
    }

    proptest! {
        #[test]
        fn any_chunking_stores_the_same_token(
            token in proptest::collection::vec(0x21u8..0x7f, 1..200),
            cuts in proptest::collection::vec(1usize..40, 1..50),
        ) {
            let mut s = store(256);
            let mut r = s.begin(0, token.len() as u16);
            let mut input: Vec<u8> = token.clone();
            input.extend_from_slice(b"AT\r");
            let mut at = 0;
            let mut step = ReadStep::More;
            for cut in cuts.iter().cycle() {
                if step != ReadStep::More {
                    break;
                }
                let end = (at + cut).min(input.len());
                let (n, st) = s.read(1, &mut r, &input[at..end]);
                at += n;
                step = st;
            }
            prop_assert_eq!(step, ReadStep::Stored);
            prop_assert_eq!(s.token(), &token[..]);
            prop_assert_eq!(&input[at..], b"AT\r");
        }
    }
}
