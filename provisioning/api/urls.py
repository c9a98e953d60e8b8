from django.urls import path
from rest_framework.routers import SimpleRouter

from provisioning.api import views

router = SimpleRouter()
router.register("pxe-menus", views.PxeMenuViewSet)
router.register("pxe-menu-items", views.PxeMenuItemViewSet)
router.register("builds", views.BuildViewSet)
router.register("discovered-hosts", views.DiscoveredHostViewSet)
router.register("boot-templates", views.BootTemplateViewSet)

urlpatterns = [
    path("boot-defaults/", views.BootDefaultsView.as_view(), name="bootdefaults-detail"),
    path("mirror/", views.MirrorStatusView.as_view(), name="mirror-status"),
    path("hosts/<int:pk>/enter-build/", views.HostEnterBuildView.as_view(), name="host-enter-build"),
    path("hosts/<int:pk>/cancel-build/", views.HostCancelBuildView.as_view(), name="host-cancel-build"),
    path("hosts/<int:pk>/power/", views.HostPowerView.as_view(), name="host-power"),
    path("power/", views.PowerBulkView.as_view(), name="power"),
    path("hosts/<int:pk>/config/", views.HostConfigPreviewView.as_view(), name="host-config-preview"),
    path("image-versions/<int:pk>/resolve/", views.ImageVersionResolveView.as_view(), name="imageversion-resolve"),
    *router.urls,
]
