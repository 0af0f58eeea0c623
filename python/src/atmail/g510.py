"""`G510`: a host driver for a module's `AT+GTSMTP*` commands over a serial
port, whether a real Fibocom G510 or `atmail modem --pty`.

What modem libraries get wrong, solved once here:

- Answers and URCs interleave. Every line the module says is read into one
  stream of lines; a command collects only the lines that answer it (its
  own `+NAME:` information lines and its final result), and everything
  else (`+GTSMTPSEND: <code>`, `+MIPCALL: <ip>`) is kept as a URC for
  whoever waits for it, in the order it came, however early it came.
- Echo may be on or off: a line equal to the command sent is its echo and
  is dropped (pass `echo=False` to turn echo off first, `True` to turn it
  on; None leaves the module as it is).
- A refused command raises `ModemError` with the module's own text
  (verbose errors are turned on), never a generic timeout.
- The password never leaves the port: the line that carries it
  (`AT+GTSMTPID`) is named in errors by the module's own mask
  (`AT+GTSMTPID="<user>","*****"`), and a password an AT string cannot
  hold is refused without being quoted back.
- A failed mail says why: after a failing `+GTSMTPSEND: <code>` the
  driver asks `AT+GTSMTPERR?` (atmail's extension; a module without it
  answers ERROR and the reason stays empty) and `MailError` carries the
  code, the reason and the server's words.
- Data mode follows V.250: the payload goes after the `> ` prompt, then
  the `+++` escape framed by a guard time of silence on both sides, so a
  `+++` inside the payload is payload.
- Flow control agrees at both ends: a port opened with RTS/CTS
  (pyserial's `rtscts=True`) gets `AT&K3`, as the spec advises for data
  mode, so the module holds the host's writes with CTS while its socket
  drains, instead of the host waiting on a CTS the module never drives
  or the module dropping bytes it had no room for.

- What tooling asks first, typed: `wait_ready()` (the module is up and
  its SIM ready), `info()` (manufacturer, model, revision, IMEI),
  `signal()`, `registration()` and `attach(apn)` (the data call), read
  from the G510's answers, which carry their command's prefix
  (`+CGMM: "<technology>","<model>"`).

What it does not do: open the port (pass a `serial.Serial`, or anything
with `write(bytes)` and `read(n)`), retry a mail, or guess an APN."""

from __future__ import annotations

import collections
import re
import time
from dataclasses import dataclass
from typing import IO, Any, Callable, Deque, List, Optional, Sequence, Tuple, Union

from ._charset import Charset
from ._compose import MAX_ATTACHMENTS, MAX_PAYLOAD, MAX_RECIPIENTS, _check_size, _check_text
from ._errors import MailError, ModemError, ModemTimeout, PortClosedError

Payload = Union[bytes, bytearray, memoryview, IO[bytes]]
Progress = Callable[[int, int], None]

_FINAL = re.compile(rb"^(OK|ERROR|\+CME ERROR: ?(.*))$")
_INFO = re.compile(rb"^\+([A-Z0-9]+): ?(.*)$")
_ERR = re.compile(r'^(\d+),"(.*)"$')
_CHUNK = 4096
# The longest token AT+GTSMTPTOKEN takes.
TOKEN_MAX = 8192


@dataclass(frozen=True)
class ModuleInfo:
    """Who the module says it is (`AT+CGMI`, `AT+CGMM`, `AT+CGMR`,
    `AT+CGSN`)."""

    manufacturer: str
    """`+CGMI`, such as "Fibocom"."""
    model: str
    """The model of `+CGMM` (its last value), such as "G510"."""
    revision: str
    """`+CGMR`: the firmware revision."""
    imei: str
    """`+CGSN`: 15 digits."""


@dataclass(frozen=True)
class Signal:
    """`AT+CSQ`, as 3GPP TS 27.007 gives it."""

    rssi: int
    """0-31 (-113 to -51 dBm in 2 dB steps), or 99: not known."""
    ber: int
    """Bit error rate class 0-7, or 99: not known."""

    @property
    def dbm(self) -> Optional[int]:
        """The received signal in dBm (-113 for 0 or less, -51 for 31 or
        more), None when not known."""
        return None if self.rssi == 99 else -113 + 2 * self.rssi


