"""OAuth 2.0 sign-in (`AT+GTSMTPAUTH`, `AT+GTSMTPTOKEN`) against the real
counterparts: a private Postfix whose SASL server is a private Dovecot
validating JWT access tokens locally (tests/dovecot.py). Tokens are signed
by the test; Dovecot decides whether they are good. What arrived is read
back from Postfix's Maildir, and what Postfix and Dovecot logged is read
from their side. The token is searched for in everything atmail printed."""

import subprocess

import pytest

from dovecot import Dovecot
from postfix import POSTFIX, Postfix
from smtp_server import USER, Certificates, configure_spec_case
from test_postfix import blob, check_delivered, spec_case, start

MECHANISMS = {b"1": "XOAUTH2", b"2": "OAUTHBEARER"}


@pytest.fixture
def dovecot():
    server = Dovecot()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postfix(tmp_path, dovecot):
    """A private Postfix that asks the private Dovecot, stopped however
    the test ends."""
    certificates = Certificates(tmp_path / "certs")
    server = Postfix(certificates, dovecot=dovecot)
    server.certificates = certificates
    try:
        yield server
    finally:
        server.stop()


def give_token(modem, mechanism: bytes, token: bytes):
    """AUTH, then the token after TOKEN's prompt, as a host sends them."""
    modem.at(b"AT+GTSMTPAUTH=" + mechanism)
    modem.at(b"AT+GTSMTPTOKEN=%d" % len(token), b"> ")
    modem.write(token)
    modem.wait_for(b"\r\nOK\r\n")
    modem.at(b"AT+GTSMTPTOKEN?", b"+GTSMTPTOKEN: %d\r\n\r\nOK\r\n" % len(token))


def configure(modem, mechanism, token):
    """The spec's case with no password (a token signs in instead)."""
    configure_spec_case(modem, password=b"")
    give_token(modem, mechanism, token)


def assert_token_secret(modem, token, *texts):
    for where in (modem.out, modem.err, *texts):
        assert token not in where
        # Nor its signature alone: a piece of a token is still a secret
        # (and every token here starts with the same JWT header).
        assert token[-43:] not in where


def test_postfix_keeps_its_default_line_limit():
    """The 2,600-byte cases mean the 334 path: an AUTH line with the
    initial response would be 3.5 KB, past this limit."""
    run = subprocess.run([POSTFIX.replace("postfix", "postconf"), "-d", "line_length_limit"],
                         capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "line_length_limit = 2048"


@pytest.mark.parametrize("size", [None, 2600], ids=["short", "2600"])
@pytest.mark.parametrize("mechanism", [b"1", b"2"], ids=["xoauth2", "oauthbearer"])
def test_a_token_signs_in_and_the_spec_case_arrives(atmail, dovecot, postfix, modems, mechanism, size):
    # A CR host for one mechanism, a CRLF host (whose LF after the
    # token command's CR is not the token's) for the other.
    eol = b"\r\n" if mechanism == b"2" else b"\r"
    token = dovecot.token(USER.decode(), size=size)
    if size:
        assert len(token) == size
    modem = start(modems, atmail, postfix, postfix.smtp, eol=eol)
    attachment = blob(64 * 1024)
    body = spec_case(modem, attachment, configure=lambda m: configure(m, mechanism, token))
    assert modem.close() == 0
    raw = check_delivered(postfix, body, attachment)
    log = postfix.log_text()
    assert b"with ESMTPSA" in raw
    assert f"sasl_method={MECHANISMS[mechanism]}, sasl_username={USER.decode()}" in log
    assert "quit=1" in log
    assert_token_secret(modem, token, raw)


@pytest.mark.parametrize("mechanism", [b"1", b"2"], ids=["xoauth2", "oauthbearer"])
@pytest.mark.parametrize(
    "case",
    ["expired", "another-user"],
)
def test_a_refused_token_is_urc_535_with_the_servers_reason(atmail, dovecot, postfix, modems, mechanism, case):
    if case == "expired":
        token = dovecot.token(USER.decode(), lifetime=-300)
    else:
        token = dovecot.token("xiangj@fibocom.com")
    modem = start(modems, atmail, postfix, postfix.smtp)
    configure(modem, mechanism, token)
    modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 535\r\n", timeout=30)
    assert modem.close() == 0
    name = MECHANISMS[mechanism]
    reason = [line for line in modem.err.decode().splitlines() if "mail failed" in line]
    # Dovecot's error challenges: RFC 6750's HTTP status for XOAUTH2, an
    # RFC 6749 error code for OAUTHBEARER.
    status = {"XOAUTH2": "401", "OAUTHBEARER": "invalid_token"}[name]
    assert reason == [
        f"atmail: mail failed: the server refused the {name} token: "
        f"535 5.7.8 Error: authentication failed: (reason unavailable) (status {status})"
    ]
    # Postfix saw the SASL exchange fail, then our QUIT (its disconnect
    # line comes after the client has gone); nothing arrived.
    log = postfix.wait_log("quit=1")
    assert f"SASL {name} authentication failed" in log, log[-2000:]
    assert postfix.messages(timeout=1) == []
    assert_token_secret(modem, token)


def test_a_server_without_the_mechanism_fails_with_a_reason(atmail, tmp_path, dovecot, modems):
    """Postfix with Cyrus SASL offers PLAIN and LOGIN only: a token mail
    fails with URC 0 before AUTH, and the password is never tried."""
    certificates = Certificates(tmp_path / "certs")
    cyrus = Postfix(certificates)
    cyrus.certificates = certificates
    try:
        token = dovecot.token(USER.decode())
        modem = start(modems, atmail, cyrus, cyrus.smtp)
        configure(modem, b"1", token)
        modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 0\r\n", timeout=30)
        assert modem.close() == 0
        assert b"atmail: mail failed: the server does not offer AUTH XOAUTH2\n" in modem.err
        log = cyrus.log_text()
        # No AUTH was tried; the conversation ended with QUIT.
        assert "auth=" not in log and "quit=1" in log
        assert_token_secret(modem, token)
    finally:
        cyrus.stop()
