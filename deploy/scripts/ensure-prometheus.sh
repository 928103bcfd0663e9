#!/usr/bin/env bash
# Installs Prometheus and promtool from Debian's `prometheus` package when
# promtool is missing. deploy/prometheus_test.go runs `promtool check rules`,
# `promtool test rules` and a private `prometheus` (temp data dir, loopback
# port) scraping a real `exportd serve`; the package's own service is not used
# and must not be started: a policy-rc.d that refuses every start is put in
# place for the install when the machine has none, and the unit is stopped and
# disabled afterwards where systemd runs.
set -euo pipefail
if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
policy=/usr/sbin/policy-rc.d
placed=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
  placed=1
fi
cleanup() { if [ -n "$placed" ]; then $SUDO rm -f "$policy"; fi; }
trap cleanup EXIT
echo "installing prometheus (prometheus, promtool) from Debian's packages..." >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null || true
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  echo "prometheus could not be installed" >&2
  exit 1
fi
