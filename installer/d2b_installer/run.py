"""The install, stage by stage: config, disk, image, configure, bootloader, then `done` or `failed` with the log tail.

What the boot environment's /init does afterwards is written to /run/d2b-next: `reboot` after an install, `stop`
when the host is in debug mode or the install failed (the console keeps the log; the operator decides).
"""

import time
from pathlib import Path

from d2b_installer import bootloader, configure, disk, image, network
from d2b_installer.portal import Portal, kernel_arguments
from d2b_installer.shell import log, log_tail
from images.registry import RegistryClient

NEXT = Path("/run/d2b-next")
MiB = 1 << 20


def _check(config: dict[str, str]) -> None:
    """Refuse a config that cannot be installed before the disk is touched."""
    kind = config.get("IMAGE_TYPE", "")
    if kind == "docker":
        missing = [name for name in ("REGISTRY_URL", "IMAGE_REPOSITORY") if not config.get(name)]
    elif kind == "file":
        missing = [name for name in ("IMAGE_URL",) if not config.get(name)]
    else:
        raise RuntimeError(f"the config names no installable image (type {kind!r}): give the host an image")
    if missing:
        raise RuntimeError(f"the config lacks {', '.join('D2B_' + name for name in missing)} for a {kind} image")


def install(portal: Portal, arguments: dict[str, str], stage: list[str]) -> dict[str, str]:
    started = time.monotonic()
    config = portal.config()
    _check(config)
    network.resolver(config.get("DNS_SERVERS", "").split(), config.get("DOMAIN", ""), keep=True)  # for the registry
    portal.event("config", 100, f"config for {config['FQDN']}: {config['IMAGE']} {config['IMAGE_VERSION']}")

    stage[0] = "disk"
    target = disk.choose_disk(arguments.get("d2b.disk", ""))
    portal.event("disk", 0, f"partitioning {target}")
    size = int(config.get("IMAGE_SIZE") or 0)
    layout = disk.prepare(
        disk=target,
        gpt=config.get("GPT") == "true",
        uefi=config.get("UEFI") == "true",
        lvm=config.get("VOLMGT") == "lvm",
        hostname=config["HOSTNAME"],
        needed_mib=2 * size // MiB,
    )
    root = disk.mount(layout)
    portal.event("disk", 100, f"{target}: {', '.join(f'{fs.mountpoint} {fs.device}' for fs in layout.filesystems)}")

    stage[0] = "image"
    portal.event("image", 0, f"laying {config['IMAGE_TYPE']} image {config['IMAGE']}:{config['IMAGE_VERSION']}")

    def report(percent: int, message: str) -> None:
        portal.event("image", percent, message)

    if config["IMAGE_TYPE"] == "docker":
        client = RegistryClient(
            config["REGISTRY_URL"], username=config.get("REGISTRY_USERNAME", ""),
            password=config.get("REGISTRY_PASSWORD", ""), timeout=60,
        )  # fmt: skip
        reference = config.get("IMAGE_DIGEST") or config["IMAGE_TAG"]
        image.lay_docker(root=root, client=client, repository=config["IMAGE_REPOSITORY"], reference=reference,
                         report=report)  # fmt: skip
    else:
        image.lay_file(root=root, url=config["IMAGE_URL"], digest=config.get("IMAGE_DIGEST", ""), size=size,
                       report=report)  # fmt: skip
    configure.run_script(root, "main script", config.get("MAIN_SCRIPT", ""))
    portal.event("image", 100, "image laid")

    stage[0] = "configure"
    extra = configure.write(root, config, layout)
    configure.run_script(root, "post script", config.get("POST_SCRIPT", ""))
    portal.event("configure", 100, f"hostname, fstab, network written for {config['FQDN']}")

    stage[0] = "bootloader"
    bootloader.install(root, layout, " ".join([config.get("KOPTS", ""), *extra]))
    disk.release(layout)
    portal.event("bootloader", 100, "UEFI (systemd-boot)" if layout.uefi else "BIOS (extlinux)")
    portal.event("done", 100, f"installed in {time.monotonic() - started:.0f} s")
    return config


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
            portal.event("failed", None, f"{stage[0]}: {error}\n\n{log_tail()}")
        return 1
    NEXT.write_text("stop\n" if config.get("DEBUG") == "true" else "reboot\n")
    return 0
