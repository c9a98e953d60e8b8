"""Admin plumbing shared by the apps."""

from typing import Any

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest


class ServiceAdmin(admin.ModelAdmin):
    """A model admin whose writes go through the app's services, like every other interface.

    The admin form has already set the fields on the object; `save_with_service` validates and saves it (inserting
    a new one), `delete_with_service` deletes it.
    """

    def save_with_service(self, obj: Any) -> None:
        raise NotImplementedError

    def delete_with_service(self, obj: Any) -> None:
        raise NotImplementedError

    def save_model(self, request: HttpRequest, obj: Model, form: Any, change: bool) -> None:
        self.save_with_service(obj)

    def delete_model(self, request: HttpRequest, obj: Model) -> None:
        self.delete_with_service(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for obj in queryset:
            self.delete_with_service(obj)
