"""The installed system seen from the installer: its paths (symlinks resolved inside it), its own tools run in it."""

import contextlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from d2b_installer.shell import run

API_FILESYSTEMS = ("dev", "proc", "sys")  # what the image's tools expect to find mounted


def inside(root: Path, path: str) -> Path | None:
    """`path` of the installed system as a path under `root`, its symlinks (absolute ones too) followed inside
    `root`; None when it does not exist there. A link never leads out of `root`: `..` stops at its top."""
    parts = list(PurePosixPath(path).parts[1:])
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            resolved = resolved[:-1]
            continue
        candidate = root.joinpath(*resolved, part)
        if candidate.is_symlink():
            hops += 1
            if hops > 40:
                return None
            target = PurePosixPath(str(candidate.readlink()))
            if target.is_absolute():
                resolved = []
                parts = list(target.parts[1:]) + parts
            else:
                parts = list(target.parts) + parts
            continue
        if not candidate.exists():
            return None
        resolved.append(part)
    return root.joinpath(*resolved)


def has(root: Path, *paths: str) -> str | None:
    """The first of `paths` that exists in the installed system, or None."""
    return next((path for path in paths if inside(root, path) is not None), None)


@contextlib.contextmanager
def system(root: Path) -> Iterator[None]:
    """The installed system's /dev, /proc and /sys mounted for its own tools; unmounted afterwards, whatever ran."""
    mounted: list[Path] = []
    try:
        for name in API_FILESYSTEMS:
            target = root / name
            target.mkdir(exist_ok=True)
            run("mount", "-o", "bind", f"/{name}", str(target))
            mounted.append(target)
        yield
    finally:
        for target in reversed(mounted):
            run("umount", "-l", str(target))


def chroot(root: Path, *command: str) -> str:
    """Run one of the installed system's tools inside it (within `system`)."""
    return run("chroot", str(root), *command)
