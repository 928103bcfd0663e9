#!/usr/bin/env bash
# make deploy-test: the deployment stack for real. Builds the local images
# (build-images.sh, cached), starts deploy/compose.yaml with
# deploy/compose.local.yaml (two exportd replicas behind nginx, ClickHouse,
# PostgreSQL, S3, Prometheus), waits for health, and walks the API through
# nginx on 127.0.0.1: create, poll, download + checksum, list, an
# idempotent replay answered by the other replica, cancel; checks that
# Prometheus scrapes both replicas and loaded the alert rules; then kills the
# replica that owns a running export (docker kill) and proves the export
# reads failed/shutdown within 60 s with no object and no multipart upload
# left in S3. The stack is removed (down -v) on success and on failure.
#
# Needs a running Docker engine, docker-compose (Debian's 1.29 works),
# debootstrap (first run), go, curl and jq. Settings:
#   DEPLOY_PROJECT    compose project name (default exportd-deploytest)
#   DEPLOY_KILL_ROWS  rows of the data set exported during the kill (default 1500000)
#   DEPLOY_KEEP=1     leave the stack running at the end (inspect, then down -v yourself)
set -euo pipefail
cd "$(dirname "$0")/../.."
t0=$SECONDS
project="${DEPLOY_PROJECT:-exportd-deploytest}"
kill_rows="${DEPLOY_KILL_ROWS:-1500000}"
work="${EXPORTD_DEPLOY_WORK:-/var/tmp/exportd-deploy}"
files=(-f deploy/compose.yaml -f deploy/compose.local.yaml)
ent=enterprises/31f5b693-b906-4f5a-af59-76ffc3ef6a2a # first demo enterprise of the seed service (--seed 1)
step=0

log() { printf '[%s +%4ds] %s\n' "$(date -u +%T)" $((SECONDS - t0)) "$*"; }
fail() { log "FAIL: $*"; exit 1; }
dc() { docker-compose -p "$project" "${files[@]}" "$@"; }
section() { step=$((step + 1)); log "== $step. $*"; }

for tool in docker docker-compose go curl jq; do
  command -v "$tool" >/dev/null || fail "$tool not found (deploy/README.md: Running the stack for real)"
done
docker info >/dev/null 2>&1 || fail "no Docker engine: docker info fails (start dockerd first)"

# free_port: a loopback port nothing listens on.
free_port() {
  local p
  for p in $(shuf -i 20000-60000 -n 50); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  fail "no free port"
}
export DEPLOY_BIND=127.0.0.1
DEPLOY_LB_PORT="$(free_port)" DEPLOY_PROMETHEUS_PORT="$(free_port)"
DEPLOY_MINIO_CONSOLE_PORT="$(free_port)" DEPLOY_GRAFANA_PORT="$(free_port)"
export DEPLOY_LB_PORT DEPLOY_PROMETHEUS_PORT DEPLOY_MINIO_CONSOLE_PORT DEPLOY_GRAFANA_PORT
api="http://127.0.0.1:$DEPLOY_LB_PORT"
prom="http://127.0.0.1:$DEPLOY_PROMETHEUS_PORT"

