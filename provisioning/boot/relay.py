"""URLs carried over TFTP: a name the portal signs for a URL of its own making, which the TFTP server fetches.

Debian's signed network GRUB reads files over TFTP only. The GRUB configs name every URL they need (the boot
environment's kernel and initrd, a version picked in the menu, the request to ask again) as `r/<url>.<signature>`,
the URL base64-encoded and signed with the portal's secret key; the TFTP server fetches a name only when its
signature holds, so it relays what the portal wrote and nothing a client makes up (no open proxy).
"""

import base64
import binascii
import hashlib
import logging
import os
from pathlib import Path

import requests
from django.core.signing import BadSignature, Signer

logger = logging.getLogger("dock2box.tftp")
PREFIX = "r/"
_SALT = "dock2box.tftp-relay"
TIMEOUT = (5, 120)  # seconds to connect, and between two reads of a large file


def relay_name(url: str) -> str:
    """The TFTP name that fetches `url`."""
    encoded = base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
    return PREFIX + Signer(salt=_SALT, sep=".").sign(encoded)


def relay_url(name: str) -> str | None:
    """The URL a TFTP name relays, or None when it is not one the portal signed."""
    if not name.startswith(PREFIX):
        return None
    try:
        encoded = Signer(salt=_SALT, sep=".").unsign(name[len(PREFIX) :])
        url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (BadSignature, binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return url if url.startswith(("http://", "https://")) else None


class Relay:
    """Fetches relayed URLs into files the TFTP server serves (it serves real files only: `BootFiles`). A URL's file
    is kept with its validators (ETag, Last-Modified) and fetched again only when the server says it changed; a
    file asked with `once` (a per-host config) is fetched every time, under a name of its own, and read once.
    The portal's own URLs (under `public`) are fetched from `reach` (where the TFTP server reaches the portal)."""

    def __init__(self, directory: Path, *, public: str, reach: str) -> None:
        self.public, self.reach = public, reach
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.validators: dict[str, dict[str, str]] = {}  # URL → headers for a conditional GET of its kept file
        self.session = requests.Session()

    def fetch(self, url: str, *, client: str, once: bool = False) -> Path | None:
        """The file holding `url`'s body (None when it could not be had), asked for on behalf of `client` (its
        address goes as X-Forwarded-For: the portal sees the booting host behind a trusted proxy)."""
        if url.startswith(f"{self.public}/"):
            url = self.reach + url.removeprefix(self.public)
        key = hashlib.blake2b(url.encode(), digest_size=16).hexdigest()
        path = self.directory / (f"once-{key}-{client}-{os.getpid()}" if once else key)
        headers = {"X-Forwarded-For": client}
        if not once and path.exists():
            headers.update(self.validators.get(url, {}))
        try:
            with self.session.get(url, headers=headers, timeout=TIMEOUT, stream=True) as response:
                if response.status_code == 304:
                    return path
                response.raise_for_status()
                part = path.with_name(f"{path.name}.{os.getpid()}.part")
                with part.open("wb") as out:
                    for chunk in response.iter_content(1 << 20):
                        out.write(chunk)
                part.replace(path)  # (a server process reading the old one keeps it)
        except (requests.RequestException, OSError) as error:
            logger.warning("tftp relay url=%s client=%s outcome=failed reason=%s", url[:200], client, error)
            return None
        if not once:
            kept = {
                "If-None-Match": response.headers.get("ETag"),
                "If-Modified-Since": response.headers.get("Last-Modified"),
            }
            self.validators[url] = {name: value for name, value in kept.items() if value}
        return path
