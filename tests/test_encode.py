"""`atmail encode` output checked with Python's own `email` parser.

Every message must parse under `policy.default` without defects (the one
deliberate exception is named below), decode back to the exact subject, body
and attachment bytes, end every line in CRLF, and keep header lines within 78
and base64 lines within 76 characters.
"""

import email
import email.policy
import os
import pathlib
import subprocess

import pytest

DATE = "Wed, 25 Nov 2026 10:00:00 +0000"
CHARSETS = {"ascii": "ascii", "utf-8": "utf-8", "gb2312": "gbk", "big5": "big5hkscs"}

# RFC 2047 words inside the quoted `name=` parameter are what older readers
# need (see DESIGN.md); Python flags them while still decoding them right.
NAME_PARAM_DEFECTS = {"encoded word inside quoted string", "missing trailing whitespace after encoded-word"}


def encode(atmail, tmp_path, *args, expect_ok=True):
    out = tmp_path / "out.eml"
    defaults = [] if "--date" in args else ["--date", DATE]
    proc = subprocess.run(
        [str(atmail), "encode", *defaults, "--message-id", "<t1@example.com>", "-o", str(out), *args],
        capture_output=True,
    )
    if not expect_ok:
        return proc, out
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b""
    return out.read_bytes()


def check_shape(raw: bytes):
    """CRLF everywhere; headers <= 78, base64 lines <= 76 columns."""
    assert raw.endswith(b"\r\n")
    lines = raw[:-2].split(b"\r\n")
    assert all(b"\n" not in line and b"\r" not in line for line in lines)
    in_headers = True
    for line in lines:
        if line == b"":
            in_headers = False
            continue
        if line.startswith(b"--=_atmail_"):
            in_headers = not line.endswith(b"--")
            continue
        limit = 78 if in_headers else 76
        assert len(line) <= limit, line


def parse(raw: bytes):
    check_shape(raw)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    for part in msg.walk():
        assert part.defects == [], part.defects
        for name, value in part.items():
            defects = {str(d) for d in getattr(value, "defects", ())}
            if name == "Content-Type" and "name" in value.params:
                defects -= NAME_PARAM_DEFECTS
            assert defects == set(), (name, defects)
    return msg


def parts(msg):
    return [p for p in msg.walk() if not p.is_multipart()]


@pytest.mark.parametrize(
    "charset,subject",
    [
        ("ascii", "Hello from the G510"),
        ("ascii", "a =?not-a-word?= here"),
        ("ascii", " ".join(["word"] * 40)),
        ("utf-8", "你好 smtp"),
        ("utf-8", "Grüße, 世界! 😀 " * 8),
        ("gb2312", "你好 smtp"),
        ("gb2312", "朱镕基访问" * 12),
        ("gb2312", "中文主题，多个编码字" * 6),
        ("big5", "許功蓋 繁體中文"),
        ("big5", "繁體中文郵件主題測試" * 9),
    ],
)
def test_subject_round_trips(atmail, tmp_path, charset, subject):
    raw = encode(atmail, tmp_path, "--from", "a@example.com", "--to", "b@example.com",
                 "--charset", charset, "--subject", subject)
    msg = parse(raw)
    assert msg["subject"] == subject
    assert len(subject.encode(CHARSETS[charset])) <= 200


def test_long_subjects_use_several_words_split_on_characters(atmail, tmp_path):
    subject = "镕" + "文" * 90  # 182 GBK bytes: several words, multibyte at every edge
    raw = encode(atmail, tmp_path, "--from", "a@example.com", "--to", "b@example.com",
                 "--charset", "gb2312", "--subject", subject)
    header = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    words = [w for w in header.split() if w.startswith("=?")]
    assert len(words) >= 3
    for word in words:
        assert len(word) <= 75
        label, _, text = word[2:-2].split("?")
        # Every word decodes alone, strictly, under its own label.
        import base64
        base64.b64decode(text).decode({"GB2312": "gb2312", "GBK": "gbk"}[label])
    assert email.message_from_bytes(raw, policy=email.policy.default)["subject"] == subject


@pytest.mark.parametrize("charset", ["ascii", "utf-8", "gb2312", "big5"])
def test_body_and_attachments_come_back_identical(atmail, tmp_path, charset):
    text = {"ascii": "plain body\r\n", "utf-8": "正文 body ✓\r\n", "gb2312": "正文 body\r\n", "big5": "許功蓋 內文\r\n"}[charset]
    body = tmp_path / "body.txt"
    body.write_bytes(text.encode(CHARSETS[charset]) * 500)
    blob = tmp_path / "blob.bin"
    data = os.urandom(200_000) + b"+++" + os.urandom(1000)
    blob.write_bytes(data)
    empty = tmp_path / "empty.dat"
    empty.write_bytes(b"")
    name = {"ascii": "report.bin", "utf-8": "数据 ü.bin", "gb2312": "数据文件.bin", "big5": "資料檔案.bin"}[charset]
    raw = encode(atmail, tmp_path, "--from", "a@example.com", "--to", "b@example.com", "--cc", "c@example.com",
                 "--bcc", "hidden@example.com", "--charset", charset, "--body", str(body),
                 "--attach", f"{blob}={name}", "--attach", str(empty))
    assert b"hidden@example.com" not in raw
    msg = parse(raw)
    assert msg["to"] == "b@example.com" and msg["cc"] == "c@example.com" and msg["bcc"] is None
    text_part, attachment, empty_part = parts(msg)
    assert text_part.get_content_type() == "text/plain"
    assert text_part.get_payload(decode=True) == body.read_bytes()
    assert attachment.get_filename() == name
    assert attachment.get_payload(decode=True) == data
    assert empty_part.get_filename() == "empty.dat"
    assert empty_part.get_payload(decode=True) == b""


