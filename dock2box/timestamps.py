"""The boot path's timestamp writes: a host's last seen, a build's use and its first boot.

Each is one column of one row, written at most once per interval per row, and none is worth a disk flush: on
PostgreSQL a write outside a transaction commits without waiting for the disk (`synchronous_commit` off for that
statement alone) and waits in its process for up to `DOCK2BOX_TIMESTAMP_FLUSH` seconds, gathered with the others into
one statement per column (a rack's first boots make a handful of statements, not a thousand). A crash of PostgreSQL,
or a web process killed, may lose the last fraction of a second of them; nothing else. Inside a transaction (other
writes share its commit) and on SQLite a write is made at once, in the transaction.
"""

import atexit
import functools
import logging
import os
import threading
from datetime import datetime

from django.conf import settings
from django.db import close_old_connections, connection, models

logger = logging.getLogger("dock2box.boot")
Column = tuple[type[models.Model], str, bool]  # model, field name, only where it is not set yet


def timestamp_write(model: type[models.Model], name: str, pk: int, now: datetime, *, only_unset: bool = False) -> None:
    """Set `name` of row `pk` to `now` (`only_unset`: unless it is set), now or with the next gathered statement."""
    no_disk_wait = connection.vendor == "postgresql" and not connection.in_atomic_block
    if no_disk_wait and settings.DOCK2BOX_TIMESTAMP_FLUSH > 0:
        _gathered.add((model, name, only_unset), pk, now)
        return
    at = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.execute(_update_sql((model, name, only_unset), 1, connection.vendor, no_disk_wait), [at, pk])


@functools.lru_cache(maxsize=32)  # one per batch size seen: bounded, a storm makes many sizes
def _update_sql(column: Column, rows: int, vendor: str, no_disk_wait: bool) -> str:
    """`UPDATE` of one column to each row's own time, with `rows` pairs of time and id as parameters (PostgreSQL; one
    pair elsewhere), written from the model's metadata; `no_disk_wait`: its commit does not wait for the disk."""
    model, name, only_unset = column
    table, pk, field = model._meta.db_table, model._meta.pk, model._meta.get_field(name)
    assert pk is not None and isinstance(field, models.Field)
    # Names come from the models' metadata; the values are parameters.
    unset = f' AND {table}."{field.column}" IS NULL' if only_unset else ""
    if vendor != "postgresql":
        return f'UPDATE {table} SET "{field.column}" = %s WHERE "{pk.column}" = %s{unset}'  # noqa: S608
    values = ", ".join(["(%s::timestamptz, %s)"] * rows)
    async_cte, async_from = (
        ("WITH quick AS (SELECT set_config('synchronous_commit', 'off', true)) ", "quick, ")
        if no_disk_wait
        else ("", "")
    )
    return (
        f'{async_cte}UPDATE {table} SET "{field.column}" = v.at FROM {async_from}(VALUES {values}) AS v(at, id) '  # noqa: S608
        f'WHERE {table}."{pk.column}" = v.id{unset}'
    )


class _Gathered:
    """This process's writes waiting for the next statement, the latest per row; a thread of the process writes them
    every `DOCK2BOX_TIMESTAMP_FLUSH` seconds, and the process at its exit (after the batch in flight, if any). A batch
    that fails is kept for the next (PostgreSQL restarting, a connection cut); the thread's connection is closed only
    after `IDLE_CLOSE` seconds without writes, so a trickle of boots does not open one per write."""

    IDLE_CLOSE = 30.0

    def __init__(self) -> None:
        self.lock = threading.Lock()  # the waiting rows
        self.writing = threading.Lock()  # one batch at a time: the exit waits for the one in flight
        self.rows: dict[Column, dict[int, datetime]] = {}
        self.writer_pid = 0  # the process whose thread writes (a forked web worker starts its own)
        self.failing = False
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def add(self, column: Column, pk: int, now: datetime) -> None:
        with self.lock:
            self.rows.setdefault(column, {})[pk] = now
            if self.writer_pid != os.getpid():
                self.writer_pid = os.getpid()
                self.thread = threading.Thread(target=self._write_forever, name="dock2box-timestamps", daemon=True)
                self.thread.start()

    def _keep(self, column: Column, rows: dict[int, datetime]) -> None:
        """Put a failed batch back: a row's newer time wins, its earliest for a column written only while unset."""
        with self.lock:
            waiting = self.rows.setdefault(column, {})
            for pk, at in rows.items():
                kept = waiting.get(pk)
                waiting[pk] = at if kept is None else (min(at, kept) if column[2] else max(at, kept))

    def _write_forever(self) -> None:
        idle = 0.0
        while settings.DOCK2BOX_TIMESTAMP_FLUSH > 0 and not self.stopping.wait(settings.DOCK2BOX_TIMESTAMP_FLUSH):
            idle = 0.0 if self.write() else idle + settings.DOCK2BOX_TIMESTAMP_FLUSH
            if idle >= self.IDLE_CLOSE:
                connection.close()  # this thread's, after a while with nothing to write
                idle = 0.0
        with self.lock:  # writes made at once from now on (a setting changed under a test): the next wait starts one
            self.writer_pid = 0
        self.write()
        connection.close()

    def write(self) -> bool:
        """Write what waits, one statement per column; a batch that fails is kept for the next (logged when writes
        start failing and when they work again). False when nothing waited."""
        with self.writing:
            with self.lock:
                waiting, self.rows = self.rows, {}
            if not waiting:
                return False
            close_old_connections()  # this thread's connection, if PostgreSQL went away since
            for column, rows in waiting.items():
                values = [
                    value for pk, at in rows.items() for value in (connection.ops.adapt_datetimefield_value(at), pk)
                ]
                try:
                    with connection.cursor() as cursor:
                        cursor.execute(_update_sql(column, len(rows), connection.vendor, True), values)
                except Exception:
                    if not self.failing:
                        logger.warning(
                            "could not write %d %s times; kept for the next", len(rows), column[1], exc_info=True
                        )
                    self.failing = True
                    self._keep(column, rows)
                    continue
                if self.failing:
                    logger.warning("timestamp writes work again")
                    self.failing = False
            return True

    def close(self) -> None:
        """At the process's exit: the thread's batch in flight ends, the thread stops (its connection closed) and what
        still waits is written."""
        self.stopping.set()
        if self.thread is not None and self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout=10)
        self.write()


_gathered = _Gathered()
atexit.register(_gathered.close)


def timestamps_write_waiting() -> None:
    """Write this process's waiting timestamps now (tests; a process's exit does it by itself)."""
    _gathered.write()


def timestamps_close() -> None:
    """What the process's exit does: the writer thread ends (its connection closed), what waits is written."""
    _gathered.close()
