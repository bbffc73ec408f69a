package alipaynotify

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// scrapeMetrics reads the admin endpoint of the caddytest server and returns
// the alipay_notify samples, keyed by "name{labels}".
func TestMetricsRegistrationIsReloadSafe(t *testing.T) {
	registry := prometheus.NewPedanticRegistry()
	first, err := newMetrics(registry, nil)
	if err != nil {
		t.Fatal(err)
	}
	second, err := newMetrics(registry, nil) // a second handler in the same config
	if err != nil {
		t.Fatal(err)
	}
	if first.notifications != second.notifications || first.upstreamDuration != second.upstreamDuration || first.outbox != second.outbox {
		t.Fatal("a second registration did not reuse the collectors")
	}
	second.notifications.WithLabelValues(outcomeForwarded, otherApp).Inc()
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	// notifications, upstream and verify durations, outbox deliveries,
	// entries and oldest pending.
	if len(families) != 6 {
		t.Errorf("%d metric families, want 6", len(families))
	}
}
