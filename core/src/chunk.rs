//! RFC 3030 `BDAT` chunks: message bytes staged in storage the caller
//! gives, then written out as `BDAT <n>\r\n` (or `BDAT <n> LAST\r\n`) and
//! the `n` staged octets, into output buffers of any size.
//!
//! What it does: [`ChunkStore`] holds the caller's memory and the bytes
//! staged in it. [`stage`](ChunkStore::stage) copies what fits and says
//! how much; [`transmit`](ChunkStore::transmit) writes the chunk's command
//! and its octets into a caller `dst` across as many calls as `dst`'s size
//! needs (the command once, the count fixed when the first byte of the
//! chunk goes out), and the store is empty again when the chunk is whole.
//! [`fits`](ChunkStore::fits) answers "does the whole header block go in
//! the first chunk" before a mail commits to `BDAT`.
//!
//! What it does not: decide when a chunk goes (the SMTP client sends one
//! when the store is full and `LAST` at the end), read replies (one is owed
//! per whole chunk; the client counts them), or look at the bytes: `BDAT`
//! has no dot-stuffing and no end marker, so the octets go exactly as
//! staged.
//!
//! Why it is built this way: `BDAT <n>` states the count before the
//! octets, so a chunk cannot be streamed as it is produced; it must be
//! whole somewhere first. That somewhere is the caller's memory (the CLI
//! and Python give 16 KiB), as the token's is, so the session stays one
//! fixed-size value within a Cortex-M4's 8 KiB, and a firmware that gives
//! none keeps `DATA`. The command is regenerated from the count on each
//! call (`out::replay`), so the only state of a chunk in flight is how
//! many of its bytes went out. The memory is wiped when it is given back
//! or the store is dropped (it held the user's message), not after every
//! chunk: the next chunk overwrites it, and wiping 16 KiB per chunk would
//! cost more than the radio saves on a small core.

use crate::index;
use crate::out::{put_decimal, replay, Count, Out};
use crate::CoderResult;
use zeroize::Zeroize;

/// The caller's chunk memory and the bytes staged in it; see the module
/// docs.
///
/// ```
/// use atmail_core::chunk::ChunkStore;
/// use atmail_core::CoderResult;
///
/// let mut store = ChunkStore::new();
/// let _ = store.set_storage(Box::leak(vec![0u8; 8].into_boxed_slice()));
/// assert!(store.fits(8) && !store.fits(9));
/// assert_eq!(store.stage(b"hello, world"), 8);
/// assert_eq!(store.room(), 0);
/// let mut wire = Vec::new();
/// let mut dst = [0u8; 5];
/// loop {
///     let (result, n) = store.transmit(&mut dst, false).unwrap();
///     wire.extend_from_slice(&dst[..n]);
///     if result == CoderResult::InputEmpty {
///         break; // one whole chunk: one reply owed
///     }
/// }
/// assert_eq!(wire, b"BDAT 8\r\nhello, w");
/// assert!(store.is_empty());
/// assert_eq!(store.stage(b"orld"), 4);
/// let mut dst = [0u8; 64];
/// let (result, n) = store.transmit(&mut dst, true).unwrap();
/// assert_eq!((result, &dst[..n]), (CoderResult::InputEmpty, &b"BDAT 4 LAST\r\norld"[..]));
/// ```
#[derive(Default)]
pub struct ChunkStore {
    mem: Option<&'static mut [u8]>,
    /// Bytes staged at the start of `mem`; `<= mem.len()`.
    staged: usize,
    /// The chunk going out, if its first byte has been written.
    drain: Option<Drain>,
    /// A `LAST` chunk went out whole: nothing more until [`ChunkStore::reset`].
    closed: bool,
}

/// A chunk in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Drain {
    /// Bytes of the command and then the octets already written.
    written: usize,
    /// Whether the command says `LAST`.
    last: bool,
}

/// Why a chunk cannot be transmitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChunkError {
    /// The caller gave no storage: the mail goes by `DATA`.
    NoStorage,
    /// Nothing staged and not `LAST`: `BDAT 0` is only for the last chunk.
    Empty,
    /// The `LAST` chunk has gone: the message is over.
    Closed,
}

