"""URLs: the admin (the main UI), /api/v2 and its schema, and the apps' boot endpoints."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from dock2box import health
from dock2box.api.views import ApiRootView

api_v2 = [
    path("", ApiRootView.as_view(), name="api-root"),
    path("", include("images.api.urls")),
    path("", include("hosts.api.urls")),
    path("", include("provisioning.api.urls")),
    path("", include("dock2box.api.urls")),
]

urlpatterns = [
    path("", include("provisioning.urls")),  # first: the boot endpoints are the busiest, resolved in one step
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("api/v2/", include(api_v2)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api-auth/", include("rest_framework.urls")),
    path("", include("provisioning.compat.urls")),
]
