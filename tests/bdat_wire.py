"""Reading a BDAT conversation that went to a real MTA (Postfix, Exim)
through `downgrade_proxy.RecordingProxy`, and comparing what the MTA
stored with what was sent: the helpers the BDAT tests of test_postfix.py
and test_exim.py share.

What it does not: judge anything on its own; the tests assert."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import List, Tuple

from rfc3030_server import parse_client_stream

CHUNK = 16 * 1024
"""The chunk storage `atmail modem` gives the engine (interfaces.md)."""

TRACE = re.compile(rb"(?i)(Return-Path|Delivered-To|X-Original-To|Received|Envelope-to):")


@dataclass
class Conversation:
    """A client's side of one connection, read at a proxy."""

    commands: List[bytes] = field(default_factory=list)
    bdats: List[Tuple[int, bool]] = field(default_factory=list)
    """(count, LAST) of each BDAT, as the client wrote them."""
    message: bytes = b""
    """The message as it went: the BDAT octets joined, or DATA's with the
    dot-stuffing undone."""
    replies: List[Tuple[bytes, bytes]] = field(default_factory=list)
    """(command, the server's reply to it), in order; DATA has two."""
    ehlo: bytes = b""
    """The server's reply to the last EHLO."""

    def verbs(self) -> List[bytes]:
        return [c.split(b" ", 1)[0].upper() for c in self.commands]

    def mail(self) -> bytes:
        (line,) = [c for c in self.commands if c.upper().startswith(b"MAIL")]
        return line


def read(recording) -> Conversation:
    conv = Conversation()
    for line, octets in parse_client_stream(recording.from_client):
        conv.commands.append(line)
        m = re.fullmatch(rb"(?i)BDAT (\d+)( LAST)?", line)
        if m:
            conv.bdats.append((int(m.group(1)), m.group(2) is not None))
            conv.message += octets
        elif line.upper() == b"DATA":
            conv.message = (b"\r\n" + octets).replace(b"\r\n..", b"\r\n.")[2:]
    # Replies come in the order of the commands (RFC 2920), one each, two
    # for DATA (354, then the end's); the first is the greeting.
    replies = re.findall(rb"(?m)(?:^\d{3}-[^\r\n]*\r\n)*^\d{3}(?: [^\r\n]*)?\r\n", recording.from_server)[1:]
    for command in conv.commands:
        for _ in range(2 if command.upper() == b"DATA" and replies[:1] != [] and replies[0][:1] == b"3" else 1):
            if replies:
                conv.replies.append((command, replies.pop(0)))
    ehlos = [reply for command, reply in conv.replies if command.upper().startswith(b"EHLO")]
    conv.ehlo = ehlos[-1] if ehlos else b""
    return conv


def offers(ehlo: bytes, keyword: bytes) -> bool:
    return any(line[4:].split(b" ")[0].upper() == keyword for line in ehlo.split(b"\r\n") if line)


def without_trace(stored: bytes) -> bytes:
    """A stored message without the trace headers the MTA put on top
    (Return-Path, Delivered-To, X-Original-To, Received, Envelope-to,
    with their continuation lines)."""
    lines = stored.splitlines(keepends=True)
    at = 0
    while at < len(lines) and TRACE.match(lines[at]):
        at += 1
        while at < len(lines) and lines[at][:1] in (b" ", b"\t"):
            at += 1
    return b"".join(lines[at:])


def normalized(raw: bytes) -> bytes:
    """A message without what differs from mail to mail: Date, Message-ID
    and the random boundary."""
    boundary = re.search(rb'boundary="([^"]+)"', raw).group(1)
    raw = raw.replace(boundary, b"BOUNDARY")
    return re.sub(rb"(?m)^(Date|Message-ID): [^\r\n]*\r?\n", b"", raw)


def check_chunks(conv: Conversation, chunk: int = CHUNK) -> None:
    """BDAT not DATA; every chunk but the last full; LAST once, at the
    end; no BODY=BINARYMIME (these servers do not offer it)."""
    verbs = conv.verbs()
    assert b"DATA" not in verbs and b"BDAT" in verbs, verbs
    lasts = [last for _, last in conv.bdats]
    assert lasts == [False] * (len(lasts) - 1) + [True], conv.bdats
    assert all(count == chunk for count, _ in conv.bdats[:-1]), conv.bdats
    assert 0 < conv.bdats[-1][0] <= chunk or len(conv.bdats) > 1, conv.bdats
    assert b"BODY=" not in conv.mail().upper(), conv.mail()
    assert conv.message.index(b"\r\n\r\n") + 4 <= conv.bdats[0][0], "the header block is in the first chunk"
