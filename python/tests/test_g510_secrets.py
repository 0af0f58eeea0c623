"""The password of `AT+GTSMTPID` through `atmail.G510` and `python -m atmail
send`, against `atmail modem --pty`: refused by the module (longer than its
80 bytes), never answered (the module stopped with SIGSTOP as the line goes
out), or one an AT string cannot hold (a `"`, a non-ASCII character). In
every case the password is in no exception text, repr, args or traceback,
no log record, and nothing either program printed; the same searches the
token tests make."""

import functools
import logging
import os
import signal
import subprocess
import sys
import time
import traceback

import pytest
import serial

import atmail
import atmail.__main__
from smtp_server import SERVER_NAME, USER
from test_g510 import GUARD_MS, modems, send_command, server, start  # noqa: F401 (fixtures)

# Distinctive enough that no other text holds it by chance.
TOO_LONG = "pw-" + "Q7x9" * 20  # 83 bytes: the module refuses it
GOOD = "Zk8-secret-pw"
MALFORMED = ['Zk8"secret-pw', "Zk8-sécret-pw", "Zk8-secret\r\npw"]


def exposed(error):
    """Every text an exception shows: str, repr, args, its traceback
    (with what it was raised from), and the command a ModemError names."""
    texts = [str(error), repr(error), repr(error.args)]
    texts.append("".join(traceback.format_exception(type(error), error, error.__traceback__)))
    texts.append(str(getattr(error, "command", "")))
    return texts


def assert_hidden(password, texts):
    for text in texts:
        assert password not in text and repr(password)[1:-1] not in text
        # Nor the line that carried it.
        assert f'"{password}"' not in text


