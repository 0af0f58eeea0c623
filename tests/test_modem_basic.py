"""The G510's basic commands in `atmail modem`, byte for byte: every
command of the table with CR and CRLF hosts, echo on and off, `ATV1` and
`ATV0` (`ATQ1` too); the power-up lines at start and after `ATZ`; the
profile file (its values, and a bad file naming its key); the network's
events from the control socket (`+CREG`/`+CGREG` URCs, `AT+MIPCALL`
refused while unregistered, a mail in flight failing with URC 0 and a
reason, then the next one delivered); and `--device` on a pty, as a host
MCU's UART would be served."""

import os
import subprocess
import termios
import time

import pytest

from g510 import POWER_UP, Control, Modem

# The default profile's values, as the module says them.
IMEI = b"352656100012346"

# (line, information lines, final: True OK / False ERROR, URCs after it):
# every basic command in order on one modem.
TABLE = [
    (b"AT", [], True, []),
    (b"ATI", [b"20150426Sun1200"], True, []),
    (b"ATI0", [b"20150426Sun1200"], True, []),
    (b"ATI3", [b"G510 GPRS Module"], True, []),
    (b"ATI7", [b"GSM900 1800 850 1900"], True, []),
    (b"ATI8", [b"G510_V0D.00.19"], True, []),
    (b"ATI9", [b"G510 Q50_V1.02"], True, []),
    (b"ATI1", [], True, []),
    (b"ATI10", [], False, []),
    (b"AT+CGMI", [b'+CGMI: "Fibocom"'], True, []),
    (b"at+cgmi=?", [], True, []),
    (b"AT+CGMM", [b'+CGMM: "GPRS","G510"'], True, []),
    (b"AT+CGMR", [b'+CGMR: "G510_V0D.00.19"'], True, []),
    (b"AT+CGSN", [b'+CGSN: "' + IMEI + b'"'], True, []),
    (b"AT+GSN", [b'+GSN: "' + IMEI + b'"'], True, []),
    (b"AT+GMI", [b'+GMI: "Fibocom"'], True, []),
    (b"AT+CIMI", [b"+CIMI: 001010123456789"], True, []),
    (b"AT+CPIN?", [b"+CPIN: READY"], True, []),
    (b"AT+CPIN=?", [], True, []),
    (b'AT+CPIN="1234"', [], False, []),
    (b"AT+CSQ", [b"+CSQ: 20,0"], True, []),
    (b"AT+CSQ=?", [b"+CSQ: (0-31,99),(0-7,99)"], True, []),
    (b"AT+CREG?", [b"+CREG: 0,1"], True, []),
    (b"AT+CREG=2", [], True, []),
    (b"AT+CREG?", [b'+CREG: 2,1,"2A4F","0B12"'], True, []),
    (b"AT+CREG=3", [], False, []),
    (b"AT+CREG=?", [b"+CREG: (0-2)"], True, []),
    (b"AT+CREG=0", [], True, []),
    (b"AT+CGREG?", [b"+CGREG: 0,1"], True, []),
    (b"AT+CGREG=1", [], True, []),
    (b"AT+CGREG?", [b"+CGREG: 1,1"], True, []),
    (b"AT+CGREG=0", [], True, []),
    (b"AT+COPS?", [b'+COPS: 0,0,"atmail"'], True, []),
    (b"AT+COPS=3,2", [], True, []),
    (b"AT+COPS?", [b'+COPS: 0,2,"00101"'], True, []),
    (b"AT+COPS=3,0", [], True, []),
    (b"AT+COPS=0", [], True, []),
    (b"AT+COPS=?", [b'+COPS: (2,"atmail","atmail","00101"),,(0-4),(0-2)'], True, []),
    (b"AT+CFUN?", [b"+CFUN: 1"], True, []),
    (b"AT+CFUN=?", [b"+CFUN: (0,1,4),(0-1)"], True, []),
    (b"AT+CFUN=1", [], True, []),
    (b"AT+IPR?", [b"+IPR: 0"], True, []),
    (b"AT+IPR=?", [b"+IPR: (0,300,600,1200,2400,4800,9600,19200,38400,57600,115200),(230400,460800)"], True, []),
    (b"AT+IPR=115200", [], True, []),
    (b"AT+IPR?", [b"+IPR: 115200"], True, []),
    (b"AT+IPR=12345", [], False, []),
    (b"AT&K3", [], True, []),
    (b"AT&K0", [], True, []),
    (b"AT&K4", [], False, []),
    (b"AT&C1&D2", [], True, []),
    (b"AT+CMGF=?", [b"+CMGF: (0-1)"], True, []),
    (b"AT+CMGF=1", [], True, []),
    (b"AT+CMGF?", [b"+CMGF: 1"], True, []),
    (b"AT+CSMP?", [b"+CSMP: 17,167,0,0"], True, []),
    (b"AT+CSMP=17,167,0,8", [], True, []),
    (b"AT+CSMP?", [b"+CSMP: 17,167,0,8"], True, []),
    (b"AT+CPMS?", [b'+CPMS: "SM",0,30,"SM",0,30,"SM",0,30'], True, []),
    (b'AT+CPMS="SM","SM","SM"', [b"+CPMS: 0,30,0,30,0,30"], True, []),
    (b'AT+CPMS="ME"', [], False, []),
    (b"AT+CNMI=2,1,0,0,0", [], True, []),
    (b"AT+CNMI?", [b"+CNMI: 2,1,0,0,0"], True, []),
    (b"AT+CLIP=1", [], True, []),
    (b"AT+CLIP?", [b"+CLIP: 1,2"], True, []),
    (b"AT+CRC=1", [], True, []),
    (b"AT+CRC?", [b"+CRC: 1"], True, []),
    (b'AT+CSCS="GSM"', [], True, []),
    (b"AT+CSCS?", [b'+CSCS: "GSM"'], True, []),
    (b'AT+CMGS="+8613800000000"', [], False, []),
    (b"AT+MIPCALL?", [b"+MIPCALL: 0"], True, []),
    (b'AT+MIPCALL=1,"cmnet"', [], True, [b"+MIPCALL: 127.0.0.1"]),
    (b"AT+MIPCALL?", [b"+MIPCALL: 1,127.0.0.1"], True, []),
    (b"AT+MIPCALL=0", [], True, []),
    (b"AT+MIPCALL?", [b"+MIPCALL: 0"], True, []),
    # The engine's own answers, framed the same way.
    (b"AT+CMEE?", [b"+CMEE: 0"], True, []),
    (b"AT+GTSMTPLAND?", [b"+GTSMTPLAND: 0"], True, []),
    (b'AT+GTSMTPLAND=25,"mail.fibocom.com"', [], True, []),
    (b"AT+GTSMTPLAND?", [b'+GTSMTPLAND: 25,"mail.fibocom.com"'], True, []),
    (b"AT+GTSMTPSEND=300", [], False, []),
    (b"ATD123", [], False, []),
    (b"AT+NOSUCH", [], False, []),
]


