"""Who did what to a host: every change through the services is written down with its actor, shown on the host's
admin page and at /api/v2/hosts/<id>/history/."""

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from hosts.models import HostHistory
from provisioning.models import Build, DiscoveredHost
from tests import factories
from tests.conftest import grant

pytestmark = pytest.mark.django_db


def story(host) -> list[tuple[str, str]]:
    return [(entry.actor, entry.action) for entry in HostHistory.objects.filter(host=host).order_by("time", "id")]


def test_build_mode_edits_and_the_install_are_recorded_with_who_did_them(client, user, token_client, settings):
    settings.DOCK2BOX_PUBLIC_URL = "http://portal.example.com"
    host = factories.InstallableHostFactory()
    grant(user, "hosts.change_host", "hosts.view_host")
    assert token_client.patch(f"/api/v2/hosts/{host.pk}/", {"kopts": "quiet"}, format="json").status_code == 200
    assert token_client.post(f"/api/v2/hosts/{host.pk}/enter-build/").status_code == 200
    token = Build.objects.get(host=host).token
    assert client.get(f"/config/{token}").status_code == 200
    client.post(f"/config/{token}/events", {"stage": "done", "progress": 100, "message": "in 42 s"}, "application/json")
    assert story(host) == [
        ("operator", "changed"), ("operator", "build mode entered"), ("installer (127.0.0.1)", "installed"),
    ]  # fmt: skip
    assert HostHistory.objects.get(host=host, action="changed").detail == "kopts"
    page = token_client.get(f"/api/v2/hosts/{host.pk}/history/").json()
    assert page["count"] == 3 and page["results"][0]["action"] == "installed"


def test_the_admin_and_v1_act_as_their_users_and_the_boot_path_as_itself(admin_client, admin_user, client, settings):
    settings.DOCK2BOX_PUBLIC_URL = "http://portal.example.com"
    host = factories.InstallableHostFactory()
    admin_client.post(reverse("admin:hosts_host_changelist"), {"action": "enter_build", "_selected_action": [host.pk]})
    admin_client.post(reverse("admin:hosts_host_changelist"), {"action": "cancel_build", "_selected_action": [host.pk]})
    key = Token.objects.create(user=admin_user).key
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    mac = host.interfaces.get().mac
    assert api.patch(f"/api/v1/hosts/{host.fqdn}", [{"op": "replace", "path": "/kopts", "value": "nomodeset"}],
                     format="json").status_code == 200  # fmt: skip
    type(host).objects.filter(pk=host.pk).update(build=True)  # in build mode without a build: the boot path opens one
    client.get(f"/ipxe?mac={mac}")
    assert story(host) == [
        ("admin", "build mode entered"), ("admin", "build mode cancelled"), ("admin", "changed"),
        ("boot path", "build mode entered"),
    ]  # fmt: skip
    page = admin_client.get(reverse("admin:hosts_host_change", args=[host.pk])).content.decode()
    assert "Who did what" in page and "build mode cancelled" in page


def test_registering_a_discovered_host_is_recorded(admin_client):
    discovered = DiscoveredHost.objects.create(mac="52:54:00:00:0c:01", last_seen="2026-01-01T00:00:00Z")
    admin_client.post(
        reverse("admin:provisioning_discoveredhost_changelist"),
        {"action": "register", "_selected_action": [discovered.pk]},
    )
    entries = list(HostHistory.objects.order_by("id").values_list("actor", "action"))
    assert ("admin", "registered") in entries and entries[0] == ("admin", "created")
