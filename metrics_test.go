package alipaynotify

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// scrapeMetrics reads the admin endpoint of the caddytest server and returns
// the alipay_notify samples, keyed by "name{labels}".
func TestMetricsRegistrationIsReloadSafe(t *testing.T) {
	registry := prometheus.NewPedanticRegistry()
	first, err := newMetrics(registry)
	if err != nil {
		t.Fatal(err)
	}
	second, err := newMetrics(registry) // a second handler in the same config
	if err != nil {
		t.Fatal(err)
	}
	if first.notifications != second.notifications || first.upstreamDuration != second.upstreamDuration {
		t.Fatal("a second registration did not reuse the collectors")
	}
	second.notifications.WithLabelValues(outcomeForwarded).Inc()
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) != 3 {
		t.Errorf("%d metric families, want 3", len(families))
	}
}

// TestPlaceholdersAndAccessLog checks {http.alipay_notify.*} in a deferred
// response header and the extra fields in Caddy's access log.
