//! The host's serial line in command mode: V.250 command-line editing.
//!
//! What it does: [`LineEditor`] takes the host's bytes one at a time and
//! assembles command lines as ITU-T V.250 §5.2 describes them: characters
//! before `AT` (or `at`) are ignored, CR (S3) ends a line, an LF right
//! after the CR belongs to the line ending (ignored, never echoed),
//! backspace (S5, 0x08) erases the previous character (echoed as
//! BS SP BS, as modems do), and a line longer than [`LINE_MAX`] is
//! refused whole, never cut into a different command. Each byte says
//! what to echo ([`Edit`]).
//!
//! It also learns how the host ends its lines ([`LineEditor::crlf_host`]),
//! from the byte after each CR: that is what a data command needs, where
//! the byte after the command's CR may be payload. A host that has shown
//! CRLF has the LF after a data command dropped; a host that ends lines
//! with CR alone keeps every byte. The payload itself is never looked at
//! to guess. That rule is written here once, for every mode that takes
//! the line over ([`LineEditor::hand_over`], [`LineEditor::line_end`]).
//!
//! What it does not: decide what a line means, answer it, or handle data
//! mode; the session does. It keeps no clock: line editing does not
//! depend on time, so an LF that comes late still ends the line before it.
//!
//! Why it is built this way: one byte-at-a-time state machine, fed by
//! slices of any size, fits both a UART interrupt and a `read(n)` loop,
//! and puts the line buffer inside the engine so that no caller writes a
//! line assembler of its own.

use crate::index;
use core::mem::MaybeUninit;
use core::ptr::addr_of_mut;
use zeroize::Zeroize;

/// The longest command line kept, `AT` included: the longest valid
/// `+GTSMTP*` line (`AT+GTSMTPLAND=65535,"<255 bytes>",1`, 282 bytes)
/// with room for spaces around its parameters.
pub const LINE_MAX: usize = 300;

/// V.250's S5, the command-line editing character.
pub const BACKSPACE: u8 = 0x08;

/// What one byte did, and so what the line echoes for it (when echo is on).
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edit {
    /// Nothing to echo: the LF of a CRLF line ending, or a backspace with
    /// nothing to erase.
    Silent,
    /// Echo the byte itself.
    Echo,
    /// A character was erased: echo BS SP BS.
    Erase,
    /// The CR ended a command line (echo the CR): read it with
    /// [`LineEditor::line`], then [`LineEditor::clear`] it.
    Line,
    /// The CR ended a line longer than [`LINE_MAX`] (echo the CR): refuse
    /// it with `ERROR`. The editor is already cleared.
    Overlong,
}

/// Where the editor is in a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prefix {
    /// Looking for the `A` of `AT`; bytes are ignored.
    Seeking,
    /// Seen `A`; looking for `T`.
    A,
    /// Seen `AT`: the line is being kept.
    Line,
}

/// The command-line editor; see the module docs.
///
/// ```
/// use atmail_core::line::{LineEditor, Edit, BACKSPACE};
/// let mut e = LineEditor::new();
/// for &b in b"xxAT+GTSMTPLANX" {
///     let _ = e.push(b);
/// }
/// assert_eq!(e.push(BACKSPACE), Edit::Erase);
/// for &b in b"D?" {
///     let _ = e.push(b);
/// }
/// assert_eq!(e.push(b'\r'), Edit::Line);
/// assert_eq!(e.line(), b"AT+GTSMTPLAND?");
/// e.clear();
/// assert_eq!(e.push(b'\n'), Edit::Silent); // the LF of CRLF
/// assert!(e.crlf_host());
/// ```
#[derive(Clone)]
pub struct LineEditor {
    /// The line from its `AT`; `len` bytes are valid.
    buf: [u8; LINE_MAX],
    len: u16,
    /// Characters typed past [`LINE_MAX`]: a backspace erases these first,
    /// and a CR with any left refuses the line.
    overflow: u16,
    prefix: Prefix,
    /// The previous byte was a CR: an LF now is part of its line ending.
    after_cr: bool,
    /// The host ended its last line with CRLF (learnt from the byte after
    /// each CR; CR alone until shown otherwise).
    crlf: bool,
    /// The line was handed over and the LF of its CRLF ending is still due.
    lf_due: bool,
}

