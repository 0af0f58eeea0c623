"""Writes the fuzz targets' seed corpora (fuzz/seeds/<target>/) from the
test suite's own cases: the spec case, the bad-line table of
tests/test_modem_at.py, and the server fault scripts, in the byte formats
the `serial_line` and `session` targets read. Run with the tests' venv:
`.venv/bin/python fuzz/make_seeds.py`."""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from test_modem_at import BAD_LINES, FORMS  # noqa: E402

SPEC = [
    b'AT+GTSMTPLAND=25,"mail.fibocom.com"',
    b'AT+GTSMTPID="wangww@fibocom.com","ght64621178"',
    b'AT+GTSMTPDST=1,1,"xiangj@fibocom.com"',
    b'AT+GTSMTPEHEAD=2,"' + "你好 smtp".encode("gb2312") + b'"',
    b"AT+GTSMTPSEND=300",
]


def pieces(chunks):
    """serial_line: (wait x 10 ms, bytes) pieces, bytes cut to 255."""
    out = b""
    for wait, data in chunks:
        for at in range(0, max(len(data), 1), 255):
            out += bytes([wait, len(data[at : at + 255])]) + data[at : at + 255]
            wait = 0
    return out


def serial_seeds():
    for eol in (b"\r", b"\r\n"):
        name = "crlf" if eol == b"\r\n" else "cr"
        script = [(0, b"ATE0" + eol)] + [(1, line + eol) for line in SPEC]
        script += [(1, b"AT+GTSMTPDATA=300" + eol), (1, b"hello\nbody\r\n"), (110, b"+++"), (110, b"")]
        script += [(1, b'AT+GTSMTPFILE=1,"a.bin",3' + eol), (1, bytes(range(256))), (255, b"")]
        script += [(1, b"AT+GTSMTPFILE?" + eol), (1, b"AT+GTSMTPEND" + eol), (1, b"AT+MIPCALL?" + eol)]
        yield f"spec-{name}", pieces(script)
    yield "bad-lines", pieces([(0, line + b"\r") for _, line in BAD_LINES])
    yield "forms", pieces([(0, line + b"\r") for line, _ in FORMS])
    yield "editing", pieces([(0, b"xx AT+GTSMTPLANX\x08D?\r\nat\r" + b"A" * 320 + b"\r")])


# session: opcodes (see fuzz_targets/session.rs).
def line(i, crlf=False):
    return bytes([0, i | (0x80 if crlf else 0)])


def payload(data):
    return b"".join(bytes([2, len(data[at : at + 255])]) + data[at : at + 255] for at in range(0, len(data), 255))


def reply(i):
    return bytes([5, i])


ESCAPE, CLOSED, TLS_UP = b"\x03", b"\x07", b"\x08"


def session_seeds():
    configure = line(0) + line(1) + line(2) + line(4) + line(5)
    handshake = reply(0) + reply(1) + reply(4) + reply(7)
    data = line(6) + payload(b"hello\r\nbody") + ESCAPE + line(8) + payload(bytes(range(256)) * 2) + ESCAPE
    finish = line(10) + line(12) + reply(6) + reply(10)
    yield "spec", configure + handshake + data + finish
    yield "spec-crlf", b"".join(line(i, True) for i in (0, 1, 2, 4, 5)) + handshake + data + finish
    yield "starttls", configure + reply(0) + reply(2) + reply(3) + TLS_UP + reply(1) + reply(4) + reply(7) + data + finish
    steps = [reply(0), reply(1), reply(4), reply(7)]
    for at in range(len(steps) + 1):
        yield f"refused-{at}", configure + b"".join(steps[:at]) + reply(9) + data + finish
        yield f"closed-{at}", configure + b"".join(steps[:at]) + CLOSED + data + finish
    yield "closed-streaming", configure + handshake + line(8) + payload(b"x" * 300) + CLOSED + payload(b"y" * 50) + ESCAPE
    # OAuth 2.0 (LINES 17-23, REPLIES 11-14): a 12-byte token on the AUTH
    # line, accepted; a 600-byte one after the 334; one refused after the
    # error challenge, then QUIT.
    token = line(17) + line(19) + payload(b"ya29.a0AfB_x")
    oauth = reply(0) + reply(11)
    yield "oauth-inline", token + configure + oauth + reply(4) + reply(7) + data + finish
    long_token = line(17, True) + line(20) + payload(b"eyJhbGciOiJIUzI1NiJ9." + b"Q" * 579)
    yield "oauth-334", long_token + configure + oauth + reply(12) + reply(4) + reply(7) + data + finish
    yield "oauth-refused", line(18) + line(19) + payload(b"expired.tokn") + configure + oauth + reply(13) + reply(14) + reply(10)


def main():
    for target, seeds in (("serial_line", serial_seeds()), ("session", session_seeds())):
        directory = ROOT / "fuzz" / "seeds" / target
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in seeds:
            (directory / name).write_bytes(data)


if __name__ == "__main__":
    main()
