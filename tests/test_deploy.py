"""What can be checked of the deployment files without a Docker engine or systemd: they parse and fit the code."""

import configparser
import re
import shlex
import signal
import urllib.request
from pathlib import Path

import pytest
import yaml
from django.core.management import get_commands

from tests.services import ROOT, free_port, manage, wait_until

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
OURS = {name: service for name, service in COMPOSE["services"].items() if service.get("image") == "dock2box:latest"}
UNITS = sorted((ROOT / "deploy").rglob("*.service")) + sorted((ROOT / "deploy").rglob("*.timer"))
SETTINGS_READ = set(re.findall(r"env(?:\.\w+)?\(\s*\"([A-Z][A-Z0-9_]+)\"", (ROOT / "dock2box/settings.py").read_text()))


def _check_command(argv: list[str]) -> None:
    """A command line of ours: a management command that exists, or gunicorn/celery on our app."""
    if argv[:2] == ["python", "manage.py"] or (argv[0].endswith("/python") and argv[1] == "manage.py"):
        assert argv[2] in get_commands(), argv
    elif Path(argv[0]).name == "gunicorn":
        assert argv[1] == "dock2box.wsgi"
        config = argv[argv.index("--config") + 1]
        assert (ROOT / config).is_file(), config
    elif Path(argv[0]).name == "celery":
        assert argv[1:3] == ["-A", "dock2box"] and argv[3] in ("worker", "beat"), argv
    else:
        raise AssertionError(f"unknown command {argv}")


def test_compose_has_the_whole_stack():
    assert {"postgres", "redis", "etcd", "migrate", "web", "worker", "beat", "tftp"} <= set(COMPOSE["services"])
    assert "--enable-v2=true" in COMPOSE["services"]["etcd"]["command"]


@pytest.mark.parametrize("name", sorted(OURS))
def test_every_compose_service_runs_a_command_of_the_project(name):
    _check_command(OURS[name]["command"])


def test_every_environment_variable_compose_sets_is_a_setting():
    for name, service in OURS.items():
        unknown = set(service.get("environment", {})) - SETTINGS_READ
        assert not unknown, (name, unknown)


def test_services_wait_for_migrations_and_have_health_checks():
    for name in ("web", "worker", "beat", "tftp"):
        assert OURS[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    for name in ("postgres", "redis", "etcd", "web"):
        assert "healthcheck" in COMPOSE["services"][name], name
    assert "/healthz" in " ".join(OURS["web"]["healthcheck"]["test"])


def test_ports_and_volumes_are_consistent():
    declared = set(COMPOSE["volumes"])
    used = {
        volume.split(":")[0]
        for service in COMPOSE["services"].values()
        for volume in service.get("volumes", [])
        if not volume.startswith(("/", "."))
    }
    assert used == declared
    gunicorn = (ROOT / "deploy/gunicorn.conf.py").read_text()
    assert '"0.0.0.0:8000"' in gunicorn and OURS["web"]["ports"] == ["8000:8000"]
    assert OURS["tftp"]["network_mode"] == "host"


@pytest.mark.parametrize("path", UNITS, ids=lambda path: str(path.relative_to(ROOT)))
def test_units_parse_and_run_what_the_project_has(path):
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment, method-assign]
    unit.read_string(path.read_text())
    assert unit["Unit"]["Description"]
    if path.suffix == ".timer":
        assert unit["Timer"]["OnUnitActiveSec"] == "1h"
        assert (path.parent / path.name.replace(".timer", ".service")).exists()
        return
    command = shlex.split(unit["Service"]["ExecStart"])
    if "compose" in path.parts:
        assert command[:2] == ["/usr/bin/docker", "compose"]
        if "exec" in command:
            _check_command(command[command.index("web") + 1 :])
        return
    assert unit["Service"]["EnvironmentFile"] == "/etc/dock2box/dock2box.env"
    assert command[0].startswith("/opt/dock2box/.venv/bin/")
    _check_command(command)


@pytest.mark.slow
def test_runall_supervises_web_and_worker_and_stops_them(tmp_path):
    port = free_port()
    log = (tmp_path / "runall.log").open("w")
    process = manage("runall", "--bind", f"127.0.0.1:{port}", stdout=log, stderr=log,
                     env={"CELERY_BROKER_URL": "redis://127.0.0.1:6379/12"})  # fmt: skip

    def healthy() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status == 200

    wait_until(healthy, timeout=60, what="runall's web")
    wait_until(lambda: "ready" in (tmp_path / "runall.log").read_text(), timeout=60, what="runall's worker")
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0
    assert "All Dock2Box processes stopped." in (tmp_path / "runall.log").read_text()
