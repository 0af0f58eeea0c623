"""One `atmail modem` process sends 200 mails to a real Postfix, in the
clear and over STARTTLS, every other one refused at RCPT: its open
descriptors and threads after the 200th mail equal those after the 10th,
its resident memory stays flat, and Postfix saw every conversation end
with QUIT (its `disconnect` lines count `quit=1`; no `lost connection`).
In the clear, a connection the modem does not really close is never
seen to end by Postfix (over TLS the close_notify made Postfix close)."""

import os
import re
import time

import pytest

from g510 import Control, Modem
from postfix import REFUSED, Postfix
from smtp_server import Certificates, configure_spec_case

MAILS = 200
GUARD_MS = 50


@pytest.fixture(params=["plain", "starttls"])
def postfix(request, tmp_path):
    certificates = Certificates(tmp_path / "certs")
    server = Postfix(certificates, plain=request.param == "plain")
    server.certificates = certificates
    try:
        yield server
    finally:
        server.stop()


def resources(pid):
    """Open descriptors, threads and resident KiB of a process."""
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    tasks = len(os.listdir(f"/proc/{pid}/task"))
    with open(f"/proc/{pid}/status") as f:
        status = f.read()
    rss = int(re.search(r"VmRSS:\s+(\d+) kB", status)[1])
    return fds, tasks, rss


def disconnects(postfix):
    """Postfix's `disconnect` lines of the modem's conversations (its own
    readiness probe connects and says nothing: `commands=0/0`)."""
    lines = postfix.log_text().splitlines()
    return [line for line in lines if " disconnect from " in line and "commands=0/0" not in line]


def wait_for_disconnects(postfix, count, timeout=20.0):
    """Postfix has seen `count` conversations end: the connection is gone
    on both sides."""
    deadline = time.monotonic() + timeout
    while len(disconnects(postfix)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} disconnects not logged: {postfix.log_text()[-2000:]}")
        time.sleep(0.02)


def sockets(pid):
    """The process's open socket descriptors."""
    fd_dir = f"/proc/{pid}/fd"
    links = []
    for fd in os.listdir(fd_dir):
        try:
            links.append(os.readlink(f"{fd_dir}/{fd}"))
        except FileNotFoundError:
            pass
    return [link for link in links if link.startswith("socket:")]


def wait_for_no_sockets(pid, timeout=5.0):
    """The modem has closed its side too: Postfix logs `disconnect` when
    it closes after the 221, a moment before the modem reads that EOF and
    drops its socket. A socket still open after the QUIT bound is a leak."""
    deadline = time.monotonic() + timeout
    while sockets(pid):
        if time.monotonic() > deadline:
            raise AssertionError(f"modem still holds {sockets(pid)} {timeout} s after the last disconnect")
        time.sleep(0.01)


def one_mail(modem, refused):
    recipient = REFUSED.encode() if refused else b"xiangj@fibocom.com"
    other = b"xiangj@fibocom.com" if refused else REFUSED.encode()
    modem.at(b'at+gtsmtpdst=0,1,"' + other + b'"', b"\r\n")
    modem.at(b'at+gtsmtpdst=1,1,"' + recipient + b'"')
    if refused:
        modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 550\r\n", timeout=30)
        return
    modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 2\r\n", timeout=30)
    modem.at(b"AT+GTSMTPDATA=300", b"> ")
    modem.write(b"soak body\r\n")
    time.sleep(GUARD_MS * 2.5 / 1000)
    modem.write(b"+++")
    modem.wait_for(b"OK\r\n")
    modem.at(b"at+gtsmtpend", b"+GTSMTPSEND: 1\r\n", timeout=30)


