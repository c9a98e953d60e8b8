"""The permission matrix: anonymous, view-only staff, change-only staff, add+change staff and a superuser, in the admin
(every registered model's list, add, change, history and delete pages, its actions and the host page's buttons) and
through /api/v2 with an API token of each. Nobody is shown a secret or a token; nobody writes beyond what they may."""

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from hosts.models import Bmc, Site
from provisioning.models import BootTemplate, Build, DiscoveredHost
from tests.boot_world import make_world
from tests.test_secrets import ED25519, SHA512, _staff

pytestmark = pytest.mark.django_db
ROLES = {"view": ("view",), "change": ("change",), "add+change": ("add", "change")}  # and anonymous, superuser
NEVER_SHOWN = ["s3cret-pull", "bmc-s3cret-pw"]  # and every token's key, every build's tokens
SITE_SECRETS = [SHA512, "puller", ED25519.split()[1]]  # shown to nobody who may not change the site


@pytest.fixture
def world(settings):
    settings.DOCK2BOX_PUBLIC_URL = "http://portal.example.com:8000"
    world = make_world()
    Site.objects.filter(pk=world.site.pk).update(root_password_hash=SHA512, ssh_authorized_keys=ED25519)
    Bmc.objects.create(host=world.idle_host, address="127.0.0.1", username="admin", password="bmc-s3cret-pw")
    Build.objects.filter(pk=world.build.pk).update(report_token="r" * 40)
    DiscoveredHost.objects.create(mac="52:54:00:00:0f:01", ip="10.0.0.50", last_seen=world.build.created)
    BootTemplate.objects.create(name="ks", kind="kickstart", content="network --hostname={{ fqdn|ks }}")
    users = {role: _staff(role.replace("+", "-"), *actions) for role, actions in ROLES.items()}
    users["superuser"] = User.objects.create_superuser("root", password="pw")
    world.users = users
    world.tokens = {role: Token.objects.create(user=user).key for role, user in users.items()}
    world.never = [*NEVER_SHOWN, *world.tokens.values(), world.build.token, "r" * 40]
    return world


def may(role: str, action: str) -> bool:
    return role == "superuser" or (role != "anonymous" and action in ROLES[role])


def snapshot() -> dict[str, list[dict]]:
    """Every row the admin and the API can write (not the admin's log or sessions)."""
    models = [model for model in admin.site._registry if model not in (LogEntry, Session)] + [Token]
    return {model._meta.label: list(model._default_manager.order_by("pk").values()) for model in models}


def pages() -> list[tuple[str, str, str]]:
    """(model label, page, URL) for every registered model's admin pages, on its first object where one is needed."""
    found = []
    for model in admin.site._registry:
        info = (model._meta.app_label, model._meta.model_name)
        found += [(model._meta.label, "changelist", reverse("admin:{}_{}_changelist".format(*info))),
                  (model._meta.label, "add", reverse("admin:{}_{}_add".format(*info)))]  # fmt: skip
        first = model._default_manager.order_by("pk").first()
        if first is not None:
            for page in ("change", "history", "delete"):
                found.append((model._meta.label, page, reverse(f"admin:{info[0]}_{info[1]}_{page}", args=[first.pk])))
    return found


def logged_in(client, world, role: str):
    client.logout()
    if role != "anonymous":
        client.force_login(world.users[role])
    return client


def assert_nothing_secret(world, role: str, where: str, body: str) -> None:
    for secret in world.never:
        assert secret not in body, (role, where, secret[:12])
    if not may(role, "change"):
        for secret in SITE_SECRETS:
            assert secret not in body, (role, where, secret[:12])


