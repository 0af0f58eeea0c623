"""`Session.set_transfer` and the 16 KiB of chunk storage the Python
Session gives: the caller's default as `AT+GTSMTPBDAT?` reads it, CLR
restoring it, and bad modes refused with nothing changed."""

import pytest

import atmail


def at(session, line):
    session.handle_host(0, line + b"\r")
    return session.poll_host()


def test_the_default_is_read_back_and_restored_by_clr():
    s = atmail.Session()
    assert at(s, b"ATE0") == b"ATE0\r\r\nOK\r\n"
    assert at(s, b"AT+GTSMTPBDAT?") == b"\r\n+GTSMTPBDAT: 1\r\n\r\nOK\r\n"
    s.set_transfer(atmail.Transfer.OFF)
    assert at(s, b"AT+GTSMTPBDAT?") == b"\r\n+GTSMTPBDAT: 0\r\n\r\nOK\r\n"
    assert at(s, b"AT+GTSMTPBDAT=2") == b"\r\nOK\r\n"
    s.set_transfer(atmail.Transfer.AUTO)  # the host's word stands until CLR
    assert at(s, b"AT+GTSMTPBDAT?") == b"\r\n+GTSMTPBDAT: 2\r\n\r\nOK\r\n"
    assert at(s, b"AT+GTSMTPCLR") == b"\r\nOK\r\n"
    assert at(s, b"AT+GTSMTPBDAT?") == b"\r\n+GTSMTPBDAT: 1\r\n\r\nOK\r\n"
    assert at(s, b"AT+GTSMTPBDAT=?") == b"\r\n+GTSMTPBDAT: (0-2)\r\n\r\nOK\r\n"


@pytest.mark.parametrize("bad", [3, 256, 2**32 - 1])
def test_a_bad_mode_is_a_value_error_and_changes_nothing(bad):
    s = atmail.Session()
    s.set_transfer(atmail.Transfer.FORCE)
    with pytest.raises(ValueError, match="transfer mode"):
        s.set_transfer(bad)
    at(s, b"ATE0")
    assert at(s, b"AT+GTSMTPBDAT?") == b"\r\n+GTSMTPBDAT: 2\r\n\r\nOK\r\n"


def test_modes_are_ints_of_the_c_codes():
    assert [int(m) for m in atmail.Transfer] == [0, 1, 2]
    with pytest.raises(ValueError):
        atmail.Session().set_transfer(-1)
    with pytest.raises(TypeError):
        atmail.Session().set_transfer("1")  # type: ignore[arg-type]
