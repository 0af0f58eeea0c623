//! The host side of the virtual module: stdio, a pseudo-terminal, or a
//! real serial port (`--device`), and pacing at a serial line's speed.
//!
//! What it does: opens the line the host talks on, starts the thread that
//! reads it (stamping each read with its arrival time, because the `+++`
//! guard times are about arrival, not about when the main loop gets to the
//! bytes), and gives the main loop a writer for answers and URCs.
//!
//! What it does not: interpret any byte. A pty is put in raw mode so no
//! line discipline edits, echoes or translates what the host sends; echo
//! is the module's `ATE1`, done by the modem like the real one.
//!
//! A real port (a USB-serial adapter wired to the host's MCU) is put in
//! raw mode too, at the `--baud` rate, 8N1, and with RTS/CTS when asked
//! (`--rtscts`, or `AT&K3` later): the modem reads it on a thread that
//! stops reading when the engine cannot take more, so the kernel's buffer
//! fills and the driver deasserts RTS, which holds the host's UART.
//!
//! Why a pty is held open by the modem itself: a host program (pyserial,
//! a terminal) may open and close the device many times; while the modem
//! holds the slave side, the master never sees a hang-up in between.

use nix::pty::{openpty, OpenptyResult};
use nix::sys::termios::{
    cfmakeraw, cfsetspeed, tcgetattr, tcsetattr, BaudRate, ControlFlags, SetArg,
    SpecialCharacterIndices,
};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A pseudo-terminal served by the modem.
pub struct Pty {
    master: File,
    /// Held open so the line stays up between host opens.
    _slave: OwnedFd,
    pub path: PathBuf,
}

impl Pty {
    /// Opens a raw-mode pseudo-terminal.
    pub fn open() -> Result<Self, String> {
        let OpenptyResult { master, slave } =
            openpty(None, None).map_err(|e| format!("opening a pty: {e}"))?;
        let mut termios = tcgetattr(&slave).map_err(|e| format!("pty termios: {e}"))?;
        cfmakeraw(&mut termios);
        tcsetattr(&slave, SetArg::TCSANOW, &termios).map_err(|e| format!("pty termios: {e}"))?;
        let path = nix::unistd::ttyname(&slave).map_err(|e| format!("pty name: {e}"))?;
        Ok(Pty {
            master: File::from(master),
            _slave: slave,
            path,
        })
    }

    /// A reader and a writer over the master side.
    pub fn split(&self) -> Result<(File, File), String> {
        let reader = self.master.try_clone().map_err(|e| e.to_string())?;
        let writer = self.master.try_clone().map_err(|e| e.to_string())?;
        Ok((reader, writer))
    }
}

/// A real serial port (or a pty's slave standing in for one).
pub struct Device {
    port: File,
    path: PathBuf,
}

impl Device {
    /// Opens `path` raw at `baud`, 8N1, RTS/CTS when `rtscts`.
    pub fn open(path: &Path, baud: u32, rtscts: bool) -> Result<Self, String> {
        if baud_rate(baud).is_none() {
            return Err(format!(
                "--baud {baud}: not a rate a serial port takes (300 to 921600)"
            ));
        }
        let port = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NOCTTY)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let device = Device {
            port,
            path: path.to_path_buf(),
        };
        let mut t = tcgetattr(&device.port).map_err(|e| device.error(e))?;
        cfmakeraw(&mut t);
        // Local line: no modem-control hang-ups; the receiver on.
        t.control_flags |= ControlFlags::CLOCAL | ControlFlags::CREAD;
        t.control_flags &= !(ControlFlags::CSTOPB | ControlFlags::PARENB);
        t.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
        t.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
        tcsetattr(&device.port, SetArg::TCSANOW, &t).map_err(|e| device.error(e))?;
        device.set_baud(baud)?;
        device.set_rtscts(rtscts)?;
        Ok(device)
    }

    fn error(&self, e: nix::Error) -> String {
        format!("{}: {e}", self.path.display())
    }

    /// The line's rate (`--baud`, `AT+IPR`).
    pub fn set_baud(&self, baud: u32) -> Result<(), String> {
        let rate =
            baud_rate(baud).ok_or_else(|| format!("{baud} is not a rate a serial port takes"))?;
        let mut t = tcgetattr(&self.port).map_err(|e| self.error(e))?;
        cfsetspeed(&mut t, rate).map_err(|e| self.error(e))?;
        // After what was written has left: a new rate applies to what
        // follows the answer that set it (V.250's +IPR).
        tcsetattr(&self.port, SetArg::TCSADRAIN, &t).map_err(|e| self.error(e))
    }

    /// RTS/CTS flow control on or off (`--rtscts`, `AT&K3`, `AT&K0`).
    pub fn set_rtscts(&self, on: bool) -> Result<(), String> {
        let mut t = tcgetattr(&self.port).map_err(|e| self.error(e))?;
        t.control_flags.set(ControlFlags::CRTSCTS, on);
        tcsetattr(&self.port, SetArg::TCSANOW, &t).map_err(|e| self.error(e))
    }

    /// A reader and a writer over the port.
    pub fn split(&self) -> Result<(File, File), String> {
        let reader = self.port.try_clone().map_err(|e| e.to_string())?;
        let writer = self.port.try_clone().map_err(|e| e.to_string())?;
        Ok((reader, writer))
    }
}

