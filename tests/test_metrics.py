"""/metrics: counters add up across gunicorn workers; state comes from the database."""

import re
import urllib.request

import pytest
from django.db import connection

from tests import factories
from tests.services import Gunicorn, free_port, manage, stop, wait_until

pytestmark = pytest.mark.slow


def scrape(url: str) -> str:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        return response.read().decode()


def value(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, flags=re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@pytest.fixture
def gunicorn(transactional_db, tmp_path):
    db = connection.settings_dict
    server = Gunicorn(tmp_path, {
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "DOCK2BOX_METRICS_DIR": str(tmp_path / "metrics"), "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DOCK2BOX_WEB_WORKERS": "2", "DOCK2BOX_CACHE_URL": "redis://127.0.0.1:6379/12",
    }).start()  # fmt: skip
    yield server.url, server.env
    server.stop()


def test_boot_counters_add_up_across_workers_and_state_comes_from_the_database(gunicorn):
    gunicorn, _ = gunicorn
    host = factories.HostFactory(build=False)
    factories.InterfaceFactory(host=host, mac="52:54:00:00:0a:01")
    factories.BuildFactory(state="done", token=None)
    before = scrape(gunicorn)
    for number in range(30):
        urllib.request.urlopen(f"{gunicorn}/ipxe?mac=52:54:00:00:0b:{number:02x}", timeout=5).read()
    for _ in range(10):
        urllib.request.urlopen(f"{gunicorn}/ipxe?mac=52:54:00:00:0a:01", timeout=5).read()
    urllib.request.urlopen(f"{gunicorn}/ipxe?mac=nonsense", timeout=5).read()
    for _ in range(6):  # whichever worker answers, the sums are the same
        text = scrape(gunicorn)
        assert (
            value(text, 'dock2box_boot_requests_total{outcome="unknown"}')
            - value(before, 'dock2box_boot_requests_total{outcome="unknown"}')
            == 30
        )
        assert value(text, 'dock2box_boot_requests_total{outcome="known"}') == 10
        assert value(text, 'dock2box_boot_requests_total{outcome="error"}') == 1
        assert value(text, 'dock2box_builds{state="done"}') == 1
        assert "dock2box_outbox_backlog 0.0" in text
        assert "dock2box_build_duration_seconds_bucket" in text


def test_tftp_counters_add_up_with_the_portal(gunicorn, tmp_path):
    import socket

    import tftpy

    url, env = gunicorn
    port = free_port(socket.SOCK_DGRAM)
    log = (tmp_path / "tftpd.log").open("w")
    tftpd = manage("tftpd", "--bind", "127.0.0.1", "--port", str(port), env={**env, "DOCK2BOX_PUBLIC_URL": url},
                   stdout=log, stderr=log)  # fmt: skip
    try:
        wait_until(lambda: "serving" in (tmp_path / "tftpd.log").read_text(), what="tftpd")
        client = tftpy.TftpClient("127.0.0.1", port)
        for _ in range(3):
            client.download("stage0.ipxe", str(tmp_path / "stage0"), timeout=2)
        with pytest.raises(tftpy.TftpShared.TftpException):
            client.download("missing.efi", str(tmp_path / "nope"), timeout=2, retries=1)
        wait_until(lambda: value(scrape(url), 'dock2box_tftp_transfers_total{outcome="served"}') == 3, what="served")
        assert value(scrape(url), 'dock2box_tftp_transfers_total{outcome="refused"}') == 1
    finally:
        stop(tftpd)
