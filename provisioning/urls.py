"""Boot endpoints: scripts and configs for booting hosts and their installers; and /metrics."""

from django.urls import path, re_path

from provisioning import metrics, views

urlpatterns = [
    path("metrics", metrics.metrics, name="metrics"),
    path("boot.ipxe", views.boot_ipxe, name="boot-ipxe"),
    path("ipxe", views.host_ipxe, name="host-ipxe"),
    path("ipxe/install", views.install_chosen, name="install-chosen"),
    path("pxe/<str:mac>", views.pxe_compat, name="pxe-compat"),
    path("config/<str:token>", views.host_config, name="host-config"),
    path("config/<str:token>/events", views.build_events, name="build-events"),
    path("booted/<str:token>", views.booted, name="booted"),
    re_path(
        r"^files/(?P<area>boot|images)/(?P<image>[^/]+)/(?P<version>[^/]+)/(?P<kind>[^/]+)$",
        views.stored_file,
        name="stored-file",
    ),
]