def test_200_mails_half_refused_leave_descriptors_threads_and_memory_flat(atmail, postfix):
    modem = Modem(
        atmail,
        "--connect",
        f"127.0.0.1:{postfix.smtp}",
        "--tls-ca",
        str(postfix.certificates.ca_file),
        "--guard-ms",
        str(GUARD_MS),
    )
    try:
        configure_spec_case(modem)
        seen = {}
        started = time.monotonic()
        for n in range(1, MAILS + 1):
            one_mail(modem, refused=n % 2 == 1)
            if n in (10, MAILS):
                wait_for_disconnects(postfix, n)
                wait_for_no_sockets(modem.proc.pid)
                seen[n] = resources(modem.proc.pid)
        elapsed = time.monotonic() - started
        (fds10, tasks10, rss10), (fds200, tasks200, rss200) = seen[10], seen[MAILS]
        print(f"soak: {MAILS} mails in {elapsed:.1f} s; after 10: {seen[10]}, after {MAILS}: {seen[MAILS]} (fds, threads, RSS KiB)")
        assert (fds200, tasks200) == (fds10, tasks10)
        # Allocator noise, not growth: a leak of one mail's buffers (64 KiB
        # for the serial output alone) times 190 would be far past this.
        assert rss200 - rss10 < 2048, (rss10, rss200)
        assert modem.close() == 0
        ended = disconnects(postfix)
        assert len(ended) == MAILS
        assert all(" quit=1 " in line for line in ended), [line for line in ended if " quit=1 " not in line][:3]
        log = postfix.log_text()
        assert "lost connection after" not in log.replace("lost connection after CONNECT", "")
        assert len(postfix.messages(count=MAILS // 2, timeout=30)) == MAILS // 2
    finally:
        modem.kill()


def test_200_mails_over_a_shaped_link_with_faults_and_network_loss_stay_flat(atmail, tmp_path):
    """One modem, 200 mails into its Maildir server over a shaped link
    (`--link-rate`, `--link-delay`) with a fault at the end of data
    (`--fault end=552`): every mail runs the whole conversation and is
    refused at its end (the server's file made and removed), every tenth
    streams a body in data mode, and every twenty-fifth loses its data
    call mid-mail through the control socket (URC 0) and re-attaches.
    Descriptors and threads after the 200th mail equal those after the
    10th; resident memory stays flat."""
    maildir, path = tmp_path / "mail", tmp_path / "control"
    modem = Modem(
        atmail, "--maildir", str(maildir), "--control", str(path), "--guard-ms", str(GUARD_MS),
        "--link-rate", "200000", "--link-delay", "2", "--fault", "end=552",
    )
    control = Control(path)
    try:
        configure_spec_case(modem)
        seen = {}
        started = time.monotonic()
        for n in range(1, MAILS + 1):
            modem.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 2\r\n", timeout=30)
            if n % 25 == 0:
                assert control("data-call lost") == "ok"
                modem.wait_for(b"+GTSMTPSEND: 0\r\n")
                modem.at(b'at+mipcall=1,"cmnet"', b"+MIPCALL: 127.0.0.1\r\n")
            else:
                if n % 10 == 0:
                    modem.at(b"AT+GTSMTPDATA=300", b"> ")
                    modem.write(b"soak body\r\n" * 100)
                    time.sleep(GUARD_MS * 2.5 / 1000)
                    modem.write(b"+++")
                    modem.wait_for(b"OK\r\n")
                modem.at(b"at+gtsmtpend", b"+GTSMTPSEND: 552\r\n", timeout=30)
            if n in (10, MAILS):
                seen[n] = resources(modem.proc.pid)
        elapsed = time.monotonic() - started
        (fds10, tasks10, rss10), (fds200, tasks200, rss200) = seen[10], seen[MAILS]
        print(f"shaped soak: {MAILS} mails in {elapsed:.1f} s; after 10: {seen[10]}, after {MAILS}: {seen[MAILS]} (fds, threads, RSS KiB)")
        assert (fds200, tasks200) == (fds10, tasks10)
        assert rss200 - rss10 < 2048, (rss10, rss200)
        assert list((maildir / "new").iterdir()) == [] and list((maildir / "tmp").iterdir()) == []
        assert modem.err.decode().count("the data call dropped (+MIPCALL: 0)") == MAILS // 25
    finally:
        control.close()
        modem.kill()
