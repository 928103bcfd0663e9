#!/bin/sh
# nginx before 1.27.3 has no `resolve` on upstream servers: drop it (the
# names are then resolved once, at start; compose starts the replicas first).
set -eu
conf=/etc/nginx/nginx.conf
if nginx -V 2>&1 | grep -q 'nginx/1\.2[0-6]\.'; then
  sed -e 's/[[:space:]]resolve;/;/' "$conf" >/tmp/nginx.conf
  conf=/tmp/nginx.conf
fi
nginx -t -q -c "$conf"
exec nginx -c "$conf" -g 'daemon off;'
