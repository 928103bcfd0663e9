package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/exportd/exportd/engine/pgstore"
	"github.com/exportd/exportd/engine/webhook"
	"github.com/exportd/exportd/metrics"
	"github.com/exportd/exportd/server"
)

// newWebhooks builds the SSRF-safe client (registration checks and
// deliveries) and the deliverer of SPEC §8, whose data renderer is the
// API's export resource.
func newWebhooks(s *settings, records *pgstore.Store, reg prometheus.Registerer, log *zap.Logger) (*webhook.Deliverer, *webhook.Client, error) {
	client := webhook.NewClient(webhook.ClientConfig{AllowLoopback: s.WebhookAllowLoopback})
	d, err := webhook.NewDeliverer(webhook.Config{
		Store:   records,
		Sender:  client,
		Render:  server.RenderExport,
		Owner:   s.ReplicaID,
		Lease:   s.WebhookLease,
		Backoff: webhook.Backoff{Base: s.WebhookBackoffBase, Max: webhook.DefaultBackoff.Max, GiveUp: webhook.DefaultBackoff.GiveUp},
		Metrics: metrics.NewWebhook(reg),
		Logger:  log.Named("webhook"),
	})
	return d, client, err
}
