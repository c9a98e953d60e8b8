"""A host's effective settings: BootDefaults → site → image → host, the later winning (the original's "last value")."""

from dataclasses import dataclass

from hosts.addressing import dns_servers
from hosts.models import Host, Interface, Site, Subnet
from images.choices import ImageType
from images.models import Image, ImageVersion, version_of_image_error
from provisioning.catalogue.selectors import Catalogue
from provisioning.models import PxeMenu


@dataclass(frozen=True)
class HostSettings:
    host: Host
    interface: Interface | None  # the boot NIC
    site: Site | None
    subnet: Subnet | None
    image: Image | None
    version: ImageVersion | None
    boot_version: ImageVersion | None
    menu: PxeMenu | None
    gpt: bool
    kexec: bool
    uefi: bool
    secure_boot: bool  # the host's, else its site's: shim → signed GRUB → signed kernel, from PXE to the disk
    debug: bool
    volmgt: str
    kopts: str  # the boot image's, then the image's, then the host's
    domain: str
    dns_servers: list[str]
    ntp_servers: list[str]
    file_uri: str
    registry: str

    @property
    def image_label(self) -> str:
        if self.image is None:
            return "none"
        return f"{self.image.name}:{self.version.version if self.version else 'no version'}"


def _first_given(*values: object) -> object:
    return next((value for value in values if value not in (None, "")), None)


def host_settings(
    *, host: Host, interface: Interface | None, catalogue: Catalogue, version_id: int | None = None
) -> HostSettings:
    """Resolve what `host` installs and boots with. `version_id` overrides the image version (a manual choice)."""
    defaults = catalogue.defaults
    site = catalogue.sites.get(host.site_id) if host.site_id else None
    chosen = catalogue.versions.get(version_id) if version_id else None
    image: Image | None = None
    version: ImageVersion | None = None
    if chosen is not None:
        image, version = catalogue.images_by_id.get(chosen.image_id), chosen
    else:
        image_id = host.image_id or (site.image_id if site is not None else None)
        image = catalogue.images_by_id.get(image_id) if image_id else None
        if image is not None:
            pinned = catalogue.versions.get(host.image_version_id) if host.image_version_id else None
            version = pinned if pinned and not version_of_image_error(image, pinned) else catalogue.latest(image)
    boot_version_id = _first_given(
        host.boot_version_id,
        image.boot_version_id if image else None,
        site.boot_version_id if site else None,
        defaults.boot_version_id,
    )
    boot_version = catalogue.versions.get(boot_version_id) if isinstance(boot_version_id, int) else None
    menu_id = _first_given(host.pxe_menu_id, site.pxe_menu_id if site else None, defaults.pxe_menu_id)
    subnet = interface.subnet if interface is not None and interface.subnet_id else None
    kopts = " ".join(
        text
        for text in [boot_version.image.kopts if boot_version else "", image.kopts if image else "", host.kopts]
        if text
    )
    subnet_site = catalogue.sites.get(subnet.site_id) if subnet is not None else None
    dns = dns_servers(
        subnet.dns_servers if subnet else "", subnet_site.dns_servers if subnet_site else "",
        site.dns_servers if site else "",
    )  # fmt: skip
    return HostSettings(
        host=host,
        interface=interface,
        site=site,
        subnet=subnet,
        image=image,
        version=version,
        boot_version=boot_version,
        menu=catalogue.menus.get(menu_id) if isinstance(menu_id, int) else None,
        gpt=bool(_first_given(host.gpt, image.gpt if image else None)),
        kexec=bool(_first_given(host.kexec, image.kexec if image else None)),
        uefi=bool(image.uefi) if image else False,
        secure_boot=host.secure_boot_with(site),
        debug=host.debug or bool(image and image.debug),
        volmgt=str(_first_given(host.volmgt, image.volmgt if image else None) or ""),
        kopts=kopts,
        domain=(site.domain if site and site.domain else defaults.domain),
        dns_servers=dns,
        ntp_servers=[server.strip() for server in (site.ntp_servers if site else "").split(",") if server.strip()],
        file_uri=site.file_uri if site else "",
        registry=str(_first_given(image.registry if image else None, site.registry if site else None) or ""),
    )


def boot_file_urls(*, settings: HostSettings, portal: str) -> tuple[str, str] | None:
    """Kernel and initrd URLs of the host's boot environment: stored files, explicit URLs or the site's file server."""
    boot = settings.boot_version
    if boot is None:
        return None
    name = f"{boot.image.name}/{boot.version}"
    kernel = f"{portal}/files/boot/{name}/kernel" if boot.kernel else boot.kernel_url
    initrd = f"{portal}/files/boot/{name}/initrd" if boot.initrd else boot.initrd_url
    if settings.file_uri:
        base = f"{settings.file_uri.rstrip('/')}/{boot.image.name}-{boot.version}"
        kernel, initrd = kernel or f"{base}/kernel", initrd or f"{base}/initrd"
    return (kernel, initrd) if kernel and initrd else None


def install_problem(settings: HostSettings) -> str | None:
    """Why this host cannot install with these settings, in one line for an operator; None when it can.

    Every way into build mode refuses a host with a problem, and the boot path never offers such a host an install.
    """
    image, version = settings.image, settings.version
    if settings.interface is None:
        return "the host has no network interface"
    if image is None:
        return "the host has no image (neither its own nor its site's)"
    if version is None:
        return f"image {image.name} has no version"
    if image.type == ImageType.DOCKER and not settings.registry:
        return f"image {image.name} is a docker image and neither it nor the site names a registry"
    if image.type == ImageType.FILE and not (version.file or image.file_url or settings.file_uri):
        return f"image {image.name} {version.version} has no stored file and no file server is set (image or site)"
    if boot_file_urls(settings=settings, portal="") is None:
        return "no boot environment is set (host, image, site or boot defaults)"
    if settings.secure_boot and not settings.uefi:
        return f"the host boots with Secure Boot, which needs UEFI, and image {image.name} is not set to UEFI"
    return None
