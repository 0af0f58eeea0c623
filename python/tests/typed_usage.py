"""Uses every public name of `atmail` with its types, for `mypy --strict`
(test_typing.py); it is also run, so it must be correct at run time."""

from __future__ import annotations

import io
from typing import Callable, List, Optional, Tuple

import atmail


def encode_all(chunks: List[bytes]) -> bytes:
    encoder: atmail.MimeBase64Encoder = atmail.MimeBase64Encoder()
    out = b"".join(encoder.encode(c) for c in chunks)
    return out + encoder.finish()


def compose_one() -> Tuple[int, bytes]:
    out = io.BytesIO()
    n: int = atmail.compose(
        out,
        sender="a@example.com",
        to=["b@example.com"],
        cc=("c@example.com",),
        bcc=[],
        subject="你好",
        charset="gb2312",
        body=b"text",
        attachments=[("a.bin", b"\x00"), ("b.bin", io.BytesIO(b"\x01"))],
        date="Wed, 25 Nov 2026 10:00:00 +0000",
        message_id="<1@example.com>",
    )
    return n, out.getvalue()


def session_calls() -> Optional[int]:
    s = atmail.Session()
    s.set_verbose_errors(True)
    s.set_guard_ms(300)
    s.set_require_tls(False)
    s.set_helo_name("host.example.com")
    s.set_identity("Wed, 25 Nov 2026 10:00:00 +0000", "<1@example.com>")
    s.set_network_up(True)
    s.set_transfer(atmail.Transfer.OFF)
    s.set_transfer(2)
    progress: atmail.HostProgress = s.handle_host(0, b"AT\r")
    assert progress.read == 3 and progress.to_server == b""
    assert progress.stopped == atmail.Stopped.INPUT_EMPTY
    event: Optional[atmail.Event] = s.poll_event()
    assert event is None
    state: atmail.State = s.state()
    assert state == atmail.State.IDLE and not s.in_data_mode()
    assert s.poll_host() == b"AT\r\r\nOK\r\n"  # echo is on, as on a G510
    s.handle_host(0, b"AT&K3\r")
    command = s.poll_event()
    assert command is not None and command.kind == atmail.EventKind.COMMAND and command.line == b"AT&K3"
    s.answer_command(b"\r\nOK\r\n")
    request: Optional[atmail.Connect] = command.connect
    assert request is None and command.reason == ""
    assert s.poll_server(0) == b""
    s.handle_timeout(1)
    return s.next_deadline()


def errors() -> List[type]:
    kinds: List[type] = [
        atmail.AtmailError,
        atmail.StateError,
        atmail.PortClosedError,
        atmail.ModemTimeout,
    ]
    try:
        raise atmail.MailError(550, "refused")
    except atmail.MailError as e:
        code: int = e.code
        reason: str = e.reason
        assert code == 550 and reason == ""
    try:
        raise atmail.ModemError("AT", "no")
    except atmail.ModemError as e:
        text: str = e.text
        assert text == "no"
    return kinds


def charset() -> bytes:
    c: atmail.Charset = atmail.Charset.parse("big5")
    return c.encode("許功蓋")


def driver_type() -> type:
    last: Callable[[atmail.G510], Tuple[int, str]] = atmail.G510.last_failure
    assert last is not None
    return atmail.G510


def module_answers() -> bool:
    info: atmail.ModuleInfo = atmail.ModuleInfo(manufacturer="Fibocom", model="G510", revision="r", imei="352656100012346")
    signal: atmail.Signal = atmail.Signal(rssi=20, ber=0)
    home: atmail.Registration = atmail.Registration(stat=1, lac="2A4F", ci="0B12")
    dbm = signal.dbm
    return info.model == "G510" and dbm == -73 and home.registered and not home.roaming


if __name__ == "__main__":
    assert encode_all([b"ab", b"c"]) == atmail.mime_base64(b"abc") == b"YWJj\r\n"
    assert compose_one()[0] > 0
    assert session_calls() is None
    assert errors() and charset() == b"\xb3\x5c\xa5\x5c\xbb\x5c" and driver_type()
    assert module_answers()
    version: str = atmail.__version__
    print("ok", version)
