"""factory-boy factories: rows for tests, saved directly (the services are tested on their own)."""

from datetime import UTC, datetime

import factory

from hosts.models import Bmc, Host, Interface, Site, Subnet
from images.models import Image, ImageVersion
from provisioning.models import BootDefaults, Build, PxeMenu, PxeMenuItem


class ImageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Image

    name = factory.Sequence(lambda n: f"image-{n}")
    type = "docker"


class BootImageFactory(ImageFactory):
    name = factory.Sequence(lambda n: f"bootenv-{n}")
    type = "boot"


class ImageVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ImageVersion

    image = factory.SubFactory(ImageFactory)
    version = factory.Sequence(lambda n: f"v{n}")
    timestamp = factory.Sequence(lambda n: datetime(2026, 1, 1, tzinfo=UTC).replace(minute=n % 60, hour=n // 60 % 24))


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site

    name = factory.Sequence(lambda n: f"site{n}")
    domain = "example.com"


class SubnetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subnet

    network = factory.Sequence(lambda n: f"10.{n // 256 % 256}.{n % 256}.0/24")
    site = factory.SubFactory(SiteFactory)


class HostFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Host

    fqdn = factory.Sequence(lambda n: f"host{n}.example.com")
    site = factory.SubFactory(SiteFactory)


class InterfaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Interface

    host = factory.SubFactory(HostFactory)
    name = "eth0"
    mac = factory.Sequence(lambda n: f"52:54:00:{n // 65536 % 256:02x}:{n // 256 % 256:02x}:{n % 256:02x}")
    primary = True


class BmcFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Bmc

    host = factory.SubFactory(HostFactory)
    address = factory.Sequence(lambda n: f"10.9.{n // 256 % 256}.{n % 256}")
    username = "admin"
    password = "bmc-password"


class PxeMenuFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PxeMenu

    name = factory.Sequence(lambda n: f"menu{n}")


class PxeMenuItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PxeMenuItem

    menu = factory.SubFactory(PxeMenuFactory)
    key = factory.Sequence(lambda n: f"item{n}")
    label = "An item"
    commands = "shell"


class BuildFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Build

    host = factory.SubFactory(HostFactory)
    token = factory.Sequence(lambda n: f"token-{n:040d}")


class InstallableHostFactory(HostFactory):
    """A host that can enter build mode: a primary NIC, a docker image with a version from its site's registry, and a
    boot environment in the boot defaults (set when there is none)."""

    site = factory.SubFactory(SiteFactory, registry="registry.example.com")
    image = factory.LazyFunction(lambda: ImageVersionFactory().image)
    interface = factory.RelatedFactory(InterfaceFactory, factory_related_name="host")

    class Meta:
        skip_postgeneration_save = True

    @factory.post_generation
    def boot_environment(self, create: bool, extracted: object, **kwargs: object) -> None:
        defaults, _ = BootDefaults.objects.get_or_create(pk=1)
        if create and defaults.boot_version_id is None:
            defaults.boot_version = ImageVersionFactory(
                image=BootImageFactory(),
                kernel_url="http://files.example.com/bootenv/kernel",
                initrd_url="http://files.example.com/bootenv/initrd",
            )
            defaults.save()
