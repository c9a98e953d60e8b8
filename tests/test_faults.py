"""The boot path keeps giving right answers through faults of the services behind it, tested with the real ones."""

import contextlib
import logging
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
import requests
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dock2box import cache as shared_cache
from dock2box.changes import GENERATION_KEY, generation_forget
from provisioning.catalogue.selectors import _memo
from provisioning.models import Build
from tests.boot_world import BUILD_MAC, IDLE_MAC, make_world
from tests.services import Gunicorn, Pgbouncer, Postgres, Redis

PORTAL = "http://portal.example.com:8000"


@pytest.fixture
def redis_cache(settings):
    """The portal's shared cache on a private Redis this test may stop, pause and flush."""
    redis = Redis().start()
    settings.CACHES = {
        "default": {
            "BACKEND": "dock2box.cache.SharedRedisCache",
            "LOCATION": redis.url,
            "KEY_PREFIX": "d2b",
            "OPTIONS": {"socket_timeout": 0.5, "socket_connect_timeout": 0.5},
        }
    }
    settings.DOCK2BOX_CACHE_RETRY = 0.2
    settings.DOCK2BOX_PUBLIC_URL = PORTAL
    generation_forget()
    _memo.clear()
    shared_cache._down.clear()
    yield redis
    redis.stop()
    shared_cache._down.clear()
    generation_forget()
    _memo.clear()


@pytest.fixture
def world(redis_cache, transactional_db):
    return make_world()


def boot(client, mac: str) -> str:
    response = client.get("/ipxe", {"mac": mac, "platform": "pcbios"})
    assert response.status_code == 200
    text = response.content.decode()
    assert "internal error" not in text
    return text


def token_of(text: str) -> str:
    return text.split("d2b.config=")[1].split("/config/")[1].split()[0].split("?")[0]


def installs(text: str) -> bool:
    return "choose --default install" in text


def test_with_redis_down_the_boot_path_answers_from_the_database_and_recovers_by_itself(
    client, world, redis_cache, caplog
):
    caplog.set_level(logging.WARNING, logger="dock2box.cache")
    assert installs(boot(client, BUILD_MAC)) and not installs(boot(client, IDLE_MAC))
    errors_before = shared_cache.CACHE_ERRORS.labels("boot entry")._value.get()
    redis_cache.stop()
    text = boot(client, BUILD_MAC)
    assert installs(text)  # a host in build mode still installs
    token = token_of(text)
    assert client.get(f"/config/{token}").status_code == 200
    assert client.post(f"/config/{token}/events", {"stage": "image"}, "application/json").status_code == 201
    for _ in range(5):
        assert not installs(boot(client, IDLE_MAC))
    assert client.post(f"/config/{token}/events", {"stage": "done"}, "application/json").status_code == 201
    assert not installs(boot(client, BUILD_MAC))  # the database says done: its disk
    assert shared_cache.CACHE_ERRORS.labels("boot entry")._value.get() > errors_before
    assert [record.message.split(" (")[0] for record in caplog.records] == ["shared cache down"]  # once an outage

    redis_cache.start()  # empty, as a restarted cache is
    time.sleep(0.3)  # past DOCK2BOX_CACHE_RETRY: the next request asks it again
    assert not installs(boot(client, BUILD_MAC))
    assert "shared cache back" in caplog.records[-1].message
    boot(client, IDLE_MAC)
    with CaptureQueriesContext(connection) as queries:
        boot(client, IDLE_MAC)
    assert len(queries) == 0  # cached again


