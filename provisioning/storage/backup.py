"""Backups: the database (SQL) and the etcd tree (an etcdtool export) in one checked archive; and restoring one.

An archive is `dock2box-<UTC time>.tar.gz` holding `database.sql` (`pg_dump` on PostgreSQL, `iterdump` on SQLite),
`etcd.json` and `manifest.json` (the engine, each member's sha256, and a hash of the content). A backup whose content
equals the newest archive's is not written (the original compared with `last.json`); old archives beyond the
retention are removed. A restore checks the whole archive before it touches anything.
"""

import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, connections

from provisioning.mirror.sync import export_tree

FORMAT = 1


class BackupError(Exception):
    """The archive cannot be used (corrupt, incomplete, another engine); nothing was changed."""


@dataclass(frozen=True)
class BackupResult:
    path: Path | None  # None: nothing changed since the newest archive
    removed: list[Path]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _engine() -> str:
    return "sqlite" if connection.vendor == "sqlite" else "postgresql"


def _pg_env() -> dict[str, str]:
    db = settings.DATABASES["default"]
    env = {**os.environ, "PGHOST": str(db.get("HOST") or ""), "PGPORT": str(db.get("PORT") or ""),
           "PGUSER": str(db.get("USER") or ""), "PGDATABASE": str(db["NAME"])}  # fmt: skip
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = str(db["PASSWORD"])
    return env


def _program(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is missing: install postgresql-client")
    return found


def database_dump() -> bytes:
    """The whole database as SQL, deterministic for unchanged data."""
    if _engine() == "sqlite":
        connection.ensure_connection()
        return "\n".join(connection.connection.iterdump()).encode() + b"\n"
    result = subprocess.run(  # noqa: S603 - our arguments
        [_program("pg_dump"), "--no-owner", "--no-privileges", "--format=plain"],
        env=_pg_env(),
        capture_output=True,
        check=False,
    )
    if result.returncode:
        raise BackupError(f"pg_dump failed: {result.stderr.decode()[-500:]}")
    return result.stdout


def _comparable(dump: bytes) -> bytes:
    """The dump without what changes on every run: pg_dump (15.14 and later) fences its output with
    `\\restrict <random key>` / `\\unrestrict <random key>` lines."""
    return b"\n".join(line for line in dump.split(b"\n") if not line.startswith((b"\\restrict ", b"\\unrestrict ")))


def archives(directory: Path) -> list[Path]:
    """The archives in a directory, oldest first."""
    return sorted(directory.glob("dock2box-*.tar.gz"))


def _manifest(path: Path) -> dict[str, Any]:
    return read_archive(path)[0]


def backup(*, directory: Path, keep: int) -> BackupResult:
    """Write an archive unless nothing changed since the newest one; keep the `keep` newest."""
    directory.mkdir(parents=True, exist_ok=True)
    members = {
        "database.sql": database_dump(),
        "etcd.json": (json.dumps(export_tree(), indent=2, sort_keys=True) + "\n").encode(),
    }
    content = _sha256(b"".join(_sha256(_comparable(members[name])).encode() for name in sorted(members)))
    existing = archives(directory)
    if existing:
        try:
            if _manifest(existing[-1]).get("content_sha256") == content:
                return BackupResult(None, [])
        except BackupError:
            pass  # a broken newest archive: write a good one
    now = datetime.now(UTC)
    manifest = {
        "format": FORMAT,
        "created": now.isoformat(),
        "engine": _engine(),
        "content_sha256": content,
        "files": {name: _sha256(data) for name, data in members.items()},
    }
    members["manifest.json"] = json.dumps(manifest, indent=2, sort_keys=True).encode()
    target = directory / f"dock2box-{now:%Y%m%dT%H%M%S%fZ}.tar.gz"
    partial = target.with_suffix(".partial")
    with tarfile.open(partial, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), int(now.timestamp()), 0o600
            archive.addfile(info, io.BytesIO(data))
    partial.chmod(0o600)
    partial.rename(target)
    removed = archives(directory)[:-keep] if keep > 0 else []
    for old in removed:
        old.unlink()
    return BackupResult(target, removed)


def read_archive(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest and members of an archive, every checksum verified; BackupError otherwise."""
    try:
        with tarfile.open(path, "r:gz") as archive:
            members = {
                member.name: archive.extractfile(member).read()  # type: ignore[union-attr]
                for member in archive.getmembers()
                if member.isfile()
            }
    except (OSError, tarfile.TarError, EOFError, zlib.error) as error:
        raise BackupError(f"{path}: not a readable archive ({error})") from error
    try:
        manifest = json.loads(members.pop("manifest.json"))
    except (KeyError, ValueError) as error:
        raise BackupError(f"{path}: no valid manifest.json") from error
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: archive format {manifest.get('format')!r} is not {FORMAT}")
    for name, digest in manifest.get("files", {}).items():
        if name not in members or _sha256(members[name]) != digest:
            raise BackupError(f"{path}: {name} is missing or damaged (checksum mismatch)")
    return manifest, members


def restore(path: Path) -> dict[str, Any]:
    """Replace the database with the archive's (all or nothing); the caller re-syncs etcd from it."""
    manifest, members = read_archive(path)
    if manifest["engine"] != _engine():
        raise BackupError(f"{path}: a {manifest['engine']} backup cannot be restored into {_engine()}")
    sql = members["database.sql"]
    connections.close_all()
    if _engine() == "sqlite":
        target = Path(settings.DATABASES["default"]["NAME"])
        fresh = target.with_suffix(".restoring")
        fresh.unlink(missing_ok=True)
        with sqlite3.connect(fresh) as database:
            database.executescript(sql.decode())
        fresh.replace(target)
    else:
        script = b"DROP SCHEMA public CASCADE;\nCREATE SCHEMA public;\n" + sql
        result = subprocess.run(  # noqa: S603 - our arguments
            [_program("psql"), "--quiet", "--single-transaction", "-v", "ON_ERROR_STOP=1", "-f", "-"],
            input=script, env=_pg_env(), capture_output=True, check=False,
        )  # fmt: skip
        if result.returncode:
            raise BackupError(f"psql failed, the database is unchanged: {result.stderr.decode()[-500:]}")
    return manifest
