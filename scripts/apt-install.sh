#!/usr/bin/env bash
# Install Debian packages without letting their maintainer scripts start a service (the tests
# start their own servers, on free ports): `bash scripts/apt-install.sh PACKAGE...`, as root.
set -euo pipefail

# A policy-rc.d that answers 101 keeps the maintainer scripts from starting services; ours is
# removed again afterwards, one that was there before is left alone.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  own_policy=1
fi
trap 'if [ "$own_policy" = 1 ]; then rm -f "$policy"; fi' EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "$@" >/dev/null
