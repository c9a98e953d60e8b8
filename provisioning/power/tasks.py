"""Celery tasks of power control (over `provisioning.power.services`, which queues `power_apply` by its name)."""

from celery import shared_task

from dock2box.actors import acting_as
from provisioning.power.services import POWER_APPLY_TASK
from provisioning.power.services import power_apply as apply
from provisioning.power.services import power_refresh as refresh


@shared_task(acks_late=False, soft_time_limit=1700, time_limit=1800, name=POWER_APPLY_TASK)
def power_apply(bmc_id: int, action: str, actor: str) -> str:
    """Carry out a power action through a host's BMC, as `actor` (who asked). Not acknowledged late: a worker that
    dies mid-action must not power-cycle the host again on restart. Returns the outcome (never a secret)."""
    with acting_as(actor):
        return apply(bmc_id=bmc_id, action=action)


@shared_task(acks_late=True, soft_time_limit=1700, time_limit=1800, name="provisioning.tasks.power_refresh")
def power_refresh() -> int:
    """Beat: refresh every host's power state from its BMC."""
    return refresh()
