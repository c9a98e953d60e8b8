"""The installer's pieces on this machine: config parsing, progress, streamed file images, network files, kernels."""

import functools
import hashlib
import http.server
import io
import os
import subprocess
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from d2b_installer import bootloader, network, secureboot
from d2b_installer.image import BlobReader, Prefetch, Progress, lay_file
from d2b_installer.portal import Portal, kernel_arguments, parse_env
from images.efi import signature
from images.registry import RegistryError, Verified
from provisioning.builds.render import config_env
from tests.services import free_port

NASTY = 'it\'s $(reboot) `id` \\ "quoted"\nsecond line; rm -rf /'


def test_the_env_config_reads_back_exactly_whatever_it_holds():
    document = {
        "build_id": 7, "events_url": "http://portal/config/T/events", "booted_url": "http://portal/booted/R",
        "hostname": "web01", "fqdn": "web01.example.com",
        "domain": "example.com", "site": "ams1", "dns_servers": ["10.0.0.2", "10.0.0.3"], "ntp_servers": [],
        "boot_hwaddr": "52:54:00:00:00:01", "ipv4": "10.0.0.5", "netmask": "255.255.255.0", "gateway": "10.0.0.1",
        "dhcp": False, "image": "debian", "image_version": "12", "image_type": "file",
        "image_source": {"url": "http://files/x.tar.gz", "digest": "sha256:" + "a" * 64, "size": 123},
        "registry": "", "file_uri": "", "gpt": True, "uefi": False, "kexec": False, "debug": False, "volmgt": "lvm",
        "secure_boot": False, "legacynet": False, "kopts": "console=ttyS0", "main_script": NASTY, "post_script": "",
        "secrets": {"root_password_hash": "$6$salt$hash", "ssh_authorized_keys": ["ssh-ed25519 AAA a@b", "k2"],
                    "registry_username": "", "registry_password": "p'w"},
        "interfaces": [{"name": "eth0", "mac": "52:54:00:00:00:01", "ip": "10.0.0.5", "netmask": "255.255.255.0",
                        "gateway": "10.0.0.1", "prefixlen": 24, "vlan": None, "dhcp": False, "primary": True}],
    }  # fmt: skip
    config = parse_env(config_env(document))
    assert config["MAIN_SCRIPT"] == NASTY
    assert config["ROOT_PASSWORD_HASH"] == "$6$salt$hash"
    assert config["SSH_AUTHORIZED_KEYS"] == "ssh-ed25519 AAA a@b\nk2"
    assert config["REGISTRY_PASSWORD"] == "p'w"
    assert (config["GPT"], config["DHCP"], config["VOLMGT"]) == ("true", "false", "lvm")
    assert (config["IF0_MAC"], config["IF0_PREFIXLEN"], config["IMAGE_SIZE"]) == ("52:54:00:00:00:01", "24", "123")


def test_kernel_arguments():
    arguments = kernel_arguments("initrd=initrd d2b.config=http://p/config/T BOOTIF=01-52-54-00-00-00-01 quiet")
    assert arguments["d2b.config"] == "http://p/config/T" and arguments["quiet"] == ""
    assert network.boot_mac(arguments) == "52:54:00:00:00:01"
    assert network.boot_mac({"BOOTIF": "52:54:00:00:00:01"}) == ""


def test_download_progress_is_reported_at_every_ten_percent_once():
    reported = []
    progress = Progress(1000, lambda percent, message: reported.append(percent))
    for chunk in [5, 95, 1, 3, 150, 46, 300, 400]:
        progress(chunk)
    assert reported == [10, 20, 30, 60, 100]  # cumulative 100, 254, 300, 600, 1000 bytes


