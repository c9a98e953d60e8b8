"""The host admin with what provisioning adds: build mode, power, build progress and history, config previews."""

from collections.abc import Iterable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from dock2box.http import portal_url
from dock2box.selectors import history_of
from hosts.admin import HostAdmin
from hosts.choices import HostStatus, PowerAction
from hosts.csv_io import hosts_csv
from hosts.models import Host
from hosts.selectors import AWAITING, DEPLOYED, NOT_REPORTING, host_deployment
from provisioning.admin.builds import duration_text, progress_bar
from provisioning.builds.configs import FORMATS, config_template_for, host_config_render
from provisioning.builds.selectors import build_latest
from provisioning.builds.services import host_cancel_build, host_enter_build
from provisioning.choices import TemplateKind
from provisioning.power.services import power_request
from provisioning.selectors import host_list_with_state

HISTORY_SHOWN = 20


class BuildHostAdmin(HostAdmin):
    """The host admin with what provisioning adds: build mode actions, build progress, events, config previews."""

    actions = ["enter_build", "cancel_build", "power_on", "power_off", "power_cycle", "reinstall", "export_csv"]
    list_filter = [*HostAdmin.list_filter, "bmc__power_state"]
    list_display = [
        "status_shown" if name == "status" else name for name in [*HostAdmin.list_display, "build_progress", "power"]
    ]
    readonly_fields = [*HostAdmin.readonly_fields, "build_timeline", "config_previews", "power_panel", "history"]
    fieldsets = [
        *HostAdmin.fieldsets,
        ("Power", {"fields": ["power_panel"]}),
        ("Builds", {"fields": ["build_timeline", "config_previews"]}),
        ("History", {"fields": ["history"]}),
    ]

    def rows(self) -> QuerySet[Host]:
        return host_list_with_state()

    @admin.display(description="power", ordering="bmc__power_state")
    def power(self, host: Host) -> str:
        bmc = getattr(host, "bmc", None)
        if bmc is None:
            return "-"
        if bmc.pending:
            return f"{bmc.get_power_state_display()} ({bmc.get_pending_display().lower()} running)"
        return bmc.get_power_state_display()

    @admin.display(description="power")
    def power_panel(self, host: Host) -> str:
        bmc = getattr(host, "bmc", None) if host.pk else None
        if bmc is None:
            link = reverse("admin:hosts_bmc_add") + (f"?host={host.pk}" if host.pk else "")
            return format_html('No BMC: the portal cannot power this host. <a href="{}">Add one</a>.', link)
        checked = timezone.localtime(bmc.power_checked).strftime("%Y-%m-%d %H:%M:%S") if bmc.power_checked else "never"
        result = (
            format_html(
                "<br>Last action: {} at {}: {}",
                bmc.get_last_action_display(),
                timezone.localtime(bmc.last_result_at).strftime("%Y-%m-%d %H:%M:%S"),
                bmc.last_result,
            )
            if bmc.last_result_at
            else ""
        )
        buttons = format_html_join(
            " ",
            '<button type="submit" class="button" formaction="{}" formnovalidate>{}</button>',
            (
                (reverse("admin:hosts_host_power", args=[host.pk, action]), label)
                for action, label in PowerAction.choices
            ),
        )
        return format_html(
            '<b>{}</b> (checked {}){}{}<br><a href="{}">BMC {}</a><p>{}</p>',
            bmc.get_power_state_display(),
            checked,
            format_html(" — {} running", bmc.get_pending_display().lower()) if bmc.pending else "",
            result,
            reverse("admin:hosts_bmc_change", args=[bmc.pk]),
            f"{bmc.address}:{bmc.port}",
            buttons,
        )

    @admin.display(description="progress")
    def build_progress(self, host: Any) -> str:
        return progress_bar(host.running_progress)

    @admin.display(description="status", ordering="status")
    def status_shown(self, host: Any) -> str:
        if host.status == HostStatus.FAILED and host.failure_reason:
            return format_html('{}: <span style="color: var(--error-fg)">{}</span>', host.get_status_display(),
                               host.failure_reason)  # fmt: skip
        deployment = host_deployment(host=host, now=timezone.now())
        if deployment == DEPLOYED:
            return format_html('{} <code title="{}">{}</code>, booted {} after power-on', host.get_status_display(),
                               host.deployed_digest, host.deployed_digest[7:19] or "no digest",
                               duration_text(host.boot_seconds))  # fmt: skip
        if deployment == NOT_REPORTING:
            return format_html('{}: <span style="color: var(--error-fg)">not reporting</span> (no first-boot report '
                               "{} after the install)", host.get_status_display(),
                               duration_text(int((timezone.now() - host.installed).total_seconds())))  # fmt: skip
        if deployment == AWAITING:
            return f"{host.get_status_display()}, awaiting its first boot"
        return host.get_status_display()

    @admin.display(description="latest build")
    def build_timeline(self, host: Host) -> str:
        if not host.pk:
            return "-"
        action, label = ("cancel", "Cancel build") if host.build else ("enter", "Enter build mode")
        button = format_html(
            '<p><button type="submit" class="button" formaction="{}" formnovalidate>{}</button></p>',
            reverse("admin:hosts_host_build", args=[host.pk, action]),
            label,
        )
        build = build_latest(host=host)
        if build is None:
            return format_html("{}No build yet.", button)
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><pre style='margin:0'>{}</pre></td></tr>",
            (
                (
                    timezone.localtime(event.time).strftime("%Y-%m-%d %H:%M:%S"),
                    event.stage,
                    "" if event.progress is None else event.progress,
                    event.message,
                )
                for event in build.events.all()
            ),
        )
        refused = (
            format_html("<p><b>{} request(s) from other addresses refused</b>; last: {}</p>", build.refusals,
                        build.last_refusal)
            if build.refusals
            else ""
        )  # fmt: skip
        return format_html(
            "{}<p>Build #{} is <b>{}</b> (created {}).</p>{}"
            "<table><thead><tr><th>time</th><th>stage</th><th>%</th><th>message</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            button,
            build.pk,
            build.get_state_display(),
            timezone.localtime(build.created).strftime("%Y-%m-%d %H:%M"),
            refused,
            rows or mark_safe("<tr><td colspan=4>No events yet.</td></tr>"),
        )

    @admin.display(description="who did what")
    def history(self, host: Host) -> str:
        if not host.pk:
            return "-"
        entries = list(history_of(obj=host)[:HISTORY_SHOWN])
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (timezone.localtime(entry.time).strftime("%Y-%m-%d %H:%M:%S"), entry.actor, entry.action, entry.detail)
                for entry in entries
            ),
        )
        return format_html(
            "<table><thead><tr><th>time</th><th>who</th><th>what</th><th>detail</th></tr></thead><tbody>{}</tbody>"
            "</table><small>The newest {}; all of it at /api/v2/hosts/{}/history/.</small>",
            rows or mark_safe("<tr><td colspan=4>Nothing yet.</td></tr>"),
            HISTORY_SHOWN,
            host.pk,
        )

    @admin.display(description="config preview")
    def config_previews(self, host: Host) -> str:
        if not host.pk:
            return "-"
        applied = {kind: f": template {config_template_for(host=host, kind=kind)}" for kind in TemplateKind.values}
        links = format_html_join(
            "",
            '<li><a href="{}" target="_blank">{}</a>{}</li>',
            (
                (reverse("admin:hosts_host_config_preview", args=[host.pk, fmt]), fmt, applied.get(fmt, ""))
                for fmt in FORMATS
            ),
        )
        return format_html(
            '<ul style="margin: 0; padding: 0; list-style: none">{}</ul><small>Secrets are masked; the installer gets '
            "them with its build token. A template applies from the host, else its image, its site, the default one, "
            "else the stock file.</small>",
            links,
        )

    def get_urls(self) -> list[Any]:
        preview = self.admin_site.admin_view(self.config_preview_view)
        power = self.admin_site.admin_view(self.power_view)
        return [
            path("<int:pk>/config/<str:fmt>/", preview, name="hosts_host_config_preview"),
            path("<int:pk>/power/<str:action>/", power, name="hosts_host_power"),
            path("<int:pk>/build/<str:action>/", self.admin_site.admin_view(self.build_view), name="hosts_host_build"),
            *super().get_urls(),
        ]

    def power_view(self, request: HttpRequest, pk: int, action: str) -> HttpResponse:
        """A power button of the host page (it submits the page's form here, so it carries its CSRF token)."""
        host = self.get_object(request, str(pk))
        if request.method != "POST" or host is None or not self.has_change_permission(request, host):
            raise PermissionDenied
        self._power(request, [host], action)
        return HttpResponseRedirect(reverse("admin:hosts_host_change", args=[host.pk]))

    def build_view(self, request: HttpRequest, pk: int, action: str) -> HttpResponse:
        """The host page's Enter build mode / Cancel build button: the list actions, for this host."""
        host = self.get_object(request, str(pk))
        actions = {"enter": self.enter_build, "cancel": self.cancel_build}
        if request.method != "POST" or host is None or not self.has_change_permission(request, host):
            raise PermissionDenied
        if action not in actions:
            raise Http404(f"No build action {action!r}.")
        actions[action](request, self.get_queryset(request).filter(pk=host.pk))
        return HttpResponseRedirect(reverse("admin:hosts_host_change", args=[host.pk]))

    def _power(self, request: HttpRequest, hosts: Iterable[Host], action: str) -> None:
        queued = []
        for host in hosts:
            try:
                power_request(host=host, action=action)
            except ValidationError as error:
                self.message_user(request, " ".join(error.messages), messages.ERROR)
            else:
                queued.append(host.fqdn)
        if queued:
            label = dict(PowerAction.choices).get(action, action)
            self.message_user(
                request, f"{label}: queued for {', '.join(queued)}; the outcome shows on the host.", messages.SUCCESS
            )

    @admin.action(description="Export as CSV (with interfaces)", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Host]) -> HttpResponse:
        response = HttpResponse(hosts_csv(queryset), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="hosts.csv"'
        return response

    @admin.action(description="Power on (through the BMC)", permissions=["change"])
    def power_on(self, request: HttpRequest, queryset: QuerySet[Host]) -> None:
        self._power(request, queryset, PowerAction.ON)

    @admin.action(description="Power off (hard, through the BMC)", permissions=["change"])
    def power_off(self, request: HttpRequest, queryset: QuerySet[Host]) -> None:
        self._power(request, queryset, PowerAction.OFF)

    @admin.action(description="Power cycle (through the BMC)", permissions=["change"])
    def power_cycle(self, request: HttpRequest, queryset: QuerySet[Host]) -> None:
        self._power(request, queryset, PowerAction.CYCLE)

    @admin.action(description="Reinstall (build mode, then a power cycle)", permissions=["change"])
    def reinstall(self, request: HttpRequest, queryset: QuerySet[Host]) -> None:
        self._power(request, queryset, PowerAction.REINSTALL)

    def config_preview_view(self, request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
        host = self.get_object(request, str(pk))
        if host is None or not self.has_view_permission(request, host):
            raise PermissionDenied
        return host_config_render(host=host, build=None, fmt=fmt, portal=portal_url(request)).response()

    @admin.action(description="Enter build mode (install at next PXE boot)", permissions=["change"])
    def enter_build(self, request: HttpRequest, queryset: QuerySet[Host]) -> None:
        entered = 0
        for host in queryset:
            try:
                host_enter_build(host=host)
            except ValidationError as error:
                self.message_user(request, " ".join(error.messages), messages.ERROR)
            else:
                entered += 1
        if entered:
            self.message_user(request, f"{entered} host(s) in build mode.", messages.SUCCESS)

    @admin.action(description="Cancel build mode", permissions=["change"])
    def cancel_build(self, request: HttpRequest, queryset: QuerySet[Host]) -> None:
        for host in queryset:
            host_cancel_build(host=host)
        self.message_user(request, f"{queryset.count()} host(s) out of build mode.", messages.SUCCESS)


admin.site.unregister(Host)


admin.site.register(Host, BuildHostAdmin)
