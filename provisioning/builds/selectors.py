"""Reads of builds, and the boot path's hand-written look-ups (a booting MAC's interface, host, subnet and open build;
an installer's build by its token), each one statement."""

import functools
import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Count, Field, Model, OuterRef, QuerySet, Subquery
from django.db.models.functions import Left
from django.utils.dateparse import parse_datetime
from django.utils.timezone import is_aware, make_aware

from hosts.models import Host, Interface, Subnet
from provisioning.choices import BuildState
from provisioning.models import (
    Build,
    BuildEvent,
)


def build_list() -> QuerySet[Build]:
    """All builds, newest first, with host and version, their event count, progress and last message (the events
    themselves are read page by page: `build_events`)."""
    latest = BuildEvent.objects.filter(build=OuterRef("pk")).order_by("-time", "-id")
    return Build.objects.select_related("host", "image_version__image").annotate(
        event_count=Count("events"),
        progress=Subquery(latest.filter(progress__isnull=False).values("progress")[:1]),
        last_message=Subquery(latest.annotate(first_line=Left("message", 200)).values("first_line")[:1]),
    )


def build_events(*, build: Build) -> QuerySet[BuildEvent]:
    """A build's events, oldest first."""
    return build.events.order_by("time", "id")


@dataclass(frozen=True)
class BootLookup:
    """What a boot request needs about a MAC: its interface (with host and subnet) and the host's open build."""

    interface: Interface
    build_id: int | None
    build_token: str | None
    build_activity: datetime | None
    build_version_id: int | None
    build_bootloader_started: datetime | None
    build_first_boot: datetime | None


_BUILD_FIELDS = ["id", "token", "last_activity", "image_version", "bootloader_started", "first_boot"]


logger = logging.getLogger("dock2box.builds")

PREPARED_LOST = {"26000", "42P05"}  # SQLSTATE: no such prepared statement, or one of that name already


@dataclass(frozen=True)
class _Select:
    """A SELECT of whole rows of several models (alias each) and extra columns, written once from the models'
    metadata: the boot path runs a few of them on every request, and building them with the ORM costs several times
    more than running them. Only public API: `_meta.get_fields()`, a cursor, `Model.from_db`."""

    models: list[type[Model]]
    attnames: list[list[str]]  # per model, its fields' attribute names
    sql: str
    fields: list["Field[Any, Any]"]  # the field behind each selected column, in order

    def rows(self, params: list[Any]) -> list[tuple[list[Model | None], list[Any]]]:
        """Each row as its models' instances (None for a LEFT JOIN that found nothing) and its extra values."""
        with connection.cursor() as cursor:
            self._execute(cursor, params)
            fetched = cursor.fetchall()
        result = []
        for row in fetched:
            values = [_python_value(field, value) for field, value in zip(self.fields, row, strict=True)]
            instances: list[Model | None] = []
            for model, names in zip(self.models, self.attnames, strict=True):
                chunk, values = values[: len(names)], values[len(names) :]
                instances.append(model.from_db(connection.alias, names, chunk) if chunk[0] is not None else None)
            result.append((instances, values))
        return result

    def _execute(self, cursor: Any, params: list[Any]) -> None:
        """On PostgreSQL, outside a transaction, in a session that keeps them: as a statement prepared once per session,
        which PostgreSQL plans once (planning these joins costs it several times running them); else as it is."""
        session = connection.connection
        simple = connection.vendor != "postgresql" or connection.in_atomic_block or session is None
        if simple or not _session_keeps_statements(session, cursor):
            cursor.execute(self.sql, params)
            return
        name = "dock2box_" + hashlib.blake2b(self.sql.encode(), digest_size=8).hexdigest()
        prepared = session.__dict__.setdefault("dock2box_prepared", set())
        execute = f"EXECUTE {name}({', '.join(['%s'] * len(params))})"
        try:
            if name in prepared:
                cursor.execute(execute, params)
            else:  # prepared and run in one round trip
                first, *rest = self.sql.split("%s")
                numbered = first + "".join(f"${number}{part}" for number, part in enumerate(rest, start=1))
                cursor.execute(f"PREPARE {name} AS {numbered}; {execute}", params)
                cursor.nextset()
                prepared.add(name)
        except DatabaseError as error:
            if getattr(error.__cause__, "sqlstate", None) not in PREPARED_LOST:
                raise  # any other error is the statement's
            # (autocommit: nothing else is lost) Statements do not stay in this session (a pooler the check missed,
            # a DISCARD): it prepares nothing more, and deallocates nothing, which could be another client's.
            session.__dict__["dock2box_keeps_statements"] = False
            logger.warning("prepared statements do not stay in this database session: it runs them unprepared (%s)",
                           error.__cause__)  # fmt: skip
            cursor.execute(self.sql, params)


