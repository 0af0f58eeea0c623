"""`atmail modem` end to end: a host on stdio, a real SMTP server (aiosmtpd
on loopback, AUTH required), and Python's `email` parser on what arrives."""

import email
import email.policy
import os
import subprocess
import time

import pytest

from g510 import POWER_UP, Modem
from smtp_server import (
    PASSWORD,
    PLAIN_LAND,
    SERVER_NAME,
    USER,
    Certificates,
    Handler,
    assert_spec_mail_arrived,
    configure_spec_case,
    start_server,
)


@pytest.fixture(params=["PLAIN", "LOGIN"])
def server(request):
    handler = Handler()
    controller = start_server(handler, mechanism=request.param)
    yield controller, handler
    controller.stop()


class Started(list):
    """The modems a test started, and how their host ends its lines."""

    def __init__(self, eol):
        super().__init__()
        self.eol = eol


@pytest.fixture(params=[b"\r", b"\r\n"], ids=["cr", "crlf"])
def modems(request):
    """Every modem a test starts is stopped at its end, pass or fail. Each
    test runs with a host that ends its lines with CR, and again with one
    that ends them with CRLF, as most microcontroller AT libraries do."""
    started = Started(request.param)
    yield started
    for modem in started:
        modem.kill()
    for modem in started:
        modem.check_failures()


def start(modems, atmail, *args, pty=False, eol=None):
    modem = Modem(atmail, *args, pty=pty, eol=modems.eol if eol is None else eol)
    modems.append(modem)
    return modem


def spec_case(modem, handler, attachment_size, land=PLAIN_LAND, lead=b""):
    """Runs the spec's case (section 3) with a binary attachment that has
    `+++` inside flowing data, and checks what the server received, byte
    for byte, and the counts the host heard. `lead` starts the body and
    the attachment."""
    configure_spec_case(modem, land=land)
    modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 2\r\n")
    body = lead + "你好，这是正文。\r\n".encode("gb2312")
    modem.at(b"AT+GTSMTPPDATA=300", b"> ")
    modem.data(body)
    assert modem.wait_for(b"OK\r\n").endswith(f"+GTSMTPDATA: {len(body)}\r\n\r\nOK\r\n".encode())
    blob = bytearray(lead + os.urandom(attachment_size))
    for at in range(1000, len(blob), 100_000):
        blob[at : at + 3] = b"+++"
    modem.at(b'at+gtsmtplib=1,"eee.wma"', b"> ")
    modem.data(bytes(blob), chunk=4096)
    assert modem.wait_for(b"OK\r\n").endswith(f"+GTSMTPFILE: {len(blob)}\r\n\r\nOK\r\n".encode())
    modem.at(b"at+gtsmtpend", b"+GTSMTPSEND: 1\r\n")
    modem.at(b"At+gtsmtpclr")
    if modem.port is None:  # a pty modem serves until it is stopped
        assert modem.close() == 0
    assert PASSWORD not in modem.out and PASSWORD not in modem.err

    assert_spec_mail_arrived(handler, body, bytes(blob))


def test_the_spec_case_arrives_exactly(atmail, server, modems):
    """With a binary attachment of several MiB."""
    controller, handler = server
    modem = start(modems, atmail, "--connect", f"127.0.0.1:{controller.port}")
    spec_case(modem, handler, 3 * 1024 * 1024)


@pytest.mark.parametrize(
    "eol,lead", [("late", b""), (b"\r", b"\n")], ids=["crlf-lf-500ms-late", "cr-payload-starts-with-lf"]
)
def test_the_data_commands_line_ending_is_never_payload(atmail, eol, lead):
    """A CRLF host whose LF comes 500 ms after the CR (after the `> `
    prompt) has it dropped; a CR host's payload may begin with LF and
    keeps it (the text part carries it as a CRLF line break). Attachments
    and counts are exact either way."""
    handler = Handler()
    controller = start_server(handler)
    modem = Modem(atmail, "--connect", f"127.0.0.1:{controller.port}", eol=eol)
    try:
        spec_case(modem, handler, 64 * 1024, lead=lead)
    finally:
        modem.kill()
        controller.stop()


def test_the_spec_case_over_a_pty(atmail, modems):
    """The host opens the modem's pty with pyserial, like a USB serial port."""
    handler = Handler()
    controller = start_server(handler)
    try:
        modem = start(modems, atmail, "--connect", f"127.0.0.1:{controller.port}", pty=True)
        assert modem.path.startswith("/dev/pts/")
        spec_case(modem, handler, 256 * 1024)
    finally:
        controller.stop()


