"""How conversations and connections end, read from the server's side
(`watching_server`): after a refusal at AUTH, MAIL, RCPT or the end of
data, and after a delivered mail, the client says QUIT within 3 s of the
URC, and closes the connection (the server reads EOF) after the 221, while
the modem keeps running. For `atmail modem` and the C firmware example."""

import email
import email.utils
import email.policy
import time

import pytest

from g510 import Modem
from smtp_server import configure_spec_case
from watching_server import WatchingServer

ENDINGS = [
    ("AUTH", b"535 5.7.8 authentication failed", 535),
    ("MAIL", b"451 4.3.0 try again later", 451),
    ("RCPT", b"550 5.1.1 no such user", 550),
    ("END", b"554 5.6.0 message refused", 554),
    (None, None, 1),
]


def start_driver(driver, atmail, c_programs, port):
    if driver == "modem":
        modem = Modem(atmail, "--connect", f"127.0.0.1:{port}", "--guard-ms", "200")
        configure_spec_case(modem)
    else:
        modem = Modem(None, command=[str(c_programs / "firmware"), f"127.0.0.1:{port}"])
        configure_spec_case(modem, network=False)
    return modem


def send(modem, code, message, guard):
    modem.line(b"at+gtsmtpsend=300")
    if message:
        modem.wait_for(b"+GTSMTPSEND: 2\r\n")
        modem.at(b"AT+GTSMTPDATA=300", b"> ")
        modem.data(b"body\r\n", guard=guard)
        modem.wait_for(b"OK\r\n")
        modem.line(b"at+gtsmtpend")
    modem.wait_for(f"+GTSMTPSEND: {code}\r\n".encode())
    return time.monotonic()


@pytest.mark.parametrize("step,reply,code", ENDINGS, ids=[f"{e[0] or 'delivered'}-{e[2]}" for e in ENDINGS])
@pytest.mark.parametrize(
    "driver,pipelining", [("modem", True), ("modem", False), ("firmware", True)], ids=["modem", "modem-serial", "firmware"]
)
def test_every_conversation_ends_with_quit_and_then_a_real_close(
    atmail, c_programs, driver, step, reply, code, pipelining
):
    server = WatchingServer({step: reply} if step else {}, pipelining=pipelining)
    modem = start_driver(driver, atmail, c_programs, server.port)
    guard = 0.2 if driver == "modem" else 1.0  # the firmware example's guard time is 1 s
    try:
        urc_at = send(modem, code, message=step in (None, "END"), guard=guard)
        (talk,) = server.wait_closed(1, timeout=15)
        assert modem.proc.poll() is None, "the close came from the client, not from its exit"
        quit_at = talk.first(b"QUIT")
        assert quit_at is not None, talk.lines
        assert quit_at - urc_at < 3.0
        assert talk.bye_at is not None and talk.bye_at <= talk.eof_at < talk.bye_at + 3.0
        assert talk.after_quit == b""
        verbs = [line.split(b" ")[0].upper() for _, line in talk.lines]
        assert verbs[-1] == b"QUIT" and verbs.count(b"QUIT") == 1
        if step == "RCPT" and pipelining:
            # The flight's DATA was refused too: QUIT only after its reply.
            assert verbs[-2] == b"DATA"
        assert modem.close() == 0
    finally:
        modem.kill()
        server.stop()


def test_a_login_with_a_67_byte_domain_gets_a_valid_message_id_at_once(atmail):
    """The CPU-spin case: a login whose domain is too long for the
    `<hex.pid@domain>` Message-ID. SEND is answered within 1 s and the mail
    goes out with a Message-ID a mail reader takes."""
    domain = "a" * 30 + "." + "b" * 32 + ".com"
    assert len(domain) == 67
    user = f"wangww@{domain}".encode()
    server = WatchingServer()
    modem = Modem(atmail, "--connect", f"127.0.0.1:{server.port}", "--guard-ms", "200")
    try:
        configure_spec_case(modem)
        modem.at(b'at+gtsmtpid="' + user + b'","pw"')
        asked = time.monotonic()
        modem.at(b"at+gtsmtpsend=300", timeout=1.0)
        assert time.monotonic() - asked < 1.0
        modem.wait_for(b"+GTSMTPSEND: 2\r\n")
        modem.at(b"AT+GTSMTPDATA=300", b"> ")
        modem.data(b"body\r\n", guard=0.2)
        modem.wait_for(b"OK\r\n")
        modem.at(b"at+gtsmtpend", b"+GTSMTPSEND: 1\r\n")
        (talk,) = server.wait_closed(1)
        msg = email.message_from_bytes(talk.message, policy=email.policy.default)
        message_id = msg["Message-ID"]
        assert message_id.startswith("<") and message_id.endswith(">") and "@" in message_id
        assert len(message_id) <= 76
        assert email.utils.parseaddr(msg["From"])[1] == user.decode()
        assert modem.close() == 0
    finally:
        modem.kill()
        server.stop()
