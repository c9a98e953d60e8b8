"""Power control through the hosts' BMCs, against OpenIPMI's `ipmi_sim` (a real IPMI-over-LAN BMC) on loopback.

The simulated machine here is a stand-in process (`sleep`) that the simulator starts on power-on and kills on
power-off; tests/test_install.py drives a real QEMU guest through the simulator. The database is used in autocommit
(`transactional_db`) so the power tasks run as they do on the embedded default: in-process when the request commits.
"""

import json
import socket
import subprocess
import threading
import time
import uuid

import pytest
from django.core.management import call_command
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from dock2box.models import History
from hosts.models import Bmc, Host
from provisioning.builds.services import host_enter_build
from provisioning.models import Build
from provisioning.power.ipmi import BmcError
from provisioning.power.services import power_refresh
from tests import factories
from tests.services import IpmiSim, free_port, wait_until
from tests.test_concurrency import at_once, request

pytestmark = pytest.mark.usefixtures("transactional_db")


def running(marker: str) -> bool:
    return subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """One simulator for the module; each test starts with the machine off."""
    marker = f"sleep {900000 + uuid.uuid4().int % 99999}"
    bmc = IpmiSim(tmp_path_factory.mktemp("bmc"), startcmd=marker).start()
    bmc.marker = marker
    yield bmc
    bmc.stop()
    subprocess.run(["pkill", "-f", marker])


@pytest.fixture
def machine_off(sim):
    if sim.power() == "on":
        subprocess.run(["ipmitool", "-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", str(sim.port), "-U", sim.USER,
                        "-P", sim.PASSWORD, "power", "off"], capture_output=True, check=True)  # fmt: skip
        wait_until(lambda: sim.power() == "off", what="power off")
    return sim


@pytest.fixture
def fast_retries(settings):
    settings.DOCK2BOX_POWER_RETRIES = 1
    settings.DOCK2BOX_POWER_WAIT = 20


@pytest.fixture
def api(admin_user):
    client = APIClient()
    client.force_authenticate(admin_user)
    return client


def with_bmc(host: Host, sim: IpmiSim, **overrides) -> Bmc:
    data = {"host": host, "address": "127.0.0.1", "port": sim.port, "username": sim.USER, "password": sim.PASSWORD}
    from hosts.services import bmc_create

    return bmc_create(data=data | overrides)


def test_status_on_cycle_and_off_through_the_api_drive_the_simulated_machine(api, machine_off, fast_retries):
    sim = machine_off
    host = factories.HostFactory()
    created = api.post("/api/v2/bmcs/", {
        "host": host.fqdn, "address": "127.0.0.1", "port": sim.port, "username": sim.USER, "password": sim.PASSWORD,
    }, format="json")  # fmt: skip
    assert created.status_code == 201, created.content
    assert "password" not in created.json() and created.json()["secrets_set"] == ["username", "password"]

    answer = api.post(f"/api/v2/hosts/{host.pk}/power/", {"action": "status"}, format="json")
    assert answer.status_code == 202, answer.content
    shown = api.get(f"/api/v2/hosts/{host.pk}/power/").json()
    assert (shown["power_state"], shown["last_result"], shown["pending"]) == ("off", "done", "")

    assert api.post(f"/api/v2/hosts/{host.pk}/power/", {"action": "on"}, format="json").status_code == 202
    assert sim.power() == "on" and running(sim.marker)
    first = subprocess.run(["pgrep", "-f", sim.marker], capture_output=True, text=True).stdout.split()

    assert api.post(f"/api/v2/hosts/{host.pk}/power/", {"action": "cycle"}, format="json").status_code == 202
    again = subprocess.run(["pgrep", "-f", sim.marker], capture_output=True, text=True).stdout.split()
    assert sim.power() == "on" and again and again != first  # the machine was stopped and started again

    assert api.post(f"/api/v2/hosts/{host.pk}/power/", {"action": "off"}, format="json").status_code == 202
    assert sim.power() == "off"
    wait_until(lambda: not running(sim.marker), what="the machine to stop")
    bmc = Bmc.objects.get(host=host)
    assert (bmc.power_state, bmc.last_action, bmc.last_result) == ("off", "off", "done")
    lines = list(History.objects.filter(kind="host", object_id=host.pk).order_by("id").values_list("actor", "action"))
    assert lines[-2:] == [("admin", "power off requested"), ("admin", "power off")]


