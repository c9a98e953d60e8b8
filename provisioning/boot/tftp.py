"""The TFTP server: iPXE binaries and a generated first-stage script; for the Secure Boot chain, Debian's signed shim
and network GRUB, GRUB's first config, and what the portal answers GRUB (relayed: GRUB speaks TFTP only).

tftpy serves files from its root directory before it asks us, so its root is an empty private directory and every
download goes through `BootFiles.open` (`provisioning.boot.binaries`): a fixed set of names, each a real file (tftpy
ends the server after an in-memory file, upstream issue #155), a host's GRUB config (`grub/host-<MAC>.cfg`, the portal's
`/grub` for that MAC) and URLs the portal signed (`provisioning.boot.relay`). Uploads are refused. Names outside these,
`../` and absolute paths get a TFTP error and a log line.

tftpy lets anything but its own TftpException escape its server loop (a non-ASCII file name, an option value that is
not a number, a block size too big to send), and the loop's way out closes every transfer in flight. Every session
is therefore a `GuardedContext`, which turns such an error into a TFTP error packet to that client and a
TftpException: the loop then ends that one exchange and keeps serving the others. The loop is still restarted if it
ever fails for another reason.

The loop is ours (`BootTftpServer.listen`), tftpy's sessions and packets inside it: tftpy's own loop does work in
proportion to the transfers in flight for every packet (a select over every socket, a search for the packet's
session, a timeout check of every session, log lines formatted whether logged or not), which halves its throughput
with 50 PXE ROMs at once (docs/benchmarks.md). Ours waits with the selector of the platform (epoll), finds the session
by its socket and checks timeouts a few times a second. tftpy reads the request and negotiates its options; once the
first packet is out, a download's data phase is ours too (`Download`): each served file is read once and every DAT
packet is cut from it as it is sent, where tftpy reads the file per block; a client's block size (RFC 2348: 8 to
65464; less is refused, more is answered with 65464) costs nothing ahead, and retries count per packet.
"""

import contextlib
import logging
import os
import selectors
import socket
import struct
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import tftpy
from tftpy.TftpContexts import TftpContextServer
from tftpy.TftpPacketTypes import TftpPacketERR
from tftpy.TftpShared import MAX_BLKSIZE, TftpException, TftpTimeoutExpectACK
from tftpy.TftpStates import TftpStateExpectACK

from provisioning.boot.binaries import BootFiles
from provisioning.metrics import TFTP_TRANSFERS

logger = logging.getLogger("dock2box.tftp")


ILLEGAL_OPERATION, OPTION_REFUSED = 4, 8  # error codes: RFC 1350, RFC 2347


class GuardedContext(TftpContextServer):
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
            error_send(self.sock, (self.host, self.tidport or self.port))
            raise TftpException(f"malformed exchange: {type(error).__name__}: {error}") from error


def error_send(sock: socket.socket, client: tuple[str, int], code: int = ILLEGAL_OPERATION) -> None:
    """Tell a client its exchange ends (illegal operation); one that is gone ends its session all the same."""
    packet = TftpPacketERR()
    packet.errorcode = code
    with contextlib.suppress(OSError):
        sock.sendto(packet.encode().buffer, client)


SWEEP_SECONDS = 0.2  # how often sessions are checked for a client that went quiet
BACKOFF_DOUBLINGS = 3  # a session's wait doubles after each resend of a packet, this many times at most
OPCODE_ACK, OPCODE_ERROR = b"\x00\x04", b"\x00\x05"
BLKSIZE_RANGE = (8, 65464)  # RFC 2348


class Refused(TftpException):
    """A packet that has no place in the exchange: the client gets an error and the session ends."""


class Download:
    """A download's data phase (RFC 1350 with RFC 2348's block size): the client's ACK of block n is answered with
    block n + 1, once; a quiet client gets the last block again after the session's timeout. A duplicate ACK is not
    answered at once (that would be the Sorcerer's Apprentice); one of the block before the last sent is the client's
    own timer saying the last block never came (`again`), and the server resends it at most once per timeout.
    A packet is made when it is sent, from the file's bytes (which every session of the file shares): a client's block
    size costs the server nothing ahead."""

    def __init__(self, data: bytes, blksize: int, acked_next: int) -> None:
        self.data, self.blksize = data, blksize
        self.blocks = len(data) // blksize + 1  # the last shorter than a block, maybe empty
        self.waiting = acked_next  # the block whose ACK comes next: 0 after an OACK, 1 after the first DAT

    def packet(self, number: int) -> bytes:
        """The DAT packet of block `number` (from 1; numbered modulo 2^16 on the wire)."""
        start = (number - 1) * self.blksize
        return struct.pack("!HH", 3, number & 0xFFFF) + self.data[start : start + self.blksize]

    def answer(self, datagram: bytes) -> bytes | bool | None:
        """The packet to send for `datagram`, None for nothing (a duplicate ACK: wait for the one expected or the
        timeout), True when the last block was acknowledged. An ACK is its first four bytes (firmware pads some).
        Raises `Refused` for anything but an ACK, and TftpException when the client sent an error."""
        if datagram[:2] == OPCODE_ERROR:
            raise TftpException("the client sent an error")
        if datagram[:2] != OPCODE_ACK or len(datagram) < 4:
            raise Refused(f"not an ACK: {datagram[:8]!r}")
        if struct.unpack("!H", datagram[2:4])[0] != self.waiting & 0xFFFF:
            return None
        if self.waiting == self.blocks:
            return True
        self.waiting += 1
        return self.packet(self.waiting)

    def again(self, datagram: bytes) -> bytes | None:
        """The last block sent, when `datagram` (an ACK) acknowledges the one before it: the client waits for it."""
        if self.waiting and struct.unpack("!H", datagram[2:4])[0] == (self.waiting - 1) & 0xFFFF:
            return self.packet(self.waiting)
        return None

    def last(self) -> bytes | None:
        """The last block sent, for a client that went quiet (None before the first: tftpy resends its OACK)."""
        return self.packet(self.waiting) if self.waiting else None


