"""Per-host boot scripts kept in the shared cache between boots: the boot path's short way.

A known host's script is stored after the boot path rendered it, stamped with two generations read before any of the
data it was rendered from: the data generation and its MAC's (`dock2box.changes`). A later boot request of the same MAC
(and the same address, netmask, gateway, platform, boot loader and portal) is answered from the entry while both are
still the current ones, read from the shared cache in the same round trip as the entry, never from a process's memo.
Every service write moves one of them when its transaction commits, before the request that made it is answered: a
change of a host (its record, interfaces, builds) moves its MACs' generations, any other change the data generation.
That includes each change of a build a script depends on (build mode entered, a version picked, the `bootloader`, `done`
and `failed` events, an unconfirmed build closed). So once an installer's `done` is answered, by any worker of any
instance, no script cached before it is handed out again: the host boots its disk. One host's install does not make the
others' scripts stale.

Entries are stored only in autocommit (inside a transaction the writes a script follows could still roll back) and
are used until the moment they were rendered plus `DOCK2BOX_BOOT_CACHE_SECONDS` (`expires`; storing an entry again,
for a "last seen" written, keeps that moment): the bound for a change made around the services (SQL by hand, a
restore) and for a change whose invalidation the cache missed (it was down); 0 turns the cache off. An entry also says
what the boot path still does on a hit: count and log the outcome, write the host's "last seen" once per interval as
it would, stop using the script when its build token is due to be touched, and, for a script that installs, check the
database that its build still installs (`provisioning.boot.scripts`).

Every cache operation goes through `dock2box.cache.shared`: with the cache down, nothing is found and nothing stored.
"""

import hashlib
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from dock2box.cache import shared
from dock2box.changes import GENERATION_KEY, mac_generation_key
from provisioning.boot.menu import BootRequest

Stamp = tuple[str, str]  # the data generation and the MAC's
ENTRY_FORMAT = 3  # in every key: entries of an earlier `BootEntry` (other fields) are never read back


@dataclass(frozen=True)
class BootEntry:
    stamp: Stamp
    script: str
    outcome: str  # "known" or "build"
    host_id: int
    fqdn: str
    notice: str
    last_seen: datetime | None  # the host's, as written or read when this was stored
    until: datetime | None  # a build's token is touched from then: the long way again
    expires: datetime  # rendered plus the cache's time bound: used until then, never longer
    ip: str | None = None  # the request's address the script shows (None: it shows none)
    first_boot_build_id: int | None = None  # a build whose first boot the next answer records (rendered ahead)
    build_id: int | None = None  # the build an install script hands out, with its `token`: checked on every use
    token: str | None = None


def boot_entry_key(*, portal: str, mac: str, platform: str, loader: str) -> str:
    """The cache key of the script answering a boot of `mac` on `platform` by `loader` from `portal` (everything the
    script depends on besides the data and the request's address, which an entry holds)."""
    text = "|".join((str(ENTRY_FORMAT), portal, mac, platform, loader))
    return "dock2box:boot:" + hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def boot_entry_get(key: str, request: BootRequest) -> tuple[Stamp | None, BootEntry | None]:
    """The stamp a script rendered now is stored with (None: do not store it) and the entry at `key` if it is still
    good for `request`, in one round trip (two the first time a MAC is asked for in a while)."""
    if not cache_on():
        return None, None
    mac_key = mac_generation_key(request.mac)
    values: dict[str, Any] = shared("boot entry", lambda: cache.get_many([GENERATION_KEY, mac_key, key]), {})
    current, mac_generation, entry = values.get(GENERATION_KEY), values.get(mac_key), values.get(key)
    if current is None:
        return None, None
    if mac_generation is None:
        # Asked for the first time (or not for a while): its generation starts before its data is read. It lapses
        # with the entries it stamps (a flood of made-up MACs leaves nothing lasting); a lapsed one starts anew, so
        # no entry stamped with the old value is used again.
        mac_generation = shared("boot entry", lambda: _mac_generation_start(mac_key), None)
        if mac_generation is None:
            return None, None
    stamp = (str(current), str(mac_generation))
    if not isinstance(entry, BootEntry) or entry.stamp != stamp:
        return stamp, None
    now = timezone.now()
    if now >= entry.expires or (entry.until is not None and now >= entry.until):
        return stamp, None
    if entry.ip is not None and entry.ip != request.ip:
        return stamp, None
    return stamp, entry


def _mac_generation_start(mac_key: str) -> Any:
    fresh = uuid.uuid4().hex
    return fresh if cache.add(mac_key, fresh, timeout=settings.DOCK2BOX_BOOT_CACHE_SECONDS) else cache.get(mac_key)


def boot_stamps(macs: list[str]) -> dict[str, Stamp]:
    """The stamps of scripts rendered ahead for these known MACs, read before their data. Their generations are
    made to last (a known MAC's keeps its value until its host changes): the entries they stamp stay good."""
    if not cache_on() or not macs:
        return {}
    return shared("boot stamps", lambda: _boot_stamps(macs), {})


def _boot_stamps(macs: list[str]) -> dict[str, Stamp]:
    keys = {mac: mac_generation_key(mac) for mac in macs}
    values = cache.get_many([GENERATION_KEY, *keys.values()])
    current = values.get(GENERATION_KEY)
    if current is None:
        return {}
    stamps = {}
    for mac, key in keys.items():
        value = values.get(key)
        if value is None:
            fresh = uuid.uuid4().hex
            value = fresh if cache.add(key, fresh, timeout=None) else cache.get(key)
        else:  # (never set again with the value read: a change may have moved it since; lapsed meanwhile, the
            cache.touch(key, None)  # next ask starts a new one and nothing stamped with this one is used)
        if value is not None:
            stamps[mac] = (str(current), str(value))
    return stamps


def boot_entry_expires(now: datetime) -> datetime:
    """Until when an entry rendered `now` may be used: the cache's time bound."""
    return now + timedelta(seconds=settings.DOCK2BOX_BOOT_CACHE_SECONDS)


def cache_on() -> bool:
    """Whether scripts are kept: not with menus that offer installs, whose links are signed for the machine that
    asked (`provisioning.boot.scripts`)."""
    return bool(settings.DOCK2BOX_BOOT_CACHE_SECONDS) and not settings.DOCK2BOX_MENU_INSTALL


def boot_entries_put(entries: dict[str, BootEntry], *, expires: datetime) -> None:
    """Store entries by key until `expires` (not inside a transaction: see the module's note)."""
    if not cache_on() or connection.in_atomic_block or not entries:
        return
    timeout = math.ceil((expires - timezone.now()).total_seconds())  # whole seconds for Redis; `expires` is exact
    if timeout <= 0:
        return
    if len(entries) == 1:  # one command (Redis: SET with its expiry), where many are a MULTI of an MSET and EXPIREs
        shared("boot entry", lambda: cache.set(*next(iter(entries.items())), timeout=timeout), None)
    else:
        shared("boot entries", lambda: cache.set_many(entries, timeout=timeout), None)
