"""Shared fixtures: the atmail binary built by `cargo build`, the C
programs, and the modems a test starts."""

import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def atmail() -> pathlib.Path:
    """Path to the `atmail` binary (ATMAIL_BIN, or target/debug/atmail)."""
    path = pathlib.Path(os.environ.get("ATMAIL_BIN", ROOT / "target" / "debug" / "atmail"))
    if not path.exists():
        subprocess.run(["cargo", "build", "-p", "atmail-cli"], cwd=ROOT, check=True)
    return path


@pytest.fixture(scope="session")
def c_programs() -> pathlib.Path:
    """The C programs of tests/c (and the C firmware example) built against
    libatmail.a, with the Rust parity reference beside them; builds what is
    missing or stale."""
    subprocess.run(["cargo", "build", "-q", "-p", "atmail-ffi", "--lib", "--examples"], cwd=ROOT, check=True)
    subprocess.run(["make", "-s", "-C", "tests/c", "all", "sanitize"], cwd=ROOT, check=True)
    return ROOT / "target" / "c-tests"


@pytest.fixture
def modems():
    """The `g510.Modem`s a test starts, killed at its end, pass or fail
    (tests/test_modem.py has its own, which runs each test with CR and
    CRLF hosts); then every failed mail they reported must have said why
    on stderr (`Modem.check_failures`)."""
    started = []
    yield started
    for modem in started:
        modem.kill()
    for modem in started:
        modem.check_failures()
