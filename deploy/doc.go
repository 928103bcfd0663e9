// Package deploy holds exportd's deployment artefacts (container image,
// compose stack, Kubernetes manifests, Grafana dashboard, Prometheus alert
// rules; see README.md in this directory) and the tests that keep them
// honest: every metric that the dashboard and the alert rules query must be
// one that a running exportd actually exposes. The package has no code
// beyond its tests and nothing imports it.
package deploy