@dataclass(frozen=True)
class Registration:
    """`AT+CREG?`: the module's registration on the network."""

    stat: int
    """27.007's `<stat>`: 0 not registered, 1 home, 2 searching, 3 denied,
    4 unknown, 5 roaming."""
    lac: Optional[str]
    """The location area code (hexadecimal), when registered."""
    ci: Optional[str]
    """The cell (hexadecimal), when registered."""

    @property
    def registered(self) -> bool:
        """On the home network or roaming: mail can go once attached."""
        return self.stat in (1, 5)

    @property
    def roaming(self) -> bool:
        return self.stat == 5


class G510:
    """Drives a module on `port`. `timeout` bounds each command's answer
    (seconds); `guard` is the `+++` guard time the module uses (S12, 1 s
    by default on a G510; `atmail modem --guard-ms`). A port opened
    without a read timeout (pyserial's default) is given one of 50 ms: the
    driver's deadlines need reads that return. `flow_control` True sends
    `AT&K3` (RTS/CTS), False `AT&K0` (none); None follows the port: `AT&K3`
    when it was opened with `rtscts=True`, else the module is left as it
    is."""

    def __init__(
        self,
        port: Any,
        *,
        echo: Optional[bool] = None,
        flow_control: Optional[bool] = None,
        timeout: float = 10.0,
        guard: float = 1.0,
    ) -> None:
        if not callable(getattr(port, "write", None)) or not callable(getattr(port, "read", None)):
            raise TypeError("port must have write(bytes) and read(n), as a serial.Serial has")
        self.port = port
        if getattr(port, "timeout", 0) is None:
            # A blocking read would never let a deadline pass.
            port.timeout = 0.05
        self.timeout = timeout
        self.guard = guard
        self._rx = b""
        self._lines: Deque[bytes] = collections.deque()
        self._urcs: Deque[bytes] = collections.deque()
        self._sync()
        if echo is not None:
            self.command("ATE1" if echo else "ATE0")
        self.command("AT+CMEE=2")
        if flow_control is None and getattr(port, "rtscts", False) is True:
            flow_control = True
        if flow_control is not None:
            self.command("AT&K3" if flow_control else "AT&K0")

    # Lines.

    def _check_open(self) -> None:
        if getattr(self.port, "is_open", True) is False:
            raise PortClosedError("the serial port is closed")

    def _write(self, data: bytes) -> None:
        self._check_open()
        self.port.write(data)
        flush = getattr(self.port, "flush", None)
        if flush is not None:
            flush()

    def _fill(self, wait: bool) -> bool:
        """Reads what the port has (waiting up to its read timeout when
        `wait`); returns whether anything came."""
        self._check_open()
        waiting = getattr(self.port, "in_waiting", None)
        if not wait and not waiting:
            return False
        data = self.port.read(max(1, waiting or 0) if waiting is not None else 1)
        if not data:
            return False
        self._rx += bytes(data)
        self._split()
        return True

    def _split(self) -> None:
        """Whole lines out of the received bytes. V.250 frames a line with
        CR LF; an echo ends with the host's CR (and LF): either ends one."""
        while True:
            at = min((i for i in (self._rx.find(b"\r"), self._rx.find(b"\n")) if i >= 0), default=-1)
            if at < 0:
                return
            line, self._rx = self._rx[:at].strip(), self._rx[at + 1 :]
            if line:
                self._lines.append(line)

    def _prompt(self) -> bool:
        """The data-mode prompt: `> ` with no line end after it."""
        return self._rx.lstrip(b"\r\n").startswith(b">")

    def _next_line(self, deadline: float, what: str) -> bytes:
        while not self._lines:
            if time.monotonic() > deadline:
                raise ModemTimeout(f"no answer to {what} in time")
            self._fill(wait=True)
        return self._lines.popleft()

    def _sync(self) -> None:
        """Finds the module: `AT` until it answers (a first line may meet
        half a line or a data mode left by an earlier program)."""
        for _ in range(3):
            try:
                self.command("AT", timeout=min(self.timeout, 2.0))
                return
            except (ModemTimeout, ModemError):
                time.sleep(self.guard)
                self._write(b"+++")
                time.sleep(self.guard)
        self.command("AT")

    def command(self, line: Union[str, bytes], *, timeout: Optional[float] = None, prompt: bool = False) -> List[str]:
        """Sends one AT command line and returns its information lines
        (those that start with the command's `+NAME:`). A refusal raises
        `ModemError`. With `prompt`, returns once the `> ` prompt arrives
        (a data command) and the caller streams payload."""
        data = line.encode("latin-1") if isinstance(line, str) else bytes(line)
        return self._command(data, data.decode("latin-1"), timeout, prompt)

    def _command(self, data: bytes, shown: str, timeout: Optional[float], prompt: bool) -> List[str]:
        self._write(data + b"\r")
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        name = _name(data)
        info: List[str] = []
        while True:
            if prompt and not self._lines and self._prompt():
                self._rx = b""
                return info
            if prompt and not self._lines:
                if time.monotonic() > deadline:
                    raise ModemTimeout(f"no prompt for {shown} in time")
                self._fill(wait=True)
                continue
            line = self._next_line(deadline, shown)
            if line.upper() == data.strip().upper():
                continue  # the echo
            final = _FINAL.match(line)
            if final:
                if final.group(1) == b"OK":
                    return info
                raise ModemError(shown, (final.group(2) or b"ERROR").decode("latin-1"))
            head = _INFO.match(line)
            if head and name is not None and head.group(1) == name and name != b"GTSMTPSEND":
                info.append(head.group(2).decode("latin-1"))
            else:
                self._urcs.append(line)

    def wait_urc(self, prefix: str, timeout: float) -> str:
        """The value of the first URC `+PREFIX: value`, received before or
        after this call; other URCs stay queued."""
        key = b"+" + prefix.encode("ascii") + b":"
        deadline = time.monotonic() + timeout
        while True:
            urc = self._take_urc(key)
            if urc is not None:
                return urc[len(key) :].strip().decode("latin-1")
            if time.monotonic() > deadline:
                raise ModemTimeout(f"no +{prefix} in {timeout:g} s")
            self._fill(wait=True)

    def _take_urc(self, key: bytes) -> Optional[bytes]:
        """The first URC starting with `key` among those received (lines no
        command took are URCs), removed from the queue."""
        while self._lines:
            self._urcs.append(self._lines.popleft())
        for urc in self._urcs:
            if urc.startswith(key):
                self._urcs.remove(urc)
                return urc
        return None

    def _wait_verdict(self, timeout: float) -> int:
        """The code of the next `+GTSMTPSEND: <code>`."""
        return _code(self.wait_urc("GTSMTPSEND", timeout))

    def _mail_verdict(self) -> Optional[int]:
        """A `+GTSMTPSEND: <code>` already received, without waiting."""
        while self._fill(wait=False):
            pass
        urc = self._take_urc(b"+GTSMTPSEND:")
        return None if urc is None else _code(urc.split(b":", 1)[1])

    # The module.

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Returns once the module takes commands and its SIM is ready:
        `AT+CPIN?` answers `READY`. The power-up lines (`AT command
        ready`, `+SIM READY`) a G510 says after a reset are taken from the
        URCs; a host that opened the port after them (or a module that
        never says them) is asked until `timeout` seconds have passed.
        Raises `ModemTimeout` when the module or its SIM is not ready."""
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            for line in (b"AT command ready", b"+SIM READY"):
                while self._take_urc(line) is not None:
                    pass
            left = deadline - time.monotonic()
            try:
                state = self.command("AT+CPIN?", timeout=max(0.1, min(left, 2.0)))
                if state and state[0].strip().upper() == "READY":
                    return
                last = f"+CPIN: {state[0] if state else ''}"
            except ModemError as e:
                last = e.text
            except ModemTimeout:
                last = "no answer"
            if time.monotonic() >= deadline:
                raise ModemTimeout(f"the module is not ready after {timeout:g} s ({last})")
            # A +SIM READY may come meanwhile; the next question finds it.
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))

    def info(self) -> ModuleInfo:
        """The module's manufacturer, model, firmware revision and IMEI."""
        return ModuleInfo(
            manufacturer=_value(self.command("AT+CGMI"), "AT+CGMI", -1),
            model=_value(self.command("AT+CGMM"), "AT+CGMM", -1),
            revision=_value(self.command("AT+CGMR"), "AT+CGMR", -1),
            imei=_value(self.command("AT+CGSN"), "AT+CGSN", -1),
        )

    def signal(self) -> Signal:
        """The signal now (`AT+CSQ`)."""
        rssi, ber = _numbers(self.command("AT+CSQ"), "AT+CSQ", 2)
        return Signal(rssi=rssi, ber=ber)

    def registration(self) -> Registration:
        """The registration now (`AT+CREG?`), with the location and cell:
        it asks with `AT+CREG=2` and puts back the module's setting."""
        (n, *_) = _numbers(self.command("AT+CREG?"), "AT+CREG?", 2)
        if n != 2:
            self.command("AT+CREG=2")
        try:
            answer = self.command("AT+CREG?")
        finally:
            if n != 2:
                self.command(f"AT+CREG={n}")
        _, stat = _numbers(answer, "AT+CREG?", 2)
        values = _quoted_values(answer[0])
        lac, ci = (values[0], values[1]) if len(values) >= 2 else (None, None)
        return Registration(stat=stat, lac=lac, ci=ci)

    def attach(self, apn: str, user: str = "", password: str = "", timeout: Optional[float] = None) -> str:
        """Brings the data call up on `apn` (`AT+MIPCALL=1`) and returns
        the address the network gave; returns the address at once when it
        is up already. A module that is not registered refuses it:
        `ModemError` with its text (`no network service` on atmail's)."""
        state = self.command("AT+MIPCALL?")
        if state and not state[0].startswith("0"):
            parts = state[0].split(",", 1)
            if len(parts) == 2:
                return parts[1].strip().strip('"')
        while self._take_urc(b"+MIPCALL:") is not None:
            pass  # a report of an earlier call
        line = f'AT+MIPCALL=1,"{_quoted(apn, "apn")}"'
        if user or password:
            line += f',"{_quoted(user, "user")}","{_quoted(password, "password")}"'
        self.command(line)
        address = self.wait_urc("MIPCALL", self.timeout if timeout is None else timeout)
        if address in ("", "0"):
            raise ModemError("AT+MIPCALL=1", "the data call was not set up")
        return address

    # The mail.

    def network_up(self, apn: str = "") -> str:
        """Brings the data connection up when it is not (`AT+MIPCALL`);
        returns the address it reports, or "" when it was up already."""
        state = self.command("AT+MIPCALL?")
        if state and not state[0].startswith("0"):
            return ""
        self.command(f'AT+MIPCALL=1,"{_quoted(apn, "apn")}"')
        return self.wait_urc("MIPCALL", self.timeout)

    def send_mail(
        self,
        server: str,
        port: int,
        user: str,
        password: str,
        to: Sequence[str],
        cc: Sequence[str] = (),
        bcc: Sequence[str] = (),
        subject: Optional[str] = None,
        charset: str = "utf-8",
        body: Optional[Payload] = None,
        attachments: Sequence[Tuple[str, Payload]] = (),
        mode: int = 0,
        timeout: int = 300,
        progress: Optional[Progress] = None,
        apn: str = "",
        oauth_token: Optional[Union[str, bytes]] = None,
        oauth_mechanism: str = "xoauth2",
        bdat: Optional[int] = None,
    ) -> None:
        """Sends one mail through the module, the spec's whole sequence:
        network up, `AT+GTSMTPCLR`, LAND, ID, DST, HEAD, SEND (waiting for
        `+GTSMTPSEND: 2`), DATA, FILE, END; returns when `+GTSMTPSEND: 1`
        says the server took the mail. `mode` is `AT+GTSMTPLAND`'s: 0
        STARTTLS when offered and the password or token only under TLS
        (the default), 1 SMTPS (TLS from the first byte), 2 STARTTLS
        required, 3 sign-in in the clear allowed (a relay on the host's own
        network). `progress(sent, total)` follows the payload (body and
        attachments together). Raises `MailError` with the SMTP code when
        the mail fails, `ModemError` when the module refuses a command.

        With `oauth_token` (an OAuth 2.0 access token), the mail signs in
        with `oauth_mechanism`, "xoauth2" or "oauthbearer", instead of the
        password, which is then not sent (pass ""): `AT+GTSMTPAUTH` and
        `AT+GTSMTPTOKEN`, atmail's extensions. The token is written to the
        port and nowhere else: no exception or repr holds it.

        `bdat` (0 off, 1 auto, 2 force; atmail's `AT+GTSMTPBDAT`) says how
        the mail may cross the wire: `BDAT` chunks with binary parts where
        the server offers CHUNKING and BINARYMIME (1, the module's default),
        `BDAT` wherever it offers CHUNKING (2), or `DATA` with base64 parts
        always (0). None sends no command: the module's own default."""
        code = Charset.parse(charset)
        if bdat is not None and (isinstance(bdat, bool) or bdat not in (0, 1, 2)):
            raise ValueError(f"bdat {bdat!r} must be 0 (off), 1 (auto) or 2 (force)")
        login = (_quoted(user, "user"), _password(password))
        token = _token(oauth_token, oauth_mechanism)
        lists = ((1, to), (2, cc), (3, bcc))
        recipients = [(kind, _quoted(a, "address")) for kind, group in lists for a in _strings(group, "recipients")]
        if not 1 <= len(recipients) <= MAX_RECIPIENTS:
            raise ValueError(f"{len(recipients)} recipients given; a mail needs 1 to {MAX_RECIPIENTS}")
        if len(attachments) > MAX_ATTACHMENTS:
            raise ValueError(f"{len(attachments)} attachments given; at most {MAX_ATTACHMENTS}")
        head = _quoted_bytes(code.encode(subject, "subject") if subject is not None else b"", "subject")
        names = [_quoted_bytes(code.encode(n, "attachment name"), "attachment name")
                 for n, _ in attachments]
        files = [_payload(d, f"attachment {n!r}") for n, d in attachments]
        _check_size(sum(len(f) for f in files), "the attachments together")
        payloads = ([_payload(body, "body")] if body is not None else []) + files
        total = sum(len(p) for p in payloads)
        if not 100 <= timeout <= 48000:
            raise ValueError(f"timeout {timeout} s out of range (100-48000)")
        self.network_up(apn)
        self.command("AT+GTSMTPCLR")
        self.command(f'AT+GTSMTPLAND={int(port)},"{_quoted(server, "server")}",{int(mode)}')
        self._identify(*login)
        if token is not None:
            self._sign_in_with(*token)
        for kind, address in recipients:
            self.command(f'AT+GTSMTPDST=1,{kind},"{address}"')
        self._command(b"AT+GTSMTPHEAD=%d,\"%s\"" % (code.value, head), "AT+GTSMTPHEAD", None, False)
        if bdat is not None:
            self.command(f"AT+GTSMTPBDAT={int(bdat)}")
        self._start(timeout)
        sent = 0
        commands = ([b"AT+GTSMTPDATA=%d" % timeout] if body is not None else []) + [
            b'AT+GTSMTPFILE=1,"%s"' % name for name in names
        ]
        for line, data in zip(commands, payloads):
            sent = self._data(line, data, sent, total, progress)
        self.command("AT+GTSMTPEND")
        verdict = self._wait_verdict(timeout + 60)
        if verdict != 1:
            raise self._failure(verdict, "the mail failed")

    def _identify(self, user: str, password: str) -> None:
        """`AT+GTSMTPID`: errors and timeouts name the line as the
        module's read form shows it, password masked."""
        line = f'AT+GTSMTPID="{user}","{password}"'.encode("ascii")
        self._command(line, f'AT+GTSMTPID="{user}","*****"', None, False)

    def _failure(self, code: int, what: str) -> MailError:
        """A `MailError` for a failing `+GTSMTPSEND: <code>`, with the
        module's reason (`AT+GTSMTPERR?`) when it has one."""
        reason = self.last_failure()[1]
        if not reason:
            return MailError(code, f"{what}: +GTSMTPSEND: {code}")
        return MailError(code, f"{reason} (+GTSMTPSEND: {code})", reason)

    def last_failure(self) -> Tuple[int, str]:
        """The code and reason of the last failed mail, as the module
        keeps them (`AT+GTSMTPERR?`, atmail's extension): `(0, "")`
        before any failure, and from a module that does not have the
        command (a refusal or no answer is not an error here)."""
        try:
            lines = self.command("AT+GTSMTPERR?")
        except (ModemError, ModemTimeout):
            return 0, ""
        found = _ERR.match(lines[0]) if lines else None
        if found is None:
            return 0, ""
        # Info lines are read as latin-1; the server's words may be UTF-8.
        return int(found.group(1)), found.group(2).encode("latin-1").decode("utf-8", "replace")

    def _sign_in_with(self, mechanism: int, token: bytes) -> None:
        """`AT+GTSMTPAUTH` and the token after `AT+GTSMTPTOKEN`'s prompt."""
        self.command(f"AT+GTSMTPAUTH={mechanism}")
        shown = f"AT+GTSMTPTOKEN={len(token)}"
        self._command(shown.encode("ascii"), shown, None, True)
        self._write(token)
        deadline = time.monotonic() + self.timeout
        while True:
            final = _FINAL.match(self._next_line(deadline, shown))
            if final and final.group(1) == b"OK":
                return
            if final:
                raise ModemError(shown, (final.group(2) or b"ERROR").decode("latin-1"))

    def _start(self, timeout: int) -> None:
        self.command(f"AT+GTSMTPSEND={timeout}")
        verdict = self._wait_verdict(timeout)
        if verdict != 2:
            raise self._failure(verdict, "the server refused the mail")

    def _data(self, line: bytes, data: bytes, sent: int, total: int, progress: Optional[Progress]) -> int:
        shown = line.decode("latin-1")
        self._command(line, shown, None, True)
        view = memoryview(data)
        for at in range(0, len(view), _CHUNK):
            self._write(bytes(view[at : at + _CHUNK]))
            sent += min(_CHUNK, len(view) - at)
            if progress is not None:
                progress(sent, total)
            verdict = self._mail_verdict()
            if verdict is not None:
                self._escape()
                self._drain_data_answer(shown)
                raise self._failure(verdict, "the mail failed while streaming")
        if progress is not None and not view:
            progress(sent, total)
        self._escape()
        deadline = time.monotonic() + self.timeout
        count = None
        while True:
            reply = self._next_line(deadline, shown)
            final = _FINAL.match(reply)
            if final:
                if final.group(1) != b"OK":
                    verdict = self._mail_verdict()
                    text = (final.group(2) or b"ERROR").decode("latin-1")
                    if verdict is not None:
                        raise self._failure(verdict, f"{shown}: {text}")
                    raise ModemError(shown, text)
                break
            head = _INFO.match(reply)
            if head and head.group(1) in (b"GTSMTPDATA", b"GTSMTPFILE"):
                count = int(head.group(2))
            else:
                self._urcs.append(reply)
        if count != len(data):
            raise MailError(0, f"{shown}: the module counted {count} bytes of {len(data)}")
        return sent

    def _drain_data_answer(self, shown: str) -> None:
        """After the escape that ends a failed mail's data mode, the data
        command's own final result (ERROR), so it is not taken for the
        next command's; none within the timeout is left alone."""
        deadline = time.monotonic() + self.timeout
        try:
            while True:
                line = self._next_line(deadline, shown)
                if _FINAL.match(line):
                    return
                head = _INFO.match(line)
                if not (head and head.group(1) in (b"GTSMTPDATA", b"GTSMTPFILE")):
                    self._urcs.append(line)
        except ModemTimeout:
            return

    def _escape(self) -> None:
        """`+++` framed by the guard time of silence on both sides."""
        time.sleep(self.guard * 1.2)
        self._write(b"+++")
        time.sleep(self.guard * 1.2)


