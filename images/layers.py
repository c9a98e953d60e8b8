"""Apply image layers (tar changesets, base first) to a root filesystem, as the OCI image spec defines it.

GNU tar writes the files; Python reads every tar header first and keeps the OCI rules. Each layer is read once, as a
stream: its headers are parsed (`images.tarstream.TarReader`), every entry is checked here against what the layers
below left on disk and what this layer wrote before it (`_Layer`), and the bytes of the entries that pass are handed
to one `tar --extract` reading from a pipe (`tarstream.Extractor`), which creates, owns, modes and times them
(numeric ids) while the next part is read. A path leaving the root, a path through a symlink or a non-directory, a
hard link to nothing or to a directory, an entry type a container layer never has: the layer is refused (LayerError)
before tar sees the entry.

The one implementation of whiteouts: `.wh.<name>` deletes `<name>` from the layers below, `.wh..wh..opq` empties its
directory of what the layers below put there. Whiteout entries never reach tar: they are applied when the layer's tar
is done, with everything the layer wrote known, so whiteouts never delete what the same layer wrote whatever their
place in the tar. A directory replaced by anything else is removed here first, once tar has written what came before.
"""

import bz2
import contextlib
import fcntl
import gzip
import lzma
import os
import shutil
import stat
import subprocess
import threading
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from images.tarstream import (
    CHUNK,
    DIRECTORY,
    HARDLINK,
    SYMLINK,
    Extractor,
    LayerError,
    Member,
    Stream,
    TarReader,
)

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
# How each compression a layer may have starts; anything else is read as plain tar.
MAGIC = {b"\x28\xb5\x2f\xfd": "zstd", b"\x1f\x8b": "gzip", b"\xfd7zXZ\x00": "xz", b"BZh": "bzip2"}


def _clean(name: str) -> str:
    """A member name as a relative path inside the root, or LayerError."""
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if any(part == ".." for part in parts):
        raise LayerError(f"{name!r} leaves the root filesystem")
    return "/".join(parts)


def _lstat(path: str) -> os.stat_result | None:
    """What is at `path` itself (a symlink, not its target); None for nothing there."""
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _mode(path: str) -> int:
    """The file type and mode of `path` itself; 0 for nothing there."""
    found = _lstat(path)
    return found.st_mode if found else 0


def _remove(path: str) -> None:
    mode = _mode(path)
    if stat.S_ISDIR(mode):
        shutil.rmtree(path)
    elif mode:
        os.unlink(path)


