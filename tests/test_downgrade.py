"""Credentials only under TLS, against a man in the middle
(tests/downgrade_proxy.py) between `atmail modem` and the private Postfix
(tests/postfix.py; Dovecot as its SASL server for OAuth 2.0): one proxy
deletes STARTTLS from the EHLO reply, one answers STARTTLS `454`. What the
modem sent is read at the proxy (everything that crossed, in the clear:
no AUTH line, no password, no base64 of the PLAIN or LOGIN forms, no
token); what Postfix saw in its log (no AUTH); the URC and the reason on
the modem's stderr. Mode 3 of `AT+GTSMTPLAND` signs in in the clear on
purpose and delivers; mode 2 without STARTTLS fails. Beside them: a
server whose only mechanism is CRAM-MD5 (no MAIL FROM is sent), and a 421
in the middle of the message (no QUIT as message text, the connection
closed at once)."""

import base64
import hashlib
import hmac
import time

import pytest

from closing_server import ClosingServer
from dovecot import Dovecot
from downgrade_proxy import DowngradeProxy
from g510 import Modem
from postfix import Postfix
from smtp_server import PASSWORD, SERVER_NAME, USER, Certificates, Handler, configure_spec_case, start_server
from test_oauth import give_token

LAND = b'25,"' + SERVER_NAME.encode() + b'"'
NO_STARTTLS = (b"atmail: mail failed: the server offers AUTH but not STARTTLS: credentials go only under TLS"
               b" (mode 3 of AT+GTSMTPLAND allows sign-in without it)\n")
REFUSED_STARTTLS = (b"atmail: mail failed: the server refused STARTTLS (454): credentials go only under TLS"
                    b" (mode 3 of AT+GTSMTPLAND allows sign-in without it)\n")


@pytest.fixture
def servers():
    """Postfixes, Dovecots and proxies a test starts, stopped however it
    ends."""
    started = []
    yield started
    for server in reversed(started):
        (server.close if hasattr(server, "close") else server.stop)()


def postfix(servers, tmp_path, **options):
    certificates = Certificates(tmp_path / "certs")
    server = Postfix(certificates, **options)
    server.certificates = certificates
    servers.append(server)
    return server


def proxy(servers, port, mode, bait=None):
    server = DowngradeProxy(port, mode, bait)
    servers.append(server)
    return server


def start(modems, atmail, port, ca_file=None):
    tls = ["--tls-ca", str(ca_file)] if ca_file else []
    modem = Modem(atmail, "--connect", f"127.0.0.1:{port}", *tls, "--guard-ms", "300")
    modems.append(modem)
    return modem


def logged(server, text, timeout=10.0):
    """Postfix's log once it holds `text` (it writes after the client has
    gone)."""
    deadline = time.monotonic() + timeout
    while text not in (log := server.log_text()):
        assert time.monotonic() < deadline, log[-3000:]
        time.sleep(0.05)
    return log


def session_end(server):
    """Postfix's line for the end of the modem's session: the commands it
    read, by name and count (`ehlo=1 quit=1 commands=2`); the readiness
    probe's connections read none."""
    logged(server, " ehlo=")
    (line,) = [line for line in server.log_text().splitlines() if " disconnect from " in line and " ehlo=" in line]
    return line.split("]", 2)[-1].strip()


def password_forms():
    """The password as it would cross: raw, as LOGIN sends it, and the
    PLAIN response with and without an authorization identity."""
    b64 = base64.b64encode
    return [PASSWORD, b64(PASSWORD), b64(b"\0" + USER + b"\0" + PASSWORD), b64(USER + b"\0" + USER + b"\0" + PASSWORD)]


def token_forms(token):
    """The token raw, its signature alone, and the XOAUTH2 and OAUTHBEARER
    responses that carry it."""
    b64 = base64.b64encode
    return [token, token[-43:], b64(b"user=" + USER + b"\x01auth=Bearer " + token + b"\x01\x01"),
            b64(b"n,a=" + USER + b",\x01auth=Bearer " + token + b"\x01\x01")]


