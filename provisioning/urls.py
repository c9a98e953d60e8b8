"""Boot endpoints: scripts and configs for booting hosts and their installers; and /metrics."""

from django.urls import path, re_path

from provisioning import metrics
from provisioning.boot.views import boot_binary, boot_ipxe, host_ipxe, install_chosen
from provisioning.builds.views import booted, build_events, host_config
from provisioning.compat.pxe import pxe_compat
from provisioning.storage.views import stored_file

urlpatterns = [
    path("metrics", metrics.metrics, name="metrics"),
    path("boot.ipxe", boot_ipxe, name="boot-ipxe"),
    path("ipxe", host_ipxe, name="host-ipxe"),
    path("ipxe/install", install_chosen, name="install-chosen"),
    path("grub", host_ipxe, name="host-grub"),
    path("grub/install", install_chosen, name="install-chosen-grub"),
    path("boot/<str:name>", boot_binary, name="boot-binary"),
    re_path(r"^pxe/(?P<mac>[\s\S]*)\Z", pxe_compat, name="pxe-compat"),  # any path under it: a script, never a 404
    path("config/<str:token>", host_config, name="host-config"),
    path("config/<str:token>/events", build_events, name="build-events"),
    path("booted/<str:token>", booted, name="booted"),
    re_path(
        r"^files/(?P<area>boot|images)/(?P<image>[^/]+)/(?P<version>[^/]+)/(?P<kind>[^/]+)$",
        stored_file,
        name="stored-file",
    ),
]
