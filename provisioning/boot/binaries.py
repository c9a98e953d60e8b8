"""The first stages a firmware loads, by fixed name: iPXE's binaries and, for Secure Boot, Debian's signed shim and
network GRUB. The portal serves them at `/boot/<name>` (UEFI HTTP boot); the TFTP server serves them with the first
scripts and what it relays for GRUB (`BootFiles`), and nothing else."""

import logging
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ValidationError

from dock2box.validators import normalise_mac
from provisioning.boot.relay import Relay, relay_url
from provisioning.boot.render.grub import stage_config
from provisioning.boot.render.ipxe import stage0_script
from provisioning.metrics import TFTP_TRANSFERS

logger = logging.getLogger("dock2box.tftp")
STAGE0 = "stage0.ipxe"
GRUB_STAGE = "grub/grub.cfg"  # where Debian's signed network GRUB looks first (its prefix is /grub)

IPXE = ["undionly.kpxe", "ipxe.efi", "snponly.efi"]
SHIM, GRUB = "shimx64.efi", "grubx64.efi"  # shim loads the name grubx64.efi from where it came


def boot_binaries(*, ipxe_dir: str | None = None) -> dict[str, Path]:
    """Name → where the file is (not checked here: a missing one is not served)."""
    directory = Path(ipxe_dir or settings.DOCK2BOX_IPXE_DIR)
    return {name: directory / name for name in IPXE} | {
        SHIM: Path(settings.DOCK2BOX_SHIM_EFI),
        GRUB: Path(settings.DOCK2BOX_GRUB_EFI),
    }


class BootFiles:
    """The served set: name → a file on disk; a host's GRUB config and signed URLs, relayed from the portal."""

    def __init__(self, *, binaries: dict[str, Path], portal: str, workdir: Path, reach: str = "") -> None:
        """`portal`: its public URL (what the scripts name); `reach`: where this server reaches it (default: the
        same)."""
        self.root = workdir / "empty-root"
        self.root.mkdir(parents=True, exist_ok=True)
        self.portal = portal
        self.relay = Relay(workdir / "relayed", public=portal, reach=reach or portal)
        self.files: dict[str, Path] = {}
        for name, text in [(STAGE0, stage0_script(portal=portal)), (GRUB_STAGE, stage_config())]:
            self.files[name] = workdir / name.replace("/", "-")
            self.files[name].write_text(text)
        # The binaries are found once, by fixed name (Debian links ipxe.efi to /boot): a request never names a path.
        for name, path in binaries.items():
            if path.resolve().is_file():
                self.files[name] = path.resolve()
            else:
                logger.warning("tftp: %s not found at %s; it will not be served", name, path)

    def open(self, name: str, raddress: str = "", rport: int = 0, **kwargs: Any) -> IO[bytes] | None:
        name = name.lstrip("/")
        path = self.files.get(name)
        if path is None:
            path = self._relayed(name, raddress)
        if path is None:
            TFTP_TRANSFERS.labels("refused").inc()
            logger.warning("tftp file=%r client=%s:%s outcome=refused", name[:200], raddress, rport)
            return None
        TFTP_TRANSFERS.labels("served").inc()
        logger.info("tftp file=%s client=%s:%s outcome=served", name[:200], raddress, rport)
        file = path.open("rb")
        if path.name.startswith("once-"):
            path.unlink()  # read once, by this session (the open file stays readable)
        return file

    def _relayed(self, name: str, client: str) -> Path | None:
        """A host's GRUB config (`grub/host-<MAC>.cfg`: the portal's answer for that MAC, asked on behalf of the
        client), or a URL the portal signed; None for any other name."""
        if name.startswith("grub/host-") and name.endswith(".cfg"):
            try:
                mac = normalise_mac(name.removeprefix("grub/host-").removesuffix(".cfg"))
            except ValidationError:
                return None
            return self.relay.fetch(f"{self.portal}/grub?mac={mac}&ip={client}", client=client, once=True)
        url = relay_url(name)
        if url is None:
            return None
        # The portal's answers are per host and read once (a config, an install picked, one asked again); files (the
        # boot environment, the portal's under /files/ or a file server's) are kept and revalidated.
        scripted = url.startswith(f"{self.portal}/") and not url.startswith(f"{self.portal}/files/")
        return self.relay.fetch(url, client=client, once=scripted)

    def refuse_upload(self, path: str, context: Any) -> None:
        logger.warning("tftp upload=%r client=%s outcome=refused", str(path)[:200], getattr(context, "host", "?"))
        return None
