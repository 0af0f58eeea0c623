"""CHUNKING and BINARYMIME (issue 32) end to end: `atmail modem` (and the C
firmware example) against the strict RFC 3030 server of
tests/rfc3030_server.py, which records every command, each BDAT's count
and LAST flag, and the message's exact bytes.

- CHUNKING and BINARYMIME offered (in any letter case): `MAIL FROM:<..>
  BODY=BINARYMIME`, BDAT chunks of the modem's 16 KiB storage with the
  whole header block in the first, LAST once, no DATA; every part
  `Content-Transfer-Encoding: binary` with the host's bytes (attachments
  that hold `\\r\\n.\\r\\n`, `BDAT 5 LAST`, `+++` in flowing data, NUL and
  0xFF; a 1 MiB random one at <= 1.01 message octets per attachment byte),
  the text body in canonical CRLF form; Python's `email` reads the parts
  back as sent.
- CHUNKING alone (auto) or BINARYMIME alone: DATA, no BODY=.
- `AT+GTSMTPBDAT=0`: DATA, and the same message as to a server offering
  neither; `=2` with CHUNKING alone: BDAT with base64 parts, no BODY=.
- A chunk refused with 554: that code as the URC, no LAST, RSET, nothing
  delivered. SIZE still ends the mail early (552, no LAST).
- `AT+GTSMTPBDAT?`, `=?`, out-of-range values, CLR and `--bdat`.
- `--maildir`: the in-process server offers both, and stores the
  BINARYMIME message byte for byte.

The interface these are written against: notes/interfaces.md of issue 32."""

import email
import email.policy
import os
import re
import subprocess
import time

import pytest

import bdat_client
from bdat_wire import normalized
from g510 import Modem
from rfc3030_server import Rfc3030Server
from smtp_server import SERVER_NAME, Certificates, canonical, configure_spec_case

GUARD_MS = 300
GUARD = GUARD_MS / 1000
CHUNK = 16 * 1024
"""The chunk storage `atmail modem` gives the engine (interfaces.md)."""