impl ChunkError {
    /// A short description.
    pub const fn as_str(self) -> &'static str {
        match self {
            ChunkError::NoStorage => "no chunk storage",
            ChunkError::Empty => "an empty chunk that is not the last",
            ChunkError::Closed => "the last chunk has gone",
        }
    }
}

impl core::fmt::Display for ChunkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::fmt::Debug for ChunkStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ChunkStore")
            .field("capacity", &self.capacity())
            .field("staged", &self.staged)
            .field("drain", &self.drain)
            .field("closed", &self.closed)
            .finish()
    }
}

impl Drop for ChunkStore {
    fn drop(&mut self) {
        if let Some(mem) = self.mem.as_mut() {
            mem.zeroize();
        }
    }
}

impl ChunkStore {
    /// No storage: [`transmit`](Self::transmit) says
    /// [`ChunkError::NoStorage`] and nothing can be staged.
    pub const fn new() -> Self {
        ChunkStore {
            mem: None,
            staged: 0,
            drain: None,
            closed: false,
        }
    }

    /// Uses `mem` for chunks from now on; the storage given before is
    /// wiped and given back, with whatever was staged or in flight in it
    /// (the store starts over, as after [`reset`](Self::reset)).
    pub fn set_storage(&mut self, mem: &'static mut [u8]) -> Option<&'static mut [u8]> {
        let old = self.take_storage();
        self.mem = Some(mem);
        old
    }

    /// Gives the storage back, wiped; no chunks from now on.
    pub fn take_storage(&mut self) -> Option<&'static mut [u8]> {
        self.reset();
        let mut mem = self.mem.take();
        if let Some(m) = mem.as_mut() {
            m.zeroize();
        }
        mem
    }

    /// The storage's size: the largest chunk; 0 without storage.
    pub fn capacity(&self) -> usize {
        self.mem.as_ref().map_or(0, |m| m.len())
    }

    /// Forgets what is staged or in flight, and a `LAST` that went: a new
    /// message, or one that a refusal ended.
    pub fn reset(&mut self) {
        self.staged = 0;
        self.drain = None;
        self.closed = false;
    }

    /// Zeroes the storage and forgets what was staged, unless a chunk is
    /// part way out (its octets are still owed to the wire): the message
    /// does not stay in the caller's memory after its mail.
    pub fn wipe(&mut self) {
        if self.drain.is_some() {
            return;
        }
        self.reset();
        if let Some(mem) = self.mem.as_mut() {
            mem.zeroize();
        }
    }

    /// Bytes staged and not yet sent.
    pub fn len(&self) -> usize {
        self.staged
    }