def assert_nothing_crossed(mitm, secrets):
    """No AUTH command and no secret among the bytes the client sent; the
    conversation ended with QUIT after EHLO alone."""
    sent = mitm.from_client
    for secret in secrets:
        assert secret not in sent
    lines = [line for line in mitm.client_lines() if line]
    assert not any(line.upper().startswith(b"AUTH") for line in lines), lines
    assert [line.split(b" ")[0].upper() for line in lines] == [b"EHLO", b"QUIT"], lines


def fails_before_auth(modem, reason):
    modem.at(b"AT+GTSMTPSEND=300", b"+GTSMTPSEND: 0\r\n", timeout=30)
    assert modem.close() == 0
    assert reason in modem.err, modem.err


@pytest.mark.parametrize("offered", ["by-postfix", "by-the-proxy"])
def test_a_stripped_starttls_gets_no_password(atmail, servers, modems, tmp_path, offered):
    """Postfix offers STARTTLS and AUTH; the proxy deletes STARTTLS. Either
    Postfix offers AUTH before TLS too, or (AUTH only under TLS, as
    tests/postfix.py has it) the proxy adds `AUTH PLAIN LOGIN` as bait."""
    server = postfix(servers, tmp_path, auth_before_tls=offered == "by-postfix")
    mitm = proxy(servers, server.smtp, "strip", bait=b"PLAIN LOGIN" if offered == "by-the-proxy" else None)
    modem = start(modems, atmail, mitm.port, server.certificates.ca_file)
    configure_spec_case(modem, land=LAND)
    fails_before_auth(modem, NO_STARTTLS)
    assert b"AUTH" in mitm.replies[1] and b"STARTTLS" not in mitm.replies[1]
    assert_nothing_crossed(mitm, password_forms())
    assert session_end(server) == "ehlo=1 quit=1 commands=2"
    assert "sasl_method" not in server.log_text()


def test_a_refused_starttls_gets_no_password(atmail, servers, modems, tmp_path):
    """The proxy answers STARTTLS 454 itself; Postfix offers AUTH before
    TLS (without it, see the next test)."""
    server = postfix(servers, tmp_path, auth_before_tls=True)
    mitm = proxy(servers, server.smtp, "refuse")
    modem = start(modems, atmail, mitm.port, server.certificates.ca_file)
    configure_spec_case(modem, land=LAND)
    fails_before_auth(modem, REFUSED_STARTTLS)
    sent = [line.split(b" ")[0].upper() for line in mitm.client_lines() if line]
    assert sent == [b"EHLO", b"STARTTLS", b"QUIT"], sent
    for secret in password_forms():
        assert secret not in mitm.from_client
    # The server never saw STARTTLS: the proxy answered it.
    assert session_end(server) == "ehlo=1 quit=1 commands=2"


def test_a_refused_starttls_stops_a_mail_with_a_password_even_without_auth_on_offer(
    atmail, servers, modems, tmp_path
):
    """Postfix offers AUTH only under TLS (its default) and the proxy
    answers STARTTLS 454: the server wanted TLS, so a mail with a password
    stops there with the TLS reason (going on unsigned would only end in
    Postfix's relay refusal, which hides why). No MAIL FROM, no credential."""
    server = postfix(servers, tmp_path)
    mitm = proxy(servers, server.smtp, "refuse")
    modem = start(modems, atmail, mitm.port, server.certificates.ca_file)
    configure_spec_case(modem, land=LAND)
    fails_before_auth(modem, REFUSED_STARTTLS)
    sent = [line.split(b" ")[0].upper() for line in mitm.client_lines() if line]
    assert sent == [b"EHLO", b"STARTTLS", b"QUIT"], sent
    for secret in password_forms():
        assert secret not in mitm.from_client
    assert session_end(server) == "ehlo=1 quit=1 commands=2"


