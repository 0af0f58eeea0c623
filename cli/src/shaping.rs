//! `--link-rate`, `--link-delay`, `--link-drop-after`: a GPRS-like link
//! between the module and the mail server.
//!
//! What it does: a [`Lane`] per direction holds the wire bytes the modem
//! has sent (uplink) or received (downlink) until the shaped link would
//! have carried them: at most `rate` bytes a second, each byte `delay`
//! ms after it was sent, in order. The modem releases them when due. The
//! uplink lane holds at most [`WINDOW`] bytes, as a TCP send buffer
//! would: while it is full the modem offers the engine no host bytes, so
//! the host's UART is held (RTS/CTS, a full pty) exactly as a real
//! module's uplink holds it. `drop_after` bytes across the link (both
//! ways) end the connection there, as a lost radio bearer does.
//!
//! What it does not: sleep, or run a thread. The modem's loop asks
//! [`Lane::next_due`] how long it may wait, and releases what is due.
//! The kernel has no `netem` here (docs/modem.md), and a proxy would
//! shape only TCP, not the in-process Maildir server.
//!
//! Why the bytes move in slices: at 5,000 bytes/s a 16 KiB write should
//! reach the server over three seconds, not at once after them, so each
//! write is cut into pieces of 20 ms of line time, each with its own time.

use std::collections::VecDeque;

/// The uplink's send buffer: what the modem may have sent and the link
/// not carried yet (live.c's window is the same).
pub const WINDOW: usize = 4096;

/// The link as `--link-*` shape it; all off is a plain link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shaping {
    /// Bytes a second each way.
    pub rate: Option<u64>,
    /// One-way delay, ms.
    pub delay_ms: u64,
    /// The connection drops once this many bytes have crossed it.
    pub drop_after: Option<u64>,
}

impl Shaping {
    /// Whether the link is shaped at all (then the uplink has a window).
    pub fn on(&self) -> bool {
        self.rate.is_some() || self.delay_ms > 0
    }
}

/// What a lane carries: bytes, or the end of the connection (which comes
/// after the bytes before it).
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    Bytes(Vec<u8>),
    End,
}

/// One direction of the link; see the module docs.
#[derive(Debug, Default)]
pub struct Lane {
    /// Pieces and the ms each is due; due times never decrease.
    pieces: VecDeque<(u64, Piece)>,
    /// When the line is free again, in µs.
    free_at_us: u64,
    /// Bytes held.
    held: usize,
}

impl Lane {
    /// Takes `piece` at `now_ms`.
    pub fn push(&mut self, shaping: &Shaping, now_ms: u64, piece: Piece) {
        let last = self.pieces.back().map_or(0, |(due, _)| *due);
        let bytes = match piece {
            Piece::End => {
                let due = (now_ms + shaping.delay_ms).max(last);
                self.pieces.push_back((due, Piece::End));
                return;
            }
            Piece::Bytes(bytes) if bytes.is_empty() => return,
            Piece::Bytes(bytes) => bytes,
        };
        self.held += bytes.len();
        let Some(rate) = shaping.rate else {
            let due = (now_ms + shaping.delay_ms).max(last);
            self.pieces.push_back((due, Piece::Bytes(bytes)));
            return;
        };
        let slice = (rate as usize / 50).max(1);
        for chunk in bytes.chunks(slice) {
            let start = self.free_at_us.max(now_ms * 1000);
            self.free_at_us = start + chunk.len() as u64 * 1_000_000 / rate;
            let due = self.free_at_us.div_ceil(1000) + shaping.delay_ms;
            self.pieces.push_back((due, Piece::Bytes(chunk.to_vec())));
        }
    }

    /// The next piece due at `now_ms`, if any.
    pub fn pop_due(&mut self, now_ms: u64) -> Option<Piece> {
        if self.pieces.front()?.0 > now_ms {
            return None;
        }
        let (_, piece) = self.pieces.pop_front()?;
        if let Piece::Bytes(bytes) = &piece {
            self.held -= bytes.len();
        }
        Some(piece)
    }

    /// When the next piece is due.
    pub fn next_due(&self) -> Option<u64> {
        self.pieces.front().map(|(due, _)| *due)
    }

    /// Bytes held, not yet carried.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Forgets everything (the connection is gone).
    pub fn clear(&mut self) {
        self.pieces.clear();
        self.held = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(lane: &mut Lane, now: u64) -> usize {
        let mut n = 0;
        while let Some(Piece::Bytes(b)) = lane.pop_due(now) {
            n += b.len();
        }
        n
    }

    #[test]
    fn a_rate_spreads_bytes_over_time_after_the_delay() {
        let shaping = Shaping {
            rate: Some(5000),
            delay_ms: 300,
            drop_after: None,
        };
        let mut lane = Lane::default();
        lane.push(&shaping, 0, Piece::Bytes(vec![0; 5000]));
        assert_eq!(lane.held(), 5000);
        assert_eq!(drain(&mut lane, 299), 0);
        // 100 bytes (20 ms) per slice: at 300 + 500 ms, half has arrived.
        assert_eq!(drain(&mut lane, 800), 2500);
        assert_eq!(drain(&mut lane, 1300), 2500);
        assert_eq!(lane.held(), 0);
        lane.push(&shaping, 1300, Piece::End);
        assert_eq!(lane.next_due(), Some(1600));
    }

    #[test]
    fn a_delay_alone_keeps_order_and_size() {
        let shaping = Shaping {
            rate: None,
            delay_ms: 50,
            drop_after: None,
        };
        let mut lane = Lane::default();
        lane.push(&shaping, 10, Piece::Bytes(b"abc".to_vec()));
        lane.push(&shaping, 20, Piece::End);
        assert_eq!(lane.pop_due(59), None);
        assert_eq!(lane.pop_due(60), Some(Piece::Bytes(b"abc".to_vec())));
        assert_eq!(lane.pop_due(70), Some(Piece::End));
    }
}
