"""MIME base64 (RFC 2045): 76-column lines, each ended by CRLF, streamed.

The encoder is the C ABI's, the one a firmware links, with the AVX2 kernel
on CPUs that have it. Input is read in place through the buffer protocol
(bytes, bytearray, memoryview, mmap, array: no copy on the way in); output
is written into a scratch buffer the encoder keeps and grows, then copied
once into the `bytes` returned."""

from __future__ import annotations

from typing import Any

from ._abi import check, ffi, lib, new_uninit, readable
from ._errors import StateError

# The encoder holds at most 2 input bytes and 6 output characters between
# calls; with those, n input bytes make at most this many output bytes.
_LINE = 76


def _room(n: int) -> int:
    chars = ((n + 2) // 3 + 2) * 4 + 8
    return chars + 2 * (chars // _LINE + 2)


class MimeBase64Encoder:
    """Streams any number of chunks into MIME base64 lines; `finish()`
    ends the last line. Chunks may split anywhere: the output is the same
    as for the whole input at once."""

    __slots__ = ("_raw", "_buf", "_cap", "_read", "_written", "_done")

    def __init__(self) -> None:
        out = ffi.new("atmail_base64_encoder **")
        check(lib.atmail_base64_encoder_new(out), "creating an encoder")
        self._raw: Any = ffi.gc(out[0], lib.atmail_base64_encoder_free)
        self._buf: Any = ffi.NULL
        self._cap = 0
        self._read: Any = ffi.new("size_t *")
        self._written: Any = ffi.new("size_t *")
        self._done = False

    def encode(self, chunk: Any) -> bytes:
        """The lines (and part line) `chunk` completes."""
        return self._run(chunk, False)

    def finish(self) -> bytes:
        """The rest of the output, ended with CRLF; the encoder takes no
        more input afterwards."""
        return self._run(b"", True)

    def _run(self, chunk: Any, last: bool) -> bytes:
        if self._done:
            raise StateError("this MimeBase64Encoder was finished; make a new one")
        src = readable(chunk, "chunk")
        n = len(src)
        room = _room(n)
        if room > self._cap:
            self._buf = new_uninit("uint8_t[]", room)
            self._cap = room
        status = lib.atmail_base64_encoder_encode(
            self._raw, src, n, self._read, self._buf, room, self._written, last
        )
        check(status, "encoding")
        self._done = last
        return ffi.buffer(self._buf, self._written[0])[:]  # type: ignore[no-any-return]


def mime_base64(data: Any) -> bytes:
    """`data` (any bytes-like object) as whole MIME base64 lines, the last
    one ended with CRLF too (empty input: empty output)."""
    return MimeBase64Encoder()._run(data, True)