impl Default for LineEditor {
    fn default() -> Self {
        Self::new()
    }
}

impl LineEditor {
    /// An empty line, for a host whose line ending is not known yet.
    pub const fn new() -> Self {
        LineEditor {
            buf: [0; LINE_MAX],
            len: 0,
            overflow: 0,
            prefix: Prefix::Seeking,
            after_cr: false,
            crlf: false,
            lf_due: false,
        }
    }

    /// Makes an empty line in `slot`, as [`LineEditor::new`] would, without
    /// first building it on the stack (see
    /// [`Session::init_in`](crate::session::Session::init_in)).
    #[allow(unsafe_code)]
    pub(crate) fn init_in(slot: &mut MaybeUninit<Self>) -> &mut Self {
        // Stops compiling when a field is added, so none is left unwritten.
        let _ = |e: Self| {
            let LineEditor {
                buf: _,
                len: _,
                overflow: _,
                prefix: _,
                after_cr: _,
                crlf: _,
                lf_due: _,
            } = e;
        };
        let p = slot.as_mut_ptr();
        // SAFETY: `p` is valid for writes and aligned (it comes from a
        // `&mut`); each field is written through its own place, zero is a
        // valid `u8`, and after the writes every field is initialised.
        unsafe {
            addr_of_mut!((*p).buf).write_bytes(0, 1);
            addr_of_mut!((*p).len).write(0);
            addr_of_mut!((*p).overflow).write(0);
            addr_of_mut!((*p).prefix).write(Prefix::Seeking);
            addr_of_mut!((*p).after_cr).write(false);
            addr_of_mut!((*p).crlf).write(false);
            addr_of_mut!((*p).lf_due).write(false);
            slot.assume_init_mut()
        }
    }

    /// Takes one host byte in command mode; says what to echo.
    pub fn push(&mut self, b: u8) -> Edit {
        if core::mem::take(&mut self.after_cr) {
            self.crlf = b == b'\n';
            if self.crlf {
                return Edit::Silent;
            }
        }
        match b {
            b'\r' => self.end(),
            BACKSPACE => self.erase(),
            _ => {
                self.keep(b);
                Edit::Echo
            }
        }
    }

    /// The line that [`Edit::Line`] announced, from its `AT`.
    pub fn line(&self) -> &[u8] {
        index::get(&self.buf, ..self.len as usize)
    }

    /// Forgets the line, ready for the next one: its bytes are wiped (an
    /// `AT+GTSMTPID` line holds a password), erased ones included.
    pub fn clear(&mut self) {
        self.buf.zeroize();
        self.len = 0;
        self.overflow = 0;
        self.prefix = Prefix::Seeking;
    }

    /// Whether the host ends its lines with CRLF, as far as its earlier
    /// lines showed.
    pub const fn crlf_host(&self) -> bool {
        self.crlf
    }

    /// The line just ended is a data command: the bytes after its CR are
    /// no longer the editor's, but the mode's it started. The first of
    /// them is still the line's when it is the LF of a
    /// [`crlf_host`](Self::crlf_host), or of any host when the payload can
    /// never hold an LF (`lf_is_line_end`, a token): see
    /// [`line_end`](Self::line_end).
    pub fn hand_over(&mut self, lf_is_line_end: bool) {
        self.after_cr = false;
        self.lf_due = self.crlf || lf_is_line_end;
    }

    /// How many of the first bytes after a [`hand_over`](Self::hand_over)
    /// are still the line's ending (0 or 1): call it with every input the
    /// mode gets; only the first byte can be.
    pub fn line_end(&mut self, input: &[u8]) -> usize {
        match input.first() {
            Some(&b) => usize::from(core::mem::take(&mut self.lf_due) && b == b'\n'),
            None => 0,
        }
    }

