"""`tools/abi-check`, which holds the C ABI to its number with libabigail:
this tree against the recorded description of the released library
(ffi/abi/libatmail.abi), and the check itself, tried on scratch copies of
the tree changed on purpose: a struct the caller reads changed (fails
until ATMAIL_ABI_VERSION and the SONAME move), an exported function gone
(fails), a function and an enumerator added (passes)."""

import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT

# What a build of atmail-ffi needs: the workspace, every member's manifest
# and sources, the header and the tools.
COPIED = ["Cargo.toml", "Cargo.lock", "LICENSE-MIT", "LICENSE-APACHE", "core", "ffi", "cli", "benches", "include", "tools"]


@pytest.fixture(scope="module")
def target_dir(tmp_path_factory):
    """One target directory for every scratch copy: the crates.io
    dependencies build once."""
    return tmp_path_factory.mktemp("abi-target")


@pytest.fixture
def tree(tmp_path):
    copy = tmp_path / "tree"
    copy.mkdir()
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, copy / name, symlinks=True, ignore=shutil.ignore_patterns("target", "__pycache__"))
        else:
            shutil.copy2(source, copy / name)
    return copy


def abi_check(tree, target_dir=None):
    env = dict(os.environ)
    if target_dir is not None:
        env["CARGO_TARGET_DIR"] = str(target_dir)
    return subprocess.run([str(tree / "tools" / "abi-check")], capture_output=True, text=True, env=env, timeout=900)


def edit(path, pattern, replacement):
    """`pattern` (a regular expression, multi-line) replaced once in `path`."""
    text = path.read_text()
    changed, count = re.subn(pattern, replacement, text, count=1, flags=re.M | re.S)
    assert count == 1, f"{pattern!r} not in {path}"
    path.write_text(changed)


def swap_first_two_fields(path, struct):
    """Swaps the first two `pub name: type,` fields of `struct`: the same
    members at other offsets, as a careless edit would leave them."""
    edit(
        path,
        rf"(pub struct {struct} \{{.*?)^(\s*pub \w+: [^,]+,)$(.*?)^(\s*pub \w+: [^,]+,)$",
        r"\1\4\3\2",
    )


def move_abi_version(tree):
    """ATMAIL_ABI_VERSION + 1 in the three places that hold it; returns it."""
    current = int(re.search(r"^#define ATMAIL_ABI_VERSION (\d+)$", (tree / "include" / "atmail.h").read_text(), re.M).group(1))
    edit(tree / "ffi" / "src" / "lib.rs", rf"^(pub const ATMAIL_ABI_VERSION: u32 = ){current};$", rf"\g<1>{current + 1};")
    edit(tree / "ffi" / "Cargo.toml", rf"^abi-version = {current}$", f"abi-version = {current + 1}")
    edit(tree / "include" / "atmail.h", rf"^#define ATMAIL_ABI_VERSION {current}$", f"#define ATMAIL_ABI_VERSION {current + 1}")
    return current + 1


def test_this_tree_keeps_the_recorded_abi():
    run = abi_check(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"^abi-check: ABI \d", run.stdout, re.M), run.stdout


def test_a_changed_struct_fails_until_the_abi_version_and_soname_move(tree, target_dir):
    swap_first_two_fields(tree / "ffi" / "src" / "session.rs", "atmail_event")
    run = abi_check(tree, target_dir)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "changed incompatibly" in run.stderr and "struct atmail::session::atmail_event" in run.stderr, run.stderr
    assert "offset changed" in run.stderr

    new = move_abi_version(tree)
    run = abi_check(tree, target_dir)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"-> {new} (libatmail.so.{new}): the changes above are declared" in run.stdout, run.stdout
    assert "atmail_event" in run.stdout
    library = target_dir / "abi-check" / "lib" / f"libatmail.so.{new}"
    dynamic = subprocess.run(["readelf", "-d", str(library)], capture_output=True, check=True, text=True).stdout
    assert f"Library soname: [libatmail.so.{new}]" in dynamic


def test_a_function_no_longer_exported_fails(tree, target_dir):
    edit(tree / "ffi" / "src" / "lib.rs", r"^#\[no_mangle\]\n(pub extern \"C\" fn atmail_version\(\))", r"\1")
    run = abi_check(tree, target_dir)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 Removed function" in run.stderr and "atmail_version" in run.stderr, run.stderr


def test_an_added_function_and_enumerator_pass(tree, target_dir):
    edit(tree / "ffi" / "src" / "session.rs", r"(pub enum atmail_event_kind \{.*?)^\}", r"\1    AbiCheckProbe = 1000,\n}")
    with open(tree / "ffi" / "src" / "lib.rs", "a") as lib:
        lib.write('\n/// Added by the ABI check\'s test.\n#[no_mangle]\npub extern "C" fn atmail_abi_check_probe() -> u32 {\n    1\n}\n')
    run = abi_check(tree, target_dir)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "compatible additions only" in run.stdout and "atmail_abi_check_probe" in run.stdout, run.stdout
