"""A real Dovecot as an OAuth 2.0 SASL server: a private instance started
by the test, which Postfix asks (`smtpd_sasl_type = dovecot`).

Its `oauth2` passdb validates JWT access tokens locally
(`introspection_mode = local`) with an HS256 key the test makes, so a
token is accepted only when its signature verifies, it has not expired
and its `sub` is the user signing in: what a provider's token endpoint
and Dovecot decide, not what our harness assumes. It offers `XOAUTH2`
and `OAUTHBEARER`; PyJWT signs the tokens. Debian's `dovecot-core`
(installed by `tools/test`) provides it; nothing of the system's own
Dovecot is used or started, and it serves no mail protocol, only the
auth socket."""

import base64
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time

import jwt

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
KEY_ID = "default"

DOVECOT_CONF = """\
protocols =
listen = 127.0.0.1
ssl = no
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
default_internal_user = nobody
default_login_user = nobody
auth_mechanisms = xoauth2 oauthbearer
auth_debug = no
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {dir}/oauth2.conf
}}
service auth {{
  unix_listener auth-client {{
    mode = 0666
  }}
}}
"""

OAUTH2_CONF = """\
introspection_mode = local
local_validation_key_dict = fs:posix:prefix={dir}/keys/
username_attribute = sub
"""


class Dovecot:
    """A running private Dovecot; `stop()` ends it. `socket` is the path
    Postfix's `smtpd_sasl_path` names; `token(user)` makes an access
    token it accepts for `user`."""

    def __init__(self):
        directory = pathlib.Path(tempfile.mkdtemp(prefix="atmail-dovecot-"))
        directory.chmod(0o755)
        self.dir = directory
        self.secret = os.urandom(32)
        keys = directory / "keys"
        # Dovecot 2.3 looks the key up by issuer ("default" when the token
        # names none), algorithm and key id.
        for where in (keys / "default" / "HS256", keys / "HS256"):
            where.mkdir(parents=True)
            (where / KEY_ID).write_text(base64.b64encode(self.secret).decode())
        (directory / "oauth2.conf").write_text(OAUTH2_CONF.format(dir=directory))
        self.config = directory / "dovecot.conf"
        self.config.write_text(DOVECOT_CONF.format(dir=directory))
        self.socket = directory / "run" / "auth-client"
        self.log = directory / "dovecot.log"
        # Dovecot keeps the starter's stdout and stderr open after it
        # daemonizes: a caller that waits for their EOF would hang.
        subprocess.run(
            [DOVECOT, "-c", str(self.config)],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while not self.socket.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"Dovecot's auth socket did not appear: {self.log_text()}")
            time.sleep(0.05)

    def token(self, user, lifetime=600, size=None):
        """An HS256 access token for `user` that expires in `lifetime`
        seconds (negative: already expired), padded with a claim to
        `size` bytes when given (Microsoft's are 1.5-3 KB)."""
        now = int(time.time())
        claims = {"sub": user, "iat": now - 60, "exp": now + lifetime, "scope": "mail"}
        if size is None:
            return self._sign(claims)
        # Unpadded base64url never has a length of 1 modulo 4, so a pad
        # claim alone cannot reach every size; a header field of 0-2 bytes
        # shifts the header's length until one does.
        for extra in ("", "a", "ab"):
            claims["pad"] = ""
            estimate = (size - len(self._sign(claims, extra))) * 3 // 4
            for n in range(estimate - 4, estimate + 4):
                claims["pad"] = "x" * n
                token = self._sign(claims, extra)
                if len(token) == size:
                    return token
        raise ValueError(f"no token of {size} bytes")

    def _sign(self, claims, extra=""):
        headers = {"kid": KEY_ID, **({"x": extra} if extra else {})}
        return jwt.encode(claims, self.secret, algorithm="HS256", headers=headers).encode()
    def log_text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self):
        pid_file = self.dir / "run" / "master.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text())
            try:
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    os.kill(pid, 0)
                    time.sleep(0.05)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)
