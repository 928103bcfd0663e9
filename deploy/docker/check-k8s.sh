#!/usr/bin/env bash
# The Kubernetes base builds (kubectl kustomize: every resource listed exists
# and parses) and every object in it passes a schema check.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
command -v kubectl >/dev/null || { echo "kubectl not found (apt-get install kubernetes-client)" >&2; exit 1; }
kubectl kustomize deploy/k8s >"$out"
echo "kustomize: $(grep -c '^kind:' "$out") objects: $(grep '^kind:' "$out" | cut -d' ' -f2 | sort | uniq -c | tr -s ' ' | tr '\n' ',')"
# kubectl apply --dry-run=client needs an API server for discovery even with
# --validate=false; the schema check is the Go test (k8s.io/api types, strict).
go test -count=1 -run '^TestKubernetes' ./deploy/
