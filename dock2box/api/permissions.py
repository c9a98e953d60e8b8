from typing import Any

from rest_framework.permissions import SAFE_METHODS, DjangoModelPermissions
from rest_framework.request import Request


class ModelPermissions(DjangoModelPermissions):
    """Reading needs the model's view or change permission (as in the admin, where change implies view), writing its
    add/change/delete permission."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if request.method not in SAFE_METHODS or not (user and user.is_authenticated):
            return super().has_permission(request, view)
        if getattr(view, "_ignore_model_permissions", False):
            return True
        meta = self._queryset(view).model._meta
        return any(user.has_perm(f"{meta.app_label}.{action}_{meta.model_name}") for action in ("view", "change"))
