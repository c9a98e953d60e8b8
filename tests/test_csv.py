"""Hosts with their interfaces as CSV: export, import back (through the same services and rules), all or nothing."""

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from hosts.models import Host, Interface
from tests import factories
from tests.conftest import grant

pytestmark = pytest.mark.django_db

HEADER = "fqdn,site,image,version,kopts,labels,serial,asset_tag,interface,mac,ip,dhcp,primary\n"


@pytest.fixture
def lab():
    site = factories.SiteFactory(name="lab1", domain="lab.example.com")
    subnet = factories.SubnetFactory(site=site, network="10.5.0.0/24", gateway="10.5.0.1")
    version = factories.ImageVersionFactory(version="7")
    return site, subnet, version


def post_csv(client, text):
    return client.generic("POST", "/api/v2/hosts/csv/", text.encode(), content_type="text/csv")


def test_export_then_import_gives_back_the_same_hosts(user, token_client, lab):
    site, subnet, version = lab
    host = factories.HostFactory(fqdn="web01.lab.example.com", site=site, image=version.image, image_version=version,
                                 kopts="quiet", labels="rack12")  # fmt: skip
    factories.InterfaceFactory(host=host, name="eth0", mac="52:54:00:05:00:01", ip="10.5.0.10", subnet=subnet)
    factories.InterfaceFactory(host=host, name="eth1", mac="52:54:00:05:00:02", dhcp=True, primary=False)
    factories.HostFactory(fqdn="bare.lab.example.com", site=site)
    grant(user, "hosts.view_host", "hosts.add_host", "hosts.change_host")

    exported = token_client.get("/api/v2/hosts/csv/", {"ordering": "fqdn"})
    assert exported.status_code == 200 and exported["Content-Type"].startswith("text/csv")
    text = exported.content.decode()
    assert text.splitlines() == [
        HEADER.strip(),
        "bare.lab.example.com,lab1,,,,,,,,,,,",
        f"web01.lab.example.com,lab1,{version.image.name},7,quiet,rack12,,,eth0,52:54:00:05:00:01,10.5.0.10,no,yes",
        f"web01.lab.example.com,lab1,{version.image.name},7,quiet,rack12,,,eth1,52:54:00:05:00:02,,yes,no",
    ]
    assert token_client.get("/api/v2/hosts/csv/", {"hostname": "bare"}).content.decode().count("\n") == 2

    Host.objects.all().delete()
    answer = post_csv(token_client, text)
    assert answer.status_code == 200 and answer.json() == {"created": 2, "updated": 0}, answer.content
    assert token_client.get("/api/v2/hosts/csv/", {"ordering": "fqdn"}).content.decode() == text
    again = post_csv(token_client, text)
    assert again.json() == {"created": 0, "updated": 2}


def test_one_bad_line_and_nothing_is_stored_and_every_bad_line_is_named(user, token_client, lab):
    site, _subnet, _version = lab
    kept = factories.HostFactory(fqdn="kept.lab.example.com", site=site, kopts="before")
    factories.InterfaceFactory(host=kept, mac="52:54:00:05:00:09")
    grant(user, "hosts.view_host", "hosts.add_host", "hosts.change_host")
    text = HEADER + "\n".join([
        "new01.lab.example.com,lab1,,,,,,,eth0,52:54:00:05:00:21,10.5.0.21,no,yes",  # line 2: good
        "kept.lab.example.com,lab1,,,after,,,,eth0,52:54:00:05:00:09,,no,yes",  # line 3: good (an update)
        "new02.example.org,lab1,,,,,,,eth0,52:54:00:05:00:22,,no,yes",  # line 4: outside the site's domain
        "new03.lab.example.com,nosuchsite,,,,,,,eth0,52:54:00:05:00:23,,no,yes",  # line 5: no such site
        "new04.lab.example.com,lab1,,,,,,,eth0,52:54:00:05:00:21,,no,yes",  # line 6: line 2's MAC
        "new05.lab.example.com,lab1,,,,,,,eth0,52:54:00:05:00:24,10.5.0.1,maybe,yes",  # line 7: gateway IP, flag
    ]) + "\n"  # fmt: skip
    answer = post_csv(token_client, text)
    assert answer.status_code == 400
    rows = answer.json()["rows"]
    assert sorted(rows) == ["4", "5", "6", "7"], rows
    assert "outside the domain of site lab1" in rows["4"]["fqdn"][0]
    assert rows["5"]["site"] == ["No site 'nosuchsite'."]
    assert "Another interface has this MAC (52:54:00:05:00:21): eth0 of new01.lab.example.com" in rows["6"]["mac"][0]
    assert "gateway" in rows["7"]["ip"][0] and "yes or no" in rows["7"]["non_field_errors"][0]
    assert not Host.objects.exclude(pk=kept.pk).exists()
    kept.refresh_from_db()
    assert kept.kopts == "before"