finish() {
  local rc=$?
  trap - EXIT
  if [ "$rc" != 0 ] && docker info >/dev/null 2>&1; then
    log "failed: state and recent logs of the stack"
    dc ps -a || true
    dc logs --no-color --tail 40 2>&1 | tail -300 || true
  fi
  if [ "${DEPLOY_KEEP:-}" = 1 ]; then
    log "DEPLOY_KEEP=1: stack left running (docker-compose -p $project ${files[*]} down -v)"
  else
    log "docker-compose down -v"
    dc down -v --remove-orphans >/dev/null 2>&1 || true
  fi
  if [ "$rc" = 0 ]; then
    log "deploy-test PASSED in $((SECONDS - t0))s"
  else
    log "deploy-test FAILED (exit $rc) after $((SECONDS - t0))s"
  fi
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

section "Kubernetes manifests (kustomize build, schema check)"
deploy/docker/check-k8s.sh

section "images (deploy/docker/build-images.sh)"
deploy/docker/build-images.sh

section "compose up (project $project; API $api, Prometheus $prom)"
dc down -v --remove-orphans >/dev/null 2>&1 || true
docker-compose -p "$project" -f deploy/compose.yaml config -q # the production file alone parses too
dc config -q
dc up -d --no-build 2>&1 | sed 's/^/    /'
published="$(docker ps --filter "label=com.docker.compose.project=$project" --format '{{.Ports}}' | tr ',' '\n' | grep -- '->' || true)"
beyond="$(grep -v '127\.0\.0\.1:' <<<"$published" || true)"
[ -z "$beyond" ] || fail "published beyond 127.0.0.1: $beyond"
log "published: $(echo $published)"

# cid SERVICE: the container of a service.
cid() { dc ps -q "$1"; }
# psql SQL: a query on the control plane, unaligned.
psql() { dc exec -T postgres psql -U exportd -d exportd -Atqc "$1"; }

section "health"
# One-shot services must exit 0; seed (1.2M rows) runs beside the replicas.
for svc in bucket migrate token seed; do
  code="$(docker wait "$(cid "$svc")")"
  [ "$code" = 0 ] || fail "$svc exited $code: $(docker logs --tail 20 "$(cid "$svc")" 2>&1)"
  log "$svc: exited 0"
done
deadline=$((SECONDS + 120))
ok=0
until [ "$ok" -ge 4 ]; do
  if [ "$(curl -s -o /dev/null -w '%{http_code}' "$api/readyz")" = 200 ]; then ok=$((ok + 1)); else ok=0; fi
  [ "$SECONDS" -lt "$deadline" ] || fail "readyz through nginx not 200 after 120s"
  sleep 0.5
done
for svc in exportd-a exportd-b; do
  [ "$(docker inspect -f '{{.State.Running}}' "$(cid "$svc")")" = true ] || fail "$svc is not running"
done
log "nginx and both replicas ready"

token="$(docker logs "$(cid token)" 2>/dev/null | tail -1)"
[ "$(echo "$token" | tr -cd . | wc -c)" = 2 ] || fail "token service printed no JWT: $token"

# api_call METHOD PATH [curl args...]: sets code, body (file $work/body) and
# rid (the X-Request-Id sent, logged by nginx with the upstream it chose).
mkdir -p "$work"
api_call() {
  local method="$1" path="$2"
  shift 2
  rid="deploy-test-$RANDOM$RANDOM"
  code="$(curl -sS -o "$work/body" -D "$work/headers" -w '%{http_code}' -X "$method" "$api$path" \
    -H "Authorization: Bearer $token" -H "X-Request-Id: $rid" "$@")"
  body="$(cat "$work/body")"
}
# upstream_of RID: the replica (exportd-a/exportd-b) nginx sent request RID to.
upstream_of() {
  local addr ip svc
  addr="$(docker logs "$(cid lb)" 2>&1 | grep -F "req_id=$1" | tail -1 | sed -n 's/.*upstream=\([^ ]*\).*/\1/p')"
  ip="${addr##*, }"
  ip="${ip%:*}"
  case "$ip" in
  "$ip_a") echo exportd-a ;;
  "$ip_b") echo exportd-b ;;
  *) echo "unknown($addr)" ;;
  esac
}
ip_of() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$(cid "$1")"; }
ip_a="$(ip_of exportd-a)" ip_b="$(ip_of exportd-b)"
field() { jq -r "$1" <<<"$body"; }
create_body() { # FROM TO COMPRESSION
  printf '{"format":"csv","filter_criteria":{"date_from_utc":"%s","date_to_utc":"%s"},"requested_scope":{"kind":"enterprise","ref":"%s"},"compression":"%s"}' \
    "$1" "$2" "$ent" "$3"
}
# poll_status ID WANT SECONDS: GET through nginx until status WANT.
poll_status() {
  local deadline=$((SECONDS + $3))
  while :; do
    api_call GET "/operations-activity-exports/$1"
    [ "$code" = 200 ] || fail "GET $1: $code $body"
    [ "$(field .status)" = "$2" ] && return
    case "$(field .status)" in pending | running) ;; *) fail "export $1 reads $(field .status)/$(field .failure_reason), want $2" ;; esac
    [ "$SECONDS" -lt "$deadline" ] || fail "export $1 still $(field .status) after $3s"
    sleep 0.5
  done
}

