"""Layer application compared with umoci's unpack of the same image, path by path."""

import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from images.layers import LayerError, apply_layer, apply_layers

pytestmark = pytest.mark.slow


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", mode: int = 0o644, uid: int = 0, gid: int = 0,
          link: str = "", mtime: int = 1_700_000_000,
          device: tuple[int, int] = (0, 0)) -> tuple[tarfile.TarInfo, bytes]:  # fmt: skip
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.linkname, info.mtime = kind, mode, uid, gid, link, mtime
    info.devmajor, info.devminor = device
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def tar(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in entries:
            archive.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    return raw.getvalue()


D, F, L, H = tarfile.DIRTYPE, tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE
LAYERS = [
    [
        entry("etc/", D, mode=0o755),
        entry("etc/os-release", data=b"ID=base\n"),
        entry("etc/shadow", data=b"root:*:\n", mode=0o640, gid=42),
        entry("usr/", D, mode=0o755),
        entry("usr/bin/", D, mode=0o755),
        entry("usr/bin/tool", data=b"#!/bin/sh\n", mode=0o4755),
        entry("usr/bin/alias", L, link="tool"),
        entry("usr/bin/hard", H, link="usr/bin/tool"),
        entry("var/", D),
        entry("var/cache/", D, mode=0o700, uid=1000, gid=1000),
        entry("var/cache/a", data=b"a", uid=1000, gid=1000),
        entry("var/cache/b", data=b"b"),
        entry("opt/", D),
        entry("opt/thing/", D),
        entry("opt/thing/x", data=b"x"),
        entry("srv/", D),
        entry("srv/file", data=b"file"),
        entry("home/", D),
        entry("home/old", data=b"old"),
        entry("dev/", D, mtime=1_600_000_000),
        entry("dev/null", tarfile.CHRTYPE, mode=0o666, device=(1, 3)),
        entry("dev/loop0", tarfile.BLKTYPE, mode=0o660, gid=6, device=(7, 0)),
        entry("dev/fifo", tarfile.FIFOTYPE, mode=0o600, mtime=1_500_000_000),
        entry("usr/bin/dated", data=b"old times", mtime=1_000_000_000),
    ],
    [
        entry("etc/os-release", data=b"ID=top\n"),
        entry("etc/.wh.shadow"),
        entry("var/cache/.wh..wh..opq"),
        entry("var/cache/new", data=b"new"),
        entry("opt/thing", data=b"now a file"),  # a directory replaced by a file
        entry("srv/file/", D, mode=0o750),
        entry("srv/file/inside", data=b"in"),  # and a file by a directory
        entry("home/.wh.old"),
        entry("home/user/", D, mode=0o755, uid=1000, gid=100),
        entry("usr/bin/second", H, link="usr/bin/hard"),
    ],
]


def _blob(layout: Path, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs/sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def oci_image(layout: Path, layers: list[bytes]) -> None:
    (layout / "blobs/sha256").mkdir(parents=True)
    diff_ids = [f"sha256:{hashlib.sha256(layer).hexdigest()}" for layer in layers]
    config = {"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    manifest_type = "application/vnd.oci.image.manifest.v1+json"
    config_blob = _blob(layout, json.dumps(config).encode())
    layer_blobs = [_blob(layout, gzip.compress(layer, mtime=0)) for layer in layers]
    manifest = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_blob},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **blob} for blob in layer_blobs],
    }
    reference = {
        "mediaType": manifest_type,
        **_blob(layout, json.dumps(manifest).encode()),
        "annotations": {"org.opencontainers.image.ref.name": "test"},
    }
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [reference]}))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')


