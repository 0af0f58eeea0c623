"""The G510 driver's reading of a module's lines, over a scripted port: each
command line the driver writes gets the bytes a module may really send for
it, in any interleaving (URCs before the final result, echo, answers split
into single bytes), so every ordering the serial line allows is met. Also
what `send_mail` checks before its first command, and how it reads a file
payload."""

import io

import pytest

import atmail


class ScriptedPort:
    """Answers each written command line from `script` (a list of
    (expected line, reply bytes)); reads come `piece` bytes at a time."""

    def __init__(self, script, piece=64, echo=False):
        self.script = list(script)
        self.piece = piece
        self.echo = echo
        self.pending = b""
        self.written = []
        self.payload = b""
        self.timeout = 0.01
        self.is_open = True

    def write(self, data):
        self.written.append(bytes(data))
        if data != b"+++" and not data.endswith(b"\r"):
            self.payload += data  # data mode: no answer
            return len(data)
        line = data if data == b"+++" else data[:-1]
        expected, reply = self.script.pop(0)
        assert line == expected, (line, expected)
        self.pending += (data if self.echo else b"") + reply
        return len(data)

    @property
    def in_waiting(self):
        return len(self.pending)

    def read(self, n):
        take = min(n, self.piece, len(self.pending))
        data, self.pending = self.pending[:take], self.pending[take:]
        return data


OK = b"\r\nOK\r\n"
LIMIT = 20 << 20  # the spec's 20 MiB, for the body and for the attachments together
START = [(b"AT", OK), (b"AT+CMEE=2", OK)]


def driver(script, **kwargs):
    port = ScriptedPort(START + script, **kwargs)
    return atmail.G510(port, timeout=1.0, guard=0.01), port


@pytest.mark.parametrize("piece", [1, 2, 7, 64])
@pytest.mark.parametrize("echo", [False, True])
def test_answers_and_urcs_however_they_interleave(piece, echo):
    module, port = driver(
        [
            # A URC before the final result, and one the driver does not know.
            (b"AT+GTSMTPSEND=300", b"\r\n+GTSMTPSEND: 2\r\n\r\n+CREG: 1\r\n" + OK),
            (b"AT+MIPCALL?", b"\r\n+MIPCALL: 1,10.0.0.7\r\n" + OK),
            # The information line of a query, then a URC, then OK.
            (b"AT+GTSMTPDST?", b"\r\n+GTSMTPDST: 1,1,\"a@b.c\"\r\n\r\n+GTSMTPSEND: 550\r\n" + OK),
        ],
        piece=piece,
        echo=echo,
    )
    assert module.command("AT+GTSMTPSEND=300") == []
    assert module.wait_urc("GTSMTPSEND", 1.0) == "2"
    assert module.command("AT+MIPCALL?") == ["1,10.0.0.7"]
    assert module.command("AT+GTSMTPDST?") == ['1,1,"a@b.c"']
    assert module.wait_urc("GTSMTPSEND", 1.0) == "550"
    assert module.wait_urc("CREG", 1.0) == "1"


@pytest.mark.parametrize(
    "rtscts, flow_control, sent",
    [
        (None, None, []),  # a port with no RTS/CTS setting: the module is left alone
        (False, None, []),
        (True, None, [b"AT&K3"]),
        (True, False, [b"AT&K0"]),
        (None, True, [b"AT&K3"]),
        (False, False, [b"AT&K0"]),
    ],
)
def test_flow_control_follows_the_port_unless_told(rtscts, flow_control, sent):
    port = ScriptedPort(START + [(line, OK) for line in sent])
    if rtscts is not None:
        port.rtscts = rtscts
    atmail.G510(port, flow_control=flow_control, timeout=1.0, guard=0.01)
    assert port.script == []
    assert [w for w in port.written if w.startswith(b"AT&K")] == [line + b"\r" for line in sent]


def test_a_module_refusing_flow_control_is_a_modem_error():
    port = ScriptedPort(START + [(b"AT&K3", b"\r\n+CME ERROR: operation not supported\r\n")])
    port.rtscts = True
    with pytest.raises(atmail.ModemError) as refused:
        atmail.G510(port, timeout=1.0, guard=0.01)
    assert (refused.value.command, refused.value.text) == ("AT&K3", "operation not supported")


@pytest.mark.parametrize("piece", [1, 64])
def test_refusals_carry_the_modules_text(piece):
    module, _ = driver(
        [
            (b'AT+GTSMTPDST=1,1,"x"', b"\r\n+CME ERROR: invalid address\r\n"),
            (b"AT+BOGUS", b"\r\nERROR\r\n"),
        ],
        piece=piece,
    )
    with pytest.raises(atmail.ModemError) as refused:
        module.command('AT+GTSMTPDST=1,1,"x"')
    assert (refused.value.command, refused.value.text) == ('AT+GTSMTPDST=1,1,"x"', "invalid address")
    with pytest.raises(atmail.ModemError) as refused:
        module.command("AT+BOGUS")
    assert refused.value.text == "ERROR"


@pytest.mark.parametrize("piece", [1, 3, 64])
@pytest.mark.parametrize("echo", [False, True])
def test_the_data_prompt_split_anywhere(piece, echo):
    module, port = driver([(b"AT+GTSMTPDATA=300", b"\r\n> ")], piece=piece, echo=echo)
    assert module.command("AT+GTSMTPDATA=300", prompt=True) == []
    # Nothing of the prompt is left to be taken for a line later.
    assert module._rx == b"" and not module._lines


