"""A strict RFC 3030 (CHUNKING, BINARYMIME) and RFC 5321 server for the
BDAT tests: no Debian package serves BINARYMIME (Postfix and Exim offer
CHUNKING alone), so this one follows the RFCs to the letter and records
everything a test needs to judge a client.

What it does:
- EHLO offers the keywords it is given (`CHUNKING`, `BINARYMIME`,
  `PIPELINING`, `SIZE n`, `8BITMIME`, `ENHANCEDSTATUSCODES`, ...) in the
  letter case it is given (`case="lower"`, `"mixed"`), and `AUTH PLAIN
  LOGIN` when `auth` is set (then MAIL needs a sign-in, as aiosmtpd in
  tests/smtp_server.py is configured).
- `BDAT <n> [LAST]` reads exactly n octets, however they are split across
  reads, and answers each chunk after its last octet:
  `250 2.0.0 <n> octets received`. The octets are read even when the
  command is refused (no transaction, CHUNKING not offered, a failed
  transaction), so the connection stays in step, as RFC 3030 section 2
  requires of a server.
- `BODY=BINARYMIME` is taken only when BINARYMIME was offered, and then
  only with BDAT: DATA after it gets `503 5.5.1`. DATA after a BDAT chunk
  in one transaction gets 503; BDAT without CHUNKING offered gets 502;
  any BDAT after a refused chunk gets 503 until RSET. RSET clears the
  transaction.
- Faults: `refuse_chunk={k: "554 5.6.0 ..."}` answers the k-th chunk of a
  transaction (1-based, LAST included) with that reply and fails the
  transaction; `refuse={"MAIL": "..."}` refuses a command.
- `reply_delay={"BDAT": 0.2}` holds replies to a verb back (in order), so
  whether a client waited for each reply shows without a race.

What it records, per connection (`Session`): every command line with its
arrival time and whether every reply owed before it had been written when
it arrived (`Command.waited`); every reply, in order, with its time; each
BDAT's count and LAST flag; each transaction's MAIL FROM parameters,
recipients, how the message came (BDAT or DATA) and its exact bytes.

What it does not: relay, store, or check what a message holds; TLS only as
implicit TLS from the first byte (`tls_context`), no STARTTLS.

The protocol state machine (`Engine`) does no I/O and reads no clock: the
asyncio protocol around it feeds bytes with the time and the count of
replies written, so it can be tested by feeding it directly too."""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

USER, PASSWORD = b"wangww@fibocom.com", b"ght64621178"
NAME = "rfc3030.fibocom.test"
MAX_LINE = 512
"""RFC 5321 4.5.3.1.4: a command line, CRLF included (SIZE and BODY fit)."""
MAX_LINE_WITH_PARAMS = 1000
"""What this server takes before it calls a line too long (MAIL with its
parameters may pass 512, RFC 5321 4.5.3.1.4 allows extensions to raise it)."""

ALL = ("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING", "BINARYMIME", "SIZE 104857600")


def in_case(keyword: str, case: str) -> str:
    """`keyword` in the letter case a test asks for: "upper", "lower",
    "mixed" (alternating, `ChUnKiNg`), or "asis"."""
    if case == "upper":
        return keyword.upper()
    if case == "lower":
        return keyword.lower()
    if case == "mixed":
        return "".join(c.upper() if i % 2 == 0 else c.lower() for i, c in enumerate(keyword))
    return keyword


@dataclass
class Command:
    line: bytes
    """The line without its CRLF (an AUTH response is masked)."""
    at: float
    waited: bool
    """Every reply owed for what came before had been written when it
    arrived: the client waited (a pipelining client's command arrives
    before some of them)."""


@dataclass
class Chunk:
    count: int
    last: bool
    reply: bytes = b""


@dataclass
class Transaction:
    mail_from: bytes = b""
    params: Dict[str, str] = field(default_factory=dict)
    """MAIL FROM parameters, keywords in upper case (`BODY`, `SIZE`)."""
    rcpts: List[bytes] = field(default_factory=list)
    method: str = ""
    """"BDAT" or "DATA" once the message began."""
    chunks: List[Chunk] = field(default_factory=list)
    data: bytes = b""
    """The message exactly as it arrived (for DATA: dot-stuffing undone,
    the terminating `.` line excluded)."""
    failed: Optional[bytes] = None
    """The refusal that failed it (a chunk's, or the end's)."""
    delivered: bool = False
    ended_by: str = ""
    """"delivered", "refused", "RSET", "QUIT", "closed"."""