@pytest.mark.parametrize("proxy_mode", ["strip", "refuse"])
def test_a_downgrade_gets_no_oauth_token(atmail, servers, modems, tmp_path, proxy_mode):
    """The same with an OAuth 2.0 token (Dovecot is Postfix's SASL server):
    stripped STARTTLS with `AUTH XOAUTH2 OAUTHBEARER` as bait, and 454 to
    STARTTLS from a Postfix that offers AUTH before TLS."""
    dovecot = Dovecot()
    servers.append(dovecot)
    server = postfix(servers, tmp_path, dovecot=dovecot, auth_before_tls=proxy_mode == "refuse")
    mitm = proxy(servers, server.smtp, proxy_mode, bait=b"XOAUTH2 OAUTHBEARER" if proxy_mode == "strip" else None)
    modem = start(modems, atmail, mitm.port, server.certificates.ca_file)
    token = dovecot.token(USER.decode(), size=2600)
    configure_spec_case(modem, password=b"", land=LAND)
    give_token(modem, b"1", token)
    fails_before_auth(modem, NO_STARTTLS if proxy_mode == "strip" else REFUSED_STARTTLS)
    for secret in token_forms(token):
        assert secret not in mitm.from_client and secret not in modem.out + modem.err
    lines = [line for line in mitm.client_lines() if line]
    assert not any(line.upper().startswith(b"AUTH") for line in lines), lines
    assert session_end(server) == "ehlo=1 quit=1 commands=2"
    assert "sasl_method" not in server.log_text()


def test_mode_3_signs_in_in_the_clear_on_purpose(atmail, servers, modems, tmp_path):
    """`AT+GTSMTPLAND=25,"...",3` (a relay on the host's own network)
    through the proxy that deletes STARTTLS: AUTH PLAIN crosses in the
    clear, as asked, and the mail is delivered."""
    server = postfix(servers, tmp_path, auth_before_tls=True)
    mitm = proxy(servers, server.smtp, "strip")
    modem = start(modems, atmail, mitm.port, server.certificates.ca_file)
    configure_spec_case(modem, land=LAND + b",3")
    modem.at(b"AT+GTSMTPLAND?", b'+GTSMTPLAND: 25,"' + SERVER_NAME.encode() + b'",3\r\n\r\nOK\r\n')
    modem.at(b"AT+GTSMTPSEND=300", b"+GTSMTPSEND: 2\r\n", timeout=30)
    modem.at(b"AT+GTSMTPDATA=300", b"> ")
    modem.data(b"in the clear, on purpose\r\n", guard=0.3)
    modem.wait_for(b"+GTSMTPDATA: 26\r\n\r\nOK\r\n")
    modem.at(b"AT+GTSMTPEND", b"+GTSMTPSEND: 1\r\n", timeout=30)
    assert modem.close() == 0
    (raw,) = server.messages()
    assert b"with ESMTPA" in raw  # signed in, no TLS (ESMTPSA would say TLS)
    assert b"AUTH PLAIN " + base64.b64encode(b"\0" + USER + b"\0" + PASSWORD) in mitm.from_client
    assert "sasl_method=PLAIN" in logged(server, "sasl_method=")


def test_mode_2_without_starttls_fails_even_without_auth(atmail, servers, modems, tmp_path):
    """Mode 2 requires STARTTLS for every mail: a server that offers
    neither STARTTLS nor AUTH gets EHLO and QUIT, nothing else."""
    server = postfix(servers, tmp_path, plain=True, sasl=False)
    mitm = proxy(servers, server.smtp, "strip")  # here only a recorder: nothing to strip
    modem = start(modems, atmail, mitm.port, server.certificates.ca_file)
    configure_spec_case(modem, land=LAND + b",2")
    assert b"STARTTLS" not in b"".join(mitm.replies) and b"AUTH" not in b"".join(mitm.replies)
    fails_before_auth(modem, b"atmail: mail failed: TLS is required and the server does not offer STARTTLS\n")
    assert [line.split(b" ")[0].upper() for line in mitm.client_lines() if line] == [b"EHLO", b"QUIT"]
    assert session_end(server) == "ehlo=1 quit=1 commands=2"


