"""The TFTP server: iPXE binaries and a generated first-stage script, nothing else.

tftpy serves files from its root directory before it asks us, so its root is an empty private directory and every
download goes through `BootFiles.open`: a fixed set of names, each a real file (tftpy ends the server after an
in-memory file, upstream issue #155). Uploads are refused. Names outside the set, `../` and absolute paths get a
TFTP error and a log line.

tftpy lets anything but its own TftpException escape its server loop (a non-ASCII file name, an option value that is
not a number, a block size too big to send), and the loop's way out closes every transfer in flight. Every session
is therefore a `GuardedContext`, which turns such an error into a TFTP error packet to that client and a
TftpException: tftpy then ends that one exchange and keeps serving the others. The loop is still restarted if it
ever fails for another reason.
"""

import contextlib
import importlib
import logging
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

import tftpy
from tftpy.TftpContexts import TftpContextServer
from tftpy.TftpPacketTypes import TftpPacketERR
from tftpy.TftpShared import TftpException

from provisioning.metrics import TFTP_TRANSFERS
from provisioning.rendering.ipxe import stage0_script

logger = logging.getLogger("dock2box.tftp")
BINARIES = ["undionly.kpxe", "ipxe.efi", "snponly.efi"]
STAGE0 = "stage0.ipxe"


ILLEGAL_OPERATION = 4  # RFC 1350 error code


class GuardedContext(TftpContextServer):  # type: ignore[misc]
    """A tftpy server session in which a malformed packet ends only this session, with an error to its client."""

    def start(self, buffer: bytes) -> None:
        self._guarded(super().start, buffer)

    def cycle(self) -> None:
        self._guarded(super().cycle)

    def _guarded(self, step: Any, *args: Any) -> None:
        try:
            step(*args)
        except TftpException:
            raise
        except Exception as error:
            TFTP_TRANSFERS.labels("malformed").inc()
            logger.warning("tftp client=%s:%s outcome=malformed reason=%s", self.host, self.port, error)
            packet = TftpPacketERR()
            packet.errorcode = ILLEGAL_OPERATION
            with contextlib.suppress(OSError):  # a client that is gone ends its session all the same
                self.sock.sendto(packet.encode().buffer, (self.host, self.tidport or self.port))
            raise TftpException(f"malformed exchange: {type(error).__name__}: {error}") from error


# tftpy's server makes its sessions from this module-level name; there is no other hook for it. (The package
# exports the class under the module's name, so the module is looked up by its full name.)
importlib.import_module("tftpy.TftpServer").TftpContextServer = GuardedContext


class BootFiles:
    """The served set: name → a file on disk."""

    def __init__(self, *, ipxe_dir: Path, portal: str, workdir: Path) -> None:
        self.root = workdir / "empty-root"
        self.root.mkdir(parents=True, exist_ok=True)
        stage0 = workdir / STAGE0
        stage0.write_text(stage0_script(portal=portal))
        self.files: dict[str, Path] = {STAGE0: stage0}
        # The binaries are found once, by fixed name (Debian links ipxe.efi to /boot): a request never names a path.
        for name in BINARIES:
            path = (ipxe_dir / name).resolve()
            if path.is_file():
                self.files[name] = path
            else:
                logger.warning("tftp: %s not found in %s; it will not be served", name, ipxe_dir)

    def open(self, name: str, raddress: str = "", rport: int = 0, **kwargs: Any) -> IO[bytes] | None:
        path = self.files.get(name.lstrip("/"))
        if path is None:
            TFTP_TRANSFERS.labels("refused").inc()
            logger.warning("tftp file=%r client=%s:%s outcome=refused", name[:200], raddress, rport)
            return None
        TFTP_TRANSFERS.labels("served").inc()
        logger.info("tftp file=%s client=%s:%s outcome=served", name.lstrip("/"), raddress, rport)
        return path.open("rb")

    def refuse_upload(self, path: str, context: Any) -> None:
        logger.warning("tftp upload=%r client=%s outcome=refused", str(path)[:200], getattr(context, "host", "?"))
        return None


class BootFileServer:
    """A tftpy server over `BootFiles` that keeps serving whatever a client sends."""

    def __init__(self, *, ipxe_dir: Path, portal: str, workdir: Path | None = None) -> None:
        self._workdir = tempfile.TemporaryDirectory(prefix="dock2box-tftp-") if workdir is None else None
        base = Path(self._workdir.name) if self._workdir else workdir
        assert base is not None
        self.files = BootFiles(ipxe_dir=ipxe_dir, portal=portal, workdir=base)
        self._stopping = threading.Event()
        self.server: tftpy.TftpServer | None = None
        self.port = 0

    def serve(self, *, bind: str, port: int, ready: threading.Event | None = None) -> None:
        """Serve until `stop()`; if tftpy raises out of its loop, log it and listen again."""
        while not self._stopping.is_set():
            self.server = tftpy.TftpServer(
                str(self.files.root), dyn_file_func=self.files.open, upload_open=self.files.refuse_upload
            )
            watcher = threading.Thread(target=self._announce, args=(ready,), daemon=True)
            watcher.start()
            try:
                self.server.listen(bind, port, timeout=1)
            except Exception:
                logger.exception("tftp: the server loop failed; listening again")
                self._close_sockets()

    def _announce(self, ready: threading.Event | None) -> None:
        server = self.server
        if server is not None and server.is_running.wait(10):
            self.port = server.listenport
            logger.info("tftp: serving %s on port %s", ", ".join(sorted(self.files.files)), self.port)
            if ready is not None:
                ready.set()

    def _close_sockets(self) -> None:
        server = self.server
        if server is None:
            return
        for session in list(server.sessions.values()):
            session.end()
        server.sessions.clear()
        if getattr(server, "sock", None) is not None:
            server.sock.close()

    def stop(self) -> None:
        self._stopping.set()
        if self.server is not None:
            self.server.stop(now=True)
