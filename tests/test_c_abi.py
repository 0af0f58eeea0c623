"""The C ABI from C: the C test suite under valgrind, byte parity between
the C ABI and the Rust API, and the C firmware example delivering a mail
to a real server."""

import base64
import email
import email.policy
import os
import subprocess

import pytest

from c_suite import case_count
from conftest import ROOT
from g510 import Modem
from smtp_server import Handler, assert_spec_mail_arrived, configure_spec_case, start_server

VALGRIND = [
    "valgrind",
    "--quiet",
    "--error-exitcode=99",
    "--leak-check=full",
    "--show-leak-kinds=all",
    "--errors-for-leak-kinds=all",
]


def test_the_c_suite_passes_under_valgrind(c_programs):
    run = subprocess.run([*VALGRIND, str(c_programs / "test_atmail")], capture_output=True, timeout=600)
    out = run.stdout.decode()
    assert run.returncode == 0, out + run.stderr.decode()
    assert "FAIL" not in out and out.count("ok  ") == case_count()
    assert run.stderr == b"", "valgrind reported something"
    # The session size docs/firmware.md states comes from here.
    assert "atmail_session_size() = " in out


def test_the_c_suite_passes_under_address_and_undefined_sanitizers(c_programs):
    """The same suite built with gcc's -fsanitize=address,undefined."""
    run = subprocess.run([str(c_programs / "sanitize" / "test_atmail")], capture_output=True, timeout=600)
    out = run.stdout.decode()
    assert run.returncode == 0, out + run.stderr.decode()
    assert "FAIL" not in out and out.count("ok  ") == case_count()
    assert run.stderr == b"", run.stderr.decode()


def test_the_header_serves_cpp(c_programs):
    run = subprocess.run([str(c_programs / "cxx")], capture_output=True, check=True, text=True)
    assert run.stdout.startswith("atmail 0.") and "session of" in run.stdout


@pytest.mark.parametrize("mode", ["base64", "session"])
@pytest.mark.parametrize("in_chunk,out_chunk", [(1, 1), (3, 7), (513, 77), (4096, 65536), (1 << 20, 1 << 20)])
def test_the_c_abi_writes_what_the_rust_api_writes(c_programs, mode, in_chunk, out_chunk):
    data = os.urandom(150_000)
    data = data[:1000] + b"+++" + data[1000:]
    args = [mode, str(in_chunk), str(out_chunk)]
    c = subprocess.run([str(c_programs / "parity"), *args], input=data, capture_output=True, check=True)
    rust = subprocess.run(
        [str(ROOT / "target" / "debug" / "examples" / "parity"), *args], input=data, capture_output=True, check=True
    )
    assert c.stdout == rust.stdout
    # And what both wrote is right, so the comparison is of something.
    if mode == "base64":
        assert c.stdout.count(b"\r\n") == -(-len(c.stdout.replace(b"\r\n", b"")) // 76)
        assert base64.b64decode(c.stdout.replace(b"\r\n", b"")) == data
    else:
        host, wire = c.stdout.split(b"----\n", 1)
        assert host.endswith(b"+GTSMTPSEND: 1\r\n")
        message = wire[wire.index(b"DATA\r\n") + 6 : wire.index(b"\r\n.\r\n") + 2]
        msg = email.message_from_bytes(message, policy=email.policy.default)
        assert msg["subject"] == "parity 你好"
        attachment = [p for p in msg.walk() if not p.is_multipart()][1]
        assert attachment.get_payload(decode=True) == data


@pytest.mark.parametrize("checker", ["valgrind", "asan-ubsan"])
@pytest.mark.parametrize(
    "eol,lead",
    [(b"\r", b""), (b"\r\n", b""), ("late", b""), (b"\r", b"\n")],
    ids=["cr", "crlf", "crlf-lf-500ms-late", "cr-payload-starts-with-lf"],
)
def test_the_c_firmware_example_delivers_a_mail(c_programs, eol, lead, checker):
    """ffi/examples/firmware.c, run under valgrind, sends the spec's case
    with a binary attachment to aiosmtpd (AUTH required) byte-exact, for
    hosts that end lines with CR, CRLF, or CRLF with the LF late, and for
    a payload that begins with LF."""
    handler = Handler()
    controller = start_server(handler, mechanism="LOGIN")
    firmware = None
    try:
        program = c_programs / ("firmware" if checker == "valgrind" else "sanitize/firmware")
        firmware = Modem(
            None,
            wrapper=VALGRIND if checker == "valgrind" else (),
            command=[str(program), f"127.0.0.1:{controller.port}"],
            eol=eol,
        )
        configure_spec_case(firmware, network=False)
        firmware.at(b"at+gtsmtpsend=300", b"+GTSMTPSEND: 2\r\n", timeout=60)
        body = lead + "你好，这是正文。\r\n".encode("gb2312")
        firmware.at(b"AT+GTSMTPDATA=300", b"> ")
        firmware.data(body)
        assert firmware.wait_for(b"OK\r\n", timeout=60).endswith(b"+GTSMTPDATA: %d\r\n\r\nOK\r\n" % len(body))
        blob = bytearray(lead + os.urandom(200_000))
        blob[5000:5003] = b"+++"
        firmware.at(b'at+gtsmtplib=1,"eee.wma"', b"> ")
        firmware.data(bytes(blob), chunk=4096)
        assert firmware.wait_for(b"OK\r\n", timeout=120).endswith(b"+GTSMTPFILE: %d\r\n\r\nOK\r\n" % len(blob))
        firmware.at(b"at+gtsmtpend", b"+GTSMTPSEND: 1\r\n", timeout=60)
        assert firmware.close(timeout=60) == 0, firmware.err
        assert b"ERROR SUMMARY" not in firmware.err and firmware.err == b"", firmware.err
    finally:
        if firmware:
            firmware.kill()
        controller.stop()
    assert_spec_mail_arrived(handler, body, bytes(blob))
