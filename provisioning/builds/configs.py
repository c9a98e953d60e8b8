"""A host's installer config in any of its formats: what `/config/<token>` serves and the admin and API preview."""

import logging
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings
from django.http import HttpResponse

from hosts.models import Host, Interface
from hosts.selectors import interface_boot
from images.models import ImageVersion
from provisioning.builds import render as rendering
from provisioning.builds.selectors import host_interfaces
from provisioning.catalogue.resolve import HostSettings, host_settings, install_problem
from provisioning.catalogue.selectors import Catalogue, catalogue_get, catalogue_read
from provisioning.choices import TemplateKind
from provisioning.models import BootTemplate, Build

logger = logging.getLogger("dock2box.configs")
FORMATS = ["env", "json", *TemplateKind.values]
# The stock template of each kind, used when no operator template applies (a file under templates/).
STOCK_TEMPLATES: dict[str, str] = {
    TemplateKind.KICKSTART: "config/kickstart.ks",
    TemplateKind.PRESEED: "config/preseed.cfg",
    TemplateKind.CLOUD_INIT: "config/cloud-init.yaml",
}
TEMPLATE_HEADER = "X-Dock2Box-Template"


@dataclass(frozen=True)
class RenderedConfig:
    status: int
    content_type: str
    text: str
    template: str = ""  # which template made it and from where (empty for env and json)

    def response(self) -> HttpResponse:
        response = HttpResponse(self.text, content_type=self.content_type, status=self.status)
        if self.template:
            response[TEMPLATE_HEADER] = self.template
        return response


@dataclass(frozen=True)
class AppliedTemplate:
    """The template of one kind that applies to a host: an operator's (by scope) or the stock file."""

    name: str
    content: str
    origin: str  # "host <fqdn>", "image <name>", "site <name>", "default" or "stock"

    def __str__(self) -> str:
        return f"{self.name} ({self.origin})"


@cache
def _stock_content(kind: str) -> str:
    return (settings.BASE_DIR / "templates" / STOCK_TEMPLATES[kind]).read_text()


def config_template_for(*, host: Host, kind: str) -> AppliedTemplate:
    """The host's own template of `kind`, else its image's (its own image, else its site's), its site's, the default
    one, else the stock file. Chosen from the boot catalogue: no query."""
    catalogue = catalogue_get()
    site = catalogue.sites.get(host.site_id) if host.site_id else None
    image_id = host.image_id or (site.image_id if site else None)

    def rank(template: BootTemplate) -> int | None:
        if template.kind != kind:
            return None
        if template.host_id is not None:
            return 0 if template.host_id == host.pk else None
        if template.image_id is not None:
            return 1 if image_id and template.image_id == image_id else None
        if template.site_id is not None:
            return 2 if host.site_id and template.site_id == host.site_id else None
        return 3

    candidates = [(order, template) for template in catalogue.templates if (order := rank(template)) is not None]
    if not candidates:
        return AppliedTemplate(f"templates/{STOCK_TEMPLATES[kind]}", _stock_content(kind), "stock")
    template = min(candidates, key=lambda pair: pair[0])[1]
    return AppliedTemplate(template.name, template.content, template.scope)


def _settings(*, host: Host, interfaces: list[Interface], version_id: int | None, catalogue: Catalogue) -> HostSettings:
    return host_settings(host=host, interface=interface_boot(interfaces), catalogue=catalogue, version_id=version_id)


def host_image_version(*, host: Host) -> ImageVersion | None:
    """The image version `host` installs now (its own, its image's latest, its site's), None when none resolves."""
    interfaces = host_interfaces(host=host)
    return _settings(host=host, interfaces=interfaces, version_id=None, catalogue=catalogue_get()).version


def host_install_problem(*, host: Host, version_id: int | None = None) -> str | None:
    """Why `host` cannot install now (None: it can). A problem seen in this process's cached catalogue is checked
    again against the database, so data written earlier in the same transaction (an import) is not refused."""
    interfaces = host_interfaces(host=host)
    problem = install_problem(
        _settings(host=host, interfaces=interfaces, version_id=version_id, catalogue=catalogue_get())
    )
    if problem is None:
        return None
    return install_problem(
        _settings(host=host, interfaces=interfaces, version_id=version_id, catalogue=catalogue_read())
    )


def host_config_document(
    *, host: Host, build: Build | None, portal: str, interfaces: list[Interface] | None = None
) -> dict[str, Any]:
    """The config document of `host`; without a build (a preview) the token in its URLs is a placeholder. Its
    `interfaces` are read unless given (a config fetch has them from its build lookup)."""
    interfaces = host_interfaces(host=host) if interfaces is None else interfaces
    version_id = build.image_version_id if build else None
    settings = _settings(host=host, interfaces=interfaces, version_id=version_id, catalogue=catalogue_get())
    return rendering.config_document(settings=settings, interfaces=interfaces, build=build, portal=portal)


def host_config_render(
    *, host: Host, build: Build | None, fmt: str, portal: str, interfaces: list[Interface] | None = None
) -> RenderedConfig:
    """Render one format; an unknown format is a 400, a template that does not render a 422."""
    if fmt not in FORMATS:
        return RenderedConfig(
            400, "text/plain; charset=utf-8", f"Unknown format {fmt!r}; use one of {', '.join(FORMATS)}.\n"
        )
    document = host_config_document(host=host, build=build, portal=portal, interfaces=interfaces)
    if fmt == "json":
        return RenderedConfig(200, "application/json", rendering.config_json(document))
    if fmt == "env":
        return RenderedConfig(200, "text/plain; charset=utf-8", rendering.config_env(document))
    template = config_template_for(host=host, kind=fmt)
    try:
        text = rendering.config_template(content=template.content, document=document)
    except Exception as error:  # an operator's template: its failure is theirs to fix, reported, never a 500
        logger.warning("template %s (%s) does not render for %s: %s", template, fmt, host.fqdn, error)
        return RenderedConfig(
            422, "text/plain; charset=utf-8", f"The {fmt} template {template} does not render: {error}\n", str(template)
        )
    return RenderedConfig(200, "text/plain; charset=utf-8", text, str(template))
