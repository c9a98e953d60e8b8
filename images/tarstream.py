"""A tar stream read header by header in Python and written to disk by GNU tar (images/layers.py keeps the rules).

`TarReader` parses each header itself (ustar, pax and GNU long names; the checksum checked) and hands the bytes of
the entries it is told to keep, unchanged and in order, to `Extractor`: one `tar --extract` fed through a pipe by a
thread of its own. Entries another tar reader could cut differently from this one (sparse files, dump directories, a
link with data) are refused, so the entries checked are the entries tar writes.
"""

import contextlib
import fcntl
import queue
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)  # two of them end an archive
CHUNK = 1 << 20  # what is read and handed on at once
DIRECTORY, SYMLINK, HARDLINK = b"5", b"2", b"1"
FILES = {b"0", b"7"}  # regular and contiguous: the only entries with data
OTHERS = {b"3", b"4", b"6"}  # character and block devices, FIFOs
KINDS = FILES | OTHERS | {DIRECTORY, SYMLINK, HARDLINK}
EXTENDED = {b"x": "pax", b"g": "global pax", b"L": "long name", b"K": "long link"}
TAR = [
    "--extract", "--file=-", "--blocking-factor=2048", "--numeric-owner", "--same-owner", "--same-permissions",
    "--delay-directory-restore",
    "--warning=no-timestamp", "--warning=no-unknown-keyword",
]  # fmt: skip


class Stream(Protocol):
    """What a layer is read from: anything with `read` (a file, an HTTP response, a digest-checking wrapper)."""

    def read(self, size: int, /) -> bytes: ...


class LayerError(Exception):
    """A layer that cannot be applied safely (a path escaping the root, a link to nowhere)."""


def _number(field: bytes, what: str) -> int:
    """A numeric header field: octal digits (NUL or space ended), or base-256 when its first bit is set (GNU)."""
    if field[:1] == b"\x80":
        return int.from_bytes(field[1:], "big")
    digits = field.split(b"\x00", 1)[0].strip(b" ")
    try:
        return int(digits, 8) if digits else 0
    except ValueError:
        raise LayerError(f"a tar header's {what} is not a number: {field!r}") from None


def _text(field: bytes) -> str:
    return field.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")


@dataclass
class Member:
    name: str
    kind: bytes
    size: int
    link: str
    mtime: int


