"""`atmail modem` against a real Postfix (tests/postfix.py): STARTTLS,
SMTPS, Cyrus SASL, both HELO restrictions that refuse `localhost`, a
refused recipient and a 1,000,000-byte `message_size_limit`, delivering into
a Maildir read here with Python's `email`. With BDAT forced
(`AT+GTSMTPBDAT=2`, issue 32), read at a recording proxy on a plain port:
BDAT not DATA, full chunks, LAST once, no BODY=BINARYMIME (Postfix offers
CHUNKING alone); the Maildir file byte for byte what was sent, and the same
message as by DATA; Postfix's log of the session clean, with `bdat=`."""

import email
import email.policy
import os
import re
import subprocess
import time

import pytest

import bdat_client
import bdat_wire
from downgrade_proxy import RecordingProxy
from g510 import Modem
from postfix import REFUSED, Postfix
from smtp_server import PASSWORD, SERVER_NAME, USER, Certificates, canonical, configure_spec_case

SIZE_LIMIT = 1_000_000


@pytest.fixture
def postfix(tmp_path):
    """A private Postfix, stopped however the test ends."""
    certificates = Certificates(tmp_path / "certs")
    server = Postfix(certificates, size_limit=SIZE_LIMIT)
    server.certificates = certificates
    try:
        yield server
    finally:
        server.stop()


def start(modems, atmail, postfix, port, *args, eol=b"\r"):
    modem = Modem(
        atmail,
        "--connect",
        f"127.0.0.1:{port}",
        "--tls-ca",
        str(postfix.certificates.ca_file),
        "--guard-ms",
        "300",
        *args,
        eol=eol,
    )
    modems.append(modem)
    return modem


def spec_case(modem, attachment: bytes, land=None, configure=None):
    """The spec's mail; `configure(modem)` instead of the spec's
    configuration when given."""
    if configure is None:
        configure_spec_case(modem, **({"land": land} if land else {}))
    else:
        configure(modem)
    modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 2\r\n", timeout=30)
    body = "你好，这是正文。\n第二行\r\n".encode("gb2312")
    modem.at(b"AT+GTSMTPDATA=300", b"> ")
    modem.data(body, guard=0.3)
    assert modem.wait_for(b"OK\r\n").endswith(b"+GTSMTPDATA: %d\r\n\r\nOK\r\n" % len(body))
    modem.at(b'AT+GTSMTPFILE=1,"eee.wma"', b"> ")
    modem.data(attachment, guard=0.3, chunk=4096)
    assert modem.wait_for(b"OK\r\n").endswith(b"+GTSMTPFILE: %d\r\n\r\nOK\r\n" % len(attachment))
    modem.at(b"AT+GTSMTPEND", b"+GTSMTPSEND: 1\r\n", timeout=30)
    return body


def check_delivered(postfix, body, attachment):
    (raw,) = postfix.messages()
    assert b"\r" not in raw.split(b"\n\n")[0], "Postfix stores LF lines"
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["subject"] == "你好 smtp"
    assert msg["from"] == USER.decode() and msg["to"] == "xiangj@fibocom.com"
    text, part = [p for p in msg.walk() if not p.is_multipart()]
    assert text.get_content_charset() == "gbk"
    assert text.get_payload(decode=True) == canonical(body)
    assert part.get_filename() == "eee.wma"
    assert part.get_payload(decode=True) == attachment
    return raw


def blob(size):
    data = bytearray(os.urandom(size))
    data[1000:1003] = b"+++"
    return bytes(data)


@pytest.mark.parametrize("eol", [b"\r", b"\r\n"], ids=["cr", "crlf"])
def test_the_spec_case_over_starttls_with_the_helo_restrictions(atmail, postfix, modems, eol):
    """EHLO names the local end as `[127.0.0.1]`, which both HELO
    restrictions accept; STARTTLS comes before AUTH (Postfix offers AUTH
    only under TLS); the mail arrives whole."""
    modem = start(modems, atmail, postfix, postfix.smtp, eol=eol)
    attachment = blob(256 * 1024)
    body = spec_case(modem, attachment)
    assert modem.close() == 0
    raw = check_delivered(postfix, body, attachment)
    # The HELO name as Postfix recorded it; ESMTPSA: under TLS, logged in.
    assert b"Received: from [127.0.0.1] (localhost [127.0.0.1])" in raw
    assert b"with ESMTPSA" in raw and "sasl_method=PLAIN" in postfix.log_text()
    assert PASSWORD not in modem.out + modem.err


def test_the_spec_case_over_smtps(atmail, postfix, modems):
    modem = start(modems, atmail, postfix, postfix.smtps)
    attachment = blob(64 * 1024)
    body = spec_case(modem, attachment, land=b'465,"' + SERVER_NAME.encode() + b'",1')
    assert modem.close() == 0
    check_delivered(postfix, body, attachment)


