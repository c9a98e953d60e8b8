"""Power control through the hosts' BMCs. A request validates and queues (one action at a time per host: a second one is
refused while the first runs); `power_apply` runs in the worker and records its outcome on the BMC and in the host's
history."""

import contextlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TypeVar

from celery import current_app
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from dock2box.actors import actor_current
from dock2box.services import history_record
from hosts.choices import PowerAction, PowerState
from hosts.models import Bmc, Host
from provisioning.builds.services import host_build_check, host_cancel_build, host_enter_build
from provisioning.metrics import POWER_ACTIONS
from provisioning.models import Build
from provisioning.power import ipmi as bmc_client
from provisioning.power.ipmi import BmcAccess, BmcError

T = TypeVar("T")


# Power control. A request validates and queues (one action at a time per host: a second one is refused while the
# first runs); `power_apply` runs in the worker and records its outcome on the BMC and in the host's history.
_POWER_LABELS = dict(PowerAction.choices)
POWER_APPLY_TASK = "provisioning.tasks.power_apply"


def _power_stale_after() -> timedelta:
    """A pending action older than this was lost (its worker died): a new one may start."""
    wait = settings.DOCK2BOX_POWER_WAIT
    return timedelta(seconds=(settings.DOCK2BOX_POWER_RETRIES + 1) * (2 * wait + 30))


def power_request(*, host: Host, action: str) -> Bmc:
    """Queue a power action (`PowerAction`) for a host: its BMC is asked in the worker (`power_apply`).

    Refused (ValidationError on `power`) for a host without a BMC or with an action still running, and a Reinstall
    as build mode would be (`host_build_check`), before anything is queued.
    """
    with transaction.atomic():
        bmc = Bmc.objects.select_for_update().select_related("host").filter(host_id=host.pk).first()
        if bmc is None:
            raise ValidationError({"power": f"{host.fqdn} has no BMC; add one first."}, code="no_bmc")
        if action not in _POWER_LABELS:
            raise ValidationError({"action": f"'{action}' is not a power action ({', '.join(_POWER_LABELS)})."})
        now = timezone.now()
        if bmc.pending and bmc.pending_since and now - bmc.pending_since < _power_stale_after():
            raise ValidationError(
                {"power": f"{host.fqdn}: {bmc.get_pending_display()} is still running; wait for its result."},
                code="power_busy",
            )
        if action == PowerAction.REINSTALL and not host.build:
            host_build_check(host=bmc.host)
        bmc.pending, bmc.pending_since = action, now
        bmc.save(update_fields=["pending", "pending_since"])
        history_record(obj=bmc.host, action=f"{_POWER_LABELS[action].lower()} requested")
        # Queued by name: the task module calls these services (`provisioning.power.tasks`).
        current_app.tasks[POWER_APPLY_TASK].delay_on_commit(bmc.pk, action, actor_current())
    return bmc


def _bmc_access(bmc: Bmc) -> BmcAccess:
    return BmcAccess(address=bmc.address, port=bmc.port, username=bmc.username, password=bmc.password)


def _bmc_retrying(call: Callable[[], T]) -> T:
    """`call`, tried again (after 1 s, 2 s, ...) while the BMC does not answer, DOCK2BOX_POWER_RETRIES times."""
    for attempt in range(settings.DOCK2BOX_POWER_RETRIES + 1):
        try:
            return call()
        except BmcError as error:
            if not error.unreachable or attempt == settings.DOCK2BOX_POWER_RETRIES:
                raise
            time.sleep(2**attempt)
    raise AssertionError("unreachable")


