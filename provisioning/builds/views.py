"""The installer's endpoints: its config, its progress events, and the installed system's first-boot report. A token
that is unknown, expired or whose host left build mode is answered 403."""

import re

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from dock2box.actors import acting_as
from dock2box.http import client_address, portal_url
from dock2box.jsonbody import parse_json
from provisioning.builds.configs import host_config_render
from provisioning.builds.selectors import InstallerBuild
from provisioning.builds.services import (
    BootReportRefused,
    EventLimitReached,
    InstallerRefused,
    build_boot_facts_record,
    build_boot_report,
    build_event_record,
    build_for_installer,
    build_version_pin,
)
from provisioning.choices import BootChain

MAX_EVENT_BODY = 64 * 1024


def _build_or_refusal(request: HttpRequest, token: str, *, fetch: bool) -> InstallerBuild | JsonResponse:
    try:
        return build_for_installer(token=token, now=timezone.now(), client=client_address(request), fetch=fetch)
    except InstallerRefused as refused:
        return JsonResponse({"detail": str(refused)}, status=403)


def _boot_facts(request: HttpRequest) -> tuple[str, bool] | JsonResponse | None:
    """What the installer says of its boot with the config fetch (`?chain=ipxe|shim-grub&secure_boot=0|1`), None
    when it says nothing, or a 400 naming the field."""
    chain, secure_boot = request.GET.get("chain"), request.GET.get("secure_boot")
    if chain is None and secure_boot is None:
        return None
    errors = {}
    if chain not in BootChain.values:
        errors["chain"] = [f"Send one of {', '.join(BootChain.values)}."]
    if secure_boot not in ("0", "1"):
        errors["secure_boot"] = ["Send 0 or 1."]
    return JsonResponse(errors, status=400) if errors else (str(chain), secure_boot == "1")


@require_GET
def host_config(request: HttpRequest, token: str) -> HttpResponse:
    """`/config/<token>?format=env|json|kickstart|preseed|cloud-init`: the host's config, for its installer."""
    found = _build_or_refusal(request, token, fetch=True)
    if isinstance(found, JsonResponse):
        return found
    build = found.build
    facts = _boot_facts(request)
    if isinstance(facts, JsonResponse):
        return facts
    if facts is not None:
        build_boot_facts_record(build=build, chain=facts[0], secure_boot=facts[1])
    build_version_pin(build=build)
    fmt = request.GET.get("format", "env")
    rendered = host_config_render(
        host=build.host, build=build, fmt=fmt, portal=portal_url(request), interfaces=found.interfaces
    )
    response = rendered.response()
    response["Cache-Control"] = "no-store"
    return response


@csrf_exempt
@require_POST
def build_events(request: HttpRequest, token: str) -> JsonResponse:
    """`POST /config/<token>/events` `{"stage", "progress", "message"}`: the installer's progress."""
    if len(request.body) > MAX_EVENT_BODY:
        return JsonResponse({"detail": f"Body over {MAX_EVENT_BODY} bytes."}, status=413)
    found = _build_or_refusal(request, token, fetch=False)
    if isinstance(found, JsonResponse):
        return found
    build = found.build
    try:
        payload = parse_json(request.body or b"{}")
    except ValueError as error:
        return JsonResponse({"detail": f"The body is not JSON: {error}"}, status=400)
    if not isinstance(payload, dict):
        return JsonResponse({"detail": 'Send an object: {"stage": ..., "progress": ..., "message": ...}.'}, status=400)
    progress = payload.get("progress")
    if progress is not None and (isinstance(progress, bool) or not isinstance(progress, int)):
        return JsonResponse({"progress": ["Send a whole number from 0 to 100."]}, status=400)
    message = payload.get("message", "")
    try:
        with acting_as(f"installer ({build.client_address})"):
            event = build_event_record(
                build=build,
                stage=str(payload.get("stage", "")),
                progress=progress,
                message=str(message),
                now=timezone.now(),
            )
    except ValidationError as error:
        return JsonResponse(error.message_dict, status=400)
    except EventLimitReached as error:
        return JsonResponse({"detail": str(error)}, status=429)
    return JsonResponse({"stage": event.stage, "progress": event.progress, "time": event.time.isoformat()}, status=201)


_DIGEST_RE = re.compile(r"^(sha256:[0-9a-f]{64})?\Z")


_MACHINE_ID_RE = re.compile(r"^[0-9a-f]{0,32}\Z")


_KERNEL_RE = re.compile(r"^[A-Za-z0-9._+~-]{0,100}\Z")


@csrf_exempt
@require_POST
def booted(request: HttpRequest, token: str) -> JsonResponse:
    """`POST /booted/<credential>` `{"digest", "machine_id", "kernel", "uptime", "secure_boot"}`: an installed
    system's first-boot report, once per install (the credential is used up)."""
    if len(request.body) > MAX_EVENT_BODY:
        return JsonResponse({"detail": f"Body over {MAX_EVENT_BODY} bytes."}, status=413)
    try:
        payload = parse_json(request.body or b"{}")
    except ValueError as error:
        return JsonResponse({"detail": f"The body is not JSON: {error}"}, status=400)
    if not isinstance(payload, dict):
        return JsonResponse(
            {"detail": 'Send an object: {"digest": ..., "machine_id": ..., "kernel": ...}.'}, status=400
        )
    checks = {"digest": _DIGEST_RE, "machine_id": _MACHINE_ID_RE, "kernel": _KERNEL_RE}
    errors = {
        name: [f"Does not match {pattern.pattern}."]
        for name, pattern in checks.items()
        if not isinstance(payload.get(name, ""), str) or not pattern.match(payload.get(name, ""))
    }
    uptime = payload.get("uptime", 0)
    if isinstance(uptime, bool) or not isinstance(uptime, int | float) or not 0 <= uptime < 10**9:
        errors["uptime"] = ["Send the seconds since the system started, a number."]
    secure_boot = payload.get("secure_boot")
    if secure_boot is not None and not isinstance(secure_boot, bool):
        errors["secure_boot"] = ["Send true or false (whether the firmware runs with Secure Boot on)."]
    if errors:
        return JsonResponse(errors, status=400)
    detail = f"kernel {payload.get('kernel') or '?'}, up {uptime:.0f} s, machine-id {payload.get('machine_id') or '?'}"
    detail += "" if secure_boot is None else f", Secure Boot {'on' if secure_boot else 'off'}"
    try:
        with acting_as(f"installed system ({client_address(request)})"):
            build = build_boot_report(
                report_token=token, digest=payload.get("digest", ""), detail=detail, now=timezone.now()
            )
    except BootReportRefused as refused:
        return JsonResponse({"detail": str(refused)}, status=403)
    return JsonResponse({"build": build.pk, "booted": build.booted.isoformat() if build.booted else None}, status=201)
