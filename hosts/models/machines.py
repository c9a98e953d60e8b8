"""Hosts, their BMCs and their network interfaces."""

import contextlib
import ipaddress
import re
from collections.abc import Sequence

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from dock2box.fields import MACAddressField
from dock2box.validators import (
    normalise_fqdn,
    normalise_server,
    validate_credential,
    validate_fqdn,
    validate_ifname,
    validate_safe_text,
    validate_server,
)
from hosts.addressing import IPAddress, is_network_or_broadcast, most_specific_subnet
from hosts.choices import BmcProtocol, HostStatus, PowerAction, PowerState
from hosts.models.sites import Site, in_domain, pxe_menu_field
from hosts.models.subnets import Subnet
from images.choices import ImageType, VolumeManagement
from images.models import boot_version_errors, boot_version_field, version_of_image_error

# A BMC's credentials: like the site's secrets, write-only in the API and masked in the admin; only the power tasks
# read them.
BMC_SECRETS = ["username", "password"]


class Host(models.Model):
    """A bare-metal machine that Dock2Box installs. Empty inheritable settings mean "inherit"."""

    fqdn = models.CharField("FQDN", max_length=253, unique=True, validators=[validate_fqdn])
    site = models.ForeignKey(Site, on_delete=models.PROTECT, null=True, blank=True, related_name="hosts")
    image = models.ForeignKey(
        "images.Image",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="hosts",
        limit_choices_to=~models.Q(type=ImageType.BOOT),
        help_text="Empty means the site's default image.",
    )
    image_version = models.ForeignKey(
        "images.ImageVersion",
        verbose_name="version",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="hosts",
        help_text="Empty means latest: the newest version of the image.",
    )
    boot_version = boot_version_field(help_text="Empty means the image's, the site's or the global default.")
    build = models.BooleanField("build mode", default=False, help_text="Install on the next PXE boot.")
    debug = models.BooleanField(default=False, help_text="Do not reboot after the install.")
    gpt = models.BooleanField("GPT", null=True, blank=True)
    kexec = models.BooleanField(null=True, blank=True)
    secure_boot = models.BooleanField(
        null=True, blank=True, help_text="UEFI Secure Boot on (shim and signed GRUB); empty means the site's."
    )
    volmgt = models.CharField("volume management", max_length=10, choices=VolumeManagement.choices, blank=True)
    legacynet = models.BooleanField("legacy interface names", default=False)
    kopts = models.CharField(
        "kernel options",
        max_length=500,
        blank=True,
        validators=[validate_safe_text],
        help_text="Added after the image's kernel options.",
    )
    pxe_menu = pxe_menu_field(help_text="Empty means the site's or the global menu.")
    serial = models.CharField("serial number", max_length=100, blank=True, validators=[validate_safe_text])
    uuid = models.UUIDField("UUID", null=True, blank=True)
    asset_tag = models.CharField(max_length=100, blank=True, validators=[validate_safe_text])
    labels = models.CharField(
        max_length=500,
        blank=True,
        help_text="Comma-separated labels, e.g. rack12, gpu.",
    )
    status = models.CharField(max_length=12, choices=HostStatus.choices, default=HostStatus.NEW)
    installed = models.DateTimeField(
        null=True, blank=True, help_text="When its last install ended (done, or unconfirmed)."
    )
    deployed_digest = models.CharField(
        max_length=71, blank=True, help_text="The image digest its installed system reported at its first boot."
    )
    boot_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Seconds from power-on (its build's first PXE boot) to its installed system's first-boot report.",
    )
    last_seen = models.DateTimeField(null=True, blank=True, help_text="Last PXE boot.")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["fqdn"]
        indexes = [models.Index(fields=["serial"]), models.Index(fields=["status"])]

    def __str__(self) -> str:
        return self.fqdn

    def secure_boot_with(self, site: Site | None) -> bool:
        """Whether this host boots with Secure Boot: its own setting, else its site's (`site`: its site)."""
        return self.secure_boot if self.secure_boot is not None else bool(site is not None and site.secure_boot)

    @property
    def hostname(self) -> str:
        return self.fqdn.split(".", 1)[0]

    def clean(self) -> None:
        if self.fqdn:
            with contextlib.suppress(ValidationError):  # the field's own validator reports it
                self.fqdn = normalise_fqdn(self.fqdn)
        errors: dict[str, str] = {}
        if self.fqdn and self.site is not None and not in_domain(self.fqdn, self.site.domain):
            errors["fqdn"] = (
                f"{self.fqdn} is outside the domain of site {self.site.name} ({self.site.domain}); name it "
                f"{self.hostname}.{self.site.domain}, or pick the site it belongs to."
            )
        if version_error := version_of_image_error(self.image, self.image_version):
            errors["image_version"] = version_error
        if self.image is not None and self.image.type == ImageType.BOOT:
            errors["image"] = "A boot image cannot be installed on a host; pick a docker or file image."
        errors |= boot_version_errors(self.boot_version)
        labels = [label.strip() for label in self.labels.split(",") if label.strip()]
        bad = [label for label in labels if not re.match(r"^[A-Za-z][A-Za-z0-9_.-]*\Z", label)]
        if bad:
            errors["labels"] = (
                f"'{bad[0]}' is not a label; use letters, digits, '.', '_' and '-', starting with a letter."
            )
        else:
            self.labels = ",".join(dict.fromkeys(labels))
        if errors:
            raise ValidationError(errors)


