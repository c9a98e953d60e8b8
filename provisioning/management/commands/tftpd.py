"""`manage.py tftpd`: the TFTP server for PXE ROMs (iPXE binaries and the first-stage script)."""

import logging
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from provisioning.tftp import BootFileServer


class Command(BaseCommand):
    help = "Serve the iPXE binaries and a first-stage script over TFTP (port 69 in production)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--bind", default=settings.DOCK2BOX_TFTP_BIND, help="address to listen on")
        parser.add_argument("--port", type=int, default=settings.DOCK2BOX_TFTP_PORT)
        parser.add_argument("--ipxe-dir", default=settings.DOCK2BOX_IPXE_DIR, help="where the iPXE binaries are")

    def handle(self, *args: Any, bind: str, port: int, ipxe_dir: str, **options: Any) -> None:
        if not settings.DOCK2BOX_PUBLIC_URL:
            raise CommandError("Set DOCK2BOX_PUBLIC_URL: the first-stage script chains to the portal by that URL.")
        # tftpy logs every packet at INFO; keep its warnings (refused paths) and errors.
        logging.getLogger("tftpy").setLevel(logging.WARNING)
        server = BootFileServer(ipxe_dir=Path(ipxe_dir), portal=settings.DOCK2BOX_PUBLIC_URL)
        try:
            server.serve(bind=bind, port=port)
        except KeyboardInterrupt:
            server.stop()