def describe(root: Path) -> dict[str, tuple]:
    """Every path: type, mode, owner, device, time, link target or content, and which paths share its inode."""
    inodes: dict[int, list[str]] = {}
    found = {}
    for directory, names, files in os.walk(root):
        for name in names + files:
            path = Path(directory, name)
            info = path.lstat()
            relative = str(path.relative_to(root))
            inodes.setdefault(info.st_ino, []).append(relative)
            content = os.readlink(path) if stat.S_ISLNK(info.st_mode) else (
                path.read_bytes() if stat.S_ISREG(info.st_mode) else b"")  # fmt: skip
            found[relative] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid,
                               info.st_rdev, int(info.st_mtime), content, info.st_ino)  # fmt: skip
    return {path: (*values[:-1], tuple(sorted(inodes[values[-1]]))) for path, values in found.items()}


def test_layers_apply_exactly_as_umoci_unpacks_them(tmp_path):
    layers = [tar(entries) for entries in LAYERS]
    oci_image(tmp_path / "layout", layers)
    subprocess.run(["umoci", "unpack", "--image", f"{tmp_path / 'layout'}:test", str(tmp_path / "bundle")],
                   check=True, capture_output=True)  # fmt: skip
    ours = tmp_path / "ours"
    apply_layers(ours, (io.BytesIO(gzip.compress(layer)) for layer in layers))
    theirs, mine = describe(tmp_path / "bundle/rootfs"), describe(ours)
    assert mine == theirs
    assert "etc/shadow" not in mine and "home/old" not in mine
    assert sorted(path for path in mine if path.startswith("var/cache/")) == ["var/cache/new"]
    assert mine["usr/bin/second"][-1] == ("usr/bin/hard", "usr/bin/second", "usr/bin/tool")


@pytest.mark.parametrize(
    "entries",
    [
        [entry("../escape", data=b"x")],
        [entry("a/../../escape", data=b"x")],
        [entry("link", L, link="/etc"), entry("link/passwd", data=b"owned")],
        [entry("hard", H, link="missing")],
    ],
)
def test_layers_that_would_leave_the_root_are_refused(tmp_path, entries):
    with pytest.raises(LayerError):
        apply_layer(tmp_path / "root", io.BytesIO(tar(entries)))
    assert not Path("/etc/passwd").read_bytes().startswith(b"owned")


def zstd(data: bytes) -> bytes:
    return subprocess.run(["zstd", "-q", "-c", "-3"], input=data, capture_output=True, check=True).stdout


def test_zstd_layers_apply_as_their_gzip_twins(tmp_path):
    """Docker and podman push zstd layers (`application/vnd.oci.image.layer.v1.tar+zstd`): read by the zstd tool."""
    layers = [tar(entries) for entries in LAYERS]
    apply_layers(tmp_path / "gzip", (io.BytesIO(gzip.compress(layer)) for layer in layers))
    apply_layers(tmp_path / "zstd", (io.BytesIO(zstd(layer)) for layer in layers))
    assert describe(tmp_path / "zstd") == describe(tmp_path / "gzip")


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda blob: blob[: len(blob) // 2], "zstd stream is corrupt or truncated"),
        (lambda blob: blob[:8] + bytes(b ^ 0x5A for b in blob[8:40]) + blob[40:], "zstd stream is corrupt"),
        (lambda blob: b"LZ4\x18" + os.urandom(600), "compressed other than with gzip, xz, bzip2 or zstd"),
    ],
)
def test_a_damaged_or_unknown_layer_is_refused_with_its_reason(tmp_path, damage, reason):
    blob = zstd(tar([entry("etc/", D), entry("etc/big", data=os.urandom(200_000))]))
    with pytest.raises(LayerError, match=reason):
        apply_layer(tmp_path / "root", io.BytesIO(damage(blob)))


