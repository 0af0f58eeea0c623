"""The AT interface of `atmail modem`, byte for byte, through the process:
every command's set, read and test form and every alias (DESIGN.md's
table), and a table of bad lines that each get `ERROR` and change no read
form. The password never appears in anything the modem prints."""

import subprocess

import pytest

from g510 import Modem

PASSWORD = b"ght64621178"
OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"


def info(*lines):
    return b"".join(b"\r\n" + line + b"\r\n" for line in lines) + OK


# In order, on one modem: each line and the exact answer.
FORMS = [
    (b"AT+GTSMTPLAND=?", info(b'+GTSMTPLAND: (1-65535),("SERVER ADDR"),(0-3)')),
    (b"AT+GTSMTPLAND?", info(b"+GTSMTPLAND: 0")),
    (b'at+gtsmtpland=25,"mail.fibocom.com"', OK),
    (b"AT+GTSMTPLAND?", info(b'+GTSMTPLAND: 25,"mail.fibocom.com"')),
    (b'AT+GTSMTPLAND=465,"smtp.example.com",1', OK),
    (b"AT+GTSMTPLAND?", info(b'+GTSMTPLAND: 465,"smtp.example.com",1')),
    (b'AT+GTSMTPLAND=587,"[192.0.2.1]",0', OK),
    (b"AT+GTSMTPLAND?", info(b'+GTSMTPLAND: 587,"[192.0.2.1]",0')),
    (b'AT+GTSMTPLAND=587,"[192.0.2.1]",2', OK),
    (b"AT+GTSMTPLAND?", info(b'+GTSMTPLAND: 587,"[192.0.2.1]",2')),
    (b'AT+GTSMTPLAND=25,"relay.lan",3', OK),
    (b"AT+GTSMTPLAND?", info(b'+GTSMTPLAND: 25,"relay.lan",3')),
    (b"AT+GTSMTPERR=?", OK),
    (b"AT+GTSMTPERR?", info(b'+GTSMTPERR: 0,""')),
    (b"AT+GTSMTPID=?", info(b'+GTSMTPID: ("username"),("password")')),
    (b"AT+GTSMTPID?", info(b"+GTSMTPID: 0")),
    (b'AT+GTSMTPID="wangww@fibocom.com","' + PASSWORD + b'"', OK),
    (b"AT+GTSMTPID?", info(b'+GTSMTPID: "wangww@fibocom.com","*****"')),
    (b"AT+GTSMTPDST=?", info(b'+GTSMTPDST: (0-1),(1-3),("receiver ID")')),
    (b"AT+GTSMPDST=?", info(b'+GTSMTPDST: (0-1),(1-3),("receiver ID")')),
    (b"AT+GTSMTPDST?", info(b"+GTSMTPDST: 0")),
    (b'AT+GTSMTPDST=1,1,"a@fibocom.com"', OK),
    (b'at+gtsmpdst=1,2,"b@fibocom.com"', OK),
    (b'AT+GTSMTPDST=1,3,"c@fibocom.com"', OK),
    (b'AT+GTSMTPDST=1,3,"c@fibocom.com"', OK),  # already there: no change
    (
        b"AT+GTSMTPDST?",
        info(b'+GTSMTPDST: 1,"a@fibocom.com"', b'+GTSMTPDST: 2,"b@fibocom.com"', b'+GTSMTPDST: 3,"c@fibocom.com"'),
    ),
    (b'AT+GTSMTPDST=0,2,"b@fibocom.com"', OK),
    (b"AT+GTSMPDST?", info(b'+GTSMTPDST: 1,"a@fibocom.com"', b'+GTSMTPDST: 3,"c@fibocom.com"')),
    (b"AT+GTSMTPHEAD=?", info(b'+GTSMTPHEAD: (0-3),("Title")')),
    (b"AT+GTSMPHEAD=?", info(b'+GTSMTPHEAD: (0-3),("Title")')),
    (b"AT+GTSMTPEHEAD=?", info(b'+GTSMTPHEAD: (0-3),("Title")')),
    (b"AT+GTSMTPHEAD?", info(b"+GTSMTPHEAD: 0")),
    (b'AT+GTSMTPHEAD=0,"hello"', OK),
    (b"AT+GTSMTPHEAD?", info(b'+GTSMTPHEAD: 0,"hello"')),
    (b'AT+GTSMPHEAD=1,"h\xc3\xa9llo"', OK),
    (b"AT+GTSMTPHEAD?", info(b'+GTSMTPHEAD: 1,"h\xc3\xa9llo"')),
    (b'AT+GTSMTPEHEAD=3,"\xb3\x5c"', OK),  # 許 in BIG5: a literal backslash byte
    (b"AT+GTSMTPEHEAD?", info(b'+GTSMTPHEAD: 3,"\xb3\x5c"')),
    (b'AT+GTSMTPEHEAD=2,"' + "你好 smtp".encode("gb2312") + b'"', OK),
    (b"AT+GTSMTPHEAD?", info(b'+GTSMTPHEAD: 2,"' + "你好 smtp".encode("gb2312") + b'"')),
    (b"AT+GTSMTPSEND=?", info(b"+GTSMTPSEND: (100-48000)")),
    (b"AT+GTSMPSEND=?", info(b"+GTSMTPSEND: (100-48000)")),
    (b"AT+GTSMTSEND=?", info(b"+GTSMTPSEND: (100-48000)")),
    (b"AT+GTSMTPSEND?", OK),
    (b"AT+GTSMTPDATA=?", info(b"+GTSMTPDATA: (1-48000),(3-20)")),
    (b"AT+GTSMPDATA=?", info(b"+GTSMTPDATA: (1-48000),(3-20)")),
    (b"AT+GTSMTPPDATA=?", info(b"+GTSMTPDATA: (1-48000),(3-20)")),
    (b"AT+GTSMTPDATA?", OK),
    (b"AT+GTSMTPFILE=?", info(b'+GTSMTPFILE: (0-1),("file name"),(3-20)')),
    (b"AT+GTSMPFILE=?", info(b'+GTSMTPFILE: (0-1),("file name"),(3-20)')),
    (b"AT+GTSMTPPFILE=?", info(b'+GTSMTPFILE: (0-1),("file name"),(3-20)')),
    (b"AT+GTSMTMPFILE=?", info(b'+GTSMTPFILE: (0-1),("file name"),(3-20)')),
    (b"AT+GTSMTPLIB=?", info(b'+GTSMTPFILE: (0-1),("file name"),(3-20)')),
    (b"AT+GTSMTPFILE?", info(b"+GTSMTPFILE: 0")),
    (b"AT+GTSMTPEND=?", OK),
    (b"AT+GTSMPEND=?", OK),
    (b"AT+GTSMTPEND?", OK),
    (b"AT+GTSMTPEND", ERROR),  # no mail in progress
    (b"AT+GTSMTPBDAT=?", info(b"+GTSMTPBDAT: (0-2)")),
    (b"AT+GTSMTPBDAT?", info(b"+GTSMTPBDAT: 1")),
    (b"at+gtsmtpbdat=0", OK),
    (b"AT+GTSMTPBDAT?", info(b"+GTSMTPBDAT: 0")),
    (b"AT+GTSMTPBDAT=2", OK),
    (b"AT+GTSMTPBDAT?", info(b"+GTSMTPBDAT: 2")),
    (b"AT+GTSMTPCLR=?", OK),
    (b"AT+GTSMPCLR=?", OK),
    (b"AT+GTSMTPLR=?", OK),
    (b"AT+GTSMTPCLR?", OK),
    (b"AT+GTSMTPLR", OK),
    (b"AT+GTSMTPBDAT?", info(b"+GTSMTPBDAT: 1")),  # CLR restores the default
    (b"AT+GTSMTPLAND?", info(b"+GTSMTPLAND: 0")),
    (b"AT+GTSMTPID?", info(b"+GTSMTPID: 0")),
    (b"AT+GTSMTPDST?", info(b"+GTSMTPDST: 0")),
    (b"AT+GTSMTPHEAD?", info(b"+GTSMTPHEAD: 0")),
    (b'AT+GTSMTPLAND=25,"a.example"', OK),
    (b"AT+GTSMPCLR", OK),
    (b"AT+GTSMTPLAND?", info(b"+GTSMTPLAND: 0")),
    # The module shell around the engine.
    (b"AT", OK),
    (b"at&k3", OK),
    (b"AT+MIPCALL?", info(b"+MIPCALL: 0")),
    (b"ATD123", ERROR),
    (b"AT+CMGS=\"123\"", ERROR),  # SMS is not sent
]


