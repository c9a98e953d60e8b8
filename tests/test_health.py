"""`/healthz` and `/readyz`, against private PostgreSQL, Redis and etcd that the test stops and starts again."""

import contextlib
import json
import shutil
import urllib.error
import urllib.request

import pytest

from tests.services import Etcd, Postgres, free_port, manage, stop, wait_until
from tests.test_mirror_worker import Redis

pytestmark = pytest.mark.slow


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_healthz_answers_without_dependencies(client, db):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert set(ready.json()["components"]) == {"database"}


@pytest.fixture
def portal(tmp_path):
    postgres = Postgres().start()
    redis = Redis(tmp_path).start()
    (tmp_path / "etcd").mkdir()
    etcd = Etcd(tmp_path / "etcd").start()
    port = free_port()
    env = {"DATABASE_URL": postgres.url, "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis.port}/0",
           "DOCK2BOX_ETCD_URL": etcd.url, "DOCK2BOX_CACHE_URL": "", "DATABASE_CONN_MAX_AGE": "60"}  # fmt: skip
    server = manage("runserver", f"127.0.0.1:{port}", "--noreload", env=env)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: get(f"{url}/healthz")[0] == 200, what="portal")
    yield url, {"database": postgres, "broker": redis, "etcd": etcd}
    stop(server)
    for service in (postgres, redis, etcd):
        with contextlib.suppress(Exception):  # one may be stopped already
            service.stop()
    shutil.rmtree(postgres.workdir, ignore_errors=True)


@pytest.mark.parametrize("component", ["database", "broker", "etcd"])
def test_readyz_names_the_component_that_is_down_and_recovers(portal, component):
    url, services = portal
    status, body = get(f"{url}/readyz")
    assert status == 200, body
    assert set(body["components"]) == {"database", "broker", "etcd"}
    services[component].stop()
    status, body = get(f"{url}/readyz")
    assert status == 503
    assert body["status"] == f"down: {component}"
    assert body["components"][component]["ok"] is False
    assert all(body["components"][other]["ok"] for other in body["components"] if other != component)
    assert get(f"{url}/healthz")[0] == 200
    services[component].start()
    wait_until(lambda: get(f"{url}/readyz")[0] == 200, timeout=30, what=f"{component} back")
