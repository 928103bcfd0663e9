package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/exportd/exportd/engine/chconn"
	"github.com/exportd/exportd/engine/pgstore"
)

// settings are the stable configuration of SPEC §4: every one a flag with
// an environment twin. A value that does not parse stops the process at
// start with a message naming the setting.
type settings struct {
	HTTPAddr      string
	AdminAddr     string
	ClickHouseDSN string
	PostgresDSN   string
	StorageURL    string
	JWKS          string
	SigningKey    string
	JWTIssuer     string
	JWTAudience   string
	// TrustLocalKey: nil means the default (true only without a JWKS).
	TrustLocalKey    *bool
	AllowAnyAudience bool
	Retention        time.Duration
	// RecordRetention is how long ended export records are kept.
	RecordRetention time.Duration
	MaxRange        time.Duration
	MaxRows         int64
	RateLimit       float64
	RateBurst       int
	MaxExports      int
	// Concurrent downloads, per caller and in all.
	MaxDownloadsPerCaller int
	MaxDownloads          int
	// Fairness between tenants and the per-export deadline.
	MaxPerEnterprise        int
	MaxPendingPerEnterprise int
	LongSorts               int
	ExportTimeout           time.Duration
	ShutdownGrace           time.Duration
	LogLevel                zapcore.Level
	ReplicaID               string
	// Webhooks (SPEC §8): the loopback switch, and the retry schedule's
	// base and the claim lease, which only tests change.
	WebhookAllowLoopback bool
	WebhookBackoffBase   time.Duration
	WebhookLease         time.Duration
	// ScheduleSweep is the interval of the schedule sweep (SPEC §9).
	ScheduleSweep time.Duration

	ch chconn.Config
}

type setting struct {
	flag, env, def, help string
	parse                func(string) error
}