section "create, poll, download, checksum (through nginx)"
april="$(create_body 2026-04-01T00:00:00Z 2026-04-30T23:59:59Z zstd)"
key="deploy-test-$(date +%s)-$RANDOM"
api_call POST /operations-activity-exports -H 'Content-Type: application/json' -H 'Prefer: wait=0' -H "Idempotency-Key: $key" --data "$april"
[ "$code" = 201 ] || fail "create: $code $body"
id="$(field .id)"
first_rid="$rid"
log "created $id ($(field .status)) on $(upstream_of "$rid")"
poll_status "$id" ready 120
rows="$(field .row_count)" size="$(field .byte_size)" sum="$(field .checksum_sha256)"
[ "$rows" -gt 0 ] || fail "ready export has no rows: $body"
log "ready: $rows rows, $size bytes, sha256 $sum"
curl -sS -o "$work/download" -D "$work/headers" -w '' -H "Authorization: Bearer $token" "$api/operations-activity-exports/$id/download"
got_size="$(stat -c %s "$work/download")"
got_sum="$(sha256sum "$work/download" | cut -d' ' -f1)"
[ "$got_size" = "$size" ] || fail "download: $got_size bytes, resource says $size"
[ "$got_sum" = "$sum" ] || fail "download: sha256 $got_sum, resource says $sum"
grep -qi "^etag: \"$sum\"" "$work/headers" || fail "download: ETag is not the quoted checksum: $(grep -i etag "$work/headers")"
log "download: $got_size bytes, sha256 and ETag match the resource"

