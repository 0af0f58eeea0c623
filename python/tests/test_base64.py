"""`MimeBase64Encoder` and `mime_base64` against Python's own base64, over
every kind of input and any chunking; errors; memory."""

import array
import base64
import mmap
import random
import resource

import pytest

import atmail


def reference(data: bytes) -> bytes:
    """RFC 2045 lines: 76 characters, CRLF after each, the last too."""
    text = base64.b64encode(data)
    return b"".join(text[i : i + 76] + b"\r\n" for i in range(0, len(text), 76))


@pytest.mark.parametrize("size", [0, 1, 2, 3, 56, 57, 58, 76, 114, 1000, 65536, 65537, 200_003])
def test_whole_buffers(size):
    data = random.Random(size).randbytes(size)
    assert atmail.mime_base64(data) == reference(data)
    encoder = atmail.MimeBase64Encoder()
    assert encoder.encode(data) + encoder.finish() == reference(data)


@pytest.mark.parametrize("seed", range(40))
def test_any_chunking_gives_the_same_output(seed):
    rng = random.Random(seed)
    data = rng.randbytes(rng.randrange(0, 5000))
    encoder = atmail.MimeBase64Encoder()
    out, at = [], 0
    while at < len(data):
        n = rng.choice([0, 1, 2, 3, 57, 58, rng.randrange(0, 700)])
        out.append(encoder.encode(data[at : at + n]))
        at += n
    out.append(encoder.finish())
    assert b"".join(out) == reference(data)


def test_any_bytes_like_input_is_read_in_place():
    data = bytes(range(256)) * 9
    with mmap.mmap(-1, len(data)) as mapped:
        mapped.write(data)
        inputs = [data, bytearray(data), memoryview(data), memoryview(data)[10:], array.array("B", data), mapped]
        for value in inputs:
            want = reference(bytes(value))
            assert atmail.mime_base64(value) == want, type(value)
            encoder = atmail.MimeBase64Encoder()
            assert encoder.encode(value) + encoder.finish() == want


def test_wrong_types_and_use_after_finish():
    encoder = atmail.MimeBase64Encoder()
    for wrong in ["text", 5, None, [1, 2]]:
        with pytest.raises(TypeError):
            encoder.encode(wrong)
        with pytest.raises(TypeError):
            atmail.mime_base64(wrong)
    assert encoder.encode(b"ab") == b""
    assert encoder.finish() == b"YWI=\r\n"
    with pytest.raises(atmail.StateError, match="finished"):
        encoder.encode(b"more")
    with pytest.raises(atmail.StateError):
        encoder.finish()


def test_a_million_encoders_leak_nothing():
    """Each encoder's native memory is freed when Python collects it: RSS
    after a million encoders that each encoded something stays within a
    few MiB of RSS after the first ten thousand."""

    def churn(count):
        for _ in range(count):
            encoder = atmail.MimeBase64Encoder()
            encoder.encode(b"abcd")
            encoder.finish()

    churn(10_000)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    churn(1_000_000)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    # A leak of the encoder alone (about 40 bytes a time) would be 40 MB.
    assert grown_kib < 4096, f"peak RSS grew {grown_kib} KiB"
