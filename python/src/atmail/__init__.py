"""atmail: the G510 `AT+GTSMTP*` e-mail engine from Python.

Built from `libatmail`, the same library modem firmware links, through its
C ABI:

- `MimeBase64Encoder` and `mime_base64`: RFC 2045 base64 in 76-column
  lines, streamed;
- `compose`: a whole message into a binary file, as `atmail encode`
  writes it;
- `Session`: the engine itself, sans-IO, for a virtual module in Python;
- `G510`: a host driver that sends mail through a module's AT commands.
"""

from importlib.metadata import PackageNotFoundError, version as _dist_version

from ._abi import version as _library_version
from ._base64 import MimeBase64Encoder, mime_base64
from ._charset import Charset
from ._compose import compose
from ._errors import AtmailError, MailError, ModemError, ModemTimeout, PortClosedError, StateError
from ._session import Connect, Event, EventKind, HostProgress, Session, State, Stopped, Transfer
from .g510 import G510, ModuleInfo, Registration, Signal

try:
    __version__: str = _dist_version("atmail")
except PackageNotFoundError:  # run from a source tree without installing
    __version__ = _library_version()

__all__ = [
    "AtmailError",
    "Charset",
    "Connect",
    "Event",
    "EventKind",
    "G510",
    "MailError",
    "MimeBase64Encoder",
    "ModemError",
    "ModemTimeout",
    "ModuleInfo",
    "HostProgress",
    "PortClosedError",
    "Registration",
    "Session",
    "Signal",
    "State",
    "StateError",
    "Stopped",
    "Transfer",
    "__version__",
    "compose",
    "mime_base64",
]