def test_reinstall_enters_build_mode_and_powers_on_a_machine_that_is_off(api, machine_off, fast_retries):
    host = factories.InstallableHostFactory()
    with_bmc(host, machine_off)
    answer = api.post(f"/api/v2/hosts/{host.pk}/power/", {"action": "reinstall"}, format="json")
    assert answer.status_code == 202, answer.content
    host.refresh_from_db()
    assert host.build and Build.objects.filter(host=host, state="pending").count() == 1
    assert machine_off.power() == "on"
    assert Bmc.objects.get(host=host).last_result == "done"


def test_a_reinstall_the_host_cannot_do_is_refused_before_anything_is_queued(api, machine_off):
    host = factories.HostFactory()  # no interface, no image
    with_bmc(host, machine_off)
    answer = api.post(f"/api/v2/hosts/{host.pk}/power/", {"action": "reinstall"}, format="json")
    assert answer.status_code == 400 and "Build mode refused" in answer.json()["build"][0]
    assert machine_off.power() == "off" and Bmc.objects.get(host=host).pending == ""


def test_two_reinstalls_at_once_start_one_build(live_server, admin_user, machine_off, fast_retries, settings):
    settings.DOCK2BOX_PUBLIC_URL = live_server.url
    key = Token.objects.create(user=admin_user).key
    host = factories.InstallableHostFactory()
    with_bmc(host, machine_off)
    url = f"{live_server.url}/api/v2/hosts/{host.pk}/power/"
    answers = at_once(*[lambda: request(url, method="POST", token=key, body={"action": "reinstall"})] * 2)
    assert sorted(status for status, _ in answers) == [202, 400], answers
    refused = next(json.loads(text) for status, text in answers if status == 400)
    assert "still running" in refused["power"][0]
    assert Build.objects.filter(host=host).count() == 1
    assert machine_off.power() == "on"


@pytest.mark.parametrize("fault", [
    "wrong-password",
    pytest.param("nothing-listens", marks=pytest.mark.slow),  # the BMC client's log-in timeout, twice
    pytest.param("never-answers", marks=pytest.mark.slow),
])  # fmt: skip
def test_a_failing_bmc_is_recorded_and_build_mode_is_left_as_it_was(api, machine_off, fast_retries, fault, caplog):
    host = factories.InstallableHostFactory()
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    port = {"wrong-password": machine_off.port, "nothing-listens": free_port(socket.SOCK_DGRAM),
            "never-answers": silent.getsockname()[1]}[fault]  # fmt: skip
    with_bmc(host, machine_off, port=port, password="wrong" if fault == "wrong-password" else machine_off.PASSWORD)
    try:
        answer = api.post(f"/api/v2/hosts/{host.pk}/power/", {"action": "reinstall"}, format="json")
    finally:
        silent.close()
    assert answer.status_code == 202
    bmc = Bmc.objects.get(host=host)
    expected = {
        "wrong-password": "Incorrect password", "nothing-listens": "nothing listens", "never-answers": "no answer",
    }[fault]  # fmt: skip
    assert expected in bmc.last_result and "\n" not in bmc.last_result, bmc.last_result
    assert bmc.power_state == ("unknown" if fault == "wrong-password" else "unreachable")  # never "off"
    host.refresh_from_db()
    assert not host.build and not Build.objects.filter(host=host).exists()  # the BMC is asked first
    assert machine_off.power() == "off"
    last = History.objects.filter(kind="host", object_id=host.pk).order_by("id").last()
    assert (last.action, last.actor) == ("reinstall failed", "admin")
    assert machine_off.PASSWORD not in json.dumps(api.get(f"/api/v2/hosts/{host.pk}/power/").json())
    assert machine_off.PASSWORD not in caplog.text and "power_apply" in caplog.text  # the task's log line and result
    assert not History.objects.filter(detail__contains=machine_off.PASSWORD).exists()


def test_a_host_in_build_mode_stays_in_it_when_its_bmc_fails(api, machine_off, fast_retries):
    host = factories.InstallableHostFactory()
    with_bmc(host, machine_off, password="wrong")
    host_enter_build(host=host)
    assert api.post(f"/api/v2/hosts/{host.pk}/power/", {"action": "reinstall"}, format="json").status_code == 202
    host.refresh_from_db()
    assert host.build and Build.objects.get(host=host).state == "pending"


