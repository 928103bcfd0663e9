#!/usr/bin/env bash
# Installs ClickHouse from Debian's packages when clickhouse-server is missing.
# The package's attempt to start a system service is refused in containers;
# that is harmless: exportd's tests and `make run` start private instances.
set -euo pipefail
if command -v clickhouse-server >/dev/null 2>&1 || [ -x /usr/bin/clickhouse-server ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
echo "installing clickhouse-server and clickhouse-client from Debian's packages..." >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clickhouse-server clickhouse-client >/dev/null || true
if ! command -v clickhouse-server >/dev/null 2>&1 && [ ! -x /usr/bin/clickhouse-server ]; then
  echo "clickhouse-server could not be installed" >&2
  exit 1
fi
