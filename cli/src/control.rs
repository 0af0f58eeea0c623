//! `--control PATH`: the network's events on demand, from a Unix socket.
//!
//! What it does: listens on a Unix stream socket; each line a client
//! writes is one event for the module's network, handed to the modem's
//! loop, and answered `ok` or `error: <why>` on the same connection once
//! the loop has applied it (so a test that reads the answer knows the
//! URCs are already on the host line):
//!
//! ```text
//! registration home|roaming|searching|denied|unregistered
//! data-call lost
//! sim drop | sim ready
//! signal <rssi> <ber>
//! ```
//!
//! What it does not: accept more than one client at a time (each is
//! served to its end, then the next), or persist anything.
//!
//! Why a socket and not the profile: a host developer's test decides when
//! the network goes (in the middle of DATA, between two mails), which a
//! schedule in a file can only guess at; and the socket waits for the
//! loop, so no test sleeps.

use crate::basic::Change;
use crate::profile::{registration_stat, REGISTRATIONS};
use crossbeam_channel::{bounded, Sender};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

/// One event from a client, and where its answer goes.
pub struct Request {
    pub change: Change,
    pub done: Sender<()>,
}

/// The socket's path, removed when the modem ends.
pub struct Control {
    path: PathBuf,
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Listens on `path` (which must not exist) and hands each event to
/// `to_loop`.
pub fn listen(path: &Path, to_loop: Sender<Request>) -> Result<Control, String> {
    let listener =
        UnixListener::bind(path).map_err(|e| format!("--control {}: {e}", path.display()))?;
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(mut answers) = client.try_clone() else {
                continue;
            };
            for line in BufReader::new(client).lines() {
                let Ok(line) = line else { break };
                let answer = match parse(&line) {
                    Ok(change) => {
                        let (done, applied) = bounded(1);
                        if to_loop.send(Request { change, done }).is_err() {
                            return;
                        }
                        match applied.recv() {
                            Ok(()) => "ok".to_owned(),
                            Err(_) => return,
                        }
                    }
                    Err(why) => format!("error: {why}"),
                };
                if writeln!(answers, "{answer}").is_err() {
                    break;
                }
            }
        }
    });
    Ok(Control {
        path: path.to_path_buf(),
    })
}

/// One line as a [`Change`].
pub fn parse(line: &str) -> Result<Change, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["registration", name] => registration_stat(name)
            .map(Change::Registration)
            .ok_or_else(|| format!("registration {name:?}: expected {REGISTRATIONS}")),
        ["data-call", "lost"] => Ok(Change::DataCallLost),
        ["sim", "drop"] => Ok(Change::Sim(false)),
        ["sim", "ready"] => Ok(Change::Sim(true)),
        ["signal", rssi, ber] => {
            let rssi: u8 = rssi.parse().map_err(|_| format!("rssi {rssi:?}: expected 0-31 or 99"))?;
            let ber: u8 = ber.parse().map_err(|_| format!("ber {ber:?}: expected 0-7 or 99"))?;
            if !(rssi <= 31 || rssi == 99) || !(ber <= 7 || ber == 99) {
                return Err(format!("signal {rssi} {ber}: rssi is 0-31 or 99, ber 0-7 or 99"));
            }
            Ok(Change::Signal(rssi, ber))
        }
        _ => Err(format!(
            "{line:?}: expected registration <state>, data-call lost, sim drop, sim ready or signal <rssi> <ber>"
        )),
    }
}
