"""The Dock2Box installer: runs in the boot environment and lays the host's image on its disk.

It only uses the standard library and the portal's own `images.layers` and `images.registry` (copied into the boot
environment beside it), so whiteouts and registry pulls have one implementation, tested on the build machine.
"""
