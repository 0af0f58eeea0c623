"""Drive `atmail modem` as a host microcontroller would: bytes over stdio or
a pty, with real pauses around `+++`."""

import collections
import re
import socket
import subprocess
import threading
import time

# What `atmail modem` says when it starts (and after ATZ), as a G510 does
# at power-up.
POWER_UP = b"\r\nAT command ready\r\n\r\n+SIM READY\r\n"

URC = re.compile(rb"\+GTSMTPSEND: (\d+)\r\n")


def failure_prefix(command):
    """How a driver starts the line it prints for a failed mail: `atmail
    modem`'s, the C firmware example's, the live chip's (through live.py);
    None for a command not known here."""
    if command is None:
        return b"atmail: mail failed: "
    if command[0].endswith("/firmware"):
        return b"firmware: mail failed: "
    if any(str(part).endswith("live.py") for part in command):
        return b"live: mail failed: "
    return None


class Modem:
    """`atmail modem` on stdio, or with `pty=True` on the pseudo-terminal
    it prints, opened with pyserial as a host opens `/dev/ttyUSB0`.
    `wrapper` runs the modem under another command (`/usr/bin/time -v`);
    `command` replaces `atmail modem` altogether (the C firmware example).
    `eol` is how the host ends its lines: `b"\\r"`, `b"\\r\\n"`, or `"late"`
    for CRLF with each LF sent 500 ms after its CR, once the answer has
    come (so a data command's LF follows its `> ` prompt)."""

    LATE_LF = 0.5

    def __init__(self, atmail, *args, pty=False, wrapper=(), command=None, eol=b"\r"):
        self.eol = eol
        self.failure_prefix = failure_prefix(command)
        if command is None:
            command = [str(atmail), "modem", *args, *(["--pty"] if pty else [])]
        self.proc = subprocess.Popen(
            [*wrapper, *command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.out = b""
        self.err = b""
        self.lock = threading.Condition()
        self.reading = threading.Event()
        self.reading.set()
        self.port = None
        if pty:
            import serial

            self.path = self.proc.stdout.readline().decode().strip()
            self.port = serial.Serial(self.path, baudrate=115200, timeout=0.05)
            source = (self._pump_port, ())
        else:
            source = (self._pump, (self.proc.stdout, "out"))
        self.readers = [
            threading.Thread(target=source[0], args=source[1], daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, "err"), daemon=True),
        ]
        for reader in self.readers:
            reader.start()
        self.seen = 0

    def _pump_port(self):
        while self.port.is_open:
            self.reading.wait()
            try:
                chunk = self.port.read(65536)
            except Exception:  # the port was closed under the read
                return
            if chunk:
                with self.lock:
                    self.out += chunk
                    self.lock.notify_all()

    def _pump(self, stream, name):
        while True:
            chunk = stream.read1(65536)
            if not chunk:
                return
            with self.lock:
                setattr(self, name, getattr(self, name) + chunk)
                self.lock.notify_all()

    def stop_reading(self):
        """A host that stops reading its UART (a pty modem only): what the
        module says piles up in the pty until the module's own writes
        block. `resume_reading()` ends it."""
        self.reading.clear()

    def resume_reading(self):
        self.reading.set()

    def write(self, data: bytes):
        if self.port:
            self.port.write(data)
            self.port.flush()
            return
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def wait_for(self, needle: bytes, timeout=20.0) -> bytes:
        """Waits until `needle` appears after what earlier waits consumed;
        returns the output up to and including it."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                at = self.out.find(needle, self.seen)
                if at >= 0:
                    got = self.out[self.seen : at + len(needle)]
                    self.seen = at + len(needle)
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{needle!r} not seen; output: {self.out[self.seen:]!r}; stderr: {self.err!r}")
                self.lock.wait(left)

    def line(self, line: bytes):
        """Sends a command line without waiting for its answer."""
        self.write(line + (b"\r\n" if self.eol == "late" else self.eol))

    def at(self, line: bytes, expect: bytes = b"\r\nOK\r\n", timeout=20.0) -> bytes:
        if self.eol != "late":
            self.write(line + self.eol)
            return self.wait_for(expect, timeout)
        self.write(line + b"\r")
        sent = time.monotonic()
        got = self.wait_for(expect, timeout)
        time.sleep(max(0.0, sent + self.LATE_LF - time.monotonic()))
        self.write(b"\n")
        return got

    def data(self, payload: bytes, guard=1.0, chunk=512):
        """Streams payload in chunks as a UART would, then the escape with
        guard-time pauses before and after."""
        for i in range(0, len(payload), chunk):
            self.write(payload[i : i + chunk])
        time.sleep(guard + 0.2)
        self.write(b"+++")
        time.sleep(guard + 0.2)

    def close(self, timeout=20.0):
        """Ends the host's input and waits for the modem to finish."""
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout)
        finally:
            self.kill()
        return self.proc.returncode

    def failed_mails(self):
        """The codes of the failing `+GTSMTPSEND: <code>` the host heard
        (neither 2, connected, nor 1, delivered), and the driver's lines
        for failed mails on stderr."""
        codes = [int(c) for c in URC.findall(self.out) if int(c) not in (1, 2)]
        lines = [line for line in self.err.split(b"\n") if self.failure_prefix and line.startswith(self.failure_prefix)]
        return codes, lines

    def check_failures(self):
        """Every failed mail says why on stderr (the fixtures call this
        after every test): a line per failing URC, and for a code other
        than 0 a line with that code and the server's words after it (a
        mail the engine itself found too large for the server's SIZE says
        so instead). A failure without a URC (the host's data ended the
        mail) may add lines."""
        if self.failure_prefix is None:
            return
        codes, lines = self.failed_mails()
        assert len(lines) >= len(codes), (codes, lines, self.err)
        for code, count in collections.Counter(c for c in codes if c != 0).items():
            said = [line for line in lines if re.search(rb"\b%d \S" % code, line)
                    or (code == 552 and b"(SIZE " in line)]
            assert len(said) >= count, (code, codes, lines)

    def kill(self):
        """Stops the modem (if still running) and releases its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.port:
            self.port.close()
        self.reading.set()
        for reader in self.readers:
            reader.join()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            stream.close()


class Control:
    """The modem's control socket, as a test drives the network."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.sock.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                assert time.monotonic() < deadline, "no control socket"
                time.sleep(0.02)
        self.replies = self.sock.makefile("rb")

    def __call__(self, line):
        """Sends an event; returns once the modem has applied it (so its
        URCs are on the host line)."""
        self.sock.sendall(line.encode() + b"\n")
        return self.replies.readline().decode().strip()

    def close(self):
        self.replies.close()
        self.sock.close()
