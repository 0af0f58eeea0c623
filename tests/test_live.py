"""The live G510 (firmware/live.py): the engine on QEMU's mps2-an386,
driven through the pty by pyserial as a host MCU drives the module, the
SMTP connection bridged to a real aiosmtpd. What arrives is read from the
server's side: the message aiosmtpd received, the commands it saw."""

import email
import email.policy
import pathlib
import re
import sys
import time

import pytest

from g510 import Modem
from postfix import CountingProxy
from smtp_server import Handler, assert_spec_mail_arrived, configure_spec_case, start_server
from test_postfix import blob

LIVE = pathlib.Path(__file__).resolve().parent.parent / "firmware" / "live.py"
FINAL = re.compile(rb"\r\n(OK|ERROR|\+CME ERROR: [^\r]*)\r\n")
GUARD = 1.0  # the G510's: +++ needs a second of silence either side
# QEMU's UART takes a byte at a time (about 12 KB/s here, a 115200-baud
# line's pace), and a pty cannot tell its writer when its bytes have left
# (tcdrain returns at once): the host waits out the few KiB the pty still
# holds before its guard time starts, as a host MCU waits for its UART's
# transmitter to empty.
DRAIN = 1.0


class Host:
    """A host MCU on the live chip's pty: counts the command lines it
    sends, so a test can check each got one final result code."""

    def __init__(self, modems, port, eol):
        self.modem = Modem(None, command=[sys.executable, str(LIVE), "--connect", f"127.0.0.1:{port}"], pty=True, eol=eol)
        modems.append(self.modem)
        self.lines = 0

    def at(self, line, expect=b"\r\nOK\r\n", timeout=30.0):
        self.lines += 1
        return self.modem.at(line, expect, timeout)

    def data(self, command, payload, expect, chunk=4096):
        """A data command: prompt, payload, `+++` with guard silence,
        then its count and OK."""
        self.at(command, b"> ")
        self.modem.data(payload, guard=GUARD + DRAIN, chunk=chunk)
        got = self.modem.wait_for(b"OK\r\n", timeout=120)
        assert got.endswith(expect + b"\r\n\r\nOK\r\n"), got

    def finals(self):
        return len(FINAL.findall(self.modem.out))

    def stop(self, mails=1):
        """Stops the chip once it has reported its figures after `mails`
        mails (the URC does not wait for the QUIT, the report comes after
        the connection closes); returns live.py's stderr."""
        deadline = time.monotonic() + 30
        while f" mails {mails}\n" not in self.modem.err.decode(errors="replace"):
            assert time.monotonic() < deadline, self.modem.err
            time.sleep(0.05)
        self.modem.proc.terminate()
        assert self.modem.proc.wait(timeout=20) == 0, self.modem.err
        for reader in self.modem.readers:
            reader.join(timeout=5)
        self.modem.port.close()
        return self.modem.err.decode(errors="replace")


def figures(err):
    """The chip's figures after its last mail, by name (`"stack"`: `"976"`,
    `"host-ring"`: `"512/512"`, ...)."""
    last = [line for line in err.splitlines() if line.startswith("live: figures: ")][-1]
    words = last.removeprefix("live: figures: ").split()
    return {k: v for k, v in zip(words[::2], words[1::2])}


