"""The C ABI (`libatmail`, the library firmware links) as cffi loads it,
and the checks every call's status goes through.

cffi's ABI mode calls the library without a compiler at install time; the
declarations are generated from `include/atmail.h`'s source by maturin."""

from __future__ import annotations

from typing import Any, Union

from . import _native
from ._errors import AtmailError, StateError

ffi: Any = _native.ffi
lib: Any = _native.lib

# Bytes-like input: anything with the buffer protocol.
Buffer = Union[bytes, bytearray, memoryview]

OK = lib.ATMAIL_STATUS_OK
OUTPUT_FULL = lib.ATMAIL_STATUS_OUTPUT_FULL
INSUFFICIENT_SIZE = lib.ATMAIL_STATUS_INSUFFICIENT_SIZE
INVALID_TEXT = lib.ATMAIL_STATUS_INVALID_TEXT

_VALUE_ERRORS = {
    lib.ATMAIL_STATUS_INVALID_PARAMETER,
    lib.ATMAIL_STATUS_INVALID_TEXT,
    lib.ATMAIL_STATUS_TOO_LONG,
    lib.ATMAIL_STATUS_CONTROL_CHARACTER,
    lib.ATMAIL_STATUS_EMPTY,
}

# Output buffers are written before they are read: no need to zero them.
new_uninit = ffi.new_allocator(should_clear_after_alloc=False)


def status_text(status: int) -> str:
    return str(ffi.string(lib.atmail_status_str(status)).decode())


def check(status: int, what: str) -> None:
    """Raises for a status other than OK: `ValueError` for a bad value,
    `StateError` for a call out of turn, `AtmailError` otherwise."""
    if status == OK:
        return
    text = f"{what}: {status_text(status)}"
    if status in _VALUE_ERRORS:
        raise ValueError(text)
    if status == lib.ATMAIL_STATUS_WRONG_STATE:
        raise StateError(text)
    raise AtmailError(text)


def readable(data: object, what: str) -> Any:
    """A `const uint8_t *` over any bytes-like object, without a copy."""
    if isinstance(data, str):
        raise TypeError(f"{what} must be bytes-like, not str (encode it first)")
    try:
        return ffi.from_buffer("uint8_t[]", data)
    except TypeError:
        raise TypeError(f"{what} must be bytes-like, not {type(data).__name__}") from None


def version() -> str:
    return str(ffi.string(lib.atmail_version()).decode())