def frame(numeric, infos, ok, urcs):
    """An answer as V.250 frames it: `ATV1` verbose, `ATV0` numeric."""
    if numeric:
        return b"".join(i + b"\r\n" for i in infos) + (b"0\r" if ok else b"4\r") + b"".join(u + b"\r" for u in urcs)
    body = b"".join(b"\r\n" + i + b"\r\n" for i in infos)
    final = b"\r\nOK\r\n" if ok else b"\r\nERROR\r\n"
    return body + final + b"".join(b"\r\n" + u + b"\r\n" for u in urcs)


def exact(modem, expected):
    """The next bytes the modem says are `expected`, nothing before them."""
    got = modem.wait_for(expected, timeout=10)
    assert got == expected


def send(modem, line, echo, expected):
    modem.write(line + modem.eol)
    exact(modem, (line + b"\r" if echo else b"") + expected)


@pytest.mark.parametrize("numeric", [False, True], ids=["v1", "v0"])
@pytest.mark.parametrize("echo", [True, False], ids=["echo", "noecho"])
@pytest.mark.parametrize("eol", [b"\r", b"\r\n"], ids=["cr", "crlf"])
def test_every_basic_command_answers_exactly(atmail, modems, eol, echo, numeric):
    modem = Modem(atmail, eol=eol)
    modems.append(modem)
    exact(modem, POWER_UP)
    if not echo:
        send(modem, b"ATE0", True, b"\r\nOK\r\n")
    if numeric:
        send(modem, b"ATV0", echo, b"0\r")
    for line, infos, ok, urcs in TABLE:
        send(modem, line, echo, frame(numeric, infos, ok, urcs))
    assert modem.close() == 0
    assert modem.out[modem.seen :] == b""