def test_baud_paces_output_like_a_serial_line(atmail, modems):
    """At 2400 baud (240 bytes/s), 30 echoed `AT` lines and their `OK`s,
    270 bytes, take at least a second, and arrive exact."""
    modem = start(modems, atmail, "--baud", "2400")
    started = time.monotonic()
    modem.write(b"AT\r" * 30)
    modem.wait_for(b"AT\r\r\nOK\r\n" * 30)
    assert time.monotonic() - started >= 1.0
    assert modem.close() == 0
    assert modem.out == POWER_UP + b"AT\r\r\nOK\r\n" * 30


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_the_spec_case_over_tls(atmail, modems, tmp_path, tls, mechanism):
    """SMTPS (AT+GTSMTPLAND mode 1) and STARTTLS; the server offers AUTH
    only under TLS in the STARTTLS case, so a client that skipped TLS
    could not log in. The certificate is checked against the test's CA
    for the configured name, while `--connect` points the socket at
    loopback."""
    certificates = Certificates(tmp_path)
    handler = Handler()
    controller = start_server(handler, mechanism, tls=tls, certificates=certificates)
    try:
        # The spec's own form, mode blank, for STARTTLS: the default mode.
        land = b'465,"' + SERVER_NAME.encode() + b'",1' if tls == "implicit" else b'25,"' + SERVER_NAME.encode() + b'"'
        modem = start(
            modems, atmail, "--connect", f"127.0.0.1:{controller.port}", "--tls-ca", str(certificates.ca_file)
        )
        spec_case(modem, handler, 512 * 1024, land=land)
        if tls == "starttls":
            commands = b"".join(chunk for _, chunk in handler.arrivals)
            assert commands.index(b"STARTTLS\r\n") < commands.index(b"AUTH ")
    finally:
        controller.stop()


@pytest.mark.parametrize(
    "tls,problem",
    [("implicit", "unknown issuer"), ("starttls", "unknown issuer"), ("starttls", "not valid for name")],
)
def test_a_bad_certificate_fails_the_mail_without_downgrade(atmail, modems, tmp_path, tls, problem):
    """A certificate from a CA the modem does not trust, or for another
    name: `+GTSMTPSEND: 0`, no AUTH or mail in plaintext, nothing
    delivered, and the reason on stderr."""
    trusted = Certificates(tmp_path / "trusted")
    if problem == "unknown issuer":
        served = Certificates(tmp_path / "served")
    else:
        served = trusted
        served.server = trusted.ca.issue_cert("other.example")
    handler = Handler()
    controller = start_server(handler, tls=tls, certificates=served)
    try:
        land = b'465,"' + SERVER_NAME.encode() + b'",1' if tls == "implicit" else b'25,"' + SERVER_NAME.encode() + b'"'
        modem = start(modems, atmail, "--connect", f"127.0.0.1:{controller.port}", "--tls-ca", str(trusted.ca_file))
        configure_spec_case(modem, land=land)
        modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 0\r\n")
        assert modem.close() == 0
        assert problem.replace(" ", "") in modem.err.lower().replace(b" ", b"").decode()
        # The reason says TLS failed, not that the server closed.
        assert b"mail failed: the TLS handshake failed (certificate refused or no common parameters)" in modem.err
        assert b"closed by the server" not in modem.err
        assert handler.messages == []
        sent = b"".join(chunk for _, chunk in handler.arrivals)
        assert b"AUTH" not in sent and b"MAIL" not in sent and PASSWORD not in sent
    finally:
        controller.stop()


@pytest.mark.parametrize("content", [None, b"not a certificate\n"], ids=["missing", "not-pem"])
def test_a_bad_tls_ca_file_stops_the_modem_at_start(atmail, tmp_path, content):
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_bytes(content)
    run = subprocess.run(
        [str(atmail), "modem", "--tls-ca", str(path)], input=b"AT\r", capture_output=True, timeout=20
    )
    assert run.returncode != 0 and run.stdout == b""
    assert run.stderr.startswith(b"atmail: error: " + str(path).encode())


