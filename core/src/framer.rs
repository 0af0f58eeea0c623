//! Serial data mode: where the payload ends.
//!
//! What it does: after `+GTSMTPDATA` / `+GTSMTPFILE=1` every serial byte is
//! payload until one of four ends ([`End`]): the `+++` escape framed by
//! guard-time silence (V.250 S12), `break_time` without input, the
//! command's `<time>` limit, or more bytes than the cap (20 MiB). The framer
//! hands the payload back as slices of the caller's own input, never copied.
//!
//! What it does not: read a clock or the UART. The caller passes `now_ms`
//! with every [`Framer::push`], calls [`Framer::poll`] on timer ticks, and
//! [`Framer::next_deadline`] says when the next tick matters.
//!
//! Why it is built this way: a push carries bytes that arrived at one
//! instant, so within a push there is no silence, and an escape can only
//! begin at the first byte of a push that follows a guard time of silence.
//! The framer therefore never scans the payload: it looks at most at the
//! first three bytes of a push, and a `+++` inside flowing data is data
//! without being looked at. The one thing it must hold across calls is a run
//! of up to three `+` that may still turn out to be the escape; if it turns
//! out to be data it is handed back from a static `"+++"`, so payload is
//! still never copied. The result depends only on the bytes and their
//! times, not on how a burst is split into pushes: a push at the same
//! `now_ms` as the previous byte has zero silence before it.

use crate::index;

/// Bytes allowed for the body, or for all attachments of a mail together.
pub const MAX_PAYLOAD: u64 = 20 * 1024 * 1024;
/// The default `+++` guard time (V.250 S12 default, 50 × 20 ms).
pub const DEFAULT_GUARD_MS: u32 = 1000;

const PLUSES: &[u8; 3] = b"+++";

/// Limits of one data-mode session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataLimits {
    /// Silence before and after `+++`, in ms; at least 1 (0 is read as 1,
    /// because a zero guard would make an escape depend on how bytes are
    /// grouped into pushes).
    pub guard_ms: u32,
    /// `break_time`: silence that ends data mode normally, if set.
    pub idle_ms: Option<u32>,
    /// `<time>`: data mode longer than this aborts the mail.
    pub time_limit_ms: u64,
    /// Payload bytes allowed; one more aborts the mail.
    pub max_bytes: u64,
}

impl DataLimits {
    /// Limits from the `+GTSMTPDATA=<time>[,<break_time>]` parameters (seconds),
    /// with the default guard time and the 20 MiB cap.
    ///
    /// ```
    /// use atmail_core::framer::DataLimits;
    /// let l = DataLimits::from_seconds(300, Some(5));
    /// assert_eq!((l.time_limit_ms, l.idle_ms), (300_000, Some(5_000)));
    /// ```
    pub const fn from_seconds(time_s: u32, break_s: Option<u32>) -> Self {
        DataLimits {
            guard_ms: DEFAULT_GUARD_MS,
            idle_ms: match break_s {
                Some(s) => Some(s.saturating_mul(1000)),
                None => None,
            },
            time_limit_ms: time_s as u64 * 1000,
            max_bytes: MAX_PAYLOAD,
        }
    }
}

/// How data mode ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum End {
    /// `+++` with guard silence on both sides: a normal end.
    Escape,
    /// `break_time` without input: a normal end.
    Idle,
    /// `<time>` ran out: the mail must be aborted.
    TimeLimit,
    /// More payload than allowed: the mail must be aborted.
    Oversize,
}

impl End {
    /// A short description.
    pub const fn as_str(self) -> &'static str {
        match self {
            End::Escape => "escape sequence",
            End::Idle => "idle timeout",
            End::TimeLimit => "data mode time limit exceeded",
            End::Oversize => "payload larger than allowed",
        }
    }
}

/// What a [`Framer`] call produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framed<'a> {
    /// Payload, in order. Borrowed from the input, or `+` bytes that were
    /// held back as a possible escape and turned out to be data.
    Data(&'a [u8]),
    /// Nothing more until more input arrives or time passes.
    NeedMore,
    /// Data mode is over; bytes after this are not payload.
    End(End),
}

