"""The C ABI installed as a user installs it (`tools/install-c` under a
temporary prefix) and used from outside the tree: what the install holds
(the SONAME, the exported symbols, the generated pkg-config file), a CMake
project (`find_package(atmail CONFIG REQUIRED)`, tests/cmake) and a
pkg-config build of the C firmware example, each sending the spec case
over STARTTLS to the private Postfix, read back from its Maildir."""

import os
import re
import subprocess

import pytest

from conftest import ROOT
from g510 import Modem
from smtp_server import PASSWORD, configure_spec_case
from test_firmware_tls import postfix_for
from test_postfix import blob, check_delivered, spec_case

VERSION = re.search(r'^version = "(.*)"$', (ROOT / "Cargo.toml").read_text(), re.M).group(1)
ABI = re.search(r"^#define ATMAIL_ABI_VERSION (\d+)$", (ROOT / "include" / "atmail.h").read_text(), re.M).group(1)
EXAMPLE = ROOT / "ffi" / "examples" / "firmware.c"
TLS_LIBS = ["-lmbedtls", "-lmbedx509", "-lmbedcrypto"]


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    """An install of this tree (the dev profile, as tools/abi-check reads
    it) under a fresh prefix."""
    prefix = tmp_path_factory.mktemp("install") / "usr"
    subprocess.run([str(ROOT / "tools" / "install-c"), "--debug", str(prefix)], check=True)
    return prefix


def pkg_config(prefix, *args):
    env = dict(os.environ, PKG_CONFIG_PATH=str(prefix / "lib" / "pkgconfig"))
    return subprocess.run(["pkg-config", *args, "atmail"], capture_output=True, check=True, text=True, env=env).stdout.split()


def dynamic_section(path):
    return subprocess.run(["readelf", "-d", str(path)], capture_output=True, check=True, text=True).stdout


def test_the_install_holds_the_header_both_libraries_and_the_package_files(prefix):
    lib = prefix / "lib"
    assert (prefix / "include" / "atmail.h").read_bytes() == (ROOT / "include" / "atmail.h").read_bytes()
    assert (lib / "libatmail.a").is_file()
    assert os.readlink(lib / "libatmail.so") == f"libatmail.so.{ABI}"
    assert f"Library soname: [libatmail.so.{ABI}]" in dynamic_section(lib / f"libatmail.so.{ABI}")
    # The shared library exports the header's functions and nothing else.
    declared = set(re.findall(r"\b(atmail_\w+)\(", (ROOT / "include" / "atmail.h").read_text()))
    symbols = subprocess.run(
        ["nm", "-D", "--defined-only", str(lib / f"libatmail.so.{ABI}")], capture_output=True, check=True, text=True
    ).stdout.split("\n")
    exported = {line.split()[2] for line in symbols if line.strip() and line.split()[1] in "TDBR"}
    assert exported == declared
    for name in ("LICENSE-MIT", "LICENSE-APACHE"):
        assert (prefix / "share" / "doc" / "atmail" / name).read_bytes() == (ROOT / name).read_bytes()
    assert pkg_config(prefix, "--modversion") == [VERSION]
    assert pkg_config(prefix, "--variable=abi_version") == [ABI]
    assert pkg_config(prefix, "--variable=prefix") == [str(prefix)]
    assert pkg_config(prefix, "--cflags", "--libs") == [f"-I{prefix}/include", f"-L{prefix}/lib", "-latmail"]
    assert "-lpthread" in pkg_config(prefix, "--libs", "--static")


def run_the_spec_case(tmp_path, program, wrapper=()):
    """`program` (a build of ffi/examples/firmware.c) sends the spec case
    over STARTTLS to a private Postfix, which stores it whole."""
    postfix = postfix_for(tmp_path)
    modem = None
    try:
        command = [str(program), "--guard-ms", "300", "--tls-ca", str(postfix.certificates.ca_file), f"127.0.0.1:{postfix.smtp}"]
        modem = Modem(None, command=command, wrapper=wrapper)
        attachment = blob(64 * 1024)
        body = spec_case(modem, attachment, configure=lambda m: configure_spec_case(m, network=False))
        assert modem.close(timeout=60) == 0, modem.err
        assert modem.err == b""
        raw = check_delivered(postfix, body, attachment)
        assert b"with ESMTPSA" in raw and b"(using TLSv1.2 with cipher " in raw
        assert PASSWORD not in modem.out
    finally:
        if modem:
            modem.kill()
        postfix.stop()


@pytest.fixture(scope="module")
def cmake_build(prefix, tmp_path_factory):
    """tests/cmake configured against the install and built: the example
    linked with atmail::atmail (shared) and atmail::atmail_static."""
    build = tmp_path_factory.mktemp("cmake-build")
    major, minor = VERSION.split(".")[:2]
    subprocess.run(
        ["cmake", "-S", str(ROOT / "tests" / "cmake"), "-B", str(build), f"-DCMAKE_PREFIX_PATH={prefix}",
         f"-DATMAIL_WANT={major}.{minor}", f"-DATMAIL_WANT_MINOR={minor}", f"-DATMAIL_EXAMPLE={EXAMPLE}"],
        capture_output=True, check=True,
    )
    subprocess.run(["cmake", "--build", str(build)], capture_output=True, check=True)
    return build


@pytest.mark.parametrize("kind", ["shared", "static"])
def test_a_cmake_project_builds_the_firmware_example_and_sends_the_spec_case(cmake_build, prefix, tmp_path, kind):
    program = cmake_build / f"firmware_{kind}"
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.*?)\]", dynamic_section(program))
    if kind == "shared":
        # The SONAME, found through the RUNPATH CMake writes for an
        # imported library outside the system's directories.
        assert f"libatmail.so.{ABI}" in needed
        assert str(prefix / "lib") in dynamic_section(program)
    else:
        assert not [name for name in needed if "atmail" in name]
    run_the_spec_case(tmp_path, program)


def test_a_pkg_config_build_of_the_firmware_example_sends_the_spec_case(prefix, tmp_path):
    """`cc app.c $(pkg-config --cflags --libs atmail)`, as docs/firmware.md
    gives it, linked against the shared library and run with the install's
    lib directory as its only way to it."""
    program = tmp_path / "firmware"
    flags = pkg_config(prefix, "--cflags", "--libs")
    subprocess.run(
        ["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-D_POSIX_C_SOURCE=200809L", str(EXAMPLE),
         "-o", str(program), *flags, *TLS_LIBS],
        check=True,
    )
    assert f"libatmail.so.{ABI}" in re.findall(r"\(NEEDED\)\s+Shared library: \[(.*?)\]", dynamic_section(program))
    libdir = pkg_config(prefix, "--variable=libdir")[0]
    run_the_spec_case(tmp_path, program, wrapper=["env", f"LD_LIBRARY_PATH={libdir}"])
