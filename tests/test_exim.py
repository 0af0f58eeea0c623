"""`atmail modem` against a real Exim 4.96 (tests/exim.py), the MTA most of
the internet runs: the spec case over STARTTLS for CR and CRLF hosts,
read back from the Maildir with Python's `email`; a HELO name Exim
refuses; SIZE; and refusals with Exim's own codes (535, 550, 451). Every
test then reads Exim's logs: every conversation ended with QUIT, and no
line says a client left early or spoke out of turn, except for the SIZE
abort, which has to leave inside DATA. With BDAT forced (`AT+GTSMTPBDAT=2`,
issue 32) on a plain port, read at a recording proxy: BDAT not DATA, full
chunks, LAST once, no BODY=BINARYMIME (Exim offers CHUNKING alone); the
Maildir file byte for byte what was sent and the same message as by DATA;
Exim's `<=` line flags CHUNKING (`K`), and its logs are clean."""

import email
import email.policy
import os
import re

import pytest

import bdat_client
import bdat_wire
from downgrade_proxy import RecordingProxy
from exim import DEFERRED, REFUSED, Exim
from g510 import Modem
from smtp_server import PASSWORD, USER, Certificates, canonical, configure_spec_case

GUARD_MS = 200


@pytest.fixture
def exim(tmp_path):
    certificates = Certificates(tmp_path / "certs")
    server = Exim(certificates, size_limit=100_000)
    server.certificates = certificates
    try:
        yield server
    finally:
        server.stop()


def start(modems, atmail, exim, *args, eol=b"\r"):
    modem = Modem(
        atmail,
        "--connect",
        f"127.0.0.1:{exim.port}",
        "--tls-ca",
        str(exim.certificates.ca_file),
        "--require-tls",
        "--guard-ms",
        str(GUARD_MS),
        *args,
        eol=eol,
    )
    modems.append(modem)
    return modem


def polite(exim, conversations):
    """Exim saw `conversations` end with QUIT, and nothing impolite."""
    assert exim.completed(conversations) == conversations, exim.log()
    assert exim.impolite() == []


@pytest.mark.parametrize("eol", [b"\r", b"\r\n"], ids=["cr", "crlf"])
def test_the_spec_case_over_starttls_is_delivered_whole(atmail, exim, modems, eol):
    modem = start(modems, atmail, exim, eol=eol)
    configure_spec_case(modem)
    modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 2\r\n", timeout=30)
    body = "你好，这是正文。\n第二行\r\n".encode("gb2312")
    attachment = bytearray(os.urandom(50_000))
    attachment[1000:1003] = b"+++"
    modem.at(b"AT+GTSMTPDATA=300", b"> ")
    modem.data(body, guard=GUARD_MS / 1000)
    modem.wait_for(b"OK\r\n")
    modem.at(b'AT+GTSMTPFILE=1,"eee.wma"', b"> ")
    modem.data(bytes(attachment), guard=GUARD_MS / 1000, chunk=4096)
    assert modem.wait_for(b"OK\r\n").endswith(b"+GTSMTPFILE: 50000\r\n\r\nOK\r\n")
    modem.at(b"AT+GTSMTPEND", b"+GTSMTPSEND: 1\r\n", timeout=30)
    (raw,) = exim.messages()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["subject"] == "你好 smtp"
    assert msg["from"] == USER.decode() and msg["to"] == "xiangj@fibocom.com"
    text, part = [p for p in msg.walk() if not p.is_multipart()]
    assert text.get_payload(decode=True) == canonical(body)
    assert part.get_filename() == "eee.wma" and part.get_payload(decode=True) == attachment
    assert "X=TLS" in exim.log() and f"A=plain:{USER.decode()}" in exim.log()
    assert modem.close() == 0
    polite(exim, 1)


@pytest.mark.parametrize(
    "password,recipient,code",
    [(b"wrong", "xiangj@fibocom.com", 535), (PASSWORD, REFUSED, 550), (PASSWORD, DEFERRED, 451)],
    ids=["auth-535", "rcpt-550", "rcpt-451"],
)
def test_refusals_get_exims_code_and_end_with_quit(atmail, exim, modems, password, recipient, code):
    modem = start(modems, atmail, exim)
    configure_spec_case(modem, password=password)
    if recipient != "xiangj@fibocom.com":
        modem.at(b'at+gtsmtpdst=0,1,"xiangj@fibocom.com"')
        modem.at(b'at+gtsmtpdst=1,1,"' + recipient.encode() + b'"')
    modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: %d\r\n" % code, timeout=30)
    assert modem.close() == 0
    assert exim.messages(timeout=0.5) == []
    polite(exim, 1)


def test_a_helo_name_that_is_not_fully_qualified_is_refused_then_a_literal_works(atmail, exim, modems):
    modem = start(modems, atmail, exim, "--helo", "g510")
    configure_spec_case(modem)
    modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 550\r\n", timeout=30)
    assert modem.close() == 0
    # The default, an address literal of the local end, is taken.
    modem = start(modems, atmail, exim)
    configure_spec_case(modem)
    modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 2\r\n", timeout=30)
    modem.at(b"AT+GTSMTPEND", b"+GTSMTPSEND: 1\r\n", timeout=30)
    assert modem.close() == 0
    assert len(exim.messages()) == 1
    polite(exim, 2)


