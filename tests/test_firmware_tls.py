"""The C firmware example's TLS (mbedTLS, ffi/examples/firmware.c)
against the private Postfix (tests/postfix.py), under valgrind: STARTTLS
where Postfix offers AUTH only under TLS, SMTPS, and the refusals a
firmware must make itself (a certificate for another name, one no trusted
CA signed, a server without STARTTLS under `--require-tls`), read from
Postfix's side: its log, its Maildir."""

import time

import pytest

from g510 import Modem
from postfix import Postfix
from smtp_server import PASSWORD, SERVER_NAME, Certificates, configure_spec_case
from test_c_abi import VALGRIND
from test_postfix import blob, check_delivered, spec_case

SMTPS_LAND = b'465,"' + SERVER_NAME.encode() + b'",1'


def postfix_for(tmp_path, name=SERVER_NAME, plain=False):
    """A private Postfix whose certificate is for `name`, signed by a CA
    the test makes (`.certificates.ca_file`)."""
    certificates = Certificates(tmp_path / "certs", name=name)
    server = Postfix(certificates, plain=plain)
    server.certificates = certificates
    return server


@pytest.fixture
def postfixes():
    started = []
    yield started
    for server in started:
        server.stop()


def firmware(modems, c_programs, port, *args, eol=b"\r"):
    modem = Modem(None, wrapper=VALGRIND, command=[str(c_programs / "firmware"), "--guard-ms", "300", *args, f"127.0.0.1:{port}"], eol=eol)
    modems.append(modem)
    return modem