def test_v0_and_q1_frame_errors_and_info_text(atmail, modems):
    """`ATV0` with `+CME ERROR`: no header, a CR alone; `ATQ1`: no result
    code at all, information text still; `ATZ` brings `V1`, `Q0`, echo
    and `AT+CMEE=0` back and says the power-up lines after its OK."""
    modem = Modem(atmail)
    modems.append(modem)
    exact(modem, POWER_UP)
    send(modem, b"ATE0V0", True, b"0\r")
    send(modem, b"AT+CMEE=2", False, b"0\r")
    send(modem, b"AT+NOSUCH", False, b"+CME ERROR: operation not supported\r")
    send(modem, b"AT+CREG=3", False, b"+CME ERROR: incorrect parameters\r")
    send(modem, b"ATE0V1X", False, b"+CME ERROR: operation not supported\r")  # none of it: still V0
    send(modem, b"AT+GTSMTPEND", False, b"+CME ERROR: not allowed now\r")
    send(modem, b"ATV1Q1", False, b"")
    send(modem, b"AT+CGMI", False, b'\r\n+CGMI: "Fibocom"\r\n')
    send(modem, b"AT+NOSUCH", False, b"")
    send(modem, b"AT+GTSMTPLAND?", False, b"\r\n+GTSMTPLAND: 0\r\n")
    send(modem, b"ATQ0", False, b"\r\nOK\r\n")
    send(modem, b"ATZ", False, b"\r\nOK\r\n" + POWER_UP)
    send(modem, b"AT+NOSUCH", True, b"\r\nERROR\r\n")
    send(modem, b"AT&F", True, b"\r\nOK\r\n" + POWER_UP)
    assert modem.close() == 0


def test_a_profile_gives_the_identity_and_a_bad_one_names_its_key(atmail, modems, tmp_path):
    profile = tmp_path / "module.toml"
    profile.write_text(
        'manufacturer = "Fibocom Wireless"\nimei = "352099001761481"\nimsi = "460001234567890"\n'
        'operator = "CHINA MOBILE"\noperator_numeric = "46000"\nrssi = 31\nber = 99\n'
        'revision = "G510_V0D.00.20"\nregistration = "roaming"\n'
    )
    modem = Modem(atmail, "--profile", str(profile))
    modems.append(modem)
    exact(modem, POWER_UP)
    send(modem, b"ATE0", True, b"\r\nOK\r\n")
    for line, info in [
        (b"AT+CGMI", b'+CGMI: "Fibocom Wireless"'),
        (b"AT+CGSN", b'+CGSN: "352099001761481"'),
        (b"AT+CIMI", b"+CIMI: 460001234567890"),
        (b"AT+CGMR", b'+CGMR: "G510_V0D.00.20"'),
        (b"ATI8", b"G510_V0D.00.20"),
        (b"AT+CSQ", b"+CSQ: 31,99"),
        (b"AT+CREG?", b"+CREG: 0,5"),
        (b"AT+COPS?", b'+COPS: 0,0,"CHINA MOBILE"'),
    ]:
        send(modem, line, False, frame(False, [info], True, []))
    assert modem.close() == 0

    for text, key in [
        ('imei = "352099001761482"\n', "imei"),
        ('imei = "35209900176148"\n', "imei"),
        ("rssi = 40\n", "rssi"),
        ('lac = "12"\n', "lac"),
        ('imeii = "352099001761481"\n', "imeii"),
        ('model = "G510"\nrssi = "strong"\n', "rssi"),
    ]:
        profile.write_text(text)
        run = subprocess.run([str(atmail), "modem", "--profile", str(profile)], input=b"AT\r", capture_output=True)
        assert run.returncode != 0, text
        assert run.stdout == b"", text  # nothing said on the line
        err = run.stderr.decode()
        assert err.startswith("atmail: error: --profile ") and key in err, err
        assert len(err.splitlines()) == 1, err


