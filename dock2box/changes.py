"""What every service calls when it changes data others depend on.

`record_change` (1) marks cached views stale once the transaction commits and (2) when the etcd mirror is on, writes
an outbox row per changed document in the same transaction, then wakes the mirror on commit.

What is stale is said by name. A change of hosts alone (documents `host/...` and `hwaddr/...`: a host, its interfaces,
its builds) moves the generation of each of their MACs: only what was rendered for those MACs (their boot scripts) is
stale. A change of any other document, or one said to touch everything (`everything=True`: data that no mirrored
document holds but the boot catalogue does, such as installer config templates), moves the data generation: every
cached view is stale (the boot catalogue is rebuilt on the next boot, at once in this process, within
`DOCK2BOX_GENERATION_CHECK` seconds in every other; every cached boot script is rendered again). A write that names
neither (a BMC, a forgotten discovered MAC) leaves the caches as they are: nothing cached shows it.
Provisioning subscribes the mirror's drain with `on_commit_subscribe` (dock2box does not import provisioning).
"""

import logging
import time
import uuid
from collections.abc import Callable, Iterable

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from dock2box.cache import on_recovery, shared

logger = logging.getLogger("dock2box.changes")
GENERATION_KEY = "dock2box:generation"
UNKNOWN = ""  # the generation while the shared cache is down: no view of the data may be kept
_HOST_DOCUMENTS = ("host/", "hwaddr/")
_subscribers: list[Callable[[], None]] = []
# The generation as this process last read or wrote it in the shared cache, and when (monotonic seconds); replaced
# whole, so threads never see half of it.
_seen: tuple[str, float] | None = None


def generation() -> str:
    """The current data generation; a new value means cached views of the data are stale.

    Read from the shared cache at most once per `DOCK2BOX_GENERATION_CHECK` seconds: a boot storm does not make a cache
    round trip per request. A change committed in this process is seen at once, one in another within that time.
    """
    global _seen
    now, seen = time.monotonic(), _seen
    if seen is not None and now - seen[1] < settings.DOCK2BOX_GENERATION_CHECK:
        return seen[0]
    value = shared("generation", _generation_read, UNKNOWN)
    _seen = None if value == UNKNOWN else (value, now)
    return value


def _generation_read() -> str:
    value = cache.get(GENERATION_KEY)
    if value is None:
        value = uuid.uuid4().hex
        cache.add(GENERATION_KEY, value, timeout=None)
        value = cache.get(GENERATION_KEY, value)
    return str(value)


def _generation_move() -> None:
    """A new data generation: every cached view is stale."""
    global _seen
    value = uuid.uuid4().hex
    cache.set(GENERATION_KEY, value, timeout=None)
    _seen = (value, time.monotonic())


def generation_forget() -> None:
    """Read the generation from the shared cache on the next call (after the cache was cleared)."""
    global _seen
    _seen = None


def mac_generation_key(mac: str) -> str:
    """The shared cache's key of one MAC's generation, moved by every change of its host (an unknown MAC's stays)."""
    return f"{GENERATION_KEY}:{document('hwaddr', mac)}"


def document(kind: str, key: str = "") -> str:
    """The name of a mirrored document: `host/<fqdn>`, `hwaddr/<mac>`, ..., or `default`."""
    return f"{kind}/{key}" if key else kind


def record_change(documents: Iterable[str] = (), *, everything: bool = False) -> None:
    """Record that `documents` changed (outbox rows now, in this transaction) and mark what shows them stale on commit:
    their MACs' boot scripts for documents of hosts alone, every cached view for any other document or `everything`."""
    from dock2box.models import OutboxEntry

    names = sorted(set(documents))
    if names and settings.DOCK2BOX_ETCD_URL:
        OutboxEntry.objects.bulk_create([OutboxEntry(document=name) for name in names])
    if names or everything:
        transaction.on_commit(lambda: _after_commit(names, everything=everything))


on_recovery(_generation_move)


def on_commit_subscribe(callback: Callable[[], None]) -> None:
    """Call `callback` after every commit that changed mirrored documents (the mirror's drain)."""
    _subscribers.append(callback)


def _after_commit(names: list[str], *, everything: bool) -> None:
    # With the shared cache down this marks nothing: what it holds is stale when it is back, and the first process to
    # find it back moves the data generation (`on_recovery` below); until then entries lapse at their time bound and
    # install scripts are checked against the database (`provisioning.boot.scripts`).
    if not everything and all(name.startswith(_HOST_DOCUMENTS) for name in names):
        macs = [name.removeprefix("hwaddr/") for name in names if name.startswith("hwaddr/")]
        if macs:
            moved = {mac_generation_key(mac): uuid.uuid4().hex for mac in macs}
            shared("invalidation", lambda: cache.set_many(moved, timeout=None), None)
    else:
        shared("invalidation", _generation_move, None)
    if not (names and settings.DOCK2BOX_ETCD_URL):
        return
    for callback in _subscribers:
        try:
            callback()
        except Exception:
            # The change is safe in the outbox; the periodic drain delivers it when the broker is back.
            logger.warning("could not wake the etcd mirror; the periodic drain will deliver the change", exc_info=True)
