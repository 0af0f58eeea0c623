"""The strict RFC 3030 server (tests/rfc3030_server.py) proved on its own,
with a raw-socket client and by feeding its state machine directly: BDAT
counts exact however the octets are split, `BDAT 0 LAST`, the 5xx cases
RFC 3030 and RFC 5321 call for, pipelined chunks, refused chunks, and the
records the BDAT tests judge a client by."""

import base64
import os
import random
import socket
import ssl
import time

import pytest

from rfc3030_server import (
    PASSWORD,
    USER,
    Engine,
    Options,
    Rfc3030Server,
    Session,
    in_case,
    parse_client_stream,
)
from smtp_server import Certificates

PLAIN = base64.b64encode(b"\0" + USER + b"\0" + PASSWORD)


class Client:
    """A raw SMTP client: sends bytes as given, reads whole replies."""

    def __init__(self, port, sock=None):
        self.sock = sock or socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def send(self, data: bytes):
        self.sock.sendall(data)

    def reply(self) -> bytes:
        """One reply, all its lines, CRLFs kept."""
        lines = b""
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                assert chunk, f"connection closed; so far {lines!r}"
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines += line + b"\r\n"
            if line[3:4] != b"-":
                return lines

    def cmd(self, line: bytes) -> bytes:
        self.send(line + b"\r\n")
        return self.reply()

    def chunk(self, line: bytes, octets: bytes) -> bytes:
        """A BDAT line and its octets (no CRLF after them), one reply."""
        self.send(line + b"\r\n" + octets)
        return self.reply()

    def close(self):
        self.sock.close()