/// The data-mode state machine; see the module docs.
///
/// ```
/// use atmail_core::framer::{DataLimits, End, Framed, Framer};
/// let mut f = Framer::new(0, DataLimits::from_seconds(300, None));
/// assert_eq!(f.push(10, b"hello"), (Framed::Data(b"hello"), 5));
/// assert_eq!(f.push(1500, b"+++"), (Framed::NeedMore, 3)); // maybe the escape
/// assert_eq!(f.next_deadline(), Some(2500));
/// assert_eq!(f.poll(2500), Framed::End(End::Escape));
/// assert_eq!(f.payload_len(), 5);
/// ```
#[derive(Clone, Debug)]
pub struct Framer {
    limits: DataLimits,
    start_ms: u64,
    /// Arrival time of the newest byte (or the start, before any).
    last_ms: u64,
    payload: u64,
    /// `+` bytes held as a possible escape (0..=3); a run only starts at the
    /// first byte of a push after guard silence.
    held: u8,
    ended: Option<End>,
}

impl Framer {
    /// Starts data mode at `now_ms` (when the `>` prompt goes out).
    pub const fn new(now_ms: u64, limits: DataLimits) -> Self {
        Framer {
            limits,
            start_ms: now_ms,
            last_ms: now_ms,
            payload: 0,
            held: 0,
            ended: None,
        }
    }

    /// Payload bytes handed out so far.
    pub const fn payload_len(&self) -> u64 {
        self.payload
    }

    /// How data mode ended, once it has.
    pub const fn end(&self) -> Option<End> {
        self.ended
    }

