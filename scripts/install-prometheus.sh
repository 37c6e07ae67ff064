#!/usr/bin/env bash
# Install the real `prometheus` and `promtool` (Debian package) for tests/test_deploy.py, which
# checks the rule files and dashboards `shipyard deploy` writes with them. Idempotent: does
# nothing when both are on PATH. Never starts the prometheus service (the tests start their
# own, on a free port). Without root or apt-get it only says so: the tests then skip.
set -euo pipefail

if command -v promtool >/dev/null && command -v prometheus >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "prometheus/promtool not found and not installable here (needs root and apt-get):" \
    "apt-get install prometheus; tests/test_deploy.py will skip" >&2
  exit 0
fi

echo "installing prometheus and promtool (Debian package)"
bash "$(dirname "$0")/apt-install.sh" prometheus

command -v promtool >/dev/null && command -v prometheus >/dev/null || {
  echo "apt-get installed prometheus but promtool/prometheus are not on PATH" >&2
  exit 1
}
