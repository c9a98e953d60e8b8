# One image for every Dock2Box process: web (gunicorn), worker and beat (celery).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DOCK2BOX_VAR_DIR=/var/lib/dock2box \
    DOCK2BOX_STATIC_ROOT=/app/static

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput -v0 \
    && useradd --system --home /var/lib/dock2box dock2box \
    && mkdir -p /var/lib/dock2box && chown dock2box /var/lib/dock2box
USER dock2box
EXPOSE 8000
CMD ["gunicorn", "dock2box.wsgi", "--bind", "0.0.0.0:8000", "--workers", "4", "--access-logfile", "-"]
