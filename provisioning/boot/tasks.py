"""Celery tasks of the boot path: scripts rendered ahead."""

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from provisioning.boot.scripts import scripts_render_ahead


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300, name="provisioning.tasks.boot_scripts_render_ahead")
def boot_scripts_render_ahead() -> int:
    """Beat: keep every known host's next boot script rendered in the shared cache, for the portal's public URL (the
    address a script carries; without DOCK2BOX_PUBLIC_URL a script's portal is known only when a host asks)."""
    if not settings.DOCK2BOX_PUBLIC_URL:
        return 0
    return scripts_render_ahead(portal=settings.DOCK2BOX_PUBLIC_URL, now=timezone.now())
