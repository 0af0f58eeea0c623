"""A man in the middle for the downgrade tests: what an attacker on the
path (on GSM, a fake base station) does to an SMTP session before TLS.

`DowngradeProxy(port, "strip")` relays loopback connections to `port` and
deletes `STARTTLS` from every EHLO reply; with `bait`, it also adds
`AUTH <bait>` to a reply that offers no AUTH (a server that offers AUTH
only under TLS: the attacker invites the credentials anyway).
`DowngradeProxy(port, "refuse")` answers the client's `STARTTLS` itself
with `454 4.7.0 TLS not available`; the server never sees the command.

Either way no TLS ever starts through it, so everything the client sends
is plaintext here: `from_client` keeps it, byte for byte, which is
everything that crossed toward the server (and, for an attacker, every
secret that leaked).

`RecordingProxy(port)` changes nothing: it relays bytes as they come
(binary BDAT octets have no lines to wait for) and records both
directions of each connection, in order, with their times: the BDAT tests
read a real MTA's conversation at it."""

from __future__ import annotations

import re
import socket
import threading
import time
from typing import List, Optional

REFUSAL = b"454 4.7.0 TLS not available\r\n"


class DowngradeProxy:
    def __init__(self, target: int, mode: str, bait: Optional[bytes] = None):
        assert mode in ("strip", "refuse")
        self.target, self.mode, self.bait = target, mode, bait
        self.from_client = b""
        self.replies: List[bytes] = []
        """The server's replies as the proxy passed them to the client."""
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()

    def client_lines(self) -> List[bytes]:
        """What the client sent, as lines (the message's lines too)."""
        with self.lock:
            return self.from_client.split(b"\r\n")

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            pair = _Pair(client, server)
            threading.Thread(target=self._from_client, args=(pair,), daemon=True).start()
            threading.Thread(target=self._from_server, args=(pair,), daemon=True).start()

    def _from_client(self, pair: "_Pair") -> None:
        client, server, write_lock = pair.client, pair.server, pair.write_lock
        buf = b""
        try:
            while chunk := client.recv(65536):
                with self.lock:
                    self.from_client += chunk
                buf += chunk
                while b"\r\n" in buf:
                    line, buf = buf.split(b"\r\n", 1)
                    if self.mode == "refuse" and line.strip().upper() == b"STARTTLS":
                        with write_lock:
                            client.sendall(REFUSAL)
                        continue
                    server.sendall(line + b"\r\n")
            if buf:
                server.sendall(buf)
        except OSError:
            pass
        finally:
            pair.done(server)

    def _from_server(self, pair: "_Pair") -> None:
        client, server, write_lock = pair.client, pair.server, pair.write_lock
        buf, reply = b"", []
        try:
            while chunk := server.recv(65536):
                buf += chunk
                while b"\r\n" in buf:
                    line, buf = buf.split(b"\r\n", 1)
                    reply.append(line)
                    if len(line) >= 4 and line[3:4] == b"-":
                        continue  # more lines of this reply to come
                    passed = self._rewrite(reply)
                    reply = []
                    with self.lock:
                        self.replies.append(passed)
                    with write_lock:
                        client.sendall(passed)
        except OSError:
            pass
        finally:
            pair.done(client)

    def _rewrite(self, lines: List[bytes]) -> bytes:
        """A whole reply, as the client gets it: in strip mode a 250 reply
        loses its STARTTLS line and, with bait, gains AUTH if it had none."""
        if self.mode == "strip" and len(lines) > 1 and lines[0].startswith(b"250"):
            keywords = [line[4:] for line in lines]
            keywords = [k for k in keywords if k.strip().upper() != b"STARTTLS"]
            if self.bait is not None and not any(re.match(rb"(?i)AUTH[ =]", k) for k in keywords[1:]):
                keywords.append(b"AUTH " + self.bait)
            lines = [b"250" + (b" " if i == len(keywords) - 1 else b"-") + k for i, k in enumerate(keywords)]
        return b"".join(line + b"\r\n" for line in lines)


class Recording:
    """One connection through a `RecordingProxy`: every piece that crossed,
    as (time.monotonic(), "C" from the client or "S" from the server,
    bytes)."""

    def __init__(self) -> None:
        self.pieces: List[tuple] = []
        self.closed = False

    def side(self, who: str) -> bytes:
        return b"".join(data for _, w, data in self.pieces if w == who)

    @property
    def from_client(self) -> bytes:
        return self.side("C")

    @property
    def from_server(self) -> bytes:
        return self.side("S")


class RecordingProxy:
    """A transparent proxy to `target` on loopback that records both
    directions (`recordings`, one per connection)."""

    def __init__(self, target: int):
        self.target = target
        self.recordings: List[Recording] = []
        self.lock = threading.Condition()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()

    def wait_closed(self, count: int = 1, timeout: float = 20.0) -> List[Recording]:
        """The recordings once `count` connections have ended both ways."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while sum(r.closed for r in self.recordings) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"{count} connections did not end"
                self.lock.wait(left)
            return list(self.recordings)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            recording = Recording()
            with self.lock:
                self.recordings.append(recording)
            pair = _Pair(client, server, on_closed=lambda r=recording: self._closed(r))
            for src, dst, who in ((client, server, "C"), (server, client, "S")):
                threading.Thread(target=self._pump, args=(pair, recording, src, dst, who), daemon=True).start()

    def _closed(self, recording: Recording) -> None:
        with self.lock:
            recording.closed = True
            self.lock.notify_all()

    def _pump(self, pair: "_Pair", recording: Recording, src, dst, who: str) -> None:
        try:
            while chunk := src.recv(65536):
                with self.lock:
                    recording.pieces.append((time.monotonic(), who, chunk))
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            pair.done(dst)


class _Pair:
    """A client's connection and the proxy's to the server: each
    direction ends by shutting the other side; the second to end closes
    both."""

    def __init__(self, client: socket.socket, server: socket.socket, on_closed=None):
        self.client, self.server = client, server
        self.on_closed = on_closed
        self.write_lock = threading.Lock()
        self.lock = threading.Lock()
        self.ended = 0

    def done(self, other: socket.socket) -> None:
        try:
            other.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        with self.lock:
            self.ended += 1
            last = self.ended == 2
        if last:
            self.client.close()
            self.server.close()
            if self.on_closed is not None:
                self.on_closed()
