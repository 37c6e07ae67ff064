#!/usr/bin/env bash
# Install PostgreSQL's server binaries (Debian package) for tests/test_database_postgres.py,
# which starts its own cluster with initdb and pg_ctl on a free port in a temp dir. Idempotent:
# does nothing when initdb is already there. Never starts the packaged service. Without root
# or apt-get it only says so: those tests then skip.
set -euo pipefail

if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "PostgreSQL not found and not installable here (needs root and apt-get):" \
    "apt-get install postgresql; tests/test_database_postgres.py will skip" >&2
  exit 0
fi

echo "installing postgresql (Debian package)"
bash "$(dirname "$0")/apt-install.sh" postgresql

compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || {
  echo "apt-get installed postgresql but no initdb under /usr/lib/postgresql" >&2
  exit 1
}
