"""Several portal instances sharing one PostgreSQL and one Redis: two gunicorns (as deployed) on their own ports, and
nginx in front of them as deploy/nginx/dock2box.conf deploys it."""

import pytest
import redis
from django.db import connection
from rest_framework.authtoken.models import Token

from hosts.models import Host
from provisioning.models import Build
from tests.boot_world import BUILD_MAC, IDLE_MAC, make_world
from tests.services import Gunicorn, Nginx, wait_until
from tests.test_concurrency import request

pytestmark = pytest.mark.slow
CACHE_URL = "redis://127.0.0.1:6379/13"


@pytest.fixture
def cluster(transactional_db, admin_user, tmp_path):
    """Two instances (two workers each) on this run's test database and one Redis database, and the world's data."""
    redis.Redis.from_url(CACHE_URL).flushdb()
    world = make_world()
    db = connection.settings_dict
    env = {
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "DOCK2BOX_CACHE_URL": CACHE_URL,
        "DOCK2BOX_WEB_WORKERS": "2",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DOCK2BOX_PUBLIC_URL": "",
        "DOCK2BOX_TRUSTED_PROXIES": "127.0.0.1",
    }
    instances = [Gunicorn(tmp_path, env).start() for _ in range(2)]
    yield world, instances, Token.objects.create(user=admin_user).key
    for instance in instances:
        instance.stop()


def text(url: str) -> str:
    status, body = request(url)
    assert status == 200, (url, status, body)
    return body


def token_of(script: str) -> str:
    return script.split("/config/", 1)[1].split()[0]


def test_a_change_through_one_instance_is_served_by_the_others_boot_path_within_a_second(cluster):
    world, (first, second), token = cluster
    assert "Dock2Box test" in text(f"{second.url}/ipxe?mac={IDLE_MAC}")  # the second instance has its catalogue
    for title in ["Rack 1 menu", "Rack 2 menu", "Rack 3 menu"]:
        status, _ = request(f"{first.url}/api/v2/pxe-menus/{world.menu.pk}/", method="PATCH", token=token,
                            body={"title": title})  # fmt: skip
        assert status == 200
        wait_until(lambda title=title: title in text(f"{second.url}/ipxe?mac={IDLE_MAC}"), timeout=1.0,
                   what=f"{title!r} on the other instance")  # fmt: skip


def test_a_build_stays_consistent_when_its_requests_alternate_between_instances(cluster):
    world, (first, second), token = cluster
    host = world.idle_host
    status, _ = request(f"{first.url}/api/v2/hosts/{host.pk}/enter-build/", method="POST", token=token)
    assert status in (200, 201, 202)
    script = text(f"{second.url}/ipxe?mac={IDLE_MAC}")
    build_token = token_of(script)
    assert token_of(text(f"{first.url}/ipxe?mac={IDLE_MAC}")) == build_token  # one build, whichever answers
    assert text(f"{second.url}/ipxe?mac={IDLE_MAC}") == script  # again: from the shared cache
    assert "D2B_FQDN='idle.ams1.example.com'" in text(f"{first.url}/config/{build_token}?format=env")
    instances = [first, second]
    for number, progress in enumerate(range(10, 100, 10)):
        status, _ = request(f"{instances[number % 2].url}/config/{build_token}/events", method="POST",
                            body={"stage": "image", "progress": progress, "message": f"step {number}"})  # fmt: skip
        assert status == 201
    status, _ = request(f"{second.url}/config/{build_token}/events", method="POST",
                        body={"stage": "done", "progress": 100, "message": "installed"})  # fmt: skip
    assert status == 201
    build = Build.objects.get(host=host)
    assert build.state == "done"
    assert [event.progress for event in build.events.order_by("time", "id")] == [*range(10, 100, 10), 100]
    assert not Host.objects.get(pk=host.pk).build
    for instance in instances:  # both now boot it from its disk, with no build to hand out
        assert "/config/" not in text(f"{instance.url}/ipxe?mac={IDLE_MAC}")


def test_a_bootloader_event_through_one_instance_sends_the_next_boot_through_the_other_to_the_disk(cluster):
    """Both instances answered the host's script from the shared cache; the event through one moves the generation
    before it is answered, so the other's very next answer, without waiting, is the disk."""
    world, (first, second), _ = cluster
    url = f"/ipxe?mac={BUILD_MAC}&platform=pcbios"
    scripts = [text(f"{instance.url}{url}") for instance in (first, second, first, second)]
    assert scripts[:2] == scripts[2:]  # each instance's own (their URLs differ), the second time from the cache
    build_token = token_of(scripts[0])
    assert token_of(scripts[1]) == build_token
    assert "D2B_HOSTNAME='build'" in text(f"{second.url}/config/{build_token}?format=env")
    status, _ = request(f"{first.url}/config/{build_token}/events", method="POST", body={"stage": "bootloader"})
    assert status == 201
    after = text(f"{second.url}{url}")
    assert "choose --default local" in after and "/config/" not in after
    assert Build.objects.get(pk=world.build.pk).state == "unconfirmed"


def test_boots_through_nginx_reach_both_instances_and_keep_the_hosts_address(cluster, tmp_path):
    _, instances, _ = cluster
    (tmp_path / "nginx").mkdir()
    nginx = Nginx(tmp_path / "nginx", [instance.url.removeprefix("http://") for instance in instances]).start()
    try:
        for _ in range(10):
            assert text(f"{nginx.url}/boot.ipxe").startswith("#!ipxe")
            assert text(f"{nginx.url}/ipxe?mac={IDLE_MAC}").startswith("#!ipxe")
        script = text(f"{nginx.url}/ipxe?mac={BUILD_MAC}")
        assert f"{nginx.url}/config/" in script  # URLs name the address the host used: nginx's
        build_token = token_of(script)
        assert "D2B_HOSTNAME='build'" in text(f"{nginx.url}/config/{build_token}?format=env")
        used = nginx.upstreams_used()
        assert set(used) == {instance.url.removeprefix("http://") for instance in instances}
        build = Build.objects.get(token=build_token)
        assert build.client_address == "127.0.0.1"  # the booting host's, through the trusted proxy
    finally:
        nginx.stop()
