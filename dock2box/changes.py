"""What every service calls when it changes data others depend on.

`record_change` (1) marks cached views stale once the transaction commits (the boot catalogue is rebuilt on the next
boot: at once in this process, within `DOCK2BOX_GENERATION_CHECK` seconds in every other) and (2) when the etcd
mirror is on, writes an outbox row per changed document in the same transaction, then wakes the mirror on commit.
Provisioning subscribes the mirror's drain with `on_commit_subscribe` (dock2box does not import provisioning).
"""

import logging
import time
import uuid
from collections.abc import Callable, Iterable

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger("dock2box.changes")
GENERATION_KEY = "dock2box:generation"
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
    value = cache.get(GENERATION_KEY)
    if value is None:
        value = uuid.uuid4().hex
        cache.add(GENERATION_KEY, value, timeout=None)
        value = cache.get(GENERATION_KEY, value)
    _seen = (str(value), now)
    return str(value)


def generation_forget() -> None:
    """Read the generation from the shared cache on the next call (after the cache was cleared)."""
    global _seen
    _seen = None


def document(kind: str, key: str = "") -> str:
    """The name of a mirrored document: `host/<fqdn>`, `hwaddr/<mac>`, ..., or `default`."""
    return f"{kind}/{key}" if key else kind


def record_change(documents: Iterable[str] = ()) -> None:
    """Record that `documents` changed (outbox rows now, in this transaction) and mark caches stale on commit."""
    from dock2box.models import OutboxEntry

    names = sorted(set(documents))
    if names and settings.DOCK2BOX_ETCD_URL:
        OutboxEntry.objects.bulk_create([OutboxEntry(document=name) for name in names])
    transaction.on_commit(lambda: _after_commit(bool(names)))


def on_commit_subscribe(callback: Callable[[], None]) -> None:
    """Call `callback` after every commit that changed mirrored documents (the mirror's drain)."""
    _subscribers.append(callback)


def _after_commit(mirrored: bool) -> None:
    global _seen
    value = uuid.uuid4().hex
    cache.set(GENERATION_KEY, value, timeout=None)
    _seen = (value, time.monotonic())
    if not (mirrored and settings.DOCK2BOX_ETCD_URL):
        return
    for callback in _subscribers:
        try:
            callback()
        except Exception:
            # The change is safe in the outbox; the periodic drain delivers it when the broker is back.
            logger.warning("could not wake the etcd mirror; the periodic drain will deliver the change", exc_info=True)