BOTH = ("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING", "BINARYMIME", "SIZE 104857600")
CHUNKING_ONLY = ("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING", "SIZE 104857600")
BINARYMIME_ONLY = ("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "BINARYMIME", "SIZE 104857600")
NEITHER = ("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SIZE 104857600")

# A text body with lines a DATA client must dot-stuff and a BDAT client
# must not, and a bare LF and a bare CR the canonical form turns into CRLF.
BODY = "你好，这是正文。\n.\r\n..two dots\rlast line\r\n".encode("gb2312")


def tricky(size=40_000):
    """An attachment that holds what would end or confuse a transfer:
    DATA's end, a BDAT command, `+++` with no guard time around it, NUL
    and 0xFF, and every byte value."""
    data = bytearray(os.urandom(size))
    for at, piece in [
        (0, b"\r\n.\r\n"),
        (100, b"\r\nBDAT 5 LAST\r\n"),
        (1000, b"+++"),
        (2000, b"\x00" * 64 + b"\xff" * 64),
        (CHUNK - 3, b"\r\n.\r\n"),  # across the first chunk's edge, or near it
        (5000, bytes(range(256))),
    ]:
        data[at : at + len(piece)] = piece
    return bytes(data)


def big(size=1024 * 1024):
    data = bytearray(os.urandom(size))
    for at in range(1000, size, 100_000):
        data[at : at + 3] = b"+++"
    return bytes(data)


@pytest.fixture
def servers():
    started = []

    def start(**options):
        server = Rfc3030Server(**options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def modem_for(modems, atmail, server, *args):
    modem = Modem(atmail, "--connect", f"127.0.0.1:{server.port}", "--guard-ms", str(GUARD_MS), *args)
    modems.append(modem)
    return modem


def send(modem, files, body=BODY, bdat=None, network=True, expect=b"+GTSMTPSEND: 1\r\n", settle=0.0):
    """The spec's mail with `files` ((name, bytes) pairs), with
    `AT+GTSMTPBDAT=<bdat>` before SEND when given. `settle`: seconds more
    the host waits after a file's bytes before `+++`, where the engine
    takes them slowly (chunks held for their replies): a host behind a
    UART's flow control starts its guard time once the UART has taken
    the last byte, while the pipe here takes them at once and buffers."""
    configure_spec_case(modem, network=network)
    if bdat is not None:
        modem.at(b"AT+GTSMTPBDAT=%d" % bdat)
    modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 2\r\n", timeout=30)
    modem.at(b"AT+GTSMTPDATA=300", b"> ")
    modem.data(body, guard=GUARD)
    assert modem.wait_for(b"OK\r\n").endswith(b"+GTSMTPDATA: %d\r\n\r\nOK\r\n" % len(body))
    for name, data in files:
        modem.at(b'AT+GTSMTPFILE=1,"%s"' % name.encode(), b"> ")
        modem.data(data, guard=GUARD + settle, chunk=4096)
        assert modem.wait_for(b"OK\r\n").endswith(b"+GTSMTPFILE: %d\r\n\r\nOK\r\n" % len(data))
    modem.at(b"AT+GTSMTPEND", expect, timeout=60)


def mime_parts(raw: bytes):
    """The leaf parts of a multipart/mixed message as (headers, body),
    split on the boundary byte for byte (no parser's idea of lines)."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    boundary = re.search(rb'boundary="([^"]+)"', head).group(1)
    pieces = (b"\r\n" + rest).split(b"\r\n--" + boundary)
    assert pieces[0] == b"" and pieces[-1] in (b"--\r\n", b"--"), (pieces[0][:80], pieces[-1][:80])
    parts = []
    for piece in pieces[1:-1]:
        assert piece.startswith(b"\r\n")
        headers, _, body = piece[2:].partition(b"\r\n\r\n")
        parts.append((headers, body))
    return parts


def parsed_leaves(raw: bytes):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["subject"] == "你好 smtp"
    assert msg["from"] == "wangww@fibocom.com" and msg["to"] == "xiangj@fibocom.com"
    return [p for p in msg.walk() if not p.is_multipart()]


def check_parts(raw, body, files, encoding):
    """Every part has `encoding`; the bytes are the host's, read both by
    splitting on the boundary and by Python's `email`."""
    parts = mime_parts(raw)
    assert len(parts) == 1 + len(files)
    for headers, _ in parts:
        cte = re.search(rb"(?im)^Content-Transfer-Encoding: *(\S+)", headers)
        assert cte and cte.group(1).lower() == encoding.encode(), headers
    if encoding == "binary":
        assert parts[0][1] == canonical(body)
        for (_, part_body), (_, data) in zip(parts[1:], files):
            assert part_body == data
    leaves = parsed_leaves(raw)
    assert [p["content-transfer-encoding"].lower() for p in leaves] == [encoding] * len(leaves)
    assert leaves[0].get_payload(decode=True) == canonical(body)
    for part, (name, data) in zip(leaves[1:], files):
        assert part.get_filename() == name
        assert part.get_payload(decode=True) == data


def check_binarymime(session, body, files):
    """What a client must do to a CHUNKING+BINARYMIME server; returns
    (message octets, wire octets: the message with the BDAT lines)."""
    verbs = session.verbs()
    assert b"DATA" not in verbs and b"BDAT" in verbs, verbs
    (tx,) = session.transactions
    assert tx.delivered and tx.method == "BDAT"
    assert tx.params.get("BODY") == "BINARYMIME", tx.params
    assert set(tx.params) <= {"BODY", "SIZE"}, tx.params
    chunks = tx.chunks
    assert session.bdats == chunks, "every BDAT belongs to the mail"
    assert [c.last for c in chunks] == [False] * (len(chunks) - 1) + [True], "LAST once, at the end"
    assert all(c.count == CHUNK for c in chunks[:-1]), [c.count for c in chunks]
    assert chunks[-1].count <= CHUNK
    assert sum(c.count for c in chunks) == len(tx.data)
    # The whole header block is in the first chunk.
    assert tx.data.index(b"\r\n\r\n") + 4 <= chunks[0].count
    check_parts(tx.data, body, files, "binary")
    bdat_lines = [c.line for c in session.commands if c.line.upper().startswith(b"BDAT")]
    assert len(bdat_lines) == len(chunks)
    wire = sum(len(line) + 2 for line in bdat_lines) + len(tx.data)
    return len(tx.data), wire


def check_data(session, body, files):
    """A DATA transfer with base64 parts and no BODY=; returns the message."""
    verbs = session.verbs()
    assert b"BDAT" not in verbs and b"DATA" in verbs, verbs
    (tx,) = session.transactions
    assert tx.delivered and tx.method == "DATA"
    assert "BODY" not in tx.params, tx.params
    check_parts(tx.data, body, files, "base64")
    return tx.data


def test_the_checks_take_a_reference_client_and_catch_each_fault(servers):
    """The checks below are proved on a client written here to the
    interface (tests/bdat_client.py): they take it, and each fault they
    exist for fails them."""
    files = [("eee.wma", tricky()), ("zero.bin", b"\x00\xff" * 3)]
    raw = bdat_client.message(BODY, files)

    def session(**how):
        server = servers(keywords=BOTH)
        bdat_client.send(server.port, **how)
        (got,) = server.wait_closed()
        return got

    message, wire = check_binarymime(session(raw=raw, body="BINARYMIME"), BODY, files)
    assert message == len(raw) and wire == len(raw) + sum(
        len(b"BDAT 16384\r\n") for _ in range(len(raw) // CHUNK)
    ) + len(b"BDAT %d LAST\r\n" % (len(raw) % CHUNK))
    faults = {
        "a short chunk": dict(raw=raw, body="BINARYMIME", chunks=[CHUNK, 1000]),
        "no BODY=": dict(raw=raw),
        "a byte changed": dict(raw=raw.replace(b"BDAT 5 LAST", b"BDAT 6 LAST"), body="BINARYMIME"),
        "DATA": dict(raw=bdat_client.message(BODY, files, binary=False), method="DATA"),
        "base64 parts": dict(raw=bdat_client.message(BODY, files, binary=False), body="BINARYMIME"),
        "a body not canonical": dict(raw=bdat_client.message(BODY.replace(b"\r\n", b"\n"), files)
                                     .replace(b"\r\n..two", b"\n..two"), body="BINARYMIME"),
    }
    for name, how in faults.items():
        got = session(**how)
        with pytest.raises(AssertionError):
            check_binarymime(got, BODY, files)
            pytest.fail(f"{name} passed the checks")
    # The DATA one is what check_data takes.
    check_data(session(**faults["DATA"]), BODY, files)


@pytest.mark.parametrize("case", ["upper", "lower", "mixed"])
def test_binarymime_sends_the_hosts_bytes_in_bdat_chunks(atmail, servers, modems, case):
    server = servers(keywords=BOTH, case=case)
    modem = modem_for(modems, atmail, server)
    files = [("eee.wma", tricky()), ("zero.bin", b"\x00\xff" * 3)]
    send(modem, files)
    assert modem.close() == 0
    (session,) = server.wait_closed()
    check_binarymime(session, BODY, files)
    assert session.quit


def test_binarymime_over_smtps(atmail, servers, modems, tmp_path):
    """The same over implicit TLS (AT+GTSMTPLAND mode 1): the chunks go
    through TLS records, counts still exact."""
    certificates = Certificates(tmp_path / "certs")
    server = servers(keywords=BOTH, tls_context=certificates.server_context())
    modem = Modem(atmail, "--connect", f"127.0.0.1:{server.port}", "--tls-ca", str(certificates.ca_file),
                  "--guard-ms", str(GUARD_MS))
    modems.append(modem)
    files = [("eee.wma", tricky(3 * CHUNK + 5))]
    configure_spec_case(modem, land=b'465,"' + SERVER_NAME.encode() + b'",1')
    modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 2\r\n", timeout=30)
    modem.at(b"AT+GTSMTPDATA=300", b"> ")
    modem.data(BODY, guard=GUARD)
    modem.wait_for(b"OK\r\n")
    modem.at(b'AT+GTSMTPFILE=1,"eee.wma"', b"> ")
    modem.data(files[0][1], guard=GUARD, chunk=4096)
    modem.wait_for(b"OK\r\n")
    modem.at(b"AT+GTSMTPEND", b"+GTSMTPSEND: 1\r\n", timeout=60)
    assert modem.close() == 0
    (session,) = server.wait_closed()
    check_binarymime(session, BODY, files)


def test_a_1_mib_attachment_costs_at_most_1_01_octets_per_byte(atmail, servers, modems):
    server = servers(keywords=BOTH)
    modem = modem_for(modems, atmail, server)
    files = [("big.bin", big())]
    send(modem, files)
    assert modem.close() == 0
    (session,) = server.wait_closed()
    message, wire = check_binarymime(session, BODY, files)
    size = len(files[0][1])
    print(f"1 MiB attachment: message {message} octets ({message / size:.5f}/byte), "
          f"with BDAT lines {wire} octets ({wire / size:.5f}/byte), {len(session.bdats)} chunks")
    assert message / size <= 1.01


def test_bdat_replies_are_not_waited_for_one_by_one(atmail, servers, modems):
    """Each chunk's reply held 300 ms: a client that waited for each
    would send every chunk after the previous reply; one that counts
    them sends most before."""
    server = servers(keywords=BOTH, reply_delay={"BDAT": 0.3})
    modem = modem_for(modems, atmail, server)
    files = [("a.bin", os.urandom(8 * CHUNK))]
    send(modem, files)
    assert modem.close() == 0
    (session,) = server.wait_closed()
    check_binarymime(session, BODY, files)
    bdats = [c for c in session.commands if c.line.upper().startswith(b"BDAT")]
    assert sum(not c.waited for c in bdats) >= len(bdats) - 2, [c.waited for c in bdats]


def test_without_pipelining_every_command_and_every_chunk_waits(atmail, servers, modems):
    """Without PIPELINING each of MAIL and RCPT waits for its reply, RFC
    3030 section 2 sends the BDATs "after all MAIL and RCPT responses are
    collected and processed", and each chunk after the first waits for
    the previous chunk's reply: only a server that offered PIPELINING
    must take (and discard) chunks already on the way after a failed
    BDAT (RFC 3030 section 2, RFC 2920), and Exim's smtpd, without
    PIPELINING, calls a chunk sent ahead a synchronization error
    (smtp_in.c, at BDAT_CMD). Replies to MAIL, RCPT and BDAT are held
    back 200 ms each, so a command sent early shows; the attachment
    takes six chunks of the modem's 16 KiB storage and a part of a
    seventh, so there are several to wait (and the host waits that
    long, 7 x 200 ms and more, before its `+++`)."""
    keywords = tuple(k for k in BOTH if k != "PIPELINING")
    server = servers(keywords=keywords, reply_delay={"MAIL": 0.2, "RCPT": 0.2, "BDAT": 0.2})
    modem = modem_for(modems, atmail, server)
    files = [("a.bin", os.urandom(6 * CHUNK))]
    send(modem, files, settle=7 * 0.2 + 1.0)
    assert modem.close() == 0
    (session,) = server.wait_closed()
    check_binarymime(session, BODY, files)
    envelope = [c for c in session.commands if c.line.upper().startswith((b"MAIL", b"RCPT"))]
    assert all(c.waited for c in envelope), [(c.line, c.waited) for c in envelope]
    bdats = [c for c in session.commands if c.line.upper().startswith(b"BDAT")]
    assert len(bdats) >= 4, [c.line for c in bdats]
    assert all(c.waited for c in bdats), [(c.line, c.waited) for c in bdats]


@pytest.mark.parametrize("keywords", [CHUNKING_ONLY, BINARYMIME_ONLY], ids=["chunking-only", "binarymime-only"])
def test_auto_uses_data_unless_both_are_offered(atmail, servers, modems, keywords):
    """CHUNKING alone: DATA is already pipelined, BDAT saves nothing
    (and has timed out at Gmail and iCloud for others). BINARYMIME alone
    cannot be used: it needs BDAT."""
    server = servers(keywords=keywords)
    modem = modem_for(modems, atmail, server)
    files = [("eee.wma", tricky())]
    send(modem, files)
    assert modem.close() == 0
    (session,) = server.wait_closed()
    check_data(session, BODY, files)


def test_off_sends_data_exactly_as_to_a_server_that_offers_neither(atmail, servers, modems):
    files = [("eee.wma", tricky())]
    messages = []
    for keywords, bdat in [(BOTH, 0), (NEITHER, None)]:
        server = servers(keywords=keywords)
        modem = modem_for(modems, atmail, server)
        send(modem, files, bdat=bdat)
        assert modem.close() == 0
        (session,) = server.wait_closed()
        messages.append(check_data(session, BODY, files))
    assert normalized(messages[0]) == normalized(messages[1])


def test_off_from_the_command_line(atmail, servers, modems):
    server = servers(keywords=BOTH)
    modem = modem_for(modems, atmail, server, "--bdat", "off")
    files = [("eee.wma", tricky(5000))]
    send(modem, files)
    assert modem.close() == 0
    check_data(server.wait_closed()[0], BODY, files)


def test_force_uses_bdat_with_base64_parts_where_only_chunking_is_offered(atmail, servers, modems):
    server = servers(keywords=CHUNKING_ONLY)
    modem = modem_for(modems, atmail, server)
    files = [("eee.wma", tricky(100_000))]
    send(modem, files, bdat=2)
    assert modem.close() == 0
    (session,) = server.wait_closed()
    verbs = session.verbs()
    assert b"DATA" not in verbs and b"BDAT" in verbs, verbs
    (tx,) = session.transactions
    assert tx.delivered and tx.method == "BDAT" and "BODY" not in tx.params
    assert [c.last for c in tx.chunks] == [False] * (len(tx.chunks) - 1) + [True]
    assert all(c.count == CHUNK for c in tx.chunks[:-1])
    check_parts(tx.data, BODY, files, "base64")
    assert max(tx.data) < 0x80, "base64 parts and RFC 2047 headers: 7-bit"


@pytest.mark.parametrize("keywords", [NEITHER, BINARYMIME_ONLY], ids=["neither", "binarymime-only"])
def test_force_without_chunking_sends_data(atmail, servers, modems, keywords):
    server = servers(keywords=keywords)
    modem = modem_for(modems, atmail, server)
    files = [("eee.wma", tricky(5000))]
    send(modem, files, bdat=2)
    assert modem.close() == 0
    check_data(server.wait_closed()[0], BODY, files)


def test_a_refused_chunk_ends_the_mail_with_its_code_and_nothing_is_delivered(atmail, servers, modems):
    """Chunk 2 gets 554. The host streams 1 MiB slowly (about 1.3 s), so
    a client that went on sending chunks after the refusal would be seen
    doing it; it sends no LAST, reads what it is owed, says RSET."""
    server = servers(keywords=BOTH, refuse_chunk={2: "554 5.6.0 chunk two refused"})
    modem = modem_for(modems, atmail, server)
    configure_spec_case(modem)
    modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 2\r\n", timeout=30)
    modem.at(b'AT+GTSMTPFILE=1,"big.bin"', b"> ")
    data = big()
    for at in range(0, len(data), 4096):
        modem.write(data[at : at + 4096])
        time.sleep(0.005)
    time.sleep(GUARD + 0.2)
    modem.write(b"+++")
    modem.wait_for(b"+GTSMTPSEND: 554\r\n", timeout=30)
    assert modem.close() == 0
    assert b"554 5.6.0 chunk two refused" in modem.err
    (session,) = server.wait_closed()
    assert server.delivered() == []
    (tx,) = session.transactions
    assert tx.failed == b"554 5.6.0 chunk two refused"
    assert not any(c.last for c in session.bdats), "never LAST after a refusal"
    verbs = session.verbs()
    assert verbs[-2:] == [b"RSET", b"QUIT"], verbs
    refused_at = next(t for t, r in session.replies if r.startswith(b"554 "))
    late = [c for c in session.commands if c.line.upper().startswith(b"BDAT") and c.at > refused_at + 0.3]
    assert late == [], f"{len(late)} chunks sent well after the refusal"
    print(f"{len(session.bdats)} chunks sent before the refusal was heard")


def test_size_still_ends_a_bdat_mail_early(atmail, servers, modems):
    """SIZE 200000 offered: a 1 MiB attachment ends with 552 while the
    host is still streaming; no LAST, nothing delivered, and the server
    received little past the limit."""
    server = servers(keywords=BOTH[:-1] + ("SIZE 200000",))
    modem = modem_for(modems, atmail, server)
    configure_spec_case(modem)
    modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 2\r\n", timeout=30)
    modem.at(b'AT+GTSMTPFILE=1,"big.bin"', b"> ")
    data = big()
    heard_at = None
    for at in range(0, len(data), 4096):
        modem.write(data[at : at + 4096])
        time.sleep(0.002)
        if heard_at is None and b"+GTSMTPSEND: 552" in modem.out:
            heard_at = at
    assert heard_at is not None and heard_at < len(data) // 2, heard_at
    time.sleep(GUARD + 0.2)
    modem.write(b"+++")
    modem.wait_for(b"\r\nERROR\r\n", timeout=10)
    assert modem.close() == 0
    (session,) = server.wait_closed()
    assert server.delivered() == []
    assert b"DATA" not in session.verbs() and session.bdats, session.verbs()
    assert not any(c.last for c in session.bdats)
    sent = sum(c.count for c in session.bdats)
    print(f"552 heard after {heard_at} bytes written; {sent} octets in {len(session.bdats)} chunks")
    assert sent <= 200_000 + 4 * CHUNK, sent


def test_the_settings_answer_as_the_interface_says(atmail, modems):
    modem = Modem(atmail, "--guard-ms", str(GUARD_MS))
    modems.append(modem)
    modem.at(b"ATE0")
    assert modem.at(b"AT+GTSMTPBDAT?") == b"\r\n+GTSMTPBDAT: 1\r\n\r\nOK\r\n"
    assert modem.at(b"AT+GTSMTPBDAT=?") == b"\r\n+GTSMTPBDAT: (0-2)\r\n\r\nOK\r\n"
    for mode in (0, 2, 1):
        assert modem.at(b"AT+GTSMTPBDAT=%d" % mode) == b"\r\nOK\r\n"
        assert modem.at(b"AT+GTSMTPBDAT?") == b"\r\n+GTSMTPBDAT: %d\r\n\r\nOK\r\n" % mode
    for bad in (b"3", b"-1", b"", b"1,1", b"x"):
        assert modem.at(b"AT+GTSMTPBDAT=" + bad, b"ERROR\r\n") == b"\r\nERROR\r\n", bad
    assert modem.at(b"AT+GTSMTPBDAT?") == b"\r\n+GTSMTPBDAT: 1\r\n\r\nOK\r\n"
    modem.at(b"AT+GTSMTPBDAT=0")
    modem.at(b"AT+GTSMTPCLR")
    assert modem.at(b"AT+GTSMTPBDAT?") == b"\r\n+GTSMTPBDAT: 1\r\n\r\nOK\r\n"
    assert modem.close() == 0


@pytest.mark.parametrize("flag,mode", [("off", 0), ("auto", 1), ("force", 2)])
def test_the_command_line_sets_the_default_that_clr_restores(atmail, modems, flag, mode):
    modem = Modem(atmail, "--bdat", flag)
    modems.append(modem)
    modem.at(b"ATE0")
    assert modem.at(b"AT+GTSMTPBDAT?") == b"\r\n+GTSMTPBDAT: %d\r\n\r\nOK\r\n" % mode
    modem.at(b"AT+GTSMTPBDAT=%d" % ((mode + 1) % 3))
    modem.at(b"AT+GTSMTPCLR")
    assert modem.at(b"AT+GTSMTPBDAT?") == b"\r\n+GTSMTPBDAT: %d\r\n\r\nOK\r\n" % mode
    assert modem.close() == 0


def test_the_maildir_server_takes_binarymime_and_stores_it_exactly(atmail, tmp_path, modems):
    """`--maildir`, the first-run path: the in-process server offers
    CHUNKING and BINARYMIME, so the default sends BDAT with binary parts,
    stored byte for byte (CRLF kept: a binary part has no lines)."""
    maildir = tmp_path / "mail"
    modem = Modem(atmail, "--maildir", str(maildir), "--guard-ms", str(GUARD_MS))
    modems.append(modem)
    files = [("eee.wma", tricky())]
    send(modem, files)
    assert modem.close() == 0
    (path,) = list((maildir / "new").iterdir())
    raw = path.read_bytes()
    check_parts(raw, BODY, files, "binary")
    # maildrop's reformime reads the binary parts back exactly too.
    section = lambda s: subprocess.run(  # noqa: E731
        ["reformime", "-e", "-s", s], input=raw, capture_output=True, check=True
    ).stdout
    assert section("1.1") == canonical(BODY)
    assert section("1.2") == files[0][1]


def test_the_c_firmware_example_keeps_the_rules(c_programs, servers, modems):
    """The C firmware example gives the engine chunk storage or none
    (interfaces.md does not say which): either way the mail arrives
    whole, and BINARYMIME goes only with BDAT."""
    server = servers(keywords=BOTH)
    modem = Modem(None, command=[str(c_programs / "firmware"), "--guard-ms", str(GUARD_MS), f"127.0.0.1:{server.port}"])
    modems.append(modem)
    files = [("eee.wma", tricky(20_000))]
    send(modem, files, network=False)
    assert modem.close() == 0
    (session,) = server.wait_closed()
    if b"BDAT" in session.verbs():
        (tx,) = session.transactions
        assert tx.params.get("BODY") == "BINARYMIME"
        assert [c.last for c in tx.chunks] == [False] * (len(tx.chunks) - 1) + [True]
        check_parts(tx.data, BODY, files, "binary")
        print("firmware example: BDAT chunks", [c.count for c in tx.chunks])
    else:
        check_data(session, BODY, files)
        print("firmware example: DATA (no chunk storage)")
