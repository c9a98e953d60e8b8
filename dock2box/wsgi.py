"""WSGI entry point: `gunicorn dock2box.wsgi`."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dock2box.settings")

application = get_wsgi_application()
