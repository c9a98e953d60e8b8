"""Backup → wipe → restore, on PostgreSQL and SQLite, through the real commands in their own processes."""

import os
import shutil
import subprocess
import sys

import pytest

from tests.services import ROOT, Postgres

pytestmark = pytest.mark.slow
SNAPSHOT = """
import json
from django.contrib.auth.models import User
from rest_framework.test import APIClient
client = APIClient(SERVER_NAME="localhost")
client.force_authenticate(User(username="auditor", is_superuser=True, is_active=True))
names = ["sites", "subnets", "hosts", "interfaces", "images", "image-versions", "pxe-menus", "pxe-menu-items",
         "builds", "boot-defaults"]
print(json.dumps({name: client.get(f"/api/v2/{name}/?limit=1000").json() for name in names}, sort_keys=True))
"""


class Installation:
    def __init__(self, database_url: str, var_dir) -> None:
        self.env = {**os.environ, "DATABASE_URL": database_url, "DOCK2BOX_VAR_DIR": str(var_dir),
                    "DOCK2BOX_ETCD_URL": "", "CELERY_BROKER_URL": "", "DJANGO_ALLOWED_HOSTS": "localhost"}  # fmt: skip

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=self.env, cwd=ROOT,
                              capture_output=True, text=True, check=check)  # fmt: skip

    def state(self) -> tuple[str, str]:
        return self.manage("shell", "-c", SNAPSHOT).stdout, self.manage("etcd_export").stdout


@pytest.fixture(params=["postgresql", "sqlite"])
def installation(request, tmp_path):
    if request.param == "sqlite":
        yield (
            Installation(f"sqlite:///{tmp_path / 'dock2box.sqlite3'}", tmp_path),
            lambda: (tmp_path / "dock2box.sqlite3").unlink(),
        )
        return
    postgres = Postgres().start()
    admin = ["psql", "-h", "127.0.0.1", "-p", str(postgres.port), "-U", "postgres", "-qc"]
    subprocess.run([*admin, "CREATE DATABASE d2b"], check=True)

    def wipe() -> None:
        subprocess.run([*admin, "DROP DATABASE d2b"], check=True)
        subprocess.run([*admin, "CREATE DATABASE d2b"], check=True)

    yield Installation(f"postgres://postgres@127.0.0.1:{postgres.port}/d2b", tmp_path), wipe
    postgres.stop()
    shutil.rmtree(postgres.workdir, ignore_errors=True)


def test_backup_wipe_restore_gives_the_same_portal_and_tree(installation, tmp_path):
    portal, wipe = installation
    portal.manage("migrate", "-v0")
    portal.manage("seed_demo")
    before = portal.state()
    assert '"fqdn": "web01.demo.example.com"' in before[0] and '"web01.demo.example.com"' in before[1]
    backups = tmp_path / "backups"
    first = portal.manage("backup", "--dir", str(backups)).stdout
    assert "Wrote" in first
    assert "nothing written" in portal.manage("backup", "--dir", str(backups)).stdout
    archives = sorted(backups.glob("dock2box-*.tar.gz"))
    assert len(archives) == 1

    wipe()
    restored = portal.manage("restore", str(archives[0]))
    assert "Restored the database" in restored.stdout
    assert portal.state() == before

    data = archives[0].read_bytes()
    for position in (len(data) // 4, len(data) // 3, len(data) // 2):  # inside the compressed members
        damaged = tmp_path / f"damaged-{position}.tar.gz"
        flipped = bytearray(data)
        flipped[position] ^= 0xFF
        damaged.write_bytes(bytes(flipped))
        refused = portal.manage("restore", str(damaged), check=False)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
        assert any(reason in refused.stderr for reason in ("not a readable archive", "damaged", "no valid manifest"))
    (tmp_path / "truncated.tar.gz").write_bytes(data[: len(data) // 2])
    assert "not a readable archive" in portal.manage("restore", str(tmp_path / "truncated.tar.gz"), check=False).stderr
    assert portal.state() == before


def test_retention_keeps_the_newest(installation, tmp_path):
    portal, _ = installation
    portal.manage("migrate", "-v0")
    backups = tmp_path / "backups"
    for number in range(4):
        portal.manage(
            "shell", "-c", f"from hosts.services import site_create; site_create(data={{'name': 'site{number}'}})"
        )
        portal.manage("backup", "--dir", str(backups), "--keep", "2")
    assert len(list(backups.glob("dock2box-*.tar.gz"))) == 2
