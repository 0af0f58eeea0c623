"""The engine as firmware: the Cortex-M4 library (no std, the `firmware`
profile), what it needs from the firmware, its flash, and the spec case on
QEMU's mps2-an386 compared byte for byte with the same program on x86-64.
firmware/report.py prints the figures; docs/firmware.md quotes them."""

import importlib.util
import os
import re
import subprocess

import pytest

from c_suite import case_count
from conftest import ROOT
from rfc3030_server import parse_client_stream

spec = importlib.util.spec_from_file_location("report", ROOT / "firmware" / "report.py")
report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(report)

LIB = ROOT / "target" / "thumbv7em-none-eabihf" / "firmware" / "libatmail.a"
# The C memory functions, by their C and their ARM EABI names.
MEMORY_FUNCTIONS = {"memcpy", "memmove", "memset", "memcmp", "bcmp"} | {
    f"__aeabi_{f}{n}" for f in ("memcpy", "memmove", "memset", "memclr") for n in ("", "4", "8")
}


@pytest.fixture(scope="module")
def build():
    subprocess.run(["cargo", "build", "-q", "-p", "atmail-ffi", "--lib"], cwd=ROOT, check=True)
    subprocess.run(["make", "-s", "-C", "firmware"], cwd=ROOT, check=True, capture_output=True)
    return report.BUILD


@pytest.fixture(scope="module")
def runs(build):
    """The spec case's output on the Cortex-M4 and on this host."""
    arm = report.run_qemu(build / "spec_case.elf")
    host = subprocess.run([str(build / "spec_case_host")], capture_output=True, text=True, check=True, timeout=60)
    return arm, host.stdout


def streams(output: str) -> dict:
    """The bytes of each tagged stream (H host, S server, R replies, E other
    entry points, F failures), joined."""
    joined = {}
    for line in output.splitlines():
        if len(line) > 2 and line[0] in "HSREF" and line[1] == " ":
            joined[line[0]] = joined.get(line[0], b"") + bytes.fromhex(line[2:])
    return joined


def symbols(archive):
    """(member, name, defined) for each global symbol of each member, read
    with readelf (nm's LLVM plugin chokes on the members' embedded bitcode
    and reports no symbols)."""
    out = subprocess.run(
        ["arm-none-eabi-readelf", "-sW", str(archive)], capture_output=True, text=True, check=True
    ).stdout
    member = ""
    for line in out.splitlines():
        if line.startswith("File: "):
            member = line[line.find("(") + 1 : line.rfind(")")]
            continue
        parts = line.split()
        if len(parts) == 8 and parts[4] in ("GLOBAL", "WEAK"):
            yield member, parts[7], parts[6] != "UND"


def test_the_library_needs_only_the_memory_functions(build):
    """Undefined references of the engine's objects, after what the archive
    itself defines: at most the C memory functions. compiler-builtins brings
    weak versions of those, which a firmware's libc replaces; its own
    soft-float helpers refer to libgcc but are never linked (flash.elf
    links every function with -nostdlib and no libgcc)."""
    table = list(symbols(LIB))
    defined = {name for _, name, is_defined in table if is_defined}
    # Rust objects are `<crate>-<hash>.<crate>.<hash>-cgu.N.rcgu.o`; the C
    # objects of compiler-rt that compiler-builtins bundles are not.
    engine = [m for m, _, _ in table if m.endswith(".rcgu.o") and "compiler_builtins" not in m]
    assert any(m.startswith("atmail_core-") for m in engine) and "atmail_session_init" in defined
    undefined = {
        name
        for member, name, is_defined in table
        if not is_defined and member.endswith(".rcgu.o") and "compiler_builtins" not in member
    }
    assert undefined, "the engine calls memcpy and friends; no undefined symbol means readelf was misread"
    assert undefined - defined <= MEMORY_FUNCTIONS, sorted(undefined - defined)
    assert (build / "flash.elf").exists()


def test_the_whole_engine_fits_64_kib_of_flash(build):
    sections = report.flash_bytes(build / "flash.elf")
    total = sum(sections.values())
    assert 20_000 < total <= 64 * 1024, sections
    names = [name for _, name in report.largest_symbols(build / "flash.elf", 40)]
    assert not any("encoding_rs" in n or "memmem" in n for n in names), names


def test_no_panic_links_core_fmt(build):
    """No panic message formats a number, so none of `core::fmt` is in
    the image (2.3 KB of code the panic handler never runs);
    `python3 firmware/fmt_sites.py` names the line that brought it back."""
    names = [name for _, name in report.largest_symbols(build / "flash.elf", 10_000)]
    assert len(names) > 100, "nm's symbol list was misread"
    fmt = [n for n in names if "core::fmt" in n or "do_count_chars" in n or "panic_bounds_check" in n]
    assert not fmt, fmt