@pytest.fixture
def modem(atmail):
    modem = Modem(atmail)
    modem.at(b"ATE0")
    yield modem
    modem.kill()


def answer(modem, line):
    """Sends a line and returns its whole answer, up to its final result."""
    modem.write(line + b"\r")
    got = b""
    while not (got.endswith(OK) or got.endswith(ERROR)):
        got += modem.wait_for(b"\r\n", timeout=5)
    return got


def test_every_form_and_alias_answers_exactly(modem):
    for line, expected in FORMS:
        assert answer(modem, line) == expected, line
    assert modem.close() == 0
    assert PASSWORD not in modem.out and PASSWORD not in modem.err


READS = [b"AT+GTSMTPLAND?", b"AT+GTSMTPID?", b"AT+GTSMTPDST?", b"AT+GTSMTPHEAD?", b"AT+GTSMTPFILE?", b"AT+GTSMTPBDAT?"]


def snapshot(modem):
    return [answer(modem, line) for line in READS]


def long(n):
    return b"x" * n


BAD_LINES = [
    # (why, line)
    ("port 0", b'AT+GTSMTPLAND=0,"mail.fibocom.com"'),
    ("port 65536", b'AT+GTSMTPLAND=65536,"mail.fibocom.com"'),
    ("mode 4", b'AT+GTSMTPLAND=25,"mail.fibocom.com",4'),
    ("unquoted server", b"AT+GTSMTPLAND=25,mail.fibocom.com"),
    ("unclosed quote", b'AT+GTSMTPLAND=25,"mail.fibocom.com'),
    ("256-byte server", b'AT+GTSMTPLAND=25,"' + long(256) + b'"'),
    ("empty server", b'AT+GTSMTPLAND=25,""'),
    ("NUL in server", b'AT+GTSMTPLAND=25,"mail\x00.fibocom.com"'),
    ("space in server", b'AT+GTSMTPLAND=25,"mail fibocom.com"'),
    ("port not a number", b'AT+GTSMTPLAND=smtp,"mail.fibocom.com"'),
    ("81-byte user", b'AT+GTSMTPID="' + long(81) + b'","p"'),
    ("81-byte password", b'AT+GTSMTPID="a@b.c","' + long(81) + b'"'),
    ("no password", b'AT+GTSMTPID="a@b.c"'),
    ("NUL in password", b'AT+GTSMTPID="a@b.c","p\x00w"'),
    ("recipient mode 2", b'AT+GTSMTPDST=2,1,"d@fibocom.com"'),
    ("recipient type 4", b'AT+GTSMTPDST=1,4,"d@fibocom.com"'),
    ("recipient type 0", b'AT+GTSMTPDST=1,0,"d@fibocom.com"'),
    ("unquoted recipient", b"AT+GTSMTPDST=1,1,d@fibocom.com"),
    ("81-byte recipient", b'AT+GTSMTPDST=1,1,"' + long(70) + b'@fibocom.com"'),
    ("not an address", b'AT+GTSMTPDST=1,1,"nobody"'),
    ("LF smuggling a command", b'AT+GTSMTPDST=1,1,"d@fibocom.com\nRCPT TO:<evil@x.y>"'),
    ("angle brackets", b'AT+GTSMTPDST=1,1,"d@fibocom.com>,<evil@x.y"'),
    ("delete a recipient not there", b'AT+GTSMTPDST=0,1,"nobody@fibocom.com"'),
    ("21st recipient", b'AT+GTSMTPDST=1,1,"r21@fibocom.com"'),
    ("charset 4", b'AT+GTSMTPHEAD=4,"x"'),
    ("non-ASCII under US-ASCII", b'AT+GTSMTPHEAD=0,"h\xc3\xa9"'),
    ("invalid UTF-8", b'AT+GTSMTPHEAD=1,"\xff\xfe"'),
    ("invalid GB2312", b'AT+GTSMTPHEAD=2,"\x80\x40"'),
    ("invalid BIG5", b'AT+GTSMTPHEAD=3,"\xff\xff"'),
    ("201-byte subject", b'AT+GTSMTPHEAD=0,"' + long(201) + b'"'),
    ("NUL in subject", b'AT+GTSMTPHEAD=0,"a\x00b"'),
    ("time 99", b"AT+GTSMTPSEND=99"),
    ("time 48001", b"AT+GTSMTPSEND=48001"),
    ("DATA with no mail", b"AT+GTSMTPDATA=300"),
    ("DATA break_time 2", b"AT+GTSMTPDATA=300,2"),
    ("FILE with no mail", b'AT+GTSMTPFILE=1,"a.txt"'),
    ("FILE mode 2", b'AT+GTSMTPFILE=2,"a.txt"'),
    ("END with no mail", b"AT+GTSMTPEND"),
    ("parameters to END", b"AT+GTSMTPEND=1"),
    ("unknown GTSMTP command", b"AT+GTSMTPFOO=1"),
    ("trailing garbage", b'AT+GTSMTPLAND=25,"mail.fibocom.com"x'),
    ("extra parameter", b'AT+GTSMTPID="a@b.c","p","q"'),
    ("bdat 3", b"AT+GTSMTPBDAT=3"),
    ("bdat without a mode", b"AT+GTSMTPBDAT="),
    ("bdat quoted", b'AT+GTSMTPBDAT="1"'),
    ("bdat two modes", b"AT+GTSMTPBDAT=1,2"),
    ("bdat execute form", b"AT+GTSMTPBDAT"),
]