def _session_keeps_statements(session: Any, cursor: Any) -> bool:
    """Whether statements prepared in this database session stay there: not behind a pooler, which hands the
    session's statements to whichever server connection is free (pgbouncer in transaction mode). A pooler answers the
    client with a cancel key of its own, so the backend process the connection announced is not the one running its
    statements. Asked once per session; `DATABASE_PREPARED_STATEMENTS=off` says no without asking."""
    keeps = session.__dict__.get("dock2box_keeps_statements")
    if keeps is None:
        keeps = settings.DATABASE_PREPARED_STATEMENTS == "auto"
        if keeps:
            cursor.execute("SELECT pg_backend_pid()")
            keeps = cursor.fetchone()[0] == session.info.backend_pid
        session.__dict__["dock2box_keeps_statements"] = keeps
    return bool(keeps)


def _select(models: list[tuple[type[Model], str]], extra: list[tuple[str, "Field[Any, Any]"]], tail: str) -> _Select:
    fields, columns, attnames = [], [], []
    for model, alias in models:
        concrete = _concrete(model)
        fields += concrete
        attnames.append([field.attname for field in concrete])
        columns += [f'{alias}."{field.column}"' for field in concrete]
    for alias, field in extra:
        fields.append(field)
        columns.append(f'{alias}."{field.column}"')
    # Names come from the models' metadata; the values are parameters.
    return _Select([model for model, _ in models], attnames, f"SELECT {', '.join(columns)} {tail}", fields)


def _concrete(model: type[Model]) -> list["Field[Any, Any]"]:
    return [field for field in model._meta.get_fields() if isinstance(field, Field) and field.concrete]


def _build_field(name: str) -> "Field[Any, Any]":
    field = Build._meta.get_field(name)
    assert isinstance(field, Field)
    return field


def _boot_select(where: str) -> _Select:
    """The boot lookup: interfaces with their host, subnet and the host's open build (one at most: a constraint)."""
    return _select(
        [(Interface, "i"), (Host, "h"), (Subnet, "s")],
        [("b", _build_field(name)) for name in _BUILD_FIELDS],
        f"FROM {Interface._meta.db_table} i JOIN {Host._meta.db_table} h ON h.id = i.host_id "
        f"LEFT JOIN {Subnet._meta.db_table} s ON s.id = i.subnet_id "
        f"LEFT JOIN {Build._meta.db_table} b ON b.host_id = h.id AND b.state IN (%s, %s) {where}",
    )


@functools.cache
def _boot_query() -> _Select:
    """The boot lookup of one MAC."""
    return _boot_select("WHERE i.mac = %s")


@functools.cache
def _boot_range_query() -> _Select:
    """The boot lookups of the interfaces in a range of ids."""
    return _boot_select("WHERE i.id > %s AND i.id <= %s")


@functools.cache
def _build_query() -> _Select:
    """An open build by its token, with its host and the host's interfaces with their subnets: a row per interface,
    primary first, then by name (one row without an interface for a host that has none)."""
    return _select(
        [(Build, "b"), (Host, "h"), (Interface, "i"), (Subnet, "s")],
        [],
        f"FROM {Build._meta.db_table} b JOIN {Host._meta.db_table} h ON h.id = b.host_id "
        f"LEFT JOIN {Interface._meta.db_table} i ON i.host_id = h.id "
        f"LEFT JOIN {Subnet._meta.db_table} s ON s.id = i.subnet_id "
        'WHERE b.token = %s AND b.state IN (%s, %s) ORDER BY i."primary" DESC, i.name',
    )


@functools.cache
def _installs_query() -> _Select:
    """An open build by id and token whose host is in build mode and whose installer is not past its bootloader."""
    return _select(
        [],
        [("b", _build_field("id"))],
        f"FROM {Build._meta.db_table} b JOIN {Host._meta.db_table} h ON h.id = b.host_id "
        "WHERE b.id = %s AND b.token = %s AND b.state IN (%s, %s) AND b.bootloader_started IS NULL AND h.build",
    )


