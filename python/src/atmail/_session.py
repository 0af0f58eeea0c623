"""`Session`: the whole G510 engine, sans-IO, one method per C entry point.

The session never reads a clock or touches a socket: the caller passes
`now_ms` (any monotonic milliseconds), feeds it the host's serial bytes
and the server's bytes, and does what it asks (open a connection, start
TLS, close, send these bytes, answer this command line). A Python program
can so run a virtual module over its own sockets and `ssl.MemoryBIO`
(`python/examples/virtual_module.py`). Its loop:

    progress = session.handle_host(now, serial_bytes)   # then send
    while (event := session.poll_event()) is not None:   # act on each
        ...
    sock.send(session.poll_server(now)); uart.write(session.poll_host())

Methods return Python values where C fills out-parameters: `poll_host()`
and `poll_server()` return everything waiting as `bytes`, `poll_event()`
an `Event` or None, `handle_host()` a `HostProgress`, `next_deadline()`
an int or None."""

from __future__ import annotations

import enum
import ipaddress
from typing import Any, List, NamedTuple, Optional, Union

from ._abi import OK, check, ffi, lib, new_uninit, readable
from ._errors import AtmailError

_OUT = 16 * 1024
# The token storage a host gives (DESIGN.md): the longest AT+GTSMTPTOKEN.
_TOKEN_MAX = 8192
# The chunk storage a host gives: the largest BDAT chunk (interfaces of
# issue 32; the CLI gives the same).
_CHUNK_MAX = 16 * 1024


class Transfer(enum.IntEnum):
    """How mails may cross the wire (`AT+GTSMTPBDAT`, RFC 3030): OFF is
    `DATA` with base64 parts; AUTO (the default) `BDAT` with binary parts
    where the server offers CHUNKING and BINARYMIME; FORCE `BDAT` wherever
    it offers CHUNKING."""

    OFF = lib.ATMAIL_TRANSFER_OFF
    AUTO = lib.ATMAIL_TRANSFER_AUTO
    FORCE = lib.ATMAIL_TRANSFER_FORCE


class EventKind(enum.IntEnum):
    """What an `Event` asks of the caller."""

    COMMAND = lib.ATMAIL_EVENT_KIND_COMMAND
    IDENTITY = lib.ATMAIL_EVENT_KIND_IDENTITY
    CONNECT = lib.ATMAIL_EVENT_KIND_CONNECT
    START_TLS = lib.ATMAIL_EVENT_KIND_START_TLS
    CLOSE = lib.ATMAIL_EVENT_KIND_CLOSE
    MAIL_FAILED = lib.ATMAIL_EVENT_KIND_MAIL_FAILED


class Stopped(enum.IntEnum):
    """Why `handle_host` stopped taking host bytes."""

    INPUT_EMPTY = lib.ATMAIL_STOPPED_INPUT_EMPTY
    SERVER_FULL = lib.ATMAIL_STOPPED_SERVER_FULL
    HOST_FULL = lib.ATMAIL_STOPPED_HOST_FULL
    CALLER = lib.ATMAIL_STOPPED_CALLER


class State(enum.IntEnum):
    """Where the session is."""

    IDLE = lib.ATMAIL_STATE_IDLE
    SENDING = lib.ATMAIL_STATE_SENDING
    READY = lib.ATMAIL_STATE_READY
    DATA_MODE = lib.ATMAIL_STATE_DATA_MODE
    FINISHING = lib.ATMAIL_STATE_FINISHING
    DISCARDING = lib.ATMAIL_STATE_DISCARDING
    TOKEN_INPUT = lib.ATMAIL_STATE_TOKEN_INPUT


class Connect(NamedTuple):
    """A connection the session asks for."""

    host: str
    port: int
    implicit_tls: bool


class Event(NamedTuple):
    """One thing the caller must do: answer `line` (COMMAND), set or
    refuse an identity (IDENTITY), open `connect` (CONNECT), start TLS,
    close the connection, or log `reason` (MAIL_FAILED)."""

    kind: EventKind
    line: bytes = b""
    connect: Optional[Connect] = None
    reason: str = ""


