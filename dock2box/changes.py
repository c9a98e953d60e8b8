"""What every service calls after changing a row others depend on.

Today it bumps the generation of the boot catalogue (so cached menus are rebuilt on the next boot, in every
process); the etcd outbox hooks in here too.
"""

import uuid

from django.core.cache import cache
from django.db import transaction

GENERATION_KEY = "dock2box:generation"


def generation() -> str:
    """The current data generation; a new value means cached views of the data are stale."""
    value = cache.get(GENERATION_KEY)
    if value is None:
        value = uuid.uuid4().hex
        cache.add(GENERATION_KEY, value, timeout=None)
        value = cache.get(GENERATION_KEY, value)
    return str(value)


def record_change() -> None:
    """Mark cached views stale once the current transaction commits (at once outside a transaction)."""
    transaction.on_commit(lambda: cache.set(GENERATION_KEY, uuid.uuid4().hex, timeout=None))
