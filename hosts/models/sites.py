"""Sites: a location's domain, DNS, file server, registry and secrets."""

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from dock2box.validators import (
    parse_address_list,
    parse_server_list,
    validate_address_list,
    validate_credential,
    validate_crypt_hash,
    validate_domain,
    validate_registry,
    validate_safe_text,
    validate_server_list,
    validate_site_name,
    validate_ssh_authorized_keys,
    validate_url,
    validate_username,
)
from images.choices import ImageType
from images.models import boot_version_errors, boot_version_field

# A site's secrets: write-only in the API, masked in the admin for users who cannot change them, handed only to an
# installer holding a valid build token.
SITE_SECRETS = ["registry_username", "registry_password", "root_password_hash", "ssh_authorized_keys"]


def pxe_menu_field(*, help_text: str = "") -> Any:
    """A pointer to the PXE menu a site's or a host's boot shows; empty = inherit (the menu is provisioning's model,
    named by its label: hosts imports no provisioning)."""
    return models.ForeignKey(
        "provisioning.PxeMenu",
        verbose_name="PXE menu",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text=help_text,
    )


class Site(models.Model):
    """A location with its own domain, DNS, file server and registry; hosts and subnets belong to one."""

    name = models.CharField(max_length=50, unique=True, validators=[validate_site_name])
    description = models.CharField(max_length=200, blank=True, validators=[validate_safe_text])
    domain = models.CharField(max_length=253, blank=True, validators=[validate_domain])
    dns_servers = models.CharField(
        "DNS servers", max_length=300, blank=True, validators=[validate_address_list], help_text="Comma-separated."
    )
    ntp_servers = models.CharField(
        "NTP servers",
        max_length=300,
        blank=True,
        validators=[validate_server_list],
        help_text="Host names or addresses, comma-separated.",
    )
    file_uri = models.CharField(
        "file server URL",
        max_length=300,
        blank=True,
        validators=[validate_url],
        help_text="Where boot kernels and file images live (the original's file_uri / file_server).",
    )
    registry = models.CharField(
        "Docker registry",
        max_length=200,
        blank=True,
        validators=[validate_registry],
        help_text="host[:port] of the registry for Docker images (the original's registry / docker_registry).",
    )
    image = models.ForeignKey(
        "images.Image",
        verbose_name="default image",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        limit_choices_to=~models.Q(type=ImageType.BOOT),
    )
    boot_version = boot_version_field()
    pxe_menu = pxe_menu_field()
    secure_boot = models.BooleanField(
        default=False, help_text="Its hosts boot with UEFI Secure Boot on: shim, Debian's signed GRUB and kernel."
    )
    # Secrets (SITE_SECRETS): handed only to an installer holding a valid build token, never read back.
    registry_username = models.CharField(max_length=100, blank=True, validators=[validate_username])
    registry_password = models.CharField(max_length=200, blank=True, validators=[validate_credential])
    root_password_hash = models.CharField(
        max_length=200,
        blank=True,
        validators=[validate_crypt_hash],
        help_text="crypt(3) hash for root on installed hosts (e.g. from mkpasswd -m sha-512); ! locks root.",
    )
    ssh_authorized_keys = models.TextField(
        blank=True,
        validators=[validate_ssh_authorized_keys],
        help_text="Public keys installed for root, one per line as ssh-keygen writes them (options allowed).",
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.dns_servers:
            self.dns_servers = ",".join(parse_address_list(self.dns_servers))
        if self.ntp_servers:
            self.ntp_servers = ",".join(parse_server_list(self.ntp_servers))
        self.ssh_authorized_keys = self.ssh_authorized_keys.replace("\r\n", "\n")
        if self.image is not None and self.image.type == ImageType.BOOT:
            raise ValidationError({"image": "A boot image cannot be the image hosts are installed with."})
        if boot_version_errors(self.boot_version):
            raise ValidationError(boot_version_errors(self.boot_version))
        if self.domain:
            self.domain = self.domain.lower().removesuffix(".")
            stored = Site.objects.filter(pk=self.pk).values_list("domain", flat=True).first() if self.pk else None
            if stored is not None and stored != self.domain:  # only a changed domain can leave hosts outside it
                outside = [
                    fqdn for fqdn in self.hosts.values_list("fqdn", flat=True) if not in_domain(fqdn, self.domain)
                ]
                if outside:
                    raise ValidationError(
                        {"domain": f"{len(outside)} host(s) of this site are outside {self.domain} (first: "
                                   f"{outside[0]}); rename them or move them to another site first."}
                    )  # fmt: skip


def in_domain(fqdn: str, domain: str) -> bool:
    """The one rule for a host name and its site's domain: `web01.lab.example.com` is in `lab.example.com` (and in
    `example.com`); a site without a domain takes any name."""
    return not domain or fqdn.lower().endswith("." + domain.lower().removesuffix("."))