def test_no_body_still_gives_a_text_part(atmail, tmp_path):
    pdf = tmp_path / "x.pdf"
    pdf.write_bytes(b"%PDF-1.4\n")
    msg = parse(encode(atmail, tmp_path, "--from", "a@example.com", "--to", "b@example.com", "--attach", str(pdf)))
    text_part, attachment = parts(msg)
    assert text_part.get_payload(decode=True) == b""
    assert attachment.get_content_type() == "application/pdf"


def test_output_is_reproducible_and_stdout_matches_file(atmail, tmp_path):
    args = ["--from", "a@example.com", "--to", "b@example.com", "--subject", "same"]
    first = encode(atmail, tmp_path, *args)
    assert encode(atmail, tmp_path, *args) == first
    stdout = subprocess.run([str(atmail), "encode", "--date", DATE, "--message-id", "t1@example.com", *args],
                            capture_output=True, check=True).stdout
    assert stdout == first


def test_twenty_recipients_ok(atmail, tmp_path):
    to = [a for i in range(20) for a in ("--to", f"user{i}@example.com")]
    msg = parse(encode(atmail, tmp_path, "--from", "a@example.com", *to))
    assert len(msg["to"].addresses) == 20


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


BAD = [
    ("invalid gb2312 body", lambda t: ["--charset", "gb2312", "--body", write(t, "b", b"ok\xc4")], "not valid gb2312"),
    ("invalid big5 body", lambda t: ["--charset", "big5", "--body", write(t, "b", b"\xb3\x20")], "not valid big5"),
    ("invalid utf-8 body", lambda t: ["--body", write(t, "b", b"\xff\xfe")], "not valid utf-8"),
    ("high byte in ascii body", lambda t: ["--charset", "ascii", "--body", write(t, "b", b"caf\xe9")], "not valid ascii"),
    ("subject outside gb2312", lambda t: ["--charset", "gb2312", "--subject", "price €5"], "'€' (U+20AC)"),
    ("subject outside big5", lambda t: ["--charset", "big5", "--subject", "😀"], "U+1F600"),
    ("subject outside ascii", lambda t: ["--charset", "ascii", "--subject", "é"], "U+00E9"),
    ("name outside gb2312", lambda t: ["--charset", "gb2312", "--attach", write(t, "f", b"x") + "=€.txt"], "U+20AC"),
    ("subject too long", lambda t: ["--subject", "x" * 201], "longer than 200 bytes"),
    ("subject with CRLF", lambda t: ["--subject", "hi\r\nBcc: evil@example.com"], "control character"),
    ("address with CRLF", lambda t: ["--cc", "c@example.com\r\nBcc: evil@example.com"], "control character"),
    ("address with space", lambda t: ["--cc", "c d@example.com"], "not allowed"),
    ("address with angle", lambda t: ["--cc", "<c@example.com>"], "not allowed"),
    ("address without @", lambda t: ["--cc", "nobody"], "@"),
    ("address too long", lambda t: ["--cc", "a" * 70 + "@example.com"], "longer than 80 bytes"),
    ("21 recipients", lambda t: [a for i in range(20) for a in ("--cc", f"c{i}@example.com")], "1 to 20"),
    ("21 attachments", lambda t: [a for i in range(21) for a in ("--attach", write(t, f"f{i}", b"x"))], "at most 20"),
    ("name too long", lambda t: ["--attach", write(t, "f", b"x") + "=" + "n" * 81], "longer than 80 bytes"),
    ("body over 20 MiB", lambda t: ["--body", write(t, "big", b"a" * (20 * 1024 * 1024 + 1))], "20 MiB"),
    ("attachments over 20 MiB", lambda t: ["--attach", write(t, "a1", b"a" * (10 * 1024 * 1024 + 1)),
                                           "--attach", write(t, "a2", b"a" * (10 * 1024 * 1024))], "20 MiB"),
    ("missing file", lambda t: ["--attach", str(t / "nope")], "nope"),
    ("date with newline", lambda t: ["--date", "Wed\nX: y"], "control"),
]


@pytest.mark.parametrize("name,args,message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_gets_one_clear_error_and_no_output(atmail, tmp_path, name, args, message):
    proc, out = encode(atmail, tmp_path, "--from", "a@example.com", "--to", "b@example.com", *args(tmp_path),
                       expect_ok=False)
    assert proc.returncode != 0
    err = proc.stderr.decode()
    assert err.startswith("atmail: error: ") and err.count("\n") == 1, err
    assert message in err, err
    assert not out.exists()
    assert not [p for p in pathlib.Path(tmp_path).iterdir() if p.name.endswith(".tmp")]


def test_a_unix_text_body_goes_in_canonical_form(atmail, tmp_path):
    """Bare LF, bare CR and CRLF mixed in the body file all decode as CRLF
    (RFC 2045 6.8); attachments keep their bytes; text attachments carry
    the charset."""
    text = b"one\ntwo\r\nthree\rfour\n\nfive\r"
    body = tmp_path / "body.txt"
    body.write_bytes(text)
    notes = tmp_path / "notes.txt"
    notes.write_bytes(text)
    raw = encode(atmail, tmp_path, "--from", "a@example.com", "--to", "b@example.com", "--charset", "big5",
                 "--body", str(body), "--attach", str(notes))
    text_part, attachment = parts(parse(raw))
    assert text_part.get_payload(decode=True) == b"one\r\ntwo\r\nthree\r\nfour\r\n\r\nfive\r\n"
    assert text_part["content-type"].params["charset"] == "Big5-HKSCS"
    assert attachment.get_payload(decode=True) == text
    assert attachment.get_content_type() == "text/plain"
    assert attachment["content-type"].params["charset"] == "Big5-HKSCS"
