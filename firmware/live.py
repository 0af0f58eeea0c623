#!/usr/bin/env python3
"""A live G510: the engine on QEMU's mps2-an386 (firmware/live.c), with
the host's serial line on a pty and the module's TCP/IP stack and radio
played by a bridge here, which opens, writes, reads and closes real TCP
connections when the chip asks over its second UART.

    python3 firmware/live.py [--connect HOST:PORT] [--guard-ms N]

Builds the image when it is missing or older than its sources, prints
the host's pty path as the first line of stdout (as `atmail modem --pty`
does), then serves until stopped (SIGINT, SIGTERM, or QEMU ending).
`--connect` sends every connection there instead of the server of
AT+GTSMTPLAND. stderr has the chip's log lines (`live: mail failed: ...`)
and its figures after each mail (`live: figures: stack ...`).

The framing is live.c's: type, connection id, 16-bit big-endian length,
payload. Nothing here buffers without bound: a chip that stops reading
its UART stops this bridge's reads from the server (TCP's own flow
control), and a server that stops reading stops the chip, which sends
only what the window this bridge opens ('W', once the server's socket
took the bytes) allows."""

import argparse
import os
import pathlib
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
IMAGE = ROOT / "target" / "cortex-m4" / "live.elf"

def sources():
    """What the image is built from: the chip's C, the engine's Rust."""
    yield from (HERE / n for n in ("live.c", "startup.c", "mps2-an386.ld", "Makefile"))
    yield ROOT / "include" / "atmail.h"
    for crate in ("core", "ffi"):
        yield ROOT / crate / "Cargo.toml"
        yield from (ROOT / crate / "src").rglob("*.rs")
CHUNK = 1024  # the chip's frame and server buffer size
# A module's TCP stack holds a few KiB per connection, not the megabytes a
# host's loopback socket grows to: a server that stops reading stops the
# chip soon, as it would on the radio.
SEND_BUFFER = 16384


def build():
    """Builds live.elf (and the firmware library) when missing or stale."""
    stale = not IMAGE.exists() or any(src.stat().st_mtime > IMAGE.stat().st_mtime for src in sources())
    if stale:
        subprocess.run(["make", "-s", "-C", str(HERE), str(IMAGE)], check=True, stdout=sys.stderr)


def log(text):
    print(f"live: {text}", file=sys.stderr, flush=True)


