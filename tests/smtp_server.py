"""A real SMTP server for the end-to-end tests: aiosmtpd on loopback with
AUTH required, plain, STARTTLS or implicit TLS (certificates made here by
`trustme`), optional PIPELINING, and failure hooks that make any step answer
any code or drop the connection.

What the hooks change is only the answer a real aiosmtpd server gives at a
step; the SMTP parsing, AUTH and DATA handling stay aiosmtpd's own."""

import email
import email.policy
import socket
import ssl

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult

USER, PASSWORD = b"wangww@fibocom.com", b"ght64621178"
# The name the modem is configured with (AT+GTSMTPLAND) and the test
# certificate is made for; `--connect` sends the socket to loopback.
SERVER_NAME = "mail.fibocom.com"


class Handler:
    """Keeps what arrives; `fail[step]` is the reply a step gets instead of
    success (steps: GREETING, EHLO, HELO, AUTH, MAIL, RCPT, DATA for the
    command, END for the end of data); `drop` names a step at
    which the server closes the connection without a word, or an int: the
    number of bytes after which it does."""

    def __init__(self):
        self.messages = []
        self.fail = {}
        self.drop = None
        self.arrivals = []

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        if "EHLO" in self.fail:
            return [self.fail["EHLO"]]
        if server.pipelining:
            responses.insert(-1, "250-PIPELINING")
        session.host_name = hostname
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):
        if "HELO" in self.fail:
            return self.fail["HELO"]
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self._dropped(server, "MAIL"):
            return "250 OK"
        if "MAIL" in self.fail:
            return self.fail["MAIL"]
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self._dropped(server, "RCPT"):
            return "250 OK"
        if "RCPT" in self.fail:
            return self.fail["RCPT"]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self._dropped(server, "END"):
            return "250 OK"
        if "END" in self.fail:
            return self.fail["END"]
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 OK queued"

    def _dropped(self, server, step):
        if self.drop == step:
            server.transport.abort()
            return True
        return False


class HookedSMTP(SMTP):
    """aiosmtpd's server with the hooks it has no handler method for: the
    greeting, the DATA command, drops, and a record of how many replies the
    server had sent when each chunk of client bytes arrived (a pipelined
    flight arrives while the count stands still)."""

    def __init__(self, handler, pipelining=False, **kwargs):
        super().__init__(handler, **kwargs)
        self.pipelining = pipelining
        self.replies = 0
        self.received = 0

    async def push(self, status):
        self.replies += 1
        if self.replies == 1 and "GREETING" in self.event_handler.fail:
            status = self.event_handler.fail["GREETING"]
        await super().push(status)

    def data_received(self, data):
        self.event_handler.arrivals.append((self.replies, bytes(data)))
        self.received += len(data)
        drop = self.event_handler.drop
        if isinstance(drop, int) and self.received > drop:
            self.transport.abort()
            return
        super().data_received(data)

    async def smtp_DATA(self, arg):
        if self.event_handler._dropped(self, "DATA"):
            return
        if "DATA" in self.event_handler.fail and self.envelope.rcpt_tos:
            await self.push(self.event_handler.fail["DATA"])
            return
        await super().smtp_DATA(arg)


class HookedController(Controller):
    def __init__(self, handler, pipelining=False, **kwargs):
        self.pipelining = pipelining
        super().__init__(handler, **kwargs)

    def factory(self):
        return HookedSMTP(self.handler, pipelining=self.pipelining, **self.SMTP_kwargs)


def authenticate(server, session, envelope, mechanism, auth_data):
    refusal = server.event_handler.fail.get("AUTH")
    if refusal:
        return AuthResult(success=False, handled=False, message=refusal)
    ok = auth_data.login == USER and auth_data.password == PASSWORD
    # handled=False: aiosmtpd itself answers 535 on failure.
    return AuthResult(success=ok, handled=False)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Certificates:
    """A throwaway CA and a server certificate for SERVER_NAME."""

    def __init__(self, directory, name=SERVER_NAME):
        self.ca = trustme.CA()
        self.server = self.ca.issue_cert(name)
        directory.mkdir(parents=True, exist_ok=True)
        self.ca_file = directory / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))

    def server_context(self):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server.configure_cert(context)
        return context


def start_server(handler, mechanism="PLAIN", tls="plain", certificates=None, pipelining=False, **smtp_options):
    """Starts aiosmtpd on loopback with AUTH required. `tls` is "plain",
    "starttls" (STARTTLS required before anything else, AUTH only under
    TLS) or "implicit" (TLS from the first byte, port-465 style).
    `smtp_options` go to aiosmtpd's SMTP (`data_size_limit=None`, ...)."""
    kwargs = dict(smtp_options)
    if tls == "starttls":
        kwargs.update(tls_context=certificates.server_context(), require_starttls=True, auth_require_tls=True)
    elif tls == "implicit":
        # aiosmtpd only counts STARTTLS as TLS for AUTH, so the implicit
        # server must be told not to insist.
        kwargs.update(ssl_context=certificates.server_context(), auth_require_tls=False)
    else:
        kwargs.update(auth_require_tls=False)
    controller = HookedController(
        handler,
        pipelining=pipelining,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=authenticate,
        auth_required=True,
        auth_exclude_mechanism=[m for m in ("PLAIN", "LOGIN") if m != mechanism],
        **kwargs,
    )
    controller.start()
    return controller


def canonical(text: bytes) -> bytes:
    """Text with every line break CRLF, as the text part carries it."""
    return text.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def assert_spec_mail_arrived(handler, body, attachment):
    """The one mail `handler` received is the spec's case: sender, recipient,
    the GB2312 subject, the body (in canonical form) and `eee.wma` with
    exactly these bytes."""
    ((sender, rcpts, raw),) = handler.messages
    assert sender == USER.decode() and rcpts == ["xiangj@fibocom.com"]
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["subject"] == "你好 smtp"
    text, part = [p for p in msg.walk() if not p.is_multipart()]
    assert text.get_payload(decode=True) == canonical(body)
    assert part.get_filename() == "eee.wma"
    assert part.get_payload(decode=True) == attachment


# The loopback servers without TLS offer AUTH: sign-in in the clear is
# allowed on purpose there (mode 3). Tests of the default mode pass
# `land` without one.
PLAIN_LAND = b'25,"' + SERVER_NAME.encode() + b'",3'


def configure_spec_case(modem, password=PASSWORD, land=PLAIN_LAND, network=True):
    """Configures the spec's case on a modem (or the C firmware example,
    which has no `AT+MIPCALL`: `network=False`): echo off, server, login,
    one recipient and the GB2312 subject."""
    modem.at(b"ATE0")
    if network:
        modem.at(b'at+mipcall=1,"cmnet"', b"+MIPCALL: 127.0.0.1\r\n")
    modem.at(b"at+gtsmtpland=" + land)
    modem.at(b'at+gtsmtpid="' + USER + b'","' + password + b'"')
    modem.at(b'at+gtsmtpdst=1,1,"xiangj@fibocom.com"')
    modem.at(b'AT+GTSMTPEHEAD=2,"' + "你好 smtp".encode("gb2312") + b'"')
