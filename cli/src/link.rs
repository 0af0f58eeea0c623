//! The modem's connection to the mail server: plain TCP, TCP under TLS
//! (implicit, port-465 style, or after STARTTLS), or the in-process
//! Maildir server.
//!
//! What it does: turns the session's plaintext into bytes on the wire,
//! turns the wire's bytes back into plaintext, and says when a TLS
//! handshake has finished so the modem can tell the session. Certificates
//! are checked by rustls against the system roots or the `--tls-ca` file;
//! a failed check closes the connection, it never falls back to plaintext.
//!
//! What it does not: read the socket, or decide when bytes go on it. A
//! reader thread hands the raw bytes in, so the TLS state lives with the
//! main loop alone and needs no lock; what is to go out is handed back as
//! wire bytes (TLS records, or the plaintext on a plain link), which the
//! modem sends now or through its link shaping (`shaping`), and then
//! gives to [`Link::deliver`].
//!
//! Why it is built this way: rustls' `ClientConnection` is sans-IO like the
//! session (`read_tls`/`write_tls` over caller bytes), so the two stack
//! without a thread or buffer between them.

use crate::maildir::MaildirSink;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use std::io::{self, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

/// Why a TLS handshake was started, which says what its end means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handshake {
    /// SMTPS: the SMTP conversation starts once TLS is up.
    Implicit,
    /// STARTTLS: the conversation goes on with a new EHLO once TLS is up.
    StartTls,
}

/// A live connection to the server.
pub enum Link {
    Tcp {
        stream: TcpStream,
        tls: Option<Box<Tls>>,
    },
    Maildir(MaildirSink),
}

/// TLS over a TCP link, and the handshake still in progress, if any.
pub struct Tls {
    conn: ClientConnection,
    pending: Option<Handshake>,
}

/// What the server's raw bytes turned into.
#[derive(Default)]
pub struct Received {
    pub plaintext: Vec<u8>,
    /// A handshake that finished with these bytes.
    pub handshake_done: Option<Handshake>,
}

/// The certificate roots: the `--tls-ca` file alone when given (as with
/// curl's `--cacert`), else the system's.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("{}: no PEM certificate in it", path.display()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    if roots.is_empty() {
        return Err("no system certificate roots found (give --tls-ca FILE)".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl Link {
    /// Starts TLS towards `host` (the configured server name, which the
    /// certificate must match even when `--connect` redirects the socket);
    /// its first flight goes into `wire`.
    pub fn start_tls(
        &mut self,
        config: Arc<ClientConfig>,
        host: &str,
        why: Handshake,
        wire: &mut Vec<u8>,
    ) -> Result<(), String> {
        let Link::Tcp { tls, .. } = self else {
            return Err("TLS is not available on this link".into());
        };
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| format!("{host:?} is not a valid TLS server name"))?;
        let conn = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
        let mut started = Tls {
            conn,
            pending: Some(why),
        };
        started
            .flush(wire)
            .map_err(|e| format!("TLS handshake: {e}"))?;
        *tls = Some(Box::new(started));
        Ok(())
    }

    /// The address of the connection's local end (none in-process), for
    /// the EHLO name.
    pub fn local_ip(&self) -> Option<std::net::IpAddr> {
        match self {
            Link::Tcp { stream, .. } => stream.local_addr().ok().map(|a| a.ip()),
            Link::Maildir(_) => None,
        }
    }

    /// The session's plaintext, as the bytes that go on the wire.
    pub fn write(&mut self, bytes: &[u8], wire: &mut Vec<u8>) -> io::Result<()> {
        match self {
            Link::Tcp { tls: Some(tls), .. } => tls.write(wire, bytes),
            _ => {
                wire.extend_from_slice(bytes);
                Ok(())
            }
        }
    }

    /// Puts wire bytes on the wire: the socket, or the in-process server.
    pub fn deliver(&mut self, wire: &[u8]) -> io::Result<()> {
        match self {
            Link::Tcp { stream, .. } => stream.write_all(wire),
            Link::Maildir(sink) => sink.write(wire),
        }
    }

    /// Takes the server's raw bytes; what TLS answers goes into `wire`.
    pub fn receive(&mut self, raw: &[u8], wire: &mut Vec<u8>) -> Result<Received, String> {
        match self {
            Link::Tcp { tls: Some(tls), .. } => tls.receive(wire, raw),
            _ => Ok(Received {
                plaintext: raw.to_vec(),
                handshake_done: None,
            }),
        }
    }

    /// Ends the connection, with a TLS close_notify when TLS is up (sent
    /// at once: the connection is going). The socket is shut down, not
    /// only dropped: the reader thread holds a clone of it, which a drop
    /// alone would leave open (and the server would never read EOF); shut
    /// down, that read returns and the thread ends.
    pub fn close(self) {
        let Link::Tcp { mut stream, tls } = self else {
            return;
        };
        if let Some(mut tls) = tls {
            tls.conn.send_close_notify();
            let mut wire = Vec::new();
            if tls.flush(&mut wire).is_ok() {
                let _ = stream.write_all(&wire);
            }
        }
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
}

impl Tls {
    /// Encrypts `bytes` in the pieces rustls' buffer limit allows.
    fn write(&mut self, wire: &mut Vec<u8>, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let n = self.conn.writer().write(bytes)?;
            self.flush(wire)?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            bytes = &bytes[n..];
        }
        Ok(())
    }

    fn flush(&mut self, wire: &mut Vec<u8>) -> io::Result<()> {
        while self.conn.wants_write() {
            self.conn.write_tls(wire)?;
        }
        Ok(())
    }

    fn receive(&mut self, wire: &mut Vec<u8>, mut raw: &[u8]) -> Result<Received, String> {
        let mut got = Received::default();
        while !raw.is_empty() {
            self.conn
                .read_tls(&mut raw)
                .map_err(|e| format!("TLS: {e}"))?;
            let state = self.conn.process_new_packets().map_err(|e| {
                // Tell the server why, as TLS asks, before giving up.
                let _ = self.flush(wire);
                format!("TLS: {e}")
            })?;
            let mut plain = vec![0u8; state.plaintext_bytes_to_read()];
            io::Read::read_exact(&mut self.conn.reader(), &mut plain)
                .map_err(|e| format!("TLS: {e}"))?;
            got.plaintext.extend_from_slice(&plain);
        }
        self.flush(wire).map_err(|e| format!("TLS: {e}"))?;
        if self.pending.is_some() && !self.conn.is_handshaking() {
            got.handshake_done = self.pending.take();
        }
        Ok(got)
    }
}