COMPRESSORS = {"gzip": gzip.compress, "xz": lzma.compress, "bzip2": bz2.compress, "zstd": zstd}


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_every_compression_applies_alike_and_its_damage_is_refused_by_name(tmp_path, kind):
    layers = [tar(entries) for entries in LAYERS]
    apply_layers(tmp_path / "plain", (io.BytesIO(layer) for layer in layers))
    apply_layers(tmp_path / kind, (io.BytesIO(COMPRESSORS[kind](layer)) for layer in layers))
    assert describe(tmp_path / kind) == describe(tmp_path / "plain")
    blob = COMPRESSORS[kind](tar([entry("etc/", D), entry("etc/big", data=os.urandom(200_000))]))
    for damaged in (blob[: len(blob) // 2], blob[:12] + bytes(b ^ 0x5A for b in blob[12:60]) + blob[60:]):
        with pytest.raises(LayerError, match=f"{kind} stream is corrupt"):
            apply_layer(tmp_path / "damaged", io.BytesIO(damaged))


def test_a_directory_replaced_by_a_symlink_is_not_written_through(tmp_path):
    """Parents already looked at are remembered within a layer: until the layer replaces one."""
    entries = [entry("a/", D), entry("a/one", data=b"1"), entry("a", L, link="/tmp"), entry("a/two", data=b"owned")]
    with pytest.raises(LayerError, match="goes through the symlink a"):
        apply_layer(tmp_path / "root", io.BytesIO(tar(entries)))
    with pytest.raises(LayerError, match="which is not a directory"):
        apply_layer(tmp_path / "file", io.BytesIO(tar([entry("a", data=b"x"), entry("a/b", data=b"y")])))


def test_a_whiteout_creates_nothing(tmp_path):
    apply_layer(tmp_path, io.BytesIO(tar([entry("gone/deeper/.wh.thing"), entry("none/.wh..wh..opq")])))
    assert list(tmp_path.iterdir()) == []


def test_a_hard_link_to_a_symlink_links_the_symlink_not_what_it_points_to(tmp_path):
    outside = tmp_path / "outside"
    outside.write_text("host file")
    root = tmp_path / "root"
    apply_layer(root, io.BytesIO(tar([entry("evil", L, link=str(outside))])))
    apply_layer(root, io.BytesIO(tar([entry("x", H, link="evil")])))
    assert (root / "x").is_symlink() and os.readlink(root / "x") == str(outside)
    assert outside.stat().st_nlink == 1


def test_a_whiteout_under_a_directory_the_layer_then_replaces_with_a_symlink_deletes_nothing_outside(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("keep me")
    root = tmp_path / "root"
    apply_layer(root, io.BytesIO(tar([entry("d/", D), entry("d/victim", data=b"lower")])))
    apply_layer(root, io.BytesIO(tar([entry("d/.wh.victim"), entry("d", L, link=str(outside))])))
    assert (root / "d").is_symlink()
    assert (outside / "victim").read_text() == "keep me"


def test_a_directory_the_layer_wrote_into_and_then_replaced_by_a_file_ends_a_file(tmp_path):
    """The later entry wins: tar writes what came before, the directory is removed, the file written. The layer's
    own root entry (`./`) leaves the target's root as it is."""
    root = tmp_path / "root"
    root.mkdir(mode=0o755)
    entries = [entry("./", D, mode=0o700), entry("a/", D), entry("a/x", data=b"x"), entry("a", data=b"now a file"),
               entry("b/", D, mtime=1_200_000_000), entry("b/c", data=b"c")]  # fmt: skip
    apply_layer(root, io.BytesIO(tar(entries)))
    assert (root / "a").read_bytes() == b"now a file"
    assert int((root / "b").stat().st_mtime) == 1_200_000_000  # set again after the directory's removal
    assert stat.S_IMODE(root.stat().st_mode) == 0o755


def header_edited(blob: bytes, offset: int, **fields: bytes) -> bytes:
    """`blob` with the tar header at `offset` changed (`kind`, `size`, `name`) and its checksum made right again."""
    header = bytearray(blob[offset : offset + 512])
    places = {"name": (0, 100), "size": (124, 136), "kind": (156, 157)}
    for field, value in fields.items():
        start, end = places[field]
        header[start:end] = value.ljust(end - start, b"\0")
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return blob[:offset] + bytes(header) + blob[offset + 512 :]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda blob: blob[:1500], "ends in the middle of 'etc/big'"),
        (lambda blob: blob[:520] + b"\x01" + blob[521:], "not a tar archive"),  # the second header's checksum
        (lambda blob: header_edited(blob, 512, kind=b"S"), "a kind container layers do not have"),  # GNU sparse
        (lambda blob: header_edited(blob, 512, kind=b"2", size=b"00000000012"), "carries no data, yet says it has 10"),
        (lambda blob: header_edited(blob, 512, kind=b"D"), "a kind container layers do not have"),  # GNU dump dir
    ],
)
def test_a_tar_whose_headers_another_reader_could_read_otherwise_is_refused(tmp_path, damage, reason):
    """Python reads the headers and tar writes the files: any entry two tar readers might cut differently (a sparse
    file, a link with data, a header whose checksum is wrong) is refused before tar sees it."""
    blob = tar([entry("etc/", D), entry("etc/big", data=os.urandom(5000)), entry("etc/last", data=b"last")])
    with pytest.raises(LayerError, match=reason):
        apply_layer(tmp_path / "root", io.BytesIO(damage(blob)))
    assert not (tmp_path / "root/etc/last").exists()