    /// Whether nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.staged == 0
    }

    /// Whether a chunk is going out (staging waits until it is whole).
    pub fn is_draining(&self) -> bool {
        self.drain.is_some()
    }

    /// Bytes [`stage`](Self::stage) would take now: 0 while a chunk is
    /// going out, after `LAST`, or without storage.
    pub fn room(&self) -> usize {
        match self.drain.is_some() || self.closed {
            true => 0,
            false => self.capacity() - self.staged,
        }
    }

    /// Whether `len` more bytes can be staged now, all of them: for the
    /// header block into an empty store, whether it goes whole in the
    /// first chunk (if not, the mail goes by `DATA`).
    pub fn fits(&self, len: usize) -> bool {
        len <= self.room()
    }

    /// Copies as much of `src` as there is [`room`](Self::room) for;
    /// returns how many bytes it took (the caller offers the rest after the
    /// next chunk has gone).
    pub fn stage(&mut self, src: &[u8]) -> usize {
        let n = src.len().min(self.room());
        let at = self.staged;
        if let Some(dst) = self.mem.as_mut().and_then(|m| m.get_mut(at..at + n)) {
            index::copy(dst, index::get(src, ..n));
            self.staged += n;
            return n;
        }
        0
    }

    /// Writes the staged chunk: `BDAT <n>\r\n`, or `BDAT <n> LAST\r\n`
    /// when `last`, then the `n` staged octets, into `dst`. Returns
    /// `InputEmpty` when the chunk is whole on the wire (one reply is owed
    /// for it; the store is empty again and, after `LAST`, closed), or
    /// `OutputFull` when `dst` filled first: call again with more room, and
    /// the chunk goes on where it stopped. The first call that writes a
    /// byte fixes `n` and `last`; on later calls `last` is ignored and
    /// staging waits. Every `dst` of at least one byte makes progress, so a
    /// small `dst` cannot loop for ever; an empty one writes nothing.
    ///
    /// Errors (nothing written): no storage; nothing staged without
    /// `last`; a `LAST` chunk already gone.
    pub fn transmit(
        &mut self,
        dst: &mut [u8],
        last: bool,
    ) -> Result<(CoderResult, usize), ChunkError> {
        let Some(mem) = self.mem.as_deref() else {
            return Err(ChunkError::NoStorage);
        };
        if self.closed {
            return Err(ChunkError::Closed);
        }
        let drain = match self.drain {
            Some(drain) => drain,
            None if self.staged == 0 && !last => return Err(ChunkError::Empty),
            None => Drain { written: 0, last },
        };
        if dst.is_empty() {
            return Ok((CoderResult::OutputFull, 0));
        }
        let n = self.staged;
        let command = |out: &mut dyn Out| put_command(out, n, drain.last);
        let mut count = Count(0);
        command(&mut count);
        let command_len = count.0;
        let mut written = 0;
        if drain.written < command_len {
            written = replay(drain.written, dst, command).1;
        }
        let at = (drain.written + written).saturating_sub(command_len);
        let take = (n - at).min(dst.len() - written);
        index::copy(
            index::get_mut(dst, written..written + take),
            index::get(mem, at..at + take),
        );
        written += take;
        let done = drain.written + written == command_len + n;
        debug_assert!(drain.written + written <= command_len + n);
        if done {
            self.staged = 0;
            self.drain = None;
            self.closed = drain.last;
            return Ok((CoderResult::InputEmpty, written));
        }
        self.drain = Some(Drain {
            written: drain.written + written,
            last: drain.last,
        });
        Ok((CoderResult::OutputFull, written))
    }
}

/// Bytes a chunk of `payload` octets takes on the wire, its command
/// included; `None` on overflow.
///
/// ```
/// assert_eq!(atmail_core::chunk::wire_len(16384, false), Some(12 + 16384));
/// assert_eq!(atmail_core::chunk::wire_len(0, true), Some(13));
/// assert_eq!(atmail_core::chunk::wire_len(usize::MAX, false), None);
/// ```
pub fn wire_len(payload: usize, last: bool) -> Option<usize> {
    let mut count = Count(0);
    put_command(&mut count, payload, last);
    payload.checked_add(count.0)
}

