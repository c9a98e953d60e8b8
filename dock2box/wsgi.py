"""WSGI entry point: `gunicorn dock2box.wsgi`. The apps' fronts (settings.WSGI_FRONTS, outermost first: the boot
path's front door) answer what they can before Django's handler."""

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.utils.module_loading import import_string

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dock2box.settings")

application = get_wsgi_application()
for front in reversed(settings.WSGI_FRONTS):
    application = import_string(front)(application)