func (s *settings) list() []setting {
	dur := func(dst *time.Duration, positive bool) func(string) error {
		return func(v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return err
			}
			if positive && d <= 0 {
				return errors.New("must be positive")
			}
			*dst = d
			return nil
		}
	}
	str := func(dst *string) func(string) error { return func(v string) error { *dst = v; return nil } }
	addr := func(dst *string) func(string) error {
		return func(v string) error {
			if _, _, err := net.SplitHostPort(v); err != nil {
				return err
			}
			*dst = v
			return nil
		}
	}
	return []setting{
		{"http-addr", "EXPORTD_HTTP_ADDR", "127.0.0.1:8080", "API listen address", addr(&s.HTTPAddr)},
		{"admin-addr", "EXPORTD_ADMIN_ADDR", "127.0.0.1:9464", "admin listen address (/metrics)", addr(&s.AdminAddr)},
		{"clickhouse-dsn", "EXPORTD_CLICKHOUSE_DSN", chconn.DefaultDSN, "ClickHouse native DSN", func(v string) error {
			c, err := chconn.ParseDSN(v)
			s.ClickHouseDSN, s.ch = v, c
			return err
		}},
		{"postgres-dsn", "EXPORTD_POSTGRES_DSN", pgstore.DefaultDSN, "PostgreSQL DSN of the control plane", func(v string) error {
			if err := pgstore.CheckDSN(v); err != nil {
				return err
			}
			s.PostgresDSN = v
			return nil
		}},
		{"storage-url", "EXPORTD_STORAGE_URL", "file://./data/exports", "artefact storage (file:// or s3://)", str(&s.StorageURL)},
		{"jwks", "EXPORTD_JWKS", "", "JWKS file path or URL", str(&s.JWKS)},
		// Not beside the artefacts (./data/exports): whoever can read the key
		// file mints tokens, so it lives apart from anything served or shared.
		{"signing-key", "EXPORTD_SIGNING_KEY", "./secrets/signing-key.pem", "local Ed25519 key file (created if absent)", str(&s.SigningKey)},
		{"trust-local-key", "EXPORTD_TRUST_LOCAL_KEY", "", "accept tokens signed with the local key (default: true only without EXPORTD_JWKS)", func(v string) error {
			if v == "" {
				return nil // decided in validate, once EXPORTD_JWKS is known
			}
			b, err := strconv.ParseBool(v)
			s.TrustLocalKey = &b
			return err
		}},
		{"allow-any-audience", "EXPORTD_ALLOW_ANY_AUDIENCE", "false", "with EXPORTD_JWKS, accept tokens of any aud when EXPORTD_JWT_AUDIENCE is empty", func(v string) error {
			b, err := strconv.ParseBool(v)
			s.AllowAnyAudience = b
			return err
		}},
		{"jwt-issuer", "EXPORTD_JWT_ISSUER", "", "required token iss (empty: not checked)", str(&s.JWTIssuer)},
		{"jwt-audience", "EXPORTD_JWT_AUDIENCE", "", "required token aud (empty: not checked)", str(&s.JWTAudience)},
		{"retention", "EXPORTD_RETENTION", "24h", "how long a ready file stays downloadable", dur(&s.Retention, true)},
		{"record-retention", "EXPORTD_RECORD_RETENTION", "2160h", "how long export records are kept after they end", dur(&s.RecordRetention, true)},
		{"max-range", "EXPORTD_MAX_RANGE", "8784h", "longest date range of one export", dur(&s.MaxRange, true)},
		// 100M rows: a year of a large enterprise (≈10-30M operations) fits
		// with room to spare; a runaway scope (billions of rows, ~40 GB of
		// CSV per 100M) is refused at admission (422) or stopped at the cap.
		{"max-rows", "EXPORTD_MAX_ROWS", "100000000", "row cap per export (0: unlimited)", func(v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err == nil && n < 0 {
				err = errors.New("must be >= 0")
			}
			s.MaxRows = n
			return err
		}},
		{"rate-limit", "EXPORTD_RATE_LIMIT", "5", "create requests per second per caller", func(v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil && !(f > 0) {
				err = errors.New("must be > 0")
			}
			s.RateLimit = f
			return err
		}},
		{"rate-burst", "EXPORTD_RATE_BURST", "20", "create burst per caller", func(v string) error {
			n, err := strconv.Atoi(v)
			if err == nil && n < 1 {
				err = errors.New("must be >= 1")
			}
			s.RateBurst = n
			return err
		}},
		{"max-exports", "EXPORTD_MAX_EXPORTS", "4", "upper bound of concurrently running exports", func(v string) error {
			n, err := strconv.Atoi(v)
			if err == nil && n < 1 {
				err = errors.New("must be >= 1")
			}
			s.MaxExports = n
			return err
		}},
		{"max-exports-per-enterprise", "EXPORTD_MAX_EXPORTS_PER_ENTERPRISE", "2", "exports of one enterprise running at once on all replicas", func(v string) error {
			n, err := strconv.Atoi(v)
			if err == nil && n < 1 {
				err = errors.New("must be >= 1")
			}
			s.MaxPerEnterprise = n
			return err
		}},
		{"long-sorts", "EXPORTD_LONG_SORTS", "1", "long exports' windows ClickHouse reads and sorts at once for this replica (raise it for a ClickHouse with cores to spare)", func(v string) error {
			n, err := strconv.Atoi(v)
			if err == nil && n < 1 {
				err = errors.New("must be >= 1")
			}
			s.LongSorts = n
			return err
		}},
		{"max-pending-per-enterprise", "EXPORTD_MAX_PENDING_PER_ENTERPRISE", "50", "pending exports of one enterprise before 429", func(v string) error {
			n, err := strconv.Atoi(v)
			if err == nil && n < 1 {
				err = errors.New("must be >= 1")
			}
			s.MaxPendingPerEnterprise = n
			return err
		}},
		{"max-downloads-per-caller", "EXPORTD_MAX_DOWNLOADS_PER_CALLER", "4", "concurrent downloads of one caller (beyond: 429)", func(v string) error {
			n, err := strconv.Atoi(v)
			if err == nil && n < 1 {
				err = errors.New("must be >= 1")
			}
			s.MaxDownloadsPerCaller = n
			return err
		}},
		{"max-downloads", "EXPORTD_MAX_DOWNLOADS", "256", "concurrent downloads in all (beyond: 429)", func(v string) error {
			n, err := strconv.Atoi(v)
			if err == nil && n < 1 {
				err = errors.New("must be >= 1")
			}
			s.MaxDownloads = n
			return err
		}},
		{"export-timeout", "EXPORTD_EXPORT_TIMEOUT", "2h", "deadline of one export from its start (then failed/timeout)", dur(&s.ExportTimeout, true)},
		{"shutdown-grace", "EXPORTD_SHUTDOWN_GRACE", "30s", "time running exports get to finish on SIGTERM", dur(&s.ShutdownGrace, false)},
		{"log-level", "EXPORTD_LOG_LEVEL", "info", "debug, info, warn or error", func(v string) error {
			return s.LogLevel.UnmarshalText([]byte(strings.ToLower(v)))
		}},
		{"webhook-allow-loopback", "EXPORTD_WEBHOOK_ALLOW_LOOPBACK", "false", "admit http://127.0.0.1:PORT and http://[::1]:PORT webhook URLs (tests and local use only)", func(v string) error {
			b, err := strconv.ParseBool(v)
			s.WebhookAllowLoopback = b
			return err
		}},
		{"webhook-backoff-base", "EXPORTD_WEBHOOK_BACKOFF_BASE", "5s", "first webhook retry delay, doubling to 1h (SPEC §8: 5s; for tests only)", dur(&s.WebhookBackoffBase, true)},
		{"webhook-lease", "EXPORTD_WEBHOOK_LEASE", "30s", "how long a replica's claim on a webhook delivery lasts (over 10s; for tests only)", func(v string) error {
			d, err := time.ParseDuration(v)
			if err == nil && d <= 10*time.Second {
				err = errors.New("must exceed the 10s attempt timeout")
			}
			s.WebhookLease = d
			return err
		}},
		{"replica-id", "EXPORTD_REPLICA_ID", "", "stable id of this replica in export records (default: host and HTTP address)", str(&s.ReplicaID)},
		{"schedule-sweep-interval", "EXPORTD_SCHEDULE_SWEEP_INTERVAL", "15s", "how often each replica makes the due exports of schedules (also at start)", dur(&s.ScheduleSweep, true)},
	}
}

