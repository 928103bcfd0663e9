#!/usr/bin/env bash
# Installs Debian's `chromium` when missing. cmd/exportd/console_e2e_test.go
# drives it headless (chromedp) against a real `exportd serve` to test the
# console (GET /console/). Idempotent: does nothing when chromium is on PATH.
# Waits (up to 10 min) for another apt run to release the dpkg lock.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
echo "installing chromium from Debian's packages..." >&2
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium >/dev/null
if ! command -v chromium >/dev/null 2>&1; then
  echo "chromium could not be installed" >&2
  exit 1
fi
