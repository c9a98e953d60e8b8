"""URLs carried over TFTP: a name the portal signs for a URL of its own making, which the TFTP server fetches.

Debian's signed network GRUB reads files over TFTP only. The GRUB configs name every URL they need (the boot
environment's kernel and initrd, a version picked in the menu, the request to ask again) as `r/<url>.<signature>`,
the URL base64-encoded and signed with the portal's secret key; the TFTP server fetches a name only when its
signature holds, so it relays what the portal wrote and nothing a client makes up (no open proxy).
"""

import base64
import binascii

from django.core.signing import BadSignature, Signer

PREFIX = "r/"
_SALT = "dock2box.tftp-relay"


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