    /// Feeds bytes that arrived at `now_ms`. Returns an event and how many
    /// bytes of `input` it consumed; call again with the rest until it
    /// returns [`Framed::NeedMore`] (all consumed) or [`Framed::End`] (the rest
    /// is not payload). A `Data` slice must be used before the next call.
    pub fn push<'a>(&mut self, now_ms: u64, input: &'a [u8]) -> (Framed<'a>, usize) {
        let due = self.poll(now_ms);
        if due != Framed::NeedMore || input.is_empty() {
            return (due, 0);
        }
        let silent = now_ms.saturating_sub(self.last_ms) >= self.guard();
        self.last_ms = now_ms;
        let run = input
            .iter()
            .take(3 - self.held as usize)
            .take_while(|&&b| b == b'+')
            .count();
        if self.held == 0 && (run == 0 || !silent) {
            return (self.emit(input), input.len());
        }
        self.held += run as u8;
        if run == input.len() {
            return (Framed::NeedMore, run);
        }
        // Another byte follows the run at the same instant: the run is data.
        let held = core::mem::take(&mut self.held) as usize;
        (self.emit(index::get(PLUSES, ..held)), run)
    }

    /// Checks the clock: ends data mode when a deadline has passed. Call it
    /// on timer ticks, at least at [`next_deadline`](Self::next_deadline).
    pub fn poll(&mut self, now_ms: u64) -> Framed<'static> {
        if let Some(end) = self.ended {
            return Framed::End(end);
        }
        let [escape_at, idle_at, limit_at] = self.deadlines();
        let earliest = [escape_at, idle_at, limit_at].into_iter().flatten().min();
        let due = |at: Option<u64>| at.is_some_and(|t| t <= now_ms);
        if !due(earliest) {
            return Framed::NeedMore;
        }
        if escape_at == earliest {
            self.held = 0;
            return self.finish(End::Escape);
        }
        if idle_at == earliest {
            // Held `+` bytes were not an escape after all: they are payload.
            let held = core::mem::take(&mut self.held) as usize;
            if held > 0 {
                return self.emit(index::get(PLUSES, ..held));
            }
            return self.finish(End::Idle);
        }
        self.finish(End::TimeLimit)
    }

    /// When [`poll`](Self::poll) next needs calling, if ever.
    pub fn next_deadline(&self) -> Option<u64> {
        if self.ended.is_some() {
            return None;
        }
        self.deadlines().into_iter().flatten().min()
    }

    /// When each end would come: the escape (if `+++` is held), idle (if
    /// `break_time` is set), and the `<time>` limit.
    fn deadlines(&self) -> [Option<u64>; 3] {
        let escape_at = (self.held == 3).then(|| self.last_ms.saturating_add(self.guard()));
        let idle_at = self
            .limits
            .idle_ms
            .map(|ms| self.last_ms.saturating_add(ms as u64));
        [
            escape_at,
            idle_at,
            Some(self.start_ms.saturating_add(self.limits.time_limit_ms)),
        ]
    }

    fn guard(&self) -> u64 {
        self.limits.guard_ms.max(1) as u64
    }

    fn emit<'a>(&mut self, data: &'a [u8]) -> Framed<'a> {
        let total = self.payload + data.len() as u64;
        if total > self.limits.max_bytes {
            return self.finish(End::Oversize);
        }
        self.payload = total;
        Framed::Data(data)
    }

    fn finish(&mut self, end: End) -> Framed<'static> {
        self.ended = Some(end);
        Framed::End(end)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    /// A burst: bytes that arrive together at `at_ms`.
    type Burst = (u64, Vec<u8>);

    /// Runs `bursts` (each split at `cuts`), then polls until the end or
    /// `until_ms`. Returns the payload and the end with its time.
    fn run(
        limits: DataLimits,
        bursts: &[Burst],
        cuts: &[usize],
        until_ms: u64,
    ) -> (Vec<u8>, Option<(End, u64)>) {
        let mut f = Framer::new(0, limits);
        let mut out = Vec::new();
        let mut cut = 0;
        for (at, bytes) in bursts {
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                // A cut of 0 is an empty push, then one byte.
                let size = cuts[cut % cuts.len()];
                cut += 1;
                let n = size.max(1).min(rest.len());
                let pieces = [&rest[..0], &rest[..n]];
                rest = &rest[n..];
                for mut piece in pieces.into_iter().skip((size != 0) as usize) {
                    loop {
                        let (ev, used) = f.push(*at, piece);
                        piece = &piece[used..];
                        match ev {
                            Framed::Data(d) => out.extend_from_slice(d),
                            Framed::NeedMore => break,
                            Framed::End(e) => return (out, Some((e, *at))),
                        }
                    }
                }
            }
        }
        while let Some(t) = f.next_deadline().filter(|&t| t <= until_ms) {
            match f.poll(t) {
                Framed::Data(d) => out.extend_from_slice(d),
                Framed::NeedMore => unreachable!("polled at its own deadline"),
                Framed::End(e) => return (out, Some((e, t))),
            }
        }
        (out, None)
    }

    fn limits(idle_s: Option<u32>) -> DataLimits {
        DataLimits::from_seconds(100, idle_s)
    }

    fn b(at: u64, bytes: &[u8]) -> Burst {
        (at, bytes.to_vec())
    }

    #[test]
    fn ends_and_edges() {
        let cases: &[(&str, Option<u32>, &[Burst], &[u8], Option<(End, u64)>)] = &[
            (
                "escape after data",
                None,
                &[b(0, b"abc"), b(1000, b"+++")],
                b"abc",
                Some((End::Escape, 2000)),
            ),
            (
                "escape right at start",
                None,
                &[b(1000, b"+++")],
                b"",
                Some((End::Escape, 2000)),
            ),
            (
                "no guard before: data",
                None,
                &[b(0, b"abc"), b(999, b"+++")],
                b"abc+++",
                Some((End::TimeLimit, 100_000)),
            ),
            (
                "+++ inside a burst",
                None,
                &[b(5000, b"a+++b"), b(9000, b"c")],
                b"a+++bc",
                Some((End::TimeLimit, 100_000)),
            ),
            (
                "+++ then data in the guard",
                None,
                &[b(2000, b"+++"), b(2999, b"x")],
                b"+++x",
                Some((End::TimeLimit, 100_000)),
            ),
            (
                "++++ is data",
                None,
                &[b(2000, b"++++")],
                b"++++",
                Some((End::TimeLimit, 100_000)),
            ),
            (
                "+ + + over pauses",
                None,
                &[b(2000, b"+"), b(2500, b"+"), b(2600, b"+")],
                b"",
                Some((End::Escape, 3600)),
            ),
            (
                "++ then letter",
                None,
                &[b(2000, b"++"), b(2100, b"z")],
                b"++z",
                Some((End::TimeLimit, 100_000)),
            ),
            (
                "idle ends",
                Some(3),
                &[b(10, b"body")],
                b"body",
                Some((End::Idle, 3010)),
            ),
            (
                "idle keeps held +",
                Some(3),
                &[b(10, b"x"), b(2000, b"++")],
                b"x++",
                Some((End::Idle, 5000)),
            ),
            (
                "late push after escape",
                None,
                &[b(1000, b"+++"), b(2500, b"AT")],
                b"",
                Some((End::Escape, 2500)),
            ),
            (
                "time limit",
                None,
                &[b(10, b"x")],
                b"x",
                Some((End::TimeLimit, 100_000)),
            ),
        ];
        for (name, idle, bursts, payload, end) in cases {
            for cuts in [&[usize::MAX][..], &[1], &[0, 1, 2]] {
                let (out, got) = run(limits(*idle), bursts, cuts, u64::MAX);
                assert_eq!(out, *payload, "{name} {cuts:?}");
                assert_eq!(got, *end, "{name} {cuts:?}");
            }
        }
    }

    #[test]
    fn oversize_aborts_and_exact_cap_passes() {
        let mut l = limits(Some(3));
        l.max_bytes = 10;
        assert_eq!(
            run(l, &[b(0, b"0123456789")], &[3], u64::MAX),
            (b"0123456789".to_vec(), Some((End::Idle, 3000)))
        );
        assert_eq!(
            run(l, &[b(0, b"0123456789x")], &[3], u64::MAX),
            (b"012345678".to_vec(), Some((End::Oversize, 0)))
        );
    }

    #[test]
    fn ended_framer_takes_nothing() {
        let mut f = Framer::new(0, limits(None));
        assert_eq!(f.poll(100_000), Framed::End(End::TimeLimit));
        assert_eq!(f.push(100_001, b"AT\r"), (Framed::End(End::TimeLimit), 0));
        assert_eq!(f.next_deadline(), None);
    }

    fn bursts() -> impl Strategy<Value = Vec<(u64, Vec<u8>)>> {
        let byte = prop_oneof![Just(b'+'), Just(b'+'), any::<u8>()];
        proptest::collection::vec((0u64..2500, proptest::collection::vec(byte, 0..8)), 0..12)
            .prop_map(|gaps| {
                let mut t = 0;
                gaps.into_iter()
                    .map(|(gap, bytes)| {
                        t += gap;
                        (t, bytes)
                    })
                    .collect()
            })
    }

    proptest! {
        #[test]
        fn any_split_of_a_burst_gives_the_same_payload_and_end(
            bursts in bursts(),
            cuts in proptest::collection::vec(0usize..4, 1..6),
            idle in proptest::option::of(3u32..5),
        ) {
            let whole = run(limits(idle), &bursts, &[usize::MAX], u64::MAX);
            prop_assert_eq!(run(limits(idle), &bursts, &cuts, u64::MAX), whole);
        }

        #[test]
        fn plus_runs_inside_flowing_data_are_data(
            chunks in proptest::collection::vec(proptest::collection::vec(prop_oneof![Just(b'+'), any::<u8>()], 1..64), 1..40),
        ) {
            // Bursts 10 ms apart: never a guard time of silence.
            let bursts: Vec<Burst> = chunks.iter().enumerate().map(|(i, c)| (10 * i as u64, c.clone())).collect();
            let all: Vec<u8> = chunks.concat();
            let (out, end) = run(limits(Some(3)), &bursts, &[7], u64::MAX);
            prop_assert_eq!(out, all);
            prop_assert_eq!(end.map(|e| e.0), Some(End::Idle));
        }
    }
}