def test_require_tls_refuses_a_server_without_starttls(atmail, modems):
    handler = Handler()
    controller = start_server(handler)
    try:
        modem = start(modems, atmail, "--connect", f"127.0.0.1:{controller.port}", "--require-tls")
        configure_spec_case(modem)
        modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 0\r\n")
        assert modem.close() == 0
        sent = b"".join(chunk for _, chunk in handler.arrivals)
        assert b"AUTH" not in sent and handler.messages == []
    finally:
        controller.stop()


FAILURES = [
    # (step, what the server answers there, the URC the host hears)
    ("GREETING", "554 5.3.2 no service here", 554),
    ("GREETING", "421 4.3.2 too busy", 421),
    ("EHLO", "421 4.7.0 try again later", 421),
    ("EHLO+HELO", "550 5.7.1 go away", 550),
    ("PASSWORD", None, 535),
    ("AUTH", "454 4.7.0 temporary authentication failure", 454),
    ("MAIL", "550 5.1.0 sender refused", 550),
    ("MAIL", "451 4.3.0 try again later", 451),
    ("RCPT", "553 5.1.3 recipient refused", 553),
    ("RCPT", "450 4.2.0 mailbox busy", 450),
    ("DATA", "451 4.3.0 no data now", 451),
    ("DATA", "554 5.5.0 no valid recipients", 554),
    ("END", "554 5.6.0 message refused", 554),
    ("END", "452 4.3.1 insufficient storage", 452),
]
DROPS = ["GREETING", "MAIL", "RCPT", "DATA", "END", "STREAM"]


def send_one_mail(modem, body=b"body\r\n"):
    modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 2\r\n")
    modem.at(b"AT+GTSMTPDATA=300", b"> ")
    modem.data(body, guard=0.2)
    modem.wait_for(b"OK\r\n")
    modem.at(b"at+gtsmtpend", b"+GTSMTPSEND: 1\r\n")


@pytest.mark.parametrize("pipelining", [False, True], ids=["serial", "pipelined"])
@pytest.mark.parametrize("step,answer,code", FAILURES, ids=[f"{f[0]}-{f[2]}" for f in FAILURES])
def test_a_refusing_server_gets_its_code_and_nothing_is_delivered(atmail, modems, step, answer, code, pipelining):
    handler = Handler()
    for name in step.split("+"):
        if answer:
            handler.fail[name] = answer
    controller = start_server(handler, pipelining=pipelining)
    try:
        modem = start(modems, atmail, "--connect", f"127.0.0.1:{controller.port}", "--guard-ms", "200")
        configure_spec_case(modem, password=b"wrong" if step == "PASSWORD" else PASSWORD)
        modem.line(b"at+gtsmtpsend=300")
        if step == "END":
            modem.wait_for(b"+GTSMTPSEND: 2\r\n")
            modem.at(b"AT+GTSMTPDATA=300", b"> ")
            modem.data(b"body\r\n", guard=0.2)
            modem.wait_for(b"OK\r\n")
            modem.line(b"at+gtsmtpend")
        modem.wait_for(f"+GTSMTPSEND: {code}\r\n".encode())
        assert handler.messages == []
        # The configuration is kept: the next SEND works once the server does.
        handler.fail.clear()
        if step == "PASSWORD":
            modem.at(b'at+gtsmtpid="' + USER + b'","' + PASSWORD + b'"')
        send_one_mail(modem, b"second try\r\n")
        assert modem.close() == 0
        assert [m[2].endswith(b"\r\n") for m in handler.messages] == [True]
        assert b"wrong" not in modem.out + modem.err and PASSWORD not in modem.out + modem.err
    finally:
        controller.stop()


@pytest.mark.parametrize("step", DROPS)
def test_a_dropped_connection_gives_0_and_nothing_is_delivered(atmail, modems, step):
    """The server closes the connection without a word at each step, or in
    the middle of a 1 MiB attachment. A drop while the host streams leaves the
    line in data mode until the host's `+++`, which then answers ERROR."""
    handler = Handler()
    handler.drop = 200_000 if step == "STREAM" else step
    if step == "GREETING":
        handler.drop = 0
    controller = start_server(handler)
    try:
        modem = start(modems, atmail, "--connect", f"127.0.0.1:{controller.port}", "--guard-ms", "200")
        configure_spec_case(modem)
        modem.line(b"at+gtsmtpsend=300")
        if step in ("STREAM", "END"):
            modem.wait_for(b"+GTSMTPSEND: 2\r\n")
            if step == "STREAM":
                modem.at(b'AT+GTSMTPFILE=1,"big.bin"', b"> ")
                modem.data(os.urandom(1024 * 1024), guard=0.2, chunk=4096)
                modem.wait_for(b"+GTSMTPSEND: 0\r\n")
                modem.wait_for(b"\r\nERROR\r\n")
            else:
                modem.at(b"AT+GTSMTPDATA=300", b"> ")
                modem.data(b"body\r\n", guard=0.2)
                modem.wait_for(b"OK\r\n")
                modem.line(b"at+gtsmtpend")
        if step != "STREAM":
            modem.wait_for(b"+GTSMTPSEND: 0\r\n")
        assert handler.messages == []
        handler.drop = None
        send_one_mail(modem)
        assert modem.close() == 0
        assert len(handler.messages) == 1
    finally:
        controller.stop()


