#!/usr/bin/env bash
# `make run`: bring the local stack up from nothing on a Debian machine.
#  1. ClickHouse: EXPORTD_CLICKHOUSE_DSN if set; else whatever answers on
#     127.0.0.1:9000; else a private server under .local/clickhouse
#     (installing Debian's clickhouse-server first if missing).
#  2. PostgreSQL (the control plane): EXPORTD_POSTGRES_DSN if set; else a
#     private server under .local/postgres (installing Debian's postgresql
#     first if missing; run as the postgres user when we are root).
#  3. exportd migrate; demo data once (1.2M rows over 3 enterprises;
#     EXPORTD_DEMO_ROWS sets another count).
#  4. A token and ready-to-paste curl lines; then exportd serve.
# Under pipefail, never pipe into a reader that may exit before its input
# ends (head, grep -q, ...): deploy/runscript_test.go checks every script.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .local bin
go build -o bin/exportd ./cmd/exportd
go build -o bin/devch ./cmd/devch

if [ -z "${EXPORTD_CLICKHOUSE_DSN:-}" ]; then
  if (exec 3<>/dev/tcp/127.0.0.1/9000) 2>/dev/null; then
    export EXPORTD_CLICKHOUSE_DSN="clickhouse://127.0.0.1:9000/default"
    echo "using the ClickHouse answering on 127.0.0.1:9000"
  else
    deploy/scripts/ensure-clickhouse.sh
    EXPORTD_CLICKHOUSE_DSN="$(bin/devch start --dir .local/clickhouse)"
    export EXPORTD_CLICKHOUSE_DSN
    echo "using private ClickHouse $EXPORTD_CLICKHOUSE_DSN (data in .local/clickhouse; stop: bin/devch stop)"
  fi
fi
if [ -z "${EXPORTD_POSTGRES_DSN:-}" ]; then
  deploy/scripts/ensure-postgres.sh
  EXPORTD_POSTGRES_DSN="$(bin/devch start-pg --dir .local/postgres)"
  export EXPORTD_POSTGRES_DSN
  echo "using private PostgreSQL $EXPORTD_POSTGRES_DSN (data in .local/postgres; stop: bin/devch stop-pg)"
fi
export EXPORTD_STORAGE_URL="${EXPORTD_STORAGE_URL:-file://./.local/exports}"
export EXPORTD_SIGNING_KEY="${EXPORTD_SIGNING_KEY:-./.local/signing-key.pem}"
export EXPORTD_HTTP_ADDR="${EXPORTD_HTTP_ADDR:-127.0.0.1:8080}"

bin/exportd migrate
SEED=1
bin/exportd ingest --generate "${EXPORTD_DEMO_ROWS:-1200000}" --enterprises 3 --seed "$SEED" --once
# The first demo enterprise, printed alone: no pipe into an early-exiting reader
# such as head under pipefail (the writer could die of SIGPIPE: exit 141).
ENTERPRISE="$(bin/exportd ingest --print-enterprises --enterprises 1 --seed "$SEED")"
TOKEN="$(bin/exportd token --sub users/00000000-0000-4000-8000-000000000001 \
  --capability operations_reports.create --capability operations_reports.read \
  --scope "$ENTERPRISE:subtree" --ttl 24h)"
BASE="http://$EXPORTD_HTTP_ADDR"
cat <<EOT

exportd is starting on $BASE (metrics on http://${EXPORTD_ADMIN_ADDR:-127.0.0.1:9464}/metrics)
Demo enterprise: $ENTERPRISE

export TOKEN='$TOKEN'

# create an export (Prefer: wait=30 holds the response up to 30 s: small exports come back "ready"):
ID=\$(curl -sS -X POST $BASE/operations-activity-exports \\
  -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' -H 'Prefer: wait=30' \\
  -d '{"format":"csv","filter_criteria":{"date_from_utc":"2026-04-01T00:00:00Z","date_to_utc":"2026-04-30T23:59:59Z"},"requested_scope":{"kind":"enterprise","ref":"$ENTERPRISE"},"compression":"none"}' \\
  | tee /dev/stderr | sed -n 's/.*"id":"\([^"]*\)".*/\1/p'); echo

# poll it, then download it:
curl -sS $BASE/operations-activity-exports/\$ID -H "Authorization: Bearer \$TOKEN"; echo
curl -sS -o export.csv $BASE/operations-activity-exports/\$ID/download -H "Authorization: Bearer \$TOKEN" && wc -l export.csv

EOT
exec bin/exportd serve
