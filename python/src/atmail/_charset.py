"""The four session charsets, and Unicode text into their bytes.

Transcoding is the C ABI's (`atmail_transcode`, `encoding_rs` underneath),
the same as `atmail encode`'s, so a `str` becomes the same bytes whichever
tool wrote the mail: GBK under "gb2312", Big5-HKSCS under "big5"."""

from __future__ import annotations

import enum

from ._abi import INVALID_TEXT, OK, ffi, lib, new_uninit, status_text


class Charset(enum.IntEnum):
    """`AT+GTSMTPHEAD`'s charset codes."""

    ASCII = 0
    UTF8 = 1
    GB2312 = 2
    BIG5 = 3

    @classmethod
    def parse(cls, name: object) -> Charset:
        """A charset from its name ("ascii", "utf-8", "gb2312", "big5", or
        the aliases `atmail encode --charset` takes) or code."""
        if isinstance(name, Charset):
            return name
        if isinstance(name, int) and not isinstance(name, bool):
            try:
                return cls(name)
            except ValueError:
                raise ValueError(f"unknown charset code {name} (0-3)") from None
        if not isinstance(name, str):
            raise TypeError(f"charset must be a str, not {type(name).__name__}")
        try:
            return _NAMES[name.lower()]
        except KeyError:
            raise ValueError(f"unknown charset {name!r} (ascii, utf-8, gb2312, big5)") from None

    @property
    def label(self) -> str:
        return _LABELS[self]

    def encode(self, text: str, what: str = "text") -> bytes:
        """`text` in this charset's bytes; a character it cannot hold
        raises `UnicodeEncodeError` naming it."""
        if not isinstance(text, str):
            raise TypeError(f"{what} must be a str, not {type(text).__name__}")
        src = text.encode("utf-8", "surrogatepass")
        dst = new_uninit("uint8_t[]", max(len(src), 1))
        written = ffi.new("size_t *")
        bad = ffi.new("uint32_t *")
        status = lib.atmail_transcode(self.value, src, len(src), dst, len(src), written, bad)
        if status == INVALID_TEXT:
            at = text.index(chr(bad[0]))
            raise UnicodeEncodeError(self.label, text, at, at + 1, f"{what}: cannot be written in {self.label}")
        if status != OK:
            # Only a lone surrogate gets here: Python str that is not UTF-8.
            at = next(i for i, c in enumerate(text) if 0xD800 <= ord(c) <= 0xDFFF)
            raise UnicodeEncodeError(self.label, text, at, at + 1, f"{what}: {status_text(status)}")
        return bytes(ffi.buffer(dst, written[0]))


_NAMES = {
    "ascii": Charset.ASCII,
    "us-ascii": Charset.ASCII,
    "utf-8": Charset.UTF8,
    "utf8": Charset.UTF8,
    "gb2312": Charset.GB2312,
    "gbk": Charset.GB2312,
    "big5": Charset.BIG5,
}
_LABELS = {Charset.ASCII: "ascii", Charset.UTF8: "utf-8", Charset.GB2312: "gb2312", Charset.BIG5: "big5"}
