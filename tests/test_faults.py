"""The boot path keeps giving right answers through faults of the services behind it, tested with the real ones."""

import logging
import time

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dock2box import cache as shared_cache
from dock2box.changes import GENERATION_KEY, generation_forget
from provisioning.catalogue.selectors import _memo
from provisioning.models import Build
from tests.boot_world import BUILD_MAC, IDLE_MAC, make_world
from tests.services import Redis

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