def test_registration_lost_and_regained_with_urcs(atmail, modems, tmp_path):
    path = tmp_path / "control"
    modem = Modem(atmail, "--control", str(path))
    modems.append(modem)
    control = Control(path)
    try:
        exact(modem, POWER_UP)
        send(modem, b"ATE0", True, b"\r\nOK\r\n")
        send(modem, b"AT+CMEE=2", False, b"\r\nOK\r\n")
        send(modem, b"AT+CREG=2", False, b"\r\nOK\r\n")
        send(modem, b"AT+CGREG=1", False, b"\r\nOK\r\n")
        send(modem, b'AT+MIPCALL=1,"cmnet"', False, b"\r\nOK\r\n\r\n+MIPCALL: 127.0.0.1\r\n")
        assert control("registration searching") == "ok"
        exact(modem, b"\r\n+CREG: 2\r\n\r\n+CGREG: 2\r\n\r\n+MIPCALL: 0\r\n")
        send(modem, b"AT+CREG?", False, b"\r\n+CREG: 2,2\r\n\r\nOK\r\n")
        send(modem, b"AT+COPS?", False, b"\r\n+COPS: 0\r\n\r\nOK\r\n")
        send(modem, b'AT+MIPCALL=1,"cmnet"', False, b"\r\n+CME ERROR: no network service\r\n")
        assert control("registration roaming") == "ok"
        exact(modem, b'\r\n+CREG: 5,"2A4F","0B12"\r\n\r\n+CGREG: 5\r\n')
        assert control("signal 7 3") == "ok"
        send(modem, b"AT+CSQ", False, b"\r\n+CSQ: 7,3\r\n\r\nOK\r\n")
        assert control("sim drop") == "ok"
        exact(modem, b"\r\n+SIM DROP\r\n\r\n+CREG: 0\r\n\r\n+CGREG: 0\r\n")
        send(modem, b"AT+CPIN?", False, b"\r\n+CME ERROR: SIM not inserted\r\n")
        send(modem, b"AT+CIMI", False, b"\r\n+CME ERROR: SIM not inserted\r\n")
        assert control("sim ready") == "ok"
        exact(modem, b'\r\n+SIM READY\r\n\r\n+CREG: 5,"2A4F","0B12"\r\n\r\n+CGREG: 5\r\n')
        send(modem, b"AT+CFUN=0", False, b"\r\nOK\r\n\r\n+CREG: 0\r\n\r\n+CGREG: 0\r\n")
        send(modem, b"AT+CFUN=1", False, b'\r\nOK\r\n\r\n+CREG: 5,"2A4F","0B12"\r\n\r\n+CGREG: 5\r\n')
        assert control("registration away").startswith("error: ")
        assert control("signal 40 0").startswith("error: ")
        assert modem.out[modem.seen :] == b""
    finally:
        control.close()
    assert modem.close() == 0
    assert not path.exists()


def configure(modem, land=b'25,"mail.fibocom.com"'):
    """Echo off, the data call, and a mail's configuration."""
    modem.at(b"ATE0")
    modem.at(b'AT+MIPCALL=1,"cmnet"', b"+MIPCALL: 127.0.0.1\r\n")
    modem.at(b"AT+GTSMTPLAND=" + land)
    modem.at(b'AT+GTSMTPID="wangww@fibocom.com","secret"')
    modem.at(b'AT+GTSMTPDST=1,1,"xiangj@fibocom.com"')
    modem.at(b'AT+GTSMTPHEAD=1,"network test"')


GUARD_MS = 100


def escape(modem):
    time.sleep(GUARD_MS * 2.5 / 1000)
    modem.write(b"+++")
    time.sleep(GUARD_MS * 2.5 / 1000)


