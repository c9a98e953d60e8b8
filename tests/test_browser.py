"""A real browser (Debian's Chromium, driven by Playwright) uses the admin as an operator would."""

import os
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from hosts.models import Host
from provisioning.builds.services import build_event_record, host_enter_build

# The browser binary itself: /usr/bin/chromium is a wrapper script that prints a harmless warning.
CHROMIUM = "/usr/lib/chromium/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip

pytestmark = pytest.mark.slow


@pytest.fixture
def browser_page():
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser.new_page()
        browser.close()
    del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


def admin_login(page, live_server) -> None:
    User.objects.create_superuser(username="op", password="op-password-123", email="")
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", "op")
    page.fill("#id_password", "op-password-123")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")


def test_operator_creates_a_host_in_the_admin_and_finds_it_by_mac(live_server, transactional_db, browser_page):
    page = browser_page
    admin_login(page, live_server)
    page.goto(f"{live_server.url}/admin/hosts/host/add/")
    page.fill("#id_fqdn", "browser01.example.com")
    page.fill("#id_interfaces-0-name", "eth0")
    page.fill("#id_interfaces-0-mac", "52-54-00-AB-CD-EF")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")

    page.goto(f"{live_server.url}/admin/hosts/host/")
    page.fill("#searchbar", "5254.00ab.cdef")
    page.press("#searchbar", "Enter")
    page.wait_for_selector("#result_list")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert "browser01.example.com" in rows.first.inner_text()
    assert "52:54:00:ab:cd:ef" in rows.first.inner_text()
    assert Host.objects.get(fqdn="browser01.example.com").interfaces.get().primary


SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def test_the_overview_and_a_host_with_a_running_build_at_1366_by_768(live_server, transactional_db, browser_page):
    """What an operator sees first and on a host being installed, at a common laptop size; the screenshots in
    docs/screenshots/ are taken here."""
    from django.utils import timezone

    from tests import factories

    now = timezone.now()
    host = factories.InstallableHostFactory(fqdn="web01.example.com")
    build = host_enter_build(host=host)
    Host.objects.filter(pk=host.pk).update(status="building")
    type(build).objects.filter(pk=build.pk).update(state="running", started=now, last_activity=now)
    build_event_record(build=build, stage="image", progress=40, message="layer 2 of 5: 80 of 200 MB", now=now)
    idle = factories.InstallableHostFactory(fqdn="web02.example.com")

    page = browser_page
    admin_login(page, live_server)
    overview = page.locator("#dock2box-overview")
    overview.wait_for()
    assert "Installing now: 1" in overview.inner_text() and "layer 2 of 5" in overview.inner_text()
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "overview.png"))

    page.goto(f"{live_server.url}/admin/hosts/host/")
    progress = page.locator("#result_list td.field-build_progress progress").first
    box = progress.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 1366, box  # the progress column is on screen

    page.goto(f"{live_server.url}/admin/hosts/host/{host.pk}/change/")
    timeline = page.locator(".field-build_timeline")
    assert "layer 2 of 5" in timeline.inner_text() and "Cancel build" in timeline.inner_text()
    timeline.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "host-running-build.png"))

    page.goto(f"{live_server.url}/admin/hosts/host/{idle.pk}/change/")
    page.click("text=Enter build mode")
    page.wait_for_selector(".messagelist .success")
    assert Host.objects.get(pk=idle.pk).build


def select2_options(page, field: str) -> list[str]:
    """Open the autocomplete of `field` and return the options it offers."""
    with page.expect_response(lambda response: "/admin/autocomplete/" in response.url):
        page.click(f".field-{field} .select2-selection")
    page.wait_for_function("!document.querySelector('.select2-results__option.loading-results')")
    options = page.locator(".select2-results__option").all_inner_texts()
    page.keyboard.press("Escape")
    return options


def select2_choose(page, field: str, text: str) -> None:
    page.click(f".field-{field} .select2-selection")
    page.fill(".select2-search__field", text)
    page.click(f".select2-results__option:has-text('{text}')")


def test_the_version_picker_offers_the_chosen_images_versions(live_server, transactional_db, browser_page):
    from tests import factories

    debian = factories.ImageFactory(name="debian-12", type="docker")
    for version in ["a", "b"]:
        factories.ImageVersionFactory(image=debian, version=version)
    factories.ImageVersionFactory(image=factories.ImageFactory(name="centos-9", type="docker"), version="c")
    page = browser_page
    admin_login(page, live_server)
    page.goto(f"{live_server.url}/admin/hosts/host/add/")
    assert sorted(select2_options(page, "image_version")) == ["centos-9:c", "debian-12:a", "debian-12:b"]
    select2_choose(page, "image", "debian-12")
    assert sorted(select2_options(page, "image_version")) == ["debian-12:a", "debian-12:b"]
    select2_choose(page, "image_version", "debian-12:b")
    select2_choose(page, "image", "centos-9")  # another image: the version of the previous one is cleared
    assert page.locator("#id_image_version").input_value() == ""
    assert select2_options(page, "image_version") == ["centos-9:c"]


def test_inline_tables_fit_a_1366_pixel_page(live_server, transactional_db, browser_page):
    """Interfaces, image versions (docker, file, boot) and PXE menu items: no inline table wider than the window."""
    from tests import factories

    host = factories.HostFactory(fqdn="wide.example.com")
    subnet = factories.SubnetFactory(network="10.20.0.0/16")
    for number in range(3):
        factories.InterfaceFactory(host=host, name=f"enp{number}s0f1", mac=f"52:54:00:00:10:0{number}",
                                   ip=f"10.20.0.{number + 10}", subnet=subnet, primary=number == 0)  # fmt: skip
    images = [factories.ImageFactory(name=f"image-{kind}", type=kind) for kind in ["docker", "file", "boot"]]
    for image in images:
        factories.ImageVersionFactory(image=image, version="2026.11.29-build.1234", digest="sha256:" + "a" * 64)
    menu = factories.PxeMenuFactory(name="main")
    factories.PxeMenuItemFactory(menu=menu, key="rescue", label="Rescue system over the network", commands="shell")
    page = browser_page
    admin_login(page, live_server)
    pages = [f"/admin/hosts/host/{host.pk}/change/", f"/admin/provisioning/pxemenu/{menu.pk}/change/"]
    pages += [f"/admin/images/image/{image.pk}/change/" for image in images]
    for url in pages:
        page.goto(f"{live_server.url}{url}")
        tables = page.locator(".inline-group table")
        assert tables.count() == 1, url
        right = page.evaluate("Math.max(...[...document.querySelectorAll('.inline-group table')]"
                              ".map(t => t.getBoundingClientRect().right))")  # fmt: skip
        assert right <= 1366, (url, right)
        assert page.evaluate("document.documentElement.scrollWidth") <= 1366, url
