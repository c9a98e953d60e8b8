"""Two operators, or an operator and a booting host, on one host at once: real concurrent requests to the live portal
on PostgreSQL end with exactly one open build and a consistent host."""

import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from rest_framework.authtoken.models import Token

from hosts.models import Host
from provisioning.models import Build
from tests import factories

PARALLEL = 8


@pytest.fixture
def portal(live_server, transactional_db, admin_user, settings):
    settings.DOCK2BOX_PUBLIC_URL = live_server.url
    return live_server.url, Token.objects.create(user=admin_user).key


def request(url: str, *, method: str = "GET", token: str = "", body: dict | None = None) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Token {token}"} if token else {})
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, data=data, headers=headers, method=method), timeout=30
        ) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def at_once(*calls) -> list[tuple[int, str]]:
    """Run the calls in parallel threads released together."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_entering_build_mode_many_times_at_once_opens_one_build(portal):
    url, key = portal
    host = factories.InstallableHostFactory()
    answers = at_once(
        *[lambda: request(f"{url}/api/v2/hosts/{host.pk}/enter-build/", method="POST", token=key)] * PARALLEL
    )
    assert {status for status, _ in answers} == {200}
    assert len({json.loads(text)["id"] for _, text in answers}) == 1
    assert Build.objects.filter(host=host, state="pending").count() == 1
    assert Host.objects.get(pk=host.pk).build


def test_boots_of_one_mac_at_once_hand_out_one_build_and_one_token(portal):
    url, _ = portal
    host = factories.InstallableHostFactory()
    Host.objects.filter(pk=host.pk).update(build=True)  # in build mode without a build: the first boot opens one
    mac = host.interfaces.get().mac
    answers = at_once(*[lambda: request(f"{url}/ipxe?mac={mac}")] * PARALLEL)
    tokens = {text.split("/config/", 1)[1].split()[0] for status, text in answers if status == 200}
    assert len(tokens) == 1 and all(status == 200 for status, _ in answers)
    assert Build.objects.filter(host=host).count() == 1


def test_cancelling_while_the_installer_fetches_its_config_leaves_the_host_consistent(portal):
    url, key = portal
    for _ in range(5):
        host = factories.InstallableHostFactory()
        request(f"{url}/api/v2/hosts/{host.pk}/enter-build/", method="POST", token=key)
        build = Build.objects.get(host=host)
        config, cancel = f"{url}/config/{build.token}", f"{url}/api/v2/hosts/{host.pk}/cancel-build/"
        answers = at_once(
            lambda cancel=cancel: request(cancel, method="POST", token=key),
            *[lambda config=config: request(config)] * (PARALLEL - 1),
        )
        assert answers[0][0] == 200 and {status for status, _ in answers[1:]} <= {200, 403}
        build.refresh_from_db()
        host.refresh_from_db()
        assert (build.state, build.token, host.build) == ("cancelled", None, False)
        # The host is "failed" if the installer had started (its disk may be half written), else as it was.
        assert host.status == ("failed" if build.started else "new"), (host.status, build.started)
        assert request(config)[0] == 403


def test_done_and_cancel_at_once_leave_one_story(portal):
    url, key = portal
    host = factories.InstallableHostFactory()
    request(f"{url}/api/v2/hosts/{host.pk}/enter-build/", method="POST", token=key)
    token = Build.objects.get(host=host).token
    assert request(f"{url}/config/{token}")[0] == 200
    answers = at_once(
        lambda: request(f"{url}/config/{token}/events", method="POST", body={"stage": "done", "progress": 100}),
        lambda: request(f"{url}/api/v2/hosts/{host.pk}/cancel-build/", method="POST", token=key),
    )
    build = Build.objects.get(host=host)
    host.refresh_from_db()
    assert not host.build and build.token is None
    # Whichever came first decides: done → installed; cancel first → cancelled and failed (the installer was running).
    assert (build.state, host.status) in [("done", "installed"), ("cancelled", "failed")], (
        build.state,
        host.status,
        answers,
    )


@pytest.mark.parametrize("ending", ["cancel", "done"])
@pytest.mark.parametrize("due", ["touched", "renewed", "no build yet"])
def test_a_boot_that_read_a_build_before_it_ended_writes_nothing_back(transactional_db, ending, due):
    """The boot path reads a MAC's host and build in one statement, then writes (a token touched or renewed, a build
    made): here a cancel or the installer's `done` commits in between, and every write finds the state it read gone.
    No closed build gets a token back, no cancelled host is put back in build mode."""
    from datetime import timedelta

    from django.utils import timezone

    from provisioning.builds.selectors import interface_for_boot
    from provisioning.builds.services import (
        build_event_record,
        build_token_for_boot,
        host_cancel_build,
        host_enter_build,
    )

    host = factories.InstallableHostFactory(fqdn="race.example.com")
    mac = host.interfaces.get().mac
    build = host_enter_build(host=host)
    idle = timedelta(hours=7) if due == "renewed" else timedelta(hours=4)  # token idle expiry 6 h, touched at 3 h
    Build.objects.filter(pk=build.pk).update(last_activity=timezone.now() - idle)
    if due == "no build yet":
        Build.objects.filter(pk=build.pk).delete()  # build mode set around the services: the boot makes the build
    read = interface_for_boot(mac=mac)
    if ending == "cancel" or due == "no build yet":
        host_cancel_build(host=Host.objects.get(pk=host.pk))
    else:
        build_event_record(build=Build.objects.get(pk=build.pk), stage="done", progress=100, message="",
                           now=timezone.now())  # fmt: skip
    granted = build_token_for_boot(
        host=read.interface.host, build_id=read.build_id, token=read.build_token, last_activity=read.build_activity,
        first_boot=read.build_first_boot, now=timezone.now(),
    )  # fmt: skip
    assert granted is None
    assert not Build.objects.filter(host=host, state__in=["pending", "running"]).exists()
    assert not Build.objects.filter(host=host).exclude(token=None).exists()
    assert not Host.objects.get(pk=host.pk).build
