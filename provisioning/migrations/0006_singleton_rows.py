"""The one-row tables get their row here, so reads never have to create it."""

from django.db import migrations


def create_rows(apps, schema_editor):
    for name in ("BootDefaults", "MirrorState"):
        apps.get_model("provisioning", name).objects.get_or_create(pk=1)


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0005_build_client_binding"),
    ]

    operations = [migrations.RunPython(create_rows, migrations.RunPython.noop)]