@functools.cache
def _interfaces_query() -> _Select:
    """A host's interfaces with their subnets, primary first, then by name."""
    return _select(
        [(Interface, "i"), (Subnet, "s")],
        [],
        f"FROM {Interface._meta.db_table} i LEFT JOIN {Subnet._meta.db_table} s ON s.id = i.subnet_id "
        'WHERE i.host_id = %s ORDER BY i."primary" DESC, i.name',
    )


def _python_value(field: "Field[Any, Any]", value: Any) -> Any:
    """A column's value as the model holds it, whatever the database driver returned: SQLite gives booleans as
    integers, datetimes naive and UUIDs as hex; PostgreSQL gives them as they are."""
    if value is None:
        return None
    kind = field.get_internal_type()
    if kind == "BooleanField":
        return bool(value)
    if kind == "DateTimeField":  # SQLite: naive UTC, as text or (declared type parsing) as a datetime
        parsed = parse_datetime(value) if isinstance(value, str) else value
        return parsed if parsed is None or is_aware(parsed) else make_aware(parsed, UTC)
    if kind == "UUIDField" and not isinstance(value, UUID):
        return UUID(str(value))
    return value


def interface_for_boot(*, mac: str) -> BootLookup | None:
    """The interface with this MAC, its host and subnet and the host's open build, in one query (or None)."""
    rows = _boot_query().rows([BuildState.PENDING.value, BuildState.RUNNING.value, mac])
    return _boot_lookup(rows[0]) if rows else None


def interface_ids_after(*, after: int, limit: int) -> list[tuple[int, str]]:
    """The next `limit` interfaces' ids and MACs after id `after`, in id order (a walk over every interface)."""
    return list(Interface.objects.filter(pk__gt=after).order_by("pk").values_list("pk", "mac")[:limit])


def interfaces_for_boot(*, after: int, last: int) -> list[BootLookup]:
    """The boot lookups of the interfaces with ids in (`after`, `last`], in one query."""
    rows = _boot_range_query().rows([BuildState.PENDING.value, BuildState.RUNNING.value, after, last])
    return [_boot_lookup(row) for row in rows]


def _boot_lookup(row: tuple[list[Model | None], list[Any]]) -> BootLookup:
    (interface, host, subnet), (build_id, token, activity, version_id, bootloader_started, first_boot) = row
    assert isinstance(interface, Interface) and isinstance(host, Host)
    interface.host = host
    interface.subnet = subnet  # type: ignore[assignment]
    return BootLookup(interface, build_id, token, activity, version_id, bootloader_started, first_boot)


@dataclass(frozen=True)
class InstallerBuild:
    """An open build found by its token (with its host) and the host's interfaces (with their subnets), primary
    first: all that a config fetch reads, in one statement."""

    build: Build
    interfaces: list[Interface]


def build_for_token(*, token: str) -> InstallerBuild | None:
    """The open build holding this token, or None (one query, on every config fetch and event)."""
    if not token:
        return None
    rows = _build_query().rows([token, BuildState.PENDING.value, BuildState.RUNNING.value])
    if not rows:
        return None
    (build, host, _, _), _ = rows[0]
    assert isinstance(build, Build) and isinstance(host, Host)
    build.host = host
    return InstallerBuild(
        build, [_interface(interface, host, subnet) for (_, _, interface, subnet), _ in rows if interface]
    )


def host_interfaces(*, host: Host) -> list[Interface]:
    """The host's interfaces, primary first, with their subnets (one query)."""
    return [_interface(interface, host, subnet) for (interface, subnet), _ in _interfaces_query().rows([host.pk])]


def _interface(interface: Model | None, host: Host, subnet: Model | None) -> Interface:
    assert isinstance(interface, Interface)
    interface.host = host
    interface.subnet = subnet  # type: ignore[assignment]
    return interface


def build_installs(*, build_id: int, token: str) -> bool:
    """Whether a build still installs with this token: open, its host in build mode, its installer not past its
    bootloader (one query; what a cached install script is checked against before it is handed out again)."""
    params = [build_id, token, BuildState.PENDING.value, BuildState.RUNNING.value]
    return bool(_installs_query().rows(params))


def build_latest(*, host: Host) -> Build | None:
    """The host's newest build with its events."""
    return host.builds.prefetch_related("events").order_by("-created", "-id").first()
