#!/bin/sh
# nginx before 1.27.3 has no `resolve` on upstream servers: drop it (the
# names are then resolved once, at start; compose starts the replicas first).
set -eu
conf=/etc/nginx/nginx.conf
case "$(nginx -v 2>&1)" in
*nginx/1.1[0-9].* | *nginx/1.2[0-6].* | *nginx/1.27.[0-2])
  sed -e 's/[[:space:]]resolve;/;/' "$conf" >/tmp/nginx.conf
  conf=/tmp/nginx.conf
  ;;
esac
nginx -t -q -c "$conf"
exec nginx -c "$conf" -g 'daemon off;'
