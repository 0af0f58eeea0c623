"""`atmail.compose` against `atmail encode`, byte for byte, over a table of
cases; every part read back with Python's `email`; refusals before the
first byte."""

import email
import email.policy
import io
import os
import random
import sys
import subprocess

import pytest

import atmail

DATE = "Wed, 25 Nov 2026 10:00:00 +0000"
MSGID = "<case@fibocom.com>"


def blob(seed, size):
    data = bytearray(random.Random(seed).randbytes(size))
    data[size // 2 : size // 2 + 3] = b"+++"[: max(0, min(3, size - size // 2))]
    return bytes(data)


CASES = {
    "ascii": dict(charset="ascii", subject="plain report", body=b"line one\nline two\r\n", attachments=[("log.txt", b"x" * 1000)]),
    "utf-8 cjk": dict(charset="utf-8", subject="你好 smtp — 報告 ✓", body="正文\n第二行".encode(), attachments=[("数据 表.csv", b"a,b\r\n1,2\r\n")]),
    "gb2312": dict(charset="gb2312", subject="你好 smtp", body="你好，这是正文。\r\n".encode("gbk"), attachments=[("中文名.wma", blob(1, 70_000))]),
    "big5": dict(charset="big5", subject="許功蓋 測試", body="許功蓋\r\n".encode("big5"), attachments=[("檔案.bin", blob(2, 3000))]),
    "bcc and cc": dict(charset="utf-8", subject="to many", cc=["c1@example.com", "c2@example.com"], bcc=["hidden@example.com"], body=b"hi"),
    "20 attachments": dict(charset="utf-8", subject="twenty", attachments=[(f"part{i:02}.bin", blob(i, i * 97)) for i in range(20)]),
    "empty body": dict(charset="utf-8", subject="nothing", body=b"", attachments=[("a.bin", b"\x00\x01")]),
    "no subject, no body": dict(charset="utf-8", attachments=[]),
    "long subject folds": dict(charset="utf-8", subject="长" * 60),
}


def cli_args(tmp, case):
    args = ["--from", "wangww@fibocom.com", "--to", "xiangj@fibocom.com", "--date", DATE, "--message-id", MSGID]
    args += ["--charset", case["charset"]]
    for address in case.get("cc", []):
        args += ["--cc", address]
    for address in case.get("bcc", []):
        args += ["--bcc", address]
    if "subject" in case:
        args += ["--subject", case["subject"]]
    if "body" in case:
        path = tmp / "body"
        path.write_bytes(case["body"])
        args += ["--body", str(path)]
    for i, (name, data) in enumerate(case.get("attachments", [])):
        path = tmp / f"attachment{i}"
        path.write_bytes(data)
        args += ["--attach", f"{path}={name}"]
    return args


def compose(case, **overrides):
    out = io.BytesIO()
    kwargs = dict(sender="wangww@fibocom.com", to=["xiangj@fibocom.com"], date=DATE, message_id=MSGID)
    kwargs.update({k: v for k, v in case.items()})
    kwargs.update(overrides)
    n = atmail.compose(out, **kwargs)
    assert n == len(out.getvalue())
    return out.getvalue()


@pytest.mark.parametrize("name", CASES)
def test_compose_equals_atmail_encode(atmail_bin, tmp_path, name):
    case = CASES[name]
    want = subprocess.run([str(atmail_bin), "encode", *cli_args(tmp_path, case)], capture_output=True, check=True).stdout
    assert compose(case) == want
    # Files stream the same bytes as buffers.
    with_files = dict(case)
    if "body" in case:
        with_files["body"] = open(tmp_path / "body", "rb")
    with_files["attachments"] = [(n, open(tmp_path / f"attachment{i}", "rb")) for i, (n, _) in enumerate(case.get("attachments", []))]
    try:
        assert compose(with_files) == want
    finally:
        for _, f in with_files["attachments"]:
            f.close()
        if "body" in case:
            with_files["body"].close()

    msg = email.message_from_bytes(want, policy=email.policy.default)
    assert msg["subject"] == case.get("subject")
    assert msg["message-id"] == MSGID and msg["date"] == DATE
    assert "hidden@example.com" not in want.decode("ascii")
    parts = [p for p in msg.walk() if not p.is_multipart()]
    text, files = parts[0], parts[1:]
    body = case.get("body", b"")
    assert text.get_payload(decode=True) == body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert [(p.get_filename(), p.get_payload(decode=True)) for p in files] == case.get("attachments", [])


def test_the_defaults_make_a_date_and_an_id_at_the_senders_domain():
    out = io.BytesIO()
    atmail.compose(out, sender="a@fibocom.com", to=["b@example.com"], body=b"x")
    msg = email.message_from_bytes(out.getvalue(), policy=email.policy.default)
    assert msg["message-id"].endswith(".atmail@fibocom.com>")
    assert msg["date"].datetime is not None


REFUSALS = [
    (dict(to="one@example.com"), TypeError),
    (dict(to=[]), ValueError),
    (dict(to=[f"r{i}@example.com" for i in range(21)]), ValueError),
    (dict(to=["not an address"]), ValueError),
    (dict(sender="wangww"), ValueError),
    (dict(sender=b"wangww@fibocom.com"), TypeError),
    (dict(subject="€ price", charset="gb2312"), UnicodeEncodeError),
    (dict(subject="x" * 201), ValueError),
    (dict(subject="line\nbreak"), ValueError),
    (dict(charset="latin-1"), ValueError),
    (dict(body="text"), TypeError),
    (dict(body=b"\xff\xfe", charset="utf-8"), ValueError),
    (dict(attachments=[("a.bin", b"x")] * 21), ValueError),
    (dict(attachments=[("a.bin", "text")]), TypeError),
    (dict(attachments=[("😀.bin", b"x")], charset="big5"), UnicodeEncodeError),
    (dict(attachments=[("n" * 81, b"x")]), ValueError),
    (dict(attachments=[("big.bin", bytes(20 * 1024 * 1024 + 1))]), ValueError),
    (dict(attachments=[("big.bin", io.BytesIO(bytes(20 * 1024 * 1024 + 1)))]), ValueError),
    (dict(date="not\na date"), ValueError),
]


@pytest.mark.parametrize("overrides,error", REFUSALS, ids=[str(i) for i in range(len(REFUSALS))])
def test_refusals_come_before_the_first_byte(overrides, error):
    out = io.BytesIO()
    kwargs = dict(sender="wangww@fibocom.com", to=["xiangj@fibocom.com"], subject="s", body=b"ok",
                  attachments=[("a.bin", b"data")], date=DATE, message_id=MSGID)
    kwargs.update(overrides)
    with pytest.raises(error):
        atmail.compose(out, **kwargs)
    assert out.getvalue() == b""


def test_a_bad_body_file_is_refused_before_any_output_and_names_the_offset(tmp_path):
    path = tmp_path / "body"
    path.write_bytes(b"good text " * 10_000 + b"\xc3")
    out = io.BytesIO()
    with open(path, "rb") as f, pytest.raises(ValueError, match="offset 100000"):
        atmail.compose(out, sender="a@b.com", to=["c@d.com"], body=f)
    assert out.getvalue() == b""


class Pipe(io.RawIOBase):
    """A stream without a size (not seekable), as a pipe or socket is."""

    def __init__(self, size):
        self.left = size

    def readable(self):
        return True

    def readinto(self, buf):
        n = min(len(buf), self.left)
        buf[:n] = b"\x00" * n
        self.left -= n
        return n


def test_streams_without_a_size_are_counted_while_they_stream():
    out = io.BytesIO()
    n = atmail.compose(out, sender="a@b.com", to=["c@d.com"], attachments=[("a.bin", Pipe(100_000))])
    msg = email.message_from_bytes(out.getvalue(), policy=email.policy.default)
    assert n == len(out.getvalue()) and [p.get_payload(decode=True) for p in msg.iter_attachments()] == [bytes(100_000)]
    with pytest.raises(ValueError, match="attachments passed 20971520 bytes"):
        atmail.compose(io.BytesIO(), sender="a@b.com", to=["c@d.com"], attachments=[("a.bin", Pipe(20 * 1024 * 1024 + 1))])


def test_out_must_be_writable():
    with pytest.raises(TypeError):
        atmail.compose(object(), sender="a@b.com", to=["c@d.com"])  # type: ignore[arg-type]


def test_memory_stays_flat_from_1_to_20_mib(tmp_path):
    """Peak RSS of a process that composes a 1 MiB attachment, then one
    that composes 20 MiB, both streaming from a file into a file. The peak
    is VmHWM, which starts afresh at exec (`ru_maxrss` would carry this
    test process's own peak into the child)."""
    script = (
        "import atmail, re, sys\n"
        "with open(sys.argv[1], 'rb') as f, open(sys.argv[2], 'wb') as out:\n"
        "    atmail.compose(out, sender='a@b.com', to=['c@d.com'], attachments=[('x.bin', f)])\n"
        "print(re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1))\n"
    )
    peaks = []
    for mib in (1, 20):
        source = tmp_path / f"{mib}.bin"
        source.write_bytes(os.urandom(mib * 1024 * 1024))
        run = subprocess.run([sys.executable, "-c", script, str(source), str(tmp_path / "out.eml")],
                             capture_output=True, text=True, check=True)
        peaks.append(int(run.stdout))
        assert (tmp_path / "out.eml").stat().st_size > mib * 1024 * 1024 * 4 // 3
    assert peaks[1] - peaks[0] <= 4096, f"peak RSS {peaks} KiB"