class Bmc(models.Model):
    """A host's baseboard management controller: how the portal powers it on, off and through a cycle.

    The power fields are written by the power tasks: the last state the BMC reported (or "unreachable"), the action
    queued or running (one at a time per host), and the last action's outcome (done, or the BMC's error in one line).
    """

    host = models.OneToOneField(Host, on_delete=models.CASCADE, related_name="bmc")
    protocol = models.CharField(max_length=10, choices=BmcProtocol.choices, default=BmcProtocol.IPMI)
    address = models.CharField(max_length=253, validators=[validate_server], help_text="Host name or IP address.")
    port = models.PositiveIntegerField(
        default=623, validators=[MinValueValidator(1), MaxValueValidator(65535)], help_text="IPMI: UDP 623."
    )
    username = models.CharField(max_length=64, blank=True, validators=[validate_credential])
    password = models.CharField(max_length=128, blank=True, validators=[validate_credential])
    power_state = models.CharField(max_length=12, choices=PowerState.choices, default=PowerState.UNKNOWN)
    power_checked = models.DateTimeField(null=True, blank=True, help_text="When the BMC last answered or failed to.")
    pending = models.CharField(
        max_length=10, choices=PowerAction.choices, blank=True, help_text="The power action queued or running."
    )
    pending_since = models.DateTimeField(null=True, blank=True)
    last_action = models.CharField(max_length=10, choices=PowerAction.choices, blank=True)
    last_result = models.CharField(max_length=300, blank=True, help_text="'done', or the error in one line.")
    last_result_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "BMC"

    def __str__(self) -> str:
        return f"BMC of {self.host.fqdn}" if self.host_id else "BMC"

    def clean(self) -> None:
        if self.address:
            with contextlib.suppress(ValidationError):  # the field's own validator reports it
                self.address = normalise_server(self.address)


def boot_order(interface: "Interface") -> tuple[bool, str]:
    """How a host's interfaces are listed everywhere (API, CSV, configs, SQL look-ups: `Interface.Meta.ordering`): the
    primary one, its boot NIC, first, then by name."""
    return (not interface.primary, interface.name)