@dataclass
class Session:
    """One connection as the server saw it."""

    commands: List[Command] = field(default_factory=list)
    replies: List[Tuple[float, bytes]] = field(default_factory=list)
    """(time written, reply) in order; filled by the protocol."""
    transactions: List[Transaction] = field(default_factory=list)
    bdats: List[Chunk] = field(default_factory=list)
    """Every BDAT command of the connection, refused ones too."""
    bare_lf: int = 0
    quit: bool = False
    closed: bool = False

    def verbs(self) -> List[bytes]:
        return [c.line.split(b" ", 1)[0].upper() for c in self.commands]

    def delivered(self) -> List[Transaction]:
        return [t for t in self.transactions if t.delivered]

    def reply_codes(self) -> List[int]:
        return [int(r[:3]) for _, r in self.replies]


class Engine:
    """The server side of one connection, sans I/O: `feed(data, now,
    written)` takes what arrived (`written`: how many replies had been
    written to the client by then) and returns the replies it produced,
    each as (verb it answers, bytes)."""

    def __init__(self, server: "Options", session: Session):
        self.o = server
        self.s = session
        self.buf = bytearray()
        self.offered: Sequence[str] = ()
        self.greeted = False
        self.authed = False
        self.auth_step: Optional[str] = None
        self.tx: Optional[Transaction] = None
        self.bdat_left = 0
        """Octets of the current BDAT chunk still to read."""
        self.bdat: Optional[Tuple[Chunk, Optional[bytes], bool]] = None
        """The chunk being read, the refusal it will get (None: taken),
        and whether it belongs to a live transaction."""
        self.in_data = False
        self.data_buf = bytearray()
        self.produced = 0
        self.closing = False
        self.out: List[Tuple[str, bytes]] = []

    # -- replies --------------------------------------------------------

    def reply(self, verb: str, text: str) -> None:
        """Queues `text` (one line or several joined by \n); drops the
        enhanced status code when ENHANCEDSTATUSCODES is not offered."""
        lines = text.split("\n")
        if not self.offers("ENHANCEDSTATUSCODES"):
            lines = [re.sub(r"^(\d{3}[ -])\d\.\d{1,3}\.\d{1,3} ", r"\1", line) for line in lines]
        self.out.append((verb, "".join(line + "\r\n" for line in lines).encode()))
        self.produced += 1

    def offers(self, keyword: str) -> bool:
        return any(k.split(" ")[0].upper() == keyword for k in self.offered)

    def greeting(self) -> List[Tuple[str, bytes]]:
        self.reply("GREETING", self.o.refuse.get("GREETING", f"220 {NAME} ESMTP strict RFC 3030"))
        return self.take()

    def take(self) -> List[Tuple[str, bytes]]:
        out, self.out = self.out, []
        return out

    # -- input ----------------------------------------------------------

    def feed(self, data: bytes, now: float, written: int) -> List[Tuple[str, bytes]]:
        self.buf += data
        while self.buf and not self.closing:
            if self.bdat is not None:
                take = min(self.bdat_left, len(self.buf))
                if self.bdat[1] is None and self.tx is not None:
                    self.data_buf += self.buf[:take]
                del self.buf[:take]
                self.bdat_left -= take
                if self.bdat_left:
                    break
                self.end_chunk()
                continue
            if self.in_data:
                if not self.read_data():
                    break
                continue
            end = self.buf.find(b"\n")
            if end < 0:
                if len(self.buf) > MAX_LINE_WITH_PARAMS:
                    self.reply("?", "500 5.5.6 line too long")
                    self.buf.clear()
                break
            raw = bytes(self.buf[: end + 1])
            del self.buf[: end + 1]
            waited = written >= self.produced
            if not raw.endswith(b"\r\n"):
                # RFC 5321 2.3.8: a bare LF ends no line.
                self.s.bare_lf += 1
                self.s.commands.append(Command(raw[:-1], now, waited))
                self.reply("?", "500 5.5.2 line ends with a bare LF, not CRLF")
                continue
            line = raw[:-2]
            if self.auth_step is not None:
                self.s.commands.append(Command(b"<auth response>", now, waited))
                self.auth_response(line)
                continue
            self.s.commands.append(Command(line, now, waited))
            if len(raw) > MAX_LINE_WITH_PARAMS or (len(raw) > MAX_LINE and not line.upper().startswith(b"MAIL")):
                self.reply("?", "500 5.5.6 line too long")
                continue
            self.command(line)
            # The chunk's octets come straight after its line, in this
            # same buffer.
        return self.take()

    def closed(self) -> None:
        if self.tx is not None and not self.tx.ended_by:
            self.tx.ended_by = "closed"
        self.s.closed = True

    # -- commands -------------------------------------------------------

    def command(self, line: bytes) -> None:
        verb, _, arg = line.partition(b" ")
        verb_s = verb.upper().decode("ascii", "replace")
        if verb_s in self.o.refuse and verb_s not in ("GREETING", "BDAT", "END"):
            self.reply(verb_s, self.o.refuse[verb_s])
            return
        handler = getattr(self, "cmd_" + verb_s, None) if verb_s.isalpha() else None
        if handler is None:
            self.reply(verb_s, "500 5.5.2 command not recognized")
            return
        handler(arg)

    def cmd_EHLO(self, arg: bytes) -> None:
        if not arg.strip():
            self.reply("EHLO", "501 5.5.4 EHLO needs a domain or address literal")
            return
        self.offered = [in_case(k, self.o.case) for k in self.o.keywords]
        if self.o.auth:
            self.offered.append(in_case("AUTH", self.o.case) + " PLAIN LOGIN")
        self.greeted = True
        self.reset("EHLO")
        lines = [NAME] + list(self.offered)
        self.reply("EHLO", "\n".join(f"250{' ' if i == len(lines) - 1 else '-'}{l}" for i, l in enumerate(lines)))

    def cmd_HELO(self, arg: bytes) -> None:
        if not arg.strip():
            self.reply("HELO", "501 5.5.4 HELO needs a domain")
            return
        self.offered = []
        self.greeted = True
        self.reset("HELO")
        self.reply("HELO", f"250 {NAME}")

    def cmd_AUTH(self, arg: bytes) -> None:
        if not self.offers("AUTH"):
            self.reply("AUTH", "502 5.5.1 AUTH not offered")
            return
        if self.authed:
            self.reply("AUTH", "503 5.5.1 already signed in")
            return
        mech, _, initial = arg.partition(b" ")
        mech = mech.upper()
        if mech == b"PLAIN":
            if initial:
                self.check_plain(initial)
            else:
                self.auth_step = "plain"
                self.reply("AUTH", "334 ")
        elif mech == b"LOGIN":
            self.auth_step = "login-user"
            self.login_user = b""
            self.reply("AUTH", "334 VXNlcm5hbWU6")
        else:
            self.reply("AUTH", "504 5.5.4 mechanism not offered")

    def check_plain(self, b64: bytes) -> None:
        try:
            _, user, password = base64.b64decode(b64, validate=True).split(b"\0")
        except (ValueError, TypeError):
            self.reply("AUTH", "501 5.5.2 malformed PLAIN response")
            return
        self.sign_in(user, password)

    def sign_in(self, user: bytes, password: bytes) -> None:
        if (user, password) == (USER, PASSWORD):
            self.authed = True
            self.reply("AUTH", "235 2.7.0 signed in")
        else:
            self.reply("AUTH", "535 5.7.8 bad credentials")

    def auth_response(self, line: bytes) -> None:
        step, self.auth_step = self.auth_step, None
        if line == b"*":
            self.reply("AUTH", "501 5.0.0 AUTH cancelled")
        elif step == "plain":
            self.check_plain(line)
        elif step == "login-user":
            try:
                self.login_user = base64.b64decode(line, validate=True)
            except ValueError:
                self.reply("AUTH", "501 5.5.2 malformed response")
                return
            self.auth_step = "login-password"
            self.reply("AUTH", "334 UGFzc3dvcmQ6")
        else:
            try:
                password = base64.b64decode(line, validate=True)
            except ValueError:
                self.reply("AUTH", "501 5.5.2 malformed response")
                return
            self.sign_in(self.login_user, password)

    def cmd_MAIL(self, arg: bytes) -> None:
        if not self.greeted:
            self.reply("MAIL", "503 5.5.1 EHLO or HELO first")
            return
        if self.tx is not None:
            self.reply("MAIL", "503 5.5.1 nested MAIL")
            return
        if self.o.auth and not self.authed:
            self.reply("MAIL", "530 5.7.0 sign in first")
            return
        m = re.fullmatch(rb"(?i)FROM:<([^<> ]*)>((?: [^ =]+(?:=[^ ]*)?)*)", arg)
        if m is None:
            self.reply("MAIL", "501 5.5.4 syntax: MAIL FROM:<address> [parameters]")
            return
        params: Dict[str, str] = {}
        for p in m.group(2).split():
            key, _, value = p.decode("ascii", "replace").partition("=")
            params[key.upper()] = value
        for key, value in params.items():
            if key == "BODY":
                body = value.upper()
                wanted = {"7BIT": None, "8BITMIME": "8BITMIME", "BINARYMIME": "BINARYMIME"}
                if body not in wanted:
                    self.reply("MAIL", "501 5.5.4 BODY takes 7BIT, 8BITMIME or BINARYMIME")
                    return
                if wanted[body] and not self.offers(wanted[body]):
                    self.reply("MAIL", f"555 5.5.4 BODY={body} but {wanted[body]} was not offered")
                    return
            elif key == "SIZE" and self.offers("SIZE"):
                if not value.isdigit():
                    self.reply("MAIL", "501 5.5.4 SIZE takes a number")
                    return
                if self.size_limit() and int(value) > self.size_limit():
                    self.reply("MAIL", "552 5.3.4 message too large")
                    return
            else:
                self.reply("MAIL", f"555 5.5.4 parameter {key} not recognized")
                return
        self.tx = Transaction(mail_from=m.group(1), params=params)
        self.s.transactions.append(self.tx)
        self.reply("MAIL", "250 2.1.0 sender ok")

    def size_limit(self) -> int:
        for k in self.offered:
            parts = k.split()
            if parts[0].upper() == "SIZE" and len(parts) == 2 and parts[1].isdigit():
                return int(parts[1])
        return 0

    def cmd_RCPT(self, arg: bytes) -> None:
        if self.tx is None or self.tx.method:
            self.reply("RCPT", "503 5.5.1 MAIL first")
            return
        m = re.fullmatch(rb"(?i)TO:<([^<> ]+)>", arg)
        if m is None:
            self.reply("RCPT", "501 5.5.4 syntax: RCPT TO:<address>")
            return
        self.tx.rcpts.append(m.group(1))
        self.reply("RCPT", "250 2.1.5 recipient ok")

    def cmd_DATA(self, arg: bytes) -> None:
        if arg:
            self.reply("DATA", "501 5.5.4 DATA takes no parameter")
        elif self.tx is None or not self.tx.rcpts:
            self.reply("DATA", "503 5.5.1 MAIL and RCPT first")
        elif self.tx.params.get("BODY", "").upper() == "BINARYMIME":
            # RFC 3030 3: BINARYMIME cannot be sent with DATA.
            self.reply("DATA", "503 5.5.1 BODY=BINARYMIME needs BDAT, not DATA")
        elif self.tx.method == "BDAT":
            self.reply("DATA", "503 5.5.1 BDAT and DATA cannot be mixed in one transaction")
        else:
            self.tx.method = "DATA"
            self.in_data = True
            self.data_buf = bytearray(b"\r\n")
            self.data_seen = 0
            self.reply("DATA", "354 end data with <CRLF>.<CRLF>")

    def read_data(self) -> bool:
        """Moves DATA octets in; at `CRLF.CRLF` ends the message. Returns
        whether it ended (the rest of the buffer is commands again)."""
        self.data_buf += self.buf
        self.buf.clear()
        at = self.data_buf.find(b"\r\n.\r\n", max(0, self.data_seen - 4))
        if at < 0:
            self.data_seen = len(self.data_buf)
            return False
        self.buf[:0] = self.data_buf[at + 5 :]
        body = bytes(self.data_buf[2 : at + 2])
        self.in_data = False
        self.data_buf = bytearray()
        # Dot-stuffing undone: a line that starts with "." lost one.
        lines = body.split(b"\r\n")
        body = b"\r\n".join(l[1:] if l.startswith(b".") else l for l in lines)
        assert self.tx is not None
        self.tx.data = body
        self.finish("DATA", self.o.refuse.get("END"))
        return True

    def cmd_BDAT(self, arg: bytes) -> None:
        m = re.fullmatch(rb"(\d{1,10})(?: (?i:(LAST)))?", arg)
        if m is None:
            # No count: no octets to read either.
            self.reply("BDAT", "501 5.5.4 syntax: BDAT <chunk-size> [LAST]")
            return
        chunk = Chunk(int(m.group(1)), m.group(2) is not None)
        self.s.bdats.append(chunk)
        tx = self.tx
        refusal: Optional[str] = self.o.refuse.get("BDAT")
        if refusal is not None:
            pass
        elif not self.offers("CHUNKING"):
            refusal = "502 5.5.1 BDAT without CHUNKING offered"
        elif tx is None or not tx.rcpts:
            refusal = "503 5.5.1 MAIL and RCPT first"
        elif tx.method == "DATA":
            refusal = "503 5.5.1 BDAT and DATA cannot be mixed in one transaction"
        elif tx.failed is not None:
            refusal = "503 5.5.1 the transaction failed: RSET first"
        else:
            refusal = self.o.refuse_chunk.get(len(tx.chunks) + 1)
        live = (
            tx is not None and bool(tx.rcpts) and tx.method != "DATA" and tx.failed is None
            and self.offers("CHUNKING")
        )
        if live and not tx.method:
            tx.method = "BDAT"
            self.data_buf = bytearray()
        # The octets are read whatever the answer (RFC 3030 2), so the
        # next command is found where the client put it.
        self.bdat_left = chunk.count
        self.bdat = (chunk, refusal.encode() if refusal is not None else None, live)
        if refusal is not None:
            chunk.reply = refusal.encode()
        if self.bdat_left == 0:
            self.end_chunk()

    def end_chunk(self) -> None:
        assert self.bdat is not None
        chunk, refusal, live = self.bdat
        self.bdat = None
        tx = self.tx
        if refusal is not None:
            if live and tx is not None:
                # A refused chunk of a live transaction fails it
                # (RFC 3030 2: the client must RSET).
                tx.chunks.append(chunk)
                tx.failed = refusal
                tx.ended_by = "refused"
            self.reply("BDAT", refusal.decode())
            return
        assert tx is not None
        tx.chunks.append(chunk)
        limit = self.size_limit()
        if limit and len(self.data_buf) > limit:
            tx.failed = b"552 5.3.4 message too large"
            tx.ended_by = "refused"
            chunk.reply = tx.failed
            self.reply("BDAT", tx.failed.decode())
            return
        if not chunk.last:
            chunk.reply = f"250 2.0.0 {chunk.count} octets received".encode()
            self.reply("BDAT", chunk.reply.decode())
            return
        tx.data = bytes(self.data_buf)
        self.data_buf = bytearray()
        self.finish("BDAT", self.o.refuse.get("END"), chunk)

    def finish(self, verb: str, refusal: Optional[str], chunk: Optional[Chunk] = None) -> None:
        tx = self.tx
        assert tx is not None
        self.tx = None
        if refusal is not None:
            tx.failed = refusal.encode()
            tx.ended_by = "refused"
            text = refusal
        else:
            tx.delivered = True
            tx.ended_by = "delivered"
            count = f"{chunk.count} octets received, " if chunk else ""
            text = f"250 2.0.0 {count}message of {len(tx.data)} octets accepted"
        if chunk is not None:
            chunk.reply = text.encode()
        self.reply(verb, text)

    def reset(self, why: str) -> None:
        if self.tx is not None and not self.tx.ended_by:
            self.tx.ended_by = why
        self.tx = None
        self.data_buf = bytearray()

    def cmd_RSET(self, arg: bytes) -> None:
        self.reset("RSET")
        self.reply("RSET", "250 2.0.0 reset")

    def cmd_NOOP(self, arg: bytes) -> None:
        self.reply("NOOP", "250 2.0.0 ok")

    def cmd_QUIT(self, arg: bytes) -> None:
        self.reset("QUIT")
        self.s.quit = True
        self.closing = True
        self.reply("QUIT", "221 2.0.0 bye")


