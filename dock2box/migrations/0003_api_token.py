from django.db import migrations


def forget_logged_keys(apps, schema_editor):
    """The admin's "Recent actions" named a token by its key (its `str()`): they name it by its kind from now on."""
    log_entries = apps.get_model("admin", "LogEntry")
    content_types = apps.get_model("contenttypes", "ContentType")
    token_types = content_types.objects.filter(app_label="authtoken")
    log_entries.objects.filter(content_type__in=token_types).update(object_repr="API token")


class Migration(migrations.Migration):
    dependencies = [
        ("admin", "0003_logentry_add_action_flag_choices"),
        ("authtoken", "0004_alter_tokenproxy_options"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("dock2box", "0002_history"),
    ]

    operations = [
        migrations.CreateModel(
            name="ApiToken",
            fields=[],
            options={
                "verbose_name": "API token",
                "proxy": True,
                "indexes": [],
                "constraints": [],
            },
            bases=("authtoken.tokenproxy",),
        ),
        migrations.RunPython(forget_logged_keys, migrations.RunPython.noop),
    ]
