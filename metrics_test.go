package alipaynotify

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// A second handler (or gate) in the same config reuses the collectors the
// first registered, instead of failing or panicking.
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
	if first.notifications.vec != second.notifications.vec || first.upstreamDuration != second.upstreamDuration || first.outbox != second.outbox {
		t.Fatal("a second registration did not reuse the collectors")
	}
	second.notifications.count(outcomeForwarded, "2021000000000000") // not configured: other
	gateA, err := newGateMetrics(registry, []string{"2021000000000000"})
	if err != nil {
		t.Fatal(err)
	}
	gateB, err := newGateMetrics(registry, nil)
	if err != nil || gateA.vec != gateB.vec {
		t.Fatal("a second gate did not reuse the counter", err)
	}
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	// notifications, upstream and verify durations, outbox deliveries,
	// entries and oldest pending; the gate's requests.
	if len(families) != 7 {
		t.Errorf("%d metric families, want 7", len(families))
	}
	var sample dto.Metric
	if err := first.notifications.vec.WithLabelValues(outcomeForwarded, otherApp).Write(&sample); err != nil || sample.GetCounter().GetValue() != 1 {
		t.Errorf("an unconfigured app counted %v times under other, want 1 (%v)", sample.GetCounter().GetValue(), err)
	}
}