def test_a_message_past_exims_size_ends_inside_data_and_nothing_is_delivered(atmail, exim, modems):
    modem = start(modems, atmail, exim)
    configure_spec_case(modem)
    modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 2\r\n", timeout=30)
    modem.at(b'AT+GTSMTPFILE=1,"big.bin"', b"> ")
    modem.data(os.urandom(150_000), guard=GUARD_MS / 1000, chunk=4096)
    modem.wait_for(b"+GTSMTPSEND: 552\r\n", timeout=30)
    modem.wait_for(b"ERROR\r\n")
    assert modem.close() == 0
    assert exim.messages(timeout=0.5) == []
    # The one way out of DATA is to leave: Exim says so, and nothing else.
    lines = exim.impolite()
    assert len(lines) == 1 and "lost while reading message data" in lines[0], lines


# -- BDAT forced (issue 32) ----------------------------------------------


@pytest.fixture
def plain_exim(tmp_path):
    """An Exim that takes AUTH in the clear (no STARTTLS), behind a proxy
    that records both directions."""
    certificates = Certificates(tmp_path / "certs")
    server = Exim(certificates, plain=True)
    server.certificates = certificates
    proxy = RecordingProxy(server.port)
    try:
        yield server, proxy
    finally:
        proxy.close()
        server.stop()


def stored_by_id(exim, count):
    return {re.search(rb"\bid ([0-9A-Za-z]{6}-[0-9A-Za-z]{4,6}-[0-9A-Za-z]{2,4})", raw).group(1).decode(): raw
            for raw in exim.messages(count=count)}


def received_line(exim, message_id):
    (line,) = [line for line in exim.log().splitlines() if f"{message_id} <= " in line]
    return line


def clean(exim, conversations):
    polite(exim, conversations)
    log = exim.log()
    assert [line for line in log.splitlines() if re.search(r"(?i)error|warning|panic|reject", line)] == [], log


def test_the_proxy_reads_a_reference_bdat_client(plain_exim):
    """The reading below proved without the engine (tests/bdat_client.py)."""
    exim, proxy = plain_exim
    attachment = os.urandom(40_000)
    raw = bdat_client.message("正文\r\n".encode("gb2312"), [("a.bin", attachment)], binary=False)
    bdat_client.send(proxy.port, raw)
    (recording,) = proxy.wait_closed(1)
    conv = bdat_wire.read(recording)
    bdat_wire.check_chunks(conv)
    assert conv.message == raw
    assert bdat_wire.offers(conv.ehlo, b"CHUNKING") and not bdat_wire.offers(conv.ehlo, b"BINARYMIME")
    ((message_id, stored),) = stored_by_id(exim, 1).items()
    assert " K " in received_line(exim, message_id) + " "
    assert bdat_wire.without_trace(stored) == raw.replace(b"\r\n", b"\n")
    clean(exim, 1)


def test_the_spec_case_by_forced_bdat_is_delivered_as_by_data(atmail, plain_exim, modems):
    exim, proxy = plain_exim
    body = "你好，这是正文。\n第二行\r\n".encode("gb2312")
    attachment = bytearray(os.urandom(100_000))
    attachment[1000:1003] = b"+++"
    attachment[5000:5000] = b"\r\n.\r\nBDAT 5 LAST\r\n"
    attachment = bytes(attachment)
    for bdat in (0, 2):
        modem = Modem(atmail, "--connect", f"127.0.0.1:{proxy.port}", "--guard-ms", str(GUARD_MS))
        modems.append(modem)
        configure_spec_case(modem)
        modem.at(b"AT+GTSMTPBDAT=%d" % bdat)
        modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 2\r\n", timeout=30)
        modem.at(b"AT+GTSMTPDATA=300", b"> ")
        modem.data(body, guard=GUARD_MS / 1000)
        modem.wait_for(b"OK\r\n")
        modem.at(b'AT+GTSMTPFILE=1,"eee.wma"', b"> ")
        modem.data(attachment, guard=GUARD_MS / 1000, chunk=4096)
        modem.wait_for(b"OK\r\n")
        modem.at(b"AT+GTSMTPEND", b"+GTSMTPSEND: 1\r\n", timeout=30)
        assert modem.close() == 0
    by_data, by_bdat = (bdat_wire.read(r) for r in proxy.wait_closed(2))
    assert b"DATA" in by_data.verbs() and b"BDAT" not in by_data.verbs()
    bdat_wire.check_chunks(by_bdat)
    replies = [reply for command, reply in by_bdat.replies if command.upper().startswith(b"BDAT")]
    assert len(replies) == len(by_bdat.bdats) and all(r.startswith(b"250") for r in replies), replies
    print("chunks:", [count for count, _ in by_bdat.bdats])
    stored = stored_by_id(exim, 2)
    by_message = {}
    for message_id, raw in stored.items():
        chunked = " K " in received_line(exim, message_id) + " "
        by_message[chunked] = raw
    assert set(by_message) == {True, False}, "one by CHUNKING (K), one not"
    for chunked, conv in ((True, by_bdat), (False, by_data)):
        assert bdat_wire.without_trace(by_message[chunked]) == conv.message.replace(b"\r\n", b"\n")
    assert bdat_wire.normalized(bdat_wire.without_trace(by_message[True])) == bdat_wire.normalized(
        bdat_wire.without_trace(by_message[False])
    )
    for raw in by_message.values():
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        text, part = [p for p in msg.walk() if not p.is_multipart()]
        assert text.get_payload(decode=True) == canonical(body)
        assert part.get_filename() == "eee.wma" and part.get_payload(decode=True) == attachment
    clean(exim, 2)