    fn end(&mut self) -> Edit {
        self.after_cr = true;
        let step = match (self.prefix, self.overflow) {
            (Prefix::Line, 0) => return Edit::Line,
            (Prefix::Line, _) => Edit::Overlong,
            // No `AT`: not a command line; V.250 ignores it.
            _ => Edit::Echo,
        };
        self.clear();
        step
    }

    fn erase(&mut self) -> Edit {
        if self.overflow > 0 {
            self.overflow -= 1;
            return Edit::Erase;
        }
        if self.len == 0 {
            return Edit::Silent;
        }
        self.len -= 1;
        self.prefix = match self.len {
            0 => Prefix::Seeking,
            1 => Prefix::A,
            _ => Prefix::Line,
        };
        Edit::Erase
    }

    fn keep(&mut self, b: u8) {
        match self.prefix {
            Prefix::Seeking | Prefix::A if b.eq_ignore_ascii_case(&b'a') => {
                self.buf[0] = b;
                self.len = 1;
                self.prefix = Prefix::A;
            }
            Prefix::A if b.eq_ignore_ascii_case(&b't') => {
                self.buf[1] = b;
                self.len = 2;
                self.prefix = Prefix::Line;
            }
            Prefix::Seeking | Prefix::A => self.clear(),
            Prefix::Line if (self.len as usize) < LINE_MAX => {
                self.buf[self.len as usize] = b;
                self.len += 1;
            }
            Prefix::Line => self.overflow = self.overflow.saturating_add(1),
        }
    }
}

/// The line may be an `AT+GTSMTPID` line: `Debug` shows its length only.
impl core::fmt::Debug for LineEditor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LineEditor")
            .field("len", &self.len)
            .field("crlf", &self.crlf)
            .finish()
    }
}

/// A line being typed may be an `AT+GTSMTPID` line: wiped on drop too.
impl Drop for LineEditor {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// Feeds `input`; returns the lines (or `None` for an overlong one) and
    /// what was echoed.
    fn run(e: &mut LineEditor, input: &[u8]) -> (Vec<Option<Vec<u8>>>, Vec<u8>) {
        let (mut lines, mut echo) = (Vec::new(), Vec::new());
        for &b in input {
            match e.push(b) {
                Edit::Silent => {}
                Edit::Echo => echo.push(b),
                Edit::Erase => echo.extend_from_slice(b"\x08 \x08"),
                Edit::Line => {
                    echo.push(b);
                    lines.push(Some(e.line().to_vec()));
                    e.clear();
                }
                Edit::Overlong => {
                    echo.push(b);
                    lines.push(None);
                }
            }
        }
        (lines, echo)
    }

    fn lines(input: &[u8]) -> Vec<Option<Vec<u8>>> {
        run(&mut LineEditor::new(), input).0
    }

    #[test]
    fn table() {
        let some = |l: &[u8]| Some(l.to_vec());
        let cases: &[(&str, &[u8], Vec<Option<Vec<u8>>>)] = &[
            ("cr", b"AT\rat+x\r", vec![some(b"AT"), some(b"at+x")]),
            ("crlf", b"AT\r\nAT+X\r\n", vec![some(b"AT"), some(b"AT+X")]),
            ("noise before AT", b"\x00zzxAAT+X\r", vec![some(b"AT+X")]),
            ("no AT at all", b"hello\r", vec![]),
            ("mixed case prefix", b"aT+x\r", vec![some(b"aT+x")]),
            (
                "backspace",
                b"AT+GTSMTPLANX\x08D?\r",
                vec![some(b"AT+GTSMTPLAND?")],
            ),
            (
                "backspace into the prefix",
                b"AT\x08\x08AT\r",
                vec![some(b"AT")],
            ),
            ("backspace on nothing", b"\x08\x08AT\r", vec![some(b"AT")]),
            (
                "lf inside a line is kept",
                b"AT+X\nY\r",
                vec![some(b"AT+X\nY")],
            ),
            ("lf alone ends nothing", b"AT+X\n", vec![]),
            (
                "second lf is a character",
                b"AT\r\n\nAT\r",
                vec![some(b"AT"), some(b"AT")],
            ),
        ];
        for (name, input, want) in cases {
            assert_eq!(&lines(input), want, "{name}");
        }
    }

