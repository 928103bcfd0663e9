package metrics

import "github.com/prometheus/client_golang/prometheus"

// Webhook holds the collectors of completion webhook delivery (SPEC §8).
// Kept apart from Metrics so that only the processes that deliver
// register them.
type Webhook struct {
	Deliveries      *prometheus.CounterVec // by outcome: delivered, retry, abandoned, lost
	Attempts        prometheus.Counter
	AttemptDuration prometheus.Histogram
	// OldestPending is the age of the oldest undelivered event, read from
	// PostgreSQL (the same on every replica).
	OldestPending prometheus.Gauge
	InFlight      prometheus.Gauge
}

// Outcomes of a delivery attempt (the label values of Deliveries).
const (
	WebhookDelivered = "delivered"
	WebhookRetry     = "retry"
	WebhookAbandoned = "abandoned"
	WebhookLost      = "lost"
)

// NewWebhook registers the webhook collectors on reg.
func NewWebhook(reg prometheus.Registerer) *Webhook {
	m := &Webhook{
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exportd_webhook_deliveries_total",
			Help: "Webhook delivery attempts by outcome (delivered, retry, abandoned after 24 h, lost: its claim was retaken).",
		}, []string{"outcome"}),
		Attempts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "exportd_webhook_attempts_total", Help: "Webhook delivery attempts made by this replica.",
		}),
		AttemptDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "exportd_webhook_attempt_duration_seconds", Help: "Duration of one webhook delivery attempt.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12), // 1 ms .. ~60 s
		}),
		OldestPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "exportd_webhook_oldest_undelivered_age_seconds",
			Help: "Age of the oldest webhook event not yet delivered (0: none), by the database clock.",
		}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "exportd_webhook_attempts_in_flight", Help: "Webhook delivery attempts under way on this replica.",
		}),
	}
	// Every outcome is exposed from the start (at 0), so rates and alerts
	// have a series before the first delivery.
	for _, o := range []string{WebhookDelivered, WebhookRetry, WebhookAbandoned, WebhookLost} {
		m.Deliveries.WithLabelValues(o)
	}
	reg.MustRegister(m.Deliveries, m.Attempts, m.AttemptDuration, m.OldestPending, m.InFlight)
	return m
}
