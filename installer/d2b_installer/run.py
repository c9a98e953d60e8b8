"""The install, stage by stage: config, disk, image, configure, bootloader, then `done` or `failed` with the log tail.

What the boot environment's /init does afterwards is written to /run/d2b-next: `reboot` after an install, `stop`
when the host is in debug mode or the install failed (the console keeps the log; the operator decides). The events
that decide what the host's next PXE boot does (the bootloader is being written, done, failed) are retried with
backoff for `d2b.report_wait` seconds (10 minutes by default), each try shown on the console.
"""

import time
from pathlib import Path

from d2b_installer import bootloader, configure, disk, firstboot, image, network, rootfs, secureboot
from d2b_installer.portal import Portal, kernel_arguments
from d2b_installer.shell import log, log_tail
from images.registry import RegistryClient

NEXT = Path("/run/d2b-next")
MiB = 1 << 20
REPORT_WAIT = 600.0


def _check(config: dict[str, str]) -> None:
    """Refuse a config that cannot be installed before the disk is touched."""
    kind = config.get("IMAGE_TYPE", "")
    if kind == "docker":
        missing = [name for name in ("REGISTRY_URL", "IMAGE_REPOSITORY") if not config.get(name)]
    elif kind == "file":
        missing = [name for name in ("IMAGE_URL",) if not config.get(name)]
    else:
        raise RuntimeError(f"the config names no installable image (type {kind!r}): give the host an image")
    if config.get("SECURE_BOOT") == "true" and config.get("UEFI") != "true":
        raise RuntimeError("the host boots with Secure Boot, which needs UEFI, and its image is not set to UEFI")
    if missing:
        raise RuntimeError(f"the config lacks {', '.join('D2B_' + name for name in missing)} for a {kind} image")


def _config(portal: Portal, arguments: dict[str, str]) -> dict[str, str]:
    """The host's config, fetched saying how this installer was booted (the build records it), and checked."""
    facts = {"chain": arguments.get("d2b.chain") or "ipxe", "secure_boot": "1" if secureboot.enabled() else "0"}
    log(f"booted by {facts['chain']}, Secure Boot {'on' if facts['secure_boot'] == '1' else 'off'}")
    config = portal.config(facts)
    _check(config)
    return config


def install(portal: Portal, arguments: dict[str, str], stage: list[str]) -> dict[str, str]:
    started = time.monotonic()
    config = _config(portal, arguments)
    secure_boot = config.get("SECURE_BOOT") == "true"
    network.resolver(config.get("DNS_SERVERS", "").split(), config.get("DOMAIN", ""), keep=True)  # for the registry
    if config["IMAGE_TYPE"] == "docker":  # what to pull, and whether it can be read, before the disk is touched
        client = RegistryClient(
            config["REGISTRY_URL"], username=config.get("REGISTRY_USERNAME", ""),
            password=config.get("REGISTRY_PASSWORD", ""), timeout=60,
        )  # fmt: skip
        digest, layers = image.docker_layers(
            client=client, repository=config["IMAGE_REPOSITORY"],
            reference=config.get("IMAGE_DIGEST") or config["IMAGE_TAG"],
        )  # fmt: skip
    portal.event("config", 100, f"config for {config['FQDN']}: {config['IMAGE']} {config['IMAGE_VERSION']}")

    stage[0] = "disk"
    size = int(config.get("IMAGE_SIZE") or 0)
    layout, root = _partition(portal, config, arguments.get("d2b.disk", ""), needed_mib=2 * size // MiB)

    stage[0] = "image"
    portal.event("image", 0, f"laying {config['IMAGE_TYPE']} image {config['IMAGE']}:{config['IMAGE_VERSION']}")

    def report(percent: int, message: str) -> None:
        portal.event("image", percent, message)

    if config["IMAGE_TYPE"] == "docker":
        image.lay_docker(root=root, client=client, repository=config["IMAGE_REPOSITORY"], layers=layers,
                         report=report)  # fmt: skip
    else:
        digest = image.lay_file(root=root, url=config["IMAGE_URL"], digest=config.get("IMAGE_DIGEST", ""),
                                size=size, report=report)  # fmt: skip
    with rootfs.system(root):
        configure.run_script(root, "main script", config.get("MAIN_SCRIPT", ""))
    bootloader.check_bootable(root, secure_boot=secure_boot)
    portal.event("image", 100, f"image laid: {digest}")

    stage[0] = "configure"
    extra = configure.write(root, config, layout)
    if config.get("BOOTED_URL"):
        firstboot.install(root, config["BOOTED_URL"], digest)
    with rootfs.system(root):
        configure.run_script(root, "post script", config.get("POST_SCRIPT", ""))
        configure.host_keys(root)
        bootloader.initramfs(root, rebuild=arguments.get("d2b.initramfs") == "rebuild")
    portal.event("configure", 100, f"hostname, fstab, network, identity, initramfs written for {config['FQDN']}")

    stage[0] = "bootloader"
    # From here the disk may boot on its own; the portal must know that before, so that a lost `done` can never
    # make this host install again (its next PXE boot goes to the disk).
    wait = report_wait(arguments)
    if not portal.deliver("bootloader", 0, bootloader.kind(layout, secure_boot=secure_boot), within=wait):
        raise RuntimeError("the portal did not take the bootloader event; stopping before the disk can boot")
    bootloader.install(root, layout, " ".join([config.get("KOPTS", ""), *extra]), secure_boot=secure_boot)
    disk.release(layout)
    if not portal.deliver("done", 100, f"installed in {time.monotonic() - started:.0f} s", within=wait):
        log("done was not heard; rebooting anyway: the portal sends this host to its disk and marks it unconfirmed")
    return config


def _partition(portal: Portal, config: dict[str, str], hint: str, *, needed_mib: int) -> tuple[disk.Layout, Path]:
    """The install disk chosen (`d2b.disk`, else the first), partitioned, formatted as the config says and mounted:
    its layout and the root mount point."""
    target = disk.choose_disk(hint)
    portal.event("disk", 0, f"partitioning {target}")
    layout = disk.prepare(
        disk=target,
        gpt=config.get("GPT") == "true",
        uefi=config.get("UEFI") == "true",
        lvm=config.get("VOLMGT") == "lvm",
        hostname=config["HOSTNAME"],
        needed_mib=needed_mib,
    )
    root = disk.mount(layout)
    portal.event("disk", 100, f"{target}: {', '.join(f'{fs.mountpoint} {fs.device}' for fs in layout.filesystems)}")
    return layout, root


def report_wait(arguments: dict[str, str]) -> float:
    """How long a must-deliver event is retried: `d2b.report_wait=<seconds>`, else 10 minutes."""
    try:
        return max(0.0, float(arguments.get("d2b.report_wait", "")))
    except ValueError:
        return REPORT_WAIT


def main(cmdline: Path = Path("/proc/cmdline")) -> int:
    arguments = kernel_arguments(cmdline.read_text())
    stage = ["config"]
    portal: Portal | None = None
    NEXT.write_text("stop\n")
    try:
        network.bring_up(arguments)
        portal = Portal(arguments["d2b.config"])
        config = install(portal, arguments, stage)
    except Exception as error:  # every failure ends the build with its reason and the log tail
        log(f"FAILED at {stage[0]}: {type(error).__name__}: {error}")
        if portal is not None:
            portal.deliver("failed", None, f"{stage[0]}: {error}\n\n{log_tail()}", within=report_wait(arguments))
        return 1
    NEXT.write_text("stop\n" if config.get("DEBUG") == "true" else "reboot\n")
    return 0
