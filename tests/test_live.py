"""The live G510 (firmware/live.py): the engine on QEMU's mps2-an386,
driven through the pty by pyserial as a host MCU drives the module, the
SMTP connection bridged to a real aiosmtpd. What arrives is read from the
server's side: the message aiosmtpd received, the commands it saw."""

import email
import email.policy
import importlib.util
import pathlib
import re
import socket
import struct
import sys
import threading
import time

import pytest

from closing_server import ClosingServer
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


def live_module():
    """firmware/live.py as a module: its build, QEMU start and bridge."""
    spec = importlib.util.spec_from_file_location("live", LIVE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


WINDOW = 4096  # live.c's: bytes a connection may have sent that the bridge has not acknowledged ('W')


def metered_bridge(live):
    """live.py's bridge, but the chip's window opens ('W') only when the
    test grants it: a network whose send buffer has stopped draining. It
    keeps the most the chip ever had unacknowledged, which a chip that
    keeps to its window holds at WINDOW or less."""

    class MeteredBridge(live.Bridge):
        def __init__(self, *args):
            self.cond = threading.Condition()
            self.metering, self.conn = False, None
            self.unacked = self.most = self.sent = 0
            super().__init__(*args)

        def frame(self, kind, conn, payload):
            if kind == b"O":
                with self.cond:
                    self.conn, self.unacked = conn, 0
            if kind != b"D" or conn != self.conn:
                return super().frame(kind, conn, payload)
            with self.lock:
                sock = self.sockets.get(conn)
            if sock is not None:
                sock.sendall(payload)
            with self.cond:
                self.unacked += len(payload)
                self.sent += len(payload)
                self.most = max(self.most, self.unacked)
                self.cond.notify_all()
                if self.metering:
                    return
            self.grant(len(payload))

        def grant(self, n):
            with self.cond:
                self.unacked -= n
            self.send(b"W", self.conn, struct.pack(">H", n))

        def quiet(self, seconds=0.5):
            """Waits until the chip has sent nothing for `seconds`."""
            with self.cond:
                while True:
                    sent = self.sent
                    self.cond.wait(seconds)
                    if self.sent == sent:
                        return

        def settle(self, step=64):
            """Grants `step` bytes at a time while the chip uses each grant
            whole; once one is not used up the chip has nothing more to
            send and its window is below `step`."""
            self.quiet()
            while True:
                before = self.sent
                self.grant(step)
                self.quiet()
                if self.sent - before < step:
                    return

    return MeteredBridge


def test_a_data_command_and_its_payload_in_one_write_keep_to_the_window(modems):
    """The chip's window is nearly shut (the network took the envelope and
    the header block and then nothing) when the host ring holds
    `AT+GTSMTPDATA` and its payload in one span (a host that does not wait
    for the prompt, met by a chip that was busy): the engine takes the
    command and encodes payload in the same call, and the chip gives it no
    more room than the window. Before, that call had the whole 1 KiB
    frame, `m.window -= len` wrapped, and the chip sent on past the window.
    Then the network drains and the mail arrives whole."""
    live = live_module()
    live.build()
    server = ClosingServer("END", b"250 2.0.0 queued")
    listener = socket.create_server(("127.0.0.1", 0))
    qemu, pty = live.start_qemu(listener.getsockname()[1])
    chip = None
    try:
        listener.settimeout(30)
        chip, _ = listener.accept()
        listener.close()
        bridge = metered_bridge(live)(chip, ("127.0.0.1", server.port), 300)
        threading.Thread(target=bridge.serve, daemon=True).start()
        # QEMU runs here; the host's Modem needs a process that names the
        # pty, as live.py would.
        namer = f"print({pty!r}, flush=True); import time; time.sleep(600)"
        modem = Modem(None, command=[sys.executable, "-c", namer], pty=True)
        modems.append(modem)
        # Twenty long recipients and a long subject: envelope and header
        # block together pass the window.
        modem.at(b"ATE0")
        modem.at(b'AT+MIPCALL=1,"cmnet"', b"+MIPCALL: ")
        modem.at(b'AT+GTSMTPLAND=25,"mail.fibocom.com"')
        modem.at(b'AT+GTSMTPID="wangww@fibocom.com","pw"')
        for i in range(20):
            modem.at(b'AT+GTSMTPDST=1,1,"%s@fibocom.com"' % (b"r%02d-" % i + b"x" * 60))
        modem.at(b'AT+GTSMTPHEAD=1,"' + b"s" * 200 + b'"')
        bridge.metering = True
        modem.at(b"AT+GTSMTPSEND=300", b"OK\r\n", timeout=30)
        bridge.settle()
        modem.wait_for(b"+GTSMTPSEND: 2\r\n", timeout=30)
        assert WINDOW - bridge.unacked < 1024 and bridge.most <= WINDOW  # less than a frame left
        # The chip busy with the twelve queries' long answers (the host
        # reads nothing for 2 s, so its UART writes wait) while the data
        # command and its payload fill the host ring behind them: one span.
        payload = bytes(range(33, 127)) * 4
        modem.stop_reading()
        modem.write(b"AT+GTSMTPDST?\r" * 12 + b"AT+GTSMTPDATA=300\r" + payload)
        time.sleep(2)
        modem.resume_reading()
        bridge.quiet()
        assert bridge.most <= WINDOW, f"{bridge.most} bytes unacknowledged, window {WINDOW}"
        bridge.metering = False
        bridge.grant(bridge.unacked)
        bridge.quiet()
        time.sleep(1.5)  # the guard (300 ms) and the pty's last bytes
        modem.write(b"+++")
        modem.wait_for(b"+GTSMTPDATA: %d\r\n\r\nOK\r\n" % len(payload), timeout=30)
        modem.at(b"AT+GTSMTPEND", b"+GTSMTPSEND: 1\r\n", timeout=30)
        (seen,) = server.wait_ended()
    finally:
        qemu.terminate()
        qemu.wait(timeout=20)
        qemu.stdout.close()
        listener.close()
        if chip is not None:
            chip.close()
        server.stop()
    message = email.message_from_bytes(seen.message, policy=email.policy.default)
    (text,) = [p for p in message.walk() if not p.is_multipart()]
    assert text.get_payload(decode=True) == payload
    assert bridge.most <= WINDOW