class TarReader:
    """A tar stream read header by header: `next()` gives each entry (its extended headers folded in), then `keep` or
    `drop` hands its bytes (headers and data) on to `out` or not, in pieces of about a megabyte. Entries whose data or
    extended headers would let another tar reader find a header elsewhere than here (sparse files, a link with data)
    are refused."""

    def __init__(self, stream: Stream, out: Callable[[memoryview], None]) -> None:
        self.stream, self.out = stream, out
        self.buffer = bytearray()  # read ahead of the stream
        self.sent = 0  # the buffer before `sent` is handed on; from `sent` to `decided`, kept and not yet handed on
        self.decided = 0  # where the current entry's first (extended) header begins
        self.at = 0  # where parsing is
        self.member: Member | None = None

    def _fill(self, size: int) -> bool:
        """At least `size` bytes after `at` in the buffer; False at the end of the stream."""
        while len(self.buffer) - self.at < size:
            data = self.stream.read(CHUNK)
            if not data:
                return False
            if self.decided > CHUNK:  # what is decided is handed on, and forgotten
                self.flush()
                del self.buffer[: self.decided]
                self.at -= self.decided
                self.sent = self.decided = 0
            self.buffer += data
        return True

    def _take(self, size: int, name: str) -> bytes:
        if not self._fill(size):
            raise LayerError(f"the layer ends in the middle of {name!r}")
        piece = bytes(self.buffer[self.at : self.at + size])
        self.at += size
        return piece

    def next(self) -> Member | None:
        """The next entry, or None at the end of the archive."""
        self.decided = self.at
        pax: dict[str, str] = {}
        long: dict[bytes, str] = {}
        while True:
            if not self._fill(BLOCK):
                if self.at == len(self.buffer):
                    return None  # the stream ends at a header: as at the end marker
                raise LayerError("the layer ends in the middle of a tar header")
            header = self._take(BLOCK, "a tar header")
            if header == ZERO_BLOCK:
                return None
            try:
                stored = _number(header[148:156], "checksum")
            except LayerError:
                stored = -1
            if stored != sum(header[:148]) + sum(header[156:]) + 8 * 32:
                raise LayerError("not a tar archive, or compressed other than with gzip, xz, bzip2 or zstd")
            kind, size = header[156:157], _number(header[124:136], "size")
            if kind in EXTENDED:
                data = self._take(-(-size // BLOCK) * BLOCK, EXTENDED[kind])[:size]
                if kind == b"x":
                    pax.update(_pax(data))
                elif kind != b"g":
                    long[kind] = data.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
                continue
            name = _text(header[:100])
            if header[257:263] == b"ustar\x00" and header[345] != 0:
                name = _text(header[345:500]) + "/" + name
            name = pax.get("path", long.get(b"L", name))
            link = pax.get("linkpath", long.get(b"K", _text(header[157:257])))
            if kind == b"\x00":
                kind = DIRECTORY if name.endswith("/") else b"0"  # (a pre-POSIX directory: named with a slash)
            if kind not in KINDS or (pax and any(key.startswith("GNU.sparse") for key in pax)):
                raise LayerError(f"{name!r} is a tar entry of a kind container layers do not have ({kind!r})")
            try:
                size = int(pax.get("size", size))
                mtime = int(float(pax["mtime"])) if "mtime" in pax else 0
            except ValueError:
                raise LayerError(f"{name!r} has a pax size or mtime that is not a number") from None
            if size and kind not in FILES:
                raise LayerError(f"{name!r} is a tar entry that carries no data, yet says it has {size} bytes")
            if kind == DIRECTORY and "mtime" not in pax:  # (only a directory's time is needed here)
                mtime = _number(header[136:148], "mtime")
            self.member = Member(name, kind, size, link, mtime)
            return self.member

    def keep(self) -> None:
        """Hand the current entry on: its headers, then its data."""
        assert self.member is not None
        left = -(-self.member.size // BLOCK) * BLOCK
        while True:
            piece = min(left, len(self.buffer) - self.at)
            self.at += piece
            left -= piece
            self.decided = self.at
            if not left:
                return
            if not self._fill(1):
                raise LayerError(f"the layer ends in the middle of {self.member.name!r}")

    def drop(self) -> None:
        """Leave the current entry out (its data, if any, is read past)."""
        assert self.member is not None
        self.flush()
        self._take(-(-self.member.size // BLOCK) * BLOCK, self.member.name)
        self.sent = self.decided = self.at

    def flush(self) -> None:
        """Hand on what is kept so far."""
        if self.decided > self.sent:
            view = memoryview(self.buffer)
            try:
                self.out(view[self.sent : self.decided])
            finally:
                view.release()  # (the buffer cannot grow while it is looked at)
            self.sent = self.decided

    def drain(self) -> None:
        """Read the stream to its end (what follows the end marker is padding; a compressed stream checks its end)."""
        while self.stream.read(CHUNK):
            pass


def _pax(data: bytes) -> dict[str, str]:
    """The records of a pax extended header: `<length> <key>=<value>\\n` each."""
    records, at = {}, 0
    while at < len(data):
        length, _, rest = data[at:].partition(b" ")
        try:
            size = int(length)
        except ValueError:
            raise LayerError(f"a pax header record has no length: {data[at : at + 40]!r}") from None
        key, _, value = rest[: size - len(length) - 2].partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        if size <= 0:
            raise LayerError("a pax header record of no length")
        at += size
    return records


class Extractor:
    """One `tar --extract` into the root, fed through a pipe by a thread of its own (the kernel copies one piece into
    the pipe while the reader parses the next); `finish` waits for both and says why tar failed."""

    def __init__(self, root: str) -> None:
        tool = shutil.which("tar")
        if tool is None:
            raise LayerError("applying a layer needs GNU tar, and there is none here")
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed by finish or kill; a pipe could fill and stop tar)
        self.process = subprocess.Popen(  # noqa: S603 (a fixed command; the layer goes to its stdin)
            [tool, *TAR, f"--directory={root}"], stdin=subprocess.PIPE, stderr=self.errors
        )
        assert self.process.stdin is not None
        self.stdin = self.process.stdin
        with contextlib.suppress(OSError):  # fewer, larger writes (Linux lets a pipe hold up to 1 MiB)
            fcntl.fcntl(self.stdin.fileno(), fcntl.F_SETPIPE_SZ, CHUNK)
        self.pieces: queue.Queue[bytes | None] = queue.Queue(4)
        self.broken = False  # tar stopped reading
        self.writer = threading.Thread(target=self._write, name="tar-feed", daemon=True)
        self.writer.start()

    def _write(self) -> None:
        """Each piece to tar, then (after None) the end marker; once tar stopped reading, the rest is dropped."""
        while (piece := self.pieces.get()) is not None:
            if not self.broken:
                try:
                    self.stdin.write(piece)
                except BrokenPipeError:
                    self.broken = True
        with contextlib.suppress(BrokenPipeError):
            self.stdin.write(2 * ZERO_BLOCK)
        with contextlib.suppress(BrokenPipeError):
            self.stdin.close()

    def feed(self, data: memoryview) -> None:
        if self.broken:
            self.finish()  # says why tar stopped
            raise LayerError("tar stopped reading the layer")
        self.pieces.put(bytes(data))

    def finish(self) -> None:
        if self.writer.is_alive():
            self.pieces.put(None)
            self.writer.join()
        if self.process.wait() != 0:
            self.errors.seek(0)
            message = self.errors.read().decode(errors="replace").strip().splitlines()
            self.errors.close()
            raise LayerError(f"tar could not apply the layer: {' / '.join(message[-3:]) or 'it failed'}")
        self.errors.close()

    def kill(self) -> None:
        self.process.kill()  # (a piece being written meets a broken pipe: the writer drops the rest)
        if self.writer.is_alive():
            self.pieces.put(None)
            self.writer.join()
        self.process.wait()
        self.errors.close()