class StopsOnIdentity:
    """A pyserial port that stops the modem (SIGSTOP) as the
    `AT+GTSMTPID` line goes out: a module that never answers it."""

    def __init__(self, port, pid):
        self.port, self.pid = port, pid

    def write(self, data):
        if bytes(data).upper().startswith(b"AT+GTSMTPID="):
            os.kill(self.pid, signal.SIGSTOP)
            while stopped(self.pid) is False:
                time.sleep(0.01)
        return self.port.write(data)

    def __getattr__(self, name):
        return getattr(self.port, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.port.close()


def stopped(pid):
    """Whether the process is stopped (its state in /proc is T)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(")")[2].split()[0] == "T"


def send(module, password):
    module.send_mail(SERVER_NAME, 25, USER.decode(), password, ["xiangj@fibocom.com"], body=b"x")


def test_a_refused_password_is_in_no_error_or_log(atmail_bin, server, modems, caplog):
    caplog.set_level(logging.DEBUG)
    controller, handler = server
    modem = start(modems, atmail_bin, controller.port)
    module = atmail.G510(modem.port, guard=GUARD_MS / 1000)
    with pytest.raises(atmail.ModemError) as refused:
        send(module, TOO_LONG)
    assert refused.value.command == f'AT+GTSMTPID="{USER.decode()}","*****"'
    assert refused.value.text == "longer than 80 bytes"
    assert str(refused.value) == f'AT+GTSMTPID="{USER.decode()}","*****": longer than 80 bytes'
    modems.remove(modem)
    stderr = modem.stop().decode()
    assert_hidden(TOO_LONG, exposed(refused.value) + [repr(module), caplog.text, stderr])
    assert handler.messages == []


def test_an_unanswered_password_is_in_no_error_or_log(atmail_bin, server, modems, caplog):
    caplog.set_level(logging.DEBUG)
    controller, _ = server
    modem = start(modems, atmail_bin, controller.port)
    port = StopsOnIdentity(modem.port, modem.proc.pid)
    try:
        module = atmail.G510(port, guard=GUARD_MS / 1000, timeout=1.0)
        with pytest.raises(atmail.ModemTimeout) as silent:
            send(module, GOOD)
    finally:
        os.kill(modem.proc.pid, signal.SIGCONT)
    assert str(silent.value) == f'no answer to AT+GTSMTPID="{USER.decode()}","*****" in time'
    modems.remove(modem)
    stderr = modem.stop().decode()
    assert_hidden(GOOD, exposed(silent.value) + [repr(module), caplog.text, stderr])


@pytest.mark.parametrize("password", MALFORMED, ids=["quote", "non-ascii", "crlf"])
def test_a_password_an_at_string_cannot_hold_is_not_quoted_back(atmail_bin, server, modems, caplog, password):
    caplog.set_level(logging.DEBUG)
    controller, _ = server
    modem = start(modems, atmail_bin, controller.port)
    module = atmail.G510(modem.port, guard=GUARD_MS / 1000)
    with pytest.raises(ValueError) as bad:
        send(module, password)
    assert "password" in str(bad.value)
    # Refused before any command: the module never heard it.
    assert module.command("AT+GTSMTPID?") == ["0"]
    assert_hidden(password, exposed(bad.value) + [repr(module), caplog.text])


@pytest.mark.parametrize("password", [TOO_LONG, MALFORMED[0]], ids=["refused", "quote"])
def test_python_m_atmail_send_prints_no_password(atmail_bin, server, modems, tmp_path, password):
    controller, handler = server
    modem = start(modems, atmail_bin, controller.port)
    modem.port.close()  # the command opens the port itself
    command, env, _ = send_command(modem.path, tmp_path, 1000, "--guard", str(GUARD_MS / 1000), "--quiet")
    env["SMTP_PASSWORD"] = password
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 1
    expected = {
        TOO_LONG: f'atmail: the module refused AT+GTSMTPID="{USER.decode()}","*****": longer than 80 bytes',
        MALFORMED[0]: "atmail: the password holds a character an AT string cannot hold (printable ASCII without '\"')",
    }[password]
    assert run.stderr.strip().splitlines()[-1] == expected
    modems.remove(modem)
    assert_hidden(password, [run.stdout, run.stderr, modem.stop().decode()])
    assert handler.messages == []


def test_python_m_atmail_send_prints_no_password_on_a_timeout(atmail_bin, server, modems, tmp_path, capfd, monkeypatch):
    """In-process, so the port can stop the module as the ID line goes out
    and the driver's timeout can be short."""
    controller, _ = server
    modem = start(modems, atmail_bin, controller.port)
    modem.port.close()
    opened = serial.Serial
    monkeypatch.setattr(serial, "Serial", lambda *a, **k: StopsOnIdentity(opened(*a, **k), modem.proc.pid))
    monkeypatch.setattr(atmail.__main__, "G510", functools.partial(atmail.G510, timeout=1.0))
    command, env, _ = send_command(modem.path, tmp_path, 1000, "--guard", str(GUARD_MS / 1000), "--quiet")
    monkeypatch.setenv("SMTP_PASSWORD", GOOD)
    try:
        assert atmail.__main__.main(command[command.index("send") :]) == 1
    finally:
        os.kill(modem.proc.pid, signal.SIGCONT)
    out, err = capfd.readouterr()
    assert err.strip().splitlines()[-1] == f'atmail: no answer to AT+GTSMTPID="{USER.decode()}","*****" in time'
    modems.remove(modem)
    assert_hidden(GOOD, [out, err, modem.stop().decode()])


def test_the_password_line_is_masked_however_the_echo_comes(atmail_bin, server, modems):
    """With echo on the module sends the ID line back; the driver drops it
    as the echo, and keeps it nowhere a URC could show it."""
    controller, handler = server
    modem = start(modems, atmail_bin, controller.port)
    module = atmail.G510(modem.port, echo=True, guard=GUARD_MS / 1000)
    with pytest.raises(atmail.ModemError) as refused:
        send(module, TOO_LONG)
    assert all(TOO_LONG.encode() not in urc for urc in module._urcs)
    assert_hidden(TOO_LONG, exposed(refused.value))


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
