"""Apply image layers (tar changesets, base first) to a root filesystem, as the OCI image spec defines it.

The one implementation of whiteouts: `.wh.<name>` deletes `<name>` from the layers below, `.wh..wh..opq` empties its
directory of what the layers below put there. A layer is read once as a stream; whiteouts never delete what the same
layer wrote before them (the paths written so far are remembered), so their place in the tar does not matter.
A directory replaced by a file (or back) is removed first; hard links point
at paths already written; ownership, modes and times come from the tar headers (numeric ids). Every path is checked
to stay inside the root, and no path is written through a symlink.
"""

import bz2
import contextlib
import gzip
import lzma
import os
import shutil
import stat
import subprocess
import tarfile
import threading
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
# How each compression a layer may have starts; anything else is read as plain tar.
MAGIC = {b"\x28\xb5\x2f\xfd": "zstd", b"\x1f\x8b": "gzip", b"\xfd7zXZ\x00": "xz", b"BZh": "bzip2"}


class Stream(Protocol):
    """What a layer is read from: anything with `read` (a file, an HTTP response, a digest-checking wrapper)."""

    def read(self, size: int, /) -> bytes: ...


class LayerError(Exception):
    """A layer that cannot be applied safely (a path escaping the root, a link to nowhere)."""


def _clean(name: str) -> str:
    """A member name as a relative path inside the root, or LayerError."""
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if any(part == ".." for part in parts):
        raise LayerError(f"{name!r} leaves the root filesystem")
    return "/".join(parts)


def _remove(path: str) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


class _Layer:
    """One layer being applied to `root`: the paths it wrote (whiteouts never remove those), its directories (their
    times are set again at the end), and the directories known to be real ones, not symlinks (each parent is looked
    at once per layer, not once per member under it)."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = str(root)
        self.written: set[str] = set()
        self.directories: list[tuple[str, int]] = []
        self.real: set[str] = {""}

    def path(self, relative: str, *, create: bool = True) -> str:
        """The absolute path of `relative`, refused when one of its parents is a symlink (writing through it) or not a
        directory; missing parents are created (unless `create` is false: then nothing is, and what is missing is
        not looked at further)."""
        parent = relative.rpartition("/")[0]
        if parent not in self.real:
            parts = parent.split("/")
            for end in range(1, len(parts) + 1):
                directory = "/".join(parts[:end])
                if directory in self.real:
                    continue
                absolute = os.path.join(self.root, directory)
                try:
                    mode = os.lstat(absolute).st_mode
                except FileNotFoundError:
                    if not create:
                        break
                    os.mkdir(absolute)
                    mode = stat.S_IFDIR
                if stat.S_ISLNK(mode):
                    raise LayerError(f"{relative!r} goes through the symlink {directory}")
                if not stat.S_ISDIR(mode):
                    raise LayerError(f"{relative!r} goes through {directory}, which is not a directory")
                self.real.add(directory)
        return os.path.join(self.root, relative)

    def forget(self, relative: str) -> None:
        """`relative` is removed or replaced: it and what is under it are no longer known directories."""
        if relative in self.real:
            below = relative + "/"
            self.real = {known for known in self.real if known != relative and not known.startswith(below)}

    def remove_lower(self, relative: str) -> None:
        """Remove what the layers below put at `relative`, keeping what this layer already wrote there."""
        path = os.path.join(self.root, relative)
        if relative in self.written:
            if os.path.isdir(path) and not os.path.islink(path):
                for child in os.listdir(path):
                    self.remove_lower(f"{relative}/{child}")
            return
        self.forget(relative)
        _remove(path)

    def whiteout(self, relative: str) -> None:
        """Apply one whiteout entry to the layers below (never to what the same layer wrote, whatever the order)."""
        directory, _, base = relative.rpartition("/")
        if base == OPAQUE:
            parent = self.path(relative, create=False).rpartition("/")[0]
            if os.path.isdir(parent) and not os.path.islink(parent):
                for child in os.listdir(parent):
                    self.remove_lower(f"{directory}/{child}".lstrip("/"))
        else:
            hidden = f"{directory}/{base[len(WHITEOUT) :]}".lstrip("/")
            self.path(hidden, create=False)
            self.remove_lower(hidden)

    def write(self, archive: tarfile.TarFile, member: tarfile.TarInfo, relative: str) -> None:
        path = self.path(relative)
        try:
            existing: int | None = os.lstat(path).st_mode
        except FileNotFoundError:
            existing = None
        if existing is not None and not (member.isdir() and stat.S_ISDIR(existing)):
            self.forget(relative)
            _remove(path)
        if member.isdir():
            if existing is None or not stat.S_ISDIR(existing):
                os.mkdir(path)
            self.real.add(relative)
            self.directories.append((path, int(member.mtime)))
        elif member.issym():
            os.symlink(member.linkname, path)
        elif member.islnk():
            source = self.path(_clean(member.linkname), create=False)
            if not os.path.exists(source) or os.path.isdir(source):
                raise LayerError(f"{member.name!r} is a hard link to {member.linkname!r}, which is not a file")
            os.link(source, path)
            return  # a hard link shares the metadata of its target
        elif member.isfile():
            self._file(archive, member, path)
            return
        elif member.ischr() or member.isblk():
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            os.mknod(path, kind | member.mode, os.makedev(member.devmajor, member.devminor))
        elif member.isfifo():
            os.mkfifo(path)
        else:
            return
        os.lchown(path, member.uid, member.gid)
        if not member.issym():
            os.chmod(path, stat.S_IMODE(member.mode))
        os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)

    @staticmethod
    def _file(archive: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
        """A regular file's bytes and metadata, through one descriptor."""
        source = archive.extractfile(member)
        assert source is not None
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            while data := source.read(1 << 20):
                os.write(descriptor, data)
            os.fchown(descriptor, member.uid, member.gid)
            os.fchmod(descriptor, stat.S_IMODE(member.mode))
            os.utime(descriptor, (member.mtime, member.mtime))
        finally:
            os.close(descriptor)


