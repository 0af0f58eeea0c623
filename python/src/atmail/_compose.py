"""`compose`: one whole message written into a binary file object, byte for
byte what `atmail encode` writes for the same arguments.

Everything that can be checked is checked before the first byte goes out
(types, addresses, counts, sizes, the subject and names in the charset, the
body's bytes), so a refused message leaves `out` untouched. Bodies and
attachments that are files are read in 64 KiB chunks, so memory does not
grow with them; a body file is read twice (checked, then sent), so it must
be seekable."""

from __future__ import annotations

import datetime
import email.utils
import io
import secrets
from typing import IO, Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from ._abi import INSUFFICIENT_SIZE, INVALID_TEXT, OK, OUTPUT_FULL, check, ffi, lib, new_uninit, readable
from ._charset import Charset

CHUNK = 64 * 1024
MAX_PAYLOAD = lib.ATMAIL_MAX_PAYLOAD
MAX_RECIPIENTS = 20
MAX_ATTACHMENTS = 20

Data = Union[bytes, bytearray, memoryview, IO[bytes]]
_KINDS = (("to", 1), ("cc", 2), ("bcc", 3))


def compose(
    out: IO[bytes],
    *,
    sender: str,
    to: Sequence[str],
    cc: Sequence[str] = (),
    bcc: Sequence[str] = (),
    subject: Optional[str] = None,
    charset: str = "utf-8",
    body: Optional[Data] = None,
    attachments: Sequence[Tuple[str, Data]] = (),
    date: Optional[str] = None,
    message_id: Optional[str] = None,
) -> int:
    """Writes the message into `out` (anything with `write(bytes)`) as it
    is encoded; returns the bytes written. `date` defaults to now (RFC 5322,
    UTC) and `message_id` to a random one at the sender's domain; the
    Message-ID also seeds the MIME boundary."""
    code = Charset.parse(charset)
    text = _check_text("sender", sender)
    domain = text.rpartition("@")[2]
    date_text = _check_text("date", date) if date is not None else _now()
    id_text = _message_id(message_id, domain)
    message = _Message(code, text, date_text, id_text)
    _add_recipients(message, {"to": to, "cc": cc, "bcc": bcc})
    if subject is not None:
        message.set_subject(code.encode(subject, "subject"))
    parts = _check_attachments(code, attachments)
    if body is not None:
        body = _check_body(message, body)
    writer = _Writer(out)
    writer.pump(message.head)
    if body is not None:
        writer.stream(body, lambda src, n, last, dst, cap, r, w: lib.atmail_message_body(
            message.raw, src, n, r, dst, cap, w, last), "body")
    for name, data in parts:
        writer.stream(data, lambda src, n, last, dst, cap, r, w, name=name: lib.atmail_message_attachment(
            message.raw, name, len(name), src, n, r, dst, cap, w, last), "attachments")
    writer.pump(message.finish)
    return writer.total


class _Message:
    """An `atmail_message`: the stored, validated header fields."""

    def __init__(self, charset: Charset, sender: str, date: str, message_id: str) -> None:
        out = ffi.new("atmail_message **")
        check(lib.atmail_message_new(charset.value, out), "charset")
        self.raw: Any = ffi.gc(out[0], lib.atmail_message_free)
        self.charset = charset
        for setter, what, value in (
            (lib.atmail_message_set_from, "sender", sender),
            (lib.atmail_message_set_date, "date", date),
            (lib.atmail_message_set_message_id, "message_id", message_id),
        ):
            data = _ascii(what, value)
            _check_field(setter(self.raw, data, len(data)), what, value)

    def add(self, kind: int, address: str) -> None:
        data = _ascii("recipient", address)
        _check_field(lib.atmail_message_add_recipient(self.raw, kind, data, len(data)), "recipient", address)

    def set_subject(self, subject: bytes) -> None:
        check(lib.atmail_message_set_subject(self.raw, subject, len(subject)), "subject")

    def head(self, dst: Any, cap: int, written: Any) -> int:
        return int(lib.atmail_message_head(self.raw, dst, cap, written))

    def finish(self, dst: Any, cap: int, written: Any) -> int:
        return int(lib.atmail_message_finish(self.raw, dst, cap, written))


_SHAPES = {
    "sender": "an address, local@domain",
    "recipient": "an address, local@domain",
    "message_id": "<local@domain>",
}


def _check_field(status: int, what: str, value: str) -> None:
    """`check`, naming what the field must look like when its shape is wrong."""
    shape = _SHAPES.get(what)
    if status == lib.ATMAIL_STATUS_INVALID_PARAMETER and shape is not None:
        raise ValueError(f"{what} {value!r}: not {shape}")
    check(status, f"{what} {value!r}")


def _add_recipients(message: _Message, lists: Dict[str, Any]) -> None:
    count = 0
    for name, kind in _KINDS:
        addresses = lists[name]
        if isinstance(addresses, (str, bytes)) or not isinstance(addresses, Iterable):
            raise TypeError(f"{name} must be a sequence of str, not {type(addresses).__name__}")
        for address in addresses:
            message.add(kind, _check_text(name, address))
            count += 1
    if not 1 <= count <= MAX_RECIPIENTS:
        raise ValueError(f"{count} recipients given; a mail needs 1 to {MAX_RECIPIENTS}")


def _check_attachments(charset: Charset, attachments: Sequence[Tuple[str, Data]]) -> List[Tuple[bytes, Data]]:
    if isinstance(attachments, (str, bytes)) or not isinstance(attachments, Iterable):
        raise TypeError("attachments must be a sequence of (name, data) pairs")
    parts = []
    total = 0
    for item in attachments:
        if not isinstance(item, tuple) or len(item) != 2:
            raise TypeError(f"an attachment must be a (name, data) pair, not {item!r:.60}")
        name, data = item
        encoded = charset.encode(name, "attachment name")
        _check_name(charset, encoded, name)
        total += _size(data, f"attachment {name!r}")
        parts.append((encoded, data))
    if len(parts) > MAX_ATTACHMENTS:
        raise ValueError(f"{len(parts)} attachments given; at most {MAX_ATTACHMENTS}")
    _check_size(total, "the attachments together")
    return parts


