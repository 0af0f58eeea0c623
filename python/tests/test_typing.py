"""`mypy --strict` passes on a script that uses every public name and on
the package's own source, and the script runs."""

import pathlib
import subprocess
import sys

import atmail

SCRIPT = pathlib.Path(__file__).with_name("typed_usage.py")
SOURCE = pathlib.Path(__file__).parents[1] / "src" / "atmail"


def mypy_strict(path):
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", str(path)], capture_output=True, text=True)


def test_mypy_strict_on_every_public_name():
    used = SCRIPT.read_text()
    missing = [name for name in atmail.__all__ if f"atmail.{name}" not in used]
    assert missing == []
    run = mypy_strict(SCRIPT)
    assert run.returncode == 0, run.stdout + run.stderr


def test_mypy_strict_on_the_package_source():
    run = mypy_strict(SOURCE)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_script_runs():
    run = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, check=True)
    assert run.stdout == f"ok {atmail.__version__}\n"
