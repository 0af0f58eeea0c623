"""`atmail.G510` driving `atmail modem --pty`, opened with pyserial as a
host opens a USB serial port, against aiosmtpd and a real Postfix: the
spec case with a 3 MiB attachment holding `+++`, progress, refusals,
echo, a closed port, and `python -m atmail send`."""

import email
import email.policy
import logging
import os
import pathlib
import subprocess
import sys

import pytest
import serial

import atmail
from g510 import Control
from postfix import Postfix
from smtp_server import PASSWORD, SERVER_NAME, USER, Certificates, Handler, canonical, start_server

GUARD_MS = 300


class PtyModem:
    """`atmail modem --pty`, and the pyserial port on its pty."""

    def __init__(self, atmail_bin, *args):
        self.proc = subprocess.Popen(
            [str(atmail_bin), "modem", "--pty", "--guard-ms", str(GUARD_MS), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.path = self.proc.stdout.readline().decode().strip()
        self.port = serial.Serial(self.path, baudrate=115200, timeout=0.05)

    def stop(self):
        self.port.close()
        self.proc.kill()
        return self.proc.communicate()[1]


@pytest.fixture
def modems():
    started = []
    yield started
    for modem in started:
        modem.stop()


@pytest.fixture
def server():
    handler = Handler()
    controller = start_server(handler)
    yield controller, handler
    controller.stop()


def start(modems, atmail_bin, port, *args):
    modem = PtyModem(atmail_bin, "--connect", f"127.0.0.1:{port}", *args)
    modems.append(modem)
    return modem


def attachment_3mib():
    data = bytearray(os.urandom(3 * 1024 * 1024))
    for at in range(1000, len(data), 250_000):
        data[at : at + 3] = b"+++"
    return bytes(data)


BODY = "你好，这是正文。\n第二行\r\n"


def send_spec_case(module, port, attachment, progress=None, **overrides):
    kwargs = dict(
        to=["xiangj@fibocom.com"],
        subject="你好 smtp",
        charset="gb2312",
        body=BODY.encode("gbk"),
        attachments=[("eee.wma", attachment)],
        progress=progress,
    )
    # The plain loopback server offers AUTH without TLS: sign-in in the
    # clear on purpose (mode 3), unless a test chooses.
    kwargs.setdefault("mode", 3)
    kwargs.update(overrides)
    password = kwargs.pop("password", PASSWORD.decode())
    module.send_mail(SERVER_NAME, port, USER.decode(), password, **kwargs)


def check_mail(raw, attachment):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["subject"] == "你好 smtp"
    text, part = [p for p in msg.walk() if not p.is_multipart()]
    assert text.get_payload(decode=True) == canonical(BODY.encode("gbk"))
    assert part.get_filename() == "eee.wma"
    assert part.get_payload(decode=True) == attachment


def test_send_mail_delivers_the_spec_case_with_progress(atmail_bin, server, modems):
    controller, handler = server
    modem = start(modems, atmail_bin, controller.port)
    module = atmail.G510(modem.port, guard=GUARD_MS / 1000)
    attachment = attachment_3mib()
    calls = []
    send_spec_case(module, 25, attachment, progress=lambda sent, total: calls.append((sent, total)))
    ((sender, rcpts, raw),) = handler.messages
    assert sender == USER.decode() and rcpts == ["xiangj@fibocom.com"]
    check_mail(raw, attachment)
    total = len(BODY.encode("gbk")) + len(attachment)
    assert {t for _, t in calls} == {total}
    sents = [s for s, _ in calls]
    assert sents == sorted(sents) and sents[-1] == total and len(sents) > 700
    # The module keeps serving: a second mail on the same driver.
    send_spec_case(module, 25, b"second")
    assert len(handler.messages) == 2


def test_echo_on_and_urcs_between_answers(atmail_bin, server, modems):
    """With echo on, every command comes back before its answer; the
    driver still pairs answers with commands."""
    controller, handler = server
    modem = start(modems, atmail_bin, controller.port)
    module = atmail.G510(modem.port, echo=True, guard=GUARD_MS / 1000)
    assert module.command("AT+GTSMTPDST?") == ["0"]  # no recipients yet
    send_spec_case(module, 25, b"attachment", cc=["c@fibocom.com"], bcc=["b@fibocom.com"])
    ((_, rcpts, raw),) = handler.messages
    assert rcpts == ["xiangj@fibocom.com", "c@fibocom.com", "b@fibocom.com"]
    check_mail(raw, b"attachment")


class RecordingSerial(serial.Serial):
    """A pyserial port that keeps what the host wrote."""

    def __init__(self, *args, **kwargs):
        self.sent = bytearray()
        super().__init__(*args, **kwargs)

    def write(self, data):
        self.sent += data
        return super().write(data)


def test_a_port_with_rtscts_sets_the_module_to_rts_cts(atmail_bin, server, modems):
    """Opened with `rtscts=True`, as a host wired for flow control opens
    it: the driver sends `AT&K3` before any mail command, and mail goes
    through."""
    controller, handler = server
    modem = start(modems, atmail_bin, controller.port)
    modem.port.close()
    with RecordingSerial(modem.path, baudrate=115200, timeout=0.05, rtscts=True) as port:
        module = atmail.G510(port, guard=GUARD_MS / 1000)
        send_spec_case(module, 25, b"attachment")
        assert port.sent.count(b"AT&K3\r") == 1
        assert port.sent.index(b"AT&K3\r") < port.sent.index(b"AT+GTSMTPCLR\r")
    ((_, _, raw),) = handler.messages
    check_mail(raw, b"attachment")


@pytest.mark.parametrize("bdat", [0, 1, 2])
def test_bdat_is_sent_before_send_when_given(atmail_bin, server, modems, bdat):
    """`bdat=` sends `AT+GTSMTPBDAT=<n>` after the configuration and
    before SEND (the CLR at the start would undo an earlier one); the mail
    goes through (the loopback server offers no CHUNKING: DATA)."""
    controller, handler = server
    modem = start(modems, atmail_bin, controller.port)
    modem.port.close()
    with RecordingSerial(modem.path, baudrate=115200, timeout=0.05) as port:
        module = atmail.G510(port, guard=GUARD_MS / 1000)
        send_spec_case(module, 25, b"attachment", bdat=bdat)
        line = b"AT+GTSMTPBDAT=%d\r" % bdat
        assert port.sent.count(line) == 1
        assert port.sent.index(b"AT+GTSMTPHEAD=") < port.sent.index(line) < port.sent.index(b"AT+GTSMTPSEND=")
        assert module.command("AT+GTSMTPBDAT?") == [str(bdat)]
        port.sent.clear()
        send_spec_case(module, 25, b"attachment")
        assert b"AT+GTSMTPBDAT" not in port.sent
        assert module.command("AT+GTSMTPBDAT?") == ["1"]  # CLR restored the default
    assert len(handler.messages) == 2
    check_mail(handler.messages[0][2], b"attachment")


def test_a_bad_bdat_raises_before_any_command(atmail_bin, server, modems):
    controller, _ = server
    modem = start(modems, atmail_bin, controller.port)
    modem.port.close()
    with RecordingSerial(modem.path, baudrate=115200, timeout=0.05) as port:
        module = atmail.G510(port, guard=GUARD_MS / 1000)
        for bad in (3, -1, True, "1"):
            with pytest.raises(ValueError):
                send_spec_case(module, 25, b"x", bdat=bad)
        assert b"AT+GTSMTP" not in port.sent


@pytest.mark.parametrize("step,reply,code", [("RCPT", "550 5.1.1 no such user", 550), ("MAIL", "451 4.3.0 try later", 451)])
def test_refusals_raise_mail_error_with_the_code(atmail_bin, server, modems, step, reply, code):
    controller, handler = server
    handler.fail[step] = reply
    modem = start(modems, atmail_bin, controller.port)
    module = atmail.G510(modem.port, guard=GUARD_MS / 1000)
    with pytest.raises(atmail.MailError) as failure:
        send_spec_case(module, 25, b"x")
    assert failure.value.code == code
    # The module's reason (AT+GTSMTPERR?), with the server's words.
    reason = f"the server refused the mail at MAIL, RCPT or DATA: {reply}"
    assert failure.value.reason == reason
    assert str(failure.value) == f"{reason} (+GTSMTPSEND: {code})"
    assert module.last_failure() == (code, reason)
    assert handler.messages == []


def test_a_server_that_drops_mid_payload_is_code_0(atmail_bin, server, modems):
    controller, handler = server
    handler.drop = 200_000  # bytes into the connection: inside the attachment
    modem = start(modems, atmail_bin, controller.port)
    module = atmail.G510(modem.port, guard=GUARD_MS / 1000)
    calls = []
    with pytest.raises(atmail.MailError) as failure:
        send_spec_case(module, 25, attachment_3mib(), progress=lambda s, t: calls.append(s))
    assert failure.value.code == 0
    assert failure.value.reason == "connection closed by the server while sending the message"
    assert handler.messages == []
    assert calls and calls[-1] < 3 * 1024 * 1024  # the driver stopped streaming early


def test_a_refused_command_raises_modem_error_with_its_text(atmail_bin, server, modems):
    controller, _ = server
    modem = start(modems, atmail_bin, controller.port)
    module = atmail.G510(modem.port, guard=GUARD_MS / 1000)
    with pytest.raises(atmail.ModemError) as refused:
        send_spec_case(module, 25, b"x", to=["not-an-address"])
    assert refused.value.command == 'AT+GTSMTPDST=1,1,"not-an-address"'
    assert refused.value.text and refused.value.text != "ERROR"


def test_bad_arguments_raise_before_any_command(atmail_bin, server, modems):
    controller, _ = server
    modem = start(modems, atmail_bin, controller.port)
    module = atmail.G510(modem.port, guard=GUARD_MS / 1000)
    with pytest.raises(TypeError):
        send_spec_case(module, 25, b"x", to="one@fibocom.com")
    with pytest.raises(UnicodeEncodeError):
        send_spec_case(module, 25, b"x", subject="€")
    with pytest.raises(ValueError):
        send_spec_case(module, 25, b"x", subject='say "hi"', charset="utf-8")
    with pytest.raises(TypeError):
        atmail.G510(object())


def test_a_port_without_a_read_timeout_gets_one(atmail_bin, server, modems):
    """pyserial opens ports blocking by default; a blocking read would
    never let the driver's deadlines pass."""
    controller, _ = server
    modem = start(modems, atmail_bin, controller.port)
    modem.port.timeout = None
    module = atmail.G510(modem.port, guard=GUARD_MS / 1000)
    assert modem.port.timeout == 0.05
    with pytest.raises(atmail.ModemTimeout):
        module.wait_urc("GTSMTPSEND", timeout=0.3)


def test_a_closed_port_is_a_clear_error(atmail_bin, server, modems):
    controller, _ = server
    modem = start(modems, atmail_bin, controller.port)
    module = atmail.G510(modem.port, guard=GUARD_MS / 1000)
    modem.port.close()
    with pytest.raises(atmail.PortClosedError):
        module.command("AT")


def test_send_mail_to_postfix_over_starttls(atmail_bin, tmp_path, modems):
    certificates = Certificates(tmp_path / "certs")
    postfix = Postfix(certificates)
    try:
        modem = start(modems, atmail_bin, postfix.smtp, "--tls-ca", str(certificates.ca_file))
        module = atmail.G510(modem.port, guard=GUARD_MS / 1000)
        attachment = attachment_3mib()
        send_spec_case(module, 25, attachment)
        (raw,) = postfix.messages()
        check_mail(raw, attachment)
        assert b"with ESMTPSA" in raw
    finally:
        postfix.stop()


def send_command(path, tmp_path, size, *options):
    """`python -m atmail send` of the spec's mail (GB2312 subject and body,
    a `size`-byte `eee.wma`) to the port at `path`, with `options` added:
    the command, its environment (the password) and the attachment."""
    body, data = tmp_path / "body.txt", tmp_path / "data.bin"
    body.write_bytes(BODY.encode("gbk"))
    data.write_bytes(os.urandom(size))
    command = [sys.executable, "-m", "atmail", "send", "--port", path, "--server", SERVER_NAME,
               "--user", USER.decode(), "--password-env", "SMTP_PASSWORD", "--to", "xiangj@fibocom.com",
               "--subject", "你好 smtp", "--charset", "gb2312", "--body", str(body),
               "--attach", f"{data}=eee.wma",
               # The plain loopback server offers AUTH without TLS: sign-in
               # in the clear on purpose (mode 3), unless `options` choose.
               "--mode", "3", *options]
    return command, dict(os.environ, SMTP_PASSWORD=PASSWORD.decode()), data.read_bytes()


def test_python_m_atmail_send(atmail_bin, server, modems, tmp_path):
    controller, handler = server
    modem = start(modems, atmail_bin, controller.port)
    path = modem.path
    modem.port.close()  # the command opens the port itself
    command, env, attachment = send_command(path, tmp_path, 100_000, "--guard", str(GUARD_MS / 1000), "--rtscts")
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "100.0%" in run.stderr and run.stderr.rstrip().endswith("sent")
    ((_, _, raw),) = handler.messages
    check_mail(raw, attachment)

    handler.fail["RCPT"] = "550 5.1.1 no such user"
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        "atmail: mail failed (SMTP code 550): the server refused the mail at MAIL, RCPT or DATA: "
        "550 5.1.1 no such user (+GTSMTPSEND: 550)"
    )


def test_python_m_atmail_send_to_the_live_chip(server, tmp_path):
    """`python -m atmail send` drives the live G510 (the engine on QEMU's
    Cortex-M4, firmware/live.py) through its pty: AT+MIPCALL, a GB2312
    subject and body, an attachment, delivered byte-exact. The pty holds
    a few KiB QEMU's UART has not read and cannot say when they have left,
    so the host's guard wait is the chip's 1 s plus 1 s."""
    controller, handler = server
    live = pathlib.Path(__file__).resolve().parents[2] / "firmware" / "live.py"
    chip = subprocess.Popen([sys.executable, str(live), "--connect", f"127.0.0.1:{controller.port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        path = chip.stdout.readline().decode().strip()
        command, env, attachment = send_command(path, tmp_path, 20_000, "--apn", "cmnet", "--guard", "2")
        run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=180)
    finally:
        chip.terminate()
        chip_err = chip.communicate(timeout=20)[1].decode(errors="replace")
    assert run.returncode == 0, run.stderr + chip_err
    assert run.stderr.rstrip().endswith("sent")
    ((_, _, raw),) = handler.messages
    check_mail(raw, attachment)


def test_send_mail_with_an_oauth_token_through_postfix_and_dovecot(atmail_bin, tmp_path, modems, caplog):
    """`oauth_token=`: Dovecot validates the JWT; a good token delivers,
    an expired one raises `MailError` 535, and the token is in no
    exception, repr, log record or output of the modem."""
    from dovecot import Dovecot

    caplog.set_level(logging.DEBUG)
    dovecot = Dovecot()
    certificates = Certificates(tmp_path / "certs")
    postfix = Postfix(certificates, dovecot=dovecot)
    try:
        modem = start(modems, atmail_bin, postfix.smtp, "--tls-ca", str(certificates.ca_file))
        module = atmail.G510(modem.port, guard=GUARD_MS / 1000)
        attachment = os.urandom(64 * 1024)
        token = dovecot.token(USER.decode(), size=2600)
        send_spec_case(module, 25, attachment, password="", oauth_token=token.decode(), oauth_mechanism="oauthbearer")
        (raw,) = postfix.messages()
        check_mail(raw, attachment)
        assert "sasl_method=OAUTHBEARER" in postfix.log_text()

        expired = dovecot.token(USER.decode(), lifetime=-300)
        with pytest.raises(atmail.MailError) as refused:
            send_spec_case(module, 25, attachment, password="", oauth_token=expired, oauth_mechanism="xoauth2")
        assert refused.value.code == 535
        shown = [str(refused.value), repr(refused.value), repr(module), caplog.text,
                 "".join(map(str, refused.traceback))]
        with pytest.raises(ValueError) as bad:
            module.send_mail(SERVER_NAME, 25, USER.decode(), "", ["xiangj@fibocom.com"],
                             oauth_token=expired + b" ", oauth_mechanism="xoauth2")
        shown += [str(bad.value), repr(bad.value)]
        modems.remove(modem)
        stderr = modem.stop().decode()
        assert "the server refused the XOAUTH2 token: 535" in stderr
        for text in shown + [stderr]:
            for secret in (token.decode(), expired.decode()):
                # The whole token, and its signature alone (every token
                # here starts with the same JWT header).
                assert secret not in text and secret[-43:] not in text
    finally:
        postfix.stop()
        dovecot.stop()


def test_python_m_atmail_send_with_an_oauth_token_file(atmail_bin, tmp_path, modems):
    from dovecot import Dovecot

    dovecot = Dovecot()
    certificates = Certificates(tmp_path / "certs")
    postfix = Postfix(certificates, dovecot=dovecot)
    try:
        modem = start(modems, atmail_bin, postfix.smtp, "--tls-ca", str(certificates.ca_file))
        path = modem.path
        modem.port.close()
        token = dovecot.token(USER.decode())
        token_file = tmp_path / "token"
        token_file.write_bytes(token + b"\n")
        command = [sys.executable, "-m", "atmail", "send", "--port", path, "--server", SERVER_NAME,
                   "--user", USER.decode(), "--oauth-token-file", str(token_file),
                   "--oauth-mechanism", "xoauth2", "--to", "xiangj@fibocom.com", "--subject", "token",
                   "--guard", str(GUARD_MS / 1000), "--quiet"]
        run = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        (raw,) = postfix.messages()
        assert "sasl_method=XOAUTH2" in postfix.log_text()
        token_file.write_bytes(dovecot.token("xiangj@fibocom.com"))
        refused = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 1
        assert refused.stderr.strip().endswith(
            "(SMTP code 535): the server refused the XOAUTH2 token: 535 5.7.8 Error: authentication failed: "
            "(reason unavailable) (status 401) (+GTSMTPSEND: 535)"
        )
        modems.remove(modem)
        for text in (run.stdout, run.stderr, refused.stdout, refused.stderr, modem.stop().decode()):
            assert token.decode()[-43:] not in text
    finally:
        postfix.stop()
        dovecot.stop()


def test_the_module_calls_against_atmail_modem(atmail_bin, modems, tmp_path):
    """`wait_ready`, `info`, `signal`, `registration` and `attach` against
    `atmail modem --pty` with a profile, while its control socket takes
    the network away and gives it back."""
    profile = tmp_path / "module.toml"
    profile.write_text(
        'manufacturer = "Fibocom Wireless"\nrevision = "G510_V0D.00.20"\nimei = "352099001761481"\n'
        'rssi = 31\nber = 99\nregistration = "roaming"\nlac = "00C3"\nci = "12AB"\nip = "10.64.12.7"\n'
    )
    path = tmp_path / "control"
    modem = start(modems, atmail_bin, 9, "--profile", str(profile), "--control", str(path))
    control = Control(path)
    try:
        module = atmail.G510(modem.port, echo=False, guard=GUARD_MS / 1000)
        module.wait_ready(timeout=10)
        assert module.info() == atmail.ModuleInfo(
            manufacturer="Fibocom Wireless", model="G510", revision="G510_V0D.00.20", imei="352099001761481"
        )
        signal = module.signal()
        assert signal == atmail.Signal(rssi=31, ber=99) and signal.dbm == -51
        registration = module.registration()
        assert registration == atmail.Registration(stat=5, lac="00C3", ci="12AB")
        assert registration.registered and registration.roaming
        assert module.command("AT+CREG?") == ["0,5"]  # the setting is put back
        assert module.attach("cmnet") == "10.64.12.7"
        assert module.attach("cmnet") == "10.64.12.7"  # up already
        assert control("registration searching") == "ok"
        assert module.registration() == atmail.Registration(stat=2, lac=None, ci=None)
        with pytest.raises(atmail.ModemError, match="no network service"):
            module.attach("cmnet")
        assert control("registration home") == "ok"
        assert module.attach("cmnet", "user", "pwd") == "10.64.12.7"
        assert control("signal 99 99") == "ok"
        assert module.signal().dbm is None
        assert control("sim drop") == "ok"
        with pytest.raises(atmail.ModemTimeout, match="SIM not inserted"):
            module.wait_ready(timeout=1)
        assert control("sim ready") == "ok"
        module.wait_ready(timeout=5)
        module.command("ATZ")  # the power-up lines again, taken by wait_ready
        module.command("ATE0")
        module.command("AT+CMEE=2")
        module.wait_ready(timeout=5)
        assert not any(b"AT command ready" in u for u in module._urcs)
    finally:
        control.close()


def test_the_module_calls_against_the_live_chip():
    """The same calls against the live G510 (firmware/live.c answers the
    identity and network commands from its table) through its pty."""
    live = pathlib.Path(__file__).resolve().parents[2] / "firmware" / "live.py"
    chip = subprocess.Popen([sys.executable, str(live)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        path = chip.stdout.readline().decode().strip()
        port = serial.Serial(path, baudrate=115200, timeout=0.05)
        try:
            module = atmail.G510(port, echo=False, timeout=30)
            module.wait_ready(timeout=30)
            assert module.info() == atmail.ModuleInfo(
                manufacturer="Fibocom", model="G510", revision="G510_V0D.00.19", imei="352656100012346"
            )
            assert module.signal() == atmail.Signal(rssi=20, ber=0)
            assert module.registration() == atmail.Registration(stat=1, lac="2A4F", ci="0B12")
            assert module.command("AT+CREG?") == ["0,1"]
            address = module.attach("cmnet")
            assert address.count(".") == 3
            assert module.attach("cmnet") == address
        finally:
            port.close()
    finally:
        chip.terminate()
        chip.communicate(timeout=20)
