#!/usr/bin/env python3
"""The firmware figures: flash of the whole engine (every function linked
into a Cortex-M4 program, `target/cortex-m4/flash.elf`), its largest
symbols, the session's size on the Cortex-M4, the stack each atmail
call used in the spec case under QEMU (`spec_case.elf`), and the live
G510's flash (`live.elf`, firmware/live.c) with libatmail's part of it
read from the linker's map. The live image's session and stack are the
chip's own figures, which firmware/live.py prints after each mail.

    make -C firmware && python3 firmware/report.py

tests/test_firmware.py uses the same functions.
"""

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILD = ROOT / "target" / "cortex-m4"
FLASH_SECTIONS = (".vectors", ".text", ".rodata", ".ARM.exidx", ".data")


# What a firmware build (no `std`) leaves out: the heap's _new/_free, the
# offline message composer and the transcoder.
HOST_ONLY = re.compile(r"_(new|free)$|^atmail_(message_|transcode$)")


def firmware_functions(header: str) -> list:
    """Every function of the header a firmware build has, sorted."""
    declared = set(re.findall(r"^[a-z].*\b(atmail_[a-z0-9_]+)\(", header, re.M))
    return sorted(name for name in declared if not HOST_ONLY.search(name))


def flash_bytes(elf: pathlib.Path) -> dict:
    """Bytes each section stores in flash (`.data` is its initial values)."""
    out = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True, check=True).stdout
    sizes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in FLASH_SECTIONS:
            sizes[parts[0]] = int(parts[1])
    return sizes


def largest_symbols(elf: pathlib.Path, count: int) -> list:
    """(bytes, demangled name) of the largest symbols, largest first."""
    out = subprocess.run(
        ["arm-none-eabi-nm", "-S", "--size-sort", "-C", str(elf)], capture_output=True, text=True, check=True
    ).stdout
    symbols = []
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) == 4:
            symbols.append((int(parts[1], 16), parts[3]))
    return sorted(symbols, reverse=True)[:count]


# An input section placed in the image, from a GNU ld map: its name (on
# its own line when long), address, size and the object it came from.
MAP_SECTION = re.compile(r"^ (\.[^\s]+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+) (\S.*)$", re.M)


def map_flash(map_text: str, archive: str = "libatmail.a(", without: str = "\0") -> tuple:
    """(bytes of flash from objects of `archive`, bytes of flash in all)
    of a linked image, from its map; objects whose name holds `without`
    are not counted as the archive's."""
    placed = map_text.split("Linker script and memory map", 1)[1]
    placed = re.sub(r"^ (\.\S+)\n\s+0x", r" \1 0x", placed, flags=re.M)
    ours = total = 0
    for name, _addr, size, source in MAP_SECTION.findall(placed):
        if not name.startswith(FLASH_SECTIONS):
            continue
        total += int(size, 16)
        if archive in source and without not in source:
            ours += int(size, 16)
    return ours, total


def run_qemu(elf: pathlib.Path) -> str:
    """The spec case on QEMU's mps2-an386; its semihosting output."""
    run = subprocess.run(
        [
            "qemu-system-arm", "-M", "mps2-an386", "-nographic",
            "-semihosting-config", "enable=on,target=native", "-kernel", str(elf),
        ],
        capture_output=True, text=True, timeout=300,
    )
    if run.returncode != 0:
        raise RuntimeError(f"QEMU exited with {run.returncode}: {run.stderr}")
    return run.stdout


def stack_sites(output: str) -> list:
    """(bytes, call) for every measured call site, deepest first."""
    sites = [(int(m[1]), m[2]) for m in re.finditer(r"^stack_site (\d+) (.*)$", output, re.M)]
    return sorted(sites, reverse=True)


def session_size(output: str) -> int:
    return int(re.search(r"^sizes \d+ \d+ (\d+)", output, re.M)[1])


def main() -> int:
    if sys.argv[1:] == ["functions"]:
        # For the Makefile: the functions flash.elf references.
        print("\n".join(firmware_functions((ROOT / "include" / "atmail.h").read_text())))
        return 0
    sections = flash_bytes(BUILD / "flash.elf")
    print(f"flash: {sum(sections.values())} bytes of 65536 (" + ", ".join(f"{k} {v}" for k, v in sections.items()) + ")")
    for size, name in largest_symbols(BUILD / "flash.elf", 15):
        print(f"  {size:6d}  {name}")
    output = run_qemu(BUILD / "spec_case.elf")
    print(f"atmail_session_size() on Cortex-M4: {session_size(output)} bytes")
    sites = stack_sites(output)
    print(f"worst stack: {sites[0][0]} bytes, in {sites[0][1]}")
    for used, call in sites[:8]:
        print(f"  {used:6d}  {call}")
    live = sum(flash_bytes(BUILD / "live.elf").values())
    ours, _ = map_flash((BUILD / "live.map").read_text())
    print(f"live G510 (live.elf): flash {live} bytes, of which libatmail {ours} of 65536")
    return 0


if __name__ == "__main__":
    sys.exit(main())