_MECHANISMS = {"xoauth2": 1, "oauthbearer": 2}


def _token(token: Optional[Union[str, bytes]], mechanism: str) -> Optional[Tuple[int, bytes]]:
    """(AT+GTSMTPAUTH's code, the token's bytes), checked without the
    token in any message."""
    if token is None:
        return None
    code = _MECHANISMS.get(str(mechanism).lower())
    if code is None:
        raise ValueError(f"oauth_mechanism must be 'xoauth2' or 'oauthbearer', not {mechanism!r}")
    if isinstance(token, str):
        try:
            token = token.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError("the OAuth token must be printable ASCII") from None
    if not isinstance(token, (bytes, bytearray)):
        raise TypeError(f"oauth_token must be str or bytes, not {type(token).__name__}")
    if not 1 <= len(token) <= TOKEN_MAX:
        raise ValueError(f"the OAuth token is {len(token)} bytes; 1 to {TOKEN_MAX} are taken")
    if not all(0x21 <= b <= 0x7E for b in token):
        raise ValueError("the OAuth token must be printable ASCII (no spaces or line breaks)")
    return code, bytes(token)


def _quoted_values(text: str) -> List[str]:
    return re.findall(r'"([^"]*)"', text)


def _value(info: List[str], command: str, index: int) -> str:
    """A quoted value of an answer (a module that does not quote gives
    the text itself)."""
    if not info:
        raise ModemError(command, "no information in the answer")
    values = _quoted_values(info[0])
    return values[index] if values else info[0].strip()


