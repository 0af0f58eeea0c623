"""A virtual G510 in Python: `atmail.Session` over a real socket, with
STARTTLS or SMTPS through `ssl.MemoryBIO`, playing the spec's case (one
recipient, a GB2312 subject, a text body and one attachment) as a host
would over the serial line, `+++` escapes and guard times included.

    python virtual_module.py --server 127.0.0.1:2525 --user u@example.com \\
        --password pw --to rcpt@example.com [--cafile ca.pem --tls-name mx] [--smtps | --mode 3]

The session never reads a clock or touches a socket: this program is its
I/O. It passes monotonic milliseconds, hands it the host's bytes and the
server's bytes, and does what it asks for (connect, start TLS, close)."""

from __future__ import annotations

import argparse
import email.utils
import os
import select
import socket
import ssl
import sys
import time
from typing import Optional

import atmail


class VirtualModule:
    def __init__(
        self, server: tuple, user: str, cafile: Optional[str], tls_name: Optional[str], guard_ms: int
    ) -> None:
        self.session = atmail.Session()
        self.user = user  # the login, whose domain the Message-ID carries
        self.session.set_guard_ms(guard_ms)
        self.session.set_verbose_errors(True)
        self.server = server
        self.context = ssl.create_default_context(cafile=cafile)
        self.tls_name = tls_name
        self.sock: Optional[socket.socket] = None
        self.tls: Optional[ssl.SSLObject] = None
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.after_handshake = False
        self.heard = b""  # everything the host heard
        self.failure = ""  # why the last mail failed, as the engine said
        self.seen = 0

    @staticmethod
    def now() -> int:
        return int(time.monotonic() * 1000)

    # The host side: what a microcontroller writes on the serial line.

    def host(self, data: bytes) -> None:
        while data:
            self._send(self.session.poll_server(self.now()))
            progress = self.session.handle_host(self.now(), data)
            self._send(progress.to_server)
            data = data[progress.read :]
            self.step(0.0)

    def wait_for(self, needle: bytes, timeout: float = 30.0) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            at = self.heard.find(needle, self.seen)
            if at >= 0:
                got, self.seen = self.heard[self.seen : at + len(needle)], at + len(needle)
                return got
            if time.monotonic() > deadline:
                raise TimeoutError(f"{needle!r} not heard: {self.heard[self.seen:]!r}")
            self.step(0.05)

    def at(self, line: bytes, expect: bytes = b"\r\nOK\r\n") -> bytes:
        self.host(line + b"\r")
        return self.wait_for(expect)

    def quiet(self, seconds: float) -> None:
        """Serial silence (a guard time), the engine kept running."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.step(min(0.05, max(0.0, end - time.monotonic())))

    def data(self, payload: bytes, guard_s: float) -> None:
        self.host(payload)
        self.quiet(guard_s)
        self.host(b"+++")
        self.quiet(guard_s)

    # The engine's requests, and the server side.

    def step(self, wait: float) -> None:
        s = self.session
        while (event := s.poll_event()) is not None:
            self._act(event)
        self._send(s.poll_server(self.now()))
        self._receive(wait)
        deadline = s.next_deadline()
        if deadline is not None and deadline <= self.now():
            s.handle_timeout(self.now())
        self.heard += s.poll_host()

    def _act(self, event: atmail.Event) -> None:
        """One thing the engine asks, in the engine's order."""
        s = self.session
        if event.kind == atmail.EventKind.IDENTITY:
            try:
                local, domain = os.urandom(8).hex(), login_domain(self.user)
                s.set_identity(email.utils.formatdate(usegmt=False), message_id(local, domain))
            except ValueError as e:
                print(f"virtual module: no identity for the mail: {e}", file=sys.stderr)
                s.refuse_identity()
        elif event.kind == atmail.EventKind.COMMAND:
            if event.line.upper().startswith(b"AT+MIPCALL=1"):
                s.set_network_up(True)
                s.answer_command(b"\r\nOK\r\n\r\n+MIPCALL: 127.0.0.1\r\n")
            else:
                s.answer_command(b"\r\nERROR\r\n")
        elif event.kind == atmail.EventKind.CONNECT and event.connect is not None:
            self._connect(event.connect)
        elif event.kind == atmail.EventKind.START_TLS:
            try:
                self._start_tls(request_name=self.tls_name)
            except (ssl.SSLError, OSError) as e:
                self._tls_failed(e)
            else:
                s.handle_tls_established(self.now())
        elif event.kind == atmail.EventKind.CLOSE:
            self._close()
        elif event.kind == atmail.EventKind.MAIL_FAILED:
            self.failure = event.reason
            print(f"virtual module: mail failed: {event.reason}", file=sys.stderr)

    def _connect(self, request: atmail.Connect) -> None:
        try:
            self.sock = socket.create_connection(self.server, timeout=10)
            if request.implicit_tls:
                self._start_tls(request_name=self.tls_name or request.host)
        except ssl.SSLError as e:
            self._tls_failed(e)
            return
        except OSError as e:
            print(f"virtual module: connecting: {e}", file=sys.stderr)
            self.session.handle_closed()
            return
        self.session.handle_connected(self.now(), self.sock.getsockname()[0])

    def _start_tls(self, request_name: Optional[str]) -> None:
        assert self.sock is not None
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = self.context.wrap_bio(self.incoming, self.outgoing, server_hostname=request_name)
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.sock.sendall(self.outgoing.read())
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("closed during the TLS handshake")
                self.incoming.write(data)
        self.sock.sendall(self.outgoing.read())
        self.after_handshake = True

    def _send(self, data: bytes) -> None:
        if not data or self.sock is None:
            return
        if self.tls is not None:
            self.tls.write(data)
            data = self.outgoing.read()
        self.sock.sendall(data)

    def _receive(self, wait: float) -> None:
        if self.sock is None:
            if wait:
                time.sleep(wait)
            return
        # Records read along with the handshake's last flight (the server's
        # greeting, often) are already here: never wait on the socket for
        # them.
        buffered, self.after_handshake = self.after_handshake, False
        if not buffered:
            ready, _, _ = select.select([self.sock], [], [], wait)
            if not ready:
                return
            data = self.sock.recv(65536)
            if not data:
                self._close()
                self.session.handle_closed()
                return
        if self.tls is not None:
            if not buffered:
                self.incoming.write(data)
            chunks, closed = [], False
            try:
                while True:
                    chunk = self.tls.read(65536)
                    if not chunk:  # the server's close_notify
                        closed = True
                        break
                    chunks.append(chunk)
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                closed = True
            data = b"".join(chunks)
            if closed:
                self._feed(data)
                self._close()
                self.session.handle_closed()
                return
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        """Server plaintext to the session; a reply waits until the
        command it answers is sent."""
        while data and self.sock is not None:
            data = data[self.session.handle_server(self.now(), data) :]
            self._send(self.session.poll_server(self.now()))

    def _tls_failed(self, e: Exception) -> None:
        print(f"virtual module: TLS: {e}", file=sys.stderr)
        self._close()
        self.session.handle_tls_failed()

    def _close(self) -> None:
        """Shuts the socket down, so the server reads EOF now."""
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # the server closed first
            self.sock.close()
        self.sock, self.tls = None, None

    def finish(self, timeout: float = 10.0) -> None:
        """Runs until the last conversation has ended (its QUIT answered,
        or the engine's bound on that passed) and the socket is closed."""
        deadline = time.monotonic() + timeout
        while self.sock is not None or self.session.next_deadline() is not None:
            if time.monotonic() > deadline:
                raise TimeoutError("the connection did not end")
            self.step(0.05)