def flights(handler):
    """How many times the client sent after waiting for a reply: chunks of
    client bytes that arrived while the server's reply count stood still
    belong to one flight."""
    return len({replies for replies, _ in handler.arrivals})


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "serial"])
def test_pipelining_sends_mail_20_rcpts_and_data_in_one_flight(atmail, modems, pipelining):
    handler = Handler()
    controller = start_server(handler, pipelining=pipelining)
    try:
        modem = start(modems, atmail, "--connect", f"127.0.0.1:{controller.port}", "--guard-ms", "200")
        configure_spec_case(modem)
        for i in range(2, 21):
            modem.at(b'at+gtsmtpdst=1,%d,"r%d@fibocom.com"' % (1 + i % 3, i))
        send_one_mail(modem)
        assert modem.close() == 0
        ((_, rcpts, _),) = handler.messages
        assert len(rcpts) == 20
        envelope = [(replies, chunk) for replies, chunk in handler.arrivals if b"MAIL FROM" in chunk]
        # EHLO, AUTH, the envelope, the message, QUIT; one per command without PIPELINING.
        if pipelining:
            ((_, chunk),) = envelope
            assert chunk.count(b"RCPT TO:") == 20 and chunk.endswith(b"\r\nDATA\r\n")
            assert flights(handler) == 5
        else:
            assert flights(handler) == 5 + 21
    finally:
        controller.stop()


def test_maildir_delivery_without_a_server(atmail, tmp_path, modems):
    modem = start(modems, atmail, "--maildir", str(tmp_path / "mail"), "--guard-ms", "300")
    configure_spec_case(modem)
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


class InjectingServer:
    """A server that answers STARTTLS with `220` and, in the same segment,
    `injected` (the attack of Poddebniak et al., 2021), then keeps what
    the client sends after it."""

    def __init__(self, injected: bytes):
        import socket
        import threading

        self.injected = injected
        self.after = b""
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _read_line(self, conn):
        line = b""
        while not line.endswith(b"\r\n"):
            chunk = conn.recv(1)
            if not chunk:
                break
            line += chunk
        return line

    def _serve(self):
        conn, _ = self.listener.accept()
        with conn:
            conn.sendall(b"220 mx ESMTP\r\n")
            self._read_line(conn)  # EHLO
            conn.sendall(b"250-mx\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n")
            assert self._read_line(conn) == b"STARTTLS\r\n"
            conn.sendall(b"220 go ahead\r\n" + self.injected)
            conn.settimeout(2)
            try:
                while chunk := conn.recv(4096):
                    self.after += chunk
            except OSError:
                pass

    def close(self):
        self.thread.join(5)
        self.listener.close()


@pytest.mark.parametrize(
    "injected",
    [b"250-mx\r\n250 AUTH PLAIN\r\n", b"250-AUTH PLAIN\r\n"],
    ids=["complete-reply", "partial-reply"],
)
def test_bytes_injected_after_starttls_end_the_connection(atmail, modems, tmp_path, injected):
    """Plaintext after the `220` to STARTTLS is never read as if it came
    under TLS: `+GTSMTPSEND: 0`, the reason on stderr, and nothing at all
    sent after STARTTLS (no TLS hello, no AUTH)."""
    server = InjectingServer(injected)
    try:
        certificates = Certificates(tmp_path)
        modem = start(modems, atmail, "--connect", f"127.0.0.1:{server.port}", "--tls-ca", str(certificates.ca_file))
        configure_spec_case(modem)
        modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 0\r\n")
        assert modem.close() == 0
        assert b"plaintext injection" in modem.err
    finally:
        server.close()
    assert server.after == b""
