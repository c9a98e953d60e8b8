"""The image version admin with what provisioning adds: resolving tags in the registry."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from hosts.tasks import image_version_resolve
from images.admin import ImageVersionAdmin
from images.models import ImageVersion


class ResolvingImageVersionAdmin(ImageVersionAdmin):
    """The image version admin with what provisioning adds: resolving tags in the registry."""

    actions = ["resolve"]

    @admin.action(description="Resolve in the registry (digest, size, layers)", permissions=["change"])
    def resolve(self, request: HttpRequest, queryset: QuerySet[ImageVersion]) -> None:
        for version in queryset.filter(image__type="docker"):
            image_version_resolve.delay_on_commit(version.pk)
        self.message_user(request, "Resolving; refresh to see the digests.", messages.SUCCESS)


admin.site.unregister(ImageVersion)


admin.site.register(ImageVersion, ResolvingImageVersionAdmin)
