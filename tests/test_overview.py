"""The overview on the admin's front page: what an operator checks first, each count a link to its list, read in a
fixed number of queries."""

import re
from datetime import timedelta
from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from hosts.models import Host
from provisioning.builds.services import build_event_record
from provisioning.models import DiscoveredHost
from tests import factories

pytestmark = pytest.mark.django_db


def front_page(client) -> str:
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    return response.content.decode()


def overview_of(page: str) -> str:
    start = page.index('id="dock2box-overview"')
    return page[start : page.index("</div>\n</div>", start)]


def links(html: str) -> dict[str, str]:
    """Link text → address, for every link in `html`."""
    return {
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", text)).strip(): unescape(href)
        for href, text in re.findall(r'<a href="([^"]+)">(.*?)</a>', html, re.S)
    }


def a_world(now):
    """Hosts in every state, a running build with progress, a failed one with its reason, a stalled one."""
    running = factories.BuildFactory(state="running", started=now, last_activity=now)
    build_event_record(build=running, stage="image", progress=40, message="layer 2 of 5", now=now)
    failed = factories.BuildFactory(state="failed", started=now, finished=now, last_activity=now)
    build_event_record(build=failed, stage="failed", progress=None, message="disk too small", now=now)
    old = now - timedelta(hours=2)
    stalled = factories.BuildFactory(state="running", started=old, last_activity=old)
    Host.objects.filter(pk__in=[running.host_id, stalled.host_id]).update(status="building", build=True)
    Host.objects.filter(pk=failed.host_id).update(status="failed")
    factories.BmcFactory(host=running.host, power_state="on")
    factories.BmcFactory(host=failed.host, power_state="unreachable")
    DiscoveredHost.objects.create(mac="52:54:00:aa:00:01", last_seen=now)
    return running, failed, stalled


def test_the_front_page_shows_what_is_happening_and_links_each_count_to_its_list(admin_client):
    running, failed, stalled = a_world(timezone.now())
    overview = overview_of(front_page(admin_client))
    assert "layer 2 of 5" in overview and 'value="40"' in overview
    assert "disk too small" in overview and "Mirror off" in overview
    found = links(overview)
    assert found["Installing now: 2"].endswith("?state__exact=running")
    expectations = {
        "Building": {running.host.fqdn, stalled.host.fqdn},
        "Failed": {failed.host.fqdn},
        "Power: On": {running.host.fqdn},
        "Power: BMC unreachable": {failed.host.fqdn},
        "Installing now: 2": {running.host.fqdn, stalled.host.fqdn},
        "Failed in the last day: 1": {failed.host.fqdn},
        "Stopped reporting: 1": {stalled.host.fqdn},
        "Discovered, waiting to be registered": {"52:54:00:aa:00:01"},
    }
    for text, shown in expectations.items():
        page = admin_client.get(found[text])
        assert page.status_code == 200, (text, page.status_code)  # a lookup the admin refuses is a 302 to ?e=1
        listed = page.content.decode()
        result_list = listed[listed.index('id="result_list"') :] if 'id="result_list"' in listed else ""
        for name in shown:
            assert name in result_list, (text, name)
        others = {running.host.fqdn, failed.host.fqdn, stalled.host.fqdn} - shown
        for name in others:
            assert name not in result_list, (text, name)


def test_the_overview_costs_the_same_queries_for_one_host_and_for_many(admin_client):
    now = timezone.now()
    a_world(now)
    front_page(admin_client)  # warm the session and the content types
    with CaptureQueriesContext(connection) as few:
        front_page(admin_client)
    for _ in range(30):
        build = factories.BuildFactory(state="running", started=now, last_activity=now - timedelta(hours=1))
        build_event_record(build=build, stage="image", progress=10, message="layer 1", now=now)
        factories.BuildFactory(state="failed", started=now, finished=now, last_activity=now)
        factories.BmcFactory(host=build.host)
    with CaptureQueriesContext(connection) as many:
        front_page(admin_client)
    assert len(many) == len(few) <= 20, [query["sql"][:120] for query in many]


def test_the_overview_is_only_for_users_who_may_see_hosts(client, django_user_model):
    staff = django_user_model.objects.create_user(username="clerk", password="clerk-password-1", is_staff=True)
    client.force_login(staff)
    assert "dock2box-overview" not in front_page(client)
