import importlib

from django.apps import AppConfig

# The rooms with Celery tasks (Celery's autodiscovery finds an app's own `tasks` module only). Each task keeps the
# name it had when they all lived in `provisioning/tasks.py`: beat schedules and queued messages name tasks.
TASK_MODULES = ["provisioning.boot.tasks", "provisioning.mirror.tasks", "provisioning.power.tasks"]


class ProvisioningConfig(AppConfig):
    name = "provisioning"

    def ready(self) -> None:
        from dock2box.changes import on_commit_subscribe
        from provisioning.mirror.tasks import outbox_drain

        for module in TASK_MODULES:
            importlib.import_module(module)

        # Every commit that changed a mirrored document wakes the mirror (a task; in-process without a broker).
        on_commit_subscribe(outbox_drain.delay)
