"""A host's installer config in any of its formats: what `/config/<token>` serves and the admin and API preview."""

from dataclasses import dataclass
from typing import Any

from hosts.models import Host
from provisioning import selectors
from provisioning.catalogue import catalogue_get
from provisioning.choices import TemplateKind
from provisioning.models import Build
from provisioning.rendering import config as rendering
from provisioning.resolve import host_settings

FORMATS = ["env", "json", *TemplateKind.values]


@dataclass(frozen=True)
class RenderedConfig:
    status: int
    content_type: str
    text: str


def host_config_document(*, host: Host, build: Build | None, portal: str) -> dict[str, Any]:
    """The config document of `host`; without a build (a preview) the token in its URLs is a placeholder."""
    interfaces = selectors.host_interfaces(host=host)
    boot = next((interface for interface in interfaces if interface.primary), interfaces[0] if interfaces else None)
    version_id = build.image_version_id if build else None
    settings = host_settings(host=host, interface=boot, catalogue=catalogue_get(), version_id=version_id)
    return rendering.config_document(settings=settings, interfaces=interfaces, build=build, portal=portal)


def host_config_render(*, host: Host, build: Build | None, fmt: str, portal: str) -> RenderedConfig:
    """Render one format; an unknown format is a 400 and a template format with no template a 404."""
    if fmt not in FORMATS:
        return RenderedConfig(
            400, "text/plain; charset=utf-8", f"Unknown format {fmt!r}; use one of {', '.join(FORMATS)}.\n"
        )
    document = host_config_document(host=host, build=build, portal=portal)
    if fmt == "json":
        return RenderedConfig(200, "application/json", rendering.config_json(document))
    if fmt == "env":
        return RenderedConfig(200, "text/plain; charset=utf-8", rendering.config_env(document))
    template = selectors.boot_template_for(host=host, kind=fmt)
    if template is None:
        return RenderedConfig(404, "text/plain; charset=utf-8", f"No {fmt} template applies to {host.fqdn}.\n")
    return RenderedConfig(
        200, "text/plain; charset=utf-8", rendering.config_template(content=template.content, document=document)
    )
