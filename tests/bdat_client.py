"""A reference client for the BDAT tests: builds the spec's message the
way interfaces.md says the engine does (binary or base64 parts) and sends
it by BDAT or DATA over a raw socket. It does not stand in for the engine
anywhere: it proves the checks and the recording servers and proxies are
right on their own (a check that accepts this client and refuses its
wrong variants means what it says), and it needs nothing from the core.

What it does not: STARTTLS, pipelining beyond BDAT, or any reply it does
not expect (it asserts)."""

from __future__ import annotations

import base64
import os
import socket
from typing import List, Sequence, Tuple

from smtp_server import PASSWORD, USER, canonical

SUBJECT = b"=?GB2312?B?" + base64.b64encode("你好 smtp".encode("gb2312")) + b"?="


def message(body: bytes, files: Sequence[Tuple[str, bytes]], binary: bool = True) -> bytes:
    """The spec's mail: the text body and each file as a part, each
    `Content-Transfer-Encoding: binary` (bytes as given, the body in
    canonical CRLF form) or base64 (76 columns)."""
    boundary = b"=_ref_" + os.urandom(8).hex().encode()
    out = (
        b"Date: Mon, 07 Dec 2026 20:00:00 +0000\r\n"
        b"From: " + USER + b"\r\nTo: xiangj@fibocom.com\r\nSubject: " + SUBJECT + b"\r\n"
        b"Message-ID: <" + boundary[6:] + b"@fibocom.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed;\r\n boundary=\"" + boundary + b"\"\r\n\r\n"
    )
    parts = [(b"Content-Type: text/plain; charset=GBK\r\n", canonical(body))]
    for name, data in files:
        n = name.encode()
        parts.append((b'Content-Type: application/octet-stream; name="%s"\r\n'
                      b'Content-Disposition: attachment; filename="%s"\r\n' % (n, n), data))
    for headers, payload in parts:
        out += b"--" + boundary + b"\r\n" + headers
        if binary:
            out += b"Content-Transfer-Encoding: binary\r\n\r\n" + payload + b"\r\n"
        else:
            b64 = base64.b64encode(payload)
            lines = [b64[i : i + 76] for i in range(0, len(b64), 76)]
            out += b"Content-Transfer-Encoding: base64\r\n\r\n" + b"".join(l + b"\r\n" for l in lines)
    return out + b"--" + boundary + b"--\r\n"


class Client:
    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.buf = b""

    def reply(self) -> bytes:
        lines = b""
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                assert chunk, f"closed; so far {lines!r}"
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines += line + b"\r\n"
            if line[3:4] != b"-":
                return lines

    def cmd(self, line: bytes, expect: bytes = b"2") -> bytes:
        self.sock.sendall(line + b"\r\n")
        reply = self.reply()
        assert reply.startswith(expect), (line[:60], reply)
        return reply


def send(port: int, raw: bytes, method: str = "BDAT", body: str = "", chunk: int = 16 * 1024,
         chunks: Sequence[int] = ()) -> List[bytes]:
    """Sends `raw` signed in (AUTH PLAIN), by `method`; `body` is the
    BODY= value (none when empty); `chunks` gives the chunk sizes instead
    of `chunk` (the rest goes in LAST). BDATs are pipelined, their replies
    counted. Returns the replies to the message."""
    c = Client(port)
    c.reply()
    c.cmd(b"EHLO [127.0.0.1]")
    c.cmd(b"AUTH PLAIN " + base64.b64encode(b"\0" + USER + b"\0" + PASSWORD))
    c.cmd(b"MAIL FROM:<" + USER + b">" + (b" BODY=" + body.encode() if body else b""))
    c.cmd(b"RCPT TO:<xiangj@fibocom.com>")
    if method == "DATA":
        c.cmd(b"DATA", b"3")
        stuffed = (b"\r\n" + raw).replace(b"\r\n.", b"\r\n..")[2:]
        c.sock.sendall(stuffed + (b"" if raw.endswith(b"\r\n") else b"\r\n") + b".\r\n")
        replies = [c.reply()]
    else:
        sizes = list(chunks) or [chunk] * ((len(raw) - 1) // chunk)
        at, flight = 0, b""
        for size in sizes:
            flight += b"BDAT %d\r\n" % size + raw[at : at + size]
            at += size
        flight += b"BDAT %d LAST\r\n" % (len(raw) - at) + raw[at:]
        c.sock.sendall(flight)
        replies = [c.reply() for _ in range(len(sizes) + 1)]
    c.cmd(b"QUIT")
    c.sock.close()
    return replies
