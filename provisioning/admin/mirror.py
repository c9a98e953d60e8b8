"""Admin of the etcd mirror's state."""

from typing import Any

from django.conf import settings as django_settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from dock2box.admin import SelectorAdmin
from provisioning.mirror.selectors import mirror_state_list
from provisioning.mirror.tasks import mirror_reconcile
from provisioning.models import (
    MirrorState,
)


@admin.register(MirrorState)
class MirrorStateAdmin(SelectorAdmin):
    """The etcd mirror at a glance (one row): outbox backlog, lag, last sync, last error; reconcile on demand."""

    list_display = ["__str__", "enabled", "backlog", "lag", "last_success", "last_error_at", "last_error"]
    readonly_fields = ["last_success", "last_error_at", "last_error"]
    actions = ["reconcile_now"]

    def rows(self) -> QuerySet[MirrorState]:
        return mirror_state_list()

    @admin.display(boolean=True, description="on")
    def enabled(self, state: MirrorState) -> bool:
        return bool(django_settings.DOCK2BOX_ETCD_URL)

    @admin.display(description="outbox backlog")
    def backlog(self, state: Any) -> int:
        return state.outbox_backlog or 0

    @admin.display(description="lag (s)")
    def lag(self, state: Any) -> str:
        oldest = state.outbox_oldest
        return f"{(timezone.now() - oldest).total_seconds():.1f}" if oldest else "0.0"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Reconcile the whole etcd tree now", permissions=["view"])
    def reconcile_now(self, request: HttpRequest, queryset: QuerySet[MirrorState]) -> None:
        mirror_reconcile.delay_on_commit()
        self.message_user(request, "Reconcile started; refresh to see its result.", messages.SUCCESS)
