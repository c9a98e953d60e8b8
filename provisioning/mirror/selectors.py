"""Reads of the etcd mirror's state."""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Count, F, Func, Min, QuerySet, Subquery
from django.utils import timezone

from dock2box.models import OutboxEntry
from provisioning.models import (
    MirrorState,
)


@dataclass(frozen=True)
class MirrorStatus:
    enabled: bool
    api: str
    backlog: int
    oldest_change: datetime | None
    last_success: datetime | None
    last_error: str
    last_error_at: datetime | None

    @property
    def lag_seconds(self) -> float:
        """How long the oldest waiting change has waited (0 when nothing waits)."""
        return (timezone.now() - self.oldest_change).total_seconds() if self.oldest_change else 0.0


def mirror_state_list() -> QuerySet[MirrorState]:
    """The mirror's state row with the outbox's backlog (`outbox_backlog`) and oldest change (`outbox_oldest`)."""
    waiting = OutboxEntry.objects.order_by()
    return MirrorState.objects.annotate(
        outbox_backlog=Subquery(waiting.annotate(n=Func(F("id"), function="COUNT")).values("n")[:1]),
        outbox_oldest=Subquery(waiting.order_by("created").values("created")[:1]),
    )


def mirror_status() -> MirrorStatus:
    """The etcd mirror at a glance: is it on, what waits in the outbox, the last success and the last error."""
    waiting = OutboxEntry.objects.aggregate(backlog=Count("id"), oldest=Min("created"))
    state = MirrorState.objects.filter(pk=1).first() or MirrorState()
    return MirrorStatus(
        enabled=bool(settings.DOCK2BOX_ETCD_URL),
        api=settings.DOCK2BOX_ETCD_API,
        backlog=waiting["backlog"],
        oldest_change=waiting["oldest"],
        last_success=state.last_success,
        last_error=state.last_error,
        last_error_at=state.last_error_at,
    )