def test_bad_bmc_input_is_refused_with_the_field_and_the_reason(api):
    host = factories.HostFactory()
    cases = {
        "address": {"address": "not a host!"},
        "port": {"port": 70000},
        "username": {"username": "admin\nroot"},
        "password": {"password": "pa\x00ss"},
    }
    for field, bad in cases.items():
        body = {"host": host.fqdn, "address": "bmc01.example.com", "port": 623, **bad}
        answer = api.post("/api/v2/bmcs/", body, format="json")
        assert answer.status_code == 400 and field in answer.json(), (field, answer.content)
    assert api.post("/api/v2/bmcs/", {"host": host.fqdn, "address": "10.0.0.5", "port": 0}, format="json").json()[
        "port"
    ]
    assert not Bmc.objects.exists()
    unknown = api.post(f"/api/v2/hosts/{host.pk}/power/", {"action": "explode"}, format="json")
    assert unknown.status_code == 400 and "action" in unknown.json()
    no_bmc = api.post(f"/api/v2/hosts/{host.pk}/power/", {"action": "on"}, format="json")
    assert no_bmc.status_code == 400 and "has no BMC" in no_bmc.json()["power"][0]


def test_a_list_of_hosts_in_one_call_says_which_were_queued_and_why_others_were_not(api, machine_off, fast_retries):
    with_bmc(powered := factories.HostFactory(), machine_off)
    bare = factories.HostFactory()
    answer = api.post("/api/v2/power/", {"action": "status", "hosts": [powered.fqdn, bare.fqdn, "nope.example.com"]},
                      format="json")  # fmt: skip
    assert answer.status_code == 202
    body = answer.json()
    assert body["queued"] == [powered.fqdn]
    assert "has no BMC" in body["refused"][bare.fqdn] and body["refused"]["nope.example.com"] == "No such host."
    assert api.post("/api/v2/power/", {"action": "on", "hosts": [bare.fqdn]}, format="json").status_code == 400


def test_the_refresh_asks_every_bmc_and_shows_a_silent_one_as_unreachable(machine_off, settings):
    settings.DOCK2BOX_POWER_CONCURRENCY = 4
    answering = with_bmc(factories.HostFactory(), machine_off)
    silent = with_bmc(factories.HostFactory(), machine_off, port=free_port(socket.SOCK_DGRAM))
    assert power_refresh() == 2
    answering.refresh_from_db()
    silent.refresh_from_db()
    assert (answering.power_state, silent.power_state) == ("off", "unreachable")
    assert answering.power_checked and silent.power_checked


def test_the_command_and_the_admin_run_power_actions(admin_client, machine_off, fast_retries, capsys):
    host = factories.InstallableHostFactory()
    bmc = with_bmc(host, machine_off)
    call_command("power", "status", host.fqdn)
    assert f"{host.fqdn}: done (power off)" in capsys.readouterr().out

    page = admin_client.get(reverse("admin:hosts_host_change", args=[host.pk])).content.decode()
    assert "Power cycle" in page and reverse("admin:hosts_host_power", args=[host.pk, "on"]) in page
    assert machine_off.PASSWORD not in page
    admin_client.post(reverse("admin:hosts_host_power", args=[host.pk, "on"]))
    assert machine_off.power() == "on"
    admin_client.post(reverse("admin:hosts_host_changelist"), {"action": "power_off", "_selected_action": [host.pk]})
    assert machine_off.power() == "off"
    listing = admin_client.get(reverse("admin:hosts_host_changelist")).content.decode()
    assert '<td class="field-power">Off</td>' in listing
    form = admin_client.get(reverse("admin:hosts_bmc_change", args=[bmc.pk])).content.decode()
    assert machine_off.PASSWORD not in form
    metrics = admin_client.get("/metrics").content.decode()
    assert 'dock2box_power_actions_total{action="off",outcome="done"}' in metrics
    assert "dock2box_bmc_request_seconds_bucket" in metrics


