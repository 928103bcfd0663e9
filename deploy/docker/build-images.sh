#!/usr/bin/env bash
# Builds every image of the local stack (deploy/compose.local.yaml) without an
# image registry: a Debian bookworm base from debootstrap, imported as
# local/debian:bookworm, and on it
#
#   local/exportd:deploy      the static binary built here (CGO_ENABLED=0), uid 65532
#   local/clickhouse:deploy   Debian's clickhouse-server (18.16)
#   local/postgres:deploy     Debian's postgresql-15
#   local/nginx:deploy        Debian's nginx (1.22)
#   local/prometheus:deploy   Debian's prometheus (2.42)
#   local/versitygw:deploy    versitygw (S3), built here from the Go module proxy
#
# Cache: each image carries a label with the hash of its inputs (the base
# image's id, its Dockerfile and every file copied in); an image whose label
# matches is not built again. EXPORTD_DEPLOY_WORK (default
# /var/tmp/exportd-deploy) holds the base's root file system and the build
# contexts; DEBIAN_MIRROR picks the mirror.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=deploy/docker
work="${EXPORTD_DEPLOY_WORK:-/var/tmp/exportd-deploy}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
base=local/debian:bookworm
export DOCKER_BUILDKIT=0 # the legacy builder: no buildx plugin needed, and nothing to pull
log() { printf '[%s] build-images: %s\n' "$(date -u +%T)" "$*" >&2; }
die() { log "$*"; exit 1; }

docker info >/dev/null 2>&1 || die "no Docker engine (docker info fails): start dockerd first (deploy/README.md)"
mkdir -p "$work"

if ! docker image inspect "$base" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || die "debootstrap missing: apt-get install debootstrap"
  log "base: debootstrap --variant=minbase bookworm (a few minutes, once)"
  rm -rf "$work/rootfs"
  debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    die "debootstrap failed: see $work/debootstrap.log"
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
  tar -C "$work/rootfs" -c . | docker import -c 'ENV LANG=C.UTF-8' - "$base" >/dev/null
  rm -rf "$work/rootfs"
fi
base_id="$(docker image inspect -f '{{.Id}}' "$base")"

# build NAME CONTEXT: builds local/NAME:deploy from CONTEXT unless its inputs are unchanged.
build() {
  local name="$1" ctx="$2" tag="local/$1:deploy" sum have start
  sum="$( { echo "$base_id"; (cd "$ctx" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum); } | sha256sum | cut -c1-20)"
  have="$(docker image inspect -f '{{index .Config.Labels "org.exportd.inputs"}}' "$tag" 2>/dev/null || true)"
  if [ "$have" = "$sum" ]; then
    log "$tag: up to date ($sum)"
    return
  fi
  start=$SECONDS
  log "$tag: building ($sum)"
  docker build -q --label "org.exportd.inputs=$sum" -t "$tag" "$ctx" >"$work/build-$name.log" 2>&1 ||
    { tail -30 "$work/build-$name.log" >&2; die "$tag: build failed"; }
  log "$tag: built in $((SECONDS - start))s"
}

# stage NAME: a fresh build context holding deploy/docker/NAME/*.
stage() {
  rm -rf "$work/ctx/$1"
  mkdir -p "$work/ctx/$1"
  cp -p "$here/$1/"* "$work/ctx/$1/"
  echo "$work/ctx/$1"
}

ctx="$(stage exportd)"
# The version names the last commit that touched the binary's sources (and
# -dirty for uncommitted changes there), so that a commit elsewhere (docs,
# deploy files) does not change the binary and rebuild the image.
srcs=(go.mod go.sum cmd engine ingest metrics server)
version="${VERSION:-$(git log -1 --format=%h -- "${srcs[@]}" 2>/dev/null || echo dev)}"
if [ -z "${VERSION:-}" ] && ! git diff --quiet HEAD -- "${srcs[@]}" 2>/dev/null; then version="$version-dirty"; fi
log "exportd $version: go build (static)"
CGO_ENABLED=0 GOOS=linux go build -trimpath -buildvcs=false -ldflags="-s -w -X main.version=$version" \
  -o "$ctx/exportd" ./cmd/exportd
build exportd "$ctx"

deploy/scripts/ensure-s3.sh
gw="${EXPORTD_VERSITYGW:-}"
[ -n "$gw" ] || gw="$(command -v versitygw || echo "$(go env GOPATH)/bin/versitygw")"
ctx="$(stage s3)"
cp "$gw" "$ctx/versitygw"
build versitygw "$ctx"

for name in clickhouse postgres nginx prometheus; do
  build "$name" "$(stage "$name")"
done
