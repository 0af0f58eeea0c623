#!/usr/bin/env python3
"""The spec's own case (G510 SMTP design note, section 3), played by a host
against `atmail modem`, with the pauses a real host makes around `+++`.

    python3 examples/spec_case.py target/release/atmail --maildir /tmp/atmail-mail

Any `atmail modem` options after the binary are passed on (`--connect
HOST:PORT` sends the mail to a real server instead).
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))
from g510 import Modem  # noqa: E402


def main():
    atmail, *options = sys.argv[1:]
    modem = Modem(atmail, *options)
    steps = [
        (b"ATE0", b"OK\r\n"),
        (b'at+mipcall=1,"cmnet"', b"+MIPCALL: 127.0.0.1\r\n"),
        (b'at+gtsmtpland=25,"mail.fibocom.com"', b"OK\r\n"),
        (b'at+gtsmtpid="wangww@fibocom.com","ght64621178"', b"OK\r\n"),
        (b'at+gtsmtpdst=1,1,"xiangj@fibocom.com"', b"OK\r\n"),
        (b'AT+GTSMTPEHEAD=2,"' + "你好 smtp".encode("gb2312") + b'"', b"OK\r\n"),
        (b"at+gtsmtpsend=300", b"+GTSMTPSEND: 2\r\n"),
    ]
    for line, expect in steps:
        modem.at(line, expect)
    modem.at(b"AT+GTSMTPPDATA=300", b"> ")
    modem.data("Hello from the G510.\r\n".encode("gb2312"))
    modem.wait_for(b"OK\r\n")
    modem.at(b'at+gtsmtplib=1,"eee.wma"', b"> ")
    modem.data(bytes(range(256)) * 64 + b"+++ inside the data +++")
    modem.wait_for(b"OK\r\n")
    modem.at(b"at+gtsmtpend", b"+GTSMTPSEND: 1\r\n")
    modem.at(b"At+gtsmtpclr")
    modem.close()
    sys.stdout.write(modem.out.decode("utf-8", "replace"))
    sys.stderr.write(modem.err.decode("utf-8", "replace"))


if __name__ == "__main__":
    main()
