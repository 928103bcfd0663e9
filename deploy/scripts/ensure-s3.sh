#!/usr/bin/env bash
# Installs Versity's S3 gateway (versitygw), the S3-compatible server that the
# storage tests start privately (POSIX backend, loopback port, temp dir), from
# the Go module proxy into $(go env GOPATH)/bin when it is missing. The build
# takes about three minutes on a fresh machine. Set VERSITYGW_VERSION to pin
# another release.
set -euo pipefail
version="${VERSITYGW_VERSION:-v1.8.0}"
bindir="$(go env GOPATH)/bin"
if [ -n "${EXPORTD_VERSITYGW:-}" ] && [ -x "$EXPORTD_VERSITYGW" ]; then exit 0; fi
if [ -x "$bindir/versitygw" ] || command -v versitygw >/dev/null 2>&1; then exit 0; fi
echo "installing versitygw $version into $bindir (go install)..." >&2
GOBIN="$bindir" GOFLAGS=-buildvcs=false go install "github.com/versity/versitygw/cmd/versitygw@$version"
if [ ! -x "$bindir/versitygw" ]; then
  echo "versitygw could not be installed" >&2
  exit 1
fi