@pytest.fixture
def configured(modem):
    """A full configuration (20 recipients) whose read forms must survive
    every bad line."""
    modem.at(b'AT+GTSMTPLAND=25,"mail.fibocom.com"')
    modem.at(b'AT+GTSMTPID="wangww@fibocom.com","' + PASSWORD + b'"')
    for i in range(1, 21):
        modem.at(b'AT+GTSMTPDST=1,%d,"r%d@fibocom.com"' % (1 + i % 3, i))
    modem.at(b'AT+GTSMTPHEAD=2,"' + "你好 smtp".encode("gb2312") + b'"')
    return modem


def test_bad_lines_get_error_and_change_nothing(configured):
    modem = configured
    before = snapshot(modem)
    assert len(before[2].split(b"+GTSMTPDST: ")) == 21
    for why, line in BAD_LINES:
        assert answer(modem, line) == ERROR, why
        assert snapshot(modem) == before, why
    # A CR ends a line, so a CR-injected "command" is two lines: the first
    # is refused, and the second has no AT prefix, so V.250 ignores it.
    assert answer(modem, b'AT+GTSMTPDST=1,1,"d@fibocom.com') == ERROR
    modem.write(b'RCPT TO:<evil@x.y>"\r')
    assert answer(modem, b"AT") == OK
    assert snapshot(modem) == before
    assert modem.close() == 0
    assert PASSWORD not in modem.out and PASSWORD not in modem.err


