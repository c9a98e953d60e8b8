# One image for every Dock2Box process: web (gunicorn), worker and beat (celery), tftp (manage.py tftpd).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DOCK2BOX_VAR_DIR=/var/lib/dock2box \
    DOCK2BOX_STATIC_ROOT=/app/static

# ipxe: the binaries the TFTP server hands out; postgresql-client: pg_dump and psql for backup and restore; the rest
# goes into the installer's boot environment (`manage.py bootenv`, which also downloads the kernel and busybox-static
# with apt-get: the package lists stay in the image for it).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ipxe postgresql-client \
       fdisk e2fsprogs dosfstools lvm2 extlinux syslinux-common kmod cpio systemd-boot-efi python3.11-minimal \
       libpython3.11-stdlib ca-certificates
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput -v0 \
    && useradd --system --home /var/lib/dock2box dock2box \
    && mkdir -p /var/lib/dock2box/media /var/lib/dock2box/backups && chown -R dock2box /var/lib/dock2box
USER dock2box
EXPOSE 8000 69/udp
CMD ["gunicorn", "dock2box.wsgi", "--config", "deploy/gunicorn.conf.py"]
