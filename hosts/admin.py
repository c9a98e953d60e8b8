from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from dock2box.admin import CompactTabularInline, ServiceAdmin
from dock2box.validators import normalise_mac
from hosts import selectors, services
from hosts.models import BMC_SECRETS, SITE_SECRETS, Bmc, Host, Interface, Site, Subnet


def _masked(field: str) -> str:
    return f"{field}_masked"


def _remove(field: str) -> str:
    return f"{field}_remove"


class WriteOnlyPasswordsForm(forms.ModelForm):
    """Its `passwords` are never sent back to the browser: left empty, the stored one is kept; its `<name>_remove`
    box (declared by the subclass, listed in the admin's fieldsets after the password) empties it."""

    passwords: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in self.passwords:
            field = self.fields.get(name)  # absent for a user who may only view
            if field is None:
                continue
            assert isinstance(field, forms.CharField)
            field.widget, field.strip, field.required = forms.PasswordInput(render_value=False), False, False
            stored = bool(self.instance.pk and getattr(self.instance, name))
            field.help_text = "One is stored: leave empty to keep it." if stored else "None is stored."

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name in self.passwords:
            if data.get(_remove(name)):
                data[name] = ""
            elif not data.get(name) and self.instance.pk:
                data[name] = getattr(self.instance, name)
        return data


