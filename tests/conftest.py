from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from installer.build import build


def grant(user: User, *codenames: str) -> None:
    """Give a user model permissions by `app_label.codename`."""
    for name in codenames:
        app_label, codename = name.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


@pytest.fixture
def user(db) -> User:
    return User.objects.create_user(username="operator", password="operator-password-1")


@pytest.fixture
def token_client(user) -> APIClient:
    """An API client authenticated with the user's DRF token, as a script would be."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test starts with an empty cache, so no boot catalogue survives from another test's data."""
    from django.core.cache import cache

    from dock2box.changes import generation_forget

    cache.clear()
    generation_forget()
    yield
    cache.clear()
    generation_forget()


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory):
    """One private etcd for the session (tests wipe it with the `etcd` fixture)."""
    from tests.services import Etcd

    server = Etcd(tmp_path_factory.mktemp("etcd")).start()
    yield server
    server.stop()


@pytest.fixture(params=["v3", "v2"])
def etcd(request, etcd_server, settings):
    """The mirror pointed at the private etcd, once per API, starting empty."""
    etcd_server.wipe()
    settings.DOCK2BOX_ETCD_URL = etcd_server.url
    settings.DOCK2BOX_ETCD_API = request.param
    yield etcd_server
    etcd_server.wipe()


@pytest.fixture(scope="session")
def debian_cache() -> Path:
    """Debian packages the suite downloads (kernel, busybox-static), kept between runs."""
    return Path(__file__).resolve().parent.parent / "var/cache/debian"


@pytest.fixture(scope="session")
def bootenv(tmp_path_factory, debian_cache):
    """The installer's boot environment, built once per session (about 10 s)."""
    return build(out=tmp_path_factory.mktemp("bootenv"), flavour="cloud", cache=debian_cache)
