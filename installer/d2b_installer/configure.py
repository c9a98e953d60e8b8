"""The installed system's identity: hostname, /etc/hosts, fstab, network, resolver, root password, SSH keys; and
what makes it this host's own rather than the image's: a machine-id, SSH host keys and a random seed of its own."""

from pathlib import Path

from d2b_installer import network, rootfs
from d2b_installer.disk import Layout, fstab
from d2b_installer.shell import log

# Per-machine state an image may carry from where it was built: removed, so no two hosts share it.
MACHINE_STATE = (
    "var/lib/systemd/random-seed",
    "var/lib/urandom/random-seed",
    "var/lib/systemd/credential.secret",
)


def _root_password(root: Path, password_hash: str) -> None:
    # The portal validates the hash; a field separator or a line break would still rewrite more than root's password.
    if any(character in password_hash for character in ":\n\r"):
        raise ValueError("the root password hash holds ':' or a line break; refusing to write /etc/shadow")
    shadow = root / "etc/shadow"
    if not shadow.exists():
        log("no /etc/shadow in the image: root password not set")
        return
    lines = shadow.read_text().splitlines()
    lines = [
        ":".join(["root", password_hash, *line.split(":")[2:]]) if line.startswith("root:") else line for line in lines
    ]
    shadow.write_text("\n".join(lines) + "\n")


def _authorized_keys(root: Path, keys: str) -> None:
    directory = root / "root/.ssh"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / "authorized_keys"
    path.write_text(keys.strip() + "\n")
    path.chmod(0o600)


def write(root: Path, config: dict[str, str], layout: Layout) -> list[str]:
    """Write the host's files into the image; returns kernel options the network configuration relies on."""
    hostname, fqdn = config["HOSTNAME"], config.get("FQDN") or config["HOSTNAME"]
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc/hostname").write_text(hostname + "\n")
    address = config.get("IPV4") or "127.0.1.1"
    (root / "etc/hosts").write_text(
        f"127.0.0.1\tlocalhost\n{address}\t{fqdn} {hostname}\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
    )
    (root / "etc/fstab").write_text(fstab(layout))
    extra = network.write_config(root, config)
    if config.get("ROOT_PASSWORD_HASH"):
        _root_password(root, config["ROOT_PASSWORD_HASH"])
    if config.get("SSH_AUTHORIZED_KEYS"):
        _authorized_keys(root, config["SSH_AUTHORIZED_KEYS"])
    _machine_identity(root)
    log(f"configured {fqdn}")
    return extra


def _machine_identity(root: Path) -> None:
    """An empty /etc/machine-id (systemd makes one at first boot: `ConditionFirstBoot` units run) and no state of
    the machine the image was built on."""
    (root / "etc/machine-id").write_text("")
    dbus = root / "var/lib/dbus/machine-id"
    if dbus.exists() and not dbus.is_symlink():  # Debian links it to /etc/machine-id; an old copy would differ
        dbus.unlink()
    for relative in MACHINE_STATE:
        path = root / relative
        if path.exists() and not path.is_symlink():
            path.unlink()


def host_keys(root: Path) -> None:
    """SSH host keys of this host's own (run within `rootfs.system`): the image's are removed and the image's
    `ssh-keygen -A` makes new ones here, on the host, from its kernel's random source. An image without OpenSSH
    keeps none."""
    directory = root / "etc/ssh"
    removed = sorted(path.name for path in directory.glob("ssh_host_*")) if directory.is_dir() else []
    for name in removed:
        (directory / name).unlink()
    keygen = rootfs.has(root, "/usr/bin/ssh-keygen", "/bin/ssh-keygen")
    if keygen is None:
        log(f"no ssh-keygen in the image: {len(removed)} image host key files removed, none made")
        return
    rootfs.chroot(root, keygen, "-A")
    log(f"SSH host keys made for this host ({len(removed)} image key files removed)")


def run_script(root: Path, name: str, script: str) -> None:
    """An image's main or post script, run inside the installed system (within `rootfs.system`; it needs a shell)."""
    if not script.strip():
        return
    if rootfs.inside(root, "/bin/sh") is None:
        raise RuntimeError(f"the image has a {name} but no /bin/sh to run it")
    rootfs.chroot(root, "/bin/sh", "-e", "-c", script)