/// `BDAT <n>\r\n` or `BDAT <n> LAST\r\n` (RFC 3030 2: `bdat-cmd`).
fn put_command(out: &mut dyn Out, n: usize, last: bool) {
    out.put(b"BDAT ");
    put_decimal(out, n as u64);
    out.put(if last { b" LAST\r\n" } else { b"\r\n" });
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::boxed::Box;
    use std::format;
    use std::vec;
    use std::vec::Vec;

    fn store(cap: usize) -> ChunkStore {
        let mut s = ChunkStore::new();
        let _ = s.set_storage(Box::leak(vec![0xAA; cap].into_boxed_slice()));
        s
    }

    /// Drains the staged chunk through `dst`s of `size` bytes; returns the
    /// wire bytes and the number of calls.
    fn drain(s: &mut ChunkStore, size: usize, last: bool) -> (Vec<u8>, usize) {
        let mut wire = Vec::new();
        let mut dst = vec![0u8; size];
        for calls in 1.. {
            let (result, n) = s.transmit(&mut dst, last).unwrap();
            assert!(n <= size);
            wire.extend_from_slice(&dst[..n]);
            if result == CoderResult::InputEmpty {
                return (wire, calls);
            }
            assert_eq!(n, size, "OutputFull means dst was filled");
            // While draining nothing can be staged.
            assert_eq!((s.room(), s.stage(b"x")), (0, 0));
            assert!(s.is_draining());
        }
        unreachable!()
    }

    /// The naive oracle: the message cut in `cap`-byte chunks, the end as
    /// `BDAT <rest> LAST` (so `BDAT 0 LAST` when it ends on a chunk edge).
    fn naive(message: &[u8], cap: usize) -> Vec<u8> {
        let mut wire = Vec::new();
        let full = message.len() / cap;
        for chunk in message.chunks(cap).take(full) {
            wire.extend_from_slice(format!("BDAT {}\r\n", chunk.len()).as_bytes());
            wire.extend_from_slice(chunk);
        }
        let rest = &message[full * cap..];
        wire.extend_from_slice(format!("BDAT {} LAST\r\n", rest.len()).as_bytes());
        wire.extend_from_slice(rest);
        wire
    }

    /// A whole message: offered in `cuts`-sized pieces, a chunk sent each
    /// time the store is full, `LAST` at the end, every chunk through
    /// `dst`s of `dst` bytes. Returns the wire and the chunks sent.
    fn send(message: &[u8], cap: usize, cuts: &[usize], dst: usize) -> (Vec<u8>, usize) {
        let mut s = store(cap);
        let (mut wire, mut chunks, mut at) = (Vec::new(), 0, 0);
        let mut cut = cuts.iter().cycle();
        while at < message.len() {
            let end = (at + cut.next().unwrap()).min(message.len());
            let mut piece = &message[at..end];
            while !piece.is_empty() {
                let took = s.stage(piece);
                piece = &piece[took..];
                at += took;
                if s.room() == 0 {
                    wire.extend(drain(&mut s, dst, false).0);
                    chunks += 1;
                }
            }
        }
        wire.extend(drain(&mut s, dst, true).0);
        assert_eq!(s.transmit(&mut [0; 8], true), Err(ChunkError::Closed));
        assert_eq!((s.room(), s.stage(b"x")), (0, 0), "closed after LAST");
        (wire, chunks + 1)
    }

    #[test]
    fn every_dst_size_gives_the_same_bytes_in_the_fewest_calls() {
        let cases: &[(&str, &[u8], bool)] = &[
            ("short", b"hello", false),
            ("short last", b"hello", true),
            ("empty last", b"", true),
            ("dots and crlf", b"\r\n.\r\nBDAT 5 LAST\r\n+++", true),
            ("ten digits of count", &[0x5A; 1000], false),
        ];
        for &(name, payload, last) in cases {
            let want = [
                format!(
                    "BDAT {}{}\r\n",
                    payload.len(),
                    if last { " LAST" } else { "" }
                )
                .as_bytes(),
                payload,
            ]
            .concat();
            assert_eq!(wire_len(payload.len(), last), Some(want.len()), "{name}");
            for size in 1..=want.len() + 2 {
                let mut s = store(1000);
                assert_eq!(s.stage(payload), payload.len());
                let (wire, calls) = drain(&mut s, size, last);
                assert_eq!(wire, want, "{name}, dst {size}");
                assert_eq!(
                    calls,
                    want.len().div_ceil(size).max(1),
                    "{name}, dst {size}"
                );
                assert!(s.is_empty() && !s.is_draining());
            }
        }
    }

    #[test]
    fn the_first_calls_last_decides() {
        let mut s = store(8);
        assert_eq!(s.stage(b"abc"), 3);
        let mut dst = [0u8; 4];
        assert_eq!(
            s.transmit(&mut dst, false),
            Ok((CoderResult::OutputFull, 4))
        );
        let mut rest = [0u8; 16];
        let (result, n) = s.transmit(&mut rest, true).unwrap();
        assert_eq!(result, CoderResult::InputEmpty);
        assert_eq!([&dst[..], &rest[..n]].concat(), b"BDAT 3\r\nabc");
        assert_eq!(s.stage(b"d"), 1, "not closed: that chunk was not LAST");
    }

    #[test]
    fn staging_takes_what_fits_and_refusals_write_nothing() {
        let mut s = ChunkStore::new();
        assert_eq!((s.capacity(), s.room(), s.stage(b"abc")), (0, 0, 0));
        assert!(!s.fits(1) && s.fits(0));
        assert_eq!(s.transmit(&mut [0; 8], true), Err(ChunkError::NoStorage));
        let mut s = store(4);
        assert_eq!(s.transmit(&mut [0; 8], false), Err(ChunkError::Empty));
        assert!(s.fits(4) && !s.fits(5));
        assert_eq!(s.stage(b"abcdef"), 4);
        assert_eq!((s.len(), s.room(), s.stage(b"x")), (4, 0, 0));
        assert_eq!(s.transmit(&mut [], false), Ok((CoderResult::OutputFull, 0)));
        assert!(!s.is_draining(), "an empty dst starts nothing");
        // A reset forgets the chunk in flight and a LAST that went.
        let mut dst = [0u8; 3];
        let _ = s.transmit(&mut dst, true).unwrap();
        s.reset();
        assert!(s.is_empty() && !s.is_draining() && s.fits(4));
        let (wire, _) = drain(&mut s, 64, true);
        assert_eq!(wire, b"BDAT 0 LAST\r\n");
        s.reset();
        assert_eq!(s.stage(b"ab"), 2);
    }

    #[test]
    fn storage_goes_back_wiped() {
        let mut s = store(16);
        assert_eq!(s.stage(b"private words"), 13);
        let mem = s.take_storage().unwrap();
        assert_eq!(mem.len(), 16);
        assert!(mem.iter().all(|&b| b == 0));
        assert_eq!((s.capacity(), s.len()), (0, 0));
        let mut s = store(8);
        assert_eq!(s.stage(b"abc"), 3);
        let old = s.set_storage(mem).unwrap();
        assert!(old.iter().all(|&b| b == 0));
        assert_eq!((s.capacity(), s.len()), (16, 0), "a new store starts over");
        assert!(!format!("{s:?}").contains("abc"));
    }

    #[test]
    fn messages_of_every_length_around_the_chunk_edges() {
        for cap in [1usize, 2, 3, 7, 16] {
            for len in 0..=3 * cap + 1 {
                let message: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
                for (cuts, dst) in [(&[1usize][..], 1usize), (&[len.max(1)], 64), (&[2, 5], 3)] {
                    let (wire, chunks) = send(&message, cap, cuts, dst);
                    assert_eq!(wire, naive(&message, cap), "cap {cap}, len {len}");
                    assert_eq!(chunks, len / cap + 1);
                }
            }
        }
    }

    proptest! {
        /// Any chunking of the message and any dst size give the oracle's
        /// wire bytes, with exact counts.
        #[test]
        fn any_chunking_gives_the_same_wire(
            message in proptest::collection::vec(any::<u8>(), 0..600),
            cap in 1usize..80,
            cuts in proptest::collection::vec(1usize..100, 1..20),
            dst in 1usize..40,
        ) {
            let (wire, chunks) = send(&message, cap, &cuts, dst);
            prop_assert_eq!(&wire, &naive(&message, cap));
            prop_assert_eq!(chunks, message.len() / cap + 1);
            // Read back as a server would: counts exact, LAST once, the
            // octets the message's.
            let (mut at, mut got, mut lasts) = (0, Vec::new(), 0);
            while at < wire.len() {
                let eol = at + wire[at..].windows(2).position(|w| w == b"\r\n").unwrap();
                let line = core::str::from_utf8(&wire[at..eol]).unwrap();
                let mut words = line.split(' ');
                prop_assert_eq!(words.next(), Some("BDAT"));
                let n: usize = words.next().unwrap().parse().unwrap();
                if words.next() == Some("LAST") {
                    lasts += 1;
                }
                got.extend_from_slice(&wire[eol + 2..eol + 2 + n]);
                at = eol + 2 + n;
            }
            prop_assert_eq!(lasts, 1);
            prop_assert_eq!(got, message);
        }
    }
}