def test_a_helo_name_that_is_not_fully_qualified_is_refused(atmail, postfix, modems):
    """What every mail met before atmail named the local end: the
    restriction is live, so the test above means something."""
    modem = start(modems, atmail, postfix, postfix.smtp, "--helo", "localhost")
    configure_spec_case(modem)
    modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 504\r\n", timeout=30)
    assert modem.close() == 0
    assert postfix.messages(count=1, timeout=1) == []
    assert "Helo command rejected: need fully-qualified hostname" in postfix.log_text()


@pytest.mark.parametrize(
    "password,recipient,code",
    [(b"wrong", b"xiangj@fibocom.com", 535), (PASSWORD, REFUSED.encode(), 550)],
    ids=["auth", "rcpt"],
)
def test_refusals_report_postfixs_code(atmail, postfix, modems, password, recipient, code):
    modem = start(modems, atmail, postfix, postfix.smtp)
    configure_spec_case(modem, password=password)
    if recipient != b"xiangj@fibocom.com":
        modem.at(b'at+gtsmtpdst=0,1,"xiangj@fibocom.com"')
        modem.at(b'at+gtsmtpdst=1,1,"' + recipient + b'"')
    modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: %d\r\n" % code, timeout=30)
    assert modem.close() == 0
    assert postfix.messages(count=1, timeout=1) == []
    # Postfix saw the conversation end with QUIT, not a lost connection.
    deadline = time.monotonic() + 10
    while not (ended := [line for line in postfix.log_text().splitlines() if "disconnect from" in line and "commands=0/0" not in line]):
        assert time.monotonic() < deadline, postfix.log_text()
        time.sleep(0.05)
    assert " quit=1 " in ended[0] and "lost connection after" not in postfix.log_text().replace("after CONNECT", "")


def test_a_message_past_the_size_limit_ends_while_the_host_streams(atmail, postfix, modems):
    """Postfix announces SIZE 1000000: a 2 MiB attachment ends with 552 as
    soon as the message passes it, while the host is still sending, and
    Postfix receives less than the limit plus one socket buffer."""
    proxy = postfix.proxy(postfix.smtp)
    try:
        modem = start(modems, atmail, postfix, proxy.port)
        configure_spec_case(modem)
        modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 2\r\n", timeout=30)
        modem.at(b'AT+GTSMTPFILE=1,"big.bin"', b"> ")
        data = blob(2 * 1024 * 1024)
        heard_at = None
        for at in range(0, len(data), 16384):
            modem.write(data[at : at + 16384])
            if heard_at is None and b"+GTSMTPSEND: 552" in modem.out:
                heard_at = at
        assert heard_at is not None and heard_at < len(data) // 2 + 256 * 1024, heard_at
        time.sleep(0.5)
        modem.write(b"+++")
        modem.wait_for(b"\r\nERROR\r\n", timeout=10)
        assert modem.close() == 0
        assert b"the message is larger than the server takes (SIZE 1000000)" in modem.err
        print(f"552 heard after {heard_at} payload bytes written; the server received {proxy.sent} bytes")
        assert proxy.sent < SIZE_LIMIT + 64 * 1024, proxy.sent
        assert postfix.messages(count=1, timeout=1) == []
    finally:
        proxy.close()


def test_a_maildir_delivery_reads_without_carriage_returns(atmail, tmp_path, modems):
    """`--maildir` stores a DATA message (`AT+GTSMTPBDAT=0`; the default
    sends BINARYMIME to it, stored exactly: tests/test_bdat.py) with LF
    lines as MTAs do; reformime (maildrop) reads the parts back exactly."""
    maildir = tmp_path / "mail"
    modem = Modem(atmail, "--maildir", str(maildir), "--guard-ms", "300")
    modems.append(modem)
    attachment = blob(10_000)

    def configure(m):
        configure_spec_case(m)
        m.at(b"AT+GTSMTPBDAT=0")

    body = spec_case(modem, attachment, configure=configure)
    assert modem.close() == 0
    (path,) = list((maildir / "new").iterdir())
    raw = path.read_bytes()
    assert b"\r" not in raw
    info = subprocess.run(["reformime", "-i"], input=raw, capture_output=True, check=True).stdout
    assert b"\r" not in info and b"content-type: text/plain" in info
    section = lambda s: subprocess.run(  # noqa: E731
        ["reformime", "-e", "-s", s], input=raw, capture_output=True, check=True
    ).stdout
    assert section("1.1") == canonical(body)
    assert section("1.2") == attachment


# -- BDAT forced (issue 32) ----------------------------------------------

UNCLEAN = re.compile(r"(?i)warning|error|fatal|panic|lost connection|reject|timeout")


def session_log(postfix, marker):
    """The log lines of the smtpd session whose disconnect line holds
    `marker` (` bdat=`, ` data=1`), and those of the mail it queued."""
    log = postfix.wait_log(marker)
    lines = log.splitlines()
    end = next(i for i, line in enumerate(lines) if "disconnect from" in line and marker in line)
    pid = re.search(r"smtpd\[(\d+)\]", lines[end]).group(1)
    start = max(i for i in range(end) if f"smtpd[{pid}]: connect from" in lines[i])
    mine = [line for line in lines[start : end + 1] if f"smtpd[{pid}]" in line]
    queued = re.findall(r"smtpd\[\d+\]: ([0-9A-F]{6,}): client=", "\n".join(mine))
    mine += [line for line in lines if any(q in line for q in queued) and line not in mine]
    return mine, queued


