"""The exceptions atmail raises, and the mapping from the C ABI's statuses.

Wrong types raise `TypeError` and wrong values `ValueError` (or a subclass:
`UnicodeEncodeError` names a character a charset cannot hold), as Python's
own functions do; atmail's own exceptions derive from `AtmailError`."""

from __future__ import annotations


class AtmailError(Exception):
    """Base of the exceptions that are atmail's own."""


class StateError(AtmailError, RuntimeError):
    """A call the object's state does not allow: an encoder used after
    `finish`, a session call out of turn."""


class PortClosedError(AtmailError, OSError):
    """The serial port of a `G510` is closed."""


class ModemError(AtmailError):
    """The module refused a command: `text` is its `+CME ERROR:` text, or
    `"ERROR"`; `command` is the line that was refused."""

    def __init__(self, command: str, text: str) -> None:
        super().__init__(f"{command}: {text}")
        self.command = command
        self.text = text


class MailError(AtmailError):
    """A mail was not delivered: `code` is the SMTP code of the module's
    `+GTSMTPSEND: <code>` report (0: connection closed, timed out or not
    SMTP), or 0 when the host side gave up (a timeout, a lost prompt);
    `reason` is why, in the module's words (`AT+GTSMTPERR?`: the server's
    reply with its text, or what went wrong without one), "" when the
    module gave none. The message holds the reason when there is one."""

    def __init__(self, code: int, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class ModemTimeout(AtmailError, TimeoutError):
    """The module did not answer in time."""
