package alipaynotify

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// allOutcomes are pre-set to zero so that dashboards and alerts see every
// series from the first scrape, not only after the first failure.
var allOutcomes = []string{
	outcomeForwarded, outcomeFiltered, outcomeMethodNotAllowed, outcomeTooLarge,
	outcomeBadRequest, outcomeBadSignature, outcomeAppRefused, outcomeSellerRefused,
	outcomeStale, outcomeNotifyVerifyFailed, outcomeNotifyVerifyError, outcomeUpstreamError, outcomeUpstreamTimeout,
}

// metrics are the handler's Prometheus collectors on Caddy's registry.
type metrics struct {
	notifications    *prometheus.CounterVec
	upstreamDuration prometheus.Histogram
	verifyDuration   prometheus.Histogram
}

// newMetrics registers the collectors on registry, or reuses those already
// there: every alipay_notify handler of a config shares them, and Caddy
// gives each config load a new registry, so a reload starts clean.
func newMetrics(registry prometheus.Registerer) (*metrics, error) {
	const namespace, subsystem = "caddy", "alipay_notify"
	notifications, err := registerOrReuse(registry, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "notifications_total",
		Help: "Alipay notifications handled, by outcome.",
	}, []string{"outcome"}))
	if err != nil {
		return nil, err
	}
	upstream, err := registerOrReuse(registry, prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "upstream_duration_seconds",
		Help:    "Time from sending a webhook upstream to reading its answer, whatever the answer.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}))
	if err != nil {
		return nil, err
	}
	verify, err := registerOrReuse(registry, prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "verify_duration_seconds",
		Help:    "Time to parse a notification, verify its signature and apply the policy.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025},
	}))
	if err != nil {
		return nil, err
	}
	for _, outcome := range allOutcomes {
		notifications.WithLabelValues(outcome)
	}
	return &metrics{notifications: notifications, upstreamDuration: upstream, verifyDuration: verify}, nil
}

// registerOrReuse registers c, or returns the equal collector registered
// before (never MustRegister: a second handler or a reload must not panic).
func registerOrReuse[C prometheus.Collector](registry prometheus.Registerer, c C) (C, error) {
	err := registry.Register(c)
	if err == nil {
		return c, nil
	}
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) {
		if existing, ok := already.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("registering metrics: %w", err)
}