def tls_sessions(postfix, count=1, timeout=10.0):
    """Postfix's own record of the TLS it negotiated, once there are
    `count`."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in postfix.log_text().splitlines() if "TLS connection established from" in line]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def logged(postfix, text, timeout=10.0):
    """Postfix's log once it has `text` (it writes after the client has
    gone)."""
    deadline = time.monotonic() + timeout
    while text not in (log := postfix.log_text()):
        assert time.monotonic() < deadline, log
        time.sleep(0.05)
    return log


def finished(modem):
    """The firmware ran to the end of its input, valgrind found nothing."""
    assert modem.close(timeout=60) == 0, modem.err
    assert b"ERROR SUMMARY" not in modem.err, modem.err


@pytest.mark.parametrize(
    "transport,eol", [("starttls", b"\r"), ("smtps", b"\r\n")], ids=["starttls-cr", "smtps-crlf"]
)
def test_the_spec_case_over_tls_from_mbedtls(tmp_path, postfixes, modems, c_programs, transport, eol):
    """The spec case (GB2312 subject, 64 KiB attachment holding `+++`)
    over TLS 1.2 with the certificate checked against the name of
    AT+GTSMTPLAND; Postfix logs the TLS it agreed and stores the mail
    whole; the firmware says nothing on stderr."""
    postfix = postfix_for(tmp_path)
    postfixes.append(postfix)
    port = postfix.smtp if transport == "starttls" else postfix.smtps
    modem = firmware(modems, c_programs, port, "--tls-ca", str(postfix.certificates.ca_file), eol=eol)
    attachment = blob(64 * 1024)
    land = {"land": SMTPS_LAND} if transport == "smtps" else {}
    # The firmware has no AT+MIPCALL: its network is up.
    body = spec_case(modem, attachment, configure=lambda m: configure_spec_case(m, network=False, **land))
    finished(modem)
    assert modem.err == b""
    raw = check_delivered(postfix, body, attachment)
    # Under TLS and signed in (AUTH is offered only under TLS on the
    # STARTTLS port), as Postfix wrote it into the message.
    assert b"with ESMTPSA" in raw and b"(using TLSv1.2 with cipher " in raw
    (session,) = tls_sessions(postfix)
    assert ": TLSv1.2 with cipher " in session
    log = postfix.log_text()
    assert "sasl_method=PLAIN" in log and " quit=1 " in log
    assert PASSWORD not in modem.out + modem.err


@pytest.mark.parametrize("transport", ["starttls", "smtps"])
def test_a_certificate_for_another_name_ends_the_mail(tmp_path, postfixes, modems, c_programs, transport):
    """Postfix presents a valid certificate for mx.elsewhere.test, not
    for the server of AT+GTSMTPLAND: URC 0 and the reason, the connection
    closed at the handshake, nothing sent in plaintext after it."""
    postfix = postfix_for(tmp_path, name="mx.elsewhere.test")
    postfixes.append(postfix)
    port = postfix.smtp if transport == "starttls" else postfix.smtps
    modem = firmware(modems, c_programs, port, "--tls-ca", str(postfix.certificates.ca_file))
    configure_spec_case(modem, network=False, **({"land": SMTPS_LAND} if transport == "smtps" else {}))
    modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 0\r\n", timeout=60)
    modem.at(b"AT", b"\r\nOK\r\n")
    finished(modem)
    err = modem.err.decode()
    assert f"firmware: TLS: the server's certificate for {SERVER_NAME} was refused: " in err, err
    assert "Common Name (CN) does not match" in err, err
    assert "the TLS handshake failed" in err, err
    log = postfix.log_text()
    assert tls_sessions(postfix, timeout=1) == []
    # Postfix saw the client give up during the handshake: no AUTH, no
    # MAIL, ever.
    assert "bad certificate" in log, log
    assert "sasl_method" not in log and "auth=" not in log.replace("auth=0", "")
    assert postfix.messages(count=1, timeout=1) == []


def test_a_certificate_no_trusted_ca_signed_ends_the_mail(tmp_path, postfixes, modems, c_programs):
    postfix = postfix_for(tmp_path)
    postfixes.append(postfix)
    stranger = Certificates(tmp_path / "stranger")
    modem = firmware(modems, c_programs, postfix.smtp, "--tls-ca", str(stranger.ca_file))
    configure_spec_case(modem, network=False)
    modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 0\r\n", timeout=60)
    finished(modem)
    err = modem.err.decode()
    assert "was refused: The certificate is not correctly signed by the trusted CA" in err, err
    assert postfix.messages(count=1, timeout=1) == []


def test_require_tls_refuses_a_server_without_starttls(tmp_path, postfixes, modems, c_programs):
    """A Postfix that takes AUTH in the clear (no STARTTLS offered):
    with `--require-tls` the firmware sends neither the password nor the
    mail; without it, the same server takes the mail (the default is
    STARTTLS when offered)."""
    postfix = postfix_for(tmp_path, plain=True)
    postfixes.append(postfix)
    modem = firmware(modems, c_programs, postfix.smtp, "--require-tls")
    configure_spec_case(modem, network=False)
    modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 0\r\n", timeout=60)
    finished(modem)
    assert b"TLS is required and the server does not offer STARTTLS" in modem.err, modem.err
    log = postfix.log_text()
    assert "sasl_method" not in log and postfix.messages(count=1, timeout=1) == []
    logged(postfix, " quit=1 ")


def test_smtps_to_a_port_that_speaks_plaintext_fails_the_handshake(tmp_path, postfixes, modems, c_programs):
    """SMTPS against Postfix's STARTTLS port, which greets in plaintext:
    the handshake fails on the first record, the mail ends with URC 0 and
    the reason, and nothing is sent as plaintext (Postfix sees no command
    at all)."""
    postfix = postfix_for(tmp_path)
    postfixes.append(postfix)
    modem = firmware(modems, c_programs, postfix.smtp, "--tls-ca", str(postfix.certificates.ca_file))
    configure_spec_case(modem, network=False, land=SMTPS_LAND)
    modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 0\r\n", timeout=60)
    finished(modem)
    err = modem.err.decode()
    assert "firmware: TLS: the handshake failed: SSL - " in err, err
    assert "the TLS handshake failed" in err, err
    log = logged(postfix, "disconnect from")
    # The ClientHello is not a command Postfix knows; EHLO, AUTH, MAIL never came.
    assert "ehlo=" not in log and "auth=" not in log and "mail=" not in log, log