class CramMd5Only(Handler):
    """aiosmtpd with CRAM-MD5 as its only mechanism (PLAIN and LOGIN are
    excluded by `start_server`), verified for real."""

    async def auth_CRAM__MD5(self, server, args):
        from aiosmtpd.smtp import MISSING, AuthResult

        challenge = b"<%d@closing.test>" % time.monotonic_ns()
        response = await server.challenge_auth(challenge)
        if response is MISSING:
            return AuthResult(success=False)
        user, _, digest = response.partition(b" ")
        good = hmac.new(PASSWORD, challenge, hashlib.md5).hexdigest().encode()
        return AuthResult(success=user == USER and hmac.compare_digest(digest, good), auth_data=user)


def test_a_cram_md5_only_server_gets_no_mail_from(atmail, modems, tmp_path):
    """Credentials set and nothing in the AUTH list the engine speaks: the
    mail fails before MAIL FROM, and the reason names what was offered."""
    certificates = Certificates(tmp_path / "certs")
    handler = CramMd5Only()
    controller = start_server(handler, mechanism="CRAM-MD5", tls="starttls", certificates=certificates)
    try:
        modem = start(modems, atmail, controller.port, certificates.ca_file)
        configure_spec_case(modem, land=LAND)
        fails_before_auth(
            modem, b"atmail: mail failed: the server offers no sign-in the engine speaks with a password (AUTH CRAM-MD5)\n"
        )
    finally:
        controller.stop()
    received = b"".join(chunk for _, chunk in handler.arrivals)
    # The server read EHLO twice (before and under TLS), then QUIT: no
    # AUTH, no MAIL FROM.
    assert received.count(b"EHLO ") == 2 and received.endswith(b"QUIT\r\n"), received
    assert b"MAIL FROM" not in received and b"AUTH" not in received
    assert handler.messages == []


def test_a_421_inside_data_closes_at_once_without_quit(atmail, modems):
    """The server answers 421 after 20 kB of the message and keeps the
    connection open, reading: the modem writes no QUIT (it would be message
    text) and closes at once. The server measures from its 421 to the
    modem's EOF; the bound asserted is the order (EOF before any QUIT, well
    before the mail's 300 s), the figure is printed."""
    server = ClosingServer("INSIDE_DATA", b"421 4.3.2 shutting down", after=20_000)
    try:
        modem = start(modems, atmail, server.port)
        configure_spec_case(modem, land=LAND)
        modem.at(b"AT+GTSMTPSEND=300", b"+GTSMTPSEND: 2\r\n", timeout=30)
        modem.at(b'AT+GTSMTPFILE=1,"big.bin"', b"> ")
        modem.data(bytes(range(256)) * 1024, guard=0.3, chunk=4096)
        modem.wait_for(b"+GTSMTPSEND: 421\r\n", timeout=30)
        modem.wait_for(b"ERROR\r\n", timeout=30)
        (seen,) = server.wait_ended()
    finally:
        server.stop()
    assert modem.close() == 0
    assert b"atmail: mail failed: the server refused the mail while sending the message: 421 4.3.2 shutting down\n" \
        in modem.err, modem.err
    assert seen.reply_at is not None and not seen.timed_out
    assert b"QUIT" not in seen.after_reply
    latency = seen.eof_at - seen.reply_at
    print(f"421 inside DATA: the server read EOF {latency * 1000:.0f} ms after its reply, "
          f"with {len(seen.after_reply)} bytes of message after it")
    assert latency < 20  # the server's own read limit; the mail's is 300 s
