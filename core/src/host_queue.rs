//! The ordered byte stream to the host: echo, answers, prompts and URCs.
//!
//! What it does: [`HostQueue`] is a fixed ring of bytes. Everything the
//! host is to read is rendered into it at the moment it is said, whole or
//! not at all, and [`HostQueue::poll`] drains it into whatever room the
//! caller has. An answer is therefore fixed when it is queued: draining it
//! a byte at a time while the session moves on yields exactly the bytes it
//! would have yielded at once, and echo, the caller's own answers and URCs
//! keep the order in which they happened.
//!
//! What it does not: decide when something may be said. The session only
//! executes a command line when [`ANSWER_ROOM`] plus [`URC_ROOM`] bytes are
//! free, which bounds everything that can follow until the next line (see
//! the constants).
//!
//! Why it is built this way: answers rendered on demand from live state
//! (the earlier design) tore when the state changed under a partly drained
//! answer. A ring sized for the longest answer costs about 2 KiB of fixed
//! memory, which the session budget (8 KiB) allows.

use crate::index;
use crate::out::{Count, Out};
use core::mem::MaybeUninit;
use core::ptr::addr_of_mut;
use zeroize::Zeroize;

/// Room for one command's whole answer, final result included: the longest
/// is a read form of 20 recipients of 80 bytes (2,006 bytes; a test renders
/// it), plus a data command's prompt, count and result.
pub const ANSWER_ROOM: usize = 2048;

/// Room kept for what can be said without a command line between: the
/// URCs of one mail (`+GTSMTPSEND: 2`, then its outcome) and a data mode's
/// late result: under 100 bytes; the rest is margin.
pub const URC_ROOM: usize = 128;

/// Room for echo of type-ahead: a command-mode byte is taken only while
/// [`ANSWER_ROOM`] and [`URC_ROOM`] stay free past its echo, so echo that
/// the caller has not drained yet holds the host back beyond this.
pub const ECHO_ROOM: usize = 128;

/// The ring's size.
pub const CAPACITY: usize = ANSWER_ROOM + URC_ROOM + ECHO_ROOM;

/// The queue; see the module docs. Its `Debug` shows lengths only: the
/// ring may hold the echo of an `AT+GTSMTPID` line.
#[derive(Clone)]
pub struct HostQueue {
    ring: [u8; CAPACITY],
    /// Index of the oldest byte.
    head: u16,
    len: u16,
}

impl Default for HostQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl HostQueue {
    /// An empty queue.
    pub const fn new() -> Self {
        HostQueue {
            ring: [0; CAPACITY],
            head: 0,
            len: 0,
        }
    }

    /// Makes an empty queue in `slot`, as [`HostQueue::new`] would, without
    /// first building the 2.3 KB value on the stack (see
    /// [`Session::init_in`](crate::session::Session::init_in)).
    #[allow(unsafe_code)]
    pub(crate) fn init_in(slot: &mut MaybeUninit<Self>) -> &mut Self {
        // Stops compiling when a field is added, so none is left unwritten.
        let _ = |q: Self| {
            let HostQueue {
                ring: _,
                head: _,
                len: _,
            } = q;
        };
        let p = slot.as_mut_ptr();
        // SAFETY: `p` is valid for writes and aligned (it comes from a
        // `&mut`); each field is written through its own place, zero is a
        // valid `u8`, and after the writes every field is initialised.
        unsafe {
            addr_of_mut!((*p).ring).write_bytes(0, 1);
            addr_of_mut!((*p).head).write(0);
            addr_of_mut!((*p).len).write(0);
            slot.assume_init_mut()
        }
    }

    /// Bytes queued and not yet drained.
    pub const fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether nothing is queued.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes that can still be queued.
    pub const fn free(&self) -> usize {
        CAPACITY - self.len as usize
    }

    /// Queues what `piece` renders, whole, or nothing when it does not fit;
    /// returns whether it was queued.
    pub fn say(&mut self, piece: impl Fn(&mut dyn Out)) -> bool {
        let mut count = Count(0);
        piece(&mut count);
        if count.0 > self.free() {
            return false;
        }
        piece(&mut Pusher(self));
        true
    }

    /// Queues `bytes` whole, or nothing; returns whether they were queued.
    pub fn push(&mut self, bytes: &[u8]) -> bool {
        self.say(|out| out.put(bytes))
    }

    /// Moves queued bytes into `dst`; returns how many.
    pub fn poll(&mut self, dst: &mut [u8]) -> usize {
        let mut written = 0;
        while written < dst.len() && self.len > 0 {
            let head = self.head as usize;
            let run = (CAPACITY - head)
                .min(self.len as usize)
                .min(dst.len() - written);
            // `run` fits the room left in `dst` and the ring before it wraps.
            let src = index::get_mut(&mut self.ring, head..head + run);
            index::copy(index::get_mut(dst, written..written + run), src);
            // Drained bytes are wiped: the echo of an `AT+GTSMTPID` line
            // holds a password.
            src.zeroize();
            written += run;
            self.head = ((head + run) % CAPACITY) as u16;
            self.len -= run as u16;
        }
        written
    }

    /// Appends bytes that [`say`](Self::say) checked will fit.
    fn append(&mut self, bytes: &[u8]) {
        for &b in bytes {
            let tail = (self.head as usize + self.len as usize) % CAPACITY;
            self.ring[tail] = b;
            self.len += 1;
        }
    }
}

impl core::fmt::Debug for HostQueue {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HostQueue").field("len", &self.len).finish()
    }
}

/// Bytes not yet drained may be the echo of an `AT+GTSMTPID` line.
impl Drop for HostQueue {
    fn drop(&mut self) {
        self.ring.zeroize();
    }
}

/// Renders straight into the ring.
struct Pusher<'q>(&'q mut HostQueue);

impl Out for Pusher<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.0.append(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn bytes_come_out_in_order_across_the_wrap_whole_or_not_at_all() {
        let mut q = HostQueue::new();
        let mut got = Vec::new();
        let mut want = Vec::new();
        for i in 0..5000u32 {
            let piece = [i as u8; 7];
            if q.push(&piece) {
                want.extend_from_slice(&piece);
            }
            let mut dst = [0u8; 5];
            let n = q.poll(&mut dst[..(i % 6) as usize]);
            got.extend_from_slice(&dst[..n]);
        }
        let mut dst = [0u8; CAPACITY];
        let n = q.poll(&mut dst);
        got.extend_from_slice(&dst[..n]);
        assert_eq!(got, want);
        assert!(q.is_empty());
    }

    #[test]
    fn a_piece_that_does_not_fit_leaves_the_queue_as_it_was() {
        let mut q = HostQueue::new();
        assert!(q.push(&[1; CAPACITY - 3]));
        assert!(!q.push(b"four"));
        assert_eq!(q.len(), CAPACITY - 3);
        assert!(q.push(b"thr"));
        assert_eq!(q.free(), 0);
    }
}
