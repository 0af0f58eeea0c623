"""The link behind `atmail modem`, as a host developer tests against it:
a slow uplink (`--link-rate`, `--link-delay`) holds the host's writes
through the line's flow control, read from both sides (how far the host
got before it was held, what a counting proxy in front of a real aiosmtpd
saw); a link that drops (`--link-drop-after`) fails the mail with URC 0,
a reason and nothing delivered; and the in-process Maildir server's
faults (`--fault STEP=CODE`) give each step's code as the URC, with no
mail server at all."""

import array
import email
import email.policy
import fcntl
import os
import termios
import time

import pytest

from g510 import Modem
from postfix import CountingProxy
from smtp_server import Handler, configure_spec_case, start_server

GUARD_MS = 100
RATE = 50_000


def escape(modem):
    time.sleep(GUARD_MS * 2.5 / 1000)
    modem.write(b"+++")
    time.sleep(GUARD_MS * 2.5 / 1000)


def test_a_slow_uplink_holds_the_hosts_writes(atmail, modems):
    """200 KB through `--link-rate 50000 --link-delay 300`: the host writes
    as fast as its line takes, without blocking; it is held long before it
    has written the attachment (at every hold it is at most the line's
    buffers ahead of what reached the server), the mail takes at least the
    shaped time, and aiosmtpd receives it whole."""
    handler = Handler()
    server = start_server(handler, data_size_limit=None)
    proxy = CountingProxy(server.port)
    try:
        modem = Modem(
            atmail, "--connect", f"127.0.0.1:{proxy.port}", "--guard-ms", str(GUARD_MS),
            "--link-rate", str(RATE), "--link-delay", "300",
        )
        modems.append(modem)
        configure_spec_case(modem)
        modem.at(b"AT+GTSMTPSEND=300", b"+GTSMTPSEND: 2\r\n")
        attachment = os.urandom(200_000)
        modem.at(b'AT+GTSMTPFILE=1,"big.bin"', b"> ")
        started = time.monotonic()
        fd = modem.proc.stdin.fileno()
        os.set_blocking(fd, False)
        written, holds = 0, []
        while written < len(attachment):
            try:
                written += os.write(fd, attachment[written : written + 4096])
            except BlockingIOError:
                holds.append((written, proxy.sent))
                time.sleep(0.005)
        os.set_blocking(fd, True)
        # As a host waits for its UART to send what it holds before the
        # guard time: the modem's reader stamps bytes when it reads them.
        left = array.array("i", [1])
        while left[0]:
            fcntl.ioctl(fd, termios.FIONREAD, left)
            time.sleep(0.01)
        escape(modem)
        modem.wait_for(b"+GTSMTPFILE: 200000\r\n\r\nOK\r\n", timeout=60)
        modem.at(b"AT+GTSMTPEND", b"+GTSMTPSEND: 1\r\n", timeout=60)
        elapsed = time.monotonic() - started
    finally:
        proxy.close()
        server.stop()
    # What can be in flight between the host and the server: the pipe
    # (64 KiB), the modem's host queue (about 24 KiB) and its uplink
    # window (4 KiB), with room to spare; a base64 line of 76 characters
    # carries 57 bytes.
    in_flight = 128 * 1024
    print(f"{len(holds)} holds; first at {holds[0] if holds else None}; {elapsed:.1f} s")
    assert holds, "the host was never held"
    assert holds[0][0] < len(attachment) - 32 * 1024, holds[0]
    for host, wire in holds:
        assert host - wire * 57 // 78 <= in_flight, (host, wire)
    # A lower bound only: on a busy machine the mail takes longer, never
    # shorter, than the link allows.
    assert elapsed >= proxy.sent / RATE, (elapsed, proxy.sent)
    ((_, _, raw),) = handler.messages
    (part,) = [p for p in email.message_from_bytes(raw, policy=email.policy.default).walk() if p.get_filename()]
    assert part.get_payload(decode=True) == attachment


