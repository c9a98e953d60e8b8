"""Admin of what the boot path offers: PXE menus, the global boot defaults, installer config templates."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from dock2box.admin import CompactTabularInline, SelectorAdmin, ServiceAdmin
from provisioning.catalogue.selectors import (
    boot_defaults,
    boot_defaults_list,
    boot_template_list,
    pxe_menu_items,
    pxe_menu_list,
)
from provisioning.catalogue.services import (
    boot_defaults_update,
    boot_template_create,
    boot_template_delete,
    boot_template_update,
    pxe_menu_create,
    pxe_menu_delete,
    pxe_menu_item_delete,
    pxe_menu_item_update,
    pxe_menu_update,
)
from provisioning.models import (
    BootDefaults,
    BootTemplate,
    PxeMenu,
    PxeMenuItem,
)


class PxeMenuItemInline(CompactTabularInline):
    model = PxeMenuItem
    extra = 1
    fields = ["position", "key", "label", "commands"]


@admin.register(PxeMenu)
class PxeMenuAdmin(ServiceAdmin):
    list_display = ["name", "title", "timeout", "default_item", "theme"]
    search_fields = ["name", "title"]
    inlines = [PxeMenuItemInline]

    def rows(self) -> QuerySet[PxeMenu]:
        return pxe_menu_list()

    def get_form(self, request: HttpRequest, obj: PxeMenu | None = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        if "default_item" in form.base_fields:  # (a reader's form has none) only this menu's items can be its default
            form.base_fields["default_item"].queryset = pxe_menu_items(menu=obj)
        return form

    def create_with_service(self, data: dict[str, Any]) -> PxeMenu:
        return pxe_menu_create(data=data)

    def save_with_service(self, obj: PxeMenu) -> None:
        pxe_menu_update(menu=obj, data={})

    def delete_with_service(self, obj: PxeMenu) -> None:
        pxe_menu_delete(menu=obj)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        items = formset.save(commit=False)
        for item in formset.deleted_objects:
            pxe_menu_item_delete(item=item)
        for item in items:
            pxe_menu_item_update(item=item, data={})


@admin.register(BootDefaults)
class BootDefaultsAdmin(SelectorAdmin):
    """One row: the list goes straight to its form."""

    autocomplete_fields = ["pxe_menu", "boot_version"]

    def rows(self) -> QuerySet[BootDefaults]:
        return boot_defaults_list()

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        defaults = boot_defaults()  # the row a migration made
        return HttpResponseRedirect(reverse("admin:provisioning_bootdefaults_change", args=[defaults.pk]))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: BootDefaults, form: Any, change: bool) -> None:
        boot_defaults_update(data=form.cleaned_data)


@admin.register(BootTemplate)
class BootTemplateAdmin(ServiceAdmin):
    """Kickstart, preseed and cloud-init templates; preview them from a host's page."""

    list_display = ["name", "kind", "host", "image", "site"]
    list_filter = ["kind"]
    search_fields = ["name", "content"]
    autocomplete_fields = ["host", "image", "site"]

    def rows(self) -> QuerySet[BootTemplate]:
        return boot_template_list()

    def create_with_service(self, data: dict[str, Any]) -> BootTemplate:
        return boot_template_create(data=data)

    def save_with_service(self, obj: BootTemplate) -> None:
        boot_template_update(template=obj, data={})

    def delete_with_service(self, obj: BootTemplate) -> None:
        boot_template_delete(template=obj)