@pytest.mark.parametrize("flag,code", [("off", b"0"), ("auto", b"1"), ("force", b"2")])
def test_bdat_flag_is_the_default_clr_restores(atmail, flag, code):
    modem = Modem(atmail, "--bdat", flag)
    try:
        modem.at(b"ATE0")
        assert answer(modem, b"AT+GTSMTPBDAT?") == info(b"+GTSMTPBDAT: " + code)
        other = b"2" if code != b"2" else b"0"
        assert answer(modem, b"AT+GTSMTPBDAT=" + other) == OK
        assert answer(modem, b"AT+GTSMTPBDAT?") == info(b"+GTSMTPBDAT: " + other)
        assert answer(modem, b"AT+GTSMTPCLR") == OK
        assert answer(modem, b"AT+GTSMTPBDAT?") == info(b"+GTSMTPBDAT: " + code)
        assert modem.close() == 0
    finally:
        modem.kill()


def test_a_bad_bdat_flag_stops_the_modem(atmail):
    run = subprocess.run([str(atmail), "modem", "--bdat", "sometimes"], capture_output=True, timeout=10)
    assert run.returncode != 0
    assert b"--bdat" in run.stderr and b"off, auto, force" in run.stderr


def test_verbose_errors_say_why(configured):
    modem = configured
    modem.at(b"AT+CMEE=2")
    cases = [
        (b"AT+GTSMTPSEND=99", b"\r\n+CME ERROR: "),
        (b'AT+GTSMTPDST=1,1,"r21@fibocom.com"', b"\r\n+CME ERROR: too many recipients\r\n"),
        (b"AT+GTSMTPDATA=300", b"\r\n+CME ERROR: not allowed now\r\n"),
        (b'AT+GTSMTPHEAD=1,"\xff"', b"\r\n+CME ERROR: "),
        (b"AT+GTSMTPSEND=300", b"\r\n+CME ERROR: network not up (AT+MIPCALL)\r\n"),
    ]
    for line, expected in cases:
        modem.write(line + b"\r")
        got = modem.wait_for(b"\r\n", timeout=5)
        got += modem.wait_for(b"\r\n", timeout=5)
        assert got.startswith(expected), (line, got)
    modem.at(b"AT+CMEE=0")
    assert answer(modem, b"AT+GTSMTPSEND=99") == ERROR


