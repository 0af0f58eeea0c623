#!/usr/bin/env python3
"""Peak memory of `atmail modem` for one mail with a 20 MiB body and a
20 MiB attachment, delivered over plain SMTP to aiosmtpd (or into a
Maildir with --maildir), measured by /usr/bin/time -v.

    .venv/bin/python benches/scripts/modem_rss.py target/release/atmail [--maildir]

Prints the modem's peak RSS and, for scale, that of `cat` over the same
40 MiB (a process that only moves the bytes)."""

import os
import re
import subprocess
import sys
import tempfile
import pathlib

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests"))
from g510 import Modem  # noqa: E402
from smtp_server import PASSWORD, USER, Handler, start_server  # noqa: E402

MIB = 1024 * 1024


class Sink(Handler):
    """Keeps only the size of what arrives, so the test harness stays small."""

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(len(envelope.original_content))
        return "250 OK queued"


def peak_kb(stderr: bytes) -> int:
    return int(re.search(rb"Maximum resident set size \(kbytes\): (\d+)", stderr).group(1))


def main():
    atmail, *rest = sys.argv[1:]
    body = (b"0123456789abcdefghijklmnopqrstuvwxyz" * 60 + b"\r\n") * (20 * MIB // 2162)
    blob = os.urandom(20 * MIB)
    controller = None
    with tempfile.TemporaryDirectory() as tmp:
        if "--maildir" in rest:
            target = ["--maildir", tmp]
        else:
            handler = Sink()
            controller = start_server(handler, data_size_limit=None)
            target = ["--connect", f"127.0.0.1:{controller.port}"]
        modem = Modem(atmail, *target, "--guard-ms", "200", wrapper=("/usr/bin/time", "-v"))
        modem.at(b"ATE0")
        modem.at(b'at+mipcall=1,"cmnet"', b"+MIPCALL: 127.0.0.1\r\n")
        modem.at(b'at+gtsmtpland=25,"mail.fibocom.com"')
        modem.at(b'at+gtsmtpid="' + USER + b'","' + PASSWORD + b'"')
        modem.at(b'at+gtsmtpdst=1,1,"xiangj@fibocom.com"')
        modem.at(b"at+gtsmtpsend=600", b"+GTSMTPSEND: 2\r\n")
        modem.at(b"AT+GTSMTPDATA=600", b"> ")
        modem.data(body, guard=0.2, chunk=65536)
        modem.wait_for(b"OK\r\n", timeout=300)
        modem.at(b'at+gtsmtpfile=1,"big.bin"', b"> ")
        modem.data(blob, guard=0.2, chunk=65536)
        modem.wait_for(b"OK\r\n", timeout=300)
        modem.at(b"at+gtsmtpend", b"+GTSMTPSEND: 1\r\n", timeout=300)
        modem.close(timeout=60)
        if controller:
            controller.stop()
            delivered = handler.messages[0]
        else:
            delivered = sum(p.stat().st_size for p in pathlib.Path(tmp, "new").iterdir())
        cat = subprocess.run(
            ["/usr/bin/time", "-v", "cat"], input=body + blob, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
    print(f"delivered {delivered} bytes")
    print(f"atmail modem peak RSS: {peak_kb(modem.err)} kB")
    print(f"cat (same 40 MiB) peak RSS: {peak_kb(cat.stderr)} kB")


if __name__ == "__main__":
    main()
