"""Admin of the MACs that PXE-booted unknown."""

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from dock2box.admin import SelectorAdmin
from provisioning.discovery.selectors import discovered_host_list
from provisioning.discovery.services import discovered_host_delete, discovered_host_register
from provisioning.models import DiscoveredHost


@admin.register(DiscoveredHost)
class DiscoveredHostAdmin(SelectorAdmin):
    """MACs that PXE-booted without being known; "register" turns them into hosts."""

    def rows(self) -> QuerySet[DiscoveredHost]:
        return discovered_host_list()

    list_display = ["mac", "ip", "serial", "uuid", "asset", "platform", "first_seen", "last_seen"]
    list_filter = ["platform"]
    search_fields = ["mac", "ip", "serial", "uuid", "asset"]
    readonly_fields = [*list_display, "buildarch"]
    actions = ["register"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_register_permission(self, request: HttpRequest) -> bool:
        """Registering makes a host (and forgets the discovered MAC): it needs the permission to add hosts."""
        return request.user.has_perm("hosts.add_host") and self.has_delete_permission(request)

    @admin.action(description="Register as hosts (named after the MAC; rename them after)", permissions=["register"])
    def register(self, request: HttpRequest, queryset: QuerySet[DiscoveredHost]) -> None:
        hosts = []
        for discovered in queryset:
            try:
                hosts.append(discovered_host_register(discovered=discovered))
            except ValidationError as error:
                self.message_user(request, f"{discovered.mac}: {'; '.join(error.messages)}", messages.ERROR)
        if hosts:
            self.message_user(request, f"Registered {', '.join(host.fqdn for host in hosts)}.", messages.SUCCESS)

    def delete_model(self, request: HttpRequest, obj: DiscoveredHost) -> None:
        discovered_host_delete(discovered=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[DiscoveredHost]) -> None:
        for discovered in queryset:
            discovered_host_delete(discovered=discovered)
