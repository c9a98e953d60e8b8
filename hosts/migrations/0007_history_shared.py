# The host history moves into the history every object shares (dock2box.History); its lines are kept.

from django.db import migrations


def copy_lines(apps, schema_editor):
    HostHistory = apps.get_model("hosts", "HostHistory")
    History = apps.get_model("dock2box", "History")
    lines = [
        # A line of a host deleted before the move lost its id (0): its name stays.
        History(kind="host", object_id=line.host_id or 0, name=line.fqdn, actor=line.actor, action=line.action,
                detail=line.detail)
        for line in HostHistory.objects.order_by("id")
    ]
    made = History.objects.bulk_create(lines)
    for line, old in zip(made, HostHistory.objects.order_by("id"), strict=True):
        line.time = old.time  # auto_now_add set it to now on create
    History.objects.bulk_update(made, ["time"])


class Migration(migrations.Migration):

    dependencies = [
        ("hosts", "0006_host_history"),
        ("dock2box", "0002_history"),
    ]

    operations = [
        migrations.RunPython(copy_lines, migrations.RunPython.noop),
        migrations.DeleteModel(
            name="HostHistory",
        ),
    ]