section "list"
api_call GET "/operations-activity-exports?page_size=100"
[ "$code" = 200 ] || fail "list: $code $body"
[ "$(field "[.items[].id] | index(\"$id\")")" != null ] || fail "list does not show $id: $body"
log "list: $(field '.items | length') items, $id among them"

section "idempotent replay, answered by the other replica"
owner="$(psql "SELECT owner FROM operations_activity_exports WHERE id = '$id'")"
created_on="$(upstream_of "$first_rid")"
[ "$owner" = "$created_on" ] || fail "owner in PostgreSQL is '$owner', nginx sent the create to $created_on"
other=""
for i in $(seq 1 12); do
  api_call POST /operations-activity-exports -H 'Content-Type: application/json' -H 'Prefer: wait=0' -H "Idempotency-Key: $key" --data "$april"
  [ "$code" = 201 ] || fail "replay $i: $code $body"
  [ "$(field .id)" = "$id" ] || fail "replay $i gave export $(field .id), want $id"
  [ "$(field .status)" = ready ] && [ "$(field .checksum_sha256)" = "$sum" ] || fail "replay $i: $body"
  on="$(upstream_of "$rid")"
  if [ "$on" != "$owner" ]; then
    other="$on"
    break
  fi
done
[ -n "$other" ] || fail "12 replays all went to $owner"
log "replay $i answered by $other (creator $owner): same export $id"
api_call POST /operations-activity-exports -H 'Content-Type: application/json' -H "Idempotency-Key: $key" \
  --data "$(create_body 2026-05-01T00:00:00Z 2026-05-31T23:59:59Z zstd)"
[ "$code" = 409 ] && [ "$(field .details.reason)" = key_payload_mismatch ] || fail "same key, other body: $code $body"
log "same key, other body: 409 $(field .code)/$(field .details.reason)"
n="$(psql "SELECT count(*) FROM operations_activity_exports WHERE id = '$id'")"
[ "$n" = 1 ] || fail "$n records for $id"

section "cancel"
api_call POST /operations-activity-exports -H 'Content-Type: application/json' -H 'Prefer: wait=0' \
  --data "$(create_body 2026-01-01T00:00:00Z 2026-06-30T23:59:59.999Z gzip)"
[ "$code" = 201 ] || fail "create (to cancel): $code $body"
cid_export="$(field .id)"
api_call POST "/operations-activity-exports/$cid_export/cancel"
[ "$code" = 200 ] && [ "$(field .status)" = cancelled ] || fail "cancel: $code $body"
api_call GET "/operations-activity-exports/$cid_export"
[ "$(field .status)" = cancelled ] && [ "$(field .failure_reason)" = null ] || fail "after cancel: $body"
api_call GET "/operations-activity-exports/$cid_export/download"
[ "$code" = 409 ] || [ "$code" = 404 ] || fail "download of a cancelled export: $code $body"
log "cancelled $cid_export; GET reads cancelled, download $code"

section "Prometheus: both replicas scraped, alert rules loaded"
deadline=$((SECONDS + 60))
while :; do
  targets="$(curl -sS "$prom/api/v1/targets?state=active" || true)"
  up="$(jq -r '[.data.activeTargets[] | select(.labels.job == "exportd" and .health == "up") | .labels.replica] | sort | join(",")' <<<"$targets" 2>/dev/null || true)"
  [ "$up" = "exportd-a,exportd-b" ] && break
  [ "$SECONDS" -lt "$deadline" ] || fail "Prometheus targets up: '$up', want exportd-a,exportd-b: $(jq -c '.data.activeTargets[] | {scrapeUrl, health, lastError}' <<<"$targets")"
  sleep 2
done
log "targets up: $up"
rules="$(curl -sS "$prom/api/v1/rules?type=alert")"
want="$(grep -c -- '- alert:' deploy/prometheus/alerts.yml)"
have="$(jq '[.data.groups[].rules[] | select(.health != "err")] | length' <<<"$rules")"
[ "$have" = "$want" ] || fail "Prometheus has $have healthy alert rules, alerts.yml has $want: $(jq -c '[.data.groups[].rules[] | {name, health, lastError}]' <<<"$rules")"
q="$(curl -sS "$prom/api/v1/query" --data-urlencode 'query=count(up{job="exportd"} == 1)' | jq -r '.data.result[0].value[1]')"
[ "$q" = 2 ] || fail "count(up{job=\"exportd\"} == 1) = $q"
log "alert rules loaded: $have of $want healthy; up{job=\"exportd\"} counts 2"

# s3_keys objects|uploads MATCH: the keys (one a line) of the bucket's objects
# under exportd/, or of its unfinished multipart uploads, that contain MATCH;
# a signed request from inside the S3 container (the port is not published).
# Fails unless S3 answers with the listing (curl's SigV4 signs the query as
# written, so it is written canonically).
s3_keys() {
  local query want out
  case "$1" in
  objects) query='list-type=2&prefix=exportd%2F' want='<ListBucketResult' ;;
  uploads) query='uploads=' want='<ListMultipartUploadsResult' ;;
  esac
  out="$(dc exec -T minio curl -sS --aws-sigv4 aws:amz:us-east-1:s3 -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
    --user exportd:exportd-local-secret "http://127.0.0.1:9000/exports?$query")"
  [[ "$out" == *"$want"* ]] || fail "S3 $1 listing: $out"
  grep -o '<Key>[^<]*</Key>' <<<"$out" | sed 's/<[^>]*>//g' | grep -F -- "$2" || true
}
[ "$(s3_keys objects "$id" | wc -w)" = 1 ] || fail "the ready export $id is not one object in S3: $(s3_keys objects "")"

section "a replica killed mid-export"
log "loading $kill_rows rows for one more enterprise (seed 62)"
dc run --rm --no-deps -T seed ingest --generate "$kill_rows" --enterprises 1 --seed 62 --once >"$work/ingest.log" 2>&1 ||
  fail "ingest: $(tail -5 "$work/ingest.log")"
