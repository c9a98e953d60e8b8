"""The provisioning admin, one module per room; importing this package registers them all."""

from provisioning.admin import builds, catalogue, discovery, hosts, images, mirror

__all__ = ["builds", "catalogue", "discovery", "hosts", "images", "mirror"]