    #[test]
    fn an_overlong_line_is_refused_whole_and_backspace_can_save_it() {
        let mut long = b"AT+GTSMTPHEAD=1,\"".to_vec();
        long.resize(LINE_MAX + 5, b'a');
        let mut refused = long.clone();
        refused.push(b'\r');
        assert_eq!(lines(&refused), vec![None]);
        let mut saved = long.clone();
        saved.extend_from_slice(&[BACKSPACE; 6]);
        saved.push(b'\r');
        assert_eq!(lines(&saved), vec![Some(long[..LINE_MAX - 1].to_vec())]);
        // The line after an overlong one is whole again.
        refused.extend_from_slice(b"AT\r");
        assert_eq!(lines(&refused), vec![None, Some(b"AT".to_vec())]);
    }

    #[test]
    fn echo_follows_v250() {
        let (_, echo) = run(&mut LineEditor::new(), b"AT+X\x08Y\r\nAT\r");
        assert_eq!(echo, b"AT+X\x08 \x08Y\rAT\r");
    }

    #[test]
    fn the_line_ending_is_learnt_from_the_byte_after_each_cr() {
        let mut e = LineEditor::new();
        assert!(!e.crlf_host());
        let _ = run(&mut e, b"AT\r\n");
        assert!(e.crlf_host());
        let _ = run(&mut e, b"AT\rAT");
        assert!(!e.crlf_host());
        let _ = run(&mut e, b"\r");
        // A data command takes the byte after its CR for itself.
        let _ = run(&mut e, b"AT\r\nAT\r");
        assert!(e.crlf_host());
        e.hand_over(false);
        assert_eq!(e.push(b'\n'), Edit::Echo, "no longer the line's LF");
    }

    #[test]
    fn the_lf_after_a_handed_over_line_is_the_lines_once() {
        // (line, token-like payload, input after the CR, bytes of it that are line end)
        let table: &[(&[u8], bool, &[u8], &[usize])] = &[
            (b"AT\r\nAT\r", false, b"\nx", &[1, 0]),
            (b"AT\r\nAT\r", false, b"x\n", &[0, 0]),
            (b"AT\rAT\r", false, b"\nx", &[0, 0]),
            (b"AT\rAT\r", true, b"\nx", &[1, 0]),
            (b"AT\r", true, b"\n\n", &[1, 0]),
            (b"AT\r\nAT\r", false, b"", &[0]),
        ];
        for &(line, token, input, expect) in table {
            let mut e = LineEditor::new();
            let _ = run(&mut e, line);
            e.hand_over(token);
            // Offered byte by byte, as a UART does; an empty input first.
            let got: std::vec::Vec<usize> = core::iter::once(&[][..])
                .chain(input.chunks(1))
                .map(|c| e.line_end(c))
                .skip(1)
                .collect();
            let want = if input.is_empty() { &[][..] } else { expect };
            assert_eq!(got, want, "{line:?} {token} {input:?}");
        }
    }

    proptest::proptest! {
        /// Any split of the input gives the same lines: the editor works
        /// byte by byte, so this guards the test helpers' use as well.
        #[test]
        fn any_input_gives_lines_of_at_most_line_max(input in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::strategy::Just(b'\r'),
                proptest::strategy::Just(b'\n'),
                proptest::strategy::Just(BACKSPACE),
                proptest::strategy::Just(b'A'),
                proptest::strategy::Just(b'T'),
                proptest::prelude::any::<u8>(),
            ],
            0..2000,
        )) {
            for line in lines(&input).into_iter().flatten() {
                proptest::prop_assert!(line.len() <= LINE_MAX);
                proptest::prop_assert!(line[..2].eq_ignore_ascii_case(b"AT"));
            }
        }
    }
}
