"""Admin plumbing shared by the apps, and the history of who did what."""

from typing import Any

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from dock2box.models import History
from dock2box.selectors import history_list


class SelectorAdmin(admin.ModelAdmin):
    """A model admin that reads its rows through the app's selector (`rows`), like every other interface."""

    def rows(self) -> QuerySet[Any]:
        raise NotImplementedError

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        ordering = self.get_ordering(request)
        return self.rows().order_by(*ordering) if ordering else self.rows()


class CompactTabularInline(admin.TabularInline):
    """A tabular inline whose inputs take their column's width, so the table fits a 1366-pixel page."""

    class Media:
        css = {"all": ["dock2box/inline.css"]}


class ServiceAdmin(SelectorAdmin):
    """A model admin whose writes go through the app's services (and reads through its selectors).

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


@admin.register(History)
class HistoryAdmin(SelectorAdmin):
    """Who did what to every object, read-only: the services write it."""

    list_display = ["time", "kind", "name", "actor", "action", "detail"]
    list_filter = ["kind", "action"]
    search_fields = ["name", "actor", "detail"]
    date_hierarchy = "time"

    def rows(self) -> QuerySet[History]:
        return history_list()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
