package admission

import (
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	l := mustNew(t, Config{})
	c := l.cfg
	if c.Max != 4 || c.Min != 1 || c.Initial != 4 || c.QueueSize != 16 || c.QueueTimeout != 2*time.Second || c.Now == nil {
		t.Errorf("defaults: %+v", c)
	}
	if got := l.Limit(); got != 4 {
		t.Errorf("initial limit %d, want Max 4", got)
	}
	l = mustNew(t, Config{Max: 10, QueueSize: -1})
	if l.cfg.Initial != 10 || l.cfg.QueueSize != 0 {
		t.Errorf("Max 10, QueueSize -1: %+v", l.cfg)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Max: -1}, "max -1"},
		{Config{Max: 4, Min: 5}, "min 5"},
		{Config{Max: 4, Min: -2}, "min -2"},
		{Config{Max: 4, Min: 2, Initial: 1}, "initial 1"},
		{Config{Max: 4, Initial: 6}, "initial 6"},
		{Config{QueueTimeout: -time.Second}, "queue timeout -1s"},
	} {
		_, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error naming %q", tc.cfg, err, tc.want)
		}
	}
}
