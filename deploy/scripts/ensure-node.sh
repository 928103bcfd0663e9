#!/usr/bin/env bash
# Installs Node.js and npm from Debian's packages when missing. The webhook
# end-to-end tests (cmd/exportd/webhook_e2e_test.go) install the Standard
# Webhooks reference verifier, the npm package standardwebhooks, into a temp
# directory and run every delivery through it.
set -euo pipefail
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
echo "installing nodejs and npm from Debian's packages..." >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1
