"""Boot defaults, PXE menus and builds: what a booting host is told to do."""

import re
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from dock2box.fields import MACAddressField
from dock2box.validators import validate_domain, validate_safe_text
from images.models import boot_version_errors, boot_version_field
from provisioning.builds.templating import template_compile
from provisioning.choices import BootChain, BuildStage, BuildState, MenuTheme, TemplateKind

validate_menu_key = RegexValidator(
    r"^[a-z][a-z0-9_-]{0,49}\Z", "Use lower-case letters, digits, '_' and '-', starting with a letter."
)
# iPXE commands written by an operator: several lines are fine, other control characters are not.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def validate_ipxe_commands(value: str) -> None:
    if _CONTROL_RE.search(value.replace("\r\n", "\n")):
        raise ValidationError("Contains a control character; only plain text lines are allowed.", code="unsafe_text")


class PxeMenu(models.Model):
    """A boot menu: ordered items of iPXE commands, shown to hosts of the sites (or hosts) that use it."""

    name = models.CharField(max_length=50, unique=True, validators=[validate_menu_key])
    title = models.CharField(max_length=80, default="Dock2Box", validators=[validate_safe_text])
    timeout = models.PositiveIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(3600)], help_text="Seconds; empty means the global one."
    )
    default_item = models.ForeignKey(
        "provisioning.PxeMenuItem",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Chosen when the timeout runs out; empty means local boot (or the install, in build mode).",
    )
    theme = models.CharField(max_length=20, choices=MenuTheme.choices, default=MenuTheme.DOCK2BOX)

    class Meta:
        ordering = ["name"]
        verbose_name = "PXE menu"

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.default_item is not None and self.default_item.menu_id != self.pk:
            raise ValidationError({"default_item": "Pick an item of this menu."})

    def default_key(self, items: Iterable["PxeMenuItem"]) -> str | None:
        """The key of this menu's default item among `items` (its own items), or None: the one rule the menu script and
        the etcd mirror both read."""
        return next((item.key for item in items if item.pk == self.default_item_id and item.menu_id == self.pk), None)


class PxeMenuItem(models.Model):
    """One entry of a PXE menu: a label and the iPXE commands it runs."""

    menu = models.ForeignKey(PxeMenu, on_delete=models.CASCADE, related_name="items")
    key = models.CharField(max_length=50, validators=[validate_menu_key], help_text="Identifier, e.g. localdisk.")
    label = models.CharField(max_length=80, validators=[validate_safe_text], help_text="What the menu shows.")
    commands = models.TextField(validators=[validate_ipxe_commands], help_text="iPXE commands, one per line.")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["menu__name", "position", "key"]
        verbose_name = "PXE menu item"
        constraints = [
            models.UniqueConstraint(
                fields=["menu", "key"],
                name="pxemenuitem_unique_key",
                violation_error_message="This menu has an item with this key already.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.menu.name}/{self.key}" if self.menu_id else self.key


class BootDefaults(models.Model):
    """The global defaults (one row): the original's `/default` and `/global`."""

    pxe_menu = models.ForeignKey(
        PxeMenu, verbose_name="PXE menu", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    menu_timeout = models.PositiveIntegerField(default=30, validators=[MaxValueValidator(3600)], help_text="Seconds.")
    build_timeout = models.PositiveIntegerField(
        default=5, validators=[MaxValueValidator(3600)], help_text="Seconds before a host in build mode installs."
    )
    submenu_timeout = models.PositiveIntegerField(default=30, validators=[MaxValueValidator(3600)])
    menu_name = models.CharField(max_length=80, default="Dock2Box", validators=[validate_safe_text])
    submenu_name = models.CharField(max_length=80, default="Versions", validators=[validate_safe_text])
    boot_version = boot_version_field()  # deleting the version the defaults boot is refused, as any in use
    domain = models.CharField(max_length=253, blank=True, validators=[validate_domain])

    class Meta:
        verbose_name = "boot defaults"
        verbose_name_plural = "boot defaults"
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="bootdefaults_singleton")]

    def __str__(self) -> str:
        return "Boot defaults"

    def save(self, *args: object, **kwargs: object) -> None:
        self.pk = 1
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def clean(self) -> None:
        if boot_version_errors(self.boot_version):
            raise ValidationError(boot_version_errors(self.boot_version))


class Build(models.Model):
    """One install attempt of a host, with the token its installer authenticates with."""

    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="builds")
    token = models.CharField(max_length=64, unique=True, null=True, blank=True, editable=False)
    state = models.CharField(max_length=12, choices=BuildState.choices, default=BuildState.PENDING)
    image_version = models.ForeignKey(
        "images.ImageVersion",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="A version picked by hand, else the one the installer was given at its first config fetch.",
    )
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    last_activity = models.DateTimeField(null=True, blank=True)
    bootloader_started = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the installer began writing the bootloader: from then on the disk may boot on its own, and "
        "the boot path never starts this build's install again.",
    )

    first_boot = models.DateTimeField(
        null=True,
        blank=True,
        help_text="The build's first PXE boot: as close to the host's power-on as the portal sees.",
    )
    report_token = models.CharField(
        max_length=64,
        unique=True,
        null=True,
        blank=True,
        editable=False,
        help_text="The installed system's one-shot credential for its first-boot report; void once used.",
    )
    booted = models.DateTimeField(null=True, blank=True, help_text="When the installed system reported its first boot.")
    booted_digest = models.CharField(
        max_length=71, blank=True, help_text="The image digest the installed system reported at its first boot."
    )

    client_address = models.GenericIPAddressField(
        null=True,
        blank=True,
        help_text="The installer's address: the first config fetch or event binds the build (and its secrets) to it.",
    )
    chain = models.CharField(
        max_length=10, choices=BootChain.choices, blank=True, help_text="How its installer was booted, as it said."
    )
    secure_boot = models.BooleanField(
        null=True, blank=True, help_text="Whether its installer ran with Secure Boot on, as its firmware said."
    )
    refusals = models.PositiveIntegerField(
        default=0, help_text="Requests with this build's token from another address, refused."
    )
    last_refusal = models.CharField(max_length=200, blank=True)
    started_by = models.CharField(max_length=200, blank=True, help_text="Who put the host in build mode.")

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["host"],
                condition=models.Q(state__in=[BuildState.PENDING, BuildState.RUNNING]),
                name="build_one_open_per_host",
                violation_error_message="This host has an open build already.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.host} #{self.pk}"

    @property
    def is_open(self) -> bool:
        return self.state in (BuildState.PENDING, BuildState.RUNNING)