// parseSettings registers every setting on fs (names filters which ones a
// subcommand takes; nil: all), parses args, then applies flag > env > default.
func parseSettings(fs *flag.FlagSet, args []string, names ...string) (*settings, error) {
	s := &settings{}
	all := s.list()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	vals := map[string]*string{}
	for _, st := range all {
		if len(names) > 0 && !want[st.flag] {
			continue
		}
		v := new(string)
		vals[st.flag] = v
		fs.StringVar(v, st.flag, "", fmt.Sprintf("%s (env %s, default %q)", st.help, st.env, st.def))
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	for _, st := range all {
		v := st.def
		if e, ok := os.LookupEnv(st.env); ok && e != "" {
			v = e
		}
		if p, ok := vals[st.flag]; ok && *p != "" {
			v = *p
		} else if !ok {
			v = st.def // a setting this subcommand does not take
		}
		if err := st.parse(v); err != nil {
			return nil, fmt.Errorf("invalid setting %s (--%s) = %q: %v", st.env, st.flag, redactUserinfo(v), err)
		}
	}
	if s.ReplicaID == "" {
		host, _ := os.Hostname()
		s.ReplicaID = host + "/" + s.HTTPAddr
	}
	return s, nil
}

// redactUserinfo hides the credentials of a URL-like value (a DSN's
// password) in messages: everything between "://" and the last "@". It
// works on text that does not parse as a URL too, which is when it is
// printed.
func redactUserinfo(v string) string {
	i := strings.Index(v, "://")
	if i < 0 {
		return v
	}
	at := strings.LastIndex(v, "@")
	if at < i {
		return v
	}
	return v[:i+3] + "REDACTED" + v[at:]
}