@pytest.mark.parametrize("event", ["registration searching", "data-call lost"])
def test_a_mail_in_flight_fails_when_the_network_goes(atmail, modems, tmp_path, event):
    """The network goes while the host streams the body: URC 0 at once,
    the body's data mode ends with ERROR, nothing is delivered, and the
    reason names the network. Regained, the next mail is delivered."""
    path, maildir = tmp_path / "control", tmp_path / "mail"
    modem = Modem(atmail, "--maildir", str(maildir), "--control", str(path), "--guard-ms", str(GUARD_MS))
    modems.append(modem)
    control = Control(path)
    try:
        configure(modem)
        modem.at(b"AT+GTSMTPSEND=300", b"+GTSMTPSEND: 2\r\n")
        modem.at(b"AT+GTSMTPDATA=300", b"> ")
        modem.write(b"the first half of the body\r\n")
        assert control(event) == "ok"
        modem.wait_for(b"+MIPCALL: 0\r\n" if event == "data-call lost" else b"+GTSMTPSEND: 0\r\n")
        modem.write(b"the rest, dropped\r\n")
        escape(modem)
        modem.wait_for(b"\r\nERROR\r\n")
        assert b"+GTSMTPSEND: 0\r\n" in modem.out
        assert list((maildir / "new").iterdir()) == []
        modem.at(b"AT+GTSMTPSEND=300", b"\r\nERROR\r\n")  # no data call
        if event == "registration searching":
            assert control("registration home") == "ok"
        modem.at(b'AT+MIPCALL=1,"cmnet"', b"+MIPCALL: 127.0.0.1\r\n")
        modem.at(b"AT+GTSMTPSEND=300", b"+GTSMTPSEND: 2\r\n")
        modem.at(b"AT+GTSMTPDATA=300", b"> ")
        modem.write(b"a whole body\r\n")
        escape(modem)
        modem.wait_for(b"+GTSMTPDATA: 14\r\n\r\nOK\r\n")
        modem.at(b"AT+GTSMTPEND", b"+GTSMTPSEND: 1\r\n")
    finally:
        control.close()
    assert modem.close() == 0
    (delivered,) = list((maildir / "new").iterdir())
    assert b"network test" in delivered.read_bytes()
    reason = {
        "registration searching": "atmail: mail failed: the network registration was lost (+CREG: 2, searching)",
        "data-call lost": "atmail: mail failed: the data call dropped (+MIPCALL: 0)",
    }[event]
    assert modem.err.decode().count("atmail: mail failed:") == 1, modem.err
    assert reason in modem.err.decode(), modem.err


def test_device_serves_a_uart_as_the_pty_does(atmail, modems, tmp_path):
    """`--device` on a pty's slave (standing in for /dev/ttyUSB0): raw,
    at the rate asked, RTS/CTS set with `--rtscts` and by `AT&K3`/`AT&K0`,
    `AT+IPR` changes the rate after its OK; and a host's session gets the
    same bytes as over `--pty`."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    modem = Modem(atmail, "--device", path, "--baud", "57600", "--rtscts", "--maildir", str(tmp_path / "a"))
    modems.append(modem)
    try:
        got = b""
        script = [b"ATE0", b"AT+CGSN", b"AT+IPR?", b"AT&K0", b"AT+CSQ", b"AT&K3", b"AT+IPR=9600", b"AT+IPR?"]

        while POWER_UP not in got:
            got += os.read(master, 4096)
        attrs = termios.tcgetattr(slave)
        assert attrs[4] == attrs[5] == termios.B57600
        assert attrs[2] & termios.CRTSCTS
        assert not attrs[3] & (termios.ICANON | termios.ECHO | termios.ISIG)
        assert not attrs[1] & termios.OPOST
        device_out = []
        for line in script:
            before = len(got)
            os.write(master, line + b"\r")
            while not got[before:].endswith(b"OK\r\n"):
                got += os.read(master, 4096)
            device_out.append(got[before:])
            if line == b"AT&K0":
                assert not termios.tcgetattr(slave)[2] & termios.CRTSCTS
            if line == b"AT&K3":
                assert termios.tcgetattr(slave)[2] & termios.CRTSCTS
        assert termios.tcgetattr(slave)[4] == termios.B9600
    finally:
        os.close(master)
        os.close(slave)
    pty = Modem(atmail, "--maildir", str(tmp_path / "b"), pty=True)
    modems.append(pty)
    pty_out = []
    for line in script:
        pty.write(line + b"\r")
        pty_out.append(pty.wait_for(b"OK\r\n", timeout=10))
    # The power-up lines reach a pty's host only if it was open when they
    # were said (pyserial flushes what came before it opened the port).
    pty_out[0] = pty_out[0].removeprefix(POWER_UP)
    # The pty's rate is 0 (autobaud) until set, the device's the one given.
    assert device_out[2] == b"\r\n+IPR: 57600\r\n\r\nOK\r\n" and pty_out[2] == b"\r\n+IPR: 0\r\n\r\nOK\r\n"
    assert device_out[:2] + device_out[3:] == pty_out[:2] + pty_out[3:]