class HostProgress(NamedTuple):
    """What `handle_host` took, what it wrote for the server (send it
    after anything sent before), and why it stopped."""

    read: int
    to_server: bytes
    stopped: Stopped


Text = Union[str, bytes]


def _bytes(value: Text, what: str) -> bytes:
    if isinstance(value, str):
        return value.encode("ascii")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be str or bytes, not {type(value).__name__}")


class Session:
    """The G510 engine (`atmail_session`); see the module's doc."""

    def __init__(self) -> None:
        out = ffi.new("atmail_session **")
        check(lib.atmail_session_new(out), "creating a session")
        # The session writes zeros over its token and its chunk storage
        # when it is freed, so the storage must outlive it: the destructor
        # holds it.
        token = ffi.new("uint8_t[]", _TOKEN_MAX)
        chunks = ffi.new("uint8_t[]", _CHUNK_MAX)
        self._raw: Any = ffi.gc(
            out[0], lambda raw, _token=token, _chunks=chunks: lib.atmail_session_free(raw)
        )
        check(lib.atmail_session_set_token_storage(self._raw, token, _TOKEN_MAX), "token storage")
        check(lib.atmail_session_set_chunk_storage(self._raw, chunks, _CHUNK_MAX), "chunk storage")
        self._out: Any = new_uninit("uint8_t[]", _OUT)
        self._read: Any = ffi.new("size_t *")
        self._written: Any = ffi.new("size_t *")
        self._stopped: Any = ffi.new("atmail_stopped *")
        self._event: Any = ffi.new("atmail_event *")
        self._text: Any = new_uninit("uint8_t[]", lib.ATMAIL_EVENT_MAX)

    # Configuration.

    def set_verbose_errors(self, on: bool) -> None:
        check(lib.atmail_session_set_verbose_errors(self._raw, bool(on)), "verbose errors")

    def set_guard_ms(self, guard_ms: int) -> None:
        check(lib.atmail_session_set_guard_ms(self._raw, _uint(guard_ms, "guard_ms", 32)), "guard_ms")

    def set_require_tls(self, on: bool) -> None:
        check(lib.atmail_session_set_require_tls(self._raw, bool(on)), "require TLS")

    def set_transfer(self, mode: int) -> None:
        """The `AT+GTSMTPBDAT` mode when the host has not set one (a
        `Transfer`, or its code 0-2): what `AT+GTSMTPCLR` restores, and the
        current mode unless the host set one since the last CLR.
        `ValueError` for another number."""
        check(lib.atmail_session_set_transfer(self._raw, _uint(mode, "mode", 32)), "transfer mode")

    def set_helo_name(self, name: Text) -> None:
        data = _bytes(name, "name")
        check(lib.atmail_session_set_helo_name(self._raw, data, len(data)), "HELO name")

    def set_identity(self, date: Text, message_id: Text) -> None:
        d, m = _bytes(date, "date"), _bytes(message_id, "message_id")
        check(lib.atmail_session_set_identity(self._raw, d, len(d), m, len(m)), "identity")

    def refuse_identity(self) -> None:
        """No Date and Message-ID for the waiting SEND: it answers
        `+CME ERROR: no Date or Message-ID for the mail` and
        `+GTSMTPSEND: 0`, never hangs."""
        check(lib.atmail_session_refuse_identity(self._raw), "refuse identity")

    def set_network_up(self, up: bool) -> None:
        check(lib.atmail_session_set_network_up(self._raw, bool(up)), "network")

    # The host side.

    def handle_host(self, now_ms: int, data: Any) -> HostProgress:
        """Takes host bytes: how many it took, the bytes it wrote for the
        server meanwhile (payload in data mode) and why it stopped."""
        src = readable(data, "data")
        status = lib.atmail_session_handle_host(
            self._raw, _now(now_ms), src, len(src), self._read, self._out, _OUT, self._written, self._stopped
        )
        check(status, "host bytes")
        to_server = ffi.buffer(self._out, self._written[0])[:]
        return HostProgress(int(self._read[0]), to_server, Stopped(self._stopped[0]))

    def poll_event(self) -> Optional[Event]:
        """The next thing to do, once each, in the order it must be done;
        None when there is nothing. Call it after every other call until
        it returns None."""
        ev = self._event
        check(lib.atmail_session_poll_event(self._raw, ev, self._text, lib.ATMAIL_EVENT_MAX), "event")
        if ev.kind == lib.ATMAIL_EVENT_KIND_NONE:
            return None
        kind = EventKind(ev.kind)
        text = ffi.buffer(self._text, ev.len)[:]
        if kind == EventKind.COMMAND:
            return Event(kind, line=text)
        if kind == EventKind.CONNECT:
            return Event(kind, connect=Connect(text.decode("ascii", "replace"), int(ev.port), bool(ev.implicit_tls)))
        if kind == EventKind.MAIL_FAILED:
            return Event(kind, reason=text.decode("utf-8", "replace"))
        return Event(kind)

    def answer_command(self, answer: bytes) -> None:
        """The whole answer to the pending command, final result code
        included (e.g. b"\\r\\nOK\\r\\n")."""
        src = readable(answer, "answer")
        check(lib.atmail_session_answer_command(self._raw, src, len(src)), "answer")

    def state(self) -> State:
        return State(lib.atmail_session_state(self._raw))

    def in_data_mode(self) -> bool:
        return bool(lib.atmail_session_in_data_mode(self._raw))

    def poll_host(self) -> bytes:
        """Everything waiting for the host: answers, prompts, URCs."""
        return self._drain(lambda: lib.atmail_session_poll_host(self._raw, self._out, _OUT, self._written))

    # The server side.

    def handle_connected(self, now_ms: int, local_ip: Optional[str] = None) -> None:
        """The connection is open (for SMTPS, TLS is up); `local_ip` is its
        local address, for the EHLO name."""
        packed = ipaddress.ip_address(local_ip).packed if local_ip is not None else b""
        status = lib.atmail_session_handle_connected(self._raw, _now(now_ms), packed, len(packed))
        check(status, "connected")

    def handle_closed(self) -> None:
        check(lib.atmail_session_handle_closed(self._raw), "closed")

    def handle_tls_established(self, now_ms: int) -> None:
        check(lib.atmail_session_handle_tls_established(self._raw, _now(now_ms)), "TLS established")

    def handle_tls_failed(self) -> None:
        """The caller's TLS failed (a refused certificate, no common
        parameters, a bad record): the mail fails with a reason that says
        TLS, and a CLOSE event asks for the close."""
        check(lib.atmail_session_handle_tls_failed(self._raw), "TLS failed")

    def handle_server(self, now_ms: int, data: Any) -> int:
        """Takes server bytes; returns how many (the rest waits until the
        session has room: pass it again)."""
        src = readable(data, "data")
        check(lib.atmail_session_handle_server(self._raw, _now(now_ms), src, len(src), self._read), "server bytes")
        return int(self._read[0])

    def poll_server(self, now_ms: int) -> bytes:
        """Everything waiting for the server."""
        now = _now(now_ms)
        return self._drain(lambda: lib.atmail_session_poll_server(self._raw, now, self._out, _OUT, self._written))

    # Time.

    def handle_timeout(self, now_ms: int) -> None:
        check(lib.atmail_session_handle_timeout(self._raw, _now(now_ms)), "timeout")

    def next_deadline(self) -> Optional[int]:
        deadline = ffi.new("uint64_t *")
        check(lib.atmail_session_next_deadline(self._raw, deadline), "deadline")
        return None if deadline[0] == lib.ATMAIL_NO_DEADLINE else int(deadline[0])

    def _drain(self, poll: Any) -> bytes:
        chunks: List[bytes] = []
        while True:
            status = poll()
            if status != OK:
                check(status, "poll")
            n = self._written[0]
            if n == 0:
                return b"".join(chunks)
            chunks.append(ffi.buffer(self._out, n)[:])


def _uint(value: int, what: str, bits: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{what} {value} out of range")
    return value


def _now(now_ms: int) -> int:
    return _uint(now_ms, "now_ms", 64)


__all__ = [
    "AtmailError",
    "Connect",
    "Event",
    "EventKind",
    "HostProgress",
    "Session",
    "State",
    "Stopped",
    "Transfer",
]
