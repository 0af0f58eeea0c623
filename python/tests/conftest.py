"""The package's tests use the repository's test servers (aiosmtpd with
failure hooks, a private Postfix) and the `atmail` binary: `tests/` is put
on the path, and its fixtures are shared."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))


@pytest.fixture(scope="session")
def atmail_bin() -> pathlib.Path:
    """The `atmail` binary (ATMAIL_BIN, or target/debug/atmail)."""
    path = pathlib.Path(os.environ.get("ATMAIL_BIN", ROOT / "target" / "debug" / "atmail"))
    if not path.exists():
        subprocess.run(["cargo", "build", "-p", "atmail-cli"], cwd=ROOT, check=True)
    return path