def login_domain(user: str) -> str:
    """The domain of a login (`wangww@fibocom.com` -> `fibocom.com`)."""
    return user.rpartition("@")[2]


def message_id(local: str, domain: str) -> str:
    """`<local@domain>` within the 76 bytes a Message-ID may have: a
    domain too long loses its leftmost labels, one with nothing usable
    left becomes `atmail.invalid` (RFC 2606)."""
    room = 76 - len(local) - 3
    labels = domain.split(".")
    while labels:
        kept = ".".join(labels)
        if len(labels) >= 2 and len(kept) <= room and kept.isascii() and all(c.isalnum() or c in "-." for c in kept):
            return f"<{local}@{kept}>"
        labels = labels[1:]
    return f"<{local}@atmail.invalid>"


def spec_case(module: VirtualModule, args: argparse.Namespace, body: bytes, attachment: bytes) -> None:
    guard_s = args.guard_ms / 1000 * 1.5
    module.at(b"ATE0")
    module.at(b'AT+MIPCALL=1,"cmnet"', b"+MIPCALL: 127.0.0.1\r\n")
    mode = b",1" if args.smtps else b"" if args.mode is None else b",%d" % args.mode
    module.at(b'AT+GTSMTPLAND=%d,"%s"%s' % (args.land_port, args.land_name.encode(), mode))
    module.at(b'AT+GTSMTPID="%s","%s"' % (args.user.encode(), args.password.encode()))
    module.at(b'AT+GTSMTPDST=1,1,"%s"' % args.to.encode())
    module.at(b'AT+GTSMTPHEAD=2,"' + "你好 smtp".encode("gb2312") + b'"')
    module.at(b"AT+GTSMTPSEND=300", b"+GTSMTPSEND: 2\r\n")
    module.at(b"AT+GTSMTPDATA=300", b"> ")
    module.data(body, guard_s)
    module.wait_for(b"+GTSMTPDATA: %d\r\n\r\nOK\r\n" % len(body))
    module.at(b'AT+GTSMTPFILE=1,"eee.wma"', b"> ")
    module.data(attachment, guard_s)
    module.wait_for(b"+GTSMTPFILE: %d\r\n\r\nOK\r\n" % len(attachment))
    module.at(b"AT+GTSMTPEND", b"+GTSMTPSEND: 1\r\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", required=True, help="HOST:PORT to connect to")
    parser.add_argument("--land-name", default="mail.fibocom.com", help="the name AT+GTSMTPLAND gives")
    parser.add_argument("--land-port", type=int, default=25)
    parser.add_argument("--smtps", action="store_true", help="TLS from the first byte (mode 1)")
    parser.add_argument("--mode", type=int, choices=[0, 2, 3],
                        help="AT+GTSMTPLAND's mode otherwise: blank or 0 STARTTLS when offered and the password "
                        "only under TLS, 2 STARTTLS required, 3 sign-in in the clear allowed")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--to", required=True)
    parser.add_argument("--cafile", help="CA certificates for the server's")
    parser.add_argument("--tls-name", help="the name the certificate is checked against")
    parser.add_argument("--guard-ms", type=int, default=200)
    parser.add_argument("--attachment-size", type=int, default=64 * 1024)
    args = parser.parse_args()
    host, port = args.server.rsplit(":", 1)
    module = VirtualModule((host, int(port)), args.user, args.cafile, args.tls_name or args.land_name, args.guard_ms)
    body = "你好，这是正文。\r\n".encode("gb2312")
    attachment = bytearray(os.urandom(args.attachment_size))
    attachment[100:103] = b"+++"
    try:
        spec_case(module, args, body, bytes(attachment))
        module.finish()
    except TimeoutError as e:
        print(f"virtual module: {e}; {module.failure}", file=sys.stderr)
        return 1
    print(f"delivered: body {len(body)} bytes, attachment {len(attachment)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
