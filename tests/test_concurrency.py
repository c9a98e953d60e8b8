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
