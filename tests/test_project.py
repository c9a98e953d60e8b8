"""The project as a newcomer meets it: settings documented, schema clean, demo data, first admin."""

import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from hosts.models import Host, Interface, Site
from images.models import Image
from provisioning.models import BootDefaults, Build

ROOT = Path(__file__).resolve().parent.parent


def _variables_read_by(path: Path) -> set[str]:
    return set(re.findall(r"env(?:\.\w+)?\(\s*\"([A-Z][A-Z0-9_]+)\"", path.read_text()))


def test_every_setting_read_from_the_environment_is_in_env_example():
    read = _variables_read_by(ROOT / "dock2box" / "settings.py")
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), flags=re.MULTILINE))
    assert {"DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SECRET_KEY", "DOCK2BOX_PUBLIC_URL"} <= read
    assert read == listed, (read - listed, listed - read)


def test_openapi_schema_generates_without_warnings(tmp_path):
    # --fail-on-warn turns every drf-spectacular warning (an unresolvable field, a missing serializer) into an error.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))
    schema = (tmp_path / "schema.yml").read_text()
    for path in ["/api/v2/hosts/", "/api/v2/hosts/{id}/enter-build/", "/api/v2/subnets/{id}/next-free-ip/"]:
        assert f"  {path}:" in schema


def test_api_docs_page_is_served_from_the_installed_package(admin_client):
    page = admin_client.get("/api/docs/").content.decode()
    assert "swagger-ui" in page
    assert "cdn" not in page.lower()


@pytest.mark.django_db
def test_seed_demo_fills_an_empty_portal_once():
    call_command("seed_demo", stdout=StringIO())
    counts = (Site.objects.count(), Image.objects.count(), Host.objects.count(), Interface.objects.count())
    assert counts == (1, 3, 4, 8)
    assert Build.objects.filter(state="pending").count() == 1
    assert BootDefaults.objects.get().boot_version.image.type == "boot"
    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert "already" in out.getvalue()
    assert Host.objects.count() == 4


@pytest.mark.django_db
def test_ensure_admin_creates_a_superuser_once_and_prints_how_to_log_in(settings, tmp_path):
    from django.contrib.auth import authenticate

    settings.VAR_DIR = tmp_path
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    password = (tmp_path / "admin-password").read_text().strip()
    assert f"user admin, password {password}" in out.getvalue()
    assert authenticate(username="admin", password=password).is_superuser
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    assert password in out.getvalue()


def test_json_logs_are_one_object_per_line():
    import logging

    from dock2box.logs import JsonFormatter

    record = logging.LogRecord(
        "dock2box.boot", logging.INFO, __file__, 1, "boot mac=%s outcome=%s", ("52:54:00:00:00:01", "known"), None
    )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "boot mac=52:54:00:00:00:01 outcome=known"
    assert (entry["level"], entry["logger"]) == ("INFO", "dock2box.boot")


@pytest.mark.parametrize(
    ("app", "never"),
    [
        ("dock2box", ["images", "hosts", "provisioning"]),
        ("images", ["hosts", "provisioning"]),
        ("hosts", ["provisioning"]),
    ],
)
def test_imports_point_one_way(app, never):
    """dock2box ← images ← hosts ← provisioning: an app never imports one to its right (foreign keys name models by
    string; the URL configuration includes apps by module name)."""
    import ast

    for path in (ROOT / app).rglob("*.py"):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert name.split(".")[0] not in never, f"{path.relative_to(ROOT)} imports {name}"


PRODUCT = ["dock2box", "images", "hosts", "provisioning"]


def _product_modules() -> dict[str, Path]:
    modules = {}
    for app in PRODUCT:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" not in path.parts:
                parts = path.relative_to(ROOT).with_suffix("").parts
                modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imported(node, modules: dict[str, Path]) -> list[str]:
    """The product modules an import statement loads: `from a.b import c` is module `a.b.c` when there is one."""
    import ast

    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in modules]
    if isinstance(node, ast.ImportFrom) and node.module:
        found = [f"{node.module}.{alias.name}" for alias in node.names if f"{node.module}.{alias.name}" in modules]
        return found or ([node.module] if node.module in modules else [])
    return []


def test_no_module_imports_itself_back():
    """No import circle between the product's modules, counting imports inside functions and for type checking
    (an import hidden in a function is a circle all the same): Tarjan's strongly connected components."""
    import ast

    modules = _product_modules()
    edges = {
        name: {target for node in ast.walk(ast.parse(path.read_text())) for target in _imported(node, modules)} - {name}
        for name, path in modules.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        for target in edges[name]:
            if target not in index:
                visit(target)
                low[name] = min(low[name], low[target])
            elif target in stack:
                low[name] = min(low[name], index[target])
        if low[name] == index[name]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == name:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for name in sorted(modules):
        if name not in index:
            visit(name)
    assert circles == []


def test_no_product_file_or_function_is_too_long_to_read():
    """A module over 400 lines is split into rooms, a function over 60 lines into named steps."""
    import ast

    long = []
    for path in [*_product_modules().values(), *(ROOT / "installer").rglob("*.py")]:
        text = path.read_text()
        if len(text.splitlines()) > 400:
            long.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 60:
                long.append(f"{path.relative_to(ROOT)}: {node.name} {node.end_lineno - node.lineno + 1} lines")
    assert long == []


def test_the_shared_cache_keeps_one_redis_client_per_pool():
    """Django's backend built a client per operation; ours reuses it, and still reads and writes real Redis."""
    from dock2box.cache import SharedRedisCache

    cache = SharedRedisCache("redis://127.0.0.1:6379/11", {"KEY_PREFIX": "test-client"})
    try:
        cache.set("entry", {"script": "#!ipxe"}, timeout=30)
        assert cache.get_many(["entry", "missing"]) == {"entry": {"script": "#!ipxe"}}
        assert cache._cache.get_client(write=True) is cache._cache.get_client("entry")
    finally:
        cache.clear()


def test_the_embedded_database_is_readable_by_its_owner_only(tmp_path):
    """The embedded default's SQLite file (and its WAL journal) holds every secret and token: mode 0600, made so and
    kept so, like the secret key."""
    import os
    import stat
    import subprocess
    import sys

    environment = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "DJANGO_SECRET_KEY")}
    environment |= {"DOCK2BOX_VAR_DIR": str(tmp_path), "CELERY_BROKER_URL": ""}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=environment, check=True)
    database = tmp_path / "dock2box.sqlite3"
    (tmp_path / "dock2box.sqlite3").chmod(0o644)  # an older install's
    subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=environment, check=True, capture_output=True)
    files = [database, tmp_path / "secret_key", *tmp_path.glob("dock2box.sqlite3-*")]
    assert {path.name: stat.S_IMODE(path.stat().st_mode) for path in files} == {path.name: 0o600 for path in files}
