from django.apps import AppConfig


class ProvisioningConfig(AppConfig):
    name = "provisioning"

    def ready(self) -> None:
        from dock2box.changes import on_commit_subscribe
        from provisioning.tasks import outbox_drain

        # Every commit that changed a mirrored document wakes the mirror (a task; in-process without a broker).
        on_commit_subscribe(outbox_drain.delay)
