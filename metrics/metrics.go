// Package metrics is the one catalogue of exportd's Prometheus collectors
// (SPEC §5), built against an injected registry. Names follow
// exportd_<subsystem>_<what>_<unit>; labels are bounded (never an export id
// or a tenant).
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds every collector.
type Metrics struct {
	ExportRows     prometheus.Histogram
	ExportBytes    prometheus.Histogram
	ExportDuration prometheus.Histogram
	ExportsTotal   *prometheus.CounterVec // by final status
	ExportsRunning prometheus.Gauge

	HTTPRequests *prometheus.CounterVec   // route, code
	HTTPDuration *prometheus.HistogramVec // route

	AdmissionLimit    prometheus.Gauge
	AdmissionInFlight prometheus.Gauge
	AdmissionQueued   prometheus.Gauge
	AdmissionShed     *prometheus.CounterVec // reason
	RateLimited       prometheus.Counter

	ClickHouseRows  prometheus.Counter
	ClickHouseBytes prometheus.Counter
	ClickHouseErrs  prometheus.Counter
	StorageBytes    prometheus.Counter
}

// New registers the catalogue (plus Go runtime and process collectors) on reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ExportRows: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "exportd_export_rows", Help: "Rows per finished export.",
			Buckets: prometheus.ExponentialBuckets(1, 10, 10), // 1 .. 1e9
		}),
		ExportBytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "exportd_export_size_bytes", Help: "Artefact bytes per ready export.",
			Buckets: prometheus.ExponentialBuckets(1024, 4, 13), // 1 KiB .. 16 GiB
		}),
		ExportDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "exportd_export_duration_seconds", Help: "Time from admission to a final state.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 14), // 10 ms .. ~10 min
		}),
		ExportsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exportd_exports_total", Help: "Exports that reached a final state, by status.",
		}, []string{"status"}),
		ExportsRunning: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "exportd_exports_running", Help: "Exports currently running on this replica.",
		}),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exportd_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "exportd_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 14),
		}, []string{"route"}),
		AdmissionLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "exportd_admission_limit", Help: "Current adaptive limit of concurrently running exports.",
		}),
		AdmissionInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "exportd_admission_in_flight", Help: "Exports holding an admission slot.",
		}),
		AdmissionQueued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "exportd_admission_queued", Help: "Create requests waiting for admission.",
		}),
		AdmissionShed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exportd_admission_shed_total", Help: "Create requests shed by admission control, by reason.",
		}, []string{"reason"}),
		RateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "exportd_rate_limited_total", Help: "Create requests refused by the per-caller rate limit.",
		}),
		ClickHouseRows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "exportd_clickhouse_read_rows_total", Help: "Activity rows read from ClickHouse.",
		}),
		ClickHouseBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "exportd_clickhouse_read_bytes_total", Help: "Bytes ClickHouse reported reading for exports.",
		}),
		ClickHouseErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "exportd_clickhouse_errors_total", Help: "Exports failed by ClickHouse errors.",
		}),
		StorageBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "exportd_storage_written_bytes_total", Help: "Artefact bytes committed to storage.",
		}),
	}
	reg.MustRegister(m.ExportRows, m.ExportBytes, m.ExportDuration, m.ExportsTotal, m.ExportsRunning,
		m.HTTPRequests, m.HTTPDuration, m.AdmissionLimit, m.AdmissionInFlight, m.AdmissionQueued,
		m.AdmissionShed, m.RateLimited, m.ClickHouseRows, m.ClickHouseBytes, m.ClickHouseErrs, m.StorageBytes,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