class EventSink(http.server.BaseHTTPRequestHandler):
    """A portal's events endpoint that is away for its first `outage` posts (503), then takes them (201)."""

    outage = 0
    status = 201
    heard: list[bytes] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        EventSink.heard.append(body)
        away = len(EventSink.heard) <= EventSink.outage
        self.send_response(503 if away else EventSink.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def event_sink():
    EventSink.outage, EventSink.status, EventSink.heard = 0, 201, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EventSink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    portal = Portal("http://127.0.0.1/config/T")
    portal.events_url = f"http://127.0.0.1:{server.server_address[1]}/config/T/events"
    yield portal
    server.shutdown()


def test_a_must_hear_event_is_retried_with_backoff_until_the_portal_is_back(event_sink, capsys):
    EventSink.outage = 4
    assert event_sink.deliver("done", 100, "installed", within=30, pause=0.02)
    assert len(EventSink.heard) == 5
    console = capsys.readouterr().err
    assert console.count("done not delivered (portal error 503") == 4
    assert "try 2 in 0 s" in console and "giving up in" in console


def test_a_must_hear_event_gives_up_after_its_bound(event_sink, capsys):
    EventSink.outage = 1000
    assert not event_sink.deliver("done", 100, "installed", within=0.5, pause=0.05)
    assert 3 <= len(EventSink.heard) <= 6  # 0.05 + 0.1 + 0.2 + ... within half a second
    assert "done NOT delivered after" in capsys.readouterr().err


def test_a_refusal_is_final(event_sink):
    EventSink.status = 403
    assert not event_sink.deliver("done", 100, "installed", within=30, pause=0.02)
    assert len(EventSink.heard) == 1


def test_an_unreachable_portal_is_retried_too(capsys):
    portal = Portal("http://127.0.0.1/config/T")
    portal.events_url = f"http://127.0.0.1:{free_port()}/config/T/events"
    assert not portal.deliver("bootloader", 0, "BIOS", within=0.3, pause=0.05)
    assert "Connection refused" in capsys.readouterr().err


@pytest.fixture
def file_server(tmp_path):
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _tarball(files: dict[str, bytes], mode: str) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode=mode) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return raw.getvalue()


@pytest.mark.parametrize("mode,suffix", [("w", "tar"), ("w:gz", "tar.gz"), ("w:xz", "tar.xz"), ("zst", "tar.zst")])
def test_a_file_image_is_streamed_onto_the_root_and_its_digest_checked(file_server, tmp_path, mode, suffix):
    served, url = file_server
    files = {"etc/os-release": b"ID=test\n", "opt/blob": bytes(range(256)) * 4096}
    if mode == "zst":
        data = subprocess.run(["zstd", "-q", "-c"], input=_tarball(files, "w"), capture_output=True, check=True).stdout
    else:
        data = _tarball(files, mode)
    (served / f"image.{suffix}").write_bytes(data)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    reports = []
    root = tmp_path / "root"
    root.mkdir()
    laid = lay_file(root=root, url=f"{url}/image.{suffix}", digest="", size=len(data),
                    report=lambda percent, message: reports.append(percent))  # fmt: skip
    assert laid == digest  # computed while reading when the portal recorded none: the first-boot report names it
    assert (root / "etc/os-release").read_bytes() == b"ID=test\n"
    assert reports[-1] == 100

    with pytest.raises(RegistryError, match="is corrupt"):
        lay_file(root=tmp_path / "other", url=f"{url}/image.{suffix}", digest="sha256:" + "0" * 64, size=len(data),
                 report=lambda percent, message: None)  # fmt: skip


