"""Inventory and addressing: sites, subnets, hosts with their BMCs and network interfaces."""

from hosts.models.machines import BMC_SECRETS, Bmc, Host, Interface, boot_order
from hosts.models.sites import SITE_SECRETS, Site
from hosts.models.subnets import Subnet

__all__ = ["BMC_SECRETS", "SITE_SECRETS", "Bmc", "Host", "Interface", "Site", "Subnet", "boot_order"]