def _numbers(info: List[str], command: str, count: int) -> List[int]:
    """The first `count` numbers of an answer `<a>,<b>,...`."""
    fields = info[0].split(",")[:count] if info else []
    try:
        numbers = [int(v) for v in fields]
    except ValueError:
        numbers = []
    if len(numbers) != count:
        raise ModemError(command, f"unexpected answer {info!r}")
    return numbers


def _name(line: bytes) -> Optional[bytes]:
    m = re.match(rb"^AT\+([A-Z0-9]+)", line.upper())
    return m.group(1) if m else None


def _code(value: Union[str, bytes]) -> int:
    """A `+GTSMTPSEND:` value as its code; 0 for one that is not a number."""
    try:
        return int(value.strip() or 0)
    except ValueError:
        return 0


def _strings(group: object, what: str) -> List[str]:
    if isinstance(group, (str, bytes)):
        raise TypeError(f"{what} must be a sequence of str, not a single {type(group).__name__}")
    return [_check_text(what, v) for v in group]  # type: ignore[attr-defined]


def _quoted(value: object, what: str) -> str:
    """A value for an AT string parameter: printable ASCII without `"`."""
    text = _check_text(what, value)
    if not all(" " <= c <= "~" and c != '"' for c in text):
        raise ValueError(f"{what} {text!r}: an AT string holds printable ASCII without '\"'")
    return text


