"""`python -m atmail send`: one mail through a module on a serial port.

    python -m atmail send --port /dev/ttyUSB0 --baud 115200 \\
        --server smtp.example.com --server-port 25 --user me@example.com \\
        --password-env SMTP_PASSWORD --to you@example.com \\
        --subject "report" --body body.txt --attach data.bin

`--oauth-token-file FILE` (with `--oauth-mechanism xoauth2` or
`oauthbearer`) signs in with the OAuth 2.0 access token in FILE instead.

A progress bar follows the payload on stderr (a 20 MiB attachment at
115200 baud takes about half an hour); a failure is one line on stderr and
exit status 1."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List, Optional, Sequence, Tuple

from ._errors import AtmailError, MailError, ModemError
from .g510 import G510


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m atmail", description="atmail tools")
    commands = parser.add_subparsers(dest="command", required=True)
    send = commands.add_parser("send", help="send one mail through a G510 on a serial port")
    send.add_argument("--port", required=True, help="serial device, e.g. /dev/ttyUSB0")
    send.add_argument("--baud", type=int, default=115200)
    send.add_argument("--rtscts", action="store_true", help="RTS/CTS flow control, on the port and in the module (AT&K3)")
    send.add_argument("--server", required=True, help="SMTP server name (AT+GTSMTPLAND)")
    send.add_argument("--server-port", type=int, default=25)
    send.add_argument(
        "--mode",
        type=int,
        default=0,
        choices=[0, 1, 2, 3],
        help="AT+GTSMTPLAND mode: 0 STARTTLS when offered, credentials only under TLS; 1 SMTPS; "
        "2 STARTTLS required; 3 sign-in in the clear allowed",
    )
    send.add_argument("--user", required=True, help="login, also the sender address")
    password = send.add_mutually_exclusive_group(required=True)
    password.add_argument("--password", help="password (visible in the process list; prefer --password-env)")
    password.add_argument("--password-env", metavar="VAR", help="environment variable holding the password")
    password.add_argument("--oauth-token-file", metavar="FILE",
                          help="sign in with the OAuth 2.0 access token in FILE instead of a password")
    send.add_argument("--oauth-mechanism", default="xoauth2", choices=["xoauth2", "oauthbearer"],
                      help="SASL mechanism for --oauth-token-file")
    send.add_argument("--to", action="append", default=[], required=True)
    send.add_argument("--cc", action="append", default=[])
    send.add_argument("--bcc", action="append", default=[])
    send.add_argument("--subject")
    send.add_argument("--charset", default="utf-8", help="ascii, utf-8, gb2312 or big5")
    send.add_argument("--body", metavar="FILE", help="text body, bytes in --charset")
    send.add_argument("--attach", action="append", default=[], metavar="FILE[=NAME]")
    send.add_argument("--apn", default="", help="APN for AT+MIPCALL when the network is down")
    send.add_argument("--timeout", type=int, default=300, help="the mail's time limit, s (100-48000)")
    send.add_argument(
        "--bdat",
        choices=["off", "auto", "force"],
        help="AT+GTSMTPBDAT: off DATA with base64; auto BDAT with binary parts where the server offers "
        "CHUNKING and BINARYMIME; force BDAT wherever it offers CHUNKING (default: the module's)",
    )
    send.add_argument("--guard", type=float, default=1.0, help="the module's +++ guard time, s")
    send.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


class Bar:
    """A one-line progress bar on stderr, redrawn at most 10 times a second."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.start = time.monotonic()
        self.drawn = 0.0

    def __call__(self, sent: int, total: int) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self.drawn < 0.1 and sent < total):
            return
        self.drawn = now
        share = sent / total if total else 1.0
        rate = sent / max(now - self.start, 1e-6)
        left = (total - sent) / rate if rate else 0.0
        bar = "#" * int(share * 30)
        sys.stderr.write(f"\r[{bar:<30}] {share:6.1%} {sent}/{total} bytes, {rate / 1024:.1f} KiB/s, {left:.0f} s left")
        if sent >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _attachments(specs: Sequence[str]) -> List[Tuple[str, bytes]]:
    out = []
    for spec in specs:
        path, _, name = spec.partition("=")
        with open(path, "rb") as f:
            out.append((name or os.path.basename(path), f.read()))
    return out


def send(args: argparse.Namespace) -> int:
    import serial  # type: ignore[import-untyped]  # pyserial: `pip install atmail[serial]`

    token: Optional[bytes] = None
    if args.oauth_token_file is not None:
        with open(args.oauth_token_file, "rb") as f:
            token = f.read().strip()
        password: Optional[str] = ""
    elif args.password is not None:
        password = args.password
    else:
        password = os.environ.get(args.password_env)
    if password is None:
        raise AtmailError(f"${args.password_env} is not set")
    body: Optional[bytes] = None
    if args.body:
        with open(args.body, "rb") as f:
            body = f.read()
    attachments = _attachments(args.attach)
    with serial.Serial(args.port, baudrate=args.baud, timeout=0.05, rtscts=args.rtscts) as port:
        module = G510(port, guard=args.guard)
        module.send_mail(
            args.server, args.server_port, args.user, password,
            to=args.to, cc=args.cc, bcc=args.bcc, subject=args.subject, charset=args.charset,
            body=body, attachments=attachments, mode=args.mode, timeout=args.timeout,
            progress=Bar(not args.quiet), apn=args.apn,
            oauth_token=token, oauth_mechanism=args.oauth_mechanism,
            bdat=None if args.bdat is None else ["off", "auto", "force"].index(args.bdat),
        )
    print("sent", file=sys.stderr)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return send(args)
    except MailError as e:
        print(f"\natmail: mail failed (SMTP code {e.code}): {e}", file=sys.stderr)
    except ModemError as e:
        print(f"\natmail: the module refused {e.command}: {e.text}", file=sys.stderr)
    except (AtmailError, OSError, ValueError, TypeError) as e:
        print(f"\natmail: {e}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
