#!/usr/bin/env python3
"""Which lines of atmail's source still link `core::fmt` into the firmware.

What it does: builds the firmware library once more with line tables
(its own target dir, `target/fmt-sites`), links the same program as
`flash.elf`, finds every call to the panics whose message formats an
integer (`panic_bounds_check`, `slice_index_fail`, `len_mismatch_fail`,
and the generic index and `copy_from_slice` functions the compiler kept
out of line) and prints the innermost atmail line of each, counted.

What it does not: judge a site. Each one is an index, a range or a
`copy_from_slice` whose failure message carries the numbers; the panic
handler (ffi/src/panic.rs) never formats it, but the message's
`<usize as Display>::fmt` is linked with it, and with that
`pad_integral` and `do_count_chars` (about 2.3 KB). When no site is
left, those symbols drop out of `report.py`'s list.

    make -s -C firmware && python3 firmware/fmt_sites.py
"""

import collections
import os
import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parent.parent
TARGET = "thumbv7em-none-eabihf"
OUT = ROOT / "target" / "fmt-sites"
ARCH = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
# Panics that carry integers, and the generic helpers that call them
# when the compiler did not inline them.
FMT_PANICS = re.compile(
    r"panic_bounds_check|slice_index_fail|len_mismatch_fail|"
    r"SliceIndex.*index(_mut)?17h|Index\$LT\$I\$GT\$.*index17h|copy_from_slice_impl17h"
)


def main() -> None:
    env = dict(os.environ, CARGO_TARGET_DIR=str(OUT), CARGO_PROFILE_FIRMWARE_DEBUG="line-tables-only")
    subprocess.run(
        ["cargo", "build", "--quiet", "-p", "atmail-ffi", "--target", TARGET, "--profile", "firmware",
         "--no-default-features"],
        cwd=ROOT, env=env, check=True)
    elf = OUT / "flash.elf"
    subprocess.run(
        ["arm-none-eabi-gcc", *ARCH, "-Os", "-nostartfiles", "-nostdlib", "-T", "mps2-an386.ld",
         "-Wl,--gc-sections", f"-I{ROOT / 'include'}", "-o", str(elf),
         str(ROOT / "target" / "cortex-m4" / "flash.c"), "startup.c",
         str(OUT / TARGET / "firmware" / "libatmail.a")],
        cwd=ROOT / "firmware", check=True, capture_output=True)
    dis = subprocess.run(["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True, text=True,
                         check=True).stdout
    calls = [line.split(":")[0].strip() for line in dis.splitlines()
             if re.search(r"\tb(l|\.w)?\t[0-9a-f]+ <", line) and FMT_PANICS.search(line)]
    if not calls:
        print("no call site links core::fmt")
        return
    lines = subprocess.run(["arm-none-eabi-addr2line", "-e", str(elf), "-i", "-a", *calls],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    sites, frames = collections.Counter(), None
    for line in lines + ["0x"]:
        if line.startswith("0x"):
            if frames is not None:
                # A line the line table lost (`file:?`) is named with the
                # first caller that has one.
                known = [f for f in frames if not f.endswith("?")]
                site = frames[0] if frames else "(inside core's own helpers)"
                if site.endswith("?") and known:
                    site += f" in {known[0]}"
                sites[site] += 1
            frames = []
        elif str(ROOT) in line:
            frames.append(line.replace(str(ROOT) + "/", "").split(" ")[0])
    for site, count in sorted(sites.items()):
        print(f"{count:3}  {site}")
    print(f"{sum(sites.values())} calls from {len(sites)} lines")


if __name__ == "__main__":
    main()
