"""Template tags of the admin's pages: the overview on the front page."""

from typing import Any

from django import template

from provisioning.selectors import overview

register = template.Library()


@register.inclusion_tag("admin/dock2box_overview.html", takes_context=True)
def dock2box_overview(context: dict[str, Any]) -> dict[str, Any]:
    """The overview, for a user who may see hosts (nothing for others)."""
    request = context["request"]
    if not request.user.has_perm("hosts.view_host"):
        return {"overview": None}
    return {"overview": overview()}
