from typing import Any

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from dock2box.admin import CompactTabularInline, ServiceAdmin
from images import selectors, services
from images.choices import ImageType
from images.models import Image, ImageVersion


class ImageVersionInline(CompactTabularInline):
    """An image's versions, with the fields of its type only (a new image shows the common ones)."""

    model = ImageVersion
    extra = 0
    show_change_link = True
    FIELDS_OF_TYPE = {
        ImageType.DOCKER: ["digest", "size"],
        ImageType.FILE: ["file", "size"],
        ImageType.BOOT: ["kernel", "initrd", "kernel_url", "initrd_url"],
    }

    def get_fields(self, request: HttpRequest, obj: Image | None = None) -> list[str]:
        return ["version", "timestamp", *(self.FIELDS_OF_TYPE.get(obj.type, []) if obj is not None else [])]


@admin.register(Image)
class ImageAdmin(ServiceAdmin):
    list_display = ["name", "type", "registry", "file_url", "boot_version", "version_count", "host_count", "updated"]
    list_filter = ["type"]
    search_fields = ["name", "description", "repository"]
    ordering = ["name"]  # its rows are counted (GROUP BY), which drops the model's ordering
    autocomplete_fields = ["boot_version"]
    inlines = [ImageVersionInline]
    fieldsets = [
        (None, {"fields": ["name", "type", "description"]}),
        ("Source", {"fields": ["registry", "repository", "file_url"]}),
        ("Install defaults", {"fields": ["boot_version", "kopts", "debug", "gpt", "kexec", "uefi", "volmgt"]}),
        ("Scripts", {"classes": ["collapse"], "fields": ["naming_scheme", "main_script", "post_script"]}),
    ]

    def rows(self) -> QuerySet[Image]:
        return selectors.image_list_counted()

    @admin.display(description="versions", ordering="version_count")
    def version_count(self, image: Any) -> int:
        return image.version_count

    @admin.display(description="hosts", ordering="host_count")
    def host_count(self, image: Any) -> int:
        return image.host_count

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)

        class ImageForm(form):  # type: ignore[misc, valid-type]
            def clean_type(self) -> str:
                new_type = self.cleaned_data["type"]
                users = services.image_type_change_refused_by(image=self.instance, new_type=new_type)
                if users:
                    names = ", ".join(sorted({str(user) for user in users}))
                    raise ValidationError(f"In use by {names}: the type cannot change; change or delete those first.")
                return str(new_type)

        return ImageForm

    def create_with_service(self, data: dict[str, Any]) -> Image:
        return services.image_create(data=data)

    def save_with_service(self, obj: Image) -> None:
        services.image_update(image=obj, data={})

    def delete_with_service(self, obj: Image) -> None:
        services.image_delete(image=obj)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        versions = formset.save(commit=False)
        for version in formset.deleted_objects:
            services.image_version_delete(version=version)
        for version in versions:
            services.image_version_update(version=version, data={})


@admin.register(ImageVersion)
class ImageVersionAdmin(ServiceAdmin):
    list_display = ["__str__", "image", "version", "timestamp", "digest", "size"]
    list_filter = ["image__type", "image"]
    search_fields = ["image__name", "version", "digest"]
    autocomplete_fields = ["image"]
    date_hierarchy = "timestamp"

    def rows(self) -> QuerySet[ImageVersion]:
        return selectors.image_version_list()

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[ImageVersion], search_term: str
    ) -> tuple[QuerySet[ImageVersion], bool]:
        """The host form's version picker sends the chosen image (hosts/static/hosts/version_picker.js)."""
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        image = request.GET.get("image", "")
        if request.GET.get("field_name") == "image_version" and image.isdigit():
            queryset = queryset.filter(image_id=int(image))
        return queryset, may_have_duplicates

    def create_with_service(self, data: dict[str, Any]) -> ImageVersion:
        return services.image_version_create(data=data)

    def save_with_service(self, obj: ImageVersion) -> None:
        services.image_version_update(version=obj, data={})

    def delete_with_service(self, obj: ImageVersion) -> None:
        services.image_version_delete(version=obj)