ent="$(dc run --rm --no-deps -T seed ingest --print-enterprises --enterprises 1 --seed 62 2>/dev/null | tr -d '\r' | tail -1)"
[[ "$ent" == enterprises/* ]] || fail "print-enterprises: $ent"
demo_token="$token"
token="$(dc run --rm --no-deps -T token token --sub service-accounts/00000000-0000-4000-8000-00000000d3e1 \
  --capability operations_reports.create --capability operations_reports.read --scope "$ent:subtree" --ttl 1h 2>/dev/null | tr -d '\r' | tail -1)"
log "minted a token for $ent"
api_call POST /operations-activity-exports -H 'Content-Type: application/json' -H 'Prefer: wait=0' \
  --data "$(create_body 2026-01-01T00:00:00Z 2026-06-30T23:59:59.999Z gzip)"
[ "$code" = 201 ] || fail "create (to kill): $code $body"
kid="$(field .id)"
deadline=$((SECONDS + 30))
while :; do
  IFS='|' read -r st victim rc <<<"$(psql "SELECT status, owner, row_count FROM operations_activity_exports WHERE id = '$kid'")"
  [ "$st" = running ] && [ "${rc:-0}" -gt 0 ] && break
  [ "$st" = pending ] || [ "$st" = running ] || fail "export $kid ended $st before it could be caught running (raise DEPLOY_KILL_ROWS)"
  [ "$SECONDS" -lt "$deadline" ] || fail "export $kid not running after 30s"
  sleep 0.2
done
survivor=exportd-a
[ "$victim" = exportd-a ] && survivor=exportd-b
before="$(s3_keys uploads "$kid" | wc -w)"
docker kill "$(cid "$victim")" >/dev/null
killed_at=$SECONDS
log "export $kid running on $victim ($rc rows recorded, $before multipart upload open): docker kill $victim"
# The survivor reaps the export; nginx sends reads there (the victim's upstream fails).
deadline=$((killed_at + 60))
while :; do
  api_call GET "/operations-activity-exports/$kid" --max-time 10
  if [ "$code" = 200 ]; then
    st="$(field .status)"
    [ "$st" = ready ] && fail "export $kid finished before the kill took effect (raise DEPLOY_KILL_ROWS)"
    [ "$st" = failed ] && break
  fi
  [ "$SECONDS" -lt "$deadline" ] || fail "export $kid still $code $(field .status) 60s after the kill"
  sleep 1
done
reason="$(field .failure_reason)"
[ "$reason" = shutdown ] || fail "killed export failed with $reason, want shutdown"
log "export $kid reads failed/shutdown $((SECONDS - killed_at))s after the kill"
deadline=$((SECONDS + 20))
while :; do
  objects="$(s3_keys objects "$kid")"
  uploads="$(s3_keys uploads "")"
  [ -z "$objects" ] && [ -z "$uploads" ] && break
  [ "$SECONDS" -lt "$deadline" ] || fail "S3 still holds, 20s after the export failed: objects [$objects] uploads [$uploads]"
  sleep 1
done
ready_objects="$(s3_keys objects "$id" | wc -w)"
[ "$ready_objects" = 1 ] || fail "the ready export $id has $ready_objects objects in S3, want 1"
log "S3: no object and no multipart upload left of $kid; the ready export's one object is still there"
token="$demo_token"
api_call GET "/operations-activity-exports/$id/download"
[ "$code" = 200 ] || fail "download through the survivor after the kill: $code"
[ "$(sha256sum "$work/body" | cut -d' ' -f1)" = "$sum" ] || fail "download after the kill: checksum differs"
log "$survivor still serves the ready export (checksum matches)"
log "$victim after docker kill: running=$(docker inspect -f '{{.State.Running}}' "$(cid "$victim")") restarts=$(docker inspect -f '{{.RestartCount}}' "$(cid "$victim")")"