class Bridge:
    """The module's network side: frames from the chip become TCP
    connections; their bytes become frames back."""

    def __init__(self, chip, connect_to, guard_ms):
        self.chip = chip
        self.connect_to = connect_to
        self.send_lock = threading.Lock()
        self.sockets = {}  # connection id -> socket
        self.lock = threading.Lock()
        self.hello(guard_ms)

    def send(self, kind, conn, payload=b""):
        with self.send_lock:
            self.chip.sendall(struct.pack(">cBH", kind, conn, len(payload)) + payload)

    def hello(self, guard_ms):
        """The network's time and the data call's address, as a module
        learns them from the network, and the `+++` guard time."""
        address = "127.0.0.1"
        if self.connect_to:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.connect((self.connect_to[0], self.connect_to[1]))
                    address = probe.getsockname()[0]
                except OSError:
                    pass
        self.send(b"H", 0, struct.pack(">Q4sI", int(time.time()), socket.inet_aton(address), guard_ms))

    def serve(self):
        """Reads the chip's frames until QEMU closes the link."""
        try:
            self._serve(self.chip.makefile("rb"))
        except OSError:
            pass  # QEMU ended: the link is gone

    def _serve(self, stream):
        while True:
            head = stream.read(4)
            if len(head) < 4:
                return
            kind, conn, length = struct.unpack(">cBH", head)
            payload = stream.read(length)
            if len(payload) < length:
                return
            self.frame(kind, conn, payload)

    def frame(self, kind, conn, payload):
        if kind == b"O":
            (port,) = struct.unpack(">H", payload[:2])
            host = payload[2:].decode("ascii", "replace")
            threading.Thread(target=self.open, args=(conn, host, port), daemon=True).start()
        elif kind == b"D":
            with self.lock:
                sock = self.sockets.get(conn)
            if sock is not None:
                try:
                    sock.sendall(payload)
                except OSError as e:
                    self.lost(conn, f"writing to the server: {e}")
                    return
                # The server's socket took them: the chip's window opens.
                self.send(b"W", conn, struct.pack(">H", len(payload)))
        elif kind == b"X":
            self.close(conn)
        elif kind == b"L":
            log(payload.decode("utf-8", "replace"))
        elif kind == b"M":
            log("figures: " + payload.decode("ascii", "replace"))

    def open(self, conn, host, port):
        target = self.connect_to or (host, port)
        try:
            sock = socket.socket(socket.AF_INET6 if ":" in target[0] else socket.AF_INET)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
            sock.settimeout(30)
            sock.connect(target)
        except OSError as e:
            self.send(b"X", conn, f"cannot connect to {target[0]}:{target[1]}: {e}".encode()[:60])
            return
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.lock:
            self.sockets[conn] = sock
        local = sock.getsockname()[0]
        self.send(b"C", conn, socket.inet_aton(local) if "." in local else b"")
        threading.Thread(target=self.pump, args=(conn, sock), daemon=True).start()

    def pump(self, conn, sock):
        """The server's bytes to the chip, as fast as the chip takes them."""
        try:
            while chunk := sock.recv(CHUNK):
                self.send(b"D", conn, chunk)
        except OSError:
            pass
        with self.lock:
            ours = self.sockets.pop(conn, None) is sock
        if ours:  # the server ended it, not the chip
            sock.close()
            self.send(b"X", conn, b"the server closed the connection")

    def lost(self, conn, why):
        self.close(conn)
        self.send(b"X", conn, why.encode()[:60])

    def close(self, conn):
        """The chip closed the connection: the server reads EOF now."""
        with self.lock:
            sock = self.sockets.pop(conn, None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


def relay(stream):
    """What QEMU says after its start, on stderr."""
    for line in stream:
        sys.stderr.buffer.write(b"qemu: " + line)
        sys.stderr.flush()


def die_with_parent():
    """In QEMU's process before it runs: it ends when the process that
    started it does, however that ends (a SIGKILL too), instead of
    serving a pty and a link no one reads (Linux's PR_SET_PDEATHSIG)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def start_qemu(link_port):
    """QEMU with UART0 on a new pty and UART1 connected to the bridge;
    returns the process and the pty's path."""
    qemu = subprocess.Popen(
        [
            "qemu-system-arm", "-M", "mps2-an386", "-display", "none", "-monitor", "none",
            "-serial", "pty", "-serial", f"tcp:127.0.0.1:{link_port},nodelay=on",
            "-semihosting-config", "enable=on,target=native", "-kernel", str(IMAGE),
        ],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )
    for line in qemu.stdout:
        found = re.search(rb"char device redirected to (\S+) \(label serial0\)", line)
        if found:
            threading.Thread(target=relay, args=(qemu.stdout,), daemon=True).start()
            return qemu, found[1].decode()
    raise RuntimeError(f"QEMU did not start (exit code {qemu.wait()})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connect", metavar="HOST:PORT", help="send every connection here")
    parser.add_argument("--guard-ms", type=int, default=1000, help="silence around +++ (default 1000)")
    args = parser.parse_args()
    connect_to = None
    if args.connect:
        host, _, port = args.connect.rpartition(":")
        connect_to = (host.strip("[]"), int(port))
    if shutil.which("qemu-system-arm") is None:
        sys.exit("live.py: qemu-system-arm is not installed (Debian: qemu-system-arm)")
    build()
    listener = socket.create_server(("127.0.0.1", 0))
    qemu, pty = start_qemu(listener.getsockname()[1])
    listener.settimeout(30)
    chip, _ = listener.accept()
    listener.close()
    chip.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    bridge = Bridge(chip, connect_to, args.guard_ms)
    print(pty, flush=True)

    def stop(*_):
        qemu.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=bridge.serve, daemon=True).start()
    code = qemu.wait()
    # 0 when stopped by a signal; QEMU's own code (86: a fault) otherwise.
    return 0 if code in (0, -signal.SIGTERM, -signal.SIGINT) else code


if __name__ == "__main__":
    sys.exit(main())
