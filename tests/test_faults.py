"""The boot path keeps giving right answers through faults of the services behind it, tested with the real ones."""

import contextlib
import logging
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import psycopg
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


def test_a_request_the_database_failed_under_is_a_503_to_try_again(client, world, monkeypatch, admin_client):
    """Not a 500 HTML page: the installer and API clients try again; a booting host asks again; the admin keeps
    Django's error page."""
    from django.db import OperationalError

    def down(*args, **kwargs):
        raise OperationalError("connection to server at 127.0.0.1 failed")

    token = token_of(boot(client, BUILD_MAC))
    monkeypatch.setattr("provisioning.builds.selectors._Select.rows", down)
    response = client.get(f"/config/{token}")
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert response.json() == {"detail": "The database did not answer; try again shortly."}
    response = client.post(f"/config/{token}/events", {"stage": "image"}, "application/json")
    assert response.status_code == 503
    text = client.get("/ipxe", {"mac": BUILD_MAC}).content.decode()
    assert "internal error" in text and "Asking again in 10 seconds" in text
    monkeypatch.setattr("hosts.admin.HostAdmin.get_queryset", down)
    admin_client.raise_request_exception = False
    assert admin_client.get("/admin/hosts/host/").status_code == 500


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


@pytest.mark.slow
def test_a_boot_storm_through_redis_and_postgresql_restarts_never_gets_a_wrong_answer(deployed):
    """Hosts keep booting and an installer keeps reporting while Redis stops and comes back empty and PostgreSQL
    restarts (behind pgbouncer). Requests in flight may fail; no answer is ever wrong (the idle host never installs,
    the host in build mode never installs once its bootloader stage was acknowledged), every event the installer was
    told was stored is stored, and once the services are back every answer is right."""
    server = deployed.serve(workers=3)
    status, text = fetch(requests.Session(), f"{server.url}/ipxe?mac={BUILD_MAC}")
    assert status == 200 and installs(text)
    token = token_of(text)
    halt, bootloader, bootloader_stored = threading.Event(), threading.Event(), threading.Event()
    answers: list[tuple[float, str, bool]] = []  # (when asked, what, answered right)
    wrong: list[str] = []
    stored: list[str] = []

    def storm(kind: str) -> None:
        session, number = requests.Session(), 0
        while not halt.is_set():
            asked, past_bootloader, number = time.monotonic(), bootloader_stored.is_set(), number + 1
            if kind == "config":  # the installer's: once the build ended (its first boot), refused
                status, text = fetch(session, f"{server.url}/config/{token}")
                if status >= 500 and not (status == 503 and text.startswith("{")):
                    wrong.append(f"config answered {status}: {text[:100]}")  # an error page, not the error shape
                right = status == 200 and "D2B_FQDN='build.ams1.example.com'" in text
                answers.append((asked, kind, right or (past_bootloader and status == 403)))
                continue
            mac = {"build": BUILD_MAC, "idle": IDLE_MAC}.get(
                kind, f"52:54:00:88:{number // 256 % 256:02x}:{number % 256:02x}"
            )
            status, text = fetch(session, f"{server.url}/ipxe?mac={mac}")
            if status == 200 and installs(text) and (kind == "idle" or past_bootloader):
                wrong.append(f"{kind} installs at {asked:.2f}")
            right = {
                "build": "choose --default install" in text if not past_bootloader else "hostname: build." in text,
                "idle": "hostname: idle." in text,
                "unknown": f"menu for unregistered host ({mac})" in text,
            }[kind]
            answers.append((asked, kind, status == 200 and right))

    def installer() -> None:
        session, number = requests.Session(), 0
        while not bootloader_stored.is_set():
            number += 1
            stage = "bootloader" if bootloader.is_set() else "image"
            try:
                response = session.post(f"{server.url}/config/{token}/events",
                                        json={"stage": stage, "message": f"event {number}"}, timeout=10)  # fmt: skip
            except requests.RequestException:
                continue
            if response.status_code == 201:
                stored.append(f"event {number}")
                if stage == "bootloader":
                    bootloader_stored.set()
            time.sleep(0.05)

    threads = [threading.Thread(target=storm, args=(kind,)) for kind in ("build", "idle", "unknown", "config")]
    threads.append(threading.Thread(target=installer))
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.5)
        deployed.redis.stop()
        time.sleep(1.5)
        deployed.redis.start()  # empty
        time.sleep(1)
        deployed.postgres.restart()
        time.sleep(1.5)
        bootloader.set()
        assert bootloader_stored.wait(timeout=20)
        time.sleep(1)
        deployed.redis.stop()
        deployed.postgres.restart()  # both at once
        deployed.redis.start()
        time.sleep(3)
        recovered = time.monotonic()
        time.sleep(3)
    finally:
        halt.set()
        bootloader_stored.set()
        for thread in threads:
            thread.join()
    assert wrong == []
    after = [(kind, right) for asked, kind, right in answers if asked > recovered]
    assert {kind for kind, _ in after} == {"build", "idle", "unknown", "config"}
    assert all(right for _, right in after), [kind for kind, right in after if not right]
    assert len(answers) > 200
    with psycopg.connect(deployed.database.replace("postgres://", "postgresql://")) as database:
        messages = {row[0] for row in database.execute("SELECT message FROM provisioning_buildevent").fetchall()}
    assert set(stored) <= messages