def test_a_body_invalid_in_its_charset_aborts_the_mail(atmail, tmp_path):
    """Under GB2312, body bytes that are not GB2312 abort the mail: the rest
    of the payload is dropped, the data command answers ERROR at the
    escape, and nothing is delivered."""
    maildir = tmp_path / "mail"
    modem = Modem(atmail, "--maildir", str(maildir), "--guard-ms", "200")
    try:
        modem.at(b"ATE0")
        modem.at(b'AT+MIPCALL=1,"cmnet"', b"+MIPCALL: 127.0.0.1\r\n")
        modem.at(b'AT+GTSMTPLAND=25,"mail.fibocom.com"')
        modem.at(b'AT+GTSMTPID="wangww@fibocom.com","' + PASSWORD + b'"')
        modem.at(b'AT+GTSMTPDST=1,1,"xiangj@fibocom.com"')
        modem.at(b'AT+GTSMTPHEAD=2,"x"')
        modem.at(b"AT+GTSMTPSEND=300", b"+GTSMTPSEND: 2\r\n")
        modem.at(b"AT+GTSMTPDATA=300", b"> ")
        modem.data(b"ok text \x80\x40 then AT+GTSMTPEND\r\n more", guard=0.2)
        assert modem.wait_for(ERROR, timeout=5) == ERROR
        modem.at(b"AT+GTSMTPCLR")
        assert modem.close() == 0
        assert list((maildir / "new").iterdir()) == []
        assert b"+GTSMTPSEND: 1" not in modem.out
    finally:
        modem.kill()


def test_line_editing_is_v250_through_the_modem(atmail):
    """Backspace edits a line (echoed BS SP BS), noise before AT is ignored,
    CRLF and CR line endings both work, and an overlong line is refused
    whole rather than cut into another command."""
    modem = Modem(atmail)
    try:
        modem.write(b'AT+GTSMTPLAND=25,"mail.fibocom.com"\r\n')
        modem.wait_for(OK)
        modem.write(b"xx AT+GTSMTPLANX\x08D?\r")
        assert modem.wait_for(OK) == (
            b'xx AT+GTSMTPLANX\x08 \x08D?\r\r\n+GTSMTPLAND: 25,"mail.fibocom.com"\r\n' + OK
        )
        modem.at(b"ATE0")
        too_long = b'AT+GTSMTPLAND=25,"' + b"a" * 300 + b'"'
        assert answer(modem, too_long) == ERROR
        assert answer(modem, b"AT+GTSMTPLAND?") == b'\r\n+GTSMTPLAND: 25,"mail.fibocom.com"\r\n' + OK
        assert modem.close() == 0
    finally:
        modem.kill()
