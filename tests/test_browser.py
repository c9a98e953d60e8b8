"""A real browser (Debian's Chromium, driven by Playwright) uses the admin as an operator would."""

import os

import pytest
from django.contrib.auth.models import User

from hosts.models import Host

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


def test_operator_creates_a_host_in_the_admin_and_finds_it_by_mac(live_server, transactional_db, browser_page):
    User.objects.create_superuser(username="op", password="op-password-123", email="")
    page = browser_page
    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", "op")
    page.fill("#id_password", "op-password-123")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")

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
