"""A real Postfix for the end-to-end tests: a private instance started by
the test on loopback high ports, with a configuration made here.

It has what real MTAs have and our own harness does not: STARTTLS with a
certificate the test makes (AUTH only under TLS), SMTPS on a second port,
Cyrus SASL with a sasldb the test makes, `reject_invalid_helo_hostname` and
`reject_non_fqdn_helo_hostname`, a `message_size_limit`, and a refused
recipient. It delivers through Postfix's own `virtual` agent into a Maildir
the test reads. Debian's `postfix`, `sasl2-bin` and `libsasl2-modules`
(installed by `tools/test`) provide it; nothing of the system's own Postfix
is used or started."""

import os
import pathlib
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time

from smtp_server import PASSWORD, SERVER_NAME, USER

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
# The recipient Postfix refuses at RCPT, with this reply.
REFUSED = "refused@fibocom.com"
REFUSAL = "550 5.1.1 <refused@fibocom.com>: no such user here"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


MASTER_CF = """\
127.0.0.1:{smtp} inet n - n - - smtpd
127.0.0.1:{smtps} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes -o smtpd_tls_security_level=encrypt
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
tlsmgr    unix - - n 1000? 1 tlsmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
smtp      unix - - n - - smtp
relay     unix - - n - - smtp
showq     unix n - n - - showq
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
local     unix - n n - - local
virtual   unix - n n - - virtual
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.fibocom.test
mydomain = fibocom.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
maillog_file = {log}
maillog_file_prefixes = {dir}
biff = no
alias_maps =
alias_database =
smtputf8_enable = no
message_size_limit = {size_limit}
virtual_mailbox_domains = fibocom.com
virtual_mailbox_base = {mail}
virtual_mailbox_maps = static:maildir/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = 1
smtpd_helo_required = yes
smtpd_helo_restrictions = reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = check_recipient_access inline:{{ {{ {refused} = {refusal} }} }}, permit_sasl_authenticated, reject
smtpd_sasl_auth_enable = {sasl}
smtpd_sasl_type = {sasl_type}
smtpd_sasl_path = {sasl_path}
smtpd_sasl_security_options = noanonymous
smtpd_tls_security_level = {tls_level}
smtpd_tls_auth_only = {tls_auth_only}
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
"""

SASL_CONF = """\
pwcheck_method: auxprop
auxprop_plugin: sasldb
mech_list: PLAIN LOGIN
sasldb_path: {sasldb}
"""


