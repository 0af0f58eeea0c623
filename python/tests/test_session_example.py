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
                # aiosmtpd without TLS offers AUTH: sign-in in the clear on purpose.
                *(["--mode", "3"] if tls == "plain" else []),
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


def virtual_module_class():
    """`VirtualModule` from the example, imported from its file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("virtual_module", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.VirtualModule


@pytest.mark.parametrize("tls", ["plain", "implicit"])
@pytest.mark.parametrize(
    "step, reply",
    [
        ("GREETING", b"554 5.7.1 no service for you"),
        ("MAIL", b"421 4.7.0 closing.test closing the channel"),
        ("END", b"554 5.7.1 the message was refused"),
    ],
    ids=["greeting-554", "mail-421", "end-554"],
)
def test_the_example_hears_a_reply_that_comes_with_the_fin(tmp_path, tls, step, reply):
    """A reply and the FIN in one segment (tests/closing_server.py; over
    TLS the reply's record and close_notify too): the example offers the
    reply to the session before it reports the close, and the URC is the
    reply's code."""
    from closing_server import ClosingServer
    from smtp_server import SERVER_NAME

    certificates = Certificates(tmp_path / "certs")
    server = ClosingServer(step, reply, certificates.server_context() if tls == "implicit" else None)
    try:
        module = virtual_module_class()(("127.0.0.1", server.port), USER.decode(), str(certificates.ca_file),
                                        SERVER_NAME, 200)
        module.at(b"ATE0")
        module.at(b'AT+MIPCALL=1,"cmnet"', b"+MIPCALL: 127.0.0.1\r\n")
        module.at(b'AT+GTSMTPLAND=%s,"%s"' % (b"465" if tls == "implicit" else b"25", SERVER_NAME.encode())
                  + (b",1" if tls == "implicit" else b""))
        module.at(b'AT+GTSMTPID="%s","%s"' % (USER, PASSWORD))
        module.at(b'AT+GTSMTPDST=1,1,"xiangj@fibocom.com"')
        if step == "END":
            module.at(b"AT+GTSMTPSEND=300", b"+GTSMTPSEND: 2\r\n")
            module.at(b"AT+GTSMTPDATA=300", b"> ")
            module.data(b"the body\r\n", 0.3)
            module.wait_for(b"+GTSMTPDATA: 10\r\n\r\nOK\r\n")
            module.host(b"AT+GTSMTPEND\r")
        else:
            module.host(b"AT+GTSMTPSEND=300\r")
        module.wait_for(b"+GTSMTPSEND: ")
        assert module.wait_for(b"\r\n") == reply[:3] + b"\r\n", module.heard
        module.finish()
        (seen,) = server.wait_ended()
        last = seen.lines[-1] if seen.lines else b""
        assert {"GREETING": last == b"", "MAIL": last.startswith(b"MAIL FROM:"), "END": last == b"."}[step]
    finally:
        server.stop()