@dataclass
class Options:
    keywords: Sequence[str] = ALL
    case: str = "asis"
    auth: bool = True
    refuse: Dict[str, str] = field(default_factory=dict)
    """A verb (`MAIL`, `RCPT`, `DATA`, `BDAT`, `RSET`) or `END` (the end
    of the message: DATA's dot or BDAT LAST) or `GREETING`, and the reply
    it gets instead."""
    refuse_chunk: Dict[int, str] = field(default_factory=dict)
    reply_delay: Dict[str, float] = field(default_factory=dict)


class _Protocol(asyncio.Protocol):
    def __init__(self, server: "Rfc3030Server"):
        self.server = server
        self.session = Session()
        self.engine = Engine(server.options, self.session)
        self.written = 0
        self.queue: "asyncio.Queue[Optional[Tuple[str, bytes]]]" = asyncio.Queue()

    def connection_made(self, transport):
        self.transport = transport
        with self.server.lock:
            self.server.sessions.append(self.session)
        self.writer = asyncio.ensure_future(self._write())
        self._queue(self.engine.greeting())

    def _queue(self, replies):
        for reply in replies:
            self.queue.put_nowait(reply)
        if self.engine.closing:
            self.queue.put_nowait(None)

    async def _write(self):
        while True:
            item = await self.queue.get()
            if item is None:
                self.transport.close()
                return
            verb, data = item
            delay = self.server.options.reply_delay.get(verb, 0.0)
            if delay:
                await asyncio.sleep(delay)
            if self.transport.is_closing():
                return
            self.transport.write(data)
            self.written += 1
            self.session.replies.append((time.monotonic(), data))

    def data_received(self, data):
        if self.engine.closing:
            return
        self._queue(self.engine.feed(data, time.monotonic(), self.written))

    def connection_lost(self, exc):
        self.engine.closed()
        self.writer.cancel()
        with self.server.lock:
            self.server.lock.notify_all()


