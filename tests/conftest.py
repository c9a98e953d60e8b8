import shutil
import socket
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from images import services as image_services
from installer.build import build
from provisioning.boot.binaries import GRUB, SHIM
from provisioning.catalogue.services import boot_defaults_update
from tests import factories
from tests.debian_images import Containers, DebianImages, debian_images
from tests.registry import Registry
from tests.services import free_port, manage, stop, wait_until


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


@pytest.fixture(scope="session", autouse=True)
def _timestamp_writer_closed(django_db_setup):
    """The gathered timestamps' writer thread ends (its connection closed) before the test database is dropped, as
    it does at a process's exit."""
    yield
    from dock2box.timestamps import timestamps_close

    timestamps_close()


@pytest.fixture(autouse=True)
def _timestamps_at_once(settings):
    """In-process tests see the boot path's timestamp writes at once (test_boot.py tests them gathered)."""
    settings.DOCK2BOX_TIMESTAMP_FLUSH = 0


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


@pytest.fixture
def portal(live_server, transactional_db, settings, bootenv, admin_user):
    """The live portal as a QEMU guest reaches it, its boot environment registered, a site and subnet for the VM;
    returns (url, an admin's API client, site, subnet)."""
    url = f"http://10.0.2.2:{urlsplit(live_server.url).port}"
    settings.DOCK2BOX_PUBLIC_URL = url
    settings.ALLOWED_HOSTS = ["*"]
    boot = image_services.boot_environment_register(
        image_name="d2b-bootenv", version=bootenv.version, kernel=bootenv.kernel, initrd=bootenv.initrd
    )
    image_services.image_update(image=boot.image, data={"kopts": "console=ttyS0"})
    boot_defaults_update(data={"boot_version": boot, "menu_timeout": 2})  # then: the disk
    site = factories.SiteFactory(name="lab1", domain="lab.example.com", dns_servers="10.0.2.3")
    subnet = factories.SubnetFactory(site=site, network="10.0.2.0/24", gateway="10.0.2.2")
    api = APIClient()
    api.force_authenticate(admin_user)
    return url, api, site, subnet


@pytest.fixture
def secure_boot(portal, live_server, tmp_path):
    """The Secure Boot chain as a firmware's PXE reaches it on port 69 (QEMU's own TFTP server, a directory): shim,
    GRUB beside it, and GRUB's first config standing in for our server there: it goes on from `manage.py tftpd` on
    its own port, which relays what the portal answers. Returns the `Machine` arguments of a Secure Boot guest and
    the TFTP server's log."""
    url, *_ = portal
    port = free_port(socket.SOCK_DGRAM)
    log = tmp_path / "tftpd.log"
    reach = f"http://127.0.0.1:{urlsplit(live_server.url).port}"
    process = manage("tftpd", "--bind", "127.0.0.1", "--port", str(port),
                     env={"DOCK2BOX_PUBLIC_URL": url, "DOCK2BOX_TFTP_PORTAL_URL": reach},
                     stdout=log.open("w"), stderr=subprocess.STDOUT)  # fmt: skip
    wait_until(lambda: "serving" in log.read_text(), what="tftpd")
    directory = tmp_path / "firmware-tftp"
    (directory / "grub").mkdir(parents=True)
    shutil.copyfile(settings.DOCK2BOX_SHIM_EFI, directory / SHIM)
    shutil.copyfile(settings.DOCK2BOX_GRUB_EFI, directory / GRUB)
    shutil.copyfile("/usr/lib/ipxe/ipxe.efi", directory / "ipxe.efi")  # (the negative control)
    (directory / "grub/grub.cfg").write_text(f"set root=tftp,10.0.2.2:{port}\nconfigfile /grub/grub.cfg\n")
    yield {"bootfile": SHIM, "tftp": directory, "secure_boot": True}, log
    stop(process)


@pytest.fixture(scope="session")
def debian_registry(tmp_path_factory):
    """A registry without authentication for the images built from Dockerfiles."""
    registry = Registry(tmp_path_factory.mktemp("debian-registry"))
    yield registry
    registry.stop()


@pytest.fixture(scope="session")
def containers(tmp_path_factory, debian_registry):
    """podman and buildah with this session's own storage."""
    return Containers(tmp_path_factory.mktemp("containers"), debian_registry.address)


@pytest.fixture(scope="session")
def roots_cache(debian_cache):
    """mmdebstrap roots, kept between runs."""
    return debian_cache.parent / "debian-roots"


@pytest.fixture(scope="session")
def bookworm(containers, roots_cache) -> DebianImages:
    """Debian 12's base and nginx application, built from deploy/images and pushed (about a minute)."""
    return debian_images(containers, "12", roots_cache)


@pytest.fixture(scope="session")
def trixie(containers, roots_cache) -> DebianImages:
    """Debian 13's, the same way."""
    return debian_images(containers, "13", roots_cache)