def _check_name(charset: Charset, name: bytes, shown: str) -> None:
    needed = ffi.new("size_t *")
    status = lib.atmail_header_attachment(charset.value, name, len(name), ffi.NULL, 0, needed)
    if status != INSUFFICIENT_SIZE:
        check(status, f"attachment name {shown!r}")


def _check_body(message: _Message, body: Data) -> Data:
    """Checks the body in the charset (a first pass); returns what to
    stream (a file rewound to where it was)."""
    offset = ffi.new("uint64_t *")
    if _is_file(body):
        file: Any = body
        if not file.seekable():
            raise ValueError("a body file must be seekable (it is read twice: checked, then sent)")
        start = file.tell()
        chunks = _chunks(file)
    else:
        _size(body, "body")
        chunks = iter([readable(body, "body")])
    seen = 0
    for chunk in chunks:
        status = lib.atmail_message_check_body(message.raw, chunk, len(chunk), False, offset)
        seen += len(chunk)
        if status == INVALID_TEXT:
            raise ValueError(f"body: bytes not valid {message.charset.label} at offset {offset[0]}")
        check(status, f"body ({seen} bytes or more)")
    status = lib.atmail_message_check_body(message.raw, ffi.NULL, 0, True, offset)
    if status == INVALID_TEXT:
        raise ValueError(f"body: bytes not valid {message.charset.label} at offset {offset[0]}")
    check(status, "body")
    if _is_file(body):
        file.seek(start)
    return body


def _size(data: Data, what: str) -> int:
    if _is_file(data):
        file: Any = data
        if not (hasattr(file, "seekable") and file.seekable()):
            return 0  # a pipe: counted while it streams (`_Writer`)
        start = file.tell()
        size: int = file.seek(0, io.SEEK_END) - start
        file.seek(start)
    else:
        size = len(readable(data, what))
    _check_size(size, what)
    return size


def _check_size(size: int, what: str) -> None:
    """The module takes at most 20 MiB of body, and 20 MiB of attachments
    together (`framer::MAX_PAYLOAD`)."""
    if size > MAX_PAYLOAD:
        raise ValueError(f"{what} is {size} bytes; at most {MAX_PAYLOAD} (20 MiB)")


def _is_file(data: object) -> bool:
    return hasattr(data, "read") and not isinstance(data, (bytes, bytearray, memoryview))


def _chunks(file: Any) -> Iterable[Any]:
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    readinto = getattr(file, "readinto", None)
    while True:
        if readinto is not None:
            n = readinto(buf)
            chunk = view[:n] if n else b""
        else:
            chunk = file.read(CHUNK)
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError(f"a file must be opened in binary mode (read gave {type(chunk).__name__})")
        if not chunk:
            return
        yield readable(chunk, "file data")


class _Writer:
    """Pumps one part of the message into `out`, counting bytes."""

    def __init__(self, out: IO[bytes]) -> None:
        if not hasattr(out, "write"):
            raise TypeError(f"out must be a binary file object, not {type(out).__name__}")
        self.out = out
        self.cap = 2 * CHUNK
        self.dst = new_uninit("uint8_t[]", self.cap)
        self.read, self.written = ffi.new("size_t *"), ffi.new("size_t *")
        self.total = 0
        self.left = {"body": MAX_PAYLOAD, "attachments": MAX_PAYLOAD}

    def emit(self) -> None:
        n = self.written[0]
        if n:
            self.out.write(ffi.buffer(self.dst, n))
            self.total += n

    def pump(self, step: Any) -> None:
        while True:
            status = step(self.dst, self.cap, self.written)
            if status not in (OK, OUTPUT_FULL):
                check(status, "writing the message")
            self.emit()
            if status == OK:
                return

    def stream(self, data: Data, step: Any, part: str) -> None:
        """Streams one part; `part` ("body" or "attachments") names the
        20 MiB allowance it counts against."""
        chunks = _chunks(data) if _is_file(data) else iter([readable(data, "data")])
        for chunk in chunks:
            self.left[part] -= len(chunk)
            if self.left[part] < 0:
                # Only a stream without a size gets here: sized ones were
                # checked before the first byte.
                raise ValueError(f"{part} passed {MAX_PAYLOAD} bytes (20 MiB) while streamed")
            self._feed(chunk, False, step)
        self._feed(ffi.from_buffer("uint8_t[]", b""), True, step)

    def _feed(self, chunk: Any, last: bool, step: Any) -> None:
        offset, n = 0, len(chunk)
        while True:
            status = step(chunk + offset, n - offset, last, self.dst, self.cap, self.read, self.written)
            if status not in (OK, OUTPUT_FULL):
                check(status, "writing the message")
            offset += self.read[0]
            self.emit()
            if status == OK:
                return


def _check_text(what: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    return value


def _ascii(what: str, value: str) -> bytes:
    try:
        return value.encode("ascii")
    except UnicodeEncodeError as e:
        raise UnicodeEncodeError("ascii", value, e.start, e.end, f"{what} must be ASCII") from None


def _now() -> str:
    return email.utils.format_datetime(datetime.datetime.now(datetime.timezone.utc))


def _message_id(given: Optional[str], domain: str) -> str:
    if given is None:
        return f"<{secrets.token_hex(8)}.atmail@{domain}>"
    text = _check_text("message_id", given)
    return text if text.startswith("<") else f"<{text}>"
