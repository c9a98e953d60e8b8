"""Admin plumbing shared by the apps, the history of who did what, and API tokens."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import admin as auth_admin
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Model, QuerySet
from django.forms.fields import InvalidJSONInput
from django.http import HttpRequest
from django.utils.safestring import SafeData, mark_safe
from rest_framework.authtoken.admin import TokenAdmin
from rest_framework.authtoken.models import TokenProxy

from dock2box.jsonbody import parse_json
from dock2box.models import ApiToken, History
from dock2box.selectors import history_list


class BoundedJSONField(forms.JSONField):
    """A JSON form field parsed as request bodies are (`dock2box.jsonbody`): nesting beyond its bound is a form error,
    not a RecursionError and a 500."""

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and value.strip() and not self.disabled:
            try:
                parse_json(value)
            except ValueError as error:
                raise ValidationError(f"Not JSON as this field takes it: {error}.", code="invalid") from error
        return super().to_python(value)

    def bound_data(self, data: Any, initial: Any) -> Any:
        if isinstance(data, str) and not self.disabled:  # shown again as sent, where it cannot be parsed
            try:
                parse_json(data)
            except ValueError:
                return InvalidJSONInput(data)
        return super().bound_data(data, initial)


class SelectorAdmin(admin.ModelAdmin):
    """A model admin that reads its rows through the app's selector (`rows`), like every other interface."""

    formfield_overrides = {models.JSONField: {"form_class": BoundedJSONField}}

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


admin.site.unregister(TokenProxy)


@admin.register(ApiToken)
class ApiTokenAdmin(TokenAdmin):
    """API tokens. A token acts as its user, so only superusers see or make them (a user's `change` permission is
    not enough: a token of a superuser is a superuser), and nobody reads a key after it was made: it is shown once,
    in the message that says it was created, and by its first four characters after."""

    list_display = ["user", "key_hint", "created"]
    list_filter = ["created"]

    @admin.display(description="key")
    def key_hint(self, token: ApiToken) -> str:
        return token.key_hint

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.has_module_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a token is made or deleted, never edited

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def save_model(self, request: HttpRequest, obj: Model, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        assert isinstance(obj, ApiToken)
        messages.warning(
            request, f"The key of {obj}: {obj.key} — copy it now: it is not shown again (Authorization: Token <key>)."
        )


class UserAdmin(auth_admin.UserAdmin):
    """Django's user admin. Deleting a user lists what goes with it, its API token too, whose own string is its key:
    there by its first four characters only."""

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        deleted, counts, needed, protected = super().get_deleted_objects(objs, request)
        hints = {token.key: token.key_hint for token in ApiToken.objects.filter(user__in=list(objs))}
        return _masked(deleted, hints), counts, needed, protected


def _masked(items: list[Any], hints: dict[str, str]) -> list[Any]:
    masked: list[Any] = []
    for item in items:
        if isinstance(item, list):
            masked.append(_masked(item, hints))
            continue
        text = str(item)
        for key, hint in hints.items():
            text = text.replace(key, hint)
        masked.append(mark_safe(text) if isinstance(item, SafeData) else text)  # noqa: S308 (only a key replaced)
    return masked


admin.site.unregister(User)
admin.site.register(User, UserAdmin)