class _Prefixed:
    """A stream with the bytes already read from its front put back."""

    def __init__(self, head: bytes, stream: Stream) -> None:
        self.head, self.stream = head, stream

    def read(self, size: int, /) -> bytes:
        """Whole reads (tarfile reads a block to find the compression): the head and then the stream's bytes."""
        if not self.head:
            return self.stream.read(size)
        data, self.head = self.head[:size], self.head[size:]
        return data + (self.stream.read(size - len(data)) if size > len(data) else b"")


# The standard library's readers of each compression (they read the stream in large pieces and keep little).
OPENERS: dict[str, Callable[[Any], gzip.GzipFile | lzma.LZMAFile | bz2.BZ2File]] = {
    "gzip": lambda stream: gzip.GzipFile(fileobj=stream, mode="rb"),
    "xz": lzma.LZMAFile,
    "bzip2": bz2.BZ2File,
}


class _Decompressing:
    """The standard library's reader of a compressed stream, its failures said as a layer's."""

    def __init__(self, opened: gzip.GzipFile | lzma.LZMAFile | bz2.BZ2File, kind: str) -> None:
        self.opened, self.kind = opened, kind

    def read(self, size: int, /) -> bytes:
        try:
            return self.opened.read(size)
        except (EOFError, zlib.error, lzma.LZMAError, OSError) as error:  # (bz2 and gzip say bad data with OSError)
            raise LayerError(f"the {self.kind} stream is corrupt or truncated: {error}") from error


class _Zstd:
    """A zstd stream, decompressed by the `zstd` tool (Python 3.11's standard library has no zstd): a thread feeds
    it the compressed bytes while the tar reader reads what it writes."""

    def __init__(self, stream: Stream) -> None:
        tool = shutil.which("zstd")
        if tool is None:
            raise LayerError("a zstd-compressed layer needs the zstd tool, and there is none here")
        self.process = subprocess.Popen(  # noqa: S603 (a fixed command; the data goes to its stdin)
            [tool, "-d", "-c", "-q"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.feeder = threading.Thread(target=self._feed, args=(stream,), daemon=True)
        self.feeder.start()

    def _feed(self, stream: Stream) -> None:
        assert self.process.stdin is not None
        try:
            while data := stream.read(1 << 20):
                self.process.stdin.write(data)
        except BrokenPipeError:  # zstd stopped on corrupt input: close() reports its message
            pass
        finally:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()

    def read(self, size: int, /) -> bytes:
        assert self.process.stdout is not None
        return self.process.stdout.read(size)

    def close(self) -> None:
        """Wait for zstd (the rest of its output is drained) and refuse a stream it could not decompress."""
        assert self.process.stdout is not None and self.process.stderr is not None
        while self.process.stdout.read(1 << 20):
            pass
        self.feeder.join()
        error = self.process.stderr.read().decode(errors="replace").strip()
        if self.process.wait() != 0:
            raise LayerError(f"the zstd stream is corrupt or truncated: {error or 'zstd failed'}")


def apply_layer(root: Path, stream: Stream) -> None:
    """Apply one layer (a tar stream, plain or gzip/xz/bz2/zstd-compressed) to `root`, reading it once, front to back.

    The stream need not seek: the installer applies layers as they come from the registry. It is decompressed here,
    in large pieces, and tarfile reads plain tar: tarfile's own decompression keeps what it decompressed as one bytes
    object and cuts every read (each 512-byte header) off its front, copying the rest each time.
    """
    head = stream.read(max(len(magic) for magic in MAGIC))
    prefixed = _Prefixed(head, stream)
    kind = next((name for magic, name in MAGIC.items() if head.startswith(magic)), "tar")
    if kind == "zstd":
        decompressed = _Zstd(prefixed)
        try:
            _apply_tar(root, decompressed)
        finally:
            decompressed.close()
        return
    if kind == "tar":
        _apply_tar(root, prefixed)
        return
    _apply_tar(root, _Decompressing(OPENERS[kind](prefixed), kind))


def _apply_tar(root: Path, stream: Stream) -> None:
    layer = _Layer(root)
    try:  # closed by the `with` below; a stream mode only reads
        archive = tarfile.open(fileobj=stream, mode="r|", bufsize=1 << 14)  # type: ignore[call-overload]  # noqa: SIM115
    except tarfile.ReadError as error:
        raise LayerError(
            f"not a tar archive, or compressed other than with gzip, xz, bzip2 or zstd ({error})"
        ) from error
    with archive:
        for member in archive:
            relative = _clean(member.name)
            if not relative:
                continue
            if relative.rpartition("/")[2].startswith(WHITEOUT):
                layer.whiteout(relative)
                continue
            layer.write(archive, member, relative)
            layer.written.add(relative)
    for path, mtime in layer.directories:  # again: writing inside a directory changes its time
        if os.path.isdir(path) and not os.path.islink(path):
            os.utime(path, (mtime, mtime))


def apply_layers(root: Path, layers: Iterable[Stream]) -> None:
    """Apply layers in order, base first."""
    root.mkdir(parents=True, exist_ok=True)
    for stream in layers:
        apply_layer(root, stream)
