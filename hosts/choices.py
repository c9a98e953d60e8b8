from django.db import models


class HostStatus(models.TextChoices):
    NEW = "new", "New"
    BUILDING = "building", "Building"
    INSTALLED = "installed", "Installed"
    FAILED = "failed", "Failed"
    UNCONFIRMED = "unconfirmed", "Installed, unconfirmed"
    DEPLOYED = "deployed", "Deployed"  # its installed system reported its first boot


class BmcProtocol(models.TextChoices):
    IPMI = "ipmi", "IPMI over LAN"


class PowerState(models.TextChoices):
    ON = "on", "On"
    OFF = "off", "Off"
    UNREACHABLE = "unreachable", "BMC unreachable"
    UNKNOWN = "unknown", "Unknown"


class PowerAction(models.TextChoices):
    STATUS = "status", "Status"
    ON = "on", "Power on"
    OFF = "off", "Power off"
    CYCLE = "cycle", "Power cycle"
    REINSTALL = "reinstall", "Reinstall"