class BuildEvent(models.Model):
    """A progress report of a build: stage, percent and a message."""

    build = models.ForeignKey(Build, on_delete=models.CASCADE, related_name="events")
    time = models.DateTimeField(auto_now_add=True)
    stage = models.CharField(max_length=20, choices=BuildStage.choices)
    progress = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(0), MaxValueValidator(100)]
    )
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["time", "id"]

    def __str__(self) -> str:
        return f"{self.stage} {self.progress or 0}%"


class DiscoveredHost(models.Model):
    """A MAC that PXE-booted without being a known host's interface; the admin turns it into a Host."""

    mac = MACAddressField("MAC address", unique=True)
    uuid = models.CharField("UUID", max_length=64, blank=True)
    serial = models.CharField(max_length=100, blank=True)
    asset = models.CharField("asset tag", max_length=100, blank=True)
    ip = models.GenericIPAddressField("IP address", null=True, blank=True)
    platform = models.CharField(max_length=20, blank=True)
    buildarch = models.CharField(max_length=20, blank=True)
    first_seen = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField()

    class Meta:
        ordering = ["-last_seen"]

    def __str__(self) -> str:
        return self.mac


class BootTemplate(models.Model):
    """An admin-editable installer config (kickstart, preseed, cloud-init), chosen host → image → site → default."""

    name = models.CharField(max_length=100, unique=True, validators=[validate_menu_key])
    kind = models.CharField(max_length=20, choices=TemplateKind.choices)
    content = models.TextField(help_text="Django template; the context is the host's resolved config (see docs).")
    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    image = models.ForeignKey("images.Image", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    site = models.ForeignKey("hosts.Site", on_delete=models.CASCADE, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["kind", "name"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(host__isnull=True, image__isnull=True)
                    | models.Q(host__isnull=True, site__isnull=True)
                    | models.Q(image__isnull=True, site__isnull=True)
                ),
                name="boottemplate_one_scope",
                violation_error_message="A template applies to one host, one image, one site, or everything.",
            ),
            *[
                models.UniqueConstraint(
                    fields=["kind", *scope],
                    condition=condition,
                    name=f"boottemplate_unique_{name}",
                    violation_error_message="There is a template of this kind for this scope already.",
                )
                for name, scope, condition in [
                    ("host", ["host"], models.Q(host__isnull=False)),
                    ("image", ["image"], models.Q(image__isnull=False)),
                    ("site", ["site"], models.Q(site__isnull=False)),
                    ("default", [], models.Q(host__isnull=True, image__isnull=True, site__isnull=True)),
                ]
            ],
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def scope(self) -> str:
        """Where it applies: "host <fqdn>", "image <name>", "site <name>" or "default"."""
        for label, target in [("host", self.host), ("image", self.image), ("site", self.site)]:
            if target is not None:
                return f"{label} {target}"
        return "default"

    def clean(self) -> None:
        try:
            template_compile(self.content)
        except ValidationError as error:
            raise ValidationError({"content": error.messages}) from error


class MirrorState(models.Model):
    """The etcd mirror's state (one row): when it last synced, its last error. Its row lock serialises drains."""

    last_success = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "etcd mirror"
        verbose_name_plural = "etcd mirror"
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="mirrorstate_singleton")]

    def __str__(self) -> str:
        return "etcd mirror"