def test_no_answer_is_a_timeout_not_a_hang():
    module, port = driver([(b"AT+GTSMTPEND", b"")])
    with pytest.raises(atmail.ModemTimeout, match="AT\\+GTSMTPEND"):
        module.command("AT+GTSMTPEND", timeout=0.1)


class Trickle(io.RawIOBase):
    """A raw stream that hands out at most 777 bytes a read, as a pipe
    does."""

    def __init__(self, data):
        self.data = data

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), 777, len(self.data))
        buffer[:n], self.data = self.data[:n], self.data[n:]
        return n


def mail_script(payload_len):
    """A module's answers to the whole of `send_mail` with one body."""
    return [
        (b"AT+MIPCALL?", b"\r\n+MIPCALL: 1,10.0.0.7\r\n" + OK),
        (b"AT+GTSMTPCLR", OK),
        (b'AT+GTSMTPLAND=25,"smtp.example.com",0', OK),
        (b'AT+GTSMTPID="user","secret"', OK),
        (b'AT+GTSMTPDST=1,1,"one@example.com"', OK),
        (b'AT+GTSMTPHEAD=1,"hi"', OK),
        (b"AT+GTSMTPSEND=300", OK + b"\r\n+GTSMTPSEND: 2\r\n"),
        (b"AT+GTSMTPDATA=300", b"\r\n> "),
        (b"+++", b"\r\n+GTSMTPDATA: %d\r\n" % payload_len + OK),
        (b"AT+GTSMTPEND", OK + b"\r\n+GTSMTPSEND: 1\r\n"),
    ]


def send(module, body=None, attachments=()):
    module.send_mail(
        "smtp.example.com", 25, "user", "secret", ["one@example.com"],
        subject="hi", body=body, attachments=attachments,
    )


def test_a_file_payload_is_read_whole_through_short_reads():
    body = bytes(range(256)).replace(b"\r", b"") * 40
    module, port = driver(mail_script(len(body)))
    send(module, body=Trickle(body))
    assert port.payload == body
    assert not port.script


@pytest.mark.parametrize(
    "body, attachments",
    [
        (bytes(LIMIT + 1), ()),
        (Trickle(bytes(LIMIT + 1)), ()),
        (None, [("a.bin", io.BytesIO(bytes(LIMIT + 1)))]),
        (None, [("a.bin", bytes(LIMIT // 2 + 1)), ("b.bin", bytes(LIMIT // 2))]),
    ],
    ids=["body", "body-pipe", "attachment-file", "attachments-together"],
)
def test_past_20_mib_is_refused_before_any_command(body, attachments):
    module, port = driver([])
    before = list(port.written)
    with pytest.raises(ValueError, match=f"at most {LIMIT}"):
        send(module, body=body, attachments=attachments)
    assert port.written == before


def test_20_mib_of_attachments_together_is_not_refused_before_sending():
    """The limit is on the attachments together and on the body, each at
    20 MiB: a 20 MiB body beside 20 MiB of attachments passes the checks
    and reaches the module (whose script here ends at the first command)."""
    module, port = driver([(b"AT+MIPCALL?", b"\r\nERROR\r\n")])
    half = bytes(LIMIT // 2)
    with pytest.raises(atmail.ModemError):
        send(module, body=bytes(LIMIT), attachments=[("a", half), ("b", half)])
    assert port.written[-1] == b"AT+MIPCALL?\r"


def failing_script(verdict, err_answer):
    """`mail_script` up to SEND, which the server refuses with `verdict`;
    then the module's answer to `AT+GTSMTPERR?`."""
    return mail_script(1)[:6] + [
        (b"AT+GTSMTPSEND=300", OK + b"\r\n+GTSMTPSEND: %d\r\n" % verdict),
        (b"AT+GTSMTPERR?", err_answer),
    ]


def test_a_failed_mail_carries_the_modules_reason():
    reason = "the server refused the mail: 550 5.7.1 no service for you"
    module, port = driver(failing_script(550, b'\r\n+GTSMTPERR: 550,"%s"\r\n' % reason.encode() + OK))
    with pytest.raises(atmail.MailError) as failed:
        send(module, body=b"x")
    assert failed.value.code == 550 and failed.value.reason == reason
    assert str(failed.value) == f"{reason} (+GTSMTPSEND: 550)"
    assert not port.script


def test_a_module_without_gtsmtperr_gives_the_code_alone():
    """A G510 of its own answers ERROR to atmail's extension."""
    module, port = driver(failing_script(0, b"\r\nERROR\r\n"))
    with pytest.raises(atmail.MailError) as failed:
        send(module, body=b"x")
    assert failed.value.code == 0 and failed.value.reason == ""
    assert str(failed.value) == "the server refused the mail: +GTSMTPSEND: 0"
    assert not port.script


def test_a_failure_while_streaming_reads_the_data_answer_before_asking_why():
    """The module stays in data mode until the escape, then answers the
    data command ERROR: that answer is the data command's, not
    `AT+GTSMTPERR?`'s."""
    script = mail_script(1)[:7] + [
        (b"AT+GTSMTPDATA=300", b"\r\n> "),
        (b"+++", b"\r\n+GTSMTPSEND: 421\r\n\r\nERROR\r\n"),
        (b"AT+GTSMTPERR?", b'\r\n+GTSMTPERR: 421,"the server ended the mail: 421 4.3.2 going down"\r\n' + OK),
    ]
    module, port = driver(script)
    with pytest.raises(atmail.MailError) as failed:
        send(module, body=b"x")
    assert failed.value.code == 421
    assert failed.value.reason == "the server ended the mail: 421 4.3.2 going down"
    assert not port.script
