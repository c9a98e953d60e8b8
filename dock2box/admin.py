"""Admin plumbing shared by the apps."""

from typing import Any

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest


class ServiceAdmin(admin.ModelAdmin):
    """A model admin whose writes go through the app's services, like every other interface.

    A new object is made by `create_with_service` from the form's values; a changed one (the form has set its fields)
    is validated and saved by `save_with_service`; `delete_with_service` deletes one.
    """

    def create_with_service(self, data: dict[str, Any]) -> Any:
        raise NotImplementedError

    def save_with_service(self, obj: Any) -> None:
        raise NotImplementedError

    def delete_with_service(self, obj: Any) -> None:
        raise NotImplementedError

    def save_model(self, request: HttpRequest, obj: Model, form: Any, change: bool) -> None:
        if change:
            self.save_with_service(obj)
            return
        fields = {field.name for field in obj._meta.get_fields() if getattr(field, "concrete", False)}
        created = self.create_with_service({name: value for name, value in form.cleaned_data.items() if name in fields})
        # The admin goes on with the form's object (its inlines attach to it): make it the created row.
        obj.pk = created.pk
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Model) -> None:
        self.delete_with_service(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for obj in queryset:
            self.delete_with_service(obj)
