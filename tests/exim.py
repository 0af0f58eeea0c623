"""A private Exim 4.96 on loopback, configured by the test: STARTTLS with a
CA and leaf the test makes, AUTH (PLAIN and LOGIN) offered only under TLS,
a `message_size_limit`, a HELO that must be a fully qualified name or an
address literal, one recipient refused at RCPT and one deferred, and
delivery into a Maildir the test reads. Its main and reject logs are read
back: they say how each conversation ended, from Exim's side.

Debian's `exim4` packages conflict with `postfix`, so `tools/test` unpacks
`exim4-daemon-light` and `exim4-base` (`apt-get download`, `dpkg -x`) and
links the binary to `/usr/sbin/exim4`, where Exim re-executes itself to
deliver; it runs as root with `-C`, and its files belong to `Debian-exim`."""

import grp
import os
import pathlib
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

from postfix import free_port
from smtp_server import PASSWORD, SERVER_NAME, USER

EXIM = "/usr/sbin/exim4"
EXIM_USER = "Debian-exim"
REFUSED = "refused@fibocom.com"
DEFERRED = "later@fibocom.com"
DEFERRAL = "451 4.3.0 try again later"

CONFIG = r"""
primary_hostname = @name@
exim_user = @user@
exim_group = @user@
never_users = root
daemon_smtp_ports = @port@
local_interfaces = 127.0.0.1
spool_directory = @dir@/spool
log_file_path = @dir@/log/%slog
pid_file_path = @dir@/exim.pid
log_selector = +smtp_connection +smtp_protocol_error +smtp_syntax_error +tls_cipher
host_lookup =
rfc1413_hosts =
keep_environment =
message_size_limit = @size_limit@
tls_advertise_hosts = @tls_hosts@
tls_certificate = @cert@
tls_privatekey = @key@
auth_advertise_hosts = @auth_hosts@
acl_smtp_helo = check_helo
acl_smtp_rcpt = check_rcpt
qualify_domain = fibocom.com

begin acl

check_helo:
  accept condition = ${if match{$sender_helo_name}{\N^\[[0-9a-fA-F:.Iv]+\]$\N}}
  accept condition = ${if match{$sender_helo_name}{\N^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$\N}}
  deny   message = HELO must be a fully qualified name or an address literal

check_rcpt:
  deny   message = no such user here
         recipients = @refused@
  defer  message = try again later
         recipients = @deferred@
  accept authenticated = *
  deny   message = relay not permitted

begin routers

maildir:
  driver = accept
  transport = maildir

begin transports

maildir:
  driver = appendfile
  directory = @dir@/Maildir
  maildir_format
  create_directory
  user = @user@
  group = @user@
  mode = 0640

begin authenticators

plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${if and{{eq{$auth2}{@login@}}{eq{$auth3}{@password@}}}}
  server_set_id = $auth2

login:
  driver = plaintext
  public_name = LOGIN
  server_prompts = Username:: : Password::
  server_condition = ${if and{{eq{$auth1}{@login@}}{eq{$auth2}{@password@}}}}
  server_set_id = $auth1
"""

# What Exim logs when a client leaves without QUIT or talks out of turn
# (over TLS a connection left inside DATA is "lost while reading message
# data").
IMPOLITE = ("unexpected disconnection", "synchronization error", "lost connection", " lost while ")


class Exim:
    """A running private Exim; `stop()` ends it. `port` takes plain SMTP
    with STARTTLS; `messages()` reads the Maildir; `log()` the main and
    reject logs."""

    def __init__(self, certificates, size_limit=10_240_000, plain=False):
        """`plain`: no STARTTLS, AUTH offered in the clear (a relay on a
        private APN; what a proxy that reads the conversation needs)."""
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="atmail-exim-"))
        self.dir.chmod(0o755)
        self.port = free_port()
        user = pwd.getpwnam(EXIM_USER)
        for sub in ("spool", "log", "Maildir"):
            (self.dir / sub).mkdir()
            os.chown(self.dir / sub, user.pw_uid, user.pw_gid)
        cert, key = self.dir / "server.pem", self.dir / "server.key"
        certificates.server.cert_chain_pems[0].write_to_path(str(cert))
        certificates.server.private_key_pem.write_to_path(str(key))
        for path in (cert, key):
            os.chown(path, user.pw_uid, grp.getgrnam(EXIM_USER).gr_gid)
        key.chmod(0o600)
        self.config = self.dir / "exim.conf"
        settings = dict(
                name=SERVER_NAME,
                user=EXIM_USER,
                port=self.port,
                dir=self.dir,
                size_limit=size_limit,
                cert=cert,
                key=key,
                refused=REFUSED,
                deferred=DEFERRED,
                login=USER.decode(),
                password=PASSWORD.decode(),
                tls_hosts="" if plain else "*",
                auth_hosts="*" if plain else "${if eq{$tls_in_cipher}{}{}{*}}",
        )
        text = CONFIG
        for key, value in settings.items():
            text = text.replace(f"@{key}@", str(value))
        self.config.write_text(text)
        # Exim takes a configuration only from root, not writable by others.
        self.config.chmod(0o644)
        self.proc = subprocess.Popen(
            [EXIM, "-C", str(self.config), "-bdf", "-odi"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._wait_ready()

    def _wait_ready(self, timeout=20.0):
        """Waits for the banner and leaves with QUIT: a probe that only
        connects would be logged as an unexpected disconnection."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                    f = s.makefile("rwb")
                    if f.readline().startswith(b"220"):
                        f.write(b"QUIT\r\n")
                        f.flush()
                        f.readline()
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Exim did not start: {self.proc.stderr.read().decode()} {self.log()}")
            time.sleep(0.1)

    def log(self):
        """The main and reject logs, joined."""
        text = ""
        for name in ("mainlog", "rejectlog", "paniclog"):
            path = self.dir / "log" / name
            if path.exists():
                text += path.read_text(errors="replace")
        return text

    def impolite(self):
        """Log lines that say a client left without QUIT or out of turn."""
        return [line for line in self.log().splitlines() if any(word in line for word in IMPOLITE)]

    def messages(self, count=1, timeout=20.0):
        deadline = time.monotonic() + timeout
        new = self.dir / "Maildir" / "new"
        while True:
            files = sorted(new.iterdir()) if new.exists() else []
            if len(files) >= count or time.monotonic() > deadline:
                return [f.read_bytes() for f in files]
            time.sleep(0.05)

    def completed(self, count, timeout=20.0):
        """Waits until the main log holds `count` completed conversations
        (`SMTP connection from ... closed by QUIT`) besides the probe's."""
        deadline = time.monotonic() + timeout
        while True:
            closed = self.log().count("closed by QUIT") - 1
            if closed >= count or time.monotonic() > deadline:
                return closed
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)
