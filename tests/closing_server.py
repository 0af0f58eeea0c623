"""A scripted SMTP server whose last reply and FIN travel together.

It answers one step (`GREETING`, `MAIL`, or `END`, the end of data) with a
chosen reply and closes at once: the reply, over TLS its record and the
close_notify after it, and the FIN go out in one TCP segment (the socket
is corked while the FIN is queued, and Linux puts a FIN on the segment
still waiting). A driver that reads the reply and the end of the stream in
one pass must still give the reply to the engine before it reports the
close; one that does not reports URC 0 instead of the reply's code.

Every other step succeeds: EHLO offers nothing (no AUTH, no STARTTLS, so
the mail goes without signing in whatever the TLS policy), MAIL, RCPT,
DATA and the message are taken. `INSIDE_DATA` is the other way round: the
reply comes in the middle of the message (after `after` of its bytes)
and the server does not close; it reads on, keeping what the client
sends after the reply, and notes when the client's EOF came. `tls` set:
TLS from the first byte
(SMTPS), through `ssl.MemoryBIO`, so the bytes that leave are exactly the
ones chosen. What each connection saw is kept: the command lines, and
what the client sent after the FIN, up to its EOF."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import List, Optional


@dataclass
class Seen:
    """One connection as the server saw it."""

    lines: List[bytes] = field(default_factory=list)
    message: bytes = b""
    """The message of the last DATA, as sent (dot-stuffing not undone)."""
    after_fin: bytes = b""
    """Raw bytes the client sent after the server's FIN (TLS records
    undecrypted)."""
    fin_at: Optional[float] = None
    reply_at: Optional[float] = None
    """INSIDE_DATA: when the reply went out (time.monotonic())."""
    after_reply: bytes = b""
    """INSIDE_DATA: what the client sent after the reply, as received."""
    eof_at: Optional[float] = None
    timed_out: bool = False
    """The client neither closed nor sent anything for 20 s."""


class Wire:
    """The connection's bytes, plaintext or TLS (server side, in memory)."""

    def __init__(self, sock: socket.socket, context: Optional[ssl.SSLContext]):
        self.sock = sock
        self.tls: Optional[ssl.SSLObject] = None
        if context is not None:
            self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side=True)
            while True:
                try:
                    self.tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    self._flush()
                    if not self._read_raw():
                        raise ConnectionError("closed during the handshake")
            self._flush()

    def _flush(self) -> None:
        data = self.outgoing.read()
        if data:
            self.sock.sendall(data)

    def _read_raw(self) -> bool:
        data = self.sock.recv(65536)
        if data:
            self.incoming.write(data)
        return bool(data)

    def recv(self) -> bytes:
        """Plaintext from the client; b"" at its end."""
        if self.tls is None:
            return self.sock.recv(65536)
        while True:
            try:
                return self.tls.read(65536)
            except ssl.SSLWantReadError:
                self._flush()
                if not self._read_raw():
                    return b""
            except ssl.SSLZeroReturnError:
                return b""

    def send(self, data: bytes) -> None:
        if self.tls is None:
            self.sock.sendall(data)
        else:
            self.tls.write(data)
            self._flush()

    def send_last(self, data: bytes) -> None:
        """`data` (and close_notify), then the FIN, in one segment."""
        raw = data
        if self.tls is not None:
            self.tls.write(data)
            try:
                self.tls.unwrap()  # writes close_notify; the client's is not awaited
            except ssl.SSLWantReadError:
                pass
            raw = self.outgoing.read()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        self.sock.sendall(raw)
        self.sock.shutdown(socket.SHUT_WR)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)


class ClosingServer:
    """Answers `step` with `reply` (without CRLF) and closes with it."""

    def __init__(self, step: str, reply: bytes, context: Optional[ssl.SSLContext] = None, after: int = 0,
                 delay: float = 0.0):
        """`delay`: seconds the server takes before its last reply (a slow
        banner, a slow verdict on the message)."""
        assert step in ("GREETING", "MAIL", "END", "INSIDE_DATA")
        self.step, self.reply, self.context, self.after = step, reply, context, after
        self.delay = delay
        self.seen: List[Seen] = []
        self.lock = threading.Condition()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        self.thread.join(5)

    def wait_ended(self, count: int = 1, timeout: float = 20.0) -> List[Seen]:
        """The connections, once `count` of them have read the client's EOF."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while sum(s.eof_at is not None for s in self.seen) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{count} ended connections not seen: {self.seen!r}")
                self.lock.wait(left)
            return list(self.seen)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        seen = Seen()
        with self.lock:
            self.seen.append(seen)
        conn.settimeout(20)
        try:
            wire = Wire(conn, self.context)
            ended = self._talk(wire, seen)
            if ended == "fin":
                seen.fin_at = time.monotonic()
                while chunk := conn.recv(65536):
                    seen.after_fin += chunk
            elif ended == "held":
                while chunk := wire.recv():
                    seen.after_reply += chunk
        except socket.timeout:
            seen.timed_out = True
        except (OSError, ValueError, ConnectionError):
            pass
        finally:
            conn.close()
            with self.lock:
                seen.eof_at = time.monotonic()
                self.lock.notify_all()

    def _talk(self, wire: Wire, seen: Seen) -> Optional[str]:
        """The conversation up to the step: "fin" once the last reply and
        the FIN are out, "held" once the reply inside DATA is, None when
        the client ended it first."""
        last = self.reply + b"\r\n"
        if self.step == "GREETING":
            time.sleep(self.delay)
            wire.send_last(last)
            return "fin"
        wire.send(b"220 closing.test ESMTP\r\n")
        buf, in_data = b"", False
        while True:
            chunk = wire.recv()
            if not chunk:
                return None
            buf += chunk
            while b"\r\n" in buf:
                line, buf = buf.split(b"\r\n", 1)
                if in_data:
                    if line != b".":
                        seen.message += line + b"\r\n"
                    if self.step == "INSIDE_DATA" and len(seen.message) >= self.after:
                        wire.send(last)
                        seen.reply_at = time.monotonic()
                        seen.after_reply = buf
                        return "held"
                    if line == b".":
                        in_data = False
                        seen.lines.append(b".")
                        if self.step == "END":
                            time.sleep(self.delay)
                            wire.send_last(last)
                            return "fin"
                        wire.send(b"250 2.0.0 queued\r\n")
                    continue
                seen.lines.append(line)
                verb = line.split(b" ", 1)[0].upper()
                if verb == b"MAIL" and self.step == "MAIL":
                    time.sleep(self.delay)
                    wire.send_last(last)
                    return "fin"
                if verb in (b"EHLO", b"HELO"):
                    wire.send(b"250 closing.test\r\n")
                elif verb == b"DATA":
                    in_data, seen.message = True, b""
                    wire.send(b"354 go ahead\r\n")
                elif verb == b"QUIT":
                    wire.send(b"221 2.0.0 bye\r\n")
                    return None
                else:
                    wire.send(b"250 2.0.0 ok\r\n")
