#!/usr/bin/env bash
# Installs PostgreSQL's server programs from Debian's packages when missing.
# Tests, `make run` and the benchmarks start private servers (engine/pgstore/pglocal)
# as the postgres user; the package's own cluster is not used.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
echo "installing postgresql from Debian's packages..." >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null || true
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  echo "postgresql could not be installed" >&2
  exit 1
fi
