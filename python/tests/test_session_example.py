"""`examples/virtual_module.py`: `atmail.Session` over a real socket, with
STARTTLS through `ssl.MemoryBIO` and with SMTPS, delivers the spec case to
aiosmtpd, read back with Python's `email`."""

import email
import email.policy
import pathlib
import subprocess
import sys

import pytest

from smtp_server import PASSWORD, USER, Certificates, Handler, start_server

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "virtual_module.py"


@pytest.mark.parametrize("tls", ["plain", "starttls", "implicit"])
def test_the_example_delivers_the_spec_case(tmp_path, tls):
    certificates = Certificates(tmp_path / "certs")
    handler = Handler()
    controller = start_server(handler, tls=tls, certificates=certificates)
    try:
        run = subprocess.run(
            [
                sys.executable,
                str(EXAMPLE),
                "--server",
                f"127.0.0.1:{controller.port}",
                "--user",
                USER.decode(),
                "--password",
                PASSWORD.decode(),
                "--to",
                "xiangj@fibocom.com",
                "--cafile",
                str(certificates.ca_file),
                "--attachment-size",
                str(300_000),
                *(["--smtps", "--land-port", "465"] if tls == "implicit" else []),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        controller.stop()
    assert run.returncode == 0, run.stderr
    assert "delivered: body 18 bytes, attachment 300000 bytes" in run.stdout
    ((sender, rcpts, raw),) = handler.messages
    assert sender == USER.decode() and rcpts == ["xiangj@fibocom.com"]
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["subject"] == "你好 smtp"
    text, part = [p for p in msg.walk() if not p.is_multipart()]
    assert text.get_payload(decode=True) == "你好，这是正文。\r\n".encode("gb2312")
    assert part.get_filename() == "eee.wma"
    data = part.get_payload(decode=True)
    assert len(data) == 300_000 and data[100:103] == b"+++"