def test_a_file_that_is_not_hosts_is_refused_whole(user, token_client):
    grant(user, "hosts.view_host", "hosts.add_host", "hosts.change_host")
    answer = post_csv(token_client, "name,mac\nweb01,52:54:00:00:00:01\n")
    assert answer.status_code == 400 and "missing: fqdn, interface" in answer.json()["file"][0]
    not_utf8 = token_client.generic("POST", "/api/v2/hosts/csv/", "fqdn\n\xe9".encode("latin-1"),
                                    content_type="text/csv")  # fmt: skip
    assert not_utf8.status_code == 400
    assert token_client.post("/api/v2/hosts/csv/", {"a": 1}, format="json").status_code == 415
    empty = token_client.generic("POST", "/api/v2/hosts/csv/", b"", content_type="text/csv")
    assert empty.status_code == 400 and "request body" in empty.json()["detail"]


def test_importing_needs_add_and_change(user, token_client):
    grant(user, "hosts.view_host", "hosts.add_host")
    assert post_csv(token_client, HEADER).status_code == 403


def test_the_command_and_the_admin_export_and_the_command_imports(admin_client, lab, tmp_path, capsys):
    site, subnet, _version = lab
    host = factories.HostFactory(fqdn="web01.lab.example.com", site=site)
    factories.InterfaceFactory(host=host, mac="52:54:00:05:00:31", ip="10.5.0.31", subnet=subnet)
    call_command("hosts_csv", "export", str(tmp_path / "hosts.csv"))
    text = (tmp_path / "hosts.csv").read_text()
    page = admin_client.post(reverse("admin:hosts_host_changelist"),
                             {"action": "export_csv", "_selected_action": [host.pk]})  # fmt: skip
    assert page.content.decode() == text
    (tmp_path / "hosts.csv").write_text(text.replace("10.5.0.31", "10.5.0.32"))
    call_command("hosts_csv", "import", str(tmp_path / "hosts.csv"))
    assert "0 host(s) created, 1 updated." in capsys.readouterr().out
    assert Interface.objects.get(host=host).ip == "10.5.0.32"
    (tmp_path / "bad.csv").write_text(HEADER + "web01.lab.example.com,lab1,,,,,,,eth0,nope,,no,yes\n")
    with pytest.raises(CommandError, match="Nothing was imported"):
        call_command("hosts_csv", "import", str(tmp_path / "bad.csv"))
    assert "line 2: mac:" in capsys.readouterr().err


class CountingCache:
    """The shared cache with its writes counted by key (the keys a write names)."""

    def __init__(self, cache):
        self.cache, self.written = cache, []

    def __getattr__(self, name):
        method = getattr(self.cache, name)
        if name not in ("set", "set_many", "add", "delete", "delete_many", "touch"):
            return method

        def counted(first, *args, **kwargs):
            self.written.append(sorted(first) if isinstance(first, dict | list) else [first])
            return method(first, *args, **kwargs)

        return counted


@pytest.mark.parametrize("count", [10, 40])
def test_an_import_of_n_hosts_moves_their_macs_generations_only(
    user, token_client, lab, monkeypatch, django_capture_on_commit_callbacks, count
):
    """Each imported host makes its own MACs' scripts stale, not every cached view: the cache writes grow with the
    hosts imported (at most one per host and change), and the data generation stays."""
    from django.core.cache import cache

    from dock2box import changes

    grant(user, "hosts.view_host", "hosts.add_host", "hosts.change_host")
    counting = CountingCache(cache)
    monkeypatch.setattr(changes, "cache", counting)
    rows = "".join(f"h{n}.lab.example.com,lab1,,,,,,,eth0,52:54:00:06:00:{n:02x},10.5.0.{20 + n},false,true\n"
                   for n in range(count))  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        response = post_csv(token_client, HEADER + rows)
    assert response.status_code == 200, response.content
    assert Host.objects.count() == count
    keys = [key for written in counting.written for key in written]
    assert changes.GENERATION_KEY not in keys
    assert len(counting.written) <= 2 * count  # the host, then its interfaces: one write each
    assert {key.rsplit("/", 1)[1] for key in keys} == {f"52:54:00:06:00:{n:02x}" for n in range(count)}


def test_cells_that_a_spreadsheet_would_run_are_exported_inert_and_imported_back(user, token_client, lab):
    """Values can come from anonymous boots (a discovered machine's serial and asset tag): a cell starting with
    `=`, `+`, `-` or `@` is written behind a quote, as OWASP recommends, and the import takes the quote off."""
    site, _subnet, _version = lab
    host = factories.HostFactory(fqdn="web01.lab.example.com", site=site, serial="=1+2", asset_tag="@SUM(A1)",
                                 labels="rack", kopts="+quiet")  # fmt: skip
    factories.InterfaceFactory(host=host, name="eth0", mac="52:54:00:05:00:01")
    grant(user, "hosts.view_host", "hosts.add_host", "hosts.change_host")
    text = token_client.get("/api/v2/hosts/csv/").content.decode()
    row = text.splitlines()[1].split(",")
    assert row[4:8] == ["'+quiet", "rack", "'=1+2", "'@SUM(A1)"]
    Host.objects.filter(pk=host.pk).update(serial="", asset_tag="", labels="", kopts="")
    assert post_csv(token_client, text).json() == {"created": 0, "updated": 1}
    host.refresh_from_db()
    assert (host.kopts, host.labels, host.serial, host.asset_tag) == ("+quiet", "rack", "=1+2", "@SUM(A1)")