def test_the_live_image_keeps_libatmail_within_64_kib(build):
    """live.elf (firmware/live.c, linked with no C library): libatmail's
    part of its flash, read from the linker's map, is within the budget
    and no more than the whole engine's part of flash.elf; the map
    reading agrees with the ELF's own section sizes."""
    live, flash = (build / "live.map").read_text(), (build / "flash.map").read_text()
    ours, placed = report.map_flash(live)
    whole, _ = report.map_flash(flash)
    image = sum(report.flash_bytes(build / "live.elf").values())
    assert 30_000 < ours <= 64 * 1024 and whole <= 64 * 1024, (ours, whole)
    # The engine itself is no bigger in the live image. libatmail.a also
    # carries the compiler's runtime, which live.c's own memmove and 64-bit
    # divisions take from it: not the engine's, so not compared.
    engine = [report.map_flash(m, without="compiler_builtins")[0] for m in (live, flash)]
    assert engine[0] <= engine[1], engine
    # What the map places is the image, but for the linker's padding.
    assert 0 <= image - placed < 512, (image, placed)


def test_the_spec_case_runs_on_a_cortex_m4_as_on_this_host(runs):
    arm, host = runs
    on_arm, on_host = streams(arm), streams(host)
    assert set(on_arm) == {"H", "S", "R", "E", "F"}
    for tag in on_host:
        assert on_arm[tag] == on_host[tag], tag
    said = on_arm["H"]
    assert b"+GTSMTPSEND: 2\r\n" in said and b"+GTSMTPSEND: 1\r\n" in said
    assert b"+GTSMTPFILE: 16407\r\n" in said
    assert b"+GTSMTPSEND: 550\r\n" in said  # the third mail, refused at RCPT
    assert b"+CME ERROR: no Date or Message-ID for the mail\r\n\r\n+GTSMTPSEND: 0\r\n" in said
    # Every failed mail says why (the F stream is the failure events'
    # reasons, joined): the refusal at RCPT with the server's words, the
    # fifth's TLS, the token's refusal.
    assert on_arm["F"].startswith(b"the server refused the mail at MAIL, RCPT or DATA: 550 5.1.1 ")
    assert b"the TLS handshake failed" in on_arm["F"]
    sent = on_arm["S"]
    # Every conversation ends with QUIT (RFC 5321 4.1.1.10): the delivered
    # mails (the BDAT one too), the one refused at RCPT and the one whose
    # token was refused.
    assert sent.count(b"QUIT\r\n") == 5
    assert b"EHLO [10.0.0.7]\r\n" in sent and b"EHLO g510.example\r\n" in sent
    assert b'name="eee.wma"' in sent and sent.count(b"\r\n.\r\n") == 2
    # The OAuth mails, with the token in the firmware's storage: 2,600
    # bytes of XOAUTH2 after the 334, its error challenge answered with an
    # empty line, the 535; then OAUTHBEARER on the AUTH line, delivered.
    assert b"+GTSMTPTOKEN: 2600\r\n" in said and b"+GTSMTPSEND: 535\r\n" in said
    assert b"\r\nAUTH XOAUTH2\r\n" in sent and b"AQ==\r\n\r\nQUIT\r\n" in sent
    assert b"\r\nAUTH OAUTHBEARER bixhPXdhbmd3d0BmaWJvY29tLmNvbSwB" in sent
    assert on_arm["F"].count(b"the server refused the XOAUTH2 token: 535 5.7.8") == 1
    assert b"\r\n+GTSMTPTOKEN: 0\r\n\r\nOK\r\n" in said  # CLR wiped it


# The spec case's attachment (firmware/spec_case.c) and its BDAT mail's
# chunk storage.
ATTACHMENT = bytes(i % 256 for i in range(256 * 64)) + b"+++ inside the data +++"
CHUNK_STORAGE = 1024