def test_a_truncated_tarball_fails_with_its_digest_named(file_server, tmp_path):
    served, url = file_server
    data = _tarball({"opt/blob": bytes(range(256)) * 4096}, "w:gz")
    (served / "image.tar.gz").write_bytes(data[: len(data) // 2])
    (tmp_path / "root").mkdir()
    with pytest.raises(RegistryError, match="is corrupt") as failure:
        lay_file(root=tmp_path / "root", url=f"{url}/image.tar.gz", digest="sha256:" + hashlib.sha256(data).hexdigest(),
                 size=len(data), report=lambda percent, message: None)  # fmt: skip
    assert failure.value.__context__ is not None  # the tar reader's own error is kept


CONFIG = {
    "INTERFACES": "eth0 eth1", "DNS_SERVERS": "10.0.0.2", "DOMAIN": "example.com",
    "IF0_NAME": "eth0", "IF0_MAC": "52:54:00:00:00:01", "IF0_IP": "10.0.0.5", "IF0_NETMASK": "255.255.255.0",
    "IF0_GATEWAY": "10.0.0.1", "IF0_DHCP": "false",
    "IF1_NAME": "eth1", "IF1_MAC": "52:54:00:00:00:02", "IF1_DHCP": "true",
}  # fmt: skip


def test_networkd_images_get_files_matched_by_mac(tmp_path, monkeypatch):
    monkeypatch.setattr(network, "_nics", lambda: {})
    (tmp_path / "lib/systemd").mkdir(parents=True)
    (tmp_path / "lib/systemd/systemd-networkd").touch()
    (tmp_path / "etc").mkdir()
    assert network.write_config(tmp_path, CONFIG) == []
    first = (tmp_path / "etc/systemd/network/10-dock2box-0.network").read_text()
    assert "MACAddress=52:54:00:00:00:01" in first and "Address=10.0.0.5/24" in first and "Gateway=10.0.0.1" in first
    assert "DHCP=ipv4" in (tmp_path / "etc/systemd/network/10-dock2box-1.network").read_text()
    assert (tmp_path / "etc/systemd/system/multi-user.target.wants/systemd-networkd.service").is_symlink()
    assert (tmp_path / "etc/resolv.conf").read_text() == "search example.com\nnameserver 10.0.0.2\n"


def test_ifupdown_images_get_the_kernel_names_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(network, "_nics", lambda: {"52:54:00:00:00:01": "ens3", "52:54:00:00:00:02": "ens4"})
    (tmp_path / "sbin").mkdir()
    (tmp_path / "sbin/ifup").touch()
    (tmp_path / "etc").mkdir()
    assert network.write_config(tmp_path, CONFIG) == ["net.ifnames=0"]
    interfaces = (tmp_path / "etc/network/interfaces").read_text()
    assert "iface ens3 inet static\n    address 10.0.0.5/24\n    gateway 10.0.0.1" in interfaces
    assert "iface ens4 inet dhcp" in interfaces


def test_the_newest_kernel_and_its_own_initramfs_are_booted(tmp_path):
    boot = tmp_path / "boot"
    boot.mkdir()
    for name in ["vmlinuz-6.1.0-9-amd64", "vmlinuz-6.1.0-10-amd64", "initrd.img-6.1.0-9-amd64",
                 "initrd.img-6.1.0-10-amd64"]:  # fmt: skip
        (boot / name).touch()
    kernel, initrd = bootloader.kernel_files(tmp_path)
    assert kernel.name == "vmlinuz-6.1.0-10-amd64"  # compared as versions, not as text
    assert initrd is not None and initrd.name == "initrd.img-6.1.0-10-amd64"
    with pytest.raises(RuntimeError, match="no kernel in /boot"):
        bootloader.kernel_files(Path(tmp_path / "empty"))


@pytest.mark.parametrize("config,reason", [
    ({"IMAGE_TYPE": ""}, "names no installable image"),
    ({"IMAGE_TYPE": "docker", "IMAGE_REPOSITORY": "lab/x"}, "lacks D2B_REGISTRY_URL"),
    ({"IMAGE_TYPE": "file"}, "lacks D2B_IMAGE_URL"),
])  # fmt: skip
def test_a_config_without_an_installable_image_is_refused_before_the_disk(config, reason):
    from d2b_installer.run import _check

    with pytest.raises(RuntimeError, match=reason):
        _check(config)
    _check({"IMAGE_TYPE": "file", "IMAGE_URL": "http://files/x.tar.gz"})


class FakePortal:
    """Stands in for the portal's HTTP side in a test of the installer's control flow (named as a fake)."""

    events: list[tuple[str, int | None, str]]

    def __init__(self, config_url: str) -> None:
        FakePortal.events = []

    def event(self, stage: str, progress: int | None, message: str) -> None:
        FakePortal.events.append((stage, progress, message))

    def deliver(self, stage: str, progress: int | None, message: str, *, within: float) -> bool:
        self.event(stage, progress, message)
        return True


@pytest.mark.parametrize("outcome,debug,expected", [
    ("done", "true", "stop"), ("done", "false", "reboot"), ("error", "false", "stop"),
])  # fmt: skip
def test_after_the_install_the_machine_reboots_unless_debug_or_failed(tmp_path, monkeypatch, outcome, debug, expected):
    from d2b_installer import run

    def install(portal, arguments, stage):
        stage[0] = "image"
        if outcome == "error":
            run.log("$ tar something")
            raise OSError("No space left on device")
        return {"DEBUG": debug}

    monkeypatch.setattr(run, "NEXT", tmp_path / "d2b-next")
    (tmp_path / "cmdline").write_text("d2b.config=http://portal/config/T BOOTIF=01-52-54-00-00-00-01\n")
    monkeypatch.setattr(run.network, "bring_up", lambda arguments: "eth0")
    monkeypatch.setattr(run, "Portal", FakePortal)
    monkeypatch.setattr(run, "install", install)
    assert run.main(cmdline=tmp_path / "cmdline") == (1 if outcome == "error" else 0)
    assert (tmp_path / "d2b-next").read_text() == expected + "\n"
    if outcome == "error":
        [(stage, progress, message)] = FakePortal.events
        assert (stage, progress) == ("failed", None) and message.startswith("image: No space left on device")
        assert "$ tar something" in message  # the log tail


def test_the_boot_environment_resolver_comes_from_ipxe_else_from_the_config(tmp_path, monkeypatch):
    monkeypatch.setattr(network, "RESOLV", tmp_path / "resolv.conf")
    network.resolver([""], "")  # iPXE had no DNS server: nothing written
    assert not (tmp_path / "resolv.conf").exists()
    network.resolver(["10.0.0.2", "10.0.0.3"], "example.com", keep=True)
    assert (tmp_path / "resolv.conf").read_text() == "search example.com\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n"
    network.resolver(["10.9.9.9"], "", keep=True)  # one that works already (it reached the portal) is kept
    assert "10.9.9.9" not in (tmp_path / "resolv.conf").read_text()
    network.resolver(["10.9.9.9"], "")
    assert (tmp_path / "resolv.conf").read_text() == "nameserver 10.9.9.9\n"


def test_layers_of_an_unreadable_type_are_refused_from_the_manifest_alone():
    from d2b_installer.image import docker_layers

    class Registry:  # a stand-in for the registry client: manifests only (the installer asks before the disk)
        def manifest(self, repository, reference):
            return "application/vnd.oci.image.manifest.v1+json", "sha256:" + "9" * 64, {}

        def platform_manifest(self, repository, reference):
            assert reference == "sha256:" + "9" * 64  # the tag's digest is pinned for the rest of the install
            kinds = ["application/vnd.oci.image.layer.v1.tar+zstd", "application/vnd.oci.image.layer.v1.tar+lz4"]
            return {"layers": [{"digest": f"sha256:{n}" + "0" * 63, "size": 10, "mediaType": kind}
                               for n, kind in enumerate(kinds)]}  # fmt: skip

    with pytest.raises(RegistryError, match=r"cannot read: \['application/vnd.oci.image.layer.v1.tar\+lz4'\]"):
        docker_layers(client=Registry(), repository="lab/x", reference="v1")


@pytest.mark.parametrize("value", ["$6$s$h\nevil::0:0:99999:7:::", "$6$s$h:0:0", "$6$s$h\r"])
def test_the_installer_never_writes_a_hash_that_would_add_to_shadow(tmp_path, value):
    from d2b_installer.configure import _root_password

    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
    with pytest.raises(ValueError, match="refusing"):
        _root_password(tmp_path, value)
    assert (tmp_path / "etc/shadow").read_text() == "root:*:19000:0:99999:7:::\n"


def merged_usr_root(root: Path) -> Path:
    """A Debian-shaped root: /sbin → usr/sbin, /sbin/init → /lib/systemd/systemd (absolute, as Debian ships it)."""
    for directory in ("usr/sbin", "usr/lib/systemd", "boot", "etc/ssh", "var/lib/systemd", "var/lib/dbus"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    for merged in ("sbin", "lib", "bin"):
        (root / "usr" / merged).mkdir(exist_ok=True)
        (root / merged).symlink_to(f"usr/{merged}")
    (root / "usr/lib/systemd/systemd").write_text("")
    (root / "usr/sbin/init").symlink_to("/lib/systemd/systemd")
    (root / "boot/vmlinuz-6.1.0-28-cloud-amd64").write_text("kernel")
    return root


def test_paths_of_the_installed_system_resolve_inside_it(tmp_path):
    from d2b_installer import rootfs

    root = merged_usr_root(tmp_path / "root")
    assert rootfs.inside(root, "/sbin/init") == root / "usr/lib/systemd/systemd"
    (root / "usr/bin/escape").symlink_to("../../../../../../etc/passwd")  # `..` stops at the root's top
    assert rootfs.inside(root, "/bin/escape") is None
    (root / "usr/bin/loop").symlink_to("/bin/loop")
    assert rootfs.inside(root, "/bin/loop") is None
    assert rootfs.has(root, "/usr/bin/dracut", "/sbin/init") == "/sbin/init"


def test_an_image_that_cannot_boot_is_refused_naming_what_it_lacks(tmp_path):
    root = merged_usr_root(tmp_path / "root")
    with pytest.raises(RuntimeError, match=r"no initramfs for /boot/vmlinuz-6\.1\.0-28-cloud-amd64 and no tool"):
        bootloader.check_bootable(root, secure_boot=False)
    (root / "usr/sbin/update-initramfs").write_text("")
    bootloader.check_bootable(root, secure_boot=False)  # the tool makes the initramfs later
    (root / "usr/sbin/update-initramfs").unlink()
    (root / "boot/initrd.img-6.1.0-28-cloud-amd64").write_text("initrd")
    bootloader.check_bootable(root, secure_boot=False)
    (root / "usr/sbin/init").unlink()
    (root / "usr/lib/systemd/systemd").unlink()
    with pytest.raises(RuntimeError, match="no init"):
        bootloader.check_bootable(root, secure_boot=False)
    (root / "boot/vmlinuz-6.1.0-28-cloud-amd64").unlink()
    with pytest.raises(RuntimeError, match="no kernel"):
        bootloader.check_bootable(root, secure_boot=False)


def test_each_host_gets_an_identity_of_its_own(tmp_path, monkeypatch):
    from d2b_installer import configure, rootfs

    root = merged_usr_root(tmp_path / "root")
    (root / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    (root / "var/lib/dbus/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    (root / "var/lib/systemd/random-seed").write_bytes(os.urandom(512))
    for name in ("ssh_host_ed25519_key", "ssh_host_ed25519_key.pub", "ssh_host_rsa_key", "sshd_config"):
        (root / "etc/ssh" / name).write_text("image's")
    configure._machine_identity(root)
    assert (root / "etc/machine-id").read_text() == ""
    assert not (root / "var/lib/dbus/machine-id").exists() and not (root / "var/lib/systemd/random-seed").exists()

    made = []
    monkeypatch.setattr(rootfs, "chroot", lambda root, *command: made.append(command))
    configure.host_keys(root)  # no ssh-keygen in the image: the image's keys go, none are made
    assert sorted(path.name for path in (root / "etc/ssh").iterdir()) == ["sshd_config"] and made == []
    (root / "usr/bin/ssh-keygen").write_text("")
    configure.host_keys(root)
    assert made == [("/usr/bin/ssh-keygen", "-A")]


def test_the_initramfs_is_made_by_the_images_own_tool_unless_it_is_generic(tmp_path, monkeypatch):
    from d2b_installer import rootfs

    root = merged_usr_root(tmp_path / "root")
    ran = []
    monkeypatch.setattr(rootfs, "chroot", lambda root, *command: ran.append(command))
    (root / "usr/sbin/update-initramfs").write_text("")
    (root / "etc/initramfs-tools/conf.d").mkdir(parents=True)
    (root / "etc/initramfs-tools/initramfs.conf").write_text("MODULES=most\nCOMPRESS=zstd\n")
    bootloader.initramfs(root)  # none for the kernel: made
    (root / "boot/initrd.img-6.1.0-28-cloud-amd64").write_text("initrd")
    bootloader.initramfs(root)  # the image's, generic: kept
    bootloader.initramfs(root, rebuild=True)  # asked for
    (root / "etc/initramfs-tools/conf.d/host").write_text("MODULES='dep'\n")
    bootloader.initramfs(root)  # made for the build machine: made again
    tool, release = "/usr/sbin/update-initramfs", "6.1.0-28-cloud-amd64"
    assert ran == [(tool, "-c", "-k", release), (tool, "-u", "-k", release), (tool, "-u", "-k", release)]
    (root / "usr/sbin/update-initramfs").unlink()
    (root / "usr/bin/dracut").write_text("")
    bootloader.initramfs(root)
    assert ran[-1] == ("/usr/bin/dracut", "--force", "--no-hostonly", "--kver", release)


def verified(data: bytes, digest: str = "") -> Callable[[], Verified]:
    return functools.partial(Verified, io.BytesIO(data), digest)


def test_the_prefetch_hands_over_every_byte_of_each_blob_and_its_digest_check():
    blobs = [os.urandom(3 << 20) + b"tail", os.urandom(1000), b"third"]
    prefetch = Prefetch([verified(data, "sha256:" + hashlib.sha256(data).hexdigest()) for data in blobs],
                        chunk=100_000, depth=2)  # fmt: skip
    for data in blobs:
        blob = prefetch.next_blob()
        got = [blob.read(4), blob.read(1 << 20)]
        while chunk := blob.read(77_777):
            got.append(chunk)
        assert b"".join(got) == data
        blob.finish()  # the digest matches
    prefetch.stop()
    corrupt = Prefetch([verified(blobs[0], "sha256:" + "0" * 64)], chunk=100_000, depth=2)
    corrupt.next_blob().read(10)
    with pytest.raises(RegistryError, match="is corrupt"):
        BlobReader(corrupt.chunks).finish()  # reads the rest (the thread was blocked on a full queue) and compares
    corrupt.stop()


def test_the_next_layer_downloads_while_one_is_applied():
    opened = threading.Event()

    def second() -> Verified:
        opened.set()
        return Verified(io.BytesIO(b"second"), "")

    prefetch = Prefetch([verified(os.urandom(300_000)), second], chunk=100_000)
    first = prefetch.next_blob()
    first.read(10)  # the first layer is being applied...
    assert opened.wait(5)  # ...and the second is downloading
    first.finish()
    assert prefetch.next_blob().read(100) == b"second"
    prefetch.stop()


def test_a_download_that_breaks_breaks_the_reader():
    class Broken(io.BytesIO):
        def read(self, size=-1):
            if self.tell() >= 250_000:
                raise ConnectionResetError("the portal went away")
            return super().read(size)

    prefetch = Prefetch([functools.partial(Verified, Broken(os.urandom(1 << 20)), "")], chunk=100_000)
    blob = prefetch.next_blob()
    with pytest.raises(ConnectionResetError, match="went away"):
        while blob.read(1 << 20):
            pass
    prefetch.stop()


# Secure Boot -----------------------------------------------------------------------------------------------------


def test_signatures_are_read_from_the_pe_certificate_table():
    assert signature(Path(secureboot.GRUB)) == "Debian Secure Boot CA, Debian Secure Boot Signer 2022 - grub2"
    assert signature(Path(secureboot.SHIM)) == "a signature"  # Microsoft's, which names no "Secure Boot"
    for unsigned in [Path("/usr/lib/shim/shimx64.efi"), Path("/usr/lib/ipxe/ipxe.efi"), Path("/etc/hostname")]:
        assert signature(unsigned) is None


def _image_root(tmp_path: Path, kernel: Path) -> Path:
    root = tmp_path / "root"
    (root / "boot/efi").mkdir(parents=True)
    (root / "boot/vmlinuz-6.1.0-1-amd64").write_bytes(kernel.read_bytes())
    (root / "boot/initrd.img-6.1.0-1-amd64").write_bytes(b"initramfs")
    return root


def test_an_image_that_cannot_boot_under_secure_boot_is_refused_naming_what_it_lacks(tmp_path, monkeypatch):
    root = _image_root(tmp_path, Path("/usr/lib/ipxe/ipxe.efi"))  # a PE without a signature, standing for a kernel
    with pytest.raises(RuntimeError, match=r"kernel /boot/vmlinuz-6.1.0-1-amd64 is not signed"):
        secureboot.check(root, root / "boot/vmlinuz-6.1.0-1-amd64")
    signed = _image_root(tmp_path / "signed", Path(secureboot.GRUB))  # signed by Debian, standing for a kernel
    secureboot.check(signed, signed / "boot/vmlinuz-6.1.0-1-amd64")  # the boot environment's loaders stand in
    monkeypatch.setattr(secureboot, "SHIM", "/nonexistent/shimx64.efi.signed")
    with pytest.raises(RuntimeError, match=r"no signed loader .*/nonexistent/shimx64.efi.signed in neither the image"):
        secureboot.check(signed, signed / "boot/vmlinuz-6.1.0-1-amd64")


def test_the_esp_gets_shim_grub_beside_it_and_a_config_booting_the_kernel_by_uuid(tmp_path):
    root = _image_root(tmp_path, Path(secureboot.GRUB))
    own = root / secureboot.SHIM.lstrip("/")  # the image's own shim is taken before the boot environment's
    own.parent.mkdir(parents=True)
    own.write_bytes(b"the image's shim")
    kernel, initrd = bootloader.kernel_files(root)
    secureboot.install(root, kernel, initrd, "root=UUID=1234-abcd ro console=ttyS0 it's")
    esp = root / "boot/efi"
    assert (esp / "EFI/BOOT/BOOTX64.EFI").read_bytes() == b"the image's shim"
    assert (esp / "EFI/BOOT/grubx64.efi").read_bytes() == Path(secureboot.GRUB).read_bytes()
    assert (esp / "dock2box/vmlinuz").read_bytes() == kernel.read_bytes()
    config = (esp / "EFI/BOOT/grub.cfg").read_text()
    assert "linux /dock2box/vmlinuz 'root=UUID=1234-abcd' 'ro' 'console=ttyS0' 'it'\\''s'" in config
    assert "initrd /dock2box/initrd" in config
    checked = subprocess.run(["grub-script-check"], input=config, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    assert not (esp / "EFI/BOOT/fbx64.efi").exists()  # (shim's fallback would write boot entries and reboot)