@pytest.fixture
def make():
    servers = []

    def start(**kwargs):
        server = Rfc3030Server(**kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def ready(server, auth=True) -> Client:
    """Connected, greeted, EHLO'd, signed in, MAIL and RCPT taken."""
    c = Client(server.port)
    assert c.reply().startswith(b"220 ")
    assert c.cmd(b"EHLO [127.0.0.1]").startswith(b"250-")
    if auth:
        assert c.cmd(b"AUTH PLAIN " + PLAIN).startswith(b"235 ")
    assert c.cmd(b"MAIL FROM:<a@b.c> BODY=BINARYMIME").startswith(b"250 ")
    assert c.cmd(b"RCPT TO:<x@y.z>").startswith(b"250 ")
    return c


def quit(c):
    assert c.cmd(b"QUIT").startswith(b"221 ")
    c.close()


@pytest.mark.parametrize("case", ["upper", "lower", "mixed"])
def test_ehlo_offers_the_keywords_in_the_case_asked(make, case):
    server = make(keywords=("CHUNKING", "BINARYMIME", "SIZE 5000"), case=case)
    c = Client(server.port)
    c.reply()
    lines = c.cmd(b"EHLO [127.0.0.1]").split(b"\r\n")[1:-1]
    expected = [in_case(k, case) for k in ("CHUNKING", "BINARYMIME", "SIZE 5000")]
    expected.append(in_case("AUTH", case) + " PLAIN LOGIN")
    assert [line[4:].decode() for line in lines] == expected
    assert in_case("binarymime", "mixed") == "BiNaRyMiMe"
    # SIZE is enforced, in whatever case it was offered.
    assert c.cmd(b"AUTH PLAIN " + PLAIN).startswith(b"235 ")
    assert c.cmd(b"MAIL FROM:<a@b.c> SIZE=5001") == b"552 message too large\r\n"
    quit(c)


def test_bdat_counts_are_exact_however_the_octets_are_split(make):
    server = make()
    c = ready(server)
    first = b"Subject: x\r\n\r\n\r\n.\r\nBDAT 5 LAST\r\n"
    c.send(b"BDAT %d\r\n" % len(first))
    for i in range(len(first)):
        time.sleep(0.002)
        c.send(first[i : i + 1])
    assert c.reply() == b"250 2.0.0 %d octets received\r\n" % len(first)
    # A line split inside "BDAT", the count and the octets in one write.
    c.send(b"BD")
    time.sleep(0.05)
    c.send(b"AT 5 LAST\r\n\x00\xff+++")
    assert c.reply().startswith(b"250 2.0.0 5 octets received, message of %d octets" % (len(first) + 5))
    quit(c)
    (session,) = server.wait_closed()
    (tx,) = session.delivered()
    assert tx.data == first + b"\x00\xff+++"
    assert [(k.count, k.last) for k in tx.chunks] == [(len(first), False), (5, True)]
    assert tx.method == "BDAT" and tx.params == {"BODY": "BINARYMIME"}
    assert session.verbs() == [b"EHLO", b"AUTH", b"MAIL", b"RCPT", b"BDAT", b"BDAT", b"QUIT"]


def test_bdat_0_last_ends_a_message_and_alone_sends_an_empty_one(make):
    server = make()
    c = ready(server)
    assert c.chunk(b"BDAT 3", b"abc").startswith(b"250 2.0.0 3 octets")
    assert c.cmd(b"BDAT 0 LAST").startswith(b"250 2.0.0 0 octets received, message of 3 octets accepted")
    assert c.cmd(b"MAIL FROM:<a@b.c>").startswith(b"250 ")
    assert c.cmd(b"RCPT TO:<x@y.z>").startswith(b"250 ")
    assert c.cmd(b"BDAT 0 last").startswith(b"250 2.0.0 0 octets received, message of 0 octets")
    quit(c)
    (session,) = server.wait_closed()
    assert [t.data for t in session.delivered()] == [b"abc", b""]
    assert [(k.count, k.last) for k in session.bdats] == [(3, False), (0, True), (0, True)]


def test_binarymime_goes_only_with_bdat(make):
    server = make()
    c = ready(server)
    assert c.cmd(b"DATA") == b"503 5.5.1 BODY=BINARYMIME needs BDAT, not DATA\r\n"
    # The transaction is still there: BDAT takes it.
    assert c.chunk(b"BDAT 2 LAST", b"ok").startswith(b"250 ")
    quit(c)
    (session,) = server.wait_closed()
    assert [t.data for t in session.delivered()] == [b"ok"]


def test_binarymime_not_offered_is_refused_at_mail(make):
    server = make(keywords=("CHUNKING", "PIPELINING", "ENHANCEDSTATUSCODES"))
    c = Client(server.port)
    c.reply()
    c.cmd(b"EHLO [127.0.0.1]")
    c.cmd(b"AUTH PLAIN " + PLAIN)
    assert c.cmd(b"MAIL FROM:<a@b.c> BODY=BINARYMIME").startswith(b"555 5.5.4")
    assert c.cmd(b"MAIL FROM:<a@b.c> BODY=8BITMIME").startswith(b"555 5.5.4")
    assert c.cmd(b"MAIL FROM:<a@b.c> BODY=7BIT").startswith(b"250 ")
    quit(c)


def test_data_and_bdat_do_not_mix_in_one_transaction(make):
    server = make()
    c = Client(server.port)
    c.reply()
    c.cmd(b"EHLO [127.0.0.1]")
    c.cmd(b"AUTH PLAIN " + PLAIN)
    c.cmd(b"MAIL FROM:<a@b.c>")
    c.cmd(b"RCPT TO:<x@y.z>")
    assert c.chunk(b"BDAT 4", b"abcd").startswith(b"250 ")
    assert c.cmd(b"DATA").startswith(b"503 5.5.1 BDAT and DATA")
    assert c.cmd(b"RSET").startswith(b"250 ")
    # RSET cleared it: nothing was delivered, and DATA works afresh.
    c.cmd(b"MAIL FROM:<a@b.c>")
    c.cmd(b"RCPT TO:<x@y.z>")
    assert c.cmd(b"DATA").startswith(b"354 ")
    c.send(b".dot\r\nline\r\n..\r\n.\r\n")
    assert c.reply().startswith(b"250 ")
    quit(c)
    (session,) = server.wait_closed()
    (tx,) = session.delivered()
    assert tx.method == "DATA" and tx.data == b"dot\r\nline\r\n.\r\n"
    assert [t.ended_by for t in session.transactions] == ["RSET", "delivered"]


def test_bdat_out_of_order_is_refused_and_its_octets_read(make):
    server = make()
    c = Client(server.port)
    c.reply()
    # Before EHLO: CHUNKING is not offered yet.
    assert c.chunk(b"BDAT 4", b"NOOP") == b"502 BDAT without CHUNKING offered\r\n"
    c.cmd(b"EHLO [127.0.0.1]")
    c.cmd(b"AUTH PLAIN " + PLAIN)
    # No MAIL: 503, and "QUIT" inside the octets is not a command.
    assert c.chunk(b"BDAT 6 LAST", b"QUIT\r\n") == b"503 5.5.1 MAIL and RCPT first\r\n"
    c.cmd(b"MAIL FROM:<a@b.c>")
    assert c.chunk(b"BDAT 1", b"x").startswith(b"503 ")
    assert c.cmd(b"BDAT x LAST") == b"501 5.5.4 syntax: BDAT <chunk-size> [LAST]\r\n"
    assert c.cmd(b"NOOP").startswith(b"250 ")
    quit(c)
    (session,) = server.wait_closed()
    assert session.delivered() == []
    assert session.quit


def test_bdat_after_helo_is_not_offered(make):
    server = make()
    c = Client(server.port)
    c.reply()
    c.cmd(b"HELO client.test")
    # HELO offers no extensions, so no AUTH, no BDAT.
    assert c.chunk(b"BDAT 3 LAST", b"abc").startswith(b"502 ")
    assert c.cmd(b"NOOP") == b"250 ok\r\n"
    quit(c)


def test_without_enhancedstatuscodes_replies_carry_none(make):
    server = make(keywords=("CHUNKING",), auth=False)
    c = Client(server.port)
    c.reply()
    c.cmd(b"EHLO [127.0.0.1]")
    assert c.cmd(b"MAIL FROM:<a@b.c>") == b"250 sender ok\r\n"
    assert c.cmd(b"DATA") == b"503 MAIL and RCPT first\r\n"
    quit(c)


def test_pipelined_bdats_are_answered_in_order_and_seen_not_waited_for(make):
    server = make(reply_delay={"BDAT": 0.2})
    c = ready(server)
    c.send(b"BDAT 3\r\nabcBDAT 4\r\ndefgBDAT 2 LAST\r\nhi")
    replies = [c.reply() for _ in range(3)]
    assert replies[0] == b"250 2.0.0 3 octets received\r\n"
    assert replies[1] == b"250 2.0.0 4 octets received\r\n"
    assert replies[2].startswith(b"250 2.0.0 2 octets received, message of 9 octets")
    # Now one that waits for each reply.
    c.cmd(b"MAIL FROM:<a@b.c>")
    c.cmd(b"RCPT TO:<x@y.z>")
    c.chunk(b"BDAT 1", b"j")
    c.chunk(b"BDAT 1 LAST", b"k")
    quit(c)
    (session,) = server.wait_closed()
    bdats = [cmd for cmd in session.commands if cmd.line.startswith(b"BDAT")]
    assert [b.waited for b in bdats] == [True, False, False, True, True]
    assert [t.data for t in session.delivered()] == [b"abcdefghi", b"jk"]
    # Replies went in the order the chunks came, each after its delay.
    times = [t for t, r in session.replies]
    assert times == sorted(times)


def test_a_refused_chunk_fails_the_transaction_until_rset(make):
    server = make(refuse_chunk={2: "554 5.6.0 chunk two refused"})
    c = ready(server)
    c.send(b"BDAT 3\r\nabcBDAT 3\r\ndefBDAT 3 LAST\r\nghi")
    assert [c.reply() for _ in range(3)] == [
        b"250 2.0.0 3 octets received\r\n",
        b"554 5.6.0 chunk two refused\r\n",
        b"503 5.5.1 the transaction failed: RSET first\r\n",
    ]
    assert c.cmd(b"RSET").startswith(b"250 ")
    c.cmd(b"MAIL FROM:<a@b.c>")
    c.cmd(b"RCPT TO:<x@y.z>")
    # The fault is per transaction: its chunk 2 again.
    assert c.chunk(b"BDAT 1", b"1").startswith(b"250 ")
    assert c.chunk(b"BDAT 1 LAST", b"2").startswith(b"554 ")
    c.cmd(b"RSET")
    quit(c)
    (session,) = server.wait_closed()
    assert session.delivered() == []
    first, second = session.transactions
    assert first.failed == b"554 5.6.0 chunk two refused" and first.ended_by == "refused"
    assert [(k.count, k.last) for k in first.chunks] == [(3, False), (3, False)]
    assert second.failed == b"554 5.6.0 chunk two refused"


def test_a_refused_end_delivers_nothing(make):
    server = make(refuse={"END": "451 4.3.0 try later"})
    c = ready(server)
    assert c.chunk(b"BDAT 2 LAST", b"ab") == b"451 4.3.0 try later\r\n"
    quit(c)
    (session,) = server.wait_closed()
    assert session.delivered() == [] and session.transactions[0].ended_by == "refused"


def test_size_is_enforced_on_chunks(make):
    server = make(keywords=("CHUNKING", "SIZE 10", "ENHANCEDSTATUSCODES"))
    c = Client(server.port)
    c.reply()
    c.cmd(b"EHLO [127.0.0.1]")
    c.cmd(b"AUTH PLAIN " + PLAIN)
    c.cmd(b"MAIL FROM:<a@b.c> SIZE=10")
    c.cmd(b"RCPT TO:<x@y.z>")
    assert c.chunk(b"BDAT 8", b"12345678").startswith(b"250 ")
    assert c.chunk(b"BDAT 8 LAST", b"12345678").startswith(b"552 5.3.4")
    quit(c)
    assert server.wait_closed()[0].delivered() == []


def test_bare_lf_and_long_lines_are_refused(make):
    server = make()
    c = Client(server.port)
    c.reply()
    c.send(b"NOOP\n")
    assert c.reply() == b"500 line ends with a bare LF, not CRLF\r\n"
    assert c.cmd(b"NOOP " + b"x" * 600) == b"500 line too long\r\n"
    quit(c)
    assert server.wait_closed()[0].bare_lf == 1


def test_auth_login_and_a_bad_password(make):
    server = make()
    c = Client(server.port)
    c.reply()
    c.cmd(b"EHLO [127.0.0.1]")
    assert c.cmd(b"MAIL FROM:<a@b.c>").startswith(b"530 ")
    assert c.cmd(b"AUTH PLAIN " + base64.b64encode(b"\0" + USER + b"\0wrong")).startswith(b"535 ")
    assert c.cmd(b"AUTH LOGIN") == b"334 VXNlcm5hbWU6\r\n"
    assert c.cmd(base64.b64encode(USER)) == b"334 UGFzc3dvcmQ6\r\n"
    assert c.cmd(base64.b64encode(PASSWORD)).startswith(b"235 ")
    quit(c)
    (session,) = server.wait_closed()
    assert all(PASSWORD not in cmd.line for cmd in session.commands)


def test_implicit_tls(make, tmp_path):
    certificates = Certificates(tmp_path / "certs")
    server = make(tls_context=certificates.server_context())
    context = ssl.create_default_context(cafile=str(certificates.ca_file))
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    c = Client(server.port, sock=context.wrap_socket(raw, server_hostname="mail.fibocom.com"))
    assert c.reply().startswith(b"220 ")
    c.cmd(b"EHLO [127.0.0.1]")
    c.cmd(b"AUTH PLAIN " + PLAIN)
    c.cmd(b"MAIL FROM:<a@b.c> BODY=BINARYMIME")
    c.cmd(b"RCPT TO:<x@y.z>")
    assert c.chunk(b"BDAT 3 LAST", b"\r\n.").startswith(b"250 ")
    quit(c)
    assert [t.data for t in server.wait_closed()[0].delivered()] == [b"\r\n."]


def test_waited_is_false_for_a_pipelined_envelope(make):
    server = make(reply_delay={"MAIL": 0.2})
    c = Client(server.port)
    c.reply()
    c.cmd(b"EHLO [127.0.0.1]")
    c.cmd(b"AUTH PLAIN " + PLAIN)
    c.send(b"MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\n")
    assert c.reply().startswith(b"250 ") and c.reply().startswith(b"250 ")
    quit(c)
    session = server.wait_closed()[0]
    assert [cmd.waited for cmd in session.commands] == [True, True, True, False, True]


# -- the state machine fed directly: any split gives the same record -----


def conversation(seed):
    rng = random.Random(seed)
    chunks = [os.urandom(rng.randrange(0, 3000)) for _ in range(rng.randrange(1, 6))]
    chunks[0] += b"\r\n.\r\nBDAT 5 LAST\r\n+++"
    wire = b"EHLO [127.0.0.1]\r\nAUTH PLAIN " + PLAIN + b"\r\nMAIL FROM:<a@b.c> BODY=BINARYMIME\r\nRCPT TO:<x@y.z>\r\n"
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        if chunk or last:
            wire += b"BDAT %d%s\r\n" % (len(chunk), b" LAST" if last else b"") + chunk
    wire += b"MAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nDATA\r\n"
    text = b".lead\r\n" + b"x" * rng.randrange(0, 200) + b"\r\n"
    wire += text.replace(b"\r\n.", b"\r\n..").replace(b".lead", b"..lead", 1) + b".\r\nQUIT\r\n"
    return wire, b"".join(chunks), text


def run(wire, splits):
    session = Session()
    engine = Engine(Options(), session)
    replies = [r for _, r in engine.greeting()]
    at = 0
    for cut in splits + [len(wire)]:
        replies += [r for _, r in engine.feed(wire[at:cut], 0.0, 0)]
        at = cut
    return session, replies


@pytest.mark.parametrize("seed", range(40))
def test_any_split_of_the_input_gives_the_same_record(seed):
    wire, message, text = conversation(seed)
    whole, whole_replies = run(wire, [])
    assert [t.data for t in whole.delivered()] == [message, text]
    rng = random.Random(seed)
    splits = sorted(rng.sample(range(1, len(wire)), min(len(wire) - 1, rng.choice([1, 5, 50, 500]))))
    split, split_replies = run(wire, splits)
    assert split_replies == whole_replies
    assert [(t.data, t.method, [(k.count, k.last) for k in t.chunks]) for t in split.transactions] == [
        (t.data, t.method, [(k.count, k.last) for k in t.chunks]) for t in whole.transactions
    ]
    assert [c.line for c in split.commands] == [c.line for c in whole.commands]


def test_every_byte_alone_gives_the_same_record():
    wire, message, text = conversation(1)
    session, replies = run(wire, list(range(1, len(wire))))
    assert [t.data for t in session.delivered()] == [message, text]
    assert replies[-1] == b"221 2.0.0 bye\r\n"


def test_parse_client_stream_splits_commands_from_octets():
    wire, message, text = conversation(3)
    parsed = parse_client_stream(wire)
    chunks = b"".join(octets for line, octets in parsed if line.upper().startswith(b"BDAT"))
    assert chunks == message
    (data,) = [octets for line, octets in parsed if line == b"DATA"]
    assert data.replace(b"\r\n..", b"\r\n.").replace(b"..lead", b".lead", 1) == text
    assert parsed[-1] == (b"QUIT", b"")
