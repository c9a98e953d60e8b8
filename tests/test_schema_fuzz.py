"""A bounded schemathesis run over /api/schema/ (fixed seed, every operation but the power actions): no server error,
no response that breaks the schema. Its data: one of everything, the registry an address where nothing listens.

The power actions are left out: a generated BMC address would send IPMI (and DNS) traffic off this machine; they are
tested against a simulated BMC on loopback in tests/test_power.py."""

import re
import subprocess
import sys

import pytest
from rest_framework.authtoken.models import Token

from provisioning.builds.services import host_enter_build
from provisioning.models import BootTemplate, DiscoveredHost
from tests import factories
from tests.services import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def inventory(transactional_db, settings):
    settings.DOCK2BOX_PUBLIC_URL = "http://127.0.0.1:9"
    closed = f"127.0.0.1:{free_port()}"
    site = factories.SiteFactory(name="ams1", domain="ams1.example.com", registry=closed)
    subnet = factories.SubnetFactory(site=site, network="10.9.0.0/24", gateway="10.9.0.1", reserved="10.9.0.2-10.9.0.9")
    building = factories.InstallableHostFactory(site=site, interface__ip="10.9.0.11", interface__subnet=subnet)
    host_enter_build(host=building)
    factories.InstallableHostFactory(site=site)
    menu = factories.PxeMenuFactory(name="main")
    factories.PxeMenuItemFactory(menu=menu, key="shell")
    BootTemplate.objects.create(name="ks", kind="kickstart", content="network --hostname={{ fqdn|ks }}")
    DiscoveredHost.objects.create(mac="52:54:00:00:0f:01", ip="10.9.0.50", last_seen=building.created)


# schemathesis's command with `ast.parse` taken one thread at a time: CPython 3.11.7 keeps the AST validator's
# recursion depth in one place for all threads, and Hypothesis parses its lambdas' source in each of schemathesis's
# worker threads ("SystemError: AST constructor recursion depth mismatch", a crash of the runner seen once in CI).
RUNNER = """
import ast, sys, threading
lock, parse = threading.Lock(), ast.parse
def parse_alone(*args, **kwargs):
    with lock:
        return parse(*args, **kwargs)
ast.parse = parse_alone
from schemathesis.cli import schemathesis
sys.exit(schemathesis())
"""


def test_the_api_answers_every_generated_request_within_its_schema(live_server, inventory, admin_user, tmp_path):
    key = Token.objects.create(user=admin_user).key
    run = subprocess.run(
        [sys.executable, "-c", RUNNER, "run", f"{live_server.url}/api/schema/",
         "--checks", "not_a_server_error,response_schema_conformance", "--max-examples", "5", "--seed", "1",
         "--workers", "4", "--header", f"Authorization: Token {key}", "--continue-on-failure",
         "--exclude-path-regex", "power",
         "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,  # its example cache stays out of the checkout
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    selected, available = map(int, re.search(r"Selected: (\d+)/(\d+)", run.stdout).groups())
    tested = int(re.search(r"Tested: (\d+)", run.stdout).group(1))
    # every operation of the schema was run but the three power actions (GET and POST hosts/{id}/power/, POST power/)
    assert selected == tested > 60 and available - selected == 3, run.stdout[-3000:]