/// The termios rate for `baud`, for the rates serial ports have.
pub fn baud_rate(baud: u32) -> Option<BaudRate> {
    Some(match baud {
        300 => BaudRate::B300,
        600 => BaudRate::B600,
        1200 => BaudRate::B1200,
        2400 => BaudRate::B2400,
        4800 => BaudRate::B4800,
        9600 => BaudRate::B9600,
        19200 => BaudRate::B19200,
        38400 => BaudRate::B38400,
        57600 => BaudRate::B57600,
        115200 => BaudRate::B115200,
        230400 => BaudRate::B230400,
        460800 => BaudRate::B460800,
        921600 => BaudRate::B921600,
        _ => return None,
    })
}

/// The most one read of the host line takes.
pub const READ_MAX: usize = 4096;

/// Reads the host line on its own thread until it ends, handing each read
/// and its arrival time (ms since `start`) to `send`; `send` returns false
/// when nobody listens any more. Ends with `None`.
pub fn spawn_reader<R, F>(mut source: R, start: Instant, mut send: F)
where
    R: Read + Send + 'static,
    F: FnMut(Option<(u64, Vec<u8>)>) -> bool + Send + 'static,
{
    std::thread::spawn(move || {
        let mut buf = [0u8; READ_MAX];
        loop {
            match source.read(&mut buf) {
                Ok(n) if n > 0 => {
                    let at = start.elapsed().as_millis() as u64;
                    if !send(Some((at, buf[..n].to_vec()))) {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                _ => {
                    send(None);
                    return;
                }
            }
        }
    });
}

/// A writer that sends no faster than a serial line at `baud` (8N1: ten
/// bits a byte), in slices of about 10 ms so the pace is even.
pub struct Paced<W> {
    inner: W,
    byte_time: Duration,
    slice: usize,
    free_at: Instant,
}

impl<W: Write> Paced<W> {
    pub fn new(inner: W, baud: u32) -> Self {
        let baud = baud.max(1);
        Paced {
            inner,
            byte_time: Duration::from_secs(10) / baud,
            slice: (baud as usize / 1000).max(1),
            free_at: Instant::now(),
        }
    }
}

impl<W: Write> Write for Paced<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(self.slice);
        let now = Instant::now();
        if self.free_at > now {
            std::thread::sleep(self.free_at - now);
        }
        self.inner.write_all(&buf[..n])?;
        self.inner.flush()?;
        self.free_at = self.free_at.max(now) + self.byte_time * n as u32;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_slices_writes_and_never_runs_ahead_of_the_baud_rate() {
        let mut paced = Paced::new(Vec::new(), 9600);
        assert_eq!(paced.write(&[b'x'; 100]).unwrap(), 9);
        let start = Instant::now();
        paced.write_all(&[b'y'; 960]).unwrap();
        // 960 bytes at 960 bytes/s; the first slice may go at once.
        assert!(start.elapsed() >= Duration::from_millis(990));
        assert_eq!(paced.inner.len(), 969);
    }
}
