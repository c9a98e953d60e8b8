from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from dock2box.admin import ServiceAdmin
from hosts.admin import HostAdmin
from hosts.models import Host
from provisioning import services
from provisioning.models import BootDefaults, Build, BuildEvent, PxeMenu, PxeMenuItem


class PxeMenuItemInline(admin.TabularInline):
    model = PxeMenuItem
    extra = 1
    fields = ["position", "key", "label", "commands"]


@admin.register(PxeMenu)
class PxeMenuAdmin(ServiceAdmin):
    list_display = ["name", "title", "timeout", "default_item", "theme"]
    search_fields = ["name", "title"]
    inlines = [PxeMenuItemInline]

    def get_form(self, request: HttpRequest, obj: PxeMenu | None = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        # Only this menu's own items can be its default.
        form.base_fields["default_item"].queryset = PxeMenuItem.objects.filter(menu=obj)
        return form

    def save_with_service(self, obj: PxeMenu) -> None:
        services.pxe_menu_update(menu=obj, data={})

    def delete_with_service(self, obj: PxeMenu) -> None:
        services.pxe_menu_delete(menu=obj)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        items = formset.save(commit=False)
        for item in formset.deleted_objects:
            services.pxe_menu_item_delete(item=item)
        for item in items:
            services.pxe_menu_item_update(item=item, data={})


@admin.register(BootDefaults)
class BootDefaultsAdmin(admin.ModelAdmin):
    """One row: the list goes straight to its form."""

    autocomplete_fields = ["pxe_menu", "boot_version"]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        defaults = services.boot_defaults_get()
        return HttpResponseRedirect(reverse("admin:provisioning_bootdefaults_change", args=[defaults.pk]))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: BootDefaults, form: Any, change: bool) -> None:
        services.boot_defaults_update(data=form.cleaned_data)


class BuildEventInline(admin.TabularInline):
    model = BuildEvent
    extra = 0
    fields = ["time", "stage", "progress", "message"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Build)
class BuildAdmin(admin.ModelAdmin):
    """Install attempts, read-only: they change through build mode and the installer's events."""

    list_display = ["host", "state", "created", "started", "finished", "last_activity"]
    list_filter = ["state"]
    list_select_related = ["host"]
    search_fields = ["host__fqdn"]
    readonly_fields = ["host", "state", "image_version", "created", "started", "finished", "last_activity"]
    fields = readonly_fields
    inlines = [BuildEventInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class BuildHostAdmin(HostAdmin):
    """The host admin with build mode actions (provisioning owns builds)."""

    actions = ["enter_build", "cancel_build"]

    @admin.action(description="Enter build mode (install at next PXE boot)", permissions=["change"])
    def enter_build(self, request: HttpRequest, queryset: QuerySet[Host]) -> None:
        for host in queryset:
            services.host_enter_build(host=host)
        self.message_user(request, f"{queryset.count()} host(s) in build mode.", messages.SUCCESS)

    @admin.action(description="Cancel build mode", permissions=["change"])
    def cancel_build(self, request: HttpRequest, queryset: QuerySet[Host]) -> None:
        for host in queryset:
            services.host_cancel_build(host=host)
        self.message_user(request, f"{queryset.count()} host(s) out of build mode.", messages.SUCCESS)


admin.site.unregister(Host)
admin.site.register(Host, BuildHostAdmin)
