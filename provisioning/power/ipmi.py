"""Talking to a host's BMC: power status and control over IPMI, through pyghmi (the client OpenStack Ironic uses).

No database: the power services hand in a `BmcAccess` and get a state or a `BmcError` whose message is one line
an operator can act on. The credentials never appear in a message, a log line or a repr.
"""

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from pyghmi import exceptions as pyghmi_errors
from pyghmi.ipmi import command as ipmi_command
from pyghmi.ipmi.private import session as ipmi_session

from provisioning.metrics import BMC_REQUEST_SECONDS

T = TypeVar("T")


class BmcError(Exception):
    """The BMC refused, could not be found or did not answer. `unreachable`: it did not answer at all (retrying may
    help, and its host's power state is unknown); otherwise it answered with a refusal (retrying will not help)."""

    def __init__(self, message: str, *, unreachable: bool) -> None:
        super().__init__(message)
        self.unreachable = unreachable


@dataclass(frozen=True)
class BmcAccess:
    address: str
    port: int
    username: str
    password: str = field(repr=False)

    def __str__(self) -> str:
        return f"{self.address}:{self.port}" if ":" not in self.address else f"[{self.address}]:{self.port}"


# pyghmi shares one session per BMC and credentials between callers and keeps it alive; a kept session went stale
# across power changes and hung the next log-in. So each call here logs in and out on its own, calls to one BMC from
# this process take turns, and the logged-out session is dropped from pyghmi 1.6's table of sessions being set up
# (`Session.initting_sessions`: it keeps every session there once logged in, and hands a logged-out one back to the
# next caller, which then waits for a log-in that never comes). requirements.txt pins pyghmi for this.
_turns: dict[tuple[str, int], threading.Lock] = {}
_turns_guard = threading.Lock()


def _turn(access: BmcAccess) -> threading.Lock:
    with _turns_guard:
        return _turns.setdefault((access.address, access.port), threading.Lock())


def _nothing_listens(access: BmcAccess) -> bool:
    """Whether the BMC's address says that nothing listens on its port (an ICMP port unreachable to an empty
    datagram), which tells a wrong address or port from a BMC that is busy or down."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(access.address, access.port, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.settimeout(0.5)
            probe.connect(address)
            probe.send(b"")
            probe.recv(64)
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    return False


def _call(access: BmcAccess, operation: str, work: Callable[[ipmi_command.Command], T]) -> T:
    started = time.monotonic()
    outcome = "error"
    try:
        with _turn(access):
            session = ipmi_command.Command(
                bmc=access.address, userid=access.username or None, password=access.password or None, port=access.port
            )
            try:
                result = work(session)
            finally:
                session.ipmi_session.logout()
                ipmi_session.Session.initting_sessions.pop(
                    (access.address, access.username or None, access.password or None, access.port, None), None
                )
        outcome = "ok"
        return result
    except socket.gaierror:
        raise BmcError(f"BMC {access}: the address does not resolve", unreachable=True) from None
    except OSError as error:
        raise BmcError(f"BMC {access}: {error.strerror or error}", unreachable=True) from None
    except pyghmi_errors.PyghmiException as error:
        text = " ".join(str(error).split()) if error.args and error.args[0] else ""
        if not text or "timeout" in text.lower() or "no longer connected" in text:
            outcome = "timeout"
            if _nothing_listens(access):
                raise BmcError(f"BMC {access}: nothing listens there (port unreachable)", unreachable=True) from None
            raise BmcError(f"BMC {access}: no answer (timeout)", unreachable=True) from None
        raise BmcError(f"BMC {access}: {text}", unreachable=False) from None
    finally:
        BMC_REQUEST_SECONDS.labels(operation, outcome).observe(time.monotonic() - started)


def power_get(access: BmcAccess) -> str:
    """The host's power state as its BMC reports it: "on" or "off"."""
    return str(_call(access, "status", lambda session: session.get_power()["powerstate"]))


def power_set(access: BmcAccess, state: str, *, wait: int) -> None:
    """Turn the host "on" or "off" and wait (up to `wait` seconds) until its BMC reports the new state."""

    def change(session: ipmi_command.Command) -> None:
        reached = session.set_power(state, wait=wait).get("powerstate")
        if reached != state:
            raise BmcError(f"BMC {access}: still not {state} after {wait} s", unreachable=False)

    _call(access, state, change)