def power_apply(*, bmc_id: int, action: str) -> str:
    """Carry out a requested power action through the host's BMC, one action per BMC at a time across processes
    (`_bmc_turn`); record and return its outcome ("done" or the error in one line). Reinstall: build mode (with its
    checks), then a cycle, or on when the host is off. When the BMC fails before the host was asked to power on,
    build mode is left as it was before; once it was asked (an answer that timed out may hide a host that is booting
    into its installer), build mode stays and the failure is reported."""
    with _bmc_turn(bmc_id):
        bmc = Bmc.objects.select_related("host").get(pk=bmc_id)
        host = bmc.host
        entered: Build | None = None
        state, asked_on = bmc.power_state, [False]
        try:
            state = _bmc_retrying(lambda: bmc_client.power_get(_bmc_access(bmc)))
            if action == PowerAction.REINSTALL and not host.build:
                entered = host_enter_build(host=host)
            state = _power_move(bmc, action, state, asked_on)
            outcome = "done"
        except BmcError as error:
            outcome = str(error)
            state = PowerState.UNREACHABLE if error.unreachable else state
        except ValidationError as error:
            outcome = "; ".join(error.messages)
        if entered is not None and outcome != "done" and not asked_on[0]:
            host_cancel_build(host=host)  # the install this Reinstall opened never started
        now = timezone.now()
        Bmc.objects.filter(pk=bmc.pk).update(
            pending="", pending_since=None, last_action=action, last_result=outcome[:300], last_result_at=now,
            power_state=state, power_checked=now,
        )  # fmt: skip
    label = _POWER_LABELS.get(action, action).lower()
    history_record(obj=host, action=label if outcome == "done" else f"{label} failed", detail=outcome)
    POWER_ACTIONS.labels(action, "done" if outcome == "done" else "failed").inc()
    return outcome


def _power_move(bmc: Bmc, action: str, state: str, asked_on: list[bool]) -> str:
    """Off, then on, as the action wants from `state`; the state after. `asked_on[0]` says whether power-on was asked
    (whatever came of it)."""
    access, wait = _bmc_access(bmc), settings.DOCK2BOX_POWER_WAIT
    if action in (PowerAction.OFF, PowerAction.CYCLE, PowerAction.REINSTALL) and state == PowerState.ON:
        _bmc_retrying(lambda: bmc_client.power_set(access, PowerState.OFF, wait=wait))
        state = PowerState.OFF
    if action in (PowerAction.ON, PowerAction.CYCLE, PowerAction.REINSTALL) and state == PowerState.OFF:
        asked_on[0] = True
        _bmc_retrying(lambda: bmc_client.power_set(access, PowerState.ON, wait=wait))
        state = PowerState.ON
    return state


POWER_LOCKS = 0x6432_6270  # the advisory lock space of BMC turns ("d2bp")


@contextlib.contextmanager
def _bmc_turn(bmc_id: int) -> Iterator[None]:
    """Hold this BMC's turn: on PostgreSQL an advisory lock of this connection's session, which a worker of any
    process waits for and which ends with the session if the worker dies (a row lock would need a transaction open
    for the whole action, and its changes, build mode first, must be seen while the host boots). Elsewhere (the
    embedded default, one process) the BMC client's own per-process turn."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [POWER_LOCKS, bmc_id])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [POWER_LOCKS, bmc_id])


def power_refresh() -> int:
    """Ask every BMC without a running action for its host's power state, DOCK2BOX_POWER_CONCURRENCY at a time (a
    BMC that does not answer is "unreachable", never "off"). Returns how many were asked."""
    bmcs = list(Bmc.objects.filter(pending=""))

    def ask(bmc: Bmc) -> str:
        try:
            return bmc_client.power_get(_bmc_access(bmc))
        except BmcError as error:
            return PowerState.UNREACHABLE if error.unreachable else PowerState.UNKNOWN

    with ThreadPoolExecutor(max_workers=max(1, settings.DOCK2BOX_POWER_CONCURRENCY)) as pool:
        states = list(pool.map(ask, bmcs))
    now = timezone.now()
    for bmc, state in zip(bmcs, states, strict=True):
        # Only over what it read: an action that started or ended meanwhile knows better.
        Bmc.objects.filter(
            pk=bmc.pk, pending="", power_checked=bmc.power_checked, last_result_at=bmc.last_result_at
        ).update(power_state=state, power_checked=now)
    return len(bmcs)
