"""Who did what: every change through the services is written down with its actor, shown on the host's admin page,
at /api/v2/hosts/<id>/history/ and (for every kind of object) at /api/v2/history/."""

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from dock2box.models import History
from provisioning.models import Build, DiscoveredHost
from tests import factories
from tests.conftest import grant

pytestmark = pytest.mark.django_db


def story(host) -> list[tuple[str, str]]:
    lines = History.objects.filter(kind="host", object_id=host.pk).order_by("time", "id")
    return [(entry.actor, entry.action) for entry in lines]


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
    assert History.objects.get(kind="host", object_id=host.pk, action="changed").detail == "kopts"
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
    entries = list(History.objects.filter(kind="host").order_by("id").values_list("actor", "action"))
    assert ("admin", "registered") in entries and entries[0] == ("admin", "created")


def test_edits_of_sites_images_and_the_rest_are_recorded_without_the_secrets_values(user, token_client):
    grant(user, "hosts.add_site", "hosts.change_site", "hosts.delete_site", "images.add_image", "images.change_image")
    site = token_client.post("/api/v2/sites/", {"name": "lab", "domain": "lab.example.com"}, format="json").json()
    hash_ = "$6$salt$" + "a" * 86
    changed = {"description": "rack 12", "root_password_hash": hash_}
    assert token_client.patch(f"/api/v2/sites/{site['id']}/", changed, format="json").status_code == 200
    assert token_client.patch(f"/api/v2/sites/{site['id']}/", changed, format="json").status_code == 200  # no change
    image = token_client.post("/api/v2/images/", {"name": "debian-12", "type": "file"}, format="json").json()
    assert token_client.patch(f"/api/v2/images/{image['id']}/", {"kopts": "quiet"}, format="json").status_code == 200
    assert token_client.delete(f"/api/v2/sites/{site['id']}/").status_code == 204

    lines = list(History.objects.order_by("id").values_list("kind", "object_id", "actor", "action", "detail"))
    assert lines == [
        ("site", site["id"], "operator", "created", ""),
        ("site", site["id"], "operator", "changed", "description, root_password_hash"),
        ("image", image["id"], "operator", "created", ""),
        ("image", image["id"], "operator", "changed", "kopts"),
        ("site", site["id"], "operator", "deleted", ""),
    ]
    assert not History.objects.filter(detail__contains="$6$").exists()

    grant(user, "dock2box.view_history")
    page = token_client.get("/api/v2/history/", {"kind": "site", "object_id": site["id"]}).json()
    assert [entry["action"] for entry in page["results"]] == ["deleted", "changed", "created"]
    assert page["results"][0]["name"] == "lab"


def test_the_history_api_needs_the_view_permission(user, token_client):
    factories.SiteFactory()
    assert token_client.get("/api/v2/history/").status_code == 403
    assert APIClient().get("/api/v2/history/").status_code == 401


def test_a_menu_made_in_the_admin_is_recorded_and_the_history_list_is_read_only(admin_client):
    response = admin_client.post(
        reverse("admin:provisioning_pxemenu_add"),
        {"name": "rescue", "title": "Rescue", "timeout": 5, "theme": "dock2box", "items-TOTAL_FORMS": 0,
         "items-INITIAL_FORMS": 0, "items-MIN_NUM_FORMS": 0, "items-MAX_NUM_FORMS": 1000},
    )  # fmt: skip
    assert response.status_code == 302, [line for line in response.content.decode().splitlines() if "error" in line]
    assert History.objects.filter(kind="pxemenu", action="created", actor="admin", name="rescue").exists()
    page = admin_client.get(reverse("admin:dock2box_history_changelist")).content.decode()
    assert "rescue" in page and "pxemenu" in page
    assert admin_client.get(reverse("admin:dock2box_history_add")).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_the_host_history_of_before_moves_into_the_shared_history():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before = [("hosts", "0006_host_history"), ("dock2box", "0001_initial")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    site = old.get_model("hosts", "Site").objects.create(name="lab", domain="lab.example.com")
    host = old.get_model("hosts", "Host").objects.create(fqdn="web01.lab.example.com", site=site)
    HostHistory = old.get_model("hosts", "HostHistory")
    HostHistory.objects.create(host=host, fqdn=host.fqdn, actor="admin", action="created")
    HostHistory.objects.create(host=None, fqdn="gone.lab.example.com", actor="system", action="deleted")
    stamps = list(HostHistory.objects.order_by("id").values_list("time", flat=True))

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    moved = list(History.objects.order_by("id").values_list("kind", "object_id", "name", "actor", "action", "time"))
    assert moved == [
        ("host", host.pk, "web01.lab.example.com", "admin", "created", stamps[0]),
        ("host", 0, "gone.lab.example.com", "system", "deleted", stamps[1]),
    ]