def test_an_install_the_cache_missed_the_end_of_is_never_answered_from_it(client, world, redis_cache):
    """Redis stops answering (not restarted: it keeps what it had) while the install ends: the cached install script
    is still in it, stamped as current, when it answers again. The boot path asks the database before using it."""
    text = boot(client, BUILD_MAC)
    assert boot(client, BUILD_MAC) == text  # cached
    token = token_of(text)
    before = cache.get(GENERATION_KEY)
    redis_cache.pause()
    try:
        for stage in ("bootloader", "done"):
            assert client.post(f"/config/{token}/events", {"stage": stage}, "application/json").status_code == 201
    finally:
        redis_cache.resume()
    assert Build.objects.get(pk=world.build.pk).state == "done"
    time.sleep(0.3)
    assert not installs(boot(client, BUILD_MAC))
    assert cache.get(GENERATION_KEY) != before  # back: the data generation moved, every cached view is stale


def test_a_flushed_cache_is_filled_again_and_never_wrong(client, world, redis_cache):
    assert installs(boot(client, BUILD_MAC))
    redis_cache.flush()
    assert installs(boot(client, BUILD_MAC)) and not installs(boot(client, IDLE_MAC))
    generation_forget()
    Build.objects.filter(pk=world.build.pk).update(bootloader_started="2026-01-01T00:00:00Z")  # SQL by hand
    assert not installs(boot(client, BUILD_MAC))  # checked against the database, whatever the cache holds


# With the real services around a deployed portal ------------------------------------------------------------------


@pytest.fixture
def deployed(transactional_db, tmp_path):
    """A test world copied into a private PostgreSQL behind pgbouncer (transaction mode), a private Redis, and a
    gunicorn serving them; yields a function that starts the portal with more settings."""
    world = make_world()
    postgres = Postgres().start()
    db = connection.settings_dict
    database = postgres.copy_of(f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}", "dock2box")
    pgbouncer = Pgbouncer(postgres.port).start()
    redis = Redis().start()
    servers: list[Gunicorn] = []

    def serve(workers: int) -> Gunicorn:
        server = Gunicorn(tmp_path, {
            "DATABASE_URL": pgbouncer.url("dock2box"), "DATABASE_CONN_MAX_AGE": "60",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1", "DOCK2BOX_WEB_WORKERS": str(workers), "DOCK2BOX_CACHE_URL": redis.url,
            "DOCK2BOX_PUBLIC_URL": PORTAL, "DOCK2BOX_CACHE_RETRY": "0.2",
        }).start()  # fmt: skip
        servers.append(server)
        return server

    yield SimpleNamespace(world=world, postgres=postgres, database=database, redis=redis, serve=serve)
    for service in (*servers, pgbouncer, redis):
        service.stop()
    with contextlib.suppress(Exception):  # a test may have stopped it
        postgres.stop()
    shutil.rmtree(postgres.workdir, ignore_errors=True)
    shutil.rmtree(pgbouncer.workdir, ignore_errors=True)


def fetch(session: requests.Session, url: str) -> tuple[int, str]:
    try:
        response = session.get(url, timeout=10)
    except requests.RequestException as error:
        return 0, str(error)
    return response.status_code, response.text


@pytest.mark.slow
def test_behind_pgbouncer_in_transaction_mode_nothing_is_prepared_twice_or_deallocated(deployed):
    """Five workers behind pgbouncer: 600 config fetches and 300 unknown-MAC menus all answered right, and PostgreSQL
    logs no error at all (a statement prepared on one server session and run on another logged hundreds)."""
    server = deployed.serve(workers=5)
    session = requests.Session()
    status, text = fetch(session, f"{server.url}/ipxe?mac={BUILD_MAC}")
    assert status == 200 and installs(text)
    token = token_of(text)

    def config(number: int) -> bool:
        status, text = fetch(requests.Session(), f"{server.url}/config/{token}")
        return status == 200 and "D2B_FQDN='build.ams1.example.com'" in text

    def unknown(number: int) -> bool:
        mac = f"52:54:00:77:{number // 256:02x}:{number % 256:02x}"
        status, text = fetch(requests.Session(), f"{server.url}/ipxe?mac={mac}")
        return status == 200 and f"menu for unregistered host ({mac})" in text

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda number: config(number) if number % 3 else unknown(number), range(900)))
    assert answers.count(True) == 900
    assert deployed.postgres.errors() == []
