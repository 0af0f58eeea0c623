"""A scripted SMTP server that watches how each conversation ends.

It speaks just enough SMTP (EHLO with AUTH PLAIN LOGIN and, when asked,
PIPELINING; MAIL, RCPT, DATA, QUIT) and refuses the steps it is told to.
What matters is what it records, per connection and on one clock with the
test: every line the client sent, when, and when it read EOF. After its
221 it does not close: the connection ends only when the client closes it,
so a client that never does is seen (aiosmtpd and Postfix close first and
would hide it)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple


@dataclass
class Conversation:
    """One connection as the server saw it."""

    lines: List[Tuple[float, bytes]] = field(default_factory=list)
    """(time.monotonic(), line without CRLF), message lines excluded."""
    eof_at: Optional[float] = None
    bye_at: Optional[float] = None
    """When the server sent its 221."""
    after_quit: bytes = b""
    """Anything the client sent after QUIT."""
    message: bytes = b""
    """The last message received, as sent (dot-stuffing not undone)."""
    state: str = ""
    """The transaction: "" none, "mail" after MAIL, "rcpt" with a recipient."""

    def first(self, verb: bytes) -> Optional[float]:
        for at, line in self.lines:
            if line.upper().startswith(verb):
                return at
        return None


class WatchingServer:
    """`refuse` maps a step (`AUTH`, `MAIL`, `RCPT`, `DATA`, `END`) to the
    reply that refuses it. `linger` bounds how long a connection is held
    open after the 221, waiting for the client's EOF."""

    def __init__(self, refuse: Optional[Dict[str, bytes]] = None, pipelining: bool = True, linger: float = 15.0):
        self.refuse = dict(refuse or {})
        self.pipelining = pipelining
        self.linger = linger
        self.conversations: List[Conversation] = []
        self.lock = threading.Condition()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping = True
        # A close alone leaves accept() blocked on Linux; a shutdown wakes it.
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        self.thread.join(5)

    def wait_closed(self, count: int, timeout: float = 20.0) -> List[Conversation]:
        """Waits until `count` conversations have ended (EOF read or given
        up on); returns them all."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while sum(c.eof_at is not None for c in self.conversations) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{count} closed conversations not seen: {self.conversations!r}")
                self.lock.wait(left)
            return list(self.conversations)

    def _accept(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        talk = Conversation()
        with self.lock:
            self.conversations.append(talk)
        conn.settimeout(self.linger)
        try:
            self._talk(conn, talk)
        except (OSError, socket.timeout):
            pass
        finally:
            conn.close()
            with self.lock:
                if talk.eof_at is None:
                    talk.eof_at = float("inf")  # never closed by the client
                self.lock.notify_all()

    def _talk(self, conn: socket.socket, talk: Conversation) -> None:
        conn.sendall(b"220 watch.test ESMTP\r\n")
        buf, in_data, quit_seen = b"", False, False
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                talk.eof_at = time.monotonic()
                return
            if quit_seen:
                talk.after_quit += chunk
                continue
            buf += chunk
            while b"\r\n" in buf and not quit_seen:
                line, buf = buf.split(b"\r\n", 1)
                if in_data:
                    if line != b".":
                        talk.message += line + b"\r\n"
                    if line == b".":
                        in_data = False
                        talk.lines.append((time.monotonic(), b"."))
                        conn.sendall(self.refuse.get("END", b"250 2.0.0 queued") + b"\r\n")
                    continue
                talk.lines.append((time.monotonic(), line))
                reply, in_data, quit_seen = self._reply(line, talk)
                conn.sendall(reply)
                if quit_seen:
                    talk.bye_at = time.monotonic()
                    talk.after_quit = buf
                    buf = b""

    def _reply(self, line: bytes, talk: Conversation) -> Tuple[bytes, bool, bool]:
        verb = line.split(b" ", 1)[0].upper()
        step = {b"MAIL": "MAIL", b"RCPT": "RCPT", b"DATA": "DATA", b"AUTH": "AUTH"}.get(verb)
        if verb == b"EHLO":
            pipelining = b"250-PIPELINING\r\n" if self.pipelining else b""
            return b"250-watch.test\r\n" + pipelining + b"250 AUTH PLAIN LOGIN\r\n", False, False
        if verb == b"QUIT":
            return b"221 2.0.0 bye\r\n", False, True
        if step is not None and step in self.refuse:
            return self.refuse[step] + b"\r\n", False, False
        # As RFC 5321 servers do: no RCPT before a MAIL, no DATA before a
        # recipient (a pipelined client's later commands get these).
        if verb == b"MAIL":
            talk.state = "mail"
        if verb == b"RCPT":
            if talk.state == "":
                return b"503 5.5.1 need MAIL command\r\n", False, False
            talk.state = "rcpt"
        if verb == b"DATA":
            if talk.state != "rcpt":
                return b"554 5.5.1 no valid recipients\r\n", False, False
            talk.state, talk.message = "", b""
            return b"354 go ahead\r\n", True, False
        if verb == b"AUTH":
            return b"235 2.7.0 ok\r\n", False, False
        return b"250 2.0.0 ok\r\n", False, False
