"""The package as a user without Rust gets it: `pip wheel ./python` gives
a manylinux wheel (its tag the oldest policy the build meets, and
`auditwheel show` agrees), the sdist builds the same wheel, and the wheel,
installed into a fresh venv with no cargo on PATH and nothing built from
source, sends the spec case through `python -m atmail send` to `atmail
modem --maildir`."""

import os
import pathlib
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT
from smtp_server import PASSWORD, SERVER_NAME, USER
from test_g510 import BODY, GUARD_MS, check_mail

VERSION = re.search(r'^version = "(.*)"$', (ROOT / "Cargo.toml").read_text(), re.M).group(1)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> pathlib.Path:
    """ATMAIL_DIST, where tools/test builds them beside the end-to-end
    suite, or built here as tools/test does: the wheel of `pip wheel
    ./python`, the sdist in `sdist/`, and the wheel built from it in
    `from-sdist/`."""
    if "ATMAIL_DIST" in os.environ:
        return pathlib.Path(os.environ["ATMAIL_DIST"])
    out = tmp_path_factory.mktemp("dist")
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "--disable-pip-version-check"]
    subprocess.run([*pip, "-w", str(out), str(ROOT / "python")], check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--outdir", str(out / "sdist"), str(ROOT / "python")],
                   check=True, capture_output=True)
    (sdist,) = (out / "sdist").glob("atmail-*.tar.gz")
    subprocess.run([*pip, "-w", str(out / "from-sdist"), str(sdist)], check=True, capture_output=True)
    return out


def wheel_in(directory: pathlib.Path) -> pathlib.Path:
    (wheel,) = directory.glob("atmail-*.whl")
    return wheel


def test_the_wheel_is_manylinux_and_auditwheel_agrees(dist):
    wheel = wheel_in(dist)
    tags = re.fullmatch(r"atmail-[^-]+-py3-none-(.+)\.whl", wheel.name).group(1).split(".")
    assert tags[0].startswith("manylinux_"), wheel.name
    run = subprocess.run([sys.executable, "-m", "auditwheel", "show", str(wheel)], capture_output=True, text=True, check=True)
    assert f'is consistent with the following platform tag: "{tags[0]}"' in " ".join(run.stdout.split()), run.stdout
    # The library, the typed package and the license texts are in it.
    names = zipfile.ZipFile(wheel).namelist()
    assert "atmail/py.typed" in names and any(re.fullmatch(r"atmail/_native/[^/]+\.so", n) for n in names)
    for license in ("LICENSE-MIT", "LICENSE-APACHE"):
        assert f"atmail-{VERSION}.dist-info/licenses/{license}" in names


def test_the_sdist_builds_the_same_wheel(dist):
    ours, theirs = wheel_in(dist), wheel_in(dist / "from-sdist")
    assert ours.name == theirs.name
    assert sorted(zipfile.ZipFile(ours).namelist()) == sorted(zipfile.ZipFile(theirs).namelist())


def without_rust(path: str) -> str:
    """PATH without any directory that holds cargo or rustc."""
    return os.pathsep.join(d for d in path.split(os.pathsep) if not any(shutil.which(t, path=d) for t in ("cargo", "rustc")))


def test_the_wheel_installs_without_rust_and_sends_the_spec_case(dist, atmail_bin, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), without_rust(os.environ["PATH"])])
    assert shutil.which("cargo", path=env["PATH"]) is None and shutil.which("rustc", path=env["PATH"]) is None
    # --only-binary: nothing may be built from source, so neither Rust nor a
    # C compiler can be what made it work.
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", "--only-binary", ":all:",
         f"{wheel_in(dist)}[serial]"],
        check=True, env=env,
    )
    python = str(venv / "bin" / "python")
    where = subprocess.run([python, "-c", "import atmail; print(atmail.__file__)"], capture_output=True, text=True,
                           check=True, env=env, cwd=tmp_path).stdout
    assert where.startswith(str(venv)), where

    maildir = tmp_path / "maildir"
    modem = subprocess.Popen(
        [str(atmail_bin), "modem", "--pty", "--guard-ms", str(GUARD_MS), "--maildir", str(maildir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        port = modem.stdout.readline().decode().strip()
        body, data = tmp_path / "body.txt", tmp_path / "data.bin"
        body.write_bytes(BODY.encode("gbk"))
        attachment = os.urandom(100_000)
        data.write_bytes(attachment)
        run = subprocess.run(
            [python, "-m", "atmail", "send", "--port", port, "--server", SERVER_NAME, "--user", USER.decode(),
             "--password-env", "SMTP_PASSWORD", "--to", "xiangj@fibocom.com", "--subject", "你好 smtp",
             "--charset", "gb2312", "--body", str(body), "--attach", f"{data}=eee.wma",
             "--guard", str(GUARD_MS / 1000), "--quiet"],
            capture_output=True, text=True, timeout=120, cwd=tmp_path, env=dict(env, SMTP_PASSWORD=PASSWORD.decode()),
        )
        assert run.returncode == 0, run.stderr
        assert run.stderr.strip() == "sent"
    finally:
        modem.kill()
        modem.communicate()
    (delivered,) = (maildir / "new").iterdir()
    check_mail(delivered.read_bytes(), attachment)
    assert PASSWORD.decode() not in run.stdout + run.stderr
