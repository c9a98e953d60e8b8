"""Apply image layers (tar changesets, base first) to a root filesystem, as the OCI image spec defines it.

The one implementation of whiteouts: `.wh.<name>` deletes `<name>` from the layers below, `.wh..wh..opq` empties its
directory of what the layers below put there. A layer is read once as a stream; whiteouts never delete what the same
layer wrote before them (the paths written so far are remembered), so their place in the tar does not matter.
A directory replaced by a file (or back) is removed first; hard links point
at paths already written; ownership, modes and times come from the tar headers (numeric ids). Every path is checked
to stay inside the root, and no path is written through a symlink.
"""

import contextlib
import os
import shutil
import stat
import subprocess
import tarfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


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


def _target(root: Path, relative: str) -> Path:
    """The absolute path of `relative` under `root`, refusing parents that are symlinks (writing through them)."""
    path = root
    for part in relative.split("/")[:-1]:
        path = path / part
        if path.is_symlink():
            raise LayerError(f"{relative!r} goes through the symlink {path.relative_to(root)}")
    return root / relative


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _remove_lower(path: Path, relative: str, written: set[str]) -> None:
    """Remove what the layers below put at `path`, keeping what this layer already wrote there."""
    if relative in written:
        if path.is_dir() and not path.is_symlink():
            for child in path.iterdir():
                _remove_lower(child, f"{relative}/{child.name}", written)
        return
    _remove(path)


def _whiteout(root: Path, relative: str, written: set[str]) -> None:
    """Apply one whiteout entry to the layers below (never to what the same layer wrote, whatever the order)."""
    directory, _, base = relative.rpartition("/")
    if base == OPAQUE:
        parent = _target(root, relative).parent
        if parent.is_dir() and not parent.is_symlink():
            for child in parent.iterdir():
                _remove_lower(child, f"{directory}/{child.name}".lstrip("/"), written)
    else:
        hidden = f"{directory}/{base[len(WHITEOUT) :]}".lstrip("/")
        _remove_lower(_target(root, hidden), hidden, written)


def _write(root: Path, layer: tarfile.TarFile, member: tarfile.TarInfo) -> None:
    relative = _clean(member.name)
    if not relative:
        return
    path = _target(root, relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    keeps_directory = member.isdir() and path.is_dir() and not path.is_symlink()
    if (path.exists() or path.is_symlink()) and not keeps_directory:
        _remove(path)
    if member.isdir():
        path.mkdir(exist_ok=True)
    elif member.issym():
        os.symlink(member.linkname, path)
    elif member.islnk():
        source = _target(root, _clean(member.linkname))
        if not source.exists() or source.is_dir():
            raise LayerError(f"{member.name!r} is a hard link to {member.linkname!r}, which is not a file")
        os.link(source, path)
        return  # a hard link shares the metadata of its target
    elif member.isfile():
        handle = layer.extractfile(member)
        assert handle is not None
        with path.open("wb") as out:
            shutil.copyfileobj(handle, out, 1 << 20)
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

    The stream need not seek: the installer applies layers as they come from the registry.
    """
    head = stream.read(len(ZSTD_MAGIC))
    if head != ZSTD_MAGIC:
        _apply_tar(root, _Prefixed(head, stream))
        return
    decompressed = _Zstd(_Prefixed(head, stream))
    try:
        _apply_tar(root, decompressed)
    finally:
        decompressed.close()


def _apply_tar(root: Path, stream: Stream) -> None:
    written: set[str] = set()
    directories: list[tuple[Path, int]] = []
    try:  # closed by the `with` below; a stream mode only reads
        archive = tarfile.open(fileobj=stream, mode="r|*", bufsize=1 << 20)  # type: ignore[call-overload]  # noqa: SIM115
    except tarfile.ReadError as error:
        raise LayerError(
            f"not a tar archive, or compressed other than with gzip, xz, bzip2 or zstd ({error})"
        ) from error
    with archive as layer:
        for member in layer:
            relative = _clean(member.name)
            if relative.rpartition("/")[2].startswith(WHITEOUT):
                _whiteout(root, relative, written)
                continue
            _write(root, layer, member)
            written.add(relative)
            if member.isdir():
                directories.append((root / relative, int(member.mtime)))
    for path, mtime in directories:  # again: writing inside a directory changes its time
        if path.is_dir() and not path.is_symlink():
            os.utime(path, (mtime, mtime))


def apply_layers(root: Path, layers: Iterable[Stream]) -> None:
    """Apply layers in order, base first."""
    root.mkdir(parents=True, exist_ok=True)
    for stream in layers:
        apply_layer(root, stream)