@pytest.mark.parametrize("role", ["anonymous", *ROLES, "superuser"])
def test_admin_pages_show_no_secret_and_open_only_with_the_permission(client, world, role):
    logged_in(client, world, role)
    for _, page, url in pages():
        response = client.get(url)
        if role == "anonymous":
            assert response.status_code == 302 and "/admin/login/" in response["Location"], url
            continue
        needed = {"changelist": "view", "change": "view", "history": "view", "add": "add", "delete": "delete"}[page]
        if not may(role, needed) and not (needed == "view" and may(role, "change")):
            assert response.status_code == 403, (role, url, response.status_code)
        assert response.status_code in (200, 302, 403), (role, url, response.status_code)
        assert_nothing_secret(world, role, url, response.content.decode())


@pytest.mark.parametrize("role", ["anonymous", *ROLES])
def test_admin_writes_beyond_the_permission_change_nothing(client, world, role):
    logged_in(client, world, role)
    before = snapshot()
    for _, page, url in pages():
        if page in ("add", "change") and not may(role, page):
            assert client.post(url, {}).status_code in (302, 403), (role, url)
        elif page == "delete":  # no staff role here may delete
            assert client.post(url, {"post": "yes"}).status_code in (302, 403), (role, url)
    for model, model_admin in admin.site._registry.items():
        first = model._default_manager.order_by("pk").first()
        if first is None:
            continue
        changelist = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        for name in model_admin.actions or []:
            function = getattr(model_admin, name, None)
            needed = getattr(function, "allowed_permissions", ())
            if needed and all(may(role, permission) for permission in needed):
                continue  # (allowed: what it does is tested with the action)
            client.post(changelist, {"action": name, "_selected_action": [first.pk]})
    host = world.idle_host.pk
    for action in ("power/on", "power/off", "power/cycle", "build/enter", "build/cancel"):
        if not may(role, "change"):
            assert client.post(f"/admin/hosts/host/{host}/{action}/").status_code in (302, 403), (role, action)
    assert snapshot() == before


@pytest.mark.parametrize("role", ["anonymous", *ROLES, "superuser"])
def test_the_api_shows_no_secret_and_writes_only_with_the_permission(world, role):
    api = APIClient()
    if role != "anonymous":
        api.credentials(HTTP_AUTHORIZATION=f"Token {world.tokens[role]}")
    root = APIClient()
    root.force_authenticate(world.users["superuser"])
    lists = [url for name, url in root.get("/api/v2/").json().items() if name != "power"]
    before = snapshot()
    for url in lists:
        response = api.get(url)
        assert response.status_code == (401 if role == "anonymous" else 200), (role, url)
        assert_nothing_secret(world, role, url, response.content.decode())
        body = root.get(url).json()
        items = body.get("results", []) if isinstance(body, dict) else []
        detail = items[0]["url"] if items and "url" in items[0] else None
        if detail:
            response = api.get(detail)
            assert response.status_code == (401 if role == "anonymous" else 200), (role, detail)
            assert_nothing_secret(world, role, detail, response.content.decode())
        if not may(role, "add"):
            assert api.post(url, {}, format="json").status_code in (401, 403, 405), (role, url)
        if detail and not may(role, "change"):
            assert api.patch(detail, {}, format="json").status_code in (401, 403, 405), (role, detail)
        if detail and role != "superuser":
            assert api.delete(detail).status_code in (401, 403, 405), (role, detail)
    host = world.idle_host.pk
    for action in ("enter-build", "cancel-build"):
        if not may(role, "change"):
            assert api.post(f"/api/v2/hosts/{host}/{action}/", {}, format="json").status_code in (401, 403), role
    if not may(role, "change"):
        assert api.post(f"/api/v2/hosts/{host}/power/", {"action": "on"}, format="json").status_code in (401, 403)
        assert api.post("/api/v2/power/", {"action": "on", "hosts": [host]}, format="json").status_code in (401, 403)
    v1 = api.get("/api/v1/hosts")
    assert v1.status_code == (401 if role == "anonymous" else 200), role
    assert_nothing_secret(world, role, "/api/v1/hosts", v1.content.decode())
    if role != "superuser":  # no other role may delete
        assert api.delete(f"/api/v1/hosts/{world.idle_host.fqdn}").status_code in (401, 403), role
    assert snapshot() == before