def test_an_empty_password_in_the_admin_form_keeps_the_stored_one(admin_client, machine_off):
    bmc = with_bmc(factories.HostFactory(), machine_off)
    port = bmc.port  # the same address and port: a new address forgets the password (test_secrets.py)
    response = admin_client.post(reverse("admin:hosts_bmc_change", args=[bmc.pk]), {
        "host": bmc.host_id, "protocol": "ipmi", "address": "127.0.0.1", "port": port, "username": "root",
        "password": "",
    })  # fmt: skip
    assert response.status_code == 302, response.content.decode()[-2000:]
    bmc.refresh_from_db()
    assert (bmc.username, bmc.password) == ("root", machine_off.PASSWORD)
    response = admin_client.post(reverse("admin:hosts_bmc_change", args=[bmc.pk]), {
        "host": bmc.host_id, "protocol": "ipmi", "address": "127.0.0.1", "port": port, "username": "admin",
        "password": "", "password_remove": "on",
    })  # fmt: skip
    assert response.status_code == 302
    bmc.refresh_from_db()
    assert bmc.password == ""


def test_a_worker_that_died_mid_action_does_not_block_the_host_forever(api, machine_off, fast_retries):
    host = factories.HostFactory()
    bmc = with_bmc(host, machine_off)
    Bmc.objects.filter(pk=bmc.pk).update(pending="cycle", pending_since="2020-01-01T00:00:00Z")
    assert api.post(f"/api/v2/hosts/{host.pk}/power/", {"action": "status"}, format="json").status_code == 202
    assert Bmc.objects.get(pk=bmc.pk).pending == ""


def test_power_state_reads_happen_in_parallel_threads_without_the_database(machine_off):
    """The refresh's threads only talk to BMCs: every one answers, however many run at once."""
    from provisioning.power.ipmi import BmcAccess, power_get

    access = BmcAccess(address="127.0.0.1", port=machine_off.port, username=machine_off.USER,
                       password=machine_off.PASSWORD)  # fmt: skip
    assert "bmc-secret" not in repr(access)
    states: list[str] = []
    threads = [threading.Thread(target=lambda: states.append(power_get(access))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert states == ["off"] * 8


def test_a_reinstall_whose_power_on_answer_was_lost_keeps_build_mode(api, machine_off, fast_retries, monkeypatch):
    """The BMC powered the machine on but its answer never came: the host may be booting into its installer, so the
    build stays open (the failure is reported); only a failure before power-on was asked leaves build mode as it was."""
    from provisioning.power import services as power

    real = power.bmc_client.power_set

    def lost_answer(access, state, *, wait):
        real(access, state, wait=wait)
        raise BmcError("timed out waiting for the BMC's answer", unreachable=True)

    monkeypatch.setattr(power.bmc_client, "power_set", lost_answer)
    host = factories.InstallableHostFactory()
    bmc = with_bmc(host, machine_off)
    assert api.post(f"/api/v2/hosts/{host.pk}/power/", {"action": "reinstall"}, format="json").status_code == 202
    wait_until(lambda: machine_off.power() == "on", what="power on")
    bmc.refresh_from_db()
    host.refresh_from_db()
    assert "timed out" in bmc.last_result
    assert host.build and Build.objects.get(host=host).state == "pending"


def test_one_action_per_bmc_at_a_time_across_connections(machine_off, transactional_db, monkeypatch):
    """Two workers (two database sessions) act on one BMC: the second starts when the first has ended."""
    from django.db import connection

    from provisioning.power import services as power

    real, times = power.bmc_client.power_get, []

    def slow_get(access):
        times.append(("enter", time.monotonic()))
        state = real(access)
        time.sleep(0.5)
        return state

    monkeypatch.setattr(power.bmc_client, "power_get", slow_get)
    bmc = with_bmc(factories.HostFactory(), machine_off)

    def act():
        try:
            power.power_apply(bmc_id=bmc.pk, action="status")
            times.append(("end", time.monotonic()))
        finally:
            connection.close()

    threads = [threading.Thread(target=act) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    events = sorted(times, key=lambda event: event[1])
    assert [kind for kind, _ in events] == ["enter", "end", "enter", "end"]


def test_the_refresh_does_not_overwrite_what_an_action_found_meanwhile(machine_off, transactional_db, monkeypatch):
    from django.utils import timezone

    from provisioning.power import services as power

    bmc = with_bmc(factories.HostFactory(), machine_off)
    real = power.bmc_client.power_get

    def slow_get(access):
        state = real(access)  # "off"
        later = timezone.now()
        Bmc.objects.filter(pk=bmc.pk).update(power_state="on", power_checked=later, last_result_at=later)
        return state

    monkeypatch.setattr(power.bmc_client, "power_get", slow_get)
    assert power_refresh() == 1
    assert Bmc.objects.get(pk=bmc.pk).power_state == "on"