def _password(value: object) -> str:
    """The password for `AT+GTSMTPID`, checked as `_quoted` checks a
    value, but never quoted back in the error."""
    text = _check_text("password", value)
    if not all(" " <= c <= "~" and c != '"' for c in text):
        raise ValueError("the password holds a character an AT string cannot hold (printable ASCII without '\"')")
    return text


def _quoted_bytes(value: bytes, what: str) -> bytes:
    if b'"' in value or any(b < 0x20 or b == 0x7F for b in value):
        raise ValueError(f"{what} holds '\"' or a control character, which an AT string cannot")
    return value


def _payload(data: object, what: str) -> bytes:
    """A payload's bytes, refused past 20 MiB before any command is sent;
    a file is read no further than that."""
    if hasattr(data, "read") and not isinstance(data, (bytes, bytearray, memoryview)):
        read = _read_upto(data, MAX_PAYLOAD + 1)
    elif isinstance(data, str) or not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"a payload must be bytes-like or a binary file, not {type(data).__name__}")
    else:
        read = bytes(data)
    _check_size(len(read), what)
    return read


def _read_upto(file: Any, limit: int) -> bytes:
    """Up to `limit` bytes of a binary file, through short reads (a raw
    pipe returns what it has)."""
    chunks: List[bytes] = []
    left = limit
    while left > 0:
        chunk = file.read(left)
        if not isinstance(chunk, bytes):
            raise TypeError("a payload file must be opened in binary mode")
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