class MaskedSecretsAdmin(ServiceAdmin):
    """An admin whose `secrets` fields a user who may view but not change the object sees only as "set (hidden)" or
    "not set", never their values."""

    secrets: list[str] = []

    def __init__(self, model: type[Model], admin_site: admin.AdminSite) -> None:
        super().__init__(model, admin_site)
        for field in self.secrets:
            setattr(self, _masked(field), self._secret_display(model, field))

    @staticmethod
    def _secret_display(model: type[Model], field: str) -> Any:
        def show(obj: Model) -> str:
            return "set (hidden)" if getattr(obj, field) else "not set"

        return admin.display(description=model._meta.get_field(field).verbose_name)(show)

    def get_fieldsets(self, request: HttpRequest, obj: Model | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if self.has_change_permission(request, obj):
            return fieldsets
        removes = {_remove(name) for name in getattr(self.form, "passwords", ())}
        return [
            (
                name,
                {
                    **options,
                    "fields": [_masked(f) if f in self.secrets else f for f in options["fields"] if f not in removes],
                },
            )
            for name, options in fieldsets
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        readonly = list(super().get_readonly_fields(request, obj))
        return readonly if self.has_change_permission(request, obj) else [*readonly, *map(_masked, self.secrets)]


class SiteForm(WriteOnlyPasswordsForm):
    passwords = ("registry_password",)
    registry_password_remove = forms.BooleanField(required=False, label="Remove the stored registry password")

    class Meta:
        model = Site
        fields = SITE_SECRETS  # the admin gives the form every field of its fieldsets


@admin.register(Site)
class SiteAdmin(MaskedSecretsAdmin):
    form = SiteForm
    list_display = ["name", "domain", "file_uri", "registry", "image", "subnet_count", "host_count"]
    search_fields = ["name", "domain", "description"]
    ordering = ["name"]  # its rows are counted (GROUP BY), which drops the model's ordering
    autocomplete_fields = ["image", "boot_version", "pxe_menu"]
    secrets = SITE_SECRETS
    fieldsets = [
        (None, {"fields": ["name", "description", "domain", "dns_servers", "ntp_servers"]}),
        ("Sources", {"fields": ["file_uri", "registry"]}),
        ("Defaults for its hosts", {"fields": ["image", "boot_version", "pxe_menu", "secure_boot"]}),
        (
            "Secrets (given only to installers with a valid build token)",
            {
                "classes": ["collapse"],
                "fields": [
                    "registry_username",
                    "registry_password",
                    _remove("registry_password"),
                    "root_password_hash",
                    "ssh_authorized_keys",
                ],
            },
        ),
    ]

    def rows(self) -> QuerySet[Site]:
        return selectors.site_list_counted()

    @admin.display(description="subnets", ordering="subnet_count")
    def subnet_count(self, site: Any) -> int:
        return site.subnet_count

    @admin.display(description="hosts", ordering="host_count")
    def host_count(self, site: Any) -> int:
        return site.host_count

    def create_with_service(self, data: dict[str, Any]) -> Site:
        return services.site_create(data=data)

    def save_with_service(self, obj: Site) -> None:
        services.site_update(site=obj, data={})

    def delete_with_service(self, obj: Site) -> None:
        services.site_delete(site=obj)


@admin.register(Subnet)
class SubnetAdmin(ServiceAdmin):
    list_display = ["network", "site", "gateway", "vlan", "dhcp", "interface_count", "description"]
    list_filter = ["site", "dhcp"]
    search_fields = ["network", "description", "site__name"]
    ordering = ["site__name", "network"]  # its rows are counted (GROUP BY), which drops the model's ordering
    autocomplete_fields = ["site"]

    def rows(self) -> QuerySet[Subnet]:
        return selectors.subnet_list_counted()

    @admin.display(description="interfaces", ordering="interface_count")
    def interface_count(self, subnet: Any) -> int:
        return subnet.interface_count

    def create_with_service(self, data: dict[str, Any]) -> Subnet:
        return services.subnet_create(data=data)

    def save_with_service(self, obj: Subnet) -> None:
        services.subnet_update(subnet=obj, data={})

    def delete_with_service(self, obj: Subnet) -> None:
        services.subnet_delete(subnet=obj)


class InterfaceInlineForm(forms.ModelForm):
    class Meta:
        model = Interface
        fields = ["name", "mac", "ip", "subnet", "netmask", "gateway", "dhcp", "primary"]

    def clean_ip(self) -> str | None:
        # Empty is "no address" (NULL), not "": two rows without an address are not duplicates.
        return self.cleaned_data["ip"] or None

    def _get_validation_exclusions(self) -> set[str]:
        # The primary flag moves between rows in one save; the service keeps it unique per host.
        return {*super()._get_validation_exclusions(), "primary"}


class InterfaceFormSet(forms.BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        kept = [form for form in self.forms if form.cleaned_data and not form.cleaned_data.get("DELETE")]
        if sum(1 for form in kept if form.cleaned_data.get("primary")) > 1:
            raise ValidationError("Only one interface can be primary (the boot NIC).")


class InterfaceInline(CompactTabularInline):
    model = Interface
    form = InterfaceInlineForm
    formset = InterfaceFormSet
    extra = 1
    autocomplete_fields = ["subnet"]


class HostAdmin(ServiceAdmin):
    """Hosts with their interfaces inline. Build mode actions come from provisioning's admin."""

    list_display = [
        "fqdn", "site", "image_and_version", "build", "status", "primary_mac", "primary_ip", "last_seen",
    ]  # fmt: skip
    list_filter = ["site", "image", "build", "status"]
    search_fields = ["fqdn", "interfaces__mac", "interfaces__ip", "serial", "asset_tag"]
    search_help_text = "Host name, MAC (any spelling), IP, serial or asset tag."
    autocomplete_fields = ["site", "image", "image_version", "boot_version", "pxe_menu"]
    readonly_fields = [
        "build", "status", "installed", "deployed_digest", "boot_seconds", "last_seen", "created", "updated",
    ]  # fmt: skip
    inlines = [InterfaceInline]

    class Media:
        js = ["admin/js/jquery.init.js", "hosts/version_picker.js"]

    fieldsets = [
        (None, {"fields": ["fqdn", "site", "image", "image_version", "build", "status", "last_seen"]}),
        ("Deployment", {"fields": ["installed", "deployed_digest", "boot_seconds"]}),
        (
            "Install",
            {
                "fields": [
                    "debug",
                    "gpt",
                    "kexec",
                    "secure_boot",
                    "volmgt",
                    "legacynet",
                    "kopts",
                    "boot_version",
                    "pxe_menu",
                ]
            },
        ),
        ("Identity", {"fields": ["serial", "uuid", "asset_tag", "labels", "created", "updated"]}),
    ]

    def rows(self) -> QuerySet[Host]:
        return selectors.host_list()

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Host], search_term: str) -> Any:
        # A MAC in any spelling finds its host: the column holds the normalised form.
        try:
            mac = normalise_mac(search_term)
        except ValidationError:
            return super().get_search_results(request, queryset, search_term)
        return queryset.filter(interfaces__mac=mac), True

    @admin.display(description="image:version", ordering="image__name")
    def image_and_version(self, host: Host) -> str:
        if not host.image_id:
            return "-"
        return f"{host.image}:{host.image_version.version if host.image_version_id else 'latest'}"

    def _primary(self, host: Host) -> Interface | None:
        return next((interface for interface in host.interfaces.all() if interface.primary), None)

    @admin.display(description="primary MAC")
    def primary_mac(self, host: Host) -> str:
        interface = self._primary(host)
        return interface.mac if interface else "-"

    @admin.display(description="primary IP")
    def primary_ip(self, host: Host) -> str:
        interface = self._primary(host)
        return (interface.ip or "dhcp") if interface else "-"

    def create_with_service(self, data: dict[str, Any]) -> Host:
        return services.host_create(data=data)  # its interfaces follow, from the inline (save_formset)

    def save_with_service(self, obj: Host) -> None:
        services.host_update(host=obj, data={})

    def delete_with_service(self, obj: Host) -> None:
        services.host_delete(host=obj)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not Interface:
            super().save_formset(request, form, formset, change)
            return
        formset.save(commit=False)  # sets the change lists the admin's history message reads
        interfaces = [
            {name: value for name, value in item.cleaned_data.items() if name in InterfaceInlineForm.Meta.fields}
            for item in formset.forms
            if item.cleaned_data and not item.cleaned_data.get("DELETE")
        ]
        services.host_set_interfaces(host=form.instance, interfaces=interfaces)


admin.site.register(Host, HostAdmin)


class BmcForm(WriteOnlyPasswordsForm):
    passwords = ("password",)
    password_remove = forms.BooleanField(required=False, label="Remove the stored password")

    class Meta:
        model = Bmc
        fields = ["host", "protocol", "address", "port", "username", "password"]


@admin.register(Bmc)
class BmcAdmin(MaskedSecretsAdmin):
    """Hosts' BMCs; power actions are on the host's page and in the host list."""

    form = BmcForm
    secrets = BMC_SECRETS
    list_display = ["host", "address", "port", "protocol", "power_state", "power_checked", "last_result"]
    list_filter = ["power_state", "protocol"]
    search_fields = ["host__fqdn", "address"]
    autocomplete_fields = ["host"]
    readonly_fields = ["power_state", "power_checked", "pending", "last_action", "last_result", "last_result_at"]
    fieldsets = [
        (None, {"fields": ["host", "protocol", "address", "port"]}),
        ("Credentials (used only by the power tasks)", {"fields": [*BMC_SECRETS, _remove("password")]}),
        ("Power", {"fields": readonly_fields}),
    ]

    def rows(self) -> QuerySet[Bmc]:
        return selectors.bmc_list()

    def create_with_service(self, data: dict[str, Any]) -> Bmc:
        return services.bmc_create(data=data)

    def save_with_service(self, obj: Bmc) -> None:
        services.bmc_update(bmc=obj, data={})

    def delete_with_service(self, obj: Bmc) -> None:
        services.bmc_delete(bmc=obj)