def request_within_rfc(buffer: bytes) -> bytes | None:
    """A read or write request with its block size within RFC 2348 (8 to 65464 bytes: a larger one is answered with
    65464), or None for one asking what no client may (below 8, or not a number): refused with error 8, RFC 2347."""
    if buffer[:2] not in (b"\x00\x01", b"\x00\x02"):
        return buffer
    fields = buffer[2:].split(b"\x00")
    for index in range(2, len(fields) - 1, 2):
        if fields[index].lower() != b"blksize":
            continue
        value = fields[index + 1]
        if not value.isdigit() or int(value) < BLKSIZE_RANGE[0]:
            return None
        fields[index + 1] = str(min(int(value), BLKSIZE_RANGE[1])).encode()
    return buffer[:2] + b"\x00".join(fields)


class BootTftpServer(tftpy.TftpServer):
    """tftpy's server with a loop whose cost per packet does not grow with the transfers in flight."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.contents: dict[str, tuple[tuple[int, int], bytes]] = {}  # name → ((mtime, size), bytes): the served set
        self.shutdown_immediately: bool = False

    def listen(
        self, listenip: str, listenport: int, timeout: float = 1, retries: int = 5, *, reuse_port: bool = False
    ) -> None:
        """Serve on `listenip`:`listenport` until `stop(now=True)`; `timeout` is a session's first wait for its client,
        and `retries` the waits in a row it ends after (see `_check`: 23 s of silence).
        `reuse_port`: several processes listen on the port, and the kernel spreads the requests among them."""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if reuse_port:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.sock.bind((listenip, listenport))
        self.sock.setblocking(False)
        self.listenport = self.sock.getsockname()[1]
        ready = selectors.DefaultSelector()
        ready.register(self.sock, selectors.EVENT_READ)
        self.is_running.set()
        next_sweep = time.monotonic() + SWEEP_SECONDS
        try:
            while not self.shutdown_immediately:
                for key, _ in ready.select(SWEEP_SECONDS):
                    if key.fileobj is self.sock:
                        self._begin(ready, timeout, retries)
                    else:
                        self._step(ready, key.data)
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + SWEEP_SECONDS
                    for session in list(self.sessions.values()):
                        self._check(ready, session, time.time())
        finally:
            for session in list(self.sessions.values()):
                self._finish(ready, session)
            ready.close()
            self.sock.close()
            self.is_running.clear()
            self.shutdown_immediately = False

    def _begin(self, ready: selectors.BaseSelector, timeout: float, retries: int) -> None:
        """A request on the server's port: a new session on its own socket. A repeat of one in flight is the client's
        timer saying the first answer never came: answered with it again, at most once per timeout."""
        try:
            buffer, (address, port) = self.sock.recvfrom(MAX_BLKSIZE)
        except OSError:  # an ICMP error for an earlier datagram, or nothing after all
            return
        key = f"{address}:{port}"
        if (session := self.sessions.get(key)) is not None:
            if time.time() - session.last_update >= session.timeout:
                self._resend(session, time.time())
            return
        request = request_within_rfc(buffer)
        if request is None:
            TFTP_TRANSFERS.labels("refused").inc()
            logger.info("tftp client=%s:%s outcome=refused reason=blksize-outside-rfc-2348", address, port)
            error_send(self.sock, (address, port), OPTION_REFUSED)
            return
        buffer = request
        session = GuardedContext(address, port, timeout, self.root, self.dyn_file_func, self.upload_open, retries)
        session.key = key
        self.sessions[key] = session
        ready.register(session.sock, selectors.EVENT_READ, session)
        session.download = None
        self._run(ready, session, session.start, buffer)
        if self.sessions.get(key) is session and isinstance(session.state, TftpStateExpectACK) and session.fileobj:
            session.download = Download(self._content(session), session.getBlocksize(), session.next_block)

    def _content(self, session: GuardedContext) -> bytes:
        """The bytes of the session's file, read once while it stays as it is (the served set is a few files); a file
        removed already (a host's config, made for this request) is read and not kept."""
        stat = os.fstat(session.fileobj.fileno())
        version, name = (stat.st_mtime_ns, stat.st_size), session.fileobj.name
        kept = self.contents.get(name)
        if kept is None or kept[0] != version:
            session.fileobj.seek(0)  # (tftpy may have read the first block)
            kept = (version, session.fileobj.read())
            if stat.st_nlink:
                self.contents[name] = kept
        return kept[1]

    def _step(self, ready: selectors.BaseSelector, session: GuardedContext) -> None:
        if session.download is None:
            session.timeout_expectACK = False
            self._run(ready, session, session.cycle)
            return
        try:
            datagram, peer = session.sock.recvfrom(MAX_BLKSIZE)
        except OSError as error:  # an ICMP error for our last packet: the client is gone
            logger.debug("tftp session %s ended: %s", session.key, error)
            self._finish(ready, session)
            return
        try:
            if peer != (session.host, session.tidport or session.port):
                return  # not this session's client: ignored, as RFC 1350 lets a server do
            packet = session.download.answer(datagram)
            if packet is True:
                self._finish(ready, session)
            elif packet is not None:
                session.sock.sendto(packet, peer)  # (a block too big for a datagram: refused below)
                session.last_update = time.time()
                session.retry_count = 0  # retries are per packet: a lossy link loses a few of each transfer
            elif time.time() - session.last_update >= session.timeout and session.download.again(datagram):
                self._resend(session, time.time())
        except (Refused, OSError) as error:
            TFTP_TRANSFERS.labels("malformed").inc()
            logger.warning("tftp client=%s:%s outcome=malformed reason=%s", session.host, session.port, error)
            error_send(session.sock, (session.host, session.tidport or session.port))
            self._finish(ready, session)
        except TftpException as error:  # the client ended it
            logger.debug("tftp session %s ended: %s", session.key, error)
            self._finish(ready, session)

    def _run(self, ready: selectors.BaseSelector, session: GuardedContext, step: Any, *args: Any) -> None:
        try:
            step(*args)
        except TftpTimeoutExpectACK:  # an out-of-order ACK: resend at once, as a timeout would
            session.timeout_expectACK = True
            self._check(ready, session, time.time())
            return
        except TftpException as error:
            logger.debug("tftp session %s ended: %s", session.key, error)
            self._finish(ready, session)
            return
        if session.state is None:  # the last block was acknowledged
            self._finish(ready, session)

    def _check(self, ready: selectors.BaseSelector, session: GuardedContext, now: float) -> None:
        """Resend the last packet of a session whose client went quiet, waiting twice as long after each resend of it
        (1, 2, 4, 8, 8 s): a client that answers a repeated block once and then waits out its own timeout before it
        asks again (atftp, 5 s) is heard. After `retries` waits in a row the session ends."""
        wait = session.timeout * 2 ** min(session.retry_count, BACKOFF_DOUBLINGS)
        if not session.timeout_expectACK and now - session.last_update <= wait:
            return
        session.retry_count += 1
        if session.retry_count >= session.retries:
            self._finish(ready, session)
        else:
            self._resend(session, now)

    @staticmethod
    def _resend(session: GuardedContext, now: float) -> None:
        """The session's last packet again (a block, or tftpy's OACK or first block); the next wait counts from now."""
        with contextlib.suppress(OSError):
            if session.download is not None and (last := session.download.last()) is not None:
                session.sock.sendto(last, (session.host, session.tidport or session.port))
            else:
                session.state.resendLast()
        session.last_update = now

    def _finish(self, ready: selectors.BaseSelector, session: GuardedContext) -> None:
        if self.sessions.pop(session.key, None) is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            ready.unregister(session.sock)
        session.end()


class BootFileServer:
    """A tftpy server over `BootFiles` that keeps serving whatever a client sends."""

    def __init__(self, *, binaries: dict[str, Path], portal: str, reach: str = "", workdir: Path | None = None) -> None:
        self._workdir = tempfile.TemporaryDirectory(prefix="dock2box-tftp-") if workdir is None else None
        base = Path(self._workdir.name) if self._workdir else workdir
        assert base is not None
        self.files = BootFiles(binaries=binaries, portal=portal, workdir=base, reach=reach)
        self._stopping = threading.Event()
        self.server: tftpy.TftpServer | None = None
        self.port = 0

    def serve(self, *, bind: str, port: int, ready: threading.Event | None = None, reuse_port: bool = False) -> None:
        """Serve until `stop()`; if the loop fails, log it and listen again (see `BootTftpServer.listen`)."""
        while not self._stopping.is_set():
            self.server = BootTftpServer(
                str(self.files.root), dyn_file_func=self.files.open, upload_open=self.files.refuse_upload
            )
            watcher = threading.Thread(target=self._announce, args=(ready,), daemon=True)
            watcher.start()
            try:
                self.server.listen(bind, port, timeout=1, reuse_port=reuse_port)
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
