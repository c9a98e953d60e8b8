"""Native apply: `images.layers.apply_layer` (what the installer and `manage.py image_import` run) against GNU tar on
the same bytes, plain, gzip and zstd, alternating in one run.

    .venv/bin/python bench/apply.py [--rounds 3] [--into DIR]

The bytes: the Debian 12 minbase root the test suite builds once (`var/cache/debian-roots/bookworm-minbase.tar`, made
by mmdebstrap in tests/debian_images.py), compressed once into `var/cache/bench/` (gzip -6, zstd -3). Each round
extracts every form into a fresh directory under `--into` (default `var/bench-apply/`; `/dev/shm/...` takes the
disk and its writeback out of the figures, leaving the tools' own work) with `tar -x[z|--zstd]f --numeric-owner` and
with `apply_layer` (in this process, from the file), and the trees are compared (names, types, modes, owners, sizes,
times) once. Each run starts after `sync`, so none pays for the writeback of another. Prints a Markdown table of the median seconds and the ratio (GNU tar's time over ours: 1.0 = as fast).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from images.layers import apply_layer  # noqa: E402 (after the path is set)

SOURCE = ROOT / "var/cache/debian-roots/bookworm-minbase.tar"
CACHE = ROOT / "var/cache/bench"
WORK = ROOT / "var/bench-apply"  # (--into)
FORMS = {"tar": ([], ""), "gzip": (["gzip", "-6", "-c"], "-z"), "zstd": (["zstd", "-3", "-q", "-c"], "--zstd")}


def compressed(form: str) -> Path:
    command, _ = FORMS[form]
    if not command:
        return SOURCE
    path = CACHE / f"{SOURCE.stem}.{form}"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with SOURCE.open("rb") as source, path.with_suffix(".part").open("wb") as out:
            subprocess.run(command, stdin=source, stdout=out, check=True)
        path.with_suffix(".part").rename(path)
    return path


def fresh(name: str) -> Path:
    """An empty directory, with the writes before it on the disk (each run starts without another's writeback)."""
    target = WORK / name
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    os.sync()
    return target


def gnu_tar(path: Path, form: str) -> float:
    target = fresh("gnu")
    flags = [FORMS[form][1]] if FORMS[form][1] else []
    started = time.monotonic()
    subprocess.run(["tar", *flags, "-xf", str(path), "-C", str(target), "--numeric-owner"], check=True)
    return time.monotonic() - started


def ours(path: Path) -> float:
    target = fresh("ours")
    started = time.monotonic()
    with path.open("rb") as stream:
        apply_layer(target, stream)
    return time.monotonic() - started


def tree(root: Path) -> set[tuple]:
    found = set()
    for directory, names, files in os.walk(root):
        for name in names + files:
            path = Path(directory) / name
            info = path.lstat()
            found.add((str(path.relative_to(root)), info.st_mode, info.st_uid, info.st_gid, info.st_size,
                       int(info.st_mtime)))  # fmt: skip
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--into", type=Path, default=None, help="where the trees are extracted")
    args = parser.parse_args()
    global WORK
    WORK = args.into or WORK
    if not SOURCE.exists():
        sys.exit(f"{SOURCE} is missing: run the test suite once (make test), which builds it")
    rows = []
    for form in FORMS:
        path = compressed(form)
        path.read_bytes()  # in the page cache for both
        times: dict[str, list[float]] = {"gnu": [], "ours": []}
        for _ in range(args.rounds):
            times["gnu"].append(gnu_tar(path, form))
            times["ours"].append(ours(path))
        differences = tree(WORK / "gnu") ^ tree(WORK / "ours")
        if differences:
            sys.exit(f"{form}: the trees differ, e.g. {sorted(differences)[:4]}")
        gnu, mine = statistics.median(times["gnu"]), statistics.median(times["ours"])
        rows.append((form, path.stat().st_size, gnu, mine))
    shutil.rmtree(WORK, ignore_errors=True)
    entries = subprocess.run(["tar", "-tf", str(SOURCE)], capture_output=True, text=True, check=True).stdout.count("\n")
    print(f"Command: `.venv/bin/python bench/apply.py --rounds {args.rounds} --into {args.into}` ({SOURCE.name}, "
          f"{entries} entries)\n")  # fmt: skip
    print("| form | MB | GNU tar s | apply_layer s | ratio (GNU tar / ours) |\n|---|---|---|---|---|")
    for form, size, gnu, mine in rows:
        print(f"| {form} | {size / 1e6:.0f} | {gnu:.2f} | {mine:.2f} | {gnu / mine:.2f}x |")


if __name__ == "__main__":
    main()
