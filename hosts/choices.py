from django.db import models


class HostStatus(models.TextChoices):
    NEW = "new", "New"
    BUILDING = "building", "Building"
    INSTALLED = "installed", "Installed"
    FAILED = "failed", "Failed"
    UNCONFIRMED = "unconfirmed", "Installed, unconfirmed"
