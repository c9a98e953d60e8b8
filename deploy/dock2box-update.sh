#!/usr/bin/env bash
# Update Dock2Box: back up, fetch the new version, migrate, restart. As the original's dock2box-update.sh did.
#   deploy/dock2box-update.sh            (a native install in /opt/dock2box, systemd units from deploy/systemd)
#   deploy/dock2box-update.sh --compose  (the docker compose stack in /etc/dock2box)
set -euo pipefail

if [ "${1:-}" = "--compose" ]; then
  cd /etc/dock2box
  docker compose exec -T web python manage.py backup
  docker compose pull
  systemctl restart dock2box   # the one-shot `migrate` service runs before web, worker, beat and tftp start
  exit 0
fi

cd /opt/dock2box
run() { runuser -u dock2box -- bash -c 'set -a; . /etc/dock2box/dock2box.env; set +a; exec "$@"' _ "$@"; }
run .venv/bin/python manage.py backup
git pull --ff-only
.venv/bin/pip install -q -r requirements.txt
run .venv/bin/python manage.py migrate --noinput
run .venv/bin/python manage.py collectstatic --noinput -v0
systemctl restart dock2box-web dock2box-worker dock2box-beat dock2box-tftp