class Rfc3030Server:
    """The server on loopback in a thread of its own; `port`, `sessions`
    (one per connection, in order), `stop()`. `tls_context` makes it
    implicit TLS (port-465 style)."""

    def __init__(self, options: Optional[Options] = None, tls_context=None, **kwargs):
        self.options = options or Options(**kwargs)
        self.sessions: List[Session] = []
        self.lock = threading.Condition()
        self.loop = asyncio.new_event_loop()
        sock = socket.create_server(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.tcp = self.loop.run_until_complete(
            self.loop.create_server(lambda: _Protocol(self), sock=sock, ssl=tls_context)
        )
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def wait_closed(self, count: int = 1, timeout: float = 20.0) -> List[Session]:
        """The sessions once `count` of them have ended."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while sum(s.closed for s in self.sessions) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"{count} sessions did not end: {self.sessions}"
                self.lock.wait(left)
            return list(self.sessions)

    def delivered(self) -> List[Transaction]:
        with self.lock:
            return [t for s in self.sessions for t in s.delivered()]

    def stop(self) -> None:
        async def shutdown():
            self.tcp.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def parse_client_stream(stream: bytes) -> List[Tuple[bytes, bytes]]:
    """Splits what a client sent (read at a proxy) into (command line,
    the octets that followed it as a message: a BDAT chunk or DATA's
    message up to its dot line) pairs, as a server that took every
    command would. Used where the server is another's (Postfix, Exim)."""
    out: List[Tuple[bytes, bytes]] = []
    at = 0
    data_next = False
    while at < len(stream):
        end = stream.find(b"\r\n", at)
        if end < 0:
            out.append((stream[at:], b""))
            break
        line = stream[at:end]
        at = end + 2
        m = re.fullmatch(rb"(?i)BDAT (\d+)(?: LAST)?", line)
        if m:
            n = int(m.group(1))
            out.append((line, stream[at : at + n]))
            at += n
        elif line.upper() == b"DATA":
            stop = stream.find(b"\r\n.\r\n", at - 2)
            stop = len(stream) if stop < 0 else stop
            out.append((line, stream[at : stop + 2]))
            at = stop + 5
        else:
            out.append((line, b""))
    return out