def test_a_link_that_drops_fails_the_mail_and_delivers_nothing(atmail, modems, tmp_path):
    maildir = tmp_path / "mail"
    modem = Modem(atmail, "--maildir", str(maildir), "--guard-ms", str(GUARD_MS), "--link-drop-after", "20000")
    modems.append(modem)
    configure_spec_case(modem)
    modem.at(b"AT+GTSMTPSEND=300", b"+GTSMTPSEND: 2\r\n")
    modem.at(b'AT+GTSMTPFILE=1,"big.bin"', b"> ")
    modem.write(os.urandom(64 * 1024))
    modem.wait_for(b"+GTSMTPSEND: 0\r\n", timeout=20)
    escape(modem)
    modem.wait_for(b"\r\nERROR\r\n")
    assert modem.close() == 0
    assert list((maildir / "new").iterdir()) == [] and list((maildir / "tmp").iterdir()) == []
    assert "atmail: mail failed: the link dropped after 20000 bytes (--link-drop-after)" in modem.err.decode()


# Each step of the conversation and the code its fault gives.
FAULTS = [
    ("greeting", 554),
    ("ehlo", 550),
    ("auth", 535),
    ("mail", 553),
    ("rcpt", 550),
    ("data", 554),
    ("end", 552),
    ("rcpt", 421),
    ("mail", 451),
]


@pytest.mark.parametrize("step,code", FAULTS, ids=[f"{s}={c}" for s, c in FAULTS])
def test_a_fault_at_each_step_is_the_urc(atmail, modems, tmp_path, step, code):
    """`--fault STEP=CODE` with no mail server: that step is answered with
    the code (EHLO and then HELO for `ehlo`), the URC is the code, the
    reason quotes the server's line, and nothing is delivered; a second
    mail on the same modem meets the same fault. (The Maildir server
    offers AUTH only with a fault at `auth`; configure_spec_case allows
    sign-in in the clear, mode 3.)"""
    maildir = tmp_path / "mail"
    modem = Modem(atmail, "--maildir", str(maildir), "--guard-ms", str(GUARD_MS), "--fault", f"{step}={code}")
    modems.append(modem)
    configure_spec_case(modem)
    for _ in range(2):
        if step == "end":
            modem.at(b"AT+GTSMTPSEND=300", b"+GTSMTPSEND: 2\r\n")
            modem.at(b"AT+GTSMTPDATA=300", b"> ")
            modem.write(b"a body\r\n")
            escape(modem)
            modem.wait_for(b"+GTSMTPDATA: 8\r\n\r\nOK\r\n")
            modem.at(b"AT+GTSMTPEND", b"+GTSMTPSEND: %d\r\n" % code)
        else:
            modem.at(b"AT+GTSMTPSEND=300", b"+GTSMTPSEND: %d\r\n" % code)
            assert b"+GTSMTPSEND: 2\r\n" not in modem.out
    assert modem.close() == 0
    assert list((maildir / "new").iterdir()) == []
    assert modem.out.count(b"+GTSMTPSEND: %d\r\n" % code) == 2
    failed = [line for line in modem.err.decode().splitlines() if line.startswith("atmail: mail failed: ")]
    assert len(failed) == 2, modem.err
    assert all(f"{code} {code // 100}.0.0 fault injected at {step} (--fault {step}={code})" in line for line in failed), failed


def test_bad_link_options_are_refused(atmail):
    import subprocess

    for args, said in [
        (["--fault", "rcpt=250", "--maildir", "/tmp/x"], "the code must be a refusal"),
        (["--fault", "quit=550", "--maildir", "/tmp/x"], "is not a step"),
        (["--fault", "rcpt=550"], "--maildir"),
        (["--link-rate", "0"], "--link-rate"),
        (["--rtscts"], "--device"),
        (["--device", "/nonexistent/tty"], "/nonexistent/tty"),
        (["--device", "/dev/null", "--baud", "12345"], "12345"),
    ]:
        run = subprocess.run([str(atmail), "modem", *args], input=b"", capture_output=True)
        assert run.returncode != 0 and run.stdout == b"", args
        assert said in run.stderr.decode(), (args, run.stderr)
