"""`manage.py tftpd`: the TFTP server for PXE ROMs (iPXE binaries and the first-stage script; shim and GRUB for Secure
Boot, and what the portal answers GRUB)."""

import contextlib
import logging
import os
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from provisioning.boot.binaries import boot_binaries
from provisioning.boot.tftp import BootFileServer


class Command(BaseCommand):
    help = "Serve the iPXE binaries and a first-stage script over TFTP (port 69 in production)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--bind", default=settings.DOCK2BOX_TFTP_BIND, help="address to listen on")
        parser.add_argument("--port", type=int, default=settings.DOCK2BOX_TFTP_PORT)
        parser.add_argument("--ipxe-dir", default=settings.DOCK2BOX_IPXE_DIR, help="where the iPXE binaries are")
        parser.add_argument(
            "--processes", type=int, default=settings.DOCK2BOX_TFTP_PROCESSES, help="server processes on the port"
        )

    def handle(self, *args: Any, bind: str, port: int, ipxe_dir: str, processes: int, **options: Any) -> None:
        if not settings.DOCK2BOX_PUBLIC_URL:
            raise CommandError("Set DOCK2BOX_PUBLIC_URL: the first-stage script chains to the portal by that URL.")
        if processes > 1 and port == 0:
            raise CommandError("Several processes share one port: name it (--port).")
        # tftpy logs every packet at INFO; keep its warnings (refused paths) and errors.
        logging.getLogger("tftpy").setLevel(logging.WARNING)
        binaries = boot_binaries(ipxe_dir=ipxe_dir)
        server = BootFileServer(
            binaries=binaries, portal=settings.DOCK2BOX_PUBLIC_URL, reach=settings.DOCK2BOX_TFTP_PORTAL_URL
        )
        if processes <= 1:
            try:
                server.serve(bind=bind, port=port)
            except KeyboardInterrupt:
                server.stop()
            return
        self._supervise(server, bind, port, processes)

    def _supervise(self, server: BootFileServer, bind: str, port: int, processes: int) -> None:
        """Fork `processes` servers on one port (SO_REUSEPORT: the kernel spreads the PXE ROMs among them), replace
        one that dies, and stop them all on SIGTERM or SIGINT."""
        stopping = False

        def start() -> int:
            pid = os.fork()
            if pid == 0:  # a server: it ends when the supervisor signals it, without the parent's clean-up
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                try:
                    server.serve(bind=bind, port=port, reuse_port=True)
                finally:
                    os._exit(0)
            return pid

        def stop(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)

        children = {start() for _ in range(processes)}
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        while children:
            try:
                pid, _ = os.wait()
            except ChildProcessError:
                break
            children.discard(pid)
            if not stopping:
                logging.getLogger("dock2box.tftp").error("tftp: server process %s ended; starting another", pid)
                children.add(start())