class Postfix:
    """A running private Postfix; `stop()` ends it (the fixture calls it
    however the test ends). `smtp` is the STARTTLS port, `smtps` the
    implicit-TLS one; `messages()` reads what was delivered."""

    def __init__(self, certificates, size_limit=10_240_000, plain=False, dovecot=None, auth_before_tls=False,
                 sasl=True):
        """`plain`: port `smtp` offers no STARTTLS and takes AUTH in the
        clear (a relay on a private APN). `auth_before_tls`: STARTTLS
        offered, and AUTH offered and taken before it too (a server many
        clients meet; what a man in the middle who deletes STARTTLS
        relies on). `sasl` False: no AUTH at all. `dovecot`: a running
        `dovecot.Dovecot` is the SASL server (XOAUTH2 and OAUTHBEARER)
        instead of Cyrus's sasldb (PLAIN and LOGIN)."""
        # Postfix's daemons run as `postfix` and `nobody`: their directories
        # must be reachable by them, which a test's own tmp_path is not.
        directory = pathlib.Path(tempfile.mkdtemp(prefix="atmail-postfix-"))
        directory.chmod(0o755)
        self.dir = directory
        self.config = directory / "etc"
        self.mail = directory / "mail"
        self.log = directory / "postfix.log"
        self.smtp, self.smtps = free_port(), free_port()
        nobody = pwd.getpwnam("nobody")
        for sub in ("etc/sasl", "spool", "lib", "mail"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        os.chown(self.mail, nobody.pw_uid, nobody.pw_gid)
        postfix = pwd.getpwnam("postfix")
        os.chown(directory / "lib", postfix.pw_uid, postfix.pw_gid)
        cert, key = directory / "server.pem", directory / "server.key"
        certificates.server.cert_chain_pems[0].write_to_path(str(cert))
        certificates.server.private_key_pem.write_to_path(str(key))
        key.chmod(0o600)
        (self.config / "master.cf").write_text(MASTER_CF.format(smtp=self.smtp, smtps=self.smtps))
        (self.config / "main.cf").write_text(
            MAIN_CF.format(
                queue=directory / "spool",
                data=directory / "lib",
                log=self.log,
                dir=directory,
                size_limit=size_limit,
                tls_level="none" if plain else "may",
                tls_auth_only="no" if plain or auth_before_tls else "yes",
                sasl="yes" if sasl else "no",
                mail=self.mail,
                uid=nobody.pw_uid,
                gid=nobody.pw_gid,
                refused=REFUSED,
                refusal=REFUSAL,
                cert=cert,
                key=key,
                sasl_type="dovecot" if dovecot else "cyrus",
                sasl_path=dovecot.socket if dovecot else "smtpd",
            )
        )
        sasldb = directory / "sasldb2"
        (self.config / "sasl" / "smtpd.conf").write_text(SASL_CONF.format(sasldb=sasldb))
        user, realm = USER.decode().split("@")
        subprocess.run(
            ["saslpasswd2", "-f", str(sasldb), "-p", "-c", "-u", realm, user],
            input=PASSWORD,
            check=True,
        )
        os.chown(sasldb, postfix.pw_uid, postfix.pw_gid)
        self._postfix("check")
        self._postfix("start")
        self._wait_for_ports()

    def _postfix(self, command):
        run = subprocess.run([POSTFIX, "-c", str(self.config), command], capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError(f"postfix {command}: {run.stderr}{self.log_text()}")

    def _wait_for_ports(self, timeout=20.0):
        deadline = time.monotonic() + timeout
        for port in (self.smtp, self.smtps):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"Postfix is not listening on {port}: {self.log_text()}")
                    time.sleep(0.1)

    def log_text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""


    def wait_log(self, text, timeout=10.0):
        """The log once it has `text`: Postfix writes a session's last
        lines after the client has gone, so a test that reads at once may
        be early."""
        deadline = time.monotonic() + timeout
        while text not in (log := self.log_text()):
            assert time.monotonic() < deadline, log[-3000:]
            time.sleep(0.05)
        return log
    def messages(self, count=1, timeout=20.0):
        """The raw messages delivered, once `count` have arrived (delivery
        is asynchronous: the queue manager hands them to `virtual`)."""
        new = self.mail / "maildir" / "new"
        deadline = time.monotonic() + timeout
        while True:
            files = sorted(new.iterdir()) if new.exists() else []
            if len(files) >= count or time.monotonic() > deadline:
                return [f.read_bytes() for f in files]
            time.sleep(0.1)

    def proxy(self, port):
        """A counting proxy in front of `port`: what crosses it is what the
        server received."""
        return CountingProxy(port)

    def stop(self):
        subprocess.run([POSTFIX, "-c", str(self.config), "stop"], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


class CountingProxy:
    """Forwards loopback connections to a port and counts the bytes the
    client sent through it (`sent`): how much of a mail reached the server.
    With `stall_after`, it stops reading the client for `pause` seconds once
    that many bytes have come (a network that stalls mid-mail; `stalled`
    says it did), with a small receive buffer so the stall reaches the
    sender at once."""

    def __init__(self, target, stall_after=None, pause=0.0):
        self.target = target
        self.sent = 0
        self.stall_after, self.pause, self.stalled = stall_after, pause, False
        self.listener = socket.socket()
        if stall_after is not None:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, src, dst, count):
        try:
            while chunk := src.recv(65536):
                if count:
                    self.sent += len(chunk)
                dst.sendall(chunk)
                if count and self.stall_after is not None and self.sent > self.stall_after and not self.stalled:
                    self.stalled = True
                    time.sleep(self.pause)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            # Each socket is one pump's source: that pump closes it, so
            # none is left for the garbage collector to find open.
            src.close()

    def close(self):
        self.listener.close()
