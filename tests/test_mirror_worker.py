"""The mirror as deployed: a real Redis broker, a real `celery worker` (with beat) process, a real etcd, outages."""

import os
import signal
import subprocess
import sys
import time

import pytest
from django.db import connection
from rest_framework.test import APIClient

from dock2box import celery_app
from dock2box.models import OutboxEntry
from hosts import services as host_services
from provisioning.mirror import sync
from provisioning.mirror.projection import KINDS
from tests.services import ROOT, free_port, stop, wait_until

pytestmark = pytest.mark.slow


class Redis:
    """A private redis-server: the suite never stops the machine's shared one."""

    def __init__(self, workdir) -> None:
        self.port, self.workdir, self.process = free_port(), workdir, None

    def start(self) -> "Redis":
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(lambda: subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True,
                                          check=False).stdout.strip() == b"PONG", what="redis")  # fmt: skip
        return self

    def stop(self) -> None:
        stop(self.process)


class Worker:
    def __init__(self, workdir, env) -> None:
        self.workdir, self.env, self.process = workdir, env, None

    def start(self) -> "Worker":
        log = (self.workdir / "worker.log").open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "dock2box", "worker", "-B", "--concurrency", "2", "--loglevel",
             "INFO", "--schedule", str(self.workdir / "beat-schedule")],
            cwd=ROOT, env=self.env, stdout=log, stderr=log,
        )  # fmt: skip
        wait_until(lambda: "ready" in (self.workdir / "worker.log").read_text(), timeout=60, what="celery worker")
        return self

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        subprocess.run(["pkill", "-9", "-f", str(self.workdir / "beat-schedule")], check=False)

    def stop(self) -> None:
        stop(self.process, timeout=20)


@pytest.fixture
def deployed(transactional_db, etcd_server, settings, tmp_path):
    """etcd, a private Redis, a worker on the test database; this process publishes to that Redis."""
    etcd_server.wipe()
    redis = Redis(tmp_path).start()
    broker = f"redis://127.0.0.1:{redis.port}/0"
    settings.DOCK2BOX_ETCD_URL, settings.DOCK2BOX_ETCD_API = etcd_server.url, "v3"
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": broker,
        "DOCK2BOX_CACHE_URL": broker.replace("/0", "/1"),
        "DOCK2BOX_ETCD_URL": etcd_server.url,
        "DOCK2BOX_ETCD_API": "v3",
        "DOCK2BOX_ETCD_TIMEOUT": "1",
        "DOCK2BOX_OUTBOX_DRAIN_INTERVAL": "2",
    }
    saved = {key: celery_app.conf[key] for key in ("broker_url", "task_always_eager")}
    celery_app.conf.update(broker_url=broker, task_always_eager=False)
    celery_app._pool = None  # the producer pool is made for the broker URL of its time
    worker = Worker(tmp_path, env).start()
    yield etcd_server, redis, worker
    worker.stop()
    celery_app.conf.update(saved)
    celery_app._pool = None
    redis.stop()
    if etcd_server.process is None:
        etcd_server.start()
    etcd_server.wipe()


def _database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def tree_is_exact(timeout: float = 60) -> None:
    """The outbox is empty and etcd holds exactly the projection (of what these tests change: not `/default`)."""
    store = sync.mirror_stores()[0]
    kinds = [kind for kind in KINDS if kind != "default"]
    expected = {
        key: value
        for name, document in sync.desired_documents(None).items()
        if name != "default"
        for key, value in document.items()
    }
    wait_until(
        lambda: not OutboxEntry.objects.exists() and store.read([f"/{kind}/" for kind in kinds]) == expected,
        timeout=timeout,
        what="the mirror",
    )


def make_hosts(count: int, start: int = 0) -> None:
    site = host_services.site_create(data={"name": f"site{start}"})
    for number in range(start, start + count):
        host_services.host_create(
            data={"fqdn": f"node{number:04d}.example.com", "site": site},
            interfaces=[{"name": "eth0", "mac": f"52:54:00:aa:{number // 256:02x}:{number % 256:02x}"}],
        )


def test_a_change_through_the_api_appears_in_etcd_within_seconds(deployed, admin_user):
    client = APIClient()
    client.force_authenticate(admin_user)
    started = time.monotonic()
    payload = {"fqdn": "api01.example.com", "interfaces": [{"name": "eth0", "mac": "52:54:00:00:aa:01"}]}
    assert client.post("/api/v2/hosts/", payload, format="json").status_code == 201
    store = sync.mirror_stores()[0]
    wait_until(lambda: store.read(["/host/api01.example.com/"]), timeout=10, what="the host in etcd")
    assert time.monotonic() - started < 5
    tree_is_exact()


def test_etcd_down_changes_wait_and_all_arrive(deployed):
    etcd, _, _ = deployed
    etcd.stop()
    make_hosts(200)
    assert OutboxEntry.objects.count() >= 200
    etcd.start()
    tree_is_exact(timeout=90)


def test_redis_down_changes_wait_and_all_arrive(deployed):
    _, redis, _ = deployed
    redis.stop()
    make_hosts(200)
    assert OutboxEntry.objects.count() >= 200
    redis.start()
    tree_is_exact(timeout=90)


def test_a_worker_killed_in_the_middle_of_a_drain_leaves_nothing_wrong(deployed):
    *_, worker = deployed
    worker.stop()
    make_hosts(1200)
    store = sync.mirror_stores()[0]
    worker.start()
    wait_until(lambda: store.read(["/host/"]), timeout=60, what="a first etcd transaction")
    assert OutboxEntry.objects.exists(), "the drain finished before it could be interrupted"
    worker.kill()
    written = len(store.read(["/host/", "/hwaddr/"]))
    assert written > 0
    worker.start()
    tree_is_exact(timeout=120)
