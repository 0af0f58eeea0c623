"""Shared fixtures: the atmail binary built by `cargo build`."""

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