class _Layer:
    """The rules of one layer being applied to `root`: what it wrote (`kinds`: path → tar type; its whiteouts never
    remove those), the directories it uses as parents, and what the layers below have at each of those: nothing, or a
    real directory (looked at once per layer, with the names of its subdirectories: whether an entry replaces a
    directory below is then known without a look at the disk per entry, where tar is writing)."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = str(root)
        self.kinds: dict[str, bytes] = {}
        self.parents: set[str] = {""}  # directories this layer's entries are under (tar creates missing ones)
        self.real: dict[str, tuple[int, int]] = {}  # directories of the layers below: their times before this layer
        self.subdirectories: dict[str, set[str]] = {}  # ... and the names of their own subdirectories
        self.fresh: set[str] = set()  # directories this layer makes where the layers below have none
        self.whiteouts: list[str] = []
        self.directories: list[tuple[str, int]] = []
        self._found("", os.lstat(self.root))

    def _found(self, directory: str, found: os.stat_result | None) -> None:
        """What the layers below have at `directory`, which this layer makes or uses as a directory."""
        if found is None or not stat.S_ISDIR(found.st_mode):
            self.fresh.add(directory)
            return
        self.real[directory] = (found.st_atime_ns, found.st_mtime_ns)
        with os.scandir(os.path.join(self.root, directory)) as entries:
            self.subdirectories[directory] = {entry.name for entry in entries if entry.is_dir(follow_symlinks=False)}

    def _is_directory(self, relative: str) -> bool | None:
        """Whether `relative` is a directory as this layer left it so far (None: this layer did not touch it)."""
        kind = self.kinds.get(relative)
        if kind is not None:
            return kind == DIRECTORY
        return True if relative in self.parents else None

    def check_parents(self, relative: str, *, create: bool = True) -> None:
        """Refuse `relative` when one of its parents is a symlink (writing through it) or not a directory; `create`:
        the missing ones will be created (tar does), so they become this layer's."""
        parent = relative.rpartition("/")[0]
        if parent in self.parents or parent in self.real:
            return
        parts = parent.split("/")
        for end in range(1, len(parts) + 1):
            directory = "/".join(parts[:end])
            here = self._is_directory(directory)
            if here is None and directory not in self.real:
                found = _lstat(os.path.join(self.root, directory))
                mode = found.st_mode if found else 0
                if found is None:
                    if not create:
                        return
                    self._found(directory, None)
                elif stat.S_ISDIR(mode):
                    self._found(directory, found)
                elif stat.S_ISLNK(mode):
                    raise LayerError(f"{relative!r} goes through the symlink {directory}")
                else:
                    raise LayerError(f"{relative!r} goes through {directory}, which is not a directory")
            elif here is False:
                kind = self.kinds[directory]
                what = "the symlink" if kind == SYMLINK else "a hard link" if kind == HARDLINK else "a non-directory"
                raise LayerError(f"{relative!r} goes through {what} {directory}, which is not a directory")
            if create:
                self.parents.add(directory)

    def replaces_directory(self, relative: str, member: Member) -> bool:
        """Whether writing `member` at `relative` first needs a directory there removed (tar would not)."""
        if member.kind == DIRECTORY:
            return False
        here = self._is_directory(relative)
        if here is not None:
            return here
        parent, _, name = relative.rpartition("/")
        if parent in self.fresh:
            return False
        below = self.subdirectories.get(parent)
        return name in below if below is not None else stat.S_ISDIR(_mode(os.path.join(self.root, relative)))

    def remove_directory(self, relative: str) -> None:
        """Remove the directory at `relative` (tar has written all before it); it and what is under it are forgotten."""
        _remove(os.path.join(self.root, relative))
        below = relative + "/"
        for known in (self.real, self.kinds, self.subdirectories):
            for path in [path for path in known if path == relative or path.startswith(below)]:
                del known[path]
        self.parents = {path for path in self.parents if path != relative and not path.startswith(below)}
        self.fresh = {path for path in self.fresh if path != relative and not path.startswith(below)}
        parent, _, name = relative.rpartition("/")
        self.subdirectories.get(parent, set()).discard(name)

    def check_link(self, member: Member) -> None:
        """A hard link's target: a path this layer or a lower one wrote, not a directory, reached without a symlink."""
        target = _clean(member.link)
        self.check_parents(target, create=False)
        kind = self.kinds.get(target)
        if kind is None and target not in self.parents and (mode := _mode(os.path.join(self.root, target))):
            kind = DIRECTORY if stat.S_ISDIR(mode) else b"0"
        if kind is None or kind == DIRECTORY or target in self.parents:
            raise LayerError(f"{member.name!r} is a hard link to {member.link!r}, which is not a file")

    def wrote(self, relative: str, member: Member) -> None:
        if member.kind == DIRECTORY and relative not in self.real and relative not in self.fresh:
            self._found(relative, _lstat(os.path.join(self.root, relative)))  # (tar has not been here yet)
        self.kinds[relative] = member.kind
        if member.kind == DIRECTORY:
            self.directories.append((os.path.join(self.root, relative), member.mtime))
        else:
            self.parents.discard(relative)

    def restore_times(self, replaced: bool) -> None:
        """The directories below keep their times (what this layer put in them is not a change of theirs, as umoci
        has it); this layer's directories get theirs from their headers again when something was removed in them
        after tar set them (`replaced`, or whiteouts)."""
        if replaced or self.whiteouts:
            for path, mtime in self.directories:
                if stat.S_ISDIR(_mode(path)):
                    os.utime(path, (mtime, mtime))
        for directory, times in self.real.items():
            path = os.path.join(self.root, directory)
            if directory not in self.kinds and stat.S_ISDIR(_mode(path)):
                os.utime(path, ns=times, follow_symlinks=False)

    def remove_lower(self, relative: str) -> None:
        """Remove what the layers below put at `relative`, keeping what this layer wrote there."""
        path = os.path.join(self.root, relative)
        if relative in self.kinds or relative in self.parents:
            if os.path.isdir(path) and not os.path.islink(path):
                for child in os.listdir(path):
                    self.remove_lower(f"{relative}/{child}".lstrip("/"))
            return
        _remove(path)

    def whiteout(self, relative: str) -> None:
        """Apply one whiteout entry to the layers below (never to what the same layer wrote); nothing when its
        directory is no longer one (a later entry of the layer replaced it: what was below is gone)."""
        directory, _, base = relative.rpartition("/")
        parts = directory.split("/") if directory else []
        for end in range(1, len(parts) + 1):
            if not stat.S_ISDIR(_mode(os.path.join(self.root, *parts[:end]))):
                return
        if base == OPAQUE:
            for child in os.listdir(os.path.join(self.root, directory)):
                self.remove_lower(f"{directory}/{child}".lstrip("/"))
        else:
            self.remove_lower(f"{directory}/{base[len(WHITEOUT) :]}".lstrip("/"))


class _Prefixed:
    """A stream with the bytes already read from its front put back."""

    def __init__(self, head: bytes, stream: Stream) -> None:
        self.head, self.stream = head, stream

    def read(self, size: int, /) -> bytes:
        """Whole reads: the head and then the stream's bytes."""
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
        for pipe in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):  # fewer, larger reads and writes
                fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, CHUNK)  # type: ignore[union-attr]
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

    The stream need not seek: the installer applies layers as they come from the registry. It is decompressed here
    (zstd by its tool), in large pieces.
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
    extractor = Extractor(layer.root)
    reader = TarReader(stream, lambda data: extractor.feed(data))  # (the extractor of the moment: see below)
    replaced = False  # a directory was removed: the times of this layer's directories are set again
    try:
        while (member := reader.next()) is not None:
            relative = _clean(member.name)
            base = relative.rpartition("/")[2]
            if not relative:  # the root itself: its owner and mode are the target's
                reader.drop()
                continue
            if base.startswith(WHITEOUT):
                layer.check_parents(relative, create=False)
                layer.whiteouts.append(relative)
                reader.drop()
                continue
            layer.check_parents(relative)
            if member.kind == HARDLINK:
                layer.check_link(member)
            if layer.replaces_directory(relative, member):
                reader.flush()
                extractor.finish()  # tar has written everything before this entry
                layer.remove_directory(relative)
                extractor = Extractor(layer.root)
                replaced = True
            layer.wrote(relative, member)
            reader.keep()
        reader.flush()
        reader.drain()
    except BaseException:
        extractor.kill()
        raise
    extractor.finish()
    for relative in layer.whiteouts:
        layer.whiteout(relative)
    layer.restore_times(replaced)


def apply_layers(root: Path, layers: Iterable[Stream]) -> None:
    """Apply layers in order, base first."""
    root.mkdir(parents=True, exist_ok=True)
    for stream in layers:
        apply_layer(root, stream)