@pytest.fixture
def plain_postfix(tmp_path):
    """A Postfix whose port takes AUTH in the clear (no STARTTLS), behind
    a proxy that records both directions: the BDAT framing is read there."""
    certificates = Certificates(tmp_path / "certs")
    server = Postfix(certificates, plain=True)
    server.certificates = certificates
    proxy = RecordingProxy(server.smtp)
    try:
        yield server, proxy
    finally:
        proxy.close()
        server.stop()


def stored_by_queue_id(postfix, count):
    by_id = {}
    for raw in postfix.messages(count=count):
        by_id[re.search(rb"with ESMTPS?A id ([0-9A-F]+)", raw).group(1).decode()] = raw
    return by_id


def test_the_proxy_and_log_checks_read_a_reference_bdat_client(plain_postfix):
    """The reading below proved without the engine: a BDAT client written
    here (tests/bdat_client.py) through the proxy; its chunks read back,
    the file byte for byte its message with LF lines, the log clean."""
    postfix, proxy = plain_postfix
    raw = bdat_client.message("正文\r\n".encode("gb2312"), [("a.bin", blob(40_000))], binary=False)
    bdat_client.send(proxy.port, raw)
    (recording,) = proxy.wait_closed(1)
    conv = bdat_wire.read(recording)
    bdat_wire.check_chunks(conv)
    assert conv.message == raw
    assert bdat_wire.offers(conv.ehlo, b"CHUNKING") and not bdat_wire.offers(conv.ehlo, b"BINARYMIME")
    lines, (queue_id,) = session_log(postfix, " bdat=")
    assert any(f" bdat={len(conv.bdats)} " in line for line in lines), lines
    assert [line for line in lines if UNCLEAN.search(line)] == []
    stored = stored_by_queue_id(postfix, 1)[queue_id]
    assert bdat_wire.without_trace(stored) == raw.replace(b"\r\n", b"\n")
    # A wrong count is seen: the checks can fail.
    with pytest.raises(AssertionError):
        bdat_wire.check_chunks(conv, chunk=16 * 1000)


def test_the_spec_case_by_forced_bdat_is_delivered_as_by_data(atmail, plain_postfix, modems):
    postfix, proxy = plain_postfix
    attachment = blob(200_000)
    attachment = attachment[:5000] + b"\r\n.\r\nBDAT 5 LAST\r\n" + attachment[5000:]
    bodies = []
    for bdat in (0, 2):
        modem = start(modems, atmail, postfix, proxy.port)

        def configure(m, bdat=bdat):
            configure_spec_case(m)
            m.at(b"AT+GTSMTPBDAT=%d" % bdat)

        bodies.append(spec_case(modem, attachment, configure=configure))
        assert modem.close() == 0
    by_data, by_bdat = (bdat_wire.read(r) for r in proxy.wait_closed(2))
    assert b"DATA" in by_data.verbs() and b"BDAT" not in by_data.verbs()
    bdat_wire.check_chunks(by_bdat)
    assert bdat_wire.offers(by_bdat.ehlo, b"CHUNKING")
    replies = [reply for command, reply in by_bdat.replies if command.upper().startswith(b"BDAT")]
    assert len(replies) == len(by_bdat.bdats) and all(r.startswith(b"250 ") for r in replies), replies
    print("chunks:", [count for count, _ in by_bdat.bdats],
          f"message {len(by_bdat.message)} octets, by DATA {len(by_data.message)}")

    bdat_lines, (bdat_id,) = session_log(postfix, " bdat=")
    data_lines, (data_id,) = session_log(postfix, " data=1")
    for lines in (bdat_lines, data_lines):
        assert [line for line in lines if UNCLEAN.search(line)] == []
    assert any(f" bdat={len(by_bdat.bdats)} " in line for line in bdat_lines), bdat_lines
    stored = stored_by_queue_id(postfix, 2)
    for conv, queue_id in ((by_bdat, bdat_id), (by_data, data_id)):
        assert bdat_wire.without_trace(stored[queue_id]) == conv.message.replace(b"\r\n", b"\n")
    assert bdat_wire.normalized(bdat_wire.without_trace(stored[bdat_id])) == bdat_wire.normalized(
        bdat_wire.without_trace(stored[data_id])
    )
    for queue_id in (bdat_id, data_id):
        msg = email.message_from_bytes(stored[queue_id], policy=email.policy.default)
        text, part = [p for p in msg.walk() if not p.is_multipart()]
        assert text.get_payload(decode=True) == canonical(bodies[0])
        assert part.get_filename() == "eee.wma" and part.get_payload(decode=True) == attachment