def binary(size):
    """Random bytes with `+++` at 1,000 (test_postfix's blob) and `\r+++\n`
    in the middle."""
    data = bytearray(blob(size))
    data[size // 2 : size // 2 + 5] = b"\r+++\n"
    return bytes(data)


def send_spec_mail(host, attachment, urc=b"+GTSMTPSEND: 1"):
    configure_spec_case(host)
    host.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 2\r\n", timeout=60)
    body = "你好，这是正文。\r\n第二行\r\n".encode("gb2312")
    host.data(b"AT+GTSMTPDATA=300", body, b"+GTSMTPDATA: %d" % len(body))
    host.data(b'AT+GTSMTPFILE=1,"eee.wma"', attachment, b"+GTSMTPFILE: %d" % len(attachment))
    host.at(b"AT+GTSMTPEND", urc + b"\r\n", timeout=120)
    return body


@pytest.mark.parametrize("eol", [b"\r", b"\r\n"], ids=["cr", "crlf"])
def test_the_spec_case_through_the_live_chip(modems, eol):
    """AT+MIPCALL, the spec's configuration, a GB2312 subject, a body and
    a 64 KiB binary attachment holding `+++` (and CR/LF around one), sent
    with the G510's guard times: aiosmtpd receives it byte-exact, and
    every command line got exactly one final result code."""
    handler = Handler()
    server = start_server(handler, mechanism="LOGIN")
    try:
        host = Host(modems, server.port, eol)
        attachment = binary(64 * 1024)
        body = send_spec_mail(host, attachment)
        assert host.finals() == host.lines, host.modem.out
        err = host.stop()
    finally:
        server.stop()
    assert_spec_mail_arrived(handler, body, attachment)
    ((sender, rcpts, raw),) = handler.messages
    assert b"Date: " in raw and b"@live.atmail.invalid>" in raw
    # The conversation ended politely, as the server saw it.
    assert b"".join(chunk for _, chunk in handler.arrivals).endswith(b"QUIT\r\n")
    fig = figures(err)
    print(err)
    assert int(fig["session"]) <= 8192 and int(fig["loop"]) <= 1024, fig


def test_a_refused_recipient_then_a_second_mail_on_the_same_chip(modems):
    """The server refuses the recipient: URC 550, and the server saw no
    DATA before that conversation's QUIT; the next mail over the same
    chip is delivered whole."""
    handler = Handler()
    handler.fail["RCPT"] = "550 5.1.1 <xiangj@fibocom.com>: no such user here"
    server = start_server(handler, mechanism="LOGIN")
    try:
        host = Host(modems, server.port, b"\r")
        configure_spec_case(host)
        host.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 550\r\n", timeout=60)
        del handler.fail["RCPT"]
        host.at(b"AT+GTSMTPCLR")
        attachment = binary(4096)
        body = send_spec_mail(host, attachment)
        assert host.finals() == host.lines, host.modem.out
        err = host.stop(mails=2)
    finally:
        server.stop()
    assert_spec_mail_arrived(handler, body, attachment)
    arrived = b"".join(chunk for _, chunk in handler.arrivals)
    first, second = arrived.split(b"QUIT\r\n")[:2]
    assert b"RCPT TO:<xiangj@fibocom.com>" in first and b"DATA\r\n" not in first
    assert b"DATA\r\n" in second and arrived.endswith(b"QUIT\r\n") and arrived.count(b"QUIT\r\n") == 2
    assert figures(err)["mails"] == "2", err


def test_a_megabyte_streamed_as_fast_as_the_pty_takes_it(modems):
    """1 MiB of binary attachment written to the pty at once, while the
    network stalls for 3 s mid-mail: the chip's loop waits on the link,
    its host ring fills to its size and no further (the receive interrupt
    goes off, so the byte waits in the UART and the pty holds the host's
    write), and nothing is lost."""
    handler = Handler()
    server = start_server(handler, mechanism="LOGIN", data_size_limit=None)
    proxy = CountingProxy(server.port, stall_after=300_000, pause=3.0)
    try:
        host = Host(modems, proxy.port, b"\r\n")
        configure_spec_case(host)
        host.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 2\r\n", timeout=60)
        attachment = binary(1024 * 1024)
        started = time.monotonic()
        host.data(b'AT+GTSMTPFILE=1,"big.bin"', attachment, b"+GTSMTPFILE: %d" % len(attachment), chunk=len(attachment))
        print(f"1 MiB through the chip in {time.monotonic() - started:.1f} s")
        host.at(b"AT+GTSMTPEND", b"+GTSMTPSEND: 1\r\n", timeout=120)
        assert host.finals() == host.lines
        err = host.stop()
    finally:
        proxy.close()
        server.stop()
    assert proxy.stalled
    ((_, _, raw),) = handler.messages
    (part,) = [p for p in email.message_from_bytes(raw, policy=email.policy.default).walk() if p.get_filename()]
    assert part.get_filename() == "big.bin" and part.get_payload(decode=True) == attachment
    fig = figures(err)
    print(err)
    peak, size = map(int, fig["host-ring"].split("/"))
    assert peak == size, fig  # it filled: the host was held, not dropped
