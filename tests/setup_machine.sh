#!/usr/bin/env bash
# Make this machine able to run the test suite: Debian packages, and a reachable PostgreSQL and Redis.
# Idempotent and quick when everything is there; run by `make test` (and so by .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
# A mirror that hiccups once must not fail the whole run.
retry() { for attempt in 1 2 3; do "$@" && return 0; echo "retrying ($attempt): $*"; sleep 10; done; "$@"; }

mapfile -t wanted < <(grep -v '^\s*#' tests/debian-packages.txt | grep -v '^\s*$')
missing=()
for package in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "Installing Debian packages: ${missing[*]}"
  retry as_root apt-get update -q
  retry as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "Starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "Starting Redis"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432
redis-cli -h 127.0.0.1 -p 6379 ping
# A PostgreSQL installed here fresh asks for passwords: let the suite's user in from loopback, as CI's machines do.
if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1" >/dev/null 2>&1; then
  echo "Allowing postgres from 127.0.0.1 without a password (test machine)"
  hba=$(as_root runuser -u postgres -- psql -tAc "SHOW hba_file")
  as_root sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
  as_root runuser -u postgres -- psql -qc "SELECT pg_reload_conf()"
fi
# The database named by the test DATABASE_URL (makemigrations --check looks at it; pytest makes test_dock2box).
psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'dock2box'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE dock2box" >/dev/null