NAME_PART = st.text(alphabet="abcé-_.", min_size=1, max_size=120).filter(lambda part: part not in (".", ".."))
MEMBER = st.tuples(
    st.lists(NAME_PART, min_size=1, max_size=5).map("/".join),  # over 100 bytes: a pax or GNU long-name header
    st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE]),
    st.integers(0, 3000),
    st.lists(NAME_PART, min_size=1, max_size=4).map("/".join),
)


LONG = [("d/" + "n" * 150, tarfile.REGTYPE, 700, ""), ("l" * 120, tarfile.SYMTYPE, 0, "t" * 130),
        ("é/" + "h" * 110, tarfile.LNKTYPE, 0, "d/" + "n" * 150)]  # fmt: skip


@settings(max_examples=60, deadline=None, database=None, derandomize=True)
@given(members=st.lists(MEMBER, max_size=12), form=st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT]))
@example(members=LONG, form=tarfile.GNU_FORMAT)
@example(members=LONG, form=tarfile.PAX_FORMAT)
def test_the_header_reader_cuts_a_tar_where_tarfile_does_and_hands_on_every_byte(members, form):
    """The entries Python checks are the entries tar writes: the same names, kinds, sizes and links as tarfile reads,
    and the bytes handed on are the archive's own, up to its end marker."""
    from images.tarstream import TarReader

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=form) as archive:
        for name, kind, size, link in members:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
            info.size = size if kind == tarfile.REGTYPE else 0
            archive.addfile(info, io.BytesIO(bytes(info.size)) if kind == tarfile.REGTYPE else None)
    blob = raw.getvalue()
    handed: list[bytes] = []
    reader = TarReader(io.BytesIO(blob), lambda data: handed.append(bytes(data)))
    seen = []
    while (member := reader.next()) is not None:
        seen.append((member.name, member.kind, member.size, member.link))
        reader.keep()
    reader.flush()
    with tarfile.open(fileobj=io.BytesIO(blob)) as archive:
        expected = [(info.name, info.type, info.size, info.linkname) for info in archive]
    assert [(name.rstrip("/"), kind, size, link) for name, kind, size, link in seen] == expected
    kept = b"".join(handed)
    assert blob.startswith(kept) and not blob[len(kept) :].strip(b"\0")


def test_what_tar_cannot_write_fails_the_layer_with_tars_reason(tmp_path):
    entries = [entry("etc/", D), entry("etc/" + "n" * 300, data=b"a name longer than a filesystem allows")]
    with pytest.raises(LayerError, match=r"tar could not apply the layer: .*File name too long"):
        apply_layer(tmp_path / "root", io.BytesIO(tar(entries)))