def test_the_bdat_mail_goes_in_chunks_of_its_storage_on_both(runs):
    """The spec case's CHUNKING and BINARYMIME mail, on the Cortex-M4 and
    on this host: BODY=BINARYMIME on its MAIL (and on no other), no DATA
    in its transaction, every BDAT's count the octets that follow it,
    each chunk but the last filling the 1,024 bytes of storage, LAST
    once and on the last, and the message holding the body and the
    attachment's bytes as they are (Content-Transfer-Encoding: binary).
    The stack figure of the other test covers these calls."""
    for output in runs:
        sent = streams(output)["S"]
        commands = parse_client_stream(sent)
        mails = [i for i, (line, _) in enumerate(commands) if line.upper().startswith(b"MAIL FROM:")]
        binary = [i for i in mails if line_has(commands[i][0], b" BODY=BINARYMIME")]
        assert len(binary) == 1 and sent.count(b"BODY=BINARYMIME") == 1, [commands[i][0] for i in mails]
        at = binary[0]
        end = next(i for i in range(at, len(commands)) if commands[i][0] == b"QUIT")
        tx = commands[at:end]
        assert [line for line, _ in tx[:2]] == [b"MAIL FROM:<wangww@fibocom.com> BODY=BINARYMIME",
                                               b"RCPT TO:<xiangj@fibocom.com>"]
        bdats = [(re.fullmatch(rb"BDAT (\d+)( LAST)?", line), octets) for line, octets in tx[2:]]
        assert all(m for m, _ in bdats), [line for line, _ in tx[2:]]
        counts = [int(m[1]) for m, _ in bdats]
        assert [len(octets) for _, octets in bdats] == counts
        assert [m[2] is not None for m, _ in bdats] == [False] * (len(bdats) - 1) + [True]
        assert counts[:-1] == [CHUNK_STORAGE] * (len(counts) - 1) and 0 < counts[-1] <= CHUNK_STORAGE
        message = b"".join(octets for _, octets in bdats)
        assert len(bdats) == -(-len(message) // CHUNK_STORAGE) >= len(ATTACHMENT) // CHUNK_STORAGE
        head, _, rest = message.partition(b"\r\n\r\n")
        assert b"\r\nMIME-Version: 1.0\r\n" in head and b"multipart/mixed" in head
        boundary = re.search(rb'boundary="([^"]+)"', head)[1]
        parts = [part.partition(b"\r\n\r\n") for part in (b"\r\n" + rest).split(b"\r\n--" + boundary)[1:-1]]
        assert len(parts) == 2, [headers for headers, _, _ in parts]
        (body_headers, _, body), (headers, _, content) = parts
        assert b"Content-Type: text/plain" in body_headers and b"Hello from the G510." in body
        assert b'filename="g510.bin"' in headers and b"Content-Transfer-Encoding: binary" in headers
        assert content == ATTACHMENT
        assert message.count(ATTACHMENT) == 1
        assert b"+GTSMTPFILE: %d\r\n" % len(ATTACHMENT) in streams(output)["H"]


def line_has(line: bytes, param: bytes) -> bool:
    return param.upper() in line.upper()


def test_no_secret_is_left_in_the_session_memory_on_the_cortex_m4(runs):
    """The spec case scans the caller's session memory (and the token
    storage) for the password and the token: found while set (the scan
    can see them), gone after AT+GTSMTPCLR, and after
    atmail_session_deinit every byte of the session is zero."""
    for output in runs:
        scans = {
            when: (int(password), int(token), int(nonzero))
            for when, password, token, nonzero in re.findall(
                r"^scan (\S+) password (\d) token (\d) nonzero (\d+)$", output, re.M
            )
        }
        assert scans["set"][0] == 1 and scans["token"][1] == 1 and scans["again"][:2] == (1, 1)
        assert scans["clr"][:2] == (0, 0) and scans["clr-token"][:2] == (0, 0)
        assert scans["deinit"] == (0, 0, 0)


def test_the_session_fits_8_kib_on_a_cortex_m4(runs):
    assert report.session_size(runs[0]) <= 8 * 1024


def test_no_call_uses_more_than_1_kib_of_stack_on_the_cortex_m4(runs):
    """Every atmail call of the spec case, measured on the Cortex-M4 (the
    stack painted below the caller before the call and scanned after)."""
    sites = report.stack_sites(runs[0])
    called = {call.split("(")[0] for _, call in sites}
    declared = set(report.firmware_functions((ROOT / "include" / "atmail.h").read_text()))
    unmeasured = declared - called - {"atmail_version", "atmail_status_str", "atmail_session_state"}
    assert not unmeasured, sorted(unmeasured)
    worst, call = sites[0]
    assert 0 < worst <= 1024, call


def test_the_c_suite_passes_on_32_bit_arm_linux():
    """tests/c/test_atmail.c built for armv7-unknown-linux-gnueabihf (the
    portable base64 path, 32-bit sizes) and run under qemu-user."""
    target = "armv7-unknown-linux-gnueabihf"
    env = dict(os.environ, CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER="arm-linux-gnueabihf-gcc")
    subprocess.run(["cargo", "build", "-q", "-p", "atmail-ffi", "--lib", "--target", target], cwd=ROOT, env=env, check=True)
    program = ROOT / "target" / target / "test_atmail"
    subprocess.run(
        [
            "arm-linux-gnueabihf-gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g",
            f"-I{ROOT / 'include'}", "-o", str(program), str(ROOT / "tests" / "c" / "test_atmail.c"),
            str(ROOT / "target" / target / "debug" / "libatmail.a"), "-lpthread", "-ldl", "-lm", "-lrt", "-lutil",
        ],
        check=True,
    )
    run = subprocess.run(["qemu-arm", "-L", "/usr/arm-linux-gnueabihf", str(program)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "FAIL" not in run.stdout and run.stdout.count("ok  ") == case_count(), run.stdout
    size = int(re.search(r"atmail_session_size\(\) = (\d+)", run.stdout)[1])
    assert size <= 8 * 1024


@pytest.mark.parametrize("image", ["live.elf", "spec_case.elf", "flash.elf"])
def test_each_image_builds_into_a_folder_that_does_not_exist_yet(build, tmp_path, image):
    """A fresh clone has no target/cortex-m4: `python3 firmware/live.py`
    makes live.elf alone, and the rule must make its folder (the link
    writes a map file there)."""
    folder = tmp_path / "fresh" / "cortex-m4"
    run = subprocess.run(["make", "-s", "-C", "firmware", f"B={folder}", str(folder / image)],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (folder / image).stat().st_size > 0