class Interface(models.Model):
    """A network card of a host. Exactly one per host is primary: the boot NIC (the original's `default`)."""

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="interfaces")
    name = models.CharField(max_length=15, validators=[validate_ifname], help_text="e.g. eth0")
    mac = MACAddressField("MAC address", unique=True, error_messages={"unique": "Another interface has this MAC."})
    ip = models.GenericIPAddressField(
        "IP address", null=True, blank=True, unique=True, error_messages={"unique": "Another interface has this IP."}
    )
    subnet = models.ForeignKey(
        Subnet,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="interfaces",
        help_text="Empty: found from the IP address.",
    )
    netmask = models.GenericIPAddressField(protocol="IPv4", null=True, blank=True, help_text="Empty: the subnet's.")
    gateway = models.GenericIPAddressField(null=True, blank=True, help_text="Empty: the subnet's.")
    dhcp = models.BooleanField("DHCP", default=False)
    primary = models.BooleanField(default=False, help_text="The boot NIC; exactly one per host.")

    class Meta:
        ordering = ["host__fqdn", "-primary", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["host", "name"],
                name="interface_unique_name",
                violation_error_message="This host has an interface with this name already.",
            ),
            models.UniqueConstraint(
                fields=["host"],
                condition=models.Q(primary=True),
                name="interface_one_primary",
                violation_error_message="This host has a primary interface already.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.mac})"

    def unique_error_message(self, model_class: type[models.Model], unique_check: Sequence[str]) -> ValidationError:
        """A MAC or IP that another interface has names that interface and its host: the operator's next step."""
        if tuple(unique_check) in (("mac",), ("ip",)):
            field = unique_check[0]
            value = getattr(self, field)
            other = Interface.objects.filter(**{field: value}).exclude(pk=self.pk).select_related("host").first()
            if other is not None:
                what = "MAC" if field == "mac" else "IP"
                return ValidationError(
                    f"Another interface has this {what} ({value}): {other.name} of {other.host.fqdn}.", code="unique"
                )
        return super().unique_error_message(model_class, unique_check)

    def clean(self) -> None:
        if not self.ip:
            return
        address = ipaddress.ip_address(self.ip)
        if self.subnet_id is None:
            self.subnet = self._find_subnet(address)
        if self.subnet is None:
            self._clean_without_subnet(address)
            return
        network = self.subnet.ip_network
        if network is None:
            return
        errors: dict[str, str] = {}
        if address not in network:
            errors["ip"] = f"{address} is outside subnet {network}."
        elif is_network_or_broadcast(address, network):
            errors["ip"] = f"{address} is the network or broadcast address of {network}."
        elif self.subnet.gateway and address == ipaddress.ip_address(self.subnet.gateway):
            errors["ip"] = f"{address} is the gateway of {network}."
        elif reserved := next(
            ((start, end) for start, end in self.subnet.reserved_ranges() if int(start) <= int(address) <= int(end)),
            None,
        ):
            shown = str(reserved[0]) if reserved[0] == reserved[1] else f"{reserved[0]}-{reserved[1]}"
            errors["ip"] = f"{address} is reserved in subnet {network} ({shown}); pick another address."
        if network.version == 4 and self.netmask and self.netmask != str(network.netmask):
            errors["netmask"] = f"Subnet {network} has netmask {network.netmask}, not {self.netmask}."
        if self.gateway and ipaddress.ip_address(self.gateway) not in network:
            errors["gateway"] = f"{self.gateway} is outside subnet {network}."
        if errors:
            raise ValidationError(errors)
        netmask, gateway = self.addressing()
        self.netmask, self.gateway = netmask or None, gateway or None

    def addressing(self) -> tuple[str, str]:
        """The netmask and gateway this interface is configured with: its own, else, for an address in a subnet, the
        subnet's (no netmask for IPv6: the prefix length says it). The one rule: validation fills them in with it, the
        installer's config and the original's documents show them with it."""
        subnet = self.subnet if self.ip and self.subnet_id else None
        ipv6 = ":" in str(self.ip or "")
        netmask = self.netmask or (subnet.netmask if subnet is not None and not ipv6 else "")
        gateway = self.gateway or (subnet.gateway if subnet is not None else "")
        return str(netmask or ""), str(gateway or "")

    def _clean_without_subnet(self, address: IPAddress) -> None:
        """An address outside every known subnet must describe its own network (netmask), or it is a typo."""
        if address.version == 6 or not self.netmask:
            raise ValidationError(
                {"ip": f"No subnet holds {address}; add its subnet first (or give the netmask for an IPv4 address)."}
            )
        try:
            network = ipaddress.ip_network(f"{address}/{self.netmask}", strict=False)
        except ValueError:
            raise ValidationError({"netmask": f"{self.netmask} is not a netmask."}) from None
        if self.gateway and ipaddress.ip_address(self.gateway) not in network:
            raise ValidationError({"gateway": f"{self.gateway} is outside {network}."})

    def _find_subnet(self, address: IPAddress) -> Subnet | None:
        """The subnet holding `address`, preferring the host's site."""
        site_id = self.host.site_id if self.host_id else None
        return most_specific_subnet(address=address, subnets=Subnet.objects.select_related("site"), site_id=site_id)
