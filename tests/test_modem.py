"""`atmail modem` end to end: a host on stdio, a real SMTP server (aiosmtpd
on loopback, AUTH required), and Python's `email` parser on what arrives."""

import email
import email.policy
import os
import socket

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from g510 import Modem  # noqa: E402

USER, PASSWORD = b"wangww@fibocom.com", b"ght64621178"


class Handler:
    def __init__(self):
        self.messages = []
        self.fail = {}

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if "MAIL" in self.fail:
            return self.fail["MAIL"]
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if "RCPT" in self.fail:
            return self.fail["RCPT"]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if "END" in self.fail:
            return self.fail["END"]
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 OK queued"


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == USER and auth_data.password == PASSWORD
    # handled=False: aiosmtpd itself answers 535 on failure.
    return AuthResult(success=ok, handled=False)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(params=["PLAIN", "LOGIN"])
def server(request):
    handler = Handler()
    exclude = [m for m in ("PLAIN", "LOGIN") if m != request.param]
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=False,
        auth_exclude_mechanism=exclude,
    )
    controller.start()
    yield controller, handler
    controller.stop()


@pytest.fixture
def modems():
    """Every modem a test starts is stopped at its end, pass or fail."""
    started = []
    yield started
    for modem in started:
        modem.kill()


def start(modems, atmail, *args):
    modem = Modem(atmail, *args)
    modems.append(modem)
    return modem


def configure(modem, password=PASSWORD):
    modem.at(b"ATE0")
    modem.at(b'at+mipcall=1,"cmnet"', b"+MIPCALL: 127.0.0.1\r\n")
    modem.at(b'at+gtsmtpland=25,"mail.fibocom.com"')
    modem.at(b'at+gtsmtpid="' + USER + b'","' + password + b'"')
    modem.at(b'at+gtsmtpdst=1,1,"xiangj@fibocom.com"')
    modem.at(b'AT+GTSMTPEHEAD=2,"' + "你好 smtp".encode("gb2312") + b'"')


def test_the_spec_case_arrives_exactly(atmail, server, modems):
    controller, handler = server
    modem = start(modems, atmail, "--connect", f"127.0.0.1:{controller.port}")
    configure(modem)
    modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 2\r\n")
    body = "你好，这是正文。\r\n".encode("gb2312")
    modem.at(b"AT+GTSMTPPDATA=300", b"> ")
    modem.data(body)
    assert modem.wait_for(b"OK\r\n").endswith(f"+GTSMTPDATA: {len(body)}\r\n\r\nOK\r\n".encode())
    # A binary attachment of several MiB with `+++` inside flowing data.
    blob = bytearray(os.urandom(3 * 1024 * 1024))
    for at in range(1000, len(blob), 100_000):
        blob[at : at + 3] = b"+++"
    modem.at(b'at+gtsmtplib=1,"eee.wma"', b"> ")
    modem.data(bytes(blob), chunk=4096)
    assert modem.wait_for(b"OK\r\n").endswith(f"+GTSMTPFILE: {len(blob)}\r\n\r\nOK\r\n".encode())
    modem.at(b"at+gtsmtpend", b"+GTSMTPSEND: 1\r\n")
    modem.at(b"At+gtsmtpclr")
    assert modem.close() == 0
    assert PASSWORD not in modem.out and PASSWORD not in modem.err

    (sender, rcpts, raw), = handler.messages
    assert sender == USER.decode() and rcpts == ["xiangj@fibocom.com"]
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["subject"] == "你好 smtp"
    text, attachment = [p for p in msg.walk() if not p.is_multipart()]
    assert text.get_payload(decode=True) == body
    assert attachment.get_filename() == "eee.wma"
    assert attachment.get_payload(decode=True) == bytes(blob)


@pytest.mark.parametrize(
    "step,code",
    [("AUTH", 535), ("MAIL", 550), ("RCPT", 553), ("END", 554)],
)
def test_a_refusing_server_gets_its_code_and_nothing_is_delivered(atmail, server, modems, step, code):
    controller, handler = server
    if step != "AUTH":
        handler.fail[step] = f"{code} 5.0.0 refused by test"
    modem = start(modems, atmail, "--connect", f"127.0.0.1:{controller.port}")
    configure(modem, password=b"wrong" if step == "AUTH" else PASSWORD)
    modem.write(b"at+gtsmtpsend=300\r")
    if step == "END":
        modem.wait_for(b"+GTSMTPSEND: 2\r\n")
        modem.at(b"AT+GTSMTPDATA=300", b"> ")
        modem.data(b"body\r\n")
        modem.wait_for(b"OK\r\n")
        modem.write(b"at+gtsmtpend\r")
    modem.wait_for(f"+GTSMTPSEND: {code}\r\n".encode())
    assert handler.messages == []
    # The configuration is kept: the next SEND works once the server does.
    handler.fail.clear()
    if step == "AUTH":
        modem.at(b'at+gtsmtpid="' + USER + b'","' + PASSWORD + b'"')
    modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 2\r\n")
    modem.at(b"AT+GTSMTPDATA=300", b"> ")
    modem.data(b"second try\r\n")
    modem.wait_for(b"OK\r\n")
    modem.at(b"at+gtsmtpend", b"+GTSMTPSEND: 1\r\n")
    assert modem.close() == 0
    assert len(handler.messages) == 1


def test_maildir_delivery_without_a_server(atmail, tmp_path, modems):
    modem = start(modems, atmail, "--maildir", str(tmp_path / "mail"), "--guard-ms", "300")
    configure(modem)
    modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 2\r\n")
    modem.at(b"AT+GTSMTPDATA=300,3", b"> ")
    modem.write(b"ended by break_time\r\n")
    assert modem.wait_for(b"OK\r\n", timeout=10).endswith(b"+GTSMTPDATA: 21\r\n\r\nOK\r\n")
    modem.at(b"at+gtsmtpend", b"+GTSMTPSEND: 1\r\n")
    assert modem.close() == 0
    (path,) = list((tmp_path / "mail" / "new").iterdir())
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert msg["subject"] == "你好 smtp"
    assert list(msg.iter_parts())[0].get_payload(decode=True) == b"ended by break_time\r\n"


def test_send_needs_the_network_and_time_limit_aborts(atmail, tmp_path, modems):
    modem = start(modems, atmail, "--maildir", str(tmp_path / "mail"), "--guard-ms", "300")
    modem.at(b"ATE0")
    modem.at(b'at+gtsmtpland=25,"mx"')
    modem.at(b'at+gtsmtpid="a@b.c","p"')
    modem.at(b'at+gtsmtpdst=1,1,"d@e.f"')
    modem.at(b"at+gtsmtpsend=300", b"\r\nERROR\r\n")
    modem.at(b'at+mipcall=1,"cmnet"', b"+MIPCALL: 127.0.0.1\r\n")
    modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 2\r\n")
    modem.at(b"AT+GTSMTPDATA=1", b"> ")
    modem.write(b"too slow")
    modem.wait_for(b"\r\nERROR\r\n", timeout=10)
    assert modem.close() == 0
    assert list((tmp_path / "mail" / "new").iterdir()) == []
