"""Admin of builds (read-only: they change through build mode and the installer), and how a build's figures show."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from dock2box.admin import SelectorAdmin
from provisioning.builds.selectors import build_list
from provisioning.builds.services import build_delete
from provisioning.choices import BuildState
from provisioning.models import (
    Build,
    BuildEvent,
)


class BuildEventInline(admin.TabularInline):
    model = BuildEvent
    extra = 0
    fields = ["time", "stage", "progress", "message"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Build)
class BuildAdmin(SelectorAdmin):
    """Install attempts, read-only: they change through build mode and the installer's events."""

    list_display = [
        "host",
        "version",
        "state",
        "progress_bar",
        "last_message_shown",
        "started_by",
        "duration",
        "created",
    ]
    list_filter = ["state"]
    search_fields = ["host__fqdn"]
    readonly_fields = [
        "host", "version", "state", "progress_bar", "last_message_shown", "started_by", "duration", "created",
        "started", "finished", "last_activity", "bootloader_started", "first_boot", "booted", "booted_digest",
        "client_address", "chain", "secure_boot_shown", "refusals", "last_refusal",
    ]  # fmt: skip
    fields = readonly_fields
    inlines = [BuildEventInline]

    def rows(self) -> QuerySet[Build]:
        return build_list()

    @admin.display(description="image:version", ordering="image_version__image__name")
    def version(self, build: Build) -> str:
        return str(build.image_version) if build.image_version_id else "resolved at its first config fetch"

    @admin.display(description="progress")
    def progress_bar(self, build: Any) -> str:
        return progress_bar(build.progress if build.state == BuildState.RUNNING else None)

    @admin.display(description="last message (the reason, when it failed)")
    def last_message_shown(self, build: Any) -> str:
        if build.last_message and build.state == BuildState.FAILED:
            return format_html('<b style="color: var(--error-fg)">{}</b>', build.last_message)
        return build.last_message or "-"

    @admin.display(description="Secure Boot")
    def secure_boot_shown(self, build: Build) -> str:
        """As its installer's firmware said; "-" before it said anything."""
        return {True: "on", False: "off"}.get(build.secure_boot, "-")  # type: ignore[arg-type]

    @admin.display(description="duration")
    def duration(self, build: Build) -> str:
        if build.started is None:
            return "-"
        took = duration_text(int(((build.finished or timezone.now()) - build.started).total_seconds()))
        return took if build.finished else f"{took} so far"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: Build) -> None:
        build_delete(build=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Build]) -> None:
        for build in queryset.select_related("host"):
            build_delete(build=build)


def duration_text(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def progress_bar(percent: int | None) -> str:
    if percent is None:
        return "-"
    return format_html('<progress value="{}" max="100" title="{}%"></progress> {}%', percent, percent, percent)
